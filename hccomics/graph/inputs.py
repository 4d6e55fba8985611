"""Patient-level modality blocks for the fusion models: RNA, image and clinical features, and task labels."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from hccomics._options import check_option
from hccomics.errors import DataValidationError, HccomicsWarning

__all__ = ["MISSING_RULE", "TASKS", "FusionInputs", "MissingModalityWarning", "fusion_inputs", "task_labels"]

logger = logging.getLogger(__name__)

TASKS = ("recurrence_2y", "mvi", "survival")
MISSING_RULE = (
    "a patient without a modality keeps its node; in that modality its features are the training mean (zero after "
    "standardising), it has no similarity edges, its embedding is zeroed before fusion and an availability flag "
    "tells the fusion head; single-modality models score only the patients that have their modality; a patient "
    "with part of a modality (e.g. CT but no MRI, or no CNN output) has the missing features set to the training mean"
)
# pathology read after resection (MVI, grade) is a target or post-operative: the clinical block is pre-operative
_CLINICAL = ("age", "child_pugh_index", "bclc_index", "log10_afp", "log2_diameter", "multifocal")


class MissingModalityWarning(HccomicsWarning):
    """Some patients lack a modality; they are handled by :data:`MISSING_RULE` and counted in ``FusionInputs.summary``."""


@dataclass
class FusionInputs:
    """Per-patient feature blocks of every modality, on one patient index.

    Attributes
    ----------
    blocks
        ``modality -> DataFrame`` (patients x features). A patient without the modality has a row of NaN.
    features
        ``modality -> DataFrame`` indexed by feature with a ``group`` column (image: ring width or ``cnn``;
        RNA: ``gene`` or a score) and, for genes, ``wp4172`` (member of the PI3K-Akt pathway WP4172).
    available
        Patients x modalities, True where the patient has the modality.
    params
        The parameters the blocks were built with.
    """

    blocks: dict[str, pd.DataFrame]
    features: dict[str, pd.DataFrame]
    available: pd.DataFrame
    params: dict = field(default_factory=dict)

    @property
    def patients(self) -> pd.Index:
        return self.available.index

    @property
    def modalities(self) -> list[str]:
        return list(self.blocks)

    def subset(self, modalities: Sequence[str]) -> FusionInputs:
        """The same patients with only ``modalities``."""
        unknown = [m for m in modalities if m not in self.blocks]
        if unknown:
            raise DataValidationError(f"modalities {unknown} are not in the inputs (have {self.modalities})")
        return FusionInputs({m: self.blocks[m] for m in modalities}, {m: self.features[m] for m in modalities},
                            self.available[list(modalities)], dict(self.params))

    def summary(self) -> pd.DataFrame:
        """Per modality: features, patients with it, patients without it, and NaN cells among those with it."""
        rows = []
        for m, b in self.blocks.items():
            has = self.available[m]
            rows.append({"modality": m, "features": b.shape[1], "patients": int(has.sum()),
                         "missing_patients": int((~has).sum()), "nan_cells": int(b[has].isna().to_numpy().sum())})
        return pd.DataFrame(rows).set_index("modality")


def _clinical_block(clinical: pd.DataFrame) -> pd.DataFrame:
    from hccomics.survival.covariates import prognostic_table

    table, _ = prognostic_table(clinical, complete_cases=False)
    block = table[list(_CLINICAL)].astype(float)
    treat = pd.get_dummies(table["treatment"], prefix="treatment", dtype=float)
    treat[table["treatment"].isna().to_numpy()] = np.nan
    return pd.concat([block, treat], axis=1)


def _rna_block(rna: Any, n_genes: int, layer: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    from hccomics.datasets.genesets import gene_sets

    if layer not in rna.layers:
        if layer != "vst":
            raise DataValidationError(f"the RNA AnnData has no layer '{layer}' (layers: {list(rna.layers)})")
        from hccomics.omics import variance_stabilize

        rna = rna.copy()
        variance_stabilize(rna, modality="rna")  # blind VST: no label, so it may see every patient
    X = pd.DataFrame(np.asarray(rna.layers[layer], dtype=float), index=rna.obs_names, columns=rna.var_names)
    # unsupervised pre-selection (variance, no outcome), so it may use every patient
    keep = X.var(axis=0).sort_values(ascending=False).index[:n_genes]
    X = X[keep]
    wp = set(gene_sets("wikipathways")["WP4172"].genes)
    info = pd.DataFrame({"group": "gene", "wp4172": [g in wp for g in keep]}, index=keep)
    return X, info


def _image_block(img: Any, image_sets: Sequence[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    parts, infos = [], []
    if "radiomics" in image_sets:
        var = img.var
        X = pd.DataFrame(np.asarray(img.X, dtype=float), index=img.obs_names, columns=img.var_names)
        lesion = var["region"].astype(str) if "region" in var else pd.Series("lesion", index=var.index)
        family = var["family"].astype(str) if "family" in var else pd.Series("other", index=var.index)
        group = lesion.where(lesion.ne("") & lesion.ne("nan"), family)
        parts.append(X)
        infos.append(pd.DataFrame({"group": group.to_numpy(),
                                   "phase": var["phase"].astype(str).to_numpy() if "phase" in var else "",
                                   "modality": var["modality"].astype(str).to_numpy() if "modality" in var else ""},
                                  index=img.var_names))
    if "cnn" in image_sets:
        cols = [c for c in img.obs.columns if str(c).startswith("cnn_") and c != "cnn_fold"]
        if not cols:
            raise DataValidationError("img.obs has no out-of-fold CNN outputs ('cnn_mvi', ...); run notebook 06 or "
                                      "leave 'cnn' out of image_sets")
        parts.append(img.obs[cols].apply(pd.to_numeric, errors="coerce").astype(float))
        infos.append(pd.DataFrame({"group": "cnn", "phase": "all", "modality": "CT"}, index=cols))
    if "cnn_embedding" in image_sets:
        if "X_cnn" not in img.obsm:
            raise DataValidationError("img has no obsm['X_cnn']; run notebook 06 or leave 'cnn_embedding' out")
        E = np.asarray(img.obsm["X_cnn"], dtype=float)
        cols = [f"cnn_embedding_{i}" for i in range(E.shape[1])]
        parts.append(pd.DataFrame(E, index=img.obs_names, columns=cols))
        infos.append(pd.DataFrame({"group": "cnn_embedding", "phase": "all", "modality": "CT"}, index=cols))
    if not parts:
        raise DataValidationError(f"image_sets={list(image_sets)} selects no image features; use 'radiomics', 'cnn' "
                                  "and/or 'cnn_embedding'")
    return pd.concat(parts, axis=1), pd.concat(infos)


def fusion_inputs(
    clinical: pd.DataFrame,
    *,
    rna: Any = None,
    img: Any = None,
    n_genes: int = 500,
    rna_layer: str = "vst",
    image_sets: Sequence[Literal["radiomics", "cnn", "cnn_embedding"]] = ("radiomics", "cnn"),
    scores: pd.DataFrame | None = None,
) -> FusionInputs:
    """Build the RNA, image and clinical blocks on the clinical table's patients.

    Parameters
    ----------
    clinical
        The cohort's clinical table (``mdata.obs`` or :func:`hccomics.io.read_clinical`), one row per patient.
        The clinical block holds the pre-operative covariates (age, Child-Pugh, BCLC, log10 AFP, log2 diameter,
        multifocality, treatment); MVI and grade are read after resection and are left out.
    rna
        Expression AnnData (patients x genes) with raw counts in ``layers['counts']``; a blind VST is computed
        when ``layers[rna_layer]`` is missing. The ``n_genes`` most variable genes are kept. Both steps use every
        patient's expression but no outcome: they are label-free cohort-wide steps, outside the folds.
    img
        Patient-level image AnnData of notebook 05 / 06 (ring and tumour features in ``X``, CNN embeddings in
        ``obsm['X_cnn']``).
    image_sets
        Which image features to use: ``"radiomics"`` (``img.X``), ``"cnn"`` (the CT CNN's out-of-fold outputs,
        ``img.obs['cnn_mvi']`` and ``['cnn_high_grade']`` of notebook 06) and ``"cnn_embedding"``
        (``img.obsm['X_cnn']``). The embedding is off by default: notebook 06 writes each patient's row from the
        fold network that held it out, and those networks' feature spaces differ (on the demo a classifier tells
        the fold from the embedding with 95 % accuracy, and 61 % of a patient's cosine neighbours share its fold),
        so patients would be compared across unrelated spaces; the probabilities share one scale. Use the
        embedding when it comes from one network (e.g. trained on another cohort).
    scores
        Optional per-patient scores added to the RNA block (signature scores of notebook 02, single-sample DNB
        scores), each as its own feature group.

    Returns
    -------
    FusionInputs
        Patients are the clinical table's; a modality a patient lacks is a row of NaN (see :data:`MISSING_RULE`).

    Examples
    --------
    >>> import hccomics as hc, tempfile
    >>> man = hc.datasets.make_demo_cohort(tempfile.mkdtemp(), profile="smoke", images=False)
    >>> mdata = hc.io.load_cohort(man)
    >>> fi = fusion_inputs(mdata.obs, rna=mdata["rna"], n_genes=50)
    >>> fi.modalities, fi.blocks["rna"].shape[1]
    (['rna', 'clinical'], 50)
    """
    if not isinstance(clinical, pd.DataFrame) or clinical.index.has_duplicates:
        raise DataValidationError("clinical must be a DataFrame with one row per patient (unique index)")
    image_sets = (image_sets,) if isinstance(image_sets, str) else tuple(image_sets)
    for s in image_sets:
        check_option("image_sets", s, ("radiomics", "cnn", "cnn_embedding"))
    patients = clinical.index.astype(str)
    blocks: dict[str, pd.DataFrame] = {}
    infos: dict[str, pd.DataFrame] = {}
    if rna is not None:
        X, info = _rna_block(rna, n_genes, rna_layer)
        if scores is not None:
            s = scores.apply(pd.to_numeric, errors="coerce")
            X = X.join(s, how="outer")
            info = pd.concat([info, pd.DataFrame({"group": [str(c) for c in s.columns], "wp4172": False}, index=s.columns)])
        blocks["rna"], infos["rna"] = X, info
    if img is not None:
        blocks["image"], infos["image"] = _image_block(img, tuple(image_sets))
    blocks["clinical"] = _clinical_block(clinical)
    infos["clinical"] = pd.DataFrame({"group": [c.split("_")[0] if c.startswith("treatment") else c
                                                for c in blocks["clinical"].columns]}, index=blocks["clinical"].columns)
    problems = []
    for m, b in blocks.items():
        b.index = b.index.astype(str)
        finite = b.to_numpy(dtype=float)
        if np.isinf(finite).any():
            problems.append(f"{m}: {int(np.isinf(finite).sum())} infinite values (replace them or drop the features)")
        extra = b.index.difference(patients)
        if len(extra):
            logger.info("%s: %d rows are not in the clinical table and are left out", m, len(extra))
        blocks[m] = b.reindex(patients)
        all_nan = blocks[m].columns[blocks[m].isna().all()]
        if len(all_nan):
            logger.warning("%s: %d features are missing for every patient and are dropped", m, len(all_nan))
            blocks[m] = blocks[m].drop(columns=all_nan)
            infos[m] = infos[m].drop(index=all_nan)
    if problems:
        raise DataValidationError("the fusion inputs are not usable", problems)
    available = pd.DataFrame({m: b.notna().any(axis=1) for m, b in blocks.items()}, index=patients)
    lacking = {m: int((~available[m]).sum()) for m in blocks if (~available[m]).any()}
    if lacking:
        warnings.warn(f"patients without a modality: {lacking}; rule: {MISSING_RULE}", MissingModalityWarning,
                      stacklevel=2)
    params = {"n_genes": n_genes, "rna_layer": rna_layer, "image_sets": list(image_sets),
              "scores": list(scores.columns) if scores is not None else [], "missing_rule": MISSING_RULE,
              "clinical": list(blocks["clinical"].columns)}
    return FusionInputs(blocks, infos, available, params)


def task_labels(clinical: pd.DataFrame, task: str) -> pd.DataFrame:
    """Labels of a task on the clinical table's patients: ``y`` (binary tasks) or ``duration`` and ``event``.

    ``recurrence_2y`` is missing for patients censored before 24 months; those patients stay in the graphs
    unlabelled and are never scored.

    Examples
    --------
    >>> t = pd.DataFrame({"rfs_time_months": [3.0, 30.0], "rfs_event": [1, 0], "mvi": [1, 0],
    ...                   "recurrence_2y": [1, 0]}, index=["a", "b"])
    >>> task_labels(t, "survival").to_dict("list")
    {'duration': [3.0, 30.0], 'event': [1, 0]}
    """
    check_option("task", task, TASKS)
    need = ("rfs_time_months", "rfs_event") if task == "survival" else (task,)
    missing = [c for c in need if c not in clinical.columns]
    if missing:
        raise DataValidationError(f"task '{task}' needs clinical columns {missing}")
    idx = clinical.index.astype(str)
    if task == "survival":
        return pd.DataFrame({"duration": pd.to_numeric(clinical["rfs_time_months"]).to_numpy(dtype=float),
                             "event": pd.to_numeric(clinical["rfs_event"]).to_numpy()}, index=idx).dropna().astype(
            {"event": int})
    y = pd.to_numeric(clinical[task]).to_numpy(dtype=float)
    return pd.DataFrame({"y": y}, index=idx).dropna().astype(int)
