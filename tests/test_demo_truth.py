"""truth.json's planted effects are present in the generated data, checked by independent oracles.

The oracles here are plain numpy/pandas computations written for the tests (median-of-ratios
size factors, group mean fold changes, per-stage SD and |r|, a hand-written concordance index);
none of them is analysis code of the package.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hccomics.datasets import make_demo_cohort
from hccomics.io import sha256sum
from oracles import dnb_stage_statistics, group_log2fc, harrell_c, median_of_ratios


def _load(manifest: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    root = manifest.parent
    counts = pd.read_csv(root / "expression_counts.csv", index_col=0).T
    clinical = pd.read_csv(root / "clinical.csv", index_col=0)
    return counts, clinical, json.loads((root / "truth.json").read_text())


def test_sizes_and_symbols(demo_manifest: Path) -> None:
    counts, clinical, truth = _load(demo_manifest)
    assert counts.shape == (200, 5000)
    assert list(counts.index) == list(clinical.index)
    from hccomics.datasets import gene_set

    wp = gene_set("WP4172")
    planted = truth["expression"]["planted_genes"]
    assert len(planted) == 40 and {"IL6", "IL7"} <= set(planted) and set(planted) <= set(wp.genes)
    assert all(0.4 <= v <= 1.5 for v in planted.values())
    assert truth["expression"]["pi3k_akt_set"] == {"name": "WP4172", "collection": "WikiPathways human",
                                                  "version": "2019", "size": 345}


def test_size_factors_and_dispersion_trend(demo_manifest: Path) -> None:
    counts, _, truth = _load(demo_manifest)
    true_sf = pd.Series(truth["expression"]["size_factors"])
    est = median_of_ratios(counts)
    assert np.corrcoef(np.log(est), np.log(true_sf[est.index]))[0, 1] > 0.98
    assert 0.2 < np.std(np.log(true_sf)) < 0.4  # realistic spread, as recorded (sd 0.3)
    # method-of-moments dispersion of null genes follows a0 + a1/mu
    genes = pd.read_csv(demo_manifest.parent / "truth_genes.csv", index_col=0)
    null = genes.index[~genes.planted & ~genes.grade_gene & (genes.base_mean > 20)]
    norm = counts[null].div(true_sf[counts.index], axis=0)
    m, v = norm.mean(), norm.var()
    mom = ((v - m * (1 / true_sf).mean()) / m**2).clip(lower=1e-4)
    a0, a1 = truth["expression"]["dispersion_trend"]["a0"], truth["expression"]["dispersion_trend"]["a1"]
    expected = a0 + a1 / genes.loc[null, "base_mean"]
    ratio = np.median(mom / expected)
    assert 0.8 < ratio < 1.25, ratio


def test_planted_fold_changes_recovered(demo_manifest: Path) -> None:
    counts, clinical, truth = _load(demo_manifest)
    lfc = group_log2fc(counts, clinical["recurrence_2y"])
    implied = pd.Series(truth["expression"]["implied_log2fc_recurrence_2y"]["genes"])
    planted = list(truth["expression"]["planted_genes"])
    assert np.corrcoef(lfc[planted], implied[planted])[0, 1] > 0.85
    assert (lfc[planted] - implied[planted]).abs().median() < 0.2
    assert (np.sign(lfc[planted]) == 1).mean() >= 0.95  # all planted effects point up with activity
    null = counts.columns.difference(implied.index)
    assert lfc[null].abs().median() < 0.1
    # IL6 and IL7 in particular
    assert lfc["IL6"] > 0.2 and lfc["IL7"] > 0.2


def test_latent_activity_drives_genes_and_hazard(demo_manifest: Path) -> None:
    counts, clinical, truth = _load(demo_manifest)
    activity = pd.read_csv(demo_manifest.parent / "truth_patients.csv", index_col=0)["pi3k_akt_activity"]
    planted = truth["expression"]["planted_genes"]
    norm = np.log2(counts.div(median_of_ratios(counts), axis=0) + 1)
    # a weighted mean of the planted genes tracks the one latent activity
    score = (norm[list(planted)] - norm[list(planted)].mean()).mul(pd.Series(planted)).sum(axis=1)
    assert np.corrcoef(score, activity[score.index])[0, 1] > 0.9
    # the same activity raises the recurrence hazard
    c = harrell_c(clinical["rfs_time_months"].to_numpy(), clinical["rfs_event"].to_numpy(), activity.to_numpy())
    assert c > 0.6
    # so does MVI (planted hazard ratio exp(0.6))
    assert clinical.loc[clinical.mvi == 1, "recurrence_2y"].mean() > clinical.loc[clinical.mvi == 0, "recurrence_2y"].mean()


def test_clinical_table(demo_manifest: Path) -> None:
    _, clinical, truth = _load(demo_manifest)
    expected = {"age", "sex", "aetiology", "child_pugh", "bclc_stage", "afp_ng_ml", "tumour_diameter_mm",
                "lesion_count", "treatment", "mvi", "edmondson_grade", "rfs_time_months", "rfs_event",
                "os_time_months", "os_event", "recurrence_2y"}
    assert expected <= set(clinical.columns)
    assert set(clinical.treatment) == {"resection", "TACE", "ablation", "transplant"}
    assert set(clinical.aetiology) == {"HBV", "HCV", "alcohol", "MASLD"}
    assert set(clinical.edmondson_grade) == {1, 2, 3, 4}
    # recurrence_2y definition, row by row
    rec = clinical.recurrence_2y
    early = (clinical.rfs_event == 1) & (clinical.rfs_time_months <= 24)
    assert (rec[early] == 1).all()
    assert (rec[clinical.rfs_time_months > 24] == 0).all()
    assert rec[~early & (clinical.rfs_time_months <= 24)].isna().all()
    assert (clinical.os_time_months >= clinical.rfs_time_months - 1e-9).all()
    assert 0.15 < (clinical.tumour_diameter_mm < 15).mean() < 0.45
    assert truth["clinical"]["recurrence_hazard"]["activity"] == 0.8


def test_progression_dnb_module(demo_manifest: Path) -> None:
    root = demo_manifest.parent
    expr = pd.read_csv(root / "progression_expression.csv", index_col=0).T
    samples = pd.read_csv(root / "progression_samples.csv", index_col=0)
    truth = json.loads((root / "truth.json").read_text())["progression"]
    stats = dnb_stage_statistics(expr, samples["stage"], truth["module_genes"], truth["stages"])
    assert stats["n"].between(10, 15).all()
    stats = {stage: tuple(row[["sd_in", "pcc_in", "pcc_out", "composite_index"]]) for stage, row in stats.iterrows()}
    crit = truth["critical_stage"]
    assert crit == "low_grade_dysplastic_nodule"
    order = truth["stages"]
    before = order[: order.index(crit)]
    assert max(stats, key=lambda s: stats[s][3]) == crit
    assert all(stats[crit][0] > stats[s][0] for s in before)       # rising variance
    assert all(stats[crit][1] > stats[s][1] for s in before)       # rising inner correlation
    assert all(stats[crit][2] < stats[s][2] for s in before)       # falling correlation with the rest
    # the population values recorded in truth.json agree in direction
    pop = truth["population_indices"]
    assert max(pop, key=lambda s: pop[s]["composite_index"]) == crit


def test_critical_stage_is_configurable(tmp_path: Path) -> None:
    m = make_demo_cohort(tmp_path, profile="smoke", seed=3, critical_stage="high_grade_dysplastic_nodule")
    truth = json.loads((m.parent / "truth.json").read_text())["progression"]
    eig = truth["eigenvalue_per_stage"]
    assert max(eig, key=eig.get) == "high_grade_dysplastic_nodule"


def test_null_cohort_has_no_effects(tmp_path: Path) -> None:
    m = make_demo_cohort(tmp_path, profile="demo", seed=0, null=True, images=False)
    counts, clinical, truth = _load(m)
    assert truth["expression"]["planted_genes"] == {}
    lfc = group_log2fc(counts, clinical["recurrence_2y"])
    top = lfc[counts.mean() > 20]
    assert top.abs().quantile(0.99) < 0.45  # no gene stands out beyond sampling noise
    activity = pd.read_csv(m.parent / "truth_patients.csv", index_col=0)["pi3k_akt_activity"]
    c = harrell_c(clinical["rfs_time_months"].to_numpy(), clinical["rfs_event"].to_numpy(), activity.to_numpy())
    assert abs(c - 0.5) < 0.08


def test_deterministic_for_a_seed(tmp_path: Path, smoke_manifest: Path) -> None:
    again = make_demo_cohort(tmp_path / "a", profile="smoke", seed=0)
    other = make_demo_cohort(tmp_path / "b", profile="smoke", seed=1)
    for name in ("clinical.csv", "expression_counts.csv", "progression_expression.csv", "truth.json"):
        assert sha256sum(again.parent / name) == sha256sum(smoke_manifest.parent / name)
        assert sha256sum(other.parent / name) != sha256sum(smoke_manifest.parent / name)


def test_reuse_and_regenerate(tmp_path: Path) -> None:
    m = make_demo_cohort(tmp_path, profile="smoke", seed=2)
    stamp = (m.parent / "clinical.csv").stat().st_mtime_ns
    assert make_demo_cohort(tmp_path, profile="smoke", seed=2) == m
    assert (m.parent / "clinical.csv").stat().st_mtime_ns == stamp  # reused
    (m.parent / "clinical.csv").write_text("damaged")
    make_demo_cohort(tmp_path, profile="smoke", seed=2)
    assert (m.parent / "clinical.csv").read_text().startswith("patient_id")


@pytest.mark.parametrize("bad", [{"profile": "demos"}, {"critical_stage": "advanced_hcc"}])
def test_bad_options(tmp_path: Path, bad: dict) -> None:
    from hccomics.errors import OptionError

    with pytest.raises(OptionError, match="is not one of"):
        make_demo_cohort(tmp_path, **bad)


def test_follow_up_times_are_positive(demo_manifest: Path) -> None:
    _, clinical, _ = _load(demo_manifest)
    assert (clinical.rfs_time_months > 0).all() and (clinical.os_time_months > 0).all()
