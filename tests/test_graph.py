"""Tests of hccomics.graph: builders against brute-force references, leakage in both graph modes, bad inputs,
the evaluation protocol and explanations on planted toy signals."""

from __future__ import annotations

import itertools
import logging
import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from hccomics import graph
from hccomics.errors import DataValidationError, NotFittedError, OptionError
from hccomics.graph import ConcatBaseline, FusionInputs, FusionModel, MissingModalityWarning

N_IMAGED = 25
IMG_GROUPS = ("tumour", "ring_2mm", "ring_6mm")
FAST = {"epochs": 15, "grid": {}, "seed": 0}
LEAK_GRID = {"weight_decay": (3e-2, 1e-1)}


# -- fixtures --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """These problems are tiny: one thread (torch and BLAS) is as fast alone and far faster on a CPU shared with other
    jobs (spinning OpenMP threads on busy cores made one 0.1 s fit take 3-30 s); restored for the other modules."""
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(limits=1):
        yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def cohort(smoke_manifest: Path):
    from hccomics.io import load_cohort
    from hccomics.omics import variance_stabilize

    mdata = load_cohort(smoke_manifest)
    rna = mdata["rna"].copy()
    variance_stabilize(rna, modality="rna")  # once: fusion_inputs would otherwise redo it per call
    return mdata.obs.copy(), rna


def _fake_img(patients: pd.Index, *, seed: int = 0, n_cnn: int = 4) -> ad.AnnData:
    """A patient-level image AnnData as notebooks 05 / 06 write it: 2 features per region, CNN outputs and embeddings."""
    rng = np.random.default_rng(seed)
    names = [f"ct_ap_{r}_f{i}" for r in IMG_GROUPS for i in range(2)]
    var = pd.DataFrame({"region": [r for r in IMG_GROUPS for _ in range(2)], "phase": "AP", "family": "firstorder",
                        "modality": "CT"}, index=names)
    img = ad.AnnData(rng.normal(size=(len(patients), len(names))), obs=pd.DataFrame(index=list(patients)), var=var)
    img.obsm["X_cnn"] = rng.normal(size=(len(patients), n_cnn))
    img.obs["cnn_fold"] = np.arange(len(patients)) % 2
    img.obs["cnn_mvi"] = rng.uniform(size=len(patients))  # out-of-fold CNN probabilities (notebook 06)
    img.obs["cnn_high_grade"] = rng.uniform(size=len(patients))
    return img


@pytest.fixture(scope="module")
def imaged(cohort) -> pd.Index:
    clinical, _ = cohort
    return pd.Index(clinical.index[np.random.default_rng(1).permutation(len(clinical))[:N_IMAGED]]).sort_values()


@pytest.fixture(scope="module")
def fi(cohort) -> FusionInputs:
    clinical, rna = cohort
    return graph.fusion_inputs(clinical, rna=rna, n_genes=40)


@pytest.fixture(scope="module")
def fi_img(cohort, imaged):
    clinical, rna = cohort
    with pytest.warns(MissingModalityWarning, match="image"):
        out = graph.fusion_inputs(clinical, rna=rna, img=_fake_img(imaged), n_genes=40)
    return out


def _with_block(fi: FusionInputs, modality: str, block: pd.DataFrame) -> FusionInputs:
    blocks = {**fi.blocks, modality: block}
    available = fi.available.copy()
    available[modality] = block.notna().any(axis=1)
    return FusionInputs(blocks, dict(fi.features), available, dict(fi.params))


def _edges(ei, w=None) -> dict[tuple[int, int], float]:
    ei = np.asarray(ei)
    w = np.ones(ei.shape[1]) if w is None else np.asarray(w, dtype=float)
    return {(int(a), int(b)): float(x) for a, b, x in zip(ei[0], ei[1], w)}


# -- 1. knn_edges ------------------------------------------------------------------------------------------------
def _brute_knn(X, k, sources, targets, metric="cosine"):
    """target -> {source: similarity} of its k most similar sources (itself excluded), by brute force."""
    if metric == "euclidean":
        D = np.sqrt(((X[:, None, :] - X[None, :, :]) ** 2).sum(-1))
        S = 1.0 / (1.0 + D)
    else:
        Y = X - X.mean(axis=1, keepdims=True) if metric == "correlation" else X
        Yn = Y / np.linalg.norm(Y, axis=1, keepdims=True)
        S = Yn @ Yn.T  # 1 - cosine (or correlation) distance
    out = {}
    for t in np.flatnonzero(targets):
        cand = [s for s in np.flatnonzero(sources) if s != t]
        best = sorted(cand, key=lambda s: -S[s, t])[:k]
        out[int(t)] = {int(s): float(S[s, t]) for s in best}
    return out


@pytest.mark.parametrize(("metric", "masked"), [("cosine", False), ("cosine", True), ("correlation", True),
                                                ("euclidean", True)])
def test_knn_edges_match_brute_force(metric, masked):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(40, 6))
    k = 5
    sources = rng.random(40) < 0.6 if masked else np.ones(40, bool)
    targets = rng.random(40) < 0.5 if masked else np.ones(40, bool)
    ei, w = graph.knn_edges(X, k=k, metric=metric, sources=sources if masked else None,
                            targets=targets if masked else None)
    ref = _brute_knn(X, k, sources, targets, metric)
    assert ei.shape == (2, len(w)) and ei.dtype == np.int64
    assert sources[ei[0]].all(), "an edge leaves a row that is not a source"
    assert targets[ei[1]].all(), "an edge reaches a row that is not a target"
    assert (ei[0] != ei[1]).all()
    got: dict[int, dict[int, float]] = {}
    for s, t, x in zip(ei[0], ei[1], w):
        got.setdefault(int(t), {})[int(s)] = float(x)
    assert set(got) == set(ref)
    for t, nb in ref.items():
        assert len(got[t]) == k  # enough sources: exactly k in-edges
        assert set(got[t]) == set(nb)
        np.testing.assert_allclose([got[t][s] for s in nb], list(nb.values()), atol=1e-5)


def test_knn_edges_fewer_sources_than_k():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(12, 3))
    sources = np.zeros(12, bool)
    sources[:4] = True
    ei, _ = graph.knn_edges(X, k=6, sources=sources)
    indeg = np.bincount(ei[1], minlength=12)
    # every other source (3) for a source row, all 4 sources for the others
    assert indeg.tolist() == [3] * 4 + [4] * 8
    assert sources[ei[0]].all()


# -- 2. patient_graph --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def toy_block():
    rng = np.random.default_rng(5)
    ids = [f"p{i:02d}" for i in range(30)]
    b = pd.DataFrame(rng.normal(2.0, 3.0, size=(30, 5)), index=ids, columns=list("abcde"))
    b.iloc[25] = np.nan  # a held-out patient without the modality
    b.iloc[3, 0] = np.nan  # one missing cell in a training patient
    train = pd.Index(ids[:20])
    return b, train


def test_patient_graph_inductive_sends_nothing_from_test_and_keeps_training_graph(toy_block):
    b, train = toy_block
    k = 4
    g = graph.patient_graph(b, train=train, k=k, mode="inductive")
    ids = np.asarray(b.index)
    src, tgt = g.edge_index.numpy()
    assert np.isin(ids[src], train).all(), "a non-training patient sends an edge in inductive mode"
    # every held-out patient with the modality receives exactly k edges from training patients
    indeg = pd.Series(np.bincount(tgt, minlength=len(b)), index=ids)
    held = [p for p in ids if p not in train and b.loc[p].notna().any()]
    assert (indeg[held] == k).all()
    # training-to-training edges are those of a graph built on the training patients alone
    alone = graph.patient_graph(b.loc[train], k=k, mode="transductive")
    a_src, a_tgt = alone.edge_index.numpy()
    expected = {(train[s], train[t]): float(x) for s, t, x in zip(a_src, a_tgt, alone.edge_weight.numpy())}
    inner = {(ids[s], ids[t]): float(x) for s, t, x in zip(src, tgt, g.edge_weight.numpy()) if ids[t] in train}
    assert set(inner) == set(expected)
    np.testing.assert_allclose([inner[e] for e in expected], list(expected.values()), atol=1e-6)
    assert g.train_mask.numpy().tolist() == [p in train for p in ids]


def test_patient_graph_transductive_symmetric_isolated_and_standardised_on_train(toy_block):
    b, train = toy_block
    g = graph.patient_graph(b, train=train, k=4, mode="transductive")
    e = _edges(g.edge_index.numpy(), g.edge_weight.numpy())
    assert set(e) == {(t, s) for s, t in e}, "transductive graph is not symmetric"
    np.testing.assert_allclose([e[(s, t)] for s, t in e], [e[(t, s)] for s, t in e], atol=1e-6)
    # the all-NaN patient is an isolated node without the modality, and the graph is valid
    nan_row = 25
    assert not g.has_modality[nan_row] and g.has_modality.sum() == 29
    assert nan_row not in g.edge_index.numpy()
    assert bool(g.has_isolated_nodes()) and g.validate()
    assert g.x[nan_row].abs().sum() == 0
    # standardised with the training rows' mean and (population) SD, NaN cells ignored; NaN cell -> 0
    col = b["a"].loc[train].to_numpy()
    mu, sd = np.nanmean(col), np.nanstd(col)
    np.testing.assert_allclose(g.x[:, 0].numpy()[[0, 21, 29]], (b["a"].iloc[[0, 21, 29]] - mu) / sd, rtol=1e-5)
    assert g.x[3, 0] == 0
    # transductive: a test patient may send edges
    assert np.isin(np.asarray(b.index)[g.edge_index[0].numpy()], train, invert=True).any()


# -- 3. gene_graph -----------------------------------------------------------------------------------------------
def test_gene_graph_weights_count_shared_wikipathways():
    from hccomics.datasets.genesets import gene_sets

    genes = ["AKT1", "PIK3CA", "MTOR", "IL6", "TP53", "MYC", "NOTAGENE"]
    sets = {n: set(s.genes) for n, s in gene_sets("wikipathways").items()}
    g = graph.gene_graph(genes)
    e = _edges(g.edge_index.numpy(), g.edge_weight.numpy())
    # the pair checked by hand
    n_akt_pik = sum({"AKT1", "PIK3CA"} <= s for s in sets.values())
    assert n_akt_pik > 1 and e[(0, 1)] == e[(1, 0)] == n_akt_pik
    for (i, a), (j, b_) in itertools.permutations(enumerate(genes), 2):
        n = sum({a, b_} <= s for s in sets.values())
        assert e.get((i, j), 0) == n, (a, b_)
    assert g.marked.tolist() == [x in sets["WP4172"] for x in genes]
    assert set(g.pathways["AKT1"]) == {n for n, s in sets.items() if "AKT1" in s} and g.pathways["NOTAGENE"] == []
    assert 6 not in g.edge_index.numpy()  # NOTAGENE: isolated
    strong = graph.gene_graph(genes, min_shared=3)
    assert set(_edges(strong.edge_index.numpy())) == {p for p, x in e.items() if x >= 3}


# -- 4. hetero_graph ---------------------------------------------------------------------------------------------
def test_hetero_graph_edge_values_and_inductive_drop():
    rng = np.random.default_rng(6)
    ids = [f"p{i}" for i in range(8)]
    genes = ["PIK3CA", "AKT1", "TP53", "IL6"]
    rna = pd.DataFrame(rng.normal(5, 2, size=(8, 4)), index=ids, columns=genes)
    rna.iloc[2, 1] = np.nan
    blocks = {"clinical": pd.DataFrame(rng.normal(size=(8, 2)), index=ids),
              "rna": rna, "image": pd.DataFrame(rng.normal(size=(8, 3)), index=ids, columns=["t", "r2", "r6"])}
    train = ids[:5]
    tr = graph.hetero_graph(blocks, train=train, mode="transductive")
    ind = graph.hetero_graph(blocks, train=train, mode="inductive")
    # one patient-gene edge by hand: patient p6, gene IL6
    p, f = 6, 3
    ref = (rna.iloc[p, f] - rna.iloc[:5, f].mean()) / rna.iloc[:5, f].std(ddof=0)
    back = _edges(tr["gene", "expressed_in", "patient"].edge_index.numpy(),
                  tr["gene", "expressed_in", "patient"].edge_weight.numpy())
    fwd = _edges(tr["patient", "expresses", "gene"].edge_index.numpy(),
                 tr["patient", "expresses", "gene"].edge_weight.numpy())
    assert back[(f, p)] == pytest.approx(ref, rel=1e-5) and fwd[(p, f)] == pytest.approx(ref, rel=1e-5)
    assert (1, 2) not in back and len(back) == 8 * 4 - 1  # the NaN cell has no edge
    # inductive: exactly the edges sent by test patients are dropped; received edges are kept
    for kind, rel, backrel in (("gene", "expresses", "expressed_in"), ("image_feature", "measures", "measured_in")):
        full = _edges(tr["patient", rel, kind].edge_index.numpy(), tr["patient", rel, kind].edge_weight.numpy())
        kept = _edges(ind["patient", rel, kind].edge_index.numpy(), ind["patient", rel, kind].edge_weight.numpy())
        assert kept == {e: x for e, x in full.items() if e[0] < 5}
        assert len(kept) < len(full)
        assert _edges(ind[kind, backrel, "patient"].edge_index.numpy()) == _edges(
            tr[kind, backrel, "patient"].edge_index.numpy())
    assert ind["gene"].marked.tolist() == tr["gene"].marked.tolist()


# -- 5. leakage ----------------------------------------------------------------------------------------------------
def _leak_setup(cohort, task):
    clinical, _ = cohort
    lab = graph.task_labels(clinical, "recurrence_2y" if task == "binary" else "survival")
    rng = np.random.default_rng(7)
    test = pd.Index(rng.choice(lab.index.to_numpy(), size=8, replace=False))
    return lab, test


def _perturb_labels(lab: pd.DataFrame, who: pd.Index, task: str) -> pd.DataFrame:
    out = lab.copy()
    if task == "binary":
        out.loc[who, "y"] = 1 - out.loc[who, "y"]
    else:  # rotate durations and events among these patients
        for c in ("duration", "event"):
            out.loc[who, c] = np.roll(out.loc[who, c].to_numpy(), 1)
        assert not out.loc[who].equals(lab.loc[who])
    return out


def _move_test_features(fi: FusionInputs, test: pd.Index, *, seed: int) -> FusionInputs:
    """Every modality's rows of ``test`` reversed among themselves plus noise (rows of NaN stay NaN)."""
    rng = np.random.default_rng(seed)
    moved = fi
    for m in fi.modalities:
        b = fi.blocks[m].copy()
        b.loc[test] = b.loc[test].to_numpy()[::-1] + rng.normal(0, b.std().to_numpy(), size=(len(test), b.shape[1]))
        moved = _with_block(moved, m, b)
    return moved


