"""MONAI dictionary transforms for multi-phase segmentation: load, RAS, spacing, windowing, labels, crops."""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Hashable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from monai import transforms as mt

from hccomics._options import check_option
from hccomics.errors import DataValidationError

__all__ = ["Stage", "EnsureFinited", "StageLabeld", "segmentation_transforms", "CT_WINDOW", "data_errors"]

# MONAI announces at each LoadImage that its optional GPU DICOM decoder is absent; our loads are NIfTI only
logging.getLogger("monai.data.nvimgcodec_pydicom_plugin").setLevel(logging.ERROR)
warnings.filterwarnings("ignore", message="NvImgCodecPydicomReader", category=UserWarning)

Stage = Literal["liver", "lesion", "single"]
STAGES = ("liver", "lesion", "single")
CT_WINDOW = (-150.0, 250.0)  # abdominal soft-tissue window (W400 / L50), HU


@contextlib.contextmanager
def data_errors() -> Iterator[None]:
    """Surface a :class:`~hccomics.errors.DataValidationError` raised inside MONAI's transform wrapper as itself."""
    try:
        yield
    except RuntimeError as err:
        cause = err.__cause__
        while cause is not None and not isinstance(cause, DataValidationError):
            cause = cause.__cause__
        if cause is None:
            raise
        raise cause from None


class EnsureFinited(mt.MapTransform):
    """Raise :class:`~hccomics.errors.DataValidationError` when a volume holds NaN or infinite voxels.

    MONAI would carry NaN silently into the loss; the file is named so that the user can fix it.
    """

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            arr = d[key]
            finite = torch.isfinite(arr) if isinstance(arr, torch.Tensor) else torch.from_numpy(np.isfinite(np.asarray(arr)))
            if not bool(finite.all()):
                bad = (~finite).reshape(finite.shape[0], -1).sum(1)
                phases = d.get("phases") or [f"channel {k}" for k in range(len(bad))]
                where = ", ".join(f"{phases[k]}: {int(n)}" for k, n in enumerate(bad.tolist()) if n)
                source = getattr(arr, "meta", {}).get("filename_or_obj", key)
                raise DataValidationError(f"NaN or infinite voxels in {key!r} of {Path(str(source)).parent} ({where}); "
                                          "fix the export or mask them before segmentation")
        return d


class StageLabeld(mt.MapTransform):
    """Write ``label`` for a stage: liver (0/1), lesion (0/1, instances merged) or single-stage (0 / 1 liver / 2 lesion)."""

    def __init__(self, stage: Stage, *, liver_key: str = "liver", lesion_key: str = "lesion", label_key: str = "label") -> None:
        super().__init__([liver_key, lesion_key], allow_missing_keys=True)
        self.stage = check_option("stage", stage, STAGES)
        self.liver_key, self.lesion_key, self.label_key = liver_key, lesion_key, label_key

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        liver, lesion = d.get(self.liver_key), d.get(self.lesion_key)
        if self.stage == "liver":
            label = liver > 0
        elif self.stage == "lesion":
            label = lesion > 0
        else:
            label = ((liver > 0) | (lesion > 0)).to(torch.uint8) + (lesion > 0).to(torch.uint8)
        d[self.label_key] = label.to(torch.float32)  # a MetaTensor op: the meta (affine, history) carries over
        return d


