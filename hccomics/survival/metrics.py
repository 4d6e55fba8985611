"""Survival metrics with the estimator named in every table.

Concordance, time-dependent AUC and Brier scores are scikit-survival's; Antolini's time-dependent
concordance and the calibration summary (ICI / E50, Austin et al. 2020) are written here because
neither lifelines nor scikit-survival provides them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from hccomics.errors import DataValidationError
from hccomics.survival._data import structured_y

__all__ = [
    "harrell_c", "uno_c", "antolini_c", "time_dependent_auc", "integrated_brier", "calibration",
    "evaluate", "bootstrap_ci", "concordance_ci", "compare_models",
]


def harrell_c(durations: np.ndarray, events: np.ndarray, risk: np.ndarray) -> float:
    """Harrell's C (``sksurv.metrics.concordance_index_censored``); risk: higher = worse.

    Examples
    --------
    >>> harrell_c(np.array([1.0, 2, 3, 4]), np.array([1, 1, 0, 1]), np.array([4.0, 3, 2, 1]))
    1.0
    """
    from sksurv.metrics import concordance_index_censored

    return float(concordance_index_censored(np.asarray(events, bool), np.asarray(durations, float), np.asarray(risk, float))[0])


def uno_c(train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray], risk: np.ndarray, *, tau: float) -> float:
    """Uno's IPCW C truncated at ``tau`` (``sksurv.metrics.concordance_index_ipcw``); censoring from ``train``."""
    from sksurv.metrics import concordance_index_ipcw

    return float(concordance_index_ipcw(structured_y(*train), structured_y(*test), np.asarray(risk, float), tau=tau)[0])


def antolini_c(durations: np.ndarray, events: np.ndarray, survival: pd.DataFrame) -> float:
    """Antolini's time-dependent concordance (Stat Med 2005) from predicted survival functions.

    A pair (i, j) is comparable when i has an event at t_i < t_j (or t_j = t_i and j is censored);
    it is concordant when S_i(t_i) < S_j(t_i); ties in predicted survival count one half.

    Parameters
    ----------
    survival
        Survival probabilities, times x subjects (same order as ``durations``); evaluated at each
        event time by step interpolation (last value carried forward).

    Examples
    --------
    >>> S = pd.DataFrame({"a": [0.9, 0.5, 0.2], "b": [0.95, 0.8, 0.6], "c": [0.99, 0.9, 0.7]}, index=[1.0, 2.0, 3.0])
    >>> antolini_c(np.array([1.0, 2.0, 3.0]), np.array([1, 1, 0]), S)
    1.0
    """
    t, e = np.asarray(durations, float), np.asarray(events, int)
    conc = pairs = 0.0
    for i in np.flatnonzero(e == 1):
        s = _at_times(survival, [t[i]])[0]
        comparable = (t > t[i]) | ((t == t[i]) & (e == 0))
        comparable[i] = False
        pairs += comparable.sum()
        conc += (s[i] < s[comparable]).sum() + 0.5 * (s[i] == s[comparable]).sum()
    if pairs == 0:
        raise DataValidationError("no comparable pairs: Antolini's C needs at least one event before another time")
    return float(conc / pairs)


def time_dependent_auc(train, test, risk: np.ndarray, *, times: Sequence[float]) -> pd.Series:
    """Cumulative/dynamic AUC at each time (``sksurv.metrics.cumulative_dynamic_auc``), with its mean in ``.attrs``."""
    from sksurv.metrics import cumulative_dynamic_auc

    auc, mean = cumulative_dynamic_auc(structured_y(*train), structured_y(*test), np.asarray(risk, float), np.asarray(times, float))
    out = pd.Series(auc, index=pd.Index(times, name="time"), name="auc")
    out.attrs["mean_auc"] = float(mean)
    return out


def integrated_brier(train, test, survival: pd.DataFrame, *, times: Sequence[float]) -> float:
    """Integrated Brier score over ``times`` (``sksurv.metrics.integrated_brier_score``); IPCW from ``train``."""
    from sksurv.metrics import integrated_brier_score

    probs = _at_times(survival, times)
    return float(integrated_brier_score(structured_y(*train), structured_y(*test), probs.T, np.asarray(times, float)))


def _at_times(survival: pd.DataFrame, times: Sequence[float]) -> np.ndarray:
    """Step interpolation (times x subjects): last value carried forward, S = 1 before the first time."""
    grid = np.asarray(survival.index, float)
    rows = np.searchsorted(grid, np.asarray(times, float), side="right") - 1
    probs = np.vstack([np.ones((1, survival.shape[1])), survival.to_numpy(float)])
    return probs[rows + 1]


