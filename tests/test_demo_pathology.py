"""Planted effects of the demo pathology tiles, checked with independent oracles.

The oracles are plain scikit-image: colour deconvolution with the standard Ruifrok & Johnston
matrix (``rgb2hed``), an Otsu threshold on the haematoxylin channel, ``label``/``regionprops``
for nuclei, and structure tensors for plate orientation. None of them uses the generator's code
or parameters.
"""

from __future__ import annotations

import json
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy import ndimage as ndi
from scipy import stats
from skimage.color import rgb2gray, rgb2hed
from skimage.feature import structure_tensor, structure_tensor_eigenvalues
from skimage.filters import threshold_otsu
from skimage.measure import label, regionprops
from skimage.segmentation import clear_border

from hccomics.datasets.demo_pathology import CENTRES, StainModel, draw_centres, render_tile, simulate_pathology
from hccomics.errors import DataValidationError, OptionError

MPP = 0.5
GRADES = (1, 2, 3, 4)


def nuclear_areas(tile: np.ndarray, mpp: float = MPP) -> np.ndarray:
    """Nuclear areas (um^2): smoothed H channel > Otsu, holes filled, objects on the tile edge dropped."""
    h = ndi.gaussian_filter(rgb2hed(tile)[..., 0], 1.0)
    mask = ndi.binary_fill_holes(ndi.binary_opening(h > threshold_otsu(h)))
    areas = np.array([r.area for r in regionprops(clear_border(label(mask)))], dtype=float) * mpp**2
    return areas[areas >= 10.0]


def coherence(tile: np.ndarray) -> float:
    """Energy-weighted orientation coherence (l1 - l2) / (l1 + l2) of the grey image's structure tensor."""
    grey = ndi.gaussian_filter(rgb2gray(tile), 2.0)
    l1, l2 = structure_tensor_eigenvalues(structure_tensor(grey, sigma=8.0, order="rc"))
    return float((l1 - l2).sum() / (l1 + l2).sum())


def eosin_rgb(tile: np.ndarray) -> np.ndarray:
    """Mean RGB of the pixels where the eosin channel of rgb2hed exceeds the haematoxylin channel."""
    hed = rgb2hed(tile)
    return tile[hed[..., 1] > hed[..., 0]].mean(axis=0)


def tile(grade: int | None, region: str = "tumour", *, centre: str = "centre_A", size: int = 192, seed: int = 0):
    return render_tile(grade=grade, region=region, centre=centre, size=size, microns_per_pixel=MPP,
                       rng=np.random.default_rng(seed))


@pytest.fixture(scope="module")
def graded() -> dict[int | None, list[np.ndarray]]:
    """Four tiles per grade (and of non-tumour liver), one from each centre."""
    out: dict[int | None, list[np.ndarray]] = {g: [tile(g, centre=c, seed=10 * g + i) for i, c in enumerate(CENTRES)]
                                               for g in GRADES}
    out[None] = [tile(None, "non_tumour", centre=c, seed=100 + i) for i, c in enumerate(CENTRES)]
    return out


def test_tile_shape_and_type() -> None:
    t = tile(3, size=64)
    assert t.shape == (64, 64, 3) and t.dtype == np.uint8
    assert 60 < t.mean() < 250  # tissue, neither blank nor black


def test_nuclear_area_increases_with_grade(graded) -> None:
    grades = [g for g in GRADES for _ in graded[g]]
    means = [nuclear_areas(t).mean() for g in GRADES for t in graded[g]]
    rho = stats.spearmanr(grades, means)[0]
    assert rho > 0.8, (rho, np.round(means, 1))
    per_grade = [np.mean(means[i * 4:(i + 1) * 4]) for i in range(4)]
    assert np.all(np.diff(per_grade) > 0), per_grade


def test_tumour_nuclei_larger_than_non_tumour(graded) -> None:
    normal = np.mean([nuclear_areas(t).mean() for t in graded[None]])
    grade1 = np.mean([nuclear_areas(t).mean() for t in graded[1]])
    tumour = np.mean([nuclear_areas(t).mean() for g in GRADES for t in graded[g]])
    assert grade1 > normal and tumour > 1.3 * normal, (normal, grade1, tumour)
    assert 25 < normal < 70  # hepatocyte nuclei of ~7-8 um


def test_nuclear_area_variability_increases_with_grade(graded) -> None:
    sd = [np.concatenate([nuclear_areas(t) for t in graded[g]]).std() for g in GRADES]
    assert np.all(np.diff(sd) > 0), np.round(sd, 1)
    assert sd[-1] > 3 * sd[0]


def test_centres_differ_in_eosin_colour() -> None:
    rgb = {c: np.array([eosin_rgb(tile(None, "non_tumour", centre=c, size=96, seed=s)) for s in range(6)])
           for c in CENTRES}
    within = max(np.linalg.norm(v.std(axis=0)) for v in rgb.values())
    for a, b in combinations(CENTRES, 2):
        between = np.linalg.norm(rgb[a].mean(axis=0) - rgb[b].mean(axis=0))
        assert between > 2 * within, (a, b, between, within)


