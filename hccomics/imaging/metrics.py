"""Segmentation quality: Dice, HD95 (mm), volumes, and lesion-wise detection by size.

Conventions used throughout, so that tables from different runs compare:

- a structure absent from both prediction and reference has Dice 1 and HD95 0 mm;
- a structure present in exactly one of them has Dice 0 and HD95 NaN (undefined);
- HD95 is MONAI's symmetric 95th-percentile surface distance (the larger of the two directed 95th
  percentiles between the masks' surface voxels), in mm through ``spacing``;
- a lesion's size is its equivalent-sphere diameter ``(6 V / pi) ** (1/3)`` in mm.
"""

from __future__ import annotations

import itertools
import logging
import math
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from hccomics.errors import DataValidationError

__all__ = ["detection_summary", "lesion_detection", "segmentation_metrics", "volume_ml"]

logger = logging.getLogger(__name__)

#: label codes of a LiTS-style label map (0 background, 1 liver parenchyma, 2 tumour); the liver includes its tumours
DEFAULT_LABELS: dict[str, tuple[int, ...]] = {"liver": (1, 2), "lesion": (2,)}

_DETECTION_COLUMNS = ["patient_id", "kind", "lesion_id", "volume_ml", "diameter_mm", "size_bin", "n_overlapping",
                      "detected", "dice", "true_positive"]


def _check_spacing(spacing: Sequence[float], ndim: int) -> tuple[float, ...]:
    try:
        values = tuple(float(s) for s in spacing)
    except (TypeError, ValueError):
        raise DataValidationError(f"spacing must be {ndim} voxel sizes in mm; got {spacing!r}. "
                                  "Pass e.g. spacing=(0.8, 0.8, 2.5) from the image header.") from None
    if len(values) != ndim or not all(math.isfinite(s) and s > 0 for s in values):
        raise DataValidationError(f"spacing must be {ndim} positive, finite voxel sizes in mm; got {spacing!r}. "
                                  "Pass the voxel sizes of the image header (nibabel: img.header.get_zooms()[:3]).")
    return values


def _check_volume(name: str, vol: np.ndarray, *, ndim: int | None = 3) -> np.ndarray:
    arr = np.asarray(vol)
    if ndim is not None and arr.ndim != ndim:
        raise DataValidationError(f"{name} must be a {ndim}D volume; got an array of shape {arr.shape}. "
                                  "Pass one patient's volume without batch or channel axes (squeeze them).")
    if arr.dtype == bool or np.issubdtype(arr.dtype, np.integer):
        return arr
    if np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
        return arr.astype(np.int64)
    raise DataValidationError(f"{name} must hold integer labels; got dtype {arr.dtype} with non-integer values. "
                              "Threshold probabilities first (e.g. prob > 0.5) or round a resampled label map.")


def _check_pair(pred: np.ndarray, ref: np.ndarray, names: tuple[str, str] = ("pred", "ref")) -> tuple[np.ndarray, np.ndarray]:
    pred, ref = _check_volume(names[0], pred), _check_volume(names[1], ref)
    if pred.shape != ref.shape:
        raise DataValidationError(f"{names[0]} and {names[1]} must have the same shape; got {pred.shape} and {ref.shape}. "
                                  f"Resample {names[0]} onto the grid of {names[1]} (nearest neighbour) first.")
    return pred, ref


def volume_ml(mask: np.ndarray, spacing: Sequence[float]) -> float:
    """Return the volume of a mask's non-zero voxels in millilitres.

    Parameters
    ----------
    mask
        Binary (or labelled: every non-zero voxel counts) array.
    spacing
        Voxel size in mm along each axis of ``mask``.

    Examples
    --------
    >>> volume_ml(np.ones((10, 10, 10), dtype=bool), spacing=(1.0, 1.0, 2.0))
    2.0
    """
    arr = np.asarray(mask)
    sp = _check_spacing(spacing, arr.ndim)
    return float(np.count_nonzero(arr)) * math.prod(sp) / 1000.0


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    import torch
    from monai.metrics import compute_dice

    ta, tb = (torch.from_numpy(np.ascontiguousarray(m, dtype=np.float32))[None, None] for m in (a, b))
    # ignore_empty=False: MONAI then scores two empty masks 1, our documented convention
    return float(compute_dice(ta, tb, include_background=True, ignore_empty=False)[0, 0])


def _hd95_mm(a: np.ndarray, b: np.ndarray, spacing: tuple[float, ...]) -> float:
    import torch
    from monai.metrics import compute_hausdorff_distance

    ta, tb = (torch.from_numpy(np.ascontiguousarray(m, dtype=np.float32))[None, None] for m in (a, b))
    with warnings.catch_warnings():
        # MONAI 1.5-1.6 passes its own deprecated argument internally; nothing for our callers to act on
        warnings.filterwarnings("ignore", message=".*always_return_as_numpy.*", category=FutureWarning)
        hd = compute_hausdorff_distance(ta, tb, include_background=True, percentile=95, spacing=list(spacing))
    return float(hd[0, 0])


