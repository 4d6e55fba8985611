"""A run that ingests DICOM series leaves no identifying value of them anywhere it writes."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from dicom_fixtures import find_identifiers, identifying_values

from hccomics.io import sha256sum, validate_manifest

pydicom = pytest.importorskip("pydicom")


@pytest.fixture
def dicom_cohort(tmp_path: Path) -> tuple[Path, list[Path]]:
    from pydicom.data import get_testdata_file

    sources = [Path(get_testdata_file("CT_small.dcm")), Path(get_testdata_file("MR_small.dcm"))]
    root = tmp_path / "cohort"
    images = []
    for pid, (src, modality, phase) in zip(("P01", "P02"), zip(sources, ("CT", "MRI"), ("portal_venous", "t2_fs"))):
        folder = root / "dicom" / pid
        folder.mkdir(parents=True)
        shutil.copy(src, folder / "IM0001.dcm")
        images.append({"patient_id": pid, "modality": modality, "phase": phase, "format": "dicom",
                       "path": f"dicom/{pid}", "sha256": sha256sum(folder)})
    clinical = pd.DataFrame({"patient_id": ["P01", "P02"], "age": [61, 70], "rfs_time_months": [12.0, 30.5],
                             "rfs_event": [1, 0]})
    clinical.to_csv(root / "clinical.csv", index=False)
    manifest = {
        "name": "two DICOM patients",
        "tables": {"clinical": {"path": "clinical.csv", "sha256": sha256sum(root / "clinical.csv"),
                                "survival": {"rfs": {"time": "rfs_time_months", "event": "rfs_event"}},
                                "binary_columns": []}},
        "images": images,
    }
    (root / "manifest.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return root / "manifest.yaml", sources


def test_no_phi_after_a_run_that_ingests_dicom(dicom_cohort, tmp_path: Path, monkeypatch, caplog) -> None:
    from hccomics.pipeline import run_suite

    manifest, sources = dicom_cohort
    cache = tmp_path / "cache"
    monkeypatch.setenv("HCCOMICS_CACHE", str(cache))
    caplog.set_level(logging.DEBUG)
    report = validate_manifest(manifest)
    assert report.ok, report.errors
    run = tmp_path / "run"
    run_suite(manifest, run, profile="smoke", only=["00"])
    converted = list(cache.rglob("*.nii.gz"))
    assert len(converted) == 2  # both series were ingested
    assert (run / "00_cohort_overview" / "figures" / "example_slices.html").is_file()
    # a value made of one repeated character (e.g. a StudyID of zeros) identifies nobody and occurs in any file
    values = {v for v in identifying_values(sources) if len(set(v)) > 1}
    assert {"CompressedSamples^CT1", "1CT1"} <= values
    leaks = find_identifiers([run, cache], values, text=caplog.text)
    assert not leaks, leaks


def test_dicom2nifti_command(dicom_cohort, tmp_path: Path, capsys) -> None:
    import nibabel as nib

    from hccomics.cli import main

    manifest, _ = dicom_cohort
    out = tmp_path / "P01_ct.nii.gz"
    assert main(["dicom2nifti", str(manifest.parent / "dicom" / "P01"), str(out), "--patient-id", "P01"]) == 0
    assert Path(capsys.readouterr().out.strip()) == out
    assert nib.load(out).shape[:2] == (128, 128)  # CT_small is one 128 x 128 slice
    assert main(["dicom2nifti", str(tmp_path / "absent"), str(tmp_path / "x.nii.gz"), "--patient-id", "P9"]) == 1


def test_cached_conversion_still_refuses_a_dicom_patient_id(dicom_cohort, tmp_path: Path, monkeypatch) -> None:
    from hccomics.errors import DataValidationError
    from hccomics.io import cached_nifti

    manifest, _ = dicom_cohort
    monkeypatch.setenv("HCCOMICS_CACHE", str(tmp_path / "cache"))
    folder = manifest.parent / "dicom" / "P01"
    first = cached_nifti(folder, patient_id="P01")
    for bad in ("1CT1", "Doe^John 1970"):  # the real PatientID; a value that is no pseudonym
        with pytest.raises(DataValidationError) as err:
            cached_nifti(folder, patient_id=bad)
        assert bad not in str(err.value)
    assert '"patient_id": "P01"' in first.with_name(first.name.replace(".nii.gz", ".json")).read_text()
