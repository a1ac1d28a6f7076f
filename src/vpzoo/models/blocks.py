"""Building blocks shared by several vpzoo models.

Frame encoders/decoders (DCGAN-64 and VGG-64 with U-Net skips, as used by SVG and DRNet), the recurrent
modules of SVG (a deterministic LSTM and a Gaussian LSTM), the diagonal-Gaussian KL, and the weight init of
Denton's official code. Every block works on frames ``(N, C, H, W)``; callers flatten ``(B, T)`` into ``N`` so
that all frames of a clip go through the convolutions in one batched call.

The pixel-advection blocks of Finn et al. (2016), shared by SV2P and SAVP, are at the end of the file: TF-"SAME"
convolutions, TF-style layer norm, the convolutional LSTM cell, CDNA/DNA/STP transformations and mask compositing.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "Skips",
    "FrameEncoder",
    "FrameDecoder",
    "DCGANEncoder64",
    "DCGANDecoder64",
    "VGGEncoder64",
    "VGGDecoder64",
    "build_frame_codec",
    "concat_skip_conv",
    "ImageConvTranspose2d",
    "RecurrentMLP",
    "GaussianRecurrent",
    "gaussian_kl",
    "denton_init",
]

Skips = list[Tensor]
"""U-Net skip maps of an encoder, from the highest resolution to the lowest."""


def _dcgan_down(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 4, 2, 1), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2, inplace=True))


def _dcgan_up(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose2d(c_in, c_out, 4, 2, 1), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2, inplace=True)
    )


def _vgg_layer(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, 1, 1), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2, inplace=True))


class ImageConvTranspose2d(nn.ConvTranspose2d):
    """A decoder's output ``nn.ConvTranspose2d`` onto a few image channels (same parameters and state-dict keys).

    oneDNN's transposed-convolution kernel is slow with 1-3 output channels (about 12 GFLOP/s on the 2-core
    development CPU, against 200+ for the decoder's other layers). When autograd is not recording (``predict``,
    validation, evaluation) this layer runs as one matrix product onto the ``C_out·kh·kw`` kernel taps and a
    col2im (:func:`torch.nn.functional.fold`) that sums the overlapping taps: the same sum in another order (equal
    to float32 rounding), about 6x faster for 100 SM-MNIST frames. Training keeps PyTorch's kernel, because
    ``fold``'s backward is the slower one there.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0
                 ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding)

    def transposed_conv(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        """This layer's transposed convolution of ``x (N, c, h, w)`` with ``weight (c, C_out, kh, kw)``.

        ``weight`` may be a slice of :attr:`weight` along its input channels (see :func:`concat_skip_conv`).
        """
        if torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad):
            return F.conv_transpose2d(x, weight, bias, self.stride, self.padding)
        n, c, h, w = x.shape
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        taps = weight.reshape(c, -1).t() @ x.reshape(n, c, h * w)  # (N, C_out·kh·kw, h·w)
        size = ((h - 1) * sh - 2 * ph + kh, (w - 1) * sw - 2 * pw + kw)
        y = F.fold(taps, size, (kh, kw), padding=(ph, pw), stride=(sh, sw))
        return y if bias is None else y + bias.to(y.dtype).view(1, -1, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.transposed_conv(x, self.weight, self.bias)


def concat_skip_conv(conv: nn.Conv2d | nn.ConvTranspose2d, x: Tensor, skip: Tensor,
                     skip_index: Tensor | None = None) -> Tensor:
    """``conv(cat([x, skip[skip_index]], dim=1))`` for a U-Net decoder layer, computed without the gather.

    A convolution is linear in its input channels, so the concatenated input splits into ``conv_x(x) +
    conv_skip(skip)`` with the weight split along its input channels (the same parameter; bias once). The skip
    half is computed on the ``M`` distinct maps and gathered onto the ``N`` rows. Same function and parameters as
    the concatenation (floating-point summation order aside), about half the layer's work when ``M << N``.

    Args:
        conv: the layer whose input is ``[x, skip]`` concatenated along channels.
        x: ``(N, c_x, h, w)``.
        skip: ``(M, c_s, h, w)`` (``M = N`` when ``skip_index`` is None).
        skip_index: ``(N,)`` row of ``skip`` for each row of ``x``, or None for row-aligned maps.
    """
    if skip_index is None:
        return conv(torch.cat([x, skip], 1))
    c = x.shape[1]
    if isinstance(conv, ImageConvTranspose2d):  # weight (in, out, kh, kw)
        apply = conv.transposed_conv
        w_x, w_s = conv.weight[:c], conv.weight[c:]
    elif isinstance(conv, nn.ConvTranspose2d):
        def apply(inp: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
            return F.conv_transpose2d(inp, weight, bias, conv.stride, conv.padding, conv.output_padding,
                                      conv.groups, conv.dilation)

        w_x, w_s = conv.weight[:c], conv.weight[c:]
    else:  # Conv2d, weight (out, in, kh, kw)
        def apply(inp: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
            return F.conv2d(inp, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)

        w_x, w_s = conv.weight[:, :c], conv.weight[:, c:]
    return apply(x, w_x, conv.bias) + apply(skip, w_s, None).index_select(0, skip_index)


def _skip_block(block: nn.Sequential, x: Tensor, skip: Tensor, skip_index: Tensor | None) -> Tensor:
    """Run ``block`` (its first module a conv, or a Sequential starting with one) on ``cat([x, skip])``."""
    first = block[0]
    if isinstance(first, nn.Sequential):  # VGG: the first layer is itself conv + BN + LeakyReLU
        y = first[1:](concat_skip_conv(first[0], x, skip, skip_index))
    else:
        y = concat_skip_conv(first, x, skip, skip_index)
    return block[1:](y)


class FrameEncoder(nn.Module):
    """Interface: ``forward(x (N, C, H, W)) -> (h (N, dim), skips)``."""

    dim: int
    image_size: int


class FrameDecoder(nn.Module):
    """Interface: ``forward(h (N, dim), skips, skip_index=None) -> frames (N, C, H, W)`` in [0, 1] (sigmoid output).

    ``skips`` are the encoder's maps ``(M, c, h, w)``. Without ``skip_index``, ``M = N`` and row ``n`` of every map
    goes with ``h[n]``. With ``skip_index`` (``(N,)`` long, values in ``[0, M)``), ``h[n]`` is decoded with the skip
    maps of row ``skip_index[n]``: many frames that share a skip frame (every sample of a clip, every future step
    decoded from the last context frame) are decoded without copying the maps, and the skip half of each
    concatenated convolution is computed once per distinct map (see :func:`concat_skip_conv`).
    """


class DCGANEncoder64(FrameEncoder):
    """DCGAN discriminator-style encoder for 64×64 frames (SVG "dcgan", nf = 64).

    Four conv 4/2/1 + BN + LeakyReLU(0.2) blocks (64, 128, 256, 512 channels) give skips at 32, 16, 8 and 4 px;
    a final conv 4/1/0 + BN + tanh maps to the ``dim``-vector.
    """

    image_size = 64

    def __init__(self, dim: int = 128, channels: int = 1, nf: int = 64) -> None:
        super().__init__()
        self.dim = dim
        self.blocks = nn.ModuleList(
            [_dcgan_down(channels, nf), _dcgan_down(nf, nf * 2), _dcgan_down(nf * 2, nf * 4), _dcgan_down(nf * 4, nf * 8)]
        )
        self.head = nn.Sequential(nn.Conv2d(nf * 8, dim, 4, 1, 0), nn.BatchNorm2d(dim), nn.Tanh())

    def forward(self, x: Tensor) -> tuple[Tensor, Skips]:
        skips = []
        for block in self.blocks:
            x = block(x)
            skips.append(x)
        return self.head(x).flatten(1), skips


class DCGANDecoder64(FrameDecoder):
    """Mirror of :class:`DCGANEncoder64`: transposed convs with the encoder's skips concatenated before each.

    ``skips=False`` builds the plain DCGAN generator without U-Net skips (DRNet's ``dcgan`` decoder): every block
    takes half the input channels and ``forward`` ignores its ``skips`` argument.
    """

    def __init__(self, dim: int = 128, channels: int = 1, nf: int = 64, skips: bool = True) -> None:
        super().__init__()
        self.use_skips = skips
        m = 2 if skips else 1  # channel multiplier of the concatenated skip
        self.project = nn.Sequential(
            nn.ConvTranspose2d(dim, nf * 8, 4, 1, 0), nn.BatchNorm2d(nf * 8), nn.LeakyReLU(0.2, inplace=True)
        )
        self.blocks = nn.ModuleList(
            [_dcgan_up(nf * 8 * m, nf * 4), _dcgan_up(nf * 4 * m, nf * 2), _dcgan_up(nf * 2 * m, nf)]
        )
        self.out = nn.Sequential(ImageConvTranspose2d(nf * m, channels, 4, 2, 1), nn.Sigmoid())

    def forward(self, h: Tensor, skips: Skips | None = None, skip_index: Tensor | None = None) -> Tensor:
        x = self.project(h[:, :, None, None])
        if not self.use_skips:
            for block in self.blocks:
                x = block(x)
            return self.out(x)
        for block, skip in zip(self.blocks, reversed(skips[1:])):
            x = _skip_block(block, x, skip, skip_index)
        return _skip_block(self.out, x, skips[0], skip_index)


class VGGEncoder64(FrameEncoder):
    """VGG16-style encoder for 64×64 frames (SVG "vgg"): 2+2+3+3 conv 3×3 layers with max-pooling between blocks.

    Widths are ``nf`` × (1, 2, 4, 8) = 64, 128, 256, 512 by default.

    The first block runs at full resolution, so the skips are 64, 32, 16 and 8 px; a max-pool to 4×4 and a
    conv 4/1/0 + BN + tanh give the ``dim``-vector.
    """

    image_size = 64

    def __init__(self, dim: int = 128, channels: int = 1, nf: int = 64) -> None:
        super().__init__()
        self.dim = dim
        c1, c2, c3, c4 = nf, nf * 2, nf * 4, nf * 8
        self.blocks = nn.ModuleList(
            [
                nn.Sequential(_vgg_layer(channels, c1), _vgg_layer(c1, c1)),
                nn.Sequential(_vgg_layer(c1, c2), _vgg_layer(c2, c2)),
                nn.Sequential(_vgg_layer(c2, c3), _vgg_layer(c3, c3), _vgg_layer(c3, c3)),
                nn.Sequential(_vgg_layer(c3, c4), _vgg_layer(c4, c4), _vgg_layer(c4, c4)),
            ]
        )
        self.pool = nn.MaxPool2d(2, 2)
        self.head = nn.Sequential(nn.Conv2d(c4, dim, 4, 1, 0), nn.BatchNorm2d(dim), nn.Tanh())

    def forward(self, x: Tensor) -> tuple[Tensor, Skips]:
        skips = []
        for i, block in enumerate(self.blocks):
            x = block(x if i == 0 else self.pool(x))
            skips.append(x)
        return self.head(self.pool(x)).flatten(1), skips


class VGGDecoder64(FrameDecoder):
    """Mirror of :class:`VGGEncoder64` with nearest-neighbour ×2 upsampling and U-Net skip concatenation."""

    def __init__(self, dim: int = 128, channels: int = 1, nf: int = 64) -> None:
        super().__init__()
        c1, c2, c3, c4 = nf, nf * 2, nf * 4, nf * 8
        self.project = nn.Sequential(
            nn.ConvTranspose2d(dim, c4, 4, 1, 0), nn.BatchNorm2d(c4), nn.LeakyReLU(0.2, inplace=True)
        )
        self.blocks = nn.ModuleList(
            [
                nn.Sequential(_vgg_layer(2 * c4, c4), _vgg_layer(c4, c4), _vgg_layer(c4, c3)),
                nn.Sequential(_vgg_layer(2 * c3, c3), _vgg_layer(c3, c3), _vgg_layer(c3, c2)),
                nn.Sequential(_vgg_layer(2 * c2, c2), _vgg_layer(c2, c1)),
            ]
        )
        self.out = nn.Sequential(_vgg_layer(2 * c1, c1), ImageConvTranspose2d(c1, channels, 3, 1, 1), nn.Sigmoid())
        self.up = nn.Upsample(scale_factor=2, mode="nearest")

    def forward(self, h: Tensor, skips: Skips, skip_index: Tensor | None = None) -> Tensor:
        x = self.project(h[:, :, None, None])
        for block, skip in zip(self.blocks, reversed(skips[1:])):
            x = _skip_block(block, self.up(x), skip, skip_index)
        return _skip_block(self.out, self.up(x), skips[0], skip_index)


_CODECS: dict[str, tuple[type[FrameEncoder], type[FrameDecoder]]] = {
    "dcgan": (DCGANEncoder64, DCGANDecoder64),
    "vgg": (VGGEncoder64, VGGDecoder64),
}


def build_frame_codec(
    name: str, dim: int, channels: int, image_size: int, width: int = 64
) -> tuple[FrameEncoder, FrameDecoder]:
    """Build the encoder/decoder pair ``name`` ("dcgan" or "vgg") for ``image_size`` frames.

    ``width`` is the channel count of the first block (64 in the papers; the blocks use 1, 2, 4, 8 times it).
    Smaller widths exist for fast tests and experiments only.
    """
    if name not in _CODECS:
        raise ValueError(f"unknown frame encoder/decoder {name!r}; expected one of {sorted(_CODECS)}")
    encoder_cls, decoder_cls = _CODECS[name]
    if image_size != encoder_cls.image_size:
        raise ValueError(
            f"the {name!r} encoder/decoder is built for {encoder_cls.image_size}x{encoder_cls.image_size} frames; "
            f"got image_size={image_size}"
        )
    if width < 1:
        raise ValueError(f"codec width must be >= 1, got {width}")
    return encoder_cls(dim=dim, channels=channels, nf=width), decoder_cls(dim=dim, channels=channels, nf=width)


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


def gaussian_kl(mu_q: Tensor, logvar_q: Tensor, mu_p: Tensor, logvar_p: Tensor) -> Tensor:
    """Elementwise KL(N(mu_q, σ_q²) ‖ N(mu_p, σ_p²)) of diagonal Gaussians (same shape as the inputs).

    Computed in at least float32: under bfloat16/float16 autocast (``--trainer.precision bf16-mixed``) the heads
    return half-precision tensors, whose 8-bit mantissa cannot resolve the small per-dimension KL terms (it turns
    them negative), so the inputs are upcast first.
    """
    dtype = torch.promote_types(mu_q.dtype, torch.float32)
    mu_q, logvar_q, mu_p, logvar_p = (t.to(dtype) for t in (mu_q, logvar_q, mu_p, logvar_p))
    return 0.5 * (logvar_p - logvar_q + (logvar_q.exp() + (mu_q - mu_p) ** 2) / logvar_p.exp() - 1.0)


def denton_init(module: nn.Module) -> None:
    """Weight init of Denton's official code (``utils.init_weights``), applied with ``model.apply``.

    Conv/ConvTranspose/Linear weights ~ N(0, 0.02), biases 0; BatchNorm γ ~ N(1, 0.02), β 0. LSTM weights keep
    PyTorch's default init, as ``nn.LSTMCell`` does in the official code.
    """
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d) and module.affine:
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


# --------------------------------------------------------------------------------------------------------
# Pixel-advection predictors (Finn et al. 2016: CDNA, DNA, STP), used by SV2P and SAVP
# --------------------------------------------------------------------------------------------------------
# TensorFlow-compatible layers (slim/contrib semantics), the convolutional LSTM of the official CDNA code, the
# three motion transformations, and mask compositing. Re-derived from the papers and the documented behaviour
# of the official code (sheet models-videoflow-savp-sv2p.md); no code was copied.

__all__ += [
    "tf_same_padding",
    "Conv2dSame",
    "ConvTranspose2dSame",
    "LayerNorm2d",
    "ConvLSTMCell",
    "normalize_kernels",
    "apply_image_kernels",
    "symmetric_pad",
    "CDNA",
    "dna_transform",
    "STP",
    "composite_masks",
    "slim_init",
]

RELU_SHIFT = 1e-12
"""Lower bound of the CDNA/DNA kernel entries before normalisation (``relu(k - shift) + shift``)."""


def tf_same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """``(before, after)`` padding of TensorFlow's ``"SAME"`` convolution along one axis of length ``size``.

    The output has ``ceil(size / stride)`` entries; an odd total padding puts the extra row/column *after*.
    """
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class Conv2dSame(nn.Conv2d):
    """``nn.Conv2d`` with TensorFlow ``"SAME"`` zero padding (asymmetric for strided convs, as TF pads)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, bias: bool = True):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding=0, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        top, bottom = tf_same_padding(x.shape[-2], self.kernel_size[0], self.stride[0])
        left, right = tf_same_padding(x.shape[-1], self.kernel_size[1], self.stride[1])
        if top == bottom and left == right:
            return F.conv2d(x, self.weight, self.bias, self.stride, (top, left))
        return F.conv2d(F.pad(x, (left, right, top, bottom)), self.weight, self.bias, self.stride)


class ConvTranspose2dSame(nn.ConvTranspose2d):
    """``nn.ConvTranspose2d`` with TensorFlow ``"SAME"`` semantics: the output is ``stride`` × the input.

    TF's transposed conv is the gradient of a ``"SAME"`` conv whose (asymmetric) padding puts the extra row after;
    that is PyTorch's unpadded transposed conv cropped to ``[before, before + stride·n)`` per axis.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, bias: bool = True):
        if kernel_size < stride:
            raise ValueError(f"ConvTranspose2dSame needs kernel_size >= stride, got {kernel_size} < {stride}")
        super().__init__(in_channels, out_channels, kernel_size, stride, padding=0, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        y = super().forward(x)
        h, w = x.shape[-2] * self.stride[0], x.shape[-1] * self.stride[1]
        top = (self.kernel_size[0] - self.stride[0]) // 2
        left = (self.kernel_size[1] - self.stride[1]) // 2
        return y[..., top : top + h, left : left + w]


class LayerNorm2d(nn.GroupNorm):
    """Layer norm as ``tf.contrib.layers.layer_norm`` applies it to an image batch.

    Mean and variance are taken over all of ``(C, H, W)`` of each sample; the learned gain and bias are per channel
    (that is ``GroupNorm`` with one group). TF's ``variance_epsilon`` is 1e-12.
    """

    def __init__(self, channels: int, eps: float = 1e-12) -> None:
        super().__init__(1, channels, eps=eps)


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


def normalize_kernels(logits: Tensor, dims: tuple[int, ...], relu_shift: float = RELU_SHIFT) -> Tensor:
    """``relu(k - shift) + shift`` then divide by the sum over ``dims``: positive kernels that sum to one."""
    k = F.relu(logits - relu_shift) + relu_shift
    return k / k.sum(dim=dims, keepdim=True)


def symmetric_pad(x: Tensor, pad: int) -> Tensor:
    """TensorFlow ``"SYMMETRIC"`` padding of the last two axes: mirrored including the edge (``[b a|a b c|c b]``)."""
    if pad == 0:
        return x
    if pad > min(x.shape[-2:]):
        raise ValueError(f"symmetric padding {pad} exceeds the image size {tuple(x.shape[-2:])}")
    x = torch.cat([x[..., :pad].flip(-1), x, x[..., -pad:].flip(-1)], dim=-1)
    return torch.cat([x[..., :pad, :].flip(-2), x, x[..., -pad:, :].flip(-2)], dim=-2)


def apply_image_kernels(image: Tensor, kernels: Tensor, padding: str = "zeros") -> Tensor:
    """Convolve each sample's image with its own kernels: ``(B, C, H, W)`` × ``(B, K, k, k)`` → ``(B, K, C, H, W)``.

    The same kernel is applied to every colour channel (a depthwise convolution, as in CDNA); ``"zeros"`` is TF's
    ``"SAME"`` zero padding (CDNA/SV2P), ``"symmetric"`` mirrors the border (SAVP). One grouped convolution does
    the whole batch.
    """
    b, c, h, w = image.shape
    k = kernels.shape[-1]
    if kernels.ndim != 4 or kernels.shape[0] != b or kernels.shape[-2] != k or k % 2 != 1:
        raise ValueError(f"kernels must be (B={b}, K, k, k) with odd k, got {tuple(kernels.shape)}")
    n_k = kernels.shape[1]
    if padding == "zeros":
        x, pad = image, k // 2
    elif padding == "symmetric":
        x, pad = symmetric_pad(image, k // 2), 0
    else:
        raise ValueError(f"padding must be 'zeros' or 'symmetric', got {padding!r}")
    weight = kernels[:, None].expand(b, c, n_k, k, k).reshape(b * c * n_k, 1, k, k)
    out = F.conv2d(x.reshape(1, b * c, *x.shape[-2:]), weight, padding=pad, groups=b * c)
    return out.view(b, c, n_k, h, w).transpose(1, 2)


class CDNA(nn.Module):
    """Convolutional dynamic neural advection (Finn, Goodfellow & Levine 2016, arXiv:1605.07157).

    A linear layer maps a flattened hidden state to ``num_kernels`` kernels of ``kernel_size``² per sample. Each
    kernel is made positive (``relu(k - 1e-12) + 1e-12``), normalised to sum to one and applied to the sample's
    image, the same kernel for every colour channel. With normalised non-negative kernels each transformed image is
    a local weighted average of the input, so a kernel that is 1 at its centre reproduces the image exactly.

    Args:
        in_features: size of the flattened hidden state (``8·8·128`` for the 64-px CDNA network).
        num_kernels: kernels per sample (10 in CDNA/SV2P, 4 in SAVP).
        kernel_size: odd kernel size (5).
        identity_offset: add a one-hot centre kernel to the linear output before normalising (SAVP), so an
            untrained layer starts close to "no motion".
        padding: ``"zeros"`` (TF ``"SAME"``, CDNA/SV2P) or ``"symmetric"`` (SAVP).
        relu_shift: the positivity floor (1e-12).

    Kernel layout: the linear output is read as ``(k, k, K)`` with the kernel index fastest, as the official code
    reshapes it, then returned as ``(B, K, k, k)``.
    """

    def __init__(
        self,
        in_features: int,
        num_kernels: int = 10,
        kernel_size: int = 5,
        identity_offset: bool = False,
        padding: str = "zeros",
        relu_shift: float = RELU_SHIFT,
    ) -> None:
        super().__init__()
        if kernel_size % 2 != 1 or num_kernels < 1:
            raise ValueError(f"CDNA needs an odd kernel_size and num_kernels >= 1, got {kernel_size}, {num_kernels}")
        if padding not in ("zeros", "symmetric"):
            raise ValueError(f"padding must be 'zeros' or 'symmetric', got {padding!r}")
        self.num_kernels = num_kernels
        self.kernel_size = kernel_size
        self.identity_offset = identity_offset
        self.padding = padding
        self.relu_shift = relu_shift
        self.fc = nn.Linear(in_features, kernel_size * kernel_size * num_kernels)
        identity = torch.zeros(kernel_size, kernel_size)
        identity[kernel_size // 2, kernel_size // 2] = 1.0
        self.register_buffer("identity", identity, persistent=False)

    def kernels(self, hidden: Tensor) -> Tensor:
        """Normalised kernels ``(B, K, k, k)`` from a hidden state ``(B, in_features)``."""
        k = self.kernel_size
        logits = self.fc(hidden).view(-1, k, k, self.num_kernels).permute(0, 3, 1, 2)
        if self.identity_offset:
            logits = logits + self.identity
        return normalize_kernels(logits, dims=(-2, -1), relu_shift=self.relu_shift)

    def forward(self, hidden: Tensor, image: Tensor, num_used: int | None = None) -> Tensor:
        """Transformed images ``(B, K', C, H, W)`` of ``image (B, C, H, W)``, using the first ``num_used`` kernels."""
        kernels = self.kernels(hidden)
        if num_used is not None:
            kernels = kernels[:, :num_used]
        return apply_image_kernels(image, kernels, self.padding)


def dna_transform(image: Tensor, kernel_logits: Tensor, relu_shift: float = RELU_SHIFT) -> Tensor:
    """Dynamic neural advection: one normalised ``k×k`` kernel per pixel, applied to ``image`` with zero padding.

    ``kernel_logits`` is ``(B, k·k, H, W)`` (row-major kernel positions, as the official code orders its shifted
    copies); returns ``(B, C, H, W)``.
    """
    b, c, h, w = image.shape
    kk = kernel_logits.shape[1]
    k = int(round(kk**0.5))
    if k * k != kk or k % 2 != 1 or kernel_logits.shape[-2:] != image.shape[-2:]:
        raise ValueError(f"DNA kernels must be (B, k*k, {h}, {w}) with odd k, got {tuple(kernel_logits.shape)}")
    kernels = normalize_kernels(kernel_logits, dims=(1,), relu_shift=relu_shift)
    patches = F.unfold(image, k, padding=k // 2).view(b, c, kk, h, w)
    return (patches * kernels[:, None]).sum(dim=2)


class STP(nn.Module):
    """Spatial transformer predictor (Finn et al. 2016): ``num_transforms`` affine warps of the previous image.

    ``fc(in_features → hidden) + ReLU``, then one linear head of 6 affine parameters per transform, offset by the
    identity transform. Warping uses ``grid_sample`` (bilinear, border padding, ``align_corners=False``); the old TF
    ``spatial_transformer`` maps coordinates slightly differently (half a pixel), so ported weights would not match
    exactly.
    """

    def __init__(self, in_features: int, num_transforms: int, hidden: int = 100) -> None:
        super().__init__()
        self.num_transforms = num_transforms
        self.fc = nn.Linear(in_features, hidden)
        self.heads = nn.Linear(hidden, 6 * num_transforms)
        self.register_buffer("identity", torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]), persistent=False)

    def reset_heads(self) -> None:
        """Glorot-uniform init of each 100→6 head on its own (as separate TF layers would be), zero biases."""
        with torch.no_grad():
            for block in self.heads.weight.view(self.num_transforms, 6, -1):
                nn.init.xavier_uniform_(block)
            nn.init.zeros_(self.heads.bias)

    def forward(self, hidden: Tensor, image: Tensor) -> Tensor:
        """Warped images ``(B, K, C, H, W)``."""
        b, c, h, w = image.shape
        theta = self.heads(F.relu(self.fc(hidden))).view(b * self.num_transforms, 2, 3) + self.identity.view(2, 3)
        grid = F.affine_grid(theta, [b * self.num_transforms, c, h, w], align_corners=False)
        src = image[:, None].expand(b, self.num_transforms, c, h, w).reshape(-1, c, h, w)
        out = F.grid_sample(src, grid, mode="bilinear", padding_mode="border", align_corners=False)
        return out.view(b, self.num_transforms, c, h, w)


def composite_masks(mask_logits: Tensor, candidates: Tensor) -> Tensor:
    """Softmax the ``M`` mask logits ``(B, M, H, W)`` over masks and blend ``candidates (B, M, C, H, W)``.

    Returns ``Σ_m mask_m · candidate_m``, ``(B, C, H, W)``: a per-pixel convex combination, so candidates in [0, 1]
    give an output in [0, 1]. The counts must match: a caller that reproduces a pairing quirk (the official CDNA
    code silently drops its last candidate) slices the candidates itself.
    """
    if mask_logits.shape[1] != candidates.shape[1]:
        raise ValueError(
            f"{mask_logits.shape[1]} masks for {candidates.shape[1]} candidate images; the counts must be equal"
        )
    masks = torch.softmax(mask_logits, dim=1)
    return (masks.unsqueeze(2) * candidates).sum(dim=1)


def slim_init(module: nn.Module) -> None:
    """TF-slim's default init, applied with ``model.apply``: Glorot-uniform conv/linear weights, zero biases.

    Normalisation layers keep gain 1 and bias 0. (Glorot's bound is symmetric in fan-in/fan-out, so transposed
    convs get the same init as in TF.)
    """
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, STP):
        module.reset_heads()


# --------------------------------------------------------------------------------------------------------
# 128-px DCGAN/VGG codecs, the ResNet-18 pose encoder and the scene discriminator (DRNet, Denton & Birodkar 2017)
# --------------------------------------------------------------------------------------------------------
# Re-derived from the layer tables of sheet models-drnet-svg-vrnn.md §1.2, §1.4 and §3.2; no code was copied.
# The 128-px codecs extend the 64-px ones by one block at the lowest resolution (8×8 for the encoder, the first
# decoder block), so they share their forward passes.

__all__ += [
    "DCGANEncoder128",
    "DCGANDecoder128",
    "VGGEncoder128",
    "VGGDecoder128",
    "ResNetBasicBlock",
    "ResNetPoseEncoder",
    "SceneDiscriminator",
]


class DCGANEncoder128(DCGANEncoder64):
    """DCGAN encoder for 128×128 frames: :class:`DCGANEncoder64` plus a fifth dcgan block ``8nf → 8nf``.

    Skips at 64, 32, 16, 8 and 4 px (``nf`` × 1, 2, 4, 8, 8 channels); conv 4/1/0 + BN + tanh to the vector.
    """

    image_size = 128

    def __init__(self, dim: int = 128, channels: int = 1, nf: int = 64) -> None:
        super().__init__(dim, channels, nf)
        self.blocks.append(_dcgan_down(nf * 8, nf * 8))


class DCGANDecoder128(DCGANDecoder64):
    """Mirror of :class:`DCGANEncoder128` (optionally without skips): one more up-block ``8nf → 8nf`` at 4→8 px."""

    def __init__(self, dim: int = 128, channels: int = 1, nf: int = 64, skips: bool = True) -> None:
        super().__init__(dim, channels, nf, skips)
        self.blocks.insert(0, _dcgan_up(nf * 8 * (2 if skips else 1), nf * 8))


class VGGEncoder128(VGGEncoder64):
    """VGG16 conv stack for 128×128 frames: :class:`VGGEncoder64` plus a fifth block of three ``8nf`` layers.

    Skips at 128, 64, 32, 16 and 8 px; max-pool to 4×4 and conv 4/1/0 + BN + tanh to the vector (13 conv layers).
    """

    image_size = 128

    def __init__(self, dim: int = 128, channels: int = 1, nf: int = 64) -> None:
        super().__init__(dim, channels, nf)
        c4 = nf * 8
        self.blocks.append(nn.Sequential(_vgg_layer(c4, c4), _vgg_layer(c4, c4), _vgg_layer(c4, c4)))


class VGGDecoder128(VGGDecoder64):
    """Mirror of :class:`VGGEncoder128`: a first block ``[cat 8nf skip] 16nf → 8nf → 8nf → 8nf`` at 8×8 px."""

    def __init__(self, dim: int = 128, channels: int = 1, nf: int = 64) -> None:
        super().__init__(dim, channels, nf)
        c4 = nf * 8
        self.blocks.insert(0, nn.Sequential(_vgg_layer(2 * c4, c4), _vgg_layer(c4, c4), _vgg_layer(c4, c4)))


class ResNetBasicBlock(nn.Module):
    """ResNet basic block: two conv 3×3 + BN (ReLU between), identity or 1×1 conv + BN shortcut, ReLU after the sum.

    The convolutions carry biases, as in DRNet's ResNet pose encoder.
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = (
            nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride), nn.BatchNorm2d(c_out))
            if stride != 1 or c_in != c_out
            else nn.Identity()
        )

    def forward(self, x: Tensor) -> Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNetPoseEncoder(FrameEncoder):
    """ResNet-18-style encoder to a ``dim``-vector (DRNet's ``resnet`` pose encoder) for 64×64 or 128×128 frames.

    Stem conv 5×5 stride 2 pad 3 + BN + ReLU, max-pool 3/2/1; stages of two :class:`ResNetBasicBlock` s with
    ``nf`` × (1, 2, 4, 8) channels and strides (1, 2, 2, 2), plus a fifth stage of ``16 nf`` channels (stride 2)
    at 128 px; then conv 3×3 without padding + BN + tanh. Spatial sizes: 64 → 33 → 17 → 17 → 9 → 5 → 3 → 1
    (128 → 65 → 33 → 33 → 17 → 9 → 5 → 3 → 1). Returns no skips.
    """

    def __init__(self, dim: int = 10, channels: int = 1, image_size: int = 64, nf: int = 64) -> None:
        super().__init__()
        if image_size not in (64, 128):
            raise ValueError(f"the ResNet pose encoder is built for 64x64 or 128x128 frames, got {image_size}")
        self.dim = dim
        self.image_size = image_size
        self.stem = nn.Sequential(
            nn.Conv2d(channels, nf, 5, 2, 3), nn.BatchNorm2d(nf), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1)
        )
        widths = [nf, nf * 2, nf * 4, nf * 8] + ([nf * 16] if image_size == 128 else [])
        stages, c_in = [], nf
        for i, width in enumerate(widths):
            stride = 1 if i == 0 else 2
            stages.append(nn.Sequential(ResNetBasicBlock(c_in, width, stride), ResNetBasicBlock(width, width)))
            c_in = width
        self.stages = nn.Sequential(*stages)
        self.head = nn.Sequential(nn.Conv2d(c_in, dim, 3), nn.BatchNorm2d(dim), nn.Tanh())

    def forward(self, x: Tensor) -> tuple[Tensor, Skips]:
        return self.head(self.stages(self.stem(x))).flatten(1), []


class SceneDiscriminator(nn.Module):
    """DRNet's scene discriminator C: an MLP on a pair of pose vectors → logit of "the two come from different clips".

    Linear(2·pose_dim → hidden) → ReLU → Linear(hidden → hidden) → ReLU → Linear(hidden → 1). The official module
    ends in a sigmoid and is trained with ``BCELoss``; here the sigmoid is folded into
    ``binary_cross_entropy_with_logits`` (the same function, numerically stable), so ``forward`` returns logits
    ``(N,)`` and ``torch.sigmoid`` of them is the official output.
    """

    def __init__(self, pose_dim: int, hidden: int = 100) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(2 * pose_dim, hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, 1),
        )

    def forward(self, pose_a: Tensor, pose_b: Tensor) -> Tensor:
        return self.net(torch.cat([pose_a, pose_b], dim=-1)).squeeze(-1)
