"""MVI networks on tumour-plus-ring crops: MONAI 3-D ResNet encoders, modality fusion, multi-task and expert targets.

One network covers the models of the MVI notebook by its options: the primary modality's encoder (CT, or MRI
alone), an optional second encoder for MRI (fusion: a patient without MRI gets a zero MRI embedding and the
flag ``has_mri`` = 0, so the head learns what to do without it), optional tabular inputs (clinical and semantic
features, into the head), and targets beyond MVI (grade; or interpretable features a radiologist reads, for the
expert-guided model). An encoder pools its features globally (a 3-D ResNet) or per region of the crop's region map
(tumour, each ring shell, the rest of the liver: a small convolutional stem whose feature maps are averaged over each
region). Every model is cross-validated on the saved folds (:func:`cross_validate_cnn`), and its out-of-fold
predictions and embeddings come from the fold model that did not train on the patient.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from hccomics.errors import DataValidationError, NotFittedError

__all__ = [
    "CVResult", "MVIClassifier", "MVINet", "MultiTaskLoss", "RegionPooledEncoder", "cross_validate_cnn", "fold_classifier",
    "mvi_models", "two_stage_oof",
]

log = logging.getLogger(__name__)


def _encoder(channels: int, widen: float) -> nn.Module:
    from monai.networks.nets import ResNet

    # ResNet-10 layout with a 3^3 stem and no max-pool: crops are small (32 x 32 x 16 in the demo); batch norm: with
    # instance norm a planted local signal leaked into per-crop statistics and saliency spread over the whole crop
    # (measured on synthetic crops); ReLU not in place, which Grad-CAM's backward hooks need
    return ResNet(block="basic", layers=[1, 1, 1, 1], block_inplanes=[64, 128, 256, 512], spatial_dims=3,
                  n_input_channels=channels, conv1_t_size=3, conv1_t_stride=1, no_max_pool=True, widen_factor=widen,
                  feed_forward=False, act=("relu", {"inplace": False}), norm="batch")


class RegionPooledEncoder(nn.Module):
    """Convolutional stem at the crop's resolution, its feature maps averaged (mean and SD) over each region.

    The MVI signal that the reviewed studies report, and that the demo cohort plants, is a thin peritumoral band:
    a global average pool dilutes it with the whole crop, while radiomics averages it over the ring and separates
    MVI on the demo cohort. Pooling learned features per region of the crop's region map gives the network that
    average. Masked pooling is written here:
    MONAI and PyG pool over a whole image or a graph, not over the regions of a label map.

    Parameters
    ----------
    channels
        Input channels.
    width
        Feature maps of the stem; the embedding has ``2 * width * n_regions`` features (mean and SD per region).
    n_regions
        Region codes pooled: 1 .. ``n_regions`` (code 0, outside the liver, is not pooled).

    Examples
    --------
    >>> enc = RegionPooledEncoder(2, width=4, n_regions=3)
    >>> regions = torch.tensor([0, 1, 2, 3]).repeat(2, 1, 4, 4, 1)  # (batch, 1, x, y, z) codes
    >>> enc(torch.zeros(2, 2, 4, 4, 4), regions).shape
    torch.Size([2, 24])
    """

    def __init__(self, channels: int, *, width: int = 16, n_regions: int = 7) -> None:
        super().__init__()
        from monai.networks.blocks import Convolution

        # ReLU not in place, which Grad-CAM's backward hooks need; batch norm as in the ResNet encoder
        block = dict(spatial_dims=3, kernel_size=3, norm="batch", act=("relu", {"inplace": False}))
        self.stem = nn.Sequential(Convolution(in_channels=channels, out_channels=width, **block),
                                  Convolution(in_channels=width, out_channels=width, **block))
        self.n_regions = int(n_regions)

    def forward(self, x: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
        if regions.shape[-3:] != x.shape[-3:]:
            raise DataValidationError(f"region map {tuple(regions.shape[-3:])} and image {tuple(x.shape[-3:])} differ")
        f = self.stem(x)
        b, c, k = f.shape[0], f.shape[1], self.n_regions
        flat = f.reshape(b, c, -1)
        # one-hot region membership (batch, voxel, region): sums over each region as one batched matrix product,
        # a training step 1.9x faster than with a masked sum per region; code 0 and codes above n_regions are pooled nowhere
        codes = regions.reshape(b, -1).long()
        member = nn.functional.one_hot(torch.where(codes > k, 0, codes), k + 1)[..., 1:].to(f.dtype)
        n = member.sum(dim=1).clamp(min=1.0)[:, None, :]  # an absent region pools to zeros
        mean = flat @ member / n  # (batch, feature map, region)
        var = ((flat - mean @ member.transpose(1, 2)) ** 2) @ member / n  # two-pass: no cancellation
        # per region: the means, then the SDs of every feature map
        return torch.stack([mean, (var + 1e-6).sqrt()], dim=1).permute(0, 3, 1, 2).reshape(b, 2 * c * k)


class MVINet(nn.Module):
    """Encoders per modality, concatenated embeddings (and tabular inputs) into a small MLP head.

    Parameters
    ----------
    in_channels
        Channels of the primary input ``image`` (phases plus the tumour-mask channel).
    mri_channels
        Channels of the second, MRI input for fusion; ``None`` for a single-modality model.
    n_outputs
        Logits out (MVI first, then the auxiliary targets).
    n_tabular
        Tabular inputs of the head.
    widen
        Width of the ResNet (1.0: 64-512 channels); its embedding has ``512 * widen`` features per encoder.
    modality_heads
        Fusion only: a linear head per encoder beside the joint one, for auxiliary per-modality losses (as MOGONET
        trains each modality's network with its own loss). In training mode the network then returns the joint
        logits followed by each encoder's (``3 * n_outputs`` columns); in evaluation mode, the joint logits only.
    n_regions
        ``None``: ResNet encoders with a global pool. A number: :class:`RegionPooledEncoder` encoders with
        ``64 * widen`` feature maps over region codes 1 .. ``n_regions``; the network then takes ``regions=`` (and
        ``mri_regions=`` for fusion), the crops' region maps.

    Examples
    --------
    >>> net = MVINet(in_channels=5, n_outputs=2, widen=0.125)
    >>> net(torch.zeros(2, 5, 16, 16, 8)).shape, net.embed(torch.zeros(2, 5, 16, 16, 8)).shape
    (torch.Size([2, 2]), torch.Size([2, 64]))
    """

    def __init__(self, *, in_channels: int, mri_channels: int | None = None, n_outputs: int = 1, n_tabular: int = 0,
                 widen: float = 0.25, hidden: int = 32, dropout: float = 0.2, modality_heads: bool = False,
                 n_regions: int | None = None) -> None:
        super().__init__()
        if modality_heads and not mri_channels:
            raise DataValidationError("modality_heads needs a fusion network (mri_channels)")
        self.n_regions = n_regions
        if n_regions:
            stem = max(int(64 * widen), 1)

            def encoder(c: int) -> nn.Module:
                return RegionPooledEncoder(c, width=stem, n_regions=n_regions)

            width = 2 * stem * n_regions
        else:
            def encoder(c: int) -> nn.Module:
                return _encoder(c, widen)

            width = int(512 * widen)
        self.encoders = nn.ModuleDict({"image": encoder(in_channels)})
        if mri_channels:
            self.encoders["mri"] = encoder(mri_channels)
        dim = width * len(self.encoders) + (1 if mri_channels else 0) + n_tabular
        self.n_tabular = n_tabular
        self.head = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, n_outputs))
        self.modality_heads = nn.ModuleDict({m: nn.Linear(width, n_outputs) for m in self.encoders}) if modality_heads else None

    def _encode(self, name: str, x: torch.Tensor, regions: torch.Tensor | None) -> torch.Tensor:
        if not self.n_regions:
            return self.encoders[name](x)
        if regions is None:
            raise DataValidationError("this region-pooled network needs the crops' region maps (regions=, mri_regions=)")
        return self.encoders[name](x, regions)

    def embed(self, image: torch.Tensor, mri: torch.Tensor | None = None, has_mri: torch.Tensor | None = None,
              regions: torch.Tensor | None = None, mri_regions: torch.Tensor | None = None) -> torch.Tensor:
        """Encoder features (the patient's CNN embedding): primary, then MRI zeroed where ``has_mri`` is 0."""
        parts = [self._encode("image", image, regions)]
        if "mri" in self.encoders:
            if mri is None or has_mri is None:
                raise DataValidationError("this fusion network needs mri= and has_mri= inputs")
            parts.append(self._encode("mri", mri, mri_regions) * has_mri.reshape(-1, 1).to(image.dtype))
        return torch.cat(parts, dim=1)

    def forward(self, image: torch.Tensor, mri: torch.Tensor | None = None, has_mri: torch.Tensor | None = None,
                tab: torch.Tensor | None = None, regions: torch.Tensor | None = None,
                mri_regions: torch.Tensor | None = None) -> torch.Tensor:
        emb = self.embed(image, mri, has_mri, regions, mri_regions)
        h = [emb]
        if "mri" in self.encoders:
            h.append(has_mri.reshape(-1, 1).to(image.dtype))
        if self.n_tabular:
            if tab is None:
                raise DataValidationError(f"this network needs tab= with {self.n_tabular} features")
            h.append(tab.to(image.dtype))
        out = self.head(torch.cat(h, dim=1))
        if self.modality_heads is None or not self.training:
            return out
        parts = emb.split(emb.shape[1] // len(self.encoders), dim=1)
        return torch.cat([out, *(self.modality_heads[m](e) for m, e in zip(self.encoders, parts))], dim=1)


class MultiTaskLoss(nn.Module):
    """Binary cross-entropy on the binary targets and mean squared error on the continuous ones, NaN targets skipped.

    ``kinds`` lists ``"binary"`` or ``"continuous"`` per output; ``weights`` scale each target's loss (MVI 1).
    """

    def __init__(self, kinds: Sequence[str], weights: Sequence[float]) -> None:
        super().__init__()
        self.binary = torch.tensor([k == "binary" for k in kinds])
        self.weights = torch.tensor([float(w) for w in weights])

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        target = target.to(logits.dtype)
        seen = ~torch.isnan(target)
        safe = torch.where(seen, target, torch.zeros_like(target))
        bce = nn.functional.binary_cross_entropy_with_logits(logits, safe, reduction="none")
        mse = (logits - safe) ** 2
        per = torch.where(self.binary.to(logits.device), bce, mse) * seen
        counts = seen.sum(dim=0).clamp(min=1)
        return ((per.sum(dim=0) / counts) * self.weights.to(logits.device)).sum()


class MVIClassifier:
    """Fit / predict an :class:`MVINet` on crops (see :func:`hccomics.imaging.prepare_crops`).

    Parameters
    ----------
    modality
        ``"ct"`` or ``"mri"``: the primary input.
    fusion
        Add MRI to a CT model (``modality="ct"``). ``True`` (or ``"embeddings"``): a second encoder for MRI, the two
        embeddings joined in the head; a patient without MRI keeps a zero MRI embedding. ``"channels"`` (early
        fusion): the MRI phases and mask are extra input channels of the one encoder, with a constant ``has_mri``
        channel; a patient without MRI has zero MRI channels. Early fusion can add the two modalities' evidence voxel
        by voxel (CT and MRI crops are both centred on the index lesion at the same spacing and size).
    modality_heads
        Fusion only: train each encoder with its own head and loss beside the joint head (the MRI loss on patients
        with MRI), so that neither encoder rides on the other; predictions come from the joint head.
    pooling
        ``"global"``: ResNet encoders with a global average pool. ``"regions"``: :class:`RegionPooledEncoder`
        encoders, features averaged over the tumour, each ring shell and the rest of the liver of the crops' region
        maps (``regions``, and ``mri_regions`` for an MRI or fusion model; see :func:`hccomics.imaging.prepare_crops`);
        they read the phases without the tumour-mask channel, whose tumour is the map's first region. Not with
        early fusion. The models of :func:`mvi_models` pool by region (chosen on development seeds).
    targets
        Columns of ``y`` predicted, MVI first; binary (0/1) unless listed in ``continuous``.
    continuous
        Targets regressed (standardise them first), e.g. the expert features.
    tabular
        Columns of ``y`` fed to the head (standardised, NaN -> 0).
    aux_weight
        Loss weight of every target after the first.
    epochs, lr, batch_size, widen, device, seed
        Training (AdamW, cosine schedule) and network width; ``device="auto"`` takes CUDA when present.
    checkpoint_dir
        Checkpoints of the engine (an interrupted fit resumes); ``None``: none.

    Examples
    --------
    >>> clf = MVIClassifier(epochs=1)
    >>> clf.predict_proba([])
    Traceback (most recent call last):
    ...
    hccomics.errors.NotFittedError: MVIClassifier is not fitted yet; call fit(crops, y) first
    """

    def __init__(self, *, modality: str = "ct", fusion: bool = False, modality_heads: bool = False, pooling: str = "global",
                 targets: Sequence[str] = ("mvi",),
                 continuous: Sequence[str] = (), tabular: Sequence[str] = (), aux_weight: float = 0.5, epochs: int = 30,
                 lr: float = 1e-3, batch_size: int = 8, widen: float = 0.25, device: str = "auto", seed: int = 0,
                 checkpoint_dir: str | Path | None = None, progress: bool = False) -> None:
        from hccomics._options import check_option

        self.modality = check_option("modality", str(modality).lower(), ("ct", "mri"))
        if fusion not in (False, True, "embeddings", "channels"):
            raise DataValidationError(f"fusion must be False, True / 'embeddings' or 'channels', not {fusion!r}")
        if fusion and self.modality != "ct":
            raise DataValidationError("fusion adds MRI to a CT model: use modality='ct', fusion=True")
        # True stands for "embeddings" (the value kept, so that saved fold models keep their cache identity)
        self.fusion = True if fusion == "embeddings" else fusion
        self.targets, self.continuous = tuple(targets), tuple(continuous)
        if modality_heads and self.fusion is not True:
            raise DataValidationError("modality_heads are heads per encoder of a fusion model: use fusion=True")
        self.modality_heads = bool(modality_heads)
        self.pooling = check_option("pooling", pooling, ("global", "regions"))
        if self.pooling == "regions" and self.fusion == "channels":
            raise DataValidationError("region pooling reads each modality's region map: use fusion=True, not 'channels'")
        if not self.targets:
            raise DataValidationError("targets must name at least the MVI column")
        self.tabular, self.aux_weight = tuple(tabular), float(aux_weight)
        self.epochs, self.lr, self.batch_size, self.widen = int(epochs), float(lr), int(batch_size), float(widen)
        self.device, self.seed, self.checkpoint_dir, self.progress = device, int(seed), checkpoint_dir, progress

    def params(self) -> dict:
        """Hyperparameters (they define a fold model's identity in caches)."""
        # the default pooling is left out, so that fold models saved before the option existed keep their identity
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(self).items()
                if not k.endswith("_") and k not in ("checkpoint_dir", "progress", "device")
                and not (k == "pooling" and v == "global")}

    def _items(self, crops: Sequence[dict], y: pd.DataFrame | None) -> list[dict]:
        items = []
        for c in crops:
            if self.modality == "mri" and float(c["has_mri"]) == 0:
                raise DataValidationError(f"patient {c['patient_id']} has no MRI; an MRI model takes patients with MRI only")
            has_mri = c["has_mri"].reshape(1).float()
            image, mri = c[self.modality], c["mri"]
            if self.pooling == "regions":  # phases only: the region map carries the tumour (a mask channel hurt)
                image, mri = image[:-1], mri[:-1]
            if self.fusion == "channels":
                image = torch.cat([image, mri * has_mri, has_mri.expand(1, *image.shape[1:])])
            it = {"image": image, "mri": mri, "has_mri": has_mri, "patient_id": c["patient_id"]}
            if self.pooling == "regions":
                it.update(self._region_inputs(c))
            if y is not None and c["patient_id"] not in y.index:
                raise DataValidationError(f"patient {c['patient_id']} has a crop but no row in y")
            row = y.loc[c["patient_id"]] if y is not None else None
            if self.tabular:
                if row is None:
                    raise DataValidationError(f"this model takes tabular inputs {list(self.tabular)}: pass y= with them")
                tab = (row[list(self.tabular)].to_numpy(dtype=float) - self.tab_mean_) / self.tab_sd_
                it["tab"] = torch.tensor(np.nan_to_num(tab), dtype=torch.float32)
            if row is not None and all(t in row.index for t in self.targets):
                it["label"] = torch.tensor(row[list(self.targets)].to_numpy(dtype=float), dtype=torch.float32)
            else:
                it["label"] = torch.zeros(len(self.targets))
            items.append(it)
        return items

    def _region_inputs(self, c: dict) -> dict:
        keys = {"regions": "regions" if self.modality == "ct" else "mri_regions"}
        if self.fusion is True:
            keys["mri_regions"] = "mri_regions"
        missing = sorted({v for v in keys.values() if c.get(v) is None})
        if missing:
            raise DataValidationError(f"patient {c['patient_id']}: region pooling needs the crops' {missing} maps; "
                                      "build the crops with crop_items and prepare_crops")
        # a channel axis, so that the dictionary augmentations flip and turn the maps with the image
        return {k: torch.as_tensor(c[v]).reshape(1, *c[v].shape[-3:]) for k, v in keys.items()}

    @property
    def _phases(self) -> slice:
        """The phase channels of the primary input (a global-pool network's last channel is the tumour mask)."""
        return slice(None) if self.pooling == "regions" else slice(0, -1)

    def _inputs(self) -> tuple[str, ...]:
        regions = (("regions",) + (("mri_regions",) if self.fusion is True else ())) if self.pooling == "regions" else ()
        return (("mri", "has_mri") if self.fusion is True else ()) + (("tab",) if self.tabular else ()) + regions

    def fit(self, crops: Sequence[dict], y: pd.DataFrame) -> MVIClassifier:
        """Train on the crops of the patients in ``y`` (index: patient; columns: targets and tabular inputs)."""
        from monai.data import Dataset
        from monai.transforms import Compose, RandFlipd, RandRotate90d

        from hccomics.imaging.engine import Trainer

        crops, items = self._build(crops, y)
        keys = ["image", "mri", *(k for k in ("regions", "mri_regions") if k in items[0])]
        steps = [RandFlipd(keys, prob=0.5, spatial_axis=0), RandFlipd(keys, prob=0.5, spatial_axis=1)]
        if items[0]["image"].shape[1] == items[0]["image"].shape[2]:  # quarter turns keep a square plane's shape only
            steps.append(RandRotate90d(keys, prob=0.5, spatial_axes=(0, 1)))
        aug = Compose(steps)
        kinds = ["continuous" if t in self.continuous else "binary" for t in self.targets]
        weights = [1.0] + [self.aux_weight] * (len(self.targets) - 1)
        if self.modality_heads:  # the joint head, then the CT and the MRI head, each with the targets' losses
            kinds, weights = kinds * 3, weights * 3
            for it in items:  # the MRI head learns from patients with MRI only (NaN targets are skipped)
                it["label"] = torch.cat([it["label"], it["label"],
                                         it["label"] if float(it["has_mri"]) else torch.full_like(it["label"], float("nan"))])
        loss = MultiTaskLoss(kinds, weights)
        trainer = Trainer(self.model_, loss=loss, epochs=self.epochs, lr=self.lr, batch_size=self.batch_size,
                          device=self.device, seed=self.seed, checkpoint_dir=self.checkpoint_dir, progress=self.progress,
                          config={**self.params(), "patients": self.train_patients_},
                          inputs=self._inputs(), desc="MVI CNN", score_name="val_auc")
        from monai.data import get_track_meta, set_track_meta

        tracked = get_track_meta()
        # flips and turns of small crops need no metadata; without it (and with plain batches in the Trainer) a fit of
        # the demo's CT CNN is 1.56x faster, with the same predictions
        set_track_meta(False)
        try:
            self.history_ = trainer.fit(Dataset(items, transform=aug))
        finally:
            set_track_meta(tracked)
        self.device_ = trainer.device
        self.model_.eval()
        return self

    def _build(self, crops: Sequence[dict], y: pd.DataFrame) -> tuple[list[dict], list[dict]]:
        missing = [c for c in (*self.targets, *self.tabular) if c not in y.columns]
        if missing:
            raise DataValidationError(f"y lacks columns {missing}; it has {list(y.columns)}")
        crops = [c for c in crops if c["patient_id"] in y.index]
        if not crops:
            raise DataValidationError("no crop belongs to a patient of y")
        if self.tabular:
            tab = y.loc[[c["patient_id"] for c in crops], list(self.tabular)].to_numpy(dtype=float)
            self.tab_mean_ = np.nan_to_num(np.nanmean(tab, axis=0))
            self.tab_sd_ = np.nan_to_num(np.nanstd(tab, axis=0), nan=1.0)
            self.tab_sd_[self.tab_sd_ == 0] = 1.0
        items = self._items(crops, y)
        first = items[0]
        # region codes 1 .. n: tumour, the ring shells, the rest of the liver (the largest code of the training maps)
        n_regions = max(int(it[k].max()) for it in items for k in ("regions", "mri_regions") if k in it) \
            if self.pooling == "regions" else None
        self.model_ = MVINet(in_channels=first["image"].shape[0], mri_channels=first["mri"].shape[0] if self.fusion is True else None,
                             n_outputs=len(self.targets), n_tabular=len(self.tabular), widen=self.widen,
                             modality_heads=self.modality_heads, n_regions=n_regions)
        self.train_patients_ = sorted(c["patient_id"] for c in crops)
        return crops, items

    def fit_from_state(self, state: dict, crops: Sequence[dict], y: pd.DataFrame) -> MVIClassifier:
        """A fitted model from saved weights and the data it was trained on (for the tabular scaling)."""
        from hccomics.settings import resolve_device

        self._build(crops, y)
        self.model_.load_state_dict(state)
        self.device_ = torch.device(resolve_device(self.device))
        self.model_.to(self.device_).eval()
        self.history_ = pd.DataFrame()
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted yet; call fit(crops, y) first")

    @torch.no_grad()
    def _run(self, crops: Sequence[dict], y: pd.DataFrame | None, fn: Callable) -> np.ndarray:
        self._check_fitted()
        if not crops:
            return np.zeros((0, len(self.targets)))
        items = self._items(crops, y)
        self.model_.eval()
        out = []
        for k in range(0, len(items), 16):
            batch = items[k:k + 16]
            x = torch.stack([b["image"] for b in batch]).to(self.device_)
            extra = {key: torch.stack([b[key] for b in batch]).to(self.device_) for key in self._inputs()}
            out.append(fn(x, extra).float().cpu().numpy())
        return np.concatenate(out)

    def predict_outputs(self, crops: Sequence[dict], y: pd.DataFrame | None = None) -> pd.DataFrame:
        """Every output per patient: probabilities for binary targets, values for continuous ones."""
        raw = self._run(crops, y, lambda x, e: self.model_(x, **e))
        df = pd.DataFrame(raw, index=[c["patient_id"] for c in crops], columns=list(self.targets))
        binary = [t for t in self.targets if t not in self.continuous]
        df[binary] = 1 / (1 + np.exp(-df[binary]))
        return df

    def predict_proba(self, crops: Sequence[dict], y: pd.DataFrame | None = None) -> np.ndarray:
        """Probability of the first target (MVI) per crop; ``y`` supplies tabular inputs when the model has them."""
        self._check_fitted()
        return self.predict_outputs(crops, y)[self.targets[0]].to_numpy()

    def embed(self, crops: Sequence[dict], y: pd.DataFrame | None = None) -> np.ndarray:
        """Encoder embedding of each crop (primary encoder, then MRI for fusion)."""
        return self._run(crops, y, lambda x, e: self.model_.embed(x, **{k: v for k, v in e.items() if k != "tab"}))


@dataclass
class CVResult:
    """Out-of-fold results of one model on the saved folds.

    Attributes
    ----------
    oof
        MVI probability per patient (rows) and repeat (columns), each from the fold model that held it out.
    outputs
        Every output (all targets) out of fold, per repeat.
    train_outputs
        Per ``(repeat, fold)``: the fold model's outputs on its own training patients (for a second stage).
    embeddings
        Out-of-fold encoder embeddings of the first repeat (patients x features).
    train_patients
        Per ``(repeat, fold)``: the patients the fold model trained on.
    weights
        Per ``(repeat, fold)``: the fold model's state-dict file.
    history
        Training history of every fold model.
    """

    oof: pd.DataFrame
    outputs: dict[int, pd.DataFrame]
    train_outputs: dict[tuple[int, int], pd.DataFrame]
    embeddings: pd.DataFrame
    train_patients: dict[tuple[int, int], list[str]]
    weights: dict[tuple[int, int], Path] = field(default_factory=dict)
    history: pd.DataFrame = field(default_factory=pd.DataFrame)
    params: dict = field(default_factory=dict)

    def fold_model(self, patient: str, *, repeat: int = 0) -> tuple[int, int]:
        """``(repeat, fold)`` of the model whose out-of-fold prediction this patient got."""
        for (r, k), train in self.train_patients.items():
            if r == repeat and patient not in train and patient in self.outputs[r].index:
                return r, k
        raise DataValidationError(f"patient {patient} has no out-of-fold prediction in repeat {repeat}")


def cross_validate_cnn(
    make_model: Callable[[int], MVIClassifier],
    crops: Sequence[dict],
    y: pd.DataFrame,
    folds: pd.DataFrame,
    *,
    work_dir: str | Path | None = None,
    repeats: Sequence[int] | None = None,
) -> CVResult:
    """Train one model per saved fold and collect out-of-fold predictions and embeddings.

    Parameters
    ----------
    make_model
        ``make_model(seed)`` returns an unfitted :class:`MVIClassifier` (the seed varies per fold).
    crops
        :func:`hccomics.imaging.prepare_crops` output; an MRI-only model uses the patients with MRI.
    y
        Targets and tabular inputs per patient; patients with a missing MVI label are left out.
    folds
        :func:`hccomics.imaging.mvi_folds` table (patients not in ``y`` or without a usable crop are dropped).
    work_dir
        Fold weights are saved here as ``r{repeat}_f{fold}-<hash>.pt`` and reloaded by a later call with the same
        model, data and fold; training checkpoints resume an interrupted fold.
    repeats
        Which repeats to run (default all).

    Examples
    --------
    >>> cv = cross_validate_cnn(lambda s: MVIClassifier(epochs=20, seed=s), crops, y, folds,  # doctest: +SKIP
    ...                         work_dir="work/models/ct")
    >>> cv.oof[0], cv.embeddings, cv.fold_model("HCC-0007")  # doctest: +SKIP
    """
    from tqdm.auto import tqdm

    from hccomics.imaging.engine import load_state_dict

    probe = make_model(0)
    mvi = probe.targets[0]
    y = y.set_axis(y.index.astype(str))
    folds = folds.assign(patient_id=folds["patient_id"].astype(str))
    usable = {c["patient_id"]: c for c in crops if probe.modality == "ct" or float(c["has_mri"]) == 1}
    y = y[y[mvi].notna()]
    y = y.loc[[p for p in y.index if p in usable]]
    folds = folds[folds["patient_id"].isin(y.index)]
    repeats = sorted(folds["repeat"].unique()) if repeats is None else list(repeats)
    oof = pd.DataFrame(index=y.index, columns=repeats, dtype=float)
    outputs: dict[int, pd.DataFrame] = {}
    train_outputs, train_patients, weights, histories, emb = {}, {}, {}, [], {}
    jobs = [(r, k) for r in repeats for k in sorted(folds.loc[folds["repeat"] == r, "fold"].unique())]
    for r, k in tqdm(jobs, desc="CNN folds", unit="fold", leave=False):
        rep = folds[folds["repeat"] == r].set_index("patient_id")["fold"]
        test = [p for p in y.index if rep.get(p) == k]
        train = [p for p in y.index if rep.get(p) != k]
        model = make_model(1000 * r + k)
        if work_dir is not None:
            model.checkpoint_dir = Path(work_dir) / f"r{r}_f{k}"
        # the weights' identity: model, training patients, their crops and their targets and inputs
        digest = hashlib.sha256(json.dumps({"params": model.params(), "train": train}, sort_keys=True, default=str).encode())
        for p in train:
            digest.update(usable[p][model.modality].numpy().tobytes())
            if model.fusion:
                digest.update(usable[p]["mri"].numpy().tobytes())
            if model.pooling == "regions":
                for key in model._region_inputs(usable[p]).values():
                    digest.update(key.numpy().tobytes())
        digest.update(y.loc[train, [*model.targets, *model.tabular]].to_numpy(dtype=float).tobytes())
        ident = digest.hexdigest()[:12]
        path = Path(work_dir) / f"r{r}_f{k}-{ident}.pt" if work_dir is not None else None
        if path is not None and path.exists():
            model.fit_from_state(load_state_dict(path), [usable[p] for p in train], y.loc[train])
        else:
            model.fit([usable[p] for p in train], y.loc[train])
            if path is not None:
                from hccomics.io.files import atomic_path

                with atomic_path(path) as tmp:
                    torch.save(model.model_.state_dict(), tmp)
            histories.append(model.history_.assign(repeat=r, fold=k))
        out = model.predict_outputs([usable[p] for p in test], y.loc[test])
        outputs.setdefault(r, []).append(out)
        oof.loc[test, r] = out[mvi].to_numpy()
        train_outputs[(r, k)] = model.predict_outputs([usable[p] for p in train], y.loc[train])
        train_patients[(r, k)] = train
        weights[(r, k)] = path
        if r == repeats[0]:
            e = model.embed([usable[p] for p in test], y.loc[test])
            emb.update({p: e[i] for i, p in enumerate(test)})
    embeddings = pd.DataFrame.from_dict(emb, orient="index").reindex(y.index)
    embeddings.columns = [f"cnn_{j}" for j in range(embeddings.shape[1])]
    return CVResult(oof=oof, outputs={r: pd.concat(v).reindex(y.index) for r, v in outputs.items()},
                    train_outputs=train_outputs, embeddings=embeddings, train_patients=train_patients, weights=weights,
                    history=pd.concat(histories, ignore_index=True) if histories else pd.DataFrame(),
                    params=probe.params())


def fold_classifier(make_model: Callable[[int], MVIClassifier], result: CVResult, crops: Sequence[dict], y: pd.DataFrame,
                    *, repeat: int, fold: int) -> MVIClassifier:
    """Reload the fold model of :func:`cross_validate_cnn` (run with a ``work_dir``) that held out fold ``fold``."""
    from hccomics.imaging.engine import load_state_dict

    path = result.weights.get((repeat, fold))
    if path is None or not Path(path).exists():
        raise DataValidationError(f"no saved weights for repeat {repeat}, fold {fold}; run cross_validate_cnn with work_dir=")
    train = result.train_patients[(repeat, fold)]
    by_id = {c["patient_id"]: c for c in crops}
    return make_model(1000 * repeat + fold).fit_from_state(load_state_dict(path), [by_id[p] for p in train], y.loc[train])


def two_stage_oof(result: CVResult, y: pd.Series, *, features: Sequence[str]) -> pd.DataFrame:
    """Second stage of the expert-guided model: MVI from the network's predicted interpretable features.

    In each fold a logistic regression learns MVI from the features the fold's network predicted for its own
    training patients, and is applied to the features it predicted for the held-out ones; one column per repeat.
    (Training and held-out features are thus predicted in-sample and out of fold: the second stage's probabilities
    are not calibrated; compare it by AUC.)

    Examples
    --------
    >>> cv = cross_validate_cnn(mvi_models()["CNN expert-guided"], crops, y, folds)  # doctest: +SKIP
    >>> two_stage_oof(cv, y["mvi"], features=("margin_irregularity", "peritumoral_enhancement", "capsule"))  # doctest: +SKIP
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    missing = [f for f in features if f not in result.oof.columns and f not in next(iter(result.outputs.values())).columns]
    if missing:
        raise DataValidationError(f"the network has no outputs {missing}; train it with these targets")
    out = pd.DataFrame(index=result.oof.index, columns=result.oof.columns, dtype=float)
    for (r, k), train_out in result.train_outputs.items():
        test = [p for p in result.oof.index if p not in set(result.train_patients[(r, k)])]
        lr = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
        lr.fit(train_out[list(features)].to_numpy(), y.loc[train_out.index].to_numpy().astype(int))
        test_out = result.outputs[r].loc[test, list(features)]
        out.loc[test, r] = lr.predict_proba(test_out.to_numpy())[:, 1]
    return out


def mvi_models(*, mri: bool = True, expert: Sequence[str] = ("margin_irregularity", "peritumoral_enhancement", "capsule"),
               clinical: Sequence[str] = ("log_afp", "diameter_mm", "lesion_count"), pooling: str = "regions",
               **options) -> dict[str, Callable[[int], MVIClassifier]]:
    """The MVI networks compared by notebook 06 and the validation, as ``name -> make_model(seed)``.

    CT (MVI + grade; its embedding is ``X_cnn``), MRI, CT + MRI fusion (when ``mri``; joint head plus a head and loss
    per encoder), expert-guided (MVI plus the expert features as regression targets) and CT with clinical and expert
    inputs. ``options`` go to every :class:`MVIClassifier` (epochs, widen, batch_size, device, ...).

    The design was chosen on development seeds (100-102, never the reported ones) by
    ``validation/mvi_fusion_selection.py``: region-pooled encoders (``pooling="regions"``: features averaged over
    the tumour, each ring shell and the rest of the liver) lifted the CT and MRI CNNs towards what the rings' radiomics
    reach, and the fusion with a head per encoder was the one at or above the better single modality on most seeds
    (against the plain joint head, early fusion of MRI as input channels and late fusion of the two singles).
    ``pooling="global"`` gives the ResNet encoders with a global average pool.
    """
    options = {**options, "pooling": pooling}
    expert = tuple(expert)
    models = {
        "CNN CT": lambda s: MVIClassifier(targets=("mvi", "high_grade"), seed=s, **options),
        "CNN MRI": lambda s: MVIClassifier(modality="mri", targets=("mvi", "high_grade"), seed=s, **options),
        "CNN CT + MRI": lambda s: MVIClassifier(fusion=True, modality_heads=True, targets=("mvi", "high_grade"), seed=s,
                                                **options),
        "CNN expert-guided": lambda s: MVIClassifier(targets=("mvi", *expert), continuous=expert, seed=s, **options),
        "CNN + clinical and semantic": lambda s: MVIClassifier(targets=("mvi",), tabular=(*clinical, *expert), seed=s,
                                                               **options),
    }
    return models if mri else {k: v for k, v in models.items() if "MRI" not in k}
