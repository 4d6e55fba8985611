"""Training engine: device choice, mixed precision, DDP, progress bars and checkpoints that resume bit for bit."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from hccomics.errors import HccomicsError

__all__ = ["Trainer", "init_distributed", "is_main_process", "load_state_dict"]

log = logging.getLogger(__name__)


def init_distributed(backend: str | None = None) -> bool:
    """Join the process group when launched by ``torchrun`` (``WORLD_SIZE`` > 1); return whether it is distributed.

    ``backend`` defaults to NCCL on CUDA and gloo on the CPU. Each process then uses ``cuda:LOCAL_RANK``.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    dist.init_process_group(backend=backend)
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return True


def _distributed() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def is_main_process() -> bool:
    """True outside DDP, and on rank 0 inside it."""
    import torch.distributed as dist

    return not _distributed() or dist.get_rank() == 0


def load_state_dict(path: str | Path, *, map_location: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Load a model state dict saved by the engine; never unpickles code (``weights_only=True``)."""
    return torch.load(path, map_location=map_location, weights_only=True)


def _random_transforms(transform: Any) -> list:
    """Every randomised object inside a (possibly nested) MONAI Compose, in a stable order.

    Dictionary transforms hold array transforms with their own random state (``RandCropByPosNegLabeld.cropper``,
    ``RandShiftIntensityd.shifter``): all of them must be checkpointed for a bit-identical resume.
    """
    from monai.transforms import Compose, Randomizable

    if transform is None:
        return []
    found: dict[int, Any] = {}

    def walk(obj: Any, depth: int) -> None:
        if isinstance(obj, Randomizable) and id(obj) not in found:
            found[id(obj)] = obj
        if depth == 0 or not hasattr(obj, "__dict__"):
            return
        for value in vars(obj).values():
            for v in value if isinstance(value, list | tuple) else (value,):
                if isinstance(v, Randomizable):
                    walk(v, depth - 1)

    for t in transform.flatten().transforms if isinstance(transform, Compose) else [transform]:
        walk(t, 3)
    return list(found.values())


def _np_state_to_torch(state: tuple) -> dict:
    # weights_only loading admits tensors and plain containers, not numpy arrays
    return {"name": state[0], "keys": torch.from_numpy(np.asarray(state[1], dtype=np.int64)), "pos": int(state[2]),
            "has_gauss": int(state[3]), "cached": float(state[4])}


def _np_state_from_torch(d: dict) -> tuple:
    return (d["name"], d["keys"].numpy().astype(np.uint32), d["pos"], d["has_gauss"], d["cached"])


def _plain(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A batch tensor on ``device`` without MONAI's metadata: the augmentations return MetaTensors, whose bookkeeping
    runs on every operation of the forward and backward pass; the values are the same."""
    from monai.data import MetaTensor

    return (t.as_tensor() if isinstance(t, MetaTensor) else t).to(device)


@contextmanager
def _flush_denormals(device: torch.device) -> Iterator[None]:
    """On the CPU, treat denormal floats (below 1.2e-38) as zero while training; restore the previous mode after.

    Saturated LSTM gates of a trained network leave such values in activations and gradients, and x86 processors
    compute with them many times slower: an epoch of the demo's ConvLSTM took 6.5 s with them and 3.3 s flushed, with
    the same losses to three decimals. The mode is per thread (PyTorch sets it for the calling thread, and threads
    started later inherit it); this sets the training thread's.
    """
    # torch has no getter: a denormal product reads 0 when the mode is already on
    changed = device.type == "cpu" and float(torch.tensor([1e-39]) * 2) != 0.0 and torch.set_flush_denormal(True)
    try:
        yield
    finally:
        if changed:
            torch.set_flush_denormal(False)


class Trainer:
    """Train a segmentation network with checkpoints that resume bit-identically.

    Parameters
    ----------
    model
        Any ``torch.nn.Module`` mapping ``batch["image"]`` to logits.
    loss
        Loss callable ``loss(logits, batch["label"])``, e.g. ``monai.losses.DiceCELoss(to_onehot_y=True, softmax=True)``.
    epochs, lr, weight_decay
        AdamW schedule; the learning rate follows a cosine decay to zero over ``epochs`` (``scheduler=None``: constant).
    batch_size
        Volumes per step and process (each volume may yield several patches).
    amp
        Mixed precision (autocast + gradient scaling); used on CUDA only, ignored on the CPU.
    device
        ``"auto"`` (CUDA, then MPS, then CPU), or an explicit device. Under ``torchrun`` each process takes
        ``cuda:LOCAL_RANK``.
    seed
        Seeds the sampler, the model's dropout and the MONAI random transforms of the dataset, locally.
    checkpoint_dir
        Where ``last.pt`` (model, optimiser, scheduler, scaler, epoch, history and every RNG state: python, numpy,
        torch, CUDA, sampler and each MONAI random transform) is written atomically after each epoch; a later
        ``fit`` with the same configuration resumes from it. ``None``: no checkpoints.
    config
        What else defines the run (data, spacing, patients, ...): part of the checkpoint's identity, so that a
        checkpoint of another configuration is never resumed.
    progress
        Show a tqdm bar over epochs.
    inputs
        Further batch keys passed to the model as keyword arguments (``model(image, mri=..., tab=...)``).
    score_name
        Name of the validation score's column in the history (``"val_dice"``; ``"val_auc"`` for a classifier).

    Notes
    -----
    Under DDP (``torchrun --nproc_per_node N``; call :func:`init_distributed` first) the model is wrapped in
    ``DistributedDataParallel``, each process reads its shard through a ``DistributedSampler``, and only rank 0
    writes checkpoints. Gradients are averaged over processes, so N processes with batch b equal one process with
    batch N·b when the network's normalisation does not mix samples (instance norm, as in the project's networks).
    DataLoader workers are not used (``num_workers=0``): the random transforms then run in this process, which is what
    makes the resume bit-identical on the CPU (tested) for a single process; cuDNN kernels and DDP ranks (each seeded
    ``seed + rank``, states saved from rank 0) resume statistically, not bit for bit. MONAI's ``CacheDataset`` keeps
    the deterministic part of the transforms cached. On the CPU, ``fit`` flushes denormal floats to zero in its own
    thread while it trains (a trained ConvLSTM computes twice as fast) and restores the previous mode after.

    Examples
    --------
    >>> import torch
    >>> from monai.data import Dataset
    >>> from monai.losses import DiceCELoss
    >>> from monai.networks.nets import UNet
    >>> net = UNet(3, 1, 2, channels=(4, 8), strides=(2,))
    >>> data = [{"image": torch.rand(1, 8, 8, 8), "label": (torch.rand(1, 8, 8, 8) > 0.5).float()} for _ in range(2)]
    >>> history = Trainer(net, loss=DiceCELoss(to_onehot_y=True, softmax=True), epochs=2, progress=False).fit(Dataset(data))
    >>> list(history["epoch"])
    [1, 2]
    """

    def __init__(self, model: nn.Module, *, loss: Callable, epochs: int = 50, lr: float = 1e-3, weight_decay: float = 1e-5,
                 batch_size: int = 2, scheduler: str | None = "cosine", amp: bool = True, device: str = "auto", seed: int = 0,
                 checkpoint_dir: str | Path | None = None, config: dict | None = None, progress: bool = True,
                 desc: str = "train", inputs: tuple[str, ...] = (), score_name: str = "val_dice") -> None:
        from hccomics._options import check_option
        from hccomics.settings import resolve_device

        if epochs < 1:
            raise HccomicsError(f"epochs must be >= 1, got {epochs}")
        if scheduler is not None:
            check_option("scheduler", scheduler, ("cosine",))
        self.model, self.loss = model, loss
        self.epochs, self.lr, self.weight_decay, self.batch_size = int(epochs), float(lr), float(weight_decay), int(batch_size)
        self.scheduler_name, self.seed, self.progress, self.desc = scheduler, int(seed), progress, desc
        self.device = torch.device(resolve_device(device))
        if _distributed() and self.device.type == "cuda":
            self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        self.amp = bool(amp) and self.device.type == "cuda"
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.config = dict(config or {})
        self.inputs, self.score_name = tuple(inputs), str(score_name)
        self.history_: pd.DataFrame | None = None

    # -- state ---------------------------------------------------------------------------------------------
    def _config_hash(self, n_items: int) -> str:
        cfg = {"epochs": self.epochs, "lr": self.lr, "wd": self.weight_decay, "batch": self.batch_size, "seed": self.seed,
               "scheduler": self.scheduler_name, "n": n_items, "model": type(self.model).__name__,
               "params": sum(p.numel() for p in self.model.parameters()), "amp": self.amp, "device": self.device.type,
               "world": int(os.environ.get("WORLD_SIZE", "1")), "extra": self.config,
               **({"inputs": list(self.inputs)} if self.inputs else {})}
        return hashlib.sha256(json.dumps(cfg, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def _rng_state(self, generator: torch.Generator, transforms: list) -> dict:
        py = random.getstate()
        return {"python": (py[0], list(py[1]), py[2]), "numpy": _np_state_to_torch(np.random.get_state()),
                "torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "sampler": generator.get_state(), "transforms": [_np_state_to_torch(t.R.get_state()) for t in transforms]}

    def _set_rng_state(self, state: dict, generator: torch.Generator, transforms: list) -> None:
        py = state["python"]
        random.setstate((py[0], tuple(py[1]), py[2]))
        np.random.set_state(_np_state_from_torch(state["numpy"]))
        torch.set_rng_state(state["torch"])
        if state["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
        generator.set_state(state["sampler"])
        if len(state["transforms"]) != len(transforms):
            raise HccomicsError("checkpoint and dataset disagree on the random transforms; delete the checkpoint to restart")
        for t, s in zip(transforms, state["transforms"]):
            t.R.set_state(_np_state_from_torch(s))

    def _save(self, path: Path, payload: dict) -> None:
        from hccomics.io.files import atomic_path

        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)

    # -- training ------------------------------------------------------------------------------------------
    def fit(self, dataset: Any, *, validate: Callable[[nn.Module, int], float] | None = None, val_every: int = 1,
            stop_after: int | None = None, shuffle: bool = True) -> pd.DataFrame:
        """Train on a MONAI/torch dataset of dicts with ``image`` and ``label``; return the per-epoch history.

        ``validate(model, epoch)`` returns a score (e.g. validation Dice) recorded every ``val_every`` epochs and at
        the last one. ``stop_after=k`` ends after epoch k as an interruption would (the checkpoint holds epoch k).
        ``shuffle=False`` reads the data in order (under DDP rank r reads items r, r + N, ...).
        """
        from monai.data import DataLoader, DistributedSampler, pad_list_data_collate
        from tqdm.auto import tqdm

        distributed = _distributed()
        rank = torch.distributed.get_rank() if distributed else 0
        torch.manual_seed(self.seed + rank)
        generator = torch.Generator().manual_seed(self.seed)
        transforms = _random_transforms(getattr(dataset, "transform", None))
        if distributed:
            sampler = DistributedSampler(dataset, shuffle=shuffle, seed=self.seed, even_divisible=True)
        elif shuffle:
            sampler = torch.utils.data.RandomSampler(dataset, generator=generator)
        else:
            sampler = torch.utils.data.SequentialSampler(dataset)
        # pad_list_data_collate: whole volumes of a real cohort differ in shape after resampling
        loader = DataLoader(dataset, batch_size=self.batch_size, sampler=sampler, num_workers=0,
                            collate_fn=pad_list_data_collate)
        for k, t in enumerate(transforms):  # after the DataLoader, which reseeds the dataset's transforms itself
            t.R = np.random.RandomState(self.seed + 1000 * rank + k)
        model = self.model.to(self.device)
        net = nn.parallel.DistributedDataParallel(model, device_ids=[self.device.index] if self.device.type == "cuda" else None) \
            if distributed else model
        opt = torch.optim.AdamW(model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.epochs) if self.scheduler_name else None
        scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp)
        rows: list[dict] = []
        start = 1
        ckpt = self.checkpoint_dir / "last.pt" if self.checkpoint_dir else None
        config = self._config_hash(len(dataset))
        if ckpt is not None and ckpt.exists():
            state = torch.load(ckpt, map_location="cpu", weights_only=True)  # RNG states must stay on the CPU
            if state.get("config") == config:
                model.load_state_dict(state["model"])
                opt.load_state_dict(state["optimizer"])
                if sched is not None and state.get("scheduler") is not None:
                    sched.load_state_dict(state["scheduler"])
                if state["scaler"]:
                    scaler.load_state_dict(state["scaler"])
                self._set_rng_state(state["rng"], generator, transforms)
                rows = [dict(r) for r in state["history"]]
                start = int(state["epoch"]) + 1
                log.info("%s: resumed after epoch %d from %s", self.desc, start - 1, ckpt)
            else:
                log.warning("%s: checkpoint %s is for another configuration; training from scratch", self.desc, ckpt)
        last = self.epochs if stop_after is None else min(self.epochs, int(stop_after))
        bar = tqdm(range(start, last + 1), desc=self.desc, unit="epoch", disable=not (self.progress and is_main_process()),
                   initial=start - 1, total=self.epochs)
        with _flush_denormals(self.device):
            for epoch in bar:
                if distributed:
                    sampler.set_epoch(epoch)
                t0 = time.perf_counter()
                net.train()
                total, n = 0.0, 0
                for batch in loader:
                    x, y = _plain(batch["image"], self.device), _plain(batch["label"], self.device)
                    extra = {k: _plain(batch[k], self.device) for k in self.inputs}
                    with torch.autocast(self.device.type, enabled=self.amp):
                        loss = self.loss(net(x, **extra), y)
                    opt.zero_grad(set_to_none=True)
                    scaler.scale(loss).backward()
                    scaler.step(opt)
                    scaler.update()
                    total += float(loss.detach()) * len(x)
                    n += len(x)
                if sched is not None:
                    sched.step()
                score = self.score_name
                row = {"epoch": epoch, "train_loss": total / max(n, 1), "lr": opt.param_groups[0]["lr"], score: float("nan")}
                if validate is not None and (epoch % val_every == 0 or epoch == self.epochs) and is_main_process():
                    model.eval()
                    with torch.no_grad():
                        row[score] = float(validate(model, epoch))
                row["seconds"] = time.perf_counter() - t0
                rows.append(row)
                bar.set_postfix(loss=f"{row['train_loss']:.3f}", **{score.removeprefix("val_"): f"{row[score]:.3f}"})
                if ckpt is not None and is_main_process():
                    self._save(ckpt, {"config": config, "epoch": epoch, "model": model.state_dict(), "optimizer": opt.state_dict(),
                                      "scheduler": sched.state_dict() if sched is not None else None, "scaler": scaler.state_dict(),
                                      "rng": self._rng_state(generator, transforms), "history": rows})
        self.history_ = pd.DataFrame(rows, columns=["epoch", "train_loss", self.score_name, "lr", "seconds"])
        return self.history_

    def save_weights(self, path: str | Path) -> Path:
        """Write the model's state dict (load it with :func:`load_state_dict`)."""
        path = Path(path)
        self._save(path, self.model.state_dict())
        return path
