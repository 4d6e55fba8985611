"""TCIA HCC-TACE-Seg: multiphase CT, DICOM SEG liver / tumour masks and survival to a cohort manifest.

See ``data_manifests/public/hcc_tace_seg.md`` for what to download and the expected layout.
Patient IDs are TCIA's pseudonyms (``HCC_001``, ...). CT headers are de-identified by
whitelist on conversion (:mod:`hccomics.io.deid`); series descriptions are read only to tell
the contrast phase and never written or logged; DICOM dates are never read, so the
baseline study is the one the SEG was drawn on, not the earliest.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from tqdm.auto import tqdm

from hccomics.errors import DataValidationError, ManifestError
from hccomics.io._dicom_series import SeriesFiles, scan_series
from hccomics.io.deid import unlogged_dicom_values
from hccomics.io.dicom import dicom_to_nifti
from hccomics.io.dicom_seg import SEGMENT_KEYWORDS, label_lesions, read_seg, seg_masks
from hccomics.io.nifti import save_nifti
from hccomics.io.public._common import file_ref, input_dir, listing, missing_input, write_csv, write_manifest
from hccomics.io.public._tace_clinical import CLINICAL_COLUMNS, SURVIVAL_OUT, TIME_UNITS, TimeUnit, read_tace_clinical

__all__ = ["CLINICAL_COLUMNS", "PHASE_KEYWORDS", "TIME_UNITS", "convert_hcc_tace_seg"]

logger = logging.getLogger(__name__)

COLLECTION = "HCC-TACE-Seg"
CLINICAL_FILE = "HCC-TACE-Seg_clinical_data-V2.xlsx"
_DOWNLOAD = ("the TCIA collection page https://www.cancerimagingarchive.net/collection/hcc-tace-seg/ "
             "(images: the .tcia manifest opened with the NBIA Data Retriever, 'Descriptive Directory Name' layout; "
             "clinical data: the 'Clinical data' .xlsx on the same page)")

PHASE_KEYWORDS: dict[str, tuple[str, ...]] = {
    "non_contrast": ("pre", "non", "noncon", "unenhanced", "plain"),
    "arterial": ("art", "hap"),
    "portal_venous": ("pv", "portal", "ven"),
    "delayed": ("delay", "equil"),
}
"""Contrast phase -> words that start a word of the SeriesDescription (case-insensitive).

A description whose words match no phase, or more than one, is skipped (only counts are
logged). Override with ``phase_keywords=`` for other naming; e.g. ``'ART'``, ``'Arterial
phase'``, ``'PV'``, ``'Portal venous'``, ``'Delayed'``, ``'Pre contrast'`` are recognised.
"""


def _phase_of(description: str, keywords: Mapping[str, Sequence[str]]) -> str | None:
    words = [w for w in re.split(r"[^a-z0-9]+", description.lower()) if w]
    hits = {phase for phase, keys in keywords.items() if any(w.startswith(k) for w in words for k in keys)}
    return hits.pop() if len(hits) == 1 else None


def _text(ds: Any, keyword: str) -> str:
    value = ds.get(keyword, "")
    return "" if value is None else str(value)


@dataclass
class _PatientResult:
    entries: list[dict[str, Any]] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)


def _find_collection(src: Path) -> Path:
    """The folder whose sub-folders are the patients (``HCC_001``, ...)."""
    if (src / COLLECTION).is_dir():
        return src / COLLECTION
    if src.name == COLLECTION or any(p.is_dir() and re.match(r"^HCC_\d+$", p.name) for p in src.iterdir()):
        return src
    nested = sorted(p for p in list(src.glob(f"*/{COLLECTION}")) + list(src.glob(f"*/*/{COLLECTION}")) if p.is_dir())
    if len(nested) == 1:
        return nested[0]
    raise missing_input(f"the {COLLECTION} image folder", src / COLLECTION, download=_DOWNLOAD,
                        layout=f"<src>/{COLLECTION}/HCC_001/<study>/<series>/*.dcm")


def _find_clinical(src: Path, collection: Path) -> Path:
    places = list(dict.fromkeys([src, collection, collection.parent]))
    for place in places:
        if (place / CLINICAL_FILE).is_file():
            return place / CLINICAL_FILE
    found = sorted({p for place in places for pattern in ("*linical*.xlsx", "*linical*.csv")
                    for p in place.glob(pattern) if p.is_file() and not p.name.startswith(("~$", "._"))})
    if len(found) == 1:
        return found[0]
    if found:
        raise ManifestError(f"several clinical files found ({listing(found)}); pass clinical= with the one to use")
    raise missing_input("the HCC-TACE-Seg clinical spreadsheet", src / CLINICAL_FILE, download=_DOWNLOAD,
                        layout=f"<src>/{CLINICAL_FILE} (or pass clinical=PATH; a .csv export is accepted)")


def _choose_series(pid: str, cts: list[SeriesFiles], reference: SeriesFiles | None,
                   keywords: Mapping[str, Sequence[str]], counts: Counter) -> dict[str, SeriesFiles]:
    """One CT series per phase: the SEG's series for its phase, else the one with the most slices."""
    by_phase: dict[str, list[SeriesFiles]] = {}
    for s in cts:
        phase = _phase_of(_text(s.headers[0], "SeriesDescription"), keywords)
        if phase is None:
            counts["series with unrecognised phase"] += 1
        else:
            by_phase.setdefault(phase, []).append(s)
    chosen = {}
    for phase, candidates in sorted(by_phase.items()):
        best = reference if reference in candidates else max(candidates, key=lambda c: (c.n_frames(), c.key))
        chosen[phase] = best
        counts["duplicate series of a phase"] += len(candidates) - 1
    if reference is not None and reference not in chosen.values():
        logger.warning("%s: the CT series the SEG references has no recognised phase; its masks are not written "
                       "(extend phase_keywords to include it)", pid)
        counts["SEG on an unrecognised series"] += 1
    return chosen


