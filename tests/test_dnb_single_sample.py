"""Single-sample DNB: formulas against a direct numpy computation, and the planted critical stage."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from hccomics.datasets.demo_progression import STAGES, simulate_progression
from hccomics.dnb.single_sample import single_sample
from hccomics.errors import DataValidationError, OptionError

CRITICAL = "low_grade_dysplastic_nodule"


def _toy() -> ad.AnnData:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(9, 5)) + np.arange(5)
    obs = pd.DataFrame({"stage": pd.Categorical(["ref"] * 5 + ["mid"] * 2 + ["late"] * 2,
                                                categories=["ref", "mid", "late"], ordered=True)},
                       index=[f"s{k}" for k in range(9)])
    return ad.AnnData(x, obs=obs, var=pd.DataFrame(index=[f"g{k}" for k in range(5)]))


def _expected(x: np.ndarray, n_ref: int, s: int, module: list[int]) -> tuple[float, float, float, float]:
    """Direct definitions: reference (leave-one-out for a reference sample) vs reference + sample."""
    ref = x[:n_ref]
    if s < n_ref:
        base, new = np.delete(ref, s, axis=0), ref
    else:
        base, new = ref, np.vstack([ref, x[s]])
    sed = np.abs(x[s] - base.mean(axis=0))
    dp = np.corrcoef(new, rowvar=False) - np.corrcoef(base, rowvar=False)
    rest = [k for k in range(x.shape[1]) if k not in module]
    inside = [abs(dp[a, b]) for ia, a in enumerate(module) for b in module[ia + 1:]]
    outside = [abs(dp[a, b]) for a in module for b in rest]
    sed_in, spcc_in, spcc_out = sed[module].mean(), np.mean(inside), np.mean(outside)
    return sed_in, spcc_in, spcc_out, sed_in * spcc_in / spcc_out


def test_formula_matches_direct_computation() -> None:
    a = _toy()
    single_sample(a, module=["g1", "g3", "g4"])
    module = [1, 3, 4]
    got = a.obsm["sdnb"]
    for s in range(a.n_obs):
        np.testing.assert_allclose(got.iloc[s].to_numpy(), _expected(a.X, 5, s, module), rtol=1e-10)
    np.testing.assert_allclose(a.obs["sdnb"], got["score"])
    # sED layer: |x - mean of the reference| (leave-one-out for reference samples)
    ref = a.X[:5]
    np.testing.assert_allclose(a.layers["sdnb_sed"][6], np.abs(a.X[6] - ref.mean(axis=0)))
    np.testing.assert_allclose(a.layers["sdnb_sed"][0], np.abs(a.X[0] - ref[1:].mean(axis=0)))
    u = a.uns["sdnb"]
    assert u["params"]["reference_stage"] == "ref" and u["module"] == ["g1", "g3", "g4"]
    assert u["stage_n"] == {"ref": 5, "mid": 2, "late": 2}
    assert u["critical_stage"] in {"mid", "late"}


def test_top_features_module_per_sample() -> None:
    a = _toy()
    out = single_sample(a, module=None, n_top=2, copy=True)
    assert "sdnb" not in a.obs and out is not None
    top = out.uns["sdnb"]["sample_modules"]["s6"]
    sed = out.layers["sdnb_sed"][6]
    assert top == [f"g{k}" for k in np.argsort(-sed)[:2]]
    idx = [int(g[1:]) for g in top]
    np.testing.assert_allclose(out.obsm["sdnb"].iloc[6].to_numpy(), _expected(out.X, 5, 6, idx), rtol=1e-10)


def test_bad_inputs() -> None:
    a = _toy()
    with pytest.raises(DataValidationError, match="not in var_names"):
        single_sample(a, module=["g1", "nope"])
    with pytest.raises(OptionError, match="did you mean 'mid'"):
        single_sample(a, module=["g1", "g2"], reference_stage="mi")
    with pytest.raises(DataValidationError, match="at least 4"):
        single_sample(a, module=["g1", "g2"], reference_stage="mid")
    with pytest.raises(DataValidationError, match="string"):
        single_sample(a, module="g1")
    assert "sdnb" not in a.obs  # nothing written on failure


def test_peaks_at_planted_critical_stage() -> None:
    expr, samples, truth = simulate_progression([f"G{i}" for i in range(1000)], n_features=300, module_size=20,
                                                samples_per_stage=(12, 12), critical_stage=CRITICAL,
                                                rng=np.random.default_rng(7))
    a = ad.AnnData(expr, obs=samples)
    single_sample(a, module=truth["module_genes"], stage_order=STAGES)
    means = pd.Series(a.uns["sdnb"]["stage_mean"])
    assert a.uns["sdnb"]["critical_stage"] == CRITICAL
    assert means.idxmax() == CRITICAL
    assert means[CRITICAL] > 1.5 * means["normal"]
