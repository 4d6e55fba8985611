"""Critical-state indices of feature modules within one stage: the DNB composite index and Ic.

* Composite index (Chen, Liu & Aihara, Sci Rep 2012): ``I = SD_in * PCC_in / PCC_out`` with
  ``SD_in`` the mean within-stage SD of the module's features, ``PCC_in`` the mean |r| over pairs of
  module features and ``PCC_out`` the mean |r| between module features and *all* other features
  of the data (not only the pre-selected candidates). BioTIP's module critical index (MCI) is the
  same quantity computed on community-detection modules.
* Index of critical transition (Mojtahedi et al., PLoS Biol 2016; BioTIP ``getIc``):
  ``Ic = mean feature-feature |r| / mean sample-sample |r|``, both over the module's features.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from hccomics._options import check_option
from hccomics.dnb._correlation import _lambda_from_standardized, module_correlations, standardize
from hccomics.errors import DataValidationError

__all__ = ["composite_index", "transition_index"]

CORRELATIONS = ("abs", "signed")


def composite_arrays(z: np.ndarray, sd: np.ndarray, modules: Sequence[np.ndarray], *, absolute: bool = True,
                     shrinkage: bool = False, block: int | None = None) -> dict[str, np.ndarray]:
    """Composite index of every module of one stage from standardised data, in one blocked pass.

    With ``shrinkage`` the inside correlations are scaled by ``1 - lambda_in`` (Schäfer–Strimmer
    intensity of the module's own features) and the outside ones by ``1 - lambda_out`` (intensity
    of all features of the stage), i.e. ``cor.shrink`` applied to the module and to the whole stage.
    """
    size = np.array([m.size for m in modules], dtype=np.intp)
    sd_in = np.array([sd[m].mean() for m in modules]) if modules else np.empty(0)
    pcc_in, pcc_out = module_correlations(z, modules, absolute=absolute, block=block)
    out = {"n_features": size, "sd_in": sd_in, "pcc_in": pcc_in, "pcc_out": pcc_out}
    if shrinkage:
        lam_in = np.array([_lambda_from_standardized(z[:, m]) for m in modules])
        lam_out = np.full(len(modules), _lambda_from_standardized(z))
        out.update(pcc_in=pcc_in * (1.0 - lam_in), pcc_out=pcc_out * (1.0 - lam_out),
                   lambda_in=lam_in, lambda_out=lam_out)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["index"] = out["sd_in"] * out["pcc_in"] / out["pcc_out"]
    return out


def _mean_abs_offdiag_rows(y: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean |r| over pairs of rows of ``y`` (each row a variable), and the unit-norm centred rows."""
    zt, _ = standardize(y.T)
    r = np.abs(zt.T @ zt)
    k = r.shape[0]
    return float((r.sum() - np.trace(r)) / (k * (k - 1))), zt


def ic_arrays(x: np.ndarray, z: np.ndarray, modules: Sequence[np.ndarray], *,
              shrinkage: bool = False) -> dict[str, np.ndarray]:
    """Ic of every module: ``x`` the stage's samples x features as given, ``z`` its standardised form.

    Sample-sample r is computed across the module's features on the values as given (each
    sample's vector centred over the features, not each feature over the samples), as in
    Mojtahedi et al. 2016 and BioTIP's ``getIc``; on log-scale data the shared mean profile keeps
    it high unless samples diverge. |r| is used for both terms whatever ``correlation`` is elsewhere.
    """
    pf, ps, lf, ls = (np.empty(len(modules)) for _ in range(4))
    for k, m in enumerate(modules):
        zm = z[:, m]
        rf = np.abs(zm.T @ zm)
        pf[k] = (rf.sum() - np.trace(rf)) / (m.size * (m.size - 1))
        ps[k], zs = _mean_abs_offdiag_rows(x[:, m])
        if shrinkage:
            lf[k], ls[k] = _lambda_from_standardized(zm), _lambda_from_standardized(zs)
    if shrinkage:
        pf, ps = pf * (1.0 - lf), ps * (1.0 - ls)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = {"pcc_features": pf, "pcc_samples": ps, "ic": pf / ps}
    if shrinkage:
        out.update(lambda_features=lf, lambda_samples=ls)
    return out


def _stage_matrix(data: Any) -> tuple[np.ndarray, pd.Index]:
    if type(data).__name__ == "AnnData":
        x = data.X.toarray() if hasattr(data.X, "toarray") else data.X
        names = pd.Index(data.var_names.astype(str))
    elif isinstance(data, pd.DataFrame):
        x, names = data.to_numpy(), pd.Index(data.columns.astype(str))
    else:
        x = np.asarray(data)
        if x.ndim != 2:
            raise DataValidationError(f"expected a samples x features matrix, got an array of shape {x.shape}")
        names = pd.Index([str(i) for i in range(x.shape[1])])
    x = np.asarray(x, dtype=np.float64)
    if x.shape[0] < 3:
        raise DataValidationError(f"the stage has {x.shape[0]} sample(s); correlations need at least 3")
    if not np.isfinite(x).all():
        raise DataValidationError(f"the data hold {int((~np.isfinite(x)).sum())} missing or infinite value(s); "
                                  "impute or drop those features first")
    return x, names


