from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hccomics.errors import ManifestError
from hccomics.io import read_manifest
from hccomics.io.manifest import IMAGE_PHASES, Manifest
from hccomics.io.schema import manifest_json_schema

ROOT = Path(__file__).resolve().parents[1]


def test_json_schema_file_is_current() -> None:
    on_disk = (ROOT / "data_manifests" / "manifest.schema.json").read_text()
    assert on_disk == manifest_json_schema(), "regenerate with hccomics.io.schema.manifest_json_schema()"


def test_example_manifest_follows_schema() -> None:
    man, root = read_manifest(ROOT / "data_manifests" / "example_cohort.yaml")
    assert man.tables.expression.gene_id == "ensembl"
    assert [w for w, _ in man.file_refs()][:3] == ["tables.clinical", "tables.expression", "tables.gene_annotation"]
    assert len(man.file_refs()) == 9  # 3 tables, 1 series + 2 masks, 1 tile, 2 progression files


def test_schema_doc_names_every_phase() -> None:
    doc = (ROOT / "data_manifests" / "SCHEMA.md").read_text()
    for phase in IMAGE_PHASES:
        assert f"`{phase}`" in doc


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m["tables"]["clinical"].pop("sha256"), "required key missing: tables.clinical.sha256"),
        (lambda m: m["tables"]["expression"].update(kind="tpm"), "tables.expression.kind"),
        (lambda m: m["tables"]["clinical"].update(sha256="abc"), "tables.clinical.sha256"),
        (lambda m: m.update(extra_section=1), "unknown key 'extra_section'"),
    ],
)
def test_schema_errors(tmp_path: Path, edit, message: str) -> None:
    man = yaml.safe_load((ROOT / "data_manifests" / "example_cohort.yaml").read_text())
    edit(man)
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(man))
    with pytest.raises(ManifestError, match=message.replace("[", r"\[")):
        read_manifest(path)


def test_not_yaml_or_not_mapping(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("tables: [unclosed")
    with pytest.raises(ManifestError, match="not valid YAML"):
        read_manifest(bad)
    bad.write_text("- a list")
    with pytest.raises(ManifestError, match="mapping at the top level"):
        read_manifest(bad)
    with pytest.raises(ManifestError, match="does not exist"):
        read_manifest(tmp_path / "absent.yaml")
    assert Manifest.model_fields["schema_version"].default == 1
