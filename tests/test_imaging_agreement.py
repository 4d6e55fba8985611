"""ICC against published examples, Bland-Altman and mask edits by hand, volume agreement tables."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from hccomics.errors import DataValidationError, OptionError
from hccomics.imaging.agreement import bland_altman, icc, mask_agreement, volume_agreement

# Shrout & Fleiss (1979), Table 2: 6 targets rated by 4 judges
SHROUT_FLEISS = np.array([[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]], dtype=float)
# McGraw & Wong (1996), Table 6: 10 targets, 2 raters
MCGRAW_WONG = np.array([[103, 119], [82, 65], [116, 106], [102, 102], [99, 105], [98, 100], [104, 107], [62, 85],
                        [97, 101], [107, 110]], dtype=float)


@pytest.mark.parametrize(("kind", "published"), [("ICC(1,1)", 0.17), ("ICC(2,1)", 0.29), ("ICC(3,1)", 0.71)])
def test_icc_reproduces_shrout_fleiss_table(kind: str, published: float) -> None:
    r = icc(SHROUT_FLEISS, kind=kind)
    assert round(r["icc"], 2) == published
    assert r["ci95"][0] < r["icc"] < r["ci95"][1]
    assert (r["n"], r["k"], r["df1"]) == (6, 4, 5)
    if kind != "ICC(1,1)":
        # the paper's mean squares: between targets 11.24, residual 1.02, so F = 11.03 on (5, 15) df
        assert r["F"] == pytest.approx(11.0272, abs=1e-3) and r["df2"] == 15 and r["pvalue"] < 0.001


@pytest.mark.parametrize(("kind", "est", "lo", "hi", "F", "p"), [
    ("ICC(1,1)", 0.722, 0.241, 0.922, 6.18, 0.00437),
    ("ICC(2,1)", 0.720, 0.228, 0.922, 6.00, 0.00677),
    ("ICC(3,1)", 0.714, 0.197, 0.920, 6.00, 0.00677),
])
def test_icc_confidence_intervals_match_r(kind: str, est: float, lo: float, hi: float, F: float, p: float) -> None:
    # values printed by R's DescTools::ICC for McGraw & Wong's Table 6 data (three decimals)
    r = icc(MCGRAW_WONG, kind=kind)
    assert r["icc"] == pytest.approx(est, abs=6e-4)
    assert r["ci95"] == pytest.approx((lo, hi), abs=6e-4)
    assert r["F"] == pytest.approx(F, abs=6e-3) and r["pvalue"] == pytest.approx(p, abs=6e-6)


def test_icc_of_identical_and_offset_raters() -> None:
    x = np.array([[1.0, 1.0], [2.0, 2.0], [4.0, 4.0], [7.0, 7.0]])
    for kind in ("ICC(1,1)", "ICC(2,1)", "ICC(3,1)"):
        r = icc(pd.DataFrame(x, columns=["reader1", "reader2"]), kind=kind)
        assert r["icc"] == 1.0 and r["ci95"] == (1.0, 1.0) and r["pvalue"] == 0.0
    offset = x + np.array([0.0, 3.0])  # a constant bias: perfect consistency, imperfect absolute agreement
    assert icc(offset, kind="ICC(3,1)")["icc"] == 1.0
    absolute = icc(offset, kind="ICC(2,1)")
    assert 0 < absolute["icc"] < 1 and absolute["ci95"][0] < absolute["icc"] < absolute["ci95"][1]


def test_icc_matches_pingouin_when_installed() -> None:
    pg = pytest.importorskip("pingouin")
    long = pd.DataFrame(SHROUT_FLEISS).reset_index().melt(id_vars="index", var_name="judge", value_name="score")
    ref = pg.intraclass_corr(long, targets="index", raters="judge", ratings="score").set_index("Type")
    assert icc(SHROUT_FLEISS)["icc"] == pytest.approx(ref.at["ICC2", "ICC"])
    assert icc(SHROUT_FLEISS, kind="ICC(3,1)")["icc"] == pytest.approx(ref.at["ICC3", "ICC"])


def test_icc_rejects_bad_input() -> None:
    with pytest.raises(OptionError, match="did you mean 'ICC\\(2,1\\)'"):
        icc(SHROUT_FLEISS, kind="icc(2,1)")
    with pytest.raises(DataValidationError, match="missing"):
        icc(np.array([[1.0, 2.0], [np.nan, 3.0], [2.0, 2.0]]))
    with pytest.raises(DataValidationError, match="at least 2 targets"):
        icc(np.array([[1.0, 2.0]]))
    with pytest.raises(DataValidationError, match="numeric"):
        icc(pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"]}))
    with pytest.raises(DataValidationError, match="identical"):
        icc(np.ones((3, 2)))


def test_bland_altman_by_hand() -> None:
    r = bland_altman([10.0, 12.0, 14.0, 20.0], [8.0, 12.0, 13.0, 17.0])  # differences 2, 0, 1, 3
    assert r["bias"] == pytest.approx(1.5) and r["n"] == 4
    assert r["sd"] == pytest.approx(math.sqrt(5 / 3))
    assert (r["loa_lower"], r["loa_upper"]) == pytest.approx((1.5 - 1.96 * math.sqrt(5 / 3), 1.5 + 1.96 * math.sqrt(5 / 3)))
    with pytest.raises(DataValidationError, match="equal length"):
        bland_altman([1.0, 2.0], [1.0])
    with pytest.raises(DataValidationError, match="missing"):
        bland_altman([1.0, np.nan, 3.0], [1.0, 2.0, 3.0])


def test_mask_agreement_counts_edits() -> None:
    auto = np.zeros((10, 10, 10), dtype=np.uint8)
    auto[2:6, 2:6, 2:6] = 1  # 64 voxels
    corrected = auto.copy()
    corrected[2:6, 2:6, 2] = 0  # reader removes one 16-voxel slice
    corrected[6, 2:6, 2:6] = 1  # and adds another
    reference = corrected.copy()
    r = mask_agreement(auto, corrected, reference, spacing=(1.0, 1.0, 2.0), patient_id="p3")
    assert (r["patient_id"], r["voxels_added"], r["voxels_removed"], r["voxels_changed"]) == ("p3", 16, 16, 32)
    assert r["fraction_changed"] == pytest.approx(32 / 80)
    assert r["automatic_ml"] == r["corrected_ml"] == r["reference_ml"] == pytest.approx(64 * 2 / 1000)
    assert r["dice_automatic_corrected"] == pytest.approx(2 * 48 / 128) == r["dice_automatic_reference"]
    assert r["dice_corrected_reference"] == 1.0
    alone = mask_agreement(auto, auto, spacing=(1, 1, 1))
    assert alone["voxels_changed"] == 0 and alone["dice_automatic_corrected"] == 1.0 and math.isnan(alone["reference_ml"])
    empty = np.zeros_like(auto)
    assert mask_agreement(empty, empty, spacing=(1, 1, 1))["fraction_changed"] == 0.0
    with pytest.raises(DataValidationError, match="shape"):
        mask_agreement(auto, corrected, reference[:5], spacing=(1, 1, 1))


def test_volume_agreement_pairs() -> None:
    table = pd.DataFrame({"automatic_ml": [10.0, 20.0, 30.0, 40.0], "corrected_ml": [11.0, 19.0, 31.0, 40.0],
                          "reference_ml": [12.0, 21.0, np.nan, 41.0], "patient_id": list("abcd")})
    out = volume_agreement(table)
    assert list(zip(out["a"], out["b"])) == [("automatic_ml", "corrected_ml"), ("automatic_ml", "reference_ml"),
                                              ("corrected_ml", "reference_ml")]
    assert out["n"].tolist() == [4, 3, 3]
    first = out.iloc[0]
    assert first["icc"] == pytest.approx(icc(table[["automatic_ml", "corrected_ml"]])["icc"])
    assert first["bias"] == pytest.approx(-0.25)
    assert (out["icc_ci_lower"] < out["icc"]).all() and (out["icc"] < out["icc_ci_upper"]).all()
    two = volume_agreement(table.drop(columns="reference_ml"))
    assert len(two) == 1
    with pytest.raises(DataValidationError, match="at least two"):
        volume_agreement(table[["automatic_ml", "patient_id"]])
    with pytest.raises(DataValidationError, match="numeric"):
        volume_agreement(table.assign(corrected_ml=list("wxyz")))
