"""What a run records about itself: versions, git state, hashes for resuming."""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

__all__ = ["package_versions", "git_state", "step_hash"]

TRACKED_PACKAGES = (
    "hccomics", "numpy", "pandas", "scipy", "anndata", "mudata", "papermill", "plotly", "torch", "monai",
    "torch_geometric", "scanpy", "pydeseq2", "gseapy", "lifelines", "scikit-survival", "SimpleITK",
)


def package_versions() -> dict[str, str]:
    """Python and the versions of the installed packages that shape results."""
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for name in TRACKED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def git_state(path: str | Path | None = None) -> dict[str, object]:
    """Commit and dirty flag of the checkout holding ``path`` (default: the package's)."""
    where = Path(path) if path else Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10)
        if commit.returncode != 0:
            return {"commit": None, "dirty": None}
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                                capture_output=True, text=True, timeout=10)
        diff = subprocess.run(["git", "diff", "HEAD"], cwd=where, capture_output=True, timeout=30).stdout
        return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip()),
                "diff_sha256": hashlib.sha256(diff).hexdigest() if diff else None}
    except (OSError, subprocess.TimeoutExpired):
        return {"commit": None, "dirty": None}


def step_hash(notebook: Path, parameters: dict, inputs: dict[str, str], versions: dict[str, str], git: dict,
              upstream: list[str] | None = None) -> str:
    """Hash of everything that decides a notebook's result; unchanged hash = skip on resume.

    ``upstream`` holds the hashes of the earlier notebooks, whose outputs this one may read, so
    that a re-run upstream re-runs everything downstream.
    """
    payload = {
        "notebook": hashlib.sha256(notebook.read_bytes()).hexdigest(),
        "parameters": parameters,
        "inputs": inputs,
        "versions": versions,
        "git": git,
        "python": sys.version,
        "upstream": list(upstream or []),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
