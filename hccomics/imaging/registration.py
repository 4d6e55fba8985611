"""Rigid then affine registration of the phases of an exam onto its reference phase (SimpleITK).

Every phase is moved onto the reference phase's voxel grid, so that the reference masks (liver,
lesions) apply to all phases. Results are written beside their parameters and input checksums
and are reused when a later call has the same inputs and parameters (DESIGN §6).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from hccomics._options import check_option
from hccomics.errors import DataValidationError
from hccomics.io.files import atomic_path, atomic_write_text, sha256sum
from hccomics.io.nifti import read_nifti, save_nifti

__all__ = ["RegistrationResult", "register_cohort", "register_phases", "warp_to_reference"]

log = logging.getLogger(__name__)

Metric = Literal["mattes", "correlation"]
STAGES = ("rigid", "affine")
METRICS = ("mattes", "correlation")
# Choices measured on the demo cohort against its planted misalignment (see register_phases, Notes)
MASK_MARGIN_MM = 30.0  # the metric samples the liver and this much around it
WINDOW_MARGIN_MM = 10.0  # intensities are clipped to the 1st-99th percentile of the liver and this much around it
EDGE_MM = 8.0  # and not within this of the field of view's faces, where a moved phase shows padding
METRIC_BINS = 64  # Mattes histogram of the windowed intensities
STEP_MM = 0.5  # the first step of a pyramid level moves voxels by at most this times its shrink factor
CONVERGENCE = (1e-6, 10)  # a level stops when the metric changed less than this over this many iterations
MAX_SAMPLES = 30_000  # sample points per level at most: bounds the time per iteration on large volumes
HISTOGRAM_BINS = 32  # QC mutual information
QC_COLUMNS = ["phase", "ncc_before", "ncc_after", "mi_before", "mi_after", "liver_dice_before", "liver_dice_after",
              "final_metric", "iterations", "seconds"]
_AFFINE_TOL_MM = 1e-3
_FORMAT = 2  # bump when the files written here change meaning, so that old results are recomputed


@dataclass
class RegistrationResult:
    """Registered phases of one exam: ``images`` (phase -> path on the reference grid, the reference included),
    ``transforms`` (phase -> 4 x 4 world matrix ``M``, see :func:`register_phases`; identity for the reference),
    ``qc`` (one row per moving phase, :data:`QC_COLUMNS`), ``reference`` and ``params`` (``params.json``)."""

    images: dict[str, Path]
    transforms: dict[str, np.ndarray]
    qc: pd.DataFrame
    reference: str
    params: dict[str, Any] = field(default_factory=dict)


def _to_sitk(array: np.ndarray, affine: np.ndarray, *, pixel: type = np.float32) -> Any:
    """SimpleITK image whose physical frame is the NIfTI world frame (so transforms need no LPS flip)."""
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.ascontiguousarray(np.asarray(array, dtype=pixel).transpose(2, 1, 0)))
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    img.SetSpacing(spacing.tolist())
    img.SetOrigin(affine[:3, 3].tolist())
    img.SetDirection((affine[:3, :3] / spacing).ravel().tolist())
    return img


def _matrix(tx: Any) -> np.ndarray:
    """4 x 4 matrix of a SimpleITK matrix-offset transform: T(x) = A (x - c) + c + t."""
    tx = tx.Downcast()
    a = np.array(tx.GetMatrix()).reshape(3, 3)
    c, t = np.array(tx.GetCenter()), np.array(tx.GetTranslation())
    return np.block([[a, (c + t - a @ c)[:, None]], [np.zeros((1, 3)), np.ones((1, 1))]])


def _affine_tx(m: np.ndarray) -> Any:
    import SimpleITK as sitk

    return sitk.AffineTransform(m[:3, :3].ravel().tolist(), m[:3, 3].tolist())


def _resample(img: Any, reference: Any, fixed_to_moving: np.ndarray, *, nearest: bool = False, default: float = 0.0) -> np.ndarray:
    import SimpleITK as sitk

    f = sitk.ResampleImageFilter()
    f.SetReferenceImage(reference)
    f.SetTransform(_affine_tx(fixed_to_moving))
    f.SetInterpolator(sitk.sitkNearestNeighbor if nearest else sitk.sitkLinear)
    f.SetDefaultPixelValue(default)
    return sitk.GetArrayFromImage(f.Execute(img)).transpose(2, 1, 0)


@contextlib.contextmanager
def _single_threaded() -> Iterator[None]:
    """Run ITK on one thread: with several, partial sums of the metric arrive in varying order and the result
    changes in the last bits from run to run (seen with SimpleITK 2.5); one thread makes it reproducible."""
    import SimpleITK as sitk

    before = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(before)


@dataclass
class _Problem:
    """What every moving phase is registered against."""

    grid: Any  # the full reference grid, which every phase is resampled onto
    affine: np.ndarray
    fixed: Any  # windowed reference, cropped to the metric region's bounding box
    mask: Any | None  # metric region within that box
    window_region: np.ndarray  # reference voxels whose percentiles set the intensity window
    centre: np.ndarray  # rotation centre (mm): the metric region's centroid


def _window(array: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Clip to the 1st-99th percentile inside ``region``: air and bone would otherwise take most histogram bins."""
    lo, hi = np.percentile(array[region], [1, 99]) if region.any() else (array.min(), array.max())
    return np.clip(array.astype(np.float32), lo, hi)


