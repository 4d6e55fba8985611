"""Nodule images for the progression series, coupled to its dominant latent mode.

Each progression sample gets one 2-D arterial-phase CT-like patch (HU) centred on its
nodule. The picture is drawn from a handful of interpretable attributes (nodule radius,
contrast, internal texture, fibrous septa, margin irregularity, necrosis). Every attribute
has a mean per stage plus independent noise; the coupled ones (radius, contrast, texture)
also load on the sample's dominant latent mode ``z0`` from
:func:`hccomics.datasets.demo_progression.simulate_progression`, whose variance
``1 / (1 - lambda^2)`` peaks at the critical stage. Their spread across samples therefore
rises there and they correlate with the DNB gene module, which is what a joint gene + image
DNB analysis should find. After the critical stage the coupled attributes shift (the system
tips), as the module genes do.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage
from scipy.special import expit

from hccomics._options import check_option
from hccomics.datasets.demo_progression import LAMBDA_FAR, N_BURN_IN, STAGES, _stage_lambdas
from hccomics.errors import DataValidationError
from hccomics.io.nifti import save_nifti

__all__ = ["IMAGE_ATTRIBUTES", "simulate_progression_images"]

# name: (unit, description, stage means in STAGES order, independent SD, loading on z0, shift after
#        the critical stage, range the renderer clips the value to)
IMAGE_ATTRIBUTES: dict[str, tuple[str, str, tuple[float, ...], float, float, float, tuple[float, float]]] = {
    "nodule_radius_mm": ("mm", "mean radius of the nodule",
                         (1.8, 2.4, 3.0, 3.8, 4.6, 6.0), 0.3, 0.35, 0.6, (0.5, np.inf)),
    "nodule_contrast_hu": ("HU", "nodule minus parenchyma attenuation (arterial-like phase)",
                           (-25.0, -30.0, -45.0, -50.0, 45.0, 55.0), 3.0, 3.5, 5.0, (-np.inf, np.inf)),
    "log_texture_hu": ("log HU", "natural log of the SD of the nodule's internal texture",
                       tuple(np.log([3.0, 4.0, 5.0, 6.0, 9.0, 14.0]).round(6)), 0.1, 0.1, 0.15, (-np.inf, np.inf)),
    "septa_hu": ("HU", "peak enhancement of the fibrous septa in the parenchyma",
                 (0.0, 22.0, 18.0, 15.0, 10.0, 6.0), 2.0, 0.0, 0.0, (0.0, np.inf)),
    "margin_irregularity": ("fraction of radius", "RMS of the radial harmonics 2-5 of the nodule outline",
                            (0.02, 0.03, 0.05, 0.08, 0.12, 0.2), 0.02, 0.0, 0.0, (0.0, 0.45)),
    "necrosis_fraction": ("fraction of radius", "radius of the necrotic centre over the nodule radius (<= 0: none)",
                          (-0.15, -0.15, -0.15, -0.15, -0.1, 0.45), 0.04, 0.0, 0.0, (0.0, 0.8)),
}
PARENCHYMA_HU = 100.0
PARENCHYMA_TEXTURE_HU = 2.0   # smooth background heterogeneity, same at every stage
NECROSIS_HU = 25.0
PIXEL_NOISE_HU = 4.0
EDGE_MM = 0.3                 # width of the nodule's soft edge (partial volume)
SEPTA_FREE_MM = (1.5, 2.5)    # septa fade in between these distances beyond the nodule edge
CORRELATION_MM = {"parenchyma": 1.5, "septa": 1.5, "texture": 0.6}
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]+$")


def _field(white: np.ndarray, corr_mm: float, spacing_mm: float) -> np.ndarray:
    """Smooth white noise to a correlation length and rescale to unit SD."""
    f = ndimage.gaussian_filter(white, corr_mm / spacing_mm, mode="reflect")
    return (f - f.mean()) / f.std()


def _render(a: dict[str, float], harmonics: np.ndarray, phases: np.ndarray, white: np.ndarray,
            size: int, spacing_mm: float) -> np.ndarray:
    """Draw one patch (HU) from clipped attribute values and the sample's own noise fields."""
    half_fov = size * spacing_mm / 2
    c = (np.arange(size) - (size - 1) / 2) * spacing_mm
    x, y = np.meshgrid(c, c, indexing="ij")
    r, theta = np.hypot(x, y), np.arctan2(y, x)
    k = np.arange(2, 2 + harmonics.size)
    shape = (harmonics[:, None, None] * np.cos(k[:, None, None] * theta + phases[:, None, None])).sum(0)
    shape /= np.sqrt((harmonics**2).sum() / 2)  # unit RMS around the circle
    radius = min(a["nodule_radius_mm"], 0.8 * half_fov)
    outline = np.clip(radius * (1 + a["margin_irregularity"] * shape), 0.3 * radius, 0.95 * half_fov)
    inside = expit((outline - r) / (EDGE_MM / 4))
    necrotic = 0.0
    if a["necrosis_fraction"] > 0:
        necrotic = inside * expit((a["necrosis_fraction"] * outline - r) / (EDGE_MM / 4))
    parenchyma, septa, texture, noise = white
    septa_band = np.exp(-(_field(septa, CORRELATION_MM["septa"], spacing_mm) / 0.25) ** 2)
    lo, hi = SEPTA_FREE_MM
    septa_band *= np.clip((r - outline - lo) / (hi - lo), 0, 1)
    img = PARENCHYMA_HU + PARENCHYMA_TEXTURE_HU * _field(parenchyma, CORRELATION_MM["parenchyma"], spacing_mm)
    img += a["septa_hu"] * septa_band
    img += inside * (a["nodule_contrast_hu"]
                     + np.exp(a["log_texture_hu"]) * _field(texture, CORRELATION_MM["texture"], spacing_mm))
    img = img * (1 - necrotic) + NECROSIS_HU * necrotic
    return img + PIXEL_NOISE_HU * noise


