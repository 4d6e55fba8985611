"""Two-stage (liver, then lesions in a liver crop) multi-phase segmentation with k-fold training and fold ensembles."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch

from hccomics._options import check_option
from hccomics.errors import DataValidationError, NotFittedError

__all__ = ["LesionSegmenter", "kfold_split"]

log = logging.getLogger(__name__)

Architecture = Literal["unet", "attention_unet", "dynunet", "convlstm"]
ARCHITECTURES = ("unet", "attention_unet", "dynunet", "convlstm")


def kfold_split(patients: Sequence[str], *, n_folds: int, seed: int = 0) -> list[list[str]]:
    """Validation patients of each fold (shuffled k-fold over patients, seeded); every patient in exactly one fold.

    Examples
    --------
    >>> folds = kfold_split([f"P{i}" for i in range(10)], n_folds=5, seed=0)
    >>> sorted(len(f) for f in folds), sorted(sum(folds, [])) == sorted(f"P{i}" for i in range(10))
    ([2, 2, 2, 2, 2], True)
    """
    if n_folds < 2 or n_folds > len(patients):
        raise DataValidationError(f"n_folds must be between 2 and the number of patients ({len(patients)}), got {n_folds}")
    order = np.random.default_rng(seed).permutation(len(patients))
    return [[patients[i] for i in sorted(order[k::n_folds])] for k in range(n_folds)]


class LesionSegmenter:
    """Liver and HCC lesion segmentation from registered multi-phase CT or MRI (MONAI networks, losses, inferers).

    Two-stage (default): a liver network on a coarse grid over the whole volume, then a lesion network at fine spacing
    inside the liver's bounding box. ``two_stage=False`` trains one whole-volume network with the labels background /
    liver / lesion at the fine spacing instead (the single-stage comparator). Each stage trains k folds (validation
    patients = one fold); prediction averages the folds' softmax probabilities (fold ensemble), maps them back to the
    input grid, keeps the largest liver component, and keeps whole lesions (connected components) that lie mostly inside
    the liver and exceed a minimum volume (:func:`hccomics.imaging.postprocess_lesions`).

    Parameters
    ----------
    architecture
        ``"unet"`` (MONAI UNet), ``"attention_unet"`` (progressive attention), ``"dynunet"`` or ``"convlstm"`` (3D
        encoder per phase with a convolutional LSTM across phases); the liver stage always uses ``"unet"``.
    two_stage
        Liver first, then lesions in the liver crop; ``False``: one whole-volume three-class model.
    coarse_spacing, fine_spacing
        Voxel spacing (mm) of the liver stage and of the lesion (or single) stage.
    n_folds
        Folds of the k-fold training (5 in ``full``; fewer fit a CPU budget).
    liver_epochs, lesion_epochs
        Epochs per fold and stage.
    patch_size
        Training patch (voxels) of the lesion / single stage; the liver stage trains on whole coarse volumes.
    min_lesion_mm3
        Connected components smaller than this are dropped (``postprocess=False`` in :meth:`predict` keeps them).
    work_dir
        Checkpoints and weights: ``fold{k}/liver/`` and ``fold{k}/{lesion|single}_{architecture}_{channels}/`` with
        ``last.pt`` and ``model.pt``, parameters and folds in ``params_{lesion|single}_{architecture}_{channels}.json``;
        a rerun resumes or reuses them, and models of other architectures or widths reuse the liver stage (its
        checkpoint's identity holds only the liver settings, the data and the patients).
    device, amp, seed, progress
        ``"auto"`` device; mixed precision on CUDA; local seed; tqdm bars.

    Examples
    --------
    >>> seg = LesionSegmenter(n_folds=2, liver_epochs=1, lesion_epochs=1)
    >>> seg.params["architecture"], seg.params["two_stage"], seg.params["n_folds"]
    ('unet', True, 2)
    >>> seg.predict([], out_dir="predictions")
    Traceback (most recent call last):
    ...
    hccomics.errors.NotFittedError: LesionSegmenter is not fitted; call fit(items) first
    """

    def __init__(self, *, architecture: Architecture = "unet", two_stage: bool = True, modality: str = "CT",
                 coarse_spacing: Sequence[float] = (3.0, 3.0, 6.0), fine_spacing: Sequence[float] = (1.5, 1.5, 3.0),
                 n_folds: int = 5, liver_epochs: int = 30, lesion_epochs: int = 60, channels: Sequence[int] = (16, 32, 64, 128),
                 liver_channels: Sequence[int] = (8, 16, 32, 64), patch_size: Sequence[int] = (64, 64, 32), batch_size: int = 2,
                 samples_per_volume: int = 2, lr: float = 2e-3, min_lesion_mm3: float = 100.0, threshold: float = 0.5,
                 val_every: int = 5, sw_batch_size: int = 2, amp: bool = True, device: str = "auto", seed: int = 0,
                 work_dir: str | Path | None = None, progress: bool = True) -> None:
        check_option("architecture", architecture, ARCHITECTURES)
        check_option("modality", modality, ("CT", "MRI"))
        self.architecture, self.two_stage, self.modality = architecture, bool(two_stage), modality
        self.coarse_spacing, self.fine_spacing = tuple(map(float, coarse_spacing)), tuple(map(float, fine_spacing))
        self.n_folds, self.liver_epochs, self.lesion_epochs = int(n_folds), int(liver_epochs), int(lesion_epochs)
        self.channels, self.liver_channels = tuple(channels), tuple(liver_channels)
        self.patch_size, self.batch_size, self.samples_per_volume = tuple(patch_size), int(batch_size), int(samples_per_volume)
        self.lr, self.min_lesion_mm3, self.threshold = float(lr), float(min_lesion_mm3), float(threshold)
        self.val_every, self.sw_batch_size, self.amp, self.device, self.seed = int(val_every), int(sw_batch_size), bool(amp), device, int(seed)
        self.work_dir = Path(work_dir) if work_dir is not None else None
        self.progress = progress
        self.models_: dict[str, list[torch.nn.Module]] | None = None

    # -- configuration ------------------------------------------------------------------------------------------
    @property
    def params(self) -> dict:
        """The hyperparameters, as recorded beside results."""
        keys = ("architecture", "two_stage", "modality", "coarse_spacing", "fine_spacing", "n_folds", "liver_epochs",
                "lesion_epochs", "channels", "liver_channels", "patch_size", "batch_size", "samples_per_volume", "lr",
                "min_lesion_mm3", "threshold", "val_every", "seed")
        return {k: getattr(self, k) for k in keys}

    def _stage_params(self, stage: str) -> dict:
        """What defines one stage's training (a checkpoint's identity): the liver stage ignores the lesion settings."""
        shared = {k: getattr(self, k) for k in ("modality", "batch_size", "lr", "seed")}
        if stage == "liver":
            return {**shared, "stage": stage, "spacing": self.coarse_spacing, "epochs": self.liver_epochs,
                    "channels": self.liver_channels}
        return {**shared, "stage": stage, "spacing": self.fine_spacing, "epochs": self.lesion_epochs, "channels": self.channels,
                "architecture": self.architecture, "patch_size": self.patch_size, "samples": self.samples_per_volume}

    def _stages(self) -> list[str]:
        return ["liver", "lesion"] if self.two_stage else ["single"]

    def _stage_name(self, stage: str) -> str:
        """Folder (and params file) name of a stage's models: the lesion models of several architectures and widths
        share one work_dir and its liver models."""
        return stage if stage == "liver" else f"{stage}_{self.architecture}_{'-'.join(map(str, self.channels))}"

    def _network(self, stage: str, n_phases: int) -> torch.nn.Module:
        from hccomics.imaging.networks import build_network

        if stage == "liver":
            return build_network("unet", in_channels=n_phases, out_channels=2, channels=self.liver_channels)
        return build_network(self.architecture, in_channels=n_phases, out_channels=3 if stage == "single" else 2,
                             channels=self.channels)

    def _transform(self, stage: str, *, train: bool, crop_key: str | None = None, with_labels: bool = True):
        from hccomics.imaging.transforms import segmentation_transforms

        spacing = self.coarse_spacing if stage == "liver" else self.fine_spacing
        patch = None if stage == "liver" else self.patch_size
        if stage == "lesion" and crop_key is None:
            crop_key = "liver"
        return segmentation_transforms(stage=stage, modality=self.modality, spacing=spacing, train=train, patch_size=patch,
                                       samples_per_volume=self.samples_per_volume, crop_key=crop_key, with_labels=with_labels)

    def _roi(self, stage: str) -> tuple[int, ...] | None:
        return None if stage == "liver" else self.patch_size  # liver: the whole coarse volume in one window

    def _device(self) -> torch.device:
        from hccomics.settings import resolve_device

        return torch.device(resolve_device(self.device))

    # -- training -----------------------------------------------------------------------------------------------
    def fit(self, items: Sequence[dict], *, folds: Sequence[Sequence[str]] | None = None) -> LesionSegmenter:
        """Train every stage on k folds of ``items`` (from :func:`hccomics.imaging.segmentation_items`).

        ``folds`` gives the validation patients of each fold (default :func:`kfold_split` with ``n_folds`` and
        ``seed``). Sets ``models_`` (stage -> fold models), ``folds_``, ``history_`` (fold, stage, epoch, train_loss,
        val_dice, ...) and ``fold_scores_`` (final validation Dice per fold and stage).
        """
        from monai.data import CacheDataset
        from monai.losses import DiceCELoss

        from hccomics.imaging.data import check_items
        from hccomics.imaging.engine import Trainer, is_main_process
        from hccomics.imaging.transforms import data_errors

        items = list(items)
        if len(items) < 2:
            raise DataValidationError(f"fit needs at least 2 exams, got {len(items)}")
        check_items(items)
        pids = [it["patient_id"] for it in items]
        folds = [list(f) for f in folds] if folds is not None else kfold_split(pids, n_folds=self.n_folds, seed=self.seed)
        unknown = sorted({p for fold in folds for p in fold} - set(pids))
        if unknown:
            raise DataValidationError(f"fold patients {unknown[:5]} are not among the items")
        device = self._device()
        n_phases = len(items[0]["image"])
        phases = list(items[0]["phases"])
        if any(list(it["phases"]) != phases for it in items):
            raise DataValidationError("items stack different phases; build them with one segmentation_items call")
        models, histories, scores = {}, [], []
        for stage in self._stages():
            with data_errors():  # a NaN volume is named, not buried in MONAI's "applying transform"
                train_ds = CacheDataset(items, transform=self._transform(stage, train=True), cache_rate=1.0, progress=False)
                val_ds = CacheDataset(items, transform=self._transform(stage, train=False), cache_rate=1.0, progress=False)
            models[stage] = []
            for k, val_pids in enumerate(folds):
                train_idx = [i for i, p in enumerate(pids) if p not in set(val_pids)]
                val_idx = [i for i, p in enumerate(pids) if p in set(val_pids)]
                torch.manual_seed(self.seed + 101 * k)
                model = self._network(stage, n_phases)
                sub = _Subset(train_ds, train_idx)
                validate = self._validator(val_ds, val_idx, stage, device)
                ckpt = self.work_dir / f"fold{k}" / self._stage_name(stage) if self.work_dir is not None else None
                trainer = Trainer(model, loss=DiceCELoss(to_onehot_y=True, softmax=True), batch_size=self.batch_size,
                                  epochs=self.liver_epochs if stage == "liver" else self.lesion_epochs, lr=self.lr,
                                  amp=self.amp, device=self.device, seed=self.seed + k, checkpoint_dir=ckpt,
                                  progress=self.progress, desc=f"{stage} fold {k + 1}/{len(folds)}",
                                  config={**self._stage_params(stage), "phases": phases,
                                          "train": sorted(pids[i] for i in train_idx), "images": [items[i]["image"] for i in train_idx]})
                hist = trainer.fit(sub, validate=validate if val_idx else None, val_every=self.val_every)
                if ckpt is not None and is_main_process():
                    trainer.save_weights(ckpt / "model.pt")
                model.eval()
                models[stage].append(model)
                histories.append(hist.assign(fold=k, stage=stage))
                final = hist["val_dice"].dropna()
                scores.append({"fold": k, "stage": stage, "val_dice": float(final.iloc[-1]) if len(final) else float("nan"),
                               "n_train": len(train_idx), "n_val": len(val_idx)})
        self.models_, self.folds_, self.phases_ = models, folds, phases
        self.history_ = pd.concat(histories, ignore_index=True)[["fold", "stage", "epoch", "train_loss", "val_dice", "lr", "seconds"]]
        self.fold_scores_ = pd.DataFrame(scores)
        if self.work_dir is not None and is_main_process():
            from hccomics.io.files import atomic_write_text

            # one file per model: models of several architectures and widths share the work_dir
            atomic_write_text(self.work_dir / f"params_{self._stage_name(self._stages()[-1])}.json",
                              json.dumps({**self.params, "folds": folds}, indent=1))
        return self

    def _validator(self, val_ds, val_idx: list[int], stage: str, device: torch.device):
        from monai.metrics import DiceMetric

        from hccomics.imaging.inference import ensemble_probabilities

        def validate(model: torch.nn.Module, epoch: int) -> float:
            metric = DiceMetric(include_background=False, reduction="mean", ignore_empty=False)
            for i in val_idx:
                d = val_ds[i]
                x = d["image"].as_tensor().unsqueeze(0).to(device)
                prob = ensemble_probabilities(x, [model], roi_size=self._roi(stage), sw_batch_size=self.sw_batch_size, amp=self.amp)
                n_cls = prob.shape[1]
                pred = torch.nn.functional.one_hot(prob.argmax(1), n_cls).permute(0, 4, 1, 2, 3)
                ref = torch.nn.functional.one_hot(d["label"].as_tensor().long()[0][None].to(device), n_cls).permute(0, 4, 1, 2, 3)
                metric(pred, ref)
            return float(metric.aggregate().item())

        return validate

    # -- prediction ---------------------------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if self.models_ is None:
            raise NotFittedError("LesionSegmenter is not fitted; call fit(items) first")

    def _select(self, stage: str, folds: int | Sequence[int] | Literal["all"]) -> list[torch.nn.Module]:
        import numbers

        models = self.models_[stage]
        if isinstance(folds, str):
            check_option("folds", folds, ("all",))
            return models
        idx = [int(folds)] if isinstance(folds, numbers.Integral) else [int(k) for k in folds]
        bad = [k for k in idx if not 0 <= k < len(models)]
        if bad:
            raise DataValidationError(f"folds {bad} do not exist; this model has folds 0..{len(models) - 1}")
        return [models[k] for k in idx]

    def predict(self, items: Sequence[dict], *, out_dir: str | Path, folds: int | Sequence[int] | Literal["all"] = "all",
                postprocess: bool = True, save_probabilities: bool = False) -> pd.DataFrame:
        """Segment each exam; write ``out_dir/<patient>/{liver,lesion}.nii.gz`` on the input grid.

        Returns one row per exam: ``patient_id``, ``liver_path``, ``lesion_path`` (instance-labelled, 1 = largest),
        ``n_lesions``. ``folds`` picks the ensemble members (default all folds).
        """
        import nibabel as nib
        from tqdm.auto import tqdm

        from hccomics.imaging.inference import keep_largest_component, postprocess_lesions, predict_volume
        from hccomics.io.nifti import save_nifti

        self._check_fitted()
        wrong = [it["patient_id"] for it in items if list(it["phases"]) != self.phases_]
        if wrong:
            raise DataValidationError(f"items of {wrong[:5]} stack the phases in another order or set; expected "
                                      f"{self.phases_} as in training")
        device = self._device()
        out_dir = Path(out_dir)
        for m in (m for models in self.models_.values() for m in models):
            m.to(device)
        rows = []
        for item in tqdm(list(items), desc="segment", unit="exam", disable=not self.progress):
            pid = item["patient_id"]
            ref = nib.load(item["image"][0])
            affine, spacing = np.asarray(ref.affine), tuple(float(s) for s in ref.header.get_zooms()[:3])
            infer = {"roi_size": None, "device": device, "sw_batch_size": self.sw_batch_size, "amp": self.amp}
            if self.two_stage:
                p_liver = predict_volume(item, self._transform("liver", train=False, with_labels=False),
                                         self._select("liver", folds), **{**infer, "roi_size": self._roi("liver")})
                liver = keep_largest_component(p_liver.argmax(0) == 1)
                liver_path = save_nifti(liver.astype(np.uint8), out_dir / pid / "liver.nii.gz", affine=affine)
                if not liver.any():
                    lesion_prob = np.zeros(liver.shape, np.float32)
                else:
                    crop_item = {**item, "stage1_liver": str(liver_path)}
                    p_les = predict_volume(crop_item, self._transform("lesion", train=False, crop_key="stage1_liver", with_labels=False),
                                           self._select("lesion", folds), **{**infer, "roi_size": self._roi("lesion")})
                    lesion_prob = p_les[1]
            else:
                p = predict_volume(item, self._transform("single", train=False, with_labels=False), self._select("single", folds),
                                   **{**infer, "roi_size": self._roi("single")})
                liver = keep_largest_component(p.argmax(0) >= 1)
                liver_path = save_nifti(liver.astype(np.uint8), out_dir / pid / "liver.nii.gz", affine=affine)
                lesion_prob = (p.argmax(0) == 2).astype(np.float32)  # as trained and validated: by argmax
            if postprocess:
                lesions = postprocess_lesions(lesion_prob, liver, spacing=spacing, threshold=self.threshold,
                                              min_lesion_mm3=self.min_lesion_mm3)
            else:
                lesions = postprocess_lesions(lesion_prob, None, spacing=spacing, threshold=self.threshold, min_lesion_mm3=0.0)
            lesion_path = save_nifti(lesions.astype(np.uint16), out_dir / pid / "lesion.nii.gz", affine=affine)
            if save_probabilities:
                save_nifti((lesion_prob * 1000).astype(np.int16), out_dir / pid / "lesion_probability_x1000.nii.gz", affine=affine)
            rows.append({"patient_id": pid, "liver_path": str(liver_path), "lesion_path": str(lesion_path),
                         "n_lesions": int(lesions.max())})
        return pd.DataFrame(rows, columns=["patient_id", "liver_path", "lesion_path", "n_lesions"])

    def preprocess(self, item: dict, *, stage: str | None = None) -> dict:
        """One exam through a stage's inference pre-processing (what that stage's network sees), e.g. for figures.

        ``stage`` defaults to the last one (lesion, or single); the lesion stage crops to the item's reference liver.
        """
        from hccomics.imaging.transforms import data_errors

        stage = check_option("stage", stage or self._stages()[-1], self._stages())
        with data_errors():
            return self._transform(stage, train=False)(item)

    def predict_out_of_fold(self, items: Sequence[dict], *, out_dir: str | Path, postprocess: bool = True) -> pd.DataFrame:
        """Like :meth:`predict`, but a training patient is segmented by the fold model that did not train on it.

        Patients outside the training folds get the fold ensemble. The ``fold`` column says which ("ensemble" or k),
        so that agreement statistics never rest on a model that saw the patient.
        """
        self._check_fitted()
        where = {p: k for k, fold in enumerate(self.folds_) for p in fold}
        tables = []
        for k in [*range(len(self.folds_)), None]:
            chosen = [it for it in items if where.get(it["patient_id"]) == k]
            if chosen:
                t = self.predict(chosen, out_dir=out_dir, folds="all" if k is None else k, postprocess=postprocess)
                tables.append(t.assign(fold="ensemble" if k is None else str(k)))
        order = [it["patient_id"] for it in items]
        out = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=["patient_id", "fold"])
        return out.set_index("patient_id").loc[order].reset_index()

    @property
    def summary(self) -> pd.DataFrame:
        """Final validation Dice per fold and stage, with the training sizes."""
        self._check_fitted()
        return self.fold_scores_


class _Subset(torch.utils.data.Dataset):
    """A subset that keeps ``transform`` visible, so the engine can seed and checkpoint the random transforms."""

    def __init__(self, dataset, indices: Sequence[int]) -> None:
        self.dataset, self.indices = dataset, list(indices)
        self.transform = getattr(dataset, "transform", None)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        return self.dataset[self.indices[i]]
