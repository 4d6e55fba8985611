"""Bad input to the omics layer gets a clear error or warning that names the fix; ordering is explicit."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from hccomics.errors import DataValidationError, OptionError
from hccomics.omics import (
    AllZeroGenesWarning,
    DroppedSamplesWarning,
    NoOverlapWarning,
    differential_expression,
    enrich,
    score_signature,
)

REF = Path(__file__).parent / "data" / "pydeseq2_reference" / "inputs"
CONTRAST = ["condition", "B", "A"]


@pytest.fixture
def data() -> tuple[pd.DataFrame, pd.DataFrame]:
    counts = pd.read_csv(REF / "test_counts.csv", index_col=0).T
    meta = pd.read_csv(REF / "test_metadata.csv", index_col=0)
    return counts, meta


def _de(counts: pd.DataFrame, meta: pd.DataFrame, **kw) -> pd.DataFrame:
    return differential_expression(counts, metadata=meta, design=kw.pop("design", "~condition"), contrast=kw.pop("contrast", CONTRAST),
                                   n_cpus=1, **kw)


def test_negative_counts(data) -> None:
    counts, meta = data
    counts.iloc[3, 2] = -1
    with pytest.raises(DataValidationError, match="non-negative integers.*negative.*raw counts"):
        _de(counts, meta)


def test_non_integer_counts(data) -> None:
    counts, meta = data
    counts = counts.astype(float)
    counts.iloc[0, 0] += 0.5
    with pytest.raises(DataValidationError, match="not integers.*log_expression"):
        _de(counts, meta)


def test_duplicate_sample_ids(data) -> None:
    counts, meta = data
    with pytest.raises(DataValidationError, match="duplicate sample IDs"):
        _de(counts, pd.concat([meta, meta.iloc[[0]]]))
    dup_counts = pd.concat([counts, counts.iloc[[1]]])
    with pytest.raises(DataValidationError, match="duplicate sample IDs"):
        _de(dup_counts, meta)


def test_samples_missing_from_design_table(data) -> None:
    counts, meta = data
    with pytest.raises(DataValidationError, match="2 sample\\(s\\) of the count table are missing from the design table"):
        _de(counts, meta.iloc[2:])


def test_one_level_factor(data) -> None:
    counts, meta = data
    meta = meta.assign(batch="b1")
    with pytest.raises(DataValidationError, match="design factor 'batch' has a single level"):
        _de(counts, meta, design="~batch + condition")


def test_unknown_contrast_level(data) -> None:
    counts, meta = data
    with pytest.raises(OptionError, match="did you mean 'B'"):
        _de(counts, meta, contrast=["condition", "b", "A"])
    with pytest.raises(DataValidationError, match="not in the design"):
        _de(counts, meta, contrast=["group", "X", "Y"])


def test_all_zero_genes_warn(data) -> None:
    counts, meta = data
    counts["ZERO1"] = 0
    with pytest.warns(AllZeroGenesWarning, match="1 gene\\(s\\) have zero counts in every sample"):
        res = _de(counts, meta)
    assert np.isnan(res.at["ZERO1", "pvalue"])


def test_na_design_rows_dropped_and_counted(data) -> None:
    counts, meta = data
    meta = meta.astype(object)
    meta.iloc[[0, 5, 9], 0] = np.nan
    with pytest.warns(DroppedSamplesWarning, match="3 sample\\(s\\) have a missing design variable"):
        res = _de(counts, meta)
    assert res.attrs["hccomics"]["n_dropped_na"] == 3 and res.attrs["hccomics"]["n_samples"] == len(counts) - 3


def test_sample_order_is_explicit(data) -> None:
    counts, meta = data
    base = _de(counts, meta)
    shuffled = _de(counts, meta.sample(frac=1.0, random_state=1))
    pd.testing.assert_frame_equal(base, shuffled)


def test_results_stored_with_parameters(data) -> None:
    counts, meta = data
    adata = ad.AnnData(np.zeros(counts.shape, dtype=np.float32), obs=meta, var=pd.DataFrame(index=counts.columns))
    adata.layers["counts"] = counts.to_numpy()
    res = differential_expression(adata, design="~condition", contrast=CONTRAST, n_cpus=1, key_added="de_cond")
    stored = adata.uns["de_cond"]
    assert stored["params"]["contrast"] == CONTRAST and stored["results"].equals(res)


def test_gene_set_without_overlap(data) -> None:
    counts, meta = data
    res = _de(counts, meta)
    with pytest.warns(NoOverlapWarning, match="share no gene with the universe"):
        table = enrich(res, {"ELSEWHERE": ["IL6", "IL7", "AKT1"]}, min_size=1)
    assert table.at["ELSEWHERE", "status"] == "no_overlap"
    assert np.isnan(table.at["ELSEWHERE", "pvalue"])  # not reported as 'not enriched'


def test_scores_refuse_raw_counts(data) -> None:
    counts, meta = data
    adata = ad.AnnData(counts.to_numpy(dtype=np.float32), var=pd.DataFrame(index=counts.columns))
    adata.layers["counts"] = counts.to_numpy()
    adata.layers["raw_copy"] = counts.to_numpy()
    for layer in ("counts", "raw_copy"):
        with pytest.raises(DataValidationError, match="raw counts"):
            score_signature(adata, list(counts.columns[:3]), layer=layer)


def test_enrich_hand_computed_example() -> None:
    """A 3x hypergeometric example checked against scipy's survival function."""
    from scipy.stats import hypergeom

    genes = [f"G{i}" for i in range(100)]
    de = pd.DataFrame({"log2FoldChange": 1.0, "padj": [0.01] * 10 + [0.5] * 90}, index=genes)
    table = enrich(de, {"S": genes[:5] + genes[50:55], "T": genes[60:80]}, min_size=5)
    expected = hypergeom.sf(5 - 1, 100, 10, 10)  # 5 of the 10 members among the 10 significant genes
    assert table.at["S", "overlap"] == 5 and table.at["S", "pvalue"] == pytest.approx(expected, rel=1e-6)
    assert table.at["T", "overlap"] == 0 and table.at["T", "pvalue"] == 1.0
    assert table.at["S", "rank"] == 1


