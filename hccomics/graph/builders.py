"""Graph builders (PyTorch Geometric): patient-similarity graphs, the gene co-membership graph, the
heterogeneous patient-gene-image graph. Every builder validates what it returns (``Data.validate``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import pandas as pd

from hccomics._options import check_option
from hccomics.errors import DataValidationError

__all__ = ["gene_graph", "hetero_graph", "knn_edges", "patient_graph", "standardise"]

METRICS = ("cosine", "euclidean", "correlation")


def standardise(block: pd.DataFrame, train: Sequence[str] | pd.Index, *, clip: float = 6.0) -> tuple[np.ndarray, np.ndarray]:
    """Z-score with the training rows' mean and SD, clipped to ``[-clip, clip]``; NaN cells become 0 (the
    training mean).

    Returns the standardised matrix (float32) and the row mask of patients that have the modality (any
    finite value). Features constant on the training rows become 0.

    Examples
    --------
    >>> b = pd.DataFrame({"a": [1.0, 3.0, np.nan], "b": [2.0, 2.0, 5.0]}, index=["p", "q", "r"])
    >>> X, has = standardise(b, ["p", "q"])
    >>> X.round(2).tolist(), has.tolist()
    ([[-1.0, 0.0], [1.0, 0.0], [0.0, 0.0]], [True, True, True])
    """
    values = block.to_numpy(dtype=float)
    tr = block.index.get_indexer(pd.Index(train))
    if (tr < 0).any():
        raise DataValidationError("training patients are missing from the block")
    with np.errstate(all="ignore"):
        ref = values[tr]
        mean = np.nanmean(ref, axis=0) if len(ref) else np.zeros(values.shape[1])
        sd = np.nanstd(ref, axis=0) if len(ref) else np.ones(values.shape[1])
    mean = np.where(np.isfinite(mean), mean, 0.0)
    sd = np.where(np.isfinite(sd) & (sd > 1e-12), sd, np.inf)  # constant or unseen feature: becomes 0
    Z = (values - mean) / sd
    has = np.isfinite(values).any(axis=1)
    Z[~np.isfinite(Z)] = 0.0
    np.clip(Z, -clip, clip, out=Z)  # an outlying value would otherwise dominate a similarity or a product
    return Z.astype(np.float32), has


def knn_edges(X: np.ndarray, *, k: int = 10, metric: Literal["cosine", "euclidean", "correlation"] = "cosine",
              sources: np.ndarray | None = None, targets: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Directed kNN edges ``source -> target``: each target receives edges from its ``k`` nearest sources.

    ``sources`` and ``targets`` are boolean row masks (default: every row); a row is never its own neighbour.
    Returns ``edge_index`` (2 x E) and the similarity of each edge (1 - distance, as in MOGONET's cosine graphs).

    Examples
    --------
    >>> X = np.array([[1.0, 0], [0.9, 0.1], [0, 1.0], [0.1, 0.9]])
    >>> ei, w = knn_edges(X, k=1)
    >>> ei.tolist()
    [[1, 0, 3, 2], [0, 1, 2, 3]]
    """
    from sklearn.neighbors import NearestNeighbors

    check_option("metric", metric, METRICS)
    n = len(X)
    src = np.flatnonzero(np.ones(n, bool) if sources is None else sources)
    tgt = np.flatnonzero(np.ones(n, bool) if targets is None else targets)
    if len(src) < 2 or len(tgt) == 0:
        return np.zeros((2, 0), dtype=np.int64), np.zeros(0, dtype=np.float32)
    kk = min(k + 1, len(src))
    nn = NearestNeighbors(n_neighbors=kk, metric=metric).fit(X[src])
    dist, ind = nn.kneighbors(X[tgt])
    rows, cols, sims = [], [], []
    for t, d, i in zip(tgt, dist, ind):
        chosen = [(src[j], dj) for j, dj in zip(i, d) if src[j] != t][:k]
        rows += [s for s, _ in chosen]
        cols += [t] * len(chosen)
        sims += [1.0 - dj if metric != "euclidean" else 1.0 / (1.0 + dj) for _, dj in chosen]
    w = np.nan_to_num(np.asarray(sims, dtype=np.float32), nan=0.0)
    return np.vstack([rows, cols]).astype(np.int64), w


