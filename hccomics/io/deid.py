"""De-identification of DICOM headers by whitelist (DICOM PS3.15 Annex E, basic profile).

hccomics never copies a DICOM header to an output. Whatever leaves a DICOM file (a NIfTI
sidecar, a table, a log line) is built from :data:`TECHNICAL_WHITELIST`: a short list of
acquisition attributes that the basic application level confidentiality profile of
DICOM PS3.15 Annex E (Table E.1-1) does not list for removal and that carry no information
about the patient, the institution or the time of the examination. Everything else is left
behind: names, IDs, birth date, accession number, institution, station, device serial
numbers, operator and physician names, descriptions and free-text comments, every UID,
every date and time, patient characteristics (age, sex, size, weight) and all private
tags. Values are converted to numbers or checked against a list of defined terms, so that
a free-text value cannot slip through a whitelisted attribute.

DICOM dates and times are never read for any purpose (not to order series or studies, not
to compute intervals), so the "retain longitudinal temporal information" options of
PS3.15 are not needed; the basic profile's removal of dates applies unchanged.

Examples
--------
>>> import pydicom
>>> from pydicom.data import get_testdata_file
>>> meta = deidentified_metadata(pydicom.dcmread(get_testdata_file("CT_small.dcm")))
>>> meta["Modality"], meta["KVP"], meta["PixelSpacing"]
('CT', 120.0, [0.661468, 0.661468])
>>> "PatientName" in meta or "StudyDate" in meta
False
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Iterator
from typing import Any, ParamSpec, TypeVar

from pydicom import config as pydicom_config
from pydicom.dataset import Dataset
from pydicom.uid import UID

__all__ = [
    "DEIDENTIFICATION_STATEMENT",
    "TECHNICAL_WHITELIST",
    "deidentified_metadata",
    "safe_modality",
    "unlogged_dicom_values",
]

_P = ParamSpec("_P")
_T = TypeVar("_T")

DEIDENTIFICATION_STATEMENT = (
    "DICOM PS3.15 basic profile: only whitelisted technical attributes are kept (Modality, "
    "pixel and slice spacing, slice thickness, KVP, RepetitionTime, EchoTime, MagneticFieldStrength, "
    "image size, transfer syntax); names, IDs, dates and times, UIDs, descriptions, comments, "
    "institution, device, operator and physician attributes and private tags are removed; "
    "DICOM dates are not used; NIfTI header text fields are blank."
)

# Modalities (PS3.3 C.7.3.1.1.1 defined terms) that may appear in an output; anything else is
# reported as "OT" so that a misused Modality field cannot carry text.
_MODALITIES = frozenset({
    "CT", "MR", "PT", "NM", "US", "CR", "DX", "MG", "XA", "RF", "OT", "SEG", "RTSTRUCT", "RTDOSE",
    "RTIMAGE", "REG", "SR", "SC", "SM", "OP", "IO", "PX", "ES", "XC", "GM", "KO", "PR",
})
_PHOTOMETRIC = frozenset({"MONOCHROME1", "MONOCHROME2", "RGB", "PALETTE COLOR", "YBR_FULL", "YBR_FULL_422"})
# Attribute names used by enhanced multi-frame objects for the same quantity.
_ALIASES = {"EchoTime": ("EchoTime", "EffectiveEchoTime")}


def _number(value: Any) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _integer(value: Any) -> int | None:
    x = _number(value)
    return int(x) if x is not None and x == int(x) else None


def _numbers(value: Any) -> list[float] | None:
    if isinstance(value, str | bytes) or not hasattr(value, "__iter__"):
        return None
    out = [_number(v) for v in value]
    return out if out and all(v is not None for v in out) else None  # type: ignore[return-value]


def _defined_term(allowed: frozenset[str], fallback: str | None) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        text = str(value).strip().upper()
        return text if text in allowed else fallback

    return check


def _transfer_syntax(value: Any) -> str | None:
    # only standard transfer syntaxes from the DICOM registry; a private UID could encode a site
    uid = UID(str(value))
    return str(uid) if uid.is_transfer_syntax and uid.name != str(uid) else None


# keyword -> converter that returns a safe value (number, list of numbers, defined term) or None
TECHNICAL_WHITELIST: dict[str, Callable[[Any], Any]] = {
    "Modality": _defined_term(_MODALITIES, "OT"),
    "Rows": _integer,
    "Columns": _integer,
    "PixelSpacing": _numbers,
    "SliceThickness": _number,
    "SpacingBetweenSlices": _number,
    "KVP": _number,
    "RepetitionTime": _number,
    "EchoTime": _number,
    "MagneticFieldStrength": _number,
    "BitsStored": _integer,
    "PhotometricInterpretation": _defined_term(_PHOTOMETRIC, None),
}
"""Attributes that may leave a DICOM file, each with the converter that makes its value safe.

