"""Masks from a DICOM Segmentation (SEG), voxel-exact on the grid of the image it segments.

The SEG is read with highdicom (:func:`highdicom.seg.segread`); its frames are placed in space
by highdicom's volume API and matched to the target grid by permuting, flipping, cropping and
padding only (:meth:`highdicom.Volume.match_geometry`), never by resampling, so a SEG that
does not lie on the grid is refused rather than interpolated.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import highdicom as hd
import numpy as np
from scipy import ndimage

from hccomics.errors import DataValidationError
from hccomics.io.deid import unlogged_dicom_values
from hccomics.io.dicom import LPS_TO_RAS

__all__ = ["SEGMENT_KEYWORDS", "label_lesions", "read_seg", "seg_masks", "segment_groups"]


SEGMENT_KEYWORDS: dict[str, tuple[str, ...]] = {
    "lesion": ("mass", "tumor", "tumour", "lesion", "neoplasm", "carcinoma", "hcc", "nodule"),
    "liver": ("liver",),
}
"""Mask label -> words that start a word of a segment's label or property type.

Checked in this order, so "Liver tumour" is a lesion; segments that match nothing (portal
vein, aorta) are ignored.
"""

_GRID_TOL = 1e-3  # in voxels and direction cosines: DS rounding of positions, not a different grid


def read_seg(path: str | Path) -> hd.seg.Segmentation:
    """Read a DICOM SEG with highdicom; refuse other files with a clear message."""
    path = Path(path)
    with unlogged_dicom_values():
        try:
            seg = hd.seg.segread(path)
        except Exception as exc:  # noqa: BLE001 - highdicom raises ValueError, AttributeError, KeyError ...
            raise DataValidationError(
                f"{path} could not be read as a DICOM Segmentation ({type(exc).__name__}); check that it is the "
                "collection's SEG object (Modality SEG) and that the download is complete"
            ) from None
    return seg


def _words(text: str) -> list[str]:
    return [w for w in re.split(r"[^a-z0-9]+", text.lower()) if w]


def segment_groups(seg: hd.seg.Segmentation, *, keywords: Mapping[str, Sequence[str]] = SEGMENT_KEYWORDS) -> dict[str, list[int]]:
    """Segment numbers of each mask label, matched on SegmentLabel and the property type's meaning.

    Examples
    --------
    >>> from types import SimpleNamespace as NS
    >>> segs = [NS(SegmentNumber=1, SegmentLabel="Liver", SegmentedPropertyTypeCodeSequence=[]),
    ...         NS(SegmentNumber=2, SegmentLabel="Mass", SegmentedPropertyTypeCodeSequence=[]),
    ...         NS(SegmentNumber=3, SegmentLabel="Portal vein", SegmentedPropertyTypeCodeSequence=[])]
    >>> segment_groups(NS(SegmentSequence=segs))
    {'lesion': [2], 'liver': [1]}
    """
    groups: dict[str, list[int]] = {label: [] for label in keywords}
    for item in seg.SegmentSequence:
        text = str(getattr(item, "SegmentLabel", "") or "")
        codes = getattr(item, "SegmentedPropertyTypeCodeSequence", None) or []
        text += " " + " ".join(str(getattr(c, "CodeMeaning", "") or "") for c in codes)
        words = _words(text)
        for label, keys in keywords.items():
            if any(w.startswith(k) for w in words for k in keys):
                groups[label].append(int(item.SegmentNumber))
                break
    return {label: numbers for label, numbers in groups.items() if numbers}


def seg_masks(seg: str | Path | hd.seg.Segmentation, *, affine: np.ndarray, shape: Sequence[int],
              keywords: Mapping[str, Sequence[str]] = SEGMENT_KEYWORDS) -> dict[str, np.ndarray]:
    """Boolean masks (one per label with matching segments) on the grid of a NIfTI image.

    Parameters
    ----------
    seg
        Path of a DICOM SEG, or a highdicom Segmentation.
    affine
        4 x 4 voxel -> RAS affine of the target image (e.g. the NIfTI of the CT series the SEG references).
    shape
        (i, j, k) shape of the target image.
    keywords
        Mask label -> segment words (see :data:`SEGMENT_KEYWORDS`).

    Returns
    -------
    dict
        Label -> bool array of ``shape``; a voxel is in a label when any of its segments holds
        it (fractional segments: occupancy above one half).

    Raises
    ------
    DataValidationError
        When the SEG's frames do not lie on the target grid (other spacing, orientation or a
        position between voxels).
    """
    if not isinstance(seg, hd.seg.Segmentation):
        seg = read_seg(seg)
    groups = segment_groups(seg, keywords=keywords)
    if not groups:
        return {}
    numbers = sorted({n for ns in groups.values() for n in ns})
    lps = LPS_TO_RAS @ np.asarray(affine, dtype=np.float64)
    # highdicom indexes volumes (slice, row, column); NIfTI here is (i = column, j = row, k = slice)
    target = hd.VolumeGeometry(lps[:, [2, 1, 0, 3]], (int(shape[2]), int(shape[1]), int(shape[0])), "PATIENT")
    with unlogged_dicom_values():
        try:
            volume = seg.get_volume(segment_numbers=numbers, combine_segments=False)
            matched = volume.match_geometry(target, tol=_GRID_TOL)
        except (RuntimeError, ValueError) as exc:
            raise DataValidationError(
                f"the segmentation does not lie on the grid of its image ({exc}); it cannot be placed voxel by voxel. "
                "Check that the SEG belongs to this series (same frame of reference and slice positions)"
            ) from None
    array = np.asarray(matched.array)
    if array.ndim == 3:
        array = array[..., None]
    array = array.transpose(2, 1, 0, 3)
    return {label: (array[..., [numbers.index(n) for n in ns]] > 0.5).any(axis=-1) for label, ns in groups.items()}


def label_lesions(mask: np.ndarray) -> np.ndarray:
    """Label the connected components of a lesion mask 1..k, 1 the largest (26-connectivity).

    Ties in size are broken by the position of a component's first voxel, so labels are
    reproducible. The result is uint8, or uint16 beyond 255 lesions.

    Examples
    --------
    >>> m = np.zeros((6, 1, 1), bool); m[0] = True; m[2:5] = True
    >>> label_lesions(m).ravel().tolist()
    [2, 0, 1, 1, 1, 0]
    """
    labels, n = ndimage.label(np.asarray(mask, dtype=bool), structure=np.ones((3,) * np.ndim(mask), dtype=bool))
    dtype = np.uint8 if n <= np.iinfo(np.uint8).max else np.uint16
    if n > np.iinfo(np.uint16).max:
        raise DataValidationError(f"the lesion mask has {n} connected components; expected at most 65535 lesions")
    if n == 0:
        return np.zeros(np.shape(mask), dtype=dtype)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    order = np.lexsort((np.arange(n), -sizes))  # largest first; ndimage numbers components in scan order
    remap = np.zeros(n + 1, dtype=dtype)
    remap[order + 1] = np.arange(1, n + 1, dtype=dtype)
    return remap[labels]
