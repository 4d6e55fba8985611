"""H&E-like pathology tiles of the demo cohort: stains per centre, liver plates and graded nuclei.

Tiles are rendered in optical-density (OD) space with the Beer-Lambert law,
``OD = c_H * h + c_E * e + background`` and ``RGB = 255 * exp(-OD)``, where ``h`` and ``e`` are
the unit OD vectors of haematoxylin and eosin of the patient's centre (:class:`StainModel`).
Tissue is a field of hepatocyte plates separated by pale sinusoids: plates follow a warped
phase field (roughly parallel and one to two cells thick in non-tumour liver; thicker, more
curved and broken in tumour, near solid at grade 4), each plate is cut into cells and most
cells hold one elliptical nucleus whose diameter, shape variability, lobulation, chromatin and
haematoxylin load follow the Edmondson-Steiner grade (:data:`TISSUE`). Nuclear density rises
with grade because cells get smaller. With ``null=True`` every tumour tile uses the grade-2
parameters whatever the patient's grade.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from statistics import NormalDist
from typing import Literal

import numpy as np
import pandas as pd
from PIL import Image
from scipy import ndimage

from hccomics._options import check_option
from hccomics.errors import DataValidationError
from hccomics.io.files import atomic_path

__all__ = ["CENTRES", "REGIONS", "TISSUE", "StainModel", "TissueParams", "draw_centres", "render_tile",
           "simulate_pathology"]

logger = logging.getLogger(__name__)

CENTRES: tuple[str, ...] = ("centre_A", "centre_B", "centre_C", "centre_D")
CENTRE_WEIGHTS: tuple[float, ...] = (0.4, 0.3, 0.2, 0.1)
REGIONS: tuple[str, ...] = ("tumour", "non_tumour")
NULL_TUMOUR = "grade_2"  # what every tumour tile looks like with null=True (or grade=None)
PAD_UM = 40.0  # margin laid out around a tile so that every cell cut by its edge has its true centroid

# Ruifrok & Johnston (2001) OD vectors, as in skimage.color.rgb_from_hed
RUIFROK_H = (0.65, 0.70, 0.29)
RUIFROK_E = (0.07, 0.99, 0.11)
# per centre: (added to H before normalising, added to E, H scale, E scale); angles are in to_dict()
CENTRE_PERTURBATION: dict[str, tuple[tuple[float, ...], tuple[float, ...], float, float]] = {
    "centre_A": ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0), 1.0, 1.0),  # reference protocol
    "centre_B": ((-0.12, 0.0, 0.10), (0.12, 0.0, 0.0), 1.2, 1.25),  # dark, purple haematoxylin and eosin
    "centre_C": ((0.10, 0.04, -0.10), (0.0, -0.05, 0.16), 0.9, 0.8),  # blue haematoxylin, orange-red eosin
    "centre_D": ((0.0, -0.08, 0.06), (0.05, 0.0, 0.06), 0.75, 0.6),  # pale, faded slides
}


def _default(i: int) -> tuple:
    """Field ``i`` of :data:`CENTRE_PERTURBATION` per centre; vectors (i < 2) added to the reference, normalised."""
    if i >= 2:
        return tuple(CENTRE_PERTURBATION[c][i] for c in CENTRES)
    vecs = (np.add((RUIFROK_H, RUIFROK_E)[i], CENTRE_PERTURBATION[c][i]) for c in CENTRES)
    return tuple(tuple(float(x) for x in np.round(v / np.linalg.norm(v), 6)) for v in vecs)


@dataclass(frozen=True)
class StainModel:
    """Haematoxylin and eosin colour of each centre.

    Each centre has unit OD vectors ``haematoxylin`` and ``eosin`` (R, G, B) and intensity
    scales; the defaults perturb the Ruifrok & Johnston vectors by :data:`CENTRE_PERTURBATION`
    (4 to 10 degrees of hue, scales 0.6 to 1.25), enough to be visible and to matter for colour
    augmentation and stain normalisation. Every tile also scales both stains by
    ``exp(N(0, tile_scale_sd))`` (within-centre variation) and adds ``background_od``.
    """

    centres: tuple[str, ...] = CENTRES
    haematoxylin: tuple[tuple[float, float, float], ...] = field(default_factory=lambda: _default(0))
    eosin: tuple[tuple[float, float, float], ...] = field(default_factory=lambda: _default(1))
    h_scale: tuple[float, ...] = field(default_factory=lambda: _default(2))
    e_scale: tuple[float, ...] = field(default_factory=lambda: _default(3))
    tile_scale_sd: float = 0.04
    background_od: float = 0.02

    def __post_init__(self) -> None:
        n = len(self.centres)
        if not all(len(x) == n for x in (self.haematoxylin, self.eosin, self.h_scale, self.e_scale)):
            raise ValueError(f"StainModel needs an H vector, an E vector and two scales for each of its {n} centres")

    def vectors(self, centre: str) -> tuple[np.ndarray, np.ndarray, float, float]:
        """Return ``(h, e, h_scale, e_scale)`` of a centre (unit OD vectors, normalised here)."""
        i = self.centres.index(check_option("centre", centre, self.centres))
        h, e = (np.asarray(v[i], dtype=float) for v in (self.haematoxylin, self.eosin))
        return h / np.linalg.norm(h), e / np.linalg.norm(e), float(self.h_scale[i]), float(self.e_scale[i])

    def to_dict(self) -> dict:
        """Plain-JSON description per centre, with the angle to the Ruifrok & Johnston vectors."""
        def angle(v: np.ndarray, ref: tuple[float, ...]) -> float:
            return round(math.degrees(math.acos(min(1.0, float(v @ ref) / float(np.linalg.norm(ref))))), 2)

        out: dict = {"reference": {"haematoxylin": RUIFROK_H, "eosin": RUIFROK_E, "source": "Ruifrok & Johnston 2001"},
                     "tile_scale_sd": self.tile_scale_sd, "background_od": self.background_od, "centres": {}}
        for c in self.centres:
            h, e, sh, se = self.vectors(c)
            out["centres"][c] = {"haematoxylin": np.round(h, 6).tolist(), "eosin": np.round(e, 6).tolist(),
                                 "h_scale": sh, "e_scale": se,
                                 "h_angle_deg": angle(h, RUIFROK_H), "e_angle_deg": angle(e, RUIFROK_E)}
        return out


@dataclass(frozen=True)
class TissueParams:
    """Architecture and nuclei of one tissue class (lengths in micrometres, stains in OD units).

    Nuclear diameter ~ N(mean, sd) clipped to [0.55, 2] x mean and to the cell's equivalent
    square; aspect ratio 1 + |N(0, aspect_sd)| at constant area; boundary radius x (1 + lobulation
    x U(0.5, 1.5) x cos 3phi); haematoxylin load ~ N(h_conc, h_conc_sd) times chromatin texture of
    relative SD ``chromatin``. Plates of ``plate_width_um`` hold ``cells_across`` cells (one value
    drawn per plate) of ``cell_length_um``; sinusoids of ``sinusoid_um`` are kept on a fraction
    ``sinusoid_kept`` of their length; ``disorder`` is the RMS slope of the plate warp (local plate
    orientation changes by about atan(disorder)).
    """

    nuclear_diameter_um: float
    nuclear_diameter_sd_um: float
    aspect_sd: float
    lobulation: float
    h_conc: float
    h_conc_sd: float
    chromatin: float
    nucleolus_prob: float
    plate_width_um: float
    cells_across: tuple[int, ...]
    cell_length_um: float
    sinusoid_um: float
    sinusoid_kept: float
    disorder: float
    warp_wavelength_um: float
    cytoplasm_e: float
    cytoplasm_h: float
    nucleus_prob: float = 0.85

    def summary(self) -> dict:
        """Parameters plus derived expectations (mean nuclear area, nuclei per 1000 um^2)."""
        d, sd = self.nuclear_diameter_um, self.nuclear_diameter_sd_um
        cell_w = self.plate_width_um / float(np.mean(self.cells_across))
        tissue = self.plate_width_um / (self.plate_width_um + self.sinusoid_um * self.sinusoid_kept)
        density = 1000 * self.nucleus_prob * tissue / (cell_w * self.cell_length_um)
        return {**asdict(self), "expected_nuclear_area_um2": round(math.pi / 4 * (d * d + sd * sd), 1),
                "expected_nuclei_per_1000um2": round(density, 2)}


TISSUE: dict[str, TissueParams] = {  # nuclear diameter 7.5 / 8 / 9.5 / 11 / 13 um; density 1.4 -> 2.8 per 1000 um^2
    "non_tumour": TissueParams(7.5, 0.5, 0.06, 0.0, 1.4, 0.08, 0.08, 0.0, 26, (1, 1, 2), 24, 8, 1.0, 0.08, 160,
                               0.42, 0.02),
    "grade_1": TissueParams(8.0, 0.8, 0.10, 0.02, 1.5, 0.10, 0.12, 0.1, 54, (2, 3, 4), 20, 7, 0.95, 0.3, 90,
                            0.40, 0.04, 0.9),
    "grade_2": TissueParams(9.5, 1.3, 0.16, 0.04, 1.65, 0.14, 0.16, 0.3, 70, (3, 4, 5), 19, 6, 0.85, 0.4, 75,
                            0.37, 0.07, 0.9),
    "grade_3": TissueParams(11.0, 2.0, 0.24, 0.07, 1.8, 0.20, 0.22, 0.6, 90, (4, 5, 6), 18, 5, 0.7, 0.5, 60,
                            0.33, 0.10, 0.9),
    "grade_4": TissueParams(13.0, 2.8, 0.32, 0.10, 2.0, 0.28, 0.28, 0.8, 122, (6, 7, 8), 18, 4, 0.4, 0.6, 50,
                            0.30, 0.13, 0.9),
}


def draw_centres(n: int, *, rng: np.random.Generator) -> np.ndarray:
    """Assign ``n`` patients to :data:`CENTRES` in proportions :data:`CENTRE_WEIGHTS` (40/30/20/10%).

    Every centre gets one patient once ``n >= 4``, the rest are shared by largest remainder; the
    order is a random permutation.

    Examples
    --------
    >>> c = draw_centres(20, rng=np.random.default_rng(0))
    >>> sorted((str(k), int(v)) for k, v in zip(*np.unique(c, return_counts=True)))
    [('centre_A', 7), ('centre_B', 6), ('centre_C', 4), ('centre_D', 3)]
    """
    if int(n) < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    base = int(n >= len(CENTRES))
    raw = np.asarray(CENTRE_WEIGHTS) * (int(n) - base * len(CENTRES))
    sizes = base + np.floor(raw).astype(int)
    sizes[np.argsort(-(raw - np.floor(raw)), kind="stable")[: int(n) - sizes.sum()]] += 1
    return rng.permutation(np.repeat(np.asarray(CENTRES), sizes))


def _wave_params(rng: np.random.Generator, rms: float, wavelength: float, k: int = 4) -> tuple[np.ndarray, ...]:
    """Draw ``k`` plane waves (wave vector, phase, amplitude) of a smooth field with RMS ``rms``."""
    ang, lam = rng.uniform(0, np.pi, k), wavelength * rng.uniform(0.7, 1.4, k)
    return (2 * np.pi / lam * np.cos(ang), 2 * np.pi / lam * np.sin(ang), rng.uniform(0, 2 * np.pi, k),
            np.full(k, rms * math.sqrt(2.0 / k)))


def _waves(params: tuple[np.ndarray, ...], g: np.ndarray) -> np.ndarray:
    """``sum_k amp cos(kx x + ky y + ph)`` on the square grid ``g`` (rows y, columns x), separably.

    ``einsum`` rather than ``@``: a threaded BLAS call on these thin matrices is slow on a busy machine.
    """
    kx, ky, ph, amp = params
    a, b = np.outer(kx, g), np.outer(ky, g) + ph[:, None]
    rows = np.concatenate([amp[:, None] * np.cos(b), -amp[:, None] * np.sin(b)])
    return np.einsum("ki,kj->ij", rows, np.concatenate([np.cos(a), np.sin(a)]))


def _cells(p: TissueParams, rng: np.random.Generator, coarse: np.ndarray, fine: np.ndarray) -> tuple:
    """Cell label of every point of the ``coarse`` and ``fine`` grids (um); sinusoid = ``n_cells``.

    Returns the two label maps, ``n_cells`` and the width (um) of each label's cells.
    """
    theta = rng.uniform(0, np.pi)
    warp_u, warp_v = (_wave_params(rng, p.disorder * p.warp_wavelength_um / (2 * np.pi), p.warp_wavelength_um)
                      for _ in range(2))
    gate = _wave_params(rng, 1.0, 35.0, k=6) if p.sinusoid_kept < 1.0 else None
    period = p.plate_width_um + p.sinusoid_um

    def plates(g: np.ndarray) -> tuple[np.ndarray, ...]:
        u = np.cos(theta) * g[None, :] + np.sin(theta) * g[:, None] + _waves(warp_u, g)  # across plates
        v = -np.sin(theta) * g[None, :] + np.cos(theta) * g[:, None] + _waves(warp_v, g)  # along plates
        plate = np.floor(u / period).astype(np.int64)
        pos = u - plate * period  # um from the start of the plate's period
        sinusoid = pos < p.sinusoid_um
        if gate is not None:  # broken sinusoids: kept where a smooth N(0, 1)-like field is above its quantile
            sinusoid &= _waves(gate, g) > NormalDist().inv_cdf(1.0 - p.sinusoid_kept)
        return plate, pos, v, sinusoid

    geo_c, geo_f = plates(coarse), plates(fine)
    p0, n_plates, n_across = int(geo_c[0].min()), int(np.ptp(geo_c[0])) + 1, max(p.cells_across)
    plate_cells = rng.choice(np.asarray(p.cells_across), size=n_plates)
    stagger = rng.uniform(size=(n_plates, n_across))  # cell borders of neighbouring rows do not line up

    def rows(plate: np.ndarray, pos: np.ndarray, v: np.ndarray, _: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        plate = np.clip(plate - p0, 0, n_plates - 1)
        frac = np.clip((pos - p.sinusoid_um) / p.plate_width_um, 0.0, 1 - 1e-9)
        across = np.floor(frac * plate_cells[plate]).astype(np.int64)
        return plate * n_across + across, np.floor(v / p.cell_length_um + stagger[plate, across]).astype(np.int64)

    (row_c, along_c), (row_f, along_f) = rows(*geo_c), rows(*geo_f)
    a0, n_along = int(along_c.min()), int(np.ptp(along_c)) + 1
    n_cells = n_plates * n_across * n_along
    key_c = np.where(geo_c[3], n_cells, row_c * n_along + along_c - a0)
    key_f = np.where(geo_f[3], n_cells, row_f * n_along + np.clip(along_f - a0, 0, n_along - 1))
    cell_w = p.plate_width_um / plate_cells[np.minimum(np.arange(n_cells + 1) // (n_across * n_along), n_plates - 1)]
    return key_c, key_f, n_cells, cell_w


def render_tile(
    *,
    grade: int | None,
    region: Literal["tumour", "non_tumour"],
    centre: str,
    size: int,
    microns_per_pixel: float = 0.5,
    rng: np.random.Generator,
    stains: StainModel | None = None,
) -> np.ndarray:
    """Render one H&E-like tile and return it as uint8 RGB of shape ``(size, size, 3)``.

    Parameters
    ----------
    grade
        Edmondson-Steiner grade 1-4 of a tumour tile; ``None`` for non-tumour tiles, and for
        tumour tiles without a grade effect (they use :data:`NULL_TUMOUR`).
    region
        ``"tumour"`` or ``"non_tumour"`` (hepatocyte plates one to two cells thick).
    centre
        One of ``stains.centres``; picks the stain vectors and scales.
    size
        Tile side in pixels.
    microns_per_pixel
        Resolution; 0.5 um/px is 20x.
    rng
        Source of every random draw.
    stains
        Stain model (default :class:`StainModel`).

    Examples
    --------
    >>> tile = render_tile(grade=3, region="tumour", centre="centre_A", size=64, rng=np.random.default_rng(0))
    >>> tile.shape, tile.dtype
    ((64, 64, 3), dtype('uint8'))
    """
    check_option("region", region, REGIONS)
    stains = stains if stains is not None else StainModel()
    h_vec, e_vec, h_s, e_s = stains.vectors(centre)
    if (region == "non_tumour" and grade is not None) or grade not in (None, 1, 2, 3, 4):
        raise ValueError(f"grade must be 1-4 or None for tumour tiles and None for non-tumour ones; got {grade!r}")
    if int(size) < 8 or not microns_per_pixel > 0:
        raise ValueError(f"size must be >= 8 px and microns_per_pixel > 0; got {size} and {microns_per_pixel}")
    p = TISSUE["non_tumour" if region == "non_tumour" else (f"grade_{grade}" if grade else NULL_TUMOUR)]
    size, mpp = int(size), float(microns_per_pixel)
    step = max(1, round(1.0 / mpp))  # cell centroids are taken on a ~1 um grid over the padded canvas
    pad = math.ceil(PAD_UM / mpp / step) * step
    xs = (np.arange(size + 2 * pad) - size / 2 - pad + 0.5) * mpp  # um, tile centred on 0
    coarse, fine = xs[::step], xs[pad:pad + size]
    key_c, k, n_cells, cell_w = _cells(p, rng, coarse, fine)

    # per cell (index n_cells: sinusoid): one nucleus in most cells, at the centroid plus jitter
    m = n_cells + 1
    count = np.bincount(key_c.ravel(), minlength=m)
    with np.errstate(invalid="ignore", divide="ignore"):
        cx, cy = (np.bincount(key_c.ravel(), weights=np.broadcast_to(g, key_c.shape).ravel(), minlength=m) / count
                  for g in (coarse[None, :], coarse[:, None]))
    d = np.clip(rng.normal(p.nuclear_diameter_um, p.nuclear_diameter_sd_um, m), 0.55 * p.nuclear_diameter_um,
                2.0 * p.nuclear_diameter_um)
    d = np.maximum(np.minimum(d, 0.95 * np.sqrt(count) * step * mpp), 1.0)  # at most the cell's equivalent square
    aspect, phi = 1.0 + np.abs(rng.normal(0.0, p.aspect_sd, m)), rng.uniform(0, np.pi, m)
    lob, lob_ph = p.lobulation * rng.uniform(0.5, 1.5, m), rng.uniform(0, 2 * np.pi, m)
    h_load = np.clip(rng.normal(p.h_conc, p.h_conc_sd, m), 0.6 * p.h_conc, 1.6 * p.h_conc)
    # jitter keeps an average nucleus inside its cell (crowded high grades mould against the membrane)
    room = np.clip(np.minimum(cell_w, p.cell_length_um) - p.nuclear_diameter_um, 0.0, 0.2 * p.cell_length_um)
    jitter = rng.uniform(-0.4, 0.4, (2, m)) * room
    has = (count * (step * mpp) ** 2 >= 40.0) & (rng.uniform(size=m) < p.nucleus_prob)
    has[n_cells] = False
    nucleolus, nucleolus_at = rng.uniform(size=m) < p.nucleolus_prob, rng.uniform(-0.35, 0.35, (2, m))
    cyto = np.exp(rng.normal(0.0, 0.08, m))

    def per_px(a: np.ndarray) -> np.ndarray:  # gather a per-cell table onto the tile's pixels
        return np.asarray(a, dtype=np.float32)[k]

    # tile pixels only, float32: rotated, scaled ellipse coordinates of the own cell's nucleus
    half, sa = d / 2, np.sqrt(aspect)
    dx = fine[None, :].astype(np.float32) - per_px(np.where(has, np.nan_to_num(cx + jitter[0]), 1e6))
    dy = fine[:, None].astype(np.float32) - per_px(np.where(has, np.nan_to_num(cy + jitter[1]), 1e6))
    c, s = per_px(np.cos(phi)), per_px(np.sin(phi))
    xn, yn = (dx * c + dy * s) * per_px(1 / (half * sa)), (dy * c - dx * s) * per_px(sa / half)
    q = np.maximum(np.hypot(xn, yn), 1e-6)
    ct, st = xn / q, yn / q
    radius = (1.0 + per_px(lob * np.cos(lob_ph)) * ct * (4 * ct * ct - 3)  # 1 + lob cos(3t + ph)
              - per_px(lob * np.sin(lob_ph)) * st * (3 - 4 * st * st))
    half_px = per_px(half / mpp)
    nuc = np.clip((radius - q) * half_px + 0.5, 0.0, 1.0)  # ~1 px soft edge
    r_nl = np.hypot(xn - per_px(np.where(nucleolus, nucleolus_at[0], 1e3)), yn - per_px(nucleolus_at[1])) * half_px
    nl = np.clip(0.9 / mpp - r_nl + 0.5, 0.0, 1.0) * nuc

    noise = ndimage.gaussian_filter(rng.standard_normal((2, size, size), dtype=np.float32), (0, 0.6 / mpp, 0.6 / mpp),
                                    mode="wrap")
    noise /= np.maximum(noise.std(axis=(1, 2), keepdims=True), 1e-12)
    chrom, grain = 1.0 + p.chromatin * noise[0], 1.0 + 0.12 * noise[1]
    in_cell = k < n_cells
    border = np.zeros_like(in_cell)  # cell membranes
    border[1:, :] |= k[1:, :] != k[:-1, :]
    border[:, 1:] |= k[:, 1:] != k[:, :-1]
    cyto_e = np.where(in_cell, p.cytoplasm_e * per_px(cyto) * grain + 0.08 * (border & in_cell), 0.04 * grain)
    cyto_h = np.where(in_cell, p.cytoplasm_h * grain, 0.01)
    conc = np.empty((size, size, 2), dtype=np.float32)
    conc[..., 0] = (1 - nuc) * cyto_h + nuc * per_px(h_load) * np.maximum(chrom, 0.3) + 0.5 * nl
    conc[..., 1] = (1 - nuc) * cyto_e + nuc * 0.12
    conc = ndimage.gaussian_filter(conc, (0.35 / mpp, 0.35 / mpp, 0))  # optical blur, ~0.35 um

    sh, se = np.exp(rng.normal(0.0, stains.tile_scale_sd, 2))
    mix = np.stack([h_s * sh * h_vec, e_s * se * e_vec]).astype(np.float32)
    od = conc[..., :1] * mix[0] + conc[..., 1:] * mix[1] + np.float32(stains.background_od)
    rgb = 255.0 * np.exp(-od) + 1.5 * rng.standard_normal(od.shape, dtype=np.float32)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def simulate_pathology(
    clinical: pd.DataFrame,
    centres: pd.Series,
    out_dir: Path,
    *,
    rng: np.random.Generator,
    tile_size: int,
    tumour_tiles: int,
    non_tumour_tiles: int,
    microns_per_pixel: float = 0.5,
    stains: StainModel | None = None,
    null: bool = False,
) -> tuple[list[dict], dict]:
    """Write PNG tiles for every patient and return the manifest records and the planted truth.

    Tiles go to ``out_dir / "pathology" / f"{patient_id}_{region}_{k}.png"``, written atomically;
    every patient draws from its own child of ``rng`` (``rng.spawn``), so tiles are identical
    for a seed.

    Parameters
    ----------
    clinical
        Patient table indexed by ``patient_id`` with an ``edmondson_grade`` column (1-4).
    centres
        Centre of each patient (indexed by ``patient_id``), e.g. from :func:`draw_centres`.
    out_dir
        Cohort folder; paths in the records are relative to it.
    rng
        Source of every random draw.
    tile_size
        Tile side in pixels (64 smoke, 128 demo, 256 full).
    tumour_tiles, non_tumour_tiles
        Tiles per patient of each region.
    microns_per_pixel
        Resolution; the recorded magnification is ``10 / microns_per_pixel`` (0.5 -> 20x).
    stains
        Stain model (default :class:`StainModel`).
    null
        Grade has no effect: every tumour tile uses the :data:`NULL_TUMOUR` parameters.

    Returns
    -------
    records
        One dict per tile: ``patient_id``, ``path``, ``region``, ``microns_per_pixel``, ``magnification``.
    truth
        Stain model per centre, tissue parameters per grade, tiles per patient and the null switch.

    Examples
    --------
    >>> import tempfile
    >>> clin = pd.DataFrame({"edmondson_grade": [1, 4]}, index=pd.Index(["P1", "P2"], name="patient_id"))
    >>> cen = pd.Series(["centre_A", "centre_C"], index=clin.index)
    >>> recs, truth = simulate_pathology(clin, cen, Path(tempfile.mkdtemp()), rng=np.random.default_rng(0),
    ...                                  tile_size=64, tumour_tiles=2, non_tumour_tiles=1)
    >>> len(recs), recs[0]["path"], truth["tiles_per_patient"]
    (6, 'pathology/P1_tumour_0.png', {'tumour': 2, 'non_tumour': 1})
    """
    stains = stains if stains is not None else StainModel()
    problems = []
    if "edmondson_grade" not in clinical.columns:
        problems.append(f"clinical has no 'edmondson_grade' column (columns: {list(clinical.columns)})")
    else:
        bad = clinical["edmondson_grade"][~clinical["edmondson_grade"].isin([1, 2, 3, 4])]
        problems += [f"patient {pid}: edmondson_grade {g!r} is not 1-4" for pid, g in bad.items()]
    problems += [f"patient {pid}: no centre in `centres`" for pid in clinical.index.difference(centres.index)]
    unknown = sorted(set(centres.reindex(clinical.index).dropna()) - set(stains.centres))
    problems += [f"centre {c!r} is not in the stain model's centres {list(stains.centres)}" for c in unknown]
    if problems:
        raise DataValidationError("cannot simulate pathology tiles for this clinical table", problems)
    if int(tile_size) < 8 or min(int(tumour_tiles), int(non_tumour_tiles)) < 0 or not microns_per_pixel > 0:
        raise ValueError(f"need tile_size >= 8, tile counts >= 0 and microns_per_pixel > 0; got {tile_size}, "
                         f"{tumour_tiles}, {non_tumour_tiles} and {microns_per_pixel}")

    out_dir, mpp = Path(out_dir), float(microns_per_pixel)
    mag = round(10.0 / mpp, 2)  # 0.25 um/px = 40x, 0.5 = 20x, 1.0 = 10x
    logger.info("rendering %d pathology tiles of %d px", len(clinical) * (tumour_tiles + non_tumour_tiles), tile_size)
    records: list[dict] = []
    for pid, prng in zip(clinical.index, rng.spawn(len(clinical))):
        grade = None if null else int(clinical.at[pid, "edmondson_grade"])
        for region, count in (("tumour", int(tumour_tiles)), ("non_tumour", int(non_tumour_tiles))):
            for j in range(count):
                tile = render_tile(grade=grade if region == "tumour" else None, region=region,
                                   centre=str(centres[pid]), size=int(tile_size), microns_per_pixel=mpp, rng=prng,
                                   stains=stains)
                rel = f"pathology/{pid}_{region}_{j}.png"
                with atomic_path(out_dir / rel) as tmp:
                    Image.fromarray(tile).save(tmp, format="PNG", compress_level=1)
                records.append({"patient_id": str(pid), "path": rel, "region": region, "microns_per_pixel": mpp,
                                "magnification": mag})
    used = centres.reindex(clinical.index)
    truth = {
        "render": "Beer-Lambert in OD space: OD = c_H * h + c_E * e + background, RGB = 255 exp(-OD); "
                  "0.35 um Gaussian blur, N(0, 1.5) RGB noise",
        "stains": stains.to_dict(),
        "tissue": {name: tp.summary() for name, tp in TISSUE.items()},
        "grade_to_tissue": {str(g): f"grade_{g}" for g in (1, 2, 3, 4)},
        "null": bool(null),
        "null_effect": f"grade has no effect: every tumour tile uses the {NULL_TUMOUR} parameters" if null
                       else f"none: tumour tiles follow their patient's grade (null=True would use {NULL_TUMOUR})",
        "tiles_per_patient": {"tumour": int(tumour_tiles), "non_tumour": int(non_tumour_tiles)},
        "tile_size_px": int(tile_size),
        "microns_per_pixel": mpp,
        "magnification": mag,
        "centre_counts": {c: int((used == c).sum()) for c in stains.centres},
        "paths": "pathology/{patient_id}_{region}_{k}.png",
    }
    return records, truth
