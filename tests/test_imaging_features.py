"""Radiomics subset against hand-computed values and SciPy; lesion features and the img modality against demo truth."""

from __future__ import annotations

import math

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from hccomics import imaging
from hccomics.errors import DataValidationError
from hccomics.imaging.features import aggregate_lesions, exam_features, lesion_features
from hccomics.imaging.mvi import auc_ci, auc_rows, compare_auc, mvi_folds, radiomics_oof, ring_width_comparison
from hccomics.imaging.radiomics import first_order, glcm_features, shape_features


def test_first_order_matches_scipy():
    v = np.random.default_rng(0).gamma(2.0, 10.0, 5000)
    r = first_order(v)
    assert r["mean"] == pytest.approx(v.mean()) and r["sd"] == pytest.approx(v.std())
    assert r["skewness"] == pytest.approx(stats.skew(v)) and r["kurtosis"] == pytest.approx(stats.kurtosis(v))
    assert [r["p10"], r["median"], r["p90"]] == pytest.approx(np.percentile(v, [10, 50, 90]))
    # hand-computed entropy: two equally full bins = 1 bit
    assert first_order(np.array([0.0, 0.0, 1.0, 1.0]), levels=2)["entropy"] == pytest.approx(1.0)
    assert math.isnan(first_order(np.array([]))["mean"])


def test_glcm_ignores_voxels_outside_the_region():
    # region: the middle row [0, 0, 100]; its neighbours outside the region hold extreme values that must not count
    img = np.array([[999.0, -999.0, 999.0], [0.0, 0.0, 100.0], [-999.0, 999.0, -999.0]])[:, :, None]
    mask = np.zeros(img.shape, bool)
    mask[1] = True
    r = glcm_features(img, mask, levels=2)
    # horizontal pairs only: (0,0) and (0,1), symmetric -> P(0,0) = 1/2, P(0,1) = P(1,0) = 1/4
    assert r["contrast"] == pytest.approx(0.5)
    assert r["ASM"] == pytest.approx(0.25 + 2 * 0.0625)
    assert r["homogeneity"] == pytest.approx(0.5 + 0.5 / 2)


def test_shape_of_an_ellipsoid():
    x, y, z = np.indices((61, 41, 31)) - np.array([30, 20, 15])[:, None, None, None]
    a, b, c = 25.0, 12.5, 6.25
    m = (x / a) ** 2 + (y / b) ** 2 + (z / c) ** 2 <= 1
    r = shape_features(m, spacing=(1.0, 1.0, 1.0))
    assert r["volume_ml"] == pytest.approx(4 / 3 * math.pi * a * b * c / 1000, rel=0.02)
    assert r["elongation"] == pytest.approx(b / a, rel=0.03) and r["flatness"] == pytest.approx(c / a, rel=0.05)
    assert r["max_diameter_mm"] == pytest.approx(2 * a + 1, abs=1.0)
    # the same ellipsoid drawn on a 1 x 1 x 2 mm grid keeps its mm shape
    r2 = shape_features(m[:, :, ::2], spacing=(1.0, 1.0, 2.0))
    assert r2["volume_ml"] == pytest.approx(r["volume_ml"], rel=0.05) and r2["elongation"] == pytest.approx(b / a, rel=0.05)


@pytest.fixture(scope="module")
def registered(smoke_registered):
    return smoke_registered


@pytest.fixture(scope="module")
def lesions(registered):
    return {mod: lesion_features(imaging.segmentation_items(reg, modality=mod), modality=mod, n_jobs=1)
            for mod, reg in registered.items()}


def test_lesion_features_follow_the_demo_truth(smoke_manifest, lesions):
    truth = pd.read_csv(smoke_manifest.parent / "truth_lesions.csv")
    ct = lesions["CT"]
    obs = ct.obs.set_index(["patient_id", "lesion"])
    t = truth.set_index(["patient_id", "lesion"]).loc[obs.index]
    # every lesion found with the planted volume (spacing from the header all along the path)
    assert len(obs) == len(truth)
    assert obs["volume_ml"].to_numpy() == pytest.approx(t["volume_ml"].to_numpy(), rel=1e-3, abs=1e-3)
    # the index lesion rule (largest) picks the planted index lesion
    assert (obs["is_index"].to_numpy() == t["index_lesion"].to_numpy()).all()
    assert {"region", "phase", "family", "width_mm"} <= set(ct.var.columns)
    assert ct.uns["lesion_features"]["params"]["mode"] == "shell"