def segmentation_transforms(
    *,
    stage: Stage,
    modality: str = "CT",
    spacing: Sequence[float],
    train: bool,
    patch_size: Sequence[int] | None = None,
    samples_per_volume: int = 2,
    crop_key: str | None = None,
    crop_margin: int = 4,
    with_labels: bool = True,
    ct_window: tuple[float, float] = CT_WINDOW,
    divisible: int = 8,
) -> mt.Compose:
    """The pre-processing (and augmentation) chain of one stage, as MONAI dictionary transforms.

    Load (phases stacked as channels) → NaN check → RAS → resample to ``spacing`` (mm) → CT window to [0, 1] or
    MRI per-channel z-score → stage label → crop to the liver (lesion stage: ``crop_key``, the reference liver when
    training, the stage-1 liver at inference) → pad to a multiple of ``divisible`` → training only: random patches
    balanced between foreground and background, flips and small intensity changes.

    Parameters
    ----------
    stage
        ``"liver"`` (coarse whole volume), ``"lesion"`` (inside a liver crop) or ``"single"`` (one model, whole volume,
        labels background / liver / lesion).
    modality
        ``"CT"`` (windowed) or ``"MRI"`` (z-scored per channel over the body).
    spacing
        Target voxel spacing in mm.
    train
        Add the random patch sampler and augmentations.
    patch_size
        Patch size in voxels for training (default: whole volume).
    crop_key
        Key of the mask whose bounding box (plus ``crop_margin`` voxels) crops the volume; lesion stage only.
    with_labels
        Load ``liver`` / ``lesion`` and build ``label``; off for inference on unlabelled data.

    Examples
    --------
    >>> t = segmentation_transforms(stage="liver", spacing=(3.0, 3.0, 6.0), train=False)
    >>> type(t).__name__
    'Compose'
    """
    check_option("stage", stage, STAGES)
    check_option("modality", modality, ("CT", "MRI"))
    masks = [k for k in (("liver", "lesion") if with_labels else ()) + ((crop_key,) if crop_key else ())]
    masks = list(dict.fromkeys(masks))
    keys = ["image", *masks]
    chain: list = [
        mt.LoadImaged(keys=keys, image_only=True, reader="NibabelReader"),  # NIfTI only: DICOM enters through hccomics.io
        mt.EnsureChannelFirstd(keys=keys),
        EnsureFinited(keys=["image"]),
        mt.Orientationd(keys=keys, axcodes="RAS", labels=(("L", "R"), ("P", "A"), ("I", "S"))),
        mt.Spacingd(keys=keys, pixdim=tuple(spacing), mode=["bilinear"] + ["nearest"] * len(masks)),
    ]
    if modality == "CT":
        chain.append(mt.ScaleIntensityRanged(keys="image", a_min=ct_window[0], a_max=ct_window[1], b_min=0.0, b_max=1.0, clip=True))
    else:
        chain.append(mt.NormalizeIntensityd(keys="image", nonzero=True, channel_wise=True))
    data_keys = ["image"]
    if with_labels:
        chain.append(StageLabeld(stage))
        data_keys.append("label")
    if crop_key:
        chain.append(mt.CropForegroundd(keys=data_keys, source_key=crop_key, margin=crop_margin, allow_smaller=True))
    chain.append(mt.DivisiblePadd(keys=data_keys, k=divisible))
    if train:
        if patch_size is not None:
            chain.append(mt.SpatialPadd(keys=data_keys, spatial_size=tuple(patch_size)))
            if stage == "single":  # background, liver and lesion centres equally often: lesions are rare in a whole volume
                chain.append(mt.RandCropByLabelClassesd(keys=data_keys, label_key="label", spatial_size=tuple(patch_size),
                                                        num_classes=3, ratios=[1, 1, 1], num_samples=samples_per_volume,
                                                        warn=False))
            else:
                chain.append(mt.RandCropByPosNegLabeld(keys=data_keys, label_key="label", spatial_size=tuple(patch_size),
                                                       pos=1.0, neg=1.0, num_samples=samples_per_volume))
        if stage == "lesion":  # a left-right flip of a whole abdomen would hide which side the liver is on
            chain.append(mt.RandFlipd(keys=data_keys, prob=0.5, spatial_axis=0))
        chain += [mt.RandScaleIntensityd(keys="image", factors=0.1, prob=0.5),
                  mt.RandShiftIntensityd(keys="image", offsets=0.05, prob=0.5)]
    chain.append(mt.EnsureTyped(keys=data_keys, dtype=torch.float32, track_meta=not train))
    if train:
        chain.append(mt.SelectItemsd(keys=data_keys))  # ids, paths and absent masks (None) do not collate
    return mt.Compose(chain)