def _resolve_modules(modules: Mapping[str, Sequence] | Sequence[Sequence], names: pd.Index,
                     ) -> tuple[list[str], list[np.ndarray]]:
    items = list(modules.items()) if isinstance(modules, Mapping) else [(str(k), m) for k, m in enumerate(modules)]
    labels, idx = [], []
    for label, members in items:
        members = list(members)
        if all(isinstance(f, (int, np.integer)) for f in members):
            pos = np.asarray(members, dtype=np.intp)
            bad = [int(p) for p in pos if not 0 <= p < len(names)]
        else:
            pos = names.get_indexer([str(f) for f in members])
            bad = [f for f, p in zip(members, pos) if p < 0]
        if bad:
            raise DataValidationError(f"module {label!r} names {len(bad)} feature(s) absent from the data "
                                      f"(first: {bad[:5]}); use the data's feature names or positions")
        pos = np.unique(pos)
        if pos.size < 2:
            raise DataValidationError(f"module {label!r} has {pos.size} distinct feature(s); a module needs at "
                                      "least 2 for an inside correlation")
        labels.append(str(label))
        idx.append(pos)
    return labels, idx


def composite_index(
    data: Any,
    modules: Mapping[str, Sequence] | Sequence[Sequence],
    *,
    correlation: Literal["abs", "signed"] = "abs",
    shrinkage: bool = False,
    block: int | None = None,
) -> pd.DataFrame:
    """DNB composite index ``SD_in * PCC_in / PCC_out`` of modules within one stage.

    Parameters
    ----------
    data
        One stage's samples x features: AnnData (``.X``), DataFrame or array.
    modules
        Feature names (or positions) per module; a mapping keeps its keys as module labels.
    correlation
        ``"abs"`` (default): mean |r|, as Chen et al. 2012. ``"signed"``: mean signed r, so that
        anti-correlated members cancel inside the module and positive and negative links to the
        rest cancel outside (the index can then be tiny, negative or unstable).
    shrinkage
        Scale the correlations by Schäfer–Strimmer shrinkage (``cor.shrink``): inside by the
        module's own intensity, outside by the stage's; meant for stages with few samples.
    block
        Features per tile of the blocked outside pass (default: tiles under 64 MiB).

    Returns
    -------
    pandas.DataFrame
        One row per module: ``n_features``, ``sd_in``, ``pcc_in``, ``pcc_out``, ``index``
        (and ``lambda_in``, ``lambda_out`` with shrinkage).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(12, 40))
    >>> x[:, :5] += 3 * rng.normal(size=(12, 1))
    >>> t = composite_index(x, {"planted": range(5), "random": range(20, 25)})
    >>> bool(t.loc["planted", "index"] > 5 * t.loc["random", "index"])
    True
    """
    check_option("correlation", correlation, CORRELATIONS)
    x, names = _stage_matrix(data)
    labels, idx = _resolve_modules(modules, names)
    z, sd = standardize(x)
    out = composite_arrays(z, sd, idx, absolute=correlation == "abs", shrinkage=shrinkage, block=block)
    return pd.DataFrame(out, index=pd.Index(labels, name="module"))


def transition_index(
    data: Any,
    modules: Mapping[str, Sequence] | Sequence[Sequence],
    *,
    shrinkage: bool = False,
) -> pd.DataFrame:
    """BioTIP's index of critical transition ``Ic`` of modules within one stage.

    ``Ic = mean |r| over pairs of module features / mean |r| over pairs of samples``, the
    sample-sample r taken across the module's features on the values as given (log scale), as
    Mojtahedi et al. 2016. It rises when features co-vary while samples diverge.

    Parameters
    ----------
    data
        One stage's samples x features: AnnData (``.X``), DataFrame or array.
    modules
        Feature names (or positions) per module; a mapping keeps its keys as module labels.
    shrinkage
        Schäfer–Strimmer shrinkage of both terms (features as variables for the numerator,
        samples as variables for the denominator), as BioTIP's shrinkage Ic.

    Returns
    -------
    pandas.DataFrame
        One row per module: ``pcc_features``, ``pcc_samples``, ``ic``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = 6 + rng.normal(size=(10, 30))
    >>> x[:, :6] += 3 * rng.normal(size=(10, 1))
    >>> t = transition_index(x, {"planted": range(6), "random": range(10, 16)})
    >>> bool(t.loc["planted", "ic"] > t.loc["random", "ic"])
    True
    """
    x, names = _stage_matrix(data)
    labels, idx = _resolve_modules(modules, names)
    z, _ = standardize(x)
    return pd.DataFrame(ic_arrays(x, z, idx, shrinkage=shrinkage), index=pd.Index(labels, name="module"))
