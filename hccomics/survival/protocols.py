"""Evaluation protocols: repeated stratified k-fold with saved splits, risk groups, subgroups."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from hccomics._options import check_option
from hccomics.errors import DataValidationError, HccomicsWarning
from hccomics.survival.base import SurvivalModel
from hccomics.survival.metrics import evaluate

__all__ = ["make_splits", "cross_validate", "CVResult", "risk_groups", "kaplan_meier", "logrank", "subgroup_concordance",
           "FoldWithoutEventsWarning"]

logger = logging.getLogger(__name__)


class FoldWithoutEventsWarning(HccomicsWarning):
    """A test fold holds no event; its discrimination metrics are undefined and left out."""


def make_splits(df: pd.DataFrame, *, event_col: str, n_splits: int = 5, n_repeats: int = 1, seed: int = 0) -> pd.DataFrame:
    """Repeated k-fold splits stratified by event, as a table to save: ``sample``, ``repeat``, ``fold`` (test fold).

    Examples
    --------
    >>> df = pd.DataFrame({"E": [0, 1] * 10}, index=[f"p{i}" for i in range(20)])
    >>> s = make_splits(df, event_col="E", n_splits=5, n_repeats=2)
    >>> s.groupby(["repeat", "fold"]).size().unique().tolist()
    [4]
    """
    from sklearn.model_selection import RepeatedStratifiedKFold

    if event_col not in df.columns:
        raise DataValidationError(f"column '{event_col}' is missing (columns: {list(df.columns)[:15]})")
    events = df[event_col].to_numpy()
    if np.bincount(events.astype(int), minlength=2).min() < n_splits:
        raise DataValidationError(f"{n_splits}-fold splits need at least {n_splits} events and {n_splits} censored rows")
    rskf = RepeatedStratifiedKFold(n_splits=n_splits, n_repeats=n_repeats, random_state=seed)
    rows = []
    for k, (_, test) in enumerate(rskf.split(np.zeros(len(df)), events)):
        rows += [(df.index[i], k // n_splits, k % n_splits) for i in test]
    return pd.DataFrame(rows, columns=["sample", "repeat", "fold"])


@dataclass
class CVResult:
    """Cross-validation output: the splits, per-fold metrics and out-of-fold predictions."""

    splits: pd.DataFrame
    metrics: pd.DataFrame
    predictions: pd.DataFrame
    params: dict = field(default_factory=dict)

    def summary(self) -> pd.DataFrame:
        """Mean, SD and number of folds per metric, with the estimator."""
        g = self.metrics.groupby(["metric", "estimator"])["value"]
        return pd.DataFrame({"mean": g.mean(), "sd": g.std(ddof=1), "n_folds": g.count()}).reset_index("estimator")


def cross_validate(
    model: SurvivalModel,
    df: pd.DataFrame,
    *,
    duration_col: str,
    event_col: str,
    covariates: Sequence[str] | None = None,
    splits: pd.DataFrame | None = None,
    n_splits: int = 5,
    n_repeats: int = 1,
    horizon: float | None = None,
    survival_times: Sequence[float] = (),
    seed: int = 0,
    progress: bool = True,
) -> CVResult:
    """Fit a fresh copy of ``model`` per training fold; score its test fold.

    Everything learned from outcomes (the model, its baseline hazard) is fitted inside the training
    folds only. Pass ``splits`` (from :func:`make_splits`, or a saved table) to compare models on
    the same folds.

    Returns
    -------
    CVResult
        ``metrics`` (one row per repeat, fold and metric, with the estimator) and ``predictions``
        (out-of-fold risk per sample and repeat, and survival probability at each of
        ``survival_times`` as columns ``survival_T``).
    """
    from tqdm.auto import tqdm

    for col in (duration_col, event_col):
        if col not in df.columns:
            raise DataValidationError(f"column '{col}' is missing (columns: {list(df.columns)[:15]})")
    splits = splits if splits is not None else make_splits(df, event_col=event_col, n_splits=n_splits,
                                                           n_repeats=n_repeats, seed=seed)
    unknown = set(splits["sample"]) - set(df.index)
    if unknown:
        raise DataValidationError(f"{len(unknown)} split sample(s) are not rows of the table (first: {sorted(unknown)[:3]})")
    horizon = horizon if horizon is not None else float(np.median(df.loc[df[event_col] == 1, duration_col]))
    metric_rows, preds = [], []
    groups = list(splits.groupby(["repeat", "fold"]))
    for (rep, fold), test_rows in tqdm(groups, desc=f"CV {type(model).__name__}", disable=not progress):
        test_ids = test_rows["sample"].to_numpy()
        train = df.drop(index=test_ids)
        test = df.loc[test_ids]
        fitted = model.clone().fit(train, duration_col=duration_col, event_col=event_col, covariates=covariates)
        risk = fitted.predict_risk(test)
        pred = pd.DataFrame({"sample": test_ids, "repeat": rep, "fold": fold, "risk": risk})
        if survival_times:
            sf = fitted.predict_survival_function(test, times=list(survival_times))
            for t, row in zip(survival_times, sf.to_numpy()):
                pred[f"survival_{t:g}"] = row
        preds.append(pred)
        if test[event_col].sum() == 0:
            warnings.warn(f"test fold {fold} of repeat {rep} has no event; its metrics are left out. Use fewer "
                          "folds or stratified splits.", FoldWithoutEventsWarning, stacklevel=2)
            continue
        surv = fitted.predict_survival_function(test)
        tr = (train[duration_col].to_numpy(float), train[event_col].to_numpy(int))
        te = (test[duration_col].to_numpy(float), test[event_col].to_numpy(int))
        h = min(horizon, float(np.quantile(te[0], 0.9)), float(tr[0].max()) * 0.999)
        try:
            table = evaluate(tr, te, risk, surv, horizon=h)
        except ValueError as exc:  # e.g. IPCW undefined on a fold whose times all exceed the training follow-up
            logger.warning("fold %s/%s: %s", rep, fold, exc)
            continue
        metric_rows.append(table.reset_index().assign(repeat=rep, fold=fold))
    metrics = pd.concat(metric_rows, ignore_index=True) if metric_rows else pd.DataFrame(columns=["metric", "value", "estimator"])
    return CVResult(splits, metrics, pd.concat(preds, ignore_index=True),
                    {"model": repr(model), "horizon": horizon, "duration_col": duration_col, "event_col": event_col})


def risk_groups(risk: pd.Series, *, method: Literal["median", "threshold"] = "median", threshold: float = 0.5) -> pd.Series:
    """Split a risk score into 'low' and 'high' at its median or at a fixed threshold (e.g. 0.5 on a calibrated score).

    Examples
    --------
    >>> risk_groups(pd.Series([0.1, 0.9, 0.4, 0.7])).tolist()
    ['low', 'high', 'low', 'high']
    """
    check_option("method", method, ("median", "threshold"))
    cut = float(risk.median()) if method == "median" else threshold
    return pd.Series(np.where(risk > cut, "high", "low"), index=risk.index, name="risk_group")


def kaplan_meier(durations: pd.Series, events: pd.Series, groups: pd.Series, *, at_risk_times: Sequence[float] | None = None) -> dict:
    """Kaplan-Meier curves per group (lifelines) with numbers at risk, for plotting."""
    from lifelines import KaplanMeierFitter

    curves, at_risk = {}, {}
    ticks = np.asarray(at_risk_times if at_risk_times is not None else np.linspace(0, durations.max(), 6).round(0))
    for g in sorted(groups.dropna().unique()):
        m = (groups == g).to_numpy()
        km = KaplanMeierFitter().fit(durations[m], events[m], label=str(g))
        curves[str(g)] = km.survival_function_.iloc[:, 0]
        at_risk[str(g)] = [int((durations[m] >= t).sum()) for t in ticks]
    return {"curves": curves, "at_risk": pd.DataFrame(at_risk, index=ticks).T, "estimator": "lifelines KaplanMeierFitter"}


def logrank(durations: pd.Series, events: pd.Series, groups: pd.Series) -> dict:
    """Log-rank test across groups (lifelines ``multivariate_logrank_test``)."""
    from lifelines.statistics import multivariate_logrank_test

    res = multivariate_logrank_test(durations, groups, events)
    return {"statistic": float(res.test_statistic), "pvalue": float(res.p_value), "df": int(res.degrees_of_freedom),
            "estimator": "lifelines multivariate_logrank_test"}


def subgroup_concordance(risk: pd.Series, table: pd.DataFrame, *, by: str, duration_col: str = "duration",
                         event_col: str = "event", min_events: int = 3) -> pd.DataFrame:
    """Harrell's C of one risk score within each level of ``by`` (e.g. treatment), with sizes and events.

    Groups with fewer than ``min_events`` events get NaN rather than an unstable estimate.
    """
    from hccomics.survival.metrics import harrell_c

    rows = []
    for level, sub in table.loc[risk.index].groupby(by, observed=True):
        n_events = int(sub[event_col].sum())
        c = harrell_c(sub[duration_col], sub[event_col], risk.loc[sub.index]) if n_events >= min_events else np.nan
        rows.append({by: level, "n": len(sub), "events": n_events, "harrell_c": c})
    return pd.DataFrame(rows).set_index(by)
