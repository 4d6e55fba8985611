"""GSE6764 (Wurmbach et al. 2007): the HCV-related multistep hepatocarcinogenesis series on GPL570.

75 liver samples in eight ordered stages (normal liver, cirrhosis, low- and high-grade dysplastic
nodules, very early, early, advanced and very advanced HCC) become a progression series for
critical-state detection. See ``data_manifests/public/gse6764.md`` for the download.

Stages are read from each sample's ``!Sample_characteristics_ch1`` text, then its title, then
its source name: the first of these fields where exactly one stage pattern matches decides.
The default patterns (:data:`DEFAULT_STAGE_MAP`, case-insensitive regular expressions) are
written to exclude each other (``very early HCC`` is not ``early HCC``; a dysplastic nodule
described as cirrhotic stays a nodule), so a sample that matches two stages is an error, not
a silent choice.
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from hccomics._options import check_option
from hccomics.errors import DataValidationError, OptionError
from hccomics.io.public._common import file_ref, input_dir, listing, missing_input, write_csv, write_manifest

__all__ = ["COLLAPSE_METHODS", "DEFAULT_STAGE_MAP", "convert_gse6764", "read_series_matrix"]

logger = logging.getLogger(__name__)

SERIES_MATRIX = "GSE6764_series_matrix.txt.gz"
PLATFORM_TABLE = "GPL570-55999.txt"
COLLAPSE_METHODS = ("max_mean", "mean")
_GEO = "GEO (https://www.ncbi.nlm.nih.gov/geo/query/acc.cgi?acc=GSE6764)"
_NOT_VERY = r"(?<!very )(?<!very-)(?<!very_)(?<!very\.)"

#: Stage name -> case-insensitive regular expression, in biological order.
DEFAULT_STAGE_MAP: dict[str, str] = {
    "normal": r"\bnormal\b",
    "cirrhosis": r"^(?!.*dysplas).*\bcirrho",
    "low_grade_dysplastic_nodule": r"low[\s._-]*grade.*dysplas|dysplas.*low[\s._-]*grade|\bLGDN\b",
    "high_grade_dysplastic_nodule": r"high[\s._-]*grade.*dysplas|dysplas.*high[\s._-]*grade|\bHGDN\b",
    "very_early_hcc": r"\bvery[\s._-]*early[\s._-]*(HCC|hepatocellular)",
    "early_hcc": _NOT_VERY + r"\bearly[\s._-]*(HCC|hepatocellular)",
    "advanced_hcc": _NOT_VERY + r"\badvanced[\s._-]*(HCC|hepatocellular)",
    "very_advanced_hcc": r"\bvery[\s._-]*advanced[\s._-]*(HCC|hepatocellular)",
}


def _geo_values(line: str) -> list[str]:
    return [v.strip().strip('"') for v in line.rstrip("\n").split("\t")[1:]]


def read_series_matrix(path: str | Path) -> tuple[dict[str, list[str]], dict[str, list[list[str]]], pd.DataFrame]:
    """Read a GEO series matrix file (``*_series_matrix.txt.gz`` or plain text).

    Returns
    -------
    series
        ``!Series_*`` keys (without ``!``) -> values.
    samples
        ``!Sample_*`` keys -> one list of per-sample values for each line with that key
        (``Sample_characteristics_ch1`` often has several lines).
    table
        The expression table between ``!series_matrix_table_begin`` and ``_end``: probes x
        samples, indexed by ``ID_REF``, values as read (``null`` is missing).
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    series: dict[str, list[str]] = {}
    samples: dict[str, list[list[str]]] = {}
    table_lines: list[str] = []
    in_table = False
    with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if in_table:
                if line.startswith("!series_matrix_table_end"):
                    in_table = False
                    continue
                table_lines.append(line)
            elif line.startswith("!series_matrix_table_begin"):
                in_table = True
            elif line.startswith("!Series_"):
                series.setdefault(line.split("\t", 1)[0][1:], []).extend(_geo_values(line))
            elif line.startswith("!Sample_"):
                samples.setdefault(line.split("\t", 1)[0][1:], []).append(_geo_values(line))
    if not table_lines:
        raise DataValidationError(f"{path}: no expression table between !series_matrix_table_begin and "
                                  "!series_matrix_table_end; download the series matrix file again (it may be truncated)")
    table = pd.read_csv(io.StringIO("".join(table_lines)), sep="\t", index_col=0, na_values=["null", "NA", ""],
                        dtype={"ID_REF": str})
    table.index = table.index.astype(str)
    table.columns = table.columns.astype(str)
    return series, samples, table


