"""Lesion- and ring-level features of a cohort, and their patient-level summary (the ``img`` modality).

Each exam (registered phases on the reference grid, a liver mask and an instance-labelled lesion mask)
gives one row per lesion: shape of the tumour, and for the tumour and each peritumoral ring in every
phase the first-order statistics, GLCM texture and the contrast-to-noise ratio against the distant liver,
``cnr = (mean(region) - mean(background)) / SD(background)``, where the background is the parenchyma more
than the widest ring plus 5 mm away from every tumour. The CNR puts patients scanned with different
enhancement on one scale: it is what carries a peritumoral enhancement band.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from hccomics._options import check_option
from hccomics.errors import DataValidationError
from hccomics.imaging.radiomics import FIRST_ORDER, SHAPE, TEXTURE, first_order, glcm_features, shape_features
from hccomics.imaging.rings import DEFAULT_WIDTHS_MM, RING_MODES, RingMode, lesion_rings, ring_name

__all__ = ["aggregate_lesions", "exam_features", "lesion_features"]

log = logging.getLogger(__name__)

#: background liver: parenchyma farther than the widest ring plus this margin (mm) from every tumour
BACKGROUND_MARGIN_MM = 5.0
IndexRule = Literal["largest"]


def _feature_var(modality: str, phases: Sequence[str], regions: Sequence[str]) -> pd.DataFrame:
    """Names and annotation of the lesion features: ``<modality>_<phase>_<region>_<feature>``, shape apart."""
    m = modality.lower()
    rows = [(f"{m}_shape_{f}", "shape", "", "tumour") for f in SHAPE]
    families = [*((f, "first_order") for f in FIRST_ORDER), ("cnr", "cnr"), *((f, "texture") for f in TEXTURE)]
    rows += [(f"{m}_{ph}_{reg}_{f}", fam, ph, reg) for ph in phases for reg in regions for f, fam in families]
    var = pd.DataFrame(rows, columns=["name", "family", "phase", "region"]).set_index("name")
    var.index.name = None
    var["width_mm"] = [float(r[5:-2]) if r.startswith("ring_") else 0.0 for r in var["region"]]
    return var


def exam_features(
    item: Mapping,
    *,
    widths: Sequence[float] = DEFAULT_WIDTHS_MM,
    mode: RingMode = "shell",
    levels: int = 16,
    lesion_mask: str | Path | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Features of one exam: a lesion table, a ring table and whole-liver features.

    Parameters
    ----------
    item
        A data dict of :func:`hccomics.imaging.segmentation_items` (registered phase paths, liver, lesion).
    widths, mode
        Ring widths (mm) and kind, as :func:`hccomics.imaging.lesion_rings`.
    levels
        Grey levels of the texture matrices (fixed bin number per region).
    lesion_mask
        A lesion mask to use instead of the item's reference one (e.g. a segmentation's prediction, on the
        same grid). Masks are instance-labelled (one value per lesion); a binary mask is one lesion, so label a
        binary mask of several lesions first (``scipy.ndimage.label``).

    Returns
    -------
    lesions : pandas.DataFrame
        One row per lesion: ``lesion``, ``volume_ml``, ``touches_border``, ``rings_truncated`` and the features.
    rings : pandas.DataFrame
        :meth:`LesionRings.table` of every lesion (volumes, liver clipping).
    liver : dict
        Whole-liver features (parenchyma outside every tumour).

    Examples
    --------
    >>> from hccomics.datasets import demo_cohort_dir, make_demo_cohort
    >>> from hccomics.imaging import register_cohort, segmentation_items
    >>> from hccomics.io import image_table
    >>> t = image_table(make_demo_cohort(demo_cohort_dir("smoke"), profile="smoke"))  # doctest: +SKIP
    >>> item = segmentation_items(register_cohort(t, out_dir="registered")[0])[0]  # doctest: +SKIP
    >>> lesions, rings, liver = exam_features(item)  # doctest: +SKIP
    """
    from scipy import ndimage

    from hccomics.io.nifti import read_nifti

    phases = list(item["phases"])
    arrays, affine = [], None
    for ph, path in zip(phases, item["image"]):
        arr, aff = read_nifti(path)
        arrays.append(np.asarray(arr, dtype=np.float32))
        affine = aff if affine is None else affine
    spacing = tuple(float(s) for s in np.linalg.norm(affine[:3, :3], axis=0))
    liver = read_nifti(item["liver"])[0] > 0
    lesions = np.rint(read_nifti(lesion_mask or item["lesion"])[0]).astype(np.int32)
    if lesions.shape != liver.shape or lesions.shape != arrays[0].shape:
        raise DataValidationError(f"patient {item['patient_id']}: lesion mask {lesions.shape}, liver {liver.shape} and "
                                  f"image {arrays[0].shape} must share a grid; resample the masks onto the reference phase")
    any_tumour = lesions > 0
    far = ndimage.distance_transform_edt(~any_tumour, sampling=spacing) > widths[-1] + BACKGROUND_MARGIN_MM \
        if any_tumour.any() else np.ones_like(liver)
    background = liver & ~any_tumour & far
    if background.sum() < 50:
        background = liver & ~any_tumour
    parenchyma = liver & ~any_tumour
    liver_feats = {"liver_volume_ml": float(liver.sum() * math.prod(spacing) / 1000.0)}
    stats = []
    for ph, arr in zip(phases, arrays):
        bg = arr[background]
        stats.append((float(bg.mean()), float(bg.std()) or 1.0))
        liver_feats.update({f"{ph}_liver_{k}": v for k, v in first_order(arr[parenchyma]).items()})
        liver_feats.update({f"{ph}_liver_{k}": v for k, v in glcm_features(arr, parenchyma, levels=levels).items()})
    rings = lesion_rings(lesions, spacing=spacing, liver=liver, widths=widths, mode=mode)
    rows, ring_tables = [], []
    for r in rings:
        row: dict = {"lesion": r.label, "touches_border": r.touches_border, "rings_truncated": r.truncated}
        row.update({f"shape_{k}": v for k, v in shape_features(r.tumour, spacing=spacing).items()})
        row["volume_ml"] = row["shape_volume_ml"]
        for ph, arr, (mu, sd) in zip(phases, arrays, stats):
            crop = arr[r.box]
            for region in r.regions:
                m = r.crop(region)
                fo = first_order(crop[m])
                row.update({f"{ph}_{region}_{k}": v for k, v in fo.items()})
                row[f"{ph}_{region}_cnr"] = (fo["mean"] - mu) / sd
                row.update({f"{ph}_{region}_{k}": v for k, v in glcm_features(crop, m, levels=levels).items()})
        rows.append(row)
        ring_tables.append(r.table())
    ring_table = pd.concat(ring_tables, ignore_index=True) if ring_tables else pd.DataFrame()
    return pd.DataFrame(rows), ring_table, liver_feats


