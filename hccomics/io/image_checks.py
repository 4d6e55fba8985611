"""Checks of the image series a manifest names: readable NIfTI, finite voxels, masks on the image grid, phases.

Decoding every volume costs seconds on a real cohort, so a file whose content (sha256)
has passed once is remembered in the cache folder and not decoded again.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict
from pathlib import Path

import numpy as np

from hccomics.io.files import atomic_write_text
from hccomics.io.manifest import ImageSeries, Manifest
from hccomics.io.nifti import read_nifti

__all__ = ["check_images"]

logger = logging.getLogger(__name__)
_CHECKS_VERSION = 1  # bump when the checks change, so that remembered passes are redone
AFFINE_TOLERANCE_MM = 1e-3


class _PassedCache:
    """Digests of files that passed the voxel checks, kept in ``cache_dir()/validated_images.json``."""

    def __init__(self) -> None:
        from hccomics.settings import cache_dir

        self.path = cache_dir() / "validated_images.json"
        try:
            raw = json.loads(self.path.read_text())
            self.digests: set[str] = set(raw["digests"]) if raw.get("version") == _CHECKS_VERSION else set()
        except (OSError, ValueError, KeyError):
            self.digests = set()
        self.dirty = False

    def add(self, digest: str) -> None:
        self.digests.add(digest)
        self.dirty = True

    def save(self) -> None:
        if self.dirty:
            try:
                atomic_write_text(self.path, json.dumps({"version": _CHECKS_VERSION, "digests": sorted(self.digests)}))
            except OSError as exc:  # a read-only cache only costs time
                logger.debug("could not remember validated images: %s", exc)


def _check_volume(path: Path, *, mask: bool) -> tuple[list[str], tuple | None, np.ndarray | None]:
    from hccomics.errors import DataValidationError

    try:
        data, affine = read_nifti(path)
    except DataValidationError as exc:
        return [str(exc)], None, None
    errors = []
    if data.ndim not in (2, 3) and not (data.ndim == 4 and data.shape[3] == 1):
        errors.append(f"{path}: expected a 2-D or 3-D volume, found shape {data.shape}")
    if data.dtype.kind == "f":
        n_nan = int(np.isnan(data).sum())
        if n_nan:
            errors.append(f"{path}: {n_nan} NaN voxel(s); replace them (e.g. with the background value) before use")
        n_inf = int(np.isinf(data).sum())
        if n_inf:
            errors.append(f"{path}: {n_inf} infinite voxel(s)")
    if mask and not errors:
        values = np.unique(data)
        if (values < 0).any() or not np.allclose(values, np.round(values)):
            errors.append(f"{path}: a mask must hold non-negative integer labels, found values such as {values[:5].tolist()}")
    return errors, data.shape[:3], affine


def _check_series(root: Path, s: ImageSeries, where: str, passed: _PassedCache, *, verified: set[str]) -> list[str]:
    volume = root / s.path
    if s.format == "dicom":
        # a DICOM series is checked by converting it (de-identified) into the cache, as a run would
        from hccomics.errors import DataValidationError
        from hccomics.io.dicom import cached_nifti

        if not volume.exists():
            return []  # reported by the file checks
        try:
            volume = cached_nifti(volume, patient_id=s.patient_id, sha256=s.sha256 if s.sha256 in verified else None)
        except DataValidationError as exc:
            return [f"{where}: {exc}"]
    todo = [(where, volume, False)] + [(f"{where}.masks[{j}]", root / m.path, True) for j, m in enumerate(s.masks)]
    errors: list[str] = []
    grid: tuple | None = None
    for place, path, is_mask in todo:
        if not path.is_file():
            return []  # reported by the file checks
        errs, shape, affine = _check_volume(path, mask=is_mask)
        errors += [f"{place}: {e}" for e in errs]
        if shape is None:
            continue
        if grid is None:
            grid = (shape, affine, path)
        elif shape != grid[0] or not np.allclose(affine, grid[1], atol=AFFINE_TOLERANCE_MM):
            what = f"shape {shape} vs {grid[0]}" if shape != grid[0] else "affine differs (voxel-to-world map)"
            errors.append(f"{place}: mask {path} is not on the grid of its image {grid[2]}: {what}; "
                          "resample the mask onto the image (nearest neighbour) or fix the pairing")
    # only content that was hashed and matched the manifest may be skipped next time
    if not errors and {s.sha256, *(m.sha256 for m in s.masks)} <= verified:
        passed.add(_series_key(s))
    return errors


def _series_key(s: ImageSeries) -> str:
    # a series passes as a whole: the same files paired differently are checked again
    return hashlib.sha256("|".join([s.sha256, *sorted(f"{m.label}:{m.sha256}" for m in s.masks)]).encode()).hexdigest()


def check_images(man: Manifest, root: Path, *, verified: set[str], source: Path | str = "manifest") -> list[str]:
    """Every problem of the manifest's image series, each naming its file.

    Parameters
    ----------
    man, root
        The manifest and the folder its paths are relative to.
    verified
        sha256 digests whose files were hashed and matched the manifest; only those can be
        skipped when they passed before.
    source
        The manifest's path, named by problems that concern no single file (a missing phase).
    """
    passed = _PassedCache()
    errors: list[str] = []
    for i, s in enumerate(man.images):
        digests = {s.sha256, *(m.sha256 for m in s.masks)}
        if digests <= verified and _series_key(s) in passed.digests:
            continue
        errors += _check_series(root, s, f"images[{i}]", passed, verified=verified)
    passed.save()
    errors += [f"{source}: {e}" for e in _check_phases(man)]
    return errors


def _check_phases(man: Manifest) -> list[str]:
    if man.imaging is None:
        return []
    have: dict[tuple[str, str], set[str]] = defaultdict(set)
    for s in man.images:
        have[(s.patient_id, s.modality)].add(s.phase)
    errors = []
    for (pid, modality), phases in sorted(have.items()):
        for phase in man.imaging.phases.get(modality, []):
            if phase not in phases:
                errors.append(f"images: patient {pid} has {modality} series but not the phase '{phase}' declared in "
                              f"imaging.phases.{modality}; add that series or remove the phase from the protocol")
    return errors
