"""`hccomics validate` rejects each kind of bad input with a clear message and writes nothing."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from hccomics.cli import main
from hccomics.errors import ManifestError, ModalityCoverageWarning
from hccomics.io import validate_manifest


def _snapshot(folder: Path) -> dict[str, tuple[int, float]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def _rejects(manifest: Path, capsys: pytest.CaptureFixture[str], *expected: str) -> str:
    before = _snapshot(manifest.parent)
    cwd_before = set(os.listdir("."))
    code = main(["validate", str(manifest)])
    err = capsys.readouterr().err
    assert code != 0, "validation should fail"
    for text in expected:
        assert text in err, f"{text!r} not in:\n{err}"
    assert _snapshot(manifest.parent) == before, "validate must not write anything"
    assert set(os.listdir(".")) == cwd_before
    return err


def test_valid_demo_cohort_passes(smoke_manifest: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(smoke_manifest)]) == 0
    assert "OK" in capsys.readouterr().out


def test_duplicate_patient_ids(broken_cohort, capsys) -> None:
    def dup(df: pd.DataFrame) -> pd.DataFrame:
        return pd.concat([df, df.iloc[[3]]])

    err = _rejects(broken_cohort("clinical.csv", dup), capsys, "duplicate patient IDs", "HCC-0004", "line 42")
    assert "clinical.csv" in err


def test_negative_counts(broken_cohort, capsys) -> None:
    def neg(df: pd.DataFrame) -> pd.DataFrame:
        df.iloc[5, 2] = -3
        return df

    err = _rejects(broken_cohort("expression_counts.csv", neg), capsys, "non-negative integers", "negative")
    assert "expression_counts.csv" in err and "Check that the table holds raw counts" in err


def test_non_integer_counts(broken_cohort, capsys) -> None:
    def frac(df: pd.DataFrame) -> pd.DataFrame:
        return df.astype(float).assign(**{df.columns[0]: df.iloc[:, 0] + 0.5})

    err = _rejects(broken_cohort("expression_counts.csv", frac), capsys, "not integers")
    assert "log_expression" in err  # the fix is named


def test_infinite_counts(broken_cohort, capsys) -> None:
    def inf(df: pd.DataFrame) -> pd.DataFrame:
        df = df.astype(float)
        df.iloc[2, 3] = np.inf
        return df

    err = _rejects(broken_cohort("expression_counts.csv", inf), capsys, "infinite")
    assert "expression_counts.csv" in err


def test_summary_row_in_counts(broken_cohort, capsys) -> None:
    def summary(df: pd.DataFrame) -> pd.DataFrame:
        return pd.concat([df, pd.DataFrame([df.sum()], index=["N_unmapped"])])

    err = _rejects(broken_cohort("expression_counts.csv", summary), capsys, "summary rows")
    assert "N_unmapped" in err


@pytest.mark.parametrize("value", [np.nan, -2.0, 0.0])
def test_bad_survival_time(broken_cohort, capsys, value: float) -> None:
    def bad(df: pd.DataFrame) -> pd.DataFrame:
        df.loc["HCC-0007", "os_time_months"] = value
        return df

    word = "NaN" if np.isnan(value) else "negative"
    err = _rejects(broken_cohort("clinical.csv", bad), capsys, "os_time_months", word)
    assert "HCC-0007" in err


def test_event_not_binary(broken_cohort, capsys) -> None:
    def bad(df: pd.DataFrame) -> pd.DataFrame:
        df.loc["HCC-0002", "rfs_event"] = 2
        return df

    err = _rejects(broken_cohort("clinical.csv", bad), capsys, "rfs_event must be 0 (censored) or 1 (event)")
    assert "HCC-0002" in err


def test_checksum_mismatch(broken_cohort, capsys) -> None:
    def nudge(df: pd.DataFrame) -> pd.DataFrame:
        df.loc["HCC-0001", "age"] = 61
        return df

    _rejects(broken_cohort("clinical.csv", nudge, rehash=False), capsys, "checksum mismatch", "clinical.csv")


def test_missing_file(smoke_manifest: Path, tmp_path: Path, capsys) -> None:
    dst = tmp_path / "c"
    shutil.copytree(smoke_manifest.parent, dst)
    (dst / "progression_samples.csv").unlink()
    err = _rejects(dst / "manifest.yaml", capsys, "does not exist")
    assert "progression_samples.csv" in err


def test_unknown_manifest_key(smoke_manifest: Path, tmp_path: Path, capsys) -> None:
    dst = tmp_path / "c"
    shutil.copytree(smoke_manifest.parent, dst)
    man = yaml.safe_load((dst / "manifest.yaml").read_text())
    man["tables"]["clinical"]["id_colum"] = "patient_id"
    (dst / "manifest.yaml").write_text(yaml.safe_dump(man))
    err = _rejects(dst / "manifest.yaml", capsys, "unknown key 'id_colum'")
    assert "tables.clinical" in err


def test_errors_reported_all_at_once(broken_cohort) -> None:
    def many(df: pd.DataFrame) -> pd.DataFrame:
        df.loc["HCC-0002", "rfs_event"] = 5
        df.loc["HCC-0003", "os_time_months"] = -1
        return pd.concat([df, df.iloc[[0]]])

    report = validate_manifest(broken_cohort("clinical.csv", many))
    assert len(report.errors) == 3
    with pytest.raises(ManifestError) as info:
        report.raise_if_errors()
    assert len(info.value.problems) == 3


def test_patient_in_one_modality_is_reported_not_rejected(broken_cohort, capsys) -> None:
    def drop_two(df: pd.DataFrame) -> pd.DataFrame:  # counts are genes x patients
        return df.drop(columns=["HCC-0005", "HCC-0009"])

    manifest = broken_cohort("expression_counts.csv", drop_two)
    man = yaml.safe_load(manifest.read_text())
    for key in ("images", "pathology", "imaging"):  # clinical and RNA only: the two patients then have one modality
        man.pop(key)
    manifest.write_text(yaml.safe_dump(man, sort_keys=False))
    with pytest.warns(ModalityCoverageWarning, match="2 patient\\(s\\) present in modality 'clinical' only"):
        report = validate_manifest(manifest)
    assert report.ok
    assert report.availability()["rna"].sum() == 38
    assert main(["validate", str(manifest)]) == 0
    assert "present in modality 'clinical' only" in capsys.readouterr().out


def test_ensembl_ids_checked(broken_cohort) -> None:
    def ensembl(df: pd.DataFrame) -> pd.DataFrame:
        df.index = pd.Index([f"ENSG{i:011d}.{i % 3 + 1}" for i in range(len(df))], name="gene")
        return df

    report = validate_manifest(broken_cohort("expression_counts.csv", ensembl))
    assert any("gene_id is 'symbol' but the table holds Ensembl IDs" in e for e in report.errors)

    def collide(df: pd.DataFrame) -> pd.DataFrame:
        df = ensembl(df)
        df.index = pd.Index(["ENSG00000000001.7"] + list(df.index[1:]), name="gene")  # same gene as row 2, other version
        return df

    errors = validate_manifest(broken_cohort("expression_counts.csv", collide)).errors
    assert any("collapse to the same gene" in e and "ENSG00000000001" in e for e in errors)


def test_mixed_gene_ids(broken_cohort) -> None:
    def mixed(df: pd.DataFrame) -> pd.DataFrame:
        df.index = ["ENSG00000136244"] + list(df.index[1:])
        return df

    errors = validate_manifest(broken_cohort("expression_counts.csv", mixed)).errors
    assert any("mix Ensembl IDs" in e for e in errors)
