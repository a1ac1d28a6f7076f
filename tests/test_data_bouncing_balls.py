"""Tests for the Bouncing Balls simulator and DataModule (vpzoo.data.bouncing_balls)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vpzoo.data.bouncing_balls import (
    BouncingBallsDataModule,
    elastic_collision,
    render_balls,
    simulate_bouncing_balls,
)

R, W = 60.0, 800.0


@pytest.fixture(scope="module")
def sim():
    return simulate_bouncing_balls(300, 60, np.random.default_rng(0), return_velocities=True)


def test_elastic_collision_conserves_momentum_and_energy():
    rng = np.random.default_rng(0)
    p1 = rng.normal(size=(1000, 2))
    p2 = p1 + rng.normal(size=(1000, 2))
    v1, v2 = rng.normal(size=(1000, 2)), rng.normal(size=(1000, 2))
    w1, w2 = elastic_collision(p1, v1, p2, v2)
    np.testing.assert_allclose(w1 + w2, v1 + v2, atol=1e-12)
    np.testing.assert_allclose((w1**2).sum(-1) + (w2**2).sum(-1), (v1**2).sum(-1) + (v2**2).sum(-1), rtol=1e-12)
    # head-on: velocities are exchanged
    h1, h2 = elastic_collision(np.array([0.0, 0]), np.array([3.0, 0]), np.array([1.0, 0]), np.array([-1.0, 0]))
    np.testing.assert_allclose(h1, [-1, 0], atol=1e-12) and np.testing.assert_allclose(h2, [3, 0], atol=1e-12)


def test_energy_conserved_and_momentum_conserved_in_collisions(sim):
    pos, vel = sim
    ke = (vel**2).sum(axis=(2, 3))
    np.testing.assert_allclose(ke, np.broadcast_to(ke[:, :1], ke.shape), rtol=1e-9)  # walls and collisions are elastic
    mom = vel.sum(axis=2)  # (N, T, 2)
    speed = np.linalg.norm(vel, axis=-1).max(axis=2)  # (N, T)
    wall_gap = np.minimum(pos - R, W - R - pos).min(axis=(2, 3))  # closest approach to a wall at each frame
    # frames t -> t+1 during which no ball can reach a wall
    no_wall = (wall_gap[:, :-1] > speed[:, :-1] + 1) & (wall_gap[:, 1:] > speed[:, 1:] + 1)
    changed = np.abs(vel[:, 1:] - vel[:, :-1]).max(axis=(2, 3)) > 1e-9
    collisions = no_wall & changed
    assert collisions.sum() > 20  # ball-ball collisions away from the walls do happen
    dm = np.abs(mom[:, 1:] - mom[:, :-1]).max(axis=-1)
    assert dm[collisions].max() < 1e-9


def test_balls_stay_in_box_and_do_not_overlap(sim):
    pos, vel = sim
    assert pos.min() >= R - 1e-9 and pos.max() <= W - R + 1e-9
    d = np.linalg.norm(pos[:, :, :, None] - pos[:, :, None], axis=-1)
    d[..., np.arange(4), np.arange(4)] = np.inf
    assert d.min() > 2 * R - 1e-3 * R
    # initial state: centres >= 2.5 r apart, integer velocities in [-20, 20]
    assert d[:, 0].min() >= 2.5 * R
    assert np.array_equal(vel[:, 0], np.round(vel[:, 0])) and np.abs(vel[:, 0]).max() <= 20
    assert np.abs(vel[:, 0]).max() == 20
    assert np.linalg.norm(vel, axis=-1).max() <= 60


def test_simulation_is_seeded():
    a = simulate_bouncing_balls(5, 10, 3)
    assert np.array_equal(a, simulate_bouncing_balls(5, 10, 3))
    assert not np.array_equal(a, simulate_bouncing_balls(5, 10, 4))


def test_render_discs():
    pos = np.array([[[[400.0, 400.0]], [[60.0, 60.0]]]])  # (N=1, T=2, K=1, 2)
    img = render_balls(pos, 128, 800, 60)
    assert img.shape == (1, 2, 1, 128, 128) and img.dtype == np.uint8
    assert set(np.unique(img)) == {0, 255}
    r = 9
    area = sum(1 for y in range(-r, r + 1) for x in range(-r, r + 1) if x * x + y * y <= r * r)
    assert (img[0, 0] == 255).sum() == area and (img[0, 1] == 255).sum() == area
    assert img[0, 0, 0, 64, 64] == 255 and img[0, 0, 0, 64, 64 + r + 1] == 0
    assert img[0, 1, 0, 9, 0] == 255 and img[0, 1, 0, 0, 0] == 0  # a ball touching the walls stays in frame


def test_datamodule(tmp_path):
    kw = dict(root=str(tmp_path), num_train=12, num_val=3, num_test=5, batch_size=4, eval_batch_size=5)
    dm = BouncingBallsDataModule(**kw)
    dm.prepare_data()
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    assert batch.shape == (4, 20, 1, 128, 128) and batch.dtype == torch.float32
    assert set(torch.unique(batch).tolist()) <= {0.0, 1.0}
    test = next(iter(dm.test_dataloader()))
    assert test.shape == (5, 20, 1, 128, 128)
    # test clips are frames 0..19 of the stored trajectories, and fixed across instances
    traj = np.load(dm.trajectories_path("test"))
    ref = render_balls(traj[:, :20].astype(np.float64), 128) / 255.0
    assert torch.equal(test, torch.from_numpy(ref.astype(np.float32)))
    dm2 = BouncingBallsDataModule(**kw)
    dm2.setup("test")
    assert torch.equal(torch.stack([dm2.test_set[i] for i in range(5)]), test)
    val = dm.val_set[0]
    assert not torch.equal(val, test[0])
    # positions on request
    dm3 = BouncingBallsDataModule(**dict(kw, return_positions=True, seq_len=10))
    dm3.setup("fit")
    item = next(iter(dm3.train_dataloader()))
    assert item["video"].shape == (4, 10, 1, 128, 128) and item["positions"].shape == (4, 10, 4, 2)
    assert 0 < item["positions"].min() and item["positions"].max() < 1


def test_bad_arguments():
    with pytest.raises(ValueError, match="seq_len must be in"):
        BouncingBallsDataModule(seq_len=70)
    with pytest.raises(ValueError, match="2 \\* radius < world_size"):
        BouncingBallsDataModule(radius=500)
