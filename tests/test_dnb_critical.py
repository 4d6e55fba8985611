"""critical_state on demo-like progression series with a planted DNB module, and its input checks."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from hccomics.datasets.demo_progression import simulate_progression
from hccomics.dnb.critical import ConstantFeaturesWarning, CriticalStateResult, critical_state
from hccomics.errors import DataValidationError, OptionError

GENES = [f"G{i:04d}" for i in range(2000)]
PLANTED = "low_grade_dysplastic_nodule"
FAST = {"n_permutations": 49, "feature_null": 49, "progress": False}


def _series(seed: int, critical: str = PLANTED, *, null: bool = False) -> tuple[ad.AnnData, dict]:
    expr, samples, truth = simulate_progression(GENES, n_features=300, module_size=15, samples_per_stage=(10, 12),
                                                critical_stage=critical, rng=np.random.default_rng(seed), null=null)
    adata = ad.AnnData(expr, obs=samples[["stage"]])
    adata.obs["stage"] = pd.Categorical(adata.obs["stage"], categories=truth["stages"], ordered=True)
    return adata, truth


def _jaccard(a: list[str], b: list[str]) -> float:
    return len(set(a) & set(b)) / len(set(a) | set(b))


@pytest.fixture(scope="module")
def planted() -> tuple[ad.AnnData, dict, CriticalStateResult]:
    adata, truth = _series(3)
    return adata, truth, critical_state(adata, seed=0, **FAST)


def test_finds_the_planted_stage_and_module(planted) -> None:
    _, truth, res = planted
    assert res.critical_stage == PLANTED
    assert res.pvalue < 0.05
    assert res.pvalue_feature < 0.05
    assert _jaccard(res.module, truth["module_genes"]) >= 0.8
    assert res.null.shape == (49,) and res.null_feature.shape == (49,)
    assert res.pvalue == pytest.approx((1 + np.sum(res.null >= res.index)) / 50)


def test_result_tables(planted) -> None:
    adata, truth, res = planted
    s = res.scores
    assert list(s.index) == truth["stages"]
    for col in ("index", "sd_in", "pcc_in", "pcc_out", "n_features", "ic", "null_q05", "null_q50", "null_q95"):
        assert col in s.columns, col
    assert s["critical"].sum() == 1 and s.loc[PLANTED, "critical"]
    assert s.loc[PLANTED, "index"] == pytest.approx(res.index)
    # the reference stage cannot be critical under the default sd_ratio pre-selection: it has no null band
    assert s.loc[truth["stages"][0], ["null_q05", "null_q95"]].isna().all()
    rest = s.drop(index=truth["stages"][0])
    assert (rest["null_q05"] <= rest["null_q95"]).all()
    best = res.modules[PLANTED].iloc[0]
    assert sorted(best["features"]) == sorted(res.module)
    assert res.trajectory["index"].idxmax() == PLANTED        # the module peaks where it was found
    assert res.params["n_permutations"] == 49 and res.params["cut_distance"] == 0.3
    stored = adata.uns["critical_state"]
    assert stored["critical_stage"] == PLANTED and stored["params"]["method"] == "dnb"


def test_result_is_writable_to_h5ad(planted, tmp_path) -> None:
    adata, _, _ = planted
    adata.write_h5ad(tmp_path / "prog.h5ad")
    back = ad.read_h5ad(tmp_path / "prog.h5ad")
    assert back.uns["critical_state"]["critical_stage"] == PLANTED


def test_moving_the_planted_stage_moves_the_answer() -> None:
    adata, truth = _series(3, "early_hcc")
    res = critical_state(adata, seed=0, **FAST)
    assert res.critical_stage == "early_hcc"
    assert _jaccard(res.module, truth["module_genes"]) >= 0.8


def test_null_series_is_not_significant() -> None:
    adata, _ = _series(3, null=True)
    assert critical_state(adata, seed=0, **FAST).pvalue > 0.05


def test_same_seed_same_result() -> None:
    adata, _ = _series(0)
    kw = {"n_permutations": 9, "feature_null": 9, "progress": False, "key_added": None}
    a, b = critical_state(adata, seed=1, **kw), critical_state(adata, seed=1, **kw)
    assert a.module == b.module and a.critical_stage == b.critical_stage
    np.testing.assert_array_equal(a.null, b.null)
    np.testing.assert_array_equal(a.null_feature, b.null_feature)
    pd.testing.assert_frame_equal(a.scores, b.scores)
    c = critical_state(adata, seed=2, **kw)
    assert not np.array_equal(a.null, c.null)


def test_biotip_communities_and_options_run() -> None:
    adata, truth = _series(3)
    res = critical_state(adata, method="biotip", n_permutations=0, feature_null=0, progress=False, key_added=None)
    assert res.critical_stage == PLANTED and np.isnan(res.pvalue)
    assert _jaccard(res.module, truth["module_genes"]) >= 0.8
    res = critical_state(adata, preselect="change", n_candidates=100, shrinkage=True, permute="samples",
                         n_permutations=3, feature_null=3, progress=False, key_added=None)
    assert res.params["preselect"] == "change" and (res.scores["n_candidates"] == 100).all()
    assert {"lambda_in", "lambda_out"} <= set(res.scores.columns)


def _small(**edits) -> ad.AnnData:
    rng = np.random.default_rng(0)
    stages = np.repeat(["a", "b", "c", "d"], 5)
    x = rng.normal(size=(20, 12))
    x[:, :5] += rng.normal(size=(20, 1))
    adata = ad.AnnData(x, obs=pd.DataFrame({"stage": stages}, index=[f"s{i}" for i in range(20)]))
    adata.var_names = [f"f{i}" for i in range(12)]
    for key, value in edits.items():
        if key == "X":
            adata.X = value
        else:
            adata.obs[key] = value
    return adata


def _run(adata: ad.AnnData, **kw) -> CriticalStateResult:
    return critical_state(adata, n_permutations=0, feature_null=0, progress=False, min_module_size=3,
                          key_added=None, **kw)


def test_small_valid_input_runs() -> None:
    assert _run(_small(), cut_distance=0.6).critical_stage in {"a", "b", "c", "d"}


def test_bad_inputs_raise_clear_errors() -> None:
    with pytest.raises(DataValidationError, match=r"fewer than 3 samples: \{'d': 2\}"):
        _run(_small(stage=np.r_[np.repeat(["a", "b", "c"], 6), ["d", "d"]]))
    with pytest.raises(DataValidationError, match="at least 3 ordered stages"):
        _run(_small(stage=np.repeat(["a", "b"], 10)))
    x = _small().X.copy()
    x[3, 7] = np.nan
    with pytest.raises(DataValidationError, match=r"missing or infinite value\(s\) in 1 feature\(s\) \(first: \['f7'\]\)"):
        _run(_small(X=x))
    x = _small().X.copy()
    x[:, 2] = 1.5
    x[:5, 9] = 0.0   # constant within stage 'a' only
    with pytest.raises(DataValidationError, match=r"2 feature\(s\) are constant.*\['f2', 'f9'\].*drop_constant=True"):
        _run(_small(X=x))
    with pytest.warns(ConstantFeaturesWarning, match="dropped"):
        res = _run(_small(X=x), drop_constant=True, cut_distance=0.6)
    assert res.params["dropped_features"] == ["f2", "f9"] and res.params["n_features"] == 10
    with pytest.raises(DataValidationError, match=r"stage_order names stage\(s\) \['e'\]"):
        _run(_small(), stage_order=["a", "b", "c", "d", "e"])
    with pytest.raises(DataValidationError, match="not in stage_order"):
        _run(_small(), stage_order=["a", "b", "c"])
    with pytest.raises(DataValidationError, match="no column 'grade'"):
        _run(_small(), stage_key="grade")
    with pytest.raises(OptionError, match="did you mean 'dnb'"):
        _run(_small(), method="dnbb")
    with pytest.raises(OptionError, match="did you mean 'change'"):
        _run(_small(), preselect="changes")
    with pytest.raises(OptionError, match="reference_stage='z'"):
        _run(_small(), reference_stage="z")
    with pytest.raises(DataValidationError, match="no stage has a module"):
        _run(_small(), cut_distance=0.0)
