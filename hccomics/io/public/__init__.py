"""Converters from the native layouts of public HCC data sets to a cohort manifest.

Each converter reads files that users download themselves (see ``data_manifests/public/``),
writes tidy files beside a manifest, and returns the manifest's path. Nothing is downloaded.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "convert_tcga_lihc": "hccomics.io.public.tcga_lihc",
    "convert_gse6764": "hccomics.io.public.gse6764",
    "convert_lits": "hccomics.io.public.lits",
    "convert_hcc_tace_seg": "hccomics.io.public.tcia_hcc_tace_seg",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