def _affine(size: int, spacing_mm: float) -> np.ndarray:
    """Pixel index -> mm, with the image centre (the nodule's centre) at world (0, 0)."""
    affine = np.diag([spacing_mm, spacing_mm, 1.0, 1.0])
    affine[:2, 3] = -(size - 1) / 2 * spacing_mm
    return affine


def _check_samples(samples: pd.DataFrame, *, need_mode: bool) -> list[str]:
    problems = []
    ids = [str(i) for i in samples.index]
    if "stage" not in samples.columns:
        problems.append("no 'stage' column")
    elif not samples["stage"].isin(STAGES).all():
        bad = sorted(set(samples["stage"][~samples["stage"].isin(STAGES)].astype(str)))
        problems.append(f"unknown stages {bad}; expected {list(STAGES)}")
    if need_mode:
        if "dominant_mode" not in samples.columns:
            problems.append("no 'dominant_mode' column (simulate_progression returns it)")
        elif not np.isfinite(pd.to_numeric(samples["dominant_mode"], errors="coerce")).all():
            problems.append("'dominant_mode' has missing or non-numeric values")
    if len(set(ids)) != len(ids):
        problems.append("sample ids (the index) are not unique")
    unsafe = [i for i in ids if not _SAFE_ID.match(i)]
    if unsafe:
        problems.append(f"sample ids must be letters, digits, '.', '_' or '-' (they name files): {unsafe[:5]}")
    return problems


