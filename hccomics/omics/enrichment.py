"""Pathway enrichment on bundled or user gene sets, offline: over-representation and pre-ranked GSEA."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from hccomics._options import check_option
from hccomics.datasets.genesets import COLLECTIONS, GeneSet, gene_sets as bundled_gene_sets, read_gmt
from hccomics.errors import DataValidationError, HccomicsWarning

__all__ = ["enrich", "prerank", "resolve_gene_sets", "NoOverlapWarning"]

logger = logging.getLogger(__name__)
GeneSetsLike = str | Path | Mapping[str, GeneSet] | Mapping[str, Sequence[str]]


class NoOverlapWarning(HccomicsWarning):
    """A gene set shares no gene with the tested universe; it is reported, not called 'not enriched'."""


def resolve_gene_sets(gene_sets: GeneSetsLike) -> dict[str, GeneSet]:
    """Bundled collection name, GMT path, or mapping -> ``{name: GeneSet}`` with provenance.

    Examples
    --------
    >>> sets = resolve_gene_sets({"IL6_IL7": ["IL6", "IL7"]})
    >>> sets["IL6_IL7"].collection, sets["IL6_IL7"].size
    ('user', 2)
    """
    if isinstance(gene_sets, str) and gene_sets in COLLECTIONS:
        return bundled_gene_sets(gene_sets)
    if isinstance(gene_sets, (str, Path)):
        path = Path(gene_sets)
        if not path.is_file():
            check_option("gene_sets", str(gene_sets), tuple(COLLECTIONS))  # raises with a hint
        return read_gmt(path)
    out = {}
    for name, genes in gene_sets.items():
        out[name] = genes if isinstance(genes, GeneSet) else GeneSet(name, tuple(dict.fromkeys(genes)), "user", "n/a")
    return out


def _bh(p: np.ndarray) -> np.ndarray:
    from scipy.stats import false_discovery_control

    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        out[ok] = false_discovery_control(p[ok], method="bh")
    return out


def _ranking(de: pd.DataFrame, column: str) -> pd.Series:
    if column not in de.columns:
        raise DataValidationError(f"the DE table has no column '{column}' (columns: {list(de.columns)})")
    r = de[column].dropna()
    if "symbol" in de.columns:  # Ensembl-indexed results rank by symbol; keep the strongest duplicate
        sym = de.loc[r.index, "symbol"]
        r = pd.Series(r.to_numpy(), index=sym.to_numpy())[sym.notna().to_numpy()]
        r = r.iloc[np.argsort(-np.abs(r.to_numpy()), kind="stable")]
        r = r[~r.index.duplicated()]
    return r.sort_values(ascending=False)


def _gene_names(de: pd.DataFrame) -> pd.Series:
    return de["symbol"] if "symbol" in de.columns else pd.Series(de.index, index=de.index)


def enrich(
    de: pd.DataFrame,
    gene_sets: GeneSetsLike = "wikipathways",
    *,
    alpha: float = 0.05,
    direction: Literal["up", "down", "both"] = "both",
    lfc_threshold: float = 0.0,
    universe: Sequence[str] | None = None,
    min_size: int = 5,
    max_size: int = 1000,
) -> pd.DataFrame:
    """Over-representation of significant genes in gene sets, with an explicit background universe.

    The hypergeometric test is gseapy's (``gseapy.enrich``); the Benjamini-Hochberg FDR is taken
    over every set tested (size in the universe within ``[min_size, max_size]``), including sets
    with no significant gene, which gseapy leaves out.

    Parameters
    ----------
    de
        Output of :func:`~hccomics.omics.differential_expression`.
    gene_sets
        ``"wikipathways"``, ``"hallmark"``, a GMT path, or ``{name: genes}``.
    alpha
        Genes with ``padj < alpha`` (and ``|log2FoldChange| > lfc_threshold``) are significant.
    direction
        Use up-regulated, down-regulated or both.
    universe
        Background genes; default: genes with a non-NA adjusted p-value.

    Returns
    -------
    pandas.DataFrame
        One row per set: ``collection``, ``version``, ``set_size``, ``size_in_universe``,
        ``overlap``, ``expected``, ``odds_ratio``, ``pvalue``, ``fdr``, ``genes``, ``status``
        (``tested``, ``no_overlap`` when the set shares no gene with the universe, or
        ``size_out_of_range``), sorted by p-value with a ``rank`` among tested sets.
    """
    import gseapy

    check_option("direction", direction, ("up", "down", "both"))
    missing = [c for c in ("padj", "log2FoldChange") if c not in de.columns]
    if missing:
        raise DataValidationError(f"the DE table lacks {missing}; pass the output of hccomics.omics.differential_expression")
    sets = resolve_gene_sets(gene_sets)
    names = _gene_names(de)
    uni = pd.Index(universe if universe is not None else names[de["padj"].notna()].dropna()).unique()
    sig_mask = (de["padj"] < alpha) & (de["log2FoldChange"].abs() > lfc_threshold)
    if direction == "up":
        sig_mask &= de["log2FoldChange"] > 0
    elif direction == "down":
        sig_mask &= de["log2FoldChange"] < 0
    significant = pd.Index(names[sig_mask].dropna()).intersection(uni).unique()
    uni_set = set(uni)
    rows = []
    for name, gs in sets.items():
        in_uni = [g for g in gs.genes if g in uni_set]
        status = "tested" if min_size <= len(in_uni) <= max_size else ("no_overlap" if not in_uni else "size_out_of_range")
        rows.append({"term": name, "collection": gs.collection, "version": gs.version, "set_size": gs.size,
                     "size_in_universe": len(in_uni), "status": status, "_genes": in_uni})
    table = pd.DataFrame(rows).set_index("term")
    no_overlap = table.index[table.status == "no_overlap"]
    if len(no_overlap):
        warnings.warn(f"{len(no_overlap)} gene set(s) share no gene with the universe of {len(uni)} genes "
                      f"(first: {list(no_overlap[:5])}); they are reported with status 'no_overlap'. Check the gene "
                      "identifiers (symbols vs Ensembl) of the sets and of the table.", NoOverlapWarning, stacklevel=2)
    tested = table.index[table.status == "tested"]
    sig_set = set(significant)
    table["overlap"] = [len(sig_set.intersection(g)) for g in table["_genes"]]
    table["expected"] = table["size_in_universe"] * len(significant) / max(len(uni), 1)
    table["genes"] = [";".join(sorted(sig_set.intersection(g))) for g in table["_genes"]]
    table["pvalue"] = np.where(table.status == "tested", 1.0, np.nan)
    table["odds_ratio"] = np.nan
    hits = [t for t in tested if table.at[t, "overlap"] > 0]
    if hits and len(significant):
        res = gseapy.enrich(gene_list=list(significant), gene_sets={t: table.at[t, "_genes"] for t in hits},
                            background=list(uni), outdir=None, cutoff=1.0, no_plot=True, verbose=False).res2d
        res = res.set_index("Term")
        table.loc[res.index, "pvalue"] = res["P-value"].to_numpy()
        table.loc[res.index, "odds_ratio"] = res["Odds Ratio"].to_numpy()
    table["fdr"] = np.nan
    table.loc[tested, "fdr"] = _bh(table.loc[tested, "pvalue"].to_numpy(dtype=float))
    table = table.drop(columns="_genes").sort_values(["pvalue", "overlap"], ascending=[True, False], na_position="last")
    table["rank"] = np.nan
    table.loc[table.status == "tested", "rank"] = np.arange(1, (table.status == "tested").sum() + 1)
    table.attrs["hccomics"] = {"method": "over-representation (hypergeometric, gseapy.enrich), BH over tested sets",
                               "alpha": alpha, "direction": direction, "lfc_threshold": lfc_threshold,
                               "n_significant": int(len(significant)), "universe_size": int(len(uni)),
                               "min_size": min_size, "max_size": max_size}
    return table


def prerank(
    de: pd.DataFrame,
    gene_sets: GeneSetsLike = "wikipathways",
    *,
    rank_by: str = "stat",
    min_size: int = 15,
    max_size: int = 500,
    permutation_num: int = 1000,
    keep_running: Sequence[str] = (),
    seed: int = 0,
    threads: int = 2,
) -> pd.DataFrame:
    """Pre-ranked GSEA (gseapy) of genes ranked by the Wald statistic (or another column).

    Returns
    -------
    pandas.DataFrame
        One row per set: ``collection``, ``version``, ``set_size``, ``size_in_ranking``, ``es``,
        ``nes``, ``pvalue``, ``fdr``, ``fwer``, ``leading_edge``, ``status`` (sets outside the size
        range or without overlap are listed, not dropped), sorted by FDR then ``|NES|``, with ``rank``.
        ``.attrs["running_scores"]`` holds the running enrichment score of the top 10 sets and of
        those named in ``keep_running``: ``{term: {"res": [...], "hits": [...]}}``.
    """
    import gseapy

    sets = resolve_gene_sets(gene_sets)
    ranking = _ranking(de, rank_by)
    ranked = set(ranking.index)
    rows, testable = [], {}
    for name, gs in sets.items():
        in_rank = [g for g in gs.genes if g in ranked]
        status = "tested" if min_size <= len(in_rank) <= max_size else ("no_overlap" if not in_rank else "size_out_of_range")
        rows.append({"term": name, "collection": gs.collection, "version": gs.version, "set_size": gs.size,
                     "size_in_ranking": len(in_rank), "status": status})
        if status == "tested":
            testable[name] = in_rank
    table = pd.DataFrame(rows).set_index("term")
    for col in ("es", "nes", "pvalue", "fdr", "fwer"):
        table[col] = np.nan
    table["leading_edge"] = ""
    running = {}
    if testable:
        pre = gseapy.prerank(rnk=ranking, gene_sets=testable, min_size=min_size, max_size=max_size,
                             permutation_num=permutation_num, outdir=None, seed=seed, threads=threads,
                             no_plot=True, verbose=False)
        res = pre.res2d.set_index("Term")
        for src, dst in (("ES", "es"), ("NES", "nes"), ("NOM p-val", "pvalue"), ("FDR q-val", "fdr"), ("FWER p-val", "fwer")):
            table.loc[res.index, dst] = res[src].astype(float).to_numpy()
        table.loc[res.index, "leading_edge"] = res["Lead_genes"].astype(str).to_numpy()
        order = table.loc[res.index].assign(a=lambda d: -d.nes.abs()).sort_values(["fdr", "a"]).index
        for term in list(order[:10]) + [t for t in keep_running if t in pre.results]:
            r = pre.results[term]
            running[term] = {"res": np.asarray(r["RES"], dtype=float).round(5).tolist(), "hits": list(map(int, r["hits"]))}
    table = table.assign(_a=-table.nes.abs()).sort_values(["fdr", "_a"], na_position="last").drop(columns="_a")
    table["rank"] = np.nan
    table.loc[table.status == "tested", "rank"] = np.arange(1, (table.status == "tested").sum() + 1)
    table.attrs["hccomics"] = {"method": "pre-ranked GSEA (gseapy.prerank)", "rank_by": rank_by,
                               "permutation_num": permutation_num, "seed": seed, "min_size": min_size,
                               "max_size": max_size, "n_ranked_genes": int(len(ranking))}
    table.attrs["running_scores"] = running
    table.attrs["ranking"] = ranking.round(6).to_dict() if running else {}
    return table
