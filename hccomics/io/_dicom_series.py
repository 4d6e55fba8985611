"""Find the DICOM series in a folder and check that their frames form one regular volume (internal).

Messages and log lines name files, counts, modalities, sizes and positions, never the value
of an identifying attribute; a series is named by :func:`series_key`, a short digest of its
SeriesInstanceUID, instead of the UID itself.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from hccomics.errors import DataValidationError
from hccomics.io.deid import safe_modality

logger = logging.getLogger("hccomics.io.dicom")

DUPLICATE_TOL_MM = 0.01
SPACING_RTOL = 0.01
SPACING_ATOL_MM = 0.01
ORIENTATION_TOL = 1e-4
_SHOWN = 5


def series_key(uid: str) -> str:
    """A short, non-identifying name of a series: the first 12 hex digits of sha256(SeriesInstanceUID)."""
    return hashlib.sha256(str(uid).encode()).hexdigest()[:12]


@dataclass(eq=False)  # compared by identity: headers are large
class SeriesFiles:
    """The files of one series, with their headers (read without pixel data)."""

    uid: str = field(repr=False)  # kept in memory to select series; never logged or written
    files: list[Path] = field(default_factory=list)
    headers: list[Dataset] = field(default_factory=list, repr=False)

    @property
    def key(self) -> str:
        return series_key(self.uid)

    @property
    def modalities(self) -> Counter:
        return Counter(safe_modality(h.get("Modality", "")) for h in self.headers)

    @property
    def modality(self) -> str:
        return self.modalities.most_common(1)[0][0]

    def n_frames(self) -> int:
        return sum(int(h.get("NumberOfFrames", 1) or 1) for h in self.headers)

    def describe(self) -> str:
        h = self.headers[0]
        mods = "/".join(sorted(self.modalities))
        return (f"series {self.key}: {mods}, {len(self.files)} file(s), {self.n_frames()} frame(s) of "
                f"{h.get('Rows', '?')}x{h.get('Columns', '?')}")


def describe_source(src: object) -> str:
    """A folder or file as its path; a list of files as a count (a long list would flood a message)."""
    if isinstance(src, str | Path):
        return str(src)
    try:
        return f"the {len(src)} files given"  # type: ignore[arg-type]
    except TypeError:
        return str(src)


def _candidate_files(src: str | Path | Sequence[str | Path]) -> tuple[list[Path], bool]:
    """Files to try and whether they were named explicitly (then each must be DICOM)."""
    if isinstance(src, str | Path):
        path = Path(src)
        if path.is_dir():
            return sorted(p for p in path.rglob("*") if p.is_file()), False
        if path.is_file():
            return [path], True
        raise DataValidationError(f"DICOM source {path} does not exist; pass a folder, a file or a list of files")
    files = [Path(p) for p in src]
    if not files:
        raise DataValidationError("the list of DICOM files is empty; pass at least one file")
    missing = [str(p) for p in files if not p.is_file()]
    if missing:
        raise DataValidationError(f"{len(missing)} DICOM file(s) do not exist: {missing[:_SHOWN]}")
    return files, True


def scan_series(src: str | Path | Sequence[str | Path]) -> list[SeriesFiles]:
    """Read the headers of every DICOM image file in ``src`` and group them by series.

    Files that are not DICOM are skipped in a folder (and refused when named explicitly);
    DICOM files without an image (DICOMDIR, structured reports) are skipped.
    """
    files, explicit = _candidate_files(src)
    groups: dict[str, SeriesFiles] = {}
    not_dicom = no_image = 0
    for path in files:
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except InvalidDicomError:
            if explicit:
                raise DataValidationError(f"{path} is not a DICOM file (no DICM preamble); pass DICOM files only") from None
            not_dicom += 1
            continue
        except Exception as exc:  # noqa: BLE001 - pydicom raises many types on damaged files
            raise DataValidationError(
                f"{path} could not be read as DICOM ({type(exc).__name__}); the file may be truncated: download it again"
            ) from None
        if "Rows" not in ds or "SeriesInstanceUID" not in ds:
            no_image += 1
            continue
        uid = str(ds.SeriesInstanceUID)
        entry = groups.setdefault(uid, SeriesFiles(uid))
        entry.files.append(path)
        entry.headers.append(ds)
    if not_dicom or no_image:
        logger.debug("skipped %d non-DICOM file(s) and %d DICOM file(s) without an image in %s", not_dicom, no_image,
                     describe_source(src))
    return sorted(groups.values(), key=lambda s: s.key)


def select_series(series: list[SeriesFiles], series_uid: str | None, *, src: object) -> SeriesFiles:
    """The one series to read: the only one, or the one named by UID or by key."""
    src = describe_source(src)
    if not series:
        raise DataValidationError(f"no DICOM image files found in {src}; point to the folder of one series")
    if series_uid is not None:
        chosen = [s for s in series if series_uid in (s.uid, s.key)]
        if not chosen:
            raise DataValidationError(
                f"series_uid matches none of the {len(series)} series in {src}: "
                + "; ".join(s.describe() for s in series[:_SHOWN])
                + ". Pass a SeriesInstanceUID or one of these keys."
            )
        return chosen[0]
    if len(series) > 1:
        raise DataValidationError(
            f"{src} holds {len(series)} DICOM series; expected one. Pass series_uid= (the SeriesInstanceUID or the "
            "key shown) to choose one, or point to the folder of a single series: "
            + "; ".join(s.describe() for s in series)
        )
    return series[0]


@dataclass
class _Frame:
    file: int  # index into SeriesFiles.files
    frame: int | None  # frame index in a multi-frame file
    position: np.ndarray | None
    orientation: np.ndarray | None
    spacing: np.ndarray | None  # PixelSpacing: (between rows, between columns)
    thickness: float | None
    spacing_between: float | None
    slope: float | None = None
    intercept: float | None = None

    def where(self, files: list[Path]) -> str:
        return str(files[self.file]) if self.frame is None else f"frame {self.frame + 1} of {files[self.file]}"


def _floats(value: object, n: int) -> np.ndarray | None:
    try:
        arr = np.asarray([float(v) for v in value], dtype=np.float64)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return None
    return arr if arr.shape == (n,) and np.all(np.isfinite(arr)) else None


def _float(value: object) -> float | None:
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return x if np.isfinite(x) else None


def _macro(groups: list[Dataset], name: str) -> Dataset | None:
    """First item of functional-group macro ``name``, per-frame item before shared item."""
    for item in groups:
        seq = item.get(name) if item is not None else None
        if seq:
            return seq[0]
    return None


def _frames_of(ds: Dataset, index: int) -> list[_Frame]:
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if not per_frame:
        return [_Frame(index, None, _floats(ds.get("ImagePositionPatient"), 3),
                       _floats(ds.get("ImageOrientationPatient"), 6), _floats(ds.get("PixelSpacing"), 2),
                       _float(ds.get("SliceThickness")), _float(ds.get("SpacingBetweenSlices")))]
    shared_seq = ds.get("SharedFunctionalGroupsSequence")
    shared = shared_seq[0] if shared_seq else None
    frames = []
    for f, item in enumerate(per_frame):
        groups = [item, shared]
        pos, ori = _macro(groups, "PlanePositionSequence"), _macro(groups, "PlaneOrientationSequence")
        meas, pvt = _macro(groups, "PixelMeasuresSequence"), _macro(groups, "PixelValueTransformationSequence")
        frames.append(_Frame(
            index, f,
            _floats(pos.get("ImagePositionPatient"), 3) if pos is not None else None,
            _floats(ori.get("ImageOrientationPatient"), 6) if ori is not None else None,
            _floats(meas.get("PixelSpacing"), 2) if meas is not None else None,
            _float(meas.get("SliceThickness")) if meas is not None else None,
            _float(meas.get("SpacingBetweenSlices")) if meas is not None else None,
            _float(pvt.get("RescaleSlope")) if pvt is not None else None,
            _float(pvt.get("RescaleIntercept")) if pvt is not None else None,
        ))
    return frames


@dataclass
class Geometry:
    """A checked stack: frame order, affine (LPS) and voxel spacing (i, j, k)."""

    frames: list[_Frame]  # in slice order
    affine_lps: np.ndarray
    spacing: tuple[float, float, float]
    rows: int
    columns: int


def _check_headers(series: SeriesFiles) -> None:
    files, headers = series.files, series.headers
    problems = []
    mods = series.modalities
    if len(mods) > 1:
        problems.append("mixed Modality within one series: " + ", ".join(f"{m} ({n} file(s))" for m, n in sorted(mods.items()))
                        + "; a volume holds one modality. Remove the odd files or pass the files of one modality")
    colour = [str(f) for f, h in zip(files, headers) if int(h.get("SamplesPerPixel", 1) or 1) != 1]
    if colour:
        problems.append(f"{len(colour)} file(s) hold colour images (SamplesPerPixel > 1), e.g. {colour[0]}; "
                        "only greyscale CT / MR volumes can be converted")
    burned = [str(f) for f, h in zip(files, headers) if str(h.get("BurnedInAnnotation", "")).upper() == "YES"]
    if burned:
        problems.append(f"{len(burned)} file(s) declare burned-in annotation (text in the pixels), e.g. {burned[0]}; "
                        "they cannot be de-identified by header rules. Remove the text with a pixel-cleaning tool or leave these files out")
    legacy = [str(f) for f, h in zip(files, headers)
              if int(h.get("NumberOfFrames", 1) or 1) > 1 and "PerFrameFunctionalGroupsSequence" not in h]
    if legacy:
        problems.append(f"{len(legacy)} multi-frame file(s) without per-frame functional groups, e.g. {legacy[0]} "
                        "(cine, NM or ultrasound style); their frames cannot be placed in space. Convert an enhanced "
                        "or a one-file-per-slice CT / MR series")
    sizes = Counter((int(h.Rows), int(h.get("Columns", 0) or 0)) for h in headers)
    if len(sizes) > 1:
        problems.append("files of one series differ in Rows x Columns: "
                        + ", ".join(f"{r}x{c} ({n} file(s))" for (r, c), n in sorted(sizes.items()))
                        + "; the folder may mix a scout or a reformat with the volume: leave those files out")
    if problems:
        raise DataValidationError(f"{series.describe()} cannot be read as one volume ({len(problems)} problem(s))", problems)


def check_geometry(series: SeriesFiles) -> Geometry:
    """Order the frames of a series along the slice normal and check that they form a regular volume."""
    _check_headers(series)
    files = series.files
    frames = [fr for i, h in enumerate(series.headers) for fr in _frames_of(h, i)]
    missing = Counter()
    for fr in frames:
        for name, value in (("ImagePositionPatient", fr.position), ("ImageOrientationPatient", fr.orientation),
                            ("PixelSpacing", fr.spacing)):
            if value is None:
                missing[name] += 1
    if missing:
        first = next(fr for fr in frames if fr.position is None or fr.orientation is None or fr.spacing is None)
        raise DataValidationError(
            f"{series.describe()}: geometry attributes are missing or malformed: "
            + ", ".join(f"{k} in {n} frame(s)" for k, n in sorted(missing.items()))
            + f" (first: {first.where(files)}). Without them voxels cannot be placed in space; "
            "convert the original scanner series, not a secondary capture or screenshot"
        )
    ori = np.stack([fr.orientation for fr in frames])  # type: ignore[misc]
    if np.abs(ori - ori[0]).max() > ORIENTATION_TOL:
        n_odd = int((np.abs(ori - ori[0]).max(axis=1) > ORIENTATION_TOL).sum())
        raise DataValidationError(
            f"{series.describe()}: ImageOrientationPatient differs between frames ({n_odd} of {len(frames)} differ from the "
            "first); the series mixes planes (e.g. a localizer or reformat). Leave those files out"
        )
    px = np.stack([fr.spacing for fr in frames])  # type: ignore[misc]
    if np.abs(px - px[0]).max() > ORIENTATION_TOL * max(1.0, float(px[0].max())):
        raise DataValidationError(
            f"{series.describe()}: PixelSpacing differs between frames ({sorted({tuple(p) for p in px.tolist()})[:_SHOWN]}); "
            "the series mixes reconstructions: convert one of them"
        )
    row_cos, col_cos = ori[0][:3], ori[0][3:]
    if abs(np.linalg.norm(row_cos) - 1) > 1e-3 or abs(np.linalg.norm(col_cos) - 1) > 1e-3 or abs(row_cos @ col_cos) > 1e-3:
        raise DataValidationError(f"{series.describe()}: ImageOrientationPatient {ori[0].round(6).tolist()} is not a pair "
                                  "of orthogonal unit vectors; the header is corrupt")
    normal = np.cross(row_cos, col_cos)
    positions = np.stack([fr.position for fr in frames])  # type: ignore[misc]
    proj = positions @ normal
    order = np.argsort(proj, kind="stable")
    frames = [frames[i] for i in order]
    positions, proj = positions[order], proj[order]
    step = _slice_step(frames, positions, proj, normal, series)
    affine = np.eye(4)
    affine[:3, 0] = row_cos * px[0][1]  # i runs along a row: spacing between columns
    affine[:3, 1] = col_cos * px[0][0]  # j runs down a column: spacing between rows
    affine[:3, 2] = step
    affine[:3, 3] = positions[0]
    spacing = (float(px[0][1]), float(px[0][0]), float(abs(step @ normal)))
    h = series.headers[0]
    return Geometry(frames, affine, spacing, int(h.Rows), int(h.Columns))


def _slice_step(frames: list[_Frame], positions: np.ndarray, proj: np.ndarray, normal: np.ndarray,
                series: SeriesFiles) -> np.ndarray:
    """The vector from one slice to the next, after checking duplicates, regular gaps and a straight stack."""
    files = series.files
    if len(frames) == 1:
        fr = frames[0]
        for _name, value in (("SpacingBetweenSlices", fr.spacing_between), ("SliceThickness", fr.thickness)):
            if value is not None and value > 0:
                return normal * value
        logger.warning("%s: a single slice without SpacingBetweenSlices or SliceThickness; using 1.0 mm along the "
                       "slice normal", series.describe())
        return normal * 1.0
    gaps = np.diff(proj)
    dup = np.flatnonzero(gaps < DUPLICATE_TOL_MM)
    if dup.size:
        k = int(dup[0])
        raise DataValidationError(
            f"{series.describe()}: {dup.size} slice position(s) occur more than once (e.g. {frames[k].where(files)} and "
            f"{frames[k + 1].where(files)}, both at {proj[k]:.3f} mm along the slice normal). The series may hold "
            "repeated acquisitions, echoes or time points; pass the files of one of them"
        )
    median = float(np.median(gaps))
    tol = max(SPACING_ATOL_MM, SPACING_RTOL * median)
    bad = np.flatnonzero(np.abs(gaps - median) > tol)
    if bad.size:
        k = int(bad[0])
        raise DataValidationError(
            f"{series.describe()}: slice spacing is not uniform: the gap between slices {k} and {k + 1} (at "
            f"{proj[k]:.3f} and {proj[k + 1]:.3f} mm along the slice normal) is {gaps[k]:.3f} mm, whereas the median "
            f"gap is {median:.3f} mm ({bad.size} irregular gap(s); tolerance {tol:.3f} mm). A slice may be missing or "
            "the series may join two acquisitions; convert a complete, regularly spaced series"
        )
    n = len(frames)
    step = (positions[-1] - positions[0]) / (n - 1)
    residual = np.linalg.norm(positions - (positions[0] + np.outer(np.arange(n), step)), axis=1)
    if residual.max() > tol:
        k = int(residual.argmax())
        raise DataValidationError(
            f"{series.describe()}: slice positions do not lie on a straight line ({frames[k].where(files)} is "
            f"{residual[k]:.3f} mm off); the stack is curved or mixes acquisitions and cannot be one volume"
        )
    tilt = float(np.degrees(np.arccos(min(1.0, abs(step @ normal) / np.linalg.norm(step)))))
    if tilt > 0.05:
        logger.warning("%s: slices are stacked %.2f degrees off their normal (gantry tilt); the affine keeps the "
                       "true, sheared geometry", series.describe(), tilt)
    return step