def test_peritumoral_band_shows_in_the_planted_ring(smoke_manifest, lesions):
    from hccomics.io import read_clinical

    img = aggregate_lesions(lesions["CT"], lesions["MRI"])
    mvi = read_clinical(smoke_manifest).loc[img.obs_names, "mvi"].to_numpy() == 1
    cnr = pd.Series(img[:, "ct_arterial_ring_6mm_cnr"].X.ravel(), index=img.obs_names)
    far = pd.Series(img[:, "ct_arterial_ring_10mm_cnr"].X.ravel(), index=img.obs_names)
    assert mvi.any() and (~mvi).any()
    # planted: arterial band of 1.2 noise SD peaking 6 mm outside MVI-positive tumours
    assert cnr[mvi].min() > cnr[~mvi].max()
    assert (cnr[mvi] - far[mvi]).mean() > 0.2


def test_img_modality_handles_a_patient_without_mri(smoke_manifest, lesions):
    import json

    truth = json.loads((smoke_manifest.parent / "truth_imaging.json").read_text())
    img = aggregate_lesions(lesions["CT"], lesions["MRI"])
    expected = pd.Series({pid: bool(v["has_mri"]) for pid, v in truth.items()}).loc[img.obs_names]
    assert (img.obs["has_mri"] == expected).all() and img.obs["has_ct"].all()
    mri_cols = img.var_names[img.var["modality"] == "MRI"]
    without = img.obs_names[~img.obs["has_mri"]]
    if len(without):
        assert np.isnan(img[without, mri_cols].X).all()
    assert not np.isnan(img[img.obs_names[img.obs["has_mri"]], "mri_n_lesions"].X).any()
    assert "index lesion" in img.uns["img"]["rule"]


def test_empty_lesion_mask_gives_zero_lesions(registered, tmp_path):
    from hccomics.io import read_nifti, save_nifti

    items = imaging.segmentation_items(registered["CT"], modality="CT")[:2]
    arr, aff = read_nifti(items[0]["lesion"])
    empty = save_nifti(np.zeros_like(arr), tmp_path / "empty.nii.gz", affine=aff)
    les = lesion_features(items, lesion_masks={items[0]["patient_id"]: empty}, n_jobs=1, widths=(2.0, 6.0))
    assert les.uns["lesion_features"]["patients_without_lesions"] == [items[0]["patient_id"]]
    assert (les.obs["mask_source"] == "reference").all()
    img = aggregate_lesions(les)
    assert img[items[0]["patient_id"], "ct_n_lesions"].X[0, 0] == 0
    assert np.isnan(img[items[0]["patient_id"], "ct_arterial_tumour_mean"].X[0, 0])
    with pytest.raises(DataValidationError, match="without an exam"):
        lesion_features(items, lesion_masks={"nobody": empty})


def test_spacing_is_read_from_the_header(registered, tmp_path):
    """The same voxels with slices twice as thick: volumes double, mm rings hold fewer slices."""
    item = imaging.segmentation_items(registered["CT"], modality="CT")[0]
    stretched = {}
    for key in ("liver", "lesion"):
        img = nib.load(item[key])
        aff = img.affine.copy()
        aff[:3, 2] *= 2
        stretched[key] = str(tmp_path / f"{key}.nii.gz")
        nib.save(nib.Nifti1Image(np.asarray(img.dataobj), aff), stretched[key])
    images = []
    for k, path in enumerate(item["image"]):
        img = nib.load(path)
        aff = img.affine.copy()
        aff[:3, 2] *= 2
        images.append(str(tmp_path / f"phase{k}.nii.gz"))
        nib.save(nib.Nifti1Image(np.asarray(img.dataobj), aff), images[-1])
    a, ra, _ = exam_features(item, widths=(2.0, 6.0))
    b, rb, _ = exam_features({**item, **stretched, "image": images}, widths=(2.0, 6.0))
    assert b["volume_ml"].to_numpy() == pytest.approx(2 * a["volume_ml"].to_numpy(), rel=1e-6)
    ring_a = ra.set_index(["lesion", "region"])["voxels"]
    ring_b = rb.set_index(["lesion", "region"])["voxels"]
    assert (ring_b.xs("ring_6mm", level="region") < ring_a.xs("ring_6mm", level="region")).all()


