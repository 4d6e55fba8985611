"""Plotly figure builders: they take computed results and return a Figure."""

from hccomics.pl.cohort import category_counts, follow_up, modality_availability
from hccomics.pl.dnb import dnb_landscape, dnb_module_heatmap, dnb_module_network, dnb_sample_scores, dnb_scores
from hccomics.pl.imaging import image_slices, tile_gallery
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
    "modality_availability", "category_counts", "follow_up", "image_slices", "tile_gallery",
    "dnb_scores", "dnb_module_heatmap", "dnb_module_network", "dnb_sample_scores", "dnb_landscape", "volcano", "ma_plot", "pca_scatter",
    "top_genes_heatmap", "enrichment_dotplot", "gsea_running_score", "score_by_group",
    "km_plot", "calibration_plot", "td_auc_plot", "forest_plot", "nomogram_plot", "model_comparison",
    "registration_qc", "registration_overlay", "segmentation_overlay", "learning_curves", "fold_metrics",
    "volume_agreement_plot", "detection_by_size", "phase_feature_maps", "phase_embedding_trajectory",
]
