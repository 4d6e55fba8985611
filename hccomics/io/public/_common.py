"""Helpers shared by the public data set converters: locating inputs, atomic outputs, the manifest.

Every converter ends the same way: tidy files written atomically into ``out_dir``, a manifest
naming each with its sha256, and a validation of that manifest before it takes its final name,
so that a ``manifest.yaml`` in ``out_dir`` is always one that :func:`hccomics.io.validate_manifest`
accepts.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from hccomics.errors import DataValidationError, ManifestError
from hccomics.io.files import atomic_path, atomic_write_text, sha256sum

__all__ = [
    "DAYS_PER_MONTH",
    "file_ref",
    "find_one",
    "input_dir",
    "listing",
    "missing_input",
    "write_csv",
    "write_manifest",
]

logger = logging.getLogger(__name__)

DAYS_PER_MONTH = 30.4375  # 365.25 / 12
_MAX_LISTED = 5


def listing(items: Iterable[object], *, limit: int = _MAX_LISTED) -> str:
    """Return ``'a, b, c and 4 more'`` for an error message.

    Examples
    --------
    >>> listing(["a", "b", "c"], limit=2)
    'a, b and 1 more'
    """
    items = [str(i) for i in items]
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def missing_input(what: str, expected: Path, *, download: str, layout: str) -> ManifestError:
    """Build the error for an input file that is not where the converter looks for it.

    Parameters
    ----------
    what
        What the file is, e.g. ``"the GDC sample sheet"``.
    expected
        Where it was looked for (a path or glob).
    download
        Where to get it and how.
    layout
        Where to put it, relative to the source folder.
    """
    return ManifestError(
        f"{what} was not found: expected {expected}. Download it from {download}, and place it as {layout} "
        "(see data_manifests/public/ for the full expected layout)"
    )


def input_dir(src: str | Path, *, dataset: str, doc: str) -> Path:
    """Return ``src`` as a folder, or raise a :class:`ManifestError` saying what it should hold."""
    path = Path(src).expanduser()
    if not path.is_dir():
        raise ManifestError(
            f"source folder {path} of {dataset} does not exist or is not a folder; pass the folder that holds the "
            f"downloaded files in their native layout (see data_manifests/public/{doc})"
        )
    return path


def find_one(src: Path, patterns: Iterable[str], *, what: str, download: str, layout: str,
             recursive: bool = True) -> Path:
    """Find exactly one file under ``src`` matching the first pattern that matches anything.

    Raises
    ------
    ManifestError
        When no file matches (saying what to download and where to put it), or when several do.
    """
    patterns = list(patterns)
    for pattern in patterns:
        found = sorted(p for p in (src.rglob(pattern) if recursive else src.glob(pattern))
                       if p.is_file() and not p.name.startswith("._"))
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise ManifestError(
                f"found {len(found)} files for {what} under {src} ({listing(found)}); keep one, or pass its path explicitly"
            )
    raise missing_input(what, src / patterns[0], download=download, layout=layout)


def write_csv(df: pd.DataFrame, path: Path, *, index: bool = True, float_format: str | None = None) -> None:
    """Write a CSV atomically (temporary file beside it, then ``os.replace``)."""
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=index, float_format=float_format)


def file_ref(out_dir: Path, rel: str | Path, **extra: Any) -> dict[str, Any]:
    """Return a manifest file entry ``{'path', 'sha256', **extra}`` for a file under ``out_dir``."""
    rel = Path(rel).as_posix()
    return {"path": rel, "sha256": sha256sum(out_dir / rel), **extra}


def write_manifest(out_dir: Path, manifest: dict[str, Any], *, name: str = "manifest.yaml") -> Path:
    """Write ``manifest`` into ``out_dir``, validate it, and only then give it its final name.

    The manifest is first written under a hidden name in the same folder (its paths are
    relative to that folder), checked with :func:`hccomics.io.validate_manifest`, and renamed
    atomically when it passes; on failure the hidden file is removed and an earlier
    ``manifest.yaml`` is left untouched.

    Raises
    ------
    DataValidationError
        Listing every validation error, when the converted data do not pass validation.
    """
    from hccomics.io.validate import validate_manifest

    target = out_dir / name
    staging = out_dir / f".{name}.check.yaml"
    atomic_write_text(staging, yaml.safe_dump(manifest, sort_keys=False, allow_unicode=True))
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            report = validate_manifest(staging)
        for w in caught:  # coverage notes (e.g. clinical rows without RNA) are facts, not faults
            logger.info("%s", w.message)
        if not report.ok:
            raise DataValidationError(
                f"the converted data in {out_dir} failed validation with {len(report.errors)} error(s); "
                "this is a bug in the converter or an unexpected input format: please report it with the messages below",
                report.errors,
            )
        os.replace(staging, target)
    finally:
        if staging.exists():
            staging.unlink()
    logger.info("wrote %s", target)
    return target
