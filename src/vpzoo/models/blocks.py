"""Building blocks shared by several vpzoo models.

Frame encoders/decoders (DCGAN-64 and VGG-64 with U-Net skips, as used by SVG and DRNet), the recurrent
modules of SVG (a deterministic LSTM and a Gaussian LSTM), the diagonal-Gaussian KL, and the weight init of
Denton's official code. Every block works on frames ``(N, C, H, W)``; callers flatten ``(B, T)`` into ``N`` so
that all frames of a clip go through the convolutions in one batched call.
"""

from __future__ import annotations

import torch
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


class FrameEncoder(nn.Module):
    """Interface: ``forward(x (N, C, H, W)) -> (h (N, dim), skips)``."""

    dim: int
    image_size: int


class FrameDecoder(nn.Module):
    """Interface: ``forward(h (N, dim), skips) -> frames (N, C, H, W)`` in [0, 1] (sigmoid output)."""


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
    """Mirror of :class:`DCGANEncoder64`: transposed convs with the encoder's skips concatenated before each."""

    def __init__(self, dim: int = 128, channels: int = 1, nf: int = 64) -> None:
        super().__init__()
        self.project = nn.Sequential(
            nn.ConvTranspose2d(dim, nf * 8, 4, 1, 0), nn.BatchNorm2d(nf * 8), nn.LeakyReLU(0.2, inplace=True)
        )
        self.blocks = nn.ModuleList([_dcgan_up(nf * 16, nf * 4), _dcgan_up(nf * 8, nf * 2), _dcgan_up(nf * 4, nf)])
        self.out = nn.Sequential(nn.ConvTranspose2d(nf * 2, channels, 4, 2, 1), nn.Sigmoid())

    def forward(self, h: Tensor, skips: Skips) -> Tensor:
        x = self.project(h[:, :, None, None])
        for block, skip in zip(self.blocks, reversed(skips[1:])):
            x = block(torch.cat([x, skip], 1))
        return self.out(torch.cat([x, skips[0]], 1))


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
        self.out = nn.Sequential(_vgg_layer(2 * c1, c1), nn.ConvTranspose2d(c1, channels, 3, 1, 1), nn.Sigmoid())
        self.up = nn.Upsample(scale_factor=2, mode="nearest")

    def forward(self, h: Tensor, skips: Skips) -> Tensor:
        x = self.project(h[:, :, None, None])
        for block, skip in zip(self.blocks, reversed(skips[1:])):
            x = block(torch.cat([self.up(x), skip], 1))
        return self.out(torch.cat([self.up(x), skips[0]], 1))


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
    """Elementwise KL(N(mu_q, σ_q²) ‖ N(mu_p, σ_p²)) of diagonal Gaussians (same shape as the inputs)."""
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
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)
