"""Process-wide settings: compute device, seeding and the cache folder.

``seed_all`` is meant for the command line and notebooks only; library
functions take a ``seed`` and build their own generator.
"""

from __future__ import annotations

import importlib.util
import os
import random
from pathlib import Path
from typing import Literal

from hccomics._options import check_option

__all__ = ["PROFILES", "Profile", "Device", "resolve_device", "seed_all", "cache_dir"]

Profile = Literal["smoke", "demo", "full"]
PROFILES: tuple[str, ...] = ("smoke", "demo", "full")
Device = Literal["auto", "cpu", "cuda", "mps"]
CACHE_ENV = "HCCOMICS_CACHE"


def resolve_device(device: str = "auto") -> str:
    """Return the torch device string to use.

    ``"auto"`` picks CUDA when available, then Apple MPS, then the CPU; an
    explicit ``"cuda:1"`` style index is passed through after checking that
    CUDA exists.

    Examples
    --------
    >>> resolve_device("cpu")
    'cpu'
    """
    base = device.split(":", 1)[0] if isinstance(device, str) else device
    check_option("device", base, ("auto", "cpu", "cuda", "mps"))
    if base == "cpu":
        return "cpu"
    if importlib.util.find_spec("torch") is None:
        if base == "auto":
            return "cpu"
        raise _unavailable(device)
    import torch

    cuda = torch.cuda.is_available()
    mps = bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()
    if base == "auto":
        return "cuda" if cuda else "mps" if mps else "cpu"
    if base == "cuda" and not cuda:
        raise _unavailable(device)
    if base == "mps" and not mps:
        raise _unavailable(device)
    return device


def _unavailable(device: str) -> Exception:
    from hccomics.errors import OptionError

    return OptionError(
        f"device={device!r} was requested but is not available on this machine; "
        "use device='auto' to fall back to the CPU, or install a torch build for that device (see README)."
    )


def seed_all(seed: int) -> None:
    """Seed python, numpy, torch and MONAI's global generators (CLI and notebooks only)."""
    random.seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    import numpy as np

    np.random.seed(seed)  # noqa: NPY002 - global seeding is this function's purpose
    if importlib.util.find_spec("torch") is not None:
        import torch

        torch.manual_seed(seed)
    if importlib.util.find_spec("monai") is not None:
        from monai.utils import set_determinism

        set_determinism(seed=seed)


def cache_dir() -> Path:
    """Folder for generated data (demo cohorts, weights); ``$HCCOMICS_CACHE`` overrides it.

    Examples
    --------
    >>> import os
    >>> before = os.environ.get("HCCOMICS_CACHE")
    >>> os.environ["HCCOMICS_CACHE"] = "/tmp/hc-cache"
    >>> str(cache_dir())
    '/tmp/hc-cache'
    >>> _ = os.environ.pop("HCCOMICS_CACHE") if before is None else os.environ.update(HCCOMICS_CACHE=before)
    """
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "hccomics"
