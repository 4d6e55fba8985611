"""DICOM ingest: read one CT / MR series as a volume, convert it to a de-identified NIfTI.

Geometry follows DICOM PS3.3 C.7.6.2: slices are ordered by the projection of
ImagePositionPatient on the slice normal (never by InstanceNumber), in-plane spacing comes
from PixelSpacing and the slice spacing from the slice positions (never from SliceThickness),
and DICOM's LPS patient coordinates become NIfTI's RAS by negating x and y. The modality
rescale (RescaleSlope / RescaleIntercept, or a modality LUT) is applied, so CT voxels are in
Hounsfield units. One-file-per-slice series and enhanced multi-frame images (per-frame
PlanePositionSequence, shared or per-frame PixelMeasuresSequence and PlaneOrientationSequence)
are both read; pixel data are decoded by pydicom's own handlers.

What leaves a DICOM file is whitelisted (:mod:`hccomics.io.deid`); DICOM dates are never read.
Messages and logs name series by a short key (a digest of the SeriesInstanceUID), not by UID.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hccomics.errors import DataValidationError
from hccomics.io._dicom_pixels import stack_pixels
from hccomics.io._dicom_series import SeriesFiles, check_geometry, scan_series, select_series
from hccomics.io.deid import (
    DEIDENTIFICATION_STATEMENT,
    deidentified_metadata,
    unlogged_dicom_values,
    without_value_logging,
)
from hccomics.io.files import atomic_write_text, sha256sum
from hccomics.io.nifti import nifti_stem, save_nifti
from hccomics.settings import cache_dir

__all__ = ["LPS_TO_RAS", "cached_nifti", "dicom_to_nifti", "list_dicom_series", "read_dicom_series", "sidecar_path"]

logger = logging.getLogger(__name__)

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
"""DICOM patient coordinates (x to the left, y posterior) -> NIfTI (x to the right, y anterior)."""

_PSEUDONYM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
DicomSource = str | Path | Sequence[str | Path]


def _load(series: SeriesFiles) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    geometry = check_geometry(series)
    volume, rescaled = stack_pixels(series, geometry)
    affine = LPS_TO_RAS @ geometry.affine_lps
    meta = deidentified_metadata(series.headers[0])
    meta.update({
        "Shape": list(volume.shape),
        "VoxelSpacing": [round(s, 6) for s in geometry.spacing],
        "SliceSpacing": round(geometry.spacing[2], 6),
        "NumberOfSlices": int(volume.shape[2]),
        "RescaleApplied": bool(rescaled),
        "MultiFrame": any("PerFrameFunctionalGroupsSequence" in h for h in series.headers),
    })
    logger.info("read %s: %s voxels of %s mm", series.describe(), "x".join(map(str, volume.shape)),
                "x".join(f"{s:.3g}" for s in geometry.spacing))
    return volume, affine, meta


@without_value_logging
def read_dicom_series(src: DicomSource, *, series_uid: str | None = None) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Read one DICOM CT / MR series as a volume in NIfTI voxel order with its RAS affine.

    Parameters
    ----------
    src
        A folder (searched recursively; files that are not DICOM are skipped), one file, or a
        list of files.
    series_uid
        Which series to read when ``src`` holds several: its SeriesInstanceUID, or the short
        key that :func:`list_dicom_series` and the error message show.

    Returns
    -------
    volume : numpy.ndarray
        float32 array (i, j, k): i along a row (increasing column), j down a column, k along
        the slice normal; the modality rescale applied (Hounsfield units for CT).
    affine : numpy.ndarray
        4 x 4 float64 voxel-index -> RAS (mm) matrix.
    meta : dict
        Whitelisted technical attributes (:func:`hccomics.io.deid.deidentified_metadata`) and
        the geometry found: ``Shape``, ``VoxelSpacing``, ``SliceSpacing``, ``NumberOfSlices``,
        ``RescaleApplied``, ``MultiFrame``. No identifying value.

    Raises
    ------
    DataValidationError
        When ``src`` holds several series and ``series_uid`` is not given; when the series
        mixes modalities, orientations or image sizes, repeats a slice position, has
        irregular slice gaps or lacks geometry attributes; when its compressed pixel data
        need a decoder that is not installed (the message names the package).

    Examples
    --------
    >>> from pydicom.data import get_testdata_file
    >>> volume, affine, meta = read_dicom_series(get_testdata_file("CT_small.dcm"))
    >>> volume.shape, meta["Modality"], meta["SliceSpacing"]
    ((128, 128, 1), 'CT', 5.0)
    """
    series = select_series(scan_series(src), series_uid, src=src)
    return _load(series)