def _label_values(labels: Mapping[str, int | Sequence[int]] | None) -> dict[str, tuple[int, ...]]:
    if labels is None:
        return dict(DEFAULT_LABELS)
    if not isinstance(labels, Mapping) or not labels:
        raise DataValidationError(f"labels must map structure names to label codes, e.g. {{'liver': (1, 2), 'lesion': 2}}; "
                                  f"got {labels!r}.")
    out: dict[str, tuple[int, ...]] = {}
    for name, value in labels.items():
        codes = (value,) if np.isscalar(value) else tuple(value)
        if not codes or not all(isinstance(c, int | np.integer) and not isinstance(c, bool) for c in codes):
            raise DataValidationError(f"labels[{name!r}] must be an integer label code or a sequence of them; got {value!r}.")
        out[str(name)] = tuple(int(c) for c in codes)
    return out


def segmentation_metrics(pred: np.ndarray, ref: np.ndarray, *, spacing: Sequence[float],
                         labels: Mapping[str, int | Sequence[int]] | None = None,
                         patient_id: str | None = None) -> pd.DataFrame:
    """Return Dice, HD95 (mm) and volumes of each structure of a predicted label volume against a reference.

    Parameters
    ----------
    pred, ref
        Integer label volumes of the same 3D shape, on the same voxel grid.
    spacing
        Voxel size in mm along the three axes.
    labels
        Structure name -> label code, or a sequence of codes whose union is the structure. By default the
        LiTS convention ``{"liver": (1, 2), "lesion": (2,)}``: the liver includes its tumours. To score
        instance-labelled lesion masks, binarise them first (``(vol > 0).astype(np.uint8)`` with ``{"lesion": 1}``).
    patient_id
        Written into a ``patient_id`` column, so tables of several patients concatenate.

    Returns
    -------
    pandas.DataFrame
        One row per structure: ``patient_id``, ``structure``, ``dice``, ``hd95_mm``, ``volume_pred_ml``,
        ``volume_ref_ml``, ``empty_ref``, ``empty_pred``. A structure absent from both volumes has Dice 1 and
        HD95 0; absent from exactly one, Dice 0 and HD95 NaN.

    Examples
    --------
    >>> ref = np.zeros((8, 8, 8), dtype=np.uint8); ref[2:6, 2:6, 2:6] = 1
    >>> m = segmentation_metrics(ref, ref, spacing=(1.0, 1.0, 1.0), labels={"liver": 1, "lesion": 2})
    >>> m["dice"].tolist(), m["hd95_mm"].tolist(), m["empty_ref"].tolist()
    ([1.0, 1.0], [0.0, 0.0], [False, True])
    """
    pred, ref = _check_pair(pred, ref)
    sp = _check_spacing(spacing, 3)
    structures = _label_values(labels)
    rows = []
    for name, codes in structures.items():
        p, r = np.isin(pred, codes), np.isin(ref, codes)
        empty_p, empty_r = not p.any(), not r.any()
        if empty_p and empty_r:
            logger.debug("structure %r (label codes %s) is absent from both volumes; scored Dice 1, HD95 0 by convention",
                        name, codes)
            dice, hd95 = 1.0, 0.0
        elif empty_p or empty_r:
            dice, hd95 = 0.0, float("nan")
        else:
            dice, hd95 = _dice(p, r), _hd95_mm(p, r, sp)
        rows.append({"patient_id": patient_id, "structure": name, "dice": dice, "hd95_mm": hd95,
                     "volume_pred_ml": volume_ml(p, sp), "volume_ref_ml": volume_ml(r, sp),
                     "empty_ref": empty_r, "empty_pred": empty_p})
    return pd.DataFrame(rows)


def _instances(name: str, vol: np.ndarray) -> np.ndarray:
    """Instance labels: a labelled volume as it is, a binary one split into 26-connected components."""
    from scipy import ndimage

    if vol.dtype != bool and vol.size and vol.min() < 0:
        raise DataValidationError(f"{name} holds negative labels (minimum {vol.min()}); expected 0 background and "
                                  "positive lesion labels.")
    if vol.dtype == bool or not vol.size or vol.max() <= 1:
        labelled, _ = ndimage.label(vol > 0, structure=np.ones((3, 3, 3), dtype=bool))
        return labelled
    return vol.astype(np.int64, copy=False)


