"""A Cox nomogram: points per covariate, total points, predicted survival at chosen times."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from hccomics.survival.cox import CoxPH

__all__ = ["Nomogram"]


class Nomogram:
    """Points-based reading of a penalised Cox model (e.g. an out-of-fold deep score plus clinical variables).

    Each encoded covariate gets an axis from 0 points (its least harmful observed value) upward; the
    covariate with the widest effect spans ``max_points``. Total points map to the linear predictor
    and so to ``S(t | x) = S0(t) ** exp(lp)`` at each of ``times``.

    Parameters
    ----------
    times
        Horizons for predicted survival (same unit as the durations, e.g. 12, 36, 60 months).
    penalizer
        Passed to :class:`~hccomics.survival.CoxPH`.
    max_points
        Length of the widest covariate axis.
    """

    def __init__(self, *, times: Sequence[float] = (12, 36, 60), penalizer: float = 0.01, max_points: float = 100.0) -> None:
        self.times, self.penalizer, self.max_points = tuple(times), penalizer, max_points

    def fit(self, df: pd.DataFrame, *, duration_col: str, event_col: str, covariates: Sequence[str]) -> "Nomogram":
        """Fit the Cox model and derive the point scales."""
        self.cox_ = CoxPH(penalizer=self.penalizer).fit(df, duration_col=duration_col, event_col=event_col, covariates=covariates)
        X = self.cox_._predict_X(df)
        beta = self.cox_.lifelines_.params_.reindex(X.columns).to_numpy()
        lo, hi = X.min().to_numpy(), X.max().to_numpy()
        self.reference_ = np.where(beta >= 0, lo, hi)  # value with the smallest contribution
        spans = np.abs(beta) * (hi - lo)
        self.points_per_unit_ = self.max_points / spans.max() if spans.max() > 0 else 0.0
        self.beta_, self.lo_, self.hi_, self.mean_ = beta, lo, hi, X.mean().to_numpy()
        self.baseline_ = self.cox_.lifelines_.baseline_survival_  # at the covariate means
        return self

    def points(self, df: pd.DataFrame) -> pd.DataFrame:
        """Points per covariate and in total, and predicted survival at ``times``, per row."""
        X = self.cox_._predict_X(df).to_numpy()
        pts = self.points_per_unit_ * self.beta_ * (X - self.reference_)
        out = pd.DataFrame(pts, index=df.index, columns=self.cox_.columns_)
        out["total_points"] = out.sum(axis=1)
        lp = self._lp_from_total(out["total_points"].to_numpy())
        for t in self.times:
            out[f"survival_{t:g}"] = self._survival(t) ** np.exp(lp)
        return out

    def _lp_from_total(self, total: np.ndarray) -> np.ndarray:
        return total / self.points_per_unit_ + float(self.beta_ @ (self.reference_ - self.mean_))

    def _survival(self, t: float) -> float:
        s = self.baseline_.iloc[:, 0]
        return float(s[s.index <= t].iloc[-1]) if (s.index <= t).any() else 1.0

    def scales(self, n_ticks: int = 5) -> dict:
        """Axes to draw: per covariate (value, points) ticks; total points against survival at each time."""
        axes = {}
        for j, name in enumerate(self.cox_.columns_):
            binary = set(np.unique([self.lo_[j], self.hi_[j]])) <= {0.0, 1.0} and self.hi_[j] - self.lo_[j] == 1
            values = np.array([0.0, 1.0]) if binary else np.linspace(self.lo_[j], self.hi_[j], n_ticks)
            axes[name] = pd.DataFrame({"value": values,
                                       "points": self.points_per_unit_ * self.beta_[j] * (values - self.reference_[j])})
        max_total = float(sum(df_["points"].max() for df_ in axes.values()))
        total = np.linspace(0, max_total, 11)
        lp = self._lp_from_total(total)
        surv = pd.DataFrame({f"{t:g}": self._survival(t) ** np.exp(lp) for t in self.times}, index=total)
        surv.index.name = "total_points"
        return {"covariates": axes, "survival": surv, "times": self.times}
