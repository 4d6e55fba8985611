"""Landscape dynamic network biomarker (l-DNB): local DNB scores of every feature in every sample.

Liu X, Chang X, Leng S, Tang H, Aihara K, Chen L (2019) Detection for disease tipping points by
landscape dynamic network biomarkers. Natl Sci Rev 6(4): 775-785.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
from anndata import AnnData
from scipy import sparse
from scipy.stats import norm
from tqdm.auto import tqdm

from hccomics.dnb import _ssn
from hccomics.dnb.network import network_edges
from hccomics.errors import DataValidationError

__all__ = ["landscape"]

logger = logging.getLogger(__name__)
_CHUNK_VALUES = 20_000_000  # samples x (edges or triangles) held at once

FORMULA = (
    "I_s(k) = sED_in(k) * sPCC_in(k) / sPCC_out(k) for the local module of feature k (k and its first-order "
    "neighbours N(k)); sED_in = mean |x - mean_ref| over k and N(k); sPCC_in = mean |sPCC| over edges k-u, u in "
    "N(k); sPCC_out = mean |sPCC| over edges u-w, u in N(k), w outside k and N(k); sPCC = PCC(reference + sample) "
    "- PCC(reference); global score = mean of the top_k local scores of the sample"
)


class _Topology:
    """Directed-edge and triangle incidence of an undirected edge list, built once."""

    def __init__(self, i: np.ndarray, j: np.ndarray, p: int) -> None:
        e = i.size
        self.src, self.dst = np.r_[i, j], np.r_[j, i]
        self.eid = np.r_[np.arange(e), np.arange(e)]
        # (2E x p): row d has a 1 at the source of directed edge d; V @ to_src sums V over edges leaving each node
        self.to_src = sparse.csr_matrix((np.ones(2 * e), (np.arange(2 * e), self.src)), shape=(2 * e, p))
        ids = sparse.csr_matrix((np.r_[self.eid + 1], (self.src, self.dst)), shape=(p, p))
        adj = ids.astype(bool).astype(np.int8)
        common = (adj[i].multiply(adj[j])).tocoo()          # edge e=(u, v), centre k adjacent to both
        base, centre = common.row, common.col
        self.tri_base = base                                # the edge u-v inside N(k)
        self.tri_a = np.asarray(ids[centre, i[base]]).ravel() - 1  # edge k-u
        self.tri_b = np.asarray(ids[centre, j[base]]).ravel() - 1  # edge k-v
        self.tri_to_centre = sparse.csr_matrix((np.ones(base.size), (np.arange(base.size), centre)),
                                               shape=(base.size, p))
        self.n_edges, self.n_triangles = e, base.size // 3


def local_scores(ref: _ssn.Reference, i: np.ndarray, j: np.ndarray, *, edge_alpha: float | None = None,
                 min_neighbors: int = 3, progress: bool = True) -> dict[str, np.ndarray]:
    """Local l-DNB terms of every feature (samples x features): ``sed_in``, ``spcc_in``, ``spcc_out``,
    ``n_neighbors`` and ``score`` (NaN where the local module has fewer than ``min_neighbors``
    first-order neighbours or no outer edge).

    ``edge_alpha``: keep, per sample, only edges whose sPCC is significant in the single-sample
    network z-test (``Z = sPCC / ((1 - PCC_n^2) / (n - 1))``, Liu et al. NAR 2016) at this level.
    """
    p, n_obs = ref.mean.size, ref.deviation.shape[0]
    topo = _Topology(i, j, p)
    sed_all = ref.sed
    out = {k: np.full((n_obs, p), np.nan) for k in ("sed_in", "spcc_in", "spcc_out", "score")}
    out["n_neighbors"] = np.zeros((n_obs, p))
    width = max(2 * topo.n_edges, 3 * topo.n_triangles, 1)
    step = max(1, _CHUNK_VALUES // width)
    chunks = range(0, n_obs, step)
    for start in tqdm(chunks, desc="l-DNB", unit="chunk", disable=not progress or len(chunks) < 3):
        rows = np.arange(start, min(start + step, n_obs))
        if edge_alpha is None:
            w = np.abs(_ssn.delta_pcc(ref, i, j, rows))
            m = np.ones_like(w)
        else:
            delta, base = _ssn.delta_pcc(ref, i, j, rows, with_base=True)
            n_base = np.where(ref.is_reference[rows], ref.n - 1, ref.n)[:, None]
            with np.errstate(divide="ignore", invalid="ignore"):
                z = delta * (n_base - 1) / (1 - base**2)
            m = (2 * norm.sf(np.abs(z)) < edge_alpha).astype(float)
            w = np.abs(delta) * m
        w, sed = np.nan_to_num(w), sed_all[rows]
        md, wd = m[:, topo.eid], w[:, topo.eid]
        deg = md @ topo.to_src
        strength = wd @ topo.to_src
        nb_strength = (md * strength[:, topo.dst]) @ topo.to_src
        nb_deg = (md * deg[:, topo.dst]) @ topo.to_src
        inside = m[:, topo.tri_a] * m[:, topo.tri_b]
        tri_w = (inside * w[:, topo.tri_base]) @ topo.tri_to_centre
        tri_m = (inside * m[:, topo.tri_base]) @ topo.tri_to_centre
        out_sum = np.clip(nb_strength - strength - 2 * tri_w, 0, None)
        out_n = np.rint(nb_deg - deg - 2 * tri_m)
        with np.errstate(divide="ignore", invalid="ignore"):
            sed_in = (sed + (md * sed[:, topo.dst]) @ topo.to_src) / (deg + 1)
            spcc_in = strength / deg
            spcc_out = out_sum / out_n
            score = sed_in * spcc_in / spcc_out
        ok = (deg >= min_neighbors) & (out_n >= 1) & (spcc_out > 1e-12)
        for key, val in (("sed_in", sed_in), ("spcc_in", spcc_in), ("spcc_out", spcc_out), ("score", score)):
            out[key][rows] = np.where(ok, val, np.nan)
        out["n_neighbors"][rows] = deg
    return out


def _nanmean(values: np.ndarray, axis: int) -> np.ndarray:
    """Mean over the finite values along ``axis``; NaN where there are none (no warning)."""
    ok = np.isfinite(values)
    count = ok.sum(axis=axis)
    total = np.where(ok, values, 0.0).sum(axis=axis)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _global(scores: np.ndarray, top_k: int) -> np.ndarray:
    """Mean of each row's ``top_k`` largest finite values (all of them when fewer)."""
    filled = np.where(np.isfinite(scores), scores, -np.inf)
    k = min(top_k, scores.shape[1])
    return _nanmean(-np.sort(-filled, axis=1)[:, :k], axis=1)


