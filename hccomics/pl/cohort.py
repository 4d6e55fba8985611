"""Figures of the cohort overview. They take computed tables and return plotly Figures."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

__all__ = ["modality_availability", "category_counts", "follow_up"]

_EVENT_COLOURS = {0: "#8da0cb", 1: "#e34a33"}


def modality_availability(availability: pd.DataFrame, *, title: str = "Modalities per patient") -> go.Figure:
    """Heatmap of patients x modalities (from ``ValidationReport.availability()``).

    Examples
    --------
    >>> av = pd.DataFrame({"clinical": [True, True], "rna": [True, False]}, index=["p1", "p2"])
    >>> modality_availability(av).data[0].type
    'heatmap'
    """
    z = availability.astype(int).T
    fig = go.Figure(go.Heatmap(
        z=z.to_numpy(), x=list(z.columns), y=list(z.index), colorscale=[[0, "#f0f0f0"], [1, "#2b8cbe"]],
        showscale=False, hovertemplate="patient %{x}<br>%{y}: %{z}<extra></extra>", xgap=0.5, ygap=2,
    ))
    counts = availability.sum()
    fig.update_layout(title=f"{title} ({', '.join(f'{k}: {v}' for k, v in counts.items())})",
                      xaxis=dict(showticklabels=False, title="patients"), height=min(480, 200 + 60 * z.shape[0]))
    return fig


def category_counts(table: pd.DataFrame, column: str, *, by: str | None = None, title: str | None = None) -> go.Figure:
    """Bar chart of the counts of ``column``, stacked by ``by`` when given."""
    if by is None:
        counts = table[column].value_counts(dropna=False).sort_index()
        fig = go.Figure(go.Bar(x=counts.index.astype(str), y=counts.to_numpy(), name=column))
    else:
        counts = pd.crosstab(table[column], table[by])
        fig = go.Figure([go.Bar(x=counts.index.astype(str), y=counts[c].to_numpy(), name=str(c)) for c in counts.columns])
        fig.update_layout(barmode="stack", legend_title_text=by)
    fig.update_layout(title=title or (f"{column} by {by}" if by else column), xaxis_title=column, yaxis_title="patients")
    return fig


def follow_up(table: pd.DataFrame, *, time: str, event: str, title: str | None = None) -> go.Figure:
    """Histogram of follow-up times split into events and censored observations."""
    fig = go.Figure()
    for value, label in ((1, "event"), (0, "censored")):
        t = table.loc[table[event] == value, time]
        fig.add_trace(go.Histogram(x=t, name=f"{label} (n={len(t)})", marker_color=_EVENT_COLOURS[value], opacity=0.75))
    fig.update_layout(barmode="overlay", title=title or f"{time}: events and censoring", xaxis_title=time, yaxis_title="patients")
    return fig
