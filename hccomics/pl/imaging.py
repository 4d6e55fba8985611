"""Figures of image slices and pathology tiles (from :mod:`hccomics.io.previews`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

__all__ = ["image_slices", "tile_gallery"]

MASK_COLOURS = {"liver": "#31a354", "lesion": "#e34a33", "lesion_reader_corrected": "#fdae6b", "ablation_zone": "#3182bd"}


def _grid(n: int, ncols: int) -> tuple[int, int]:
    ncols = max(1, min(ncols, n))
    return -(-n // ncols), ncols


def image_slices(previews: Sequence[Any], *, ncols: int = 4, title: str | None = None) -> go.Figure:
    """Grey-scale slices, one panel per series, with mask outlines.

    Parameters
    ----------
    previews
        :class:`~hccomics.io.previews.SlicePreview` objects (image, window, masks, spacing).
    ncols
        Panels per row.
    title
        Figure title; by default names the patient.

    Examples
    --------
    >>> from hccomics.io.previews import SlicePreview
    >>> p = SlicePreview("p1", "CT", "arterial", np.zeros((8, 8)), (-100, 250), (1.5, 1.5),
    ...                  {"lesion": np.eye(8, dtype=bool)})
    >>> [t.type for t in image_slices([p]).data]
    ['heatmap', 'contour']
    """
    if not previews:
        return go.Figure().update_layout(title="no image series in this cohort")
    rows, cols = _grid(len(previews), ncols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[f"{p.modality} {p.phase.replace('_', ' ')}" for p in previews],
                        horizontal_spacing=0.01, vertical_spacing=0.06)
    shown: set[str] = set()
    for n, p in enumerate(previews):
        r, c = divmod(n, cols)
        h, w = p.image.shape
        # physical extent in mm, so that anisotropic pixels keep their aspect
        x = np.arange(w) * p.spacing_mm[0]
        y = np.arange(h) * p.spacing_mm[1]
        fig.add_trace(go.Heatmap(z=p.image, x=x, y=y, colorscale="gray", zmin=p.window[0], zmax=p.window[1],
                                 showscale=False, hovertemplate="%{z:.0f}<extra></extra>"), row=r + 1, col=c + 1)
        for label, mask in p.masks.items():
            colour = MASK_COLOURS.get(label, "#ffff33")
            fig.add_trace(go.Contour(
                z=mask.astype(float), x=x, y=y, showscale=False, contours=dict(start=0.5, end=0.5, size=1, coloring="none"),
                line=dict(color=colour, width=1.5), name=label, legendgroup=label, showlegend=label not in shown,
                hoverinfo="skip",
            ), row=r + 1, col=c + 1)
            shown.add(label)
        fig.update_xaxes(visible=False, row=r + 1, col=c + 1)
        fig.update_yaxes(visible=False, autorange="reversed", scaleanchor=f"x{n + 1 if n else ''}", row=r + 1, col=c + 1)
    fig.update_layout(title=title or f"Patient {previews[0].patient_id}: one axial slice per series (masks of the reference phase)",
                      height=260 * rows + 80, legend=dict(orientation="h", y=-0.02), margin=dict(l=10, r=10, t=70, b=30))
    return fig


def tile_gallery(tiles: Sequence[Any], *, ncols: int = 5, title: str = "Pathology tiles") -> go.Figure:
    """RGB tiles side by side, each titled with what it shows.

    Examples
    --------
    >>> from hccomics.io.previews import TilePreview
    >>> t = TilePreview("p1", "tumour", np.zeros((4, 4, 3), dtype=np.uint8), "tumour, grade 2")
    >>> tile_gallery([t]).data[0].type
    'image'
    """
    if not tiles:
        return go.Figure().update_layout(title="no pathology tiles in this cohort")
    rows, cols = _grid(len(tiles), ncols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[f"{t.label}<br>{t.patient_id}" for t in tiles],
                        horizontal_spacing=0.01, vertical_spacing=0.08)
    for n, t in enumerate(tiles):
        r, c = divmod(n, cols)
        fig.add_trace(go.Image(z=t.image, hoverinfo="skip"), row=r + 1, col=c + 1)
        fig.update_xaxes(visible=False, row=r + 1, col=c + 1)
        fig.update_yaxes(visible=False, row=r + 1, col=c + 1)
    fig.update_layout(title=dict(text=title, y=0.99, yanchor="top"), height=230 * rows + 100,
                      margin=dict(l=10, r=10, t=110, b=10))
    return fig
