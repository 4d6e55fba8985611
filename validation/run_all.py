"""Run every validation check and write ``validation/results/summary.md``.

Usage: ``python validation/run_all.py [N_SEEDS [N_DE_SEEDS]]`` (defaults 20 and 10). CI runs one seed of each check
through ``tests/test_validation_one_seed.py``.
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import de_enrichment  # noqa: E402
import demo_imaging  # noqa: E402
import dnb_checks  # noqa: E402
import fusion_ceiling  # noqa: E402
import graph_checks  # noqa: E402
import mvi_checks  # noqa: E402
import segmentation_checks  # noqa: E402
import survival_checks  # noqa: E402
import truth_recovery  # noqa: E402


def _markdown(table) -> str:
    cols = list(table.columns)
    lines = ["| check | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, row in table.iterrows():
        cells = [f"{v:.4f}" if isinstance(v, float) else str(v) for v in row]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    n_seeds = int(argv[0]) if argv else 20
    n_de_seeds = int(argv[1]) if len(argv) > 1 else 10
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    text = f"# Validation ({stamp})\n"
    ok = True
    parts = (
        (f"Demo cohort truth recovery, {n_seeds} seeds, profile demo", truth_recovery, lambda: truth_recovery.run(range(n_seeds))),
        (f"Differential expression, enrichment and signature scores, {n_de_seeds} seeds, profile demo", de_enrichment,
         lambda: de_enrichment.run(range(n_de_seeds))),
        ("Survival: GBSG2, WHAS500, GSE7390 (5 x 5-fold CV) and the demo cohort (5 seeds)", survival_checks,
         lambda: survival_checks.run()),
        ("Demo radiology: planted imaging effects by independent oracles, 3 seeds, profile demo", demo_imaging,
         lambda: demo_imaging.run(range(3))),
        (f"Dynamic network biomarkers: {n_de_seeds} planted series and 200 null series, demo size", dnb_checks,
         lambda: dnb_checks.run(range(n_de_seeds), 200)),
        ("Lesion segmentation: held-out demo patients, 5-fold training, 2 seeds, 72 test patients each (about 3 hours per seed on one core, plus the architecture table)",
         segmentation_checks, lambda: segmentation_checks.run(range(2))),
        ("MVI prediction: ring widths, CNNs on shared folds, saliency by region, 3 seeds (about 85 minutes each on one core)",
         mvi_checks, lambda: mvi_checks.run(range(3))),
        ("Graph fusion: fused GNNs against single-modality and linear baselines on shared folds, explanations against "
         "the planted truth, 3 seeds and the null cohort (reuses the MVI check's CNN folds)", graph_checks,
         lambda: graph_checks.run(range(3))),
        ("Graph fusion ceiling: the planted hazard against its RNA and image parts, 3 seeds, profile demo",
         fusion_ceiling, lambda: fusion_ceiling.run(range(3))),
    )
    for title, module, compute in parts:
        table = compute()
        table.to_csv(out / f"{module.__name__}.csv")
        text += f"\n## {title}\n\n" + _markdown(table) + "\n"
        ok &= bool(table["ok"].all())
        (out / "summary.md").write_text(text)  # written after each part: an interrupted run keeps what finished
    print(text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
