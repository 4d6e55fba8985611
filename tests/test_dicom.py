"""DICOM ingest: geometry against hand computation and SimpleITK, multi-frame, refusals, decoders, NIfTI output."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from dicom_fixtures import (
    AXIAL,
    PHI,
    write_enhanced,
    write_inconsistent_spacing,
    write_mixed_series,
    write_series,
)
from pydicom.data import get_testdata_file
from pydicom.pixels import apply_modality_lut

from hccomics.errors import DataValidationError
from hccomics.io.deid import TECHNICAL_WHITELIST
from hccomics.io.dicom import (
    LPS_TO_RAS,
    cached_nifti,
    dicom_to_nifti,
    list_dicom_series,
    read_dicom_series,
    sidecar_path,
)

FLIP = np.array([-1.0, -1.0, 1.0])  # LPS -> RAS, written out by hand


def _hand_world_ras(folder: Path, ijk: np.ndarray) -> np.ndarray:
    """World (RAS) position of voxels (i, j, k) from the files' own headers: slice k is the k-th along the normal."""
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in folder.rglob("*.dcm")]
    ori = np.array(headers[0].ImageOrientationPatient, dtype=float)
    row_cos, col_cos = ori[:3], ori[3:]
    normal = np.cross(row_cos, col_cos)
    slices = sorted(headers, key=lambda h: float(np.dot(np.array(h.ImagePositionPatient, dtype=float), normal)))
    dr, dc = (float(x) for x in headers[0].PixelSpacing)  # between rows, between columns
    out = []
    for i, j, k in ijk:
        ipp = np.array(slices[k].ImagePositionPatient, dtype=float)
        lps = ipp + i * dc * row_cos + j * dr * col_cos  # PS3.3 C.7.6.2.1.1
        out.append(lps * FLIP)
    return np.array(out)


def test_oblique_series_geometry_matches_hand_computation(tmp_path: Path) -> None:
    truth = write_series(tmp_path / "s", slope=2.0, intercept=-1000.0)
    volume, affine, meta = read_dicom_series(tmp_path / "s")
    assert volume.dtype == np.float32 and volume.shape == (16, 12, 6)
    rng = np.random.default_rng(1)
    ijk = np.column_stack([rng.integers(0, n, 20) for n in volume.shape])
    world = (affine @ np.column_stack([ijk, np.ones(len(ijk))]).T).T[:, :3]
    np.testing.assert_allclose(world, _hand_world_ras(tmp_path / "s", ijk), atol=1e-4)
    # files are shuffled and InstanceNumbers scrambled: values must follow the slice positions anyway
    np.testing.assert_array_equal(volume, truth.values.astype(np.float32))
    assert meta["SliceSpacing"] == pytest.approx(2.5, abs=1e-4)  # from positions, not SliceThickness (4.0)
    assert meta["VoxelSpacing"] == pytest.approx([0.7, 0.8, 2.5], abs=1e-4)
    assert meta["RescaleApplied"] is True


def test_geometry_and_values_match_simpleitk(tmp_path: Path) -> None:
    sitk = pytest.importorskip("SimpleITK")
    write_series(tmp_path / "s", intercept=-1024.0)
    volume, affine, _ = read_dicom_series(tmp_path / "s")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(tmp_path / "s"), "", False, True))
    image = reader.Execute()
    direction = np.array(image.GetDirection()).reshape(3, 3)
    lps = np.eye(4)
    lps[:3, :3] = direction * np.array(image.GetSpacing())
    lps[:3, 3] = image.GetOrigin()
    np.testing.assert_allclose(affine, LPS_TO_RAS @ lps, atol=1e-5)
    np.testing.assert_array_equal(volume, sitk.GetArrayFromImage(image).transpose(2, 1, 0).astype(np.float32))


@pytest.mark.parametrize("per_frame_measures", [False, True])
@pytest.mark.parametrize("modality", ["CT", "MR"])
def test_enhanced_multiframe_equals_single_frame_series(tmp_path: Path, modality: str, per_frame_measures: bool) -> None:
    single = write_series(tmp_path / "single", modality=modality, seed=3)
    multi = write_enhanced(tmp_path / "multi" / "volume.dcm", modality=modality, seed=3, per_frame_measures=per_frame_measures)
    vol_s, aff_s, _ = read_dicom_series(tmp_path / "single")
    vol_m, aff_m, meta = read_dicom_series(multi.files[0])
    np.testing.assert_allclose(aff_m, aff_s, atol=1e-9)
    np.testing.assert_array_equal(vol_m, multi.values.astype(np.float32))
    assert meta["MultiFrame"] is True and meta["Modality"] == modality
    if modality == "CT":  # same stored values and rescale: the two encodings give one volume
        np.testing.assert_array_equal(vol_m, vol_s)
        assert meta["KVP"] == 100.0  # read from CTXRayDetailsSequence in the functional groups
    else:
        np.testing.assert_array_equal(vol_m, single.values.astype(np.float32) + 1024.0)


