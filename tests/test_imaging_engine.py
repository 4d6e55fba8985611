"""Training engine: bit-identical resume, DDP equivalence (gloo, CPU), weights-only checkpoints."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
monai = pytest.importorskip("monai")

from monai import transforms as mt
from monai.data import CacheDataset, Dataset
from monai.losses import DiceCELoss
from monai.networks.nets import UNet

from hccomics.imaging.engine import Trainer, load_state_dict

HERE = Path(__file__).parent


def _items(n: int = 6) -> list[dict]:
    g = torch.Generator().manual_seed(1)
    out = []
    for _ in range(n):
        image = torch.rand(1, 20, 20, 12, generator=g)
        out.append({"image": image, "label": (image > 0.7).float()})
    return out


def _dataset() -> CacheDataset:
    keys = ["image", "label"]
    tf = mt.Compose([
        mt.RandCropByPosNegLabeld(keys=keys, label_key="label", spatial_size=(16, 16, 8), num_samples=2),
        mt.RandFlipd(keys=keys, prob=0.5, spatial_axis=0),
        mt.RandShiftIntensityd(keys="image", offsets=0.1, prob=0.5),
    ])
    return CacheDataset(_items(), transform=tf, progress=False)


def _trainer(seed_model: int, ckpt: Path | None) -> Trainer:
    torch.manual_seed(seed_model)
    net = UNet(3, 1, 2, channels=(4, 8), strides=(2,), num_res_units=1, dropout=0.2)
    return Trainer(net, loss=DiceCELoss(to_onehot_y=True, softmax=True), epochs=4, batch_size=2, device="cpu", seed=3,
                   checkpoint_dir=ckpt, progress=False)


def test_resume_is_bit_identical(tmp_path: Path) -> None:
    straight = _trainer(0, None)
    straight.fit(_dataset())
    first = _trainer(0, tmp_path)
    first.fit(_dataset(), stop_after=2)
    assert (tmp_path / "last.pt").exists()
    # a fresh process would build a different model and dataset: the checkpoint must restore everything
    resumed = _trainer(7, tmp_path)
    history = resumed.fit(_dataset())
    assert list(history["epoch"]) == [1, 2, 3, 4]
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    # and an interruption that is not resumed differs (the test can fail)
    assert not all(torch.equal(a[k], first.model.state_dict()[k]) for k in a)


def test_checkpoint_loads_weights_only(tmp_path: Path) -> None:
    t = _trainer(0, tmp_path)
    t.fit(_dataset(), stop_after=1)
    state = torch.load(tmp_path / "last.pt", weights_only=True)
    assert {"model", "optimizer", "scheduler", "scaler", "rng", "epoch", "history"} <= set(state)
    assert {"python", "numpy", "torch", "cuda", "sampler", "transforms"} <= set(state["rng"])
    assert len(state["rng"]["transforms"]) >= 3  # nested array transforms carry their own state
    path = t.save_weights(tmp_path / "model.pt")
    weights = load_state_dict(path)
    assert all(torch.equal(weights[k], v) for k, v in t.model.state_dict().items())


def test_other_configuration_does_not_resume(tmp_path: Path) -> None:
    _trainer(0, tmp_path).fit(_dataset(), stop_after=2)
    other = _trainer(0, tmp_path)
    other.lr = 5e-3
    history = other.fit(_dataset(), stop_after=1)
    assert list(history["epoch"]) == [1]


def _torchrun(cmd: list[str]) -> None:
    # the standalone rendezvous of torchrun occasionally fails to start on a busy machine (seen once in CI, not
    # reproduced in 5 runs): one retry, then fail with the launcher's own message
    for _ in range(2):
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)
        if done.returncode == 0:
            return
    raise AssertionError(f"torchrun failed twice (exit {done.returncode}):\n{done.stderr[-3000:]}")


def test_ddp_two_processes_equal_one_with_double_batch(tmp_path: Path) -> None:
    script = HERE / "ddp_train_script.py"
    env_cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script)]
    _torchrun([*env_cmd, str(tmp_path / "ddp.pt"), "2"])
    subprocess.run([sys.executable, str(script), str(tmp_path / "single.pt"), "4"], check=True, capture_output=True, timeout=180)
    ddp, single = load_state_dict(tmp_path / "ddp.pt"), load_state_dict(tmp_path / "single.pt")
    init = UNet(3, 1, 2, channels=(4, 8, 16), strides=(2, 2), num_res_units=1, bias=False)
    moved = 0
    for k, v in single.items():
        if not v.is_floating_point():
            continue
        torch.testing.assert_close(ddp[k], v, rtol=1e-5, atol=1e-6)
        moved += int(not torch.equal(v, init.state_dict()[k]))
    assert moved > 0  # three steps did change the weights


def test_ddp_with_other_batch_split_differs(tmp_path: Path) -> None:
    """The equivalence above is not vacuous: one process with batch 2 (6 steps) ends elsewhere."""
    script = HERE / "ddp_train_script.py"
    subprocess.run([sys.executable, str(script), str(tmp_path / "b2.pt"), "2"], check=True, capture_output=True, timeout=180)
    subprocess.run([sys.executable, str(script), str(tmp_path / "b4.pt"), "4"], check=True, capture_output=True, timeout=180)
    a, b = load_state_dict(tmp_path / "b2.pt"), load_state_dict(tmp_path / "b4.pt")
    assert any(not torch.allclose(a[k], b[k], rtol=1e-5) for k in a if a[k].is_floating_point())


def test_dataset_without_random_transforms(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = UNet(3, 1, 2, channels=(4, 8), strides=(2,))
    t = Trainer(net, loss=DiceCELoss(to_onehot_y=True, softmax=True), epochs=2, device="cpu", progress=False,
                checkpoint_dir=tmp_path)
    h = t.fit(Dataset(_items(2)), validate=lambda m, e: 0.5)
    assert h["val_dice"].tolist() == [0.5, 0.5]


@pytest.mark.skipif(not torch.set_flush_denormal(False), reason="this processor cannot flush denormals")
def test_denormals_flushed_while_training_on_cpu() -> None:
    """2e-39 is a denormal float32: zero while the engine trains on the CPU, itself again afterwards."""
    torch.manual_seed(0)
    net = UNet(3, 1, 2, channels=(4, 8), strides=(2,))
    t = Trainer(net, loss=DiceCELoss(to_onehot_y=True, softmax=True), epochs=1, device="cpu", progress=False)
    h = t.fit(Dataset(_items(2)), validate=lambda m, e: float(torch.tensor([1e-39]) * 2))
    assert h["val_dice"].tolist() == [0.0]
    assert float(torch.tensor([1e-39]) * 2) == pytest.approx(2e-39, rel=1e-3)
