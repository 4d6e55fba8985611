"""DNB composite-index scoring at genome scale: blocked products against a full ``DataFrame.corr``.

20,000 features x 6 stages x 50 samples, with background co-expression factors and a planted
module. Per stage the modules are the average-linkage clusters of the 2,000 top-SD candidates
(found once, untimed); then every module is scored, ``SD_in * PCC_in / PCC_out`` with ``PCC_out``
over all 20,000 features, (a) by ``hccomics.dnb`` blocked matrix products and (b) from the full
20,000 x 20,000 matrix of ``pandas.DataFrame.corr``, one run each in the same process. Also: the
peak RSS of (a) in a fresh subprocess above its baseline (imports and input data), and the
machine's float64 matmul throughput with (a) expressed against it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

N_FEATURES, N_STAGES, N_PER_STAGE = 20_000, 6, 50
N_CANDIDATES, N_FACTORS = 2_000, 40
SPEEDUP_TARGET, RSS_BUDGET_GB = 10.0, 2.0
ROOT = Path(__file__).resolve().parents[1]


def make_data(seed: int = 0) -> tuple[np.ndarray, list[np.ndarray]]:
    """Samples x features (float64) and each stage's sample rows; cheap to draw (about a second)."""
    rng = np.random.default_rng(seed)
    n = N_STAGES * N_PER_STAGE
    factor_of = rng.integers(0, N_FACTORS, N_FEATURES)
    loading = rng.uniform(0.3, 1.0, N_FEATURES)
    x = rng.standard_normal((n, N_FEATURES))
    x += rng.standard_normal((n, N_FACTORS))[:, factor_of] * loading
    module = rng.choice(N_FEATURES, 30, replace=False)      # the planted DNB module, critical at stage 3
    rows = np.arange(3 * N_PER_STAGE, 4 * N_PER_STAGE)
    x[np.ix_(rows, module)] += 3.0 * rng.standard_normal((N_PER_STAGE, 1))
    x += rng.normal(6.0, 2.0, N_FEATURES)
    return x, [np.arange(s * N_PER_STAGE, (s + 1) * N_PER_STAGE) for s in range(N_STAGES)]


def stage_modules(x: np.ndarray, groups: list[np.ndarray]) -> list[list[np.ndarray]]:
    """Per stage, the modules (feature positions) that both paths score."""
    from hccomics.dnb._correlation import corr, standardize
    from hccomics.dnb.modules import hierarchical_modules, select_candidates

    out = []
    for g in groups:
        cand = select_candidates(x[g], n_candidates=N_CANDIDATES)
        z, _ = standardize(x[g][:, cand])
        out.append([np.sort(cand[m]) for m in hierarchical_modules(corr(z), cut_distance=0.5, min_size=5)])
    return out


def ours(x: np.ndarray, groups: list[np.ndarray], modules: list[list[np.ndarray]]) -> list[np.ndarray]:
    from hccomics.dnb._correlation import standardize
    from hccomics.dnb.indices import composite_arrays

    out = []
    for g, mods in zip(groups, modules):
        z, sd = standardize(x[g])
        out.append(composite_arrays(z, sd, mods)["index"])
    return out


def plain(x: np.ndarray, groups: list[np.ndarray], modules: list[list[np.ndarray]]) -> list[np.ndarray]:
    import pandas as pd

    out = []
    for g, mods in zip(groups, modules):
        df = pd.DataFrame(x[g])
        r = df.corr().to_numpy()
        np.abs(r, out=r)
        sd = df.std().to_numpy()
        idx = []
        for m in mods:
            rest = np.setdiff1d(np.arange(x.shape[1]), m)
            inside = r[np.ix_(m, m)][~np.eye(m.size, dtype=bool)].mean()
            idx.append(sd[m].mean() * inside / r[np.ix_(m, rest)].mean())
        out.append(np.array(idx))
        del r
    return out


