"""convert_tcga_lihc on a tiny GDC download written in the native layout, checked against the values written into it."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest
import yaml

from hccomics.errors import ManifestError
from hccomics.io import validate_manifest
from hccomics.io.public import convert_tcga_lihc

DAYS_PER_MONTH = 30.4375
HEADER = ("gene_id\tgene_name\tgene_type\tunstranded\tstranded_first\tstranded_second\t"
          "tpm_unstranded\tfpkm_unstranded\tfpkm_uq_unstranded")
GENES = [  # (versioned ID, name, type)
    ("ENSG00000000003.15", "TSPAN6", "protein_coding"),
    ("ENSG00000000005.6", "TNMD", "protein_coding"),
    ("ENSG00000000419.13", "DPM1", "protein_coding"),
    ("ENSG00000182378.14", "PLCXD1", "protein_coding"),
    ("ENSG00000182378.14_PAR_Y", "PLCXD1", "protein_coding"),
    ("ENSG00000228572.7", "AL954722.1", "lncRNA"),
]
# (file UUID, file name UUID, sample barcode, sample type, unstranded counts of GENES)
FILES = [
    ("0b5a1f3e-6c1d-4a8e-9f0a-3b1e2c4d5e6f", "8e0c7a2d-1b3f-4e5a-9c6d-7f8e9a0b1c2d", "TCGA-DD-A4NG-01A", "Primary Tumor",
     [3231, 0, 1083, 517, 0, 12]),
    ("1c6b2a4f-7d2e-4b9f-8a1b-4c2f3d5e6a7b", "9f1d8b3e-2c4a-4f6b-8d7e-8a9b0c1d2e3f", "TCGA-DD-A4NG-11A", "Solid Tissue Normal",
     [2875, 2, 990, 401, 0, 3]),
    ("2d7c3b5a-8e3f-4cab-9b2c-5d3a4e6f7b8c", "a02e9c4f-3d5b-4a7c-9e8f-9b0c1d2e3f4a", "TCGA-BC-A10Q-01A", "Primary Tumor",
     [1500, 7, 640, 220, 0, 0]),
    ("3e8d4c6b-9f4a-4dbc-8c3d-6e4b5f7a8c9d", "b13fad5a-4e6c-4b8d-8f9a-0c1d2e3f4a5b", "TCGA-BC-A10Q-01B", "Primary Tumor",
     [9999, 9999, 9999, 9999, 0, 9999]),
    ("4f9e5d7c-0a5b-4ecd-9d4e-7f5c6a8b9d0e", "c240be6b-5f7d-4c9e-9a0b-1d2e3f4a5b6c", "TCGA-ED-A7PZ-01A", "Primary Tumor",
     [4410, 1, 2020, 310, 0, 45]),
    ("5a0f6e8d-1b6c-4fde-8e5f-8a6d7b9c0e1f", "d351cf7c-6a8e-4dab-8b1c-2e3f4a5b6c7d", "TCGA-G3-A25T-02A", "Recurrent Tumor",
     [100, 100, 100, 100, 0, 100]),
]
SUMMARY = [("N_unmapped", 8120268, 8120268, 8120268), ("N_multimapping", 4402480, 4402480, 4402480),
           ("N_noFeature", 1446120, 24573336, 24781939), ("N_ambiguous", 5551010, 1476463, 1462076)]

CLINICAL_COLUMNS = ["case_id", "case_submitter_id", "project_id", "age_at_index", "days_to_birth", "gender",
                    "vital_status", "days_to_death", "ajcc_pathologic_stage", "classification_of_tumor",
                    "days_to_last_follow_up", "tumor_grade", "treatment_type"]
# two rows per case (one per treatment), as the GDC writes them; '-- is missing
CLINICAL_ROWS = [
    ["e1a2", "TCGA-DD-A4NG", "TCGA-LIHC", "65", "-23844", "male", "Alive", "'--", "Stage II", "primary", "1200", "G2", "Pharmaceutical Therapy, NOS"],
    ["e1a2", "TCGA-DD-A4NG", "TCGA-LIHC", "65", "-23844", "male", "Alive", "'--", "Stage II", "primary", "1200", "G2", "Radiation Therapy, NOS"],
    ["f2b3", "TCGA-BC-A10Q", "TCGA-LIHC", "58", "-21200", "female", "Dead", "800", "Stage IIIA", "primary", "'--", "G3", "Pharmaceutical Therapy, NOS"],
    ["f2b3", "TCGA-BC-A10Q", "TCGA-LIHC", "58", "-21200", "female", "Dead", "800", "Stage IIIA", "primary", "'--", "G3", "Radiation Therapy, NOS"],
    ["a3c4", "TCGA-ED-A7PZ", "TCGA-LIHC", "71", "-26000", "male", "Dead", "300", "Stage I", "primary", "'--", "G1", "'--"],
    ["b4d5", "TCGA-G3-A25T", "TCGA-LIHC", "45", "-16500", "male", "Alive", "'--", "'--", "primary", "200", "GX", "'--"],
    ["c5e6", "TCGA-ZS-A9CF", "TCGA-LIHC", "'--", "-20000", "female", "Alive", "'--", "Stage I", "primary", "0", "G2", "'--"],
    ["d6f7", "TCGA-2Y-A9GS", "TCGA-LIHC", "'--", "-29220", "female", "Dead", "0", "Stage IVA", "primary", "'--", "G4", "'--"],
]
FOLLOW_UP_COLUMNS = ["case_id", "case_submitter_id", "project_id", "days_to_follow_up", "days_to_progression",
                     "days_to_recurrence", "progression_or_recurrence", "progression_or_recurrence_type"]
FOLLOW_UP_ROWS = [
    ["e1a2", "TCGA-DD-A4NG", "TCGA-LIHC", "400", "'--", "'--", "No", "'--"],
    ["e1a2", "TCGA-DD-A4NG", "TCGA-LIHC", "900", "'--", "500", "Yes", "Locoregional"],
    ["f2b3", "TCGA-BC-A10Q", "TCGA-LIHC", "760", "'--", "'--", "Yes", "Distant"],
    ["a3c4", "TCGA-ED-A7PZ", "TCGA-LIHC", "120", "'--", "'--", "No", "'--"],
    ["b4d5", "TCGA-G3-A25T", "TCGA-LIHC", "150", "'--", "'--", "Not Reported", "'--"],
]
# the 2024 GDC portal prefixes every column with its entity
NEW_STYLE = {"case_id": "cases.case_id", "case_submitter_id": "cases.submitter_id", "project_id": "project.project_id",
             "age_at_index": "demographic.age_at_index", "days_to_birth": "demographic.days_to_birth",
             "gender": "demographic.gender", "vital_status": "demographic.vital_status",
             "days_to_death": "demographic.days_to_death", "ajcc_pathologic_stage": "diagnoses.ajcc_pathologic_stage",
             "classification_of_tumor": "diagnoses.classification_of_tumor",
             "days_to_last_follow_up": "diagnoses.days_to_last_follow_up", "tumor_grade": "diagnoses.tumor_grade",
             "treatment_type": "treatments.treatment_type", "days_to_follow_up": "follow_ups.days_to_follow_up",
             "days_to_progression": "follow_ups.days_to_progression", "days_to_recurrence": "follow_ups.days_to_recurrence",
             "progression_or_recurrence": "follow_ups.progression_or_recurrence",
             "progression_or_recurrence_type": "follow_ups.progression_or_recurrence_type"}


def _tsv(path: Path, columns: list[str], rows: list[list[str]]) -> None:
    path.write_text("\n".join("\t".join(r) for r in [columns, *rows]) + "\n")


def _counts_file(path: Path, counts: list[int]) -> None:
    lines = ["# gene-model: GENCODE v36", HEADER]
    lines += [f"{name}\t\t\t{a}\t{b}\t{c}\t\t\t" for name, a, b, c in SUMMARY]
    for (gid, name, gtype), n in zip(GENES, counts):
        lines.append(f"{gid}\t{name}\t{gtype}\t{n}\t{n // 2}\t{n - n // 2}\t{n * 0.0138:.4f}\t{n * 0.0052:.4f}\t{n * 0.0074:.4f}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def write_gdc_download(root: Path, *, style: str = "legacy") -> Path:
    """A GDC download as gdc-client and the portal leave it: <File ID>/<File Name>, sample sheet, clinical TSVs."""
    root.mkdir(parents=True, exist_ok=True)
    sheet_rows = []
    for fid, fname, barcode, stype, counts in FILES:
        name = f"{fname}.rna_seq.augmented_star_gene_counts.tsv"
        _counts_file(root / fid / name, counts)
        (root / fid / "logs").mkdir()
        (root / fid / "logs" / f"{fname}.parcel").write_text("")
        sheet_rows.append([fid, name, "Transcriptome Profiling", "Gene Expression Quantification", "TCGA-LIHC",
                           barcode[:12], barcode, stype])
    (root / "MANIFEST.txt").write_text("id\tfilename\tmd5\tsize\tstate\n")
    _tsv(root / "gdc_sample_sheet.2024-05-06.tsv", ["File ID", "File Name", "Data Category", "Data Type", "Project ID",
                                                    "Case ID", "Sample ID", "Sample Type"], sheet_rows)
    clinical_dir = root / "clinical.cases_selection.2024-05-06"
    clinical_dir.mkdir()
    rename = (lambda cols: [NEW_STYLE[c] for c in cols]) if style == "new" else (lambda cols: cols)
    _tsv(clinical_dir / "clinical.tsv", rename(CLINICAL_COLUMNS), CLINICAL_ROWS)
    _tsv(clinical_dir / "follow_up.tsv", rename(FOLLOW_UP_COLUMNS), FOLLOW_UP_ROWS)
    _tsv(clinical_dir / "exposure.tsv", ["case_id", "case_submitter_id", "alcohol_history"], [["e1a2", "TCGA-DD-A4NG", "Yes"]])
    return root


@pytest.mark.filterwarnings("ignore::hccomics.errors.ModalityCoverageWarning")
@pytest.mark.parametrize("style", ["legacy", "new"])
def test_convert_tcga_lihc_matches_fixture(tmp_path: Path, style: str, caplog: pytest.LogCaptureFixture) -> None:
    src = write_gdc_download(tmp_path / "download", style=style)
    with caplog.at_level(logging.INFO):
        manifest = convert_tcga_lihc(src, tmp_path / "cohort")
    out = manifest.parent
    assert validate_manifest(manifest).ok

    counts = pd.read_csv(out / "expression_counts.csv", index_col=0)
    # one primary tumour per patient, -01A chosen over -01B, the recurrent (-02A) sample left out
    assert list(counts.columns) == ["TCGA-BC-A10Q", "TCGA-DD-A4NG", "TCGA-ED-A7PZ"]
    assert list(counts.index) == ["ENSG00000000003", "ENSG00000000005", "ENSG00000000419", "ENSG00000182378",
                                  "ENSG00000228572"]  # no N_* rows, no _PAR_Y copy, versions stripped
    by_barcode = {barcode: dict(zip([g for g, _, _ in GENES], c)) for _, _, barcode, _, c in FILES}
    for patient in counts.columns:
        expected = by_barcode[f"{patient}-01A"]
        assert counts.loc["ENSG00000000003", patient] == expected["ENSG00000000003.15"]
        assert counts.loc["ENSG00000182378", patient] == expected["ENSG00000182378.14"]
        assert counts.loc["ENSG00000228572", patient] == expected["ENSG00000228572.7"]
    assert counts.to_numpy().dtype.kind == "i"
    assert "several primary tumour files" in caplog.text

    normals = pd.read_csv(out / "normal_counts.csv", index_col=0)
    assert list(normals.columns) == ["TCGA-DD-A4NG-11A"]
    assert normals.loc["ENSG00000000419", "TCGA-DD-A4NG-11A"] == 990

    ann = pd.read_csv(out / "gene_annotation.csv")
    assert list(ann.columns) == ["gene_id", "symbol", "gene_type"]
    assert ann.set_index("gene_id").loc["ENSG00000228572", "gene_type"] == "lncRNA"
    assert ann.set_index("gene_id").loc["ENSG00000182378", "symbol"] == "PLCXD1"

    samples = pd.read_csv(out / "samples.csv")
    assert set(samples["sample_id"]) == {"TCGA-BC-A10Q-01A", "TCGA-DD-A4NG-01A", "TCGA-ED-A7PZ-01A", "TCGA-DD-A4NG-11A"}
    assert samples.set_index("sample_id").loc["TCGA-DD-A4NG-11A", "sample_type"] == "Solid Tissue Normal"
    assert samples.set_index("sample_id").loc["TCGA-DD-A4NG-11A", "patient_id"] == "TCGA-DD-A4NG"

    clin = pd.read_csv(out / "clinical.csv", index_col="patient_id")
    assert list(clin.columns) == ["age", "sex", "stage", "grade", "os_time_months", "os_event", "rfs_time_months",
                                  "rfs_event", "recurrence_2y"]
    # TCGA-ZS-A9CF: alive, last follow-up on day 0 -> no follow-up, left out
    assert sorted(clin.index) == ["TCGA-2Y-A9GS", "TCGA-BC-A10Q", "TCGA-DD-A4NG", "TCGA-ED-A7PZ", "TCGA-G3-A25T"]
    expected = {  # patient: (age, sex, stage, grade, os days, os event, rfs days, rfs event, recurrence_2y)
        "TCGA-DD-A4NG": (65, "M", "II", 2, 1200, 0, 500, 1, 1),        # alive; recurrence on day 500
        "TCGA-BC-A10Q": (58, "F", "IIIA", 3, 800, 1, 760, 1, 0),      # recurrence dated by its visit (day 760 > 24 months)
        "TCGA-ED-A7PZ": (71, "M", "I", 1, 300, 1, 300, 1, 1),         # death without recurrence is an RFS event
        "TCGA-G3-A25T": (45, "M", None, None, 200, 0, 200, 0, None),  # censored before 24 months
        "TCGA-2Y-A9GS": (80, "F", "IVA", 4, 0.5, 1, 0.5, 1, 1),      # age from days_to_birth; death on day 0 -> half a day
    }
    for pid, (age, sex, stage, grade, os_d, os_e, rfs_d, rfs_e, rec2y) in expected.items():
        row = clin.loc[pid]
        assert row["age"] == age and row["sex"] == sex
        assert (pd.isna(row["stage"]) if stage is None else row["stage"] == stage)
        assert (pd.isna(row["grade"]) if grade is None else row["grade"] == grade)
        assert row["os_time_months"] == pytest.approx(os_d / DAYS_PER_MONTH, abs=1e-3)
        assert row["rfs_time_months"] == pytest.approx(rfs_d / DAYS_PER_MONTH, abs=1e-3)
        assert row["os_event"] == os_e and row["rfs_event"] == rfs_e
        assert (pd.isna(row["recurrence_2y"]) if rec2y is None else row["recurrence_2y"] == rec2y)

    man = yaml.safe_load(manifest.read_text())
    assert man["tables"]["expression"]["kind"] == "counts" and man["tables"]["expression"]["gene_id"] == "ensembl"
    assert man["tables"]["clinical"]["binary_columns"] == ["recurrence_2y"]
    assert set(man["tables"]["clinical"]["survival"]) == {"rfs", "os"}
    assert "normal_counts.csv" in man["description"] and "GENCODE v36" in man["description"]


def test_missing_sample_sheet_says_what_to_download(tmp_path: Path) -> None:
    src = write_gdc_download(tmp_path / "download")
    (src / "gdc_sample_sheet.2024-05-06.tsv").unlink()
    with pytest.raises(ManifestError, match=r"sample sheet was not found.*gdc_sample_sheet.*portal\.gdc\.cancer\.gov"):
        convert_tcga_lihc(src, tmp_path / "cohort")
    assert not (tmp_path / "cohort").exists()


def test_missing_counts_file_names_it(tmp_path: Path) -> None:
    src = write_gdc_download(tmp_path / "download")
    fid, fname = FILES[2][0], FILES[2][1]
    (src / fid / f"{fname}.rna_seq.augmented_star_gene_counts.tsv").unlink()
    with pytest.raises(ManifestError, match=rf"{fid}/{fname}.*gdc-client"):
        convert_tcga_lihc(src, tmp_path / "cohort")
