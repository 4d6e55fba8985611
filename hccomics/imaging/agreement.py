"""Agreement between readers, algorithms and corrections: ICC, Bland-Altman, mask edits, volume agreement.

Written by hand because none of the installed libraries (scipy, statsmodels, scikit-learn,
lifelines, MONAI) offers an intraclass correlation with its confidence interval; the formulas
are those of Shrout & Fleiss (1979) and McGraw & Wong (1996), checked in the tests against
their published examples.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd

from hccomics._options import check_option
from hccomics.errors import DataValidationError
from hccomics.imaging.metrics import _check_pair, _check_spacing, _check_volume, _dice, volume_ml

__all__ = ["bland_altman", "icc", "mask_agreement", "volume_agreement"]

logger = logging.getLogger(__name__)

ICCKind = Literal["ICC(1,1)", "ICC(2,1)", "ICC(3,1)"]
ICC_KINDS: tuple[str, ...] = ("ICC(1,1)", "ICC(2,1)", "ICC(3,1)")
#: z quantile of Bland & Altman's 95% limits of agreement, as they publish it
LOA_Z = 1.96


def _ratings_matrix(ratings: pd.DataFrame | np.ndarray) -> np.ndarray:
    if isinstance(ratings, pd.DataFrame):
        bad = [c for c in ratings.columns if not pd.api.types.is_numeric_dtype(ratings[c]) or pd.api.types.is_bool_dtype(ratings[c])]
        if bad:
            raise DataValidationError(f"ratings must be numeric, one column per rater; columns {bad} are not. "
                                      "Pass a wide table (targets as rows, raters as columns) of measurements only.")
    x = np.asarray(ratings, dtype=float)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 2:
        raise DataValidationError(f"ratings must be a 2D table of at least 2 targets (rows) x 2 raters (columns); got shape "
                                  f"{x.shape}. Pivot long data first: table.pivot(index='patient_id', columns='reader', values=...).")
    incomplete = np.flatnonzero(~np.isfinite(x).all(axis=1))
    if incomplete.size:
        raise DataValidationError(f"ratings has {incomplete.size} targets with missing or infinite values (rows "
                                  f"{incomplete[:10].tolist()}); the ICC needs every rater on every target. "
                                  "Drop incomplete targets first (ratings.dropna()).")
    return x


def icc(ratings: pd.DataFrame | np.ndarray, *, kind: ICCKind = "ICC(2,1)") -> dict:
    """Return the intraclass correlation of single ratings with its 95% confidence interval and F test.

    Parameters
    ----------
    ratings
        Targets (patients, lesions) as rows, raters (readers, algorithms) as columns, no missing values.
    kind
        Shrout & Fleiss (1979) form: ``"ICC(2,1)"`` two-way random effects, absolute agreement (raters are a sample
        of possible raters and systematic offsets count as disagreement); ``"ICC(3,1)"`` two-way mixed, consistency
        (offsets between raters ignored); ``"ICC(1,1)"`` one-way random effects.

    Returns
    -------
    dict
        ``icc``, ``ci95`` (lower, upper), ``F``, ``df1``, ``df2``, ``pvalue`` (of the F test of ICC = 0), ``n`` (targets),
        ``k`` (raters) and ``kind``. The ICC(2,1) interval uses the Satterthwaite degrees of freedom of McGraw &
        Wong (1996). Perfect agreement gives ICC 1 with the interval (1, 1).

    Examples
    --------
    >>> x = np.array([[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]])
    >>> round(icc(x)["icc"], 2), round(icc(x, kind="ICC(3,1)")["icc"], 2)
    (0.29, 0.71)
    """
    from scipy import stats

    check_option("kind", kind, ICC_KINDS)
    x = _ratings_matrix(ratings)
    n, k = x.shape
    grand, rows, cols = x.mean(), x.mean(axis=1), x.mean(axis=0)
    ms_rows = k * np.sum((rows - grand) ** 2) / (n - 1)
    ms_cols = n * np.sum((cols - grand) ** 2) / (k - 1)
    ms_within = np.sum((x - rows[:, None]) ** 2) / (n * (k - 1))
    ms_error = np.sum((x - rows[:, None] - cols[None, :] + grand) ** 2) / ((n - 1) * (k - 1))
    # rounding leaves ~1e-30 where raters agree exactly; treat that as exact, so that ICC and interval are exactly 1
    tiny = 1e-12 * max(ms_rows, ms_cols, np.finfo(float).tiny)
    ms_error, ms_within = (0.0 if v <= tiny else v for v in (ms_error, ms_within))
    df1 = n - 1
    noise = ms_within if kind == "ICC(1,1)" else ms_error
    df2 = n * (k - 1) if kind == "ICC(1,1)" else (n - 1) * (k - 1)
    denominator = ms_rows + (k - 1) * noise + (k * (ms_cols - ms_error) / n if kind == "ICC(2,1)" else 0.0)
    if denominator <= 0:
        raise DataValidationError("ratings are all identical, so the ICC is undefined (0/0): agreement cannot be told "
                                  "apart from the absence of variation. Report the agreement descriptively instead.")
    with np.errstate(divide="ignore", invalid="ignore"):
        F = ms_rows / noise if noise > 0 else np.inf
        value = (ms_rows - noise) / denominator
        if value >= 1.0:
            ci = (1.0, 1.0)
        elif kind == "ICC(2,1)":
            a = k * value / (n * (1 - value))
            b = 1 + k * value * (n - 1) / (n * (1 - value))
            v = (a * ms_cols + b * ms_error) ** 2 / ((a * ms_cols) ** 2 / (k - 1) + (b * ms_error) ** 2 / df2)
            f_lo, f_hi = stats.f.ppf(0.975, n - 1, v), stats.f.ppf(0.975, v, n - 1)
            spread = k * ms_cols + (k * n - k - n) * ms_error
            ci = (n * (ms_rows - f_lo * ms_error) / (f_lo * spread + n * ms_rows),
                  n * (f_hi * ms_rows - ms_error) / (spread + n * f_hi * ms_rows))
        else:
            f_lo, f_hi = F / stats.f.ppf(0.975, df1, df2), F * stats.f.ppf(0.975, df2, df1)
            ci = ((f_lo - 1) / (f_lo + k - 1), (f_hi - 1) / (f_hi + k - 1))
    return {"icc": float(value), "ci95": (float(ci[0]), float(ci[1])), "F": float(F), "df1": int(df1), "df2": int(df2),
            "pvalue": float(stats.f.sf(F, df1, df2)), "n": int(n), "k": int(k), "kind": kind}


def _paired(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()
    if x.shape != y.shape:
        raise DataValidationError(f"a and b must be paired measurements of equal length; got {x.size} and {y.size}.")
    bad = np.flatnonzero(~(np.isfinite(x) & np.isfinite(y)))
    if bad.size:
        raise DataValidationError(f"a and b hold {bad.size} pairs with missing or infinite values (positions "
                                  f"{bad[:10].tolist()}); drop incomplete pairs first.")
    if x.size < 2:
        raise DataValidationError(f"Bland-Altman needs at least 2 pairs; got {x.size}.")
    return x, y


def bland_altman(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> dict:
    """Return the Bland-Altman bias (mean of ``a - b``), its SD and the 95% limits of agreement.

    Parameters
    ----------
    a, b
        Paired measurements of the same targets by two methods, e.g. automatic and reference volumes in ml.

    Returns
    -------
    dict
        ``bias``, ``sd`` (of the differences, ddof=1), ``loa_lower`` and ``loa_upper`` (``bias -/+ 1.96 sd``), ``n``.

    Examples
    --------
    >>> bland_altman([10.0, 12.0, 14.0], [9.0, 12.0, 12.0])
    {'bias': 1.0, 'sd': 1.0, 'loa_lower': -0.96, 'loa_upper': 2.96, 'n': 3}
    """
    x, y = _paired(a, b)
    d = x - y
    bias, sd = float(d.mean()), float(d.std(ddof=1))
    return {"bias": bias, "sd": sd, "loa_lower": bias - LOA_Z * sd, "loa_upper": bias + LOA_Z * sd, "n": int(d.size)}


def mask_agreement(automatic: np.ndarray, corrected: np.ndarray, reference: np.ndarray | None = None, *,
                   spacing: Sequence[float], patient_id: str | None = None) -> dict:
    """Return how much a reader changed an automatic mask, and how each mask agrees with a reference.

    Parameters
    ----------
    automatic, corrected
        The algorithm's mask and the reader-corrected one, same 3D shape; every non-zero voxel is foreground.
    reference
        Optional independent reference mask (expert ground truth) of the same shape.
    spacing
        Voxel size in mm along the three axes.
    patient_id
        Copied into the result, so that results of several patients form a table (``pd.DataFrame(list_of_dicts)``).

    Returns
    -------
    dict
        ``patient_id``, ``voxels_added`` (in corrected, not automatic), ``voxels_removed``, ``voxels_changed``,
        ``fraction_changed`` (changed voxels over the union of both masks, i.e. 1 - Jaccard; 0 when both are empty),
        ``automatic_ml``, ``corrected_ml``, ``reference_ml``, ``dice_automatic_corrected``,
        ``dice_corrected_reference``, ``dice_automatic_reference``. Reference entries are NaN without a reference.
        Dice of two empty masks is 1.

    Examples
    --------
    >>> auto = np.zeros((4, 4, 4), dtype=bool); auto[:2] = True
    >>> fixed = auto.copy(); fixed[2] = True
    >>> r = mask_agreement(auto, fixed, spacing=(10.0, 10.0, 10.0))
    >>> r["voxels_added"], r["voxels_removed"], r["fraction_changed"], r["corrected_ml"]
    (16, 0, 0.3333333333333333, 48.0)
    """
    auto_v, corr_v = _check_pair(automatic, corrected, ("automatic", "corrected"))
    sp = _check_spacing(spacing, 3)
    auto_m, corr_m = auto_v != 0, corr_v != 0
    added, removed = int(np.count_nonzero(corr_m & ~auto_m)), int(np.count_nonzero(auto_m & ~corr_m))
    union = int(np.count_nonzero(auto_m | corr_m))
    out = {"patient_id": patient_id, "voxels_added": added, "voxels_removed": removed, "voxels_changed": added + removed,
           "fraction_changed": (added + removed) / union if union else 0.0,
           "automatic_ml": volume_ml(auto_m, sp), "corrected_ml": volume_ml(corr_m, sp), "reference_ml": float("nan"),
           "dice_automatic_corrected": _dice(auto_m, corr_m),
           "dice_corrected_reference": float("nan"), "dice_automatic_reference": float("nan")}
    if reference is not None:
        ref_v = _check_volume("reference", reference)
        if ref_v.shape != auto_m.shape:
            raise DataValidationError(f"reference must have the shape of the automatic mask {auto_m.shape}; got {ref_v.shape}. "
                                      "Resample it onto the same grid (nearest neighbour) first.")
        ref_m = ref_v != 0
        out |= {"reference_ml": volume_ml(ref_m, sp), "dice_corrected_reference": _dice(corr_m, ref_m),
                "dice_automatic_reference": _dice(auto_m, ref_m)}
    return out


def volume_agreement(table: pd.DataFrame, *,
                     columns: Sequence[str] = ("automatic_ml", "corrected_ml", "reference_ml")) -> pd.DataFrame:
    """Return ICC(2,1) and Bland-Altman agreement for every pair of the volume columns present in a table.

    Parameters
    ----------
    table
        One row per patient (or lesion), e.g. :func:`mask_agreement` results as a DataFrame.
    columns
        Candidate volume columns; those absent from ``table`` are skipped, at least two must be present. Each
        pair uses the rows where both of its columns are present (so a reference read on a subset still counts).

    Returns
    -------
    pandas.DataFrame
        One row per pair: ``a``, ``b``, ``n``, ``icc``, ``icc_ci_lower``, ``icc_ci_upper``, ``bias``, ``sd``,
        ``loa_lower``, ``loa_upper`` (``a - b``, in the columns' unit). Pairs with fewer than 2 complete rows get NaN.

    Examples
    --------
    >>> t = pd.DataFrame({"automatic_ml": [10.0, 20.0, 30.0], "reference_ml": [11.0, 19.0, 31.0]})
    >>> r = volume_agreement(t)
    >>> r[["a", "b", "n", "bias"]].to_dict("records")
    [{'a': 'automatic_ml', 'b': 'reference_ml', 'n': 3, 'bias': -0.3333333333333333}]
    """
    if not isinstance(table, pd.DataFrame):
        raise DataValidationError(f"table must be a DataFrame with volume columns; got {type(table).__name__}.")
    present = [c for c in columns if c in table.columns]
    if len(present) < 2:
        raise DataValidationError(f"volume_agreement needs at least two of the columns {list(columns)}; found {present} "
                                  f"among {list(table.columns)}. Pass columns=(...) naming your volume columns.")
    bad = [c for c in present if not pd.api.types.is_numeric_dtype(table[c]) or pd.api.types.is_bool_dtype(table[c])]
    if bad:
        raise DataValidationError(f"volume columns must be numeric; {bad} are not. Convert them with pd.to_numeric first.")
    rows = []
    for a, b in itertools.combinations(present, 2):
        pair = table[[a, b]].replace([np.inf, -np.inf], np.nan).dropna()
        row: dict = {"a": a, "b": b, "n": len(pair)}
        if len(pair) >= 2 and pair.to_numpy().std() > 0:
            agreement = icc(pair.to_numpy(), kind="ICC(2,1)")
            row |= {"icc": agreement["icc"], "icc_ci_lower": agreement["ci95"][0], "icc_ci_upper": agreement["ci95"][1]}
            row |= {key: value for key, value in bland_altman(pair[a], pair[b]).items() if key != "n"}
        else:
            logger.warning("volume agreement of %s and %s: %d complete rows without variation; reported as NaN", a, b, len(pair))
        rows.append(row)
    out_columns = ["a", "b", "n", "icc", "icc_ci_lower", "icc_ci_upper", "bias", "sd", "loa_lower", "loa_upper"]
    return pd.DataFrame(rows).reindex(columns=out_columns)