def _problem(ref_arr: np.ndarray, ref_aff: np.ndarray, liver: np.ndarray | None) -> _Problem:
    spacing = np.linalg.norm(ref_aff[:3, :3], axis=0)
    shape = np.array(ref_arr.shape)
    region = np.zeros(ref_arr.shape, bool)
    e = np.minimum(np.ceil(EDGE_MM / spacing).astype(int), (shape - 1) // 4)
    region[e[0]:shape[0] - e[0], e[1]:shape[1] - e[1], e[2]:shape[2] - e[2]] = True
    window_region = region
    if liver is not None and liver.any():
        from scipy import ndimage

        distance = ndimage.distance_transform_edt(~liver, sampling=spacing)
        near = region & (distance <= MASK_MARGIN_MM)
        region = near if near.any() else region
        window_region = distance <= WINDOW_MARGIN_MM
    ijk = np.argwhere(region)
    lo, hi = ijk.min(0), ijk.max(0) + 1
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    aff = ref_aff.copy()  # cropping: fewer voxels to smooth, shrink and sample
    aff[:3, 3] = ref_aff[:3, :3] @ lo + ref_aff[:3, 3]
    return _Problem(grid=_to_sitk(ref_arr, ref_aff), affine=ref_aff, fixed=_to_sitk(_window(ref_arr, window_region)[box], aff),
                    mask=None if region[box].all() else _to_sitk(region[box], aff, pixel=np.uint8),
                    window_region=window_region, centre=ijk.mean(0) @ ref_aff[:3, :3].T + ref_aff[:3, 3])


def _stage(problem: _Problem, moving: Any, tx: Any, *, metric: str, sampling: float, shrink: Sequence[int],
           iterations: int, seed: int) -> tuple[float, int]:
    """Optimise ``tx`` in place, one pyramid level after the other; return the final metric value and iterations."""
    import SimpleITK as sitk

    value, total = float("nan"), 0
    for level, s in enumerate(shrink):
        reg = sitk.ImageRegistrationMethod()
        reg.SetMetricAsMattesMutualInformation(METRIC_BINS) if metric == "mattes" else reg.SetMetricAsCorrelation()
        # ITK's smoothed gradient images gave derivatives that disagree with the metric's finite differences
        reg.SetMetricUseFixedImageGradientFilter(False)
        reg.SetMetricUseMovingImageGradientFilter(False)
        reg.SetMetricSamplingStrategy(reg.RANDOM)
        # coarse levels have few voxels: sample more of them; ITK reads seed 0 as "seed from the clock"
        n_voxels = np.prod([max(1, n // s) for n in problem.fixed.GetSize()])
        reg.SetMetricSamplingPercentage(min(1.0, sampling * s * s, MAX_SAMPLES / n_voxels), seed % 2**31 + 1 + level)
        if problem.mask is not None:
            reg.SetMetricFixedMask(problem.mask)
        reg.SetInterpolator(sitk.sitkLinear)
        # learning rate set once per level so that the first step moves voxels by STEP_MM * s (RegularStep
        # measures its step in raw parameters: near the optimum one step could change the matrix by the full rate)
        reg.SetOptimizerAsGradientDescent(learningRate=1.0, numberOfIterations=iterations,
                                          convergenceMinimumValue=CONVERGENCE[0], convergenceWindowSize=CONVERGENCE[1],
                                          estimateLearningRate=reg.Once, maximumStepSizeInPhysicalUnits=STEP_MM * s)
        reg.SetOptimizerScalesFromPhysicalShift()
        reg.SetShrinkFactorsPerLevel([int(s)])
        reg.SetSmoothingSigmasPerLevel([s / 2.0 if s > 1 else 0.0])  # in voxels (the default unit is mm)
        reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
        reg.SetInitialTransform(tx, inPlace=True)
        reg.Execute(problem.fixed, moving)
        value, total = float(reg.GetMetricValue()), total + int(reg.GetOptimizerIteration())
    return value, total


def _register(problem: _Problem, moving: Any, *, stages: Sequence[str], **kw: Any) -> tuple[np.ndarray, float, int]:
    """Reference -> moving 4 x 4 matrix (the map SimpleITK resamples with), final metric, total iterations."""
    import SimpleITK as sitk

    # rotations about the liver, not the image centre, keep rotation and translation apart for the optimiser
    c = problem.centre.tolist()
    value, total, current = float("nan"), 0, np.eye(4)
    for stage in stages:
        tx = sitk.Euler3DTransform() if stage == "rigid" else sitk.AffineTransform(3)
        tx.SetCenter(c)
        if stage == "rigid":
            tx.SetTranslation(current[:3, 3].tolist())
        else:  # the affine stage starts where the rigid one ended: A (x - c) + c + t = M x
            tx.SetMatrix(current[:3, :3].ravel().tolist())
            tx.SetTranslation((current[:3, 3] + current[:3, :3] @ problem.centre - problem.centre).tolist())
        value, n = _stage(problem, moving, tx, **kw)
        current, total = _matrix(tx), total + n
    return current, value, total


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else float("nan")


def _mutual_information(a: np.ndarray, b: np.ndarray) -> float:
    """Mutual information (nats) of two intensity samples, 32 x 32 histogram over each sample's range."""
    joint, _, _ = np.histogram2d(a, b, bins=HISTOGRAM_BINS)
    p = joint / joint.sum()
    nz = p > 0
    return float((p[nz] * np.log(p[nz] / (p.sum(1, keepdims=True) @ p.sum(0, keepdims=True))[nz])).sum())


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2.0 * (a & b).sum() / (a.sum() + b.sum())) if a.any() or b.any() else float("nan")


def _check_inputs(images: Mapping[str, Path], masks: Mapping[str, Path]) -> dict[str, tuple]:
    """Read every image and mask; raise one error listing all problems; return phase -> (image, affine, mask)."""
    problems = [f"phase name {ph!r} is not usable as a file name; use letters, digits, '_', '-' or '.'"
                for ph in images if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", ph)]
    problems += [f"a liver mask is given for phase {ph!r}, which has no image (images: {sorted(images)})"
                 for ph in masks if ph not in images]
    if problems:
        raise DataValidationError("registration inputs are invalid", problems)
    out: dict[str, tuple] = {}
    for ph, path in images.items():
        arr, aff = read_nifti(path)
        if arr.ndim != 3:
            problems.append(f"{ph}: {path} has shape {arr.shape}; expected a 3-D volume")
            continue
        if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
            n = int((~np.isfinite(arr)).sum())
            problems.append(f"{ph}: {path} holds {n} NaN or infinite voxels; expected finite intensities. "
                            "Fill them (e.g. with the background value) or export the series again")
            continue
        mask = None
        if ph in masks:
            m, maff = read_nifti(masks[ph])
            if m.shape != arr.shape or not np.allclose(maff, aff, atol=_AFFINE_TOL_MM):
                problems.append(f"{ph}: liver mask {masks[ph]} has grid {m.shape} (affine origin {np.round(maff[:3, 3], 2)}) "
                                f"but its image {path} has {arr.shape} (origin {np.round(aff[:3, 3], 2)}); expected the "
                                "same grid: resample the mask onto its image (nearest neighbour)")
                continue
            mask = np.asarray(m) > 0
        out[ph] = (arr, aff, mask)
    if problems:
        raise DataValidationError(f"{len(problems)} problem(s) in the registration inputs", problems)
    return out


def _params_record(images: Mapping[str, Path], masks: Mapping[str, Path], params: dict) -> dict:
    from importlib import metadata

    return {"format": _FORMAT, "params": params,
            "inputs": {"images": {ph: sha256sum(p) for ph, p in images.items()},
                       "liver_masks": {ph: sha256sum(p) for ph, p in masks.items()}},
            "versions": {name: metadata.version(name) for name in ("SimpleITK", "numpy", "hccomics")}}


def _load_previous(out_dir: Path, record: dict) -> RegistrationResult | None:
    """The stored result when ``params.json`` records the same inputs, parameters and versions and the outputs are intact."""
    try:
        old = json.loads((out_dir / "params.json").read_text())
        if {k: old.get(k) for k in record} != json.loads(json.dumps(record)):
            return None
        for name, digest in old["outputs"].items():
            if sha256sum(out_dir / name) != digest:
                return None
        transforms = json.loads((out_dir / "transforms.json").read_text())["transforms"]
        qc = pd.read_csv(out_dir / "qc.csv")
    except (OSError, ValueError, KeyError):
        return None
    return RegistrationResult(images={ph: out_dir / f"{ph}.nii.gz" for ph in record["inputs"]["images"]},
                              transforms={ph: np.array(m) for ph, m in transforms.items()}, qc=qc,
                              reference=record["params"]["reference"], params=old)


def _register_phase(problem: _Problem, arr: np.ndarray, aff: np.ndarray, **kw: Any) -> tuple[np.ndarray, np.ndarray, float, int]:
    """Register one phase; return it resampled onto the reference grid (its own dtype), the reference -> moving
    matrix, the final metric value and the iterations."""
    raw = _to_sitk(arr, aff)
    on_grid = arr.shape == tuple(problem.grid.GetSize()) and np.allclose(aff, problem.affine, atol=_AFFINE_TOL_MM)
    seen = problem.window_region if on_grid else _resample(
        _to_sitk(problem.window_region, problem.affine, pixel=np.uint8), raw, np.eye(4), nearest=True) > 0
    fixed_to_moving, value, n_iter = _register(problem, _to_sitk(_window(arr, seen), aff), **kw)
    warped = _resample(raw, problem.grid, fixed_to_moving, default=float(arr.min()))
    if np.issubdtype(arr.dtype, np.integer):
        info = np.iinfo(arr.dtype)
        warped = np.clip(np.rint(warped), info.min, info.max)
    return warped.astype(arr.dtype), fixed_to_moving, value, n_iter


def _qc(problem: _Problem, ref_arr: np.ndarray, ref_liver: np.ndarray | None, arr: np.ndarray, aff: np.ndarray,
        own_liver: np.ndarray | None, warped: np.ndarray, fixed_to_moving: np.ndarray) -> dict[str, float]:
    """Similarity to the reference (inside its liver, else everywhere) and liver Dice, before and after."""
    region = ref_liver if ref_liver is not None and ref_liver.any() else np.ones(ref_arr.shape, bool)
    ref_values = ref_arr[region].astype(np.float64)
    before = _resample(_to_sitk(arr, aff), problem.grid, np.eye(4), default=float(arr.min()))  # as is, on the grid
    b, a = before[region].astype(np.float64), warped[region].astype(np.float64)
    dice_before = dice_after = float("nan")
    if own_liver is not None and ref_liver is not None:
        own = _to_sitk(own_liver, aff, pixel=np.uint8)
        dice_before = _dice(ref_liver, _resample(own, problem.grid, np.eye(4), nearest=True) > 0)
        dice_after = _dice(ref_liver, _resample(own, problem.grid, fixed_to_moving, nearest=True) > 0)
    return {"ncc_before": _ncc(ref_values, b), "ncc_after": _ncc(ref_values, a),
            "mi_before": _mutual_information(ref_values, b), "mi_after": _mutual_information(ref_values, a),
            "liver_dice_before": dice_before, "liver_dice_after": dice_after}


def register_phases(
    images: Mapping[str, str | Path],
    *,
    reference: str,
    out_dir: str | Path,
    liver_masks: Mapping[str, str | Path] | None = None,
    stages: Sequence[str] = ("rigid", "affine"),
    metric: Metric = "mattes",
    sampling: float = 0.2,
    shrink: Sequence[int] = (4, 2, 1),
    iterations: int = 200,
    seed: int = 0,
    overwrite: bool = False,
) -> RegistrationResult:
    """Register every phase of an exam onto the reference phase; return the registered images, transforms and QC.

    Each moving phase gets a rigid (Euler, about the liver) then an affine registration by Mattes mutual
    information (or correlation) on a pyramid (``shrink``, smoothing sigma ``shrink / 2`` voxels) with a seeded
    random sample of voxels (a fraction ``sampling`` at full resolution, ``sampling * shrink**2`` above, at most
    30 000 points), at most ``iterations`` per level, and is resampled onto the reference grid (linear, same
    dtype). ``out_dir`` receives ``<phase>.nii.gz`` for every phase (the reference rewritten), ``transforms.json``,
    ``qc.csv`` and, last, ``params.json`` (parameters, input and output sha256, versions); a later call with the
    same inputs and parameters loads it unless ``overwrite``. The same call writes the same bytes.

    Parameters
    ----------
    images
        Phase -> 3-D NIfTI path, ``reference`` included.
    liver_masks
        Phase -> liver mask on that phase's grid. The reference's focuses the metric and the QC; a moving phase's
        own gives its liver Dice.
    stages, metric
        ``("rigid", "affine")``, ``("rigid",)`` or ``("affine",)``; ``"mattes"`` or ``"correlation"``.

    Returns
    -------
    RegistrationResult
        ``transforms[phase]`` is a 4 x 4 world -> world matrix ``M`` in the NIfTI world frame (the affine's frame,
        RAS mm): the voxel at world point ``x`` of the moving phase shows the reference anatomy at ``M @ x``, as in
        the demo cohort's ``truth_imaging.json``; the registered image at ``x`` is the moving one at ``inv(M) @ x``.
        ``qc``: NCC and mutual information with the reference inside its liver (whole image without one) before
        (moving phase as is, on the reference grid) and after; Dice of the reference liver with the phase's own
        liver mask before and after warping it (nearest neighbour; NaN without one); metric, iterations, seconds.

    Raises
    ------
    DataValidationError
        ``reference`` not among ``images``; a mask whose grid differs from its image's; NaN voxels; not 3-D.

    Notes
    -----
    Choices measured against the demo cohort's planted 2-5 mm misalignment: the metric samples the liver and
    30 mm around it (10 mm left a bias of about 1 mm) but not within 8 mm of the field of view's faces (padding in
    a moved phase); intensities are clipped to the 1st-99th percentile around the liver; gradients are taken at
    the sample points (ITK's gradient images disagreed with the metric); gradient descent's learning rate is set
    once per level from a step in mm. ITK runs on one thread meanwhile: with several, results changed in the
    last bits between runs.

    Examples
    --------
    >>> from hccomics.datasets import demo_cohort_dir, make_demo_cohort
    >>> from hccomics.io import image_table
    >>> t = image_table(make_demo_cohort(demo_cohort_dir("smoke"), profile="smoke"))  # doctest: +SKIP
    >>> ct = t[(t.patient_id == t.patient_id[0]) & (t.modality == "CT")].set_index("phase")  # doctest: +SKIP
    >>> res = register_phases(ct["path"], reference="portal_venous", out_dir="reg", liver_masks=ct["mask_liver"].dropna())  # doctest: +SKIP
    >>> res.qc[["phase", "liver_dice_before", "liver_dice_after"]]  # doctest: +SKIP
    """
    images = {str(k): Path(v) for k, v in dict(images).items()}
    masks = {str(k): Path(v) for k, v in dict(liver_masks if liver_masks is not None else {}).items()}
    if reference not in images:
        raise DataValidationError(f"reference phase {reference!r} is not among the images; found {sorted(images)}. "
                                  "Pass its image or choose one of those phases as reference=")
    metric = check_option("metric", metric, METRICS)
    stages = tuple(check_option("stages", s, STAGES) for s in stages)
    shrink = tuple(int(s) for s in shrink)
    if stages not in (STAGES, STAGES[:1], STAGES[1:]) or not shrink or min(shrink) < 1 or not 0 < sampling <= 1 \
            or iterations < 1:
        raise DataValidationError(f"expected stages ('rigid', 'affine'), ('rigid',) or ('affine',), shrink factors "
                                  f">= 1, 0 < sampling <= 1 and iterations >= 1; got {stages}, {shrink}, {sampling}, "
                                  f"{iterations}")
    missing = [str(p) for p in [*images.values(), *masks.values()] if not p.is_file()]
    if missing:
        raise DataValidationError(f"input files do not exist: {missing}; check the image table or manifest paths")
    out_dir = Path(out_dir)
    params = {"reference": reference, "stages": list(stages), "metric": metric, "sampling": float(sampling),
              "shrink": list(shrink), "iterations": int(iterations), "seed": int(seed), "mask_margin_mm": MASK_MARGIN_MM,
              "window_margin_mm": WINDOW_MARGIN_MM, "edge_mm": EDGE_MM, "metric_bins": METRIC_BINS, "step_mm": STEP_MM,
              "convergence": list(CONVERGENCE), "max_samples": MAX_SAMPLES, "qc_bins": HISTOGRAM_BINS, "threads": 1}
    record = _params_record(images, masks, params)
    if not overwrite and (previous := _load_previous(out_dir, record)) is not None:
        log.info("registration in %s is up to date; loaded", out_dir)
        return previous

    data = _check_inputs(images, masks)
    out_dir.mkdir(parents=True, exist_ok=True)
    ref_arr, ref_aff, ref_liver = data[reference]
    problem = _problem(ref_arr, ref_aff, ref_liver)
    written = {reference: save_nifti(ref_arr, out_dir / f"{reference}.nii.gz", affine=ref_aff)}
    transforms, rows = {reference: np.eye(4)}, []
    with _single_threaded():
        for ph, (arr, aff, own_liver) in data.items():
            if ph == reference:
                continue
            start = time.perf_counter()
            warped, fixed_to_moving, value, n_iter = _register_phase(
                problem, arr, aff, stages=stages, metric=metric, sampling=float(sampling), shrink=shrink,
                iterations=int(iterations), seed=int(seed))
            seconds = time.perf_counter() - start
            written[ph] = save_nifti(warped, out_dir / f"{ph}.nii.gz", affine=ref_aff)
            transforms[ph] = np.linalg.inv(fixed_to_moving)
            rows.append({"phase": ph, **_qc(problem, ref_arr, ref_liver, arr, aff, own_liver, warped, fixed_to_moving),
                         "final_metric": value, "iterations": n_iter, "seconds": seconds})
            log.debug("registered %s onto %s in %.2f s (%d iterations)", ph, reference, seconds, n_iter)
    qc = pd.DataFrame(rows, columns=QC_COLUMNS)
    atomic_write_text(out_dir / "transforms.json", json.dumps({
        "convention": "world -> world 4x4 M in the NIfTI world frame (RAS mm): the voxel at world x of the moving phase "
                      "shows the reference anatomy at M @ x; the registered image at x samples the moving one at inv(M) @ x",
        "reference": reference, "transforms": {ph: m.tolist() for ph, m in transforms.items()},
    }, indent=1) + "\n")
    with atomic_path(out_dir / "qc.csv") as tmp:
        qc.to_csv(tmp, index=False)
    outputs = {p.name: sha256sum(p) for p in [*written.values(), out_dir / "transforms.json"]}
    stored = {**record, "outputs": outputs}
    # written last: its presence marks a complete folder, so an interrupted run is redone
    atomic_write_text(out_dir / "params.json", json.dumps(stored, indent=1) + "\n")
    return RegistrationResult(images=written, transforms=transforms, qc=qc, reference=reference, params=stored)


def warp_to_reference(path: str | Path, transform: np.ndarray, *, reference: str | Path, nearest: bool = True) -> np.ndarray:
    """Resample a moving-phase volume (a mask by default) onto the reference grid with a registration transform.

    ``transform`` is a :attr:`RegistrationResult.transforms` matrix ``M`` (the moving voxel at world ``x`` shows
    the reference anatomy at ``M @ x``); ``reference`` is a NIfTI on the target grid. Nearest neighbour keeps
    labels; ``nearest=False`` interpolates linearly (images). Voxels mapped from outside the moving volume are 0.

    Examples
    --------
    >>> res = register_phases(ct["path"], reference="portal_venous", out_dir="reg")  # doctest: +SKIP
    >>> zone = warp_to_reference(zone_path, res.transforms["post_ablation"], reference=ct["path"]["portal_venous"])  # doctest: +SKIP
    """
    m = np.asarray(transform, dtype=float)
    if m.shape != (4, 4) or not np.all(np.isfinite(m)):
        raise DataValidationError(f"transform must be a finite 4 x 4 world -> world matrix; got shape {m.shape}")
    arr, aff = read_nifti(path)
    ref_arr, ref_aff = read_nifti(reference)
    out = _resample(_to_sitk(arr, aff), _to_sitk(np.zeros(ref_arr.shape[:3], np.float32), ref_aff), np.linalg.inv(m),
                    nearest=nearest)
    return out.astype(arr.dtype) if nearest else out


def register_cohort(
    table: pd.DataFrame,
    *,
    modality: str = "CT",
    reference: str | None = None,
    phases: Sequence[str] | None = None,
    out_dir: str | Path,
    n_jobs: int | None = None,
    **kwargs: Any,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Register every patient's exam with :func:`register_phases`; return the registered table and the QC.

    Patients run in ``n_jobs`` worker processes (default: the CPU count, at most the number of patients; each
    registration is single-threaded, so processes are what uses the cores); results do not depend on ``n_jobs``.

    ``table`` is like :func:`hccomics.io.image_table`; ``reference`` defaults to the protocol's (portal venous CT,
    T2 MRI) and ``phases`` to :data:`hccomics.imaging.data.DEFAULT_PHASES` (``post_ablation`` only when asked
    for); every patient with this modality must have each. Liver masks come from ``mask_liver``; ``kwargs`` go
    to :func:`register_phases`; each patient's results go to ``out_dir/<patient_id>/``.

    Returns
    -------
    registered : pandas.DataFrame
        ``patient_id``, ``modality``, ``phase``, ``path`` (registered) and the ``mask_*`` columns, filled on the
        reference row (its masks now fit every phase) as in :func:`hccomics.io.image_table`; the input of
        :func:`hccomics.imaging.data.segmentation_items`.
    qc : pandas.DataFrame
        Every patient's :attr:`RegistrationResult.qc` with ``patient_id`` first.

    Raises
    ------
    DataValidationError
        Missing columns, no series of ``modality``, patients lacking a phase (all listed at once).

    Examples
    --------
    >>> from hccomics.datasets import demo_cohort_dir, make_demo_cohort
    >>> from hccomics.io import image_table
    >>> t = image_table(make_demo_cohort(demo_cohort_dir("smoke"), profile="smoke"))  # doctest: +SKIP
    >>> registered, qc = register_cohort(t, out_dir="registered")  # doctest: +SKIP
    """
    from hccomics.imaging._parallel import map_processes
    from hccomics.imaging.data import DEFAULT_PHASES, REFERENCE_PHASE

    modality = check_option("modality", modality, tuple(REFERENCE_PHASE))
    missing = {"patient_id", "modality", "phase", "path"} - set(table.columns)
    if missing:
        raise DataValidationError(f"the image table lacks columns {sorted(missing)}; found {list(table.columns)}. "
                                  "Pass the output of hccomics.io.image_table")
    reference = reference or REFERENCE_PHASE[modality]
    phases = list(dict.fromkeys([reference, *(phases or DEFAULT_PHASES[modality])]))
    rows = table[table["modality"] == modality]
    if rows.empty:
        raise DataValidationError(f"no {modality} series in the table; found modalities {sorted(set(table['modality']))}")
    exams = {pid: exam.set_index("phase") for pid, exam in rows.groupby("patient_id", sort=False)}
    problems = [f"patient {pid}: {modality} phase {ph!r} found {int((exam.index == ph).sum())} times (has "
                f"{sorted(set(exam.index))})" for pid, exam in exams.items() for ph in phases if (exam.index == ph).sum() != 1]
    if problems:
        raise DataValidationError(f"expected every patient to have each of the phases {phases} exactly once; fix the "
                                  "manifest or pass phases=", problems)
    mask_cols = [c for c in table.columns if c.startswith("mask_")]
    out_rows, qcs = [], []
    jobs = {pid: (dict(exam["path"].loc[phases]),
                  dict(exam["mask_liver"].loc[phases].dropna()) if "mask_liver" in exam else None) for pid, exam in exams.items()}
    # the children only run SimpleITK
    done = map_processes(register_phases, [((images,), {"reference": reference, "out_dir": Path(out_dir) / str(pid),
                                                        "liver_masks": liver, **kwargs}) for pid, (images, liver) in jobs.items()],
                         n_jobs=n_jobs, desc=f"registering {modality} phases", unit="patient")
    results = dict(zip(jobs, done))
    for pid, exam in exams.items():
        res = results[pid]
        for ph in phases:
            masks = {c: exam.at[ph, c] for c in mask_cols} if ph == reference else {}
            out_rows.append({"patient_id": pid, "modality": modality, "phase": ph, "path": str(res.images[ph]), **masks})
        qcs.append(res.qc.assign(patient_id=pid))
    registered = pd.DataFrame(out_rows, columns=["patient_id", "modality", "phase", "path", *mask_cols])
    return registered, pd.concat(qcs, ignore_index=True)[["patient_id", *QC_COLUMNS]]
