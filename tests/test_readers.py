from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from hccomics.errors import ManifestError
from hccomics.io import image_table, load_cohort, load_progression, sha256sum


def test_load_cohort_matches_files(smoke_manifest: Path) -> None:
    mdata = load_cohort(smoke_manifest)
    clinical = pd.read_csv(smoke_manifest.parent / "clinical.csv", index_col=0)
    counts = pd.read_csv(smoke_manifest.parent / "expression_counts.csv", index_col=0).T
    assert list(mdata.obs_names) == list(clinical.index)
    assert (mdata.obs["age"].to_numpy() == clinical["age"].to_numpy()).all()
    assert mdata.obs["recurrence_2y"].dtype == "Int64"
    rna = mdata["rna"]
    np.testing.assert_array_equal(rna.layers["counts"], counts.loc[rna.obs_names, rna.var_names].to_numpy())
    assert rna.uns["expression_kind"] == "counts"
    assert set(mdata.uns["manifest"]["checksums"]) >= {"clinical.csv", "expression_counts.csv"}


def test_load_cohort_refuses_invalid(broken_cohort) -> None:
    def neg(df: pd.DataFrame) -> pd.DataFrame:
        df.iloc[0, 0] = -1
        return df

    with pytest.raises(ManifestError, match="negative"):
        load_cohort(broken_cohort("expression_counts.csv", neg))


def test_patients_without_rna_stay_in_obs(broken_cohort) -> None:
    manifest = broken_cohort("expression_counts.csv", lambda df: df.drop(columns=["HCC-0001"]))
    mdata = load_cohort(manifest)
    assert mdata.n_obs == 40 and mdata["rna"].n_obs == 39
    assert not mdata.obsm["rna"][list(mdata.obs_names).index("HCC-0001")]


def test_load_progression(smoke_manifest: Path) -> None:
    adata = load_progression(smoke_manifest)
    assert adata.obs["stage"].cat.ordered
    assert list(adata.obs["stage"].cat.categories)[0] == "normal"
    assert adata.n_obs == 6 * 8 and np.isfinite(adata.X).all()


def test_numeric_stage_labels(smoke_manifest: Path, tmp_path: Path) -> None:
    dst = tmp_path / "c"
    shutil.copytree(smoke_manifest.parent, dst)
    samples = pd.read_csv(dst / "progression_samples.csv", index_col=0)
    samples["stage"] = samples["stage_index"]
    samples.to_csv(dst / "progression_samples.csv")
    man = yaml.safe_load((dst / "manifest.yaml").read_text())
    man["progression"]["samples"]["sha256"] = sha256sum(dst / "progression_samples.csv")
    man["progression"]["stages"] = [str(i) for i in range(6)]
    (dst / "manifest.yaml").write_text(yaml.safe_dump(man))
    adata = load_progression(dst / "manifest.yaml")
    assert adata.obs["stage"].notna().all() and list(adata.obs["stage"].cat.categories) == [str(i) for i in range(6)]


def test_gene_annotation_columns_checked(smoke_manifest: Path, tmp_path: Path) -> None:
    from hccomics.io import validate_manifest

    dst = tmp_path / "c"
    shutil.copytree(smoke_manifest.parent, dst)
    pd.DataFrame({"ensembl": ["ENSG00000136244"], "symbol": ["IL6"]}).to_csv(dst / "genes.csv", index=False)
    man = yaml.safe_load((dst / "manifest.yaml").read_text())
    man["tables"]["gene_annotation"] = {"path": "genes.csv", "sha256": sha256sum(dst / "genes.csv")}
    (dst / "manifest.yaml").write_text(yaml.safe_dump(man))
    errors = validate_manifest(dst / "manifest.yaml").errors
    assert any("column 'gene_id' is missing" in e for e in errors)


def test_versioned_ensembl_ids_map_to_symbols(smoke_manifest: Path, tmp_path: Path) -> None:
    dst = tmp_path / "c"
    shutil.copytree(smoke_manifest.parent, dst)
    counts = pd.read_csv(dst / "expression_counts.csv", index_col=0)
    symbols = list(counts.index)
    ids = [f"ENSG{i:011d}.{i % 4 + 1}" for i in range(len(symbols))]
    counts.index = pd.Index(ids, name="gene")
    counts.to_csv(dst / "expression_counts.csv")
    pd.DataFrame({"gene_id": [i.split(".")[0] for i in ids], "symbol": symbols}).to_csv(dst / "genes.csv", index=False)
    man = yaml.safe_load((dst / "manifest.yaml").read_text())
    man["tables"]["expression"].update(gene_id="ensembl", sha256=sha256sum(dst / "expression_counts.csv"))
    man["tables"]["gene_annotation"] = {"path": "genes.csv", "sha256": sha256sum(dst / "genes.csv")}
    (dst / "manifest.yaml").write_text(yaml.safe_dump(man))
    rna = load_cohort(dst / "manifest.yaml")["rna"]
    assert list(rna.var["symbol"]) == symbols
    assert (rna.var["gene_id_kind"] == "ensembl_versioned").all()


def test_image_table_from_manifest(smoke_manifest: Path, tmp_path: Path) -> None:
    dst = tmp_path / "c"
    shutil.copytree(smoke_manifest.parent, dst)
    (dst / "ct.nii.gz").write_bytes(b"not really an image")
    (dst / "liver.nii.gz").write_bytes(b"mask")
    man = yaml.safe_load((dst / "manifest.yaml").read_text())
    man["images"] = [{"patient_id": "HCC-0001", "modality": "CT", "phase": "arterial", "path": "ct.nii.gz",
                      "sha256": sha256sum(dst / "ct.nii.gz"),
                      "masks": [{"label": "liver", "path": "liver.nii.gz", "sha256": sha256sum(dst / "liver.nii.gz")}]}]
    (dst / "manifest.yaml").write_text(yaml.safe_dump(man))
    table = image_table(dst / "manifest.yaml")
    assert table.loc[0, "phase"] == "arterial" and table.loc[0, "mask_liver"].endswith("liver.nii.gz")
    man["images"][0]["phase"] = "arterail"
    (dst / "manifest.yaml").write_text(yaml.safe_dump(man))
    with pytest.raises(ManifestError, match="images\\[0\\].phase"):
        image_table(dst / "manifest.yaml")
