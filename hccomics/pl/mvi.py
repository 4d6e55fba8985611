"""Figures of the MVI notebooks: ring-width comparison, ROC curves, saliency by region."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from hccomics.pl.segmentation import _require_columns

__all__ = ["cam_overlay", "deletion_curves", "ring_width_auc", "roc_curves", "saliency_by_region_bars"]

_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22")


def ring_width_auc(tables: pd.DataFrame | dict[str, pd.DataFrame], *, title: str = "MVI AUC by peritumoral ring") -> go.Figure:
    """AUC (95 % CI) of the radiomics model of each region against ring width, one line per modality.

    Parameters
    ----------
    tables
        :func:`hccomics.imaging.ring_width_comparison` tables, one per modality (a dict) or one table.

    Examples
    --------
    >>> t = pd.DataFrame({"region": ["tumour", "ring_2mm"], "width_mm": [0.0, 2.0], "auc": [0.6, 0.8],
    ...                   "auc_low": [0.5, 0.7], "auc_high": [0.7, 0.9], "log_loss": [0.6, 0.4], "best": [False, True]})
    >>> [tr.name for tr in ring_width_auc({"CT": t}).data]
    ['CT', 'CT best']
    """
    if isinstance(tables, pd.DataFrame):
        tables = {"": tables}
    fig = go.Figure()
    for k, (name, t) in enumerate(tables.items()):
        _require_columns(t, ["region", "width_mm", "auc", "auc_low", "auc_high"], "a ring-width comparison table")
        colour = _COLOURS[k % len(_COLOURS)]
        labels = ["tumour" if r == "tumour" else f"{w:g} mm" for r, w in zip(t["region"], t["width_mm"])]
        extra = t["log_loss"].round(3).astype(str) if "log_loss" in t else pd.Series([""] * len(t))
        fig.add_trace(go.Scatter(
            x=t["width_mm"], y=t["auc"], mode="lines+markers", name=name or "AUC", line={"color": colour},
            error_y={"type": "data", "symmetric": False, "array": t["auc_high"] - t["auc"], "arrayminus": t["auc"] - t["auc_low"]},
            customdata=list(zip(labels, extra)),
            hovertemplate="%{customdata[0]}: AUC %{y:.3f}<br>log loss %{customdata[1]}<extra></extra>"))
        if "best" in t and t["best"].any():
            b = t[t["best"].astype(bool)]
            fig.add_trace(go.Scatter(x=b["width_mm"], y=b["auc"], mode="markers", name=f"{name} best".strip(),
                                     marker={"symbol": "star", "size": 16, "color": colour}, hoverinfo="skip"))
    widths = sorted({float(w) for t in tables.values() for w in t["width_mm"]})
    fig.update_layout(title=title, yaxis={"title": "AUC (95% CI)", "range": [0.4, 1.02]},
                      xaxis={"title": "ring (mm from the tumour edge; 0 = tumour)", "tickvals": widths,
                             "ticktext": ["tumour" if w == 0 else f"{w:g}" for w in widths]},
                      shapes=[{"type": "line", "x0": 0, "x1": 1, "xref": "paper", "y0": 0.5, "y1": 0.5,
                               "line": {"dash": "dot", "color": "grey"}}])
    return fig


def roc_curves(points: pd.DataFrame, table: pd.DataFrame | None = None, *, title: str = "MVI: ROC curves (out of fold)") -> go.Figure:
    """ROC curve per model from :func:`hccomics.imaging.roc_points`; legends carry AUC (95 % CI) from ``table``.

    Examples
    --------
    >>> pts = pd.DataFrame({"model": ["a"] * 3, "fpr": [0, 0.5, 1], "tpr": [0, 1, 1]})
    >>> [t.name for t in roc_curves(pts).data]
    ['a', 'chance']
    """
    _require_columns(points, ["model", "fpr", "tpr"], "ROC points")
    labels = {}
    if table is not None:
        _require_columns(table, ["model", "auc", "auc_low", "auc_high"], "a model table")
        labels = {r.model: f"{r.model}: {r.auc:.2f} ({r.auc_low:.2f}-{r.auc_high:.2f})" for r in table.itertuples()}
    fig = go.Figure()
    for k, (name, p) in enumerate(points.groupby("model", sort=False)):
        fig.add_trace(go.Scatter(x=p["fpr"], y=p["tpr"], mode="lines", name=labels.get(name, name),
                                 line={"color": _COLOURS[k % len(_COLOURS)], "shape": "hv"}))
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance", line={"dash": "dot", "color": "grey"}))
    fig.update_layout(title=title, xaxis={"title": "1 - specificity", "range": [0, 1]},
                      yaxis={"title": "sensitivity", "range": [0, 1.02], "scaleanchor": "x"}, legend={"title": "AUC (95% CI)"})
    return fig


def saliency_by_region_bars(summary: pd.DataFrame, *, title: str = "Where the MVI network looks") -> go.Figure:
    """Mean share of saliency mass against share of liver volume per region (and per method when given).

    ``summary`` has ``region``, ``mass_share``, ``volume_share`` and optionally ``method`` and ``mass_low`` /
    ``mass_high`` (CI of the mean mass share).

    Examples
    --------
    >>> s = pd.DataFrame({"region": ["tumour", "ring_2mm"], "mass_share": [0.3, 0.7], "volume_share": [0.5, 0.5]})
    >>> [t.name for t in saliency_by_region_bars(s).data]
    ['share of liver volume', 'share of saliency mass']
    """
    _require_columns(summary, ["region", "mass_share", "volume_share"], "a saliency summary")
    fig = go.Figure()
    methods = summary["method"].unique() if "method" in summary else [None]
    first = summary if "method" not in summary else summary[summary["method"] == methods[0]]
    fig.add_trace(go.Bar(x=first["region"], y=first["volume_share"], name="share of liver volume",
                         marker_color="lightgrey"))
    for k, m in enumerate(methods):
        s = summary if m is None else summary[summary["method"] == m]
        err = None
        if {"mass_low", "mass_high"} <= set(s.columns):
            err = {"type": "data", "symmetric": False, "array": s["mass_high"] - s["mass_share"],
                   "arrayminus": s["mass_share"] - s["mass_low"]}
        fig.add_trace(go.Bar(x=s["region"], y=s["mass_share"], name=f"share of {m or 'saliency'} mass",
                             marker_color=_COLOURS[k % len(_COLOURS)], error_y=err))
    fig.update_layout(title=title, barmode="group", yaxis={"title": "share (within the liver in the crop)"})
    return fig


def cam_overlay(images: dict, cam, regions, *, n_rings: int = 5, slice_index: int | None = None,
                title: str = "Grad-CAM") -> go.Figure:
    """Axial slices of a crop per phase with the saliency map as a heatmap and the region outlines.

    ``images``: phase -> 3-D crop; ``cam``: 3-D map on the same grid; ``regions``: the crop's region map (codes of
    :func:`hccomics.imaging.region_names`: 1 tumour, 2 to ``n_rings + 1`` the rings).

    Examples
    --------
    >>> import numpy as np
    >>> reg = np.ones((4, 4, 2), np.uint8); reg[0] = 7
    >>> fig = cam_overlay({"arterial": np.zeros((4, 4, 2))}, np.ones((4, 4, 2)), reg)
    >>> [t.type for t in fig.data][:3]
    ['heatmap', 'contour', 'contour']
    """
    import numpy as np
    from plotly.subplots import make_subplots

    regions = np.asarray(regions)
    cam = np.asarray(cam, dtype=float)
    if slice_index is None:
        slice_index = int(np.argmax((regions == 1).sum(axis=(0, 1))))
    n = len(images) + 1
    fig = make_subplots(rows=1, cols=n, subplot_titles=[*(p.replace("_", " ") for p in images), "saliency"],
                        horizontal_spacing=0.02)
    outline = {"tumour": (regions == 1), "rings": (regions >= 1) & (regions <= n_rings + 1)}
    for i, plane in enumerate([*images.values(), cam]):
        z = np.asarray(plane)[:, :, slice_index].T[::-1, ::-1]
        fig.add_trace(go.Heatmap(z=z, colorscale="gray" if i < n - 1 else "hot", showscale=i == n - 1,
                                 hovertemplate="%{z:.2f}<extra></extra>"), row=1, col=i + 1)
        for k, (name, m) in enumerate(outline.items()):
            fig.add_trace(go.Contour(z=m[:, :, slice_index].T[::-1, ::-1].astype(float), showscale=False,
                                     contours={"start": 0.5, "end": 0.5, "size": 1, "coloring": "none"},
                                     line={"color": _COLOURS[k + 1], "width": 1.5}, name=name, legendgroup=name,
                                     showlegend=i == 0, hoverinfo="skip"), row=1, col=i + 1)
        fig.update_xaxes(visible=False, row=1, col=i + 1)
        fig.update_yaxes(visible=False, scaleanchor=f"x{i + 1 if i else ''}", row=1, col=i + 1)
    fig.update_layout(title=title, height=320, legend={"orientation": "h", "y": -0.05})
    return fig


def deletion_curves(table: pd.DataFrame, *, title: str = "Deletion curves: most salient voxels first") -> go.Figure:
    """Mean MVI probability against the fraction of voxels deleted, saliency order against random order.

    Examples
    --------
    >>> t = pd.DataFrame({"curve_saliency": [[0.9, 0.5, 0.2]], "curve_random": [[0.9, 0.8, 0.6]],
    ...                   "auc_saliency": [0.5], "auc_random": [0.78]})
    >>> [tr.name for tr in deletion_curves(t).data]
    ['saliency order (AUC 0.50)', 'random order (AUC 0.78)']"""
    import numpy as np

    _require_columns(table, ["curve_saliency", "curve_random"], "a deletion table")
    fig = go.Figure()
    for k, name in enumerate(("saliency", "random")):
        curves = np.array(table[f"curve_{name}"].tolist(), dtype=float)
        x = np.linspace(0, 1, curves.shape[1])
        auc = table[f"auc_{name}"].mean() if f"auc_{name}" in table else np.nan
        fig.add_trace(go.Scatter(x=x, y=curves.mean(axis=0), mode="lines+markers", name=f"{name} order (AUC {auc:.2f})",
                                 line={"color": _COLOURS[k]}))
    fig.update_layout(title=title, xaxis={"title": "fraction of voxels deleted"},
                      yaxis={"title": "mean MVI probability", "range": [0, 1]})
    return fig
