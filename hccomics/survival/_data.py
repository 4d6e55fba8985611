"""Checked survival inputs: durations, events and an encoded covariate matrix."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from hccomics.errors import DataValidationError

__all__ = ["SurvivalData", "survival_data", "encode_covariates", "encoded_sources", "structured_y"]


@dataclass
class SurvivalData:
    """Covariates (encoded, float), durations and events of one data set."""

    X: pd.DataFrame
    durations: np.ndarray
    events: np.ndarray


def encode_covariates(df: pd.DataFrame, covariates: Sequence[str], *, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Numeric design matrix: categorical columns one-hot encoded (first level dropped).

    With ``columns`` (the columns seen at fit time), the result is aligned to them, so that a test
    fold lacking a category still gets every column.
    """
    missing = [c for c in covariates if c not in df.columns]
    if missing:
        raise DataValidationError(f"covariates {missing} are not columns of the table (columns: {list(df.columns)[:15]})")
    sub = df[list(covariates)]
    cats = [c for c in covariates if not pd.api.types.is_numeric_dtype(sub[c]) or isinstance(sub[c].dtype, pd.CategoricalDtype)]
    enc = pd.get_dummies(sub, columns=cats, drop_first=True, dtype=float) if cats else sub.astype(float)
    enc = enc.astype(float)
    if columns is not None:
        enc = enc.reindex(columns=list(columns), fill_value=0.0)
    return enc


def encoded_sources(df: pd.DataFrame, covariates: Sequence[str]) -> dict[str, str]:
    """Encoded column -> the covariate it came from (a categorical covariate gives several columns)."""
    return {col: c for c in covariates for col in encode_covariates(df, [c]).columns}


def survival_data(
    df: pd.DataFrame, *, duration_col: str, event_col: str, covariates: Sequence[str] | None = None,
    columns: Sequence[str] | None = None, check_constant: bool = True,
) -> SurvivalData:
    """Validate durations, events and covariates; raise one error listing every problem."""
    problems = []
    for col in (duration_col, event_col):
        if col not in df.columns:
            raise DataValidationError(f"column '{col}' is missing (columns: {list(df.columns)[:15]})")
    t = pd.to_numeric(df[duration_col], errors="coerce").to_numpy(dtype=float)
    e = pd.to_numeric(df[event_col], errors="coerce").to_numpy(dtype=float)
    if np.isnan(t).any():
        problems.append(f"{duration_col} is NaN for {int(np.isnan(t).sum())} row(s) (first: {df.index[np.isnan(t)][0]}); drop or impute them")
    if (t <= 0).any():
        problems.append(f"{duration_col} is zero or negative for {int((t <= 0).sum())} row(s) (first: {df.index[t <= 0][0]}); "
                        "durations must be positive times since baseline")
    bad = ~np.isin(e, [0, 1])
    if bad.any():
        problems.append(f"{event_col} must be 0 (censored) or 1 (event); {int(bad.sum())} other value(s) (first: {df.index[bad][0]})")
    elif e.sum() == 0:
        problems.append(f"{event_col} has no events among {len(e)} rows; a survival model needs at least one event")
    covariates = [c for c in df.columns if c not in (duration_col, event_col)] if covariates is None else list(covariates)
    X = encode_covariates(df, covariates, columns=columns)
    nan_cols = X.columns[X.isna().any()]
    if len(nan_cols):
        problems.append(f"covariates {list(nan_cols)} contain NaN; impute or drop those rows first")
    if check_constant and columns is None:
        const = X.columns[X.nunique(dropna=False) <= 1]
        if len(const):
            problems.append(f"covariates {list(const)} are constant; drop them (they carry no information and break the fit)")
    if problems:
        raise DataValidationError("the survival table cannot be used", problems)
    return SurvivalData(X, t, e.astype(int))


def structured_y(durations: np.ndarray, events: np.ndarray) -> np.ndarray:
    """scikit-survival's structured array (event: bool, time: float)."""
    y = np.empty(len(durations), dtype=[("event", bool), ("time", float)])
    y["event"], y["time"] = np.asarray(events, dtype=bool), np.asarray(durations, dtype=float)
    return y
