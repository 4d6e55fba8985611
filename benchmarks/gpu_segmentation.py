"""Lesion segmentation on a GPU: 2 epochs at 192³ and fold-ensemble inference, mixed precision against fp32.

The prepared device check of the segmentation, one run sized for 8 minutes on one GPU (not yet timed on one). It
draws a small cohort from the demo generator on a cubic grid (``--size`` voxels a side over the full profile's field
of view, no registration: the check is about the GPU), then trains the two-stage model with the ``full`` profile's
widths twice, with automatic mixed precision and in fp32 (TF32 off), on the same folds, seeds and patients, and
segments the held-out patients with the fold ensemble. A few untimed steps at each precision come first, so that
neither run pays for CUDA's start. Reported per precision: seconds per training epoch of each stage (epochs without
a validation pass), seconds per held-out volume of ensemble inference (liver and lesion stage, inversion and
post-processing included), peak GPU memory, liver / tumour Dice of the held-out patients and each stage's final
training loss. Results go to ``OUT/gpu_segmentation.json`` and ``.csv`` as each run ends.

Usage::

    python benchmarks/gpu_segmentation.py --out OUT                      # on the GPU machine
    python benchmarks/gpu_segmentation.py --out OUT --size 32 --patients 4 --channels 4 8 16 32 --device cpu

The second line is the CPU dry run that ``tests/test_gpu_segmentation_script.py`` makes (mixed precision is a
CUDA feature: on the CPU both runs are fp32). A GPU machine with PyTorch alone also needs the project's other
imports: install the project with ``pip install --no-deps -e .`` beside wheels of monai, nibabel, pydantic (with
pydantic-core, annotated-types, typing-inspection), anndata (with its own requirements) and pyyaml where missing.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

FIELD_OF_VIEW_MM = (192.0, 192.0, 160.0)  # the full demo profile: 192 x 192 x 80 voxels of 1 x 1 x 2 mm


def _one_patient(out: Path, size: int, k: int, seed_seq: np.random.SeedSequence) -> list[dict]:
    """The image series of one demo patient on a ``size``³ grid, in ``out/imaging_<k>/``."""
    from hccomics.datasets.demo_anatomy import Grid
    from hccomics.datasets.demo_clinical import HazardModel, simulate_clinical
    from hccomics.datasets.demo_radiology import simulate_radiology

    rng_clin, rng_abl, rng_img = (np.random.default_rng(s) for s in seed_seq.spawn(3))
    clinical, _, truth = simulate_clinical(40, rng=rng_clin, hazard=HazardModel(), rng_ablation=rng_abl)
    margins = pd.Series(truth["ablation"]["minimal_ablative_margin_mm"], dtype=float).reindex(clinical.index)
    grid = Grid((size, size, size), tuple(f / size for f in FIELD_OF_VIEW_MM))
    series, _, _ = simulate_radiology(clinical, margins, out, n_patients=1, grid=grid, rng=rng_img, folder=f"imaging_{k}")
    return [{**s, "patient_id": f"P{k:02d}"} for s in series]


def make_cohort(out: Path, *, size: int, n_patients: int, seed: int = 0) -> list[dict]:
    """Segmentation items of ``n_patients`` demo patients on a ``size``³ grid (the demo generator, no registration).

    Patients are drawn in worker processes, one each (a patient at 192³ took 19 s on one core of a 2-core machine).
    """
    from hccomics.imaging import segmentation_items
    from hccomics.imaging._parallel import map_processes

    streams = np.random.SeedSequence(seed).spawn(n_patients)
    jobs = [((out, size, k, streams[k]), {}) for k in range(n_patients)]
    series = [s for part in map_processes(_one_patient, jobs, n_jobs=None, desc="cohort", unit="patient") for s in part]
    table = pd.DataFrame([{"patient_id": s["patient_id"], "modality": s["modality"], "phase": s["phase"],
                           "path": str(out / s["path"]), **{f"mask_{m['label']}": str(out / m["path"]) for m in s["masks"]}}
                          for s in series])
    return segmentation_items(table, modality="CT")


def _warm_up(device: str, *, channels: tuple[int, ...], patch: tuple[int, ...]) -> None:
    """A few untimed training steps at each precision: CUDA's context, kernels and workspaces start here."""
    from monai.losses import DiceCELoss

    from hccomics.imaging import build_network

    net = build_network("unet", in_channels=4, out_channels=2, channels=channels).to(device)
    opt = torch.optim.AdamW(net.parameters())
    x = torch.rand(2, 4, *patch, device=device)
    y = (torch.rand(2, 1, *patch, device=device) > 0.9).float()
    for amp in (True, False):
        for _ in range(3):
            with torch.autocast(torch.device(device).type, enabled=amp and torch.device(device).type == "cuda"):
                loss = DiceCELoss(to_onehot_y=True, softmax=True)(net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()


def run_precision(items: list[dict], test: list[dict], *, amp: bool, device: str, out: Path, size: int,
                  epochs: int, channels: tuple[int, ...], seed: int) -> dict:
    """Train and segment once at one precision; return the timings, peak memory, held-out Dice and final losses."""
    import gc

    from hccomics.imaging import LesionSegmenter, evaluate_segmentation

    spacing = np.array(FIELD_OF_VIEW_MM) / size
    cuda = torch.device(device).type == "cuda"
    tf32 = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    if cuda:
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        # fp32 means fp32: PyTorch lets cuDNN convolutions use TF32 by default
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = amp and tf32[1]
    seg = LesionSegmenter(coarse_spacing=tuple(2 * spacing), fine_spacing=tuple(spacing), patch_size=_patch(size),
                          n_folds=2, liver_epochs=epochs, lesion_epochs=epochs, channels=channels, val_every=epochs,
                          amp=amp, device=device, seed=seed, progress=False)
    try:
        t0 = time.perf_counter()
        seg.fit(items)
        if cuda:
            torch.cuda.synchronize()
        train_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        pred = seg.predict(test, out_dir=out / f"predictions_{'amp' if amp else 'fp32'}")
        if cuda:
            torch.cuda.synchronize()
        infer_s = time.perf_counter() - t0
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    metrics, _ = evaluate_segmentation(test, pred)
    history = seg.history_
    training_only = history[history["val_dice"].isna()].groupby("stage")["seconds"].mean()
    final_loss = history.sort_values("epoch").groupby("stage")["train_loss"].last()
    return {"precision": "amp" if amp and cuda else "fp32", "device": str(device), "train_seconds": train_s,
            **{f"{st}_seconds_per_epoch": float(training_only.get(st, np.nan)) for st in ("liver", "lesion")},
            "inference_seconds_per_volume": infer_s / len(test),
            "peak_gpu_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan"),
            "liver_dice": float(metrics.loc[metrics["structure"] == "liver", "dice"].mean()),
            "tumour_dice": float(metrics.loc[metrics["structure"] == "lesion", "dice"].mean()),
            **{f"{st}_final_loss": float(final_loss[st]) for st in ("liver", "lesion")}}


