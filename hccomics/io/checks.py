"""Content checks of cohort tables; each returns a list of problems instead of raising.

Problems name the file and row, so that a manifest's every fault can be reported at once.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "SUMMARY_ROW_PATTERN", "ENSEMBL_PATTERN", "check_clinical", "check_expression", "gene_id_kind",
    "read_expression",
]

# rows that aligners and counters append to count tables (HTSeq, STAR, featureCounts summaries)
SUMMARY_ROW_PATTERN = re.compile(
    r"^(__\w+|N_(unmapped|multimapping|noFeature|ambiguous)|(no_feature|ambiguous|too_low_aQual|not_aligned|"
    r"alignment_not_unique)|Unassigned_\w+)$"
)
ENSEMBL_PATTERN = re.compile(r"^ENS[A-Z]*G\d{11}(\.\d+)?(_PAR_Y)?$")
_MAX_LISTED = 5


def _rows(labels: pd.Index | list, *, offset: int = 2) -> str:
    """Describe offending rows as 'row 3 (HCC-0002), ...' (1-based file lines with a header)."""
    items = list(labels)
    shown = ", ".join(str(x) for x in items[:_MAX_LISTED])
    more = f" and {len(items) - _MAX_LISTED} more" if len(items) > _MAX_LISTED else ""
    return shown + more


def check_clinical(
    df: pd.DataFrame, path: Path, *, id_column: str, survival: dict[str, tuple[str, str]], binary_columns: list[str]
) -> list[str]:
    """Check IDs, survival pairs and binary columns of a clinical table (read with a default index)."""
    problems: list[str] = []

    def where(mask: pd.Series) -> str:
        idx = np.flatnonzero(mask.to_numpy())
        ids = df[id_column].astype(str).to_numpy() if id_column in df else None
        return _rows([f"line {i + 2}" + (f" ({ids[i]})" if ids is not None else "") for i in idx])

    if id_column not in df.columns:
        return [f"{path}: no patient ID column '{id_column}' (columns: {', '.join(map(str, df.columns[:10]))}); set tables.clinical.id_column"]
    ids = df[id_column]
    if ids.isna().any():
        problems.append(f"{path}: empty patient IDs at {where(ids.isna())}")
    dup = ids.duplicated(keep=False) & ids.notna()
    if dup.any():
        problems.append(f"{path}: duplicate patient IDs {sorted(set(ids[dup].astype(str)))[:_MAX_LISTED]} at {where(dup)}; each patient must appear once")
    for name, (tcol, ecol) in survival.items():
        for col in (tcol, ecol):
            if col not in df.columns:
                problems.append(f"{path}: survival endpoint '{name}' needs column '{col}', which is missing")
        if tcol in df.columns:
            t = pd.to_numeric(df[tcol], errors="coerce")
            bad = t.isna()
            if bad.any():
                problems.append(f"{path}: {tcol} is NaN or not a number at {where(bad)}; every patient needs a follow-up time")
            neg = t <= 0
            if neg.any():
                problems.append(f"{path}: {tcol} is zero or negative at {where(neg)}; times are positive durations since "
                                "baseline (an event on the day of treatment is usually coded as half a day)")
        if ecol in df.columns:
            e = pd.to_numeric(df[ecol], errors="coerce")
            bad = ~e.isin([0, 1])
            if bad.any():
                problems.append(f"{path}: {ecol} must be 0 (censored) or 1 (event); other values at {where(bad)}")
    for col in binary_columns:
        if col in df.columns:
            v = pd.to_numeric(df[col], errors="coerce")
            bad = (df[col].notna() & ~v.isin([0, 1]))
            if bad.any():
                problems.append(f"{path}: {col} must be 0, 1 or empty; other values at {where(bad)}")
    if "age" in df.columns:
        age = pd.to_numeric(df["age"], errors="coerce")
        bad = df["age"].notna() & ~age.between(0, 120)
        if bad.any():
            problems.append(f"{path}: age outside 0-120 years at {where(bad)}")
    return problems


def gene_id_kind(ids: pd.Index) -> str:
    """Classify gene identifiers as 'ensembl', 'ensembl_versioned', 'symbol' or 'mixed'.

    Examples
    --------
    >>> gene_id_kind(pd.Index(["ENSG00000136244.12", "ENSG00000104432.14"]))
    'ensembl_versioned'
    >>> gene_id_kind(pd.Index(["IL6", "IL7"]))
    'symbol'
    """
    ens = ids.astype(str).str.match(ENSEMBL_PATTERN.pattern)
    if ens.all():
        return "ensembl_versioned" if ids.astype(str).str.contains(r"\.\d+", regex=True).any() else "ensembl"
    if not ens.any():
        return "symbol"
    return "mixed"


def read_expression(path: Path, orientation: str) -> pd.DataFrame:
    """Read an expression CSV as a samples x genes frame of strings-or-numbers (no coercion)."""
    df = pd.read_csv(path, index_col=0)
    df.index = df.index.map(str)
    df.columns = df.columns.map(str)
    return df.T if orientation == "genes_x_samples" else df


def check_expression(df: pd.DataFrame, path: Path, *, kind: str, gene_id: str) -> list[str]:
    """Check a samples x genes table: values by ``kind``, identifiers, duplicates, summary rows."""
    problems: list[str] = []
    genes, samples = df.columns, df.index
    summary = [g for g in genes if SUMMARY_ROW_PATTERN.match(g)]
    if summary:
        problems.append(
            f"{path}: summary rows {summary[:_MAX_LISTED]} are not genes; remove the counter's summary lines "
            "(e.g. N_unmapped, __no_feature) before loading"
        )
    for label, idx in (("gene", genes), ("sample", samples)):
        dup = idx[idx.duplicated()]
        if len(dup):
            problems.append(f"{path}: duplicate {label} IDs {_rows(sorted(set(dup)))}")
    real_genes = pd.Index([g for g in genes if g not in set(summary)])
    kind_found = gene_id_kind(real_genes) if len(real_genes) else "symbol"
    if kind_found == "mixed":
        ens = real_genes[real_genes.str.match(ENSEMBL_PATTERN.pattern)]
        problems.append(f"{path}: gene IDs mix Ensembl IDs ({_rows(ens)}) with other names; use one kind of identifier")
    elif gene_id == "symbol" and kind_found.startswith("ensembl"):
        problems.append(f"{path}: gene_id is 'symbol' but the table holds Ensembl IDs; set gene_id: ensembl and give a gene_annotation")
    elif gene_id == "ensembl" and kind_found == "symbol":
        problems.append(f"{path}: gene_id is 'ensembl' but the table holds symbols; set gene_id: symbol")
    if kind_found == "ensembl_versioned":
        base = real_genes.str.replace(r"\.\d+(?=(_PAR_Y)?$)", "", regex=True)
        dup = base[base.duplicated()]
        if len(dup):
            problems.append(f"{path}: versioned Ensembl IDs collapse to the same gene without version: {_rows(sorted(set(dup)))}")

    sub = df[real_genes] if len(summary) else df
    if all(pd.api.types.is_numeric_dtype(t) for t in sub.dtypes.unique()):
        arr = sub.to_numpy(dtype=float)  # the common case, without a per-column conversion
        unusable = np.isnan(arr) if kind != "counts" else ~np.isfinite(arr)
    else:
        values = sub.apply(pd.to_numeric, errors="coerce")
        arr = values.to_numpy(dtype=float)
        unusable = (np.isnan(arr) if kind != "counts" else ~np.isfinite(arr)) | sub.isna().to_numpy()
    if unusable.any():
        bad = np.argwhere(unusable)
        s, g = bad[0]
        what = "empty, infinite or not numbers" if kind == "counts" else "empty or not numbers"
        problems.append(f"{path}: {len(bad)} values are {what} (first: gene {real_genes[g]}, sample {samples[s]})")
    if kind == "counts":
        finite = np.isfinite(arr)
        neg = finite & (arr < 0)
        if neg.any():
            s, g = np.argwhere(neg)[0]
            problems.append(
                f"{path}: counts must be non-negative integers; {int(neg.sum())} values are negative "
                f"(first: gene {real_genes[g]}, sample {samples[s]}). Check that the table holds raw counts, not normalised values."
            )
        frac = finite & (np.abs(arr - np.round(arr)) > 1e-8)
        if frac.any():
            s, g = np.argwhere(frac)[0]
            problems.append(
                f"{path}: counts must be non-negative integers; {int(frac.sum())} values are not integers "
                f"(first: gene {real_genes[g]}, sample {samples[s]}, value {arr[s, g]}). Normalised or log values "
                "belong in a table of kind 'log_expression'."
            )
    else:
        inf = np.isinf(arr)
        if inf.any():
            s, g = np.argwhere(inf)[0]
            problems.append(f"{path}: log-expression values must be finite; {int(inf.sum())} are infinite (first: gene {real_genes[g]}, sample {samples[s]})")
    return problems
