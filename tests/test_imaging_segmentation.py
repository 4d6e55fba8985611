"""Segmentation data checks, inference path, post-processing and the two-stage model on the smoke cohort."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("monai")

from hccomics import imaging
from hccomics.errors import DataValidationError, NotFittedError
from hccomics.io import image_table, read_nifti, save_nifti

SMOKE = {"coarse_spacing": (4.0, 4.0, 8.0), "fine_spacing": (2.0, 2.0, 4.0), "patch_size": (32, 32, 16)}


@pytest.fixture(scope="module")
def items(smoke_manifest: Path) -> list[dict]:
    return imaging.segmentation_items(smoke_manifest)


def _write_case(folder: Path, *, affine: np.ndarray, flip: bool = False, nan: bool = False, empty_liver: bool = False,
                mask_shape: tuple | None = None, mask_affine: np.ndarray | None = None) -> dict:
    """A 4-phase synthetic exam: a liver box holding one bright sphere in the arterial phase."""
    shape = (24, 20, 12)
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"))
    liver = np.zeros(shape, np.uint8)
    liver[4:20, 4:16, 2:10] = 0 if empty_liver else 1
    lesion = (((grid - np.array([9, 9, 6])[:, None, None, None]) ** 2 * np.array([1, 1, 4])[:, None, None, None]).sum(0) <= 9)
    lesion = (lesion & (liver > 0)).astype(np.uint8)
    phases = ["non_contrast", "arterial", "portal_venous", "delayed"]
    paths = []
    for k, ph in enumerate(phases):
        img = np.where(liver > 0, 60.0, -100.0) + (120.0 if ph == "arterial" else 0.0) * lesion
        img = img.astype(np.float32)
        if nan and k == 1:
            img[0, 0, 0] = np.nan
        arr = img[::-1] if flip else img
        paths.append(str(save_nifti(arr, folder / f"{ph}.nii.gz", affine=affine)))
    m_aff = affine if mask_affine is None else mask_affine
    lv = liver[::-1] if flip else liver
    if mask_shape is not None:
        lv = np.zeros(mask_shape, np.uint8)
    le = lesion[::-1] if flip else lesion
    return {"patient_id": folder.name, "phases": phases, "image": paths, "reader_corrected": None,
            "liver": str(save_nifti(lv, folder / "liver.nii.gz", affine=m_aff)),
            "lesion": str(save_nifti(le, folder / "lesion.nii.gz", affine=affine))}


RAS = np.diag([2.0, 2.0, 4.0, 1.0])


def test_items_follow_the_protocol(items: list[dict]) -> None:
    assert len(items) == 6
    assert items[0]["phases"] == ["non_contrast", "arterial", "portal_venous", "delayed"]
    assert all(Path(p).exists() for it in items for p in it["image"])


def test_missing_phase_is_reported(smoke_manifest: Path) -> None:
    table = image_table(smoke_manifest)
    gone = table[~((table["patient_id"] == table["patient_id"].iloc[0]) & (table["phase"] == "arterial"))]
    with pytest.raises(DataValidationError, match=r"phase\(s\) \['arterial'\] missing"):
        imaging.segmentation_items(gone)


def test_mask_with_another_shape_is_rejected(tmp_path: Path) -> None:
    item = _write_case(tmp_path / "P1", affine=RAS, mask_shape=(24, 20, 11))
    with pytest.raises(DataValidationError, match="liver mask grid"):
        imaging.check_items([item])


def test_mask_with_another_affine_is_rejected(tmp_path: Path) -> None:
    shifted = RAS.copy()
    shifted[0, 3] = 1.0
    item = _write_case(tmp_path / "P1", affine=RAS, mask_affine=shifted)
    with pytest.raises(DataValidationError, match="affine differs"):
        imaging.check_items([item])


def test_empty_reference_liver_is_rejected(tmp_path: Path) -> None:
    item = _write_case(tmp_path / "P1", affine=RAS, empty_liver=True)
    with pytest.raises(DataValidationError, match="liver mask is empty"):
        imaging.check_items([item])


def test_nan_voxels_are_named(tmp_path: Path) -> None:
    item = _write_case(tmp_path / "P1", affine=RAS, nan=True)
    tf = imaging.segmentation_transforms(stage="liver", spacing=(2.0, 2.0, 4.0), train=False)
    with pytest.raises(DataValidationError, match=r"NaN or infinite voxels .*\(arterial: 1\)"):
        imaging.predict_volume(item, tf, [_Arterial()], roi_size=None, device=torch.device("cpu"))


class _Arterial(torch.nn.Module):
    """A fixed 'network': lesion logit = arterial minus portal venous intensity (no training needed)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lesion = (x[:, 1:2] - x[:, 2:3]) * 20 - 5
        return torch.cat([torch.zeros_like(lesion), lesion], dim=1)


