"""Image loading and the MONAI autoencoder behind :func:`hccomics.dnb.joint.image_features`."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from hccomics.errors import DataValidationError

__all__ = ["CHANNELS", "KL_WEIGHT", "load_images", "train_autoencoder"]

KL_WEIGHT = 1e-3
CHANNELS = (16, 32, 64)


def load_images(images: Mapping | Sequence | np.ndarray | pd.Series) -> tuple[list[str], np.ndarray]:
    """Sample ids and a float32 stack (samples x spatial...) from paths, arrays or a mapping of either."""
    from hccomics.io.nifti import nifti_stem

    if isinstance(images, Mapping):
        ids, items = [str(k) for k in images], list(images.values())
    elif isinstance(images, pd.Series):
        ids, items = [str(k) for k in images.index], list(images.to_numpy())
    elif isinstance(images, np.ndarray) and images.dtype != object:
        ids, items = [str(k) for k in range(images.shape[0])], list(images)
    elif isinstance(images, Sequence) and not isinstance(images, str):
        items = list(images)
        ids = [nifti_stem(v) if isinstance(v, str | Path) else str(k) for k, v in enumerate(items)]
    else:
        raise DataValidationError(f"expected image paths, arrays, a stacked array or a mapping sample id -> image; "
                                  f"got {type(images).__name__}")
    if len(items) < 2:
        raise DataValidationError(f"need at least 2 images, got {len(items)}")
    arrays, problems = [], []
    for sid, item in zip(ids, items):
        if isinstance(item, str | Path):
            import nibabel as nib

            if not Path(item).is_file():
                problems.append(f"{sid}: no file {item}")
                continue
            item = nib.load(str(item)).get_fdata(dtype=np.float32)
        arr = np.squeeze(np.asarray(item, dtype=np.float32))
        if arr.ndim not in (2, 3):
            problems.append(f"{sid}: {arr.ndim}-D after dropping singleton axes; expected a 2-D or 3-D image")
        elif not np.isfinite(arr).all():
            problems.append(f"{sid}: has missing or infinite pixels")
        arrays.append(arr)
    shapes = sorted({a.shape for a in arrays})
    if len(shapes) > 1:
        problems.append(f"images differ in shape {shapes[:5]}; resample them to one grid (e.g. monai.transforms."
                        "ResizeWithPadOrCrop) first")
    if len(set(ids)) != len(ids):
        problems.append("sample ids are not unique; pass a mapping sample id -> image")
    if problems:
        raise DataValidationError("cannot use these images:", problems)
    return ids, np.stack(arrays)


def train_autoencoder(x: np.ndarray, n_features: int, *, epochs: int, batch_size: int, lr: float, seed: int,
                      device: str, progress: bool) -> tuple[np.ndarray, dict]:
    """Train MONAI's VarAutoEncoder on standardised images (samples x spatial...); return posterior means.

    Weight initialisation, reparameterisation noise and batch order are seeded inside a forked
    torch RNG state, so the global generators are left as they were.
    """
    import torch
    from monai.networks.nets import VarAutoEncoder
    from monai.transforms import DivisiblePad
    from tqdm.auto import tqdm

    from hccomics.settings import resolve_device

    dev = resolve_device(device)
    k = 2 ** len(CHANNELS)
    # samples stand in the channel axis, so every image is padded alike; then one channel per sample
    padded = DivisiblePad(k=k, mode="edge")(torch.from_numpy(np.ascontiguousarray(x)))
    stack = torch.as_tensor(np.asarray(padded), dtype=torch.float32)[:, None].contiguous()
    spatial = stack.ndim - 2
    cuda = dev.startswith("cuda")
    forked = [torch.device(dev).index or 0] if cuda else []
    with torch.random.fork_rng(devices=forked):  # local generators: global torch state is left untouched
        torch.manual_seed(seed)
        net = VarAutoEncoder(spatial_dims=spatial, in_shape=tuple(stack.shape[1:]), out_channels=1,
                             latent_size=n_features, channels=CHANNELS, strides=(2,) * len(CHANNELS), norm=None,
                             use_sigmoid=False, use_mean_at_inference=True).to(dev)
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        gen = torch.Generator().manual_seed(seed)
        data = stack.to(dev)
        amp = torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda)
        losses, t0 = [], time.perf_counter()
        bar = tqdm(range(epochs), desc="image autoencoder", unit="epoch", disable=not progress)
        net.train()
        for _ in bar:
            order, total = torch.randperm(len(data), generator=gen), 0.0
            for idx in order.split(batch_size):
                batch = data[idx.to(dev)]
                with amp:
                    recon, mu, logvar, _z = net(batch)
                    recon, mu, logvar = recon.float(), mu.float(), logvar.float()
                    rec = torch.mean((recon - batch) ** 2)
                    kld = -0.5 * torch.mean(torch.sum(1 + logvar - mu**2 - logvar.exp(), dim=1))
                    loss = rec + KL_WEIGHT * kld
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += rec.detach().item() * len(idx)
            losses.append(total / len(data))
            bar.set_postfix(mse=f"{losses[-1]:.4f}")
        net.eval()
        with torch.no_grad(), amp:
            mu = torch.cat([net.encode_forward(b)[0].float() for b in data.split(batch_size)])
    info = {"train_seconds": round(time.perf_counter() - t0, 3), "final_mse": losses[-1], "first_mse": losses[0],
            "device": dev, "network": f"monai VarAutoEncoder channels={CHANNELS}, latent={n_features}",
            "loss": f"mse + {KL_WEIGHT} * KL; features = posterior mean"}
    return mu.cpu().numpy().astype(np.float64), info
