"""The demo radiology's planted effects, measured by the independent oracles over several seeds.

CI runs seed 0 of the same oracles through ``tests/test_demo_imaging.py``; this module repeats
them on more seeds (each ``demo`` cohort takes about two minutes to generate) and tabulates.
Usage: ``python validation/demo_imaging.py [N_SEEDS]`` (default 3).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from criteria import summarise

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import imaging_oracles as io  # noqa: E402

from hccomics.datasets import make_demo_cohort  # noqa: E402

# planted: CNR -0.7 / +2.0 / +0.5 / -1.0, noise 15 HU, band peak 6 mm, 2-5 mm misalignment
CRITERIA = {
    "cnr_arterial_abs_err": ("max", "<", 0.35),
    "cnr_portal_venous_abs_err": ("max", "<", 0.35),
    "cnr_delayed_abs_err": ("max", "<", 0.35),
    "noise_sd_abs_err_hu": ("max", "<", 3.0),
    "misalignment_median_err_mm": ("max", "<", 1.5),
    "band_peak_err_arterial_mm": ("max", "<=", 1.0),
    "band_peak_err_portal_venous_mm": ("max", "<=", 1.0),
    "index_under_15mm": ("mean", ">", 0.15),
    "solidity_mvi_neg_minus_pos": ("min", ">", 0.02),
    "grade_heterogeneity_spearman": ("min", ">", 0.3),
    "fibrosis_child_pugh_spearman": ("min", ">", 0.3),
    "ablation_margin_median_err_mm": ("max", "<", 2.0),
    "reader_dice_median": ("max", "<", 0.99),
}


def check_seed(seed: int, *, workdir: Path | None = None) -> dict[str, float]:
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        c = io.Cohort.load(make_demo_cohort(Path(tmp), profile="demo", seed=seed))
        planted = c.truth["imaging"]["model"]
        row: dict[str, float] = {"seed": seed}
        for phase, (measured, _) in io.cnr_by_phase(c).items():
            row[f"cnr_{phase}"] = measured
            row[f"cnr_{phase}_abs_err"] = abs(measured - planted["cnr_ct"][phase])
        row["noise_sd_abs_err_hu"] = abs(io.noise_sd(c) - planted["ct_noise_hu"])
        row["misalignment_median_err_mm"] = float(np.median(io.misalignment_errors(c)))
        edges = np.arange(0.5, 14.6, 1.0)
        centres = (edges[:-1] + edges[1:]) / 2
        for phase in ("arterial", "portal_venous"):
            diff = io.band_difference(c, phase, edges)
            row[f"band_peak_{phase}_mm"] = float(centres[np.nanargmax(diff)])
            row[f"band_peak_err_{phase}_mm"] = abs(row[f"band_peak_{phase}_mm"] - planted["band_peak_mm"])
            row[f"band_height_{phase}_hu"] = float(np.nanmax(diff))
        shapes = io.lesion_shapes(c)
        index = shapes[shapes.lesion == 1]
        row["index_under_15mm"] = float((index.diameter < 15).mean())
        big = index[index.diameter > 12]
        row["solidity_mvi_neg_minus_pos"] = float(big.loc[big.mvi == 0, "solidity"].mean() - big.loc[big.mvi == 1, "solidity"].mean())
        row["grade_heterogeneity_spearman"], _ = io.heterogeneity_by_grade(c)
        row["fibrosis_child_pugh_spearman"] = io.fibrosis_spearman(c)
        margins = io.ablation_margins(c)
        row["ablation_margin_median_err_mm"] = float((margins.measured - margins.planted).abs().median())
        row["ablation_cases"] = float(len(margins))
        row["reader_dice_median"] = float(np.median(io.reader_dice(c)))
    return row


def run(seeds: range | list[int] = range(3)) -> pd.DataFrame:
    from tqdm.auto import tqdm

    return summarise([check_seed(s) for s in tqdm(list(seeds), desc="demo imaging (seeds)")], CRITERIA)


if __name__ == "__main__":
    table = run(range(int(sys.argv[1]) if len(sys.argv) > 1 else 3))
    print(table.to_string())