def _fit_predict(fi, lab, train, mode, task) -> pd.Series:
    return FusionModel(mode=mode, task=task, epochs=15, grid=LEAK_GRID, seed=0).fit(fi, lab, train=train).predict()


@pytest.mark.parametrize("task", ["binary", "cox"])
@pytest.mark.parametrize("mode", ["transductive", "inductive"])
def test_no_test_label_reaches_training(cohort, fi, mode, task):
    lab, test = _leak_setup(cohort, task)
    train = fi.patients.difference(test)
    base = _fit_predict(fi, lab, train, mode, task)
    assert base.index.equals(fi.patients) and np.isfinite(base).all()
    changed = _fit_predict(fi, _perturb_labels(lab, test, task), train, mode, task)
    assert changed.index.equals(base.index)
    assert np.array_equal(base.to_numpy(), changed.to_numpy()), "a test label changed a prediction"
    # positive control: the same check fails when a training label changes
    some_train = lab.index.intersection(train)[:5] if task == "cox" else lab.index.intersection(train)[:1]
    control = _fit_predict(fi, _perturb_labels(lab, some_train, task), train, mode, task)
    assert not np.array_equal(base.to_numpy(), control.to_numpy())


@pytest.mark.parametrize("mode", ["transductive", "inductive"])
def test_test_features_reach_training_only_in_transductive_mode(cohort, fi, mode):
    lab, test = _leak_setup(cohort, "binary")
    train = fi.patients.difference(test)
    base = _fit_predict(fi, lab, train, mode, "binary")
    after = _fit_predict(_move_test_features(fi, test, seed=8), lab, train, mode, "binary")
    trained = base.index.difference(test)
    assert not np.allclose(base[test], after[test])  # the test patients' own predictions follow their features
    if mode == "inductive":
        assert np.array_equal(base[trained].to_numpy(), after[trained].to_numpy())
    else:  # transductive: test features shape the graph, hence the training patients' outputs (no label used)
        assert not np.array_equal(base[trained].to_numpy(), after[trained].to_numpy())