def lesion_features(
    items: Sequence[Mapping],
    *,
    modality: str = "CT",
    widths: Sequence[float] = DEFAULT_WIDTHS_MM,
    mode: RingMode = "shell",
    levels: int = 16,
    lesion_masks: Mapping[str, str | Path] | None = None,
    n_jobs: int | None = None,
):
    """Lesion-level AnnData of a cohort: one row per lesion, shape, and per phase and region intensity and texture.

    Parameters
    ----------
    items
        Data dicts of :func:`hccomics.imaging.segmentation_items` on *registered* phases (every phase on the
        reference grid of its masks).
    modality
        ``"CT"`` or ``"MRI"``: prefixes the feature names (``ct_arterial_ring_6mm_cnr``).
    widths, mode, levels
        Ring widths (mm) and kind; grey levels of the texture. Shells (the default) localise a peritumoral
        signal; cumulative rings (the published "expansions") all contain a band once they reach it, and on the
        demo cohort every expansion from 6 mm on separated MVI perfectly, so they could not say where it lies.
    lesion_masks
        Patient -> lesion mask replacing the reference one (e.g. the segmentation's predictions); the source
        of each patient's mask is recorded in ``obs["mask_source"]``.
    n_jobs
        Worker processes (default: the CPU count); results do not depend on it.

    Returns
    -------
    anndata.AnnData
        ``obs``: ``patient_id``, ``modality``, ``lesion``, ``volume_ml``, ``is_index`` (largest lesion of its
        patient), ``touches_border``, ``rings_truncated``, ``mask_source``; ``var``: ``region``, ``phase``,
        ``family`` (shape, first_order, cnr, texture) and ``width_mm``. ``uns["lesion_features"]`` holds the
        parameters, the ring volumes (``rings``), the whole-liver features per patient (``liver``) and the patients
        whose lesion mask was empty (``patients_without_lesions``: they have no row here, and ``n_lesions`` 0 in
        :func:`aggregate_lesions`).

    Examples
    --------
    >>> from hccomics.datasets import demo_cohort_dir, make_demo_cohort
    >>> from hccomics.imaging import register_cohort, segmentation_items
    >>> from hccomics.io import image_table
    >>> t = image_table(make_demo_cohort(demo_cohort_dir("smoke"), profile="smoke"))  # doctest: +SKIP
    >>> registered, _ = register_cohort(t, out_dir="registered")  # doctest: +SKIP
    >>> lesions = lesion_features(segmentation_items(registered))  # doctest: +SKIP
    """
    import anndata as ad

    from hccomics.imaging._parallel import map_processes
    from hccomics.imaging.rings import _check_widths

    modality = check_option("modality", modality, ("CT", "MRI"))
    mode = check_option("mode", mode, RING_MODES)
    widths = _check_widths(widths)
    items = list(items)
    if not items:
        raise DataValidationError("no exams given; pass the output of segmentation_items on registered phases")
    phase_sets = {tuple(it["phases"]) for it in items}
    if len(phase_sets) != 1:
        raise DataValidationError(f"every exam must have the same phases in the same order; found {sorted(phase_sets)}")
    phases = list(phase_sets.pop())
    lesion_masks = {str(k): v for k, v in dict(lesion_masks or {}).items()}
    unknown = sorted(set(lesion_masks) - {str(it["patient_id"]) for it in items})
    if unknown:
        raise DataValidationError(f"lesion_masks holds patients without an exam: {unknown}")
    kwargs = {"widths": widths, "mode": mode, "levels": int(levels)}
    jobs = [((it,), {**kwargs, "lesion_mask": lesion_masks.get(str(it["patient_id"]))}) for it in items]
    results = map_processes(exam_features, jobs, n_jobs=n_jobs, desc=f"{modality} lesion features", unit="exam")
    m = modality.lower()
    frames, ring_frames, liver_rows, empty = [], [], {}, []
    for it, (les, rings, liver) in zip(items, results):
        pid = str(it["patient_id"])
        liver_rows[pid] = {f"{m}_{k}": v for k, v in liver.items()}
        if les.empty:
            empty.append(pid)
            log.warning("patient %s: the lesion mask is empty; no lesion features", pid)
            continue
        les.insert(0, "patient_id", pid)
        les["mask_source"] = "given" if pid in lesion_masks else "reference"
        frames.append(les)
        ring_frames.append(rings.assign(patient_id=pid))
    regions = ["tumour", *(ring_name(w) for w in widths)]
    var = _feature_var(modality, phases, regions)
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["patient_id", "lesion"])
    obs = pd.DataFrame({"patient_id": table["patient_id"].astype(str).to_numpy(), "modality": modality,
                        "lesion": table["lesion"].astype(int).to_numpy()})
    for col in ("volume_ml", "touches_border", "rings_truncated", "mask_source"):
        obs[col] = table[col].to_numpy() if len(table) else []
    # index lesion: the largest of its patient; ties go to the lowest label
    order = obs.sort_values(["patient_id", "volume_ml", "lesion"], ascending=[True, False, True]).index
    obs["is_index"] = False
    obs.loc[obs.loc[order].drop_duplicates("patient_id").index, "is_index"] = True
    obs.index = [f"{p}/{m}/{lab}" for p, lab in zip(obs["patient_id"], obs["lesion"])]
    raw = [n.split("_", 1)[1] for n in var.index]
    X = table.reindex(columns=raw).to_numpy(dtype=np.float32) if len(table) else np.zeros((0, len(var)), np.float32)
    adata = ad.AnnData(X=X, obs=obs, var=var)
    adata.uns["lesion_features"] = {
        "params": {**kwargs, "modality": modality, "widths": list(widths), "phases": phases, "background_margin_mm": BACKGROUND_MARGIN_MM,
                   "index_rule": "largest lesion volume per patient (ties: lowest label)"},
        "rings": pd.concat(ring_frames, ignore_index=True) if ring_frames else pd.DataFrame(),
        "liver": pd.DataFrame.from_dict(liver_rows, orient="index"),
        "patients_without_lesions": empty,
    }
    return adata


