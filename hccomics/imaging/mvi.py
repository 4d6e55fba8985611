"""MVI prediction from radiomics: saved repeated folds, AUC with bootstrap CIs, and the ring-width comparison.

Every model of the MVI notebooks (radiomics per ring width, the CNNs) uses the same saved folds
(:func:`mvi_folds`), so that their out-of-fold predictions compare patient by patient (paired bootstrap).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from hccomics.errors import DataValidationError

__all__ = [
    "CLINICAL_INPUTS", "EXPERT_FEATURES", "auc_ci", "auc_rows", "compare_auc", "model_table", "mvi_folds", "mvi_targets",
    "radiomics_oof", "ring_width_comparison", "roc_points",
]

log = logging.getLogger(__name__)


def _labels(y: pd.Series) -> pd.Series:
    y = pd.Series(y).dropna()
    return pd.Series(_binary(y.to_numpy()), index=y.index, name=y.name)


def _binary(y: Sequence) -> np.ndarray:
    """0/1 labels of both classes as an array (the input of :func:`auc_rows`)."""
    yy = np.asarray(y)
    values = set(np.unique(yy).tolist())
    if not values <= {0, 1} or len(values) < 2:
        raise DataValidationError(f"expected binary labels (0/1) with both classes; found values {sorted(values)}")
    return yy.astype(int)


def auc_rows(y: np.ndarray, score: np.ndarray) -> np.ndarray:
    """ROC AUC of each row of ``score`` against the 0/1 labels ``y`` of the same shape; NaN for a one-class row.

    The Mann-Whitney form with mid-ranks for ties, which equals ``sklearn.metrics.roc_auc_score`` row by row. Written
    here because sklearn scores one sample per call, and its input checks cost about a millisecond each: the 1000
    bootstrap resamples of every model were most of notebook 05's ring-width comparison.

    Examples
    --------
    >>> auc_rows(np.array([[0, 0, 1, 1], [1, 1, 1, 1]]), np.array([[0.1, 0.4, 0.35, 0.8], [0.1, 0.2, 0.3, 0.4]]))
    array([0.75,  nan])
    """
    from scipy.stats import rankdata

    y, score = np.atleast_2d(y), np.atleast_2d(np.asarray(score, dtype=float))
    if not np.isfinite(score).all():
        raise DataValidationError("scores hold NaN or infinite values; an AUC needs a finite score per patient")
    positive = y == 1
    n1 = positive.sum(axis=-1)
    n0 = y.shape[-1] - n1
    u = np.where(positive, rankdata(score, axis=-1), 0.0).sum(axis=-1) - n1 * (n1 + 1) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((n1 > 0) & (n0 > 0), u / (n1 * n0), np.nan)


def mvi_folds(y: pd.Series, *, n_splits: int = 5, n_repeats: int = 3, seed: int = 0) -> pd.DataFrame:
    """Repeated stratified k-fold assignment: one row per patient and repeat with its held-out ``fold``.

    Patients with a missing label are left out. Save the table with the run so that every model uses it.

    Examples
    --------
    >>> y = pd.Series([0, 1] * 10, index=[f"P{i}" for i in range(20)])
    >>> f = mvi_folds(y, n_splits=5, n_repeats=2)
    >>> f.shape, sorted(f["fold"].unique().tolist())
    ((40, 3), [0, 1, 2, 3, 4])
    """
    from sklearn.model_selection import StratifiedKFold

    y = _labels(y)
    if int(y.value_counts().min()) < n_splits:
        raise DataValidationError(f"the rarer class has {int(y.value_counts().min())} patients, fewer than n_splits="
                                  f"{n_splits}; lower n_splits")
    rows = []
    for r in range(n_repeats):
        skf = StratifiedKFold(n_splits, shuffle=True, random_state=seed + r)
        for k, (_, test) in enumerate(skf.split(np.zeros(len(y)), y.to_numpy())):
            rows += [{"patient_id": str(y.index[i]), "repeat": r, "fold": k} for i in test]
    return pd.DataFrame(rows).sort_values(["repeat", "patient_id"], ignore_index=True)


def auc_ci(y: Sequence[int], score: Sequence[float], *, n_boot: int = 1000, seed: int = 0) -> dict:
    """ROC AUC with a percentile bootstrap 95 % CI over patients.

    Examples
    --------
    >>> auc_ci([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], n_boot=100)["estimate"]
    0.75
    """
    from hccomics.survival.metrics import bootstrap_ci

    yy, ss = _binary(y), np.asarray(score, dtype=float)
    # a resample holding one class has no AUC (NaN), and bootstrap_ci skips it
    return bootstrap_ci(lambda idx: auc_rows(yy[idx], ss[idx]), len(yy), n_boot=n_boot, seed=seed, batched=True)


def compare_auc(y: Sequence[int], score_a: Sequence[float], score_b: Sequence[float], *, n_boot: int = 1000,
                seed: int = 0) -> dict:
    """Paired bootstrap of the AUC difference ``b - a`` on the same patients.

    Examples
    --------
    >>> d = compare_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], [0.1, 0.2, 0.7, 0.8], n_boot=100)
    >>> d["auc_a"], d["auc_b"], d["estimate"]
    (0.75, 1.0, 0.25)"""
    from hccomics.survival.metrics import bootstrap_ci

    yy, a, b = _binary(y), np.asarray(score_a, dtype=float), np.asarray(score_b, dtype=float)
    out = bootstrap_ci(lambda idx: auc_rows(yy[idx], b[idx]) - auc_rows(yy[idx], a[idx]), len(yy), n_boot=n_boot,
                       seed=seed, batched=True)
    out["auc_a"], out["auc_b"] = float(auc_rows(yy, a)[0]), float(auc_rows(yy, b)[0])
    return out


def radiomics_oof(X: pd.DataFrame, y: pd.Series, folds: pd.DataFrame, *, Cs: int = 8, inner_splits: int = 3) -> pd.DataFrame:
    """Out-of-fold MVI probabilities of an L2 logistic regression on ``X``, one column per repeat.

    Missing values are imputed with training-fold medians, features standardised on the training fold, and
    the penalty chosen by an inner stratified CV on the training fold (``LogisticRegressionCV``, log loss: AUC
    saturates when classes separate, and then cannot choose).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> y = pd.Series([0, 1] * 20, index=[f"P{i}" for i in range(40)])
    >>> X = pd.DataFrame({"signal": y + rng.normal(0, 0.3, 40), "noise": rng.normal(size=40)}, index=y.index)
    >>> oof = radiomics_oof(X, y, mvi_folds(y, n_splits=4, n_repeats=1))
    >>> oof.shape, bool(oof[0].notna().all())
    ((40, 1), True)
    """
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    y = _labels(y)
    X = X.reindex(y.index)
    out = pd.DataFrame(index=y.index, columns=sorted(folds["repeat"].unique()), dtype=float)
    for r, rep in folds.groupby("repeat"):
        fold_of = rep.set_index("patient_id")["fold"].reindex(y.index.astype(str))
        for k in sorted(rep["fold"].unique()):
            test = (fold_of == k).to_numpy()
            y_train = y.to_numpy()[~test]
            if len(np.unique(y_train)) < 2:
                log.warning("repeat %s fold %s: the training patients hold one class; no prediction for the fold", r, k)
                continue
            inner = min(inner_splits, int(np.bincount(y_train, minlength=2).min()))
            # a training fold too small for an inner CV keeps the default penalty (said in the log)
            clf = LogisticRegressionCV(Cs=Cs, cv=inner, scoring="neg_log_loss", max_iter=5000, l1_ratios=(0.0,),
                                       use_legacy_attributes=False) if inner >= 2 else LogisticRegression(max_iter=5000)
            if inner < 2:
                log.info("repeat %s fold %s: too few patients of a class for an inner CV; C = 1", r, k)
            model = make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler(), clf)
            model.fit(X.to_numpy()[~test], y_train)
            out.loc[test, r] = model.predict_proba(X.to_numpy()[test])[:, 1]
    return out


def ring_width_comparison(
    img,
    y: pd.Series,
    *,
    folds: pd.DataFrame,
    modality: str = "ct",
    families: Sequence[str] = ("cnr", "first_order", "texture"),
    n_boot: int = 1000,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """MVI AUC of a radiomics model on each region alone (tumour, then each ring width), on the same folds.

    Parameters
    ----------
    img
        Patient-level features from :func:`hccomics.imaging.aggregate_lesions` (index lesion).
    y
        MVI (0/1) per patient; patients without the modality's images are left out.
    folds
        :func:`mvi_folds` table.
    modality, families
        Which modality's features (``"ct"`` or ``"mri"``) and feature families per region.

    Returns
    -------
    table : pandas.DataFrame
        One row per region: ``region``, ``width_mm`` (0 for the tumour), ``n_features``, ``auc`` (of the
        repeat-averaged out-of-fold probability) with ``auc_low`` / ``auc_high`` (bootstrap 95 %),
        ``auc_repeat_mean`` and ``auc_repeat_sd`` over repeats, ``log_loss`` and ``brier`` (means over repeats),
        ``n_patients``, ``n_positive``, and ``best``: the highest AUC, ties broken by the lower log loss (AUC
        saturates at 1 when classes separate, as the demo cohort's planted band does from 4 mm on).

    Examples
    --------
    >>> table, oof = ring_width_comparison(img, clinical["mvi"], folds=mvi_folds(clinical["mvi"]))  # doctest: +SKIP
    >>> table[["region", "auc", "auc_low", "auc_high", "best"]]  # doctest: +SKIP
    oof : pandas.DataFrame
        Repeat-averaged out-of-fold probability per patient (rows) and region (columns).
    """
    from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

    from hccomics._options import check_option

    var = img.var
    mod = check_option("modality", modality.lower(), ("ct", "mri"))
    for fam in families:
        check_option("families", fam, ("cnr", "first_order", "texture", "shape"))
    has = img.obs.get(f"has_{mod}")
    if has is None:
        raise DataValidationError(f"img has no obs['has_{mod}']: pass the output of aggregate_lesions with {mod} features")
    patients = img.obs_names[has.to_numpy(dtype=bool)]
    yy = _labels(pd.Series(y).reindex(patients))
    X_all = pd.DataFrame(img.X, index=img.obs_names, columns=img.var_names).loc[yy.index]
    regions = var.loc[(var["modality"].str.lower() == mod) & var["region"].str.len().gt(0), ["region", "width_mm"]]
    regions = regions[~var.loc[regions.index, "family"].isin(["shape", "summary", "liver"])].drop_duplicates()
    regions = regions.sort_values("width_mm")
    rows, oof = [], {}
    for region, width in regions.itertuples(index=False):
        cols = var.index[(var["modality"].str.lower() == mod) & (var["region"] == region) & var["family"].isin(families)]
        if not len(cols):
            continue
        p = radiomics_oof(X_all[cols], yy, folds[folds["patient_id"].isin(yy.index)])
        per_repeat = [roc_auc_score(yy, p[c]) for c in p.columns]
        mean_p = p.mean(axis=1)
        ci = auc_ci(yy, mean_p, n_boot=n_boot, seed=seed)
        rows.append({"region": region, "width_mm": float(width), "n_features": len(cols), "auc": ci["estimate"],
                     "auc_low": ci["low"], "auc_high": ci["high"], "auc_repeat_mean": float(np.mean(per_repeat)),
                     "auc_repeat_sd": float(np.std(per_repeat)),
                     "log_loss": float(np.mean([log_loss(yy, p[c].clip(1e-6, 1 - 1e-6)) for c in p.columns])),
                     "brier": float(np.mean([brier_score_loss(yy, p[c]) for c in p.columns])), "n_patients": len(yy), "n_positive": int(yy.sum())})
        oof[region] = mean_p
    table = pd.DataFrame(rows)
    if len(table):
        # AUC saturates at 1 on strongly separated classes; the out-of-fold log loss breaks ties
        best = table.sort_values(["auc", "log_loss"], ascending=[False, True]).index[0]
        table["best"] = table.index == best
    table.attrs["params"] = {"modality": mod, "families": list(families), "n_boot": n_boot, "seed": seed}
    return table, pd.DataFrame(oof)


def roc_points(y: pd.Series, scores: dict[str, pd.Series]) -> pd.DataFrame:
    """ROC curve points per model (each on the patients it scored): ``model``, ``fpr``, ``tpr``, ``threshold``.

    Examples
    --------
    >>> y = pd.Series([0, 0, 1, 1], index=list("abcd"))
    >>> roc_points(y, {"m": pd.Series([0.1, 0.4, 0.35, 0.8], index=list("abcd"))})["tpr"].tolist()
    [0.0, 0.5, 0.5, 1.0, 1.0]"""
    from sklearn.metrics import roc_curve

    frames = []
    for name, s in scores.items():
        s = s.dropna()
        yy = _labels(pd.Series(y).reindex(s.index))
        fpr, tpr, thr = roc_curve(yy, s.loc[yy.index])
        frames.append(pd.DataFrame({"model": name, "fpr": fpr, "tpr": tpr, "threshold": thr}))
    return pd.concat(frames, ignore_index=True)


def model_table(y: pd.Series, scores: dict[str, pd.Series], *, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """AUC with its 95 % bootstrap CI for every model, each on the patients it scored (rows in the given order).

    A model whose patients hold one class only gets NaN (logged), not an error.

    Examples
    --------
    >>> y = pd.Series([0, 0, 1, 1], index=list("abcd"))
    >>> t = model_table(y, {"m": pd.Series([0.1, 0.4, 0.35, 0.8], index=list("abcd"))}, n_boot=50)
    >>> t[["model", "auc", "n_patients", "n_positive"]].to_dict("records")
    [{'model': 'm', 'auc': 0.75, 'n_patients': 4, 'n_positive': 2}]
    """
    rows = []
    for name, s in scores.items():
        s = s.dropna()
        yy = pd.Series(y).reindex(s.index).dropna()
        if yy.nunique() < 2:
            log.warning("%s: its %d patients hold one MVI class; no AUC", name, len(yy))
            rows.append({"model": name, "auc": np.nan, "auc_low": np.nan, "auc_high": np.nan, "n_patients": len(yy),
                         "n_positive": int(yy.sum())})
            continue
        yy = _labels(yy)
        ci = auc_ci(yy, s.loc[yy.index], n_boot=n_boot, seed=seed)
        rows.append({"model": name, "auc": ci["estimate"], "auc_low": ci["low"], "auc_high": ci["high"],
                     "n_patients": len(yy), "n_positive": int(yy.sum())})
    return pd.DataFrame(rows)


#: interpretable features of the expert-guided model, as read from the images by the feature engine
EXPERT_FEATURES = ("margin_irregularity", "peritumoral_enhancement", "capsule")
#: clinical inputs of the deep + clinical model
CLINICAL_INPUTS = ("log_afp", "diameter_mm", "lesion_count")


def mvi_targets(img, clinical: pd.DataFrame, *, widths: Sequence[float], patients: Sequence[str] | None = None) -> pd.DataFrame:
    """Targets and inputs of the MVI networks per patient (rows with an MVI label only).

    ``mvi``; ``high_grade`` (Edmondson III-IV); the expert features, standardised over the patients (no outcome
    used): ``margin_irregularity`` (radial CV of the tumour surface), ``peritumoral_enhancement`` (mean arterial
    CNR of the CT ring shells) and ``capsule`` (delayed-phase CNR of the first ring); clinical inputs ``log_afp``
    (log10 AFP, ng/mL), ``diameter_mm`` and ``lesion_count``.

    Examples
    --------
    >>> y = mvi_targets(img, clinical, widths=(2, 4, 6, 8, 10))  # doctest: +SKIP
    >>> y.columns.tolist()  # doctest: +SKIP
    ['mvi', 'high_grade', 'log_afp', 'diameter_mm', 'lesion_count', 'margin_irregularity', 'peritumoral_enhancement', 'capsule']
    """
    X = pd.DataFrame(img.X, index=img.obs_names, columns=img.var_names)
    rings = [f"ct_arterial_ring_{w:g}mm_cnr" for w in widths]
    needed = ["ct_shape_radial_cv", *rings, f"ct_delayed_ring_{widths[0]:g}mm_cnr"]
    missing = [c for c in needed if c not in X.columns]
    if missing:
        raise DataValidationError(f"img lacks CT features {missing[:5]}; build it with lesion_features on CT with these widths")
    expert = pd.DataFrame({"margin_irregularity": X["ct_shape_radial_cv"], "peritumoral_enhancement": X[rings].mean(axis=1),
                           "capsule": X[f"ct_delayed_ring_{widths[0]:g}mm_cnr"]})
    expert = (expert - expert.mean()) / expert.std()
    pids = list(patients) if patients is not None else list(img.obs_names)
    grade = clinical["edmondson_grade"]
    y = pd.DataFrame({"mvi": clinical["mvi"], "high_grade": (grade >= 3).astype(float).where(grade.notna()),
                      "log_afp": np.log10(clinical["afp_ng_ml"].clip(lower=1)), "diameter_mm": clinical["tumour_diameter_mm"],
                      "lesion_count": clinical["lesion_count"]}).reindex(pids).join(expert)
    return y[y["mvi"].notna()]
