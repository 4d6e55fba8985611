"""Figures of phase registration (from :mod:`hccomics.imaging.registration`): QC before / after and overlays."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from hccomics._options import check_option
from hccomics.errors import DataValidationError, OptionError

__all__ = ["registration_overlay", "registration_qc"]

STATE_COLOURS = {"before": "#bdbdbd", "after": "#2b8cbe"}
_PANELS = (("liver_dice", "Liver Dice"), ("ncc", "NCC inside the liver"))


def registration_qc(qc: pd.DataFrame, *, title: str = "Registration QC: before and after") -> go.Figure:
    """Grouped box plots (every patient a dot) of liver Dice and NCC per phase, before and after registration.

    Parameters
    ----------
    qc
        :attr:`~hccomics.imaging.registration.RegistrationResult.qc`, or the QC table of
        :func:`~hccomics.imaging.registration.register_cohort` (its ``patient_id`` labels the dots).
    title
        Figure title.

    Examples
    --------
    >>> qc = pd.DataFrame({"phase": ["arterial", "delayed"], "liver_dice_before": [0.90, 0.92],
    ...                    "liver_dice_after": [0.98, 0.99], "ncc_before": [0.2, 0.3], "ncc_after": [0.4, 0.5]})
    >>> [t.name for t in registration_qc(qc).data]
    ['before', 'after', 'before', 'after']
    """
    fig = make_subplots(rows=1, cols=2, subplot_titles=[label for _, label in _PANELS], horizontal_spacing=0.1)
    labels = qc["patient_id"].astype(str) if "patient_id" in qc else pd.Series("", index=qc.index)
    for col, (key, label) in enumerate(_PANELS, start=1):
        for state in ("before", "after"):
            values = qc[f"{key}_{state}"]
            keep = values.notna()
            fig.add_trace(go.Box(
                x=qc.loc[keep, "phase"].str.replace("_", " "), y=values[keep], name=state, legendgroup=state,
                showlegend=col == 1, marker_color=STATE_COLOURS[state], boxpoints="all", jitter=0.3, pointpos=0,
                text=labels[keep], hovertemplate=f"%{{text}} %{{x}}<br>{label} {state}: %{{y:.3f}}<extra></extra>",
            ), row=1, col=col)
        fig.update_yaxes(title_text=label, row=1, col=col)
    fig.update_layout(title=title, boxmode="group", legend={"orientation": "h", "y": -0.15}, height=420)
    return fig


def _slice(volume: np.ndarray, index: int, axis: int) -> np.ndarray:
    # rows = second in-plane axis, columns = first (NIfTI i to the right of the screen, as image_slices shows it)
    return np.take(np.asarray(volume, dtype=np.float32), index, axis=axis).T


def registration_overlay(
    reference: np.ndarray,
    moving: np.ndarray,
    registered: np.ndarray,
    *,
    slice_index: int | None = None,
    axis: int = 2,
    style: Literal["fusion", "checkerboard"] = "fusion",
    window: tuple[float, float] | None = None,
    tiles: int = 8,
    title: str | None = None,
) -> go.Figure:
    """One slice of the reference against a phase before and after registration, side by side.

    ``"fusion"`` shows the reference in magenta and the other phase in green (grey where they agree, colour
    fringes where they do not); ``"checkerboard"`` alternates tiles of the two, so edges break where misaligned.

    Parameters
    ----------
    reference, moving, registered
        3-D arrays on one grid (NIfTI voxel order): the reference, the moving phase as is, and registered.
    slice_index
        Index along ``axis``; default the middle slice.
    axis
        0, 1 or 2 (2: axial for axial acquisitions).
    style
        ``"fusion"`` or ``"checkerboard"``.
    window
        Display range (e.g. ``(-150, 250)`` HU); default the reference slice's 1st-99th percentiles, used for both.
    tiles
        Checkerboard tiles along the longer side.
    title
        Figure title.

    Examples
    --------
    >>> ref = np.zeros((8, 8, 3)); ref[2:6, 2:6] = 100
    >>> fig = registration_overlay(ref, np.roll(ref, 1, axis=0), ref)
    >>> [t.type for t in fig.data]
    ['image', 'image']
    """
    style = check_option("style", style, ("fusion", "checkerboard"))
    if axis not in (0, 1, 2):
        raise OptionError(f"axis={axis!r} is not one of 0, 1, 2")
    shapes = {np.shape(reference), np.shape(moving), np.shape(registered)}
    if len(shapes) != 1 or len(np.shape(reference)) != 3:
        raise DataValidationError(f"expected three 3-D arrays of one shape (resample onto the reference grid first); "
                                  f"got shapes {np.shape(reference)}, {np.shape(moving)}, {np.shape(registered)}")
    n = np.shape(reference)[axis]
    index = n // 2 if slice_index is None else int(slice_index)
    if not 0 <= index < n:
        raise IndexError(f"slice_index {index} is outside 0..{n - 1} along axis {axis}")
    ref = _slice(reference, index, axis)
    lo, hi = window if window is not None else tuple(np.percentile(ref, [1, 99]))
    scale = max(float(hi - lo), 1e-6)

    def unit(a: np.ndarray) -> np.ndarray:
        return np.clip((a - lo) / scale, 0.0, 1.0)

    fig = make_subplots(rows=1, cols=2, subplot_titles=["before registration", "after registration"],
                        horizontal_spacing=0.02)
    r = unit(ref)
    if style == "checkerboard":
        size = max(1, max(r.shape) // max(int(tiles), 1))
        rows, cols = np.indices(r.shape)
        board = ((rows // size + cols // size) % 2).astype(bool)
    for col, other in enumerate((moving, registered), start=1):
        o = unit(_slice(other, index, axis))
        if style == "fusion":
            rgb = np.stack([r, o, r], axis=-1)  # magenta reference + green phase
        else:
            rgb = np.repeat(np.where(board, r, o)[..., None], 3, axis=-1)
        fig.add_trace(go.Image(z=np.round(255 * rgb).astype(np.uint8), hoverinfo="skip"), row=1, col=col)
        fig.update_xaxes(visible=False, row=1, col=col)
        fig.update_yaxes(visible=False, row=1, col=col)
    default = f"Reference (magenta) and phase (green), slice {index} of axis {axis}" if style == "fusion" else \
        f"Checkerboard of reference and phase, slice {index} of axis {axis}"
    fig.update_layout(title=title or default, height=420, margin={"l": 10, "r": 10, "t": 70, "b": 10})
    return fig
