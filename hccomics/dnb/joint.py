"""Joint gene + image features for DNB analysis, and key states found without stage labels.

Image features are learnt from the images alone (no stage, no expression), so that a DNB module
that picks them up is not circular; they are then z-scored against the reference stage together
with the genes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from anndata import AnnData

from hccomics._options import check_option
from hccomics.dnb import _ssn
from hccomics.dnb._image_model import load_images, train_autoencoder
from hccomics.errors import DataValidationError

__all__ = ["compare_key_states", "image_features", "join_features", "key_states"]

logger = logging.getLogger(__name__)
IMAGE_PREFIX = "img:"


def image_features(
    images: Mapping[str, str | Path | np.ndarray] | Sequence[str | Path | np.ndarray] | np.ndarray | pd.Series,
    *,
    method: Literal["autoencoder", "pca"] = "autoencoder",
    n_features: int = 16,
    epochs: int = 100,
    batch_size: int = 16,
    lr: float = 1e-3,
    seed: int = 0,
    device: str = "auto",
    progress: bool = True,
) -> pd.DataFrame:
    """Learn image features of the progression samples from the images alone (no stage labels).

    Intensities are standardised with one mean and SD over all pixels of all images (so
    differences in contrast between samples are kept). ``"autoencoder"`` trains MONAI's
    :class:`~monai.networks.nets.VarAutoEncoder` (three stride-2 levels, ``norm=None``) on
    reconstruction (MSE plus a ``1e-3``-weighted KL term) and returns the posterior means;
    images are edge-padded to a multiple of 8. ``"pca"`` returns scikit-learn PCA scores of
    the flattened images. Both are deterministic for a seed on the CPU.

    Parameters
    ----------
    images
        NIfTI paths (ids: file names without ``.nii.gz``), 2-D/3-D arrays, a stacked array
        (samples first), or a mapping / Series sample id -> path or array. All of one shape.
    method
        ``"autoencoder"`` or ``"pca"``.
    n_features
        Latent size or number of principal components.
    epochs, batch_size, lr
        Autoencoder training (Adam).
    seed
        Seeds weight initialisation, the reparameterisation noise and batch order (through a
        forked torch generator: the global state is untouched), and PCA.
    device
        ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"mps"`` (autocast bfloat16 on CUDA).
    progress
        Show a progress bar over epochs.

    Returns
    -------
    Samples x features (``ae1``... or ``pc1``...), indexed by sample id; ``.attrs["hccomics"]``
    records the method, parameters, training time and losses.

    Examples
    --------
    >>> import numpy as np
    >>> imgs = np.random.default_rng(0).normal(size=(6, 16, 16))
    >>> image_features(imgs, method="pca", n_features=3).shape
    (6, 3)
    """
    check_option("method", method, ("autoencoder", "pca"))
    ids, x = load_images(images)
    if not (isinstance(n_features, int | np.integer) and n_features >= 1):
        raise DataValidationError(f"n_features must be a positive integer, got {n_features!r}")
    sd = float(x.std())
    x = (x - float(x.mean())) / (sd if sd > 0 else 1.0)
    if method == "pca":
        from sklearn.decomposition import PCA

        if n_features > min(x.shape[0], x[0].size):
            raise DataValidationError(f"PCA gives at most min(samples, pixels) = {min(x.shape[0], x[0].size)} "
                                      f"components; lower n_features (got {n_features})")
        pca = PCA(n_components=n_features, svd_solver="full", random_state=seed)
        values = pca.fit_transform(x.reshape(x.shape[0], -1)).astype(np.float64)
        info = {"explained_variance_ratio": pca.explained_variance_ratio_.round(6).tolist()}
        columns = [f"pc{k + 1}" for k in range(n_features)]
    else:
        if not (isinstance(epochs, int | np.integer) and epochs >= 1):
            raise DataValidationError(f"epochs must be a positive integer, got {epochs!r}")
        values, info = train_autoencoder(x, n_features, epochs=int(epochs), batch_size=int(batch_size), lr=lr, seed=seed,
                                    device=device, progress=progress)
        columns = [f"ae{k + 1}" for k in range(n_features)]
        logger.info("image autoencoder: %d epochs in %.1f s, MSE %.4f -> %.4f", epochs, info["train_seconds"],
                    info["first_mse"], info["final_mse"])
    table = pd.DataFrame(values, index=pd.Index(ids, name="sample_id"), columns=columns)
    table.attrs["hccomics"] = {"method": method, "n_features": int(n_features), "seed": seed, "epochs": int(epochs),
                               "intensity": "one mean / SD over all pixels of all images", **info}
    return table


def _zscore_against_reference(x: np.ndarray, is_ref: np.ndarray, names: list[str], what: str) -> np.ndarray:
    ref = x[is_ref]
    mean, sd = ref.mean(axis=0), ref.std(axis=0, ddof=1)
    flat = [n for n, s in zip(names, sd) if not s > 0]
    if flat:
        raise DataValidationError(f"{len(flat)} {what} feature(s) do not vary in the reference stage "
                                  f"(first: {flat[:5]}); drop them before joining")
    return (x - mean) / sd


def join_features(
    genes: AnnData,
    images: pd.DataFrame,
    *,
    stage_key: str = "stage",
    reference_stage: str | None = None,
    stage_order: Sequence[str] | None = None,
    layer: str | None = None,
    image_prefix: str = IMAGE_PREFIX,
) -> AnnData:
    """Join gene and image features, each z-scored against the reference stage's samples.

    Every feature ``f`` becomes ``(f - mean_ref(f)) / sd_ref(f)`` (SD with ``ddof=1``) using the
    reference stage only, so the reference is centred at 0 with SD 1 and later stages show
    their shift and spread on one scale. Image features are matched to samples by sample id
    and renamed ``f"{image_prefix}{name}"``; ``var["modality"]`` says ``"gene"`` or ``"image"``.

    Parameters
    ----------
    genes
        Samples x genes with ``obs[stage_key]``.
    images
        Samples x image features (e.g. from :func:`image_features`), indexed by sample id;
        every sample of ``genes`` must be present.
    stage_key, reference_stage, stage_order, layer
        As in :func:`~hccomics.dnb.single_sample.single_sample`.
    image_prefix
        Prefix of the image feature names.

    Returns
    -------
    A new AnnData (same obs), with the parameters in ``uns["join_features"]``.

    Examples
    --------
    >>> import anndata as ad, numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> a = ad.AnnData(rng.normal(size=(8, 3)), obs=pd.DataFrame({"stage": ["a"] * 4 + ["b"] * 4},
    ...     index=[f"s{k}" for k in range(8)]))
    >>> img = pd.DataFrame(rng.normal(size=(8, 2)), index=a.obs_names, columns=["ae1", "ae2"])
    >>> j = join_features(a, img)
    >>> list(j.var_names[-2:]), np.allclose(j.X[:4].mean(axis=0), 0)
    (['img:ae1', 'img:ae2'], True)
    """
    stages = _ssn.resolve_stages(genes.obs, stage_key, stage_order, dict(genes.uns))
    ref_stage = _ssn.check_reference_stage(stages, reference_stage)
    if not isinstance(images, pd.DataFrame):
        raise DataValidationError(f"images must be a samples x features DataFrame, got {type(images).__name__}")
    index = images.index.astype(str)
    missing = [s for s in genes.obs_names.astype(str) if s not in set(index)]
    if missing:
        raise DataValidationError(f"{len(missing)} sample(s) have no image features (first: {missing[:5]}); image "
                                  "feature rows must be indexed by the same sample ids as genes.obs_names")
    img = images.set_axis(index).loc[genes.obs_names.astype(str)].apply(pd.to_numeric, errors="coerce")
    if not np.isfinite(img.to_numpy(float)).all():
        raise DataValidationError("image features hold missing or non-numeric values; fix them before joining")
    is_ref = (genes.obs[stage_key].astype(str) == ref_stage).to_numpy()
    if is_ref.sum() < 2:
        raise DataValidationError(f"the reference stage {ref_stage!r} has {int(is_ref.sum())} sample(s); "
                                  "z-scoring needs at least 2")
    gene_names = [str(v) for v in genes.var_names]
    img_names = [f"{image_prefix}{c}" for c in img.columns]
    gx = _zscore_against_reference(_ssn.matrix(genes, layer), is_ref, gene_names, "gene")
    ix = _zscore_against_reference(img.to_numpy(float), is_ref, img_names, "image")
    var = pd.DataFrame({"modality": ["gene"] * len(gene_names) + ["image"] * len(img_names)},
                       index=gene_names + img_names)
    if var.index.duplicated().any():
        raise DataValidationError(f"image feature names clash with gene names: {list(var.index[var.index.duplicated()])[:5]}"
                                  "; pass another image_prefix")
    joint = AnnData(np.hstack([gx, ix]), obs=genes.obs.copy(), var=var)
    joint.uns["join_features"] = {"stage_key": stage_key, "reference_stage": ref_stage, "n_reference": int(is_ref.sum()),
                                  "scaling": "z-score against the reference stage (ddof=1)",
                                  "n_genes": len(gene_names), "n_image_features": len(img_names),
                                  "image_features": images.attrs.get("hccomics", {}).get("method", "user")}
    if "stages" in genes.uns:
        joint.uns["stages"] = list(genes.uns["stages"])
    return joint


def key_states(
    adata: AnnData,
    *,
    n_states: int | None = None,
    features: Sequence[str] | None = None,
    stage_key: str = "stage",
    balance_modalities: bool = True,
    method: Literal["kmeans", "hierarchical"] = "kmeans",
    seed: int = 0,
) -> pd.Series:
    """Cluster samples into key states from their features alone (stages are never used to cluster).

    Parameters
    ----------
    adata
        Samples x features, best z-scored against a reference (:func:`join_features`).
    n_states
        Number of clusters; default the number of stages in ``obs[stage_key]`` (only counted).
    features
        Features to cluster on (e.g. a DNB module plus image features); default all.
    balance_modalities
        When ``var["modality"]`` exists, weight each modality's features by
        ``1 / sqrt(its number of features)`` so that every modality has the same total weight
        (otherwise 1,000 genes drown 16 image features).
    method
        ``"kmeans"`` (scikit-learn, 10 starts) or ``"hierarchical"`` (Ward linkage).
    seed
        k-means initialisation.

    Returns
    -------
    Integer cluster labels indexed by sample, named ``"key_state"``.

    Examples
    --------
    >>> import anndata as ad, numpy as np, pandas as pd
    >>> x = np.r_[np.zeros((3, 2)), np.ones((3, 2)) * 5] + np.random.default_rng(0).normal(0, 0.1, (6, 2))
    >>> a = ad.AnnData(x, obs=pd.DataFrame({"stage": list("aaabbb")}, index=list("uvwxyz")))
    >>> key_states(a).tolist()
    [1, 1, 1, 0, 0, 0]
    """
    check_option("method", method, ("kmeans", "hierarchical"))
    sub = adata
    if features is not None:
        names = [str(f) for f in features]
        missing = [f for f in names if f not in set(adata.var_names.astype(str))]
        if missing:
            raise DataValidationError(f"{len(missing)} feature(s) are not in var_names (first: {missing[:5]})")
        sub = adata[:, names]
    if n_states is None:
        if stage_key not in adata.obs.columns:
            raise DataValidationError(f"n_states=None counts the stages in obs[{stage_key!r}], which is missing; "
                                      "pass n_states=")
        n_states = int(adata.obs[stage_key].astype(str).nunique())
    if not (isinstance(n_states, int | np.integer) and 2 <= n_states < adata.n_obs):
        raise DataValidationError(f"n_states must be an integer from 2 to n_samples - 1, got {n_states!r}")
    x = _ssn.matrix(sub, None)
    if balance_modalities and "modality" in sub.var.columns:
        mod = sub.var["modality"].astype(str).to_numpy()
        counts = pd.Series(mod).value_counts()
        x = x / np.sqrt(counts.reindex(mod).to_numpy(float))[None, :]
    if method == "kmeans":
        from sklearn.cluster import KMeans

        labels = KMeans(n_clusters=int(n_states), n_init=10, random_state=seed).fit_predict(x)
    else:
        from sklearn.cluster import AgglomerativeClustering

        labels = AgglomerativeClustering(n_clusters=int(n_states), linkage="ward").fit_predict(x)
    return pd.Series(labels, index=adata.obs_names, name="key_state")


def compare_key_states(
    genes_adata: AnnData,
    joint_adata: AnnData,
    *,
    stage_key: str = "stage",
    reference_stage: str | None = None,
    n_states: int | None = None,
    features: Sequence[str] | None = None,
    method: Literal["kmeans", "hierarchical"] = "kmeans",
    image_prefix: str = IMAGE_PREFIX,
    seed: int = 0,
) -> pd.DataFrame:
    """Adjusted Rand index of key states against the true stages: genes alone vs genes + images.

    The gene space is ``genes_adata`` z-scored against the reference stage (as
    :func:`join_features` does), the joint space is ``joint_adata``. With ``features`` (e.g. a
    DNB module) the gene space uses those genes and the joint space those genes plus every
    image feature (names starting with ``image_prefix``). Clustering never sees the stages;
    they are only compared with the clusters (``sklearn.metrics.adjusted_rand_score``).

    Returns
    -------
    One row per space (``genes``, ``joint``) with ``ari``, ``n_features``, ``n_states``.

    Examples
    --------
    >>> import anndata as ad, numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> obs = pd.DataFrame({"stage": ["a"] * 5 + ["b"] * 5}, index=[f"s{k}" for k in range(10)])
    >>> g = ad.AnnData(rng.normal(size=(10, 4)), obs=obs)
    >>> img = pd.DataFrame({"ae1": np.r_[np.zeros(5), np.ones(5) * 9] + rng.normal(0, 1, 10)}, index=obs.index)
    >>> table = compare_key_states(g, join_features(g, img))
    >>> table["ari"].round(2).tolist()
    [-0.12, 1.0]
    """
    from sklearn.metrics import adjusted_rand_score

    if not genes_adata.obs_names.equals(joint_adata.obs_names):
        raise DataValidationError("genes_adata and joint_adata must hold the same samples in the same order")
    stages = _ssn.resolve_stages(genes_adata.obs, stage_key, None, dict(genes_adata.uns))
    ref_stage = _ssn.check_reference_stage(stages, reference_stage)
    is_ref = (genes_adata.obs[stage_key].astype(str) == ref_stage).to_numpy()
    gene_names = [str(v) for v in genes_adata.var_names]
    gz = AnnData(_zscore_against_reference(_ssn.matrix(genes_adata, None), is_ref, gene_names, "gene"),
                 obs=genes_adata.obs.copy(), var=pd.DataFrame(index=gene_names))
    img_names = [str(v) for v in joint_adata.var_names if str(v).startswith(image_prefix)]
    if not img_names:
        raise DataValidationError(f"joint_adata has no feature starting with {image_prefix!r}; build it with "
                                  "join_features or pass image_prefix=")
    gene_features = None if features is None else [str(f) for f in features if not str(f).startswith(image_prefix)]
    joint_features = None if features is None else gene_features + img_names
    truth = genes_adata.obs[stage_key].astype(str).to_numpy()
    rows = []
    for space, data, feats in (("genes", gz, gene_features), ("joint", joint_adata, joint_features)):
        labels = key_states(data, n_states=n_states, features=feats, stage_key=stage_key, method=method, seed=seed)
        rows.append({"space": space, "ari": float(adjusted_rand_score(truth, labels.to_numpy())),
                     "n_features": data.n_vars if feats is None else len(feats),
                     "n_states": int(labels.nunique())})
    return pd.DataFrame(rows).set_index("space")
