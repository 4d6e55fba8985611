"""Figures of per-phase network features, from :meth:`hccomics.imaging.networks.PhaseConvLSTMUNet.phase_features`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

__all__ = ["phase_embedding_trajectory", "phase_feature_maps"]


def phase_feature_maps(
    features: Mapping[str, np.ndarray],
    *,
    phases: Sequence[str],
    slice_index: int | None = None,
    n_channels: int = 4,
    title: str | None = None,
) -> go.Figure:
    """Axial slices of feature maps, one column per phase and one row per (feature kind, channel).

    Parameters
    ----------
    features
        For one sample at one network level, a name (e.g. ``"hidden"``, ``"encoder"``) to an array of
        shape ``(P, C, h, w, d)``: entry ``t`` holds the maps after phase ``t``. Rows follow the
        mapping's order.
    phases
        The ``P`` phase names, in sequence order.
    slice_index
        Axial index along ``d``; the middle slice by default.
    n_channels
        Channels shown per feature kind (the first ones).
    title
        Figure title.

    Each row shares one symmetric colour range across phases, so that a channel's change from phase to
    phase is visible.

    Examples
    --------
    >>> maps = {"hidden": np.zeros((3, 2, 4, 4, 2))}
    >>> len(phase_feature_maps(maps, phases=["arterial", "portal_venous", "delayed"]).data)
    6
    """
    if not features:
        return go.Figure().update_layout(title="no feature maps given")
    for name, arr in features.items():
        if np.ndim(arr) != 5 or np.shape(arr)[0] != len(phases):
            raise ValueError(
                f"features[{name!r}] must have shape (P, C, h, w, d) with P = {len(phases)} phases; got "
                f"{np.shape(arr)}. Select one sample and one level, e.g. "
                f"net.phase_features(x)['hidden_1'][0].numpy()."
            )
    where = "middle axial slice" if slice_index is None else f"axial slice {slice_index}"
    rows = [(name, ch) for name, arr in features.items() for ch in range(min(n_channels, np.shape(arr)[1]))]
    fig = make_subplots(rows=len(rows), cols=len(phases), column_titles=[p.replace("_", " ") for p in phases],
                        row_titles=[f"{name} {ch}" for name, ch in rows],
                        horizontal_spacing=0.01, vertical_spacing=0.02)
    for r, (name, ch) in enumerate(rows):
        arr = np.asarray(features[name])
        k = arr.shape[-1] // 2 if slice_index is None else slice_index
        panels = arr[:, ch, :, :, k]
        zmax = float(np.abs(panels).max()) or 1.0
        for c, panel in enumerate(panels):
            fig.add_trace(go.Heatmap(z=panel, colorscale="RdBu", reversescale=True, zmin=-zmax, zmax=zmax, showscale=False,
                                     hovertemplate=f"{phases[c]}<br>{name} channel {ch}: %{{z:.3f}}<extra></extra>"),
                          row=r + 1, col=c + 1)
            n = r * len(phases) + c + 1
            # square voxels: each panel's y axis follows its own x axis
            fig.update_yaxes(scaleanchor=f"x{n if n > 1 else ''}", row=r + 1, col=c + 1)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, autorange="reversed")
    fig.update_layout(title=title or f"Feature maps across phases ({where})",
                      height=110 * len(rows) + 120, width=150 * len(phases) + 160, margin={"l": 10, "r": 60, "t": 80, "b": 10})
    return fig


def phase_embedding_trajectory(
    embeddings: np.ndarray,
    *,
    phases: Sequence[str],
    labels: Sequence[str] | None = None,
) -> go.Figure:
    """Each sample's path through a 2D embedding (e.g. a PCA of pooled hidden states) phase after phase.

    Parameters
    ----------
    embeddings
        Coordinates of shape ``(n_samples, n_phases, 2)``, computed by the caller.
    phases
        The phase names, in sequence order; marker symbols tell them apart.
    labels
        One group per sample (e.g. lesion class); samples of a group share a colour and a legend entry.

    Examples
    --------
    >>> xy = np.zeros((3, 4, 2))
    >>> fig = phase_embedding_trajectory(xy, phases=["nc", "art", "pv", "del"], labels=["HCC", "HCC", "cyst"])
    >>> len(fig.data), [t.name for t in fig.data if t.showlegend]
    (3, ['HCC', 'cyst'])
    """
    xy = np.asarray(embeddings, dtype=float)
    if xy.ndim != 3 or xy.shape[1:] != (len(phases), 2):
        raise ValueError(
            f"embeddings must have shape (n_samples, {len(phases)} phases, 2); got {xy.shape}. "
            "Project the per-phase features to two dimensions first (e.g. a PCA fitted on all samples and phases)."
        )
    if labels is not None and len(labels) != len(xy):
        raise ValueError(f"labels must give one group per sample; got {len(labels)} labels for {len(xy)} samples.")
    groups = list(dict.fromkeys(labels)) if labels is not None else []
    symbols = ["circle", "square", "diamond", "triangle-up", "x", "star", "cross", "pentagon"]
    shown: set[str] = set()
    fig = go.Figure()
    for n, path in enumerate(xy):
        group = str(labels[n]) if labels is not None else f"sample {n}"
        colour = qualitative.Plotly[(groups.index(labels[n]) if labels is not None else n) % len(qualitative.Plotly)]
        fig.add_trace(go.Scatter(
            x=path[:, 0], y=path[:, 1], mode="lines+markers", name=group, legendgroup=group,
            showlegend=group not in shown, line={"color": colour, "width": 1.5},
            marker={"color": colour, "size": 9, "symbol": [symbols[t % len(symbols)] for t in range(len(phases))]},
            text=[p.replace("_", " ") for p in phases],
            hovertemplate=f"{group} (sample {n})<br>%{{text}}<extra></extra>",
        ))
        shown.add(group)
    order = " → ".join(p.replace("_", " ") for p in phases)
    fig.update_layout(title=f"Phase trajectories in a 2D embedding ({order}; marker shape = phase)",
                      xaxis_title="component 1", yaxis_title="component 2")
    return fig
