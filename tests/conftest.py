"""Shared fixtures: demo cohorts generated once per session, and a helper to break them on purpose."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import yaml

from hccomics.datasets import make_demo_cohort
from hccomics.io import sha256sum


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    import os

    os.environ.setdefault("HCCOMICS_CACHE", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="session")
def smoke_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_demo_cohort(tmp_path_factory.mktemp("smoke"), profile="smoke", seed=0)


@pytest.fixture(scope="session")
def smoke_registered(smoke_manifest: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, pd.DataFrame]:
    """The smoke cohort's CT and MRI phases registered onto their reference phase (tables of registered paths)."""
    from hccomics import imaging
    from hccomics.io import image_table

    table = image_table(smoke_manifest)
    out = tmp_path_factory.mktemp("registered")
    return {m: imaging.register_cohort(table, modality=m, out_dir=out / m, n_jobs=2)[0] for m in ("CT", "MRI")}


@pytest.fixture(scope="session")
def demo_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_demo_cohort(tmp_path_factory.mktemp("demo"), profile="demo", seed=0)


@pytest.fixture
def broken_cohort(smoke_manifest: Path, tmp_path: Path) -> Callable[..., Path]:
    """Copy the smoke cohort, edit one table, re-hash it in the manifest (unless told not to)."""

    def make(file: str, edit: Callable[[pd.DataFrame], pd.DataFrame], *, rehash: bool = True) -> Path:
        dst = tmp_path / f"cohort{len(list(tmp_path.glob('cohort*')))}"
        shutil.copytree(smoke_manifest.parent, dst)
        path = dst / file
        df = pd.read_csv(path, index_col=0, dtype={"patient_id": str})
        edit(df).to_csv(path)
        if rehash:
            man = yaml.safe_load((dst / "manifest.yaml").read_text())
            for section in (man["tables"], man.get("progression", {})):
                for ref in section.values():
                    if isinstance(ref, dict) and ref.get("path") == file:
                        ref["sha256"] = sha256sum(path)
            (dst / "manifest.yaml").write_text(yaml.safe_dump(man, sort_keys=False))
        return dst / "manifest.yaml"

    return make
