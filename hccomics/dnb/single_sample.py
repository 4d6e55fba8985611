"""Single-sample dynamic network biomarker (sDNB) scores against a reference stage.

Liu X, Chang X, Liu R, Yu X, Chen L, Aihara K (2017) Quantifying critical states of complex
diseases using single-sample dynamic network biomarkers. PLoS Comput Biol 13(7): e1005633.
The correlation change of one sample is the single-sample network (SSN) idea of Liu X, Wang Y,
Ji H, Aihara K, Chen L (2016) Personalized characterization of diseases using sample-specific
networks. Nucleic Acids Res 44(22): e164.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
from anndata import AnnData
from tqdm.auto import tqdm

from hccomics.dnb import _ssn
from hccomics.errors import DataValidationError

__all__ = ["single_sample"]

logger = logging.getLogger(__name__)

FORMULA = (
    "I_s = sED_in * sPCC_in / sPCC_out; sED_i = |x_i - mean_ref(x_i)|; sPCC_ij = PCC(reference + sample) - "
    "PCC(reference); sED_in = mean sED over module features; sPCC_in = mean |sPCC| over module pairs; "
    "sPCC_out = mean |sPCC| between module and non-module features; reference samples scored leave-one-out"
)


def module_score(ref: _ssn.Reference, sed: np.ndarray, module: np.ndarray,
                 samples: np.ndarray) -> np.ndarray:
    """sED_in, sPCC_in, sPCC_out and I_s of one module for the given samples (samples x 4).

    ``ref`` and ``sed`` come from :mod:`hccomics.dnb._ssn`; ``module`` holds feature indices.
    """
    p = ref.mean.size
    module = np.asarray(module, dtype=np.intp)
    rest = np.setdiff1d(np.arange(p), module)
    iu, ju = np.triu_indices(module.size, k=1)
    i_in, j_in = module[iu], module[ju]
    i_out, j_out = np.repeat(module, rest.size), np.tile(rest, module.size)
    spcc_in = np.nanmean(np.abs(_ssn.delta_pcc(ref, i_in, j_in, samples)), axis=1)
    spcc_out = np.nanmean(np.abs(_ssn.delta_pcc(ref, i_out, j_out, samples)), axis=1)
    sed_in = sed[np.asarray(samples)][:, module].mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        score = sed_in * spcc_in / spcc_out
    return np.column_stack([sed_in, spcc_in, spcc_out, score])


def _module_indices(adata: AnnData, module: Sequence[str] | None, n_top: int) -> np.ndarray | None:
    p = adata.n_vars
    if module is None:
        if not (isinstance(n_top, int | np.integer) and 2 <= n_top < p):
            raise DataValidationError(f"n_top must be an integer from 2 to n_features - 1 = {p - 1}, got {n_top!r}")
        return None
    if isinstance(module, str):
        raise DataValidationError(f"module must be a list of feature names, got the string {module!r}; "
                                  "wrap it in a list")
    names = list(dict.fromkeys(str(m) for m in module))
    index = pd.Index(adata.var_names.astype(str))
    missing = [m for m in names if m not in index]
    if missing:
        raise DataValidationError(f"{len(missing)} module feature(s) are not in var_names (first: {missing[:5]}); "
                                  "pass names of measured features")
    if not 2 <= len(names) < p:
        raise DataValidationError(f"a module needs at least 2 features and fewer than all {p}, got {len(names)}")
    return index.get_indexer(names)


def single_sample(
    adata: AnnData,
    *,
    stage_key: str = "stage",
    reference_stage: str | None = None,
    module: Sequence[str] | None = None,
    n_top: int = 20,
    stage_order: Sequence[str] | None = None,
    layer: str | None = None,
    key_added: str = "sdnb",
    copy: bool = False,
) -> AnnData | None:
    """Score every sample with the single-sample DNB composite index against a reference stage.

    For sample ``s`` and a module ``M`` of features (the rest ``R``), with the reference
    stage's samples as the reference (``n`` samples, means ``mu``):

    * ``sED_i(s) = |x_i(s) - mu_i|`` (single-sample expression deviation; the brief's sSD);
    * ``sPCC_ij(s) = PCC_{n+1}(i, j) - PCC_n(i, j)``: the Pearson correlation of the reference
      plus sample ``s`` minus that of the reference alone (the single-sample network, Liu et
      al. NAR 2016), computed for every pair by an exact rank-one update;
    * ``I_s = sED_in * sPCC_in / sPCC_out`` with ``sED_in`` the mean sED over ``M``,
      ``sPCC_in`` the mean ``|sPCC|`` over pairs inside ``M`` and ``sPCC_out`` the mean
      ``|sPCC|`` over pairs between ``M`` and ``R`` (Liu et al. PLoS Comput Biol 2017).

    Deviations from the paper: (1) the module. The paper clusters each sample's genes by
    ``2 - |sPCC|`` and keeps the cluster with the largest ``I_s``; here the module is either
    given (``module=``, e.g. a DNB module found on the group data, the same for every sample)
    or, by default, each sample's ``n_top`` features of largest sED. (2) Reference samples are
    scored leave-one-out (against the other reference samples) rather than left out, so their
    scores form the baseline on the same footing. (3) No significance filter on sPCC.

    Parameters
    ----------
    adata
        Samples x features (log-scale expression or other continuous features).
    stage_key
        obs column with each sample's stage.
    reference_stage
        Stage whose samples form the reference; default the first stage (``stage_order``, the
        column's categories, ``uns["stages"]`` or order of appearance). Needs >= 4 samples.
    module
        Feature names of the module scored in every sample; ``None``: each sample's ``n_top``
        features of largest sED.
    n_top
        Module size when ``module`` is None.
    stage_order
        Order of the stages, when the column is not an ordered categorical.
    layer
        Layer to use instead of ``.X``.
    key_added
        ``obs[key_added]``: ``I_s`` per sample; ``obsm[key_added]``: DataFrame with ``sed_in``,
        ``spcc_in``, ``spcc_out``, ``score``; ``layers[f"{key_added}_sed"]``: sED of every feature;
        ``uns[key_added]``: parameters, formula, module (or each sample's module), per-stage
        mean / SD / count and the stage with the highest mean (the reference excluded).
    copy
        Return an annotated copy instead of writing into ``adata``.

    Returns
    -------
    The annotated copy when ``copy=True``, else ``None``.

    Examples
    --------
    >>> import anndata as ad, numpy as np
    >>> from hccomics.datasets.demo_progression import simulate_progression
    >>> expr, samples, truth = simulate_progression([f"G{i}" for i in range(300)], n_features=200, module_size=15,
    ...     samples_per_stage=(8, 8), critical_stage="low_grade_dysplastic_nodule", rng=np.random.default_rng(0))
    >>> a = ad.AnnData(expr, obs=samples)
    >>> single_sample(a, module=truth["module_genes"])
    >>> a.uns["sdnb"]["critical_stage"]
    'low_grade_dysplastic_nodule'
    """
    adata = adata.copy() if copy else adata
    stages = _ssn.resolve_stages(adata.obs, stage_key, stage_order, dict(adata.uns))
    ref_stage = _ssn.check_reference_stage(stages, reference_stage)
    module_idx = _module_indices(adata, module, n_top)
    x = _ssn.matrix(adata, layer)
    features = [str(v) for v in adata.var_names]
    stage = adata.obs[stage_key].astype(str)
    ref = _ssn.reference(x, (stage == ref_stage).to_numpy(), ref_stage, features)
    sed = ref.sed

    n = adata.n_obs
    if module_idx is not None:
        parts = module_score(ref, sed, module_idx, np.arange(n))
        sample_modules = None
    else:
        parts = np.empty((n, 4))
        top = np.argsort(-sed, axis=1, kind="stable")[:, :n_top]
        for s in tqdm(range(n), desc="sDNB", unit="sample", disable=n < 200):
            parts[s] = module_score(ref, sed, top[s], np.array([s]))[0]
        sample_modules = {str(o): [features[k] for k in top[s]] for s, o in enumerate(adata.obs_names)}

    table = pd.DataFrame(parts, index=adata.obs_names, columns=["sed_in", "spcc_in", "spcc_out", "score"])
    adata.obs[key_added] = table["score"].to_numpy()
    adata.obsm[key_added] = table
    adata.layers[f"{key_added}_sed"] = sed
    summary = _ssn.stage_summary(table["score"], stage, stages, ref_stage)
    adata.uns[key_added] = {
        "params": {"stage_key": stage_key, "reference_stage": ref_stage, "n_reference": ref.n,
                   "module": "given" if module_idx is not None else f"top {n_top} sED per sample",
                   "n_top": int(n_top), "layer": layer or "X", "stages": stages},
        "formula": FORMULA,
        "module": [features[k] for k in module_idx] if module_idx is not None else [],
        **({"sample_modules": sample_modules} if sample_modules is not None else {}),
        **summary,
    }
    logger.info("sDNB against %s (%d samples): highest mean score at %s", ref_stage, ref.n, summary["critical_stage"])
    return adata if copy else None