def calibration(durations: np.ndarray, events: np.ndarray, survival: pd.DataFrame, *, horizon: float) -> dict:
    """Calibration at ``horizon``: ICI, E50 and E90 (Austin, Harrell & van Klaveren, Stat Med 2020).

    The observed risk is the prediction of a Cox model of the outcome on a restricted cubic spline
    (3 knots) of ``cloglog(predicted risk)``; ICI is the mean and E50/E90 the median and 90th
    percentile of ``|observed - predicted|``. Returns also the smoothed curve for plotting.
    """
    from lifelines import CoxPHFitter

    pred = 1.0 - _at_times(survival, [horizon])[0]
    pred = np.clip(pred, 1e-6, 1 - 1e-6)
    x = np.log(-np.log(1.0 - pred))
    knots = np.unique(np.quantile(x, [0.1, 0.5, 0.9]))
    frame = pd.DataFrame({"x": x, "T": durations, "E": events})
    if len(knots) == 3:  # too few distinct predictions for a spline: a linear calibration model instead
        frame["s1"] = _rcs(x, knots)
    covariates = [c for c in ("x", "s1") if c in frame]
    if np.ptp(x) == 0:
        observed = np.full_like(pred, 1.0 - _km_at(durations, events, horizon))
    else:
        cph = CoxPHFitter(penalizer=1e-4).fit(frame, duration_col="T", event_col="E")
        observed = 1.0 - cph.predict_survival_function(frame[covariates], times=[horizon]).to_numpy()[0]
    diff = np.abs(observed - pred)
    order = np.argsort(pred)
    return {"estimator": "Austin 2020 (Cox on RCS of cloglog risk)", "horizon": horizon, "ici": float(diff.mean()),
            "e50": float(np.median(diff)), "e90": float(np.quantile(diff, 0.9)),
            "curve": pd.DataFrame({"predicted": pred[order], "observed": observed[order]})}


def _km_at(durations: np.ndarray, events: np.ndarray, t: float) -> float:
    from lifelines import KaplanMeierFitter

    return float(KaplanMeierFitter().fit(durations, events).survival_function_at_times(t).iloc[0])


def _rcs(x: np.ndarray, knots: np.ndarray) -> np.ndarray:
    """The one non-linear term of a 3-knot restricted cubic spline (Harrell's parameterisation)."""
    k1, k2, k3 = knots
    pos = lambda v: np.clip(v, 0, None) ** 3  # noqa: E731
    return (pos(x - k1) - pos(x - k2) * (k3 - k1) / (k3 - k2) + pos(x - k3) * (k2 - k1) / (k3 - k2)) / (k3 - k1) ** 2


def evaluate(
    train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray], risk: np.ndarray,
    survival: pd.DataFrame | None = None, *, horizon: float, times: Sequence[float] | None = None,
) -> pd.DataFrame:
    """Every metric on one test set, one row each with the estimator used.

    Parameters
    ----------
    train, test
        ``(durations, events)``; the training set gives the censoring distribution for IPCW.
    risk
        Test risk scores (higher = worse).
    survival
        Test survival functions (times x subjects) for Antolini's C, Brier and calibration.
    horizon
        Truncation time of Uno's C and the calibration horizon.
    times
        Grid for the time-dependent AUC and the integrated Brier score (default: 10th-80th
        percentiles of the test event times).

    Returns
    -------
    pandas.DataFrame
        Indexed by metric: ``value``, ``estimator`` and ``ipcw_left_out`` (test subjects followed
        beyond the training follow-up, which IPCW cannot weight and which the IPCW metrics leave out).
    """
    dt, et = (np.asarray(a) for a in test)
    risk = np.asarray(risk, float)
    # IPCW needs the censoring distribution at every test time: test subjects followed beyond the
    # training follow-up are left out of the IPCW metrics (as scikit-survival advises)
    inside = dt < np.asarray(train[0]).max()
    ipcw_test = (dt[inside], et[inside])
    left_out = int((~inside).sum())
    if times is None:
        ev = ipcw_test[0][ipcw_test[1] == 1]
        times = np.unique(np.quantile(ev, np.linspace(0.1, 0.8, 8))) if len(ev) else [horizon]
    times = [t for t in times if ipcw_test[0].min() < t < ipcw_test[0].max()]
    rows = [{"metric": "harrell_c", "value": harrell_c(dt, et, risk), "estimator": "sksurv concordance_index_censored"},
            {"metric": f"uno_c@{horizon:g}", "value": uno_c(train, ipcw_test, risk[inside], tau=horizon),
             "estimator": "sksurv concordance_index_ipcw", "ipcw_left_out": left_out}]
    if times:
        auc = time_dependent_auc(train, ipcw_test, risk[inside], times=times)
        rows.append({"metric": "mean_td_auc", "value": auc.attrs["mean_auc"], "estimator": "sksurv cumulative_dynamic_auc",
                     "ipcw_left_out": left_out})
    if survival is not None:
        rows.append({"metric": "antolini_c", "value": antolini_c(dt, et, survival), "estimator": "Antolini 2005 (hccomics)"})
        if len(times) >= 2:
            rows.append({"metric": "integrated_brier", "value": integrated_brier(train, ipcw_test, survival.loc[:, inside],
                                                                                 times=times),
                         "estimator": "sksurv integrated_brier_score", "ipcw_left_out": left_out})
        cal = calibration(dt, et, survival, horizon=horizon)
        rows += [{"metric": f"ici@{horizon:g}", "value": cal["ici"], "estimator": cal["estimator"]},
                 {"metric": f"e50@{horizon:g}", "value": cal["e50"], "estimator": cal["estimator"]}]
    table = pd.DataFrame(rows).set_index("metric")
    table["ipcw_left_out"] = table.get("ipcw_left_out", pd.Series(dtype=float)).fillna(0).astype(int)
    return table


