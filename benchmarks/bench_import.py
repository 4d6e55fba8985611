"""`import hccomics` wall time against `import numpy` in the same run (subprocesses, best of N)."""

from __future__ import annotations

import subprocess
import sys
import time

BUDGET_S = 1.0


def _best(code: str, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        times.append(time.perf_counter() - t0)
    return min(times)


def run(repeat: int = 5) -> list[dict]:
    empty = _best("pass", repeat)
    numpy = _best("import numpy", repeat)
    hcc = _best("import hccomics", repeat)
    hcc_io = _best("import hccomics.io", repeat)
    return [
        {"benchmark": "import hccomics", "seconds": round(hcc, 3), "baseline": "import numpy",
         "baseline_seconds": round(numpy, 3), "ratio": round(hcc / numpy, 2), "budget_seconds": BUDGET_S,
         "ok": hcc < BUDGET_S, "note": f"bare interpreter start {empty:.3f} s"},
        {"benchmark": "import hccomics.io (pandas, anndata, pydantic)", "seconds": round(hcc_io, 3),
         "baseline": "import numpy", "baseline_seconds": round(numpy, 3), "ratio": round(hcc_io / numpy, 2),
         "budget_seconds": None, "ok": True, "note": "first use of a subpackage, for information"},
    ]


if __name__ == "__main__":
    for row in run():
        print(row)
