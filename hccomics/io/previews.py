"""Example slices and pathology tiles of a cohort, ready for :mod:`hccomics.pl` figures.

Slices are shown in the radiological convention: axial, the patient's right on the
viewer's left, anterior at the top. The same slice index is cut from every phase of an
exam, so phase misalignment shows against the reference phase's mask contours.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from hccomics.io.manifest import IMAGE_PHASES, ImageSeries, read_manifest

__all__ = ["SlicePreview", "TilePreview", "series_previews", "tile_previews"]


@dataclass
class SlicePreview:
    """One axial slice of one series with its display window and mask outlines."""

    patient_id: str
    modality: str
    phase: str
    image: np.ndarray
    window: tuple[float, float]
    spacing_mm: tuple[float, float]
    masks: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class TilePreview:
    """One pathology tile (RGB uint8) with what it shows."""

    patient_id: str
    region: str | None
    image: np.ndarray
    label: str


def _canonical(path: Path) -> tuple[np.ndarray, tuple[float, float, float]]:
    import nibabel as nib

    img = nib.as_closest_canonical(nib.load(str(path)))
    data = np.asanyarray(img.dataobj).astype(np.float32)
    if data.ndim == 2:
        data = data[:, :, None]
    return data.reshape(data.shape[:3]), tuple(float(z) for z in img.header.get_zooms()[:3])


def _display(volume: np.ndarray, k: int) -> np.ndarray:
    # RAS+ array: i to the patient's right, j anterior; radiological view flips both
    return volume[:, :, k].T[::-1, ::-1]


def _volume_path(s: ImageSeries, root: Path) -> Path:
    if s.format == "dicom":
        from hccomics.io.dicom import cached_nifti

        return cached_nifti(root / s.path, patient_id=s.patient_id)
    return root / s.path


def _pick_patient(series: list[ImageSeries]) -> str:
    by_patient: dict[str, list[ImageSeries]] = {}
    for s in series:
        by_patient.setdefault(s.patient_id, []).append(s)
    # the patient with the most series (MRI, post-ablation) and a lesion mask shows the most
    return max(sorted(by_patient), key=lambda p: (len(by_patient[p]), any(m.label == "lesion" for s in by_patient[p] for m in s.masks)))


def series_previews(manifest: str | Path, *, patient_id: str | None = None) -> list[SlicePreview]:
    """One axial slice per series of one patient, through the index lesion when there is a mask.

    Parameters
    ----------
    manifest
        Cohort YAML.
    patient_id
        Patient to show; by default the one with the most series (and a lesion mask).

    Returns
    -------
    list of SlicePreview
        In manifest phase order, CT before MRI; empty when the cohort has no images.
        DICOM series are converted (de-identified) into the cache first.

    Examples
    --------
    >>> from hccomics.datasets import make_demo_cohort
    >>> import tempfile
    >>> previews = series_previews(make_demo_cohort(tempfile.mkdtemp(), profile="smoke"))
    >>> previews[0].modality, previews[0].image.ndim
    ('CT', 2)
    """
    from hccomics.errors import DataValidationError

    man, root = read_manifest(manifest)
    if not man.images:
        return []
    pid = patient_id if patient_id is not None else _pick_patient(man.images)
    mine = [s for s in man.images if s.patient_id == pid]
    if not mine:
        raise DataValidationError(f"patient {pid!r} has no image series in {manifest}")
    mine.sort(key=lambda s: (s.modality, IMAGE_PHASES.index(s.phase)))
    out: list[SlicePreview] = []
    # masks live on each exam's reference phase; the exam's other phases borrow them
    for modality in ("CT", "MRI"):
        exam = [s for s in mine if s.modality == modality]
        reference = man.imaging.reference_phase.get(modality) if man.imaging is not None else None
        # the protocol's reference phase first, else the first phase with masks
        masked = sorted((s for s in exam if s.masks), key=lambda s: s.phase != reference)
        ref_masks: dict[str, np.ndarray] = {}
        k_ref = None
        for s in masked[:1]:
            ref_masks = {m.label: _canonical(root / m.path)[0] for m in s.masks}
            lesion = ref_masks.get("lesion")
            if lesion is not None and (lesion == 1).any():
                k_ref = int(np.round(np.argwhere(lesion == 1)[:, 2].mean()))
        for s in exam:
            vol, zooms = _canonical(_volume_path(s, root))
            own = {m.label: _canonical(root / m.path)[0] for m in s.masks} if s.masks else ref_masks
            k = k_ref if k_ref is not None and k_ref < vol.shape[2] else vol.shape[2] // 2
            if "ablation_zone" in own and own["ablation_zone"].any():
                k = int(np.round(np.argwhere(own["ablation_zone"] > 0)[:, 2].mean()))
            image = _display(vol, k)
            lo, hi = np.percentile(image, [1, 99]) if image.size else (0.0, 1.0)
            if modality == "CT":  # a liver window reads better than percentiles on CT
                lo, hi = -100.0, 250.0
            masks = {label: _display(m > 0, k) for label, m in own.items() if m.shape == vol.shape}
            out.append(SlicePreview(pid, modality, s.phase, image, (float(lo), float(hi)), (zooms[0], zooms[1]), masks))
    return out


def tile_previews(manifest: str | Path, *, per_group: int = 1, group_by: str = "edmondson_grade") -> list[TilePreview]:
    """A few pathology tiles: tumour tiles for each value of ``group_by`` and non-tumour tiles.

    Parameters
    ----------
    manifest
        Cohort YAML.
    per_group
        Tiles per group.
    group_by
        Clinical column whose values each get ``per_group`` tumour tiles (e.g. grade, centre).
    """
    from PIL import Image

    from hccomics.io.readers import read_clinical

    man, root = read_manifest(manifest)
    if not man.pathology:
        return []
    clinical = read_clinical(manifest)
    tiles = pd.DataFrame([{"patient_id": t.patient_id, "region": t.region, "path": root / t.path} for t in man.pathology])
    tiles = tiles[tiles["patient_id"].isin(clinical.index)]
    tiles[group_by] = clinical.loc[tiles["patient_id"], group_by].to_numpy() if group_by in clinical else "all"
    chosen = []
    tumour = tiles[tiles["region"] != "non_tumour"]
    for value, grp in tumour.groupby(group_by, sort=True, observed=True):
        chosen += [(row, f"tumour, {group_by} {value}") for row in grp.head(per_group).itertuples()]
    normal = tiles[tiles["region"] == "non_tumour"]
    chosen += [(row, "non-tumour") for row in normal.head(per_group).itertuples()]
    out = []
    for row, label in chosen:
        with Image.open(row.path) as im:
            out.append(TilePreview(row.patient_id, row.region, np.asarray(im.convert("RGB")), label))
    return out