def bootstrap_ci(statistic: Callable[[np.ndarray], float], n: int, *, n_boot: int = 1000, level: float = 0.95,
                 seed: int = 0, batched: bool = False) -> dict:
    """Percentile bootstrap CI of ``statistic(indices)`` over ``n`` subjects resampled with replacement.

    A resample on which ``statistic`` raises ``ValueError`` (no comparable pairs, one class) is skipped. With
    ``batched``, ``statistic`` takes every resample at once, an ``(n_boot, n)`` index array, and returns one value
    per row, NaN for a resample to skip; the resamples are the same as one at a time.

    Examples
    --------
    >>> x = np.arange(10.0)
    >>> one = bootstrap_ci(lambda idx: x[idx].mean(), 10, n_boot=200)
    >>> rows = bootstrap_ci(lambda idx: x[idx].mean(axis=-1), 10, n_boot=200, batched=True)
    >>> one["low"] == rows["low"], one["high"] == rows["high"]
    (True, True)
    """
    rng = np.random.default_rng(seed)
    if batched:
        values = np.asarray(statistic(rng.integers(0, n, (n_boot, n))), dtype=float)
        stats = values[~np.isnan(values)]
        estimate = np.asarray(statistic(np.arange(n)[None, :]), dtype=float)[0]
    else:
        stats = []
        for _ in range(n_boot):
            idx = rng.integers(0, n, n)
            try:
                stats.append(statistic(idx))
            except (ValueError, ZeroDivisionError):  # a resample without comparable pairs: skip it
                continue
        estimate = statistic(np.arange(n))
    a = (1 - level) / 2
    return {"estimate": float(estimate), "low": float(np.quantile(stats, a)),
            "high": float(np.quantile(stats, 1 - a)), "n_boot": len(stats), "method": "percentile bootstrap"}


def concordance_ci(durations: np.ndarray, events: np.ndarray, risk: np.ndarray, *, n_boot: int = 1000,
                   level: float = 0.95, seed: int = 0) -> dict:
    """Harrell's C with a percentile bootstrap confidence interval.

    Examples
    --------
    >>> out = concordance_ci(np.arange(1.0, 9), np.ones(8), -np.arange(1.0, 9), n_boot=50)
    >>> out["estimate"], out["low"]
    (1.0, 1.0)
    """
    t, e, r = (np.asarray(v) for v in (durations, events, risk))
    out = bootstrap_ci(lambda idx: harrell_c(t[idx], e[idx], r[idx]), len(t), n_boot=n_boot, level=level, seed=seed)
    out["estimator"] = "Harrell's C (sksurv concordance_index_censored), percentile bootstrap"
    return out


def compare_models(durations: np.ndarray, events: np.ndarray, risk_a: np.ndarray, risk_b: np.ndarray, *,
                   n_boot: int = 1000, seed: int = 0) -> dict:
    """Paired bootstrap of Harrell's C difference (b - a) on the same subjects and predictions."""
    t, e, ra, rb = (np.asarray(v) for v in (durations, events, risk_a, risk_b))

    def delta(idx: np.ndarray) -> float:
        return harrell_c(t[idx], e[idx], rb[idx]) - harrell_c(t[idx], e[idx], ra[idx])

    out = bootstrap_ci(delta, len(t), n_boot=n_boot, seed=seed)
    out["estimator"] = "paired bootstrap of Harrell's C difference (sksurv concordance_index_censored)"
    out["c_a"], out["c_b"] = harrell_c(t, e, ra), harrell_c(t, e, rb)
    return out
