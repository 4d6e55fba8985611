"""Peritumoral rings and ablative margins against analytic volumes, hand-built geometry and the demo truth."""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pandas as pd
import pytest

from hccomics.errors import DataValidationError
from hccomics.imaging.rings import ablative_margin, lesion_rings, ring_name

WIDTHS = (2.0, 4.0, 6.0, 8.0, 10.0)


def _ball(radius: float, spacing: tuple[float, float, float], *, margin: float = 14.0,
          centre_offset: tuple[float, float, float] = (0.3, 0.1, 0.7)) -> np.ndarray:
    shape = [int(2 * (radius + margin) / s) + 1 for s in spacing]
    grids = np.meshgrid(*[(np.arange(n) - n / 2) * s for n, s in zip(shape, spacing)], indexing="ij")
    r = np.sqrt(sum((g - o) ** 2 for g, o in zip(grids, centre_offset)))
    return r <= radius


@pytest.mark.parametrize("spacing", [(0.8, 0.8, 2.5), (1.0, 1.0, 1.0)])
def test_ring_volumes_match_analytic_shells(spacing):
    radius = 15.0
    ball = _ball(radius, spacing)
    (rings,) = lesion_rings(ball.astype(np.uint8), spacing=spacing, widths=WIDTHS)
    table = rings.table().set_index("region")
    for w in WIDTHS:
        analytic_ml = 4 / 3 * math.pi * ((radius + w) ** 3 - radius**3) / 1000
        assert table.loc[ring_name(w), "volume_ml"] == pytest.approx(analytic_ml, rel=0.05), w
    # shells are the differences of consecutive cumulative rings
    (shells,) = lesion_rings(ball.astype(np.uint8), spacing=spacing, widths=WIDTHS, mode="shell")
    cum = table["voxels"].to_numpy()[1:]
    assert shells.table()["voxels"].to_numpy()[1:].tolist() == [cum[0], *np.diff(cum)]


def test_rings_are_in_mm_whatever_the_grid():
    # the same sphere on an isotropic and an anisotropic grid gets the same 6 mm ring volume;
    # a dilation by voxels would give a ring 2.5 times thicker along z on the anisotropic grid
    vols = []
    for spacing in [(1.0, 1.0, 1.0), (0.8, 0.8, 2.5)]:
        (r,) = lesion_rings(_ball(12.0, spacing).astype(np.uint8), spacing=spacing, widths=(6.0,))
        vols.append(r.table().set_index("region").loc["ring_6mm", "volume_ml"])
    assert vols[0] == pytest.approx(vols[1], rel=0.05)