def _size_bin_labels(edges: tuple[float, ...]) -> list[str]:
    if not edges:
        return ["all sizes"]
    inner = [f"{lo:g}-{hi:g} mm" for lo, hi in itertools.pairwise(edges)]
    return [f"<{edges[0]:g} mm", *inner, f">={edges[-1]:g} mm"]


def _check_bins(size_bins_mm: Sequence[float]) -> tuple[float, ...]:
    edges = tuple(float(e) for e in size_bins_mm)
    if any(not math.isfinite(e) or e <= 0 for e in edges) or any(b <= a for a, b in itertools.pairwise(edges)):
        raise DataValidationError(f"size_bins_mm must be increasing positive diameters in mm; got {size_bins_mm!r}. "
                                  "Pass e.g. (10.0, 20.0) for <10, 10-20 and >=20 mm.")
    return edges


def _diameter_mm(volume_mm3: np.ndarray) -> np.ndarray:
    return np.cbrt(6.0 * volume_mm3 / np.pi)


def lesion_detection(pred: np.ndarray, ref: np.ndarray, *, spacing: Sequence[float],
                     size_bins_mm: Sequence[float] = (10.0, 20.0), min_overlap_voxels: int = 1,
                     patient_id: str | None = None) -> pd.DataFrame:
    """Return one row per reference lesion (detected or missed) and per predicted component (true or false positive).

    Parameters
    ----------
    pred, ref
        Lesion volumes of the same 3D shape. A volume whose largest value is 1 (or a boolean one) is binary and
        split into 26-connected components; a volume with larger values is instance-labelled, each positive value
        one lesion. Pass a lesion mask, not a multi-structure label map (``label_map == 2``, not ``label_map``).
    spacing
        Voxel size in mm along the three axes.
    size_bins_mm
        Increasing diameter edges of the size bins; ``(10, 20)`` gives ``"<10 mm"``, ``"10-20 mm"``, ``">=20 mm"``.
    min_overlap_voxels
        Overlap (voxels) a reference lesion and a predicted component need to count as matched.
    patient_id
        Written into the ``patient_id`` column, so tables of several patients concatenate.

    Returns
    -------
    pandas.DataFrame
        Columns ``patient_id``, ``kind`` (``"reference"`` or ``"predicted"``), ``lesion_id``, ``volume_ml``,
        ``diameter_mm`` (equivalent sphere), ``size_bin`` (ordered categorical), ``n_overlapping`` (matched objects
        of the other kind), ``detected`` and ``dice`` (reference rows: Dice of the lesion with the union of the
        predicted components it matches) and ``true_positive`` (predicted rows).

    Examples
    --------
    >>> ref = np.zeros((12, 12, 12), dtype=np.uint8); ref[1:4, 1:4, 1:4] = 1; ref[7:11, 7:11, 7:11] = 1
    >>> pred = np.zeros_like(ref); pred[1:4, 1:4, 1:4] = 1
    >>> t = lesion_detection(pred, ref, spacing=(5.0, 5.0, 5.0))
    >>> t["kind"].tolist(), t["size_bin"].tolist()
    (['reference', 'reference', 'predicted'], ['10-20 mm', '>=20 mm', '10-20 mm'])
    >>> t["detected"].tolist(), t["dice"].round(2).tolist()
    ([True, False, <NA>], [1.0, 0.0, nan])
    """
    pred, ref = _check_pair(pred, ref)
    sp = _check_spacing(spacing, 3)
    edges = _check_bins(size_bins_mm)
    if isinstance(min_overlap_voxels, bool) or not isinstance(min_overlap_voxels, int | np.integer) or min_overlap_voxels < 1:
        raise DataValidationError(f"min_overlap_voxels must be a positive integer; got {min_overlap_voxels!r}.")
    ref_lab, pred_lab = _instances("ref", ref), _instances("pred", pred)
    voxel_mm3 = math.prod(sp)
    ref_ids, ref_n = np.unique(ref_lab[ref_lab > 0], return_counts=True)
    pred_ids, pred_n = np.unique(pred_lab[pred_lab > 0], return_counts=True)
    # one pass over the volume gives every (reference, predicted) overlap; per-lesion Dice follows from these counts
    both = (ref_lab > 0) & (pred_lab > 0)
    pairs, overlap = np.unique(np.stack([ref_lab[both], pred_lab[both]]), axis=1, return_counts=True)
    keep = overlap >= min_overlap_voxels
    pairs, overlap = pairs[:, keep], overlap[keep]
    pred_size = dict(zip(pred_ids.tolist(), pred_n.tolist()))
    categories = _size_bin_labels(edges)

    def size_bin(diam: np.ndarray) -> np.ndarray:
        return np.asarray(categories, dtype=object)[np.searchsorted(edges, diam, side="right")]

    ref_d, pred_d = _diameter_mm(ref_n * voxel_mm3), _diameter_mm(pred_n * voxel_mm3)
    rows = []
    for lid, n, d, b in zip(ref_ids.tolist(), ref_n.tolist(), ref_d, size_bin(ref_d)):
        hit = pairs[0] == lid
        matched = pairs[1, hit].tolist()
        union = sum(pred_size[m] for m in matched)
        rows.append({"kind": "reference", "lesion_id": lid, "volume_ml": n * voxel_mm3 / 1000.0, "diameter_mm": float(d),
                     "size_bin": b, "n_overlapping": len(matched), "detected": bool(matched),
                     "dice": 2.0 * overlap[hit].sum() / (n + union), "true_positive": pd.NA})
    for cid, n, d, b in zip(pred_ids.tolist(), pred_n.tolist(), pred_d, size_bin(pred_d)):
        k = int(np.count_nonzero(pairs[1] == cid))
        rows.append({"kind": "predicted", "lesion_id": cid, "volume_ml": n * voxel_mm3 / 1000.0, "diameter_mm": float(d),
                     "size_bin": b, "n_overlapping": k, "detected": pd.NA, "dice": float("nan"), "true_positive": k > 0})
    table = pd.DataFrame(rows, columns=_DETECTION_COLUMNS[1:])
    table.insert(0, "patient_id", patient_id)
    table = table.astype({"lesion_id": "int64", "volume_ml": "float64", "diameter_mm": "float64", "n_overlapping": "int64",
                          "detected": "boolean", "dice": "float64", "true_positive": "boolean"})
    table["size_bin"] = pd.Categorical(table["size_bin"], categories=categories, ordered=True)
    logger.debug("lesion detection%s: %d reference lesions (%d detected), %d predicted components",
                f" for {patient_id}" if patient_id else "", len(ref_ids), int(table["detected"].sum()), len(pred_ids))
    return table


