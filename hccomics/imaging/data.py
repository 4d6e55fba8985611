"""Segmentation data items: one MONAI data dict per exam, checked before any compute."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from hccomics._options import check_option
from hccomics.errors import DataValidationError

__all__ = ["DEFAULT_PHASES", "REFERENCE_PHASE", "segmentation_items", "check_items"]

log = logging.getLogger(__name__)

DEFAULT_PHASES = {"CT": ("non_contrast", "arterial", "portal_venous", "delayed"), "MRI": ("t2_fs", "dwi", "adc")}
REFERENCE_PHASE = {"CT": "portal_venous", "MRI": "t2_fs"}
_AFFINE_TOL_MM = 1e-3


def segmentation_items(
    images: str | Path | pd.DataFrame,
    *,
    modality: str = "CT",
    phases: Sequence[str] | None = None,
    reference_phase: str | None = None,
    patients: Sequence[str] | None = None,
    check: bool = True,
) -> list[dict]:
    """One data dict per exam: phase images stacked in ``phases`` order, reference masks.

    Parameters
    ----------
    images
        A manifest path, or a table like :func:`hccomics.io.image_table` (columns ``patient_id``, ``modality``,
        ``phase``, ``path`` and ``mask_<label>``), e.g. the table of registered phases from
        :func:`hccomics.imaging.register_cohort`.
    modality
        ``"CT"`` or ``"MRI"``.
    phases
        Phases to stack as channels, in order; default all phases of the modality's protocol.
    reference_phase
        Phase whose masks are the reference (default portal venous CT, T2 MRI).
    patients
        Restrict to these patients (in this order).
    check
        Run :func:`check_items` (headers, grids, empty liver masks) before returning.

    Returns
    -------
    list of dict
        Keys ``patient_id``, ``image`` (list of paths, one per phase), ``phases``, ``liver``, ``lesion`` and
        ``reader_corrected`` (the ``lesion_reader_corrected`` mask; ``None`` where a patient has none). No key starts
        with ``liver_`` or ``lesion_``: MONAI's spatial transforms take such keys for meta dictionaries.

    Examples
    --------
    >>> from hccomics.datasets import demo_cohort_dir, make_demo_cohort
    >>> items = segmentation_items(make_demo_cohort(demo_cohort_dir("smoke"), profile="smoke"))  # doctest: +SKIP
    >>> items[0]["phases"]  # doctest: +SKIP
    ['non_contrast', 'arterial', 'portal_venous', 'delayed']
    """
    check_option("modality", modality, ("CT", "MRI"))
    if not isinstance(images, pd.DataFrame):
        from hccomics.io import image_table

        images = image_table(images)
    missing = {"patient_id", "modality", "phase", "path"} - set(images.columns)
    if missing:
        raise DataValidationError(f"image table lacks columns {sorted(missing)}; expected the output of hccomics.io.image_table")
    phases = list(phases or DEFAULT_PHASES[modality])
    reference_phase = reference_phase or REFERENCE_PHASE[modality]
    if reference_phase not in phases:
        raise DataValidationError(f"reference phase {reference_phase!r} is not among the phases {phases}; add it or pick another")
    table = images[images["modality"] == modality]
    order = list(patients) if patients is not None else list(dict.fromkeys(table["patient_id"]))
    unknown = sorted(set(order) - set(table["patient_id"]))
    if unknown:
        raise DataValidationError(f"no {modality} series for patients {unknown[:5]}; check the patient ids")
    problems: list[str] = []
    items = []
    for pid in order:
        exam = table[table["patient_id"] == pid].set_index("phase")
        absent = [ph for ph in phases if ph not in exam.index]
        if absent:
            problems.append(f"{pid}: phase(s) {absent} missing (has {sorted(exam.index)})")
            continue
        ref = exam.loc[reference_phase]
        item = {"patient_id": pid, "phases": phases, "image": [str(exam.loc[ph, "path"]) for ph in phases]}
        for label, column in (("liver", "liver"), ("lesion", "lesion"), ("reader_corrected", "lesion_reader_corrected")):
            value = ref.get(f"mask_{column}")
            item[label] = None if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)
        for label in ("liver", "lesion"):
            if item[label] is None:
                problems.append(f"{pid}: no {label} mask on the reference phase {reference_phase!r}")
        items.append(item)
    if problems:
        raise DataValidationError("segmentation inputs are incomplete:\n  " + "\n  ".join(problems)
                                  + "\nFix: declare every phase and the reference masks in the manifest, or pass phases=")
    if check:
        check_items(items)
    return items


def check_items(items: Sequence[dict], *, require_masks: bool = True) -> None:
    """Check every item before any compute; report all problems at once.

    Phases of an exam must share one voxel grid (register them first: :func:`hccomics.imaging.register_phases`),
    masks must sit on that grid (shape and affine within 0.001 mm), and a reference liver mask must not be empty.
    An empty lesion mask is valid (a patient without a visible lesion). NaN voxels are caught when the volumes are
    loaded (:class:`hccomics.imaging.transforms.EnsureFinited`). Orientation is free: the transforms reorient to RAS.
    """
    import nibabel as nib

    problems: list[str] = []
    for item in items:
        pid = item.get("patient_id", "?")
        grids = {}
        for ph, path in zip(item["phases"], item["image"]):
            if not Path(path).exists():
                problems.append(f"{pid}: {ph} image {path} does not exist")
                continue
            img = nib.load(path)
            grids[ph] = (tuple(img.shape[:3]), np.asarray(img.affine))
        if not grids:
            continue
        first, (shape0, aff0) = next(iter(grids.items()))
        for ph, (shape, aff) in grids.items():
            if shape != shape0 or not np.allclose(aff, aff0, atol=_AFFINE_TOL_MM):
                problems.append(f"{pid}: phase {ph} grid {shape} differs from {first} {shape0} (or its affine); "
                                "register the phases onto the reference grid first")
        labels = ("liver", "lesion", "reader_corrected") if require_masks else ("reader_corrected",)
        for label in labels:
            path = item.get(label)
            if path is None:
                if label != "reader_corrected":
                    problems.append(f"{pid}: no {label} mask")
                continue
            if not Path(path).exists():
                problems.append(f"{pid}: {label} mask {path} does not exist")
                continue
            m = nib.load(path)
            if tuple(m.shape[:3]) != shape0 or not np.allclose(m.affine, aff0, atol=_AFFINE_TOL_MM):
                problems.append(f"{pid}: {label} mask grid {tuple(m.shape[:3])} / affine differs from the image grid "
                                f"{shape0}; resample the mask onto the image (nearest neighbour)")
                continue
            if label == "liver" and not np.any(np.asarray(m.dataobj)):
                problems.append(f"{pid}: the reference liver mask is empty; a two-stage model needs a liver to train on")
    if problems:
        raise DataValidationError(f"{len(problems)} problem(s) in the segmentation inputs:\n  " + "\n  ".join(problems))
