"""TCIA HCC-TACE-Seg converter on a tiny collection written in the NBIA Data Retriever layout."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import highdicom as hd
import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from dicom_fixtures import AXIAL, OBLIQUE, find_identifiers, identifying_values, write_series
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from hccomics.errors import DataValidationError, ManifestError
from hccomics.io import read_manifest, validate_manifest
from hccomics.io.public import convert_hcc_tace_seg

ROWS, COLUMNS, SLICES = 12, 16, 6
WEEKS_TO_MONTHS = 7 / 30.4375
CLINICAL = pd.DataFrame({
    "TCIA_ID": ["HCC_001", "HCC_002", "HCC_003"],
    "age": [61, 70, 55],
    "TTP": [20.0, 8.5, 30.0],                      # weeks
    "Censored_0_progressed_1": [1, 0, 1],
    "OS": [52.0, 104.0, 40.0],                     # weeks
    "Death_1_StillAliveorLostToFU_0": [1, 0, 1],
})


def _segment(number: int, label: str, category, kind) -> hd.seg.SegmentDescription:
    return hd.seg.SegmentDescription(number, label, category, kind, hd.seg.SegmentAlgorithmTypeValues.MANUAL)


def _masks() -> np.ndarray:
    """(slices, rows, columns, segments): liver, mass (a 27-voxel and a 4-voxel tumour), portal vein."""
    arr = np.zeros((SLICES, ROWS, COLUMNS, 3), dtype=bool)
    arr[1:5, 2:10, 2:12, 0] = True  # liver; first and last slices empty, so the SEG omits them
    arr[1:4, 3:6, 3:6, 1] = True  # the larger tumour, inside the liver
    arr[3, 8:10, 13:15, 1] = True  # the smaller one, partly outside the liver segment
    arr[2:4, 0:2, 0:2, 2] = True  # portal vein: ignored
    return arr


def _write_seg(source: list, folder: Path) -> np.ndarray:
    arr = _masks()
    seg = hd.seg.Segmentation(
        source_images=source, pixel_array=arr, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[_segment(1, "Liver", codes.SCT.Organ, codes.SCT.Liver),
                              _segment(2, "Mass", codes.SCT.MorphologicallyAbnormalStructure, codes.SCT.Mass),
                              _segment(3, "Portal vein", codes.SCT.Organ, codes.SCT.PortalVein)],
        series_instance_uid=generate_uid(), series_number=300, sop_instance_uid=generate_uid(), instance_number=1,
        manufacturer="tests", manufacturer_model_name="tests", software_versions="1", device_serial_number="1")
    folder.mkdir(parents=True)
    seg.save_as(folder / "1-1.dcm")
    return arr


def _write_collection(root: Path) -> dict[str, dict]:
    """Two patients: two CT phases and a topogram each; HCC_001's SEG is on PV (oblique), HCC_002's on ART (axial)."""
    truth = {}
    for n, (pid, orientation, seg_phase) in enumerate([("HCC_001", OBLIQUE, "PV"), ("HCC_002", AXIAL, "ART")]):
        study = root / "HCC-TACE-Seg" / pid / f"07-2{n}-1998-NA-CT ABDOMEN-{8000 + n}"
        common = {"patient_id": pid, "study_uid": generate_uid(), "frame_uid": generate_uid(), "orientation": orientation,
                  "n_slices": SLICES, "rows": ROWS, "columns": COLUMNS, "extra_files": False}
        series = {desc: write_series(study / f"{k + 2}.000000-{desc}-{9000 + k}", description=desc, seed=10 * n + k, **common)
                  for k, desc in enumerate(["ART", "PV"])}
        write_series(study / "1.000000-Topogram-8999", description="Topogram 0.6 T20f", seed=99, **{**common, "n_slices": 2})
        arr = _write_seg(series[seg_phase].datasets, study / "300.000000-Segmentation-9300")
        truth[pid] = {"phase": {"PV": "portal_venous", "ART": "arterial"}[seg_phase], "masks": arr.transpose(2, 1, 0, 3),
                      "series": series}
    return truth


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, Path]:
    root = tmp_path_factory.mktemp("tcia")
    truth = _write_collection(root / "download")
    CLINICAL.to_csv(root / "download" / "clinical.csv", index=False)
    manifest = convert_hcc_tace_seg(root / "download", root / "cohort", clinical=root / "download" / "clinical.csv")
    return manifest, truth, root


def test_manifest_validates_and_attaches_masks_to_the_segmented_series(converted) -> None:
    manifest, truth, _ = converted
    man, folder = read_manifest(manifest)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # HCC_003 has clinical data only: a coverage warning, not an error
        report = validate_manifest(manifest)
    assert report.ok, report.errors
    assert {(s.patient_id, s.phase) for s in man.images} == {(p, ph) for p in truth for ph in ("arterial", "portal_venous")}
    for s in man.images:
        expected = ["liver", "lesion"] if s.phase == truth[s.patient_id]["phase"] else []
        assert [m.label for m in s.masks] == expected
        assert s.modality == "CT" and s.format == "nifti" and (folder / s.path).is_file()
    assert man.imaging is not None and man.imaging.phases == {"CT": ["arterial", "portal_venous"]}
    assert man.imaging.reference_phase == {}  # masks lie on different phases in the two patients


def test_masks_are_voxel_exact_on_the_image_grid(converted) -> None:
    manifest, truth, _ = converted
    man, folder = read_manifest(manifest)
    for s in (s for s in man.images if s.masks):
        image = nib.load(folder / s.path)
        masks = {m.label: nib.load(folder / m.path) for m in s.masks}
        seg = truth[s.patient_id]["masks"]  # (i, j, k, segment) on the source series' slice order
        for img in masks.values():
            assert img.shape == image.shape and np.allclose(img.affine, image.affine, atol=1e-6)
        liver = np.asanyarray(masks["liver"].dataobj)
        lesion = np.asanyarray(masks["lesion"].dataobj)
        assert liver.dtype == np.uint8 and lesion.dtype == np.uint8
        np.testing.assert_array_equal(liver, (seg[..., 0] | seg[..., 1]).astype(np.uint8))  # liver includes tumours
        big = np.zeros_like(seg[..., 1])
        big[3:6, 3:6, 1:4] = True  # columns, rows, slices of the larger tumour
        np.testing.assert_array_equal(lesion == 1, big)
        np.testing.assert_array_equal(lesion == 2, seg[..., 1] & ~big)
        assert int(lesion.max()) == 2


def test_images_hold_the_source_volume(converted) -> None:
    manifest, truth, _ = converted
    man, folder = read_manifest(manifest)
    for s in man.images:
        source = truth[s.patient_id]["series"]["ART" if s.phase == "arterial" else "PV"]
        np.testing.assert_array_equal(np.asanyarray(nib.load(folder / s.path).dataobj), source.values.astype(np.float32))


def test_survival_in_months(converted) -> None:
    manifest, _, _ = converted
    man, folder = read_manifest(manifest)
    clinical = pd.read_csv(folder / man.tables.clinical.path)
    assert list(clinical.columns) == ["patient_id", "ttp_time_months", "ttp_event", "os_time_months", "os_event"]
    assert clinical["patient_id"].tolist() == ["HCC_001", "HCC_002", "HCC_003"]
    np.testing.assert_allclose(clinical["ttp_time_months"], CLINICAL["TTP"] * WEEKS_TO_MONTHS, atol=1e-6)
    np.testing.assert_allclose(clinical["os_time_months"], CLINICAL["OS"] * WEEKS_TO_MONTHS, atol=1e-6)
    assert clinical["ttp_event"].tolist() == [1, 0, 1] and clinical["os_event"].tolist() == [1, 0, 1]
    survival = man.tables.clinical.survival
    assert (survival["ttp"].time, survival["os"].event) == ("ttp_time_months", "os_event")
    assert man.tables.clinical.binary_columns == []


def test_no_header_value_reaches_the_cohort_or_the_log(tmp_path: Path, converted, caplog) -> None:
    _, truth, root = converted
    with caplog.at_level(logging.DEBUG):
        manifest = convert_hcc_tace_seg(root / "download", tmp_path / "cohort", clinical=root / "download" / "clinical.csv")
    sources = sorted((root / "download" / "HCC-TACE-Seg").rglob("*.dcm"))  # CT, topograms and SEGs
    values = identifying_values(sources) - set(truth)  # the TCIA pseudonyms are the patient IDs by design
    assert "Topogram 0.6 T20f" in values and len(values) > 30
    assert find_identifiers([manifest.parent], values, text=caplog.text) == []


def test_xlsx_sheet_and_day_units(tmp_path: Path, converted) -> None:
    _, _, root = converted
    sheet = CLINICAL.assign(TTP=CLINICAL["TTP"] * 7, OS=CLINICAL["OS"] * 7)
    sheet.to_excel(tmp_path / "HCC-TACE-Seg_clinical_data-V2.xlsx", index=False)
    (tmp_path / "HCC-TACE-Seg").symlink_to(root / "download" / "HCC-TACE-Seg")
    manifest = convert_hcc_tace_seg(tmp_path, tmp_path / "cohort", time_unit="days")  # sheet found beside the images
    clinical = pd.read_csv(manifest.parent / "clinical.csv")
    np.testing.assert_allclose(clinical["os_time_months"], CLINICAL["OS"] * WEEKS_TO_MONTHS, atol=1e-6)


def test_missing_inputs_say_what_to_download(tmp_path: Path, converted) -> None:
    _, _, root = converted
    (tmp_path / "empty").mkdir()
    with pytest.raises(ManifestError, match="NBIA Data Retriever"):
        convert_hcc_tace_seg(tmp_path / "empty", tmp_path / "out")
    (tmp_path / "images_only").mkdir()
    (tmp_path / "images_only" / "HCC-TACE-Seg").symlink_to(root / "download" / "HCC-TACE-Seg")
    with pytest.raises(ManifestError, match="HCC-TACE-Seg_clinical_data-V2.xlsx"):
        convert_hcc_tace_seg(tmp_path / "images_only", tmp_path / "out")
    with pytest.raises(ManifestError, match="does not exist"):
        convert_hcc_tace_seg(tmp_path / "nowhere", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_bad_clinical_sheet_is_refused_before_any_conversion(tmp_path: Path, converted, caplog) -> None:
    _, _, root = converted
    sheet = CLINICAL.copy()
    sheet.loc[1, "TTP"] = np.nan
    sheet.to_csv(tmp_path / "clinical.csv", index=False)
    with pytest.raises(DataValidationError, match="drop_incomplete=True") as err:
        convert_hcc_tace_seg(root / "download", tmp_path / "out", clinical=tmp_path / "clinical.csv")
    assert "HCC_002" in str(err.value) and not (tmp_path / "out").exists()
    with pytest.raises(DataValidationError, match="ttp_time -> 'Time_to_progression'"):
        convert_hcc_tace_seg(root / "download", tmp_path / "out", clinical=tmp_path / "clinical.csv",
                             clinical_columns={"ttp_time": "Time_to_progression"})
    with caplog.at_level(logging.WARNING):
        manifest = convert_hcc_tace_seg(root / "download", tmp_path / "out", clinical=tmp_path / "clinical.csv",
                                        drop_incomplete=True)
    assert "left out 1 patient(s)" in caplog.text
    assert pd.read_csv(manifest.parent / "clinical.csv")["patient_id"].tolist() == ["HCC_001", "HCC_003"]
