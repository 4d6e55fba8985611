"""Views of a DNB module for figures: values across stages and correlation networks per stage."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from hccomics.dnb import _ssn
from hccomics.errors import DataValidationError

__all__ = ["module_values", "module_correlations_by_stage"]


def _module_columns(adata: Any, module: Sequence[str]) -> list[str]:
    missing = [f for f in module if f not in adata.var_names]
    if missing:
        raise DataValidationError(f"module features {missing[:5]} are not in adata.var_names; pass the module found "
                                  "on this data (e.g. CriticalStateResult.module)")
    return list(module)


def module_values(adata: Any, module: Sequence[str], *, stage_key: str = "stage", stage_order: Sequence[str] | None = None,
                  reference_stage: str | None = None, layer: str | None = None) -> tuple[pd.DataFrame, pd.Series]:
    """Module features x samples, z-scored against the reference stage, samples in stage order.

    Returns
    -------
    values, stages
        The matrix (features x samples) and each sample's stage, ready for
        :func:`hccomics.pl.dnb_module_heatmap`.

    Examples
    --------
    >>> import anndata as ad
    >>> a = ad.AnnData(np.arange(12.0).reshape(6, 2) ** 1.5, obs=pd.DataFrame({"stage": list("aabbcc")}))
    >>> values, stages = module_values(a, ["0", "1"])
    >>> values.shape, list(stages)
    ((2, 6), ['a', 'a', 'b', 'b', 'c', 'c'])
    """
    cols = _module_columns(adata, module)
    order = _ssn.resolve_stages(adata.obs, stage_key, stage_order, adata.uns)
    ref = reference_stage or order[0]
    if ref not in order:
        raise DataValidationError(f"reference_stage {ref!r} is not a stage of obs[{stage_key!r}] ({order})")
    sub = adata[:, cols]
    x = pd.DataFrame(_ssn.matrix(sub, layer), index=adata.obs_names, columns=cols)
    stages = adata.obs[stage_key].astype(str)
    base = x[stages == ref]
    sd = base.std(ddof=1).replace(0.0, np.nan)
    z = (x - base.mean()) / sd
    ordered = stages.map({s: i for i, s in enumerate(order)}).sort_values(kind="stable").index
    return z.loc[ordered].T, stages.loc[ordered]


def module_correlations_by_stage(adata: Any, module: Sequence[str], stages: Sequence[str], *, stage_key: str = "stage",
                                 layer: str | None = None) -> dict[str, pd.DataFrame]:
    """Pearson correlations among the module's features within each of ``stages``."""
    cols = _module_columns(adata, module)
    x = pd.DataFrame(_ssn.matrix(adata[:, cols], layer), index=adata.obs_names, columns=cols)
    labels = adata.obs[stage_key].astype(str)
    out = {}
    for s in stages:
        part = x[labels == str(s)]
        if len(part) < 3:
            raise DataValidationError(f"stage {s!r} has {len(part)} sample(s); correlations need at least 3")
        out[str(s)] = part.corr()
    return out
