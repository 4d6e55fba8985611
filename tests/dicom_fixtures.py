"""Synthetic DICOM writers and PHI-leak scanners for tests (reusable by whole-run tests).

Writers
-------
:func:`write_series` writes a one-file-per-slice CT / MR series with an oblique orientation,
known spacing and origin, files in shuffled order and InstanceNumbers that disagree with the
slice positions; :func:`write_enhanced` writes the same volume as one enhanced multi-frame
file; :func:`write_mixed_series` and :func:`write_inconsistent_spacing` write series that
must be refused. Every file carries distinctive identifying values (:data:`PHI`), so that a
test can search the outputs for them.

Scanners
--------
:func:`identifying_values` collects every identifying value of source DICOM files (names and
their components, IDs, dates and times, institution and device fields, descriptions,
comments, non-standard UIDs, private text); :func:`find_identifiers` searches every byte of
every file under some folders (gzip content too) and any extra text for them.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    CTImageStorage,
    EnhancedCTImageStorage,
    EnhancedMRImageStorage,
    ExplicitVRLittleEndian,
    MRImageStorage,
    generate_uid,
)

PHI: dict[str, str] = {
    "PatientName": "Quxleywhistle^Marigold^Zenobia",
    "PatientID": "PHI-PID-8841273",
    "PatientBirthDate": "19230817",
    "AccessionNumber": "ACC99887766",
    "InstitutionName": "Saint Obscurity Memorial Infirmary",
    "InstitutionAddress": "42 Hiddenbrook Lane, Nowhereville",
    "ReferringPhysicianName": "Drillbitson^Xavieria",
    "OperatorsName": "Opsworthy^Yolanda",
    "PerformingPhysicianName": "Performington^Walda",
    "StationName": "STN-PHI-0427",
    "DeviceSerialNumber": "SERIAL-PHI-5151",
    "StudyDate": "20190314",
    "SeriesDate": "20190315",
    "AcquisitionDate": "20190316",
    "ContentDate": "20190317",
    "StudyTime": "101112",
    "SeriesTime": "111213",
    "StudyID": "STUDY-PHI-77",
    "StudyDescription": "Confidential liver study of Marigold",
    "SeriesDescription": "Hidden venous series description",
    "ImageComments": "Comment naming patient Quxleywhistle",
}
PRIVATE_CREATOR = "HCCOMICS TEST PRIVATE"
PRIVATE_VALUE = "PRIVATE-PHI-ZX81-VALUE"

# rotation by 25 degrees about (1, 2, 3): every axis oblique, so a swapped or flipped axis shows
_AXIS = np.array([1.0, 2.0, 3.0]) / np.sqrt(14.0)


def _rotation(axis: np.ndarray, degrees: float) -> np.ndarray:
    a = np.radians(degrees)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(a) * k + (1 - np.cos(a)) * k @ k


_R = _rotation(_AXIS, 25.0)
OBLIQUE = tuple(np.round(np.concatenate([_R[:, 0], _R[:, 1]]), 6))
AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def _ds(x: float) -> str:
    """A DS string (at most 16 characters) for a float."""
    text = f"{x:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


@dataclass
class SeriesTruth:
    """What a writer put on disk, in slice order along the normal (the independent truth)."""

    files: list[Path]
    values: np.ndarray  # expected rescaled volume (i, j, k)
    orientation: np.ndarray  # 6 cosines as written
    positions: np.ndarray  # (n, 3) LPS, as written, in slice order
    pixel_spacing: tuple[float, float]  # (between rows, between columns)
    series_uid: str
    study_uid: str
    frame_uid: str
    datasets: list[Dataset] = field(default_factory=list)  # in slice order (single-frame series)

    @property
    def normal(self) -> np.ndarray:
        return np.cross(self.orientation[:3], self.orientation[3:])


def _file_meta(sop_class: str, sop_uid: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    return meta


def _common(ds: Dataset, *, modality: str, phi: dict[str, str], patient_id: str, study_uid: str, series_uid: str,
            frame_uid: str, description: str) -> None:
    for key, value in phi.items():
        setattr(ds, key, value)
    ds.PatientID = patient_id
    ds.SeriesDescription = description
    ds.PatientSex = "O"
    ds.Modality = modality
    ds.Manufacturer = "hccomics-tests"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = frame_uid
    ds.PositionReferenceIndicator = ""
    ds.SeriesNumber = 3
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    if modality == "CT":
        ds.KVP = "120"
    else:
        ds.MagneticFieldStrength = "1.5"
        ds.RepetitionTime = "5.2"
        ds.EchoTime = "2.3"
    block = ds.private_block(0x0011, PRIVATE_CREATOR, create=True)
    block.add_new(0x01, "LO", PRIVATE_VALUE)


def _geometry(n_slices: int, orientation: Sequence[float], origin: Sequence[float], slice_spacing: float,
              drop_slices: Iterable[int]) -> tuple[np.ndarray, np.ndarray]:
    ori = np.array([float(_ds(v)) for v in orientation])
    normal = np.cross(ori[:3], ori[3:])
    keep = [k for k in range(n_slices) if k not in set(drop_slices)]
    pos = np.array([[float(_ds(v)) for v in np.asarray(origin) + k * slice_spacing * normal] for k in keep])
    return ori, pos


def write_series(folder: str | Path, *, modality: str = "CT", n_slices: int = 6, rows: int = 12, columns: int = 16,
                 pixel_spacing: tuple[float, float] = (0.8, 0.7), slice_spacing: float = 2.5,
                 origin: Sequence[float] = (-12.5, 30.25, -40.0), orientation: Sequence[float] = OBLIQUE,
                 slope: float = 1.0, intercept: float = -1024.0, drop_slices: Iterable[int] = (), seed: int = 0,
                 series_uid: str | None = None, study_uid: str | None = None, frame_uid: str | None = None,
                 patient_id: str = PHI["PatientID"], description: str = PHI["SeriesDescription"],
                 phi: dict[str, str] = PHI, stored: np.ndarray | None = None, extra_files: bool = True) -> SeriesTruth:
    """Write a one-file-per-slice series; files are shuffled, half sit in a sub-folder, InstanceNumbers are scrambled.

    ``stored`` (n, rows, columns) int16 overrides the random stored values.
    """
    folder = Path(folder)
    rng = np.random.default_rng(seed)
    ori, pos = _geometry(n_slices, orientation, origin, slice_spacing, drop_slices)
    n = len(pos)
    if stored is None:
        stored = rng.integers(-1000, 2000, size=(n, rows, columns)).astype(np.int16)
    series_uid, study_uid, frame_uid = series_uid or generate_uid(), study_uid or generate_uid(), frame_uid or generate_uid()
    sop_class = CTImageStorage if modality == "CT" else MRImageStorage
    file_order = rng.permutation(n)  # file k holds slice file_order[k]
    instance_numbers = rng.permutation(n)[::-1] + 1
    files: list[Path] = [Path()] * n
    datasets: list[Dataset] = [Dataset()] * n
    for k in range(n):
        s = int(file_order[k])
        sop_uid = generate_uid()
        ds = Dataset()
        ds.file_meta = _file_meta(sop_class, sop_uid)
        ds.SOPClassUID, ds.SOPInstanceUID = sop_class, sop_uid
        _common(ds, modality=modality, phi=phi, patient_id=patient_id, study_uid=study_uid, series_uid=series_uid,
                frame_uid=frame_uid, description=description)
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.InstanceNumber = int(instance_numbers[s])
        ds.ImagePositionPatient = [_ds(v) for v in pos[s]]
        ds.ImageOrientationPatient = [_ds(v) for v in ori]
        ds.PixelSpacing = [_ds(v) for v in pixel_spacing]
        ds.SliceThickness = _ds(slice_spacing * 1.6)  # thicker than the spacing: overlapping slices, as often in CT
        ds.Rows, ds.Columns = rows, columns
        ds.RescaleSlope, ds.RescaleIntercept = _ds(slope), _ds(intercept)
        ds.PixelData = np.ascontiguousarray(stored[s]).tobytes()
        path = folder / ("sub" if k % 2 else "") / f"IMG{k:04d}.dcm"
        path.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(path, enforce_file_format=True)
        files[s], datasets[s] = path, ds
    if extra_files:
        (folder / "README.txt").write_text("not a DICOM file\n")
    values = stored.astype(np.float64) * slope + intercept
    return SeriesTruth(files, values.transpose(2, 1, 0), ori, pos, tuple(float(_ds(v)) for v in pixel_spacing),
                       series_uid, study_uid, frame_uid, datasets)


def write_enhanced(path: str | Path, *, modality: str = "CT", n_slices: int = 6, rows: int = 12, columns: int = 16,
                   pixel_spacing: tuple[float, float] = (0.8, 0.7), slice_spacing: float = 2.5,
                   origin: Sequence[float] = (-12.5, 30.25, -40.0), orientation: Sequence[float] = OBLIQUE,
                   slope: float = 1.0, intercept: float = -1024.0, seed: int = 0, per_frame_measures: bool = False,
                   phi: dict[str, str] = PHI) -> SeriesTruth:
    """Write one enhanced CT / MR multi-frame file with frames in shuffled order (per-frame PlanePositionSequence)."""
    path = Path(path)
    rng = np.random.default_rng(seed)
    ori, pos = _geometry(n_slices, orientation, origin, slice_spacing, ())
    stored = rng.integers(-1000, 2000, size=(n_slices, rows, columns)).astype(np.int16)
    order = rng.permutation(n_slices)  # stored frame f holds slice order[f]
    series_uid, study_uid, frame_uid, sop_uid = generate_uid(), generate_uid(), generate_uid(), generate_uid()
    sop_class = EnhancedCTImageStorage if modality == "CT" else EnhancedMRImageStorage
    ds = Dataset()
    ds.file_meta = _file_meta(sop_class, sop_uid)
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, sop_uid
    _common(ds, modality=modality, phi=phi, patient_id=phi["PatientID"], study_uid=study_uid, series_uid=series_uid,
            frame_uid=frame_uid, description=phi["SeriesDescription"])
    ds.ImageType = ["ORIGINAL", "PRIMARY", "VOLUME", "NONE"]
    ds.InstanceNumber = 1
    ds.Rows, ds.Columns, ds.NumberOfFrames = rows, columns, n_slices
    measures = Dataset()
    measures.PixelSpacing = [_ds(v) for v in pixel_spacing]
    measures.SliceThickness = _ds(slice_spacing)
    shared = Dataset()
    plane = Dataset()
    plane.ImageOrientationPatient = [_ds(v) for v in ori]
    shared.PlaneOrientationSequence = DicomSequence([plane])
    if not per_frame_measures:
        shared.PixelMeasuresSequence = DicomSequence([measures])
    if modality == "CT":
        pvt = Dataset()
        pvt.RescaleSlope, pvt.RescaleIntercept, pvt.RescaleType = _ds(slope), _ds(intercept), "HU"
        shared.PixelValueTransformationSequence = DicomSequence([pvt])
        xray = Dataset()
        xray.KVP = "100"
        shared.CTXRayDetailsSequence = DicomSequence([xray])
        del ds.KVP
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])
    per_frame = []
    for f in range(n_slices):
        item = Dataset()
        position = Dataset()
        position.ImagePositionPatient = [_ds(v) for v in pos[order[f]]]
        item.PlanePositionSequence = DicomSequence([position])
        if per_frame_measures:
            item.PixelMeasuresSequence = DicomSequence([measures])
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(per_frame)
    ds.PixelData = np.ascontiguousarray(stored[order]).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    # enhanced MR carries no rescale here: values are the stored ones
    values = stored.astype(np.float64) * slope + intercept if modality == "CT" else stored.astype(np.float64)
    return SeriesTruth([path], values.transpose(2, 1, 0), ori, pos, tuple(float(_ds(v)) for v in pixel_spacing),
                       series_uid, study_uid, frame_uid)


def write_mixed_series(folder: str | Path, **kwargs) -> SeriesTruth:
    """A CT series in which one file says Modality MR (same SeriesInstanceUID)."""
    truth = write_series(folder, **kwargs)
    odd = truth.files[2]
    ds = pydicom.dcmread(odd)
    ds.Modality = "MR"
    ds.save_as(odd, enforce_file_format=True)
    return truth


def write_inconsistent_spacing(folder: str | Path, **kwargs) -> SeriesTruth:
    """A series with slice 3 missing, so one gap is twice the others."""
    return write_series(folder, drop_slices=(3,), **kwargs)


# ---------------------------------------------------------------------------------------------------------------
# PHI scanning

IDENTIFYING_KEYWORDS = frozenset({
    "PatientName", "PatientID", "OtherPatientIDs", "PatientBirthDate", "PatientBirthName", "PatientMotherBirthName",
    "PatientAddress", "PatientTelephoneNumbers", "AccessionNumber", "InstitutionName", "InstitutionAddress",
    "InstitutionalDepartmentName", "ReferringPhysicianName", "ReferringPhysicianAddress", "PerformingPhysicianName",
    "NameOfPhysiciansReadingStudy", "OperatorsName", "PhysiciansOfRecord", "RequestingPhysician", "StationName",
    "DeviceSerialNumber", "StudyID", "StudyDescription", "SeriesDescription", "ImageComments",
    "AdditionalPatientHistory", "PatientComments", "RequestedProcedureDescription", "PerformedProcedureStepDescription",
    "ProtocolName", "DerivationDescription", "ContentCreatorName",
})
_TEXT_VRS = frozenset({"LO", "SH", "LT", "ST", "UT", "UC", "PN", "AE"})


def _values(elem: pydicom.DataElement) -> list[str]:
    value = elem.value
    items = list(value) if isinstance(value, pydicom.multival.MultiValue | list | tuple) else [value]
    out = []
    for v in items:
        if v is None or isinstance(v, bytes | Dataset):
            continue
        text = str(v)
        out.append(text)
        if elem.VR == "PN":
            out += [p for p in re.split(r"[\^=]", text) if p]
        if elem.VR == "DA" and re.fullmatch(r"\d{8}", text):
            out.append(f"{text[:4]}-{text[4:6]}-{text[6:]}")  # the same date, reformatted
    return out


def identifying_values(paths: Iterable[str | Path], *, min_length: int = 4) -> set[str]:
    """Every identifying value in the given DICOM files (nested sequences included).

    Collected: the attributes of :data:`IDENTIFYING_KEYWORDS`, every PN (and its components),
    DA / DT / TM value (dates also as YYYY-MM-DD), every UID that is not a registered standard
    UID, and the text values of private tags. Values shorter than ``min_length`` or without a
    letter or digit are skipped (they cannot be searched for meaningfully).
    """
    found: set[str] = set()
    for path in paths:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        for elem in ds.iterall():
            wanted = (
                elem.keyword in IDENTIFYING_KEYWORDS
                or elem.VR in ("PN", "DA", "DT", "TM")
                or (elem.VR == "UI" and elem.value and UID(str(elem.value)).name == str(elem.value))
                or (elem.tag.is_private and elem.VR in _TEXT_VRS)
            )
            if wanted:
                found.update(_values(elem))
    return {v.strip() for v in found if len(v.strip()) >= min_length and re.search(r"[A-Za-z0-9]", v)}


def find_identifiers(roots: Iterable[str | Path], values: Iterable[str], *, text: str = "") -> list[str]:
    """Where any of ``values`` occurs (case-insensitive): in file names or bytes under ``roots`` (gzip content too), or in ``text``."""
    needles = sorted({v.casefold() for v in values})
    hits: list[str] = []

    def search(blob: bytes, where: str) -> None:
        low = blob.lower()
        hits.extend(f"{v!r} in {where}" for v in needles if v.encode("utf-8") in low)

    for root in roots:
        root = Path(root)
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            search(str(path.relative_to(root)).encode(), f"the name of {path}")
            data = path.read_bytes()
            search(data, str(path))
            if path.name.endswith(".gz"):
                search(gzip.decompress(data), f"{path} (decompressed)")
    search(text.encode("utf-8"), "the text given")
    return hits
