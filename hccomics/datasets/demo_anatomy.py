"""Abdominal anatomy of the demo radiology: body, liver, vessels, spine, kidney and lesions.

Organs are drawn in world coordinates (mm, RAS+: +x towards the patient's right, +y
anterior, +z superior) on the reference grid of a patient, scaled to the field of view so
that the same code serves every profile; lesions keep their planted size in mm.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

__all__ = ["TISSUES", "Anatomy", "Grid", "Lesion", "build_anatomy", "smooth_noise"]

# tissue codes of the label map that the phase renderer turns into intensities
TISSUES = {"air": 0, "fat": 1, "soft_tissue": 2, "liver": 3, "aorta": 4, "portal_vein": 5, "bone": 6, "kidney": 7}


@dataclass(frozen=True)
class Grid:
    """A voxel grid: shape (i, j, k) and spacing in mm; axes stored L-P-S like DICOM-derived NIfTI."""

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]

    @property
    def affine(self) -> np.ndarray:
        """Voxel -> world (RAS+, mm): i runs to the left, j posterior, k superior; centred on the origin."""
        sx, sy, sz = self.spacing
        a = np.diag([-sx, -sy, sz, 1.0])
        a[:3, 3] = -a[:3, :3] @ ((np.array(self.shape) - 1) / 2.0)
        return a

    @property
    def fov(self) -> np.ndarray:
        return np.array(self.shape) * np.array(self.spacing)

    def world(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """World coordinates of every voxel (three float32 arrays of the grid's shape)."""
        a = self.affine
        i, j, k = (np.arange(n, dtype=np.float32) for n in self.shape)
        x = (a[0, 0] * i + a[0, 3])[:, None, None]
        y = (a[1, 1] * j + a[1, 3])[None, :, None]
        z = (a[2, 2] * k + a[2, 3])[None, None, :]
        return (np.broadcast_to(x, self.shape), np.broadcast_to(y, self.shape), np.broadcast_to(z, self.shape))

    def to_voxel(self, xyz: np.ndarray) -> np.ndarray:
        return (np.linalg.inv(self.affine) @ np.r_[xyz, 1.0])[:3]


@dataclass
class Lesion:
    """One lesion as drawn: label 1 is the index lesion."""

    label: int
    centre_mm: np.ndarray
    diameter_mm: float
    irregularity: float
    index: bool


@dataclass
class Anatomy:
    """Label maps of one patient on its reference grid."""

    grid: Grid
    tissue: np.ndarray            # uint8 codes of TISSUES
    liver: np.ndarray             # bool, liver incl. intrahepatic vessels and lesions
    lesions: np.ndarray           # uint8 instance labels (0 none, 1 index lesion, 2.. satellites)
    lesion_list: list[Lesion] = field(default_factory=list)
    liver_centre_mm: np.ndarray = field(default_factory=lambda: np.zeros(3))


def smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma_vox: tuple[float, ...]) -> np.ndarray:
    """Gaussian-filtered white noise scaled to unit SD (a smooth random field)."""
    f = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma_vox, mode="wrap")
    sd = float(f.std())
    return f / sd if sd > 0 else f


def _ellipsoid_norm(x, y, z, centre, axes) -> np.ndarray:
    return np.sqrt(((x - centre[0]) / axes[0]) ** 2 + ((y - centre[1]) / axes[1]) ** 2 + ((z - centre[2]) / axes[2]) ** 2)


def _segment_distance(x, y, z, p0: np.ndarray, p1: np.ndarray) -> np.ndarray:
    d = p1 - p0
    t = ((x - p0[0]) * d[0] + (y - p0[1]) * d[1] + (z - p0[2]) * d[2]) / float(d @ d)
    t = np.clip(t, 0.0, 1.0)
    return np.sqrt((x - p0[0] - t * d[0]) ** 2 + (y - p0[1] - t * d[1]) ** 2 + (z - p0[2] - t * d[2]) ** 2)


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    return q * np.sign(np.diag(r))


