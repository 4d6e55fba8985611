"""TCGA-LIHC from a GDC download: STAR gene counts, sample sheet and clinical files to a cohort.

See ``data_manifests/public/tcga_lihc.md`` for what to download and the expected layout.
"""

from __future__ import annotations

import csv
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd

from hccomics.errors import DataValidationError, ManifestError
from hccomics.io.checks import SUMMARY_ROW_PATTERN
from hccomics.io.public._common import file_ref, find_one, input_dir, listing, missing_input, write_csv, write_manifest
from hccomics.io.public._gdc_clinical import gdc_patient_table

__all__ = ["convert_tcga_lihc", "read_star_counts"]

logger = logging.getLogger(__name__)

COUNTS_SUFFIX = ".rna_seq.augmented_star_gene_counts.tsv"
_GDC = "the GDC Data Portal (https://portal.gdc.cancer.gov, project TCGA-LIHC)"
_BARCODE = re.compile(r"^(TCGA-[A-Z0-9]{2}-[A-Z0-9]{4})-(\d{2})([A-Z]?)$")
_SAMPLE_TYPES = {"01": "Primary Tumor", "11": "Solid Tissue Normal"}
_SHEET_COLUMNS = ("File ID", "File Name", "Sample ID")
_STAR_COLUMNS = ("gene_id", "gene_name", "gene_type", "unstranded")


def read_star_counts(path: str | Path) -> tuple[str, pd.DataFrame]:
    """Read one GDC ``*.rna_seq.augmented_star_gene_counts.tsv`` file.

    Parameters
    ----------
    path
        The file: a ``# gene-model: ...`` line, a header, four ``N_*`` summary rows, then genes.

    Returns
    -------
    gene_model
        The text after ``# gene-model:`` (e.g. ``'GENCODE v36'``), or ``''`` without that line.
    table
        Columns ``gene_id`` (versioned, as in the file), ``gene_name``, ``gene_type`` and
        ``unstranded`` (raw counts), summary rows included.
    """
    path = Path(path)
    with open(path) as fh:
        first = fh.readline()
    gene_model = first.split(":", 1)[1].strip() if first.startswith("#") and ":" in first else ""
    try:
        df = pd.read_csv(path, sep="\t", skiprows=1 if first.startswith("#") else 0, usecols=list(_STAR_COLUMNS),
                         dtype={"gene_id": str, "gene_name": str, "gene_type": str}, quoting=csv.QUOTE_NONE)
    except ValueError as exc:
        raise DataValidationError(
            f"{path}: not a GDC STAR - Counts file ({exc}); expected a '# gene-model' line and the columns "
            f"{', '.join(_STAR_COLUMNS)}, ... (workflow 'STAR - Counts', file type 'Gene Expression Quantification')"
        ) from None
    return gene_model, df


def _read_sample_sheet(path: Path) -> pd.DataFrame:
    sheet = pd.read_csv(path, sep="\t", dtype=str)
    missing = [c for c in _SHEET_COLUMNS if c not in sheet.columns]
    if missing:
        raise DataValidationError(
            f"{path}: the sample sheet lacks column(s) {missing} (found {listing(sheet.columns, limit=10)}); "
            "download it from the GDC cart with 'Download Associated Data > Sample Sheet'"
        )
    other = ~sheet["File Name"].str.endswith(COUNTS_SUFFIX, na=False)
    if other.any():
        logger.info("sample sheet: ignoring %d file(s) that are not STAR gene counts", int(other.sum()))
    sheet = sheet[~other].copy()
    if sheet.empty:
        raise DataValidationError(f"{path}: no file named '*{COUNTS_SUFFIX}'; select the 'STAR - Counts' workflow "
                                  "files of 'Gene Expression Quantification' before downloading the sample sheet")
    sample = sheet["Sample ID"].str.strip()
    parts = sample.str.extract(_BARCODE)
    bad = parts[0].isna()
    if bad.any():
        raise DataValidationError(
            f"{path}: Sample ID values that are not single TCGA sample barcodes (TCGA-XX-XXXX-NNV): "
            f"{listing(sample[bad])}; keep one file per sample in the cart"
        )
    sheet["sample_id"], sheet["patient_id"], sheet["type_code"] = sample, parts[0], parts[1]
    return sheet


def _locate(sheet: pd.DataFrame, src: Path) -> pd.Series:
    """Path of each sample sheet file: ``src/<File ID>/<File Name>``, or the same name anywhere under ``src``."""
    by_name = {p.name: p for p in src.rglob(f"*{COUNTS_SUFFIX}")}
    paths, missing = [], []
    for fid, name in zip(sheet["File ID"], sheet["File Name"]):
        direct = src / fid / name
        path = direct if direct.is_file() else by_name.get(name)
        paths.append(path)
        if path is None:
            missing.append(f"{fid}/{name}")
    if missing:
        raise missing_input(
            f"{len(missing)} STAR - Counts file(s) listed in the sample sheet ({listing(missing, limit=3)})",
            src / "<File ID>" / "<File Name>", download=_GDC + " with gdc-client and the cart's manifest",
            layout="<src>/<File ID>/<File Name>, as gdc-client writes them",
        )
    unlisted = len(by_name) - len(set(sheet["File Name"]) & set(by_name))
    if unlisted:
        logger.info("%d STAR - Counts file(s) under %s are not in the sample sheet and are ignored", unlisted, src)
    return pd.Series(paths, index=sheet.index)