def test_rings_never_leave_the_liver_and_report_clipping():
    spacing = (1.0, 1.0, 2.0)
    ball = _ball(10.0, spacing)
    liver = np.zeros_like(ball)
    liver[: ball.shape[0] // 2 + 14] = True  # the liver ends 4 mm beyond the tumour on one side
    liver |= ball
    rings = lesion_rings(ball.astype(np.uint8), spacing=spacing, liver=liver, widths=WIDTHS)[0]
    for w in WIDTHS:
        m = rings.mask(ring_name(w))
        assert not (m & ~liver).any() and not (m & ball).any()
    table = rings.table().set_index("region")
    assert table.loc["ring_2mm", "clipped_fraction"] == pytest.approx(0.0, abs=1e-9)
    free = lesion_rings(ball.astype(np.uint8), spacing=spacing, widths=WIDTHS)[0].mask("ring_10mm")
    assert table.loc["ring_10mm", "clipped_fraction"] == pytest.approx((free & ~liver).sum() / free.sum())
    assert table.loc["ring_10mm", "clipped_fraction"] > 0.05


def test_ring_wider_than_the_liver_stops_at_the_liver():
    spacing = (1.5, 1.5, 3.0)
    liver = np.zeros((30, 30, 12), bool)
    liver[5:25, 5:25, 2:10] = True
    lesions = np.zeros(liver.shape, np.uint8)
    lesions[13:17, 13:17, 5:7] = 1
    rings = lesion_rings(lesions, spacing=spacing, liver=liver, widths=(5.0, 200.0))[0]
    widest = rings.mask("ring_200mm")
    assert (widest == (liver & (lesions == 0))).all()  # the whole parenchyma, nothing beyond
    assert rings.table().set_index("region").loc["ring_200mm", "clipped_fraction"] > 0.5


def test_lesion_touching_the_border_is_flagged(caplog):
    lesions = np.zeros((30, 30, 10), np.uint8)
    lesions[0:6, 10:16, 3:6] = 1  # reaches the i = 0 face
    lesions[15:19, 15:19, 4:6] = 2
    with caplog.at_level(logging.WARNING, logger="hccomics.imaging.rings"):
        rings = lesion_rings(lesions, spacing=(1.0, 1.0, 2.0), widths=(2.0, 4.0))
    assert [r.touches_border for r in rings] == [True, False]
    assert rings[0].truncated and "touches the volume's border" in caplog.text
    # rings exclude every tumour: lesion 1's ring holds none of lesion 2's voxels
    assert not (rings[0].mask("ring_4mm") & (lesions > 0)).any()


def test_empty_mask_and_bad_input():
    assert lesion_rings(np.zeros((10, 10, 10), np.uint8), spacing=(1, 1, 1)) == []
    with pytest.raises(DataValidationError, match="increasing"):
        lesion_rings(np.ones((5, 5, 5), np.uint8), spacing=(1, 1, 1), widths=(4, 2))
    with pytest.raises(DataValidationError, match="share a grid"):
        lesion_rings(np.ones((5, 5, 5), np.uint8), spacing=(1, 1, 1), liver=np.ones((5, 5, 4)))
    with pytest.raises(DataValidationError, match="spacing"):
        lesion_rings(np.ones((5, 5, 5), np.uint8), spacing=(1, 0, 1))


def test_ablative_margin_on_nested_boxes():
    t = np.zeros((40, 40, 40), bool)
    t[15:25, 15:25, 15:25] = True
    z = np.zeros_like(t)
    z[10:30, 10:30, 12:30] = True  # 5 voxels around, 3 below along the last axis
    out = ablative_margin(t, z, spacing=(1.0, 1.0, 2.0))
    assert out["minimal_margin_mm"] == pytest.approx(5.0, abs=0.5)  # 5 voxels of 1 mm beat 3 of 2 mm
    assert out["uncovered_fraction"] == 0.0
    shifted = np.roll(z, 8, axis=0)  # the zone misses 3 voxel rows of tumour
    out = ablative_margin(t, shifted, spacing=(1.0, 1.0, 2.0))
    assert out["minimal_margin_mm"] == pytest.approx(-3.0, abs=0.5)
    assert out["uncovered_fraction"] == pytest.approx(0.3)


def _margin_with_planted_transform(exam: pd.DataFrame, truth: dict) -> tuple[dict, np.ndarray]:
    """The index tumour's margin with the zone brought across by the transform the generator planted."""
    from hccomics.imaging.registration import warp_to_reference
    from hccomics.io import read_nifti

    ref = exam.loc["portal_venous"]
    zone = warp_to_reference(exam.loc["post_ablation", "mask_ablation_zone"], np.array(truth["transforms"]["CT/post_ablation"]),
                             reference=ref["path"])
    lesions, affine = read_nifti(ref["mask_lesion"])
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    return ablative_margin(lesions == 1, zone, spacing=spacing, liver=read_nifti(ref["mask_liver"])[0] > 0), spacing


def test_ablative_margin_recovers_the_planted_margin(smoke_manifest):
    """Demo truth: the zone brought onto the reference grid with the planted transform.

    The generator plants margins between voxel centres; the engine measures between surfaces, which sit half a
    voxel outside each mask's centres, so the two differ by about one in-plane voxel.
    """
    from hccomics.io import image_table

    table = image_table(smoke_manifest)
    truth = json.loads((smoke_manifest.parent / "truth_imaging.json").read_text())
    checked = 0
    for pid, exam in table[table["modality"] == "CT"].groupby("patient_id"):
        exam = exam.set_index("phase")
        if "post_ablation" not in exam.index:
            continue
        out, spacing = _margin_with_planted_transform(exam, truth[pid])
        planted = truth[pid]["minimal_ablative_margin_mm"]
        assert abs(out["minimal_margin_mm"] - planted) <= 1.5 * spacing[0], (pid, out, planted)
        assert (out["uncovered_fraction"] > 0) == (truth[pid]["uncovered_tumour_voxels"] > 0)
        checked += 1
    assert checked >= 1


def test_ablative_margins_of_the_cohort_follow_the_planted_transform(smoke_manifest, tmp_path):
    """The whole path (registration of the post-ablation scan, the zone warped across, the margin) against the margin
    measured with the planted transform; the smoke grid's registration may miss by up to one slice (4 mm)."""
    from hccomics.imaging.rings import ablative_margins
    from hccomics.io import image_table

    table = image_table(smoke_manifest)
    truth = json.loads((smoke_manifest.parent / "truth_imaging.json").read_text())
    margins = ablative_margins(table, out_dir=tmp_path / "one", n_jobs=1)
    ablated = sorted(table.loc[table["phase"] == "post_ablation", "patient_id"])
    assert list(margins.index) == ablated and len(ablated) >= 1
    for pid, row in margins.iterrows():
        exam = table[(table["patient_id"] == pid) & (table["modality"] == "CT")].set_index("phase")
        planted, spacing = _margin_with_planted_transform(exam, truth[pid])
        assert abs(row["minimal_margin_mm"] - planted["minimal_margin_mm"]) <= spacing.max(), (pid, row.to_dict(), planted)
        assert row["tumour_ml"] == pytest.approx(planted["tumour_ml"])
        assert (row["uncovered_fraction"] > 0) == (truth[pid]["uncovered_tumour_voxels"] > 0)
        assert row["liver_dice_after_registration"] > 0.9
    pd.testing.assert_frame_equal(ablative_margins(table, out_dir=tmp_path / "two", n_jobs=2), margins)
    assert ablative_margins(table[table["phase"] != "post_ablation"], out_dir=tmp_path / "none").empty
