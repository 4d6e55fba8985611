"""Independent measurements of the demo radiology (test and validation oracles).

Everything reads the written NIfTI files with nibabel and measures with scipy / scikit-image,
using the header's voxel spacing; the generator's code is never called. Phases other than the
reference are brought into the reference frame with truth's transforms only.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from scipy import ndimage, stats
from scipy.spatial import ConvexHull

from hccomics.io import image_table, read_clinical


@dataclass
class Cohort:
    root: Path
    truth: dict
    patients: dict
    lesions: pd.DataFrame
    images: pd.DataFrame
    clinical: pd.DataFrame
    _cache: dict = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, manifest: Path) -> Cohort:
        root = manifest.parent
        return cls(root, json.loads((root / "truth.json").read_text()),
                   json.loads((root / "truth_imaging.json").read_text()), pd.read_csv(root / "truth_lesions.csv"),
                   image_table(manifest), read_clinical(manifest))

    def volume(self, path: str) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
        if path not in self._cache:
            img = nib.load(path)
            self._cache[path] = (np.asanyarray(img.dataobj).astype(np.float32), img.affine,
                                 tuple(float(z) for z in img.header.get_zooms()))
        return self._cache[path]

    def series(self, pid: str, modality: str, phase: str) -> pd.Series:
        t = self.images
        return t[(t.patient_id == pid) & (t.modality == modality) & (t.phase == phase)].iloc[0]

    def in_reference(self, pid: str, modality: str, phase: str, *, order: int = 1) -> np.ndarray:
        """A phase resampled into the CT reference frame with truth's world->world transform."""
        vol, affine, _ = self.volume(self.series(pid, modality, phase).path)
        if modality == "CT" and phase == "portal_venous":
            return vol
        m = np.array(self.patients[pid]["transforms"][f"{modality}/{phase}"])
        # reference voxel v sits at world y = A v; the moved image shows y at x = M^-1 y
        vox = np.linalg.inv(affine) @ np.linalg.inv(m) @ affine
        return ndimage.affine_transform(vol, vox[:3, :3], offset=vox[:3, 3], order=order, mode="nearest")

    def masks(self, pid: str) -> tuple[np.ndarray, np.ndarray, tuple]:
        ref = self.series(pid, "CT", "portal_venous")
        liver, _, zooms = self.volume(ref.mask_liver)
        lesion, _, _ = self.volume(ref.mask_lesion)
        return liver > 0, lesion.astype(int), zooms


def cnr(c: Cohort, pid: str, phase: str) -> float | None:
    """(index lesion core - distant parenchyma) / planted noise SD, in the reference frame."""
    liver, lesion, zooms = c.masks(pid)
    img = c.in_reference(pid, "CT", phase)
    core = ndimage.binary_erosion(lesion == 1, iterations=1)
    if core.sum() < 20:
        return None
    far = ndimage.binary_erosion(liver & (ndimage.distance_transform_edt(lesion == 0, sampling=zooms) > 15), iterations=2)
    return float((img[core].mean() - img[far].mean()) / c.truth["imaging"]["model"]["ct_noise_hu"])


def cnr_by_phase(c: Cohort) -> dict[str, tuple[float, int]]:
    """Mean CNR per CT phase over index lesions without necrosis, with the count used."""
    lesions = c.lesions.set_index(["patient_id", "lesion"])
    pids = [p for p in c.patients if lesions.loc[(p, 1), "necrosis_fraction"] == 0]
    out = {}
    for phase in ("non_contrast", "arterial", "portal_venous", "delayed"):
        values = [v for p in pids if (v := cnr(c, p, phase)) is not None]
        out[phase] = (float(np.mean(values)), len(values))
    return out


def noise_sd(c: Cohort, n: int = 10) -> float:
    """Median voxel SD in the eroded vertebral body (uniform, far brighter than anything else)."""
    sds = []
    for pid in list(c.patients)[:n]:
        img = c.volume(c.series(pid, "CT", "portal_venous").path)[0]
        bone = ndimage.binary_erosion(ndimage.binary_opening(img > 300, iterations=2), iterations=3)
        sds.append(img[bone].std())
    return float(np.median(sds))


def misalignment_errors(c: Cohort, n: int = 8) -> list[float]:
    """|phase-correlation shift - truth's displacement at the liver centroid| (mm), delayed vs portal venous."""
    from skimage.registration import phase_cross_correlation

    errors = []
    for pid in list(c.patients)[:n]:
        ref, affine, _ = c.volume(c.series(pid, "CT", "portal_venous").path)
        moved = c.volume(c.series(pid, "CT", "delayed").path)[0]
        shift_vox = phase_cross_correlation(ref, moved, upsample_factor=4)[0]
        # the shift registers the moved image to the reference, so the content moved by -shift voxels;
        # truth: a voxel at x shows the reference anatomy at M x, i.e. content moved by -(M c - c)
        m = np.array(c.patients[pid]["transforms"]["CT/delayed"])
        liver, _, _ = c.masks(pid)
        centre = (affine @ np.r_[np.argwhere(liver).mean(axis=0), 1.0])[:3]
        expected = m[:3, :3] @ centre + m[:3, 3] - centre
        errors.append(float(np.linalg.norm(affine[:3, :3] @ shift_vox - expected)))
    return errors