def _select(sheet: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One primary tumour per patient (first barcode in sort order) and one file per normal sample."""
    sheet = sheet.sort_values(["sample_id", "File Name"])
    skipped = sheet[~sheet["type_code"].isin(_SAMPLE_TYPES)]
    if len(skipped):
        logger.info("skipping %d sample(s) that are neither primary tumour (-01) nor solid tissue normal (-11): %s",
                    len(skipped), listing(skipped["sample_id"]))
    tumours = sheet[sheet["type_code"] == "01"]
    several = tumours.groupby("patient_id").size()
    if (several > 1).any():
        logger.info("%d patient(s) have several primary tumour files; keeping the first sample barcode of each: %s",
                    int((several > 1).sum()), listing(several.index[several > 1]))
    normals = sheet[sheet["type_code"] == "11"]
    dup = normals["sample_id"].duplicated()
    if dup.any():
        logger.info("%d normal sample(s) have several files; keeping the first file of each", int(dup.sum()))
    return tumours.drop_duplicates("patient_id"), normals[~dup]


def _read_counts(files: pd.Series) -> tuple[str, pd.DataFrame, pd.DataFrame]:
    """Counts of the files (columns keyed by the series index) on one gene list; and that gene list's annotation."""
    model, ref = "", None
    columns: dict[str, np.ndarray] = {}
    for key, path in files.items():
        gene_model, df = read_star_counts(path)
        if ref is None:
            model, ref = gene_model, df[["gene_id", "gene_name", "gene_type"]]
        elif gene_model != model or not np.array_equal(df["gene_id"].to_numpy(), ref["gene_id"].to_numpy()):
            raise DataValidationError(
                f"{path}: gene model '{gene_model}' / gene list differs from that of {files.iloc[0]} ('{model}'); "
                "download all files from the same GDC data release"
            )
        counts = pd.to_numeric(df["unstranded"], errors="coerce").to_numpy()
        if np.isnan(counts).any() or (counts < 0).any() or (counts != np.round(counts)).any():
            raise DataValidationError(f"{path}: the 'unstranded' column holds values that are not non-negative integer counts")
        columns[str(key)] = counts.astype(np.int64)
    assert ref is not None  # files is never empty here
    counts = pd.DataFrame(columns, index=ref["gene_id"].to_numpy())
    return model, counts, ref


def _tidy_genes(counts: pd.DataFrame, annotation: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Drop STAR's ``N_*`` summary rows and the ``_PAR_Y`` copies; strip Ensembl versions."""
    ids = annotation["gene_id"]
    summary = ids.str.match(SUMMARY_ROW_PATTERN.pattern).to_numpy()
    # GENCODE gives pseudo-autosomal genes a second, Y-chromosome ID; STAR counts reads on the X copy,
    # so the _PAR_Y rows are zeros that would collide with the X copy once versions are stripped
    par_y = ids.str.endswith("_PAR_Y").to_numpy()
    keep = ~summary & ~par_y
    logger.info("genes: dropped %d summary rows and %d _PAR_Y duplicates; %d genes remain",
                int(summary.sum()), int(par_y.sum()), int(keep.sum()))
    counts, annotation = counts[keep], annotation[keep]
    unversioned = annotation["gene_id"].str.replace(r"\.\d+$", "", regex=True).to_numpy()
    dup = pd.Index(unversioned)[pd.Index(unversioned).duplicated()]
    if len(dup):
        raise DataValidationError(f"gene IDs are not unique without their version: {listing(sorted(set(dup)))}")
    counts.index = pd.Index(unversioned, name="gene_id")
    annotation = pd.DataFrame({"gene_id": unversioned, "symbol": annotation["gene_name"].to_numpy(),
                               "gene_type": annotation["gene_type"].to_numpy()})
    return counts, annotation


def convert_tcga_lihc(
    src: str | Path,
    out_dir: str | Path,
    *,
    sample_sheet: str | Path | None = None,
    clinical: str | Path | None = None,
    follow_up: str | Path | None = None,
) -> Path:
    """Convert a GDC download of TCGA-LIHC (STAR - Counts and clinical files) into a cohort manifest.

    Parameters
    ----------
    src
        Folder of the download: one sub-folder per file UUID holding
        ``*.rna_seq.augmented_star_gene_counts.tsv``, a ``gdc_sample_sheet.<date>.tsv``, and the
        clinical download's ``clinical.tsv`` and ``follow_up.tsv`` (anywhere under ``src``).
    out_dir
        Folder to write into (created).
    sample_sheet, clinical, follow_up
        Paths of these files when they are not (or not uniquely) under ``src``.

    Returns
    -------
    Path
        ``out_dir/manifest.yaml``, validated. Written beside it: ``expression_counts.csv`` (genes
        x patients, unstranded counts, unversioned Ensembl IDs, one primary tumour per patient),
        ``gene_annotation.csv``, ``clinical.csv``, ``samples.csv`` and, when the download has
        solid-tissue normals, ``normal_counts.csv`` (genes x normal samples).

    Raises
    ------
    ManifestError
        When an input file is missing (saying what to download and where to put it).
    DataValidationError
        When an input does not have the GDC format.

    Examples
    --------
    >>> from hccomics.io.public import convert_tcga_lihc
    >>> manifest = convert_tcga_lihc("downloads/tcga_lihc", "cohorts/tcga_lihc")  # doctest: +SKIP
    """
    src = input_dir(src, dataset="TCGA-LIHC", doc="tcga_lihc.md")
    out = Path(out_dir)
    sheet_path = Path(sample_sheet) if sample_sheet is not None else find_one(
        src, ["gdc_sample_sheet*.tsv"], what="the GDC sample sheet", download=_GDC + ": cart > Sample Sheet",
        layout="<src>/gdc_sample_sheet.<date>.tsv")
    clin_path = Path(clinical) if clinical is not None else find_one(
        src, ["clinical.tsv"], what="the GDC clinical table clinical.tsv",
        download=_GDC + ": cart > Clinical > TSV (a clinical.cases_selection.*.tar.gz; extract it)",
        layout="<src>/clinical.tsv (the extracted files may also sit in a sub-folder)")
    fu_path = Path(follow_up) if follow_up is not None else find_one(
        src, ["follow_up.tsv"], what="the GDC follow-up table follow_up.tsv",
        download=_GDC + ": cart > Clinical > TSV (it comes with clinical.tsv)", layout="<src>/follow_up.tsv")
    for label, path in (("sample sheet", sheet_path), ("clinical table", clin_path), ("follow-up table", fu_path)):
        if not path.is_file():
            raise ManifestError(f"the {label} {path} does not exist; check the path passed to convert_tcga_lihc")

    sheet = _read_sample_sheet(sheet_path)
    sheet["path"] = _locate(sheet, src)
    tumours, normals = _select(sheet)
    if tumours.empty:
        raise DataValidationError(f"{sheet_path}: no primary tumour sample (barcode ending -01X) among the STAR - Counts files")
    logger.info("reading %d primary tumour and %d normal count files", len(tumours), len(normals))
    files = pd.concat([pd.Series(tumours["path"].to_numpy(), index=tumours["patient_id"]),
                       pd.Series(normals["path"].to_numpy(), index=normals["sample_id"])])
    model, counts, annotation = _read_counts(files)
    counts, annotation = _tidy_genes(counts, annotation)
    tumour_counts = counts[list(tumours["patient_id"])].sort_index(axis=1)
    normal_counts = counts[list(normals["sample_id"])].sort_index(axis=1)
    patients, dropped = gdc_patient_table(clin_path, fu_path)

    out.mkdir(parents=True, exist_ok=True)
    write_csv(tumour_counts, out / "expression_counts.csv")
    write_csv(annotation, out / "gene_annotation.csv", index=False)
    write_csv(patients, out / "clinical.csv")
    samples = pd.concat([tumours.assign(table="expression_counts.csv"), normals.assign(table="normal_counts.csv")])
    samples = pd.DataFrame({"sample_id": samples["sample_id"], "patient_id": samples["patient_id"],
                            "sample_type": samples["type_code"].map(_SAMPLE_TYPES), "file_id": samples["File ID"],
                            "table": samples["table"]}).sort_values(["table", "sample_id"])
    write_csv(samples, out / "samples.csv", index=False)
    if len(normals):
        write_csv(normal_counts, out / "normal_counts.csv")

    description = (
        f"TCGA-LIHC from the GDC: STAR unstranded gene counts ({model or 'gene model not stated'}) of "
        f"{tumour_counts.shape[1]} primary tumours (one per patient, columns named by case barcode) and "
        f"clinical follow-up of {len(patients)} patients (RFS event = recurrence or death; "
        f"{len(dropped)} patient(s) without a usable OS/RFS time left out). "
    )
    description += (f"{normal_counts.shape[1]} solid-tissue normal sample(s) are in normal_counts.csv (genes x samples); "
                    if len(normals) else "The download has no solid-tissue normal sample; ")
    description += "samples.csv maps every sample barcode to its patient and table. Converted by hccomics.io.public.convert_tcga_lihc."
    manifest = {
        "schema_version": 1,
        "name": "TCGA-LIHC",
        "description": description,
        "tables": {
            "clinical": file_ref(out, "clinical.csv", id_column="patient_id",
                                 survival={"rfs": {"time": "rfs_time_months", "event": "rfs_event"},
                                           "os": {"time": "os_time_months", "event": "os_event"}},
                                 binary_columns=["recurrence_2y"]),
            "expression": file_ref(out, "expression_counts.csv", kind="counts", orientation="genes_x_samples",
                                   gene_id="ensembl"),
            "gene_annotation": file_ref(out, "gene_annotation.csv", id_column="gene_id", symbol_column="symbol"),
        },
    }
    return write_manifest(out, manifest)