@pytest.mark.parametrize("architecture", ["gcn_vcdn", "kronecker", "hetero"])
def test_other_architectures_no_label_leak_and_inductive_isolation(cohort, fi_img, architecture):
    lab, test = _leak_setup(cohort, "binary")
    train = fi_img.patients.difference(test)

    def fit(f: FusionInputs, y: pd.DataFrame, mode: str) -> pd.Series:
        model = FusionModel(architecture=architecture, mode=mode, epochs=15, grid=LEAK_GRID, seed=0)
        return model.fit(f, y, train=train).predict()

    base = fit(fi_img, lab, "inductive")
    assert np.isfinite(base).all()
    assert np.array_equal(base.to_numpy(), fit(fi_img, _perturb_labels(lab, test, "binary"), "inductive").to_numpy())
    one_train = lab.index.intersection(train)[:1]  # positive control: a training label does change predictions
    control = fit(fi_img, _perturb_labels(lab, one_train, "binary"), "inductive")
    assert not np.array_equal(base.to_numpy(), control.to_numpy())
    after = fit(_move_test_features(fi_img, test, seed=9), lab, "inductive")
    trained = base.index.difference(test)
    assert np.array_equal(base[trained].to_numpy(), after[trained].to_numpy())
    assert not np.allclose(base[test], after[test])


