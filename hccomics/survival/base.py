"""Shared behaviour of the survival models (lifelines-style fit/predict)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from hccomics.errors import DataValidationError, NotFittedError
from hccomics.survival._data import SurvivalData, encode_covariates, encoded_sources, survival_data

__all__ = ["SurvivalModel"]


class SurvivalModel:
    """Base class: keeps constructor parameters, checks inputs, and guards predict-before-fit."""

    _param_names: tuple[str, ...] = ()

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters (used to clone the model for each fold)."""
        return {k: getattr(self, k) for k in self._param_names}

    def clone(self) -> "SurvivalModel":
        """An unfitted copy with the same parameters."""
        return type(self)(**self.get_params())

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    def _check_fitted(self) -> None:
        if not getattr(self, "fitted_", False):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit(df, duration_col=..., event_col=...) first")

    def _fit_data(self, df: pd.DataFrame, duration_col: str, event_col: str, covariates: Sequence[str] | None) -> SurvivalData:
        data = survival_data(df, duration_col=duration_col, event_col=event_col, covariates=covariates)
        self.covariates_ = list(covariates) if covariates is not None else [c for c in df.columns if c not in (duration_col, event_col)]
        self.columns_ = list(data.X.columns)
        self.sources_ = encoded_sources(df, self.covariates_)
        self.duration_col_, self.event_col_ = duration_col, event_col
        self.fitted_ = False  # set by the model once training has succeeded
        return data

    def _predict_X(self, df: pd.DataFrame) -> pd.DataFrame:
        self._check_fitted()
        X = encode_covariates(df, self.covariates_, columns=self.columns_)
        if X.isna().any().any():
            raise DataValidationError(f"covariates {list(X.columns[X.isna().any()])} contain NaN; impute them before predicting")
        return X

    def predict_risk(self, df: pd.DataFrame) -> np.ndarray:  # pragma: no cover - abstract
        """Risk score per row; higher means worse prognosis."""
        raise NotImplementedError

    def predict_survival_function(self, df: pd.DataFrame, times: Sequence[float] | None = None) -> pd.DataFrame:  # pragma: no cover
        """Survival probabilities, times x rows."""
        raise NotImplementedError
