"""Honest evaluation of the fusion models: saved repeated stratified splits, out-of-fold predictions of every
model on the same folds, concatenation baselines, and tables of AUC / Harrell's C with paired bootstrap CIs."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from hccomics.errors import DataValidationError
from hccomics.graph.inputs import FusionInputs
from hccomics.graph.training import DegenerateFoldError

__all__ = [
    "ConcatBaseline",
    "FusionCVResult",
    "compare_fusion",
    "cross_validate_fusion",
    "fusion_models",
    "fusion_splits",
    "fusion_table",
    "model_kind",
    "oof_mean",
]

logger = logging.getLogger(__name__)


def fusion_splits(labels: pd.DataFrame, *, n_splits: int = 5, n_repeats: int = 2, seed: int = 0,
                  cnn_fold: pd.Series | None = None) -> pd.DataFrame:
    """Repeated stratified k-fold splits of the labelled patients: ``patient``, ``repeat``, ``fold`` (held out).

    Stratified by ``y`` (binary tasks) or ``event`` (survival). With ``cnn_fold`` (``img.obs['cnn_fold']`` of
    notebook 06), the first repeat keeps every imaged patient in the fold whose CNN held it out: the held-out
    patients' CNN outputs then all come from the one network that saw none of their MVI or grade labels.
    The training patients' CNN outputs come from the other fold networks, which did train on the held-out
    patients' MVI and grade (stacking on out-of-fold outputs): a mild leak into the training features that only a
    CNN retrained inside every graph fold would remove. The other patients are spread by stratified folds.
    Alignment needs as many CNN folds as ``n_splits``; otherwise it is skipped (logged).

    Examples
    --------
    >>> lab = pd.DataFrame({"y": [0, 1] * 10}, index=[f"p{i}" for i in range(20)])
    >>> s = fusion_splits(lab, n_splits=5, n_repeats=2)
    >>> s.groupby(["repeat", "fold"]).size().unique().tolist(), s.shape
    ([4], (40, 3))
    """
    from sklearn.model_selection import StratifiedKFold

    strat = labels["y"] if "y" in labels else labels["event"]
    counts = strat.value_counts()
    if len(counts) < 2 or counts.min() < n_splits:
        raise DataValidationError(f"{n_splits}-fold stratified splits need {n_splits} patients of each class "
                                  f"(have {counts.to_dict()})")
    rows = []
    for r in range(n_repeats):
        fold = pd.Series(-1, index=labels.index)
        rest = labels.index
        if r == 0 and cnn_fold is not None:
            cf = cnn_fold.reindex(labels.index)
            known = cf.notna() & (cf >= 0)
            if known.any() and int(cf[known].max()) + 1 != n_splits:
                logger.warning("cnn_fold has %d folds, the splits %d: the first repeat does not follow the CNN folds",
                               int(cf[known].max()) + 1, n_splits)
            else:
                fold[known] = cf[known].astype(int)
                rest = labels.index[~known.to_numpy()]
        if len(rest):
            k = min(n_splits, int(strat[rest].value_counts().min())) if strat[rest].nunique() == 2 else 0
            if k >= 2:
                skf = StratifiedKFold(n_splits=min(n_splits, k), shuffle=True, random_state=seed + r)
                for f, (_, te) in enumerate(skf.split(np.zeros(len(rest)), strat[rest])):
                    fold[rest[te]] = f
            else:
                rng = np.random.default_rng(seed + r)
                fold[rest] = rng.integers(0, n_splits, len(rest))
        rows.append(pd.DataFrame({"patient": labels.index, "repeat": r, "fold": fold.to_numpy()}))
    return pd.concat(rows, ignore_index=True)


class ConcatBaseline:
    """All chosen modalities concatenated (availability flags added) into a penalised linear model.

    Binary tasks: L2 logistic regression with the penalty chosen by inner stratified CV on log loss
    (``LogisticRegressionCV``). Survival: a near-ridge elastic-net Cox model (scikit-survival's Coxnet, ``l1_ratio``) with the penalty
    chosen by inner CV on Harrell's C. Missing values are imputed with training means and features standardised on the training
    patients.

    Examples
    --------
    >>> rng = np.random.default_rng(0); ids = [f"p{i}" for i in range(40)]
    >>> X = pd.DataFrame(rng.normal(size=(40, 3)), index=ids)
    >>> fi = FusionInputs({"a": X}, {"a": pd.DataFrame({"group": "x"}, index=X.columns)},
    ...                   pd.DataFrame({"a": True}, index=ids))
    >>> lab = pd.DataFrame({"y": (X[0] > 0).astype(int)}, index=ids)
    >>> bool(ConcatBaseline().fit(fi, lab, train=ids[:30]).predict(ids[30:]).corr(X[0][30:]) > 0.5)
    True
    """

    def __init__(self, *, modalities: Sequence[str] | None = None, task: str = "binary", Cs: int = 8,
                 l1_ratio: float = 0.05, inner_splits: int = 3, seed: int = 0) -> None:
        self.modalities, self.task, self.Cs, self.l1_ratio = modalities, task, Cs, l1_ratio
        self.inner_splits, self.seed = inner_splits, seed

    def get_params(self) -> dict:
        return {"modalities": self.modalities, "task": self.task, "Cs": self.Cs, "l1_ratio": self.l1_ratio,
                "inner_splits": self.inner_splits, "seed": self.seed}

    def clone(self, **changes) -> ConcatBaseline:
        """An unfitted copy with the same parameters (``changes`` override some)."""
        return ConcatBaseline(**{**self.get_params(), **changes})

    def _X(self, inputs: FusionInputs, train: pd.Index) -> pd.DataFrame:
        from hccomics.graph.builders import standardise

        mods = list(self.modalities) if self.modalities is not None else inputs.modalities
        parts = []
        for m in mods:
            Z, _ = standardise(inputs.blocks[m], train)
            parts.append(pd.DataFrame(Z, index=inputs.patients, columns=[f"{m}:{c}" for c in inputs.blocks[m].columns]))
        if len(mods) > 1:
            parts.append(inputs.available[mods].astype(float).add_prefix("has_"))
        self.modalities_ = mods
        return pd.concat(parts, axis=1)

    def fit(self, inputs: FusionInputs, labels: pd.DataFrame, *, train: Sequence[str] | pd.Index) -> ConcatBaseline:
        from hccomics._options import check_option

        check_option("task", self.task, ("binary", "cox"))
        train = pd.Index([str(p) for p in train])
        lab = labels.loc[labels.index.intersection(train)]
        X = self._X(inputs, train)
        if len(self.modalities_) == 1:
            lab = lab.loc[inputs.available.loc[lab.index, self.modalities_[0]].to_numpy(dtype=bool)]
        strat = lab["y"] if self.task == "binary" else lab["event"]
        if strat.nunique() < 2 or strat.value_counts().min() < 2:
            raise DegenerateFoldError(f"the training patients hold class counts {strat.value_counts().to_dict()}")
        self.X_ = X
        self.train_patients_ = pd.Index(lab.index)
        self.available_ = inputs.available[self.modalities_].all(axis=1)
        if self.task == "binary":
            from sklearn.linear_model import LogisticRegressionCV
            from sklearn.model_selection import StratifiedKFold

            cv = StratifiedKFold(min(self.inner_splits, int(lab["y"].value_counts().min())), shuffle=True,
                                 random_state=self.seed)
            self.model_ = LogisticRegressionCV(Cs=self.Cs, cv=cv, scoring="neg_log_loss", max_iter=2000, l1_ratios=(0.0,),
                                               use_legacy_attributes=False).fit(
                X.loc[lab.index], lab["y"])
        else:
            from sklearn.model_selection import StratifiedKFold
            from sksurv.linear_model import CoxnetSurvivalAnalysis

            from hccomics.survival._data import structured_y
            from hccomics.survival.metrics import harrell_c

            Xt = X.loc[lab.index].to_numpy()
            t, e = lab["duration"].to_numpy(dtype=float), lab["event"].to_numpy(dtype=bool)
            # near-ridge elastic net (coordinate descent over the whole penalty path): a Newton ridge Cox on
            # ~1,400 features took minutes per fold
            path = CoxnetSurvivalAnalysis(l1_ratio=self.l1_ratio, n_alphas=self.Cs * 2, alpha_min_ratio=0.01)
            alphas = _coxnet_path(path, Xt, structured_y(t, e)).alphas_
            cv = StratifiedKFold(min(self.inner_splits, int(np.bincount(e.astype(int), minlength=2).min())),
                                 shuffle=True, random_state=self.seed)
            scores = np.zeros(len(alphas))
            for tr, va in cv.split(Xt, e):
                f = _coxnet_path(CoxnetSurvivalAnalysis(l1_ratio=self.l1_ratio, alphas=alphas), Xt[tr],
                                 structured_y(t[tr], e[tr]))
                scores += [harrell_c(t[va], e[va], f.predict(Xt[va], alpha=a)) if a >= f.alphas_.min() else -np.inf
                           for a in alphas]
            best = int(np.argmax(scores))
            self.penalizer_ = float(alphas[best])
            # the path down to the chosen penalty (warm starts): a lone small alpha can overflow
            self.model_ = _coxnet_path(CoxnetSurvivalAnalysis(l1_ratio=self.l1_ratio, alphas=alphas[:best + 1]), Xt,
                                       structured_y(t, e))
            self.penalizer_ = max(self.penalizer_, float(self.model_.alphas_.min()))  # the path may have stopped early
        self.fitted_ = True
        return self

    def predict(self, patients: Sequence[str] | None = None) -> pd.Series:
        """Logit (binary) or log partial hazard (survival) per patient; NaN without the single modality."""
        from hccomics.errors import NotFittedError

        if not getattr(self, "fitted_", False):
            raise NotFittedError("this ConcatBaseline is not fitted yet; call fit(inputs, labels, train=...) first")
        X = self.X_ if patients is None else self.X_.loc[[str(p) for p in patients]]
        if self.task == "binary":
            out = pd.Series(self.model_.decision_function(X), index=X.index)
        else:
            out = pd.Series(self.model_.predict(X.to_numpy(), alpha=self.penalizer_), index=X.index)
        if len(self.modalities_) == 1:  # a single-modality baseline scores only the patients with the modality
            out[~self.available_.reindex(out.index).to_numpy(dtype=bool)] = np.nan
        return out


def _coxnet_path(model, X: np.ndarray, y: np.ndarray):
    """Fit a Coxnet path; when its smallest penalties overflow (sksurv's ArithmeticError), drop them and refit."""
    for _ in range(20):
        try:
            return model.fit(X, y)
        except ArithmeticError:
            if model.alphas is None:  # automatic path: stop it at larger penalties
                model.set_params(alpha_min_ratio=min(1.0, model.alpha_min_ratio * 3))
            elif len(model.alphas) > 1:
                model.set_params(alphas=model.alphas[: max(1, (3 * len(model.alphas)) // 4)])
            else:
                raise
    return model.fit(X, y)


@dataclass
class FusionCVResult:
    """Out-of-fold outputs (patients x repeats) of one model, with its fold models when kept."""

    oof: pd.DataFrame
    params: dict = field(default_factory=dict)
    models: dict = field(default_factory=dict)
    chosen: pd.DataFrame = field(default_factory=pd.DataFrame)


def cross_validate_fusion(model, inputs: FusionInputs, labels: pd.DataFrame, splits: pd.DataFrame, *,
                          repeats: Sequence[int] | None = None, keep_models: bool = False,
                          on_fold: Callable | None = None, progress: bool = True) -> FusionCVResult:
    """Fit ``model`` (a :class:`FusionModel` or :class:`ConcatBaseline`) on every training fold and predict the
    held-out patients.

    ``on_fold(model, repeat, fold, test_patients)`` is called after each fit (for explanations) and its return
    value kept in ``models`` when ``keep_models`` is False.
    """
    from tqdm.auto import tqdm

    missing = pd.Index(splits["patient"]).difference(labels.index)
    if len(missing):
        raise DataValidationError(f"{len(missing)} patients of the splits have no label")
    reps = sorted(splits["repeat"].unique()) if repeats is None else list(repeats)
    oof = pd.DataFrame(np.nan, index=labels.index, columns=reps)
    kept, chosen = {}, []
    jobs = [(r, f) for r in reps for f in sorted(splits.loc[splits["repeat"] == r, "fold"].unique())]
    for r, f in tqdm(jobs, desc="folds", unit="fold", disable=not progress, leave=False):
        s = splits[splits["repeat"] == r]
        test = pd.Index(s.loc[s["fold"] == f, "patient"])
        train = inputs.patients.difference(test)  # unlabelled patients stay on the training side
        try:
            m = model.clone().fit(inputs, labels, train=train)
        except DegenerateFoldError as err:  # e.g. a single-modality model on a fold with few such patients
            logger.warning("repeat %s fold %s: not fitted (%s); its held-out patients stay unscored", r, f, err)
            continue
        out = m.predict(test)
        if "duration" in labels:  # a Cox output has no level of its own: centre each fold on its training patients
            out = out - float(np.nanmean(m.predict(m.train_patients_)))
        oof.loc[test, r] = out.to_numpy()
        if hasattr(m, "chosen_"):
            chosen.append({"repeat": r, "fold": f, **m.chosen_})
        if keep_models:
            kept[(r, f)] = m
        elif on_fold is not None:
            kept[(r, f)] = on_fold(m, r, f, test)
    params = model.get_params() if hasattr(model, "get_params") else {}
    return FusionCVResult(oof, params, kept, pd.DataFrame(chosen))


def oof_mean(results: Mapping[str, FusionCVResult]) -> pd.DataFrame:
    """Out-of-fold output of every model averaged over repeats (patients x models)."""
    return pd.DataFrame({name: r.oof.mean(axis=1) for name, r in results.items()})


def fusion_table(labels: pd.DataFrame, scores: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """AUC (binary labels) or Harrell's C (survival) of each model's out-of-fold score with a 95 % bootstrap CI,
    each on the patients it scored.

    Examples
    --------
    >>> lab = pd.DataFrame({"y": [0, 0, 1, 1]}, index=list("abcd"))
    >>> fusion_table(lab, pd.DataFrame({"m": [0.1, 0.4, 0.35, 0.8]}, index=list("abcd")), n_boot=50)["estimate"].item()
    0.75
    """
    from hccomics.imaging.mvi import auc_ci
    from hccomics.survival.metrics import concordance_ci

    rows = []
    for name in scores:
        s = scores[name].dropna()
        lab = labels.loc[labels.index.intersection(s.index)]
        s = s[lab.index]
        if lab.iloc[:, -1].nunique() < 2:  # no positive (or no event) among the scored patients
            rows.append({"model": name, "metric": "auc" if "y" in lab else "harrell_c", "estimate": np.nan,
                         "low": np.nan, "high": np.nan, "patients": len(s)})
            continue
        if "y" in lab:
            ci = auc_ci(lab["y"], s, n_boot=n_boot, seed=seed)
            metric = "auc"
        else:
            ci = concordance_ci(lab["duration"], lab["event"], s, n_boot=n_boot, seed=seed)
            metric = "harrell_c"
        rows.append({"model": name, "metric": metric, "estimate": ci["estimate"], "low": ci["low"], "high": ci["high"],
                     "patients": len(s)})
    return pd.DataFrame(rows).set_index("model")


def compare_fusion(labels: pd.DataFrame, scores: pd.DataFrame, pairs: Sequence[tuple[str, str]], *, n_boot: int = 1000,
                   seed: int = 0) -> pd.DataFrame:
    """Paired bootstrap of ``b - a`` (AUC or Harrell's C) for each pair, on the patients both models scored."""
    from hccomics.imaging.mvi import compare_auc
    from hccomics.survival.metrics import compare_models

    rows = []
    for a, b in pairs:
        both = scores[[a, b]].dropna().index.intersection(labels.index)
        lab = labels.loc[both]
        if len(lab) < 4 or lab.iloc[:, -1].nunique() < 2:
            rows.append({"model a": a, "model b": b, "patients": len(both), "a": np.nan, "b": np.nan,
                         "b - a": np.nan, "low": np.nan, "high": np.nan})
            continue
        if "y" in lab:
            d = compare_auc(lab["y"], scores.loc[both, a], scores.loc[both, b], n_boot=n_boot, seed=seed)
            va, vb = d["auc_a"], d["auc_b"]
        else:
            d = compare_models(lab["duration"], lab["event"], scores.loc[both, a], scores.loc[both, b], n_boot=n_boot,
                               seed=seed)
            va, vb = d["c_a"], d["c_b"]
        rows.append({"model a": a, "model b": b, "patients": len(both), "a": va, "b": vb, "b - a": d["estimate"],
                     "low": d["low"], "high": d["high"]})
    return pd.DataFrame(rows)


def fusion_models(task: str = "binary", *, hetero: bool = True, epochs: int = 300, k: int = 10,
                  hetero_hidden: int = 32, device: str = "auto", seed: int = 0) -> dict:
    """The models compared by notebook 08 and the validation, as ``name -> unfitted model``.

    Fused: the MOGONET-style GCN (transductive and inductive), its VCDN head (binary tasks), the gated Kronecker
    fusion and the heterogeneous patient-gene-image GNN (``hetero``, width ``hetero_hidden``). Baselines: a GCN on each single modality,
    and penalised linear models on the concatenation and on each single modality.

    Examples
    --------
    >>> sorted(fusion_models("cox", hetero=False))[:3]
    ['GCN RNA', 'GCN clinical', 'GCN fused']
    """
    from hccomics.graph.training import FusionModel

    opts = {"task": task, "epochs": epochs, "k": k, "device": device, "seed": seed}
    models = {
        "GCN fused": FusionModel(**opts),
        "GCN fused (inductive)": FusionModel(mode="inductive", **opts),
        "Kronecker fused": FusionModel(architecture="kronecker", **opts),
    }
    if task == "binary":
        models["GCN fused (VCDN head)"] = FusionModel(architecture="gcn_vcdn", **opts)
    if hetero:
        models["hetero GNN"] = FusionModel(architecture="hetero", hidden=hetero_hidden, **opts)
    for m, label in (("rna", "RNA"), ("image", "image"), ("clinical", "clinical")):
        models[f"GCN {label}"] = FusionModel(modalities=[m], **opts)
    models["linear concat"] = ConcatBaseline(task=task, seed=seed)
    for m, label in (("rna", "RNA"), ("image", "image"), ("clinical", "clinical")):
        models[f"linear {label}"] = ConcatBaseline(task=task, modalities=[m], seed=seed)
    return models


def model_kind(model) -> str:
    """``"fused"``, ``"single modality"`` or ``"baseline"`` (the linear model on the concatenation)."""
    mods = getattr(model, "modalities", None)
    if mods is not None and len(mods) == 1:
        return "single modality"
    return "baseline" if isinstance(model, ConcatBaseline) else "fused"
