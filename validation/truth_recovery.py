"""Planted truth of the demo cohort across seeds, checked by the independent oracles of tests/oracles.py.

Per seed (profile ``demo``), with effects and with ``null=True``:

- planted log2 fold changes (recurrence_2y) recovered: correlation and median absolute error;
- false-positive rate of null genes (Welch t-test, p < 0.05) with effects, and of every gene without;
- power on planted genes;
- Harrell's C of the latent PI3K-Akt activity for recurrence-free survival (about 0.5 without effects);
- the DNB composite index (oracle) peaks at the planted critical stage.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from criteria import summarise

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from oracles import dnb_stage_statistics, group_log2fc, harrell_c, welch_pvalues  # noqa: E402

from hccomics.datasets import make_demo_cohort  # noqa: E402

# acceptance per check: (column, aggregate, comparison, threshold)
CRITERIA = {
    "planted_lfc_corr": ("mean", ">", 0.85),
    "planted_lfc_median_abs_err": ("mean", "<", 0.2),
    "planted_power_p05": ("mean", ">", 0.5),
    "null_gene_fpr_p05": ("mean", "<", 0.07),
    "null_cohort_fpr_p05": ("mean", "<", 0.07),
    "activity_c_index": ("mean", ">", 0.6),
    "null_activity_c_index": ("mean", "<", 0.56),
    "dnb_peak_at_critical": ("mean", ">=", 0.9),
}


def check_seed(seed: int, *, profile: str = "demo", workdir: Path | None = None) -> dict[str, float]:
    """Run every oracle on one seed; return one row of measurements."""
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        row: dict[str, float] = {"seed": seed}
        for null in (False, True):
            m = make_demo_cohort(Path(tmp) / str(null), profile=profile, seed=seed, null=null, images=False)
            root = m.parent
            counts = pd.read_csv(root / "expression_counts.csv", index_col=0).T
            clinical = pd.read_csv(root / "clinical.csv", index_col=0)
            truth = json.loads((root / "truth.json").read_text())
            activity = pd.read_csv(root / "truth_patients.csv", index_col=0)["pi3k_akt_activity"]
            groups = clinical["recurrence_2y"]
            expressed = counts.columns[counts.mean() > 10]
            pvals = welch_pvalues(counts[expressed], groups)
            c = harrell_c(clinical["rfs_time_months"].to_numpy(), clinical["rfs_event"].to_numpy(), activity.to_numpy())
            if null:
                row["null_cohort_fpr_p05"] = float((pvals < 0.05).mean())
                row["null_activity_c_index"] = c
                continue
            implied = pd.Series(truth["expression"]["implied_log2fc_recurrence_2y"]["genes"])
            planted = list(truth["expression"]["planted_genes"])
            lfc = group_log2fc(counts, groups)
            row["planted_lfc_corr"] = float(np.corrcoef(lfc[planted], implied[planted])[0, 1])
            row["planted_lfc_median_abs_err"] = float((lfc[planted] - implied[planted]).abs().median())
            row["planted_power_p05"] = float((pvals.reindex(planted) < 0.05).mean())
            null_genes = expressed.difference(implied.index)
            row["null_gene_fpr_p05"] = float((pvals[null_genes] < 0.05).mean())
            row["activity_c_index"] = c
            expr = pd.read_csv(root / "progression_expression.csv", index_col=0).T
            samples = pd.read_csv(root / "progression_samples.csv", index_col=0)
            prog = truth["progression"]
            stats = dnb_stage_statistics(expr, samples["stage"], prog["module_genes"], prog["stages"])
            row["dnb_peak_at_critical"] = float(stats["composite_index"].idxmax() == prog["critical_stage"])
    return row


def evaluate(rows: list[dict]) -> pd.DataFrame:
    """Summary per check: mean, sd, min, max, criterion and whether it holds."""
    return summarise(rows, CRITERIA)


def run(seeds: range | list[int] = range(10)) -> pd.DataFrame:
    from tqdm.auto import tqdm

    return evaluate([check_seed(s) for s in tqdm(list(seeds), desc="truth recovery (seeds)")])


if __name__ == "__main__":
    print(run().to_string())
