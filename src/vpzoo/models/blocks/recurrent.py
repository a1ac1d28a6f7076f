"""Recurrent cells: SVG's LSTM frame predictor and Gaussian LSTM, the convolutional LSTM of the CDNA code
(SV2P, SAVP) and the group-normalised convolutional LSTM of the Improved VRNN."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["RecurrentMLP", "GaussianRecurrent", "NormFactory", "ConvLSTMCell", "NormConvLSTMCell"]


class RecurrentMLP(nn.Module):
    """Linear embedding → stacked LSTM → linear output (→ tanh): SVG's frame predictor ``LSTM_θ``.

    Runs a whole teacher-forced sequence ``(B, T, in)`` in one fused ``nn.LSTM`` call, or one step at a time by
    passing ``(B, 1, in)`` and the previous ``state``. ``nn.LSTM`` with ``num_layers`` layers has exactly the
    parameters of the same number of stacked ``nn.LSTMCell`` s used by the official code.
    """

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 256, layers: int = 2, tanh: bool = True) -> None:
        super().__init__()
        self.embed = nn.Linear(in_dim, hidden)
        self.lstm = nn.LSTM(hidden, hidden, num_layers=layers, batch_first=True)
        self.output = nn.Sequential(nn.Linear(hidden, out_dim), nn.Tanh() if tanh else nn.Identity())

    def forward(
        self, x: Tensor, state: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """``x (B, T, in)`` → ``(y (B, T, out), (h, c))``; zero initial state when ``state`` is None."""
        y, state = self.lstm(self.embed(x), state)
        return self.output(y), state


class GaussianRecurrent(nn.Module):
    """Linear embedding → LSTM → two linear heads (μ, log σ²): SVG's posterior ``LSTM_φ`` and prior ``LSTM_ψ``."""

    def __init__(self, in_dim: int, z_dim: int, hidden: int = 256, layers: int = 1) -> None:
        super().__init__()
        self.embed = nn.Linear(in_dim, hidden)
        self.lstm = nn.LSTM(hidden, hidden, num_layers=layers, batch_first=True)
        self.mu = nn.Linear(hidden, z_dim)
        self.logvar = nn.Linear(hidden, z_dim)

    def forward(
        self, x: Tensor, state: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, Tensor, tuple[Tensor, Tensor]]:
        """``x (B, T, in)`` → ``(mu (B, T, z), logvar (B, T, z), (h, c))``."""
        y, state = self.lstm(self.embed(x), state)
        return self.mu(y), self.logvar(y), state


NormFactory = Callable[[int], nn.Module]


