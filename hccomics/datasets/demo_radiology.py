"""Demo radiology: multi-phase CT and MRI volumes with masks and planted imaging effects.

For each imaged patient the anatomy (:mod:`hccomics.datasets.demo_anatomy`) is drawn once
on the reference grid (portal-venous CT, where the masks live). Each phase is rendered
from tissue intensities (:mod:`hccomics.datasets.demo_radiology_model`), blurred, moved by
its planted misalignment and given white noise. The MRI exam and the post-ablation scan are
separate acquisitions with their own frame and masks.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage
from tqdm.auto import tqdm

from hccomics.datasets.demo_anatomy import TISSUES, Anatomy, Grid, build_anatomy, smooth_noise
from hccomics.datasets.demo_radiology_model import (
    CT_PHASES,
    CT_TISSUE_HU,
    MRI_PHASES,
    MRI_TISSUE,
    RadiologyModel,
    draw_misalignment,
    mean_displacement,
)
from hccomics.io.nifti import save_nifti

__all__ = ["select_imaging_patients", "simulate_radiology"]

logger = logging.getLogger(__name__)
CT_REFERENCE = "portal_venous"
MRI_REFERENCE = "t2_fs"


def select_imaging_patients(clinical: pd.DataFrame, n: int, *, rng: np.random.Generator) -> list[str]:
    """A random subset of ``n`` patients that holds both MVI classes and an ablation case when the cohort does."""
    ids = np.array(clinical.index)
    chosen = list(rng.choice(ids, size=min(n, ids.size), replace=False))
    groups = [set(clinical.index[clinical["treatment"] == "ablation"]), set(clinical.index[clinical["mvi"] == 1]),
              set(clinical.index[clinical["mvi"] == 0])]
    for pool in groups:
        if pool and not pool & set(chosen):
            pick = sorted(pool)[int(rng.integers(len(pool)))]
            for j in range(len(chosen) - 1, -1, -1):  # swap out a patient no covered group depends on
                rest = set(chosen[:j] + chosen[j + 1:] + [pick])
                if all(not (g & set(chosen)) or g & rest for g in groups if g is not pool):
                    chosen[j] = pick
                    break
    return sorted(set(chosen))


def _save(array: np.ndarray, grid: Grid, path: Path, *, dtype: type) -> None:
    save_nifti(np.asarray(array).astype(dtype), path, affine=grid.affine)


def _resample(volume: np.ndarray, grid: Grid, matrix: np.ndarray, *, order: int) -> np.ndarray:
    """Image of ``volume`` (reference frame) seen in a frame whose world point x shows reference ``matrix @ x``."""
    a = grid.affine
    vox = np.linalg.inv(a) @ matrix @ a
    return ndimage.affine_transform(volume, vox[:3, :3], offset=vox[:3, 3], order=order, mode="nearest")


def _distance_outside(mask: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
    return ndimage.distance_transform_edt(~mask, sampling=spacing)


class _Patient:
    """Intensity fields of one patient shared by all phases (texture, band, necrosis)."""

    def __init__(self, anatomy: Anatomy, *, rng: np.random.Generator, model: RadiologyModel, grade: int,
                 mvi: int, fibrosis: float) -> None:
        g = anatomy.grid
        self.anatomy, self.model, self.grade, self.mvi = anatomy, model, grade, mvi
        sp = np.array(g.spacing)
        # nodular fibrosis: band-pass texture at 2-6 mm in the parenchyma
        fine, coarse = np.maximum(2.0 / sp, 0.5), np.maximum(6.0 / sp, 1.0)
        white = rng.standard_normal(g.shape).astype(np.float32)
        band = ndimage.gaussian_filter(white, fine) - ndimage.gaussian_filter(white, coarse)
        band /= band[anatomy.liver].std() + 1e-12
        self.fibrosis_sd = model.fibrosis_texture[0] + model.fibrosis_texture[1] * fibrosis
        self.fibrosis = band * self.fibrosis_sd
        self.tumour = anatomy.lesions > 0
        self.texture = smooth_noise(rng, g.shape, tuple(np.maximum(1.5 / sp, 0.5)))
        self.heterogeneity = model.heterogeneity_by_grade[grade - 1]
        self.necrosis = np.zeros(g.shape, dtype=bool)
        self.necrosis_fraction: dict[int, float] = {}
        for les in anatomy.lesion_list:
            m = anatomy.lesions == les.label
            frac = 0.0
            if grade >= model.necrosis_min_grade and les.diameter_mm >= model.necrosis_min_diameter_mm:
                depth = ndimage.distance_transform_edt(m, sampling=g.spacing)
                target = rng.uniform(*model.necrosis_fraction)
                core = m & (depth > np.quantile(depth[m], 1.0 - target))
                self.necrosis |= core
                frac = float(core.sum() / m.sum())
            self.necrosis_fraction[les.label] = frac
        self.cnr_offset = {les.label: rng.normal(0.0, model.cnr_lesion_sd) for les in anatomy.lesion_list}
        index = anatomy.lesions == 1
        self.dist_out = _distance_outside(index, g.spacing) if index.any() else np.full(g.shape, np.inf)
        self.parenchyma = anatomy.liver & ~self.tumour
        profile = np.exp(-((self.dist_out - model.band_peak_mm) ** 2) / (2 * model.band_width_mm**2))
        self.band = np.where(self.parenchyma, profile, 0.0).astype(np.float32)
        j = model.band_strength_jitter
        self.band_scale_ct = float(rng.uniform(1 - j, 1 + j)) if mvi else 0.0
        self.band_scale_mri = float(rng.uniform(1 - j, 1 + j)) if mvi else 0.0

    def render(self, table: dict[str, tuple], col: int, *, noise_sd: float, cnr: float, band: float, necrosis: float,
               cnr_per_grade: float = 0.0, tumour: np.ndarray | None = None) -> np.ndarray:
        """Noise-free image of one phase in the reference frame."""
        a = self.anatomy
        lut = np.zeros(max(TISSUES.values()) + 1, dtype=np.float32)
        for name, code in TISSUES.items():
            lut[code] = table[name][col]
        img = lut[a.tissue]
        liver_mean = table["liver"][col]
        img[self.parenchyma] += noise_sd * self.fibrosis[self.parenchyma]
        tumour = self.tumour if tumour is None else tumour
        for les in a.lesion_list:
            m = (a.lesions == les.label) & tumour
            c = cnr + self.cnr_offset[les.label] + cnr_per_grade * (self.grade - 2)
            img[m] = liver_mean + noise_sd * (c + self.heterogeneity * self.texture[m])
        img[self.necrosis & tumour] = necrosis
        if band:
            img += noise_sd * band * self.band
        return img



def _finish(img: np.ndarray, grid: Grid, matrix: np.ndarray | None, rng: np.random.Generator, noise_sd: float,
            model: RadiologyModel, *, clip_min: float | None = None) -> np.ndarray:
    img = ndimage.gaussian_filter(img, model.psf_sigma_vox)
    if matrix is not None:
        img = _resample(img, grid, matrix, order=1)
    img = img + noise_sd * rng.standard_normal(img.shape).astype(np.float32)
    if clip_min is not None:
        img = np.maximum(img, clip_min)
    return np.round(img)


def _misalign(rng: np.random.Generator, anatomy: Anatomy, model: RadiologyModel, points: np.ndarray) -> np.ndarray:
    return draw_misalignment(rng, anatomy.liver_centre_mm, points, target_mm=float(rng.uniform(*model.misalignment_mm)),
                             rotation_sd_deg=model.rotation_sd_deg, affine_sd=model.affine_sd)


def _reader_correction(lesions: np.ndarray, liver: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Plausible reader edits of a lesion mask: boundary pushed in or out on some slices, a missed focus added."""
    out = lesions.copy()
    index = lesions == 1
    slices = np.flatnonzero(index.any(axis=(0, 1)))
    edit = rng.uniform(size=slices.size) < 0.4
    edit[rng.integers(slices.size)] = True  # a corrected mask always differs from the reference
    for k in slices[edit]:
        sl = index[:, :, k]
        # a slice too thin to erode is grown instead, so that every chosen slice changes
        grow = rng.uniform() < 0.5 or not ndimage.binary_erosion(sl).any()
        edited = ndimage.binary_dilation(sl) if grow else ndimage.binary_erosion(sl)
        plane = out[:, :, k]
        plane[(plane == 1) & ~edited] = 0
        plane[edited & (plane == 0) & liver[:, :, k]] = 1
    if rng.uniform() < 0.3:
        ring = ndimage.binary_dilation(index, iterations=3) & ~ndimage.binary_dilation(index, iterations=1) & liver
        cand = np.flatnonzero(ring)
        if cand.size:
            centre = np.unravel_index(rng.choice(cand), lesions.shape)
            blob = np.zeros_like(index)
            blob[centre] = True
            blob = ndimage.binary_dilation(blob, iterations=2) & liver & (out == 0)
            out[blob] = 1
    return out


