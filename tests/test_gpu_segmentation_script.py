"""The prepared GPU check of the segmentation (benchmarks/gpu_segmentation.py), as a CPU dry run at a tiny size."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import gpu_segmentation


def test_dry_run_on_cpu(tmp_path: Path) -> None:
    from hccomics.io import read_nifti

    table = gpu_segmentation.main(["--out", str(tmp_path), "--size", "32", "--patients", "4", "--epochs", "2",
                                   "--channels", "4", "8", "16", "32", "--device", "cpu"])
    rows = json.loads((tmp_path / "gpu_segmentation.json").read_text())
    assert len(rows) == len(table) == 2 and {r["n_train"] for r in rows} == {3} and {r["n_test"] for r in rows} == {1}
    # the cohort is drawn on the cubic grid the check asks for
    image = next((tmp_path / "cohort").rglob("*portal_venous*.nii.gz"))
    assert read_nifti(image)[0].shape == (32, 32, 32)
    # mixed precision is CUDA-only: on the CPU both runs are the same fp32 run, to the last digit
    assert [r["precision"] for r in rows] == ["fp32", "fp32"]
    for key in ("liver_final_loss", "lesion_final_loss", "liver_dice", "tumour_dice"):
        assert rows[0][key] == rows[1][key]
    assert all(0.0 <= r[key] <= 1.0 for r in rows for key in ("liver_dice", "tumour_dice"))
    assert all(r["lesion_final_loss"] > 0 for r in rows)  # a loss was computed: the equality above is not 0 == 0
    assert all(r["lesion_seconds_per_epoch"] > 0 and r["inference_seconds_per_volume"] > 0 for r in rows)
    assert all(r["peak_gpu_memory_gib"] is None for r in rows) and table["peak_gpu_memory_gib"].isna().all()