def landscape(
    adata: AnnData,
    *,
    network: nx.Graph | str | Path | pd.DataFrame | None = None,
    stage_key: str = "stage",
    reference_stage: str | None = None,
    top_k: int = 20,
    min_neighbors: int = 3,
    edge_alpha: float | None = None,
    gene_symbols: str | None = None,
    stage_order: Sequence[str] | None = None,
    layer: str | None = None,
    key_added: str = "ldnb",
    copy: bool = False,
) -> AnnData | None:
    """Landscape DNB: a local DNB score for every feature in every sample, and a global score per sample.

    Each feature ``k`` with its first-order neighbours ``N(k)`` in the network is a local module.
    For a sample, against the reference stage (means ``mu``, ``n`` samples):

    * ``sED_in(k) = mean |x_v - mu_v|`` over ``v`` in ``{k} + N(k)`` (local single-sample deviation);
    * ``sPCC_in(k) = mean |sPCC(k, u)|`` over ``u`` in ``N(k)``;
    * ``sPCC_out(k) = mean |sPCC(u, w)|`` over network edges from ``u`` in ``N(k)`` to ``w``
      outside ``{k} + N(k)`` (the second-order neighbours);
    * ``I_s(k) = sED_in * sPCC_in / sPCC_out``,

    with ``sPCC = PCC(reference + sample) - PCC(reference)`` (single-sample network). The global
    score of a sample is the mean of its ``top_k`` local scores; the critical stage is the
    (non-reference) stage with the highest mean global score.

    Deviations from the paper: the default network is a WikiPathways co-membership graph, not
    the paper's PPI network (see :func:`~hccomics.dnb.network.pathway_network`); by default
    every sample uses the whole background network, whereas the paper first keeps each sample's
    significant sPCC edges (``edge_alpha=0.05`` does that, with the SSN z-test); reference
    samples are scored leave-one-out against the other reference samples.

    Parameters
    ----------
    adata
        Samples x features (log-scale expression).
    network
        A networkx graph, an edge-list file (:func:`~hccomics.dnb.network.read_network` defaults),
        a two-column DataFrame, or ``None`` for the bundled pathway co-membership network.
    stage_key, reference_stage, stage_order, layer
        As in :func:`~hccomics.dnb.single_sample.single_sample`.
    top_k
        Local scores averaged into a sample's global score.
    min_neighbors
        Fewest first-order neighbours (measured features) a local module needs to be scored.
    edge_alpha
        Per-sample significance level of the SSN edge test; ``None`` keeps every edge.
    gene_symbols
        var column whose values match the network's node names (default ``var_names``).
    key_added
        ``layers[key_added]``: local scores (NaN where unscorable); ``obs[key_added]``: global
        score; ``uns[key_added]``: parameters, formula, network summary, per-stage mean / SD /
        count, ``critical_stage`` and ``module`` (the ``top_k`` features of highest mean local
        score in the critical stage's samples).
    copy
        Return an annotated copy instead of writing into ``adata``.

    Examples
    --------
    >>> import anndata as ad, networkx as nx, numpy as np
    >>> from hccomics.datasets.demo_progression import simulate_progression
    >>> expr, samples, truth = simulate_progression([f"G{i}" for i in range(300)], n_features=200, module_size=15,
    ...     samples_per_stage=(8, 8), critical_stage="low_grade_dysplastic_nodule", rng=np.random.default_rng(0))
    >>> a = ad.AnnData(expr, obs=samples)
    >>> g = nx.gnm_random_graph(200, 600, seed=1)
    >>> g = nx.relabel_nodes(g, dict(enumerate(a.var_names)))
    >>> g.add_edges_from((u, v) for u in truth["module_genes"] for v in truth["module_genes"] if u < v)
    >>> landscape(a, network=g, top_k=10)
    >>> a.layers["ldnb"].shape, a.uns["ldnb"]["critical_stage"]
    ((48, 200), 'low_grade_dysplastic_nodule')
    """
    adata = adata.copy() if copy else adata
    stages = _ssn.resolve_stages(adata.obs, stage_key, stage_order, dict(adata.uns))
    ref_stage = _ssn.check_reference_stage(stages, reference_stage)
    for name, value, low in (("top_k", top_k, 1), ("min_neighbors", min_neighbors, 1)):
        if not (isinstance(value, int | np.integer) and value >= low):
            raise DataValidationError(f"{name} must be an integer >= {low}, got {value!r}")
    if edge_alpha is not None and not 0 < edge_alpha < 1:
        raise DataValidationError(f"edge_alpha must be in (0, 1) or None, got {edge_alpha!r}")
    if gene_symbols is not None and gene_symbols not in adata.var.columns:
        raise DataValidationError(f"var has no column {gene_symbols!r} (columns: {list(adata.var.columns)})")
    names = [str(v) for v in (adata.var_names if gene_symbols is None else adata.var[gene_symbols])]
    i, j, net_info = network_edges(network, names)
    x = _ssn.matrix(adata, layer)
    stage = adata.obs[stage_key].astype(str)
    ref = _ssn.reference(x, (stage == ref_stage).to_numpy(), ref_stage, names)

    parts = local_scores(ref, i, j, edge_alpha=edge_alpha, min_neighbors=min_neighbors)
    local = parts["score"]
    scorable = np.isfinite(local).any(axis=0)
    if not scorable.any():
        raise DataValidationError(f"no feature has >= {min_neighbors} network neighbours among the measured "
                                  "features and an outer edge; lower min_neighbors or use a denser network")
    global_score = _global(local, top_k)
    adata.layers[key_added] = local
    adata.obs[key_added] = global_score
    summary = _ssn.stage_summary(pd.Series(global_score, index=adata.obs_names), stage, stages, ref_stage)
    module: list[str] = []
    if summary["critical_stage"] is not None:
        at = (stage == summary["critical_stage"]).to_numpy()
        mean_local = _nanmean(local[at], axis=0)
        order = np.argsort(-np.nan_to_num(mean_local, nan=-np.inf), kind="stable")
        module = [str(adata.var_names[k]) for k in order[:top_k] if np.isfinite(mean_local[k])]
    adata.uns[key_added] = {
        "params": {"stage_key": stage_key, "reference_stage": ref_stage, "n_reference": ref.n, "top_k": int(top_k),
                   "min_neighbors": int(min_neighbors), "edge_alpha": "none" if edge_alpha is None else edge_alpha,
                   "layer": layer or "X", "stages": stages},
        "formula": FORMULA,
        "network": {**net_info, "n_scorable_features": int(scorable.sum())},
        "module": module,
        **summary,
    }
    logger.info("l-DNB on %d edges (%d scorable features): highest mean global score at %s",
                net_info["n_edges"], int(scorable.sum()), summary["critical_stage"])
    return adata if copy else None
