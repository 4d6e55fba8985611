"""Turn the user's data (AnnData, MuData or a count table) into checked counts and metadata."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from hccomics.errors import DataValidationError, HccomicsWarning
from hccomics.io.checks import check_expression

__all__ = ["CountInput", "counts_and_metadata", "design_variables", "AllZeroGenesWarning"]

logger = logging.getLogger(__name__)


class AllZeroGenesWarning(HccomicsWarning):
    """Some genes have zero counts in every sample; their test results are NaN."""


@dataclass
class CountInput:
    """Counts (samples x genes, int64), per-sample metadata, and where to store results."""

    counts: pd.DataFrame
    metadata: pd.DataFrame
    target: Any  # the AnnData that receives results, or None for a bare table
    var: pd.DataFrame


def counts_and_metadata(data: Any, *, metadata: pd.DataFrame | None = None, layer: str = "counts",
                        modality: str = "rna") -> CountInput:
    """Extract counts and metadata; check the counts with the manifest validators.

    ``data`` may be a MuData (``data[modality]`` with metadata from ``data.obs``), an AnnData
    (``layers[layer]``, metadata from ``.obs``) or a samples x genes DataFrame with ``metadata``.
    """
    target, meta = None, None
    if type(data).__name__ == "MuData":
        if modality not in data.mod:
            raise DataValidationError(f"the MuData has no '{modality}' modality (has: {list(data.mod)})")
        meta = data.obs.loc[data[modality].obs_names]
        data = data[modality]
    if type(data).__name__ == "AnnData":
        target = data
        if layer not in data.layers:
            raise DataValidationError(
                f"AnnData has no layer '{layer}' (layers: {list(data.layers)}); raw integer counts belong in "
                f"layers['{layer}'] (load_cohort puts them there)"
            )
        x = data.layers[layer]
        x = x.toarray() if hasattr(x, "toarray") else np.asarray(x)
        counts = pd.DataFrame(x, index=data.obs_names.astype(str), columns=data.var_names.astype(str))
        meta = data.obs if meta is None else meta
        var = data.var.copy()
    elif isinstance(data, pd.DataFrame):
        if metadata is None:
            raise DataValidationError("a count table needs metadata=DataFrame (samples x design variables)")
        counts, var = data.copy(), pd.DataFrame(index=data.columns.astype(str))
        counts.index, counts.columns = counts.index.astype(str), counts.columns.astype(str)
    else:
        raise DataValidationError(f"expected a MuData, AnnData or samples x genes DataFrame, got {type(data).__name__}")
    if metadata is not None:
        meta = metadata

    problems = check_expression(counts, "counts", kind="counts", gene_id="auto")
    problems = [p for p in problems if "gene IDs mix" not in p]  # mixed identifiers do not stop a test
    if problems:
        raise DataValidationError("the count table cannot be tested", problems)
    meta = meta.copy()
    meta.index = meta.index.astype(str)
    if meta.index.duplicated().any():
        dup = sorted(set(meta.index[meta.index.duplicated()]))[:5]
        raise DataValidationError(f"duplicate sample IDs in the design table: {dup}; each sample must appear once")
    missing = counts.index.difference(meta.index)
    if len(missing):
        raise DataValidationError(
            f"{len(missing)} sample(s) of the count table are missing from the design table (first: {list(missing[:5])}); "
            "add their rows or drop them from the counts"
        )
    zero = counts.columns[(counts.to_numpy() == 0).all(axis=0)]
    if len(zero):
        warnings.warn(
            f"{len(zero)} gene(s) have zero counts in every sample (first: {list(zero[:5])}); their results are NaN. "
            "Filter them out beforehand to silence this.", AllZeroGenesWarning, stacklevel=3,
        )
    return CountInput(counts.astype(np.int64), meta.loc[counts.index], target, var)


def design_variables(design: str) -> list[str]:
    """Variables named by a Wilkinson formula such as ``"~ sex + recurrence_2y"``.

    Examples
    --------
    >>> design_variables("~ sex + recurrence_2y")
    ['recurrence_2y', 'sex']
    """
    from formulaic import Formula

    return sorted(str(v) for v in Formula(design).required_variables)