def test_non_tumour_plates_more_coherent_than_grade_4() -> None:
    normal = [coherence(tile(None, "non_tumour", centre=CENTRES[s % 4], size=128, seed=s)) for s in range(6)]
    solid = [coherence(tile(4, centre=CENTRES[s % 4], size=128, seed=s)) for s in range(6)]
    assert np.mean(normal) > np.mean(solid) + 0.1, (normal, solid)
    assert stats.mannwhitneyu(normal, solid, alternative="greater").pvalue < 0.01


def _cohort(grades: list[int]) -> tuple[pd.DataFrame, pd.Series]:
    ids = pd.Index([f"HCC-{i:04d}" for i in range(1, len(grades) + 1)], name="patient_id")
    return pd.DataFrame({"edmondson_grade": grades}, index=ids), pd.Series([CENTRES[i % 4] for i in range(len(ids))],
                                                                           index=ids)


def _read(out: Path, rec: dict) -> np.ndarray:
    return np.asarray(Image.open(out / rec["path"]).convert("RGB"))


def test_simulate_writes_deterministic_tiles(tmp_path: Path) -> None:
    clin, cen = _cohort([1, 2, 3, 4])
    runs = []
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        recs, truth = simulate_pathology(clin, cen, tmp_path / name, rng=np.random.default_rng(seed), tile_size=64,
                                         tumour_tiles=2, non_tumour_tiles=1)
        runs.append((recs, [(tmp_path / name / r["path"]).read_bytes() for r in recs], truth))
    (recs, blobs, truth), (recs_b, blobs_b, truth_b), (_, blobs_c, _) = runs
    assert recs == recs_b and blobs == blobs_b and truth == truth_b
    assert blobs != blobs_c
    assert len(recs) == 12 and recs[0] == {"patient_id": "HCC-0001", "path": "pathology/HCC-0001_tumour_0.png",
                                           "region": "tumour", "microns_per_pixel": 0.5, "magnification": 20.0}
    written = sorted(p.name for p in (tmp_path / "a" / "pathology").iterdir())
    assert written == sorted(Path(r["path"]).name for r in recs)
    assert _read(tmp_path / "a", recs[0]).shape == (64, 64, 3)
    json.dumps(truth)  # goes into truth.json as it is
    assert truth["tiles_per_patient"] == {"tumour": 2, "non_tumour": 1} and truth["null"] is False


def test_null_removes_grade_effect(tmp_path: Path) -> None:
    clin, cen = _cohort([1] * 4 + [4] * 4)
    ratios = {}
    for null in (False, True):
        out = tmp_path / str(null)
        recs, truth = simulate_pathology(clin, cen, out, rng=np.random.default_rng(3), tile_size=128, tumour_tiles=2,
                                         non_tumour_tiles=0, null=null)
        area = {g: np.mean([nuclear_areas(_read(out, r)).mean() for r in recs
                            if clin.at[r["patient_id"], "edmondson_grade"] == g]) for g in (1, 4)}
        ratios[null] = area[4] / area[1]
    assert ratios[False] > 1.6, ratios
    assert abs(np.log(ratios[True])) < 0.15, ratios
    assert truth["null"] is True and "no effect" in truth["null_effect"]


def test_stain_model_and_truth() -> None:
    d = StainModel().to_dict()
    assert d["centres"]["centre_A"]["h_angle_deg"] == 0.0
    for c in CENTRES:
        v = d["centres"][c]
        assert np.allclose(np.linalg.norm([v["haematoxylin"], v["eosin"]], axis=1), 1, atol=1e-5)
        if c != "centre_A":  # visibly perturbed: hue, intensity or both
            assert max(v["h_angle_deg"], v["e_angle_deg"]) > 4 or abs(v["e_scale"] - 1) > 0.15
    with pytest.raises(ValueError, match="each of its"):
        StainModel(centres=("x",))


def test_draw_centres_unequal_and_deterministic() -> None:
    a, b = draw_centres(200, rng=np.random.default_rng(0)), draw_centres(200, rng=np.random.default_rng(0))
    assert (a == b).all()
    counts = pd.Series(a).value_counts()
    assert set(counts.index) == set(CENTRES) and counts.nunique() == 4 and counts.sum() == 200
    assert set(draw_centres(5, rng=np.random.default_rng(1))) == set(CENTRES)


def test_inputs_are_validated(tmp_path: Path) -> None:
    clin, cen = _cohort([1, 5, 0])
    cen.iloc[0] = "centre_Z"
    with pytest.raises(DataValidationError) as err:
        simulate_pathology(clin, cen.iloc[:2], tmp_path, rng=np.random.default_rng(0), tile_size=32, tumour_tiles=1,
                           non_tumour_tiles=1)
    msg = str(err.value)
    assert "HCC-0002" in msg and "HCC-0003" in msg and "centre_Z" in msg
    assert not (tmp_path / "pathology").exists()  # nothing written
    with pytest.raises(OptionError, match="did you mean 'tumour'"):
        render_tile(grade=1, region="tumor", centre="centre_A", size=32, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="non-tumour"):
        render_tile(grade=2, region="non_tumour", centre="centre_A", size=32, rng=np.random.default_rng(0))
