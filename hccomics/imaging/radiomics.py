"""A documented subset of radiomics features on scikit-image and SciPy.

PyRadiomics, the reference library, does not install on this project's Python (its sdist's version
metadata is inconsistent and its C extension does not build), so the features below follow its
definitions (IBSI) on well-kept libraries: NumPy / SciPy for first-order statistics, scikit-image's
``graycomatrix`` / ``graycoprops`` for texture and ``marching_cubes`` for the surface.

- **First order** (voxels of a region): mean, SD, 10th / 50th / 90th percentiles, skewness, excess
  kurtosis, and entropy (bits) of the intensity histogram with ``levels`` equal bins between the
  region's minimum and maximum.
- **Texture**: grey-level co-occurrence matrix (GLCM) of the region quantised to ``levels`` equal bins
  (IBSI "fixed bin number"), at distance 1 voxel in the four in-plane directions of every axial slice
  (``3D`` CT slices are often thick, so in-plane neighbours only), symmetric, summed over slices and
  directions before normalising (IBSI "merged" aggregation); contrast, dissimilarity, homogeneity,
  energy, correlation and ASM from ``graycoprops``. Pairs with a voxel outside the region are dropped.
- **Shape** (mask, mm): volume (mL), surface area (mm², marching cubes mesh), sphericity
  ``pi^(1/3) (6 V)^(2/3) / A``, maximum 3-D diameter (mm, mesh vertices on the convex hull), elongation
  and flatness (square roots of the principal-axis variance ratios), and radial CV (SD / mean of the
  distance from the centroid to the surface: margin lobulation).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from hccomics.errors import DataValidationError
from hccomics.imaging.metrics import _check_spacing

__all__ = ["FIRST_ORDER", "SHAPE", "TEXTURE", "first_order", "glcm_features", "shape_features"]

FIRST_ORDER = ("mean", "sd", "p10", "median", "p90", "skewness", "kurtosis", "entropy")
TEXTURE = ("contrast", "dissimilarity", "homogeneity", "energy", "correlation", "ASM")
SHAPE = ("volume_ml", "surface_mm2", "sphericity", "max_diameter_mm", "elongation", "flatness", "radial_cv")


def _quantise(values: np.ndarray, levels: int) -> np.ndarray:
    """Bins 0..levels-1 of equal width between the values' minimum and maximum (a constant region: bin 0)."""
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        return np.zeros(values.shape, dtype=np.int64)
    return np.minimum(((values - lo) / (hi - lo) * levels).astype(np.int64), levels - 1)


