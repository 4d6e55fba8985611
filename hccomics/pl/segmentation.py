"""Figures of segmentation results: overlays, training curves, fold metrics, volume agreement, detection by size.

Every function takes results computed by :mod:`hccomics.imaging` (metrics, agreement, training
history) and returns a Figure; none computes a statistic, shows or saves.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from hccomics.errors import DataValidationError
from hccomics.pl.imaging import MASK_COLOURS

__all__ = ["detection_by_size", "fold_metrics", "learning_curves", "segmentation_overlay", "volume_agreement_plot"]

_COLOURS = ["#2b8cbe", "#e34a33", "#31a354", "#756bb1", "#636363", "#fd8d3c", "#e7298a", "#66a61e"]
_OVERLAY_COLOURS = {**MASK_COLOURS, "prediction": "#ffff33"}
_PLANES = {0: "sagittal", 1: "coronal", 2: "axial"}


def _require_columns(table: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    if not isinstance(table, pd.DataFrame):
        raise DataValidationError(f"{what} must be a DataFrame; got {type(table).__name__}.")
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise DataValidationError(f"{what} lacks columns {missing}; found {list(table.columns)}. "
                                  "Pass the table produced by the matching hccomics.imaging function.")


def _check_volumes(images: Mapping[str, np.ndarray], masks: Mapping[str, np.ndarray], axis: int) -> tuple[int, ...]:
    if not images:
        raise DataValidationError("images is empty; expected a mapping phase -> 3D array, e.g. {'arterial': volume}.")
    if axis not in _PLANES:
        raise DataValidationError(f"axis must be 0 (sagittal), 1 (coronal) or 2 (axial); got {axis!r}.")
    shapes = {f"image {name}": np.shape(v) for name, v in images.items()} | {f"mask {name}": np.shape(v) for name, v in masks.items()}
    shape = next(iter(shapes.values()))
    odd = {name: s for name, s in shapes.items() if s != shape or len(s) != 3}
    if odd or len(shape) != 3:
        raise DataValidationError(f"images and masks must be 3D arrays on one voxel grid of shape {shape}; these differ: "
                                  f"{odd or shapes}. Resample every phase and mask onto the reference grid first.")
    return shape


def _display(volume: np.ndarray, axis: int, index: int) -> np.ndarray:
    # RAS+ voxels: the radiological view puts the patient's right (axial, coronal) or anterior (sagittal) on the
    # viewer's left and anterior / superior at the top, which is a transpose and a flip of both axes for every plane
    return np.take(np.asarray(volume), index, axis=axis).T[::-1, ::-1]


def segmentation_overlay(images: Mapping[str, np.ndarray], masks: Mapping[str, np.ndarray], *,
                         slice_index: int | None = None, axis: int = 2, spacing: Sequence[float] | None = None,
                         title: str | None = None, ncols: int = 4) -> go.Figure:
    """One slice per phase in grey scale, with the outline of every mask drawn on each panel.

    Parameters
    ----------
    images
        Phase name -> 3D image in RAS+ voxel order, all on one grid (e.g. ``{"arterial": ct, "portal_venous": pv}``).
    masks
        Label -> 3D mask on the same grid (e.g. ``{"liver": ..., "lesion": ..., "prediction": ...}``).
    slice_index
        Slice to show; by default the slice where the first mask covers the largest area (the middle slice
        when there is no mask or it is empty).
    axis
        Slicing axis: 0 sagittal, 1 coronal, 2 axial.
    spacing
        Voxel size in mm, so anisotropic voxels keep their aspect; voxels are drawn square when omitted.
    title
        Figure title; by default names the plane and slice.
    ncols
        Panels per row.

    Examples
    --------
    >>> ct = np.arange(4 * 5 * 6, dtype=float).reshape(4, 5, 6)
    >>> lesion = np.zeros((4, 5, 6), dtype=bool); lesion[1:3, 1:3, 4] = True
    >>> fig = segmentation_overlay({"arterial": ct, "venous": ct}, {"lesion": lesion})
    >>> [t.type for t in fig.data], fig.layout.title.text
    (['heatmap', 'contour', 'heatmap', 'contour'], 'axial slice 4 of 6')
    """
    shape = _check_volumes(images, masks, axis)
    depth = shape[axis]
    if slice_index is None:
        first = np.asarray(next(iter(masks.values()))) if masks else None
        other = tuple(i for i in range(3) if i != axis)
        area = np.count_nonzero(first, axis=other) if first is not None else np.zeros(depth)
        slice_index = int(np.argmax(area)) if area.any() else depth // 2
    if isinstance(slice_index, bool) or not isinstance(slice_index, int | np.integer) or not 0 <= slice_index < depth:
        raise DataValidationError(f"slice_index must be an integer in [0, {depth - 1}] along axis {axis}; got {slice_index!r}.")
    sp = (1.0, 1.0, 1.0) if spacing is None else tuple(float(s) for s in spacing)
    if len(sp) != 3 or not all(s > 0 for s in sp):
        raise DataValidationError(f"spacing must be three positive voxel sizes in mm; got {spacing!r}.")
    col_axis, row_axis = (i for i in range(3) if i != axis)
    x = np.arange(shape[col_axis]) * sp[col_axis]
    y = np.arange(shape[row_axis]) * sp[row_axis]
    n = len(images)
    cols = max(1, min(ncols, n))
    rows = -(-n // cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[str(p).replace("_", " ") for p in images],
                        horizontal_spacing=0.01, vertical_spacing=0.06)
    unnamed = iter(_COLOURS)
    colours = {label: _OVERLAY_COLOURS.get(label) or next(unnamed, "#ffffff") for label in masks}
    for i, (phase, image) in enumerate(images.items()):
        r, c = divmod(i, cols)
        plane = _display(image, axis, slice_index)
        lo, hi = (float(v) for v in np.nanpercentile(np.asarray(image, dtype=float), [1, 99]))
        fig.add_trace(go.Heatmap(z=plane, x=x, y=y, colorscale="gray", zmin=lo, zmax=hi if hi > lo else lo + 1,
                                 showscale=False, name=str(phase), hovertemplate="%{z:.0f}<extra></extra>"),
                      row=r + 1, col=c + 1)
        for label, mask in masks.items():
            fig.add_trace(go.Contour(
                z=(_display(mask, axis, slice_index) != 0).astype(float), x=x, y=y, showscale=False,
                contours={"start": 0.5, "end": 0.5, "size": 1, "coloring": "none"}, line={"color": colours[label], "width": 1.5},
                name=str(label), legendgroup=str(label), showlegend=i == 0, hoverinfo="skip"), row=r + 1, col=c + 1)
        fig.update_xaxes(visible=False, row=r + 1, col=c + 1)
        fig.update_yaxes(visible=False, autorange="reversed", scaleanchor=f"x{i + 1 if i else ''}", row=r + 1, col=c + 1)
    fig.update_layout(title=title or f"{_PLANES[axis]} slice {slice_index} of {depth}", height=280 * rows + 90,
                      legend={"orientation": "h", "y": -0.02}, margin={"l": 10, "r": 10, "t": 70, "b": 30})
    return fig


def learning_curves(history: pd.DataFrame) -> go.Figure:
    """Training loss and validation Dice by epoch: one column of panels per training stage, one line per fold.

    Parameters
    ----------
    history
        Columns ``fold``, ``stage``, ``epoch``, ``train_loss``, ``val_dice`` (NaN on epochs without validation).

    Examples
    --------
    >>> h = pd.DataFrame({"fold": [0, 0, 1, 1], "stage": "liver", "epoch": [1, 2, 1, 2],
    ...                   "train_loss": [0.9, 0.5, 0.8, 0.6], "val_dice": [np.nan, 0.7, np.nan, 0.6]})
    >>> len(learning_curves(h).data)
    4
    """
    _require_columns(history, ["fold", "stage", "epoch", "train_loss", "val_dice"], "history")
    stages = list(pd.unique(history["stage"]))
    folds = list(pd.unique(history["fold"]))
    fig = make_subplots(rows=2, cols=max(1, len(stages)), shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=[str(s) for s in stages] + [""] * len(stages))
    for j, stage in enumerate(stages):
        for i, fold in enumerate(folds):
            run = history[(history["stage"] == stage) & (history["fold"] == fold)].sort_values("epoch")
            if run.empty:
                continue
            colour = _COLOURS[i % len(_COLOURS)]
            common = {"name": f"fold {fold}", "legendgroup": str(fold), "line": {"color": colour}}
            fig.add_trace(go.Scatter(x=run["epoch"], y=run["train_loss"], mode="lines", showlegend=j == 0, **common),
                          row=1, col=j + 1)
            val = run.dropna(subset=["val_dice"])
            if not val.empty:
                fig.add_trace(go.Scatter(x=val["epoch"], y=val["val_dice"], mode="lines+markers", showlegend=False, **common),
                              row=2, col=j + 1)
        fig.update_xaxes(title_text="epoch", row=2, col=j + 1)
    fig.update_yaxes(title_text="training loss", row=1, col=1)
    fig.update_yaxes(title_text="validation Dice", row=2, col=1)
    fig.update_layout(title="Learning curves by training stage", legend_title_text="fold", height=560)
    return fig


def fold_metrics(table: pd.DataFrame, *, metric: str = "dice") -> go.Figure:
    """Per-structure distribution of one metric over cross-validation folds, each fold a colour, the ensemble apart.

    Parameters
    ----------
    table
        Columns ``fold``, ``structure`` and ``metric``; rows whose fold is ``"ensemble"`` are drawn as a distinct marker.
    metric
        Column to plot (e.g. ``"dice"``, ``"hd95_mm"``).

    Examples
    --------
    >>> t = pd.DataFrame({"fold": [0, 0, 1, 1, "ensemble", "ensemble"], "structure": ["liver", "lesion"] * 3,
    ...                   "dice": [0.95, 0.7, 0.94, 0.65, 0.96, 0.75]})
    >>> [t.name for t in fold_metrics(t).data]
    ['folds', 'fold 0', 'fold 1', 'ensemble']
    """
    _require_columns(table, ["fold", "structure", metric], "table")
    is_ensemble = table["fold"].astype(str) == "ensemble"
    folds_only, ensemble = table[~is_ensemble], table[is_ensemble]
    structures = [str(s) for s in pd.unique(table["structure"])]
    fig = go.Figure(go.Box(x=folds_only["structure"].astype(str), y=folds_only[metric], name="folds", boxpoints=False,
                           marker_color="#bdbdbd", line_color="#969696", showlegend=False))
    for i, fold in enumerate(pd.unique(folds_only["fold"])):
        rows = folds_only[folds_only["fold"] == fold]
        fig.add_trace(go.Scatter(x=rows["structure"].astype(str), y=rows[metric], mode="markers", name=f"fold {fold}",
                                 marker={"color": _COLOURS[i % len(_COLOURS)], "size": 9, "opacity": 0.85}))
    if not ensemble.empty:
        fig.add_trace(go.Scatter(x=ensemble["structure"].astype(str), y=ensemble[metric], mode="markers", name="ensemble",
                                 marker={"color": "black", "symbol": "diamond", "size": 14, "line": {"color": "white", "width": 1}}))
    fig.update_layout(title=f"{metric} per structure over folds", xaxis_title="structure", yaxis_title=metric,
                      xaxis={"categoryorder": "array", "categoryarray": structures}, legend_title_text="fold")
    return fig


def volume_agreement_plot(table: pd.DataFrame, *, a: str = "automatic_ml", b: str = "reference_ml",
                          limits: Mapping[str, float] | None = None) -> go.Figure:
    """Scatter of two volume measurements with the identity line, beside their Bland-Altman plot.

    Parameters
    ----------
    table
        One row per patient (or lesion) with columns ``a`` and ``b``; a ``patient_id`` column labels the points.
    a, b
        Columns compared; the Bland-Altman difference is ``a - b``.
    limits
        :func:`hccomics.imaging.agreement.bland_altman` of the same columns; its bias and limits of agreement are
        drawn as horizontal lines. Nothing is drawn when omitted.

    Examples
    --------
    >>> t = pd.DataFrame({"automatic_ml": [10.0, 20.0, 30.0], "reference_ml": [11.0, 19.0, 31.0]})
    >>> lim = {"bias": -0.33, "sd": 1.15, "loa_lower": -2.6, "loa_upper": 1.9, "n": 3}
    >>> fig = volume_agreement_plot(t, limits=lim)
    >>> len(fig.data), len(fig.layout.shapes)
    (3, 3)
    """
    _require_columns(table, [a, b], "table")
    if limits is not None:
        missing = [k for k in ("bias", "loa_lower", "loa_upper") if k not in limits]
        if missing:
            raise DataValidationError(f"limits lacks {missing}; pass the dict returned by bland_altman(table[{a!r}], table[{b!r}]).")
    shown = table.dropna(subset=[a, b])
    va, vb = shown[a].to_numpy(dtype=float), shown[b].to_numpy(dtype=float)
    labels = shown["patient_id"].astype(str) if "patient_id" in shown.columns else shown.index.astype(str)
    fig = make_subplots(rows=1, cols=2, subplot_titles=[f"{a} against {b}", "Bland-Altman"], horizontal_spacing=0.12)
    fig.add_trace(go.Scatter(x=vb, y=va, mode="markers", text=labels, marker={"color": _COLOURS[0], "size": 8}, name="volumes",
                             hovertemplate="%{text}: %{x:.1f} / %{y:.1f}<extra></extra>", showlegend=False), row=1, col=1)
    ends = [float(min(va.min(), vb.min())), float(max(va.max(), vb.max()))] if len(shown) else [0.0, 1.0]
    fig.add_trace(go.Scatter(x=ends, y=ends, mode="lines", line={"dash": "dash", "color": "grey"}, name="identity",
                             showlegend=False), row=1, col=1)
    fig.add_trace(go.Scatter(x=(va + vb) / 2, y=va - vb, mode="markers", text=labels, marker={"color": _COLOURS[0], "size": 8},
                             name="difference", hovertemplate="%{text}: mean %{x:.1f}, difference %{y:.1f}<extra></extra>",
                             showlegend=False), row=1, col=2)
    if limits is not None:
        for key, dash, text in (("bias", "solid", "bias"), ("loa_lower", "dash", "-1.96 SD"), ("loa_upper", "dash", "+1.96 SD")):
            fig.add_hline(y=float(limits[key]), line_dash=dash, line_color="#e34a33" if key == "bias" else "#636363",
                          annotation_text=f"{text} {float(limits[key]):.2f}", annotation_position="right", row=1, col=2)
    fig.update_xaxes(title_text=b, row=1, col=1)
    fig.update_yaxes(title_text=a, row=1, col=1)
    fig.update_xaxes(title_text=f"mean of {a} and {b}", row=1, col=2)
    fig.update_yaxes(title_text=f"{a} - {b}", row=1, col=2)
    fig.update_layout(title=f"Volume agreement (n = {len(shown)})", height=450)
    return fig


def detection_by_size(summary: pd.DataFrame) -> go.Figure:
    """Lesion-wise recall per size bin, each bar annotated with its number of reference lesions.

    Parameters
    ----------
    summary
        Output of :func:`hccomics.imaging.metrics.detection_summary` (columns ``size_bin``, ``recall``,
        ``n_reference``); its ``"all"`` row, when present, is drawn in grey and its precision named in the title.

    Examples
    --------
    >>> s = pd.DataFrame({"size_bin": ["<10 mm", ">=10 mm", "all"], "n_reference": [4, 6, 10],
    ...                   "recall": [0.5, 1.0, 0.8], "precision": [1.0, 0.75, 0.8], "n_false_positive": [0, 2, 2]})
    >>> fig = detection_by_size(s)
    >>> list(fig.data[0].text), fig.layout.title.text
    (['n = 4', 'n = 6', 'n = 10'], 'Lesion detection by size (overall precision 0.80, 2 false positives)')
    """
    _require_columns(summary, ["size_bin", "recall", "n_reference"], "summary")
    bins = summary["size_bin"].astype(str)
    colours = ["#969696" if b == "all" else _COLOURS[0] for b in bins]
    fig = go.Figure(go.Bar(x=bins, y=summary["recall"], marker_color=colours, text=[f"n = {int(n)}" for n in summary["n_reference"]],
                           textposition="outside", hovertemplate="%{x}: recall %{y:.2f} (%{text})<extra></extra>"))
    title = "Lesion detection by size"
    overall = summary[bins == "all"]
    if len(overall) and {"precision", "n_false_positive"} <= set(summary.columns):
        row = overall.iloc[0]
        title += f" (overall precision {row['precision']:.2f}, {int(row['n_false_positive'])} false positives)"
    fig.update_layout(title=title, xaxis_title="lesion diameter", yaxis_title="recall (detected / reference)",
                      yaxis_range=[0, 1.12])
    return fig