def _sample_info(samples: dict[str, list[list[str]]], accessions: list[str], path: Path) -> pd.DataFrame:
    n = len(accessions)

    def joined(key: str) -> list[str]:
        rows = samples.get(key, [])
        if any(len(r) != n for r in rows):
            raise DataValidationError(f"{path}: a !{key} line does not have one value per sample ({n})")
        return ["; ".join(v for v in vals if v) for vals in zip(*rows)] if rows else [""] * n

    return pd.DataFrame({"sample_id": accessions, "title": joined("Sample_title"),
                         "characteristics": joined("Sample_characteristics_ch1"),
                         "source_name": joined("Sample_source_name_ch1")})


def _assign_stages(info: pd.DataFrame, stage_map: Mapping[str, str]) -> pd.Series:
    patterns = {stage: re.compile(rx, re.IGNORECASE) for stage, rx in stage_map.items()}
    stages, unmapped, ambiguous = [], [], []
    for row in info.itertuples(index=False):
        stage = None
        for text in (row.characteristics, row.title, row.source_name):
            hits = [s for s, rx in patterns.items() if text and rx.search(text)]
            if len(hits) > 1:
                ambiguous.append(f"{row.sample_id} ('{text}' matches {hits})")
                break
            if hits:
                stage = hits[0]
                break
        else:
            unmapped.append(f"{row.sample_id} (title '{row.title}', characteristics '{row.characteristics}')")
        stages.append(stage)
    problems = [f"no stage pattern matches {s}" for s in unmapped] + [f"several stages match {s}" for s in ambiguous]
    if problems:
        raise DataValidationError(
            f"{len(problems)} sample(s) could not be given one stage; pass stage_map={{stage: regex, ...}} "
            "(stages in biological order, case-insensitive regular expressions matched against the characteristics, "
            "then the title, then the source name)", problems)
    return pd.Series(stages, index=info.index)


def _check_stage_map(stage_map: Mapping[str, str] | None) -> dict[str, str]:
    if stage_map is None:
        return dict(DEFAULT_STAGE_MAP)
    if not isinstance(stage_map, Mapping) or len(stage_map) < 2:
        raise OptionError(f"stage_map must map at least two stage names to regular expressions, found {stage_map!r}")
    for stage, rx in stage_map.items():
        if not isinstance(stage, str) or not isinstance(rx, str):
            raise OptionError(f"stage_map entries must be str -> str (stage -> regex), found {stage!r}: {rx!r}")
        try:
            re.compile(rx)
        except re.error as exc:
            raise OptionError(f"stage_map['{stage}'] = {rx!r} is not a valid regular expression: {exc}") from None
    return dict(stage_map)


