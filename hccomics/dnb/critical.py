"""Critical-state detection over an ordered progression, with a whole-pipeline permutation test.

Per stage: pre-select candidates, group them into modules (hierarchical clustering, or Louvain
communities for ``method="biotip"``), score every module with the composite index and keep the
best. The critical stage is the stage whose best module scores highest. Significance comes from
re-running all of it on stage labels permuted across samples (stage sizes kept), so that the
selection of candidates, modules, best module and best stage is part of the null. By default the
permuted units are the samples' deviations from their stage mean (rescaled by sqrt(n / (n - 1))),
with each stage's mean restored: a plain label shuffle would turn the stages' mean differences
into within-stage variance and correlation, the very signal under test, and lose most power on
real progressions whose stages differ in mean.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from hccomics._options import check_option
from hccomics.dnb._correlation import blas_threads
from hccomics.dnb._ssn import resolve_stages
from hccomics.dnb.indices import CORRELATIONS, composite_arrays, ic_arrays
from hccomics.dnb.modules import DEFAULT_CUT_DISTANCE, DEFAULT_EDGE_THRESHOLD, PRESELECT, StageOptions, stage_modules
from hccomics.errors import DataValidationError, HccomicsWarning

__all__ = ["ConstantFeaturesWarning", "CriticalStateResult", "critical_state"]

logger = logging.getLogger(__name__)
METHODS = ("dnb", "biotip")
PERMUTE = ("residuals", "samples")
MIN_STAGES, MIN_SAMPLES = 3, 3


class ConstantFeaturesWarning(HccomicsWarning):
    """Features constant overall or within a stage were dropped (``drop_constant=True``)."""


@dataclass
class CriticalStateResult:
    """Outcome of :func:`critical_state`.

    Attributes
    ----------
    critical_stage
        Stage whose best module has the highest index (ties: the earliest stage).
    module
        Feature names of that module.
    index
        Its index: the observed statistic of the permutation test.
    pvalue
        Stage-label permutation p-value of ``index`` (the whole pipeline re-run per permutation),
        ``(1 + #{null >= index}) / (1 + n_permutations)``; NaN without permutations.
    pvalue_feature
        The module's index against random feature sets of its size at the critical stage. The
        module was chosen as the best of many, so this p-value is optimistic; it says the module
        is not an arbitrary set of features, not that the stage is critical.
    scores
        One row per stage: the best module's size and indices, its Ic, and the 5/50/95 %
        quantiles of the permutation statistic of that stage (``null_q05`` ...).
    modules
        Per stage, every module kept with its indices and ``features``, best first.
    trajectory
        The critical module's indices and Ic in every stage.
    null, null_stage, null_feature
        Permutation maxima, per-stage permutation statistics (permutations x stages), and the
        random-feature-set indices.
    params
        Every parameter used, defaults resolved.
    """

    critical_stage: str
    module: list[str]
    index: float
    pvalue: float
    pvalue_feature: float
    scores: pd.DataFrame
    modules: dict[str, pd.DataFrame]
    trajectory: pd.DataFrame
    null: np.ndarray
    null_stage: pd.DataFrame
    null_feature: np.ndarray
    params: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        return (f"CriticalStateResult(critical_stage={self.critical_stage!r}, module={len(self.module)} features, "
                f"index={self.index:.4g}, pvalue={self.pvalue:.4g}, pvalue_feature={self.pvalue_feature:.4g})")

    def to_uns(self) -> dict:
        """A dict of plain values, arrays and DataFrames that AnnData can write to ``.h5ad``."""
        long = [(s, int(m), f) for s, t in self.modules.items() for m, fs in t["features"].items() for f in fs]
        tables = pd.concat({s: t.drop(columns="features") for s, t in self.modules.items() if len(t)},
                           names=["stage", "module"])
        return {"critical_stage": self.critical_stage, "module": list(self.module), "index": self.index,
                "pvalue": self.pvalue, "pvalue_feature": self.pvalue_feature, "scores": self.scores.reset_index(),
                "module_scores": tables.reset_index(), "trajectory": self.trajectory.reset_index(),
                "module_members": pd.DataFrame(long, columns=["stage", "module", "feature"]),
                "null": self.null, "null_stage": self.null_stage.to_numpy(), "null_feature": self.null_feature,
                "params": {k: _h5_safe(v) for k, v in self.params.items()}}


def _h5_safe(v: Any) -> Any:
    if v is None:
        return "none"
    if isinstance(v, (list, tuple)):
        return [str(e) for e in v]
    return v


def _prepare(adata: Any, stage_key: str, stage_order: Sequence[str] | None, layer: str | None,
             drop_constant: bool) -> tuple[np.ndarray, pd.Index, list[str], np.ndarray, list[str]]:
    if type(adata).__name__ != "AnnData":
        raise DataValidationError(f"expected an AnnData of samples x features, got {type(adata).__name__}; "
                                  "wrap a table with anndata.AnnData(table, obs=samples)")
    if layer is not None and layer not in adata.layers:
        raise DataValidationError(f"no layer {layer!r} (layers: {list(adata.layers)}); pass layer=None to use .X")
    stages = resolve_stages(adata.obs, stage_key, stage_order, adata.uns)
    labels = pd.Categorical(adata.obs[stage_key].astype(str), categories=stages).codes.astype(np.intp)
    raw = adata.X if layer is None else adata.layers[layer]
    x = np.asarray(raw.toarray() if hasattr(raw, "toarray") else raw, dtype=np.float64)
    names = pd.Index(adata.var_names.astype(str))
    problems = []
    if len(stages) < MIN_STAGES:
        problems.append(f"{len(stages)} stage(s) ({stages}); a critical transition needs at least {MIN_STAGES} "
                        "ordered stages: add stages or use a finer staging")
    counts = np.bincount(labels, minlength=len(stages))
    small = {s: int(c) for s, c in zip(stages, counts) if c < MIN_SAMPLES}
    if small:
        problems.append(f"stage(s) with fewer than {MIN_SAMPLES} samples: {small}; within-stage correlations need "
                        f"at least {MIN_SAMPLES}: merge them with a neighbouring stage or drop them")
    bad = ~np.isfinite(x)
    if bad.any():
        cols = names[bad.any(axis=0)]
        problems.append(f"{int(bad.sum())} missing or infinite value(s) in {len(cols)} feature(s) (first: "
                        f"{list(cols[:5])}); impute them or drop those features")
    if problems:
        raise DataValidationError("the progression data cannot be analysed", problems)
    flat = np.ptp(x, axis=0) == 0
    for s in range(len(stages)):
        flat |= np.ptp(x[labels == s], axis=0) == 0
    dropped = list(names[flat])
    if dropped:
        msg = (f"{len(dropped)} feature(s) are constant overall or within a stage (first: {dropped[:5]}); their "
               "correlations are undefined")
        if not drop_constant:
            raise DataValidationError(f"{msg}: drop them first or pass drop_constant=True")
        warnings.warn(f"{msg}; dropped", ConstantFeaturesWarning, stacklevel=3)
        x, names = x[:, ~flat], names[~flat]
    return x, names, stages, labels, dropped


def _quantiles(v: np.ndarray) -> np.ndarray:
    v = v[np.isfinite(v)]
    return np.quantile(v, [0.05, 0.5, 0.95]) if v.size else np.full(3, np.nan)


def critical_state(
    adata: Any,
    *,
    stage_key: str = "stage",
    stage_order: Sequence[str] | None = None,
    method: Literal["dnb", "biotip"] = "dnb",
    preselect: Literal["sd", "change", "sd_ratio"] = "sd_ratio",
    n_candidates: int | None = None,
    correlation: Literal["abs", "signed"] = "abs",
    shrinkage: bool = False,
    reference_stage: str | None = None,
    min_module_size: int = 5,
    cut_distance: float | None = None,
    n_clusters: int | None = None,
    edge_threshold: float | None = None,
    top_k: int | None = None,
    resolution: float = 1.0,
    n_permutations: int = 199,
    permute: Literal["residuals", "samples"] = "residuals",
    feature_null: int = 199,
    seed: int = 0,
    layer: str | None = None,
    drop_constant: bool = False,
    key_added: str | None = "critical_state",
    progress: bool = True,
) -> CriticalStateResult:
    """Find the critical stage of a progression and its dynamic network biomarker (DNB) module.

    Parameters
    ----------
    adata
        Samples x features with a stage column: log expression, VST counts or image features
        (bring features of different units to a common scale first: SD enters the index).
    stage_key
        obs column of each sample's stage.
    stage_order
        Stages in progression order; default the ordered categories of ``obs[stage_key]``, else
        ``uns["stages"]`` (:func:`hccomics.io.load_progression`), else order of appearance.
    method
        ``"dnb"``: modules by average-linkage clustering on ``1 - |r|`` (Chen et al. 2012);
        ``"biotip"``: Louvain communities of a correlation graph, scored by the same index (MCI).
    preselect
        Candidates per stage: ``"sd_ratio"`` (default: top within-stage SD divided by the reference
        stage's SD, the rise in fluctuation that marks a DNB), ``"sd"`` (top within-stage SD) or
        ``"change"`` (top ``|mean - mean_ref| / pooled SD``). With ``"sd_ratio"`` and ``"change"``
        the reference stage is selected by SD and cannot be the critical stage.
    n_candidates
        Candidates per stage; default 15% of the features, at least 150 and at most 2,000 (on the demo series,
        150 of 1,000 found the planted stage in 10/10 seeds against 9/10 with every feature).
    correlation
        ``"abs"`` (mean |r|) or ``"signed"`` (mean r: anti-correlated members cancel).
    shrinkage
        Schäfer–Strimmer shrinkage correlations (for small stages).
    reference_stage
        Reference of ``preselect="sd_ratio"`` / ``"change"``; default the first stage.
    min_module_size
        Smallest module scored.
    cut_distance, n_clusters
        Where the dendrogram is cut (``"dnb"``): default distance 0.3 (mean |r| >= 0.7).
    edge_threshold, top_k, resolution
        Correlation graph and Louvain resolution (``"biotip"``): default edges where |r| >= 0.8.
    n_permutations
        Stage-label permutations of the whole pipeline (0: no p-value).
    permute
        ``"residuals"`` (default): permute the samples' deviations from their stage mean and
        restore the stage means, so that the null keeps the stages' mean differences (which a
        label shuffle would turn into within-stage variance and correlation, the very signal
        tested) and only the stage-specific covariance is exchanged. ``"samples"``: shuffle the
        stage labels of the samples as they are (conservative when stage means differ).
    feature_null
        Random feature sets for ``pvalue_feature`` (0: none).
    seed
        Seed of the permutations, random feature sets and Louvain.
    layer
        Layer to use instead of ``.X``.
    drop_constant
        Drop features constant overall or within a stage (with a warning) instead of failing.
    key_added
        Store :meth:`CriticalStateResult.to_uns` in ``adata.uns[key_added]`` (None: do not store).
    progress
        Show a progress bar over permutations.

    Returns
    -------
    CriticalStateResult

    Examples
    --------
    >>> import anndata as ad
    >>> from hccomics.datasets.demo_progression import simulate_progression
    >>> genes = [f"G{i}" for i in range(600)]
    >>> expr, samples, truth = simulate_progression(genes, n_features=300, module_size=15, samples_per_stage=(10, 12),
    ...     critical_stage="low_grade_dysplastic_nodule", rng=np.random.default_rng(3))
    >>> a = ad.AnnData(expr, obs=samples[["stage"]])
    >>> a.uns["stages"] = truth["stages"]
    >>> res = critical_state(a, n_permutations=19, feature_null=19, progress=False)
    >>> res.critical_stage, res.pvalue, len(res.module), len(set(res.module) & set(truth["module_genes"]))
    ('low_grade_dysplastic_nodule', 0.05, 14, 14)
    >>> a.uns["critical_state"]["params"]["method"]
    'dnb'
    """
    check_option("method", method, METHODS)
    check_option("preselect", preselect, PRESELECT)
    check_option("correlation", correlation, CORRELATIONS)
    check_option("permute", permute, PERMUTE)
    x, names, stages, labels, dropped = _prepare(adata, stage_key, stage_order, layer, drop_constant)
    reference_stage = stages[0] if reference_stage is None else check_option("reference_stage", reference_stage, stages)
    n_feat = x.shape[1]
    if not 2 <= min_module_size <= n_feat:
        raise DataValidationError(f"min_module_size={min_module_size} must be between 2 and the number of features "
                                  f"({n_feat})")
    if n_candidates is None:
        n_candidates = min(2000, n_feat, max(150, int(np.ceil(0.15 * n_feat))))
    if n_candidates < min_module_size:
        raise DataValidationError(f"n_candidates={n_candidates} is below min_module_size={min_module_size}; raise it")
    if n_permutations < 0 or feature_null < 0:
        raise DataValidationError("n_permutations and feature_null must be 0 or more")
    o = StageOptions(method, preselect, min(int(n_candidates), n_feat), correlation == "abs", bool(shrinkage),
                 stages.index(reference_stage), int(min_module_size),
                 DEFAULT_CUT_DISTANCE if cut_distance is None else float(cut_distance), n_clusters,
                 DEFAULT_EDGE_THRESHOLD if edge_threshold is None and top_k is None else edge_threshold, top_k,
                 float(resolution), int(seed))
    params = {"stage_key": stage_key, "stage_order": list(stages), "method": method, "preselect": preselect,
              "n_candidates": o.n_candidates, "correlation": correlation, "shrinkage": bool(shrinkage),
              "reference_stage": reference_stage, "min_module_size": o.min_size, "cut_distance": o.cut_distance,
              "n_clusters": n_clusters, "edge_threshold": o.edge_threshold, "top_k": top_k,
              "resolution": o.resolution, "n_permutations": int(n_permutations), "permute": permute,
              "feature_null": int(feature_null), "seed": int(seed), "layer": layer,
              "drop_constant": bool(drop_constant), "dropped_features": dropped, "n_samples": int(x.shape[0]),
              "n_features": int(n_feat),
              "statistic": "max over stages of the best module's composite index SD_in * PCC_in / PCC_out",
              "ic_features": "module"}
    groups = [np.flatnonzero(labels == s) for s in range(len(stages))]
    n_max = max(g.size for g in groups)
    with blas_threads(n_max * o.n_candidates * max(o.n_candidates, n_feat)):
        result = _run(x, names, stages, labels, groups, o, params=params, progress=progress)
    logger.info("critical stage %s (index %.4g, p = %.3g, module of %d)", result.critical_stage, result.index,
                result.pvalue, len(result.module))
    if key_added is not None:
        adata.uns[key_added] = result.to_uns()
    return result


def _run(x: np.ndarray, names: pd.Index, stages: list[str], labels: np.ndarray, groups: list[np.ndarray],
         o: StageOptions, *, params: dict, progress: bool) -> CriticalStateResult:
    """The observed pipeline, the permutations, the feature null, and the result tables."""
    from tqdm.auto import tqdm

    n_feat, n_permutations, feature_null = x.shape[1], params["n_permutations"], params["feature_null"]
    obs = stage_modules(x, groups, o, keep=True)
    stats = np.array([r["stat"] for r in obs])
    if not np.isfinite(stats).any():
        raise DataValidationError(f"no stage has a module of at least {o.min_size} features; lower "
                                  "min_module_size, raise cut_distance (method='dnb') or lower edge_threshold "
                                  "(method='biotip')")
    crit = int(np.argmax(stats))  # first of equal maxima: the earliest stage
    best = obs[crit]
    module_idx = best["modules"][best["best"]]

    seeds = np.random.SeedSequence(params["seed"]).spawn(2)
    rng_perm, rng_feat = np.random.default_rng(seeds[0]), np.random.default_rng(seeds[1])
    null_stage = np.full((n_permutations, len(stages)), -np.inf)
    means = np.stack([x[g].mean(axis=0) for g in groups])
    sizes = np.bincount(labels, minlength=len(stages))
    # deviations from a stage's own mean have variance (n - 1) / n of the population's: undo that
    resid = (x - means[labels]) * np.sqrt(sizes / (sizes - 1.0))[labels, None]
    for p in tqdm(range(n_permutations), desc="critical_state permutations", unit="perm", disable=not progress):
        order = rng_perm.permutation(labels.size)
        if params["permute"] == "residuals":  # within-stage deviations change stage; stage means stay
            res = stage_modules(resid[order] + means[labels], groups, o)
        else:
            perm = labels[order]
            res = stage_modules(x, [np.flatnonzero(perm == s) for s in range(len(stages))], o)
        null_stage[p] = [r["stat"] for r in res]
    null = null_stage.max(axis=1)
    pvalue = float((1 + np.sum(null >= stats[crit])) / (1 + n_permutations)) if n_permutations else float("nan")

    sets = [np.sort(rng_feat.choice(n_feat, size=module_idx.size, replace=False)) for _ in range(feature_null)]
    null_feature = composite_arrays(best["z"], best["sd"], sets, absolute=o.absolute,
                                    shrinkage=o.shrinkage)["index"] if sets else np.empty(0)
    pvalue_feature = (float((1 + np.sum(null_feature >= stats[crit])) / (1 + feature_null)) if feature_null
                      else float("nan"))

    rows, tables, traj = [], {}, []
    for s, (stage, r) in enumerate(zip(stages, obs)):
        arr, mods = r["arrays"], r["modules"]
        t = pd.DataFrame(arr, index=pd.RangeIndex(len(mods), name="module"))
        t["features"] = [list(names[m]) for m in mods]
        tables[stage] = t.sort_values("index", ascending=False, kind="stable")
        row = {"stage": stage, "n_samples": len(groups[s]), "n_candidates": r["n_candidates"], "n_modules": len(mods)}
        if r["best"] >= 0:
            row.update({k: float(v[r["best"]]) for k, v in arr.items()})
            ic = ic_arrays(r["x"], r["z"], [mods[r["best"]]], shrinkage=o.shrinkage)
            row.update({k: float(v[0]) for k, v in ic.items()})
        q = _quantiles(null_stage[:, s]) if n_permutations else np.full(3, np.nan)
        row.update(null_q05=q[0], null_q50=q[1], null_q95=q[2], critical=s == crit)
        rows.append(row)
        tr = composite_arrays(r["z"], r["sd"], [module_idx], absolute=o.absolute, shrinkage=o.shrinkage)
        tr.update(ic_arrays(r["x"], r["z"], [module_idx], shrinkage=o.shrinkage))
        traj.append({"stage": stage, **{k: float(v[0]) for k, v in tr.items()}})
    scores = pd.DataFrame(rows).set_index("stage")
    scores["n_features"] = scores["n_features"].astype("Int64")
    for s, r in zip(stages, obs):
        logger.info("%s: %d modules, best index %.4g", s, len(r["modules"]), r["stat"])

    result = CriticalStateResult(
        critical_stage=stages[crit], module=list(names[module_idx]), index=float(stats[crit]), pvalue=pvalue,
        pvalue_feature=pvalue_feature, scores=scores, modules=tables,
        trajectory=pd.DataFrame(traj).set_index("stage"), null=null,
        null_stage=pd.DataFrame(null_stage, columns=pd.Index(stages, name="stage")), null_feature=null_feature,
        params=params)
    return result
