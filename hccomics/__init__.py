"""hccomics: multimodal hepatocellular carcinoma analysis (omics, imaging, pathology, survival).

Subpackages load on first use so that ``import hccomics as hc`` stays fast::

    import hccomics as hc
    hc.io.load_cohort("data_manifests/my_cohort.yaml")
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_SUBPACKAGES = (
    "errors", "settings", "io", "datasets", "pipeline", "pl",
    "omics", "dnb", "imaging", "pathology", "graph", "survival",
)

__all__ = ["__version__", *_SUBPACKAGES]


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        module = importlib.import_module(f"hccomics.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'hccomics' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