def test_non_ras_input_comes_back_on_its_own_grid(tmp_path: Path) -> None:
    """The same anatomy stored LPS-flipped along x gives the same (flipped) probabilities on the input grid."""
    ras = _write_case(tmp_path / "ras", affine=RAS)
    flipped_affine = RAS.copy()
    flipped_affine[0, 0], flipped_affine[0, 3] = -2.0, 2.0 * 23
    las = _write_case(tmp_path / "las", affine=flipped_affine, flip=True)
    tf = imaging.segmentation_transforms(stage="lesion", spacing=(2.0, 2.0, 4.0), train=False, crop_key="liver", with_labels=False)
    kw = {"roi_size": (16, 16, 8), "device": torch.device("cpu")}
    p_ras = imaging.predict_volume(ras, tf, [_Arterial()], **kw)
    p_las = imaging.predict_volume(las, tf, [_Arterial()], **kw)
    assert p_ras.shape == (2, 24, 20, 12) == p_las.shape
    np.testing.assert_allclose(p_las[:, ::-1], p_ras, atol=1e-5)
    lesion, _ = read_nifti(ras["lesion"])
    assert ((p_ras[1] > 0.5) == (lesion > 0)).mean() > 0.99


def test_ensemble_averages_softmax() -> None:
    torch.manual_seed(0)
    x = torch.rand(1, 2, 16, 16, 8)
    nets = [torch.nn.Conv3d(2, 3, 1), torch.nn.Conv3d(2, 3, 1)]
    both = imaging.ensemble_probabilities(x, nets, roi_size=None)
    each = [torch.softmax(n(x), 1) for n in nets]
    torch.testing.assert_close(both, (each[0] + each[1]) / 2)


def test_postprocessing_by_hand() -> None:
    prob = np.zeros((20, 20, 10), np.float32)
    prob[2:8, 2:8, 2:6] = 0.9      # 6*6*4 = 144 voxels of 8 mm3 = 1152 mm3, inside the liver
    prob[12:14, 12:14, 2:4] = 0.9  # 8 voxels = 64 mm3: below 100 mm3
    prob[15:19, 2:6, 6:9] = 0.9    # 48 voxels = 384 mm3, outside the liver
    liver = np.zeros(prob.shape, bool)
    liver[0:15, 0:15, :] = True
    out = imaging.postprocess_lesions(prob, liver, spacing=(2.0, 2.0, 2.0), min_lesion_mm3=100.0, liver_margin_mm=2.0)
    assert out.max() == 1
    assert (out == 1).sum() == 144
    unfiltered = imaging.postprocess_lesions(prob, None, spacing=(2.0, 2.0, 2.0), min_lesion_mm3=0.0)
    assert unfiltered.max() == 3 and (unfiltered == 1).sum() == 144 and (unfiltered == 3).sum() == 8


def test_otsu_baseline_finds_a_bright_lesion(tmp_path: Path) -> None:
    item = _write_case(tmp_path / "P1", affine=RAS)
    pred = imaging.otsu_baseline([item], out_dir=tmp_path / "otsu", min_lesion_mm3=10.0)
    metrics, detection = imaging.evaluate_segmentation([item], pred)
    assert metrics.set_index("structure").loc["lesion", "dice"] > 0.95
    assert detection.query("kind == 'reference'")["detected"].all()


def test_predict_before_fit() -> None:
    with pytest.raises(NotFittedError):
        imaging.LesionSegmenter().predict([], out_dir=".")


