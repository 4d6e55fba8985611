"""Figures of the graph-fusion notebook: model comparison, paired differences, attributions, patient embeddings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from hccomics.errors import DataValidationError

__all__ = ["attribution_bars", "fusion_differences", "fusion_model_comparison", "patient_embedding"]

_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
_GREY, _EDGE = "#b0b0b0", "#d9d9d9"
_METRICS = {"auc": "AUC", "harrell_c": "Harrell's C"}


def _require(table: pd.DataFrame, columns: list[str], what: str, source: str) -> None:
    if not isinstance(table, pd.DataFrame):
        raise DataValidationError(f"{what} must be a DataFrame; got {type(table).__name__}.")
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise DataValidationError(f"{what} lacks columns {missing}; found {list(table.columns)}. "
                                  f"Pass the table returned by {source}.")


def _ci(table: pd.DataFrame, centre: str) -> dict:
    return {"type": "data", "symmetric": False, "array": (table["high"] - table[centre]).to_numpy(),
            "arrayminus": (table[centre] - table["low"]).to_numpy()}


def fusion_model_comparison(table: pd.DataFrame, *, title: str | None = None) -> go.Figure:
    """AUC or Harrell's C (95 % CI) of each model, one row per model, one panel per task.

    Parameters
    ----------
    table
        :func:`hccomics.graph.fusion_table`: indexed by model with ``metric`` (``"auc"`` or ``"harrell_c"``),
        ``estimate``, ``low``, ``high`` and ``patients``; optionally ``kind`` (colours the points, e.g. "fused",
        "single modality", "baseline") and ``task`` (one panel per task, model names shared across panels).
        Models are drawn top to bottom in the order of the table; the dashed line marks chance (0.5).
    title
        Figure title; by default the metric.

    Examples
    --------
    >>> t = pd.DataFrame({"metric": "auc", "estimate": [0.7, 0.6], "low": [0.6, 0.5], "high": [0.8, 0.7],
    ...                   "patients": [80, 80], "kind": ["fused", "baseline"]}, index=["GCN", "concat"])
    >>> [tr.name for tr in fusion_model_comparison(t).data]
    ['fused', 'baseline']
    """
    _require(table, ["metric", "estimate", "low", "high", "patients"], "a model table", "hccomics.graph.fusion_table")
    t = table.assign(model=[str(m) for m in table.index])
    tasks = list(pd.unique(t["task"])) if "task" in t else [None]
    kinds = list(pd.unique(t["kind"])) if "kind" in t else [None]
    fig = make_subplots(rows=1, cols=len(tasks), shared_yaxes=True, horizontal_spacing=0.04,
                        subplot_titles=[str(task) for task in tasks] if len(tasks) > 1 else None)
    shown: set = set()
    for j, task in enumerate(tasks, start=1):
        part = t if task is None else t[t["task"] == task]
        for k, kind in enumerate(kinds):
            rows = part if kind is None else part[part["kind"] == kind]
            if rows.empty:
                continue
            fig.add_trace(go.Scatter(
                x=rows["estimate"], y=rows["model"], mode="markers", name="model" if kind is None else str(kind),
                marker={"size": 9, "color": _COLOURS[k % len(_COLOURS)]}, error_x=_ci(rows, "estimate"),
                legendgroup=str(kind), showlegend=kind is not None and kind not in shown,
                customdata=np.c_[rows["patients"], rows["low"], rows["high"]],
                hovertemplate="%{y}: %{x:.3f} (95% CI %{customdata[1]:.3f}-%{customdata[2]:.3f})"
                              "<br>%{customdata[0]:d} patients<extra></extra>"), row=1, col=j)
            shown.add(kind)
        metric = " / ".join(_METRICS.get(m, str(m)) for m in pd.unique(part["metric"]))
        fig.update_xaxes(title_text=metric, row=1, col=j)
    fig.add_vline(x=0.5, line_dash="dash", line_color="grey", row="all", col="all")
    order = list(pd.unique(t["model"]))[::-1]
    fig.update_yaxes(categoryorder="array", categoryarray=order, type="category")
    metric = " / ".join(_METRICS.get(m, str(m)) for m in pd.unique(t["metric"]))
    fig.update_layout(title=title or f"{metric} of the fusion models (95% CI)", showlegend=kinds != [None],
                      legend_title_text="kind" if kinds != [None] else None, height=max(320, 28 * len(order) + 160))
    return fig


def fusion_differences(table: pd.DataFrame, *, title: str | None = None) -> go.Figure:
    """Forest plot of paired differences ``b - a`` (95 % CI), one row "b vs a" per pair.

    Parameters
    ----------
    table
        :func:`hccomics.graph.compare_fusion`: ``model a``, ``model b``, ``patients``, ``a``, ``b``, ``b - a``,
        ``low``, ``high`` and optionally ``task`` (added to the row labels when there are several tasks). Rows
        whose CI lies above 0 (b better than a) are coloured apart from the others; the dashed line marks 0.
    title
        Figure title.

    Examples
    --------
    >>> d = pd.DataFrame({"model a": ["concat", "rna"], "model b": ["GCN", "GCN"], "patients": [80, 80],
    ...                   "a": [0.6, 0.62], "b": [0.7, 0.7], "b - a": [0.1, 0.08], "low": [0.02, -0.01],
    ...                   "high": [0.18, 0.17]})
    >>> [(tr.name, list(tr.y)) for tr in fusion_differences(d).data]
    [('95% CI above 0', ['GCN vs concat']), ('95% CI includes 0 or below', ['GCN vs rna'])]
    """
    _require(table, ["model a", "model b", "patients", "a", "b", "b - a", "low", "high"], "a paired-difference table",
             "hccomics.graph.compare_fusion")
    labels = [f"{b} vs {a}" for a, b in zip(table["model a"], table["model b"])]
    if "task" in table and table["task"].nunique() > 1:
        labels = [f"{lab} ({task})" for lab, task in zip(labels, table["task"])]
    t = table.assign(label=labels)
    above = t["low"].to_numpy(dtype=float) > 0
    fig = go.Figure()
    groups = (("95% CI above 0", t[above], _COLOURS[1]), ("95% CI includes 0 or below", t[~above], _GREY))
    for name, rows, colour in groups:
        if rows.empty:
            continue
        fig.add_trace(go.Scatter(
            x=rows["b - a"], y=rows["label"], mode="markers", name=name, marker={"size": 9, "color": colour},
            error_x=_ci(rows, "b - a"),
            customdata=np.c_[rows["low"], rows["high"], rows["a"], rows["b"], rows["patients"]],
            hovertemplate="%{y}: b - a = %{x:.3f} (95% CI %{customdata[0]:.3f} to %{customdata[1]:.3f})"
                          "<br>a = %{customdata[2]:.3f}, b = %{customdata[3]:.3f}, %{customdata[4]:d} patients"
                          "<extra></extra>"))
    fig.add_vline(x=0, line_dash="dash", line_color="grey")
    fig.update_yaxes(type="category", categoryorder="array", categoryarray=list(pd.unique(t["label"]))[::-1])
    fig.update_layout(title=title or "Paired differences b - a (95% CI, paired bootstrap)",
                      xaxis_title="difference (b - a)", height=max(300, 28 * len(t) + 160), margin={"l": 200})
    return fig


def attribution_bars(table: pd.DataFrame, *, value: str = "importance", top: int = 20, highlight: str | None = None,
                     title: str | None = None, label: str | None = None) -> go.Figure:
    """Horizontal bars of the ``top`` largest ``table[value]``, largest at the top.

    Parameters
    ----------
    table
        Indexed by feature, gene, pathway or group name, e.g. :func:`hccomics.graph.gene_importance`,
        :func:`hccomics.graph.pathway_importance` or :func:`hccomics.graph.group_importance`. An ``error``
        column (e.g. the SD across folds) is drawn as error bars.
    value
        Column to draw.
    top
        Number of bars.
    highlight
        Boolean column (``wp4172`` for genes, ``marked`` for pathways) whose True rows get their own colour
        and legend entry ("WP4172 member" for a pathway identifier, the column name otherwise).
    title, label
        Figure title; x-axis title (default ``value``).

    Examples
    --------
    >>> g = pd.DataFrame({"importance": [0.3, 0.2, 0.1], "wp4172": [True, False, True]},
    ...                  index=["AKT1", "TP53", "PIK3CA"])
    >>> [(tr.name, list(tr.y)) for tr in attribution_bars(g, highlight="wp4172").data]
    [('WP4172 member', ['AKT1', 'PIK3CA']), ('other', ['TP53'])]
    """
    _require(table, [value] + ([highlight] if highlight else []), "an attribution table",
             "hccomics.graph.gene_importance, pathway_importance or group_importance")
    if not isinstance(top, (int, np.integer)) or top < 1:
        raise DataValidationError(f"top must be a positive integer; got {top!r}.")
    t = table.nlargest(int(top), value)
    t = t.assign(name=[str(i) for i in t.index])
    marked = t[highlight].eq(True).to_numpy() if highlight else np.zeros(len(t), dtype=bool)
    member = f"{highlight.upper()} member" if highlight and any(c.isdigit() for c in highlight) else str(highlight)
    plain = [(value, ~marked, _COLOURS[0])]
    groups = [(member, marked, _COLOURS[1]), ("other", ~marked, _COLOURS[0])] if highlight else plain
    fig = go.Figure()
    for name, keep, colour in groups:
        rows = t[keep]
        if rows.empty:
            continue
        err = {"type": "data", "array": rows["error"].to_numpy(dtype=float)} if "error" in t else None
        fig.add_trace(go.Bar(x=rows[value], y=rows["name"], orientation="h", name=name, marker_color=colour,
                             error_x=err, hovertemplate="%{y}: %{x:.3g}<extra></extra>"))
    fig.update_yaxes(type="category", categoryorder="array", categoryarray=list(t["name"])[::-1])
    fig.update_layout(title=title or f"Top {len(t)} by {label or value}", xaxis_title=label or value,
                      showlegend=highlight is not None, height=max(300, 22 * len(t) + 150), margin={"l": 200})
    return fig


def _category(v) -> str:
    return f"{v:g}" if isinstance(v, (float, np.floating)) else str(v)


def patient_embedding(coords: pd.DataFrame, outcome: pd.Series, *, edges: np.ndarray | None = None,
                      title: str | None = None, outcome_name: str = "outcome") -> go.Figure:
    """Patients in a 2-D embedding coloured by outcome, over the edges of their similarity graph.

    Parameters
    ----------
    coords
        ``x`` and ``y`` (e.g. a UMAP of the fused embedding), indexed by patient.
    outcome
        Per patient; matched to ``coords`` by index. Boolean, text or integer-coded with at most 10 values gives
        discrete colours, otherwise a colour scale; missing values are drawn grey as "unlabelled".
    edges
        ``2 x E`` integer positions into ``coords`` (a graph's ``edge_index``), drawn underneath as thin lines.
    title, outcome_name
        Figure title; name of the outcome in the legend and hover.

    Examples
    --------
    >>> xy = pd.DataFrame({"x": [0.0, 1.0, 2.0], "y": [0.0, 1.0, 0.0]}, index=["p1", "p2", "p3"])
    >>> fig = patient_embedding(xy, pd.Series({"p1": 0, "p2": 1}), edges=np.array([[0, 1], [1, 2]]))
    >>> [tr.name for tr in fig.data]
    ['edges', '0', '1', 'unlabelled']
    """
    _require(coords, ["x", "y"], "coords", "an embedding (columns x, y, indexed by patient)")
    if not isinstance(outcome, pd.Series):
        raise DataValidationError(f"outcome must be a pandas Series indexed by patient; got {type(outcome).__name__}.")
    y = outcome.reindex(coords.index)
    fig = go.Figure()
    if edges is not None:
        e = np.asarray(edges)
        bad = e.ndim != 2 or e.shape[0] != 2 or not np.issubdtype(e.dtype, np.integer)
        if bad or (e.size and (e.min() < 0 or e.max() >= len(coords))):
            raise DataValidationError(f"edges must be a 2 x E integer array of positions in 0..{len(coords) - 1}; "
                                      f"got shape {e.shape}, dtype {e.dtype}. Pass a graph's edge_index.")
        xs, ys = coords["x"].to_numpy(dtype=float), coords["y"].to_numpy(dtype=float)
        ex = [v for s, d in e.T for v in (xs[s], xs[d], None)]
        ey = [v for s, d in e.T for v in (ys[s], ys[d], None)]
        fig.add_trace(go.Scatter(x=ex, y=ey, mode="lines", name="edges", line={"color": _EDGE, "width": 0.5},
                                 hoverinfo="skip", showlegend=False))
    hover = "%{customdata[0]}<br>" + outcome_name + ": %{customdata[1]}<extra></extra>"
    known = y.notna().to_numpy()
    values = y[known]
    continuous = (pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
                  and (values.nunique() > 10 or not np.allclose(values, np.round(values))))

    def points(mask, **kw) -> go.Scatter:
        c = coords[mask]
        shown = [_category(v) if pd.notna(v) else "unlabelled" for v in y[mask]]
        return go.Scatter(x=c["x"], y=c["y"], mode="markers", customdata=np.c_[c.index.astype(str), shown],
                          hovertemplate=hover, **kw)

    if continuous:
        scale = {"size": 7, "color": values.to_numpy(dtype=float), "colorscale": "Viridis",
                 "colorbar": {"title": outcome_name}}
        fig.add_trace(points(known, name=outcome_name, marker=scale))
    else:
        cats = list(pd.unique(values))
        try:
            cats = sorted(cats)
        except TypeError:
            cats = sorted(cats, key=str)
        for k, cat in enumerate(cats):
            fig.add_trace(points(known & (y == cat).to_numpy(), name=_category(cat),
                                 marker={"size": 7, "color": _COLOURS[k % len(_COLOURS)]}))
    if (~known).any():
        fig.add_trace(points(~known, name="unlabelled", marker={"size": 6, "color": _GREY}))
    fig.update_layout(title=title or f"Patients coloured by {outcome_name}", legend_title_text=outcome_name,
                      xaxis_title="embedding 1", yaxis_title="embedding 2")
    return fig
