"""The demo radiology carries the imaging effects truth.json plants, measured by independent oracles.

Every measurement reads the written NIfTI files with nibabel and uses scipy / scikit-image
with the header's voxel spacing; the generator's own code is never called. Phases other than
the reference are brought into the reference frame with truth's transforms only.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage, stats
from scipy.spatial import ConvexHull

from hccomics.io import image_table, read_clinical


@pytest.fixture(scope="module")
def cohort(demo_manifest: Path) -> dict:
    root = demo_manifest.parent
    return {
        "root": root,
        "truth": json.loads((root / "truth.json").read_text()),
        "patients": json.loads((root / "truth_imaging.json").read_text()),
        "lesions": pd.read_csv(root / "truth_lesions.csv"),
        "images": image_table(demo_manifest),
        "clinical": read_clinical(demo_manifest),
    }


@cache
def _load(path: str) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    img = nib.load(path)
    return np.asanyarray(img.dataobj).astype(np.float32), img.affine, tuple(float(z) for z in img.header.get_zooms())


def _series(cohort: dict, pid: str, modality: str, phase: str) -> pd.Series:
    t = cohort["images"]
    return t[(t.patient_id == pid) & (t.modality == modality) & (t.phase == phase)].iloc[0]


def _in_reference(cohort: dict, pid: str, modality: str, phase: str, *, order: int = 1) -> np.ndarray:
    """A phase resampled into the CT reference frame with truth's world->world transform."""
    vol, affine, _ = _load(_series(cohort, pid, modality, phase).path)
    m = np.array(cohort["patients"][pid]["transforms"][f"{modality}/{phase}"])
    # reference voxel v sits at world y = A v; the moved image shows y at x = M^-1 y
    vox = np.linalg.inv(affine) @ np.linalg.inv(m) @ affine
    return ndimage.affine_transform(vol, vox[:3, :3], offset=vox[:3, 3], order=order, mode="nearest")


def _masks(cohort: dict, pid: str) -> tuple[np.ndarray, np.ndarray, tuple]:
    ref = _series(cohort, pid, "CT", "portal_venous")
    liver, _, zooms = _load(ref.mask_liver)
    lesion, _, _ = _load(ref.mask_lesion)
    return liver > 0, lesion.astype(int), zooms


def _cnr(cohort: dict, pid: str, phase: str) -> float | None:
    liver, lesion, zooms = _masks(cohort, pid)
    img = _load(_series(cohort, pid, "CT", phase).path)[0] if phase == "portal_venous" else _in_reference(cohort, pid, "CT", phase)
    core = ndimage.binary_erosion(lesion == 1, iterations=1)
    if core.sum() < 20:
        return None
    far = liver & (ndimage.distance_transform_edt(lesion == 0, sampling=zooms) > 15)
    far = ndimage.binary_erosion(far, iterations=2)
    sigma = cohort["truth"]["imaging"]["model"]["ct_noise_hu"]
    return float((img[core].mean() - img[far].mean()) / sigma)


def test_geometry_and_masks_share_the_grid(cohort: dict) -> None:
    for row in cohort["images"].itertuples():
        _, affine, zooms = _load(row.path)
        assert max(zooms[:2]) <= 2.0, row.path
        assert np.allclose(np.abs(np.diag(affine)[:3]), zooms[:3])
        for label in ("mask_liver", "mask_lesion", "mask_ablation_zone"):
            m = getattr(row, label, None)
            if isinstance(m, str):
                assert np.allclose(_load(m)[1], affine), m
    # portal venous CT is the masks' phase; MRI masks sit on T2
    assert cohort["truth"]["imaging"]["reference_phase"] == {"CT": "portal_venous", "MRI": "t2_fs"}


