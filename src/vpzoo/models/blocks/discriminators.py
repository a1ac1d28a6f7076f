"""Discriminators: DRNet's scene discriminator."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["SceneDiscriminator"]


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