def test_cross_validation_fold_predictions_ignore_their_labels(cohort, fi):
    clinical, _ = cohort
    lab = graph.task_labels(clinical, "mvi")
    splits = graph.fusion_splits(lab, n_splits=4, n_repeats=1, seed=0)
    base = graph.cross_validate_fusion(ConcatBaseline(), fi, lab, splits, progress=False).oof[0]
    fold0 = pd.Index(splits.loc[splits["fold"] == 0, "patient"])
    flipped = graph.cross_validate_fusion(ConcatBaseline(), fi, _perturb_labels(lab, fold0, "binary"), splits,
                                          progress=False).oof[0]
    assert base.notna().all() and flipped.notna().all()
    assert np.array_equal(base[fold0].to_numpy(), flipped[fold0].to_numpy())
    # positive control: the other folds' models trained on the flipped labels
    others = base.index.difference(fold0)
    assert not np.allclose(base[others], flipped[others])


# -- 6. bad input --------------------------------------------------------------------------------------------------
def test_missing_modality_counted_fused_predicts_single_modality_nan(cohort, fi_img, imaged):
    clinical, _ = cohort
    lacking = fi_img.patients.difference(imaged)
    assert fi_img.available["image"].sum() == N_IMAGED
    assert fi_img.available.loc[lacking, "image"].eq(False).all()
    summ = fi_img.summary()
    assert summ.loc["image", "missing_patients"] == len(lacking) == 40 - N_IMAGED
    assert summ.loc["image", "patients"] == N_IMAGED and summ.loc["rna", "missing_patients"] == 0
    assert summ.loc["image", "features"] == 6 + 2  # ring features and the two CNN probabilities (no embedding by default)
    assert fi_img.blocks["image"].loc[lacking].isna().all().all()
    lab = graph.task_labels(clinical, "mvi")
    fused = FusionModel(**FAST).fit(fi_img, lab, train=lab.index).predict()
    assert np.isfinite(fused).all()
    single = FusionModel(modalities=["image"], **FAST).fit(fi_img, lab, train=lab.index).predict()
    assert single[lacking].isna().all() and np.isfinite(single[imaged]).all()
    base = ConcatBaseline(modalities=["image"]).fit(fi_img, lab, train=lab.index).predict()
    assert base[lacking].isna().all() and np.isfinite(base[imaged]).all()