def _ablation_zone(p: _Patient, mam_mm: float, rng: np.random.Generator) -> np.ndarray:
    """Ablation zone around the index lesion whose minimal margin to the tumour edge is ``mam_mm``.

    The margin grows smoothly from ``mam_mm`` on one side to ``mam_mm + spread`` on the
    other, as when the probe sits off-centre; a negative margin leaves tumour uncovered.
    """
    a = p.anatomy
    g = a.grid
    index = a.lesions == 1
    inside = ndimage.distance_transform_edt(index, sampling=g.spacing)
    signed = np.where(index, -inside, p.dist_out)
    x, y, z = g.world()
    centre = a.lesion_list[0].centre_mm
    u = rng.normal(size=3)
    u /= np.linalg.norm(u)
    norm = np.sqrt((x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2) + 1e-6
    cos = ((x - centre[0]) * u[0] + (y - centre[1]) * u[1] + (z - centre[2]) * u[2]) / norm
    spread = rng.uniform(3.0, 8.0)
    margin = mam_mm + spread * (1.0 + cos) / 2.0
    return (signed < margin) & a.liver


def _patient_images(pid: str, row: pd.Series, grid: Grid, model: RadiologyModel, rng: np.random.Generator,
                    out: Path, folder: str, *, has_mri: bool, reader: bool, mam: float) -> tuple[list[dict], list[dict], dict]:
    irregular = row["mvi"] == 1 or rng.uniform() < model.irregular_fraction_mvi_negative
    irr = float(rng.uniform(*(model.irregularity_mvi if irregular else model.irregularity_smooth)))
    liver_minor = 2 * 0.25 * float(min(grid.fov[:2]))
    diameter = float(min(row["tumour_diameter_mm"], 0.55 * liver_minor))
    anatomy = build_anatomy(grid, rng=rng, index_diameter_mm=diameter, n_lesions=int(row["lesion_count"]),
                            irregularity=irr)
    cp = "ABC".index(str(row["child_pugh"]))
    fibrosis = float(np.clip(model.fibrosis_by_child_pugh[cp] + rng.normal(0, 0.1), 0.0, 1.0))
    p = _Patient(anatomy, rng=rng, model=model, grade=int(row["edmondson_grade"]), mvi=int(row["mvi"]), fibrosis=fibrosis)
    pts = np.stack(grid.world(), axis=-1)[anatomy.liver]
    pts = pts[rng.choice(len(pts), size=min(3000, len(pts)), replace=False)].astype(np.float64)
    base = f"{folder}/{pid}"
    series: list[dict] = []
    transforms: dict[str, list] = {}

    def write(name: str, arr: np.ndarray, dtype: type) -> str:
        rel = f"{base}/{name}.nii.gz"
        _save(arr, grid, out / rel, dtype=dtype)
        return rel

    masks = [{"label": "liver", "path": write("ct_liver_mask", anatomy.liver, np.uint8)},
             {"label": "lesion", "path": write("ct_lesion_mask", anatomy.lesions, np.uint8)}]
    if reader:
        corrected = _reader_correction(anatomy.lesions, anatomy.liver, rng)
        masks.append({"label": "lesion_reader_corrected", "path": write("ct_lesion_reader_corrected", corrected, np.uint8)})
    for col, phase in enumerate(CT_PHASES):
        m = None if phase == CT_REFERENCE else _misalign(rng, anatomy, model, pts)
        img = p.render(CT_TISSUE_HU, col, noise_sd=model.ct_noise_hu, cnr=model.cnr_ct[col],
                       band=model.band_strength_ct[col] * p.band_scale_ct, necrosis=model.necrosis_hu)
        img = _finish(img, grid, m, rng, model.ct_noise_hu, model, clip_min=-1024)
        transforms[f"CT/{phase}"] = (np.eye(4) if m is None else m).round(6).tolist()
        # each moving phase carries its own liver mask (the reference liver seen through its misalignment), so that
        # registration QC can report liver overlap before and after; deterministic, no draw from rng
        phase_masks = masks if m is None else [
            {"label": "liver", "path": write(f"ct_{phase}_liver_mask", _resample(anatomy.liver.astype(np.uint8), grid, m, order=0), np.uint8)}]
        series.append({"patient_id": pid, "modality": "CT", "phase": phase, "path": write(f"ct_{phase}", img, np.int16),
                       "masks": phase_masks})
    if has_mri:
        exam = _misalign(rng, anatomy, model, pts)
        within = _misalign(rng, anatomy, model, pts)  # DWI (and its ADC map) against T2 in the same exam
        dwi_m = exam @ within
        transforms["MRI/exam"] = exam.round(6).tolist()
        mri_masks = [{"label": "liver", "path": write("mri_liver_mask", _resample(anatomy.liver.astype(np.uint8), grid, exam, order=0), np.uint8)},
                     {"label": "lesion", "path": write("mri_lesion_mask", _resample(anatomy.lesions, grid, exam, order=0), np.uint8)}]
        for col, phase in enumerate(MRI_PHASES):
            m = exam if phase == MRI_REFERENCE else dwi_m
            img = p.render(MRI_TISSUE, col, noise_sd=model.mri_noise[col], cnr=model.cnr_mri[col],
                           band=model.band_strength_mri[col] * p.band_scale_mri, necrosis=model.necrosis_mri[col],
                           cnr_per_grade=model.adc_cnr_per_grade if phase == "adc" else 0.0)
            img = _finish(img, grid, m, rng, model.mri_noise[col], model, clip_min=0)
            transforms[f"MRI/{phase}"] = m.round(6).tolist()
            series.append({"patient_id": pid, "modality": "MRI", "phase": phase, "path": write(f"mri_{phase}", img, np.int16),
                           "masks": mri_masks if phase == MRI_REFERENCE else []})
    ablation: dict = {}
    if row["treatment"] == "ablation" and anatomy.lesion_list:
        zone = _ablation_zone(p, mam, rng)
        m = _misalign(rng, anatomy, model, pts)
        post = p.render(CT_TISSUE_HU, 2, noise_sd=model.ct_noise_hu, cnr=model.cnr_ct[2], band=0.0,
                        necrosis=model.necrosis_hu, tumour=p.tumour & ~zone)
        rim = zone ^ ndimage.binary_erosion(zone, iterations=1)
        post[zone] = model.ablation_zone_hu
        post[rim] += model.ablation_rim_strength * model.ct_noise_hu
        post = _finish(post, grid, m, rng, model.ct_noise_hu, model, clip_min=-1024)
        transforms["CT/post_ablation"] = m.round(6).tolist()
        post_masks = [{"label": "liver", "path": write("ct_post_ablation_liver_mask", _resample(anatomy.liver.astype(np.uint8), grid, m, order=0), np.uint8)},
                      {"label": "ablation_zone", "path": write("ct_ablation_zone_mask", _resample(zone.astype(np.uint8), grid, m, order=0), np.uint8)}]
        series.append({"patient_id": pid, "modality": "CT", "phase": "post_ablation",
                       "path": write("ct_post_ablation", post, np.int16), "masks": post_masks})
        ablation = {"minimal_ablative_margin_mm": mam, "uncovered_tumour_voxels": int((p.tumour & (anatomy.lesions == 1) & ~zone).sum())}

    lesions = []
    for les in anatomy.lesion_list:
        m = anatomy.lesions == les.label
        lesions.append({
            "patient_id": pid, "lesion": les.label, "index_lesion": les.index,
            "centre_x_mm": round(float(les.centre_mm[0]), 2), "centre_y_mm": round(float(les.centre_mm[1]), 2),
            "centre_z_mm": round(float(les.centre_mm[2]), 2), "planted_diameter_mm": round(les.diameter_mm, 2),
            "volume_ml": round(float(m.sum() * np.prod(grid.spacing)) / 1000.0, 4), "irregularity": round(les.irregularity, 4),
            "necrosis_fraction": round(p.necrosis_fraction[les.label], 4),
            "arterial_cnr": round(model.cnr_ct[1] + p.cnr_offset[les.label], 4),
            "heterogeneity_sd": p.heterogeneity,
        })
    # misalignment against the exam's own reference phase (what registration within an exam must undo)
    within_exam = {k: v for k, v in transforms.items() if k.startswith("CT/")}
    if has_mri:
        within_exam.update({"MRI/t2_fs": np.eye(4).tolist(), "MRI/dwi": within.tolist(), "MRI/adc": within.tolist()})
    displacement = {k: round(mean_displacement(np.array(v), pts), 3) for k, v in within_exam.items()}
    patient = {
        "has_mri": has_mri, "reader_corrected": reader, "fibrosis_score": round(fibrosis, 4),
        "fibrosis_texture_sd": round(p.fibrosis_sd, 4), "band_strength_ct": round(p.band_scale_ct, 4),
        "band_strength_mri": round(p.band_scale_mri, 4) if has_mri else None,
        "index_diameter_mm": round(diameter, 2), "n_lesions_drawn": len(anatomy.lesion_list),
        "transforms": transforms, "mean_displacement_mm": displacement, **ablation,
    }
    return series, lesions, patient


def simulate_radiology(
    clinical: pd.DataFrame,
    ablative_margin: pd.Series,
    out_dir: Path,
    *,
    n_patients: int,
    grid: Grid,
    rng: np.random.Generator,
    model: RadiologyModel | None = None,
    null: bool = False,
    folder: str = "imaging",
) -> tuple[list[dict], pd.DataFrame, dict]:
    """Write the imaging of a random subset of patients; return manifest series, lesion truth and truth.

    Parameters
    ----------
    clinical
        The clinical table (index ``patient_id``).
    ablative_margin
        Planted minimal ablative margin (mm) of ablation patients (NaN otherwise).
    out_dir
        Cohort folder; files go to ``out_dir / folder / <patient_id> /``.
    n_patients
        Number of imaged patients.
    grid
        Reference grid (shape and spacing in mm) of every volume.
    rng
        Random generator; one child stream per patient, so patients are independent.
    model
        Difficulty of the images (:class:`RadiologyModel`); fixed per generator version.
    null
        No link between images and outcomes (see :meth:`RadiologyModel.null`).
    """
    model = model or RadiologyModel()
    if null:
        model = model.null()
    pids = select_imaging_patients(clinical, n_patients, rng=rng)
    has_mri = rng.uniform(size=len(pids)) >= model.mri_missing_fraction
    reader = rng.uniform(size=len(pids)) < model.reader_corrected_fraction
    streams = [np.random.default_rng(s) for s in rng.bit_generator.seed_seq.spawn(len(pids))]
    series, lesions, patients = [], [], {}
    for k, pid in enumerate(tqdm(pids, desc="demo radiology", unit="patient", leave=False)):
        mam = float(ablative_margin.get(pid, np.nan))
        s, les, pat = _patient_images(pid, clinical.loc[pid], grid, model, streams[k], out_dir, folder,
                                      has_mri=bool(has_mri[k]), reader=bool(reader[k]), mam=mam)
        series += s
        lesions += les
        patients[pid] = pat
    lesion_df = pd.DataFrame(lesions)
    truth = {
        "model": model.to_dict(),
        "null": null,
        "grid": {"shape": list(grid.shape), "spacing_mm": list(grid.spacing), "orientation": "LPS (i left, j posterior, k superior)"},
        "reference_phase": {"CT": CT_REFERENCE, "MRI": MRI_REFERENCE},
        "patients": sorted(pids),
        "masks": "masks lie on the reference phase's grid and frame; lesion masks hold one label per lesion, 1 = index lesion",
        "transforms": "per series, a world->world 4x4 M (RAS mm): the voxel at world x shows the CT reference anatomy "
                      "at M @ x; 'MRI/exam' maps the T2 frame to the CT reference",
        "mean_displacement_mm": "mean |M x - x| over the liver against the exam's own reference phase "
                                "(portal venous for CT and post-ablation, T2 for MRI)",
        "fractions": {
            "index_lesion_under_15mm": float((lesion_df.query("index_lesion")["planted_diameter_mm"] < 15).mean()),
            "multifocal": float(np.mean([p["n_lesions_drawn"] > 1 for p in patients.values()])),
            "without_mri": float(1 - has_mri.mean()),
            "reader_corrected": float(reader.mean()),
        },
    }
    return series, lesion_df, {"summary": truth, "patients": patients}
