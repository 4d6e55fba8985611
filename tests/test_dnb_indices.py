"""DNB building blocks against hand computations: blocked correlations, shrinkage, indices, modules.

Every reference here is written out with numpy (``np.corrcoef``, ``np.std``) or from the papers'
formulas, never with the functions under test.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hccomics.dnb._correlation import (
    corr,
    mean_abs_corr_to_all,
    module_correlations,
    shrinkage_correlation,
    shrinkage_lambda,
    standardize,
)
from hccomics.dnb.indices import composite_index, transition_index
from hccomics.dnb.modules import community_modules, hierarchical_modules, select_candidates
from hccomics.errors import DataValidationError, OptionError

# 5 samples x 5 features: f0..f2 share a factor, f2 anti-correlated with it; f3, f4 unrelated
X5 = np.array([
    [1.0, 2.1, 9.0, 0.3, 5.0],
    [2.0, 2.9, 8.2, 0.1, 4.1],
    [3.0, 4.2, 6.9, 0.9, 5.5],
    [4.0, 4.8, 6.1, 0.2, 4.4],
    [5.0, 6.3, 4.8, 0.6, 5.2],
])


def _hand_composite(x: np.ndarray, module: list[int], *, signed: bool = False) -> dict[str, float]:
    r = np.corrcoef(x.T)
    r = r if signed else np.abs(r)
    rest = [j for j in range(x.shape[1]) if j not in module]
    inside = [r[i, j] for i in module for j in module if i < j]
    outside = [r[i, j] for i in module for j in rest]
    sd_in = float(np.mean([np.std(x[:, i], ddof=1) for i in module]))
    pcc_in, pcc_out = float(np.mean(inside)), float(np.mean(outside))
    return {"sd_in": sd_in, "pcc_in": pcc_in, "pcc_out": pcc_out, "index": sd_in * pcc_in / pcc_out}


def test_composite_index_matches_hand_computation() -> None:
    got = composite_index(X5, {"m": [0, 1, 2]}).loc["m"]
    want = _hand_composite(X5, [0, 1, 2])
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-12), key
    assert got["n_features"] == 3
    # by name, from a DataFrame, same numbers
    df = pd.DataFrame(X5, columns=["a", "b", "c", "d", "e"])
    by_name = composite_index(df, [["a", "b", "c"]]).iloc[0]
    assert by_name["index"] == pytest.approx(want["index"], rel=1e-12)


def test_composite_index_against_test_oracle() -> None:
    from oracles import dnb_stage_statistics

    rng = np.random.default_rng(3)
    x = pd.DataFrame(rng.normal(size=(9, 12)), columns=[f"g{i}" for i in range(12)])
    x.iloc[:, :4] += 2 * rng.normal(size=(9, 1))
    stages = pd.Series("s", index=x.index)
    oracle = dnb_stage_statistics(x, stages, ["g0", "g1", "g2", "g3"], ["s"]).loc["s"]
    ours = composite_index(x, {"m": ["g0", "g1", "g2", "g3"]}).loc["m"]
    assert ours["index"] == pytest.approx(oracle["composite_index"], rel=1e-12)
    assert ours["pcc_out"] == pytest.approx(oracle["pcc_out"], rel=1e-12)


def test_signed_correlation_lets_an_anticorrelated_member_cancel() -> None:
    absolute = composite_index(X5, {"m": [0, 1, 2]}).loc["m"]
    signed = composite_index(X5, {"m": [0, 1, 2]}, correlation="signed").loc["m"]
    want = _hand_composite(X5, [0, 1, 2], signed=True)
    for key, value in want.items():
        assert signed[key] == pytest.approx(value, rel=1e-12), key
    r = np.corrcoef(X5.T)
    assert r[0, 2] < -0.9 and r[1, 2] < -0.9            # f2 is the anti-correlated member
    assert absolute["pcc_in"] > 0.9                     # |r| keeps it in the module
    assert signed["pcc_in"] < 0.0                       # signed r: two negative pairs outweigh one positive
    assert signed["pcc_in"] == pytest.approx((r[0, 1] + r[0, 2] + r[1, 2]) / 3, rel=1e-12)


def test_transition_index_matches_hand_computation() -> None:
    m = [0, 1, 2, 3]
    got = transition_index(X5, {"m": m}).loc["m"]
    rf = np.abs(np.corrcoef(X5[:, m].T))     # feature-feature
    rs = np.abs(np.corrcoef(X5[:, m]))       # sample-sample, across the module's features
    pf = rf[np.triu_indices(4, 1)].mean()
    ps = rs[np.triu_indices(5, 1)].mean()
    assert got["pcc_features"] == pytest.approx(pf, rel=1e-12)
    assert got["pcc_samples"] == pytest.approx(ps, rel=1e-12)
    assert got["ic"] == pytest.approx(pf / ps, rel=1e-12)


@pytest.mark.parametrize("block", [1, 7, 64, None])
def test_blocked_correlations_match_float64_brute_force(block: int | None) -> None:
    rng = np.random.default_rng(0)
    g = 103  # no block size above divides it
    x = rng.normal(size=(11, g)) + 1000.0    # large offsets stress the centring
    x[:, :10] += rng.normal(size=(11, 1))
    x32 = x.astype(np.float32)
    ref = np.corrcoef(x32.astype(np.float64).T)
    z, sd = standardize(x32)
    np.testing.assert_allclose(corr(z), ref, rtol=1e-5, atol=1e-12)
    np.testing.assert_allclose(sd, x32.astype(np.float64).std(axis=0, ddof=1), rtol=1e-10)
    mods = [np.arange(10), np.array([5, 50, 77, 102]), np.array([3, 4, 5])]  # overlapping on purpose
    pin, pout = module_correlations(z, mods, block=block)
    spin, spout = module_correlations(z, mods, absolute=False, block=block)
    for k, m in enumerate(mods):
        rest = np.setdiff1d(np.arange(g), m)
        sub = ref[np.ix_(m, m)][~np.eye(m.size, dtype=bool)]
        assert pin[k] == pytest.approx(np.abs(sub).mean(), rel=1e-5)
        assert pout[k] == pytest.approx(np.abs(ref[np.ix_(m, rest)]).mean(), rel=1e-5)
        assert spin[k] == pytest.approx(sub.mean(), rel=1e-5)
        assert spout[k] == pytest.approx(ref[np.ix_(m, rest)].mean(), rel=1e-5, abs=1e-12)
        assert mean_abs_corr_to_all(z, m, block=block) == pytest.approx(np.abs(ref[np.ix_(m, rest)]).mean(), rel=1e-5)


def _ss_lambda_by_hand(x: np.ndarray) -> float:
    """Schäfer & Strimmer 2005, Appendix A / Table 1 target D, with the w_kij written out."""
    n, p = x.shape
    xs = (x - x.mean(axis=0)) / x.std(axis=0, ddof=1)
    num = den = 0.0
    for i in range(p):
        for j in range(p):
            if i == j:
                continue
            w = xs[:, i] * xs[:, j]
            wbar = w.mean()
            var_r = n / (n - 1) ** 3 * ((w - wbar) ** 2).sum()
            r = n / (n - 1) * wbar
            num += var_r
            den += r**2
    return min(1.0, max(0.0, num / den))


def test_shrinkage_correlation_matches_the_published_formula() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(6, 4))
    x[:, 1] += x[:, 0]
    r, lam = shrinkage_correlation(x)
    want = _ss_lambda_by_hand(x)
    assert 0.0 <= lam <= 1.0
    assert lam == pytest.approx(want, rel=1e-10)
    shrunk = (1 - want) * np.corrcoef(x.T)
    np.fill_diagonal(shrunk, 1.0)
    np.testing.assert_allclose(r, shrunk, rtol=1e-10)
    assert shrinkage_lambda(x) == pytest.approx(want, rel=1e-10)


def test_shrinkage_vanishes_with_many_samples() -> None:
    rng = np.random.default_rng(0)

    def draw(n: int) -> np.ndarray:
        f = rng.normal(size=(n, 1))
        return f + 0.7 * rng.normal(size=(n, 8))

    small, large = shrinkage_lambda(draw(8)), shrinkage_lambda(draw(20000))
    assert 0.0 <= large < small <= 1.0
    assert large < 1e-3
    assert 0.0 <= shrinkage_lambda(rng.normal(size=(5, 30))) <= 1.0


def test_hierarchical_and_community_modules_recover_planted_blocks() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 30))
    x[:, 0:8] += 3 * rng.normal(size=(40, 1))
    x[:, 8:14] -= 3 * rng.normal(size=(40, 1))
    x[:, 12:14] *= -1  # anti-correlated members join under |r|
    z, _ = standardize(x)
    r = corr(z)
    hier = [m.tolist() for m in hierarchical_modules(r, min_size=4)]
    assert hier == [list(range(8)), list(range(8, 14))]
    signed = [m.tolist() for m in hierarchical_modules(r, absolute=False, min_size=4)]
    assert list(range(8, 12)) in signed and list(range(8, 14)) not in signed
    assert len(hierarchical_modules(r, n_clusters=3, min_size=1)) == 3
    comm = [m.tolist() for m in community_modules(r, min_size=4, seed=0)]
    assert comm == [list(range(8)), list(range(8, 14))]
    topk = [m.tolist() for m in community_modules(r, top_k=3, min_size=4, seed=0)]
    assert any(set(range(8)) <= set(c) for c in topk)  # top-k links also pull in a few noise features


def test_select_candidates_by_sd_and_change() -> None:
    rng = np.random.default_rng(2)
    ref = rng.normal(size=(10, 6))
    stage = rng.normal(size=(10, 6))
    stage[:, 4] += 5.0          # moved, same spread
    stage[:, 1] *= 4.0          # spread out, same centre
    assert select_candidates(stage, n_candidates=1).tolist() == [1]
    assert select_candidates(stage, method="change", reference=ref, n_candidates=1).tolist() == [4]
    with pytest.raises(DataValidationError, match="reference="):
        select_candidates(stage, method="change")
    with pytest.raises(OptionError, match="did you mean 'change'"):
        select_candidates(stage, method="chnage")


def test_index_inputs_are_checked() -> None:
    with pytest.raises(DataValidationError, match="absent from the data"):
        composite_index(pd.DataFrame(X5, columns=list("abcde")), {"m": ["a", "zz"]})
    with pytest.raises(DataValidationError, match="at least 2"):
        composite_index(X5, {"m": [1]})
    bad = X5.copy()
    bad[0, 0] = np.nan
    with pytest.raises(DataValidationError, match="missing"):
        composite_index(bad, {"m": [0, 1]})
    with pytest.raises(OptionError, match="did you mean 'signed'"):
        composite_index(X5, {"m": [0, 1]}, correlation="sign")


def test_shrinkage_index_scales_inside_and_outside_terms() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(8, 40))
    x[:, :6] += 2 * rng.normal(size=(8, 1))
    plain = composite_index(x, {"m": range(6)}).loc["m"]
    shr = composite_index(x, {"m": range(6)}, shrinkage=True).loc["m"]
    assert shr["pcc_in"] == pytest.approx(plain["pcc_in"] * (1 - shrinkage_lambda(x[:, :6])), rel=1e-10)
    assert shr["pcc_out"] == pytest.approx(plain["pcc_out"] * (1 - shrinkage_lambda(x)), rel=1e-10)
    assert shr["sd_in"] == pytest.approx(plain["sd_in"])