def test_contrast_to_noise_per_phase_as_planted(cohort: dict) -> None:
    planted = cohort["truth"]["imaging"]["model"]["cnr_ct"]
    lesions = cohort["lesions"].set_index(["patient_id", "lesion"])
    pids = [p for p in cohort["patients"] if lesions.loc[(p, 1), "necrosis_fraction"] == 0]
    for phase in ("arterial", "portal_venous", "delayed"):
        values = [v for p in pids if (v := _cnr(cohort, p, phase)) is not None]
        assert len(values) >= 15
        assert abs(np.mean(values) - planted[phase]) < 0.35, (phase, np.mean(values), planted[phase])


def test_noise_level_in_homogeneous_bone(cohort: dict) -> None:
    # the vertebral body is uniform and far brighter than anything else: its voxel SD is the noise alone
    sds = []
    for pid in list(cohort["patients"])[:10]:
        img = _load(_series(cohort, pid, "CT", "portal_venous").path)[0]
        bone = ndimage.binary_erosion(ndimage.binary_opening(img > 300, iterations=2), iterations=3)
        sds.append(img[bone].std())
    assert abs(np.median(sds) - cohort["truth"]["imaging"]["model"]["ct_noise_hu"]) < 3.0


def test_misalignment_as_planted(cohort: dict) -> None:
    from skimage.registration import phase_cross_correlation

    lo, hi = cohort["truth"]["imaging"]["model"]["misalignment_mm"]
    errors = []
    for pid in list(cohort["patients"])[:8]:
        disp = cohort["patients"][pid]["mean_displacement_mm"]
        for key, d in disp.items():
            if key not in ("CT/portal_venous", "MRI/t2_fs"):
                assert lo - 0.01 <= d <= hi + 0.01, (pid, key, d)
        ref, affine, zooms = _load(_series(cohort, pid, "CT", "portal_venous").path)
        moved = _load(_series(cohort, pid, "CT", "delayed").path)[0]
        shift_vox = phase_cross_correlation(ref, moved, upsample_factor=4)[0]
        # the shift registers the moved image to the reference, so the content moved by -shift voxels;
        # truth: a voxel at x shows the reference anatomy at M x, i.e. content moved by -(M c - c)
        m = np.array(cohort["patients"][pid]["transforms"]["CT/delayed"])
        liver, _, _ = _masks(cohort, pid)
        c = (affine @ np.r_[np.argwhere(liver).mean(axis=0), 1.0])[:3]
        expected_mm = m[:3, :3] @ c + m[:3, 3] - c
        measured_mm = affine[:3, :3] @ shift_vox
        errors.append(np.linalg.norm(measured_mm - expected_mm))
    assert np.median(errors) < 1.5, errors


def _shell_profile(cohort: dict, pid: str, phase: str, edges: np.ndarray) -> np.ndarray:
    liver, lesion, zooms = _masks(cohort, pid)
    img = _load(_series(cohort, pid, "CT", phase).path)[0] if phase == "portal_venous" else _in_reference(cohort, pid, "CT", phase)
    d = ndimage.distance_transform_edt(lesion != 1, sampling=zooms)
    parenchyma = liver & (lesion == 0)
    base = img[parenchyma & (d > 14) & (d < 25)].mean()
    out = np.full(len(edges) - 1, np.nan)
    for b in range(len(edges) - 1):
        shell = parenchyma & (d >= edges[b]) & (d < edges[b + 1])
        if shell.sum() >= 10:
            out[b] = img[shell].mean() - base
    return out


def test_peritumoral_band_peaks_near_the_planted_distance(cohort: dict) -> None:
    truth = cohort["truth"]["imaging"]["model"]
    edges = np.arange(0.5, 14.6, 1.0)
    centres = (edges[:-1] + edges[1:]) / 2
    mvi = cohort["clinical"]["mvi"]
    for phase in ("arterial", "portal_venous"):
        prof = {p: _shell_profile(cohort, p, phase, edges) for p in cohort["patients"]}
        pos = np.nanmean([v for p, v in prof.items() if mvi[p] == 1], axis=0)
        neg = np.nanmean([v for p, v in prof.items() if mvi[p] == 0], axis=0)
        diff = pos - neg
        peak = centres[np.nanargmax(diff)]
        assert abs(peak - truth["band_peak_mm"]) <= 1.0, (phase, peak, diff.round(1))
        assert diff[np.nanargmax(diff)] > 0.3 * truth["ct_noise_hu"] * truth["band_strength_ct"][phase]


