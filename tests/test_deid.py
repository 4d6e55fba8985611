"""De-identification: no identifying value of a source DICOM file reaches an output, the cache, a log or an error."""

from __future__ import annotations

import json
import logging
import shutil
import warnings
from pathlib import Path

import nibabel as nib
import pydicom
import pytest
from dicom_fixtures import (
    PHI,
    PRIVATE_VALUE,
    find_identifiers,
    identifying_values,
    write_enhanced,
    write_mixed_series,
    write_series,
)
from pydicom.data import get_testdata_file
from pydicom.dataelem import RawDataElement
from pydicom.tag import Tag

from hccomics.errors import HccomicsError
from hccomics.io.deid import TECHNICAL_WHITELIST, deidentified_metadata, unlogged_dicom_values
from hccomics.io.dicom import cached_nifti, dicom_to_nifti, read_dicom_series, sidecar_path

REAL_FILES = ("CT_small.dcm", "MR_small.dcm")


@pytest.mark.parametrize("name", REAL_FILES)
def test_metadata_holds_whitelisted_plain_values_only(name: str) -> None:
    meta = deidentified_metadata(pydicom.dcmread(get_testdata_file(name)))
    assert set(meta) <= set(TECHNICAL_WHITELIST) | {"TransferSyntaxUID"}
    for value in meta.values():
        assert isinstance(value, int | float | str | list)
        if isinstance(value, str):  # only defined terms and standard UIDs are text
            assert value in {"CT", "MR", "MONOCHROME2"} or value.startswith("1.2.840.10008.")


def test_free_text_in_whitelisted_attributes_is_not_copied() -> None:
    ds = pydicom.Dataset()
    ds.Modality = "SMITH"
    ds[0x00180060] = RawDataElement(Tag(0x00180060), "DS", 14, b"Smith, 120 kV", 0, True, True)  # KVP
    assert deidentified_metadata(ds) == {"Modality": "OT"}


def test_malformed_identifying_values_are_not_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """pydicom logs malformed values verbatim; hccomics reads headers with that validation held off."""
    bad_uid = "1.2.840.0123.4567.8901"  # a leading zero: invalid, so pydicom would log it
    long_name = "Longname" * 9 + "^Malformed"  # a PN component over 64 characters
    phi = {**PHI, "PatientName": long_name}
    with unlogged_dicom_values():  # the writer itself would log them
        write_series(tmp_path / "s", phi=phi, series_uid=bad_uid)
    caplog.clear()
    with caplog.at_level(logging.DEBUG), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dicom_to_nifti(tmp_path / "s", tmp_path / "out" / "P1.nii.gz", patient_id="P1")
    text = caplog.text + "\n".join(str(w.message) for w in caught)
    assert bad_uid not in text and "Longname" not in text
    assert pydicom.config.settings.reading_validation_mode == pydicom.config.WARN  # restored


def test_scanner_finds_planted_values(tmp_path: Path) -> None:
    """Positive control: the scan below would see a leak."""
    truth = write_series(tmp_path / "src")
    values = identifying_values(truth.files)
    for expected in (PHI["PatientID"], "Quxleywhistle", "Marigold", PHI["StudyDate"], "2019-03-14", PRIVATE_VALUE,
                     truth.series_uid, truth.study_uid, PHI["InstitutionName"], PHI["ImageComments"]):
        assert expected in values
    (tmp_path / "leak").mkdir()
    (tmp_path / "leak" / "x.json").write_text(json.dumps({"name": "MARIGOLD"}))
    assert find_identifiers([tmp_path / "leak"], values) == ["'marigold' in " + str(tmp_path / "leak" / "x.json")]
    assert find_identifiers([], values, text=f"uid {truth.series_uid}")


def _copy_into_own_folder(src: str, dst: Path) -> Path:
    dst.mkdir(parents=True)
    shutil.copy(src, dst)
    return dst


def test_no_identifier_reaches_outputs_cache_logs_or_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("HCCOMICS_CACHE", str(tmp_path / "cache"))
    src, out = tmp_path / "src", tmp_path / "out"
    sources: list[Path] = []
    errors: list[str] = []
    with caplog.at_level(logging.DEBUG):
        for n, name in enumerate(REAL_FILES):
            path = get_testdata_file(name)
            sources.append(Path(path))
            dicom_to_nifti(path, out / f"P{n}.nii.gz", patient_id=f"P{n}")
            cached_nifti(_copy_into_own_folder(path, src / name), patient_id=f"P{n}")
        series = write_series(src / "synthetic")
        multi = write_enhanced(src / "enhanced" / "volume.dcm", modality="MR")
        sources += series.files + multi.files
        dicom_to_nifti(src / "synthetic", out / "P10.nii.gz", patient_id="P10")
        dicom_to_nifti(multi.files[0], out / "P11.nii.gz", patient_id="P11")
        cached_nifti(src / "synthetic", patient_id="P10")
        cached_nifti(src / "enhanced", patient_id="P11")
        # refusals: their messages must not carry identifiers either
        mixed = write_mixed_series(src / "mixed", seed=5)
        sources += mixed.files
        for bad in (src, src / "mixed"):
            with pytest.raises(HccomicsError) as err:
                read_dicom_series(bad)
            errors.append(str(err.value))
        with pytest.raises(HccomicsError) as err:
            dicom_to_nifti(src / "synthetic", out / "bad.nii.gz", patient_id=PHI["PatientID"])
        errors.append(str(err.value))
    assert len(list(out.glob("*.nii.gz"))) == 4 and len(list((tmp_path / "cache" / "nifti").glob("*.nii.gz"))) == 4
    values = identifying_values(sources)
    assert len(values) > 40  # the real files' names, IDs, dates, UIDs, private text and the synthetic PHI
    assert "debug" in caplog.text.lower() or caplog.records  # logs were captured
    hits = find_identifiers([out, tmp_path / "cache"], values, text=caplog.text + "\n".join(errors))
    assert hits == []


def test_nifti_header_and_sidecar_carry_no_text(tmp_path: Path) -> None:
    out = dicom_to_nifti(get_testdata_file("CT_small.dcm"), tmp_path / "P1.nii.gz", patient_id="P1")
    hdr = nib.load(out).header
    assert hdr["aux_file"].item() == b"" and hdr["db_name"].item() == b"" and hdr["intent_name"].item() == b""
    assert hdr["descrip"].item() == b"hccomics" and not hdr.extensions
    side = json.loads(sidecar_path(out).read_text())
    assert side["Modality"] == "CT" and side["KVP"] == 120.0 and side["patient_id"] == "P1"


def test_dates_and_identifiers_do_not_change_the_output(tmp_path: Path) -> None:
    """Outputs depend on pixels and geometry only: other dates, names and UIDs give the same bytes."""
    other = {**PHI, "StudyDate": "20010101", "SeriesDate": "20010102", "AcquisitionDate": "20010103",
             "ContentDate": "20010104", "PatientName": "Other^Person", "AccessionNumber": "ACC1"}
    write_series(tmp_path / "a", seed=7)
    write_series(tmp_path / "b", seed=7, phi=other)
    a = dicom_to_nifti(tmp_path / "a", tmp_path / "out_a" / "P1.nii.gz", patient_id="P1")
    b = dicom_to_nifti(tmp_path / "b", tmp_path / "out_b" / "P1.nii.gz", patient_id="P1")
    assert a.read_bytes() == b.read_bytes()
    assert sidecar_path(a).read_text() == sidecar_path(b).read_text()