def simulate_progression_images(
    samples: pd.DataFrame,
    *,
    critical_stage: str,
    out_dir: Path,
    size: int = 48,
    spacing_mm: float = 0.5,
    rng: np.random.Generator,
    null: bool = False,
) -> tuple[list[dict], dict]:
    """Write one 2-D nodule image per progression sample and return its records and truth.

    Attribute ``k`` of a sample at stage ``s`` is
    ``a_k = m_k[s] + shift_k * (s > critical) + l_k * z0 + sd_k * N(0, 1)``, with ``z0`` the
    sample's ``dominant_mode``; ``l_k`` is non-zero only for the coupled attributes (radius,
    contrast, texture) and zero for all of them when ``null``. The patch is arterial-phase
    CT-like (HU): parenchyma with smooth heterogeneity, fibrous septa (bright curvilinear
    bands, kept off the nodule's surroundings), a nodule with a soft, harmonically perturbed
    outline, internal texture and a necrotic centre, then white pixel noise.

    Parameters
    ----------
    samples
        Index ``sample_id`` with ``stage`` and ``dominant_mode`` columns, as returned by
        :func:`~hccomics.datasets.demo_progression.simulate_progression`
        (``dominant_mode`` may be absent when ``null``).
    critical_stage
        The progression's critical stage; the coupled attributes shift after it.
    out_dir
        Images go to ``out_dir / "progression_images" / f"{sample_id}.nii.gz"``.
    size
        Side of the square image in pixels.
    spacing_mm
        Pixel spacing in mm (the field of view is ``size * spacing_mm``; keep it >= 20 mm
        or the largest nodules are cropped).
    rng
        Source of every random draw. Attributes are drawn first in one block, so they do not
        depend on ``size``.
    null
        No coupling to the dominant mode and no shift after the critical stage (the stage
        means stay, so the images still look like their stage).

    Returns
    -------
    records
        ``{"sample_id", "path"}`` per sample, ``path`` relative to ``out_dir``.
    truth
        Attributes with stage means, loadings, post-critical shifts, clipping ranges and
        analytic population variance per stage; rendering constants; each sample's drawn
        attributes (before clipping); and a sentence on the model.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np
    >>> from hccomics.datasets.demo_progression import simulate_progression
    >>> genes = [f"G{i}" for i in range(100)]
    >>> _, samples, _ = simulate_progression(genes, n_features=50, module_size=8, samples_per_stage=(3, 3),
    ...     critical_stage="low_grade_dysplastic_nodule", rng=np.random.default_rng(0))
    >>> records, truth = simulate_progression_images(samples, critical_stage="low_grade_dysplastic_nodule",
    ...     out_dir=pathlib.Path(tempfile.mkdtemp()), size=32, rng=np.random.default_rng(1))
    >>> len(records), records[0]["path"], truth["coupled_attributes"]
    (18, 'progression_images/PRG-NOR0-00.nii.gz', ['nodule_radius_mm', 'nodule_contrast_hu', 'log_texture_hu'])
    """
    check_option("critical_stage", critical_stage, STAGES[1:-1])
    problems = _check_samples(samples, need_mode=not null)
    if not (isinstance(size, int | np.integer) and size >= 16):
        problems.append(f"size must be an integer >= 16 pixels, got {size!r}")
    if not (np.isfinite(spacing_mm) and spacing_mm > 0):
        problems.append(f"spacing_mm must be a positive number, got {spacing_mm!r}")
    if problems:
        raise DataValidationError("cannot simulate progression images:", problems)
    size, spacing_mm, out_dir = int(size), float(spacing_mm), Path(out_dir)
    critical = STAGES.index(critical_stage)
    names = list(IMAGE_ATTRIBUTES)
    means = np.array([IMAGE_ATTRIBUTES[k][2] for k in names]).T          # stages x attributes
    sd = np.array([IMAGE_ATTRIBUTES[k][3] for k in names])
    loading = np.zeros(len(names)) if null else np.array([IMAGE_ATTRIBUTES[k][4] for k in names])
    shift = np.zeros(len(names)) if null else np.array([IMAGE_ATTRIBUTES[k][5] for k in names])
    stage_means = means + np.outer(np.arange(len(STAGES)) > critical, shift)

    stage_idx = samples["stage"].map(STAGES.index).to_numpy()
    z0 = np.zeros(len(samples)) if null else samples["dominant_mode"].to_numpy(float)
    n = len(samples)
    values = stage_means[stage_idx] + np.outer(z0, loading) + sd * rng.standard_normal((n, len(names)))
    harmonics = np.abs(rng.standard_normal((n, 4))) / np.arange(2, 6)
    phases = rng.uniform(0, 2 * np.pi, (n, 4))

    affine = _affine(size, spacing_mm)
    records = []
    for i, sid in enumerate(str(s) for s in samples.index):
        attrs = {k: float(np.clip(values[i, j], *IMAGE_ATTRIBUTES[k][6])) for j, k in enumerate(names)}
        img = _render(attrs, harmonics[i], phases[i], rng.standard_normal((4, size, size)), size, spacing_mm)
        rel = f"progression_images/{sid}.nii.gz"
        # atomic (hccomics.io.files.atomic_path), gzip without time stamp: same seed, same bytes
        save_nifti(np.round(img, 2).astype(np.float32), out_dir / rel, affine=affine)
        records.append({"sample_id": sid, "path": rel})

    lam = np.full(len(STAGES), LAMBDA_FAR) if null else _stage_lambdas(critical)
    var_z = (1 - lam ** (2 * N_BURN_IN)) / (1 - lam**2)
    pop_var = np.outer(var_z, loading**2) + sd**2                          # stages x attributes
    attributes = {
        k: {"unit": IMAGE_ATTRIBUTES[k][0], "description": IMAGE_ATTRIBUTES[k][1],
            "stage_mean": dict(zip(STAGES, stage_means[:, j].round(6).tolist())),
            "independent_sd": float(sd[j]), "dominant_mode_loading": float(loading[j]),
            "shift_after_critical": float(shift[j]),
            "clipped_to": [float(v) if np.isfinite(v) else None for v in IMAGE_ATTRIBUTES[k][6]],
            "population_variance": dict(zip(STAGES, pop_var[:, j].round(6).tolist()))}
        for j, k in enumerate(names)
    }
    truth = {
        "null": null,
        "critical_stage": None if null else critical_stage,
        "image": {"kind": "2-D arterial-phase CT-like patch centred on the nodule, HU, float32",
                  "size_px": size, "spacing_mm": spacing_mm, "field_of_view_mm": size * spacing_mm,
                  "nodule_centre_world_mm": [0.0, 0.0],
                  "largest_rendered_radius_mm": 0.8 * size * spacing_mm / 2},
        "attributes": attributes,
        "coupled_attributes": [k for j, k in enumerate(names) if loading[j] != 0],
        "dominant_mode_variance_per_stage": dict(zip(STAGES, var_z.round(6).tolist())),
        "rendering": {"parenchyma_hu": PARENCHYMA_HU, "parenchyma_texture_sd_hu": PARENCHYMA_TEXTURE_HU,
                      "necrosis_hu": NECROSIS_HU, "pixel_noise_sd_hu": PIXEL_NOISE_HU, "edge_mm": EDGE_MM,
                      "septa_free_margin_mm": list(SEPTA_FREE_MM), "correlation_length_mm": dict(CORRELATION_MM)},
        "sample_attributes": {r["sample_id"]: dict(zip(names, values[i].round(6).tolist()))
                              for i, r in enumerate(records)},
        "model": (
            "attribute = stage mean + shift after the critical stage (coupled attributes) + loading * dominant "
            "mode z0 (coupled attributes; var z0 = 1 / (1 - lambda^2)) + independent N(0, sd^2), clipped to its "
            f"range for rendering; the image is parenchyma {PARENCHYMA_HU:.0f} HU with smooth heterogeneity, "
            "fibrous septa, a nodule (radius, contrast, log texture SD, margin harmonics, necrotic centre at "
            f"{NECROSIS_HU:.0f} HU) and white N(0, {PIXEL_NOISE_HU:.1f}^2) HU pixel noise"
        ),
    }
    return records, truth