@pytest.mark.parametrize(("mode", "task"), [("transductive", "binary"), ("inductive", "cox")])
def test_isolated_nodes_train_and_predict(cohort, fi_img, imaged, mode, task):
    clinical, _ = cohort
    lab = graph.task_labels(clinical, "mvi" if task == "binary" else "survival")
    model = FusionModel(k=1, mode=mode, task=task, **FAST).fit(fi_img, lab, train=lab.index[:32])
    ei = model.batch_.edge_index_dict[("image", "similar", "image")].numpy()
    connected = np.zeros(len(fi_img.patients), bool)
    connected[ei.ravel()] = True
    assert (~connected).sum() >= 40 - N_IMAGED  # every patient without an image is isolated
    assert not connected[~fi_img.available["image"].to_numpy()].any()
    assert np.isfinite(model.predict()).all()


def test_nan_cells_become_training_mean_and_bad_values(cohort, imaged):
    clinical, rna = cohort
    img = _fake_img(imaged, seed=2)
    img.X[0, 0] = img.X[3, 2] = img.X[7, 4] = np.nan
    img.var_names = [*img.var_names[:-1], "ct_ap_ring_6mm_dead"]
    img.X[:, -1] = np.nan  # a feature missing for every patient
    with pytest.warns(MissingModalityWarning):
        fi = graph.fusion_inputs(clinical, rna=rna, img=img, n_genes=20, image_sets=("radiomics",))
    assert "ct_ap_ring_6mm_dead" not in fi.blocks["image"] and "ct_ap_ring_6mm_dead" not in fi.features["image"].index
    assert fi.blocks["image"].shape[1] == 5 and fi.summary().loc["image", "nan_cells"] == 3
    lab = graph.task_labels(clinical, "mvi")
    model = FusionModel(**FAST).fit(fi, lab, train=lab.index)
    x = pd.DataFrame(model.batch_.x_dict["image"].numpy(), index=fi.patients, columns=fi.blocks["image"].columns)
    for r, c in ((0, 0), (3, 2), (7, 4)):
        assert x.loc[imaged[r], x.columns[c]] == 0.0
    assert np.isfinite(x.to_numpy()).all()
    # a NaN cell sits at the training mean: the standardised column still has mean 0 over observed cells
    observed = fi.blocks["image"].loc[lab.index].notna()
    col = x.loc[lab.index, x.columns[0]][observed[x.columns[0]]]
    assert abs(col.mean()) < 1e-5
    assert np.isfinite(model.predict()).all()
    # infinite values are refused
    bad = _fake_img(imaged, seed=2)
    bad.X[1, 1] = np.inf
    with pytest.raises(DataValidationError, match="infinite"), warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingModalityWarning)
        graph.fusion_inputs(clinical, rna=rna, img=bad, n_genes=20)


def test_image_block_without_family_column(cohort, imaged):
    clinical, rna = cohort
    img = _fake_img(imaged)
    img.var = img.var.drop(columns="family")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingModalityWarning)
        fi = graph.fusion_inputs(clinical, rna=rna, img=img, n_genes=20, image_sets=("radiomics",))
    assert fi.features["image"]["group"].tolist() == [r for r in IMG_GROUPS for _ in range(2)]


