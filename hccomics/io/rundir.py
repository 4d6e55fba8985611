"""The run folder: how notebooks hand results to each other.

Layout: ``RUN_DIR/NN_step/{tables,figures,objects}/name.ext``, ``RUN_DIR/plotly.min.js``
shared by every figure, ``RUN_DIR/run.json`` and ``RUN_DIR/report.html``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from hccomics.errors import RunDirError
from hccomics.io.files import atomic_path, atomic_write_text

__all__ = ["RunDir", "PLOTLY_JS"]

PLOTLY_JS = "plotly.min.js"
_SUFFIXES = {
    ".csv": "tables", ".h5ad": "objects", ".h5mu": "objects", ".npy": "objects",
    ".json": "objects", ".pt": "objects", ".html": "figures",
}


class RunDir:
    """A run folder with typed, atomic ``save`` / ``load`` per step.

    Parameters
    ----------
    path
        The run folder; created on first write.

    Examples
    --------
    >>> import tempfile, pandas as pd
    >>> run = RunDir(tempfile.mkdtemp())
    >>> _ = run.save("01_differential_expression", "results", pd.DataFrame({"lfc": [1.0]}, index=["IL6"]))
    >>> run.load("01_differential_expression", "results")
         lfc
    IL6  1.0
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def step_dir(self, step: str) -> Path:
        """Return (and create) ``RUN_DIR/step``."""
        d = self.path / step
        d.mkdir(parents=True, exist_ok=True)
        return d

    def plotly_js(self) -> Path:
        """Write the shared offline ``plotly.min.js`` once and return its path."""
        target = self.path / PLOTLY_JS
        if not target.exists():
            from plotly.offline import get_plotlyjs

            self.path.mkdir(parents=True, exist_ok=True)
            atomic_write_text(target, get_plotlyjs())
        return target

    def save(self, step: str, name: str, obj: Any) -> Path:
        """Write ``obj`` under ``step`` atomically and return the file path.

        Supported: ``pandas.DataFrame`` (CSV in ``tables/``), ``AnnData`` (``.h5ad``),
        ``MuData`` (``.h5mu``), ``numpy.ndarray`` (``.npy``), a mapping of torch tensors
        such as a model's ``state_dict`` (``.pt``), a JSON-serialisable ``dict``
        (``.json``) and a plotly ``Figure`` (``figures/NAME.html`` using the shared plotly.js).
        """
        if "/" in name or name.startswith("."):
            raise RunDirError(f"name {name!r} must be a plain file stem (no '/' or leading '.')")
        kind = type(obj).__module__.split(".")[0] + "." + type(obj).__name__
        if kind == "pandas.DataFrame":
            target = self._target(step, name, ".csv")
            with atomic_path(target) as tmp:
                obj.to_csv(tmp)
        elif kind in ("anndata.AnnData", "mudata.MuData"):
            suffix = ".h5ad" if kind == "anndata.AnnData" else ".h5mu"
            target = self._target(step, name, suffix)
            with atomic_path(target) as tmp:
                obj.write(tmp) if suffix == ".h5mu" else obj.write_h5ad(tmp)
        elif isinstance(obj, np.ndarray):
            target = self._target(step, name, ".npy")
            with atomic_path(target) as tmp, open(tmp, "wb") as fh:
                np.save(fh, obj, allow_pickle=False)
        elif kind == "plotly.Figure":
            target = self._target(step, name, ".html")
            rel = Path("..", "..", PLOTLY_JS).as_posix()
            self.plotly_js()
            with atomic_path(target) as tmp:
                obj.write_html(tmp, include_plotlyjs=rel, full_html=True, default_height="480px")
        elif isinstance(obj, Mapping) and obj and all(type(v).__module__.startswith("torch") for v in obj.values()):
            import torch

            target = self._target(step, name, ".pt")
            with atomic_path(target) as tmp:
                torch.save(dict(obj), tmp)
        elif isinstance(obj, dict):
            target = self._target(step, name, ".json")
            try:
                text = json.dumps(obj, indent=2, default=_json_default)
            except TypeError as exc:
                raise RunDirError(f"cannot save {name!r} as JSON: {exc}") from None
            atomic_write_text(target, text)
        else:
            raise RunDirError(
                f"cannot save an object of type {type(obj).__name__}; expected a DataFrame, AnnData, MuData, "
                "ndarray, torch state dict, JSON-serialisable dict or plotly Figure"
            )
        return target

    def _target(self, step: str, name: str, suffix: str) -> Path:
        return self.step_dir(step) / _SUFFIXES[suffix] / f"{name}{suffix}"

    def find(self, step: str, name: str) -> Path:
        """Return the file saved as ``name`` under ``step``."""
        hits = [p for p in (self.path / step).glob(f"*/{name}.*") if p.suffix in _SUFFIXES and not p.name.startswith(".")]
        if not hits:
            raise RunDirError(
                f"{self.path / step} holds no result named {name!r}; run the notebook that writes it first "
                f"(found: {sorted(p.name for p in (self.path / step).glob('*/*'))[:10]})"
            )
        if len(hits) > 1:
            raise RunDirError(f"{name!r} under {step} is ambiguous: {sorted(map(str, hits))}")
        return hits[0]

    def load(self, step: str, name: str) -> Any:
        """Read back what :meth:`save` wrote (torch files with ``weights_only=True``)."""
        path = self.find(step, name)
        if path.suffix == ".csv":
            import pandas as pd

            return pd.read_csv(path, index_col=0)
        if path.suffix == ".h5ad":
            import anndata as ad

            return ad.read_h5ad(path)
        if path.suffix == ".h5mu":
            import mudata as md

            return md.read_h5mu(path)
        if path.suffix == ".npy":
            return np.load(path, allow_pickle=False)
        if path.suffix == ".pt":
            import torch

            return torch.load(path, map_location="cpu", weights_only=True)
        if path.suffix == ".json":
            return json.loads(path.read_text())
        raise RunDirError(f"{path} is a figure; open it in a browser")


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")
