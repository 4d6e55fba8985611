"""Segmentation networks for multi-phase CT: MONAI U-Nets and a phase-recurrent (ConvLSTM) U-Net.

Every network maps ``(B, C, H, W, D)``, with one channel per contrast phase in acquisition order,
to logits ``(B, n_classes, H, W, D)`` for a softmax and a Dice-cross-entropy loss. ``H``, ``W`` and
``D`` must each be divisible by the product of ``strides``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, get_args

import torch
from monai.networks.blocks import Convolution, ResidualUnit
from monai.networks.nets import AttentionUnet, DynUNet, UNet
from torch import nn

from hccomics._options import check_option

__all__ = ["ARCHITECTURES", "ConvLSTMCell3d", "PhaseConvLSTMUNet", "build_network", "count_parameters"]

Architecture = Literal["unet", "attention_unet", "dynunet", "convlstm"]
ARCHITECTURES: tuple[str, ...] = get_args(Architecture)


def _check_levels(channels: Sequence[int], strides: Sequence[int]) -> None:
    if len(channels) < 2 or len(strides) != len(channels) - 1:
        raise ValueError(
            f"expected one stride per down-sampling step, i.e. len(strides) == len(channels) - 1 with at least two "
            f"channel levels; got channels={tuple(channels)} and strides={tuple(strides)}. "
            "Give e.g. channels=(16, 32, 64, 128) with strides=(2, 2, 2)."
        )


def build_network(
    architecture: Architecture,
    *,
    in_channels: int,
    out_channels: int,
    channels: Sequence[int] = (16, 32, 64, 128),
    strides: Sequence[int] = (2, 2, 2),
    num_res_units: int = 1,
    dropout: float = 0.0,
) -> nn.Module:
    """Return an untrained 3D segmentation network.

    Parameters
    ----------
    architecture
        ``"unet"`` (:class:`monai.networks.nets.UNet`), ``"attention_unet"`` (:class:`monai.networks.nets.AttentionUnet`,
        Oktay et al. 2018: attention gates on the skip connections), ``"dynunet"`` (:class:`monai.networks.nets.DynUNet`,
        nnU-Net-like, 3x3x3 kernels, no deep supervision) or ``"convlstm"`` (:class:`PhaseConvLSTMUNet`,
        one encoder pass per phase and a ConvLSTM over the phases).
    in_channels
        Number of contrast phases stacked as channels (the phase sequence for ``"convlstm"``).
    out_channels
        Number of classes (background included).
    channels
        Feature channels per level, shallow to deep.
    strides
        Down-sampling factor between consecutive levels; ``len(channels) - 1`` values. Inputs must have
        spatial sizes divisible by their product.
    num_res_units
        Residual units per block for ``"unet"``; ``"dynunet"`` uses residual blocks when it is positive.
        ``"attention_unet"`` and ``"convlstm"`` have a fixed block design and ignore it.
    dropout
        Dropout probability (all architectures).

    Examples
    --------
    >>> net = build_network("unet", in_channels=4, out_channels=2, channels=(4, 8), strides=(2,))
    >>> net(torch.zeros(1, 4, 8, 8, 4)).shape
    torch.Size([1, 2, 8, 8, 4])
    """
    check_option("architecture", architecture, ARCHITECTURES)
    _check_levels(channels, strides)
    channels, strides = tuple(int(c) for c in channels), tuple(int(s) for s in strides)
    if architecture == "unet":
        return UNet(spatial_dims=3, in_channels=in_channels, out_channels=out_channels, channels=channels,
                    strides=strides, num_res_units=num_res_units, dropout=dropout)
    if architecture == "attention_unet":
        return AttentionUnet(spatial_dims=3, in_channels=in_channels, out_channels=out_channels, channels=channels,
                             strides=strides, dropout=dropout)
    if architecture == "dynunet":
        # level 0 runs at full resolution; each later level down-samples by its stride (nnU-Net layout)
        level_strides = (1, *strides)
        return DynUNet(spatial_dims=3, in_channels=in_channels, out_channels=out_channels,
                       kernel_size=[3] * len(level_strides), strides=level_strides, upsample_kernel_size=strides,
                       filters=channels, dropout=dropout or None, deep_supervision=False, res_block=num_res_units > 0)
    return PhaseConvLSTMUNet(in_channels, out_channels, channels=channels, strides=strides, dropout=dropout)


def count_parameters(model: nn.Module) -> int:
    """Return the number of trainable parameters of ``model``.

    Examples
    --------
    >>> count_parameters(nn.Linear(3, 2))
    8
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# MONAI and torch have no convolutional LSTM, so this one is written here (Shi et al., NeurIPS 2015, no peepholes).
class ConvLSTMCell3d(nn.Module):
    """A 3D convolutional LSTM cell: gates ``W_x * x_t + W_h * h_{t-1} + b`` with 3D convolutions.

    Parameters
    ----------
    in_channels
        Channels of the input ``x`` at each step.
    hidden_channels
        Channels of the hidden and cell states.
    kernel_size
        Odd size of the convolutions that compute the four gates.

    Shapes
    ------
    ``forward(x, state)``, one step: ``x`` is ``(B, in_channels, H, W, D)``; ``state`` is ``(h, c)``,
    each ``(B, hidden_channels, H, W, D)``, or ``None`` for zeros. Returns the new ``(h, c)``.
    ``forward_sequence(seq)``: ``(B, T, in_channels, H, W, D) -> (B, T, hidden_channels, H, W, D)``,
    the hidden state after each step, starting from zeros.

    Examples
    --------
    >>> cell = ConvLSTMCell3d(2, 3)
    >>> h, c = cell(torch.zeros(1, 2, 4, 4, 4), None)
    >>> h.shape, cell.forward_sequence(torch.zeros(1, 5, 2, 4, 4, 4)).shape
    (torch.Size([1, 3, 4, 4, 4]), torch.Size([1, 5, 3, 4, 4, 4]))
    """

    def __init__(self, in_channels: int, hidden_channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd so that states keep their size; got {kernel_size}.")
        self.in_channels, self.hidden_channels = in_channels, hidden_channels
        # two convolutions rather than one on [x, h]: the input term of every step is computed in one batch
        # and the hidden term is skipped at the first step, where h is zero
        self.input_gates = nn.Conv3d(in_channels, 4 * hidden_channels, kernel_size, padding=kernel_size // 2)
        self.hidden_gates = nn.Conv3d(hidden_channels, 4 * hidden_channels, kernel_size, padding=kernel_size // 2,
                                      bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-initialise the gate convolutions; the forget-gate bias starts at 1 so that memory is kept early on."""
        self.input_gates.reset_parameters()
        self.hidden_gates.reset_parameters()
        with torch.no_grad():
            self.input_gates.bias.zero_()
            self.input_gates.bias[self.hidden_channels : 2 * self.hidden_channels].fill_(1.0)

    def _step(
        self, input_gates: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        gates = input_gates if state is None else input_gates + self.hidden_gates(state[0])
        i, f, o, g = gates.chunk(4, dim=1)
        c = torch.sigmoid(i) * torch.tanh(g)
        if state is not None:
            c = c + torch.sigmoid(f) * state[1]
        return torch.sigmoid(o) * torch.tanh(c), c

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the hidden and cell states after reading ``x``."""
        return self._step(self.input_gates(x), state)

    def forward_sequence(self, seq: torch.Tensor, *, reverse: bool = False) -> torch.Tensor:
        """Return the hidden state after each step of ``seq`` (read from the end when ``reverse``).

        Entry ``t`` of the result is the state after steps ``0 .. t`` (or ``T-1 .. t`` when ``reverse``).
        """
        b, n = seq.shape[:2]
        input_gates = self.input_gates(seq.flatten(0, 1)).unflatten(0, (b, n))
        state, hidden = None, [None] * n
        for t in (range(n - 1, -1, -1) if reverse else range(n)):
            state = self._step(input_gates[:, t], state)
            hidden[t] = state[0]
        return torch.stack(hidden, dim=1)


class PhaseConvLSTMUNet(nn.Module):
    """A 3D U-Net that encodes each contrast phase separately and reads the phases with ConvLSTMs.

    The encoder (MONAI :class:`~monai.networks.blocks.ResidualUnit` blocks, weights shared across
    phases, one input channel) runs on every phase. At every encoder level, i.e. at each skip connection
    and at the bottleneck, a :class:`ConvLSTMCell3d` with as many hidden channels as the level reads the
    phase features in channel order (3x3x3 gates at the skips, 1x1x1 at the bottleneck). Its hidden state
    after the last phase (concatenated with the state after reading the phases backwards, when
    ``bidirectional``) is what the decoder receives from that level. The decoder (transposed MONAI
    :class:`~monai.networks.blocks.Convolution` blocks) follows :class:`monai.networks.nets.UNet`: the
    first encoder block already down-samples, so skips live at ``1/strides[0]`` resolution and below,
    and the last transposed convolution returns full-resolution logits.

    Parameters
    ----------
    in_phases
        Number of phases ``P`` (input channels); the sequence order is the channel order.
    out_channels
        Number of classes.
    channels
        Feature channels per level, shallow to deep (the last is the bottleneck).
    strides
        Down-sampling factor between consecutive levels; ``len(channels) - 1`` values.
    bidirectional
        Also read the phases from last to first.
    dropout
        Dropout probability in the encoder and decoder blocks.

    Shapes
    ------
    ``forward(x)``: ``(B, P, H, W, D) -> (B, out_channels, H, W, D)`` with ``H, W, D`` divisible by
    ``prod(strides)``. ``phase_features(x)``: see that method.

    Examples
    --------
    >>> net = PhaseConvLSTMUNet(3, 2, channels=(4, 8), strides=(2,))
    >>> net(torch.zeros(1, 3, 8, 8, 4)).shape
    torch.Size([1, 2, 8, 8, 4])
    """

    def __init__(
        self,
        in_phases: int,
        out_channels: int,
        *,
        channels: Sequence[int] = (16, 32, 64, 128),
        strides: Sequence[int] = (2, 2, 2),
        bidirectional: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        _check_levels(channels, strides)
        self.in_phases, self.out_channels = in_phases, out_channels
        self.channels, self.strides = tuple(int(c) for c in channels), tuple(int(s) for s in strides)
        self.bidirectional = bidirectional
        level_strides = (*self.strides, 1)  # the bottleneck keeps the resolution of the deepest skip
        drop = dropout or None
        self.encoder = nn.ModuleList(
            ResidualUnit(3, c_in, c_out, strides=s, subunits=2, dropout=drop)
            for c_in, c_out, s in zip((1, *self.channels[:-1]), self.channels, level_strides)
        )
        # 3x3x3 gates at the skips absorb residual misregistration between phases; at the bottleneck the
        # encoder's receptive field already covers it, and 1x1x1 gates cut the parameters of the model by half
        lstm_kernels = [3] * len(self.strides) + [1]
        n_cells = 2 if bidirectional else 1
        self.lstm = nn.ModuleList(
            nn.ModuleList(ConvLSTMCell3d(c, c, k) for c, k in zip(self.channels, lstm_kernels)) for _ in range(n_cells)
        )
        self.decoder = nn.ModuleList()
        below = n_cells * self.channels[-1]
        for level in reversed(range(len(self.strides))):
            top = level == 0
            c_out = out_channels if top else self.channels[level - 1]
            # transposed 3x3x3 convolutions as in monai.networks.nets.UNet; the top one outputs logits
            up = Convolution(3, below + n_cells * self.channels[level], c_out, strides=self.strides[level],
                             is_transposed=True, conv_only=top, dropout=None if top else drop)
            self.decoder.append(up if top else nn.Sequential(up, Convolution(3, c_out, c_out, dropout=drop)))
            below = c_out

    def _encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Per-phase encoder features, one ``(B, P, C, h, w, d)`` tensor per level."""
        b, p = x.shape[:2]
        feat, out = x.reshape(b * p, 1, *x.shape[2:]), []
        for block in self.encoder:
            feat = block(feat)
            out.append(feat.reshape(b, p, *feat.shape[1:]))
        return out

    def _phase_states(self, x: torch.Tensor) -> list[tuple[torch.Tensor, list[torch.Tensor]]]:
        """Per level: encoder features and, per reading direction, hidden states ``(B, P, C, h, w, d)``.

        Entry ``t`` along ``P`` is the state after reading phases ``0 .. t`` (forwards) or ``P-1 .. t``
        (backwards).
        """
        return [(seq, [cells[level].forward_sequence(seq, reverse=d == 1) for d, cells in enumerate(self.lstm)])
                for level, seq in enumerate(self._encode(x))]

    def _check_input(self, x: torch.Tensor) -> None:
        factor = math.prod(self.strides)
        if x.ndim != 5 or x.shape[1] != self.in_phases or any(s % factor for s in x.shape[2:]):
            raise ValueError(
                f"expected a (B, {self.in_phases}, H, W, D) tensor with H, W, D divisible by {factor}; got "
                f"{tuple(x.shape)}. Stack one registered phase per channel and pad or crop the volume "
                f"(e.g. monai.transforms.DivisiblePadd(k={factor}))."
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits ``(B, out_channels, H, W, D)`` for phases ``x`` of shape ``(B, P, H, W, D)``."""
        self._check_input(x)
        # the state after the whole sequence: last phase forwards, first phase backwards
        skips = [torch.cat([h[:, -1 if d == 0 else 0] for d, h in enumerate(states)], dim=1)
                 for _, states in self._phase_states(x)]
        out = skips.pop()
        for up in self.decoder:
            out = up(torch.cat([out, skips.pop()], dim=1))
        return out

    @torch.no_grad()
    def phase_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Return per-level encoder features and ConvLSTM hidden states after each phase, without gradients.

        Keys are ``"encoder_{level}"`` and ``"hidden_{level}"`` (and ``"hidden_backward_{level}"`` when
        bidirectional, indexed by phase, i.e. entry ``t`` is the state after reading phases ``P-1 .. t``),
        for ``level`` in ``0 .. len(channels) - 1`` (the last is the bottleneck). Each value has shape
        ``(B, P, C_level, h, w, d)``: entry ``t`` along ``P`` is the encoder output of phase ``t`` or the
        hidden state after reading phases ``0 .. t``. Call ``eval()`` first when the network uses dropout.

        Examples
        --------
        >>> net = PhaseConvLSTMUNet(3, 2, channels=(4, 8), strides=(2,))
        >>> {k: tuple(v.shape) for k, v in net.phase_features(torch.zeros(1, 3, 8, 8, 4)).items()}
        {'encoder_0': (1, 3, 4, 4, 4, 2), 'hidden_0': (1, 3, 4, 4, 4, 2), 'encoder_1': (1, 3, 8, 4, 4, 2), 'hidden_1': (1, 3, 8, 4, 4, 2)}
        """
        self._check_input(x)
        out = {}
        for level, (seq, states) in enumerate(self._phase_states(x)):
            out[f"encoder_{level}"] = seq
            for name, hidden in zip(("hidden", "hidden_backward"), states):
                out[f"{name}_{level}"] = hidden
        return out