def _write_masks(pid: str, seg: Any, image: Path, out_dir: Path, keywords: Mapping[str, Sequence[str]],
                 counts: Counter) -> list[dict[str, Any]]:
    header = nib.load(image)
    affine, shape = header.affine, header.shape[:3]
    masks = seg_masks(seg, affine=affine, shape=shape, keywords=keywords)
    refs = []
    if "liver" in masks:  # the liver includes its tumours (as in LiTS and the demo cohort)
        liver = masks["liver"] | masks.get("lesion", False)
        save_nifti(liver.astype(np.uint8), out_dir / "masks" / f"{pid}_liver.nii.gz", affine=affine)
        refs.append(file_ref(out_dir, f"masks/{pid}_liver.nii.gz", label="liver"))
    if "lesion" in masks:
        lesions = label_lesions(masks["lesion"])
        save_nifti(lesions, out_dir / "masks" / f"{pid}_lesion.nii.gz", affine=affine)
        refs.append(file_ref(out_dir, f"masks/{pid}_lesion.nii.gz", label="lesion"))
        counts["lesions"] += int(lesions.max())
    if not masks:
        counts["SEG without liver or tumour segment"] += 1
    return refs


def _convert_patient(pid: str, folder: Path, out_dir: Path, *, phase_keywords: Mapping[str, Sequence[str]],
                     segment_keywords: Mapping[str, Sequence[str]]) -> _PatientResult:
    result = _PatientResult()
    counts = result.counts
    series = scan_series(folder)
    segs = [s for s in series if s.modality == "SEG"]
    cts = [s for s in series if s.modality == "CT"]
    counts["other series"] += len(series) - len(segs) - len(cts)
    seg, reference = None, None
    if segs:
        counts["extra SEG objects"] += sum(len(s.files) for s in segs) - 1
        seg = read_seg(segs[0].files[0])
        referenced = {str(uid) for _, uid, _ in seg.get_source_image_uids()}
        refs = [s for s in cts if s.uid in referenced]
        if len(refs) == 1:
            reference = refs[0]
        else:
            logger.warning("%s: the SEG references %d of the CT series found; its masks are not written", pid, len(refs))
            counts["SEG without its CT series"] += 1
    studies = {_text(s.headers[0], "StudyInstanceUID") for s in cts}
    if reference is not None:
        study = _text(reference.headers[0], "StudyInstanceUID")
        cts = [s for s in cts if _text(s.headers[0], "StudyInstanceUID") == study]
    elif len(studies) > 1:
        # without a SEG nothing but dates could tell the baseline study, and dates are not used
        logger.warning("%s: %d CT studies and no SEG to tell the baseline one; patient skipped", pid, len(studies))
        counts["patients skipped (several studies, no SEG)"] += 1
        return result
    for phase, s in _choose_series(pid, cts, reference, phase_keywords, counts).items():
        rel = f"images/{pid}_ct_{phase}.nii.gz"
        try:
            dicom_to_nifti(s.files, out_dir / rel, patient_id=pid, allow_dicom_patient_id=True)
        except DataValidationError as exc:
            logger.warning("%s: %s series skipped: %s", pid, phase, exc)
            counts["series refused (see warnings)"] += 1
            continue
        entry = {"patient_id": pid, "modality": "CT", "phase": phase, "format": "nifti", **file_ref(out_dir, rel)}
        if s is reference and seg is not None:
            masks = _write_masks(pid, seg, out_dir / rel, out_dir, segment_keywords, counts)
            if masks:
                entry["masks"] = masks
        result.entries.append(entry)
    return result


def _imaging_protocol(entries: list[dict[str, Any]]) -> dict[str, Any] | None:
    phases: dict[str, set[str]] = {}
    for e in entries:
        phases.setdefault(e["patient_id"], set()).add(e["phase"])
    common = set.intersection(*phases.values()) if phases else set()
    if not common:
        return None
    order = list(PHASE_KEYWORDS)
    protocol: dict[str, Any] = {"phases": {"CT": sorted(common, key=order.index)}}
    mask_phases = {e["phase"] for e in entries if e.get("masks")}
    if len(mask_phases) == 1 and mask_phases <= common:
        protocol["reference_phase"] = {"CT": mask_phases.pop()}
    return protocol