class ConvLSTMCell(nn.Module):
    """Convolutional LSTM cell of the official CDNA/SV2P code (``basic_conv_lstm_cell``), with SAVP's options.

    One ``kernel_size`` × ``kernel_size`` convolution of ``[x, h]`` gives the input gate ``i``, the candidate ``j``,
    the forget gate ``f`` and the output gate ``o`` (that channel order); no peepholes, no clipping::

        c' = c · σ(f + forget_bias) + σ(i) · tanh(j)        h' = tanh(c') · σ(o)

    Args:
        in_channels: channels of ``x``.
        hidden_channels: channels of ``h`` and ``c``.
        kernel_size: odd kernel size of the gate convolution (5 in CDNA, SV2P and SAVP).
        forget_bias: added to the forget gate pre-activation (1.0).
        gate_norm: optional factory of a normalisation applied separately to ``i``, ``j``, ``f``, ``o`` and to the
            new cell state ``c'`` (SAVP's ``BasicConv2DLSTMCell`` with ``normalizer_fn``); the gate convolution then
            has no bias. ``None`` (CDNA/SV2P): gate convolution with bias, no normalisation inside the cell.
        output_norm: optional factory of a normalisation applied to the *returned* output only, as the CDNA/SV2P
            code applies ``layer_norm`` after every conv-LSTM (:class:`LayerNorm2d`): the recurrent state keeps the
            un-normalised ``h'``.

    ``forward(x, state=None) -> (output, (c', h'))``; a ``None`` state is all zeros.
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        kernel_size: int = 5,
        forget_bias: float = 1.0,
        gate_norm: NormFactory | None = None,
        output_norm: NormFactory | None = None,
    ) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"ConvLSTMCell needs an odd kernel_size, got {kernel_size}")
        self.hidden_channels = hidden_channels
        self.forget_bias = forget_bias
        self.conv = nn.Conv2d(
            in_channels + hidden_channels, 4 * hidden_channels, kernel_size, padding=kernel_size // 2,
            bias=gate_norm is None,
        )
        self.gate_norms = nn.ModuleList([gate_norm(hidden_channels) for _ in range(4)]) if gate_norm else None
        self.cell_norm = gate_norm(hidden_channels) if gate_norm else None
        self.output_norm = output_norm(hidden_channels) if output_norm else None

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        if state is None:  # zero state: the h half of the gate conv contributes nothing, so skip it
            c = x.new_zeros(x.shape[0], self.hidden_channels, *x.shape[2:])
            weight = self.conv.weight[:, : x.shape[1]]
            gates = F.conv2d(x, weight, self.conv.bias, padding=self.conv.padding).chunk(4, dim=1)
        else:
            c, h = state
            gates = self.conv(torch.cat([x, h], dim=1)).chunk(4, dim=1)
        if self.gate_norms is not None:
            gates = [norm(g) for norm, g in zip(self.gate_norms, gates)]
        i, j, f, o = gates
        c = c * torch.sigmoid(f + self.forget_bias) + torch.sigmoid(i) * torch.tanh(j)
        if self.cell_norm is not None:
            c = self.cell_norm(c)
        h = torch.tanh(c) * torch.sigmoid(o)
        out = self.output_norm(h) if self.output_norm is not None else h
        return out, (c, h)


class NormConvLSTMCell(nn.Module):
    """Group-normalised convolutional LSTM cell of the Improved VRNN code (``layers.NormConvLSTMCell``).

    Separate ``kernel_size`` convolutions (with bias) of the input and of the hidden state, each followed by
    ``GroupNorm(groups, 4·hidden)``, are summed into the gates ``i, f, o, g`` (that channel order); the new cell
    state is group-normalised before the output::

        i, f, o, g = GN(conv_x(x)) + GN(conv_h(h))
        c' = GN(σ(f)·c + σ(i)·tanh(g))        h' = σ(o)·tanh(c')

    The state is ``(h, c)``, each ``(N, hidden, H, W)``; ``forward(x, state)`` returns ``(h', (h', c'))`` and a
    ``None`` state is all zeros. The input half does not depend on the state: :meth:`input_gates` computes it for
    a whole sequence in one call and :meth:`step` finishes one time step from it, which is what ``forward`` does.

    Args:
        in_channels: channels of ``x``.
        hidden_channels: channels of ``h`` and ``c`` (a multiple of ``groups``).
        kernel_size: odd kernel size of both gate convolutions (3).
        groups: GroupNorm groups of the gates and of the cell state (16).
    """

    def __init__(self, in_channels: int, hidden_channels: int, kernel_size: int = 3, groups: int = 16) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"NormConvLSTMCell needs an odd kernel_size, got {kernel_size}")
        if hidden_channels % groups:
            raise ValueError(f"NormConvLSTMCell: hidden_channels ({hidden_channels}) must be a multiple of groups "
                             f"({groups})")
        self.hidden_channels = hidden_channels
        self.input_conv = nn.Conv2d(in_channels, 4 * hidden_channels, kernel_size, padding=kernel_size // 2)
        self.input_norm = nn.GroupNorm(groups, 4 * hidden_channels)
        self.hidden_conv = nn.Conv2d(hidden_channels, 4 * hidden_channels, kernel_size, padding=kernel_size // 2)
        self.hidden_norm = nn.GroupNorm(groups, 4 * hidden_channels)
        self.cell_norm = nn.GroupNorm(groups, hidden_channels)

    def input_gates(self, x: Tensor) -> Tensor:
        """``x (N, in, H, W)`` → the input's share of the gate pre-activations ``(N, 4·hidden, H, W)``."""
        return self.input_norm(self.input_conv(x))

    def step(self, gates_x: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """One time step from :meth:`input_gates`' output and the state ``(h, c)`` → ``(h', (h', c'))``."""
        h, c = state
        i, f, o, g = (gates_x + self.hidden_norm(self.hidden_conv(h))).chunk(4, dim=1)
        c = self.cell_norm(torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g))
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, (h, c)

    def forward(
        self, x: Tensor, state: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        if state is None:
            zeros = x.new_zeros(x.shape[0], self.hidden_channels, *x.shape[2:])
            state = (zeros, zeros)
        return self.step(self.input_gates(x), state)
