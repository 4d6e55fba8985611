"""The DE layer agrees with R DESeq2 1.34.0 on PyDESeq2's reference data (tests/data/pydeseq2_reference)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hccomics.omics import differential_expression, variance_stabilize

REF = Path(__file__).parent / "data" / "pydeseq2_reference"
CASES = {"single_factor": ("~condition", 0.02), "multi_factor": ("~group + condition", 0.04)}


@pytest.fixture(scope="module")
def inputs() -> tuple[pd.DataFrame, pd.DataFrame]:
    counts = pd.read_csv(REF / "inputs" / "test_counts.csv", index_col=0).T
    meta = pd.read_csv(REF / "inputs" / "test_metadata.csv", index_col=0)
    return counts, meta


def _max_rel(ours: pd.Series, r: pd.Series) -> float:
    both = ours.notna() & r.notna()
    return float((np.abs(ours[both] - r[both]) / np.abs(r[both])).max())


@pytest.mark.parametrize("case", list(CASES))
def test_wald_results_match_r(inputs, case: str) -> None:
    counts, meta = inputs
    design, tol = CASES[case]
    r = pd.read_csv(REF / case / "r_test_res.csv", index_col=0)
    res = differential_expression(counts, metadata=meta, design=design, contrast=["condition", "B", "A"], n_cpus=1)
    assert list(res.index) == list(r.index)
    for col in ("log2FoldChange", "stat", "pvalue", "padj"):
        assert (res[col].isna() == r[col].isna()).all(), f"{col}: NaN pattern differs"
        assert _max_rel(res[col], r[col]) < tol, f"{col}: {_max_rel(res[col], r[col]):.4f}"
    sf = pd.read_csv(REF / case / "r_test_size_factors.csv", index_col=0).iloc[:, 0]
    assert res.attrs["hccomics"]["n_samples"] == len(sf)


@pytest.mark.parametrize("case", list(CASES))
def test_shrunk_lfc_match_r(inputs, case: str) -> None:
    counts, meta = inputs
    design, tol = CASES[case]
    r = pd.read_csv(REF / case / "r_test_lfc_shrink_res.csv", index_col=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = differential_expression(counts, metadata=meta, design=design, contrast=["condition", "B", "A"], n_cpus=1,
                                      shrink=True)
    assert _max_rel(res["log2FoldChange"], r["log2FoldChange"]) < 0.02  # PyDESeq2's own tolerance for shrinkage
    assert "log2FoldChange_mle" in res


@pytest.mark.parametrize(("blind", "file"), [(True, "r_vst.csv"), (False, "r_vst_with_design.csv")])
def test_vst_matches_r(inputs, blind: bool, file: str) -> None:
    counts, meta = inputs
    r = pd.read_csv(REF / "single_factor" / file, index_col=0).T
    vst = variance_stabilize(counts, metadata=meta, design="~condition", blind=blind)
    assert _max_rel(vst.stack(), r.loc[vst.index, vst.columns].stack()) < 0.02
