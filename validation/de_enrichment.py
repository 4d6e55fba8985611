"""Differential expression, enrichment and signature scores against the demo cohort's planted truth.

Per seed (profile ``demo``), with effects and with ``null=True``: precision and recall of planted DE
genes at padj < 0.05, rank and FDR of the planted pathway (name read from truth.json) among
WikiPathways sets in ORA and prerank, IL6/IL7 direction, AUC of the PI3K-Akt score for
``recurrence_2y``, the fitted dispersion trend against the generator's, and on the null cohort the
fraction of sets with FDR < 0.05 and of planted genes called.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from pathlib import Path

import pandas as pd
from criteria import summarise

import hccomics as hc

DESIGN = "~ sex + recurrence_2y"
CONTRAST = ["recurrence_2y", "1", "0"]
ALPHA = 0.05
CRITERIA = {
    "de_precision": ("min", ">=", 0.9),
    "de_recall_planted": ("mean", ">", 0.0),  # reported
    "ora_planted_rank": ("max", "<=", 3),
    "ora_planted_fdr": ("max", "<", 0.05),
    "gsea_planted_rank": ("max", "<=", 3),
    "gsea_planted_fdr": ("max", "<", 0.05),
    "il6_il7_up": ("min", ">=", 1.0),
    "pi3k_score_auc": ("mean", ">", 0.5),  # reported
    "trend_a0_rel_err": ("max", "<", 0.2),
    "trend_a1_rel_err": ("max", "<", 0.2),
    "null_ora_sets_fdr05": ("max", "<=", 0.05),
    "null_gsea_sets_fdr05": ("max", "<=", 0.05),
    "null_planted_called": ("mean", "<=", 0.05),
}


def _analyse(manifest: Path, *, seed: int, permutation_num: int) -> dict:
    mdata = hc.io.load_cohort(manifest)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        de = hc.omics.differential_expression(mdata, design=DESIGN, contrast=CONTRAST, alpha=ALPHA, n_cpus=2)
        ora = hc.omics.enrich(de, "wikipathways", alpha=ALPHA)
        gsea = hc.omics.prerank(de, "wikipathways", permutation_num=permutation_num, seed=seed)
    return {"mdata": mdata, "de": de, "ora": ora, "gsea": gsea}


def check_seed(seed: int, *, profile: str = "demo", permutation_num: int = 1000, workdir: Path | None = None) -> dict:
    """Measure every criterion on one seed; returns one row."""
    row: dict = {"seed": seed}
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        m = hc.datasets.make_demo_cohort(Path(tmp) / "effects", profile=profile, seed=seed, images=False)
        truth = json.loads((m.parent / "truth.json").read_text())
        genes = pd.read_csv(m.parent / "truth_genes.csv", index_col=0)
        planted = list(truth["expression"]["planted_genes"])
        movers = set(genes.index[genes.implied_log2fc_recurrence_2y.abs() > 0])
        pathway = truth["expression"]["pi3k_akt_set"]["name"]
        out = _analyse(m, seed=seed, permutation_num=permutation_num)
        de, ora, gsea = out["de"], out["ora"], out["gsea"]
        called = set(de.index[de.padj < ALPHA])
        row["de_n_called"] = len(called)
        row["de_precision"] = len(called & movers) / max(len(called), 1)
        row["de_recall_planted"] = len(called & set(planted)) / len(planted)
        row["ora_planted_rank"], row["ora_planted_fdr"] = ora.at[pathway, "rank"], ora.at[pathway, "fdr"]
        row["gsea_planted_rank"], row["gsea_planted_fdr"] = gsea.at[pathway, "rank"], gsea.at[pathway, "fdr"]
        row["il6_il7_up"] = float((de.loc[["IL6", "IL7"], "log2FoldChange"] > 0).all())
        hc.omics.variance_stabilize(out["mdata"])
        hc.omics.score_signature(out["mdata"], pathway, method="ssgsea", key_added="pi3k")
        row["pi3k_score_auc"] = hc.omics.score_separation(out["mdata"].obs[["pi3k"]], out["mdata"].obs["recurrence_2y"]).at["pi3k", "auc"]
        trend, gen = de.attrs["hccomics"]["dispersion_trend"], truth["expression"]["dispersion_trend"]
        row["trend_a0_rel_err"] = abs(trend["a0"] - gen["a0"]) / gen["a0"]
        row["trend_a1_rel_err"] = abs(trend["a1"] - gen["a1"]) / gen["a1"]

        m0 = hc.datasets.make_demo_cohort(Path(tmp) / "null", profile=profile, seed=seed, null=True, images=False)
        null = _analyse(m0, seed=seed, permutation_num=permutation_num)
        row["null_ora_sets_fdr05"] = float((null["ora"].fdr < 0.05).sum() / (null["ora"].status == "tested").sum())
        row["null_gsea_sets_fdr05"] = float((null["gsea"].fdr < 0.05).sum() / (null["gsea"].status == "tested").sum())
        row["null_planted_called"] = float((null["de"].reindex(planted).padj < ALPHA).mean())
        row["null_de_n_called"] = int((null["de"].padj < ALPHA).sum())
    return row


def evaluate(rows: list[dict]) -> pd.DataFrame:
    """Summary per check: mean, sd, min, max, criterion and whether it holds."""
    return summarise(rows, CRITERIA)


def run(seeds=range(5)) -> pd.DataFrame:
    from tqdm.auto import tqdm

    return evaluate([check_seed(s) for s in tqdm(list(seeds), desc="DE and enrichment (seeds)")])
