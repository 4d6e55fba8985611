"""Cohort-level evaluation of segmentations, the Otsu baseline and semi-automatic (reader-corrected) agreement."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from hccomics.errors import DataValidationError

__all__ = ["evaluate_segmentation", "otsu_baseline", "reader_agreement"]

log = logging.getLogger(__name__)


def _spacing(path: str) -> tuple[float, ...]:
    import nibabel as nib

    return tuple(float(s) for s in nib.load(path).header.get_zooms()[:3])


def _by_patient(predictions: pd.DataFrame, items: Sequence[dict]) -> list[tuple[dict, pd.Series]]:
    need = {"patient_id", "lesion_path"} - set(predictions.columns)
    if need:
        raise DataValidationError(f"predictions lack columns {sorted(need)}; expected LesionSegmenter.predict's table")
    table = predictions.set_index("patient_id")
    missing = [it["patient_id"] for it in items if it["patient_id"] not in table.index]
    if missing:
        raise DataValidationError(f"no prediction for patients {missing[:5]}")
    return [(it, table.loc[it["patient_id"]]) for it in items]


def evaluate_segmentation(items: Sequence[dict], predictions: pd.DataFrame, *, size_bins_mm: Sequence[float] = (10.0, 20.0),
                          model: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Dice / HD95 per structure and lesion-wise detection, against each item's reference masks, on the input grid.

    Returns ``(metrics, detection)``: ``metrics`` has one row per patient and structure (``liver``: the organ including
    its lesions; ``lesion``: all lesions merged), with Dice(∅, ∅) = 1 and the ``empty_ref`` / ``empty_pred`` flags that
    let a report count such cases apart; ``detection`` has one row per reference lesion and per predicted component
    (:func:`hccomics.imaging.metrics.lesion_detection`). A ``model`` name is added as a column when given.
    """
    from hccomics.imaging.metrics import lesion_detection, segmentation_metrics
    from hccomics.io.nifti import read_nifti

    metrics, detection = [], []
    for item, row in _by_patient(predictions, items):
        pid, sp = item["patient_id"], _spacing(item["image"][0])
        ref_liver, _ = read_nifti(item["liver"])
        ref_lesion, _ = read_nifti(item["lesion"])
        lesion, _ = read_nifti(row["lesion_path"])
        if isinstance(row.get("liver_path"), str):
            liver, _ = read_nifti(row["liver_path"])
            metrics.append(segmentation_metrics(liver > 0, ref_liver > 0, spacing=sp, labels={"liver": 1}, patient_id=pid))
        metrics.append(segmentation_metrics(lesion > 0, ref_lesion > 0, spacing=sp, labels={"lesion": 1}, patient_id=pid))
        detection.append(lesion_detection(lesion, ref_lesion, spacing=sp, size_bins_mm=size_bins_mm, patient_id=pid))
    m, d = pd.concat(metrics, ignore_index=True), pd.concat(detection, ignore_index=True)
    if model is not None:
        m.insert(0, "model", model)
        d.insert(0, "model", model)
    return m, d


def otsu_baseline(items: Sequence[dict], *, out_dir: str | Path, phase: str = "arterial", polarity: str = "bright",
                  min_lesion_mm3: float = 100.0) -> pd.DataFrame:
    """Lesions by an Otsu threshold of one phase inside the *reference* liver: the classical baseline.

    HCC enhances in the arterial phase, so ``polarity="bright"`` keeps voxels above the threshold (``"dark"`` for a
    hypo-enhancing phase). Components below ``min_lesion_mm3`` are dropped, as for the networks. Writes
    ``out_dir/<patient>/lesion.nii.gz`` and returns a table like :meth:`LesionSegmenter.predict` (``liver_path`` is the
    reference liver: this baseline gets the liver for free).
    """
    from skimage.filters import threshold_otsu

    from hccomics._options import check_option
    from hccomics.imaging.inference import postprocess_lesions
    from hccomics.io.nifti import read_nifti, save_nifti

    check_option("polarity", polarity, ("bright", "dark"))
    rows = []
    for item in items:
        if phase not in item["phases"]:
            raise DataValidationError(f"{item['patient_id']}: phase {phase!r} not among {item['phases']}")
        img, affine = read_nifti(item["image"][item["phases"].index(phase)])
        liver, _ = read_nifti(item["liver"])
        liver = liver > 0
        values = img[liver].astype(np.float64)
        t = threshold_otsu(values) if values.size and np.ptp(values) > 0 else np.inf
        mask = (img > t if polarity == "bright" else img < t) & liver
        lesions = postprocess_lesions(mask.astype(np.float32), None, spacing=_spacing(item["image"][0]), threshold=0.5,
                                      min_lesion_mm3=min_lesion_mm3)  # already inside the liver
        path = save_nifti(lesions.astype(np.uint16), Path(out_dir) / item["patient_id"] / "lesion.nii.gz", affine=affine)
        rows.append({"patient_id": item["patient_id"], "liver_path": item["liver"], "lesion_path": str(path),
                     "n_lesions": int(lesions.max())})
    return pd.DataFrame(rows, columns=["patient_id", "liver_path", "lesion_path", "n_lesions"])


def reader_agreement(items: Sequence[dict], predictions: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Semi-automatic use: what readers changed in the automatic lesion masks, and volume agreement.

    For every item with a ``reader_corrected`` mask (a NIfTI from ITK-SNAP / 3D Slicer on the reference grid):
    voxels added / removed and the volumes (mL) of the automatic, corrected and reference masks
    (:func:`hccomics.imaging.agreement.mask_agreement`). Returns ``(per_patient, agreement)``, the second with ICC(2,1)
    (absolute agreement) and Bland–Altman bias and limits for each pair of volumes
    (:func:`hccomics.imaging.agreement.volume_agreement`). Items without a corrected mask are skipped and counted in
    the log.
    """
    from hccomics.imaging.agreement import mask_agreement, volume_agreement
    from hccomics.io.nifti import read_nifti

    rows = []
    pairs = [(it, row) for it, row in _by_patient(predictions, items) if it.get("reader_corrected")]
    log.info("reader agreement: %d of %d exams have a reader-corrected mask", len(pairs), len(items))
    for item, row in pairs:
        auto, _ = read_nifti(row["lesion_path"])
        corrected, _ = read_nifti(item["reader_corrected"])
        reference, _ = read_nifti(item["lesion"])
        if corrected.shape != auto.shape:
            raise DataValidationError(f"{item['patient_id']}: corrected mask {corrected.shape} is not on the image grid {auto.shape}")
        rows.append(mask_agreement(auto > 0, corrected > 0, reference > 0, spacing=_spacing(item["image"][0]),
                                   patient_id=item["patient_id"]))
    per_patient = pd.DataFrame(rows)
    if len(per_patient) < 2:
        return per_patient, pd.DataFrame()
    return per_patient, volume_agreement(per_patient)