def patient_graph(block: pd.DataFrame, *, train: Sequence[str] | pd.Index | None = None, k: int = 10,
                  metric: Literal["cosine", "euclidean", "correlation"] = "cosine",
                  mode: Literal["transductive", "inductive"] = "transductive", y: pd.Series | None = None):
    """Patient-similarity graph of one modality as a PyG ``Data``.

    Features are standardised with the training patients' statistics. Patients without the modality (a row
    of NaN) are isolated nodes. ``transductive``: every patient with the modality takes its ``k`` nearest
    neighbours among all of them (symmetrised), so test patients' *features* shape the graph; no label is
    used. ``inductive``: training patients link only to training patients, and each other patient receives
    edges from its ``k`` nearest training patients and sends none, so neither its features nor its label reach
    the training patients (the label-free, cohort-wide steps of :func:`fusion_inputs`, VST and gene selection,
    come before and are outside the folds).

    Parameters
    ----------
    block
        Patients x features (one modality of :class:`~hccomics.graph.FusionInputs`).
    train
        Training patients (default: all).
    y
        Optional labels stored as ``data.y`` (NaN where unknown); never used to build edges.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> b = pd.DataFrame(rng.normal(size=(30, 4)), index=[f"p{i}" for i in range(30)])
    >>> g = patient_graph(b, train=b.index[:20], k=5, mode="inductive")
    >>> g.num_nodes, bool(g.train_mask.sum() == 20), g.validate()
    (30, True, True)
    """
    import torch
    from torch_geometric.data import Data

    check_option("mode", mode, ("transductive", "inductive"))
    if k < 1:
        raise DataValidationError(f"k must be at least 1 (got {k})")
    train = block.index if train is None else pd.Index(train)
    X, has = standardise(block, train)
    is_train = block.index.isin(train)
    if mode == "transductive":
        ei, w = knn_edges(X, k=k, metric=metric, sources=has, targets=has)
        ei, w = _symmetrise(ei, w, len(X))
    else:
        inner, wi = knn_edges(X, k=k, metric=metric, sources=has & is_train, targets=has & is_train)
        inner, wi = _symmetrise(inner, wi, len(X))
        outer, wo = knn_edges(X, k=k, metric=metric, sources=has & is_train, targets=has & ~is_train)
        ei, w = np.hstack([inner, outer]), np.concatenate([wi, wo])
    data = Data(x=torch.as_tensor(X), edge_index=torch.as_tensor(ei), edge_weight=torch.as_tensor(w).clamp_min(0.0),
                num_nodes=len(X))
    data.train_mask = torch.as_tensor(is_train)
    data.has_modality = torch.as_tensor(has)
    if y is not None:
        data.y = torch.as_tensor(pd.to_numeric(y.reindex(block.index)).to_numpy(dtype=np.float32))
    data.validate(raise_on_error=True)
    data.patients = list(block.index)
    return data