def _draw_lesion(grid: Grid, lesion: Lesion, rng: np.random.Generator) -> tuple[tuple[slice, ...], np.ndarray]:
    """Mask of one lesion inside its bounding box: a rotated ellipsoid with a lobulated margin."""
    r = lesion.diameter_mm / 2.0
    half = (r * 1.6 + 2.0) / np.array(grid.spacing)
    c_vox = grid.to_voxel(lesion.centre_mm)
    lo = np.maximum(np.floor(c_vox - half).astype(int), 0)
    hi = np.minimum(np.ceil(c_vox + half).astype(int) + 1, grid.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    a = grid.affine
    i, j, k = np.meshgrid(*(np.arange(s.start, s.stop, dtype=np.float32) for s in box), indexing="ij")
    pts = np.stack([a[0, 0] * i + a[0, 3], a[1, 1] * j + a[1, 3], a[2, 2] * k + a[2, 3]], axis=-1) - lesion.centre_mm
    rot = _random_rotation(rng)
    axes = r * rng.uniform(0.85, 1.15, 3)
    axes *= r / np.cbrt(np.prod(axes))  # keep the equivalent-sphere diameter as planted
    q = np.linalg.norm((pts @ rot) / axes, axis=-1)
    # lobulation at a third of the radius: irregular margins have several lobes
    sigma = np.maximum(r / 3.0 / np.array(grid.spacing), 0.8)
    wobble = smooth_noise(rng, q.shape, tuple(sigma))
    return box, q < 1.0 + lesion.irregularity * wobble


def build_anatomy(
    grid: Grid,
    *,
    rng: np.random.Generator,
    index_diameter_mm: float,
    n_lesions: int,
    irregularity: float,
) -> Anatomy:
    """Draw the body, organs and lesions of one patient.

    Parameters
    ----------
    grid
        Reference grid (the portal-venous CT of the patient).
    rng
        Random generator of this patient.
    index_diameter_mm
        Equivalent-sphere diameter of the index lesion (already clipped to fit the liver).
    n_lesions
        Index lesion plus satellites (diameter 25-50% of the index lesion, at least 5 mm).
    irregularity
        Amplitude of the index lesion's margin lobulation (relative to its radius).
    """
    x, y, z = grid.world()
    fov = grid.fov
    tissue = np.zeros(grid.shape, dtype=np.uint8)
    body = _ellipsoid_norm(x, y, z, (0.0, 0.0, 0.0), (0.47 * fov[0], 0.40 * fov[1], 10 * fov[2])) < 1.0
    inner = _ellipsoid_norm(x, y, z, (0.0, 0.0, 0.0), (0.43 * fov[0], 0.36 * fov[1], 10 * fov[2])) < 1.0
    tissue[body] = TISSUES["fat"]
    tissue[inner] = TISSUES["soft_tissue"]

    # liver on the patient's right (+x), tapering towards the left lobe, with a lobulated surface
    centre = np.array([0.13 * fov[0], 0.02 * fov[1], 0.0]) + rng.normal(0, 0.01, 3) * fov
    axes = np.array([0.27 * fov[0], 0.25 * fov[1], 0.38 * fov[2]]) * rng.uniform(0.92, 1.08, 3)
    taper = 1.0 - 0.35 * np.clip((centre[0] - x) / axes[0], 0.0, 1.0)
    q = np.sqrt(((x - centre[0]) / axes[0]) ** 2 + ((y - centre[1]) / (axes[1] * taper)) ** 2
                + ((z - centre[2]) / (axes[2] * taper)) ** 2)
    sigma = tuple(np.maximum(12.0 / np.array(grid.spacing), 1.0))
    liver = q < 1.0 + 0.06 * smooth_noise(rng, grid.shape, sigma)
    liver &= inner
    tissue[liver] = TISSUES["liver"]

    spine_c = np.array([0.0, -0.27 * fov[1], 0.0])
    tissue[np.hypot(x - spine_c[0], y - spine_c[1]) < 0.07 * fov[0]] = TISSUES["bone"]
    aorta_c = np.array([-0.06 * fov[0], -0.15 * fov[1]])
    tissue[np.hypot(x - aorta_c[0], y - aorta_c[1]) < 0.035 * fov[0]] = TISSUES["aorta"]
    kidney = _ellipsoid_norm(x, y, z, (-0.2 * fov[0], -0.2 * fov[1], -0.15 * fov[2]),
                             (0.06 * fov[0], 0.09 * fov[1], 0.2 * fov[2])) < 1.0
    tissue[kidney & ~liver] = TISSUES["kidney"]
    # the portal vein enters at the hilum and branches inside the liver: vessels count as liver
    hilum = centre + np.array([-0.45 * axes[0], -0.3 * axes[1], -0.2 * axes[2]])
    for _ in range(3):
        tip = centre + rng.uniform(-0.6, 0.6, 3) * axes
        radius = rng.uniform(2.0, 3.5)
        vessel = (_segment_distance(x, y, z, hilum, tip) < radius) & liver
        tissue[vessel] = TISSUES["portal_vein"]

    lesions = np.zeros(grid.shape, dtype=np.uint8)
    dist_in = ndimage.distance_transform_edt(liver, sampling=grid.spacing)
    lesion_list: list[Lesion] = []
    diameters = [index_diameter_mm] + [max(5.0, index_diameter_mm * rng.uniform(0.25, 0.5)) for _ in range(n_lesions - 1)]
    irregularities = [irregularity] + [float(rng.uniform(0.02, 0.08)) for _ in range(n_lesions - 1)]
    for label, (diam, irr) in enumerate(zip(diameters, irregularities), start=1):
        # centre deep enough for the lesion to lie inside the liver, away from earlier lesions
        while True:
            room = dist_in - diam / 2.0 * (1.0 + irr)
            free = room > (1.0 if label == 1 else 2.0)
            if lesions.any():
                free &= ndimage.distance_transform_edt(lesions == 0, sampling=grid.spacing) > diam / 2.0 + 4.0
            candidates = np.flatnonzero(free)
            if candidates.size or label > 1 or diam < 5.0:
                break
            diam *= 0.85  # the index lesion always exists: shrink it until it fits (recorded as drawn)
        if candidates.size == 0:  # no room left for a satellite: fewer lesions, recorded as drawn
            continue
        pick = np.unravel_index(rng.choice(candidates), grid.shape)
        c_mm = (grid.affine @ np.r_[np.array(pick, dtype=float), 1.0])[:3]
        lesion = Lesion(label, c_mm, float(diam), float(irr), label == 1)
        box, mask = _draw_lesion(grid, lesion, rng)
        region = lesions[box]
        region[mask & liver[box] & (region == 0)] = label
        lesion_list.append(lesion)
    return Anatomy(grid, tissue, liver, lesions, lesion_list, centre)