# -- 7. fusion_splits -------------------------------------------------------------------------------------------
def test_fusion_splits_cover_stratify_and_respect_cnn_folds(cohort, imaged, caplog):
    clinical, _ = cohort
    lab = graph.task_labels(clinical, "mvi")
    n_splits = 4
    s = graph.fusion_splits(lab, n_splits=n_splits, n_repeats=3, seed=0)
    counts = lab["y"].value_counts()
    for r, part in s.groupby("repeat"):
        assert sorted(part["patient"]) == sorted(lab.index), r  # every labelled patient once per repeat
        assert set(part["fold"]) == set(range(n_splits))
        per = pd.crosstab(part["fold"], lab.loc[part["patient"], "y"].to_numpy())
        assert (per > 0).all().all()  # both classes in every fold
        for c in (0, 1):  # stratified: class counts within one of an even share
            assert per[c].between(counts[c] // n_splits, -(-counts[c] // n_splits)).all()
    assert not (s[s.repeat == 0]["fold"].to_numpy() == s[s.repeat == 1]["fold"].to_numpy()).all()
    cnn_fold = pd.Series(np.arange(len(imaged)) % n_splits, index=imaged)
    sc = graph.fusion_splits(lab, n_splits=n_splits, n_repeats=2, seed=0, cnn_fold=cnn_fold)
    r0 = sc[sc["repeat"] == 0].set_index("patient")["fold"]
    assert sorted(r0.index) == sorted(lab.index) and r0.between(0, n_splits - 1).all()
    assert r0[imaged].tolist() == cnn_fold.tolist()
    r1 = sc[sc["repeat"] == 1].set_index("patient")["fold"]
    assert sorted(r1.index) == sorted(lab.index) and not r1[imaged].equals(r0[imaged])
    # more CNN folds than splits: the alignment is skipped (logged) and repeat 0 is an ordinary stratified split
    with caplog.at_level(logging.WARNING, logger="hccomics.graph.protocol"):
        s3 = graph.fusion_splits(lab, n_splits=3, n_repeats=1, seed=0, cnn_fold=cnn_fold)
    assert "cnn_fold" in caplog.text
    assert s3["fold"].to_numpy().tolist() == graph.fusion_splits(lab, n_splits=3, n_repeats=1, seed=0)["fold"].tolist()


# -- 8. fusion_table / compare_fusion ------------------------------------------------------------------------------
def test_fusion_table_and_compare_against_reference_metrics():
    from sklearn.metrics import roc_auc_score

    from hccomics.survival import harrell_c

    ids = list("abcdefgh")
    lab = pd.DataFrame({"y": [0, 0, 0, 0, 1, 1, 1, 1]}, index=ids)
    scores = pd.DataFrame({"a": [0.1, 0.4, 0.35, 0.2, 0.8, 0.3, 0.9, 0.6],
                           "b": [0.1, 0.2, np.nan, 0.3, 0.7, 0.8, 0.9, 0.25]}, index=ids)
    t = graph.fusion_table(lab, scores, n_boot=50)
    # a: positives 0.8, 0.3, 0.9, 0.6 against negatives 0.1, 0.4, 0.35, 0.2 -> 14 of 16 pairs ordered
    assert t.loc["a", "estimate"] == pytest.approx(14 / 16) == pytest.approx(roc_auc_score(lab["y"], scores["a"]))
    keep = scores["b"].notna()
    assert t.loc["b", "estimate"] == pytest.approx(roc_auc_score(lab["y"][keep], scores["b"][keep]))
    assert t.loc["a", "patients"] == 8 and t.loc["b", "patients"] == 7
    assert (t["metric"] == "auc").all() and (t["low"] <= t["high"]).all()
    c = graph.compare_fusion(lab, scores, [("a", "b")], n_boot=50).iloc[0]
    auc_a, auc_b = roc_auc_score(lab["y"][keep], scores["a"][keep]), roc_auc_score(lab["y"][keep], scores["b"][keep])
    assert c["patients"] == 7
    assert (c["a"], c["b"], c["b - a"]) == pytest.approx((auc_a, auc_b, auc_b - auc_a))
    # survival: Harrell's C
    surv = pd.DataFrame({"duration": [2.0, 4, 6, 8, 10, 12, 14, 16], "event": [1, 1, 0, 1, 1, 0, 1, 0]}, index=ids)
    ts = graph.fusion_table(surv, scores, n_boot=50)
    assert (ts["metric"] == "harrell_c").all()
    assert ts.loc["a", "estimate"] == pytest.approx(harrell_c(surv["duration"], surv["event"], scores["a"]))
    assert ts.loc["b", "estimate"] == pytest.approx(
        harrell_c(surv["duration"][keep], surv["event"][keep], scores["b"][keep]))
    # the risk that orders every comparable pair perfectly has C = 1
    perfect = pd.DataFrame({"r": -surv["duration"]}, index=ids)
    assert graph.fusion_table(surv, perfect, n_boot=20).loc["r", "estimate"] == 1.0
    cs = graph.compare_fusion(surv, scores, [("a", "b")], n_boot=50).iloc[0]
    ca = harrell_c(surv["duration"][keep], surv["event"][keep], scores["a"][keep])
    cb = harrell_c(surv["duration"][keep], surv["event"][keep], scores["b"][keep])
    assert (cs["a"], cs["b"], cs["b - a"]) == pytest.approx((ca, cb, cb - ca))


# -- 9. explanations ------------------------------------------------------------------------------------------------
GENES = ["AKT1", "PIK3CA", "MTOR", "PTEN", "TP53", "MYC", "EGFR", "KRAS", "HRAS", "NRAS", "MAPK1", "MAPK3", "RAF1",
         "BRAF", "JUN", "FOS", "IL6", "STAT3", "CCND1", "CDK4", "CDK6", "RB1", "E2F1", "MDM2", "GSK3B", "CTNNB1",
         "TGFB1", "SMAD4", "VEGFA", "KDR"]
SIGNAL = ["MYC", "IL6", "CDK4"]


def _toy(seed: int, *, image: bool):
    from hccomics.datasets.genesets import gene_sets

    rng = np.random.default_rng(seed)
    n = 80
    ids = [f"T{i:03d}" for i in range(n)]
    y = np.tile([0, 1], n // 2)
    rng.shuffle(y)
    shift = 1.5 * (2 * y[:, None] - 1)
    rna = pd.DataFrame(rng.normal(size=(n, len(GENES))), index=ids, columns=GENES)
    if not image:
        rna[SIGNAL] += shift
    clin = pd.DataFrame(rng.normal(size=(n, 4)), index=ids, columns=["age", "afp", "diameter", "bclc"])
    wp = set(gene_sets("wikipathways")["WP4172"].genes)
    blocks = {"rna": rna, "clinical": clin}
    features = {"rna": pd.DataFrame({"group": "gene", "wp4172": [g in wp for g in GENES]}, index=GENES),
                "clinical": pd.DataFrame({"group": clin.columns}, index=clin.columns)}
    if image:
        names = [f"{g}_{i}" for g in IMG_GROUPS for i in range(4)]
        img = pd.DataFrame(rng.normal(size=(n, len(names))), index=ids, columns=names)
        img[[c for c in names if c.startswith("ring_2mm")]] += shift
        blocks["image"] = img
        features["image"] = pd.DataFrame({"group": [c.rsplit("_", 1)[0] for c in names], "phase": "AP"}, index=names)
    available = pd.DataFrame(True, index=ids, columns=list(blocks))
    return FusionInputs(blocks, features, available), pd.DataFrame({"y": y}, index=ids)


def test_explain_finds_planted_genes_and_pathways():
    fi, lab = _toy(0, image=False)
    model = FusionModel(epochs=60, grid={}, seed=0).fit(fi, lab, train=lab.index)
    imp = graph.explain(model, fi, n_steps=8)
    assert set(imp) == {"rna", "clinical"}
    genes = graph.gene_importance(imp)
    assert set(genes.index[:3]) == set(SIGNAL)
    assert genes["rank"].tolist() == list(range(1, len(GENES) + 1))
    assert genes["importance"].is_monotonic_decreasing and (genes["importance"] >= 0).all()
    assert graph.gene_importance(imp, top=3).index.tolist() == genes.index[:3].tolist()
    # pathway importance: the mean over the pathway's genes, WP4172 (and only it) marked
    from hccomics.datasets.genesets import gene_sets

    pw = graph.pathway_importance(imp, min_genes=3)
    assert "marked" in pw and pw["marked"].sum() == 1 and pw.index[pw["marked"]].tolist() == ["WP4172"]
    members = [g for g in GENES if g in set(gene_sets("wikipathways")["WP4172"].genes)]
    assert pw.loc["WP4172", "genes"] == len(members)
    assert pw.loc["WP4172", "importance"] == pytest.approx(genes.loc[members, "importance"].mean())
    assert (pw["genes"] >= 3).all() and pw["importance"].is_monotonic_decreasing


def test_group_importance_ranks_planted_image_group_first():
    fi, lab = _toy(1, image=True)
    model = FusionModel(epochs=60, grid={}, seed=0).fit(fi, lab, train=lab.index)
    imp = graph.explain(model, fi, method="Saliency")
    groups = graph.group_importance(imp, modality="image")
    assert groups.index[0] == "ring_2mm"
    assert groups["features"].tolist() == [4, 4, 4] and groups["rank"].tolist() == [1, 2, 3]
    means = imp["image"].groupby("group")["importance"].mean()
    assert groups["importance"].to_dict() == pytest.approx(means.to_dict())


def test_explain_inductive_training_attributions_ignore_test_features():
    fi, lab = _toy(0, image=False)
    train, test = lab.index[:60], lab.index[60:]
    kw = {"mode": "inductive", "epochs": 30, "grid": {}, "seed": 0}
    moved = _move_test_features(fi, test, seed=1)
    m_a, m_b = FusionModel(**kw).fit(fi, lab, train=train), FusionModel(**kw).fit(moved, lab, train=train)
    a = graph.explain(m_a, fi, patients=train[:20], n_steps=8)
    b = graph.explain(m_b, moved, patients=train[:20], n_steps=8)
    for m in a:  # training outputs depend on no test feature, along the whole integration path
        pd.testing.assert_frame_equal(a[m], b[m], rtol=1e-6)
    # positive control: the test patients' own explanations follow their features
    ta = graph.explain(m_a, fi, patients=test, n_steps=8)["rna"]["importance"]
    tb = graph.explain(m_b, moved, patients=test, n_steps=8)["rna"]["importance"]
    assert not np.allclose(ta.sort_index(), tb.sort_index(), rtol=1e-3)


def _edge_attribution(model: FusionModel) -> pd.Series:
    """Reference for the heterogeneous model: per patient, |gradient x value| of its gene -> patient edge weights
    (the standardised expression values), summed per gene over patients."""
    import torch

    b = model.batch_
    et = ("gene", "expressed_in", "patient")
    w = b.edge_weight_dict[et].clone().requires_grad_(True)
    out = model.net_(b.x_dict, b.edge_index_dict, {**b.edge_weight_dict, et: w}, b.available_dict)
    genes = b.edge_index_dict[et][0].numpy()
    score = np.zeros(b.x_dict["gene"].shape[0])
    for i in range(len(out)):
        (g,) = torch.autograd.grad(out[i], w, retain_graph=True)
        np.add.at(score, genes, (g * w).detach().abs().numpy())
    return pd.Series(score, index=b.hetero["gene"].names).sort_values(ascending=False)


def test_explain_hetero_finds_planted_genes():
    from sklearn.metrics import roc_auc_score

    for seed in (0, 2, 1):
        fi, lab = _toy(seed, image=False)
        model = FusionModel(architecture="hetero", epochs=300, lr=1e-2, weight_decay=1e-4, dropout=0.0, patience=300,
                            grid={}, seed=0).fit(fi, lab, train=lab.index)
        # preconditions (pytest.fail is not an AssertionError, so a broken precondition is not an xfail)
        if roc_auc_score(lab["y"], model.predict()) < 0.9:
            pytest.fail(f"toy {seed}: the heterogeneous model did not learn the planted signal")
        if set(_edge_attribution(model).index[:3]) != set(SIGNAL):
            pytest.fail(f"toy {seed}: the planted genes are not recoverable from this model")
        genes = graph.gene_importance(graph.explain(model, fi, n_steps=8))
        assert set(genes.index[:3]) == set(SIGNAL), (seed, genes.index[:5].tolist())


def test_pathway_importance_without_a_qualifying_pathway():
    imp = {"rna": pd.DataFrame({"importance": [0.3, 0.2], "group": "gene"},
                               index=pd.Index(["AKT1", "NOTAGENE"], name="feature"))}
    try:
        t = graph.pathway_importance(imp, min_genes=5)
    except DataValidationError:  # a clear error is fine, and so is an empty table
        return
    assert t.empty and {"importance", "marked", "rank"} <= set(t.columns)


def test_final_refit_never_exceeds_epochs():
    fi, lab = _toy(0, image=False)
    model = FusionModel(epochs=4, grid={}, seed=0).fit(fi, lab, train=lab.index)
    assert model.search_["epochs"].max() <= 4
    assert model.chosen_["epochs"] <= 4


# -- 10. errors --------------------------------------------------------------------------------------------------
def test_errors(cohort, fi):
    clinical, _ = cohort
    lab = graph.task_labels(clinical, "mvi")
    surv = graph.task_labels(clinical, "survival")
    with pytest.raises(NotFittedError, match="not fitted"):
        FusionModel().predict()
    with pytest.raises(NotFittedError):
        graph.explain(FusionModel(), fi)
    with pytest.raises(DataValidationError, match="binary"):
        FusionModel(architecture="gcn_vcdn", task="cox", **FAST).fit(fi, surv, train=surv.index)
    with pytest.raises(DataValidationError, match="image"):
        FusionModel(modalities=["rna", "image"], **FAST).fit(fi, lab, train=lab.index)
    with pytest.raises(DataValidationError, match="image"):
        fi.subset(["image"])
    one_class = lab.index[lab["y"] == 0]
    with pytest.raises(DataValidationError, match="single class"):
        FusionModel(**FAST).fit(fi, lab, train=one_class)
    with pytest.raises(DataValidationError, match="duration"):
        FusionModel(task="cox", **FAST).fit(fi, lab, train=lab.index)
    with pytest.raises(DataValidationError, match="not in the inputs"):
        FusionModel(**FAST).fit(fi, lab, train=[*lab.index[:20], "NOBODY"])
    fitted = FusionModel(**FAST).fit(fi, lab, train=lab.index)
    with pytest.raises(DataValidationError, match="not in the model's graph"):
        graph.explain(fitted, fi, patients=["NOBODY"])
    with pytest.raises(OptionError, match="did you mean"):
        graph.explain(fitted, fi, method="saliency")
    with pytest.raises(OptionError, match="did you mean 'gcn'"):
        FusionModel(architecture="gnc", **FAST).fit(fi, lab, train=lab.index)