def detection_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Return lesion-wise recall per size bin and precision / false positives, pooled over the table's rows.

    Parameters
    ----------
    table
        Output of :func:`lesion_detection`, possibly concatenated over patients.

    Returns
    -------
    pandas.DataFrame
        One row per size bin and a final ``"all"`` row: ``n_reference``, ``n_detected``, ``recall`` (of reference
        lesions in the bin), ``n_predicted``, ``n_false_positive`` and ``precision`` (of predicted components whose own
        size falls in the bin). Ratios with an empty denominator are NaN.

    Examples
    --------
    >>> ref = np.zeros((12, 12, 12), dtype=np.uint8); ref[1:4, 1:4, 1:4] = 1; ref[7:11, 7:11, 7:11] = 1
    >>> pred = np.zeros_like(ref); pred[1:4, 1:4, 1:4] = 1
    >>> s = detection_summary(lesion_detection(pred, ref, spacing=(5.0, 5.0, 5.0)))
    >>> s.loc[s["size_bin"] == "all", ["n_reference", "recall", "precision", "n_false_positive"]].to_dict("records")
    [{'n_reference': 2, 'recall': 0.5, 'precision': 1.0, 'n_false_positive': 0}]
    """
    if not isinstance(table, pd.DataFrame):
        raise DataValidationError(f"table must be a DataFrame from lesion_detection; got {type(table).__name__}.")
    missing = [c for c in ("kind", "size_bin", "detected", "true_positive") if c not in table.columns]
    if missing:
        raise DataValidationError(f"table lacks columns {missing}; expected the output of lesion_detection "
                                  f"(columns {_DETECTION_COLUMNS}), found {list(table.columns)}.")
    unknown = sorted(set(table["kind"]) - {"reference", "predicted"})
    if unknown:
        raise DataValidationError(f"table's kind column holds {unknown}; expected only 'reference' and 'predicted'.")
    bins = table["size_bin"]
    order = list(bins.cat.categories) if isinstance(bins.dtype, pd.CategoricalDtype) else list(pd.unique(bins.dropna()))
    is_ref = table["kind"] == "reference"
    refs, preds = table[is_ref], table[~is_ref]

    def row(label: str, r: pd.DataFrame, p: pd.DataFrame) -> dict:
        n_ref, n_det = len(r), int(r["detected"].astype(bool).sum())
        n_pred, n_tp = len(p), int(p["true_positive"].astype(bool).sum())
        return {"size_bin": label, "n_reference": n_ref, "n_detected": n_det,
                "recall": n_det / n_ref if n_ref else float("nan"), "n_predicted": n_pred,
                "n_false_positive": n_pred - n_tp, "precision": n_tp / n_pred if n_pred else float("nan")}

    rows = [row(str(b), refs[refs["size_bin"] == b], preds[preds["size_bin"] == b]) for b in order]
    rows.append(row("all", refs, preds))
    return pd.DataFrame(rows)
