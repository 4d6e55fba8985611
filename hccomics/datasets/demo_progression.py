"""Progression series with a dynamic network biomarker (DNB) module.

Each sample is one individual at one stage. Its expression is the state of a
noisy linear dynamical system, the linearisation around a stable equilibrium used
by Chen, Liu & Aihara (Sci Rep 2012): latent modes follow
``z(t+1) = lambda * z(t) + noise`` and genes read them out, ``x = mu + W z + e``.
As the stage approaches the critical one, the dominant eigenvalue ``lambda`` of the
mode that drives the DNB module tends to 1 (a bifurcation), so the module's
variance and inner correlation rise while its correlation with the rest of the
network falls; after the critical stage the system has tipped into a new
equilibrium (shifted means) where the mode is stable again.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["STAGES", "population_indices", "simulate_progression"]

STAGES = (
    "normal",
    "cirrhosis",
    "low_grade_dysplastic_nodule",
    "high_grade_dysplastic_nodule",
    "early_hcc",
    "advanced_hcc",
)
LAMBDA_FAR = 0.1       # eigenvalue of the DNB mode far from the transition
LAMBDA_CRITICAL = 0.93  # close to 1: the bifurcation
LAMBDA_AFTER = 0.2
BACKGROUND_LAMBDA = 0.5
NOISE_SD = 0.5
N_BURN_IN = 200


def _stage_lambdas(critical: int) -> np.ndarray:
    lam = np.empty(len(STAGES))
    for s in range(len(STAGES)):
        if s <= critical:
            lam[s] = LAMBDA_FAR + (LAMBDA_CRITICAL - LAMBDA_FAR) * ((s + 1) / (critical + 1)) ** 3
        else:
            lam[s] = LAMBDA_AFTER
    return lam


def _simulate_modes(rng: np.random.Generator, lam: np.ndarray, n_samples: int) -> np.ndarray:
    """Run ``z(t+1) = lam * z(t) + N(0, 1)`` from rest for N_BURN_IN steps; one run per sample."""
    z = np.zeros((n_samples, lam.size))
    for _ in range(N_BURN_IN):
        z = lam[None, :] * z + rng.standard_normal(z.shape)
    return z


def simulate_progression(
    genes: list[str],
    *,
    n_features: int,
    module_size: int,
    samples_per_stage: tuple[int, int],
    critical_stage: str,
    rng: np.random.Generator,
    null: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Draw log2 expression for the progression series.

    Returns
    -------
    expression
        Samples x features, log2 scale.
    samples
        ``sample_id`` index with ``stage``, ``stage_index`` and ``dominant_mode``: the
        sample's latent DNB mode ``z0`` (the one with eigenvalue ``lambda``, read out by the
        module genes; unit-free, variance ``1 / (1 - lambda^2)`` in the population). It is
        ground truth, not an observation: drop it before writing the samples table, keep it
        for truth files and for coupling other modalities (e.g. the nodule images of
        :mod:`hccomics.datasets.demo_progression_images`) to the same critical state.
        Recording it draws nothing, so the expression is the same as without it.
    truth
        Module genes, critical stage, eigenvalues and population indices per stage.
    """
    if critical_stage not in STAGES[1:-1]:
        raise ValueError(f"critical_stage must be one of {STAGES[1:-1]} (a stage with stages before and after it)")
    critical = STAGES.index(critical_stage)
    features = list(rng.choice(genes, size=n_features, replace=False))
    module_idx = rng.choice(n_features, size=module_size, replace=False)
    rest_idx = np.setdiff1d(np.arange(n_features), module_idx)
    n_factors = 10
    # background factors: each feature loads on one; factor 0 couples the module to partners
    factor_of = rng.integers(1, n_factors, size=n_features)
    partners = rng.choice(rest_idx, size=int(0.25 * rest_idx.size), replace=False)
    factor_of[module_idx] = 0
    factor_of[partners] = 0
    loading = rng.uniform(0.5, 0.9, n_features)
    w_module = rng.uniform(0.6, 1.0, module_size) * rng.choice([-1.0, 1.0], size=module_size, p=[0.3, 0.7])
    mu0 = rng.normal(6.0, 2.0, n_features)
    shift = np.zeros(n_features)
    shift[module_idx] = rng.uniform(1.0, 2.0, module_size) * np.sign(w_module)
    disease = rng.choice(rest_idx, size=int(0.05 * rest_idx.size), replace=False)
    trend = np.zeros(n_features)
    trend[disease] = rng.normal(0.0, 0.3, disease.size)
    lam = np.full(len(STAGES), LAMBDA_FAR) if null else _stage_lambdas(critical)
    if null:
        shift[:] = 0.0
        trend[:] = 0.0

    blocks, meta, dominant = [], [], []
    for s, stage in enumerate(STAGES):
        n_s = int(rng.integers(samples_per_stage[0], samples_per_stage[1] + 1))
        modes = _simulate_modes(rng, np.r_[lam[s], np.full(n_factors, BACKGROUND_LAMBDA)], n_s)
        x = mu0 + trend * s + (shift if s > critical else 0.0)
        x = np.broadcast_to(x, (n_s, n_features)).copy()
        x += loading[None, :] * modes[:, 1 + factor_of]
        x[:, module_idx] += modes[:, [0]] * w_module[None, :]
        x += rng.normal(0.0, NOISE_SD, x.shape)
        blocks.append(x)
        dominant.append(modes[:, 0])
        meta += [(f"PRG-{stage[:3].upper()}{s}-{j:02d}", stage, s) for j in range(n_s)]

    samples = pd.DataFrame(meta, columns=["sample_id", "stage", "stage_index"]).set_index("sample_id")
    samples["dominant_mode"] = np.concatenate(dominant).round(6)
    expression = pd.DataFrame(np.vstack(blocks).round(4), index=samples.index, columns=pd.Index(features, name="gene"))
    module_genes = [features[i] for i in module_idx]
    pop = population_indices(lam, loading, w_module, factor_of, module_idx, n_factors)
    truth = {
        "stages": list(STAGES),
        "critical_stage": None if null else critical_stage,
        "null": null,
        "module_genes": [] if null else module_genes,
        "module_loadings": {} if null else dict(zip(module_genes, w_module.round(6).tolist())),
        "eigenvalue_per_stage": dict(zip(STAGES, lam.round(6).tolist())),
        "model": (
            "z(t+1) = lambda * z(t) + N(0, 1) per sample for %d steps from rest; x = mu + trend * stage + "
            "shift (after the critical stage, module genes) + loading * factor + w * dominant mode (module) "
            "+ N(0, %.2f^2)" % (N_BURN_IN, NOISE_SD)
        ),
        "background_factors": {"n": n_factors, "eigenvalue": BACKGROUND_LAMBDA,
                               "module_partners": len(partners), "partner_fraction_of_rest": 0.25},
        "population_indices": pop,
    }
    return expression, samples, truth


