"""Segmentation networks (hccomics.imaging.networks) and their phase-feature figures, on tiny CPU tensors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.losses import DiceCELoss

from hccomics.errors import OptionError
from hccomics.imaging.networks import (
    ARCHITECTURES,
    ConvLSTMCell3d,
    PhaseConvLSTMUNet,
    build_network,
    count_parameters,
)
from hccomics.pl.phase_features import phase_embedding_trajectory, phase_feature_maps

PHASES = ["non_contrast", "arterial", "portal_venous", "delayed"]
SMALL = {"channels": (4, 8, 16), "strides": (2, 2)}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors gain nothing from threads, and on a shared machine thread barriers cost seconds."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _phases(shape=(1, 4, 16, 16, 8), seed=0) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def _sphere_in_arterial_phase(size=16) -> tuple[torch.Tensor, torch.Tensor]:
    """Two volumes of noise in every phase plus a bright sphere in the arterial phase (channel 1) only."""
    x = 0.1 * _phases((2, 4, size, size, size))
    grid = torch.stack(torch.meshgrid(*[torch.arange(size, dtype=torch.float32)] * 3, indexing="ij"))
    y = torch.zeros(2, 1, size, size, size, dtype=torch.long)
    for b, centre in enumerate([(5.0, 6.0, 8.0), (10.0, 9.0, 7.0)]):
        inside = ((grid - torch.tensor(centre).view(3, 1, 1, 1)) ** 2).sum(0) <= 3.5**2
        y[b, 0][inside] = 1
        x[b, 1][inside] += 1.0
    return x, y


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_output_keeps_spatial_size(architecture: str) -> None:
    torch.manual_seed(0)
    net = build_network(architecture, in_channels=4, out_channels=3).eval()
    with torch.no_grad():
        for shape in [(32, 32, 16), (24, 40, 8)]:  # any size divisible by prod(strides) = 8
            assert net(_phases((1, 4, *shape))).shape == (1, 3, *shape)


def test_bad_architecture_gives_a_hint() -> None:
    with pytest.raises(OptionError, match="did you mean 'attention_unet'"):
        build_network("attention-unet", in_channels=4, out_channels=2)


def test_channels_and_strides_must_match() -> None:
    with pytest.raises(ValueError, match=r"len\(strides\) == len\(channels\) - 1"):
        build_network("convlstm", in_channels=4, out_channels=2, channels=(8, 16), strides=(2, 2))


def test_convlstm_checks_its_input() -> None:
    net = PhaseConvLSTMUNet(4, 2, **SMALL)
    with pytest.raises(ValueError, match="divisible by 4"):
        net(_phases((1, 4, 16, 16, 6)))
    with pytest.raises(ValueError, match=r"\(B, 4, H, W, D\)"):
        net(_phases((1, 3, 16, 16, 8)))


def test_count_parameters() -> None:
    assert count_parameters(torch.nn.Conv3d(1, 2, 3)) == 2 * 27 + 2
    cell = ConvLSTMCell3d(2, 3, kernel_size=1)
    assert count_parameters(cell) == (2 + 3) * 4 * 3 + 4 * 3


def test_convlstm_cell_starts_from_zero_state_and_remembers() -> None:
    torch.manual_seed(0)
    cell = ConvLSTMCell3d(1, 2)
    x = _phases((1, 1, 4, 4, 4))
    h0, c0 = cell(x, None)
    zeros = torch.zeros(1, 2, 4, 4, 4)
    torch.testing.assert_close(cell(x, (zeros, zeros))[0], h0)
    # the same input after a different history gives a different state
    assert not torch.allclose(cell(x, (h0, c0))[0], h0)
    assert h0.abs().max() < 1  # o * tanh(c)
    # reading a sequence at once equals stepping through it, in either direction
    seq = _phases((1, 3, 1, 4, 4, 4))
    state, steps = None, []
    for t in (2, 1, 0):
        state = cell(seq[:, t], state)
        steps.append(state[0])
    torch.testing.assert_close(cell.forward_sequence(seq, reverse=True), torch.stack(steps[::-1], dim=1))


@pytest.mark.parametrize("bidirectional", [False, True])
def test_convlstm_is_phase_order_aware(bidirectional: bool) -> None:
    torch.manual_seed(0)
    net = PhaseConvLSTMUNet(4, 2, bidirectional=bidirectional, **SMALL).eval()
    x, reverse = _phases(), [3, 2, 1, 0]
    with torch.no_grad():
        assert (net(x) - net(x[:, reverse])).abs().max() > 1e-4
        # sanity: when every phase is the same volume, the order cannot matter
        same = x[:, :1].expand(-1, 4, -1, -1, -1)
        torch.testing.assert_close(net(same), net(same[:, reverse]))


def test_shared_encoder_sees_each_phase_alone() -> None:
    torch.manual_seed(0)
    net = PhaseConvLSTMUNet(4, 2, **SMALL).eval()
    x, perm = _phases(), [2, 0, 3, 1]
    a, b = net.phase_features(x), net.phase_features(x[:, perm])
    for level in range(3):
        # encoder features of a phase do not depend on the others: permuting phases permutes them
        torch.testing.assert_close(b[f"encoder_{level}"], a[f"encoder_{level}"][:, perm])
    # the state after phase t depends on phases 0..t only
    later = x.clone()
    later[:, 3] += 1.0
    c = net.phase_features(later)
    torch.testing.assert_close(c["hidden_0"][:, :3], a["hidden_0"][:, :3])
    assert not torch.allclose(c["hidden_0"][:, 3], a["hidden_0"][:, 3])


def test_gradients_reach_the_first_encoder_layer() -> None:
    torch.manual_seed(0)
    net = PhaseConvLSTMUNet(4, 2, bidirectional=True, **SMALL)
    net(_phases()).square().mean().backward()
    first = next(m for m in net.encoder[0].modules() if isinstance(m, torch.nn.Conv3d))
    assert first.weight.grad is not None and first.weight.grad.abs().sum() > 0
    unused = [n for n, p in net.named_parameters() if p.grad is None]
    assert not unused, f"parameters outside the graph: {unused}"


def test_phase_features_shapes() -> None:
    torch.manual_seed(0)
    net = PhaseConvLSTMUNet(3, 2, bidirectional=True, **SMALL).eval()
    feats = net.phase_features(_phases((2, 3, 16, 16, 8)))
    spatial = [(8, 8, 4), (4, 4, 2), (4, 4, 2)]  # the bottleneck keeps the deepest skip's resolution
    expected = {}
    for level, (c, size) in enumerate(zip(SMALL["channels"], spatial)):
        for kind in ("encoder", "hidden", "hidden_backward"):
            expected[f"{kind}_{level}"] = (2, 3, c, *size)
    assert {k: tuple(v.shape) for k, v in feats.items()} == expected
    assert not any(v.requires_grad for v in feats.values())


def _dice_after_overfitting(architecture: str, steps: int = 20) -> float:
    torch.manual_seed(0)
    x, y = _sphere_in_arterial_phase()
    net = build_network(architecture, in_channels=4, out_channels=2, channels=(8, 16, 32), strides=(2, 2))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    loss_fn = DiceCELoss(softmax=True, to_onehot_y=True)
    for _ in range(steps):
        opt.zero_grad()
        loss_fn(net(x), y).backward()
        opt.step()
    with torch.no_grad():
        pred = net.eval()(x).argmax(1, keepdim=True) == 1
    truth = y == 1
    return float(2 * (pred & truth).sum() / (pred.sum() + truth.sum()))


@pytest.mark.parametrize("architecture", ["unet", "convlstm"])
def test_overfits_a_sphere_seen_in_one_phase(architecture: str) -> None:
    assert _dice_after_overfitting(architecture) > 0.8


def test_phase_feature_maps_grid() -> None:
    torch.manual_seed(0)
    feats = PhaseConvLSTMUNet(4, 2, **SMALL).phase_features(_phases())
    maps = {kind: feats[f"{kind}_1"][0].numpy() for kind in ("encoder", "hidden")}
    fig = phase_feature_maps(maps, phases=PHASES, n_channels=3, slice_index=1)
    assert len(fig.data) == 2 * 3 * 4
    assert all(t.type == "heatmap" for t in fig.data)
    # first row: channel 0 of the encoder features, one phase per column
    np.testing.assert_array_equal(fig.data[2].z, maps["encoder"][2, 0, :, :, 1])
    # a row shares one colour range, so phases are comparable
    assert len({(t.zmin, t.zmax) for t in fig.data[:4]}) == 1
    with pytest.raises(ValueError, match="shape"):
        phase_feature_maps({"hidden": feats["hidden_1"].numpy()}, phases=PHASES)


def test_phase_embedding_trajectory() -> None:
    xy = np.random.default_rng(0).normal(size=(5, 4, 2))
    fig = phase_embedding_trajectory(xy, phases=PHASES, labels=["HCC", "HCC", "cyst", "HCC", "cyst"])
    assert len(fig.data) == 5
    assert [t.name for t in fig.data if t.showlegend] == ["HCC", "cyst"]
    np.testing.assert_array_equal(fig.data[3].x, xy[3, :, 0])
    assert len(phase_embedding_trajectory(xy, phases=PHASES).data) == 5
    with pytest.raises(ValueError, match="n_samples, 4 phases, 2"):
        phase_embedding_trajectory(xy[:, :3], phases=PHASES)
