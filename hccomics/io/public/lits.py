"""LiTS (Liver Tumor Segmentation Challenge) or its Medical Segmentation Decathlon copy (Task03_Liver) to a cohort.

Both layouts hold contrast-enhanced abdominal CT with a label map: 0 background, 1 liver,
2 tumour. Each case becomes one CT series (portal-venous phase) with a ``liver`` mask
(label >= 1) and a ``lesion`` mask (label 2 split into 26-connected components, numbered 1..k
by decreasing size, so 1 is the largest lesion). See ``data_manifests/public/lits.md``.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from hccomics.errors import DataValidationError, ManifestError
from hccomics.io.files import atomic_path
from hccomics.io.nifti import save_nifti
from hccomics.io.public._common import file_ref, input_dir, listing, missing_input, write_csv, write_manifest

__all__ = ["convert_lits", "lesion_components"]

logger = logging.getLogger(__name__)

_LITS_VOLUME = re.compile(r"^volume-(\d+)\.nii(\.gz)?$")
_LITS_SEG = re.compile(r"^segmentation-(\d+)\.nii(\.gz)?$")
_MSD_CASE = re.compile(r"^liver_(\d+)\.nii(\.gz)?$")
_AFFINE_TOLERANCE = 1e-3  # mm; headers written by different tools differ in float rounding only
_DOWNLOAD = ("the LiTS challenge (https://competitions.codalab.org/competitions/17094, 'Training Batch 1' and "
             "'Training Batch 2') or the Medical Segmentation Decathlon (http://medicaldecathlon.com, Task03_Liver.tar)")


@dataclass(frozen=True)
class _Case:
    patient_id: str
    number: int
    image: Path
    label: Path


def _visible(paths: list[Path]) -> list[Path]:
    # the MSD tar files carry macOS '._name' resource forks beside every NIfTI; they are not images
    return [p for p in paths if p.is_file() and not p.name.startswith("._")]


def _lits_cases(src: Path) -> list[_Case]:
    volumes = {int(m.group(1)): p for p in _visible(list(src.rglob("volume-*.nii*"))) if (m := _LITS_VOLUME.match(p.name))}
    segs = {int(m.group(1)): p for p in _visible(list(src.rglob("segmentation-*.nii*"))) if (m := _LITS_SEG.match(p.name))}
    problems = [f"{volumes[n]} has no segmentation-{n}.nii beside it" for n in sorted(set(volumes) - set(segs))]
    problems += [f"{segs[n]} has no volume-{n}.nii" for n in sorted(set(segs) - set(volumes))]
    if problems:
        raise ManifestError(f"the LiTS download under {src} is incomplete; download both training batches again "
                            f"from {_DOWNLOAD}", problems)
    return [_Case(f"LiTS-{n}", n, volumes[n], segs[n]) for n in sorted(volumes)]


def _msd_root(src: Path) -> Path | None:
    for cand in (src, src / "Task03_Liver"):
        if (cand / "dataset.json").is_file() and (cand / "imagesTr").is_dir():
            return cand
    return None


def _msd_cases(root: Path) -> list[_Case]:
    meta = json.loads((root / "dataset.json").read_text())
    labels = {str(k): str(v).lower() for k, v in meta.get("labels", {}).items()}
    if labels and (labels.get("1") != "liver" or labels.get("2") not in ("cancer", "tumour", "tumor", "lesion")):
        raise DataValidationError(f"{root / 'dataset.json'}: labels {meta.get('labels')} are not 1 = liver, 2 = cancer; "
                                  "this is not the Decathlon's Task03_Liver")
    entries = meta.get("training")
    if not entries:
        raise DataValidationError(f"{root / 'dataset.json'} lists no 'training' cases (image + label pairs)")
    cases, missing = [], []
    for entry in entries:
        image, label = root / entry["image"], root / entry["label"]
        match = _MSD_CASE.match(image.name)
        if match is None:
            raise DataValidationError(f"{root / 'dataset.json'}: training image {entry['image']} is not named liver_<n>.nii.gz")
        missing += [str(p) for p in (image, label) if not p.is_file()]
        n = int(match.group(1))
        cases.append(_Case(f"MSD-{n}", n, image, label))
    if missing:
        raise missing_input(f"{len(missing)} file(s) listed in dataset.json ({listing(missing, limit=3)})", root / "imagesTr",
                            download=_DOWNLOAD, layout="<src>/imagesTr/liver_<n>.nii.gz and <src>/labelsTr/liver_<n>.nii.gz")
    n_test = len(_visible(list((root / "imagesTs").glob("liver_*.nii*")))) if (root / "imagesTs").is_dir() else 0
    if n_test:
        logger.info("skipping %d unlabelled test image(s) in %s", n_test, root / "imagesTs")
    return sorted(cases, key=lambda c: c.number)


def _find_cases(src: Path) -> tuple[str, list[_Case]]:
    msd = _msd_root(src)
    has_lits = any(_LITS_VOLUME.match(p.name) for p in _visible(list(src.rglob("volume-*.nii*"))))
    if msd is not None and has_lits:
        raise ManifestError(f"{src} holds both a LiTS download (volume-<n>.nii) and the Decathlon's Task03_Liver; they are "
                            "the same scans, so convert one of them: pass its folder")
    if msd is not None:
        return "MSD Task03_Liver", _msd_cases(msd)
    if has_lits:
        return "LiTS", _lits_cases(src)
    raise missing_input("no LiTS or Decathlon liver case", src, download=_DOWNLOAD,
                        layout="<src>/Training Batch 1/volume-<n>.nii + segmentation-<n>.nii (LiTS), or "
                               "<src>/dataset.json, imagesTr/liver_<n>.nii.gz, labelsTr/liver_<n>.nii.gz (Decathlon)")


def lesion_components(lesion: np.ndarray) -> np.ndarray:
    """Label the 26-connected components of a binary mask 1..k by decreasing size (1 = largest).

    Examples
    --------
    >>> m = np.zeros((5, 5, 5), bool); m[0, 0, 0] = True; m[2:5, 2:5, 2:5] = True
    >>> labels = lesion_components(m)
    >>> int(labels[0, 0, 0]), int(labels[3, 3, 3])
    (2, 1)
    """
    from scipy import ndimage

    labels, k = ndimage.label(lesion, structure=np.ones((3, 3, 3), dtype=bool))
    if k == 0:
        return np.zeros(lesion.shape, dtype=np.uint16)
    sizes = np.bincount(labels.ravel())[1:]
    order = np.argsort(-sizes, kind="stable")  # equal sizes keep scan order
    relabel = np.zeros(k + 1, dtype=np.uint16)
    relabel[order + 1] = np.arange(1, k + 1, dtype=np.uint16)
    return relabel[labels]


def _grid_problems(case: _Case) -> list[str]:
    """Shape and affine of a label map against its image, from the headers alone."""
    import nibabel as nib

    image, label = nib.load(case.image), nib.load(case.label)
    if image.shape[:3] != label.shape[:3] or len(label.shape) != 3:
        return [(f"{case.label} has shape {label.shape} but its image {case.image} has {image.shape}; "
                "the label map must be on the image's grid")]
    if not np.allclose(image.affine, label.affine, atol=_AFFINE_TOLERANCE):
        return [(f"{case.label} and {case.image} have different affines (voxel-to-world maps): "
                f"{label.affine[:3].round(4).tolist()} vs {image.affine[:3].round(4).tolist()}; "
                "the masks would not overlay the image: re-download the pair")]
    return []


def _convert_case(case: _Case, out: Path) -> dict:
    import nibabel as nib

    image, label = nib.load(case.image), nib.load(case.label)
    values = np.asanyarray(label.dataobj)
    codes = np.unique(values)
    if not np.isin(codes, [0, 1, 2]).all():
        raise DataValidationError(f"{case.label} holds label values {codes.tolist()}; expected 0 background, 1 liver, 2 tumour")
    liver = (values >= 1).astype(np.uint8)
    lesions = lesion_components(values == 2)
    del values

    ct_rel = Path("images") / f"{case.patient_id}_ct{'.nii.gz' if case.image.name.endswith('.gz') else '.nii'}"
    with atomic_path(out / ct_rel) as tmp:
        shutil.copyfile(case.image, tmp)  # byte-for-byte: no resampling, rescaling or re-encoding of the CT
    liver_rel = Path("masks") / f"{case.patient_id}_liver.nii.gz"
    lesion_rel = Path("masks") / f"{case.patient_id}_lesion.nii.gz"
    # save_nifti: qform = sform = the CT's affine, no header text, deterministic gzip (stable checksums)
    save_nifti(liver, out / liver_rel, affine=image.affine)
    save_nifti(lesions, out / lesion_rel, affine=image.affine)
    n_lesions = int(lesions.max())
    logger.info("%s: %d lesion(s), largest %d voxels", case.patient_id, n_lesions,
                int((lesions == 1).sum()) if n_lesions else 0)
    return {
        "patient_id": case.patient_id, "modality": "CT", "phase": "portal_venous", "format": "nifti",
        **file_ref(out, ct_rel),
        "masks": [file_ref(out, liver_rel, label="liver"), file_ref(out, lesion_rel, label="lesion")],
        "_lesions": n_lesions,
    }


def convert_lits(src: str | Path, out_dir: str | Path) -> Path:
    """Convert LiTS or the Decathlon's Task03_Liver into a cohort manifest with CT series and masks.

    Parameters
    ----------
    src
        The LiTS training folder (``volume-<n>.nii`` and ``segmentation-<n>.nii``, possibly in
        ``Training Batch 1/`` and ``Training Batch 2/``), or the Decathlon's ``Task03_Liver``
        folder (``dataset.json``, ``imagesTr/liver_<n>.nii.gz``, ``labelsTr/liver_<n>.nii.gz``)
        or its parent. The layout is detected.
    out_dir
        Folder to write into (created).

    Returns
    -------
    Path
        ``out_dir/manifest.yaml``, validated. Written beside it: ``images/<id>_ct.nii[.gz]`` (a
        byte-for-byte copy of each CT), ``masks/<id>_liver.nii.gz`` and ``masks/<id>_lesion.nii.gz``
        (on the label map's grid and affine), and ``clinical.csv`` (``patient_id`` only). Patient
        IDs are ``LiTS-<n>`` or ``MSD-<n>``.

    Raises
    ------
    ManifestError
        When no case is found (saying what to download and how to lay it out) or a pair is incomplete.
    DataValidationError
        When a label map is not on its image's grid or holds values other than 0, 1, 2.

    Examples
    --------
    >>> from hccomics.io.public import convert_lits
    >>> manifest = convert_lits("downloads/Task03_Liver", "cohorts/msd_liver")  # doctest: +SKIP
    """
    src = input_dir(src, dataset="LiTS / Task03_Liver", doc="lits.md")
    layout, cases = _find_cases(src)
    out = Path(out_dir)
    logger.info("%s: converting %d case(s) from %s", layout, len(cases), src)
    # every pairing is checked from the headers before anything is written
    problems = [p for case in cases for p in _grid_problems(case)]
    if problems:
        raise DataValidationError(f"{len(problems)} label map(s) under {src} are not on their image's grid", problems)
    series = [_convert_case(case, out) for case in cases]
    n_lesions = [s.pop("_lesions") for s in series]
    write_csv(pd.DataFrame({"patient_id": [c.patient_id for c in cases]}), out / "clinical.csv", index=False)
    manifest = {
        "schema_version": 1,
        "name": "LiTS" if layout == "LiTS" else "MSD Task03_Liver",
        "description": (
            f"{layout}: {len(cases)} contrast-enhanced abdominal CT scans (mostly portal-venous) with liver and "
            f"tumour masks; {sum(n > 0 for n in n_lesions)} scans have lesions ({sum(n_lesions)} in all, numbered by "
            "decreasing size). Mixed primary (HCC) and secondary liver tumours; no clinical data. Converted by "
            "hccomics.io.public.convert_lits."
        ),
        "tables": {"clinical": file_ref(out, "clinical.csv", id_column="patient_id", survival={}, binary_columns=[])},
        "imaging": {"phases": {"CT": ["portal_venous"]}, "reference_phase": {"CT": "portal_venous"}},
        "images": series,
    }
    return write_manifest(out, manifest)
