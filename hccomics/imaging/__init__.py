"""Imaging: multi-phase transforms, registration, two-stage segmentation, metrics and reader agreement (MONAI)."""

from hccomics.imaging.agreement import bland_altman, icc, mask_agreement, volume_agreement
from hccomics.imaging.data import check_items, segmentation_items
from hccomics.imaging.engine import Trainer, init_distributed, load_state_dict
from hccomics.imaging.evaluation import evaluate_segmentation, otsu_baseline, reader_agreement
from hccomics.imaging.inference import ensemble_probabilities, postprocess_lesions, predict_volume
from hccomics.imaging.metrics import detection_summary, lesion_detection, segmentation_metrics, volume_ml
from hccomics.imaging.networks import ConvLSTMCell3d, PhaseConvLSTMUNet, build_network, count_parameters
from hccomics.imaging.registration import RegistrationResult, register_cohort, register_phases
from hccomics.imaging.segmentation import LesionSegmenter, kfold_split
from hccomics.imaging.transforms import EnsureFinited, StageLabeld, segmentation_transforms

__all__ = [
    "segmentation_items", "check_items", "segmentation_transforms", "EnsureFinited", "StageLabeld",
    "register_phases", "register_cohort", "RegistrationResult",
    "build_network", "count_parameters", "PhaseConvLSTMUNet", "ConvLSTMCell3d",
    "Trainer", "init_distributed", "load_state_dict",
    "LesionSegmenter", "kfold_split", "ensemble_probabilities", "predict_volume", "postprocess_lesions",
    "segmentation_metrics", "lesion_detection", "detection_summary", "volume_ml",
    "evaluate_segmentation", "otsu_baseline", "reader_agreement",
    "icc", "bland_altman", "mask_agreement", "volume_agreement",
]