def aggregate_lesions(*lesion_adatas, patients: Sequence[str] | None = None, rule: IndexRule = "largest"):
    """Patient-level ``img`` modality from lesion-level features of one or more modalities.

    Rule: each patient is described by its **index lesion** (the largest by volume in that modality; ties: the
    lowest label), plus ``<m>_n_lesions``, ``<m>_total_tumour_ml`` and the whole-liver features. A patient
    without an exam in a modality (e.g. no MRI) has NaN there and ``obs["has_<m>"]`` False; a patient whose
    lesion mask was empty has ``n_lesions`` 0 and NaN lesion features.

    Parameters
    ----------
    *lesion_adatas
        Outputs of :func:`lesion_features` (one per modality).
    patients
        Row order of the result (e.g. the cohort's patients, so that patients never imaged appear with NaN);
        default the imaged patients, sorted.
    rule
        ``"largest"``.

    Returns
    -------
    anndata.AnnData
        One row per patient; ``var["modality"]`` and the lesion ``var`` columns (``region``, ``phase``,
        ``family``, ``width_mm``); ``uns["img"]`` holds the rule and each modality's parameters.

    Examples
    --------
    >>> img = aggregate_lesions(lesion_features(ct_items, modality="CT"),  # doctest: +SKIP
    ...                         lesion_features(mri_items, modality="MRI"))
    >>> img.obs[["has_ct", "has_mri"]].sum()  # doctest: +SKIP
    """
    import anndata as ad

    check_option("rule", rule, ("largest",))
    if not lesion_adatas:
        raise DataValidationError("pass at least one lesion-level AnnData from lesion_features")
    blocks, var_blocks, has, params = [], [], {}, {}
    for a in lesion_adatas:
        info = a.uns.get("lesion_features")
        if info is None:
            raise DataValidationError("expected the output of lesion_features (uns['lesion_features'] is missing)")
        mod = str(a.obs["modality"].iloc[0]) if a.n_obs else "CT" if a.var_names[0].startswith("ct_") else "MRI"
        m = mod.lower()
        imaged = list(info["liver"].index) + list(info["patients_without_lesions"])
        idx = a[a.obs["is_index"].astype(bool)] if a.n_obs else a
        lesion = pd.DataFrame(idx.X, index=idx.obs["patient_id"].to_numpy(), columns=a.var_names)
        counts = a.obs.groupby("patient_id", observed=True).agg(n=("lesion", "size"), total=("volume_ml", "sum")) if a.n_obs \
            else pd.DataFrame(columns=["n", "total"])
        summary = pd.DataFrame({f"{m}_n_lesions": counts["n"], f"{m}_total_tumour_ml": counts["total"]})
        summary = summary.reindex(sorted(set(imaged)))
        summary[f"{m}_n_lesions"] = summary[f"{m}_n_lesions"].fillna(0)
        summary.loc[summary[f"{m}_n_lesions"] == 0, f"{m}_total_tumour_ml"] = 0.0
        block = pd.concat([summary, lesion.reindex(summary.index), info["liver"].reindex(summary.index)], axis=1)
        blocks.append(block)
        v = pd.DataFrame(index=block.columns)
        v["modality"] = mod
        v = v.join(a.var.astype({c: object for c in ("family", "phase", "region")}))
        v["family"] = v["family"].fillna("summary").where(~v.index.str.contains("_liver_"), "liver")
        var_blocks.append(v)
        has[f"has_{m}"] = set(imaged)
        params[mod] = info["params"]
    table = pd.concat(blocks, axis=1)
    order = [str(p) for p in patients] if patients is not None else sorted(table.index)
    table = table.reindex(order)
    obs = pd.DataFrame(index=pd.Index(order, name="patient_id"))
    for key, ids in has.items():
        obs[key] = obs.index.isin(ids)
    var = pd.concat(var_blocks)
    var["region"] = var["region"].fillna("")
    var["phase"] = var["phase"].fillna("")
    var["width_mm"] = var["width_mm"].fillna(0.0)
    img = ad.AnnData(X=table.to_numpy(dtype=np.float32), obs=obs, var=var.loc[table.columns])
    img.uns["img"] = {"rule": "index lesion = largest by volume per modality (ties: lowest label); plus lesion count, "
                              "total tumour volume and whole-liver features; NaN where a modality is missing",
                      "params": params}
    return img
