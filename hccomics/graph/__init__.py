"""Graph fusion (PyTorch Geometric): patient-similarity, gene and heterogeneous graphs; GNNs linking
transcriptomic signatures with image features; honest cross-validation and explanations."""

from hccomics.graph.builders import gene_graph, hetero_graph, knn_edges, patient_graph, standardise
from hccomics.graph.explain import METHODS, explain, gene_importance, group_importance, pathway_importance
from hccomics.graph.inputs import MISSING_RULE, TASKS, FusionInputs, MissingModalityWarning, fusion_inputs, task_labels
from hccomics.graph.models import GatedKroneckerFusion, MultiOmicsGCN, PatientGeneGNN, similar
from hccomics.graph.protocol import (
    ConcatBaseline,
    FusionCVResult,
    compare_fusion,
    cross_validate_fusion,
    fusion_models,
    fusion_splits,
    fusion_table,
    model_kind,
    oof_mean,
)
from hccomics.graph.training import ARCHITECTURES, DegenerateFoldError, FusionBatch, FusionModel, build_batch

__all__ = [
    "ARCHITECTURES",
    "METHODS",
    "MISSING_RULE",
    "TASKS",
    "ConcatBaseline",
    "DegenerateFoldError",
    "FusionBatch",
    "FusionCVResult",
    "FusionInputs",
    "FusionModel",
    "GatedKroneckerFusion",
    "MissingModalityWarning",
    "MultiOmicsGCN",
    "PatientGeneGNN",
    "build_batch",
    "compare_fusion",
    "cross_validate_fusion",
    "explain",
    "fusion_inputs",
    "fusion_models",
    "fusion_splits",
    "fusion_table",
    "gene_graph",
    "gene_importance",
    "group_importance",
    "hetero_graph",
    "knn_edges",
    "model_kind",
    "oof_mean",
    "pathway_importance",
    "patient_graph",
    "similar",
    "standardise",
    "task_labels",
]
