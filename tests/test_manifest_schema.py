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
    assert len(man.file_refs()) == 10  # 3 tables, 2 series + 2 masks, 1 tile, 2 progression files


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


def test_progression_only_manifest_and_protocol_rules(tmp_path: Path) -> None:
    digest = "0" * 64
    prog = {"expression": {"path": "e.csv", "sha256": digest, "kind": "log_expression"},
            "samples": {"path": "s.csv", "sha256": digest}, "stages": ["a", "b"]}
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump({"name": "progression only", "progression": prog}))
    man, _ = read_manifest(path)
    assert man.tables is None and len(man.file_refs()) == 2
    path.write_text(yaml.safe_dump({"name": "empty"}))
    with pytest.raises(ManifestError) as err:
        read_manifest(path)
    assert "needs 'tables'" in str(err.value.problems)
    clinical = {"clinical": {"path": "c.csv", "sha256": digest}}
    bad = {"name": "x", "tables": clinical, "imaging": {"phases": {"CT": ["arterial"]}, "reference_phase": {"CT": "delayed"}}}
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(ManifestError) as err:
        read_manifest(path)
    assert "reference phase 'delayed' of CT" in str(err.value.problems)
