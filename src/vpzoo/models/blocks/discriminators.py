"""Discriminators: DRNet's scene discriminator, SAVP's spectral-normalised video discriminator."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vpzoo.models.blocks.init import truncated_normal_init

__all__ = ["SceneDiscriminator", "VideoSNDiscriminator"]


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


class VideoSNDiscriminator(nn.Module):
    """SAVP's video discriminator (A. Lee's ``video_sn_discriminator``): 3-D convolutions with spectral norm.

    Seven ``Conv3d`` layers with an explicit zero padding of 1 on time, height and width, each followed by
    LeakyReLU(0.1) and no normalisation, then a linear layer to one logit; spectral normalisation (one power
    iteration per training forward, :func:`torch.nn.utils.parametrizations.spectral_norm`) on every convolution and
    on the linear layer. Kernel/stride (T, H, W) and widths with ``ndf`` = 32: 3/1 → 32, 4/(1,2,2) → 64, 3/1 → 64,
    4/(1,2,2) → 128, 3/1 → 128, 4/2 → 256, 3/1 → 256; a 10×64×64 clip ends as 256×4×8×8. Unconditional: it sees
    only the clip. ``forward(clip (B, T, C, H, W))`` returns ``(features, logits (B,))``, the seven activations
    ``(B, C_l, T_l, H_l, W_l)`` in order (SAVP's feature-matching loss compares them).
    """

    def __init__(self, channels: int, clip_length: int = 10, image_size: int = 64, ndf: int = 32) -> None:
        super().__init__()
        from torch.nn.utils.parametrizations import spectral_norm

        specs = [(ndf, 3, 1), (2 * ndf, 4, (1, 2, 2)), (2 * ndf, 3, 1), (4 * ndf, 4, (1, 2, 2)), (4 * ndf, 3, 1),
                 (8 * ndf, 4, 2), (8 * ndf, 3, 1)]
        self.clip_length, self.channels, self.image_size = clip_length, channels, image_size
        layers, c_in, size = [], channels, [clip_length, image_size, image_size]
        for c_out, kernel, stride in specs:
            strides = stride if isinstance(stride, tuple) else (stride,) * 3
            conv = nn.Conv3d(c_in, c_out, kernel, strides, padding=1)
            truncated_normal_init(conv)
            layers.append(spectral_norm(conv))
            size = [(s + 2 - kernel) // st + 1 for s, st in zip(size, strides)]
            c_in = c_out
        if min(size) < 1:
            raise ValueError(f"a {clip_length}x{image_size}x{image_size} clip is too small for the video discriminator")
        self.convs = nn.ModuleList(layers)
        fc = nn.Linear(c_in * size[0] * size[1] * size[2], 1)
        truncated_normal_init(fc)
        self.fc = spectral_norm(fc)
        self.feature_shape = (c_in, *size)

    def forward(self, clip: Tensor) -> tuple[list[Tensor], Tensor]:
        expected = (self.clip_length, self.channels, self.image_size, self.image_size)
        if clip.ndim != 5 or tuple(clip.shape[1:]) != expected:
            raise ValueError(f"the video discriminator takes clips (B, {', '.join(map(str, expected))}), got "
                             f"{tuple(clip.shape)}")
        h = clip.transpose(1, 2)  # (B, C, T, H, W)
        features = []
        for conv in self.convs:
            h = F.leaky_relu(conv(h), 0.1)
            features.append(h)
        return features, self.fc(h.flatten(1)).squeeze(-1)
