"""Candidate pre-selection and module detection within one stage.

Candidates are the features that move most in a stage (highest within-stage SD, or largest
change against the reference stage). Modules are groups of candidates that co-vary: either
clusters of average-linkage hierarchical clustering on ``1 - |r|`` (Chen et al. 2012), or
communities of a correlation graph found by Louvain modularity (BioTIP-style; BioTIP's default is
igraph's random walk, Louvain is its networkx counterpart).

Every function returns modules as arrays of positions (into the correlation matrix it was given),
ordered by size (largest first), ties by their first position: that order is what breaks ties
between equal indices downstream.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from hccomics._options import check_option
from hccomics.dnb._correlation import corr, standardize
from hccomics.dnb.indices import composite_arrays
from hccomics.errors import DataValidationError

__all__ = [
    "DEFAULT_CUT_DISTANCE",
    "DEFAULT_EDGE_THRESHOLD",
    "community_modules",
    "hierarchical_modules",
    "select_candidates",
]

PRESELECT = ("sd", "change", "sd_ratio")
DEFAULT_CUT_DISTANCE = 0.3   # average linkage: merged groups keep a mean |r| of at least 0.7
DEFAULT_EDGE_THRESHOLD = 0.8  # correlation graph: an edge where |r| >= 0.8
DEFAULT_MIN_SIZE = 5


def candidate_scores(sd: np.ndarray, mean: np.ndarray, n: int, *, method: str,
                     ref: tuple[np.ndarray, np.ndarray, int] | None = None) -> np.ndarray:
    """Per-feature pre-selection score of one stage from its moments (higher = more candidate).

    ``"sd"``: the within-stage SD. ``"change"``: ``|mean - mean_ref| / pooled SD`` against the
    reference stage's ``(sd, mean, n)``; without a reference (the reference stage itself) the SD.
    """
    if method == "sd" or ref is None:
        return sd
    sd_r, mean_r, n_r = ref
    if method == "sd_ratio":  # variance rising against the reference: the DNB signature (Chen et al. 2012)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.nan_to_num(sd / sd_r, nan=0.0, posinf=0.0)
    pooled = np.sqrt(((n - 1) * sd**2 + (n_r - 1) * sd_r**2) / (n + n_r - 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        score = np.abs(mean - mean_r) / pooled
    return np.nan_to_num(score, nan=0.0, posinf=0.0)


def top_candidates(score: np.ndarray, n_candidates: int) -> np.ndarray:
    """Positions of the ``n_candidates`` highest scores, best first (ties: lower position first)."""
    return np.argsort(-score, kind="stable")[: min(n_candidates, score.size)]


def select_candidates(
    data: Any,
    *,
    method: Literal["sd", "change", "sd_ratio"] = "sd",
    n_candidates: int | None = None,
    reference: Any = None,
) -> np.ndarray:
    """Pre-select the candidate features of one stage.

    Parameters
    ----------
    data
        One stage's samples x features (array or DataFrame).
    method
        ``"sd"``: top features by within-stage SD (scale-dependent: bring features to a common
        scale first when they are not all log expression). ``"change"``: top features by
        ``|mean - mean_ref| / pooled SD`` (a two-sample standardised difference) against ``reference``.
    n_candidates
        How many to keep; default ``min(2000, G)``.
    reference
        The reference stage's samples x features, for ``method="change"``.

    Returns
    -------
    numpy.ndarray
        Feature positions, best first.

    Examples
    --------
    >>> x = np.random.default_rng(0).normal(size=(10, 6)) * [1, 1, 5, 1, 3, 1]
    >>> select_candidates(x, n_candidates=2).tolist()
    [2, 4]
    """
    check_option("method", method, PRESELECT)
    x = np.asarray(data, dtype=np.float64)
    n_candidates = min(2000, x.shape[1]) if n_candidates is None else int(n_candidates)
    if n_candidates < 1:
        raise DataValidationError(f"n_candidates must be at least 1, got {n_candidates}")
    ref = None
    if method == "change":
        if reference is None:
            raise DataValidationError("method='change' needs reference= (the reference stage's samples x features)")
        r = np.asarray(reference, dtype=np.float64)
        ref = (r.std(axis=0, ddof=1), r.mean(axis=0), r.shape[0])
    score = candidate_scores(x.std(axis=0, ddof=1), x.mean(axis=0), x.shape[0], method=method, ref=ref)
    return top_candidates(score, n_candidates)


def _ordered(groups: list[np.ndarray], min_size: int) -> list[np.ndarray]:
    keep = [np.sort(g) for g in groups if g.size >= min_size]
    keep.sort(key=lambda g: (-g.size, int(g[0])))
    return keep


def _check_corr(r: np.ndarray) -> np.ndarray:
    r = np.asarray(r, dtype=np.float64)
    if r.ndim != 2 or r.shape[0] != r.shape[1]:
        raise DataValidationError(f"expected a square correlation matrix, got shape {r.shape}")
    return r


def hierarchical_modules(
    r: np.ndarray,
    *,
    absolute: bool = True,
    cut_distance: float | None = None,
    n_clusters: int | None = None,
    min_size: int = DEFAULT_MIN_SIZE,
) -> list[np.ndarray]:
    """Modules by average-linkage hierarchical clustering on ``1 - |r|`` (or ``1 - r``).

    Parameters
    ----------
    r
        Candidates x candidates correlation matrix.
    absolute
        Distance ``1 - |r|`` (default: anti-correlated features join) or ``1 - r`` (signed).
    cut_distance
        Cut the tree at this cophenetic distance: with average linkage a module's members then
        have a mean |r| of at least ``1 - cut_distance`` across every merge. Default 0.3 (mean |r| >= 0.7: DNB members are strongly correlated near the critical state).
    n_clusters
        Cut into this many clusters instead (overrides ``cut_distance``).
    min_size
        Smallest module kept.

    Returns
    -------
    list of numpy.ndarray
        Positions into ``r`` per module, largest first.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(30, 12))
    >>> x[:, :6] += 3 * rng.normal(size=(30, 1))
    >>> z, _ = standardize(x)
    >>> [m.tolist() for m in hierarchical_modules(corr(z), min_size=3)]
    [[0, 1, 2, 3, 4, 5]]
    """
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    r = _check_corr(r)
    if r.shape[0] < 2:
        return []
    d = np.abs(r) if absolute else r.copy()
    np.subtract(1.0, d, out=d)
    cond = squareform(d, checks=False)  # the upper triangle; r is symmetric
    np.clip(cond, 0.0, 2.0, out=cond)
    tree = linkage(cond, method="average")
    if n_clusters is not None:
        labels = fcluster(tree, t=int(n_clusters), criterion="maxclust")
    else:
        cut = DEFAULT_CUT_DISTANCE if cut_distance is None else float(cut_distance)
        labels = fcluster(tree, t=cut, criterion="distance")
    order = np.argsort(labels, kind="stable")
    groups = np.split(order, np.flatnonzero(np.diff(labels[order])) + 1)
    return _ordered(groups, min_size)


def community_modules(
    r: np.ndarray,
    *,
    absolute: bool = True,
    threshold: float | None = None,
    top_k: int | None = None,
    resolution: float = 1.0,
    min_size: int = DEFAULT_MIN_SIZE,
    seed: int = 0,
) -> list[np.ndarray]:
    """Modules as Louvain communities of a correlation graph (BioTIP-style).

    Parameters
    ----------
    r
        Candidates x candidates correlation matrix.
    absolute
        Edge weights ``|r|`` (default) or ``r`` (signed: only positive correlations link).
    threshold
        Link pairs whose weight reaches this value; default 0.8 unless ``top_k`` is given.
    top_k
        Link each feature to its ``top_k`` strongest partners instead (union over features).
    resolution
        Louvain resolution (higher: smaller communities).
    min_size
        Smallest module kept; isolated features never form one.
    seed
        Seed of the Louvain node order (``networkx.community.louvain_communities``).

    Returns
    -------
    list of numpy.ndarray
        Positions into ``r`` per module, largest first.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(30, 12))
    >>> x[:, :6] += 3 * rng.normal(size=(30, 1))
    >>> z, _ = standardize(x)
    >>> [m.tolist() for m in community_modules(corr(z), min_size=3, seed=0)]
    [[0, 1, 2, 3, 4, 5]]
    """
    import networkx as nx

    r = _check_corr(r)
    c = r.shape[0]
    if c < 2:
        return []
    w = np.abs(r) if absolute else r.copy()
    np.fill_diagonal(w, -np.inf)
    if top_k is not None:
        k = max(1, min(int(top_k), c - 1))
        nbr = np.argpartition(-w, k - 1, axis=1)[:, :k]
        i = np.repeat(np.arange(c), k)
        j = nbr.ravel()
        keep = w[i, j] > 0
        i, j = np.minimum(i, j)[keep], np.maximum(i, j)[keep]
        pairs = np.unique(np.stack([i, j], axis=1), axis=0)
        i, j = pairs[:, 0], pairs[:, 1]
    else:
        t = DEFAULT_EDGE_THRESHOLD if threshold is None else float(threshold)
        i, j = np.nonzero(np.triu(w >= t, k=1))
    graph = nx.Graph()
    graph.add_nodes_from(range(c))
    graph.add_weighted_edges_from(zip(i.tolist(), j.tolist(), w[i, j].tolist()))
    communities = nx.community.louvain_communities(graph, weight="weight", resolution=resolution, seed=seed)
    return _ordered([np.fromiter(cm, dtype=np.intp) for cm in communities], min_size)


@dataclass
class StageOptions:
    """Options of :func:`stage_modules` (resolved by :func:`hccomics.dnb.critical.critical_state`)."""

    method: str
    preselect: str
    n_candidates: int
    absolute: bool
    shrinkage: bool
    reference: int
    min_size: int
    cut_distance: float
    n_clusters: int | None
    edge_threshold: float | None
    top_k: int | None
    resolution: float
    seed: int


def stage_modules(x: np.ndarray, groups: Sequence[np.ndarray], o: StageOptions, *, keep: bool = False) -> list[dict]:
    """Candidates, modules and the composite index of every module, stage by stage.

    ``groups`` holds each stage's sample rows of ``x``. Per stage returns the best module's index
    (``stat``, -inf without a module), its position (``best``, the first of equal maxima) and, with
    ``keep``, the modules (feature positions), their index arrays and the stage's data.
    """
    ref = None
    if o.preselect in ("change", "sd_ratio"):
        xr = x[groups[o.reference]]
        ref = (xr.std(axis=0, ddof=1), xr.mean(axis=0), xr.shape[0])
    out = []
    for s, g in enumerate(groups):
        xs = x[g]
        z, sd = standardize(xs)
        score = candidate_scores(sd, xs.mean(axis=0), xs.shape[0], method=o.preselect,
                                 ref=None if s == o.reference else ref)
        cand = top_candidates(score, o.n_candidates)
        # modules from plain r even with shrinkage: a stage-wide lambda would only rescale the cut
        rc = corr(z[:, cand])
        if o.method == "dnb":
            found = hierarchical_modules(rc, absolute=o.absolute, cut_distance=o.cut_distance,
                                         n_clusters=o.n_clusters, min_size=o.min_size)
        else:
            found = community_modules(rc, absolute=o.absolute, threshold=o.edge_threshold, top_k=o.top_k,
                                      resolution=o.resolution, min_size=o.min_size, seed=o.seed)
        mods = [np.sort(cand[m]) for m in found]
        arr = composite_arrays(z, sd, mods, absolute=o.absolute, shrinkage=o.shrinkage)
        idx = np.where(np.isfinite(arr["index"]), arr["index"], -np.inf)
        best = int(np.argmax(idx)) if idx.size else -1  # first of equal maxima: the larger module
        stat = float(idx[best]) if best >= 0 else -np.inf
        if ref is not None and s == o.reference:
            stat = -np.inf  # pre-selection against the reference: the reference itself cannot be the critical stage
        res = {"stat": stat, "best": best, "n_candidates": int(cand.size)}
        if keep:
            res.update(modules=mods, arrays=arr, x=xs, z=z, sd=sd)
        out.append(res)
    return out
