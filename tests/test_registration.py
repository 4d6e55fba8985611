"""Phase registration against the demo cohort's planted misalignment (truth_imaging.json)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hccomics.errors import DataValidationError
from hccomics.imaging import registration
from hccomics.imaging.registration import QC_COLUMNS, register_cohort, register_phases
from hccomics.io import image_table, read_nifti, save_nifti
from hccomics.pl.registration import registration_overlay, registration_qc

REFERENCE = "portal_venous"


@pytest.fixture(scope="module")
def table(smoke_manifest: Path) -> pd.DataFrame:
    return image_table(smoke_manifest)


@pytest.fixture(scope="module")
def truth(smoke_manifest: Path) -> dict:
    return json.loads((smoke_manifest.parent / "truth_imaging.json").read_text())


def _exam(table: pd.DataFrame, pid: str) -> pd.DataFrame:
    return table[(table["patient_id"] == pid) & (table["modality"] == "CT")].set_index("phase")


@pytest.fixture(scope="module")
def registered(table: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The CT exams of the first two smoke patients, registered with the defaults."""
    out = tmp_path_factory.mktemp("registered")
    results = {}
    for pid in list(dict.fromkeys(table["patient_id"]))[:2]:
        exam = _exam(table, pid)
        results[pid] = register_phases(exam["path"], reference=REFERENCE, out_dir=out / pid,
                                       liver_masks=exam["mask_liver"].dropna())
    return results


def _residual_mm(estimate: np.ndarray, truth: np.ndarray, points: np.ndarray) -> float:
    """Mean |truth @ inv(estimate) @ x - x|: the moving voxel at x shows reference anatomy at truth @ x, and the
    registered image at x shows the moving one at inv(estimate) @ x, hence reference anatomy at
    truth @ inv(estimate) @ x, which should be x."""
    r = truth @ np.linalg.inv(estimate)
    return float(np.linalg.norm(points @ r[:3, :3].T + r[:3, 3] - points, axis=1).mean())


def test_recovers_planted_misalignment(registered: dict, table: pd.DataFrame, truth: dict) -> None:
    residuals = []
    for pid, res in registered.items():
        liver, affine = read_nifti(_exam(table, pid).at[REFERENCE, "mask_liver"])
        points = np.argwhere(liver > 0) @ affine[:3, :3].T + affine[:3, 3]
        assert np.allclose(res.transforms[REFERENCE], np.eye(4))
        for phase, estimate in res.transforms.items():
            if phase == REFERENCE:
                continue
            planted = np.array(truth[pid]["transforms"][f"CT/{phase}"])
            before = _residual_mm(np.eye(4), planted, points)
            assert before == pytest.approx(truth[pid]["mean_displacement_mm"][f"CT/{phase}"], rel=0.1)
            after = _residual_mm(estimate, planted, points)
            # smoke volumes are small and noisy (4-mm slices; liver 10 HU above soft tissue without contrast, noise
            # 15 HU): the cranio-caudal position of a non-contrast phase is only known to about 1 mm
            assert after < 1.5 and after < before / 2, (pid, phase, before, after)
            residuals.append(after)
    assert np.mean(residuals) < 1.0, residuals


def test_qc_table(registered: dict) -> None:
    for res in registered.values():
        qc = res.qc
        assert list(qc.columns) == QC_COLUMNS
        assert set(qc["phase"]) == set(res.images) - {REFERENCE}
        assert (qc["liver_dice_after"] > qc["liver_dice_before"]).all()
        assert (qc["liver_dice_after"] > 0.93).all()
        assert (qc["ncc_after"] > qc["ncc_before"] - 0.05).all()
        assert (qc["iterations"] > 0).all() and (qc["seconds"] > 0).all()


def test_outputs_on_reference_grid(registered: dict, table: pd.DataFrame) -> None:
    pid, res = next(iter(registered.items()))
    _, ref_affine = read_nifti(_exam(table, pid).at[REFERENCE, "path"])
    for phase, path in res.images.items():
        data, affine = read_nifti(path)
        assert data.dtype == np.int16 and np.allclose(affine, ref_affine), phase
    stored = json.loads((path.parent / "transforms.json").read_text())
    assert "M @ x" in stored["convention"]
    assert np.allclose(stored["transforms"]["arterial"], res.transforms["arterial"])


