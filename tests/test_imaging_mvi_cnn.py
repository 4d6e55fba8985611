"""MVI networks: out-of-fold discipline, missing MRI, the multi-task loss, saliency on a planted signal, crops."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from hccomics import imaging
from hccomics.errors import DataValidationError, OptionError
from hccomics.imaging.mvi_cnn import MultiTaskLoss

WIDTHS = (2.0, 4.0, 6.0, 8.0, 10.0)
SIZE = (12, 12, 6)


def _synthetic(n: int = 24, *, seed: int = 0, signal: float = 0.0) -> tuple[list[dict], pd.DataFrame]:
    """Crops with a tumour in the middle, shells around it; MVI-positive ones get a bright band in shell 3 (6 mm)."""
    rng = np.random.default_rng(seed)
    x, y_, z = np.indices(SIZE)
    r = np.sqrt((x - 5.5) ** 2 + (y_ - 5.5) ** 2 + (2 * (z - 2.5)) ** 2)
    regions = np.clip(np.floor(r).astype(int) - 1, 0, 6) + 1  # 1 tumour, 2-6 shells, 7 rest of the liver
    regions = torch.from_numpy(regions.astype(np.uint8))
    labels = np.r_[np.ones(n // 2), np.zeros(n - n // 2)].astype(int)
    crops = []
    for i in range(n):
        ct = rng.normal(0, 1, (3, *SIZE)).astype(np.float32)
        ct[:, regions.numpy() == 4] += signal * labels[i]
        mask = (regions.numpy() == 1).astype(np.float32)[None]
        crops.append({"patient_id": f"P{i:02d}", "ct": torch.from_numpy(np.concatenate([ct, mask])),
                      "mri": torch.from_numpy(rng.normal(0, 1, (2, *SIZE)).astype(np.float32)),
                      "has_mri": torch.tensor(float(i % 3 != 0)), "regions": regions})
    y = pd.DataFrame({"mvi": labels, "grade": rng.integers(0, 2, n).astype(float)}, index=[c["patient_id"] for c in crops])
    return crops, y


def test_multitask_loss_by_hand():
    logits = torch.tensor([[0.0, 1.0], [2.0, -1.0]])
    target = torch.tensor([[1.0, 0.5], [0.0, float("nan")]])
    loss = MultiTaskLoss(["binary", "continuous"], [1.0, 0.5])(logits, target)
    bce = (np.log(2) + (2 + np.log1p(np.exp(-2)))) / 2  # -log sigmoid(0), -log(1 - sigmoid(2))
    assert float(loss) == pytest.approx(bce + 0.5 * (1.0 - 0.5) ** 2, rel=1e-5)  # the NaN target is skipped


def test_no_embedding_comes_from_a_model_that_trained_on_the_patient(tmp_path):
    crops, y = _synthetic(18, signal=1.0)
    folds = imaging.mvi_folds(y["mvi"], n_splits=3, n_repeats=1)

    def make(seed):
        return imaging.MVIClassifier(targets=("mvi", "grade"), epochs=2, batch_size=6, widen=0.0625, seed=seed)

    res = imaging.cross_validate_cnn(make, crops, y, folds, work_dir=tmp_path)
    fold_of = folds.set_index("patient_id")["fold"]
    for (r, k), train in res.train_patients.items():
        assert set(train) == set(fold_of.index[fold_of != k])  # the fold model saw exactly the other folds
    for pid in y.index:
        r, k = res.fold_model(pid)
        assert pid not in res.train_patients[(r, k)] and fold_of[pid] == k
        # recomputed from the saved weights of the model that held it out: the stored embedding
        model = imaging.fold_classifier(make, res, crops, y, repeat=r, fold=k)
        own = model.embed([c for c in crops if c["patient_id"] == pid])[0]
        assert np.allclose(own, res.embeddings.loc[pid].to_numpy(), atol=1e-5)
    # the check can fail: a model that trained on the patient gives another embedding
    other = next(f for f in range(3) if f != fold_of[y.index[0]])
    seen = imaging.fold_classifier(make, res, crops, y, repeat=0, fold=other)
    assert not np.allclose(seen.embed([crops[0]])[0], res.embeddings.iloc[0].to_numpy(), atol=1e-5)


def test_patients_without_mri_are_handled_explicitly():
    crops, y = _synthetic(12)
    fusion = imaging.MVIClassifier(fusion=True, epochs=1, batch_size=6, widen=0.0625).fit(crops, y)
    without = next(c for c in crops if float(c["has_mri"]) == 0)
    changed = {**without, "mri": without["mri"] + 100.0}
    # a patient without MRI: its MRI input does not reach the prediction (zero embedding plus a flag)
    assert fusion.predict_proba([without]) == pytest.approx(fusion.predict_proba([changed]), abs=1e-6)
    with pytest.raises(DataValidationError, match="no MRI"):
        imaging.MVIClassifier(modality="mri", epochs=1).fit(crops, y)
    # per-modality heads: the MRI head's loss skips patients without MRI; predictions come from the joint head
    heads = imaging.MVIClassifier(fusion=True, modality_heads=True, targets=("mvi", "grade"), epochs=1, batch_size=6,
                                  widen=0.0625).fit(crops, y)
    assert heads.predict_outputs(crops).shape == (len(crops), 2)
    assert heads.predict_proba([without]) == pytest.approx(heads.predict_proba([changed]), abs=1e-6)
    x = torch.stack([c["ct"] for c in crops[:2]])
    extra = {"mri": torch.stack([c["mri"] for c in crops[:2]]), "has_mri": torch.stack([c["has_mri"] for c in crops[:2]])}
    assert heads.model_.train()(x, **extra).shape == (2, 6) and heads.model_.eval()(x, **extra).shape == (2, 2)
    with pytest.raises(DataValidationError, match="fusion=True"):
        imaging.MVIClassifier(modality_heads=True)
    # early fusion: one encoder on CT phases + mask, MRI phases + mask and a has_mri channel; absent MRI is zeroed
    early = imaging.MVIClassifier(fusion="channels", epochs=1, batch_size=6, widen=0.0625).fit(crops, y)
    assert list(early.model_.encoders) == ["image"]
    assert early.model_.encoders["image"].conv1.in_channels == 4 + 2 + 1
    assert early.predict_proba([without]) == pytest.approx(early.predict_proba([changed]), abs=1e-6)
    with_mri = next(c for c in crops if float(c["has_mri"]) == 1)
    assert early.predict_proba([with_mri]) != pytest.approx(
        early.predict_proba([{**with_mri, "mri": with_mri["mri"] + 100.0}]), abs=1e-6)  # the check can fail
    with pytest.raises(DataValidationError, match="fusion must be"):
        imaging.MVIClassifier(fusion="late")
    folds = imaging.mvi_folds(y["mvi"], n_splits=2, n_repeats=1)
    res = imaging.cross_validate_cnn(lambda s: imaging.MVIClassifier(modality="mri", epochs=1, widen=0.0625, seed=s),
                                     crops, y, folds)
    assert set(res.oof.index) == {c["patient_id"] for c in crops if float(c["has_mri"]) == 1}


def test_saliency_finds_the_planted_ring_and_deletion_confirms_it():
    crops, y = _synthetic(24, signal=2.0)
    clf = imaging.MVIClassifier(epochs=12, batch_size=8, widen=0.125, lr=3e-3, seed=0).fit(crops, y)
    positives = [c for c in crops if y.loc[c["patient_id"], "mvi"] == 1]
    assert clf.predict_proba(positives).mean() > clf.predict_proba([c for c in crops if c not in positives]).mean() + 0.3
    for method in ("gradient", "occlusion"):
        some = positives if method == "gradient" else positives[:4]  # occlusion runs a forward pass per cube
        maps = imaging.saliency_maps(clf, some, method=method, occlusion_size=3)
        assert maps.shape == (len(some), *SIZE) and (maps >= 0).all()
        table = imaging.saliency_by_region(maps, some, widths=WIDTHS).groupby("region")[["mass_share", "volume_share"]].mean()
        # the planted 6 mm shell holds more of the saliency than of the volume, the tumour and the far liver less
        assert table.loc["ring_6mm", "mass_share"] > 1.3 * table.loc["ring_6mm", "volume_share"], (method, table)
        assert table.loc["rest_of_liver", "mass_share"] < table.loc["rest_of_liver", "volume_share"], (method, table)
        if method == "gradient":
            deletion = imaging.deletion_curve(clf, some, maps)
            assert deletion["auc_saliency"].mean() < deletion["auc_random"].mean()
    # Grad-CAM maps: MONAI's, upsampled to the crop and scaled to [0, 1] per crop, the most salient voxel at 1
    for method in ("gradcam", "gradcam++"):
        cam = imaging.saliency_maps(clf, positives, method=method, layer="encoders.image.layer2")
        assert cam.shape == (len(positives), *SIZE) and cam.min() >= 0 and np.allclose(cam.max(axis=(1, 2, 3)), 1.0)
        table = imaging.saliency_by_region(cam, positives, widths=WIDTHS).groupby("region")[["mass_share", "volume_share"]].mean()
        inner = table.drop("rest_of_liver").sum()
        assert inner["mass_share"] > inner["volume_share"], (method, table)  # the tumour and its shells, not the far liver
        assert table.loc["rest_of_liver", "mass_share"] < table.loc["rest_of_liver", "volume_share"], (method, table)


def test_region_pooled_network_reads_only_its_regions_and_finds_the_planted_ring(tmp_path):
    crops, y = _synthetic(24, signal=1.0)
    for c in crops:  # an MRI region map beside the CT one (zeros without MRI, as prepare_crops writes it)
        c["mri_regions"] = c["regions"] if float(c["has_mri"]) else torch.zeros_like(c["regions"])
    clf = imaging.MVIClassifier(pooling="regions", epochs=15, batch_size=8, widen=0.125, lr=3e-3, seed=0).fit(crops, y)
    assert clf.model_.encoders["image"].n_regions == 7 and clf.embed(crops[:2]).shape == (2, 2 * 8 * 7)
    # mean and SD of each region, by hand, from the stem's feature maps
    c = crops[0]
    with torch.no_grad():
        f = clf.model_.encoders["image"].stem(c["ct"][None, :-1])[0]  # the phases; the region map holds the tumour
    m = (c["regions"] == 4).numpy()
    ring = f[:, torch.from_numpy(m)].numpy()
    emb = clf.embed([c])[0].reshape(7, 2, 8)  # region, (mean, SD), feature map
    assert np.allclose(emb[3, 0], ring.mean(axis=1), atol=1e-5) and np.allclose(emb[3, 1], ring.std(axis=1), atol=1e-3)
    # voxels outside the liver (code 0) are pooled nowhere: changing those beyond the stem's reach (two 3^3
    # convolutions: 2 voxels) of every pooled voxel leaves the prediction; changing a ring voxel does not
    regions = c["regions"].clone()
    regions[:5] = 0
    c = {**c, "regions": regions}
    ct = c["ct"].clone()
    ct[:, :2] += 50.0
    assert clf.predict_proba([{**c, "ct": ct}]) == pytest.approx(clf.predict_proba([c]), abs=1e-6)
    ct[:, :4] += 50.0  # within reach of the pooled voxels at x = 5: the check can fail
    assert clf.predict_proba([{**c, "ct": ct}]) != pytest.approx(clf.predict_proba([c]), abs=1e-6)
    ct = c["ct"].clone()
    ct[-1] = 1.0 - ct[-1]  # the tumour-mask channel is not read
    assert clf.predict_proba([{**c, "ct": ct}]) == pytest.approx(clf.predict_proba([c]), abs=1e-6)
    ct = c["ct"].clone()
    ct[:-1, c["regions"] == 4] += 50.0
    assert clf.predict_proba([{**c, "ct": ct}]) != pytest.approx(clf.predict_proba([c]), abs=1e-3)
    # it learns the planted 6 mm shell out of fold (a global-pool network of this size does not, on 12 training crops)
    folds = imaging.mvi_folds(y["mvi"], n_splits=2, n_repeats=1)
    res = imaging.cross_validate_cnn(lambda s: imaging.MVIClassifier(pooling="regions", epochs=15, batch_size=8, widen=0.125,
                                                                     lr=3e-3, seed=s), crops, y, folds, work_dir=tmp_path)
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(y["mvi"], res.oof[0]) > 0.8
    # Grad-CAM at the stem by default, and occlusion one copy at a time beside the region maps
    positives = [c for c in crops if y.loc[c["patient_id"], "mvi"] == 1]
    for method in ("gradcam", "occlusion"):
        maps = imaging.saliency_maps(clf, positives[:4], method=method, occlusion_size=3)
        assert maps.shape == (4, *SIZE) and (maps >= 0).all()
        table = imaging.saliency_by_region(maps, positives[:4], widths=WIDTHS).groupby("region")[["mass_share", "volume_share"]].mean()
        assert table.loc["ring_6mm", "mass_share"] > table.loc["ring_6mm", "volume_share"], (method, table)
    # fusion with region maps per modality; an absent MRI does not reach the prediction
    fusion = imaging.MVIClassifier(pooling="regions", fusion=True, modality_heads=True, epochs=1, batch_size=6,
                                   widen=0.0625).fit(crops, y)
    without = next(c for c in crops if float(c["has_mri"]) == 0)
    assert fusion.predict_proba([without]) == pytest.approx(
        fusion.predict_proba([{**without, "mri": without["mri"] + 100.0}]), abs=1e-6)
    with pytest.raises(DataValidationError, match="region pooling needs"):
        imaging.MVIClassifier(pooling="regions", modality="mri", epochs=1).fit([{k: v for k, v in c.items() if k != "mri_regions"}
                                                                                 for c in crops if float(c["has_mri"])], y)
    with pytest.raises(DataValidationError, match="not 'channels'"):
        imaging.MVIClassifier(pooling="regions", fusion="channels")
    with pytest.raises(OptionError, match="pooling"):
        imaging.MVIClassifier(pooling="max")


def test_saliency_by_region_reads_the_region_map_of_the_modality():
    # by hand: a map on the MRI crop counted with the MRI region map, not the CT one
    ct_regions = torch.tensor([[[1, 1, 7, 7]]], dtype=torch.uint8)
    mri_regions = torch.tensor([[[0, 1, 2, 7]]], dtype=torch.uint8)
    crop = {"patient_id": "P1", "regions": ct_regions, "mri_regions": mri_regions}
    maps = np.array([[[[4.0, 2.0, 1.0, 1.0]]]])
    t = imaging.saliency_by_region(maps, [crop], widths=WIDTHS, key="mri_regions").set_index("region")
    assert t.loc[["tumour", "ring_2mm", "rest_of_liver"], "mass_share"].tolist() == pytest.approx([0.5, 0.25, 0.25])
    assert t.loc[["tumour", "ring_2mm", "rest_of_liver"], "volume_share"].tolist() == pytest.approx([1 / 3] * 3)
    t = imaging.saliency_by_region(maps, [crop], widths=WIDTHS).set_index("region")
    assert t.loc[["tumour", "rest_of_liver"], "mass_share"].tolist() == pytest.approx([0.75, 0.25])
    with pytest.raises(DataValidationError, match="mri_regions"):
        imaging.saliency_by_region(maps, [{"patient_id": "P1", "regions": ct_regions}], widths=WIDTHS, key="mri_regions")


def _grad_cam_by_hand(net: torch.nn.Module, x: torch.Tensor, layer: str) -> np.ndarray:
    """Grad-CAM from its definition (Selvaraju et al. 2017): ReLU of the activations weighted by their mean gradient."""
    store = {}
    hook = dict(net.named_modules())[layer].register_forward_hook(lambda m, i, o: store.update(a=o))
    logit = net(x)[0, 0]
    hook.remove()
    grad = torch.autograd.grad(logit, store["a"])[0]
    cam = torch.relu((grad.mean(dim=(2, 3, 4), keepdim=True) * store["a"]).sum(1, keepdim=True))
    cam = torch.nn.functional.interpolate(cam, size=x.shape[2:], mode="trilinear", align_corners=False)[0, 0].detach().numpy()
    return (cam - cam.min()) / (cam.max() - cam.min())


def test_grad_cam_equals_its_definition():
    crops, y = _synthetic(16, signal=2.0)
    clf = imaging.MVIClassifier(epochs=3, batch_size=8, widen=0.125, seed=1).fit(crops, y)
    maps = imaging.saliency_maps(clf, crops[:4], method="gradcam", layer="encoders.image.layer2")
    for m, c in zip(maps, crops[:4]):
        ref = _grad_cam_by_hand(clf.model_.eval(), c["ct"][None].clone(), "encoders.image.layer2")
        # MONAI's default post-processing would give 1 - ref here (it maps the map's minimum to 1)
        assert np.allclose(m, ref, atol=1e-5)


def test_crops_of_the_demo_cohort(smoke_registered, tmp_path):
    registered = smoke_registered
    lesions = {m: imaging.lesion_features(imaging.segmentation_items(r, modality=m), modality=m, n_jobs=1, widths=WIDTHS)
               for m, r in registered.items()}
    items = imaging.crop_items(lesions, registered, out_dir=tmp_path / "masks", widths=WIDTHS)
    crops = imaging.prepare_crops(items, spacing=(2.0, 2.0, 4.0), size=(16, 16, 8), cache_dir=tmp_path / "cache")
    again = imaging.prepare_crops(items, spacing=(2.0, 2.0, 4.0), size=(16, 16, 8), cache_dir=tmp_path / "cache")
    assert all(torch.equal(a["ct"], b["ct"]) for a, b in zip(crops, again))  # the cache returns the same tensors
    has_mri = lesions["MRI"].obs["patient_id"].unique()
    for c in crops:
        assert c["ct"].shape == (5, 16, 16, 8) and c["mri"].shape == (4, 16, 16, 8)
        assert float(c["has_mri"]) == float(c["patient_id"] in has_mri)
        codes = set(np.unique(c["regions"].numpy()).tolist())
        assert 1 in codes and 7 in codes  # the tumour and liver beyond the rings fit the crop
        assert torch.equal(c["ct"][-1] > 0.5, c["regions"] == 1)  # the tumour channel is the region map's tumour
        # the MRI region map on the MRI crop, its tumour the MRI mask channel; zeros without MRI
        assert c["mri_regions"].shape == (16, 16, 8)
        assert torch.equal(c["mri"][-1] > 0.5, c["mri_regions"] == 1) and bool((c["mri_regions"] > 0).any()) == bool(c["has_mri"])
        assert 0.0 <= float(c["ct"][:-1].min()) and float(c["ct"][:-1].max()) <= 1.0  # CT window
    with pytest.raises(DataValidationError, match="no crop"):
        imaging.load_crops(crops, ["nobody"])
