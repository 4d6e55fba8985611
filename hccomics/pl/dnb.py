"""Figures of dynamic network biomarker results (from :mod:`hccomics.dnb`)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

__all__ = ["dnb_scores", "dnb_module_heatmap", "dnb_module_network", "dnb_sample_scores", "dnb_landscape"]

_CRITICAL = "#e34a33"


def dnb_scores(scores: pd.DataFrame, *, trajectory: pd.DataFrame | None = None, column: str = "index",
               title: str | None = None) -> go.Figure:
    """The best module's composite index per stage, with the permutation band (5-95%) and median.

    Parameters
    ----------
    scores
        ``CriticalStateResult.scores``: one row per stage (index), with ``column``, ``null_q05``,
        ``null_q50``, ``null_q95`` and a boolean ``critical``.
    trajectory
        ``CriticalStateResult.trajectory``: the critical module's index in every stage (drawn dashed).
    column
        Which index to draw.

    Examples
    --------
    >>> s = pd.DataFrame({"index": [1.0, 3.0, 1.2], "null_q05": [0.8] * 3, "null_q50": [1.0] * 3,
    ...                   "null_q95": [1.5] * 3, "critical": [False, True, False]}, index=["a", "b", "c"])
    >>> len(dnb_scores(s).data)
    4
    """
    stages = [str(s) for s in scores.index]
    fig = go.Figure()
    if {"null_q05", "null_q95"} <= set(scores.columns) and scores["null_q95"].notna().any():
        fig.add_trace(go.Scatter(x=stages + stages[::-1], y=list(scores["null_q95"]) + list(scores["null_q05"])[::-1],
                                 fill="toself", fillcolor="rgba(150,150,150,0.25)", line=dict(width=0), mode="lines",
                                 name="permutation 5-95%", hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=stages, y=scores["null_q50"], mode="lines", line=dict(color="grey", dash="dot"),
                                 name="permutation median"))
    fig.add_trace(go.Scatter(x=stages, y=scores[column], mode="lines+markers", name="best module per stage",
                             line=dict(color="#2b8cbe", width=3), marker=dict(size=9)))
    crit = scores.index[scores["critical"].astype(bool)] if "critical" in scores else []
    if len(crit):
        fig.add_trace(go.Scatter(x=[str(crit[0])], y=[scores.loc[crit[0], column]], mode="markers",
                                 marker=dict(size=18, color=_CRITICAL, symbol="star"), name=f"critical: {crit[0]}"))
    if trajectory is not None:
        fig.add_trace(go.Scatter(x=[str(s) for s in trajectory.index], y=trajectory[column], mode="lines+markers",
                                 line=dict(color=_CRITICAL, dash="dash"), name="critical module in every stage"))
    fig.update_layout(title=title or "Composite index SD_in x PCC_in / PCC_out per stage", xaxis_title="stage",
                      yaxis_title=column, legend=dict(orientation="h", y=-0.25))
    return fig


def dnb_module_heatmap(values: pd.DataFrame, stages: pd.Series, *, title: str = "DNB module across stages") -> go.Figure:
    """Heatmap of module features (rows) x samples (columns, grouped by stage), e.g. z-scores.

    Parameters
    ----------
    values
        Features x samples, samples already in stage order.
    stages
        Stage of each sample (indexed like ``values.columns``).
    """
    stage_of = stages.reindex(values.columns).astype(str)
    fig = go.Figure(go.Heatmap(z=values.to_numpy(), x=list(values.columns), y=list(values.index), colorscale="RdBu_r",
                               zmid=0, colorbar=dict(title="z"),
                               customdata=np.tile(stage_of.to_numpy(), (values.shape[0], 1)),
                               hovertemplate="%{y}<br>%{x} (%{customdata})<br>%{z:.2f}<extra></extra>"))
    # a tick per stage at its first sample, and separators between stages
    starts = np.flatnonzero(np.r_[True, stage_of.to_numpy()[1:] != stage_of.to_numpy()[:-1]])
    for s in starts[1:]:
        fig.add_vline(x=s - 0.5, line=dict(color="black", width=1))
    fig.update_xaxes(tickvals=[values.columns[i] for i in starts], ticktext=[stage_of.iloc[i] for i in starts], tickangle=30)
    fig.update_layout(title=title, height=max(350, 14 * values.shape[0] + 150))
    return fig


def _circle(n: int) -> tuple[np.ndarray, np.ndarray]:
    angle = 2 * np.pi * np.arange(n) / max(n, 1)
    return np.cos(angle), np.sin(angle)


def dnb_module_network(correlations: dict[str, pd.DataFrame], *, threshold: float = 0.5,
                       title: str = "Module correlation network") -> go.Figure:
    """The module's features on a circle, one panel per stage, with edges where |r| >= ``threshold``.

    Parameters
    ----------
    correlations
        Stage name -> features x features correlation matrix of the module in that stage.
    threshold
        Edges drawn from this |r|; width and opacity grow with |r|, red positive, blue negative.
    """
    names = list(correlations)
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=names, horizontal_spacing=0.04)
    for c, stage in enumerate(names, start=1):
        r = correlations[stage]
        x, y = _circle(r.shape[0])
        iu, ju = np.triu_indices(r.shape[0], 1)
        vals = r.to_numpy()[iu, ju]
        keep = np.abs(vals) >= threshold
        for i, j, v in zip(iu[keep], ju[keep], vals[keep]):
            fig.add_trace(go.Scatter(x=[x[i], x[j]], y=[y[i], y[j]], mode="lines", hoverinfo="skip", showlegend=False,
                                     line=dict(width=0.5 + 3 * abs(v), color="#e34a33" if v > 0 else "#3182bd"),
                                     opacity=float(min(1.0, abs(v)))), row=1, col=c)
        fig.add_trace(go.Scatter(x=x, y=y, mode="markers+text", text=list(r.index), textposition="top center",
                                 textfont=dict(size=8), marker=dict(size=8, color="#333"), showlegend=False,
                                 hovertext=list(r.index), hoverinfo="text"), row=1, col=c)
        fig.update_xaxes(visible=False, row=1, col=c)
        fig.update_yaxes(visible=False, scaleanchor=f"x{c if c > 1 else ''}", row=1, col=c)
        fig.layout.annotations[c - 1].text = f"{stage}: {int(keep.sum())} edges with |r| >= {threshold}"
    fig.update_layout(title=title, height=480)
    return fig


def dnb_sample_scores(obs: pd.DataFrame, key: str, *, stage_key: str = "stage", stage_order: list[str] | None = None,
                      title: str | None = None) -> go.Figure:
    """Per-sample single-sample score (sDNB / l-DNB) by stage: box with the samples on top."""
    col = obs[stage_key]
    if stage_order is not None:
        order = [str(s) for s in stage_order]
    elif isinstance(col.dtype, pd.CategoricalDtype):  # an ordered stage column keeps its order
        order = [str(s) for s in col.cat.categories if (col == s).any()]
    else:
        order = [str(s) for s in pd.unique(col)]
    fig = go.Figure()
    for stage in order:
        v = obs.loc[obs[stage_key].astype(str) == stage, key]
        fig.add_trace(go.Box(y=v, name=stage, boxpoints="all", jitter=0.4, pointpos=0, marker=dict(size=5),
                             hovertext=list(v.index), showlegend=False))
    fig.update_layout(title=title or f"Single-sample score '{key}' per sample", xaxis_title="stage", yaxis_title=key)
    return fig


def dnb_landscape(landscape: pd.DataFrame, stages: pd.Series, *, zmax: float | None = None,
                  title: str = "Landscape DNB: local scores per sample") -> go.Figure:
    """Heatmap of local DNB scores: samples (rows, by stage) x features (columns).

    ``zmax`` caps the colour scale (e.g. a high percentile), so that a few extreme local scores
    do not flatten the rest; values above it show in the top colour.
    """
    stage_of = stages.reindex(landscape.index).astype(str)
    fig = go.Figure(go.Heatmap(z=landscape.to_numpy(), x=list(landscape.columns), y=list(landscape.index),
                               colorscale="Viridis", colorbar=dict(title="local score"), zmin=0, zmax=zmax,
                               customdata=np.tile(stage_of.to_numpy()[:, None], (1, landscape.shape[1])),
                               hovertemplate="%{y} (%{customdata})<br>%{x}: %{z:.2f}<extra></extra>"))
    starts = np.flatnonzero(np.r_[True, stage_of.to_numpy()[1:] != stage_of.to_numpy()[:-1]])
    fig.update_yaxes(tickvals=[landscape.index[i] for i in starts], ticktext=[stage_of.iloc[i] for i in starts],
                     autorange="reversed")
    fig.update_layout(title=title, height=520, xaxis=dict(showticklabels=landscape.shape[1] <= 60))
    return fig
