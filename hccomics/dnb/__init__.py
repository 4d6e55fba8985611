"""Dynamic network biomarkers: critical-state detection on gene and image features."""

from hccomics.dnb.critical import ConstantFeaturesWarning, CriticalStateResult, critical_state
from hccomics.dnb.indices import composite_index, transition_index
from hccomics.dnb.joint import compare_key_states, image_features, join_features, key_states
from hccomics.dnb.landscape import landscape
from hccomics.dnb.network import pathway_network, read_network
from hccomics.dnb.single_sample import single_sample
from hccomics.dnb.summaries import module_correlations_by_stage, module_values

__all__ = [
    "critical_state", "CriticalStateResult", "ConstantFeaturesWarning", "composite_index", "transition_index",
    "single_sample", "landscape", "read_network", "pathway_network", "image_features", "join_features",
    "key_states", "compare_key_states", "module_values", "module_correlations_by_stage",
]
