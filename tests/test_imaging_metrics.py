"""Segmentation metrics against hand-computed truth: Dice, HD95 in mm, volumes, lesion detection by size."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from hccomics.errors import DataValidationError
from hccomics.imaging.metrics import detection_summary, lesion_detection, segmentation_metrics, volume_ml


def cube(shape: tuple[int, int, int], start: tuple[int, int, int], size: int, value: int = 1) -> np.ndarray:
    vol = np.zeros(shape, dtype=np.uint8)
    vol[tuple(slice(s, s + size) for s in start)] = value
    return vol


def test_volume_ml_by_hand() -> None:
    assert volume_ml(cube((12, 12, 12), (0, 0, 0), 10), (0.5, 0.5, 2.0)) == pytest.approx(0.5)
    assert volume_ml(np.zeros((3, 3, 3)), (1.0, 1.0, 1.0)) == 0.0
    with pytest.raises(DataValidationError, match="spacing"):
        volume_ml(np.ones((2, 2, 2)), (1.0, 1.0))


@pytest.mark.parametrize(("axis", "k", "s"), [(2, 3, 2.5), (0, 2, 0.7)])
def test_hd95_of_offset_cubes_is_offset_times_spacing(axis: int, k: int, s: float) -> None:
    start = [4, 4, 4]
    ref = cube((20, 20, 20), tuple(start), 6)
    start[axis] += k
    pred = cube((20, 20, 20), tuple(start), 6)
    spacing = [1.0, 1.0, 1.0]
    spacing[axis] = s
    row = segmentation_metrics(pred, ref, spacing=spacing, labels={"lesion": 1}).iloc[0]
    assert row["hd95_mm"] == pytest.approx(k * s)
    assert row["dice"] == pytest.approx((6 - k) / 6)  # overlap (6-k)/6 of each cube
    assert row["volume_pred_ml"] == row["volume_ref_ml"] == pytest.approx(216 * s / 1000)


def test_empty_structure_rules() -> None:
    ref = cube((10, 10, 10), (2, 2, 2), 4)
    empty = np.zeros_like(ref)
    both = segmentation_metrics(empty, empty, spacing=(1, 1, 1), labels={"lesion": 1}).iloc[0]
    assert (both["dice"], both["hd95_mm"], both["empty_ref"], both["empty_pred"]) == (1.0, 0.0, True, True)
    missed = segmentation_metrics(empty, ref, spacing=(1, 1, 1), labels={"lesion": 1}).iloc[0]
    assert missed["dice"] == 0.0 and math.isnan(missed["hd95_mm"]) and not missed["empty_ref"] and missed["empty_pred"]
    spurious = segmentation_metrics(ref, empty, spacing=(1, 1, 1), labels={"lesion": 1}).iloc[0]
    assert spurious["dice"] == 0.0 and math.isnan(spurious["hd95_mm"]) and spurious["empty_ref"] and not spurious["empty_pred"]


def test_default_labels_follow_lits_liver_includes_tumour() -> None:
    ref = cube((12, 12, 12), (1, 1, 1), 8, value=1)
    ref[3:6, 3:6, 3:6] = 2
    liver_only = (ref > 0).astype(np.uint8)  # the tumour missed but still inside the liver
    table = segmentation_metrics(liver_only, ref, spacing=(1, 1, 1), patient_id="p1").set_index("structure")
    assert list(table.columns[:1]) == ["patient_id"] and set(table["patient_id"]) == {"p1"}
    assert table.at["liver", "dice"] == pytest.approx(1.0)
    assert table.at["lesion", "dice"] == 0.0 and table.at["lesion", "empty_pred"]
    assert table.at["lesion", "volume_ref_ml"] == pytest.approx(27 / 1000)


def test_float_label_maps_with_integer_values_are_accepted() -> None:
    ref = cube((8, 8, 8), (2, 2, 2), 3).astype(np.float64)
    assert segmentation_metrics(ref, ref, spacing=(1, 1, 1), labels={"x": 1}).at[0, "dice"] == 1.0


@pytest.mark.parametrize(("pred", "ref", "kwargs", "match"), [
    (np.zeros((4, 4, 4)), np.zeros((4, 4, 5)), {}, "same shape"),
    (np.zeros((4, 4)), np.zeros((4, 4)), {}, "3D volume"),
    (np.full((4, 4, 4), 0.3), np.zeros((4, 4, 4)), {}, "integer labels"),
    (np.zeros((4, 4, 4)), np.zeros((4, 4, 4)), {"spacing": (1, 0, 1)}, "positive"),
    (np.zeros((4, 4, 4)), np.zeros((4, 4, 4)), {"labels": {"liver": "one"}}, "integer label code"),
])
def test_segmentation_metrics_rejects_bad_input(pred, ref, kwargs, match) -> None:
    with pytest.raises(DataValidationError, match=match):
        segmentation_metrics(pred, ref, **({"spacing": (1, 1, 1)} | kwargs))


def test_lesion_detection_binary_reference() -> None:
    shape = (30, 30, 30)
    ref = cube(shape, (1, 1, 1), 4) | cube(shape, (15, 15, 15), 10)  # 64 and 1000 voxels
    ref[0, 0, 0] = 1  # touches the first lesion only at a corner: one component with 26-connectivity
    pred = cube(shape, (1, 1, 1), 4) | cube(shape, (25, 1, 1), 2)  # finds the small lesion, plus one false positive
    t = lesion_detection(pred, ref, spacing=(1, 1, 1), patient_id="p7")
    refs, preds = t[t["kind"] == "reference"], t[t["kind"] == "predicted"]
    assert len(refs) == 2 and len(preds) == 2 and set(t["patient_id"]) == {"p7"}
    small, large = refs.sort_values("volume_ml").to_dict("records")
    assert small["volume_ml"] == pytest.approx(65 / 1000)
    assert small["diameter_mm"] == pytest.approx((6 * 65 / math.pi) ** (1 / 3))
    assert small["size_bin"] == "<10 mm" and large["size_bin"] == "10-20 mm"  # 1000 mm3 -> 12.4 mm
    assert small["detected"] and small["dice"] == pytest.approx(2 * 64 / (65 + 64))
    assert not large["detected"] and large["dice"] == 0.0 and large["n_overlapping"] == 0
    assert sorted(preds["true_positive"].tolist()) == [False, True]
    assert list(t["size_bin"].cat.categories) == ["<10 mm", "10-20 mm", ">=20 mm"]


def test_lesion_dice_uses_union_of_overlapping_components_and_instance_labels() -> None:
    ref = np.zeros((20, 20, 20), dtype=np.uint8)
    ref[2:10, 2:6, 2:6] = 1
    ref[12:14, 12:14, 12:14] = 2
    ref[2:10, 6:8, 2:6] = 3  # touches lesion 1, but instance labels keep it a lesion of its own
    pred = np.zeros_like(ref)
    pred[2:5, 2:6, 2:6] = 1
    pred[6:10, 2:6, 2:6] = 1  # two components covering lesion 1 with a one-slice gap
    t = lesion_detection(pred, ref, spacing=(1, 1, 1)).set_index(["kind", "lesion_id"])
    one = t.loc[("reference", 1)]
    assert one["detected"] and one["n_overlapping"] == 2
    assert one["dice"] == pytest.approx(2 * 112 / (128 + 112))
    assert not t.loc[("reference", 2), "detected"] and not t.loc[("reference", 3), "detected"]
    # a stricter overlap requirement drops the 48-voxel component's match
    strict = lesion_detection(pred, ref, spacing=(1, 1, 1), min_overlap_voxels=50).set_index(["kind", "lesion_id"])
    assert strict.loc[("reference", 1), "n_overlapping"] == 1
    assert strict.loc[("reference", 1), "dice"] == pytest.approx(2 * 64 / (128 + 64))


def test_detection_summary_by_size_bin() -> None:
    shape = (30, 30, 30)
    ref = cube(shape, (1, 1, 1), 4) | cube(shape, (15, 15, 15), 10)
    pred = cube(shape, (1, 1, 1), 4) | cube(shape, (25, 1, 1), 2)
    two = pd.concat([lesion_detection(pred, ref, spacing=(1, 1, 1), patient_id=p) for p in ("a", "b")], ignore_index=True)
    s = detection_summary(two).set_index("size_bin")
    assert list(s.index) == ["<10 mm", "10-20 mm", ">=20 mm", "all"]
    assert s.loc["<10 mm", ["n_reference", "n_detected", "recall"]].tolist() == [2, 2, 1.0]
    assert s.loc["10-20 mm", "recall"] == 0.0 and math.isnan(s.loc[">=20 mm", "recall"])
    assert s.loc["all", ["n_reference", "n_predicted", "n_false_positive", "precision"]].tolist() == [4, 4, 2, 0.5]


def test_lesion_detection_empty_and_bad_input() -> None:
    empty = np.zeros((6, 6, 6), dtype=bool)
    t = lesion_detection(empty, empty, spacing=(1, 1, 1), size_bins_mm=())
    assert t.empty and "true_positive" in t.columns
    s = detection_summary(t)
    assert s["size_bin"].tolist() == ["all sizes", "all"] and math.isnan(s.at[1, "recall"])
    with pytest.raises(DataValidationError, match="increasing"):
        lesion_detection(empty, empty, spacing=(1, 1, 1), size_bins_mm=(20, 10))
    with pytest.raises(DataValidationError, match="negative"):
        lesion_detection(empty.astype(int), -np.ones((6, 6, 6), dtype=int), spacing=(1, 1, 1))
    with pytest.raises(DataValidationError, match="min_overlap_voxels"):
        lesion_detection(empty, empty, spacing=(1, 1, 1), min_overlap_voxels=0)
    with pytest.raises(DataValidationError, match="lacks columns"):
        detection_summary(t.drop(columns="detected"))