Why each is retained: they describe the acquisition and voxel grid (needed to interpret
intensities and distances), are not in PS3.15 Table E.1-1, and hold numbers or defined
terms only. Units stay those of DICOM: mm, kV, ms, T.
"""


def _functional_group_items(ds: Dataset) -> Iterator[Dataset]:
    """Macro items of the shared, then first per-frame, functional groups of a multi-frame image."""
    for seq_name in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        seq = ds.get(seq_name)
        if not seq:
            continue
        for element in seq[0]:
            if element.VR == "SQ" and element.value:
                yield element.value[0]


def _get(ds: Dataset, name: str) -> Any:
    try:
        return ds.get(name)
    except (ValueError, TypeError, OverflowError):  # a malformed value is as good as absent
        return None


def _lookup(ds: Dataset, keyword: str) -> Any:
    for name in _ALIASES.get(keyword, (keyword,)):
        value = _get(ds, name)
        if value not in (None, ""):
            return value
    # enhanced CT / MR keep acquisition parameters inside functional group macros
    for item in _functional_group_items(ds):
        for name in _ALIASES.get(keyword, (keyword,)):
            value = _get(item, name)
            if value not in (None, ""):
                return value
    return None


def deidentified_metadata(ds: Dataset) -> dict[str, Any]:
    """Return the whitelisted technical attributes of one DICOM dataset as plain values.

    Parameters
    ----------
    ds
        A dataset read with pydicom (pixel data may be absent).

    Returns
    -------
    dict
        DICOM keyword -> number, list of numbers or defined term, for every attribute of
        :data:`TECHNICAL_WHITELIST` present in ``ds`` (also inside the functional groups of
        enhanced multi-frame images), plus ``TransferSyntaxUID`` when it is a standard one.
        Nothing else is ever returned; see the module docstring for what is removed and why.

    Examples
    --------
    >>> import pydicom
    >>> from pydicom.data import get_testdata_file
    >>> meta = deidentified_metadata(pydicom.dcmread(get_testdata_file("MR_small.dcm")))
    >>> meta["Modality"], meta["RepetitionTime"], meta["EchoTime"]
    ('MR', 4000.0, 240.0)
    """
    out: dict[str, Any] = {}
    for keyword, convert in TECHNICAL_WHITELIST.items():
        raw = _lookup(ds, keyword)
        value = convert(raw) if raw is not None else None
        if value is not None:
            out[keyword] = value
    meta = getattr(ds, "file_meta", None)
    if meta is not None and meta.get("TransferSyntaxUID"):
        ts = _transfer_syntax(meta.TransferSyntaxUID)
        if ts is not None:
            out["TransferSyntaxUID"] = ts
    return out


def safe_modality(value: Any) -> str:
    """Return a Modality value fit for messages and outputs (a defined term, else ``"OT"``).

    Examples
    --------
    >>> safe_modality("CT"), safe_modality("John Smith")
    ('CT', 'OT')
    """
    return TECHNICAL_WHITELIST["Modality"](value)


@contextlib.contextmanager
def unlogged_dicom_values() -> Iterator[None]:
    """Hold pydicom's value validation off while hccomics reads DICOM headers.

    pydicom logs and warns about malformed values verbatim ("Invalid value for VR UI: '1.2.03...'"),
    so a malformed name, ID, date or UID would otherwise reach the log or a notebook's output.

    Examples
    --------
    >>> from pydicom import config
    >>> with unlogged_dicom_values():
    ...     config.settings.reading_validation_mode == config.IGNORE
    True
    """
    settings = pydicom_config.settings
    previous = settings.reading_validation_mode
    settings.reading_validation_mode = pydicom_config.IGNORE
    try:
        yield
    finally:
        settings.reading_validation_mode = previous


def without_value_logging(func: Callable[_P, _T]) -> Callable[_P, _T]:
    """Decorator form of :func:`unlogged_dicom_values` for functions that read DICOM headers."""

    @functools.wraps(func)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        with unlogged_dicom_values():
            return func(*args, **kwargs)

    return wrapper
