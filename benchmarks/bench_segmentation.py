"""Segmentation inference: the project's path against a plain MONAI ``sliding_window_inference`` call.

Same model (a lesion-stage 3D U-Net, random weights: speed does not depend on training), same pre-processed
demo volume, same window, overlap and blending. The project's path adds fold-ensemble averaging (one fold here),
softmax and autocast handling; target: at most 1.05x the plain call, identical masks.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
RATIO_TARGET = 1.05
REPEATS = 9


def _volume() -> torch.Tensor:
    from hccomics.datasets import demo_cohort_dir, make_demo_cohort
    from hccomics.imaging import segmentation_items, segmentation_transforms

    manifest = make_demo_cohort(demo_cohort_dir("demo"), profile="demo")
    item = segmentation_items(manifest)[0]
    d = segmentation_transforms(stage="single", spacing=(1.5, 1.5, 3.0), train=False)(item)
    return d["image"].as_tensor()[None]


def run() -> list[dict]:
    from monai.inferers import sliding_window_inference

    from hccomics.imaging import build_network, ensemble_probabilities

    torch.manual_seed(0)
    x = _volume()
    model = build_network("unet", in_channels=x.shape[1], out_channels=2).eval()
    roi = (64, 64, 32)

    def plain() -> torch.Tensor:
        with torch.no_grad():
            return torch.softmax(sliding_window_inference(x, roi_size=roi, sw_batch_size=2, predictor=model, overlap=0.25,
                                                          mode="gaussian"), dim=1)

    def ours() -> torch.Tensor:
        return ensemble_probabilities(x, [model], roi_size=roi, sw_batch_size=2, overlap=0.25)

    plain(), ours()  # warm-up
    t_plain, t_ours = [], []
    for _ in range(REPEATS):  # interleaved, best of REPEATS: the two share the machine's state
        t0 = time.perf_counter()
        a = plain()
        t_plain.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        b = ours()
        t_ours.append(time.perf_counter() - t0)
    same = bool(torch.equal(a.argmax(1), b.argmax(1)))
    diff = float((a - b).abs().max())
    ratio = min(t_ours) / min(t_plain)
    shape = "x".join(str(s) for s in x.shape[1:])
    return [{"benchmark": f"Segmentation inference, one demo volume ({shape}), 3D U-Net, window {roi}",
             "seconds": round(min(t_ours), 3), "baseline": "monai.inferers.sliding_window_inference + softmax",
             "baseline_seconds": round(min(t_plain), 3), "ratio": round(ratio, 3), "budget_seconds": None,
             "ok": ratio <= RATIO_TARGET and same,
             "note": f"target <= {RATIO_TARGET}x; identical masks: {same}; max probability difference {diff:.1e}"}]


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    np.set_printoptions(precision=3)
    for row in run():
        print(row)
