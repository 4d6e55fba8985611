"""Nodule images of the progression series: planted stage trends and critical-state coupling.

The oracle reads only the written NIfTI files and measures plain features with numpy/scipy:
the parenchyma level (median of a 3-pixel border ring), the nodule found by a half-contrast
threshold of the smoothed image around the central disc (its area and equivalent radius), the
nodule contrast (median inside the nodule minus the parenchyma), the log SD of the smoothed
nodule interior (texture) and the SD of the border ring (septa). It never reads the truth's
per-sample attributes, except in the one test that checks the truth against its own model.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage, stats

nib = pytest.importorskip("nibabel")

from hccomics.datasets.demo_progression import STAGES, simulate_progression
from hccomics.datasets.demo_progression_images import simulate_progression_images
from hccomics.errors import DataValidationError, OptionError

CRITICAL = "low_grade_dysplastic_nodule"
CRIT = STAGES.index(CRITICAL)
GENES = [f"G{i}" for i in range(300)]


def _samples(per_stage: int, seed: int, *, null: bool = False, critical: str = CRITICAL):
    expr, samples, truth = simulate_progression(
        GENES, n_features=80, module_size=10, samples_per_stage=(per_stage, per_stage),
        critical_stage=critical, rng=np.random.default_rng(seed), null=null)
    return expr, samples, truth


def _features(path: Path) -> dict[str, float]:
    img = np.asarray(nib.load(path).dataobj, dtype=float).squeeze()
    spacing = float(nib.load(path).header.get_zooms()[0])
    n = img.shape[0]
    c = (np.arange(n) - (n - 1) / 2) * spacing
    r = np.hypot(*np.meshgrid(c, c, indexing="ij"))
    border = np.ones_like(img, bool)
    border[3:-3, 3:-3] = False
    bg = np.median(img[border])
    disc = r <= 1.0
    centre = img[disc].mean() - bg
    smooth = ndimage.gaussian_filter(img, 1.0)
    mask = ndimage.binary_closing(np.abs(smooth - bg) > 0.5 * abs(centre))
    labels, _ = ndimage.label(mask)
    touching = np.unique(labels[disc & mask])
    nodule = ndimage.binary_fill_holes(np.isin(labels, touching[touching > 0]))
    inner = ndimage.binary_erosion(nodule)
    inner2 = ndimage.binary_erosion(nodule, iterations=2)
    area = nodule.sum() * spacing**2
    return {
        "area": area,
        "eq_radius": np.sqrt(area / np.pi),
        "centre": centre,
        "contrast": np.median(img[inner]) - bg if inner.any() else centre,
        "texture": np.log(smooth[inner2].std()) if inner2.sum() > 5 else np.nan,
        "border_sd": img[border].std(),
    }


def _measure(samples: pd.DataFrame, out: Path, *, seed: int, null: bool = False, size: int = 48):
    records, truth = simulate_progression_images(samples, critical_stage=CRITICAL, out_dir=out, size=size,
                                                 spacing_mm=0.5, rng=np.random.default_rng(seed), null=null)
    feats = pd.DataFrame([_features(out / r["path"]) for r in records], index=[r["sample_id"] for r in records])
    return feats.join(samples), records, truth


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    """A realistic series: 15 samples per stage."""
    _, samples, _ = _samples(15, seed=0)
    out = tmp_path_factory.mktemp("series")
    return (*_measure(samples, out, seed=1), out)


@pytest.fixture(scope="module", params=[False, True], ids=["coupled", "null"])
def two_stages(request, tmp_path_factory):
    """First and critical stage only, 80 samples each, for variance ratios."""
    _, samples, _ = _samples(80, seed=2, null=request.param)
    samples = samples[samples["stage_index"].isin([0, CRIT])]
    feats, _, truth = _measure(samples, tmp_path_factory.mktemp("two"), seed=3, null=request.param)
    return request.param, feats, truth


def test_records_geometry_and_truth(series) -> None:
    feats, records, truth, out = series
    assert len(records) == 90 and {r["sample_id"] for r in records} == set(feats.index)
    img = nib.load(out / records[0]["path"])
    assert records[0]["path"] == f"progression_images/{records[0]['sample_id']}.nii.gz"
    assert img.shape == (48, 48) and img.get_data_dtype() == np.float32
    assert np.allclose(img.header.get_zooms()[:2], 0.5) and img.header.get_xyzt_units()[0] == "mm"
    assert np.allclose(np.diag(img.affine)[:2], 0.5)
    assert np.allclose(img.affine @ [23.5, 23.5, 0, 1], [0, 0, 0, 1])  # nodule centre at world (0, 0)
    assert not list(out.rglob("*.tmp*"))  # atomic writes leave nothing behind
    json.dumps(truth, allow_nan=False)
    assert truth["coupled_attributes"] == ["nodule_radius_mm", "nodule_contrast_hu", "log_texture_hu"]
    assert truth["critical_stage"] == CRITICAL and truth["rendering"]["pixel_noise_sd_hu"] > 0
    for a in truth["attributes"].values():
        assert list(a["stage_mean"]) == list(STAGES) and list(a["population_variance"]) == list(STAGES)
        pv = a["population_variance"]
        if a["dominant_mode_loading"]:
            assert max(pv, key=pv.get) == CRITICAL
        else:
            assert len(set(pv.values())) == 1


def test_stage_appearance_follows_the_plan(series) -> None:
    feats, *_ = series
    si = feats["stage_index"]
    assert stats.spearmanr(feats["area"], si)[0] > 0.5                 # nodules grow
    assert stats.spearmanr(feats["texture"], si, nan_policy="omit")[0] > 0.5  # and grow heterogeneous
    med = feats.groupby("stage")[["contrast", "centre", "border_sd"]].median()
    assert med.loc["low_grade_dysplastic_nodule", "contrast"] < 0 and med.loc["high_grade_dysplastic_nodule", "contrast"] < 0
    assert med.loc["early_hcc", "contrast"] > 20                          # arterial hyperenhancement
    assert med.loc["advanced_hcc", "centre"] < 0 < med.loc["advanced_hcc", "contrast"]  # necrotic centre
    assert med.loc["cirrhosis", "border_sd"] > 1.3 * med.loc["normal", "border_sd"]    # fibrous septa


def test_variance_rises_at_the_critical_stage(two_stages) -> None:
    null, feats, truth = two_stages
    var = feats.groupby("stage_index")[["eq_radius", "contrast"]].var()
    ratio = var.loc[CRIT] / var.loc[0]
    if null:
        assert ratio.between(1 / 3, 2.0).all(), ratio
    else:
        assert (ratio > 2.0).all(), ratio
        pop = truth["attributes"]["nodule_radius_mm"]["population_variance"]
        assert pop[CRITICAL] / pop["normal"] > 3


def test_coupled_features_track_the_dominant_mode(series, two_stages) -> None:
    feats, *_ = series
    crit = feats[feats["stage_index"] == CRIT]
    for f in ("eq_radius", "contrast"):
        assert abs(np.corrcoef(crit[f], crit["dominant_mode"])[0, 1]) > 0.5, f
    null, many, _ = two_stages
    crit = many[many["stage_index"] == CRIT]
    r = crit[["eq_radius", "contrast", "texture", "border_sd"]].corrwith(crit["dominant_mode"]).abs()
    assert r["border_sd"] < 0.3                                         # septa are not coupled
    if null:
        assert (r[["eq_radius", "contrast"]] < 0.3).all(), r
    else:
        assert (r[["eq_radius", "contrast"]] > 0.7).all() and r["texture"] > 0.5, r


def test_dominant_mode_is_the_module_mode() -> None:
    expr, samples, truth = _samples(15, seed=4)
    load = pd.Series(truth["module_loadings"])
    score = expr[load.index] @ np.sign(load)
    crit = samples["stage"] == CRITICAL
    assert np.corrcoef(score[crit], samples.loc[crit, "dominant_mode"])[0, 1] > 0.9
    assert list(samples.columns) == ["stage", "stage_index", "dominant_mode"]


def test_truth_matches_its_model(two_stages) -> None:
    null, feats, truth = two_stages
    drawn = pd.DataFrame(truth["sample_attributes"]).T.join(feats["stage"])
    for name in ("nodule_radius_mm", "nodule_contrast_hu", "septa_hu"):
        a = truth["attributes"][name]
        for stage in ("normal", CRITICAL):
            x = drawn.loc[drawn["stage"] == stage, name]
            assert abs(x.mean() - a["stage_mean"][stage]) < 4 * np.sqrt(a["population_variance"][stage] / len(x))
            assert 0.6 < x.var() / a["population_variance"][stage] < 1.6
    assert null == (truth["critical_stage"] is None)


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*.nii.gz"))}


def test_deterministic_for_a_seed(tmp_path: Path) -> None:
    _, samples, _ = _samples(3, seed=5)
    run = {}
    for name, seed, size in (("a", 7, 32), ("b", 7, 32), ("c", 8, 32), ("d", 7, 48)):
        _, truth = simulate_progression_images(samples, critical_stage=CRITICAL, out_dir=tmp_path / name, size=size,
                                               rng=np.random.default_rng(seed))
        run[name] = (_digests(tmp_path / name), truth)
    assert run["a"] == run["b"] and len(run["a"][0]) == 18
    assert all(run["a"][0][k] != run["c"][0][k] for k in run["a"][0])
    # attributes are drawn before any pixel, so they do not depend on the image size
    assert run["a"][1]["sample_attributes"] == run["d"][1]["sample_attributes"]


@pytest.mark.parametrize(("edit", "match"), [
    (lambda s: s.drop(columns="dominant_mode"), "dominant_mode"),
    (lambda s: s.assign(stage="liver"), "unknown stages"),
    (lambda s: s.rename(index={s.index[0]: "../escape"}), "name files"),
])
def test_bad_samples_write_nothing(tmp_path: Path, edit, match) -> None:
    _, samples, _ = _samples(2, seed=6)
    with pytest.raises(DataValidationError, match=match):
        simulate_progression_images(edit(samples), critical_stage=CRITICAL, out_dir=tmp_path,
                                    rng=np.random.default_rng(0))
    with pytest.raises(OptionError, match="did you mean"):
        simulate_progression_images(samples, critical_stage="early_HCC", out_dir=tmp_path, rng=np.random.default_rng(0))
    assert not any(tmp_path.iterdir())
