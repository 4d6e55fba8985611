"""Fold-ensemble sliding-window inference, inversion to the input grid, connected-component post-processing."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch
from monai import transforms as mt
from monai.data import MetaTensor
from monai.inferers import sliding_window_inference
from scipy import ndimage

from hccomics.errors import DataValidationError

__all__ = ["ensemble_probabilities", "predict_volume", "postprocess_lesions", "keep_largest_component"]


def ensemble_probabilities(x: torch.Tensor, models: Sequence[torch.nn.Module], *, roi_size: Sequence[int] | None,
                           sw_batch_size: int = 2, overlap: float = 0.25, amp: bool = True) -> torch.Tensor:
    """Softmax probabilities averaged over models (a fold ensemble), each by MONAI's sliding-window inferer.

    ``x`` is a batch (B, C, H, W, D) on the models' device; returns (B, n_classes, H, W, D) float32.
    ``roi_size=None`` takes the whole volume as one window (a window larger than the volume would pad it).
    """
    roi = tuple(x.shape[2:]) if roi_size is None else tuple(min(r, s) for r, s in zip(roi_size, x.shape[2:]))
    device = x.device
    use_amp = amp and device.type == "cuda"
    total = None
    with torch.no_grad(), torch.autocast(device.type, enabled=use_amp):
        for model in models:
            model.eval()
            logits = sliding_window_inference(x, roi_size=roi, sw_batch_size=sw_batch_size, predictor=model,
                                              overlap=overlap, mode="gaussian")
            p = torch.softmax(logits.float(), dim=1)
            if total is None:
                total = p
            else:
                total += p
    return total if len(models) == 1 else total.div_(len(models))


def predict_volume(item: dict, transform: mt.Compose, models: Sequence[torch.nn.Module], *, roi_size: Sequence[int] | None,
                   device: str | torch.device = "auto", sw_batch_size: int = 2, overlap: float = 0.25, amp: bool = True) -> np.ndarray:
    """Class probabilities of one exam on its input voxel grid (C, X, Y, Z), through pre-processing and back.

    The pre-processing is inverted with MONAI's ``Invertd`` (padding, crop, resampling, orientation), so that the
    probabilities line up with the files the item names, whatever their orientation.
    """
    from hccomics.imaging.transforms import data_errors
    from hccomics.settings import resolve_device

    device = torch.device(resolve_device(device)) if isinstance(device, str) else device
    with data_errors():
        d = transform(item)
    image = d["image"]
    x = image.as_tensor().unsqueeze(0).to(device) if isinstance(image, MetaTensor) else image.unsqueeze(0).to(device)
    prob = ensemble_probabilities(x, models, roi_size=roi_size, sw_batch_size=sw_batch_size, overlap=overlap, amp=amp)[0].cpu()
    d["pred"] = MetaTensor(prob, meta=dict(image.meta), applied_operations=list(image.applied_operations))
    inverted = mt.Invertd(keys="pred", transform=transform, orig_keys="image", nearest_interp=False)(d)["pred"]
    return np.asarray(inverted.detach().cpu().numpy(), dtype=np.float32)


def keep_largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 26-connected component of a binary mask (the liver is one organ)."""
    out = mt.KeepLargestConnectedComponent(applied_labels=[1], connectivity=3)(torch.as_tensor(mask[None].astype(np.uint8)))
    return np.asarray(out[0]).astype(bool)


def postprocess_lesions(prob: np.ndarray, liver: np.ndarray | None, *, spacing: Sequence[float], threshold: float = 0.5,
                        min_lesion_mm3: float = 100.0, liver_margin_mm: float = 3.0, inside_fraction: float = 0.5) -> np.ndarray:
    """Instance-labelled lesions from a lesion probability map.

    Threshold → keep the 26-connected components with at least ``inside_fraction`` of their voxels inside the
    (predicted) liver grown by ``liver_margin_mm``, each kept whole → drop components below ``min_lesion_mm3`` (MONAI
    ``RemoveSmallObjects`` by physical volume) → label the remaining components 1..n by decreasing volume.

    Lesions are judged as components, not clipped voxel by voxel: a large lesion bulging at the liver's edge is
    where a liver mask (a coarse one above all) is least accurate, and clipping it to the mask would shave its
    volume, while a false positive outside the liver lies mostly outside and is dropped.

    Examples
    --------
    >>> prob = np.zeros((12, 12, 6), np.float32)
    >>> prob[1:7, 1:7, 1:5] = 0.9   # a lesion at the liver's edge: one column of it outside the liver
    >>> prob[9:12, 9:12, 0:3] = 0.9  # outside the liver
    >>> liver = np.zeros(prob.shape, bool)
    >>> liver[2:8, 0:8, :] = True
    >>> out = postprocess_lesions(prob, liver, spacing=(1.0, 1.0, 1.0), min_lesion_mm3=10.0, liver_margin_mm=0.5)
    >>> int(out.max()), int((out == 1).sum())  # the edge lesion kept whole (6 * 6 * 4 voxels), the outside one dropped
    (1, 144)
    """
    if not 0.0 < inside_fraction <= 1.0:
        raise DataValidationError(f"inside_fraction must be in (0, 1], got {inside_fraction}")
    mask = prob >= threshold
    if liver is not None and mask.any():
        # an anisotropic ball of liver_margin_mm, in voxels per axis
        radius = [max(1, round(liver_margin_mm / s)) for s in spacing]
        zz = np.ogrid[tuple(slice(-r, r + 1) for r in radius)]
        ball = sum((g * s / liver_margin_mm) ** 2 for g, s in zip(zz, spacing)) <= 1.0
        inside = ndimage.binary_dilation(liver, structure=ball)
        # the share of each component inside the liver: no MONAI or scikit-image transform filters components by
        # their overlap with a second mask
        comp, n = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
        share = np.bincount(comp[inside], minlength=n + 1) / np.maximum(np.bincount(comp.ravel(), minlength=n + 1), 1)
        keep = share >= inside_fraction
        keep[0] = False
        mask = keep[comp]
    if min_lesion_mm3 > 0 and mask.any():
        with warnings.catch_warnings():  # scikit-image's min_size deprecation, raised inside MONAI
            warnings.simplefilter("ignore", FutureWarning)
            kept = mt.RemoveSmallObjects(min_size=float(min_lesion_mm3), connectivity=3, by_measure=True,
                                         pixdim=tuple(float(s) for s in spacing))(torch.as_tensor(mask[None]))
        mask = np.asarray(kept[0]).astype(bool)
    labels, n = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
    if n == 0:
        return labels.astype(np.uint16)
    sizes = np.bincount(labels.ravel())[1:]
    order = np.argsort(-sizes, kind="stable")
    remap = np.zeros(n + 1, np.uint16)
    remap[order + 1] = np.arange(1, n + 1, dtype=np.uint16)
    return remap[labels]