def test_enrich_needs_de_columns() -> None:
    with pytest.raises(DataValidationError, match="lacks \\['padj'"):
        enrich(pd.DataFrame({"stat": [1.0]}, index=["IL6"]), {"S": ["IL6"]})


def test_score_separation_matches_by_sample_id() -> None:
    from hccomics.omics import score_separation

    scores = pd.DataFrame({"s": [0.1, 0.2, 0.8, 0.9]}, index=["a", "b", "c", "d"])
    labels = pd.Series([1, 1, 0, 0], index=["d", "c", "b", "a"], name="y")  # same truth, other order
    assert score_separation(scores, labels).at["s", "auc"] == 1.0


def test_versioned_ensembl_ids_get_symbols(data) -> None:
    counts, meta = data
    ids = [f"ENSG{i:011d}.{i % 5 + 1}" for i in range(counts.shape[1])]
    symbols = [f"SYM{i}" for i in range(counts.shape[1])]
    annotation = pd.Series(symbols, index=[i.split(".")[0] for i in ids])
    res = _de(counts.set_axis(ids, axis=1), meta, annotation=annotation)
    assert list(res["symbol"]) == symbols


def test_user_gmt_file(data, tmp_path: Path) -> None:
    counts, meta = data
    res = _de(counts, meta)
    gmt = tmp_path / "mine.gmt"
    gmt.write_text("FIRST_FIVE\tmine\t" + "\t".join(counts.columns[:5]) + "\n")
    table = enrich(res, gmt, min_size=1, alpha=1.0)
    assert table.at["FIRST_FIVE", "collection"] == "mine" and table.at["FIRST_FIVE", "size_in_universe"] == 5