def matmul_gflops(size: int = 2048, repeat: int = 3) -> tuple[float, float]:
    """Best-of-``repeat`` float64 ``a @ b`` throughput (GFLOP/s) and its seconds."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((size, size)), rng.standard_normal((size, size))
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeat))
    return 2 * size**3 / best / 1e9, best


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _flops(groups: list[np.ndarray], modules: list[list[np.ndarray]]) -> float:
    """Floating-point operations of the products of our path (the part a matmul peak bounds)."""
    total = 0.0
    for g, mods in zip(groups, modules):
        union = np.unique(np.concatenate(mods)).size if mods else 0
        total += 2.0 * g.size * N_FEATURES * union + sum(2.0 * g.size * m.size**2 for m in mods)
    return total


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _rss_child() -> None:
    """In a fresh interpreter: peak RSS of our path above the RSS after imports and input data."""
    import hccomics.dnb._correlation
    import hccomics.dnb.indices
    import hccomics.dnb.modules  # noqa: F401

    after_import = _rss_kib("VmRSS")
    x, groups = make_data()
    modules = stage_modules(x, groups)
    base = _rss_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset the VmHWM high-water mark to the current RSS
    seconds = _timed(lambda: ours(x, groups, modules))
    peak = _rss_kib("VmHWM")
    print(json.dumps({"after_import_mib": after_import / 1024, "baseline_mib": base / 1024, "peak_mib": peak / 1024,
                      "seconds": seconds}))


def run() -> list[dict]:
    x, groups = make_data()
    modules = stage_modules(x, groups)
    n_mods = sum(len(m) for m in modules)
    t_ours = _timed(lambda: ours(x, groups, modules))
    got = ours(x, groups, modules)
    t_plain = _timed(lambda: plain(x, groups, modules))
    want = plain(x, groups, modules)
    err = max(float(np.max(np.abs(a - b) / np.abs(b))) for a, b in zip(got, want) if a.size)
    speedup = t_plain / t_ours

    child = subprocess.run([sys.executable, __file__, "--rss"], check=True, capture_output=True, text=True,
                           cwd=ROOT)
    mem = json.loads(child.stdout.strip().splitlines()[-1])
    extra_gb = (mem["peak_mib"] - mem["baseline_mib"]) / 1024

    gflops, t_mm = matmul_gflops()
    flops = _flops(groups, modules)
    at_peak = flops / (gflops * 1e9)
    shape = f"{N_FEATURES} features x {N_STAGES} stages x {N_PER_STAGE} samples, {n_mods} modules"
    return [
        {"benchmark": f"DNB composite index of all modules, {shape}", "seconds": round(t_ours, 2),
         "baseline": "pandas.DataFrame.corr (full matrix) + same index", "baseline_seconds": round(t_plain, 2),
         "ratio": round(t_ours / t_plain, 4), "budget_seconds": None, "ok": speedup >= SPEEDUP_TARGET,
         "note": f"speed-up {speedup:.1f}x (target >= {SPEEDUP_TARGET:.0f}x); max relative difference {err:.1e}"},
        {"benchmark": "DNB composite index, peak RSS above baseline (fresh process)", "seconds": round(mem["seconds"], 2),
         "baseline": None, "baseline_seconds": None, "ratio": None, "budget_seconds": None,
         "ok": extra_gb < RSS_BUDGET_GB,
         "note": f"{extra_gb * 1024:.0f} MiB above {mem['baseline_mib']:.0f} MiB (imports {mem['after_import_mib']:.0f} "
                 f"MiB + data and modules); budget {RSS_BUDGET_GB:.0f} GB"},
        {"benchmark": "float64 matmul 2048^3 (machine throughput)", "seconds": round(t_mm, 3), "baseline": None,
         "baseline_seconds": None, "ratio": None, "budget_seconds": None, "ok": True,
         "note": f"{gflops:.1f} GFLOP/s; DNB scoring does {flops / 1e9:.1f} GFLOP of products, {at_peak:.2f} s at "
                 f"that rate = {at_peak / t_ours:.0%} of its measured time"},
    ]


if __name__ == "__main__":
    if sys.argv[1:] == ["--rss"]:
        sys.path.insert(0, str(ROOT))
        _rss_child()
    else:
        for row in run():
            print(row)
