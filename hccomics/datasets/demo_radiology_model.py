"""Difficulty and physics of the demo radiology, fixed here and recorded in truth.json.

The analysis issues never tune these numbers: a model that needs easier data has to say so.
Contrast-to-noise ratios are ``(mean tumour - mean liver) / noise SD`` on viable tumour
(necrotic cores excluded) in each phase's own frame.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.spatial.transform import Rotation

__all__ = [
    "CT_PHASES",
    "CT_TISSUE_HU",
    "MRI_PHASES",
    "MRI_TISSUE",
    "RadiologyModel",
    "draw_misalignment",
    "mean_displacement",
]

CT_PHASES = ("non_contrast", "arterial", "portal_venous", "delayed")
MRI_PHASES = ("t2_fs", "dwi", "adc")

# mean attenuation (HU) of each tissue per CT phase; the liver enhances most in the portal-venous phase
CT_TISSUE_HU = {
    "air": (-1000, -1000, -1000, -1000),
    "fat": (-100, -100, -100, -100),
    "soft_tissue": (45, 55, 60, 58),
    "liver": (55, 70, 110, 95),
    "aorta": (40, 280, 160, 120),
    "portal_vein": (40, 110, 170, 130),
    "bone": (450, 450, 450, 450),
    "kidney": (35, 180, 160, 120),
}
# MRI signal (arbitrary units; ADC in 1e-6 mm^2/s) for T2-weighted fat-suppressed, DWI b=800 and ADC
MRI_TISSUE = {
    "air": (0, 0, 0),
    "fat": (60, 20, 100),
    "soft_tissue": (180, 90, 1500),
    "liver": (250, 120, 1400),
    "aorta": (40, 10, 2800),
    "portal_vein": (40, 15, 2800),
    "bone": (90, 30, 400),
    "kidney": (450, 200, 2200),
}


@dataclass(frozen=True)
class RadiologyModel:
    """Every knob of the demo radiology, in physical units.

    Attributes
    ----------
    ct_noise_hu, mri_noise
        White-noise SD per CT phase (HU) and per MRI phase (T2, DWI, ADC units).
    cnr_ct, cnr_mri
        Mean tumour-liver contrast-to-noise ratio per phase; each lesion draws its own
        around it with SD ``cnr_lesion_sd``. ADC's CNR falls by ``adc_cnr_per_grade`` per
        Edmondson grade above 2 (restricted diffusion in high-grade tumours).
    band_peak_mm, band_width_mm, band_strength
        Peritumoral enhancement of MVI-positive tumours: ``strength * noise SD *
        exp(-(d - peak)^2 / (2 width^2))`` at distance ``d`` outside the index lesion's edge,
        clipped to the liver; each patient's strength is scaled by U(1 - jitter, 1 + jitter),
        drawn independently for CT and MRI so that the two modalities carry complementary
        evidence.
    irregularity_mvi, irregularity_smooth, irregular_fraction_mvi_negative
        Margin lobulation amplitude (fraction of the radius) of MVI-positive index lesions,
        of smooth ones, and the fraction of MVI-negative lesions that are irregular anyway.
    heterogeneity_by_grade
        SD of the tumour texture (in noise SDs) for Edmondson grade 1-4.
    necrosis_min_grade, necrosis_min_diameter_mm, necrosis_fraction
        Lesions at least this grade and size get a non-enhancing core of U(a, b) of their volume.
    necrosis_hu, necrosis_mri
        Signal of the necrotic core: water-like on CT in every phase; bright on T2, dark on DWI
        and with a high ADC on MRI (free diffusion).
    fibrosis_by_child_pugh, fibrosis_texture
        Fibrosis score (0-1) per Child-Pugh class A/B/C plus N(0, 0.1); the liver's nodular
        texture has SD ``(a + b * score)`` noise SDs, so whole-liver texture carries the
        cirrhosis that drives death in the clinical model.
    misalignment_mm
        Mean displacement over the liver of each non-reference phase (and of the MRI exam and
        the post-ablation scan against the CT reference): U(a, b), made of a rotation (SD
        ``rotation_sd_deg`` per axis), a small affine part (SD ``affine_sd``) and a translation.
    mri_missing_fraction, reader_corrected_fraction
        Patients without MRI; patients with a second, reader-corrected lesion mask.
    psf_sigma_vox
        Gaussian blur of each phase before noise (scanner point-spread function).
    """

    ct_noise_hu: float = 15.0
    mri_noise: tuple[float, float, float] = (20.0, 10.0, 110.0)
    cnr_ct: tuple[float, float, float, float] = (-0.7, 2.0, 0.5, -1.0)
    cnr_mri: tuple[float, float, float] = (1.0, 1.5, -2.0)
    cnr_lesion_sd: float = 0.25
    adc_cnr_per_grade: float = -0.3
    band_peak_mm: float = 6.0
    band_width_mm: float = 1.5
    band_strength_ct: tuple[float, float, float, float] = (0.0, 1.2, 0.6, 0.0)
    band_strength_mri: tuple[float, float, float] = (0.0, 0.8, 0.0)
    band_strength_jitter: float = 0.4
    irregularity_mvi: tuple[float, float] = (0.15, 0.30)
    irregularity_smooth: tuple[float, float] = (0.02, 0.08)
    irregular_fraction_mvi_negative: float = 0.15
    heterogeneity_by_grade: tuple[float, float, float, float] = (0.3, 0.6, 0.9, 1.2)
    necrosis_min_grade: int = 3
    necrosis_min_diameter_mm: float = 25.0
    necrosis_fraction: tuple[float, float] = (0.1, 0.3)
    necrosis_hu: float = 25.0
    necrosis_mri: tuple[float, float, float] = (420.0, 50.0, 2300.0)
    fibrosis_by_child_pugh: tuple[float, float, float] = (0.3, 0.6, 0.85)
    fibrosis_texture: tuple[float, float] = (0.2, 0.8)
    misalignment_mm: tuple[float, float] = (2.0, 5.0)
    rotation_sd_deg: float = 1.0
    affine_sd: float = 0.01
    mri_missing_fraction: float = 0.2
    reader_corrected_fraction: float = 0.3
    psf_sigma_vox: float = 0.6
    ablation_zone_hu: float = 35.0
    ablation_rim_strength: float = 1.0

    def null(self) -> RadiologyModel:
        """No link between images and outcomes: no band, MVI-independent margins, grade-free texture."""
        import dataclasses

        mid = float(np.mean(self.heterogeneity_by_grade))
        return dataclasses.replace(
            self, band_strength_ct=(0.0,) * 4, band_strength_mri=(0.0,) * 3, irregularity_mvi=self.irregularity_smooth,
            heterogeneity_by_grade=(mid,) * 4, adc_cnr_per_grade=0.0, fibrosis_by_child_pugh=(0.55,) * 3,
            necrosis_min_grade=5,
        )

    def to_dict(self) -> dict:
        d = asdict(self)
        d["cnr_ct"] = dict(zip(CT_PHASES, self.cnr_ct))
        d["cnr_mri"] = dict(zip(MRI_PHASES, self.cnr_mri))
        d["band_strength_ct"] = dict(zip(CT_PHASES, self.band_strength_ct))
        d["band_strength_mri"] = dict(zip(MRI_PHASES, self.band_strength_mri))
        d["mri_noise"] = dict(zip(MRI_PHASES, self.mri_noise))
        d["necrosis_mri"] = dict(zip(MRI_PHASES, self.necrosis_mri))
        d["heterogeneity_by_grade"] = dict(zip(("1", "2", "3", "4"), self.heterogeneity_by_grade))
        d["fibrosis_by_child_pugh"] = dict(zip("ABC", self.fibrosis_by_child_pugh))
        d["ct_tissue_hu"] = {k: dict(zip(CT_PHASES, v)) for k, v in CT_TISSUE_HU.items()}
        d["mri_tissue"] = {k: dict(zip(MRI_PHASES, v)) for k, v in MRI_TISSUE.items()}
        return d


def mean_displacement(matrix: np.ndarray, points: np.ndarray) -> float:
    """Mean |M x - x| (mm) over world points x (n, 3)."""
    moved = points @ matrix[:3, :3].T + matrix[:3, 3]
    return float(np.linalg.norm(moved - points, axis=1).mean())


def draw_misalignment(
    rng: np.random.Generator, centre: np.ndarray, points: np.ndarray, *, target_mm: float, rotation_sd_deg: float,
    affine_sd: float,
) -> np.ndarray:
    """A world -> world 4x4 map whose mean displacement over ``points`` is ``target_mm``.

    A voxel of the moved image at world position x shows the anatomy found at ``M @ x`` in
    the reference frame. Rotation and the affine part act about ``centre`` (the liver);
    the translation, mostly cranio-caudal as in breathing, is scaled to meet the target.
    """
    rot = Rotation.from_euler("xyz", rng.normal(0.0, rotation_sd_deg, 3), degrees=True).as_matrix()
    lin = rot @ (np.eye(3) + rng.normal(0.0, affine_sd, (3, 3)))
    direction = rng.normal(0.0, 1.0, 3) * np.array([0.5, 0.5, 1.0])
    direction /= np.linalg.norm(direction)

    def matrix(scale: float) -> np.ndarray:
        m = np.eye(4)
        m[:3, :3] = lin
        m[:3, 3] = centre - lin @ centre + scale * direction
        return m

    lo, hi = 0.0, 4.0 * target_mm + 10.0
    if mean_displacement(matrix(lo), points) >= target_mm:  # rotation alone already moves enough
        return matrix(lo)
    for _ in range(40):  # bisection on the translation length: displacement grows with it
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if mean_displacement(matrix(mid), points) < target_mm else (lo, mid)
    return matrix(0.5 * (lo + hi))
