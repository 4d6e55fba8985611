"""Run every validation check and write ``validation/results/summary.md``.

Usage: ``python validation/run_all.py [N_SEEDS]`` (default 20). CI runs one seed of each check
through ``tests/test_validation_one_seed.py``.
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

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
    table = truth_recovery.run(range(n_seeds))
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    text = (f"# Validation ({stamp})\n\n## Demo cohort truth recovery, {n_seeds} seeds, profile demo\n\n"
            + _markdown(table) + "\n")
    (out / "summary.md").write_text(text)
    table.to_csv(out / "truth_recovery.csv")
    print(text)
    return 0 if table["ok"].all() else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