def _patch(size: int) -> tuple[int, int, int]:
    return (min(128, size),) * 3


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--size", type=int, default=192, help="voxels a side of the cubic grid")
    parser.add_argument("--patients", type=int, default=12, help="imaged patients; a quarter are held out")
    parser.add_argument("--epochs", type=int, default=2, help="epochs of each stage and fold")
    parser.add_argument("--channels", type=int, nargs="+", default=[32, 64, 128, 256], help="lesion U-Net widths")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.patients < 4:
        parser.error(f"--patients must be at least 4 (3 to train two folds, 1 held out), got {args.patients}")
    from hccomics.settings import resolve_device

    device = resolve_device(args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    items = make_cohort(args.out / "cohort", size=args.size, n_patients=args.patients, seed=args.seed)
    n_test = max(1, args.patients // 4)
    train, test = items[:-n_test], items[-n_test:]
    print(f"cohort: {len(items)} patients at {args.size}^3 in {time.perf_counter() - t0:.0f} s; device {device}", flush=True)
    _warm_up(device, channels=tuple(args.channels), patch=_patch(args.size))
    rows = []
    for amp in (True, False):
        rows.append({**run_precision(train, test, amp=amp, device=device, out=args.out, size=args.size, epochs=args.epochs,
                                     channels=tuple(args.channels), seed=args.seed),
                     "size": args.size, "n_train": len(train), "n_test": len(test), "epochs": args.epochs})
        table = pd.DataFrame(rows)
        clean = [{k: None if isinstance(v, float) and np.isnan(v) else v for k, v in r.items()} for r in rows]  # JSON has no NaN
        (args.out / "gpu_segmentation.json").write_text(json.dumps(clean, indent=1))
        table.to_csv(args.out / "gpu_segmentation.csv", index=False)
        print(table.round(4).to_string(index=False), flush=True)
    if torch.cuda.is_available():
        print(torch.cuda.get_device_name(), flush=True)
    return table


if __name__ == "__main__":
    main()