def test_deterministic_and_resumed(registered: dict, table: pd.DataFrame, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    pid, first = next(iter(registered.items()))
    exam = _exam(table, pid)
    kwargs = {"reference": REFERENCE, "liver_masks": exam["mask_liver"].dropna()}
    again = register_phases(exam["path"], out_dir=tmp_path, **kwargs)
    for phase, path in first.images.items():
        assert path.read_bytes() == again.images[phase].read_bytes(), phase
    for name in ("transforms.json", "params.json"):
        assert (first.images[REFERENCE].parent / name).read_bytes() == (tmp_path / name).read_bytes()

    def fail(*args, **kwargs):
        raise AssertionError("recomputed although the folder is up to date")

    monkeypatch.setattr(registration, "_register_phase", fail)
    start = time.perf_counter()
    loaded = register_phases(exam["path"], out_dir=tmp_path, **kwargs)
    assert time.perf_counter() - start < 1.0
    pd.testing.assert_frame_equal(loaded.qc, again.qc)
    assert all(np.array_equal(loaded.transforms[p], again.transforms[p]) for p in again.transforms)
    with pytest.raises(AssertionError, match="recomputed"):  # other parameters are not up to date
        register_phases(exam["path"], out_dir=tmp_path, seed=1, **kwargs)
    with pytest.raises(AssertionError, match="recomputed"):
        register_phases(exam["path"], out_dir=tmp_path, overwrite=True, **kwargs)


def test_bad_inputs(table: pd.DataFrame, tmp_path: Path) -> None:
    pid = table["patient_id"].iloc[0]
    exam = _exam(table, pid)
    images = exam["path"].loc[[REFERENCE, "arterial"]]
    out = tmp_path / "out"
    with pytest.raises(DataValidationError, match="reference phase 'portal_venous' is not among the images"):
        register_phases(images.drop(REFERENCE), reference=REFERENCE, out_dir=out)

    liver, affine = read_nifti(exam.at[REFERENCE, "mask_liver"])
    cropped = save_nifti(liver[:-2], tmp_path / "cropped.nii.gz", affine=affine)
    with pytest.raises(DataValidationError, match="resample the mask onto its image"):
        register_phases(images, reference=REFERENCE, out_dir=out, liver_masks={REFERENCE: cropped})

    data, affine = read_nifti(exam.at["arterial", "path"])
    holed = data.astype(np.float32)
    holed[3, 4, 5] = np.nan
    nan_path = save_nifti(holed, tmp_path / "nan.nii.gz", affine=affine)
    with pytest.raises(DataValidationError, match="1 NaN or infinite voxels"):
        register_phases({REFERENCE: images[REFERENCE], "arterial": nan_path}, reference=REFERENCE, out_dir=out)
    assert not out.exists()  # inputs are checked before anything is written


def test_register_cohort(table: pd.DataFrame, tmp_path: Path) -> None:
    two = table[table["patient_id"].isin(list(dict.fromkeys(table["patient_id"]))[:2])]
    out, qc = register_cohort(two, modality="CT", phases=["arterial"], out_dir=tmp_path, shrink=(2, 1))
    assert list(out.columns[:4]) == ["patient_id", "modality", "phase", "path"]
    assert len(out) == 4 and set(out["phase"]) == {REFERENCE, "arterial"}
    ref_rows = out[out["phase"] == REFERENCE]
    assert ref_rows["mask_lesion"].notna().all() and out.loc[out["phase"] != REFERENCE, "mask_liver"].isna().all()
    assert all(Path(p).parent.parent == tmp_path for p in out["path"])
    assert list(qc.columns) == ["patient_id", *QC_COLUMNS] and len(qc) == 2

    with pytest.raises(DataValidationError, match=r"patient \S+: CT phase 'post_ablation' found 0 times"):
        register_cohort(two, phases=["post_ablation"], out_dir=tmp_path)


def test_figures(registered: dict) -> None:
    qc = pd.concat([res.qc.assign(patient_id=pid) for pid, res in registered.items()], ignore_index=True)
    fig = registration_qc(qc)
    assert [t.type for t in fig.data] == ["box"] * 4
    assert [t.name for t in fig.data] == ["before", "after", "before", "after"]
    assert len(fig.data[0].y) == len(qc)

    rng = np.random.default_rng(0)
    ref = rng.normal(size=(16, 12, 5))
    for style in ("fusion", "checkerboard"):
        fig = registration_overlay(ref, np.roll(ref, 2, axis=0), ref, style=style)
        assert [t.type for t in fig.data] == ["image", "image"]
        assert fig.data[0].z.shape == (12, 16, 3)
    fused = registration_overlay(ref, ref, ref, window=(-2, 2)).data[1].z
    assert np.array_equal(fused[..., 0], fused[..., 1])  # aligned: grey, no colour fringe
    with pytest.raises(DataValidationError, match="one shape"):
        registration_overlay(ref, ref[:-1], ref)
