"""Tidy summaries of a loaded cohort."""

from __future__ import annotations

import pandas as pd

__all__ = ["cohort_summary", "layer_frame"]


def cohort_summary(mdata) -> pd.DataFrame:
    """One row per clinical variable: type, missing values and a short description of its distribution.

    Parameters
    ----------
    mdata
        A cohort from :func:`~hccomics.io.load_cohort`.

    Examples
    --------
    >>> import pandas as pd, mudata as md, anndata as ad, numpy as np
    >>> obs = pd.DataFrame({"age": [50, 60, 70], "sex": pd.Categorical(["M", "F", "M"])}, index=["a", "b", "c"])
    >>> m = md.MuData({"clinical": ad.AnnData(np.zeros((3, 0)), obs=obs)})
    >>> m.obs = obs
    >>> cohort_summary(m).loc["sex", "summary"]
    'M: 2 (67%), F: 1 (33%)'
    """
    rows = []
    for col in mdata.obs.columns:
        s = mdata.obs[col]
        n_missing = int(s.isna().sum())
        if isinstance(s.dtype, pd.CategoricalDtype) or s.dtype == object or s.nunique(dropna=True) <= 5:
            counts = s.value_counts(dropna=True)
            summary = ", ".join(f"{k}: {v} ({v / max(counts.sum(), 1):.0%})" for k, v in counts.items())
            kind = "categorical"
        else:
            v = pd.to_numeric(s, errors="coerce")
            summary = f"median {v.median():.3g} (IQR {v.quantile(0.25):.3g}-{v.quantile(0.75):.3g}), range {v.min():.3g}-{v.max():.3g}"
            kind = "numeric"
        rows.append({"variable": col, "kind": kind, "n_missing": n_missing, "summary": summary})
    return pd.DataFrame(rows).set_index("variable")


def layer_frame(adata, layer: str | None = None) -> pd.DataFrame:
    """Samples x genes DataFrame of ``adata.layers[layer]`` (``adata.X`` when ``layer`` is None), gene symbols as columns when known.

    Examples
    --------
    >>> import anndata as ad, numpy as np
    >>> a = ad.AnnData(np.eye(2, dtype=np.float32), var=pd.DataFrame(index=["IL6", "IL7"]))
    >>> layer_frame(a).columns.tolist()
    ['IL6', 'IL7']
    """
    import numpy as np

    x = adata.X if layer is None else adata.layers[layer]
    x = x.toarray() if hasattr(x, "toarray") else np.asarray(x)
    cols = adata.var["symbol"].astype(str).to_numpy() if "symbol" in adata.var else adata.var_names
    return pd.DataFrame(x, index=adata.obs_names, columns=cols)
