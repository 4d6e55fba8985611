"""Bulk RNA-seq counts of the demo cohort with planted PI3K-Akt genes.

Counts are negative binomial with log-normal gene means, a dispersion trend
``alpha(mu) = a0 + a1 / mu`` (with gene-level scatter) and log-normal size factors.
The planted genes respond to the latent PI3K-Akt activity with a log2 fold change
per unit of activity drawn from ``U(0.4, 1.5)``; a few proliferation genes follow the
Edmondson-Steiner grade; every other gene is null.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from hccomics.datasets.genesets import gene_set, gene_sets

__all__ = ["ExpressionModel", "choose_genes", "simulate_counts"]

PI3K_AKT_SET = "WP4172"
GRADE_SET = "HALLMARK_E2F_TARGETS"
REQUIRED_PLANTED = ("IL6", "IL7")


@dataclass(frozen=True)
class ExpressionModel:
    """Parameters of the count generator (recorded in truth.json)."""

    n_planted: int = 40
    lfc_low: float = 0.4
    lfc_high: float = 1.5
    n_grade_genes: int = 12
    grade_lfc: float = 0.5
    log_mean_mu: float = 4.5
    log_mean_sd: float = 1.8
    planted_log_mean_mu: float = 5.0
    planted_log_mean_sd: float = 1.0
    dispersion_a0: float = 0.1
    dispersion_a1: float = 1.5
    dispersion_scatter_sd: float = 0.3
    size_factor_sd: float = 0.3


def _symbols_universe() -> list[str]:
    genes: dict[str, None] = {}
    for coll in ("wikipathways", "hallmark"):
        for s in gene_sets(coll).values():
            genes.update(dict.fromkeys(s.genes))
    # microRNA and lncRNA entries of pathway files are not measured by a poly-A count table
    return sorted(g for g in genes if not g.startswith(("MIR", "LINC")))


def choose_genes(n_genes: int, model: ExpressionModel, rng: np.random.Generator) -> tuple[list[str], list[str], list[str]]:
    """Return (all genes, planted PI3K-Akt genes, grade genes), real HGNC symbols."""
    universe = _symbols_universe()
    if n_genes > len(universe):
        raise ValueError(f"n_genes={n_genes} exceeds the {len(universe)} symbols of the bundled gene sets")
    pi3k = [g for g in gene_set(PI3K_AKT_SET).genes if g in set(universe)]
    others = sorted(set(pi3k) - set(REQUIRED_PLANTED))
    planted = list(REQUIRED_PLANTED) + list(rng.choice(others, size=model.n_planted - len(REQUIRED_PLANTED), replace=False))
    e2f = sorted(set(gene_set(GRADE_SET).genes) - set(pi3k) & set(universe))
    grade_genes = list(rng.choice(e2f, size=model.n_grade_genes, replace=False))
    rest = sorted(set(universe) - set(planted) - set(grade_genes))
    n_rest = n_genes - len(planted) - len(grade_genes)
    if n_rest < 0:
        raise ValueError(f"n_genes={n_genes} is smaller than the {len(planted) + len(grade_genes)} planted genes")
    genes = planted + grade_genes + list(rng.choice(rest, size=n_rest, replace=False))
    order = rng.permutation(len(genes))
    return [genes[i] for i in order], planted, grade_genes


def simulate_counts(
    activity: np.ndarray,
    grade: np.ndarray,
    recurrence_2y: pd.Series,
    *,
    n_genes: int,
    model: ExpressionModel,
    rng: np.random.Generator,
    null: bool = False,
) -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    """Draw a patients x genes count table.

    Returns
    -------
    counts
        Integer counts, patients x genes (index as ``recurrence_2y``).
    truth
        Generator parameters and the planted genes with their effects.
    gene_truth
        Per gene: base mean, dispersion, planted effect, implied log2 fold change
        between patients with and without ``recurrence_2y``.
    """
    genes, planted, grade_genes = choose_genes(n_genes, model, rng)
    g_index = {g: i for i, g in enumerate(genes)}
    n = activity.shape[0]

    log_mean = rng.normal(model.log_mean_mu, model.log_mean_sd, n_genes)
    idx_planted = np.array([g_index[g] for g in planted])
    log_mean[idx_planted] = rng.normal(model.planted_log_mean_mu, model.planted_log_mean_sd, len(planted))
    beta = np.zeros(n_genes)  # log2 fold change per unit of activity
    beta[idx_planted] = rng.uniform(model.lfc_low, model.lfc_high, len(planted))
    gamma = np.zeros(n_genes)  # log2 fold change per grade step
    idx_grade = np.array([g_index[g] for g in grade_genes])
    gamma[idx_grade] = model.grade_lfc
    if null:
        beta[:] = 0.0
        gamma[:] = 0.0

    base_mean = np.exp(log_mean)
    dispersion = (model.dispersion_a0 + model.dispersion_a1 / base_mean) * np.exp(
        rng.normal(0, model.dispersion_scatter_sd, n_genes)
    )
    log_sf = rng.normal(0, model.size_factor_sd, n)
    size_factors = np.exp(log_sf - log_sf.mean())

    # expected normalised expression, patients x genes
    log2_mu = np.log2(base_mean)[None, :] + activity[:, None] * beta[None, :] + (grade[:, None] - 2.0) * gamma[None, :]
    mu = size_factors[:, None] * np.exp2(log2_mu)
    # NB(mean mu, dispersion alpha) as a gamma-Poisson mixture
    lam = rng.gamma(shape=1.0 / dispersion[None, :], scale=mu * dispersion[None, :])
    counts = rng.poisson(lam).astype(np.int64)

    rec = recurrence_2y.to_numpy(dtype=float, na_value=np.nan)
    norm_mean = np.exp2(log2_mu)
    implied = np.log2(norm_mean[rec == 1].mean(axis=0) / norm_mean[rec == 0].mean(axis=0))
    gene_truth = pd.DataFrame(
        {
            "base_mean": base_mean,
            "dispersion": dispersion,
            "log2fc_per_activity": beta,
            "log2fc_per_grade": gamma,
            "planted": np.isin(np.arange(n_genes), idx_planted) & (not null),
            "grade_gene": np.isin(np.arange(n_genes), idx_grade) & (not null),
            "implied_log2fc_recurrence_2y": implied,
        },
        index=pd.Index(genes, name="gene"),
    )
    counts_df = pd.DataFrame(counts, index=recurrence_2y.index, columns=pd.Index(genes, name="gene"))
    truth = {
        "model": asdict(model),
        "null": null,
        "dispersion_trend": {"a0": model.dispersion_a0, "a1": model.dispersion_a1,
                             "form": "alpha(mu) = a0 + a1 / mu, times exp(N(0, scatter_sd))"},
        "size_factors": dict(zip(recurrence_2y.index, size_factors.round(6).tolist())),
        "pi3k_akt_set": gene_set(PI3K_AKT_SET).to_record(),
        "planted_genes": {} if null else {g: round(float(beta[g_index[g]]), 6) for g in planted},
        "grade_genes": {} if null else {g: model.grade_lfc for g in grade_genes},
        "implied_log2fc_recurrence_2y": {
            "definition": "log2 of mean expected normalised expression in recurrence_2y == 1 over == 0",
            "genes": {g: round(float(implied[g_index[g]]), 6) for g in (planted + grade_genes)},
            "all_other_genes": "0 (null)",
        },
    }
    return counts_df, truth, gene_truth
