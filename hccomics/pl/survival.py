"""Figures of survival analyses (computed results in, Figure out)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

__all__ = ["km_plot", "calibration_plot", "td_auc_plot", "forest_plot", "nomogram_plot", "model_comparison"]

_COLOURS = ["#2b8cbe", "#e34a33", "#31a354", "#756bb1", "#636363", "#fd8d3c"]


def km_plot(km: dict, *, test: dict | None = None, time_label: str = "months", title: str = "Kaplan-Meier") -> go.Figure:
    """Kaplan-Meier curves with numbers at risk below (from ``survival.kaplan_meier``) and an optional log-rank result."""
    fig = make_subplots(rows=2, cols=1, row_heights=[0.78, 0.22], shared_xaxes=True, vertical_spacing=0.04)
    for i, (group, curve) in enumerate(km["curves"].items()):
        colour = _COLOURS[i % len(_COLOURS)]
        fig.add_trace(go.Scatter(x=curve.index, y=curve.to_numpy(), mode="lines", line_shape="hv", name=str(group),
                                 line=dict(color=colour)), row=1, col=1)
        at_risk = km["at_risk"].loc[group]
        fig.add_trace(go.Scatter(x=at_risk.index, y=[str(group)] * len(at_risk), mode="text", text=at_risk.astype(str),
                                 textfont=dict(color=colour), showlegend=False), row=2, col=1)
    suffix = f" (log-rank p = {test['pvalue']:.2g})" if test else ""
    fig.update_yaxes(title_text="survival probability", range=[0, 1.02], row=1, col=1)
    fig.update_yaxes(title_text="at risk", row=2, col=1)
    fig.update_xaxes(title_text=time_label, row=2, col=1)
    fig.update_layout(title=title + suffix, legend_title_text="group", height=520)
    return fig


def calibration_plot(curves: dict[str, dict], *, title: str | None = None) -> go.Figure:
    """Observed against predicted event probability at a horizon (from ``survival.calibration``), per model."""
    fig = go.Figure(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dash", color="grey"), name="ideal"))
    horizon = None
    for i, (name, cal) in enumerate(curves.items()):
        c = cal["curve"]
        horizon = cal["horizon"]
        fig.add_trace(go.Scatter(x=c["predicted"], y=c["observed"], mode="lines", name=f"{name} (ICI {cal['ici']:.3f})",
                                 line=dict(color=_COLOURS[i % len(_COLOURS)])))
    fig.update_layout(title=title or f"Calibration at {horizon:g}", xaxis_title="predicted event probability",
                      yaxis_title="observed (smoothed)", xaxis_range=[0, 1], yaxis_range=[0, 1])
    return fig


def td_auc_plot(aucs: dict[str, pd.Series], *, time_label: str = "months") -> go.Figure:
    """Time-dependent AUC curves, one per model (from ``survival.time_dependent_auc``)."""
    fig = go.Figure()
    for i, (name, auc) in enumerate(aucs.items()):
        fig.add_trace(go.Scatter(x=auc.index, y=auc.to_numpy(), mode="lines+markers", name=f"{name} (mean {auc.attrs.get('mean_auc', np.nan):.3f})",
                                 line=dict(color=_COLOURS[i % len(_COLOURS)])))
    fig.add_hline(y=0.5, line_dash="dot", line_color="grey")
    fig.update_layout(title="Time-dependent AUC (cumulative/dynamic)", xaxis_title=time_label, yaxis_title="AUC")
    return fig


def forest_plot(summary: pd.DataFrame, *, title: str = "Hazard ratios (95% CI)") -> go.Figure:
    """Hazard ratios with confidence intervals from a Cox ``summary`` (lifelines columns)."""
    s = summary.iloc[::-1]
    hr, lo, hi = s["exp(coef)"], s["exp(coef) lower 95%"], s["exp(coef) upper 95%"]
    fig = go.Figure(go.Scatter(x=hr, y=list(s.index), mode="markers", marker=dict(size=9, color="#2b8cbe"),
                               error_x=dict(type="data", symmetric=False, array=hi - hr, arrayminus=hr - lo),
                               customdata=np.c_[s["p"]], hovertemplate="%{y}: HR %{x:.2f}, p=%{customdata[0]:.2g}<extra></extra>"))
    fig.add_vline(x=1, line_dash="dash", line_color="grey")
    ticks = [v for v in (0.1, 0.25, 0.5, 1, 2, 4, 10) if lo.min() / 1.5 <= v <= hi.max() * 1.5]
    fig.update_layout(title=title, xaxis=dict(type="log", tickvals=ticks, ticktext=[f"{v:g}" for v in ticks]),
                      xaxis_title="hazard ratio", height=max(350, 30 * len(s) + 150), margin=dict(l=200))
    return fig


def nomogram_plot(scales: dict, *, title: str = "Nomogram") -> go.Figure:
    """Draw a nomogram from ``Nomogram.scales()``: a points ruler, one axis per covariate, total points and survival."""
    fig = go.Figure()
    rows = list(scales["covariates"].items())
    y = 0
    max_pts = max(float(df_["points"].max()) for _, df_ in rows)
    ruler = np.linspace(0, max_pts, 11)
    labels = [("Points", ruler, [f"{v:.0f}" for v in ruler])]
    for name, axis in rows:
        labels.append((name, axis["points"].to_numpy(), [f"{v:.3g}" for v in axis["value"]]))
    surv = scales["survival"]
    total = surv.index.to_numpy()
    scale = max_pts / total.max() if total.max() > 0 else 1.0
    labels.append(("Total points", total * scale, [f"{v:.0f}" for v in total]))
    for t in surv.columns:
        labels.append((f"S({t})", total * scale, [f"{v:.2f}" for v in surv[t]]))
    min_gap = 0.04 * max_pts  # thin tick labels that would overlap
    for name, xs, texts in labels:
        y -= 1
        keep, last = [], -np.inf
        for x, t in zip(xs, texts):
            keep.append(t if abs(x - last) >= min_gap else "")
            last = x if keep[-1] else last
        texts = keep
        fig.add_trace(go.Scatter(x=[min(xs), max(xs)], y=[y, y], mode="lines", line=dict(color="black", width=1), showlegend=False,
                                 hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=xs, y=[y] * len(xs), mode="markers+text", text=texts, textposition="top center",
                                 marker=dict(symbol="line-ns", size=10, line=dict(width=1)), showlegend=False, hoverinfo="skip",
                                 textfont=dict(size=10)))
        fig.add_annotation(x=0, y=y, xref="paper", text=name, showarrow=False, xanchor="right", xshift=-10)
    fig.update_layout(title=title, xaxis=dict(visible=False), yaxis=dict(visible=False), height=60 * len(labels) + 120,
                      margin=dict(l=200), plot_bgcolor="white")
    return fig


def model_comparison(summaries: dict[str, pd.DataFrame], *, metric: str = "harrell_c") -> go.Figure:
    """Mean and SD of one metric over folds, per model (from ``CVResult.summary()``)."""
    names = list(summaries)
    means = [summaries[n].at[metric, "mean"] for n in names]
    sds = [summaries[n].at[metric, "sd"] for n in names]
    est = summaries[names[0]].at[metric, "estimator"]
    fig = go.Figure(go.Bar(x=names, y=means, error_y=dict(type="data", array=sds), marker_color="#2b8cbe",
                           text=[f"{m:.3f}" for m in means], textposition="outside"))
    fig.update_layout(title=f"{metric} over cross-validation folds ({est})", yaxis_title=metric,
                      yaxis_range=[min(0.5, min(means) - 0.05), min(1.0, max(means) + 0.08)])
    return fig