def _needs_log2(values: np.ndarray) -> bool:
    """GEO2R's rule: log2-transform unless the values already look log-scale."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return False
    q0, q25, _, _, q99, q100 = np.quantile(finite, [0.0, 0.25, 0.5, 0.75, 0.99, 1.0])
    return bool(q99 > 100 or (q100 - q0 > 50 and q25 > 0))


def _read_platform(path: Path) -> pd.Series:
    """Probe ID -> gene symbol column of a GEO platform table (``#`` comment lines, then a header)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
        skip = 0
        for line in fh:
            if line.startswith(("#", "!")) or not line.strip():
                skip += 1
                continue
            header = line.rstrip("\n").split("\t")
            break
        else:
            header = []
    symbol_col = next((c for c in header if c.strip().lower() in ("gene symbol", "gene_symbol", "symbol")), None)
    if "ID" not in header or symbol_col is None:
        raise DataValidationError(
            f"{path}: expected a GEO platform table with columns 'ID' and 'Gene Symbol' after its '#' lines; found "
            f"{listing(header, limit=8) or 'no header'}. Download the full table ('Download full table...') of GPL570"
        )
    table = pd.read_csv(path, sep="\t", skiprows=skip, usecols=["ID", symbol_col], dtype=str, quoting=csv.QUOTE_NONE,
                        keep_default_na=False)
    return pd.Series(table[symbol_col].str.strip().to_numpy(), index=table["ID"].str.strip().to_numpy())


def _collapse(expr: pd.DataFrame, symbols: pd.Series, method: str) -> pd.DataFrame:
    """Probes x samples -> symbols x samples."""
    if method == "mean":
        out = expr.groupby(symbols.reindex(expr.index).to_numpy()).mean()
    else:
        # stable sort: among probes with the same mean, the first in the table wins
        order = expr.mean(axis=1).sort_values(ascending=False, kind="stable").index
        best = symbols.reindex(order)
        best = best[~best.duplicated()]
        out = expr.loc[best.index].set_axis(best.to_numpy(), axis=0)
    out.index.name = "symbol"
    return out.sort_index()


def convert_gse6764(
    src: str | Path,
    out_dir: str | Path,
    *,
    stage_map: Mapping[str, str] | None = None,
    collapse: str = "max_mean",
) -> Path:
    """Convert GEO series GSE6764 (series matrix + GPL570 platform table) into a progression manifest.

    Parameters
    ----------
    src
        Folder holding ``GSE6764_series_matrix.txt.gz`` and the GPL570 full table ``GPL570-55999.txt``.
    out_dir
        Folder to write into (created).
    stage_map
        Stage name -> case-insensitive regular expression, in biological order; default
        :data:`DEFAULT_STAGE_MAP` (eight stages, normal to very advanced HCC). Each sample must
        match exactly one pattern (see the module notes); only stages with samples are listed.
    collapse
        How probes of one gene symbol become one row: ``"max_mean"`` keeps the probe with the
        highest mean (log2) expression, ``"mean"`` averages the probes.

    Returns
    -------
    Path
        ``out_dir/manifest.yaml``, validated, with only a ``progression`` section. Written beside it:
        ``progression_expression.csv`` (symbols x samples, log2) and ``progression_samples.csv``
        (``sample_id``, ``stage``, ``title``, ``characteristics``).

    Notes
    -----
    Values are log2-transformed when GEO2R would: when the 99th percentile exceeds 100, or the
    range exceeds 50 with a positive first quartile; values <= 0 then become missing. Probes with a
    missing value, with no gene symbol, or with several symbols (``A /// B``) are dropped.

    Examples
    --------
    >>> from hccomics.io.public import convert_gse6764
    >>> manifest = convert_gse6764("downloads/GSE6764", "cohorts/gse6764")  # doctest: +SKIP
    """
    check_option("collapse", collapse, COLLAPSE_METHODS)
    stage_map = _check_stage_map(stage_map)
    src = input_dir(src, dataset="GSE6764", doc="gse6764.md")
    matrix_path = src / SERIES_MATRIX
    if not matrix_path.is_file():
        raise missing_input("the GSE6764 series matrix", matrix_path,
                            download=_GEO + " > 'Series Matrix File(s)'", layout=f"<src>/{SERIES_MATRIX}, still gzipped")
    platform_path = src / PLATFORM_TABLE
    if not platform_path.is_file():
        others = sorted(p for p in src.glob("GPL570*.txt*") if p.is_file())
        if len(others) != 1:
            raise missing_input(
                "the GPL570 platform table", platform_path,
                download="GEO (https://www.ncbi.nlm.nih.gov/geo/query/acc.cgi?acc=GPL570) > 'Download full table...'",
                layout=f"<src>/{PLATFORM_TABLE}")
        platform_path = others[0]

    series, sample_meta, table = read_series_matrix(matrix_path)
    platform_ids = series.get("Series_platform_id", [])
    if platform_ids and not platform_path.name.startswith(platform_ids[0]):
        raise DataValidationError(f"{matrix_path} is on platform {platform_ids[0]} but the platform table is {platform_path.name}")
    accessions = sample_meta.get("Sample_geo_accession", [[]])[0]
    if list(table.columns) != accessions:
        raise DataValidationError(f"{matrix_path}: the table's sample columns differ from !Sample_geo_accession "
                                  f"({listing(table.columns)} vs {listing(accessions)})")
    info = _sample_info(sample_meta, accessions, matrix_path)
    info["stage"] = _assign_stages(info, stage_map)
    stages = [s for s in stage_map if (info["stage"] == s).any()]
    if len(stages) < 2:
        raise DataValidationError(f"all samples fall in stage(s) {stages}; a progression series needs at least two stages")
    logger.info("stages: %s", ", ".join(f"{s} {int((info['stage'] == s).sum())}" for s in stages))

    values = table.apply(pd.to_numeric, errors="coerce")
    not_numbers = values.isna() & table.notna()
    if not_numbers.any().any():
        probe, sample = values.index[not_numbers.any(axis=1)][0], values.columns[not_numbers.any(axis=0)][0]
        raise DataValidationError(f"{matrix_path}: {int(not_numbers.sum().sum())} values are not numbers "
                                  f"(first: probe {probe}, sample {sample})")
    if _needs_log2(values.to_numpy(dtype=float)):
        logger.info("values are not log-scale (GEO2R's quantile rule); taking log2, values <= 0 become missing")
        values = np.log2(values.where(values > 0))
    incomplete = values.isna().any(axis=1)
    symbols = _read_platform(platform_path).reindex(values.index)
    no_symbol = symbols.isna() | (symbols == "")
    multi = symbols.str.contains("///", regex=False, na=False)
    keep = ~incomplete & ~no_symbol & ~multi
    logger.info("probes: %d in the table; dropped %d with missing values, %d without a gene symbol, %d with several "
                "symbols; %d remain", len(values), int(incomplete.sum()), int((no_symbol & ~incomplete).sum()),
                int((multi & ~incomplete).sum()), int(keep.sum()))
    if not keep.any():
        raise DataValidationError(f"no probe of {matrix_path} has a single gene symbol in {platform_path}; "
                                  "check that the platform table belongs to the series")
    expr = _collapse(values[keep], symbols[keep], collapse)
    logger.info("collapsed %d probes to %d gene symbols (%s)", int(keep.sum()), len(expr), collapse)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(expr, out / "progression_expression.csv", float_format="%.5f")
    write_csv(info[["sample_id", "stage", "title", "characteristics"]], out / "progression_samples.csv", index=False)
    manifest = {
        "schema_version": 1,
        "name": "GSE6764",
        "description": (
            f"Wurmbach et al. 2007 (Hepatology 45:938): {len(info)} liver samples on GPL570 in {len(stages)} ordered "
            f"stages; log2 expression of {len(expr)} gene symbols (probes collapsed by {collapse}). Converted by "
            "hccomics.io.public.convert_gse6764."
        ),
        "progression": {
            "expression": file_ref(out, "progression_expression.csv", kind="log_expression",
                                   orientation="genes_x_samples", gene_id="symbol"),
            "samples": file_ref(out, "progression_samples.csv"),
            "stages": stages,
        },
    }
    return write_manifest(out, manifest)
