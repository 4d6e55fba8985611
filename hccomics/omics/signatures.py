"""Sample-level signature scores on variance-stabilised expression."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from hccomics._options import check_option
from hccomics.datasets.genesets import GeneSet, gene_set as bundled_gene_set
from hccomics.errors import DataValidationError

__all__ = ["score_signature", "signature_scores", "score_separation"]

logger = logging.getLogger(__name__)


def _as_gene_set(gene_set: GeneSet | str | Sequence[str], name: str | None) -> GeneSet:
    if isinstance(gene_set, GeneSet):
        return gene_set
    if isinstance(gene_set, str):
        return bundled_gene_set(gene_set)
    genes = tuple(dict.fromkeys(gene_set))
    return GeneSet(name or "_".join(genes[:3]), genes, "user", "n/a")


def score_signature(
    data: Any,
    gene_set: GeneSet | str | Sequence[str],
    *,
    layer: str = "vst",
    method: Literal["ssgsea", "zscore"] = "ssgsea",
    name: str | None = None,
    min_genes: int = 2,
    modality: str = "rna",
    key_added: str | None = None,
    copy: bool = False,
) -> Any:
    """Score every sample for one gene set on variance-stabilised expression (never raw counts).

    Parameters
    ----------
    data
        AnnData with ``layers[layer]`` or a cohort MuData (scores also go to ``data.obs``).
    gene_set
        A bundled set's name (``"WP4172"``), a :class:`~hccomics.datasets.GeneSet` or a list of genes.
    method
        ``"ssgsea"``: single-sample GSEA (Barbie et al. 2009, through ``gseapy.ssgsea``), rank based;
        ``"zscore"``: mean over the set's genes of each gene's z-score across samples.
    name
        Name of a list-of-genes set (default: its first genes joined).
    min_genes
        Fewest genes of the set that must be measured.
    key_added
        obs column; default ``f"score_{set name}_{method}"``. Parameters go to ``uns[key_added]``.

    Examples
    --------
    >>> import anndata as ad, numpy as np, pandas as pd
    >>> a = ad.AnnData(np.zeros((4, 3), dtype=np.float32), var=pd.DataFrame(index=["IL6", "IL7", "ALB"]))
    >>> a.layers["vst"] = np.array([[1.5, 1.5, 5], [2.5, 2.5, 5], [3.5, 3.5, 5], [4.5, 4.5, 5]], dtype=np.float32)
    >>> score_signature(a, ["IL6", "IL7"], method="zscore", name="IL6_IL7")
    >>> a.obs["score_IL6_IL7_zscore"].round(2).tolist()
    [-1.16, -0.39, 0.39, 1.16]
    """
    check_option("method", method, ("ssgsea", "zscore"))
    mdata = None
    if type(data).__name__ == "MuData":
        mdata = data.copy() if copy else data
        adata = mdata[modality]
    else:
        adata = data.copy() if copy else data
    if layer not in adata.layers:
        raise DataValidationError(f"no layer '{layer}'; compute it with hccomics.omics.variance_stabilize(data) first")
    values = np.asarray(adata.layers[layer], dtype=float)
    if layer == "counts" or (values.min() >= 0 and values.max() > 1 and np.array_equal(values, np.round(values))):
        raise DataValidationError(f"layer '{layer}' looks like raw counts; signature scores are computed on "
                                  "variance-stabilised expression (layer='vst')")
    gs = _as_gene_set(gene_set, name)
    symbols = adata.var["symbol"].astype(str) if "symbol" in adata.var else pd.Series(adata.var_names, index=adata.var_names)
    present = [g for g in gs.genes if g in set(symbols)]
    if len(present) < min_genes:
        raise DataValidationError(f"only {len(present)} of the {gs.size} genes of {gs.name} are measured "
                                  f"(need {min_genes}); check that the table uses HGNC symbols")
    expr = pd.DataFrame(np.asarray(adata.layers[layer], dtype=float), index=adata.obs_names, columns=symbols.to_numpy())
    expr = expr.loc[:, ~expr.columns.duplicated()]
    if method == "zscore":
        # hand-written: a plain mean of per-gene z-scores, which no library call computes as such
        sub = expr[present]
        z = (sub - sub.mean()) / sub.std(ddof=1).replace(0, np.nan)
        scores = z.mean(axis=1)
    else:
        import gseapy

        res = gseapy.ssgsea(data=expr.T, gene_sets={gs.name: present}, outdir=None, sample_norm_method="rank",
                            min_size=1, max_size=max(len(present), 1), permutation_num=0, threads=1,
                            no_plot=True, verbose=False).res2d
        scores = res.set_index("Name")["ES"].astype(float).reindex(expr.index.astype(str))
    key = key_added or f"score_{gs.name}_{method}"
    adata.obs[key] = scores.to_numpy()
    params = {**gs.to_record(), "method": method, "layer": layer, "n_genes_used": len(present),
              "genes_missing": [g for g in gs.genes if g not in set(present)][:50]}
    adata.uns[key] = {"params": params}
    if mdata is not None:
        mdata.obs[key] = pd.Series(scores.to_numpy(), index=adata.obs_names).reindex(mdata.obs_names)
        mdata.uns[key] = {"params": params}
    logger.info("%s: %d of %d genes scored with %s", gs.name, len(present), gs.size, method)
    return (mdata if mdata is not None else adata) if copy else None


def signature_scores(data: Any, keys: Sequence[str] | None = None) -> pd.DataFrame:
    """Tidy table of stored scores: samples x score columns, with ``.attrs`` holding their parameters."""
    obs = data.obs
    keys = list(keys) if keys is not None else [c for c in obs.columns if str(c).startswith("score_")]
    table = obs[keys].copy()
    table.attrs["hccomics"] = {k: data.uns.get(k, {}).get("params") for k in keys}
    return table


def score_separation(scores: pd.DataFrame, labels: pd.Series) -> pd.DataFrame:
    """ROC AUC of each score column for a binary label (samples with a missing label or score left out).

    Examples
    --------
    >>> s = pd.DataFrame({"a": [0.1, 0.4, 0.35, 0.8]})
    >>> score_separation(s, pd.Series([0, 0, 1, 1]))["auc"].item()
    0.75
    """
    from sklearn.metrics import roc_auc_score

    labels = labels.reindex(scores.index)  # match by sample ID, never by position
    if labels.notna().sum() == 0:
        raise DataValidationError(f"no sample of the scores has a {labels.name!r} label; check the sample IDs")
    rows = []
    for col in scores.columns:
        ok = labels.notna().to_numpy() & scores[col].notna().to_numpy()
        y = labels[ok].astype(int).to_numpy()
        if len(np.unique(y)) < 2:
            raise DataValidationError(f"{labels.name} has a single class among scored samples; AUC is undefined")
        rows.append({"score": col, "auc": float(roc_auc_score(y, scores.loc[ok, col])), "n": int(ok.sum()),
                     "n_positive": int(y.sum())})
    return pd.DataFrame(rows).set_index("score")
