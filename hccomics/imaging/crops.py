"""Tumour-plus-ring crops of the index lesion from every phase, for the MVI networks.

Each patient's index lesion is cropped from every registered phase with a margin in mm around it (20 mm by
default: every ring and some liver beyond), resampled to one spacing, then resized to one crop size (MONAI
dictionary transforms) and saved as tensors, so that training reads them from memory. Crops are therefore
scale-normalised: the tumour and its margin fill the crop whatever the tumour's size (its size remains an input
of the clinical model). The MRI crop is centred on the largest MRI lesion, which in a multifocal patient need
not be the CT index lesion (lesions are not matched across modalities). Beside the phases, each crop carries the tumour mask as an
extra channel and a *region map* (tumour, each ring shell, the rest of the liver) on the same grid, per modality: the
map that saliency is measured against, and that a region-pooled network averages its features over.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from hccomics.errors import DataValidationError
from hccomics.imaging.rings import DEFAULT_WIDTHS_MM, lesion_rings, ring_name

__all__ = ["crop_items", "load_crops", "prepare_crops", "region_names"]

log = logging.getLogger(__name__)

#: CT window (HU) mapped to [0, 1], as in the segmentation transforms
CT_WINDOW = (-150.0, 250.0)


def region_names(widths: Sequence[float] = DEFAULT_WIDTHS_MM) -> dict[int, str]:
    """Codes of the region map: 1 tumour, 2.. each ring shell, then the rest of the liver (0: outside the liver)."""
    names = {1: "tumour", **{k + 2: ring_name(w) for k, w in enumerate(widths)}}
    names[len(widths) + 2] = "rest_of_liver"
    return names


def _region_map(lesions: np.ndarray, liver: np.ndarray, label: int, spacing: Sequence[float],
                widths: Sequence[float]) -> np.ndarray:
    rings = lesion_rings(lesions, spacing=spacing, liver=liver, widths=widths, mode="shell", labels=[label])[0]
    out = np.where(liver, len(widths) + 2, 0).astype(np.uint8)
    out[(lesions > 0) & (lesions != label)] = 0  # other tumours are neither ring nor liver
    for k, w in enumerate(widths):
        out[rings.mask(ring_name(w))] = k + 2
    out[lesions == label] = 1
    return out


def _regions_key(m: str) -> str:
    return "regions" if m == "ct" else f"{m}_regions"


def crop_items(
    lesions,
    registered: Mapping[str, pd.DataFrame],
    *,
    out_dir: str | Path,
    widths: Sequence[float] = DEFAULT_WIDTHS_MM,
) -> list[dict]:
    """One item per patient with an index lesion: phase paths per modality and masks of the index lesion.

    Parameters
    ----------
    lesions
        Lesion-level AnnData of :func:`hccomics.imaging.lesion_features` per modality (``{"CT": ..., "MRI": ...}``);
        the index lesion is ``obs["is_index"]``.
    registered
        Registered image tables per modality (:func:`hccomics.imaging.register_cohort`).
    out_dir
        Where the region maps and the index-lesion masks are written, per patient.

    Returns
    -------
    list of dict
        ``patient_id``, and per modality ``m`` (``ct``, ``mri``) the phase paths ``m``, the phases ``m_phases`` and
        ``m_tumour`` (index lesion, binary); the region maps ``regions`` (CT frame) and ``mri_regions`` (MRI frame);
        MRI keys are ``None`` for a patient without MRI.

    Examples
    --------
    >>> items = crop_items({"CT": lesions_ct, "MRI": lesions_mri}, {"CT": reg_ct, "MRI": reg_mri},  # doctest: +SKIP
    ...                    out_dir="work/crop_masks")
    """
    from hccomics.imaging.data import segmentation_items
    from hccomics.io.nifti import read_nifti, save_nifti

    if "CT" not in lesions:
        raise DataValidationError("crops are built around the CT index lesion; pass lesions={'CT': ..., ...}")
    out_dir = Path(out_dir)
    per_mod = {}
    for mod, a in lesions.items():
        index = a.obs[a.obs["is_index"].astype(bool)].set_index("patient_id")["lesion"]
        exams = {it["patient_id"]: it for it in segmentation_items(registered[mod], modality=mod,
                                                                   patients=list(index.index))}
        per_mod[mod] = (index, exams)
    items = []
    ct_index = per_mod["CT"][0]
    for pid in sorted(ct_index.index):
        d = out_dir / str(pid)
        d.mkdir(parents=True, exist_ok=True)
        item: dict = {"patient_id": str(pid)}
        for mod, (index, exams) in per_mod.items():
            m = mod.lower()
            if pid not in index.index:
                item.update({m: None, f"{m}_phases": None, f"{m}_tumour": None, _regions_key(m): None})
                continue
            ex = exams[pid]
            les, aff = read_nifti(ex["lesion"])
            label = int(index.loc[pid])
            tumour = save_nifti((les == label).astype(np.uint8), d / f"{m}_index_lesion.nii.gz", affine=aff)
            item.update({m: list(ex["image"]), f"{m}_phases": list(ex["phases"]), f"{m}_tumour": str(tumour)})
            liver = read_nifti(ex["liver"])[0] > 0
            spacing = np.linalg.norm(aff[:3, :3], axis=0)
            regions = _region_map(np.rint(les).astype(np.int32), liver, label, spacing, widths)
            item[_regions_key(m)] = str(save_nifti(regions, d / f"{_regions_key(m)}.nii.gz", affine=aff))
        items.append(item)
    return items


def _modality_transform(*, spacing: Sequence[float], size: Sequence[int], margin_mm: float, ct: bool,
                        regions: bool):
    from monai.transforms import (
        Compose,
        CropForegroundd,
        EnsureTyped,
        LoadImaged,
        NormalizeIntensityd,
        Orientationd,
        Resized,
        ScaleIntensityRanged,
        Spacingd,
    )

    # generic keys: MONAI takes a key that starts with another key plus "_" (e.g. "ct_tumour") for its metadata
    key = "image"
    masks = ["tumour"] + (["regions"] if regions else [])
    keys = [key, *masks]
    margin = [int(np.ceil(margin_mm / s)) for s in spacing]
    norm = ScaleIntensityRanged(key, a_min=CT_WINDOW[0], a_max=CT_WINDOW[1], b_min=0.0, b_max=1.0, clip=True) if ct \
        else NormalizeIntensityd(key, channel_wise=True)
    return Compose([
        LoadImaged(keys, ensure_channel_first=True, image_only=True),
        Orientationd(keys, axcodes="RAS"),
        Spacingd(keys, pixdim=tuple(spacing), mode=["bilinear"] + ["nearest"] * len(masks)),
        norm,
        CropForegroundd(keys, source_key="tumour", margin=margin, allow_smaller=True),
        Resized(keys, spatial_size=tuple(size), mode=["trilinear"] + ["nearest"] * len(masks)),
        EnsureTyped(keys, track_meta=False),
    ])


def _cache_key(item: Mapping, params: Mapping) -> str:
    from hccomics.io.files import sha256sum

    files = [p for k in ("ct", "mri") for p in (item.get(k) or [])]
    files += [item[k] for k in ("ct_tumour", "mri_tumour", "regions", "mri_regions") if item.get(k)]
    digest = hashlib.sha256(json.dumps({"params": params, "files": [sha256sum(f) for f in files]}, sort_keys=True).encode())
    return digest.hexdigest()[:16]


def prepare_crops(
    items: Sequence[Mapping],
    *,
    spacing: Sequence[float] = (1.5, 1.5, 3.0),
    size: Sequence[int] = (32, 32, 16),
    margin_mm: float = 20.0,
    cache_dir: str | Path | None = None,
) -> list[dict]:
    """Crop every item (deterministic MONAI transforms) into tensors; cached per patient when ``cache_dir`` is set.

    Returns
    -------
    list of dict
        ``patient_id``; ``ct``: phases plus the tumour mask as the last channel, ``(P + 1, *size)``, float32;
        ``regions``: the region map on the CT crop (uint8 codes of :func:`region_names`); ``mri`` and
        ``mri_regions`` likewise, or zeros for a patient without MRI, with ``has_mri`` 0 (items without an MRI region
        map get no ``mri_regions``).

    Examples
    --------
    >>> crops = prepare_crops(items, spacing=(1.5, 1.5, 3.0), size=(32, 32, 16), cache_dir="work/crops")  # doctest: +SKIP
    >>> crops[0]["ct"].shape  # doctest: +SKIP
    torch.Size([5, 32, 32, 16])
    """
    import torch
    from tqdm.auto import tqdm

    if not items:
        raise DataValidationError("no crop items; build them with crop_items")
    n_mri = max((len(it["mri"]) for it in items if it.get("mri")), default=0)
    params = {"spacing": [float(s) for s in spacing], "size": [int(s) for s in size], "margin_mm": float(margin_mm),
              "window": list(CT_WINDOW), "version": 2}
    ct_t = _modality_transform(spacing=spacing, size=size, margin_mm=margin_mm, ct=True, regions=True)
    mri_regions = all(it.get("mri_regions") for it in items if it.get("mri"))
    mri_t = _modality_transform(spacing=spacing, size=size, margin_mm=margin_mm, ct=False, regions=mri_regions)
    out = []
    for it in tqdm(items, desc="tumour crops", unit="patient", leave=False):
        cached = Path(cache_dir) / f"{it['patient_id']}-{_cache_key(it, params)}.pt" if cache_dir else None
        if cached is not None and cached.exists():
            out.append({"patient_id": it["patient_id"], **torch.load(cached, map_location="cpu", weights_only=True)})
            continue
        d = ct_t({"image": it["ct"], "tumour": it["ct_tumour"], "regions": it["regions"]})
        crop = {"ct": torch.cat([d["image"], (d["tumour"] > 0.5).float()]).float(),
                "regions": d["regions"][0].round().to(torch.uint8)}
        if it.get("mri"):
            m = mri_t({"image": it["mri"], "tumour": it["mri_tumour"],
                       **({"regions": it["mri_regions"]} if mri_regions else {})})
            crop["mri"] = torch.cat([m["image"], (m["tumour"] > 0.5).float()]).float()
            crop["has_mri"] = torch.tensor(1.0)
            if mri_regions:
                crop["mri_regions"] = m["regions"][0].round().to(torch.uint8)
        else:
            crop["mri"] = torch.zeros((n_mri + 1, *size), dtype=torch.float32) if n_mri else torch.zeros((1, *size))
            crop["has_mri"] = torch.tensor(0.0)
            if mri_regions:
                crop["mri_regions"] = torch.zeros(tuple(size), dtype=torch.uint8)
        if cached is not None:
            from hccomics.io.files import atomic_path

            cached.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(cached) as tmp:
                torch.save(crop, tmp)
        out.append({"patient_id": it["patient_id"], **crop})
    return out


def load_crops(crops: Sequence[Mapping], patients: Sequence[str]) -> list[dict]:
    """The crops of ``patients`` in that order (an error names any patient without a crop)."""
    by_id = {c["patient_id"]: c for c in crops}
    missing = [p for p in patients if p not in by_id]
    if missing:
        raise DataValidationError(f"no crop for patients {missing[:10]} (no index lesion or no CT)")
    return [by_id[p] for p in patients]