def population_indices(
    lam: np.ndarray, loading: np.ndarray, w_module: np.ndarray, factor_of: np.ndarray,
    module_idx: np.ndarray, n_factors: int,
) -> dict[str, dict[str, float]]:
    """Population SD_in, mean |r| inside the module and to the rest, and the composite index per stage.

    Computed from the model's covariance, ``Sigma = L diag(var z) L' + NOISE_SD^2 I``, with
    ``var z = 1 / (1 - lambda^2)``.
    """
    n = loading.size
    out: dict[str, dict[str, float]] = {}
    rest = np.setdiff1d(np.arange(n), module_idx)
    for s, stage in enumerate(STAGES):
        var_bg = 1.0 / (1.0 - BACKGROUND_LAMBDA**2)
        var_dom = 1.0 / (1.0 - lam[s] ** 2)
        L = np.zeros((n, n_factors + 1))
        L[np.arange(n), 1 + factor_of] = loading
        L[module_idx, 0] = w_module
        var_z = np.r_[var_dom, np.full(n_factors, var_bg)]
        cov = (L * var_z) @ L.T + NOISE_SD**2 * np.eye(n)
        sd = np.sqrt(np.diag(cov))
        r = np.abs(cov / np.outer(sd, sd))
        m = module_idx
        r_in = r[np.ix_(m, m)][~np.eye(m.size, dtype=bool)].mean()
        r_out = r[np.ix_(m, rest)].mean()
        sd_in = sd[m].mean()
        out[stage] = {"sd_in": float(sd_in), "pcc_in": float(r_in), "pcc_out": float(r_out),
                      "composite_index": float(sd_in * r_in / r_out)}
    return out