def first_order(values: np.ndarray, *, levels: int = 32) -> dict[str, float]:
    """First-order statistics of a region's voxel intensities (see the module doc); NaN for an empty region.

    Examples
    --------
    >>> r = first_order(np.array([1.0, 2.0, 3.0, 4.0]), levels=4)
    >>> r["mean"], round(r["sd"], 4), r["median"], r["entropy"]
    (2.5, 1.118, 2.5, 2.0)
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        return dict.fromkeys(FIRST_ORDER, math.nan)
    mean, sd = float(v.mean()), float(v.std())
    p10, median, p90 = (float(x) for x in np.percentile(v, [10, 50, 90]))
    centred = v - mean
    skew = float((centred**3).mean() / sd**3) if sd > 0 else 0.0
    kurt = float((centred**4).mean() / sd**4 - 3.0) if sd > 0 else 0.0
    counts = np.bincount(_quantise(v, levels), minlength=levels)
    p = counts[counts > 0] / v.size
    return {"mean": mean, "sd": sd, "p10": p10, "median": median, "p90": p90, "skewness": skew, "kurtosis": kurt,
            "entropy": float(-(p * np.log2(p)).sum())}


def glcm_features(image: np.ndarray, mask: np.ndarray, *, levels: int = 16) -> dict[str, float]:
    """GLCM texture of the region ``mask`` of a 3-D ``image`` (axial slices along the last axis); NaN if no pair.

    Examples
    --------
    A 4 x 4 checkerboard: the 48 horizontal and vertical (symmetric) pairs differ, the 36 diagonal ones
    agree, so homogeneity is (36 + 48 / 2) / 84 and correlation (36 - 48) / 84 / 0.25 / 4:

    >>> img = np.indices((4, 4, 1)).sum(axis=0) % 2 * 100.0
    >>> r = glcm_features(img, np.ones_like(img, bool), levels=2)
    >>> round(r["homogeneity"], 3), round(r["correlation"], 3), round(r["contrast"], 3)
    (0.714, -0.143, 0.571)
    """
    from skimage.feature import graycomatrix, graycoprops

    img = np.asarray(image, dtype=np.float64)
    m = np.asarray(mask, dtype=bool)
    if img.shape != m.shape or img.ndim != 3:
        raise DataValidationError(f"image and mask must be 3-D and of one shape; got {img.shape} and {m.shape}")
    if m.sum() < 2:
        return dict.fromkeys(TEXTURE, math.nan)
    q = np.zeros(img.shape, dtype=np.uint8)
    q[m] = _quantise(img[m], levels) + 1  # 0 marks voxels outside the region; its row and column are dropped
    total = np.zeros((levels, levels), dtype=np.float64)
    angles = [0.0, np.pi / 4, np.pi / 2, 3 * np.pi / 4]
    for k in np.flatnonzero(m.any(axis=(0, 1))):
        g = graycomatrix(q[:, :, k], distances=[1], angles=angles, levels=levels + 1, symmetric=True)
        total += g[1:, 1:, 0, :].sum(axis=-1)
    if total.sum() == 0:
        return dict.fromkeys(TEXTURE, math.nan)
    p = (total / total.sum())[:, :, None, None]
    out = {}
    for prop in TEXTURE:
        with np.errstate(invalid="ignore", divide="ignore"):
            out[prop] = float(graycoprops(p, prop)[0, 0])
    if not math.isfinite(out["correlation"]):  # one grey level: no variance, correlation undefined (IBSI: 1)
        out["correlation"] = 1.0
    return out


def shape_features(mask: np.ndarray, *, spacing: Sequence[float]) -> dict[str, float]:
    """Shape of a 3-D binary mask in mm (see the module doc); NaN for an empty mask.

    Examples
    --------
    >>> x, y, z = np.indices((41, 41, 41)) - 20
    >>> r = shape_features(x**2 + y**2 + z**2 <= 15**2, spacing=(1, 1, 1))
    >>> round(r["sphericity"], 2), round(r["max_diameter_mm"]), round(r["elongation"], 2)
    (0.92, 31, 1.0)

    The voxel staircase inflates the mesh area (sphericity 0.92 for a digital sphere, as in PyRadiomics) and
    the mesh runs half a voxel beyond the outer voxel centres (diameter 31 mm for radius 15).
    """
    from scipy.spatial import ConvexHull
    from skimage.measure import marching_cubes, mesh_surface_area

    m = np.asarray(mask, dtype=bool)
    sp = np.asarray(_check_spacing(spacing, 3))
    if not m.any():
        return dict.fromkeys(SHAPE, math.nan)
    volume = float(m.sum() * sp.prod())
    verts, faces, *_ = marching_cubes(np.pad(m, 1).astype(np.float32), level=0.5, spacing=tuple(sp))
    area = float(mesh_surface_area(verts, faces))
    from scipy.spatial import QhullError

    try:
        hull = verts[ConvexHull(verts).vertices]
    except QhullError:  # a flat or tiny mask has no 3-D hull; every vertex then
        hull = verts
    diffs = hull[:, None, :] - hull[None, :, :]
    diameter = float(np.sqrt((diffs**2).sum(-1)).max())
    coords = np.argwhere(m) * sp
    centroid = coords.mean(axis=0)
    eig = np.sort(np.linalg.eigvalsh(np.cov(coords.T))) if len(coords) > 3 else np.zeros(3)
    major = eig[2] if eig[2] > 0 else math.nan
    radial = np.linalg.norm(verts - sp - centroid, axis=1)
    return {"volume_ml": volume / 1000.0, "surface_mm2": area,
            "sphericity": float(math.pi ** (1 / 3) * (6 * volume) ** (2 / 3) / area),
            "max_diameter_mm": diameter, "elongation": float(math.sqrt(max(eig[1], 0) / major)),
            "flatness": float(math.sqrt(max(eig[0], 0) / major)), "radial_cv": float(radial.std() / radial.mean())}