@without_value_logging
def list_dicom_series(src: DicomSource) -> pd.DataFrame:
    """One row per series in ``src``: its key, modality, number of files and frames, image size (no identifiers).

    Examples
    --------
    >>> from pydicom.data import get_testdata_file
    >>> list_dicom_series(get_testdata_file("CT_small.dcm"))[["modality", "n_files", "rows", "columns"]]
      modality  n_files  rows  columns
    0       CT        1   128      128
    """
    rows = [{"series": s.key, "modality": s.modality, "n_files": len(s.files), "n_frames": s.n_frames(),
             "rows": int(s.headers[0].Rows), "columns": int(s.headers[0].get("Columns", 0) or 0)}
            for s in scan_series(src)]
    return pd.DataFrame(rows, columns=["series", "modality", "n_files", "n_frames", "rows", "columns"])


def sidecar_path(nifti_path: str | Path) -> Path:
    """The JSON sidecar beside a NIfTI file: ``<name>.json`` for ``<name>.nii.gz``.

    Examples
    --------
    >>> sidecar_path("out/P001_ct.nii.gz").name
    'P001_ct.json'
    """
    path = Path(nifti_path)
    return path.with_name(nifti_stem(path) + ".json")


def _check_pseudonym(patient_id: str, series: SeriesFiles, *, allow_dicom_patient_id: bool) -> None:
    if not isinstance(patient_id, str) or not _PSEUDONYM.match(patient_id):
        raise DataValidationError(
            "patient_id must be a pseudonym of 1-64 letters, digits, '.', '_' or '-' (starting with a letter or digit); "
            f"the value given ({len(str(patient_id))} characters) is not, and is not repeated here in case it identifies "
            "someone; use the study's pseudonymous ID (e.g. 'P001')"
        )
    if allow_dicom_patient_id:
        return
    wanted = patient_id.casefold()
    for h in series.headers:
        name = str(h.get("PatientName", "") or "")
        values = {str(h.get("PatientID", "") or ""), name, *re.split(r"[\^=]", name)}
        if any(v and len(v) >= 2 and v.casefold() == wanted for v in values):
            raise DataValidationError(
                "patient_id equals the PatientID or a part of the PatientName in the DICOM headers; outputs must carry "
                "a pseudonym. Pass the study's pseudonymous ID, or allow_dicom_patient_id=True when the DICOM ID is "
                "already a pseudonym (e.g. TCIA collections)"
            )


