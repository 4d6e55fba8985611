"""Survival and prognosis: Cox (lifelines), DeepSurv, metrics, cross-validation protocols, nomograms."""

from hccomics.survival.covariates import CLINICAL_COVARIATES, ENDPOINTS, prognostic_table
from hccomics.survival.cox import CoxPH
from hccomics.survival.deepsurv import DeepSurv, MultimodalDeepSurv
from hccomics.survival.metrics import (
    antolini_c,
    bootstrap_ci,
    calibration,
    compare_models,
    concordance_ci,
    evaluate,
    harrell_c,
    integrated_brier,
    time_dependent_auc,
    uno_c,
)
from hccomics.survival.nomogram import Nomogram
from hccomics.survival.protocols import (
    CVResult,
    FoldWithoutEventsWarning,
    cross_validate,
    kaplan_meier,
    logrank,
    make_splits,
    risk_groups,
    subgroup_concordance,
)

__all__ = [
    "prognostic_table", "CLINICAL_COVARIATES", "ENDPOINTS", "CoxPH", "DeepSurv", "MultimodalDeepSurv", "Nomogram", "harrell_c", "uno_c", "antolini_c",
    "time_dependent_auc", "integrated_brier", "calibration", "evaluate", "bootstrap_ci", "concordance_ci", "compare_models",
    "make_splits", "cross_validate", "CVResult", "risk_groups", "kaplan_meier", "logrank", "subgroup_concordance", "FoldWithoutEventsWarning",
]
