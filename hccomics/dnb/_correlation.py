"""Pearson correlations by blocked matrix products, and Schäfer–Strimmer shrinkage correlation.

Every correlation here is a product of standardised columns: with ``Z = (X - mean) / ||X - mean||``
(per feature, over the samples considered), ``r = Z_a.T @ Z_b``. Products run in float64 over
blocks of features, so a genome-scale G never needs a G x G matrix: only ``block x k`` tiles
against the ``k`` features of interest, reduced as they are made.

A feature that is constant over the samples considered gets a zero column in ``Z``: its
correlation with anything is taken as 0 (not NaN). Public entry points refuse constant features
before they reach this module; the convention only keeps permuted stages (where a feature may
happen to be flat) free of NaN.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext

import numpy as np

__all__ = [
    "corr",
    "mean_abs_corr_to_all",
    "module_correlations",
    "shrinkage_correlation",
    "shrinkage_lambda",
    "standardize",
]

_TILE_BYTES = 64 * 2**20  # one block x k tile of float64 stays under this
_SMALL_FLOPS = 2e8        # below this per product, BLAS threads cost more than they bring


def blas_threads(flops: float) -> AbstractContextManager:
    """Run BLAS single-threaded when each product is small (``flops`` multiply-adds), else as is.

    Thin products (few samples) gain nothing from threads, and OpenBLAS threads that wait on a
    busy machine can make them ten times slower. Needs ``threadpoolctl`` (a scikit-learn
    dependency); without it this does nothing.
    """
    if flops >= _SMALL_FLOPS:
        return nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - optional
        return nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def standardize(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit-norm centred columns ``Z`` (so that ``Z.T @ Z`` is the correlation matrix) and the SDs.

    Parameters
    ----------
    x
        Samples x features.

    Returns
    -------
    z
        Samples x features, float64, Fortran order (contiguous feature columns).
    sd
        Per-feature standard deviation (``ddof=1``); 0 for a constant feature, whose column is 0.

    Examples
    --------
    >>> z, sd = standardize(np.array([[1.0, 2.0], [2.0, 4.0], [3.0, 9.0]]))
    >>> np.round(z.T @ z, 4).tolist(), sd.round(3).tolist()
    ([[1.0, 0.9707], [0.9707, 1.0]], [1.0, 3.606])
    """
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(axis=0)
    z = np.asfortranarray(x - mean)
    norm = np.sqrt(np.einsum("ij,ij->j", z, z))
    n = x.shape[0]
    # centring a constant column leaves rounding residue; treat |residue| << |mean| as constant
    flat = norm <= 1e-12 * np.sqrt(n) * np.maximum(1.0, np.abs(mean))
    norm = np.where(flat, 1.0, norm)
    z /= norm
    z[:, flat] = 0.0
    sd = np.where(flat, 0.0, norm / np.sqrt(max(n - 1, 1)))
    return z, sd


def corr(z_a: np.ndarray, z_b: np.ndarray | None = None, *, absolute: bool = False) -> np.ndarray:
    """Correlations between the columns of two standardised blocks (``z_b`` defaults to ``z_a``).

    Examples
    --------
    >>> z, _ = standardize(np.array([[1.0, 3.0], [2.0, 1.0], [3.0, 0.0]]))
    >>> corr(z, absolute=True).round(4).tolist()
    [[1.0, 0.982], [0.982, 1.0]]
    """
    r = z_a.T @ (z_a if z_b is None else z_b)
    np.clip(r, -1.0, 1.0, out=r)
    return np.abs(r, out=r) if absolute else r