def test_lesion_sizes_irregularity_and_multifocality(cohort: dict) -> None:
    rows = []
    for pid in cohort["patients"]:
        liver, lesion, zooms = _masks(cohort, pid)
        voxel_ml = np.prod(zooms) / 1000
        for lab in range(1, lesion.max() + 1):
            pts = np.argwhere(lesion == lab) * np.array(zooms)
            vol = len(pts) * np.prod(zooms)
            solidity = vol / ConvexHull(pts).volume if len(pts) > 30 else np.nan
            rows.append({"patient_id": pid, "lesion": lab, "diameter": 2 * (3 * vol / (4 * np.pi)) ** (1 / 3),
                         "solidity": solidity, "volume_ml": len(pts) * voxel_ml})
    measured = pd.DataFrame(rows).merge(cohort["lesions"], on=["patient_id", "lesion"])
    index = measured[measured.lesion == 1]
    under15 = (index.diameter < 15).mean()
    assert 0.15 <= under15 <= 0.5, under15  # about 30% planted
    ok = index.planted_diameter_mm >= 10
    rel = (index.diameter[ok] - index.planted_diameter_mm[ok]) / index.planted_diameter_mm[ok]
    assert np.median(np.abs(rel)) < 0.2
    mvi = cohort["clinical"]["mvi"].reindex(index.patient_id).to_numpy()
    big = (index.diameter > 12).to_numpy()
    # irregular (lobulated) margins: MVI-positive index lesions fill less of their convex hull
    assert np.nanmean(index.solidity[big & (mvi == 1)]) < np.nanmean(index.solidity[big & (mvi == 0)]) - 0.02
    assert measured.groupby("patient_id").size().gt(1).any()


def test_grade_raises_tumour_heterogeneity_and_necrosis(cohort: dict) -> None:
    grade = cohort["clinical"]["edmondson_grade"]
    lesions = cohort["lesions"].set_index(["patient_id", "lesion"])
    sds, grades = [], []
    for pid in cohort["patients"]:
        _, lesion, _ = _masks(cohort, pid)
        img = _load(_series(cohort, pid, "CT", "portal_venous").path)[0]
        core = ndimage.binary_erosion(lesion == 1, iterations=1)
        frac = lesions.loc[(pid, 1), "necrosis_fraction"]
        if core.sum() >= 40 and frac == 0:
            sds.append(img[core].std())
            grades.append(grade[pid])
        if frac > 0:  # non-enhancing core: far below the enhancing tumour in the portal venous phase
            low = (img[lesion == 1] < 75).mean()
            assert abs(low - frac) < 0.15, (pid, low, frac)
    assert stats.spearmanr(grades, sds)[0] > 0.3


def test_fibrosis_texture_follows_child_pugh(cohort: dict) -> None:
    cp = cohort["clinical"]["child_pugh"].astype(str)
    sds, cps = [], []
    for pid in cohort["patients"]:
        liver, lesion, zooms = _masks(cohort, pid)
        img = _load(_series(cohort, pid, "CT", "portal_venous").path)[0]
        far = ndimage.binary_erosion(liver & (ndimage.distance_transform_edt(lesion == 0, sampling=zooms) > 15), iterations=2)
        smooth = ndimage.uniform_filter(img, 3) - ndimage.uniform_filter(img, 9)  # band-pass: texture, not the noise floor
        sds.append(smooth[far].std())
        cps.append("ABC".index(cp[pid]))
    assert stats.spearmanr(cps, sds)[0] > 0.3


