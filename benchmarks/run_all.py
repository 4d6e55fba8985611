"""Run every benchmark and write ``benchmarks/results/summary.md`` (and ``.json``)."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_de  # noqa: E402
import bench_import  # noqa: E402
import bench_dnb  # noqa: E402
import bench_segmentation  # noqa: E402
import bench_suite  # noqa: E402


def _markdown(rows: list[dict]) -> str:
    head = "| benchmark | seconds | baseline | baseline s | ratio | budget s | ok |\n|---|---:|---|---:|---:|---:|---|\n"
    body = "".join(
        f"| {r['benchmark']} | {r['seconds']} | {r['baseline'] or ''} | {r['baseline_seconds'] or ''} | "
        f"{r['ratio'] or ''} | {r['budget_seconds'] or ''} | {'yes' if r['ok'] else 'NO'} |\n" for r in rows
    )
    return head + body


def main() -> int:
    import os

    rows = bench_import.run() + bench_de.run() + bench_dnb.run() + bench_segmentation.run() + bench_suite.run()
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    text = f"# Benchmarks ({stamp}, {os.cpu_count()} CPU cores)\n\n" + _markdown(rows)
    (out / "summary.md").write_text(text)
    (out / "summary.json").write_text(json.dumps(rows, indent=2))
    print(text)
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