def convert_hcc_tace_seg(src_dir: str | Path, out_dir: str | Path, *, clinical: str | Path | None = None,
                         clinical_columns: Mapping[str, str] | None = None, time_unit: TimeUnit = "weeks",
                         phase_keywords: Mapping[str, Sequence[str]] | None = None,
                         segment_keywords: Mapping[str, Sequence[str]] | None = None,
                         drop_incomplete: bool = False) -> Path:
    """Convert a TCIA HCC-TACE-Seg download into NIfTI images, masks, a clinical table and a manifest.

    Parameters
    ----------
    src_dir
        The NBIA Data Retriever download: the ``HCC-TACE-Seg`` folder (patients ``HCC_001``, ...
        below it, each ``<study>/<series>/*.dcm``) or a folder above it.
    out_dir
        Where ``images/``, ``masks/``, ``clinical.csv`` and ``manifest.yaml`` are written.
    clinical
        The clinical spreadsheet (``HCC-TACE-Seg_clinical_data-V2.xlsx`` or a .csv export);
        by default looked for in ``src_dir`` and beside the collection folder.
    clinical_columns
        Overrides of :data:`CLINICAL_COLUMNS` (roles ``id``, ``ttp_time``, ``ttp_event``,
        ``os_time``, ``os_event``).
    time_unit
        Unit of the sheet's TTP and OS columns: ``'weeks'`` (default; what published analyses
        of V2 use), ``'days'`` or ``'months'``. Times are written in months (days / 30.4375).
    phase_keywords
        Overrides :data:`PHASE_KEYWORDS` (phase -> description words).
    segment_keywords
        Overrides :data:`hccomics.io.dicom_seg.SEGMENT_KEYWORDS` (``lesion`` / ``liver`` -> segment words).
    drop_incomplete
        Leave out patients without a positive time and a 0/1 event for both endpoints,
        instead of refusing the sheet.

    Returns
    -------
    Path
        The written ``manifest.yaml``, already validated.

    Raises
    ------
    ManifestError
        When the image folder or the clinical sheet is missing (says what to download and where to put it).
    DataValidationError
        When the clinical sheet lacks columns or holds unusable survival values.
    """
    src = input_dir(src_dir, dataset=COLLECTION, doc="hcc_tace_seg.md")
    out = Path(out_dir)
    collection = _find_collection(src)
    clinical_path = Path(clinical) if clinical is not None else _find_clinical(src, collection)
    if not clinical_path.is_file():
        raise missing_input("the clinical spreadsheet", clinical_path, download=_DOWNLOAD, layout=str(clinical_path))
    table = read_tace_clinical(clinical_path, columns=clinical_columns, time_unit=time_unit, drop_incomplete=drop_incomplete)
    patients = sorted(p for p in collection.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not patients:
        raise missing_input("patient folders", collection / "HCC_001", download=_DOWNLOAD,
                            layout=f"<src>/{COLLECTION}/HCC_001/<study>/<series>/*.dcm")
    entries: list[dict[str, Any]] = []
    counts: Counter = Counter()
    with unlogged_dicom_values():
        for folder in tqdm(patients, desc=f"{COLLECTION} patients", unit="patient"):
            result = _convert_patient(folder.name, folder, out, phase_keywords=phase_keywords or PHASE_KEYWORDS,
                                      segment_keywords=segment_keywords or SEGMENT_KEYWORDS)
            entries += result.entries
            counts += result.counts
    if not entries:
        raise DataValidationError(f"no CT series of a recognised phase were found under {collection}; check the layout "
                                  "(data_manifests/public/hcc_tace_seg.md) or pass phase_keywords=")
    write_csv(table, out / "clinical.csv", index=False)
    survival = {name: {"time": t, "event": e} for name, (t, e) in SURVIVAL_OUT.items()}
    manifest: dict[str, Any] = {
        "schema_version": 1,
        "name": COLLECTION,
        "description": ("TCIA HCC-TACE-Seg: multiphase CT before TACE with liver and tumour masks from the "
                        "collection's DICOM SEG; time to progression and overall survival in months."),
        "tables": {"clinical": {**file_ref(out, "clinical.csv"), "id_column": "patient_id", "survival": survival,
                                "binary_columns": []}},
    }
    protocol = _imaging_protocol(entries)
    if protocol is not None:
        manifest["imaging"] = protocol
    manifest["images"] = entries
    shown = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()) if v)
    logger.info("%s: %d CT series of %d patients converted (%s)", COLLECTION, len(entries),
                len({e["patient_id"] for e in entries}), shown or "nothing skipped")
    return write_manifest(out, manifest)

