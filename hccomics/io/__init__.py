"""Manifests, validation, readers and run folders."""

from typing import Any

from hccomics.io.files import atomic_path, atomic_write_text, sha256sum
from hccomics.io.manifest import Manifest, read_manifest
from hccomics.io.nifti import read_nifti, save_nifti
from hccomics.io.previews import series_previews, tile_previews
from hccomics.io.readers import image_table, load_cohort, load_progression, read_clinical
from hccomics.io.rundir import RunDir
from hccomics.io.summary import cohort_summary, layer_frame
from hccomics.io.validate import ValidationReport, validate_manifest

__all__ = [
    "Manifest", "read_manifest", "ValidationReport", "validate_manifest", "load_cohort", "load_progression",
    "read_clinical", "image_table", "cohort_summary", "layer_frame", "RunDir", "sha256sum", "atomic_path", "atomic_write_text",
    "read_nifti", "save_nifti", "series_previews", "tile_previews", "dicom_to_nifti", "read_dicom_series", "cached_nifti",
]

# DICOM ingest pulls in pydicom: loaded on first use, not with hccomics.io
_DICOM = ("dicom_to_nifti", "read_dicom_series", "cached_nifti")


def __getattr__(name: str) -> Any:
    if name in _DICOM:
        from hccomics.io import dicom

        return getattr(dicom, name)
    raise AttributeError(f"module 'hccomics.io' has no attribute {name!r}")