def test_mvi_folds_and_out_of_fold_models():
    rng = np.random.default_rng(0)
    y = pd.Series(rng.integers(0, 2, 80), index=[f"P{i:02d}" for i in range(80)])
    folds = mvi_folds(y, n_splits=4, n_repeats=2, seed=1)
    for _, rep in folds.groupby("repeat"):
        assert sorted(rep["patient_id"]) == sorted(y.index)
        rates = rep.assign(y=y.loc[rep["patient_id"]].to_numpy()).groupby("fold")["y"].mean()
        assert rates.max() - rates.min() < 0.1  # stratified
    noise = pd.DataFrame(rng.normal(size=(80, 5)), index=y.index)
    signal = noise.assign(s=y + rng.normal(0, 0.5, 80))
    from sklearn.metrics import roc_auc_score

    assert abs(roc_auc_score(y, radiomics_oof(noise, y, folds).mean(axis=1)) - 0.5) < 0.2
    assert roc_auc_score(y, radiomics_oof(signal, y, folds).mean(axis=1)) > 0.8


def test_bootstrap_aucs_equal_sklearn_on_the_same_resamples():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(3)
    n, n_boot = 12, 300
    y = np.r_[np.ones(3), np.zeros(9)].astype(int)  # few positives: some resamples hold one class
    a = rng.integers(0, 4, n).astype(float)  # ties, which sklearn counts as half
    b = a + rng.normal(0, 1, n) * y
    draws = np.random.default_rng(7).integers(0, n, (n_boot, n))  # the resamples bootstrap_ci draws with seed 7
    want_a, want_d = [], []
    for idx in draws:
        if len(np.unique(y[idx])) == 2:
            want_a.append(roc_auc_score(y[idx], a[idx]))
            want_d.append(roc_auc_score(y[idx], b[idx]) - roc_auc_score(y[idx], a[idx]))
    assert 0 < len(want_a) < n_boot
    rows = auc_rows(y[draws], a[draws])
    np.testing.assert_allclose(rows[~np.isnan(rows)], want_a, atol=1e-12)
    ci = auc_ci(y, a, n_boot=n_boot, seed=7)
    assert ci["n_boot"] == len(want_a) and ci["estimate"] == pytest.approx(roc_auc_score(y, a))
    assert (ci["low"], ci["high"]) == pytest.approx((np.quantile(want_a, 0.025), np.quantile(want_a, 0.975)))
    d = compare_auc(y, a, b, n_boot=n_boot, seed=7)
    assert (d["low"], d["high"]) == pytest.approx((np.quantile(want_d, 0.025), np.quantile(want_d, 0.975)))
    assert d["estimate"] == pytest.approx(roc_auc_score(y, b) - roc_auc_score(y, a))
    with pytest.raises(DataValidationError, match="NaN"):
        auc_ci(y, np.r_[a[:-1], np.nan])
    with pytest.raises(DataValidationError, match="both classes"):
        auc_ci(np.zeros(n), a)


def test_ring_width_comparison_finds_the_planted_ring():
    import anndata as ad

    rng = np.random.default_rng(2)
    n = 60
    y = pd.Series(np.r_[np.ones(20), np.zeros(40)].astype(int), index=[f"P{i:02d}" for i in range(n)])
    names, var = [], []
    for region, width in [("tumour", 0.0), ("ring_2mm", 2.0), ("ring_6mm", 6.0), ("ring_10mm", 10.0)]:
        for f in ("cnr", "mean"):
            names.append(f"ct_arterial_{region}_{f}")
            var.append({"modality": "CT", "region": region, "width_mm": width, "phase": "arterial",
                        "family": "cnr" if f == "cnr" else "first_order"})
    X = rng.normal(size=(n, len(names)))
    strength = {"ring_2mm": 0.3, "ring_6mm": 1.5, "ring_10mm": 0.6}
    for j, name in enumerate(names):
        for region, s in strength.items():
            if f"_{region}_cnr" in name:
                X[:, j] += s * y.to_numpy()
    img = ad.AnnData(X=X.astype(np.float32), obs=pd.DataFrame({"has_ct": True}, index=y.index),
                     var=pd.DataFrame(var, index=names))
    table, oof = ring_width_comparison(img, y, folds=mvi_folds(y, n_repeats=2), n_boot=100)
    assert table.loc[table["best"], "region"].item() == "ring_6mm"
    assert (table["auc_low"] <= table["auc"]).all() and (table["auc"] <= table["auc_high"]).all()
    assert list(oof.columns) == list(table["region"])
