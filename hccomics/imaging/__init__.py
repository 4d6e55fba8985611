"""Imaging: registration, segmentation, rings, lesion features and MVI models (MONAI, SciPy, scikit-image)."""

from hccomics.imaging.agreement import bland_altman, icc, mask_agreement, volume_agreement
from hccomics.imaging.crops import crop_items, load_crops, prepare_crops, region_names
from hccomics.imaging.data import check_items, segmentation_items
from hccomics.imaging.engine import Trainer, init_distributed, load_state_dict
from hccomics.imaging.evaluation import evaluate_segmentation, otsu_baseline, reader_agreement
from hccomics.imaging.features import aggregate_lesions, exam_features, lesion_features
from hccomics.imaging.inference import ensemble_probabilities, postprocess_lesions, predict_volume
from hccomics.imaging.metrics import detection_summary, lesion_detection, segmentation_metrics, volume_ml
from hccomics.imaging.mvi import (
    CLINICAL_INPUTS,
    EXPERT_FEATURES,
    auc_ci,
    auc_rows,
    compare_auc,
    model_table,
    mvi_folds,
    mvi_targets,
    radiomics_oof,
    ring_width_comparison,
    roc_points,
)
from hccomics.imaging.mvi_cnn import (
    CVResult,
    MultiTaskLoss,
    MVIClassifier,
    MVINet,
    cross_validate_cnn,
    fold_classifier,
    mvi_models,
    two_stage_oof,
)
from hccomics.imaging.networks import ConvLSTMCell3d, PhaseConvLSTMUNet, build_network, count_parameters
from hccomics.imaging.radiomics import first_order, glcm_features, shape_features
from hccomics.imaging.registration import RegistrationResult, register_cohort, register_phases, warp_to_reference
from hccomics.imaging.rings import (
    DEFAULT_WIDTHS_MM,
    LesionRings,
    ablative_margin,
    ablative_margins,
    lesion_rings,
    ring_name,
    surface_distance,
)
from hccomics.imaging.saliency import deletion_curve, saliency_by_region, saliency_maps
from hccomics.imaging.segmentation import LesionSegmenter, kfold_split
from hccomics.imaging.transforms import EnsureFinited, StageLabeld, segmentation_transforms

__all__ = [
    "CLINICAL_INPUTS",
    "DEFAULT_WIDTHS_MM",
    "EXPERT_FEATURES",
    "CVResult",
    "ConvLSTMCell3d",
    "EnsureFinited",
    "LesionRings",
    "LesionSegmenter",
    "MVIClassifier",
    "MVINet",
    "MultiTaskLoss",
    "PhaseConvLSTMUNet",
    "RegistrationResult",
    "StageLabeld",
    "Trainer",
    "ablative_margin",
    "ablative_margins",
    "aggregate_lesions",
    "auc_ci",
    "auc_rows",
    "bland_altman",
    "build_network",
    "check_items",
    "compare_auc",
    "count_parameters",
    "crop_items",
    "cross_validate_cnn",
    "deletion_curve",
    "detection_summary",
    "ensemble_probabilities",
    "evaluate_segmentation",
    "exam_features",
    "first_order",
    "fold_classifier",
    "glcm_features",
    "icc",
    "init_distributed",
    "kfold_split",
    "lesion_detection",
    "lesion_features",
    "lesion_rings",
    "load_crops",
    "load_state_dict",
    "mask_agreement",
    "model_table",
    "mvi_folds",
    "mvi_models",
    "mvi_targets",
    "otsu_baseline",
    "postprocess_lesions",
    "predict_volume",
    "prepare_crops",
    "radiomics_oof",
    "reader_agreement",
    "region_names",
    "register_cohort",
    "register_phases",
    "ring_name",
    "ring_width_comparison",
    "roc_points",
    "saliency_by_region",
    "saliency_maps",
    "segmentation_items",
    "segmentation_metrics",
    "segmentation_transforms",
    "shape_features",
    "surface_distance",
    "two_stage_oof",
    "volume_agreement",
    "volume_ml",
    "warp_to_reference",
]
