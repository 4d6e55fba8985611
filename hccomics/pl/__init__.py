"""Plotly figure builders: they take computed results and return a Figure."""

from hccomics.pl.cohort import category_counts, follow_up, modality_availability
from hccomics.pl.dnb import dnb_landscape, dnb_module_heatmap, dnb_module_network, dnb_sample_scores, dnb_scores
from hccomics.pl.graph import attribution_bars, fusion_differences, fusion_model_comparison, patient_embedding
from hccomics.pl.imaging import image_slices, tile_gallery
from hccomics.pl.mvi import cam_overlay, deletion_curves, ring_width_auc, roc_curves, saliency_by_region_bars
from hccomics.pl.omics import (
    enrichment_dotplot,
    gsea_running_score,
    ma_plot,
    pca_scatter,
    score_by_group,
    top_genes_heatmap,
    volcano,
)
from hccomics.pl.phase_features import phase_embedding_trajectory, phase_feature_maps
from hccomics.pl.registration import registration_overlay, registration_qc
from hccomics.pl.segmentation import (
    detection_by_size,
    fold_metrics,
    learning_curves,
    segmentation_overlay,
    volume_agreement_plot,
)
from hccomics.pl.survival import calibration_plot, forest_plot, km_plot, model_comparison, nomogram_plot, td_auc_plot

__all__ = [
    "attribution_bars",
    "calibration_plot",
    "cam_overlay",
    "category_counts",
    "deletion_curves",
    "detection_by_size",
    "dnb_landscape",
    "dnb_module_heatmap",
    "dnb_module_network",
    "dnb_sample_scores",
    "dnb_scores",
    "enrichment_dotplot",
    "fold_metrics",
    "follow_up",
    "forest_plot",
    "fusion_differences",
    "fusion_model_comparison",
    "gsea_running_score",
    "image_slices",
    "km_plot",
    "learning_curves",
    "ma_plot",
    "modality_availability",
    "model_comparison",
    "nomogram_plot",
    "patient_embedding",
    "pca_scatter",
    "phase_embedding_trajectory",
    "phase_feature_maps",
    "registration_overlay",
    "registration_qc",
    "ring_width_auc",
    "roc_curves",
    "saliency_by_region_bars",
    "score_by_group",
    "segmentation_overlay",
    "td_auc_plot",
    "tile_gallery",
    "top_genes_heatmap",
    "volcano",
    "volume_agreement_plot",
]