@without_value_logging
def dicom_to_nifti(src: DicomSource, out_path: str | Path, *, patient_id: str, series_uid: str | None = None,
                   allow_dicom_patient_id: bool = False) -> Path:
    """Convert one DICOM series to a de-identified ``.nii.gz`` with a JSON sidecar; return the NIfTI path.

    The NIfTI holds the rescaled float32 volume, qform = sform = the RAS affine, units mm,
    and no header text. The sidecar ``<name>.json`` holds only whitelisted technical fields,
    the caller's pseudonymous ``patient_id`` and a statement of the de-identification applied.
    Both files are written atomically; nothing is written when the series is refused.

    Parameters
    ----------
    src
        A folder, a file or a list of files (see :func:`read_dicom_series`).
    out_path
        Target ``.nii.gz`` (or ``.nii``).
    patient_id
        Pseudonymous patient ID to record in the sidecar (never the DICOM PatientID).
    series_uid
        Which series to convert when ``src`` holds several (UID or key).
    allow_dicom_patient_id
        Accept a ``patient_id`` equal to the DICOM PatientID, for collections whose
        DICOM IDs are already pseudonyms (TCIA).

    Examples
    --------
    >>> import tempfile, pathlib, json
    >>> from pydicom.data import get_testdata_file
    >>> out = dicom_to_nifti(get_testdata_file("CT_small.dcm"), pathlib.Path(tempfile.mkdtemp()) / "P001_ct.nii.gz",
    ...                      patient_id="P001")
    >>> sorted(json.loads(sidecar_path(out).read_text()))[:4]
    ['BitsStored', 'Columns', 'KVP', 'Modality']
    """
    out_path = Path(out_path)
    if not out_path.name.endswith((".nii.gz", ".nii")):
        raise DataValidationError(f"out_path must end in .nii.gz or .nii, got {out_path.name}")
    series = select_series(scan_series(src), series_uid, src=src)
    _check_pseudonym(patient_id, series, allow_dicom_patient_id=allow_dicom_patient_id)
    volume, affine, meta = _load(series)
    sidecar = {"patient_id": patient_id, **meta,
               "Units": "mm for spacings and thickness, kV for KVP, ms for RepetitionTime and EchoTime, T for "
                        "MagneticFieldStrength; voxel values after the modality rescale (HU for CT)",
               "deidentification": DEIDENTIFICATION_STATEMENT}
    save_nifti(volume, out_path, affine=affine)
    atomic_write_text(sidecar_path(out_path), json.dumps(sidecar, indent=2) + "\n")
    logger.info("wrote %s (%s, %d slices)", out_path, meta.get("Modality", "?"), meta["NumberOfSlices"])
    return out_path


def cached_nifti(dicom_dir: str | Path, *, patient_id: str, sha256: str | None = None,
                 allow_dicom_patient_id: bool = False) -> Path:
    """Return a NIfTI of the DICOM series in ``dicom_dir``, converting it on first use only.

    The file is ``cache_dir() / "nifti" / "<sha256 of the folder>.nii.gz"`` (the digest of
    :func:`hccomics.io.sha256sum`, as in a manifest's ``format: dicom`` entry), so an edited
    folder is converted again. Its sidecar records ``patient_id``.

    Parameters
    ----------
    dicom_dir
        Folder of one DICOM series.
    patient_id
        Pseudonymous patient ID (see :func:`dicom_to_nifti`).
    sha256
        The folder's digest when already known (e.g. checked against a manifest), to skip hashing.
    allow_dicom_patient_id
        Accept a ``patient_id`` equal to the DICOM PatientID (see :func:`dicom_to_nifti`).

    Examples
    --------
    >>> import shutil, tempfile, pathlib
    >>> from pydicom.data import get_testdata_file
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = shutil.copy(get_testdata_file("CT_small.dcm"), folder)
    >>> cached_nifti(folder, patient_id="P001") == cached_nifti(folder, patient_id="P001")
    True
    """
    dicom_dir = Path(dicom_dir)
    if not dicom_dir.is_dir():
        raise DataValidationError(f"{dicom_dir} is not a folder; a DICOM series in a manifest is the folder of its files")
    digest = sha256 or sha256sum(dicom_dir)
    target = cache_dir() / "nifti" / f"{digest}.nii.gz"
    side = sidecar_path(target)
    if target.is_file() and side.is_file():
        # a cache hit files the images under the given ID: check it as a conversion would
        with unlogged_dicom_values():
            series = select_series(scan_series(dicom_dir), None, src=dicom_dir)
        _check_pseudonym(patient_id, series, allow_dicom_patient_id=allow_dicom_patient_id)
        try:
            recorded = json.loads(side.read_text())
        except (OSError, json.JSONDecodeError):
            recorded = None
        if isinstance(recorded, dict):
            if recorded.get("patient_id") != patient_id:  # same images filed under another pseudonym
                atomic_write_text(side, json.dumps({**recorded, "patient_id": patient_id}, indent=2) + "\n")
            logger.debug("using cached %s for %s", target, dicom_dir)
            return target
    return dicom_to_nifti(dicom_dir, target, patient_id=patient_id, allow_dicom_patient_id=allow_dicom_patient_id)