def test_mri_exam_reader_corrections_and_fractions(cohort: dict) -> None:
    t = cohort["images"]
    frac = cohort["truth"]["imaging"]["fractions"]
    with_mri = set(t[t.modality == "MRI"].patient_id)
    assert 0.05 < 1 - len(with_mri) / len(cohort["patients"]) < 0.4
    assert frac["without_mri"] == pytest.approx(1 - len(with_mri) / len(cohort["patients"]))
    # restricted diffusion: tumour ADC below liver ADC, in the MRI's own frame and masks
    diffs = []
    for pid in sorted(with_mri)[:10]:
        t2 = _series(cohort, pid, "MRI", "t2_fs")
        lesion = _load(t2.mask_lesion)[0]
        liver = _load(t2.mask_liver)[0] > 0
        adc = _in_reference(cohort, pid, "MRI", "adc")
        exam = np.array(cohort["patients"][pid]["transforms"]["MRI/exam"])
        # bring ADC (in the CT frame now) into the T2 frame with the exam transform
        a = _load(t2.path)[1]
        vox = np.linalg.inv(a) @ exam @ a
        adc_t2 = ndimage.affine_transform(adc, vox[:3, :3], offset=vox[:3, 3], order=1, mode="nearest")
        core = ndimage.binary_erosion(lesion == 1)
        if core.sum() >= 10:
            diffs.append(adc_t2[core].mean() - adc_t2[liver & (lesion == 0)].mean())
    assert np.median(diffs) < 0
    corrected = t.dropna(subset=["mask_lesion_reader_corrected"]) if "mask_lesion_reader_corrected" in t else t.iloc[:0]
    assert len(corrected) >= 5
    dices = []
    for row in corrected.itertuples():
        ref = _load(row.mask_lesion)[0] > 0
        cor = _load(row.mask_lesion_reader_corrected)[0] > 0
        dices.append(2 * (ref & cor).sum() / (ref.sum() + cor.sum()))
    assert 0.5 < np.median(dices) < 0.99 and max(dices) < 1.0


def test_ablation_margin_as_planted(cohort: dict) -> None:
    t = cohort["images"]
    post = t[t.phase == "post_ablation"]
    assert len(post) >= 3
    planted = pd.read_csv(cohort["root"] / "truth_patients.csv", index_col=0)["minimal_ablative_margin_mm"]
    measured = []
    for row in post.itertuples():
        _, lesion, zooms = _masks(cohort, row.patient_id)
        zone_post, affine, _ = _load(row.mask_ablation_zone)
        m = np.array(cohort["patients"][row.patient_id]["transforms"]["CT/post_ablation"])
        vox = np.linalg.inv(affine) @ np.linalg.inv(m) @ affine
        zone = ndimage.affine_transform(zone_post, vox[:3, :3], offset=vox[:3, 3], order=0, mode="constant") > 0
        tumour = lesion == 1
        inside = ndimage.distance_transform_edt(zone, sampling=zooms)
        outside = ndimage.distance_transform_edt(~zone, sampling=zooms)
        signed = np.where(zone, inside, -outside)
        measured.append(signed[tumour].min())
    p = planted.reindex(post.patient_id).to_numpy()
    assert np.median(np.abs(np.array(measured) - p)) < 2.0, list(zip(p, measured))
    if len(p) >= 5:
        assert stats.pearsonr(p, measured)[0] > 0.8


def test_small_margins_drive_local_recurrence() -> None:
    from hccomics.datasets.demo_clinical import HazardModel, simulate_clinical

    clinical, _, truth = simulate_clinical(4000, rng=np.random.default_rng(3), hazard=HazardModel(),
                                           rng_ablation=np.random.default_rng(4))
    abl = clinical[clinical.treatment == "ablation"].copy()
    abl["mam"] = pd.Series(truth["ablation"]["minimal_ablative_margin_mm"])
    low, high = abl[abl.mam < 2], abl[abl.mam > 6]
    assert low["local_recurrence"].mean() > 3 * high["local_recurrence"].mean()
    assert clinical.loc[clinical.treatment != "ablation", "local_recurrence"].isna().all()