def _symmetrise(ei: np.ndarray, w: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    if ei.shape[1] == 0:
        return ei, w
    both = np.hstack([ei, ei[::-1]])
    ww = np.concatenate([w, w])
    key = both[0] * n + both[1]
    _, first = np.unique(key, return_index=True)
    return both[:, first], ww[first]


def gene_graph(genes: Sequence[str], *, collection: str = "wikipathways", min_shared: int = 1, marked: str = "WP4172"):
    """Gene graph from pathway co-membership in a bundled collection (edge weight: number of shared pathways).

    ``data.marked`` flags members of ``marked`` (the PI3K-Akt pathway WP4172 by default); ``data.pathways``
    lists each gene's pathways. Genes in no pathway of the collection are isolated nodes.

    Examples
    --------
    >>> g = gene_graph(["PIK3CA", "AKT1", "IL6", "NOTAGENE"])
    >>> g.num_nodes, g.marked.tolist(), bool(g.has_isolated_nodes())
    (4, [True, True, True, False], True)
    """
    import torch
    from torch_geometric.data import Data

    from hccomics.datasets.genesets import gene_sets

    genes = [str(g) for g in genes]
    sets = gene_sets(collection)
    pos = {g: i for i, g in enumerate(genes)}
    members = {name: [pos[g] for g in s.genes if g in pos] for name, s in sets.items()}
    shared: dict[tuple[int, int], int] = {}
    for idx in members.values():
        for a in idx:
            for b in idx:
                if a != b:
                    shared[(a, b)] = shared.get((a, b), 0) + 1
    pairs = [(a, b, c) for (a, b), c in shared.items() if c >= min_shared]
    ei = np.array([[a for a, _, _ in pairs], [b for _, b, _ in pairs]], dtype=np.int64).reshape(2, -1)
    w = np.array([c for _, _, c in pairs], dtype=np.float32)
    data = Data(x=torch.eye(len(genes)), edge_index=torch.as_tensor(ei), edge_weight=torch.as_tensor(w),
                num_nodes=len(genes))
    marked_set = set(sets[marked].genes) if marked in sets else set()
    data.marked = torch.as_tensor([g in marked_set for g in genes])
    data.validate(raise_on_error=True)
    data.genes = genes
    data.pathways = {g: [n for n, idx in members.items() if pos[g] in idx] for g in genes}
    return data


def hetero_graph(blocks: Mapping[str, pd.DataFrame], *, train: Sequence[str] | pd.Index | None = None,
                 patient_block: str = "clinical", gene_block: str = "rna", feature_block: str | None = "image",
                 mode: Literal["transductive", "inductive"] = "transductive", genes_collection: str = "wikipathways"):
    """Heterogeneous graph of patients, genes and image features (``HeteroData``).

    Patients carry their ``patient_block`` features (clinical). Every patient links to every gene of
    ``gene_block`` and to every image feature of ``feature_block`` it has, with the standardised value on the
    edge (``edge_weight``); genes link by pathway co-membership. Gene and image-feature nodes carry one-hot
    identities, so their attributions are per gene / per feature. Edges run both ways; in ``inductive`` mode
    edges *from* non-training patients are dropped, so they receive but never send messages.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> ids = [f"p{i}" for i in range(6)]
    >>> blocks = {"clinical": pd.DataFrame(rng.normal(size=(6, 2)), index=ids),
    ...           "rna": pd.DataFrame(rng.normal(size=(6, 3)), index=ids, columns=["PIK3CA", "AKT1", "TP53"])}
    >>> h = hetero_graph(blocks, train=ids[:4], feature_block=None, mode="inductive")
    >>> h["gene", "expressed_in", "patient"].num_edges, h["patient", "expresses", "gene"].num_edges
    (18, 12)
    """
    import torch
    from torch_geometric.data import HeteroData

    check_option("mode", mode, ("transductive", "inductive"))
    for name in (patient_block, gene_block, feature_block):
        if name is not None and name not in blocks:
            raise DataValidationError(f"block '{name}' is missing (have {list(blocks)})")
    pb = blocks[patient_block]
    patients = pb.index
    train = patients if train is None else pd.Index(train)
    is_train = patients.isin(train)
    data = HeteroData()
    Xp, _ = standardise(pb, train)
    data["patient"].x = torch.as_tensor(Xp)
    data["patient"].train_mask = torch.as_tensor(is_train)

    def link(kind: str, block: pd.DataFrame, rel: str, back: str) -> None:
        X, has = standardise(block.reindex(patients), train)
        observed = np.isfinite(block.reindex(patients).to_numpy(dtype=float)) & has[:, None]
        p, f = np.nonzero(observed)
        data[kind].x = torch.eye(block.shape[1])
        data[kind].names = list(block.columns)
        w = torch.as_tensor(X[p, f])
        data[kind, rel, "patient"].edge_index = torch.as_tensor(np.vstack([f, p]).astype(np.int64))
        data[kind, rel, "patient"].edge_weight = w
        send = is_train[p] if mode == "inductive" else np.ones(len(p), bool)
        data["patient", back, kind].edge_index = torch.as_tensor(np.vstack([p[send], f[send]]).astype(np.int64))
        data["patient", back, kind].edge_weight = w[torch.as_tensor(send)]

    link("gene", blocks[gene_block], "expressed_in", "expresses")
    genes = gene_graph(list(blocks[gene_block].columns), collection=genes_collection)
    data["gene", "co_member", "gene"].edge_index = genes.edge_index
    data["gene", "co_member", "gene"].edge_weight = genes.edge_weight / max(float(genes.edge_weight.max()), 1.0) \
        if genes.edge_weight.numel() else genes.edge_weight
    data["gene"].marked = genes.marked
    if feature_block is not None:
        link("image_feature", blocks[feature_block], "measured_in", "measures")
    data.validate(raise_on_error=True)
    data.patients = list(patients)
    return data
