"""The demo radiology carries the imaging effects truth.json plants, measured by independent oracles.

The measurements live in ``imaging_oracles`` (shared with ``validation/demo_imaging.py``); they
read the written NIfTI files and never call the generator.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from imaging_oracles import (
    Cohort,
    ablation_margins,
    band_difference,
    cnr_by_phase,
    fibrosis_spearman,
    heterogeneity_by_grade,
    lesion_shapes,
    misalignment_errors,
    noise_sd,
    reader_dice,
)
from scipy import ndimage, stats


@pytest.fixture(scope="module")
def cohort(demo_manifest: Path) -> Cohort:
    return Cohort.load(demo_manifest)


def test_geometry_and_masks_share_the_grid(cohort: Cohort) -> None:
    for row in cohort.images.itertuples():
        _, affine, zooms = cohort.volume(row.path)
        assert max(zooms[:2]) <= 2.0, row.path
        assert np.allclose(np.abs(np.diag(affine)[:3]), zooms[:3])
        for label in ("mask_liver", "mask_lesion", "mask_ablation_zone"):
            m = getattr(row, label, None)
            if isinstance(m, str):
                assert np.allclose(cohort.volume(m)[1], affine), m
    assert cohort.truth["imaging"]["reference_phase"] == {"CT": "portal_venous", "MRI": "t2_fs"}


def test_contrast_to_noise_per_phase_as_planted(cohort: Cohort) -> None:
    planted = cohort.truth["imaging"]["model"]["cnr_ct"]
    for phase, (measured, n) in cnr_by_phase(cohort).items():
        assert n >= 15
        assert abs(measured - planted[phase]) < 0.35, (phase, measured, planted[phase])


def test_noise_level_in_homogeneous_bone(cohort: Cohort) -> None:
    assert abs(noise_sd(cohort) - cohort.truth["imaging"]["model"]["ct_noise_hu"]) < 3.0


def test_misalignment_as_planted(cohort: Cohort) -> None:
    lo, hi = cohort.truth["imaging"]["model"]["misalignment_mm"]
    for pid, p in cohort.patients.items():
        for key, d in p["mean_displacement_mm"].items():
            if key not in ("CT/portal_venous", "MRI/t2_fs"):
                assert lo - 0.01 <= d <= hi + 0.01, (pid, key, d)
    errors = misalignment_errors(cohort)
    assert np.median(errors) < 1.5, errors


def test_peritumoral_band_peaks_near_the_planted_distance(cohort: Cohort) -> None:
    truth = cohort.truth["imaging"]["model"]
    edges = np.arange(0.5, 14.6, 1.0)
    centres = (edges[:-1] + edges[1:]) / 2
    for phase in ("arterial", "portal_venous"):
        diff = band_difference(cohort, phase, edges)
        peak = centres[np.nanargmax(diff)]
        assert abs(peak - truth["band_peak_mm"]) <= 1.0, (phase, peak, diff.round(1))
        assert np.nanmax(diff) > 0.3 * truth["ct_noise_hu"] * truth["band_strength_ct"][phase]
    # no band in the delayed phase
    assert np.nanmax(np.abs(band_difference(cohort, "delayed", edges))) < 0.3 * truth["ct_noise_hu"]


def test_lesion_sizes_irregularity_and_multifocality(cohort: Cohort) -> None:
    shapes = lesion_shapes(cohort)
    index = shapes[shapes.lesion == 1]
    assert 0.15 <= (index.diameter < 15).mean() <= 0.5  # about 30% planted
    ok = index.planted_diameter_mm >= 10
    rel = (index.diameter[ok] - index.planted_diameter_mm[ok]) / index.planted_diameter_mm[ok]
    assert np.median(np.abs(rel)) < 0.2
    big = index[index.diameter > 12]
    # irregular (lobulated) margins: MVI-positive index lesions fill less of their convex hull
    assert big.loc[big.mvi == 1, "solidity"].mean() < big.loc[big.mvi == 0, "solidity"].mean() - 0.02
    assert shapes.groupby("patient_id").size().gt(1).any()


def test_grade_raises_tumour_heterogeneity_and_necrosis(cohort: Cohort) -> None:
    rho, necrosis = heterogeneity_by_grade(cohort)
    assert rho > 0.3
    assert necrosis and all(abs(measured - planted) < 0.15 for measured, planted in necrosis)


def test_fibrosis_texture_follows_child_pugh(cohort: Cohort) -> None:
    assert fibrosis_spearman(cohort) > 0.3


def test_mri_exam_and_reader_corrections(cohort: Cohort) -> None:
    t = cohort.images
    with_mri = set(t[t.modality == "MRI"].patient_id)
    assert 0.05 < 1 - len(with_mri) / len(cohort.patients) < 0.4
    assert cohort.truth["imaging"]["fractions"]["without_mri"] == pytest.approx(1 - len(with_mri) / len(cohort.patients))
    # restricted diffusion: tumour ADC below liver ADC, measured in the T2 frame with the T2 masks
    diffs = []
    for pid in sorted(with_mri)[:10]:
        t2 = cohort.series(pid, "MRI", "t2_fs")
        lesion = cohort.volume(t2.mask_lesion)[0]
        liver = cohort.volume(t2.mask_liver)[0] > 0
        adc = cohort.in_reference(pid, "MRI", "adc")
        a = cohort.volume(t2.path)[1]
        vox = np.linalg.inv(a) @ np.array(cohort.patients[pid]["transforms"]["MRI/exam"]) @ a
        adc_t2 = ndimage.affine_transform(adc, vox[:3, :3], offset=vox[:3, 3], order=1, mode="nearest")
        core = ndimage.binary_erosion(lesion == 1)
        if core.sum() >= 10:
            diffs.append(adc_t2[core].mean() - adc_t2[liver & (lesion == 0)].mean())
    assert np.median(diffs) < 0
    dices = reader_dice(cohort)
    assert len(dices) >= 5
    assert 0.5 < np.median(dices) < 0.99 and max(dices) < 1.0


def test_ablation_margin_as_planted(cohort: Cohort) -> None:
    margins = ablation_margins(cohort)
    assert len(margins) >= 3
    assert (margins.measured - margins.planted).abs().median() < 2.0, margins
    if len(margins) >= 5:
        assert stats.pearsonr(margins.planted, margins.measured)[0] > 0.8


def test_small_margins_drive_local_recurrence() -> None:
    from hccomics.datasets.demo_clinical import HazardModel, simulate_clinical

    clinical, _, truth = simulate_clinical(4000, rng=np.random.default_rng(3), hazard=HazardModel(),
                                           rng_ablation=np.random.default_rng(4))
    abl = clinical[clinical.treatment == "ablation"].copy()
    abl["mam"] = pd.Series(truth["ablation"]["minimal_ablative_margin_mm"])
    low, high = abl[abl.mam < 2], abl[abl.mam > 6]
    assert low["local_recurrence"].mean() > 3 * high["local_recurrence"].mean()
    assert clinical.loc[clinical.treatment != "ablation", "local_recurrence"].isna().all()


def test_imaged_patients_cover_mvi_classes_and_ablation() -> None:
    from hccomics.datasets.demo_clinical import HazardModel, simulate_clinical
    from hccomics.datasets.demo_radiology import select_imaging_patients

    for seed in range(40):
        clinical, _, _ = simulate_clinical(40, rng=np.random.default_rng(seed), hazard=HazardModel(),
                                           rng_ablation=np.random.default_rng(seed + 1))
        chosen = clinical.loc[select_imaging_patients(clinical, 6, rng=np.random.default_rng(seed))]
        assert len(chosen) == 6
        for column, value in (("mvi", 1), ("mvi", 0), ("treatment", "ablation")):
            if (clinical[column] == value).any():
                assert (chosen[column] == value).any(), (seed, column, value)
