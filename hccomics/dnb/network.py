"""Background networks for landscape DNB: user edge lists and a bundled pathway co-membership network."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd

from hccomics._options import check_option
from hccomics.errors import DataValidationError

__all__ = ["pathway_network", "read_network"]

logger = logging.getLogger(__name__)
DEFAULT_MAX_SET_SIZE = 30
DEFAULT_MIN_SET_SIZE = 3


def _separator(path: Path) -> str:
    import gzip

    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt") as fh:
        first = next((line for line in fh if line.strip()), "")
    if not first:
        raise DataValidationError(f"{path} is empty; an edge list needs a header and one edge per line")
    if "\t" in first:
        return "\t"
    if "," in first:
        return ","
    return r"\s+"


def read_network(
    path: str | Path,
    *,
    source: str | None = None,
    target: str | None = None,
    score_column: str | None = None,
    min_score: float | None = None,
    rename: Mapping[str, str] | None = None,
) -> nx.Graph:
    """Read an edge list (CSV, TSV or whitespace separated, with a header) into an undirected graph.

    Works with a STRING export (``protein1 protein2 combined_score``, scores 0-1000 in the
    download files, 0-1 in the web app's TSV) or any two-column table. Self loops are dropped
    and repeated edges (A-B and B-A) merged, keeping the highest score.

    Parameters
    ----------
    path
        The file, plain or gzipped (``.gz``, as STRING ships it); the separator (tab, comma,
        else whitespace) is read from its first line.
    source, target
        Columns holding the two ends; default the first two columns.
    score_column
        Column with an edge confidence; default ``combined_score`` when present. Stored as the
        edge attribute ``score``.
    min_score
        Keep edges with ``score >= min_score`` only (STRING: 700 = high, 900 = highest
        confidence in the download files).
    rename
        Map node names to the feature names of your data (e.g. STRING ``9606.ENSP...`` ids to
        gene symbols from ``protein.info``); nodes missing from it keep their name.

    Returns
    -------
    networkx.Graph with ``graph["source"]`` naming the file and the threshold.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "string.txt"
    >>> _ = f.write_text("protein1 protein2 combined_score\\nA B 950\\nB A 950\\nB C 400\\nC C 999\\n")
    >>> g = read_network(f, min_score=700)
    >>> sorted(g.edges(data="score"))
    [('A', 'B', 950.0)]
    """
    path = Path(path)
    if not path.is_file():
        raise DataValidationError(f"network file {path} does not exist; pass the path of an edge list")
    table = pd.read_csv(path, sep=_separator(path), engine="python", dtype=str, comment=None)
    table.columns = [str(c).lstrip("#").strip() for c in table.columns]
    cols = list(table.columns)
    if len(cols) < 2:
        raise DataValidationError(f"{path} has {len(cols)} column(s); an edge list needs two (source, target), "
                                  "e.g. a STRING export 'protein1 protein2 combined_score'")
    source, target = source or cols[0], target or cols[1]
    if score_column is None and "combined_score" in cols:
        score_column = "combined_score"
    missing = [c for c in (source, target, score_column) if c is not None and c not in cols]
    if missing:
        raise DataValidationError(f"{path} has no column(s) {missing}; its columns are {cols}")
    if min_score is not None and score_column is None:
        raise DataValidationError(f"min_score={min_score} needs a score column, but {path} has none of "
                                  f"'combined_score' among {cols}; pass score_column=")
    edges = pd.DataFrame({"a": table[source].str.strip(), "b": table[target].str.strip()})
    if score_column is not None:
        edges["score"] = pd.to_numeric(table[score_column], errors="coerce").astype(float)
        bad = int(edges["score"].isna().sum())
        if bad:
            raise DataValidationError(f"{bad} row(s) of {path} have a non-numeric {score_column!r} (first at data "
                                      f"row {int(np.flatnonzero(edges['score'].isna())[0]) + 1}); fix or drop them")
        if min_score is not None:
            edges = edges[edges["score"] >= min_score]
    if rename:
        edges["a"], edges["b"] = edges["a"].map(lambda v: rename.get(v, v)), edges["b"].map(lambda v: rename.get(v, v))
    graph = _graph(edges)
    graph.graph["source"] = f"{path.name}" + (f" ({score_column} >= {min_score})" if min_score is not None else "")
    logger.info("read %d edges among %d nodes from %s", graph.number_of_edges(), graph.number_of_nodes(), path)
    return graph


def _graph(edges: pd.DataFrame) -> nx.Graph:
    edges = edges.dropna(subset=["a", "b"])
    edges = edges[edges["a"] != edges["b"]]
    lo, hi = np.minimum(edges["a"], edges["b"]), np.maximum(edges["a"], edges["b"])
    edges = edges.assign(a=lo, b=hi)
    graph = nx.Graph()
    if "score" in edges:
        edges = edges.groupby(["a", "b"], as_index=False)["score"].max()
        graph.add_weighted_edges_from(edges[["a", "b", "score"]].itertuples(index=False), weight="score")
    else:
        graph.add_edges_from(edges[["a", "b"]].drop_duplicates().itertuples(index=False))
    return graph


@lru_cache(maxsize=4)
def _co_membership(collection: str, min_set_size: int, max_set_size: int) -> tuple[tuple[str, str, int], ...]:
    from hccomics.datasets.genesets import gene_sets

    counts: dict[tuple[str, str], int] = {}
    for gs in gene_sets(collection).values():
        if min_set_size <= gs.size <= max_set_size:
            for pair in itertools.combinations(sorted(gs.genes), 2):
                counts[pair] = counts.get(pair, 0) + 1
    return tuple((a, b, n) for (a, b), n in sorted(counts.items()))


def pathway_network(
    collection: str = "wikipathways",
    *,
    min_set_size: int = DEFAULT_MIN_SET_SIZE,
    max_set_size: int = DEFAULT_MAX_SET_SIZE,
    genes: Iterable[str] | None = None,
) -> nx.Graph:
    """Pathway co-membership network from a bundled gene-set collection (the default l-DNB network).

    Two genes are linked when they belong to a common set whose size (in the bundled file) is
    between ``min_set_size`` and ``max_set_size``; the edge attribute ``n_shared`` counts such
    sets. Large sets are left out because every set becomes a clique: with WikiPathways 2019
    and sets of 3 to 30 genes the graph has about 2,200 genes and 30,000 edges (density ~1%,
    mean degree ~28); with 3 to 100 genes it would have five times the edges.

    This is **not** the protein-protein interaction network of the l-DNB paper (Liu et al. 2019
    used a STRING-like PPI): shared pathway membership is a functional, clique-shaped proxy,
    so first-order neighbourhoods are pathway members rather than physical partners. Pass a
    STRING edge list (:func:`read_network`) to follow the paper.

    Parameters
    ----------
    collection
        ``"wikipathways"`` or ``"hallmark"`` (see :func:`hccomics.datasets.gene_sets`).
    min_set_size, max_set_size
        Sizes of the sets that contribute edges.
    genes
        Keep only these genes (the measured features); edges between them are unchanged.

    Examples
    --------
    >>> g = pathway_network()
    >>> g.number_of_edges() > 10_000, nx.density(g) < 0.05, nx.number_of_selfloops(g)
    (True, True, 0)
    """
    check_option("collection", collection, ("wikipathways", "hallmark"))
    if not (isinstance(min_set_size, int) and isinstance(max_set_size, int) and 2 <= min_set_size <= max_set_size):
        raise DataValidationError(f"need integers 2 <= min_set_size <= max_set_size, got {min_set_size!r}, "
                                  f"{max_set_size!r}")
    edges = _co_membership(collection, min_set_size, max_set_size)
    if genes is not None:
        keep = {str(g) for g in genes}
        edges = tuple(e for e in edges if e[0] in keep and e[1] in keep)
    graph = nx.Graph()
    graph.add_weighted_edges_from(edges, weight="n_shared")
    graph.graph["source"] = f"{collection} co-membership, sets of {min_set_size}-{max_set_size} genes"
    return graph


def network_edges(network: nx.Graph | str | Path | pd.DataFrame | None,
                  features: list[str]) -> tuple[np.ndarray, np.ndarray, dict]:
    """Undirected edges among ``features`` as index arrays ``(i, j)`` with ``i < j``, and a summary.

    ``network`` may be a graph, an edge-list file, a DataFrame whose first two columns are the
    ends, or ``None`` for :func:`pathway_network` restricted to ``features``.
    """
    if network is None:
        network = pathway_network(genes=features)
    elif isinstance(network, str | Path):
        network = read_network(network)
    elif isinstance(network, pd.DataFrame):
        if network.shape[1] < 2:
            raise DataValidationError("an edge-list DataFrame needs two columns (source, target)")
        network = _graph(pd.DataFrame({"a": network.iloc[:, 0].astype(str), "b": network.iloc[:, 1].astype(str)}))
    if not isinstance(network, nx.Graph):
        raise DataValidationError(f"network must be a networkx Graph, an edge-list path, a DataFrame or None; "
                                  f"got {type(network).__name__}")
    index = {f: k for k, f in enumerate(features)}
    pairs = {(min(index[a], index[b]), max(index[a], index[b]))
             for a, b in network.edges() if a in index and b in index and a != b}
    if not pairs:
        sample = list(itertools.islice(network.nodes(), 5))
        raise DataValidationError(f"no edge of the network joins two measured features (network nodes look like "
                                  f"{sample}, features like {features[:5]}); map the network's node names to the "
                                  "feature names (read_network(rename=...)) or pass gene_symbols=")
    ij = np.array(sorted(pairs), dtype=np.intp)
    info = {"source": str(network.graph.get("source", "user graph")), "n_network_nodes": network.number_of_nodes(),
            "n_network_edges": network.number_of_edges(), "n_edges": len(ij),
            "n_features_in_network": int(np.unique(ij).size)}
    return ij[:, 0], ij[:, 1], info
