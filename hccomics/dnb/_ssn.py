"""Single-sample statistics against a reference stage, shared by sDNB and l-DNB.

Notation (Liu et al., Nucleic Acids Res 2016; Liu et al., PLoS Comput Biol 2017): the reference
holds ``n`` samples with feature means ``mu`` and centred cross-products
``S_ij = sum_r (x_ri - mu_i)(x_rj - mu_j)``. For a sample ``x`` with ``d = x - mu``:

* sED (the single-sample deviation, "sSD" in the brief): ``|x_i - mu_i|``;
* sPCC: ``PCC_{n+1}(i, j) - PCC_n(i, j)``, the change in Pearson correlation when the sample
  joins the reference. Adding one sample updates the cross-products exactly as
  ``S' = S + n / (n + 1) * d d'`` (Welford), so every pair is computed without refitting.

A reference sample is scored leave-one-out: against the other ``n - 1`` reference samples,
i.e. ``mu_(-s) = mu - d / (n - 1)``, ``S_(-s) = S - n / (n - 1) d d'``, and its sPCC is
``PCC_n - PCC_(n-1)``; so reference samples get scores on the same footing as the others
instead of the trivially small ones of a sample already inside its reference.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from hccomics._options import check_option
from hccomics.errors import DataValidationError

__all__ = ["Reference", "check_reference_stage", "delta_pcc", "matrix", "reference", "resolve_stages", "stage_summary"]

logger = logging.getLogger(__name__)
MIN_REFERENCE = 4


def resolve_stages(obs: pd.DataFrame, stage_key: str, stage_order: Sequence[str] | None,
                   uns: dict | None = None) -> list[str]:
    """Ordered stages of ``obs[stage_key]``.

    Order: ``stage_order`` if given (every stage in it must occur, and every stage that occurs must
    be in it), else the categories of a categorical column, else ``uns["stages"]`` (set by
    :func:`hccomics.io.load_progression`), else order of first appearance; stages that occur but
    are missing from an implicit order follow at the end.
    """
    if stage_key not in obs.columns:
        raise DataValidationError(f"obs has no column {stage_key!r} (columns: {list(obs.columns)[:10]}); pass "
                                  "stage_key= naming the column that holds each sample's stage")
    col = obs[stage_key]
    if col.isna().any():
        raise DataValidationError(f"{int(col.isna().sum())} sample(s) have no {stage_key!r}; drop them or fill in "
                                  "their stage")
    present = list(pd.unique(col.astype(str)))
    if stage_order is not None:
        order = [str(s) for s in stage_order]
        absent = [s for s in order if s not in present]
        if absent:
            raise DataValidationError(f"stage_order names stage(s) {absent} that no sample has (stages present: "
                                      f"{present}); fix the spelling or drop them from stage_order")
        extra = [s for s in present if s not in order]
        if extra:
            raise DataValidationError(f"stages {extra} of obs[{stage_key!r}] are not in stage_order={order}; add "
                                      "them to stage_order or drop those samples")
        stages = order
    else:
        if isinstance(col.dtype, pd.CategoricalDtype):
            order = [str(c) for c in col.cat.categories]
        elif uns is not None and "stages" in uns:
            order = [str(s) for s in uns["stages"]]
        else:
            order = present
        stages = [s for s in order if s in present] + [s for s in present if s not in order]
    if len(stages) < 2:
        raise DataValidationError(f"obs[{stage_key!r}] holds {len(stages)} stage(s); a progression needs at least 2")
    return stages


def matrix(adata, layer: str | None) -> np.ndarray:
    """Samples x features as a dense float64 array, checked for missing values."""
    if layer is not None and layer not in adata.layers:
        raise DataValidationError(f"no layer {layer!r} (layers: {list(adata.layers)}); pass layer=None to use .X")
    x = adata.X if layer is None else adata.layers[layer]
    x = np.asarray(x.toarray() if hasattr(x, "toarray") else x, dtype=float)
    if not np.isfinite(x).all():
        raise DataValidationError(f"the {'X' if layer is None else layer!r} matrix has {int((~np.isfinite(x)).sum())} "
                                  "missing or infinite values; impute or drop those features first")
    return x


@dataclass
class Reference:
    """Reference-stage moments and each sample's deviation ``d = x - mu`` from them."""

    stage: str
    n: int
    mean: np.ndarray          # features
    centred: np.ndarray       # reference samples x features
    deviation: np.ndarray     # all samples x features, x - mean
    is_reference: np.ndarray  # all samples, bool

    @property
    def sed(self) -> np.ndarray:
        """sED per sample and feature; reference samples against the other reference samples."""
        scale = np.where(self.is_reference, self.n / (self.n - 1), 1.0)
        return np.abs(self.deviation) * scale[:, None]

    def cross(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """Reference cross-products ``S_ij`` of the pairs ``(i[e], j[e])``."""
        return np.einsum("re,re->e", self.centred[:, i], self.centred[:, j])

    def coefficients(self) -> tuple[np.ndarray, np.ndarray]:
        """Per sample ``(a, b)``: base cross-products ``S + a d d'``, with the sample ``S + b d d'``."""
        n = self.n
        a = np.where(self.is_reference, -n / (n - 1), 0.0)
        b = np.where(self.is_reference, 0.0, n / (n + 1))
        return a, b


def reference(x: np.ndarray, is_reference: np.ndarray, stage: str, features: Sequence[str]) -> Reference:
    """Moments of the reference samples; refuses too few samples and constant features."""
    n = int(is_reference.sum())
    if n < MIN_REFERENCE:
        raise DataValidationError(f"the reference stage {stage!r} has {n} sample(s); single-sample scores need at "
                                  f"least {MIN_REFERENCE} (reference samples are scored leave-one-out); choose "
                                  "another reference_stage or add samples")
    ref = x[is_reference]
    mean = ref.mean(axis=0)
    centred = ref - mean
    flat = [features[k] for k in np.flatnonzero(np.ptp(ref, axis=0) == 0)]
    if flat:
        raise DataValidationError(f"{len(flat)} feature(s) are constant in the reference stage {stage!r} "
                                  f"(first: {flat[:5]}); their correlations are undefined: drop them first")
    return Reference(stage, n, mean, centred, x - mean, is_reference)


def delta_pcc(ref: Reference, i: np.ndarray, j: np.ndarray, samples: np.ndarray | slice = slice(None),
              *, with_base: bool = False):
    """sPCC of the feature pairs ``(i[e], j[e])`` for the chosen samples: samples x pairs.

    With ``with_base`` also returns the base correlation (``PCC_n``, or ``PCC_(n-1)`` for a
    reference sample), which the single-sample-network z-test needs.
    """
    i, j = np.asarray(i, dtype=np.intp), np.asarray(j, dtype=np.intp)
    var = np.einsum("rk,rk->k", ref.centred, ref.centred)
    s_ij, s_ii, s_jj = ref.cross(i, j), var[i], var[j]
    d = ref.deviation[samples]
    a, b = (c[samples][:, None] for c in ref.coefficients())
    di, dj = d[:, i], d[:, j]
    dd = di * dj
    base = (s_ij + a * dd) / np.sqrt((s_ii + a * di**2) * (s_jj + a * dj**2))
    new = (s_ij + b * dd) / np.sqrt((s_ii + b * di**2) * (s_jj + b * dj**2))
    return (new - base, base) if with_base else new - base


def stage_summary(scores: pd.Series, stages: pd.Series, order: list[str], reference_stage: str) -> dict:
    """Mean, SD and count of a per-sample score per stage, and the stage with the highest mean.

    The reference stage is reported but not eligible as the critical stage.
    """
    table = scores.groupby(stages.astype(str), observed=True).agg(["mean", "std", "count"]).reindex(order)
    eligible = table.drop(index=reference_stage)["mean"]
    critical = None if eligible.isna().all() else str(eligible.idxmax())
    return {"stage_mean": {k: float(v) for k, v in table["mean"].items()},
            "stage_sd": {k: float(v) for k, v in table["std"].fillna(0.0).items()},
            "stage_n": {k: int(v) for k, v in table["count"].items()},
            "critical_stage": critical}


def check_reference_stage(stages: list[str], reference_stage: str | None) -> str:
    """The reference stage: the first stage by default, else one of ``stages``."""
    if reference_stage is None:
        return stages[0]
    return check_option("reference_stage", str(reference_stage), stages)
