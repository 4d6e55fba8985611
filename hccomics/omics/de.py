"""Differential expression and variance-stabilised expression on PyDESeq2."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from hccomics._options import check_option
from hccomics.errors import DataValidationError, HccomicsWarning
from hccomics.omics._inputs import counts_and_metadata, design_variables

__all__ = ["differential_expression", "variance_stabilize", "ShrinkageSignFlipWarning", "DroppedSamplesWarning"]

logger = logging.getLogger(__name__)


class ShrinkageSignFlipWarning(HccomicsWarning):
    """LFC shrinkage changed the sign of some log fold changes."""


class DroppedSamplesWarning(HccomicsWarning):
    """Samples were left out because a design variable is missing for them."""


def _prepare_design(
    meta: pd.DataFrame, variables: list[str], contrast: Sequence[str] | None = None
) -> tuple[pd.DataFrame, int]:
    """Keep design columns, drop NA rows, make factors categorical with the reference level first."""
    missing = [v for v in variables if v not in meta.columns]
    if missing:
        raise DataValidationError(f"design variables {missing} are not columns of the metadata (columns: {list(meta.columns)[:15]})")
    factor, tested, reference = (str(x) for x in contrast) if contrast is not None else (None, None, None)
    if contrast is not None and factor not in variables:
        raise DataValidationError(f"contrast factor '{factor}' is not in the design; add it, e.g. '~ ... + {factor}'")
    keep = meta[variables].notna().all(axis=1)
    n_dropped = int((~keep).sum())
    design = meta.loc[keep, variables].copy()
    for v in variables:
        col = design[v]
        categorical = v == factor or not pd.api.types.is_numeric_dtype(col) or isinstance(col.dtype, pd.CategoricalDtype)
        if not categorical:
            continue
        values = col.astype(str) if not pd.api.types.is_float_dtype(col) else col.map(lambda x: str(int(x)) if float(x).is_integer() else str(x))
        levels = sorted(values.unique())
        if len(levels) < 2:
            raise DataValidationError(
                f"design factor '{v}' has a single level ({levels}) among the {len(design)} usable samples; "
                "drop it from the design or add samples of another level"
            )
        if v == factor:
            for lvl, role in ((tested, "tested"), (reference, "reference")):
                if lvl not in levels:
                    check_option(f"contrast {role} level of '{factor}'", lvl, levels)
            levels = [reference] + [lvl for lvl in levels if lvl != reference]
        design[v] = pd.Categorical(values, categories=levels)
    return design, n_dropped


def differential_expression(
    data: Any,
    *,
    design: str,
    contrast: Sequence[str],
    metadata: pd.DataFrame | None = None,
    layer: str = "counts",
    alpha: float = 0.05,
    cooks_filter: bool = True,
    independent_filter: bool = True,
    shrink: bool = False,
    annotation: pd.Series | None = None,
    n_cpus: int | None = None,
    modality: str = "rna",
    key_added: str = "de",
) -> pd.DataFrame:
    """Wald tests of one contrast with PyDESeq2 (size factors, dispersions, Cook's outliers, filtering).

    Parameters
    ----------
    data
        A cohort MuData (counts of ``data[modality]``, design from ``data.obs``), an AnnData
        (``layers[layer]`` and ``.obs``) or a samples x genes count DataFrame with ``metadata``.
    design
        Wilkinson formula, e.g. ``"~ sex + recurrence_2y"`` (covariates first, the tested factor last).
    contrast
        ``[factor, tested level, reference level]`` as in PyDESeq2, e.g. ``["recurrence_2y", "1", "0"]``.
    metadata
        Design table indexed by sample; overrides the data's own.
    alpha
        Significance level used by independent filtering.
    cooks_filter, independent_filter
        DESeq2's outlier and mean-count filters.
    shrink
        Replace ``log2FoldChange`` / ``lfcSE`` by apeGLM-style shrunk values (the MLE stays in
        ``log2FoldChange_mle``); warns when shrinkage flips a sign.
    annotation
        Gene ID -> symbol (versioned Ensembl IDs are matched without version); adds ``symbol``.
    n_cpus
        Processes for PyDESeq2 (default: all).
    key_added
        Where results and parameters go in ``uns`` of the AnnData that holds the counts.

    Returns
    -------
    pandas.DataFrame
        Indexed by gene with DESeq2's columns ``baseMean``, ``log2FoldChange``, ``lfcSE``,
        ``stat``, ``pvalue``, ``padj``; ``.attrs["hccomics"]`` holds the parameters, the number of
        samples used and dropped, and the fitted dispersion trend ``a0 + a1 / mu``.

    Examples
    --------
    >>> import hccomics as hc, tempfile
    >>> mdata = hc.io.load_cohort(hc.datasets.make_demo_cohort(tempfile.mkdtemp(), profile="smoke"))
    >>> res = differential_expression(mdata, design="~ recurrence_2y", contrast=["recurrence_2y", "1", "0"], n_cpus=1)
    >>> list(res.columns[:6])
    ['baseMean', 'log2FoldChange', 'lfcSE', 'stat', 'pvalue', 'padj']
    """
    from pydeseq2.dds import DeseqDataSet
    from pydeseq2.default_inference import DefaultInference
    from pydeseq2.ds import DeseqStats

    if len(contrast) != 3:
        raise DataValidationError(f"contrast must be [factor, tested level, reference level], got {list(contrast)}")
    inp = counts_and_metadata(data, metadata=metadata, layer=layer, modality=modality)
    variables = design_variables(design)
    meta, n_dropped = _prepare_design(inp.metadata, variables, contrast)
    if n_dropped:
        warnings.warn(f"{n_dropped} sample(s) have a missing design variable ({', '.join(variables)}) and were left out; "
                      f"{len(meta)} remain", DroppedSamplesWarning, stacklevel=2)
    counts = inp.counts.loc[meta.index]  # explicit re-indexing: PyDESeq2 trusts the order it is given
    factor, tested, reference = (str(x) for x in contrast)
    inference = DefaultInference(n_cpus=n_cpus)
    dds = DeseqDataSet(counts=counts, metadata=meta, design=design, refit_cooks=True, inference=inference, quiet=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # PyDESeq2's notes on factor coding
        dds.deseq2()
        stats = DeseqStats(dds, contrast=[factor, tested, reference], alpha=alpha, cooks_filter=cooks_filter,
                           independent_filter=independent_filter, inference=inference, quiet=True)
        stats.summary()
    res = stats.results_df.copy()
    if shrink:
        coeff = f"{factor}[T.{tested}]"
        if coeff not in dds.varm["LFC"].columns:
            raise DataValidationError(f"cannot shrink: coefficient {coeff} not in the fit ({list(dds.varm['LFC'].columns)})")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            stats.lfc_shrink(coeff=coeff)
        shrunk = stats.results_df
        res["log2FoldChange_mle"] = res["log2FoldChange"]
        res["log2FoldChange"], res["lfcSE"] = shrunk["log2FoldChange"], shrunk["lfcSE"]
        flips = (np.sign(res["log2FoldChange"]) * np.sign(res["log2FoldChange_mle"]) < 0).sum()
        if flips:
            warnings.warn(f"shrinkage flipped the sign of {flips} log2 fold change(s); read those genes from "
                          "log2FoldChange_mle", ShrinkageSignFlipWarning, stacklevel=2)
    if annotation is not None:
        key = res.index.str.replace(r"\.\d+$", "", regex=True)
        res["symbol"] = pd.Series(annotation).reindex(key).to_numpy()
    elif "symbol" in inp.var.columns and not (inp.var["symbol"].astype(str) == inp.var.index).all():
        res["symbol"] = inp.var["symbol"].reindex(res.index).to_numpy()
    res.index.name = "gene"
    trend = dds.uns.get("trend_coeffs")
    params = {
        "design": design, "contrast": [factor, tested, reference], "alpha": alpha, "cooks_filter": cooks_filter,
        "independent_filter": independent_filter, "shrink": shrink, "layer": layer, "n_samples": int(len(meta)),
        "n_dropped_na": n_dropped, "n_genes": int(counts.shape[1]),
        "dispersion_trend": {"a0": float(trend.iloc[0]), "a1": float(trend.iloc[1])} if trend is not None else {},
        "method": "PyDESeq2 Wald test",
    }
    res.attrs["hccomics"] = params
    if inp.target is not None:
        inp.target.uns[key_added] = {"params": params, "results": res}
    logger.info("%d of %d genes with padj < %s", int((res["padj"] < alpha).sum()), len(res), alpha)
    return res


def variance_stabilize(
    data: Any,
    *,
    layer: str = "counts",
    blind: bool = True,
    design: str = "~1",
    metadata: pd.DataFrame | None = None,
    fit_type: Literal["parametric", "mean"] = "parametric",
    modality: str = "rna",
    key_added: str = "vst",
) -> pd.DataFrame | None:
    """DESeq2's variance-stabilising transformation, stored as ``layers[key_added]``.

    Parameters
    ----------
    blind
        Fit the dispersion trend ignoring the design (DESeq2's ``blind=TRUE``), as for QC and PCA.
    design
        Used when ``blind=False``.
    fit_type
        ``"parametric"`` (DESeq2's default) or ``"mean"``.

    Returns
    -------
    None, or for a bare count table the samples x genes VST DataFrame.
    """
    from pydeseq2.dds import DeseqDataSet

    check_option("fit_type", fit_type, ("parametric", "mean"))
    inp = counts_and_metadata(data, metadata=metadata, layer=layer, modality=modality)
    meta = inp.metadata
    if not blind:
        meta, n_dropped = _prepare_design(inp.metadata, design_variables(design))
        if n_dropped:
            raise DataValidationError(f"{n_dropped} sample(s) have missing design variables; use blind=True or fill them")
    dds = DeseqDataSet(counts=inp.counts.loc[meta.index], metadata=meta, design=design if not blind else "~1",
                       fit_type=fit_type, quiet=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        dds.vst(use_design=not blind, fit_type=fit_type)
    vst = pd.DataFrame(np.asarray(dds.layers["vst_counts"]), index=meta.index, columns=inp.counts.columns)
    if inp.target is None:
        return vst
    inp.target.layers[key_added] = vst.loc[inp.target.obs_names.astype(str)].to_numpy(dtype=np.float32)
    inp.target.uns[key_added] = {"params": {"blind": blind, "design": design, "fit_type": fit_type, "layer": layer}}
    return None
