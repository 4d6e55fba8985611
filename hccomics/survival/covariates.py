"""Prognostic covariate tables from the cohort's clinical data."""

from __future__ import annotations


import numpy as np
import pandas as pd

from hccomics._options import check_option
from hccomics.errors import DataValidationError

__all__ = ["ENDPOINTS", "CLINICAL_COVARIATES", "prognostic_table"]

ENDPOINTS = {"rfs": ("rfs_time_months", "rfs_event"), "os": ("os_time_months", "os_event")}
# transformed as clinicians read them: AFP and size on log scales, stages as ordered indices
CLINICAL_COVARIATES = ("age", "child_pugh_index", "bclc_index", "log10_afp", "log2_diameter", "multifocal", "mvi",
                       "edmondson_grade", "treatment")


def prognostic_table(clinical: pd.DataFrame, *, endpoint: str = "rfs", scores: pd.DataFrame | None = None,
                     complete_cases: bool = True) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """Duration, event and model-ready covariates per patient, with the covariate blocks.

    Parameters
    ----------
    clinical
        The cohort's clinical table (``mdata.obs`` or ``hccomics.io.read_clinical``).
    endpoint
        ``"rfs"`` or ``"os"``.
    scores
        Optional per-patient scores (e.g. signature scores of notebook 02) joined by patient ID and
        standardised to mean 0, SD 1 (hazard ratios are then per SD of the score).
    complete_cases
        Keep patients with every covariate and score, so that all models see the same patients.

    Returns
    -------
    (table, blocks)
        ``table`` has ``duration``, ``event`` and the covariates; ``blocks`` maps ``"clinical"``
        and ``"scores"`` to their columns.
    """
    check_option("endpoint", endpoint, tuple(ENDPOINTS))
    tcol, ecol = ENDPOINTS[endpoint]
    missing = [c for c in (tcol, ecol, "age", "child_pugh", "bclc_stage", "afp_ng_ml", "tumour_diameter_mm",
                           "lesion_count", "mvi", "edmondson_grade", "treatment") if c not in clinical.columns]
    if missing:
        raise DataValidationError(f"the clinical table lacks {missing}; prognostic_table expects the cohort schema")
    table = pd.DataFrame({
        "duration": pd.to_numeric(clinical[tcol]), "event": pd.to_numeric(clinical[ecol]).astype(int),
        "age": pd.to_numeric(clinical["age"]),
        "child_pugh_index": clinical["child_pugh"].astype(str).map({"A": 0, "B": 1, "C": 2}),
        "bclc_index": clinical["bclc_stage"].astype(str).map({"0": 0, "A": 1, "B": 2, "C": 3, "D": 4}),
        "log10_afp": np.log10(pd.to_numeric(clinical["afp_ng_ml"]).clip(lower=0.1)),
        "log2_diameter": np.log2(pd.to_numeric(clinical["tumour_diameter_mm"])),
        "multifocal": (pd.to_numeric(clinical["lesion_count"]) > 1).astype(float).where(clinical["lesion_count"].notna()),
        "mvi": pd.to_numeric(clinical["mvi"]).astype(float),
        "edmondson_grade": pd.to_numeric(clinical["edmondson_grade"]),
        "treatment": pd.Categorical(clinical["treatment"].astype("string").astype(object).where(clinical["treatment"].notna())),
    }, index=clinical.index)
    blocks = {"clinical": list(CLINICAL_COVARIATES), "scores": []}
    if scores is not None:
        z = (scores - scores.mean()) / scores.std(ddof=1).replace(0, np.nan)
        table = table.join(z, how="left")
        blocks["scores"] = list(scores.columns)
    if complete_cases:
        table = table.dropna()
    table["treatment"] = table["treatment"].cat.remove_unused_categories()
    return table, blocks
