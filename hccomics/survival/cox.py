"""Penalised Cox proportional hazards through lifelines."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from hccomics.survival.base import SurvivalModel

__all__ = ["CoxPH"]


class CoxPH(SurvivalModel):
    """Cox proportional hazards with an elastic-net penalty (``lifelines.CoxPHFitter``).

    Parameters
    ----------
    penalizer
        Penalty strength; a small value (default 0.1) keeps fits stable on small cohorts.
    l1_ratio
        Share of the L1 part of the penalty.

    Examples
    --------
    >>> from lifelines.datasets import load_rossi
    >>> model = CoxPH(penalizer=0.01).fit(load_rossi(), duration_col="week", event_col="arrest")
    >>> model.summary.loc["prio", "exp(coef)"].round(2)
    np.float64(1.09)
    """

    _param_names = ("penalizer", "l1_ratio")

    def __init__(self, *, penalizer: float = 0.1, l1_ratio: float = 0.0) -> None:
        self.penalizer = penalizer
        self.l1_ratio = l1_ratio

    def fit(self, df: pd.DataFrame, *, duration_col: str, event_col: str, covariates: Sequence[str] | None = None) -> "CoxPH":
        """Fit on a table with a duration column, an event column and covariates (default: all other columns)."""
        from lifelines import CoxPHFitter

        data = self._fit_data(df, duration_col, event_col, covariates)
        frame = data.X.assign(**{"__T": data.durations, "__E": data.events})
        self.lifelines_ = CoxPHFitter(penalizer=self.penalizer, l1_ratio=self.l1_ratio)
        self.lifelines_.fit(frame, duration_col="__T", event_col="__E")
        self.fitted_ = True
        return self

    @property
    def summary(self) -> pd.DataFrame:
        """Coefficients, hazard ratios, confidence intervals and p-values (lifelines' table)."""
        self._check_fitted()
        return self.lifelines_.summary

    def predict_risk(self, df: pd.DataFrame) -> np.ndarray:
        """Log partial hazard; higher means worse prognosis."""
        X = self._predict_X(df)
        return self.lifelines_.predict_log_partial_hazard(X).to_numpy()

    def predict_survival_function(self, df: pd.DataFrame, times: Sequence[float] | None = None) -> pd.DataFrame:
        """Survival probabilities (times x rows)."""
        X = self._predict_X(df)
        sf = self.lifelines_.predict_survival_function(X, times=times)
        sf.columns = df.index
        return sf