def test_file_list_source_and_non_dicom_files(tmp_path: Path) -> None:
    truth = write_series(tmp_path / "s")
    from_list = read_dicom_series([str(p) for p in reversed(truth.files)])  # order of the list does not matter
    np.testing.assert_array_equal(from_list[0], read_dicom_series(tmp_path / "s")[0])  # README.txt skipped in the folder
    with pytest.raises(DataValidationError, match="is not a DICOM file"):
        read_dicom_series([*truth.files, tmp_path / "s" / "README.txt"])
    with pytest.raises(DataValidationError, match="does not exist"):
        read_dicom_series(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataValidationError, match="no DICOM image files"):
        read_dicom_series(tmp_path / "empty")


def test_real_single_slice_ct() -> None:
    path = get_testdata_file("CT_small.dcm")
    ds = pydicom.dcmread(path)
    volume, affine, meta = read_dicom_series(path)
    np.testing.assert_array_equal(volume[:, :, 0], apply_modality_lut(ds.pixel_array, ds).T.astype(np.float32))
    np.testing.assert_allclose(affine[:3, 3], np.array(ds.ImagePositionPatient, dtype=float) * FLIP)
    # one slice: the slice spacing comes from SpacingBetweenSlices
    assert meta["SliceSpacing"] == 5.0 and affine[2, 2] == pytest.approx(5.0)


