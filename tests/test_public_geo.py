"""convert_gse6764 on a tiny GEO series matrix and GPL570 table in the native layout, checked against the values written into them."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from hccomics.errors import DataValidationError, ManifestError, OptionError
from hccomics.io import load_progression, validate_manifest
from hccomics.io.public import convert_gse6764

# (characteristics as GEO shows them, title, expected stage); two samples per stage
SAMPLES = [
    ("normal liver tissue", "N1", "normal"),
    ("normal liver tissue", "N2", "normal"),
    ("cirrhotic liver tissue", "CS1", "cirrhosis"),
    ("cirrhotic liver tissue from patients without HCC", "CO1", "cirrhosis"),
    ("low-grade dysplastic nodule", "LGDN1", "low_grade_dysplastic_nodule"),
    ("low-grade dysplastic nodule", "LGDN2", "low_grade_dysplastic_nodule"),
    ("high-grade dysplastic nodule", "HGDN1", "high_grade_dysplastic_nodule"),
    ("high-grade dysplastic nodule", "HGDN2", "high_grade_dysplastic_nodule"),
    ("very early HCC", "veHCC1", "very_early_hcc"),
    ("very early HCC", "veHCC2", "very_early_hcc"),
    ("early HCC", "eHCC1", "early_hcc"),
    ("early HCC", "eHCC2", "early_hcc"),
    ("advanced HCC", "aHCC1", "advanced_hcc"),
    ("advanced HCC", "aHCC2", "advanced_hcc"),
    ("very advanced HCC", "vaHCC1", "very_advanced_hcc"),
    ("very advanced HCC", "vaHCC2", "very_advanced_hcc"),
]
ACCESSIONS = [f"GSM1559{19 + i}" for i in range(len(SAMPLES))]
# probe -> gene symbol in the platform table (None: the probe is not in the platform table)
PROBES = {
    "1007_s_at": "DDR1 /// MIR4640",  # several symbols: dropped
    "1053_at": "RFC2",
    "117_at": "HSPA6",
    "1405_i_at": "CCL5",
    "204655_at": "CCL5",              # the CCL5 probe with the higher mean
    "1431_at": "CYP2E1",              # the CYP2E1 probe with the higher mean
    "209975_at": "CYP2E1",
    "1294_at": "UBA7 /// MIR5193",
    "1552256_a_at": "SCARB1",         # has a null value: dropped
    "1552257_a_at": "TTLL12",
    "AFFX-BioB-5_at": "",             # control probe, no symbol: dropped
    "9999999_at": None,
}
LEVELS = {"1405_i_at": 60.0, "204655_at": 700.0, "1431_at": 5000.0, "209975_at": 800.0}

PLATFORM_COMMENTS = """#ID = Affymetrix Probe Set ID LINK_PRE:"https://www.affymetrix.com/LinkServlet?probeset="
#GB_ACC = GenBank Accession Number LINK_PRE:"http://www.ncbi.nlm.nih.gov/nuccore/?term="
#SPOT_ID = identifies controls
#Species Scientific Name = The genus and species of the organism represented by the probe set.
#Annotation Date = The date that the annotations for this probe array were last updated.
#Sequence Type =
#Sequence Source = The database from which the sequence used to design this probe set was taken.
#Target Description =
#Representative Public ID = The accession number of a representative sequence.
#Gene Title = Title of Gene represented by the probe set.
#Gene Symbol = A gene symbol, when one is available (from UniGene).
#ENTREZ_GENE_ID = Entrez Gene identifier
#RefSeq Transcript ID = References to multiple sequences in RefSeq.
#Gene Ontology Biological Process = Gene Ontology Consortium Biological Process derived from LocusLink.
#Gene Ontology Cellular Component = Gene Ontology Consortium Cellular Component derived from LocusLink.
#Gene Ontology Molecular Function = Gene Ontology Consortium Molecular Function derived from LocusLink.
"""
PLATFORM_HEADER = ["ID", "GB_ACC", "SPOT_ID", "Species Scientific Name", "Annotation Date", "Sequence Type",
                   "Sequence Source", "Target Description", "Representative Public ID", "Gene Title", "Gene Symbol",
                   "ENTREZ_GENE_ID", "RefSeq Transcript ID", "Gene Ontology Biological Process",
                   "Gene Ontology Cellular Component", "Gene Ontology Molecular Function"]


def _values(seed: int = 6764) -> dict[str, list[str]]:
    """MAS5-like signals (not log-scale); one null for SCARB1."""
    rng = np.random.default_rng(seed)
    out = {}
    for probe in PROBES:
        level = LEVELS.get(probe, float(rng.uniform(30, 3000)))
        vals = level * rng.lognormal(0.0, 0.3, len(SAMPLES))
        out[probe] = [f"{v:.1f}" for v in vals]
    out["1552256_a_at"][3] = "null"
    return out


def write_geo_download(root: Path, *, samples: list[tuple[str, str, str]] = SAMPLES) -> tuple[Path, dict[str, list[str]]]:
    root.mkdir(parents=True, exist_ok=True)
    accessions = [f"GSM1559{19 + i}" for i in range(len(samples))]

    def line(key: str, values: list[str]) -> str:
        return "\t".join([key, *(f'"{v}"' for v in values)])

    values = _values()
    lines = [
        '!Series_title\t"Gene expression in hepatitis C virus-associated multistep hepatocarcinogenesis"',
        '!Series_geo_accession\t"GSE6764"',
        '!Series_status\t"Public on Jul 01 2007"',
        '!Series_pubmed_id\t"17393520"',
        '!Series_summary\t"Hepatocellular carcinoma ... 75 samples ..."',
        '!Series_type\t"Expression profiling by array"',
        '!Series_contributor\t"Elisa,,Wurmbach"',
        f'!Series_sample_id\t"{" ".join(accessions)} "',
        '!Series_platform_id\t"GPL570"',
        "",
        line("!Sample_title", [t for _, t, _ in samples]),
        line("!Sample_geo_accession", accessions),
        line("!Sample_status", ["Public on Jul 01 2007"] * len(samples)),
        line("!Sample_type", ["RNA"] * len(samples)),
        line("!Sample_channel_count", ["1"] * len(samples)),
        line("!Sample_source_name_ch1", ["liver tissue"] * len(samples)),
        line("!Sample_organism_ch1", ["Homo sapiens"] * len(samples)),
        line("!Sample_characteristics_ch1", [c for c, _, _ in samples]),
        line("!Sample_molecule_ch1", ["total RNA"] * len(samples)),
        line("!Sample_data_processing", ["MAS5 signal, scaled to 500"] * len(samples)),
        line("!Sample_platform_id", ["GPL570"] * len(samples)),
        line("!Sample_data_row_count", [str(len(PROBES))] * len(samples)),
        "!series_matrix_table_begin",
        "\t".join(f'"{c}"' for c in ["ID_REF", *accessions]),
        *("\t".join([f'"{p}"', *values[p][: len(samples)]]) for p in PROBES),
        "!series_matrix_table_end",
    ]
    with gzip.open(root / "GSE6764_series_matrix.txt.gz", "wt") as fh:
        fh.write("\n".join(lines) + "\n")

    rows = ["\t".join(PLATFORM_HEADER)]
    for probe, symbol in PROBES.items():
        if symbol is None:
            continue
        spot = "--Control" if probe.startswith("AFFX") else ""
        rows.append("\t".join([probe, "U48705", spot, "Homo sapiens", "Oct 6, 2014", "Exemplar sequence",
                               "Affymetrix Proprietary Database", 'U48705 /FEATURE=mRNA /DEFINITION=5" UTR fragment',
                               "U48705", f"{symbol} title", symbol, "780", "NM_001202521",
                               "0001558 // regulation of cell growth // inferred from electronic annotation", "", ""]))
    (root / "GPL570-55999.txt").write_text(PLATFORM_COMMENTS + "\n".join(rows) + "\n")
    return root, values


def _log2(raw: list[str]) -> np.ndarray:
    return np.log2(np.array(raw, dtype=float))


def test_convert_gse6764_matches_fixture(tmp_path: Path) -> None:
    src, raw = write_geo_download(tmp_path / "geo")
    manifest = convert_gse6764(src, tmp_path / "out")
    assert validate_manifest(manifest).ok
    out = manifest.parent
    man = yaml.safe_load(manifest.read_text())
    assert "tables" not in man
    assert man["progression"]["stages"] == [
        "normal", "cirrhosis", "low_grade_dysplastic_nodule", "high_grade_dysplastic_nodule",
        "very_early_hcc", "early_hcc", "advanced_hcc", "very_advanced_hcc"]
    assert man["progression"]["expression"]["kind"] == "log_expression"
    assert man["progression"]["expression"]["gene_id"] == "symbol"

    samples = pd.read_csv(out / "progression_samples.csv")
    assert list(samples["sample_id"]) == ACCESSIONS
    assert list(samples["stage"]) == [s for _, _, s in SAMPLES]
    assert list(samples["title"]) == [t for _, t, _ in SAMPLES]

    expr = pd.read_csv(out / "progression_expression.csv", index_col=0)
    assert list(expr.columns) == ACCESSIONS
    # multi-symbol, symbol-less, unknown and incomplete probes are gone
    assert sorted(expr.index) == ["CCL5", "CYP2E1", "HSPA6", "RFC2", "TTLL12"]
    np.testing.assert_allclose(expr.loc["CCL5"].to_numpy(), _log2(raw["204655_at"]), atol=1e-5)
    np.testing.assert_allclose(expr.loc["CYP2E1"].to_numpy(), _log2(raw["1431_at"]), atol=1e-5)
    np.testing.assert_allclose(expr.loc["RFC2"].to_numpy(), _log2(raw["1053_at"]), atol=1e-5)

    adata = load_progression(manifest)
    assert list(adata.obs["stage"].cat.categories) == man["progression"]["stages"]


def test_mean_collapse_and_log_scale_input(tmp_path: Path) -> None:
    src, raw = write_geo_download(tmp_path / "geo")
    manifest = convert_gse6764(src, tmp_path / "out", collapse="mean")
    expr = pd.read_csv(manifest.parent / "progression_expression.csv", index_col=0)
    expected = (_log2(raw["1405_i_at"]) + _log2(raw["204655_at"])) / 2
    np.testing.assert_allclose(expr.loc["CCL5"].to_numpy(), expected, atol=1e-5)

    # values already on the log2 scale are kept as they are (GEO2R's quantile rule)
    path = src / "GSE6764_series_matrix.txt.gz"
    with gzip.open(path, "rt") as fh:
        text = fh.read().split("\n")
    begin = text.index("!series_matrix_table_begin")
    for i in range(begin + 2, text.index("!series_matrix_table_end")):
        probe, *vals = text[i].split("\t")
        text[i] = "\t".join([probe, *(v if v == "null" else f"{np.log2(float(v)):.4f}" for v in vals)])
    with gzip.open(path, "wt") as fh:
        fh.write("\n".join(text))
    expr = pd.read_csv(convert_gse6764(src, tmp_path / "out2").parent / "progression_expression.csv", index_col=0)
    np.testing.assert_allclose(expr.loc["RFC2"].to_numpy(), _log2(raw["1053_at"]), atol=1e-3)


def test_unmapped_samples_are_listed(tmp_path: Path) -> None:
    samples = [*SAMPLES[:4], ("metastatic colorectal cancer", "MET1", None)]
    src, _ = write_geo_download(tmp_path / "geo", samples=samples)
    with pytest.raises(DataValidationError, match=r"(?s)stage_map.*GSM155923.*metastatic colorectal cancer"):
        convert_gse6764(src, tmp_path / "out")
    manifest = convert_gse6764(src, tmp_path / "out", stage_map={"normal": "normal", "cirrhosis": "cirrho",
                                                                 "metastasis": "metasta"})
    assert yaml.safe_load(manifest.read_text())["progression"]["stages"] == ["normal", "cirrhosis", "metastasis"]
    with pytest.raises(OptionError, match="did you mean 'mean'"):
        convert_gse6764(src, tmp_path / "out", collapse="means")


def test_missing_series_matrix_says_what_to_download(tmp_path: Path) -> None:
    src, _ = write_geo_download(tmp_path / "geo")
    (src / "GSE6764_series_matrix.txt.gz").unlink()
    with pytest.raises(ManifestError, match=r"series matrix was not found.*GSE6764_series_matrix\.txt\.gz.*ncbi\.nlm\.nih\.gov/geo"):
        convert_gse6764(src, tmp_path / "out")
