"""convert_lits on tiny LiTS and Decathlon (Task03_Liver) folders in their native layouts."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import yaml

from hccomics.errors import DataValidationError, ManifestError
from hccomics.io import image_table, validate_manifest
from hccomics.io.public import convert_lits

SHAPE = (12, 10, 8)
# LiTS headers: negative in-plane axes (radiological), 0.7 mm pixels, 1.5 mm slices
AFFINE = np.array([[-0.703125, 0.0, 0.0, 172.9], [0.0, -0.703125, 0.0, 179.3], [0.0, 0.0, 1.5, -143.0], [0.0, 0.0, 0.0, 1.0]])
BIG = (slice(2, 5), slice(2, 5), slice(2, 5))             # 27 voxels -> lesion 1
SMALL_6 = [(8, 1, 1), (8, 1, 2), (8, 2, 1)]                # 3 face-connected voxels -> lesion 2
CORNER = [(8, 6, 5), (9, 7, 6)]                            # touch at a corner only: one lesion under 26-connectivity -> 3


def _ct(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(-1024, 400, SHAPE).astype(np.int16)


def _labels(*, tumours: bool) -> np.ndarray:
    lab = np.zeros(SHAPE, np.uint8)
    lab[1:11, 1:9, 1:7] = 1
    if tumours:
        lab[BIG] = 2
        for v in SMALL_6 + CORNER:
            lab[v] = 2
    return lab


def _save(data: np.ndarray, affine: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = nib.Nifti1Image(data, affine)
    img.set_qform(affine, 1)
    img.set_sform(affine, 1)
    nib.save(img, path)


def write_lits(root: Path) -> Path:
    """LiTS training data as the challenge ships it: two batches of volume-<n>.nii / segmentation-<n>.nii."""
    for batch, n, tumours, seg_dtype in (("Training Batch 1", 0, True, np.uint8), ("Training Batch 1", 1, False, np.uint8),
                                         ("Training Batch 2", 28, True, np.float32)):
        _save(_ct(n), AFFINE, root / batch / f"volume-{n}.nii")
        _save(_labels(tumours=tumours).astype(seg_dtype), AFFINE, root / batch / f"segmentation-{n}.nii")
    return root


def write_msd(root: Path) -> Path:
    """Task03_Liver as the Decathlon tar unpacks: dataset.json, imagesTr, labelsTr, imagesTs, and '._' resource forks."""
    task = root / "Task03_Liver"
    cases = [0, 3]
    for n in cases:
        _save(_ct(n), AFFINE, task / "imagesTr" / f"liver_{n}.nii.gz")
        _save(_labels(tumours=n == 0), AFFINE, task / "labelsTr" / f"liver_{n}.nii.gz")
        (task / "imagesTr" / f"._liver_{n}.nii.gz").write_bytes(b"\x00\x05\x16\x07Mac OS X        ")
    _save(_ct(132), AFFINE, task / "imagesTs" / "liver_132.nii.gz")
    meta = {
        "name": "Liver", "description": "Liver and tumour segmentation", "reference": "LiTS", "licence": "CC-BY-SA 4.0",
        "relase": "1.0 04/05/2018", "tensorImageSize": "3D", "modality": {"0": "CT"},
        "labels": {"0": "background", "1": "liver", "2": "cancer"}, "numTraining": len(cases), "numTest": 1,
        "training": [{"image": f"./imagesTr/liver_{n}.nii.gz", "label": f"./labelsTr/liver_{n}.nii.gz"} for n in cases],
        "test": ["./imagesTs/liver_132.nii.gz"],
    }
    (task / "dataset.json").write_text(json.dumps(meta, indent=4))
    return root


def _check_masks(series: pd.Series, image_path: Path, *, tumours: bool) -> None:
    expected = _labels(tumours=tumours)
    liver = nib.load(series["mask_liver"])
    lesion = nib.load(series["mask_lesion"])
    np.testing.assert_allclose(liver.affine, nib.load(image_path).affine)
    np.testing.assert_allclose(lesion.affine, AFFINE, atol=1e-4)
    np.testing.assert_array_equal(np.asanyarray(liver.dataobj), (expected >= 1).astype(np.uint8))
    les = np.asanyarray(lesion.dataobj)
    assert les.dtype.kind == "u"
    if not tumours:
        assert les.max() == 0
        return
    assert les.max() == 3
    assert (les[BIG] == 1).all() and (les == 1).sum() == 27
    assert all(les[v] == 2 for v in SMALL_6) and (les == 2).sum() == 3
    assert all(les[v] == 3 for v in CORNER) and (les == 3).sum() == 2


def test_convert_lits_layout(tmp_path: Path) -> None:
    src = write_lits(tmp_path / "LiTS")
    manifest = convert_lits(src, tmp_path / "out")
    assert validate_manifest(manifest).ok
    man = yaml.safe_load(manifest.read_text())
    assert man["imaging"] == {"phases": {"CT": ["portal_venous"]}, "reference_phase": {"CT": "portal_venous"}}
    assert man["tables"]["clinical"]["survival"] == {} and man["tables"]["clinical"]["binary_columns"] == []
    assert pd.read_csv(manifest.parent / "clinical.csv")["patient_id"].tolist() == ["LiTS-0", "LiTS-1", "LiTS-28"]

    table = image_table(manifest).set_index("patient_id")
    assert list(table.index) == ["LiTS-0", "LiTS-1", "LiTS-28"]
    assert (table["modality"] == "CT").all() and (table["phase"] == "portal_venous").all()
    for pid, n, batch, tumours in (("LiTS-0", 0, "Training Batch 1", True), ("LiTS-1", 1, "Training Batch 1", False),
                                   ("LiTS-28", 28, "Training Batch 2", True)):
        original = src / batch / f"volume-{n}.nii"
        assert Path(table.loc[pid, "path"]).read_bytes() == original.read_bytes()  # a byte-for-byte copy
        _check_masks(table.loc[pid], original, tumours=tumours)


def test_convert_msd_layout(tmp_path: Path) -> None:
    src = write_msd(tmp_path / "msd")
    manifest = convert_lits(src, tmp_path / "out")  # the parent of Task03_Liver is accepted too
    assert validate_manifest(manifest).ok
    table = image_table(manifest).set_index("patient_id")
    assert list(table.index) == ["MSD-0", "MSD-3"]  # the '._' forks and the unlabelled imagesTs case are skipped
    assert table.loc["MSD-0", "path"].endswith(".nii.gz")
    _check_masks(table.loc["MSD-0"], src / "Task03_Liver" / "imagesTr" / "liver_0.nii.gz", tumours=True)
    _check_masks(table.loc["MSD-3"], src / "Task03_Liver" / "imagesTr" / "liver_3.nii.gz", tumours=False)


def test_label_map_off_the_image_grid_is_named(tmp_path: Path) -> None:
    src = write_lits(tmp_path / "LiTS")
    shifted = AFFINE.copy()
    shifted[2, 3] += 3.0
    _save(_labels(tumours=True), shifted, src / "Training Batch 1" / "segmentation-0.nii")
    with pytest.raises(DataValidationError, match=r"segmentation-0\.nii and .*volume-0\.nii have different affines"):
        convert_lits(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # checked from the headers before anything is written
    _save(_labels(tumours=True)[:, :, :6], AFFINE, src / "Training Batch 1" / "segmentation-0.nii")
    with pytest.raises(DataValidationError, match=r"segmentation-0\.nii has shape \(12, 10, 6\).*volume-0\.nii"):
        convert_lits(src, tmp_path / "out")
    labels = _labels(tumours=True)
    labels[0, 0, 0] = 3
    _save(labels, AFFINE, src / "Training Batch 1" / "segmentation-0.nii")
    with pytest.raises(DataValidationError, match=r"segmentation-0\.nii holds label values \[0, 1, 2, 3\]"):
        convert_lits(src, tmp_path / "out")


def test_missing_data_says_what_to_download(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ManifestError, match=r"(?s)was not found.*medicaldecathlon\.com.*volume-<n>\.nii"):
        convert_lits(tmp_path / "empty", tmp_path / "out")
    src = write_lits(tmp_path / "LiTS")
    (src / "Training Batch 2" / "segmentation-28.nii").unlink()
    with pytest.raises(ManifestError, match=r"(?s)incomplete.*volume-28\.nii has no segmentation-28\.nii"):
        convert_lits(src, tmp_path / "out")


def test_convert_command_line(tmp_path: Path, capsys) -> None:
    from hccomics.cli import main

    src = write_msd(tmp_path / "src")
    assert main(["convert", "lits", str(src), str(tmp_path / "out")]) == 0
    manifest = Path(capsys.readouterr().out.strip())
    assert manifest == tmp_path / "out" / "manifest.yaml" and manifest.is_file()
    assert main(["convert", "lits", str(tmp_path / "nothing"), str(tmp_path / "out2")]) == 1
    assert "download" in capsys.readouterr().err.lower()
