"""`validate` rejects broken image series, one test each, with a message naming the file."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import yaml

from hccomics.cli import main
from hccomics.io import sha256sum, validate_manifest


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): sha256sum(p) for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def image_cohort(smoke_manifest: Path, tmp_path: Path) -> Callable[..., tuple[Path, dict]]:
    """Copy the smoke cohort; ``edit(man, root)`` changes files or entries; every checksum is refreshed."""

    def make(edit: Callable[[dict, Path], None]) -> tuple[Path, dict]:
        dst = tmp_path / f"cohort{len(list(tmp_path.glob('cohort*')))}"
        shutil.copytree(smoke_manifest.parent, dst)
        man = yaml.safe_load((dst / "manifest.yaml").read_text())
        edit(man, dst)
        for s in man["images"]:
            for ref in [s, *s["masks"]]:
                if (dst / ref["path"]).is_file():
                    ref["sha256"] = sha256sum(dst / ref["path"])
        (dst / "manifest.yaml").write_text(yaml.safe_dump(man, sort_keys=False))
        return dst / "manifest.yaml", man

    return make


def _reference_series(man: dict) -> dict:
    return next(s for s in man["images"] if s["phase"] == "portal_venous")


def _assert_rejected(manifest: Path, needle: str, fragment: str, capsys: pytest.CaptureFixture) -> None:
    before = _snapshot(manifest.parent)
    report = validate_manifest(manifest)
    hits = [e for e in report.errors if needle in e]
    assert hits, report.errors
    assert fragment in hits[0], hits[0]
    assert main(["validate", str(manifest)]) == 1
    captured = capsys.readouterr()
    assert needle in captured.out + captured.err
    assert _snapshot(manifest.parent) == before  # validation writes nothing beside the data


def test_truncated_nifti_is_rejected(image_cohort, capsys) -> None:
    def edit(man: dict, root: Path) -> None:
        path = root / man["images"][0]["path"]
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        assert nib.load(path).shape  # the header still loads: only reading the voxels fails

    manifest, man = image_cohort(edit)
    _assert_rejected(manifest, man["images"][0]["path"], "truncated or corrupt", capsys)


def test_mask_of_another_shape_is_rejected(image_cohort, capsys) -> None:
    def edit(man: dict, root: Path) -> None:
        mask = root / _reference_series(man)["masks"][0]["path"]
        img = nib.load(mask)
        nib.save(nib.Nifti1Image(np.zeros((10, 10, 4), np.uint8), img.affine), mask)

    manifest, man = image_cohort(edit)
    _assert_rejected(manifest, _reference_series(man)["masks"][0]["path"], "not on the grid", capsys)


def test_mask_with_another_affine_is_rejected(image_cohort, capsys) -> None:
    def edit(man: dict, root: Path) -> None:
        mask = root / _reference_series(man)["masks"][1]["path"]
        img = nib.load(mask)
        shifted = img.affine.copy()
        shifted[0, 3] += 5.0
        nib.save(nib.Nifti1Image(np.asanyarray(img.dataobj), shifted), mask)

    manifest, man = image_cohort(edit)
    _assert_rejected(manifest, _reference_series(man)["masks"][1]["path"], "affine differs", capsys)


def test_nan_voxels_are_rejected(image_cohort, capsys) -> None:
    def edit(man: dict, root: Path) -> None:
        path = root / man["images"][1]["path"]
        img = nib.load(path)
        data = np.asanyarray(img.dataobj).astype(np.float32)
        data[0, 0, :3] = np.nan
        nib.save(nib.Nifti1Image(data, img.affine), path)

    manifest, man = image_cohort(edit)
    _assert_rejected(manifest, man["images"][1]["path"], "3 NaN voxel(s)", capsys)


def test_missing_declared_phase_is_rejected(image_cohort, capsys) -> None:
    dropped: dict = {}

    def edit(man: dict, root: Path) -> None:
        i = next(i for i, s in enumerate(man["images"]) if s["phase"] == "delayed")
        dropped.update(man["images"].pop(i))

    manifest, _ = image_cohort(edit)
    _assert_rejected(manifest, f"patient {dropped['patient_id']}", "'delayed' declared in imaging.phases.CT", capsys)
    assert str(manifest) in validate_manifest(manifest).errors[0]  # the message names the manifest


def test_a_patient_without_mri_is_accepted(smoke_manifest: Path) -> None:
    man = yaml.safe_load(smoke_manifest.read_text())
    ct = {s["patient_id"] for s in man["images"] if s["modality"] == "CT"}
    mri = {s["patient_id"] for s in man["images"] if s["modality"] == "MRI"}
    assert mri < ct or mri == ct
    assert validate_manifest(smoke_manifest).ok


def test_checked_series_are_remembered_by_content(smoke_manifest: Path, tmp_path: Path, monkeypatch) -> None:
    import hccomics.io.image_checks as ic

    monkeypatch.setenv("HCCOMICS_CACHE", str(tmp_path / "cache"))
    calls = []
    real = ic._check_volume
    monkeypatch.setattr(ic, "_check_volume", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    assert validate_manifest(smoke_manifest).ok
    first = len(calls)
    assert first > 0
    assert validate_manifest(smoke_manifest).ok
    assert len(calls) == first  # nothing decoded twice
