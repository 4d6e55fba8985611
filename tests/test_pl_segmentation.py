"""Segmentation figures: built from tiny results, right number of traces and titles, clear errors on bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from hccomics.errors import DataValidationError
from hccomics.pl.segmentation import (
    detection_by_size,
    fold_metrics,
    learning_curves,
    segmentation_overlay,
    volume_agreement_plot,
)


@pytest.fixture
def volumes() -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    ct = rng.normal(60.0, 20.0, size=(12, 10, 8))
    liver = np.zeros(ct.shape, dtype=np.uint8)
    liver[2:10, 2:8, 1:7] = 1
    liver[2:11, 1:9, 5] = 1  # largest liver cross-section on axial slice 5
    lesion = np.zeros_like(liver)
    lesion[4:6, 4:6, 3:5] = 1
    return {"arterial": ct, "portal_venous": ct + 30, "delayed": ct - 10}, {"liver": liver, "lesion": lesion, "prediction": lesion}


def test_segmentation_overlay_panels_and_default_slice(volumes) -> None:
    images, masks = volumes
    fig = segmentation_overlay(images, masks, spacing=(0.8, 0.8, 2.5))
    assert isinstance(fig, go.Figure)
    assert [t.type for t in fig.data].count("heatmap") == 3 and [t.type for t in fig.data].count("contour") == 9
    assert fig.layout.title.text == "axial slice 5 of 8"
    assert [a.text for a in fig.layout.annotations] == ["arterial", "portal venous", "delayed"]
    assert sum(bool(t.showlegend) for t in fig.data if t.type == "contour") == 3  # one legend entry per label
    heat = fig.data[0]
    assert heat.zmin == pytest.approx(np.percentile(images["arterial"], 1))
    assert np.asarray(heat.z).shape == (10, 12)  # rows j, columns i for an axial slice
    assert heat.x[1] == pytest.approx(0.8)
    # radiological view: the largest i (patient's right) is on the viewer's left
    np.testing.assert_array_equal(np.asarray(heat.z)[0, 0], images["arterial"][-1, -1, 5])


def test_segmentation_overlay_other_plane_and_explicit_slice(volumes) -> None:
    images, masks = volumes
    fig = segmentation_overlay({"arterial": images["arterial"]}, {"lesion": masks["lesion"]}, axis=0, slice_index=4,
                               title="sagittal check")
    assert len(fig.data) == 2 and fig.layout.title.text == "sagittal check"
    assert np.asarray(fig.data[0].z).shape == (8, 10)
    empty = segmentation_overlay({"arterial": images["arterial"]}, {})
    assert empty.layout.title.text == "axial slice 4 of 8"  # no mask: the middle slice


@pytest.mark.parametrize(("images", "masks", "kwargs", "match"), [
    ({}, {}, {}, "images is empty"),
    ({"a": np.zeros((4, 4, 4))}, {"m": np.zeros((4, 4, 3))}, {}, "one voxel grid"),
    ({"a": np.zeros((4, 4))}, {}, {}, "3D"),
    ({"a": np.zeros((4, 4, 4))}, {}, {"slice_index": 4}, "slice_index"),
    ({"a": np.zeros((4, 4, 4))}, {}, {"axis": 3}, "axis"),
    ({"a": np.zeros((4, 4, 4))}, {}, {"spacing": (1.0, 1.0)}, "spacing"),
])
def test_segmentation_overlay_rejects_bad_input(images, masks, kwargs, match) -> None:
    with pytest.raises(DataValidationError, match=match):
        segmentation_overlay(images, masks, **kwargs)


def test_learning_curves_panels_per_stage_lines_per_fold() -> None:
    rows = [{"fold": f, "stage": s, "epoch": e, "train_loss": 1.0 / e, "val_dice": 0.5 + 0.1 * e if e % 2 == 0 else np.nan}
            for s in ("liver", "lesion") for f in range(3) for e in range(1, 5)]
    history = pd.DataFrame(rows)
    fig = learning_curves(history)
    assert len(fig.data) == 2 * 3 * 2  # stages x folds x (loss, Dice)
    assert [a.text for a in fig.layout.annotations][:2] == ["liver", "lesion"]
    assert sum(bool(t.showlegend) for t in fig.data) == 3
    dice = next(t for t in fig.data if t.mode == "lines+markers")
    assert list(dice.x) == [2, 4]  # epochs without validation are left out, not drawn as zero
    no_val = learning_curves(history.assign(val_dice=np.nan))
    assert len(no_val.data) == 6
    with pytest.raises(DataValidationError, match="val_dice"):
        learning_curves(history.drop(columns="val_dice"))


def test_fold_metrics_marks_the_ensemble() -> None:
    table = pd.DataFrame({"fold": [0, 0, 1, 1, 2, 2, "ensemble", "ensemble"], "structure": ["liver", "lesion"] * 4,
                          "hd95_mm": [3.0, 8.0, 4.0, 9.0, 3.5, np.nan, 2.5, 7.0]})
    fig = fold_metrics(table, metric="hd95_mm")
    assert [t.type for t in fig.data] == ["box", "scatter", "scatter", "scatter", "scatter"]
    assert fig.data[-1].name == "ensemble" and fig.data[-1].marker.symbol == "diamond"
    assert len(fig.data[0].y) == 6 and fig.layout.title.text == "hd95_mm per structure over folds"
    assert len(fold_metrics(table[table["fold"] != "ensemble"].rename(columns={"hd95_mm": "dice"})).data) == 4
    with pytest.raises(DataValidationError, match="dice"):
        fold_metrics(table)


def test_volume_agreement_plot_draws_limits_only_when_given() -> None:
    table = pd.DataFrame({"patient_id": ["a", "b", "c", "d"], "automatic_ml": [10.0, 20.0, 30.0, np.nan],
                          "reference_ml": [12.0, 19.0, 33.0, 5.0]})
    limits = {"bias": -1.33, "sd": 2.08, "loa_lower": -5.4, "loa_upper": 2.7, "n": 3}
    fig = volume_agreement_plot(table, limits=limits)
    assert len(fig.data) == 3 and len(fig.layout.shapes) == 3
    assert list(fig.data[2].y) == [-2.0, 1.0, -3.0] and list(fig.data[2].x) == [11.0, 19.5, 31.5]
    assert list(fig.data[0].text) == ["a", "b", "c"] and fig.layout.title.text == "Volume agreement (n = 3)"
    assert len(volume_agreement_plot(table).layout.shapes) == 0
    with pytest.raises(DataValidationError, match="corrected_ml"):
        volume_agreement_plot(table, a="corrected_ml")
    with pytest.raises(DataValidationError, match="bland_altman"):
        volume_agreement_plot(table, limits={"bias": 0.0})


def test_detection_by_size_bars() -> None:
    summary = pd.DataFrame({"size_bin": ["<10 mm", "10-20 mm", ">=20 mm", "all"], "n_reference": [5, 3, 0, 8],
                            "recall": [0.4, 1.0, np.nan, 0.625], "n_false_positive": [3, 0, 0, 3], "precision": [0.4, 1.0, np.nan, 0.625]})
    fig = detection_by_size(summary)
    assert len(fig.data) == 1 and list(fig.data[0].x) == ["<10 mm", "10-20 mm", ">=20 mm", "all"]
    assert list(fig.data[0].text) == ["n = 5", "n = 3", "n = 0", "n = 8"]
    assert "3 false positives" in fig.layout.title.text
    assert detection_by_size(summary.iloc[:3]).layout.title.text == "Lesion detection by size"
    with pytest.raises(DataValidationError, match="n_reference"):
        detection_by_size(summary.drop(columns="n_reference"))
