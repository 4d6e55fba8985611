from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from hccomics.errors import OptionError
from hccomics.settings import cache_dir, resolve_device, seed_all


def test_device_auto_falls_back_to_cpu(monkeypatch) -> None:
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == "cuda"
    assert resolve_device("cuda:1") == "cuda:1"


def test_unavailable_or_unknown_device(monkeypatch) -> None:
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(OptionError, match="not available on this machine"):
        resolve_device("cuda")
    with pytest.raises(OptionError, match="did you mean 'cuda'"):
        resolve_device("cdua")


def test_seed_all_is_reproducible() -> None:
    torch = pytest.importorskip("torch")
    seed_all(7)
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    seed_all(7)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == a


def test_cache_dir_env(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HCCOMICS_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv("HCCOMICS_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert cache_dir() == tmp_path / "x" / "hccomics"
