"""Wall time of the notebook suite per profile, against its budget, and the runner's overhead.

The overhead ratio compares ``hccomics run --only 00`` with a plain ``papermill.execute_notebook``
of the same notebook in the same run (kernel start-up included in both).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# minutes per notebook on a 2-core CPU (DESIGN budget; kernel start-up included)
DEMO_BUDGET_MIN = {"00": 1, "01": 3, "02": 2, "03": 2, "04": 10, "05": 2.5, "06": 2.5, "08": 4, "09": 2}
PROFILE_BUDGET_MIN = {"smoke": 5, "demo": 30}


def _suite(profile: str, out: Path) -> tuple[float, dict]:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "hccomics", "demo", "--profile", profile, "--out", str(out), "--force"],
                   check=True, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    return wall, json.loads((out / "run.json").read_text())


def _plain_papermill(manifest: str, out: Path) -> float:
    import papermill as pm

    nb = ROOT / "notebooks" / "00_cohort_overview.ipynb"
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    pm.execute_notebook(str(nb), str(out / "plain.ipynb"), parameters={"manifest": manifest, "run_dir": str(out),
                        "profile": "demo"}, progress_bar=False, kernel_name="python3", cwd=str(out))
    return time.perf_counter() - t0


def run(profiles: tuple[str, ...] = ("smoke", "demo")) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for profile in profiles:
            wall, record = _suite(profile, Path(tmp) / profile)
            budget = PROFILE_BUDGET_MIN[profile] * 60
            rows.append({"benchmark": f"suite, profile {profile} (wall, incl. cohort reuse)", "seconds": round(wall, 1),
                         "baseline": None, "baseline_seconds": None, "ratio": None, "budget_seconds": budget,
                         "ok": wall <= budget, "note": f"{len(record['notebooks'])} notebook(s)"})
            for name, info in record["notebooks"].items():
                nb_budget = DEMO_BUDGET_MIN.get(name[:2]) if profile == "demo" else None
                rows.append({"benchmark": f"  {profile}: {name}", "seconds": info["seconds"], "baseline": None,
                             "baseline_seconds": None, "ratio": None,
                             "budget_seconds": nb_budget * 60 if nb_budget else None,
                             "ok": nb_budget is None or info["seconds"] <= nb_budget * 60, "note": ""})
            if profile == "demo":
                manifest = record["manifest"]
                t0 = time.perf_counter()
                subprocess.run([sys.executable, "-m", "hccomics", "run", manifest, "--out", str(Path(tmp) / "only00"),
                                "--only", "00", "--profile", "demo"], check=True, stderr=subprocess.DEVNULL)
                ours = time.perf_counter() - t0
                plain = _plain_papermill(manifest, Path(tmp) / "plain")
                rows.append({"benchmark": "hccomics run --only 00 (validate, run, HTML, report)", "seconds": round(ours, 2),
                             "baseline": "papermill.execute_notebook of 00", "baseline_seconds": round(plain, 2),
                             "ratio": round(ours / plain, 2), "budget_seconds": None, "ok": True,
                             "note": "runner overhead incl. interpreter start-up and the HTML export"})
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
