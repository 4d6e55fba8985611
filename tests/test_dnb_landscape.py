"""Landscape DNB: local scores against a brute-force computation, the planted stage, and the networks."""

from __future__ import annotations

import gzip
from pathlib import Path

import anndata as ad
import networkx as nx
import numpy as np
import pandas as pd
import pytest

from hccomics.datasets.demo_progression import simulate_progression
from hccomics.dnb.landscape import landscape
from hccomics.dnb.network import network_edges, pathway_network, read_network
from hccomics.errors import DataValidationError

CRITICAL = "low_grade_dysplastic_nodule"
EDGES = [(0, 1), (0, 2), (1, 2), (2, 3), (3, 4), (1, 5), (4, 5), (5, 6), (3, 6)]


def _toy() -> ad.AnnData:
    rng = np.random.default_rng(11)
    x = rng.normal(size=(10, 7))
    obs = pd.DataFrame({"stage": ["ref"] * 6 + ["a"] * 2 + ["b"] * 2}, index=[f"s{k}" for k in range(10)])
    return ad.AnnData(x, obs=obs, var=pd.DataFrame(index=[f"g{k}" for k in range(7)]))


def _brute(x: np.ndarray, n_ref: int, s: int, k: int, edges: list[tuple[int, int]]) -> float:
    ref = x[:n_ref]
    base, new = (np.delete(ref, s, axis=0), ref) if s < n_ref else (ref, np.vstack([ref, x[s]]))
    sed = np.abs(x[s] - base.mean(axis=0))
    dp = np.corrcoef(new, rowvar=False) - np.corrcoef(base, rowvar=False)
    nb = sorted({v for u, v in edges if u == k} | {u for u, v in edges if v == k})
    closed = set(nb) | {k}
    outer = [(u, w) for u, w in edges for u, w in ((u, w), (w, u)) if u in nb and w not in closed]
    sed_in = sed[[k, *nb]].mean()
    spcc_in = np.mean([abs(dp[k, u]) for u in nb])
    spcc_out = np.mean([abs(dp[u, w]) for u, w in outer])
    return sed_in * spcc_in / spcc_out


def _graph(names: list[str]) -> nx.Graph:
    return nx.Graph([(names[u], names[v]) for u, v in EDGES])


def test_local_scores_match_definition() -> None:
    a = _toy()
    landscape(a, network=_graph(list(a.var_names)), min_neighbors=1, top_k=3)
    local = a.layers["ldnb"]
    for s in range(a.n_obs):
        for k in range(a.n_vars):
            assert local[s, k] == pytest.approx(_brute(a.X, 6, s, k, EDGES), rel=1e-9)
    expected_global = np.sort(local, axis=1)[:, -3:].mean(axis=1)
    np.testing.assert_allclose(a.obs["ldnb"], expected_global)
    u = a.uns["ldnb"]
    assert u["network"]["n_edges"] == len(EDGES) and u["params"]["reference_stage"] == "ref"
    assert u["critical_stage"] in {"a", "b"} and len(u["module"]) == 3


def test_min_neighbors_and_missing_network_nodes() -> None:
    a = _toy()
    g = _graph(list(a.var_names))
    g.add_edge("g0", "not_measured")
    out = landscape(a, network=g, min_neighbors=3, copy=True)
    degree = np.array([dict(nx.Graph(EDGES).degree())[k] for k in range(7)])
    assert np.isnan(out.layers["ldnb"][:, degree < 3]).all()
    assert np.isfinite(out.layers["ldnb"][:, degree >= 3]).all()
    assert "ldnb" not in a.layers
    alpha = landscape(a, network=g, min_neighbors=1, edge_alpha=0.5, copy=True)
    assert alpha.layers["ldnb"].shape == (10, 7)


def test_peaks_at_planted_critical_stage() -> None:
    expr, samples, truth = simulate_progression([f"G{i}" for i in range(1000)], n_features=300, module_size=20,
                                                samples_per_stage=(12, 12), critical_stage=CRITICAL,
                                                rng=np.random.default_rng(7))
    a = ad.AnnData(expr, obs=samples)
    g = nx.relabel_nodes(nx.gnm_random_graph(300, 600, seed=7), dict(enumerate(a.var_names)))
    module = truth["module_genes"]
    g.add_edges_from((u, v) for u in module for v in module if u < v)
    landscape(a, network=g, top_k=10)
    means = pd.Series(a.uns["ldnb"]["stage_mean"])
    assert a.uns["ldnb"]["critical_stage"] == CRITICAL and means.idxmax() == CRITICAL
    assert len(set(a.uns["ldnb"]["module"]) & set(module)) >= 5


def test_read_string_style_edge_list(tmp_path: Path) -> None:
    f = tmp_path / "9606.protein.links.txt"
    f.write_text("protein1 protein2 combined_score\nTP53 MDM2 999\nMDM2 TP53 999\nTP53 CDKN1A 650\n"
                 "AFP AFP 900\nGPC3 AFP 720\n")
    g = read_network(f, min_score=700)
    assert sorted(map(sorted, g.edges())) == [["AFP", "GPC3"], ["MDM2", "TP53"]]
    assert nx.number_of_selfloops(g) == 0 and g["TP53"]["MDM2"]["score"] == 999
    assert read_network(f).number_of_edges() == 3
    gz = tmp_path / "9606.protein.links.v12.0.txt.gz"
    with gzip.open(gz, "wt") as fh:
        fh.write("protein1 protein2 combined_score\n9606.ENSP1 9606.ENSP2 950\n9606.ENSP2 9606.ENSP3 300\n")
    g = read_network(gz, min_score=700, rename={"9606.ENSP1": "TP53", "9606.ENSP2": "MDM2"})
    assert list(g.edges()) == [("TP53", "MDM2")] or list(g.edges()) == [("MDM2", "TP53")]
    tsv = tmp_path / "string_interactions.tsv"
    tsv.write_text("#node1\tnode2\tcombined_score\nTP53\tMDM2\t0.95\nTP53\tCDKN1A\t0.4\n")
    assert read_network(tsv, min_score=0.7).number_of_edges() == 1
    csv = tmp_path / "edges.csv"
    csv.write_text("a,b\nx,y\ny,z\n")
    assert read_network(csv, rename={"x": "X"}).has_edge("X", "y")
    with pytest.raises(DataValidationError, match="needs a score column"):
        read_network(csv, min_score=1)
    with pytest.raises(DataValidationError, match="no edge of the network joins"):
        network_edges(read_network(csv), ["p", "q"])


def test_bundled_co_membership_network_is_sparse() -> None:
    g = pathway_network()
    n = g.number_of_nodes()
    assert nx.number_of_selfloops(g) == 0
    assert 1000 < n and g.number_of_edges() < 0.05 * n * (n - 1) / 2
    assert "co-membership" in g.graph["source"]
    small = pathway_network(genes=["IL6", "IL6R", "JAK1", "STAT3", "ALB"], max_set_size=60)
    assert set(small.nodes()) <= {"IL6", "IL6R", "JAK1", "STAT3", "ALB"} and small.number_of_edges() > 0
