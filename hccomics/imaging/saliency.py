"""Where an MVI network looks: Grad-CAM / Grad-CAM++ and occlusion (MONAI), saliency mass by region, deletion curves.

MONAI computes the maps; what no library does is relate a map to anatomy. :func:`saliency_by_region` gives the
share of a map's mass inside the tumour, each peritumoral ring shell and the rest of the liver, beside each
region's share of the liver volume in the crop (a map that ignored anatomy would match the volume shares), and
:func:`deletion_curve` the classic faithfulness check: delete the most salient voxels first and watch the
predicted probability fall, against a random order.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import pandas as pd
import torch

from hccomics._options import check_option
from hccomics.errors import DataValidationError
from hccomics.imaging.crops import region_names
from hccomics.imaging.mvi_cnn import MVIClassifier

__all__ = ["deletion_curve", "saliency_by_region", "saliency_maps"]

Method = Literal["gradcam", "gradcam++", "occlusion", "gradient"]
METHODS = ("gradcam", "gradcam++", "occlusion", "gradient")


def _batch(clf: MVIClassifier, crops: Sequence[Mapping], y: pd.DataFrame | None) -> tuple[torch.Tensor, dict]:
    items = clf._items(list(crops), y)
    x = torch.stack([it["image"] for it in items]).to(clf.device_)
    extra = {k: torch.stack([it[k] for it in items]).to(clf.device_) for k in clf._inputs()}
    return x, extra


def _unit_range(maps: torch.Tensor) -> torch.Tensor:
    """Scale each map of a batch ``(B, 1, *spatial)`` to [0, 1]: its least salient voxel 0, its most salient 1.

    The post-processing handed to MONAI's class activation maps. MONAI's own default maps ``(min, max)`` to
    ``(1, 0)`` (its docstring: "this will flip magnitudes"), which would make the least salient voxel the brightest
    and turn every share of saliency mass upside down. A constant map becomes zeros.
    """
    from monai.transforms import ScaleIntensity

    scale = ScaleIntensity(minv=0.0, maxv=1.0)
    return torch.stack([torch.as_tensor(scale(m)) for m in maps]).to(maps.device)


def saliency_maps(clf: MVIClassifier, crops: Sequence[Mapping], y: pd.DataFrame | None = None, *,
                  method: Method = "gradcam", layer: str | None = None, occlusion_size: int = 8) -> np.ndarray:
    """Saliency of the MVI output for each crop, on the crop's grid: ``(n, *crop size)``, non-negative.

    ``gradcam`` / ``gradcam++``: MONAI's class activation maps at ``layer``, upsampled to the crop and scaled to
    [0, 1] per crop with the most salient voxel at 1 (not MONAI's default scaling, which flips the map). The
    default for a ResNet encoder is the third of its four blocks (``encoders.image.layer3``): on a 32 x 32 x 16 crop
    the last block is 4 x 4 x 2 voxels, too coarse to tell a ring from the tumour; the third is 8 x 8 x 4. For a
    region-pooled encoder it is its stem (``encoders.image.stem``), at the crop's resolution. Crops are
    scale-normalised (the tumour plus its margin fills the crop), so a ring's width in voxels varies with the
    tumour's size. ``occlusion``: MONAI's occlusion sensitivity with a cube of ``occlusion_size`` voxels, as
    the drop of the MVI logit when a region is hidden (negative drops set to 0); slower, so use it on few crops.
    ``gradient``: MONAI's vanilla gradient of the MVI logit with respect to the input, absolute, summed over the
    phases (the tumour-mask channel left out), at the crop's full resolution.

    Examples
    --------
    >>> maps = saliency_maps(clf, crops, y, method="gradcam")  # doctest: +SKIP
    >>> saliency_by_region(maps, crops, widths=(2, 4, 6, 8, 10)).groupby("region")["enrichment"].mean()  # doctest: +SKIP
    """
    method = check_option("method", method, METHODS)
    clf._check_fitted()
    if layer is None:
        layer = "encoders.image.stem" if getattr(clf, "pooling", "global") == "regions" else "encoders.image.layer3"
    model = clf.model_.eval()
    with warnings.catch_warnings():
        # MONAI 1.6's occlusion indexes tensors with lists, which torch deprecates; nothing for our callers to act on
        warnings.filterwarnings("ignore", message="Using a non-tuple sequence", category=UserWarning)
        return _saliency_maps(clf, model, crops, y, method=method, layer=layer, occlusion_size=occlusion_size)


def _saliency_maps(clf: MVIClassifier, model: torch.nn.Module, crops: Sequence[Mapping], y: pd.DataFrame | None, *,
                   method: str, layer: str, occlusion_size: int) -> np.ndarray:
    from monai.visualize import GradCAM, GradCAMpp, OcclusionSensitivity, VanillaGrad

    out = []
    for k in range(0, len(crops), 8):
        x, extra = _batch(clf, crops[k:k + 8], y)
        if method == "occlusion":
            # activate=False: the raw MVI logit (MONAI would soft-max over our single output, giving 1 everywhere)
            # MONAI repeats the image for a batch of occluded copies, not the other inputs (MRI, tabular, region maps):
            # with those, one copy at a time. Only the primary image is occluded.
            occ = OcclusionSensitivity(model, mask_size=occlusion_size, n_batch=1 if extra else 32, overlap=0.5,
                                       activate=False, verbose=False)
            with torch.no_grad():
                base = model(x, **extra)[:, 0]
            maps = []
            for i in range(len(x)):
                one = {key: v[i:i + 1] for key, v in extra.items()}
                occ_map, _ = occ(x[i:i + 1], **one)
                maps.append((base[i] - occ_map[0, 0]).clamp(min=0).detach())
            out.append(torch.stack(maps).cpu().numpy())
        elif method == "gradient":
            grad = VanillaGrad(model)
            maps = [grad(x[i:i + 1].clone(), index=0, **{key: v[i:i + 1] for key, v in extra.items()})[0, clf._phases].abs().sum(0)
                    for i in range(len(x))]
            out.append(torch.stack(maps).cpu().numpy())
        else:
            cam = (GradCAM if method == "gradcam" else GradCAMpp)(nn_module=model, target_layers=layer, postprocessing=_unit_range)
            # one crop at a time: MONAI 1.6's Grad-CAM++ broadcasts the class score against the last spatial axis
            maps = [cam(x[i:i + 1], class_idx=0, **{key: v[i:i + 1] for key, v in extra.items()})[0, 0].detach()
                    for i in range(len(x))]
            out.append(torch.stack(maps).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0,))


def saliency_by_region(maps: np.ndarray, crops: Sequence[Mapping], *, widths: Sequence[float],
                       key: str = "regions") -> pd.DataFrame:
    """Share of each map's mass, and of the liver's volume, per region of the crop.

    Parameters
    ----------
    maps
        Saliency per crop, ``(n, *crop size)``, non-negative (e.g. :func:`saliency_maps`).
    crops
        The crops (their ``regions`` map: tumour, ring shells, rest of the liver; 0 outside the liver).
    widths
        Ring widths of the region map (those given to :func:`hccomics.imaging.crop_items`).
    key
        The crops' region map that the maps lie on: ``"regions"`` (CT) or ``"mri_regions"`` (maps of an MRI model).

    Returns
    -------
    pandas.DataFrame
        One row per crop and region: ``patient_id``, ``region``, ``mass_share``, ``volume_share`` and their
        ratio ``enrichment`` (> 1: the map favours the region). Mass outside the liver is not counted.

    Examples
    --------
    >>> regions = np.array([[[1, 2, 7, 7]]], dtype=np.uint8)  # tumour, 2 mm ring, rest of the liver twice
    >>> crops = [{"patient_id": "P1", "regions": torch.from_numpy(regions)}]
    >>> maps = np.array([[[[3.0, 1.0, 0.0, 0.0]]]])
    >>> t = saliency_by_region(maps, crops, widths=(2, 4, 6, 8, 10))
    >>> t.set_index("region").loc[["tumour", "ring_2mm", "rest_of_liver"], ["mass_share", "volume_share"]].to_numpy().tolist()
    [[0.75, 0.25], [0.25, 0.25], [0.0, 0.5]]
    """
    maps = np.asarray(maps, dtype=float)
    if len(maps) != len(crops):
        raise DataValidationError(f"{len(maps)} maps for {len(crops)} crops")
    names = region_names(widths)
    rows = []
    for m, c in zip(maps, crops):
        if c.get(key) is None:
            raise DataValidationError(f"crop {c.get('patient_id')} has no {key!r} region map")
        regions = np.asarray(c[key])
        if m.shape != regions.shape:
            raise DataValidationError(f"map of shape {m.shape} does not fit the crop's region map {regions.shape}")
        if np.any(m < 0):
            raise DataValidationError("saliency maps must be non-negative (clip or take the positive part first)")
        liver = regions > 0
        total, voxels = float(m[liver].sum()), int(liver.sum())
        for code, name in names.items():
            r = regions == code
            mass = float(m[r].sum()) / total if total > 0 else np.nan
            vol = float(r.sum()) / voxels if voxels else np.nan
            rows.append({"patient_id": c["patient_id"], "region": name, "mass_share": mass, "volume_share": vol,
                         "enrichment": mass / vol if vol else np.nan})
    return pd.DataFrame(rows)


def deletion_curve(clf: MVIClassifier, crops: Sequence[Mapping], maps: np.ndarray, y: pd.DataFrame | None = None, *,
                   steps: int = 10, seed: int = 0) -> pd.DataFrame:
    """MVI probability as the most salient voxels are deleted first, against a random deletion order.

    Deleted voxels take each phase's mean over the crop (the tumour-mask channel is kept). The area under the
    curve over the deleted fraction 0-1 (``auc_saliency``) should fall below the random order's (``auc_random``)
    when the map points at what the network uses.

    Returns
    -------
    pandas.DataFrame
        One row per crop: ``patient_id``, ``auc_saliency``, ``auc_random`` and the curves (``curve_saliency``,
        ``curve_random``: probabilities at fractions ``0, 1/steps, ..., 1``).

    Examples
    --------
    >>> table = deletion_curve(clf, crops, saliency_maps(clf, crops, method="gradient"))  # doctest: +SKIP
    >>> table[["auc_saliency", "auc_random"]].mean()  # doctest: +SKIP
    """
    clf._check_fitted()
    maps = np.asarray(maps, dtype=float)
    if len(maps) != len(crops):
        raise DataValidationError(f"{len(maps)} maps for {len(crops)} crops")
    rng = np.random.default_rng(seed)
    fractions = np.linspace(0.0, 1.0, steps + 1)
    rows = []
    model = clf.model_.eval()
    for m, c in zip(maps, crops):
        x, extra = _batch(clf, [c], y)
        n_vox = m.size
        orders = {"saliency": np.argsort(-m.ravel(), kind="stable"), "random": rng.permutation(n_vox)}
        ph = clf._phases
        fill = x[0, ph].mean(dim=tuple(range(1, x.ndim - 1)), keepdim=True)  # phases only; a mask channel stays
        row: dict = {"patient_id": c["patient_id"]}
        for name, order in orders.items():
            batch = x.repeat(len(fractions), *[1] * (x.ndim - 1))
            flat = batch[:, ph].reshape(len(fractions), fill.shape[0], -1)
            for i, f in enumerate(fractions):
                idx = torch.as_tensor(order[: round(f * n_vox)], device=x.device)
                flat[i][:, idx] = fill.reshape(-1, 1).expand(-1, len(idx))
            batch[:, ph] = flat.reshape(batch[:, ph].shape)
            more = {k: v.repeat(len(fractions), *[1] * (v.ndim - 1)) for k, v in extra.items()}
            with torch.no_grad():
                p = torch.sigmoid(model(batch, **more)[:, 0]).cpu().numpy()
            row[f"curve_{name}"] = p.tolist()
            row[f"auc_{name}"] = float(np.trapezoid(p, fractions))
        rows.append(row)
    return pd.DataFrame(rows)
