"""PCA and neighbourhood graph of variance-stabilised expression, through scanpy."""

from __future__ import annotations

from typing import Any

import numpy as np

from hccomics.errors import DataValidationError

__all__ = ["embed"]


def embed(data: Any, *, layer: str = "vst", n_comps: int = 30, n_neighbors: int = 15, modality: str = "rna",
          seed: int = 0) -> None:
    """PCA (``obsm['X_pca']``, ``uns['pca']``) and kNN graph (``obsp``) of ``layers[layer]`` via scanpy.

    The layer is centred, not scaled, as for DESeq2's ``plotPCA``; the number of components is
    capped by the data's size.
    """
    import scanpy as sc

    adata = data[modality] if type(data).__name__ == "MuData" else data
    if layer not in adata.layers:
        raise DataValidationError(f"no layer '{layer}'; run hccomics.omics.variance_stabilize first")
    n_comps = int(min(n_comps, adata.n_obs - 1, adata.n_vars - 1))
    x = np.asarray(adata.layers[layer], dtype=np.float32)
    tmp = adata.copy()
    tmp.X = x
    sc.pp.pca(tmp, n_comps=n_comps, zero_center=True, random_state=seed)
    sc.pp.neighbors(tmp, n_neighbors=min(n_neighbors, adata.n_obs - 1), use_rep="X_pca", random_state=seed)
    adata.obsm["X_pca"] = tmp.obsm["X_pca"]
    adata.varm["PCs"] = tmp.varm["PCs"]
    adata.uns["pca"] = {**tmp.uns["pca"], "params": {**tmp.uns["pca"].get("params", {}), "layer": layer}}
    adata.obsp["distances"], adata.obsp["connectivities"] = tmp.obsp["distances"], tmp.obsp["connectivities"]
    adata.uns["neighbors"] = tmp.uns["neighbors"]
