"""The DE wrapper against a plain PyDESeq2 call on the same data (demo cohort, 200 x 5,000), median of N runs."""

from __future__ import annotations

import statistics
import tempfile
import time
import warnings
from pathlib import Path

BUDGET_RATIO = 1.05


def run(repeat: int = 3) -> list[dict]:
    import hccomics as hc
    from pydeseq2.dds import DeseqDataSet
    from pydeseq2.default_inference import DefaultInference
    from pydeseq2.ds import DeseqStats

    with tempfile.TemporaryDirectory() as tmp:
        manifest = hc.datasets.make_demo_cohort(Path(tmp), profile="demo", seed=0, images=False)
        mdata = hc.io.load_cohort(manifest)
    meta = mdata.obs[["sex", "recurrence_2y"]].dropna().copy()
    meta["recurrence_2y"] = meta["recurrence_2y"].astype(int).astype(str)
    meta["sex"] = meta["sex"].astype(str)
    counts = hc.io.layer_frame(mdata["rna"], "counts").astype("int64").loc[meta.index]

    def plain() -> None:
        inference = DefaultInference(n_cpus=2)
        dds = DeseqDataSet(counts=counts, metadata=meta, design="~ sex + recurrence_2y", refit_cooks=True,
                           inference=inference, quiet=True)
        dds.deseq2()
        stats = DeseqStats(dds, contrast=["recurrence_2y", "1", "0"], inference=inference, quiet=True)
        stats.summary()

    def ours() -> None:
        hc.omics.differential_expression(mdata, design="~ sex + recurrence_2y", contrast=["recurrence_2y", "1", "0"],
                                         n_cpus=2)

    times: dict[str, list[float]] = {"plain": [], "ours": []}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain()  # warm-up: imports and first-call costs out of the comparison
        for _ in range(repeat):  # interleaved so that machine load hits both alike
            for name, fn in (("plain", plain), ("ours", ours)):
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    p, o = statistics.median(times["plain"]), statistics.median(times["ours"])
    return [{"benchmark": f"differential_expression, demo 166 x 5000 (median of {repeat})", "seconds": round(o, 2),
             "baseline": "plain PyDESeq2 DeseqDataSet + DeseqStats", "baseline_seconds": round(p, 2),
             "ratio": round(o / p, 3), "budget_seconds": None, "ok": o / p <= BUDGET_RATIO,
             "note": f"ratio budget {BUDGET_RATIO}"}]


if __name__ == "__main__":
    for row in run():
        print(row)
