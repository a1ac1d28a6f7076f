"""Frame encoders and decoders with U-Net skips: DCGAN and VGG at 64 and 128 px (SVG, DRNet, P2P), the
ResNet-18 pose encoder of DRNet. Every codec works on frames ``(N, C, H, W)``; callers flatten ``(B, T)`` into ``N``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "Skips", "ImageConvTranspose2d", "concat_skip_conv", "FrameEncoder", "FrameDecoder", "DCGANEncoder64",
    "DCGANDecoder64", "VGGEncoder64", "VGGDecoder64", "build_frame_codec", "DCGANEncoder128", "DCGANDecoder128",
    "VGGEncoder128", "VGGDecoder128", "ResNetBasicBlock", "ResNetPoseEncoder", "PreActResBlock",
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


# --------------------------------------------------------------------------------------------------------
# 128-px DCGAN/VGG codecs, and the ResNet-18 pose encoder (DRNet, Denton & Birodkar 2017)
# --------------------------------------------------------------------------------------------------------
# Re-derived from the layer tables of sheet models-drnet-svg-vrnn.md §1.2, §1.4 and §3.2; no code was copied.
# The 128-px codecs extend the 64-px ones by one block at the lowest resolution (8×8 for the encoder, the first
# decoder block), so they share their forward passes.


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


class PreActResBlock(nn.Module):
    """Pre-activation residual block with a scaled residual (the Improved VRNN's ``ResnetBlock``, after Mescheder
    et al.'s GAN ResNets).

    ``out = shortcut(x) + residual_scale · GN(conv(LReLU(GN(conv(LReLU(x))))))``: LeakyReLU(0.2) → conv 3×3
    ``c_in → min(c_in, c_out)`` (bias) → ``GroupNorm(groups)`` → LeakyReLU(0.2) → conv 3×3 ``→ c_out`` (no bias)
    → ``GroupNorm(groups)``; the shortcut is the identity, or a 1×1 conv without bias when ``c_in != c_out``.

    Args:
        c_in: input channels.
        c_out: output channels.
        groups: GroupNorm groups (4).
        residual_scale: factor of the residual branch (0.1).
    """

    def __init__(self, c_in: int, c_out: int, groups: int = 4, residual_scale: float = 0.1) -> None:
        super().__init__()
        hidden = min(c_in, c_out)
        self.residual_scale = residual_scale
        self.conv1 = nn.Conv2d(c_in, hidden, 3, 1, 1)
        self.norm1 = nn.GroupNorm(groups, hidden)
        self.conv2 = nn.Conv2d(hidden, c_out, 3, 1, 1, bias=False)
        self.norm2 = nn.GroupNorm(groups, c_out)
        self.shortcut = nn.Conv2d(c_in, c_out, 1, bias=False) if c_in != c_out else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        """``x (N, c_in, H, W)`` → ``(N, c_out, H, W)``."""
        dx = self.norm1(self.conv1(F.leaky_relu(x, 0.2)))
        dx = self.norm2(self.conv2(F.leaky_relu(dx, 0.2)))
        return self.shortcut(x) + self.residual_scale * dx
