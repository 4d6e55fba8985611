"""Joint gene + image DNB features: label-free image features, reference z-scores, key states."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from hccomics.datasets.demo_progression import simulate_progression
from hccomics.datasets.demo_progression_images import simulate_progression_images
from hccomics.dnb.joint import compare_key_states, image_features, join_features, key_states
from hccomics.errors import DataValidationError, OptionError

CRITICAL = "low_grade_dysplastic_nodule"


@pytest.fixture(scope="module")
def series(tmp_path_factory: pytest.TempPathFactory) -> tuple[ad.AnnData, dict[str, Path]]:
    expr, samples, truth = simulate_progression([f"G{i}" for i in range(400)], n_features=60, module_size=10,
                                                samples_per_stage=(4, 4), critical_stage=CRITICAL,
                                                rng=np.random.default_rng(0))
    out = tmp_path_factory.mktemp("prog")
    records, _ = simulate_progression_images(samples, critical_stage=CRITICAL, out_dir=out, size=16, spacing_mm=1.5,
                                             rng=np.random.default_rng(1))
    genes = ad.AnnData(expr, obs=samples[["stage", "stage_index"]])
    genes.uns["stages"] = truth["stages"]
    return genes, {r["sample_id"]: out / r["path"] for r in records}


def test_autoencoder_features_deterministic(series) -> None:
    _, paths = series
    arrays = {sid: nib.load(p).get_fdata() for sid, p in list(paths.items())[:12]}
    first = image_features(arrays, n_features=4, epochs=3, seed=0, device="cpu", progress=False)
    again = image_features(arrays, n_features=4, epochs=3, seed=0, device="cpu", progress=False)
    other = image_features(arrays, n_features=4, epochs=3, seed=1, device="cpu", progress=False)
    assert first.shape == (12, 4) and list(first.index) == list(arrays)
    assert list(first.columns) == ["ae1", "ae2", "ae3", "ae4"]
    pd.testing.assert_frame_equal(first, again)
    assert not np.allclose(first.to_numpy(), other.to_numpy())
    info = first.attrs["hccomics"]
    assert info["method"] == "autoencoder" and info["device"] == "cpu" and info["train_seconds"] > 0


def test_autoencoder_pads_odd_sizes() -> None:
    imgs = np.random.default_rng(0).normal(size=(4, 20, 20))
    assert image_features(imgs, n_features=2, epochs=1, batch_size=2, device="cpu", progress=False).shape == (4, 2)


def test_pca_features_from_paths(series) -> None:
    _, paths = series
    files = [str(p) for p in paths.values()]
    f = image_features(files, method="pca", n_features=5, seed=0)
    assert f.shape == (len(files), 5) and list(f.index) == list(paths)  # ids are the file stems
    pd.testing.assert_frame_equal(f, image_features(files, method="pca", n_features=5, seed=0))
    with pytest.raises(OptionError, match="did you mean 'pca'"):
        image_features(files, method="pcaa")
    with pytest.raises(DataValidationError, match="differ in shape"):
        image_features([np.zeros((16, 16)), np.zeros((8, 8))], method="pca", n_features=1)


def test_join_features_zscores_against_reference(series) -> None:
    genes, paths = series
    f = image_features(paths, method="pca", n_features=3)
    joint = join_features(genes, f.iloc[::-1])  # rows matched by sample id, not position
    assert joint.n_vars == genes.n_vars + 3 and list(joint.var_names[-3:]) == ["img:pc1", "img:pc2", "img:pc3"]
    assert (joint.var["modality"] == "image").sum() == 3
    pd.testing.assert_frame_equal(joint.obs, genes.obs)
    ref = joint.X[(genes.obs["stage"] == "normal").to_numpy()]
    np.testing.assert_allclose(ref.mean(axis=0), 0, atol=1e-10)
    np.testing.assert_allclose(ref.std(axis=0, ddof=1), 1, rtol=1e-10)
    img_col = f.loc[genes.obs_names, "pc2"]
    ref_img = img_col[(genes.obs["stage"] == "normal").to_numpy()]
    np.testing.assert_allclose(joint[:, "img:pc2"].X.ravel(), (img_col - ref_img.mean()) / ref_img.std(ddof=1))
    with pytest.raises(DataValidationError, match="no image features"):
        join_features(genes, f.iloc[1:])


def test_key_states_and_comparison(series) -> None:
    genes, paths = series
    joint = join_features(genes, image_features(paths, method="pca", n_features=4))
    labels = key_states(joint)
    assert labels.nunique() == 6 and labels.index.equals(joint.obs_names)
    hier = key_states(joint, n_states=3, method="hierarchical", features=["img:pc1", "img:pc2"])
    assert hier.nunique() == 3
    table = compare_key_states(genes, joint)
    assert list(table.index) == ["genes", "joint"]
    assert table["ari"].between(-1, 1).all() and table.loc["joint", "n_features"] == genes.n_vars + 4
    module = list(genes.var_names[:10])
    small = compare_key_states(genes, joint, features=module)
    assert small.loc["genes", "n_features"] == 10 and small.loc["joint", "n_features"] == 14
    assert small["ari"].between(-1, 1).all()