def _block_rows(n_features: int, width: int, block: int | None) -> int:
    if block is not None:
        if block < 1:
            raise ValueError(f"block must be a positive number of features, got {block}")
        return int(block)
    return int(max(64, min(n_features, _TILE_BYTES // (8 * max(width, 1)))))


def module_correlations(
    z: np.ndarray, modules: Sequence[Sequence[int]], *, absolute: bool = True, block: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean correlation inside each module and between each module and all other features.

    One blocked pass over all ``G`` features serves every module: for the union ``U`` of the
    modules' features, ``s_f = sum_g r_fg`` (or ``|r_fg|``) is accumulated tile by tile; the
    module's outside sum is then ``sum_{f in m} s_f`` minus its inside sum (self-pairs included),
    taken from the module's own small product. Modules may overlap.

    Parameters
    ----------
    z
        Standardised samples x features (:func:`standardize`).
    modules
        Feature positions of each module (at least 2 features each).
    absolute
        Average ``|r|`` (default) or signed ``r``.
    block
        Features per tile of the outside pass; by default sized to keep a tile under 64 MiB.

    Returns
    -------
    pcc_in, pcc_out
        Per module: mean over the ``m (m - 1)`` ordered inside pairs, and over the ``m (G - m)``
        pairs with one feature inside and one outside (NaN when no feature is outside).

    Examples
    --------
    >>> x = np.random.default_rng(0).normal(size=(8, 30))
    >>> z, _ = standardize(x)
    >>> pin, pout = module_correlations(z, [[0, 1, 2], [5, 6, 7, 8]])
    >>> r = np.abs(np.corrcoef(x.T))
    >>> bool(np.isclose(pout[0], r[:3, 3:].mean())), bool(np.isclose(pin[1], r[5:9, 5:9][~np.eye(4, dtype=bool)].mean()))
    (True, True)
    """
    n_features = z.shape[1]
    mods = [np.asarray(m, dtype=np.intp) for m in modules]
    if not mods:
        return np.empty(0), np.empty(0)
    union = np.unique(np.concatenate(mods))
    zu = np.asfortranarray(z[:, union])
    colsum = np.zeros(union.size)
    step = _block_rows(n_features, union.size, block)
    for start in range(0, n_features, step):
        tile = z[:, start:start + step].T @ zu
        if absolute:
            np.abs(tile, out=tile)
        colsum += tile.sum(axis=0)
    pcc_in, pcc_out = np.empty(len(mods)), np.empty(len(mods))
    for k, m in enumerate(mods):
        inner = z[:, m].T @ z[:, m]
        if absolute:
            np.abs(inner, out=inner)
        total, diag = inner.sum(), np.trace(inner)
        size = m.size
        pcc_in[k] = (total - diag) / (size * (size - 1)) if size > 1 else np.nan
        outside = colsum[np.searchsorted(union, m)].sum() - total
        pcc_out[k] = outside / (size * (n_features - size)) if n_features > size else np.nan
    return pcc_in, pcc_out


def mean_abs_corr_to_all(z: np.ndarray, idx: Sequence[int], *, absolute: bool = True,
                         block: int | None = None) -> float:
    """Mean ``|r|`` (or signed ``r``) between a feature set and every feature outside it.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> x = rng.normal(size=(10, 50))
    >>> z, _ = standardize(x)
    >>> r = np.abs(np.corrcoef(x.T))
    >>> bool(np.isclose(mean_abs_corr_to_all(z, [3, 7], block=7), r[[3, 7]][:, np.setdiff1d(np.arange(50), [3, 7])].mean()))
    True
    """
    idx = np.unique(np.asarray(idx, dtype=np.intp))
    step = _block_rows(z.shape[1], idx.size, block)
    zi = np.asfortranarray(z[:, idx])
    total = 0.0
    for start in range(0, z.shape[1], step):
        tile = z[:, start:start + step].T @ zi
        total += float(np.abs(tile).sum() if absolute else tile.sum())
    inner = zi.T @ zi
    total -= float(np.abs(inner).sum() if absolute else inner.sum())
    return total / (idx.size * (z.shape[1] - idx.size))


def _lambda_from_standardized(z: np.ndarray) -> float:
    """Schäfer–Strimmer optimal shrinkage intensity from unit-norm centred columns ``z``.

    With ``x = z * sqrt(n - 1)`` (columns standardised with the unbiased SD), ``w_kij = x_ki x_kj``
    and ``wbar_ij = mean_k w_kij``::

        lambda = sum_{i != j} Var(r_ij) / sum_{i != j} r_ij^2
               = sum_{i != j} sum_k (w_kij - wbar_ij)^2 / (n (n - 1) sum_{i != j} wbar_ij^2)

    (``r_ij = n / (n - 1) wbar_ij``, ``Var(r_ij) = n / (n - 1)^3 sum_k (w_kij - wbar_ij)^2``), clipped
    to [0, 1]. Both sums are reduced without a p x p matrix: ``sum_{ij} sum_k w_kij^2 =
    sum_k (sum_i x_ki^2)^2`` and ``sum_{ij} wbar_ij^2 = ||x x'||_F^2 / n^2`` through the n x n Gram
    (or the p x p one when p < n).
    """
    n, p = z.shape
    if p < 2 or n < 3:
        return 1.0
    x = z * np.sqrt(n - 1.0)
    x2 = x * x
    row = x2.sum(axis=1)                      # sum_i x_ki^2, per sample
    sum_w2_all = float((row * row).sum())     # sum_{i,j} sum_k w_kij^2
    sum_w2_diag = float((x2 * x2).sum())      # the i == j part
    col = x2.sum(axis=0)                      # sum_k x_ki^2 = n - 1 (0 for a flat feature)
    gram = x @ x.T if n <= p else x.T @ x      # same Frobenius norm; take the smaller Gram
    sum_wbar2_off = (float((gram * gram).sum()) - float((col * col).sum())) / n**2
    if sum_wbar2_off <= 0.0:
        return 1.0
    sum_var_off = (sum_w2_all - sum_w2_diag) - n * sum_wbar2_off  # sum_{i!=j} sum_k (w - wbar)^2
    lam = sum_var_off / (n * (n - 1.0) * sum_wbar2_off)
    return float(min(1.0, max(0.0, lam)))


def shrinkage_lambda(x: np.ndarray) -> float:
    """Optimal shrinkage intensity of the correlations of ``x`` (samples x features) towards 0.

    The analytic estimator of Schäfer & Strimmer (Stat Appl Genet Mol Biol 2005, "target D"),
    as in R corpcor's ``cor.shrink`` / ``estimate.lambda`` with equal sample weights. Computed
    without a features x features matrix (cost ``O(min(n, p)^2 max(n, p))``), so it serves genome-scale stages.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> f = rng.normal(size=(400, 1))
    >>> round(shrinkage_lambda(f + 0.5 * rng.normal(size=(400, 6))), 3) < 0.01
    True
    """
    z, _ = standardize(x)
    return _lambda_from_standardized(z)


def shrinkage_correlation(x: np.ndarray) -> tuple[np.ndarray, float]:
    """Schäfer–Strimmer shrinkage correlation matrix ``(1 - lambda) r`` off the diagonal, 1 on it.

    Written by hand: no maintained Python library offers this estimator (scikit-learn's
    ``LedoitWolf`` / ``OAS`` shrink covariances towards a scaled identity, a different target and
    intensity; corpcor is R only). Meant for the small matrices of a module or a small stage.

    Returns
    -------
    r
        Features x features shrinkage correlation.
    lam
        The shrinkage intensity in [0, 1].

    Examples
    --------
    >>> x = np.array([[1.0, 2.0, 0.5], [2.0, 2.5, 1.0], [3.0, 5.0, 0.0], [4.0, 4.0, 2.0], [5.0, 7.0, 1.0]])
    >>> r, lam = shrinkage_correlation(x)
    >>> bool(0 <= lam <= 1), bool(np.allclose(r[0, 1], (1 - lam) * np.corrcoef(x.T)[0, 1]))
    (True, True)
    """
    z, _ = standardize(x)
    lam = _lambda_from_standardized(z)
    r = corr(z) * (1.0 - lam)
    np.fill_diagonal(r, 1.0)
    return r, lam