def test_two_stage_smoke_run(items: list[dict], tmp_path: Path) -> None:
    train, test = items[1:], items[:1]
    seg = imaging.LesionSegmenter(n_folds=2, liver_epochs=3, lesion_epochs=3, val_every=3, progress=False,
                                  work_dir=tmp_path / "models", **SMOKE)
    seg.fit(train)
    assert set(seg.history_["stage"]) == {"liver", "lesion"} and len(seg.history_) == 12
    assert seg.fold_scores_["val_dice"].between(0, 1).all()
    assert sorted(p for fold in seg.folds_ for p in fold) == sorted(it["patient_id"] for it in train)
    # the parameters are named after the model, so other models sharing the work_dir do not overwrite them
    stored = json.loads((tmp_path / "models" / "params_lesion_unet_16-32-64-128.json").read_text())
    assert stored["folds"] == seg.folds_ and stored["architecture"] == "unet" and stored["two_stage"] is True
    pred = seg.predict(test, out_dir=tmp_path / "pred")
    liver, affine = read_nifti(pred.loc[0, "liver_path"])
    ref, ref_affine = read_nifti(test[0]["image"][0])
    assert liver.shape == ref.shape and np.allclose(affine, ref_affine)
    # out of fold: a training patient is segmented by the model of the fold that held it out
    oof = seg.predict_out_of_fold([*train[:2], *test], out_dir=tmp_path / "oof")
    where = {p: str(k) for k, fold in enumerate(seg.folds_) for p in fold}
    assert oof["fold"].tolist() == [where[train[0]["patient_id"]], where[train[1]["patient_id"]], "ensemble"]
    assert oof["patient_id"].tolist() == [it["patient_id"] for it in (*train[:2], *test)]
    # a second fit with the same work_dir reuses the finished checkpoints instead of training again
    again = imaging.LesionSegmenter(n_folds=2, liver_epochs=3, lesion_epochs=3, val_every=3, progress=False,
                                    work_dir=tmp_path / "models", **SMOKE).fit(train)
    pd.testing.assert_frame_equal(again.history_, seg.history_)
    for a, b in zip(again.models_["lesion"], seg.models_["lesion"]):
        assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_reader_agreement_counts_the_edit(tmp_path: Path) -> None:
    cases = []
    for k in range(3):
        item = _write_case(tmp_path / f"P{k}", affine=RAS)
        lesion, _ = read_nifti(item["lesion"])
        corrected = lesion.copy()
        corrected[:, :, 6 + k % 2] = 0  # the reader removes one slice of the lesion
        item["reader_corrected"] = str(save_nifti(corrected, tmp_path / f"P{k}" / "corrected.nii.gz", affine=RAS))
        cases.append((item, int(lesion.sum() - corrected.sum())))
    items = [c for c, _ in cases]
    # the reference mask stands in for the automatic one, so the reader's edit is all that changed
    pred = pd.DataFrame({"patient_id": [it["patient_id"] for it in items], "lesion_path": [it["lesion"] for it in items]})
    per_patient, agreement = imaging.reader_agreement(items, pred)
    assert per_patient["voxels_removed"].tolist() == [n for _, n in cases]
    assert (per_patient["voxels_added"] == 0).all()
    np.testing.assert_allclose(per_patient["automatic_ml"], per_patient["reference_ml"])
    pair = agreement.set_index(["a", "b"]).loc[("automatic_ml", "corrected_ml")]
    assert pair["bias"] > 0  # automatic volumes exceed the corrected ones by the removed slice


def test_postprocessing_keeps_lesions_whole_at_the_liver_edge() -> None:
    # a coarse liver mask cuts a large lesion at the liver's edge: the lesion is kept whole, not clipped to the mask
    prob = np.zeros((30, 30, 10), np.float32)
    prob[4:16, 4:16, 2:8] = 0.9    # 12 * 12 * 6 = 864 voxels, its first 3 rows outside the liver (75 % inside)
    prob[22:30, 22:30, 0:4] = 0.9  # 256 voxels touching the liver along one row: 12.5 % inside
    liver = np.zeros(prob.shape, bool)
    liver[7:23, :, :] = True
    out = imaging.postprocess_lesions(prob, liver, spacing=(1.0, 1.0, 1.0), min_lesion_mm3=10.0, liver_margin_mm=0.5)
    assert out.max() == 1 and (out == 1).sum() == 12 * 12 * 6
    # a stricter rule drops the edge lesion too; a looser one keeps the mostly-outside component
    strict = imaging.postprocess_lesions(prob, liver, spacing=(1.0, 1.0, 1.0), min_lesion_mm3=10.0, liver_margin_mm=0.5,
                                         inside_fraction=0.8)
    assert strict.max() == 0
    loose = imaging.postprocess_lesions(prob, liver, spacing=(1.0, 1.0, 1.0), min_lesion_mm3=10.0, liver_margin_mm=0.5,
                                        inside_fraction=0.1)
    assert loose.max() == 2 and (loose == 2).sum() == 256
    with pytest.raises(DataValidationError, match="inside_fraction"):
        imaging.postprocess_lesions(prob, liver, spacing=(1.0, 1.0, 1.0), inside_fraction=0.0)
