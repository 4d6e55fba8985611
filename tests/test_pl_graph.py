"""Graph-fusion figures: built from small hand-made results; concrete facts of each figure; clear input errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from hccomics.errors import DataValidationError
from hccomics.pl import attribution_bars, fusion_differences, fusion_model_comparison, patient_embedding


def _vlines(fig: go.Figure) -> list:
    return [s for s in fig.layout.shapes if s.type == "line" and s.x0 == s.x1]


# --- fusion_model_comparison ---------------------------------------------------------------------------------

@pytest.fixture
def models() -> pd.DataFrame:
    return pd.DataFrame({"metric": "auc", "estimate": [0.74, 0.66, 0.61], "low": [0.65, 0.55, 0.50],
                         "high": [0.82, 0.76, 0.71], "patients": [120, 118, 120],
                         "kind": ["fused", "single modality", "baseline"]}, index=["GCN", "rna", "concat"])


def test_model_comparison_order_colours_ci_and_chance_line(models) -> None:
    fig = fusion_model_comparison(models)
    assert isinstance(fig, go.Figure)
    assert [t.name for t in fig.data] == ["fused", "single modality", "baseline"]  # one trace per kind
    assert len({t.marker.color for t in fig.data}) == 3
    assert list(fig.layout.yaxis.categoryarray)[::-1] == ["GCN", "rna", "concat"]  # table order, top to bottom
    gcn = fig.data[0]
    assert list(gcn.y) == ["GCN"] and gcn.error_x.array[0] == pytest.approx(0.08)
    assert gcn.error_x.arrayminus[0] == pytest.approx(0.09)
    assert list(gcn.customdata[0]) == [120, 0.65, 0.82] and "patients" in gcn.hovertemplate
    lines = _vlines(fig)
    assert len(lines) == 1 and lines[0].x0 == 0.5 and lines[0].line.dash == "dash"
    assert fig.layout.xaxis.title.text == "AUC"


def test_model_comparison_without_kind_is_one_trace() -> None:
    t = pd.DataFrame({"metric": "harrell_c", "estimate": [0.7, 0.6], "low": [0.6, 0.5], "high": [0.8, 0.7],
                      "patients": [90, 90]}, index=["b", "a"])
    fig = fusion_model_comparison(t, title="OS")
    assert len(fig.data) == 1 and list(fig.data[0].y) == ["b", "a"]
    assert fig.layout.xaxis.title.text == "Harrell's C" and fig.layout.title.text == "OS"
    assert fig.layout.showlegend is False


def test_model_comparison_one_panel_per_task(models) -> None:
    surv = models.assign(metric="harrell_c", task="overall survival")
    t = pd.concat([models.assign(task="MVI"), surv])
    fig = fusion_model_comparison(t)
    assert [a.text for a in fig.layout.annotations] == ["MVI", "overall survival"]
    assert {t.xaxis for t in fig.data} == {"x", "x2"} and {t.yaxis for t in fig.data} == {"y", "y2"}
    assert fig.layout.xaxis.title.text == "AUC" and fig.layout.xaxis2.title.text == "Harrell's C"
    assert fig.layout.yaxis2.matches == "y"  # shared model axis
    assert sum(bool(t.showlegend) for t in fig.data) == 3  # one legend entry per kind, not per panel
    assert sorted(s.x0 for s in _vlines(fig)) == [0.5, 0.5]


def test_model_comparison_missing_columns(models) -> None:
    with pytest.raises(DataValidationError, match=r"lacks columns \['low', 'high'\]"):
        fusion_model_comparison(models.drop(columns=["low", "high"]))


# --- fusion_differences --------------------------------------------------------------------------------------

@pytest.fixture
def diffs() -> pd.DataFrame:
    return pd.DataFrame({"model a": ["concat", "rna", "image"], "model b": ["GCN", "GCN", "GCN"],
                         "patients": [120, 118, 110], "a": [0.61, 0.66, 0.63], "b": [0.74, 0.74, 0.72],
                         "b - a": [0.13, 0.08, 0.09], "low": [0.04, -0.02, 0.01], "high": [0.22, 0.18, 0.17]})


def test_differences_labels_colours_and_zero_line(diffs) -> None:
    fig = fusion_differences(diffs)
    assert [t.name for t in fig.data] == ["95% CI above 0", "95% CI includes 0 or below"]
    above, other = fig.data
    assert list(above.y) == ["GCN vs concat", "GCN vs image"] and list(other.y) == ["GCN vs rna"]
    assert above.marker.color != other.marker.color
    assert list(fig.layout.yaxis.categoryarray)[::-1] == ["GCN vs concat", "GCN vs rna", "GCN vs image"]
    assert other.error_x.arrayminus[0] == pytest.approx(0.10)
    lines = _vlines(fig)
    assert len(lines) == 1 and lines[0].x0 == 0


def test_differences_task_in_labels_when_several(diffs) -> None:
    fig = fusion_differences(diffs.assign(task=["MVI", "MVI", "OS"]))
    labels = [y for t in fig.data for y in t.y]
    assert "GCN vs image (OS)" in labels and "GCN vs concat (MVI)" in labels
    assert len(fusion_differences(diffs.assign(task="MVI")).data[0].y[0].split("(")) == 1


def test_differences_missing_columns(diffs) -> None:
    with pytest.raises(DataValidationError, match="b - a"):
        fusion_differences(diffs.drop(columns=["b - a"]))


# --- attribution_bars -------------------------------------------------------------------------------------------

@pytest.fixture
def genes() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    imp = rng.permutation(np.arange(1, 31)) / 100
    wp = np.zeros(30, dtype=bool)
    wp[[0, 3, 7, 12]] = True
    return pd.DataFrame({"importance": imp, "wp4172": wp}, index=[f"G{i}" for i in range(30)])


def test_attribution_top_order_and_highlight(genes) -> None:
    fig = attribution_bars(genes, top=10, highlight="wp4172")
    expected = list(genes["importance"].sort_values(ascending=False).index[:10])
    assert list(fig.layout.yaxis.categoryarray)[::-1] == expected  # largest at the top
    assert [t.name for t in fig.data] == ["WP4172 member", "other"]
    member, other = fig.data
    assert member.marker.color != other.marker.color
    assert len(member.y) == int(genes.loc[expected, "wp4172"].sum())
    assert set(member.y) == {g for g in expected if genes.at[g, "wp4172"]}
    assert len(member.y) + len(other.y) == 10
    assert fig.layout.xaxis.title.text == "importance" and member.error_x.array is None


def test_attribution_error_bars_label_and_plain_column_name() -> None:
    t = pd.DataFrame({"score": [0.2, 0.5, 0.1], "error": [0.01, 0.05, 0.02], "marked": [False, True, False]},
                     index=["tumour", "ring 2 mm", "liver"])
    fig = attribution_bars(t, value="score", highlight="marked", label="mean |attribution| (± SD over folds)")
    assert [tr.name for tr in fig.data] == ["marked", "other"]
    assert list(fig.data[0].error_x.array) == [0.05]
    assert list(fig.data[1].y) == ["tumour", "liver"] and list(fig.data[1].error_x.array) == [0.01, 0.02]
    assert fig.layout.xaxis.title.text == "mean |attribution| (± SD over folds)"
    plain = attribution_bars(t, value="score")
    assert len(plain.data) == 1 and plain.layout.showlegend is False


def test_attribution_missing_columns(genes) -> None:
    with pytest.raises(DataValidationError, match="marked"):
        attribution_bars(genes, highlight="marked")
    with pytest.raises(DataValidationError, match="top"):
        attribution_bars(genes, top=0)


# --- patient_embedding --------------------------------------------------------------------------------------------

@pytest.fixture
def coords() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame(rng.normal(size=(6, 2)), columns=["x", "y"], index=[f"P{i}" for i in range(6)])


def test_embedding_binary_with_unlabelled_and_edges(coords) -> None:
    outcome = pd.Series([0, 1, np.nan, 1, 0], index=["P0", "P1", "P2", "P3", "P5"])  # P4 missing too
    edges = np.array([[0, 1, 2, 5], [1, 2, 3, 4]])
    fig = patient_embedding(coords, outcome, edges=edges, outcome_name="MVI")
    assert [t.name for t in fig.data] == ["edges", "0", "1", "unlabelled"]
    line = fig.data[0]
    assert len(line.x) == len(line.y) == 3 * edges.shape[1] and line.mode == "lines"
    assert list(line.x[2::3]) == [None] * 4 and line.x[0] == coords["x"].iloc[0] and line.x[1] == coords["x"].iloc[1]
    grey = fig.data[3]
    assert sorted(grey.customdata[:, 0]) == ["P2", "P4"] and set(grey.customdata[:, 1]) == {"unlabelled"}
    assert grey.marker.color != fig.data[1].marker.color != fig.data[2].marker.color
    assert list(fig.data[2].customdata[:, 0]) == ["P1", "P3"] and "MVI" in fig.data[2].hovertemplate


def test_embedding_continuous_outcome_uses_colour_scale(coords) -> None:
    outcome = pd.Series([3.5, 12.1, 40.2, 7.7, 22.0, 30.3], index=coords.index)
    fig = patient_embedding(coords, outcome, outcome_name="months")
    assert len(fig.data) == 1
    assert list(fig.data[0].marker.color) == list(outcome) and fig.data[0].marker.colorbar.title.text == "months"


def test_embedding_bad_inputs(coords) -> None:
    with pytest.raises(DataValidationError, match=r"lacks columns \['y'\]"):
        patient_embedding(coords[["x"]], pd.Series(dtype=float))
    with pytest.raises(DataValidationError, match="2 x E"):
        patient_embedding(coords, pd.Series(dtype=float), edges=np.array([[0, 9], [1, 2]]))