def test_single_slice_without_spacing_falls_back_to_1mm(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    truth = write_series(tmp_path / "s", n_slices=1, orientation=AXIAL)
    ds = pydicom.dcmread(truth.files[0])
    del ds.SliceThickness
    ds.save_as(truth.files[0], enforce_file_format=True)
    with caplog.at_level(logging.WARNING, logger="hccomics"):
        _, affine, meta = read_dicom_series(tmp_path / "s")
    assert meta["SliceSpacing"] == 1.0 and affine[2, 2] == 1.0
    assert "using 1.0 mm" in caplog.text


def test_refuses_several_series_and_lists_them_without_identifiers(tmp_path: Path) -> None:
    ct = write_series(tmp_path / "study" / "a", modality="CT", seed=1)
    mr = write_series(tmp_path / "study" / "b", modality="MR", n_slices=4, seed=2)
    with pytest.raises(DataValidationError) as err:
        read_dicom_series(tmp_path / "study")
    msg = str(err.value)
    assert "holds 2 DICOM series" in msg and "series_uid=" in msg
    assert "CT, 6 file(s)" in msg and "MR, 4 file(s)" in msg
    for secret in (ct.series_uid, mr.series_uid, PHI["SeriesDescription"], PHI["PatientName"], PHI["PatientID"]):
        assert secret not in msg
    keys = list_dicom_series(tmp_path / "study")
    assert sorted(keys["modality"]) == ["CT", "MR"] and all(k in msg for k in keys["series"])
    # either the UID or the key shown selects a series
    by_uid = read_dicom_series(tmp_path / "study", series_uid=mr.series_uid)[0]
    key = keys.loc[keys["modality"] == "MR", "series"].item()
    np.testing.assert_array_equal(read_dicom_series(tmp_path / "study", series_uid=key)[0], by_uid)
    assert by_uid.shape[2] == 4


def test_refuses_mixed_modality(tmp_path: Path) -> None:
    write_mixed_series(tmp_path / "s")
    with pytest.raises(DataValidationError, match=r"mixed Modality within one series: CT \(5 file\(s\)\), MR \(1 file\(s\)\)"):
        read_dicom_series(tmp_path / "s")


def test_refuses_inconsistent_spacing_naming_the_gap(tmp_path: Path) -> None:
    write_inconsistent_spacing(tmp_path / "s")
    with pytest.raises(DataValidationError) as err:
        read_dicom_series(tmp_path / "s")
    msg = str(err.value)
    assert "slice spacing is not uniform" in msg
    assert "gap between slices 2 and 3" in msg and "is 5.000 mm" in msg and "median gap is 2.500 mm" in msg


def test_refuses_duplicate_positions(tmp_path: Path) -> None:
    truth = write_series(tmp_path / "s", orientation=AXIAL)
    ds = pydicom.dcmread(truth.files[1])
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.save_as(tmp_path / "s" / "copy.dcm", enforce_file_format=True)
    with pytest.raises(DataValidationError, match="1 slice position\\(s\\) occur more than once"):
        read_dicom_series(tmp_path / "s")


@pytest.mark.parametrize(("attribute", "value", "expected"), [
    ("ImageOrientationPatient", ["1", "0", "0", "0", "0", "-1"], "ImageOrientationPatient differs"),
    ("Rows", 10, "differ in Rows x Columns"),
    ("ImagePositionPatient", None, "ImagePositionPatient in 1 frame"),
    ("PixelSpacing", None, "PixelSpacing in 1 frame"),
])
def test_refuses_inconsistent_or_missing_geometry(tmp_path: Path, attribute: str, value: object, expected: str) -> None:
    truth = write_series(tmp_path / "s")
    ds = pydicom.dcmread(truth.files[2])
    if value is None:
        delattr(ds, attribute)
    else:
        setattr(ds, attribute, value)
        if attribute == "Rows":
            ds.PixelData = ds.PixelData[: 10 * ds.Columns * 2]
    ds.save_as(truth.files[2], enforce_file_format=True)
    with pytest.raises(DataValidationError, match=expected):
        read_dicom_series(tmp_path / "s")


def test_compressed_pixel_data_decoded_or_refused_with_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    jp2k = get_testdata_file("MR_small_jp2klossless.dcm")
    # this venv decodes JPEG 2000 (pillow); lossless, so it equals the uncompressed file
    np.testing.assert_array_equal(read_dicom_series(jp2k)[0], read_dicom_series(get_testdata_file("MR_small.dcm"))[0])
    decoder = pydicom.pixels.get_decoder(pydicom.uid.JPEG2000Lossless)
    monkeypatch.setattr(decoder, "_available", {})  # as on a machine without any JPEG 2000 plugin
    with pytest.raises(DataValidationError) as err:
        read_dicom_series(jp2k)
    msg = str(err.value)
    assert "JPEG 2000" in msg and "pip install pylibjpeg pylibjpeg-openjpeg" in msg and "python-gdcm" in msg


def test_dicom_to_nifti_writes_volume_and_whitelisted_sidecar(tmp_path: Path) -> None:
    truth = write_series(tmp_path / "s")
    out = dicom_to_nifti(tmp_path / "s", tmp_path / "out" / "P007_ct.nii.gz", patient_id="P007")
    _, affine, _ = read_dicom_series(tmp_path / "s")
    img = nib.load(out)
    np.testing.assert_array_equal(np.asanyarray(img.dataobj), truth.values.astype(np.float32))
    hdr = img.header
    np.testing.assert_allclose(hdr.get_qform(), affine, atol=1e-4)
    np.testing.assert_allclose(hdr.get_sform(), affine, atol=1e-4)
    assert int(hdr["qform_code"]) == 1 and int(hdr["sform_code"]) == 1
    assert hdr.get_xyzt_units()[0] == "mm"
    assert hdr["aux_file"].item() == b"" and hdr["descrip"].item() == b"hccomics"
    side = json.loads(sidecar_path(out).read_text())
    assert side["patient_id"] == "P007" and side["deidentification"].startswith("DICOM PS3.15 basic profile")
    geometry = {"Shape", "VoxelSpacing", "SliceSpacing", "NumberOfSlices", "RescaleApplied", "MultiFrame", "TransferSyntaxUID"}
    assert set(side) <= set(TECHNICAL_WHITELIST) | geometry | {"patient_id", "deidentification", "Units"}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["P007_ct.json", "P007_ct.nii.gz"]  # no temporary left


def test_refused_conversion_writes_nothing(tmp_path: Path) -> None:
    write_inconsistent_spacing(tmp_path / "s")
    (tmp_path / "out").mkdir()
    with pytest.raises(DataValidationError):
        dicom_to_nifti(tmp_path / "s", tmp_path / "out" / "P1.nii.gz", patient_id="P1")
    assert list((tmp_path / "out").iterdir()) == []


def test_patient_id_must_be_a_pseudonym(tmp_path: Path) -> None:
    write_series(tmp_path / "s", patient_id="HCC_001")
    for bad in ("", "has space", "../up"):
        with pytest.raises(DataValidationError, match="pseudonym"):
            dicom_to_nifti(tmp_path / "s", tmp_path / "x.nii.gz", patient_id=bad)
    with pytest.raises(DataValidationError, match="equals the PatientID"):
        dicom_to_nifti(tmp_path / "s", tmp_path / "x.nii.gz", patient_id="HCC_001")
    with pytest.raises(DataValidationError, match="PatientName"):
        dicom_to_nifti(tmp_path / "s", tmp_path / "x.nii.gz", patient_id="Quxleywhistle")
    assert dicom_to_nifti(tmp_path / "s", tmp_path / "x.nii.gz", patient_id="HCC_001", allow_dicom_patient_id=True).is_file()


def test_cached_nifti_converts_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HCCOMICS_CACHE", str(tmp_path / "cache"))
    write_series(tmp_path / "s")
    first = cached_nifti(tmp_path / "s", patient_id="P1")
    assert first.parent == tmp_path / "cache" / "nifti" and len(first.name) == len("0" * 64 + ".nii.gz")
    stamp = first.stat().st_mtime_ns
    assert cached_nifti(tmp_path / "s", patient_id="P1") == first and first.stat().st_mtime_ns == stamp
    assert json.loads(sidecar_path(cached_nifti(tmp_path / "s", patient_id="P2")).read_text())["patient_id"] == "P2"
    shutil.rmtree(tmp_path / "s")  # an edited folder is a different series: converted again
    write_series(tmp_path / "s", n_slices=3)
    assert cached_nifti(tmp_path / "s", patient_id="P1") != first