def band_difference(c: Cohort, phase: str, edges: np.ndarray) -> np.ndarray:
    """MVI+ minus MVI- mean enhancement (HU above distant parenchyma) in distance shells outside the index lesion."""
    mvi = c.clinical["mvi"]
    profiles = {}
    for pid in c.patients:
        liver, lesion, zooms = c.masks(pid)
        img = c.in_reference(pid, "CT", phase)
        d = ndimage.distance_transform_edt(lesion != 1, sampling=zooms)
        parenchyma = liver & (lesion == 0)
        base = img[parenchyma & (d > 14) & (d < 25)].mean()
        prof = np.full(len(edges) - 1, np.nan)
        for b in range(len(edges) - 1):
            shell = parenchyma & (d >= edges[b]) & (d < edges[b + 1])
            if shell.sum() >= 10:
                prof[b] = img[shell].mean() - base
        profiles[pid] = prof
    with warnings.catch_warnings():  # a shell thinner than 10 voxels in every patient stays NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        pos = np.nanmean([v for p, v in profiles.items() if mvi[p] == 1], axis=0)
        neg = np.nanmean([v for p, v in profiles.items() if mvi[p] == 0], axis=0)
    return pos - neg


def lesion_shapes(c: Cohort) -> pd.DataFrame:
    """Per drawn lesion: equivalent diameter and solidity (volume / convex hull) from the masks, with truth."""
    rows = []
    for pid in c.patients:
        _, lesion, zooms = c.masks(pid)
        for lab in range(1, lesion.max() + 1):
            pts = np.argwhere(lesion == lab) * np.array(zooms)
            vol = len(pts) * np.prod(zooms)
            solidity = vol / ConvexHull(pts).volume if len(pts) > 30 else np.nan
            rows.append({"patient_id": pid, "lesion": lab, "diameter": 2 * (3 * vol / (4 * np.pi)) ** (1 / 3),
                         "solidity": solidity})
    out = pd.DataFrame(rows).merge(c.lesions, on=["patient_id", "lesion"])
    out["mvi"] = c.clinical["mvi"].reindex(out.patient_id).to_numpy()
    return out


def heterogeneity_by_grade(c: Cohort) -> tuple[float, list[tuple[float, float]]]:
    """Spearman(grade, tumour-core SD) on lesions without necrosis, and (measured, planted) necrosis fractions."""
    grade = c.clinical["edmondson_grade"]
    lesions = c.lesions.set_index(["patient_id", "lesion"])
    sds, grades, necrosis = [], [], []
    for pid in c.patients:
        _, lesion, _ = c.masks(pid)
        img = c.volume(c.series(pid, "CT", "portal_venous").path)[0]
        core = ndimage.binary_erosion(lesion == 1, iterations=1)
        frac = lesions.loc[(pid, 1), "necrosis_fraction"]
        if core.sum() >= 40 and frac == 0:
            sds.append(img[core].std())
            grades.append(grade[pid])
        if frac > 0:  # non-enhancing core: far below the enhancing tumour in the portal venous phase
            necrosis.append((float((img[lesion == 1] < 75).mean()), float(frac)))
    return float(stats.spearmanr(grades, sds)[0]), necrosis


def fibrosis_spearman(c: Cohort) -> float:
    """Spearman(Child-Pugh class, band-passed parenchymal texture SD)."""
    cp = c.clinical["child_pugh"].astype(str)
    sds, cps = [], []
    for pid in c.patients:
        liver, lesion, zooms = c.masks(pid)
        img = c.volume(c.series(pid, "CT", "portal_venous").path)[0]
        far = ndimage.binary_erosion(liver & (ndimage.distance_transform_edt(lesion == 0, sampling=zooms) > 15), iterations=2)
        texture = ndimage.uniform_filter(img, 3) - ndimage.uniform_filter(img, 9)  # band-pass: texture, not the noise floor
        sds.append(texture[far].std())
        cps.append("ABC".index(cp[pid]))
    return float(stats.spearmanr(cps, sds)[0])


def reader_dice(c: Cohort) -> list[float]:
    """Dice between reference and reader-corrected lesion masks."""
    t = c.images
    if "mask_lesion_reader_corrected" not in t:
        return []
    dices = []
    for row in t.dropna(subset=["mask_lesion_reader_corrected"]).itertuples():
        ref = c.volume(row.mask_lesion)[0] > 0
        cor = c.volume(row.mask_lesion_reader_corrected)[0] > 0
        dices.append(float(2 * (ref & cor).sum() / (ref.sum() + cor.sum())))
    return dices


def ablation_margins(c: Cohort) -> pd.DataFrame:
    """Minimal ablative margin from the masks (signed distance to the zone edge, min over tumour voxels) vs planted."""
    post = c.images[c.images.phase == "post_ablation"]
    planted = pd.read_csv(c.root / "truth_patients.csv", index_col=0)["minimal_ablative_margin_mm"]
    rows = []
    for row in post.itertuples():
        _, lesion, zooms = c.masks(row.patient_id)
        zone_post, affine, _ = c.volume(row.mask_ablation_zone)
        m = np.array(c.patients[row.patient_id]["transforms"]["CT/post_ablation"])
        vox = np.linalg.inv(affine) @ np.linalg.inv(m) @ affine
        zone = ndimage.affine_transform(zone_post, vox[:3, :3], offset=vox[:3, 3], order=0, mode="constant") > 0
        signed = np.where(zone, ndimage.distance_transform_edt(zone, sampling=zooms),
                          -ndimage.distance_transform_edt(~zone, sampling=zooms))
        rows.append({"patient_id": row.patient_id, "measured": float(signed[lesion == 1].min()),
                     "planted": float(planted[row.patient_id])})
    return pd.DataFrame(rows)
