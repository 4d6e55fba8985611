"""Packaging: lazy import, environment.yml in step with pyproject, notebooks, NOTICE, CLI help."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_import_is_lazy() -> None:
    code = "import sys, hccomics; print(json.dumps(sorted(m for m in ('pandas','torch','anndata','mudata','plotly','papermill') if m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", "import json;" + code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_subpackages_resolve_on_access() -> None:
    import hccomics as hc

    assert hc.datasets.gene_set("WP4172").size == 345
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        hc.nonsense  # noqa: B018


def _requirement_set(specs: list[str]) -> set[str]:
    return {re.sub(r"\s+", "", s) for s in specs}


def test_environment_yml_matches_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    expected = set(project["dependencies"]) | set(extras["omics"]) | set(extras["survival"]) | set(extras["imaging"]) | set(extras["graph"]) | set(extras["test"])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    listed = [p for p in pip if not p.startswith("-e")]
    assert _requirement_set(listed) == _requirement_set(sorted(expected))
    assert "-e ." in pip


def test_security_floors() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = project["dependencies"] + project["optional-dependencies"]["imaging"]
    assert "torch>=2.10" in specs and "monai>=1.6" in specs and "pydicom>=3.0.2" in specs


def test_notebooks_are_clean_and_parameterised() -> None:
    notebooks = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert notebooks, "the suite has notebooks"
    for path in notebooks:
        nb = json.loads(path.read_text())
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert nb["cells"][0]["cell_type"] == "markdown", path.name
        assert "parameters" in code[0].get("metadata", {}).get("tags", []), f"{path.name}: first code cell must be tagged 'parameters'"
        params = "".join(code[0]["source"])
        for knob in ("manifest", "run_dir", "seed", "profile", "device"):
            assert re.search(rf"^{knob}\s*=", params, re.M), f"{path.name}: parameters cell lacks {knob}"
        for cell in code:
            assert not cell.get("outputs") and cell.get("execution_count") is None, f"{path.name} carries outputs"


def test_notice_names_every_vendored_file() -> None:
    notice = (ROOT / "NOTICE").read_text()
    vendored = [p for p in (ROOT / "hccomics").rglob("data/*") if p.suffix in {".gmt", ".csv", ".tsv", ".json"}]
    assert vendored
    for p in vendored:
        assert p.name in notice, f"NOTICE does not name {p.name}"


def test_vendored_gene_sets_match_provenance() -> None:
    from hccomics.io import sha256sum

    prov = (ROOT / "hccomics" / "datasets" / "data" / "PROVENANCE.md").read_text()
    for gmt in (ROOT / "hccomics" / "datasets" / "data").glob("*.gmt"):
        assert sha256sum(gmt) in prov, gmt.name


def test_cli_help_lists_commands() -> None:
    out = subprocess.run([sys.executable, "-m", "hccomics", "--help"], capture_output=True, text=True, check=True).stdout
    for command in ("validate", "run", "demo", "report"):
        assert re.search(rf"^\s+{command}\s", out, re.M), f"{command} missing from --help:\n{out}"
