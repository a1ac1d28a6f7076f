"""Copy-last-frame baseline: every predicted frame repeats the last context frame.

Not a paper model; the floor that every benchmark table reports beside the learned models.
"""

from __future__ import annotations

import torch
from torch import Tensor

from vpzoo.models.base import VideoPredictionModel
from vpzoo.registry import register_model

__all__ = ["CopyLast"]


@register_model("copy_last")
class CopyLast(VideoPredictionModel):
    """Predicts ``x̂_{t} = x_{last context}`` for every future step. Deterministic and parameter-free.

    ``predict(..., num_samples=k)`` returns ``k`` identical copies of the one prediction.
    """

    stochastic = False

    def __init__(
        self,
        image_size: int = 64,
        channels: int = 1,
        n_past: int = 1,
        n_future: int = 10,
        metric_protocol: str = "standard",
    ) -> None:
        super().__init__(
            image_size=image_size, channels=channels, n_past=n_past, n_future=n_future,
            val_num_samples=1, metric_protocol=metric_protocol,
        )
        self.save_hyperparameters()

    def sample_future(
        self, context: Tensor, n_future: int, num_samples: int, generator: torch.Generator
    ) -> Tensor:
        last = context[:, -1]
        return last[:, None, None].expand(-1, num_samples, n_future, -1, -1, -1).clone()

    def training_step(self, batch: Tensor, batch_idx: int) -> None:
        return None  # nothing to learn

    def configure_optimizers(self) -> None:
        return None
