"""Bouncing Balls in DDPAE's setting (Hsieh et al., NeurIPS 2018), simulated here with a seed.

DDPAE generated its data with the Neural Physics Engine's matter.js generator (``generate.js -e balls -n 4 -t 60
-s 50000`` for training, ``-s 2000`` for testing). vpzoo reproduces that setting with its own exact
elastic-collision simulator (no JavaScript):

* a square world of ``world_size = 800`` units with static walls (restitution 1), **4 balls** of radius **60**, all
  of mass 1; no friction, no gravity, no rotation;
* initial centres uniform in ``[r, W - r]^2``, rejection-sampled so that all centres are at least ``2.5 r`` apart;
  initial velocities integers uniform in ``[-20, 20]`` per axis (world units per frame);
* 60 frames per trajectory; frame 0 is the initial state; a trajectory in which any speed exceeds 60 or a ball
  leaves the world is rejected and resampled (never happens with this simulator, kept for fidelity);
* rendering: scale ``image_size / world_size`` (128/800), filled white discs of radius ``int(60 * scale) = 9`` px
  centred at ``int(scale * centre)`` on a black 128x128 canvas (uint8; overlaps stay 255);
* training clips: a random window of ``seq_len`` (20) frames, start uniform in ``[0, 60 - seq_len]``; val/test
  clips: frames ``0 .. eval_seq_len - 1``.

Simulation: each frame is split into ``substeps`` (default 10) steps of ``1 / substeps`` frame. In each step the
balls move in straight lines, wall crossings are reflected exactly (position and normal velocity mirrored), and each
overlapping, approaching pair is rewound along its velocities to the instant of contact, its velocity components
along the line of centres are exchanged (the elastic collision of equal masses, which conserves momentum and
kinetic energy exactly) and it is advanced again for the rewound time. Walls are applied again after collisions, so
every centre stays within ``[r, W - r]``. Random numbers come from ``numpy.random.default_rng`` (PCG64).

Only trajectories (float32 centres, compact) are stored; frames are rendered on the fly, which is fast.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal, Optional, Union

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view
from torch.utils.data import Dataset

from vpzoo.cache import default_cache_dir, options_hash
from vpzoo.data._common import (
    BatchStream,
    MappedNpy,
    VideoDataModule,
    check_int,
    check_loader_options,
    ensure_cached_npy,
    split_rng,
    uint8_to_float,
)

__all__ = [
    "SIMULATOR_VERSION",
    "simulate_bouncing_balls",
    "elastic_collision",
    "render_balls",
    "BouncingBallsClips",
    "BouncingBallsDataModule",
]

SIMULATOR_VERSION = 1
"""Bumped whenever the trajectories for a given seed change; part of every cache key."""


def elastic_collision(
    p1: np.ndarray, v1: np.ndarray, p2: np.ndarray, v2: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Post-collision velocities of two equal-mass balls in contact at centres ``p1``, ``p2`` (``(..., 2)``).

    The velocity components along the line of centres are exchanged; the tangential ones are kept.
    """
    n = p2 - p1
    n = n / np.linalg.norm(n, axis=-1, keepdims=True)
    u1 = np.sum(v1 * n, axis=-1, keepdims=True)
    u2 = np.sum(v2 * n, axis=-1, keepdims=True)
    return v1 + (u2 - u1) * n, v2 + (u1 - u2) * n


def _reflect_walls(pos: np.ndarray, vel: np.ndarray, low: float, high: float) -> None:
    below = pos < low
    pos[below] = 2.0 * low - pos[below]
    vel[below] = np.abs(vel[below])
    above = pos > high
    pos[above] = 2.0 * high - pos[above]
    vel[above] = -np.abs(vel[above])


def _collide_pairs(pos: np.ndarray, vel: np.ndarray, radius: float, dt: float) -> None:
    k = pos.shape[1]
    min_d2 = (2.0 * radius) ** 2
    for i in range(k):
        for j in range(i + 1, k):
            d = pos[:, j] - pos[:, i]
            dv = vel[:, j] - vel[:, i]
            d2 = np.einsum("nc,nc->n", d, d)
            ddv = np.einsum("nc,nc->n", d, dv)
            hit = (d2 < min_d2) & (ddv < 0.0)
            if not hit.any():
                continue
            d, dv, d2, ddv = d[hit], dv[hit], d2[hit], ddv[hit]
            vv = np.einsum("nc,nc->n", dv, dv)
            # time since contact s >= 0: |d - dv s| = 2r (the positive root; d.dv < 0, |d| < 2r)
            disc = np.maximum(ddv * ddv - vv * (d2 - min_d2), 0.0)
            s = np.clip((ddv + np.sqrt(disc)) / np.maximum(vv, 1e-300), 0.0, dt)[:, None]
            pi, pj = pos[hit, i] - vel[hit, i] * s, pos[hit, j] - vel[hit, j] * s
            vi, vj = elastic_collision(pi, vel[hit, i], pj, vel[hit, j])
            pos[hit, i] = pi + vi * s
            pos[hit, j] = pj + vj * s
            vel[hit, i] = vi
            vel[hit, j] = vj


def _initial_positions(rng: np.random.Generator, n: int, k: int, radius: float, world: float, min_sep: float):
    pos = np.empty((n, k, 2))
    todo = np.arange(n)
    while todo.size:
        cand = rng.uniform(radius, world - radius, size=(todo.size, k, 2))
        diff = cand[:, :, None] - cand[:, None, :]
        dist = np.sqrt(np.einsum("nijc,nijc->nij", diff, diff))
        dist[:, np.arange(k), np.arange(k)] = np.inf
        ok = (dist >= min_sep).all(axis=(1, 2))
        pos[todo[ok]] = cand[ok]
        todo = todo[~ok]
    return pos


def simulate_bouncing_balls(
    num_sequences: int,
    seq_len: int = 60,
    rng: Union[np.random.Generator, int] = 0,
    *,
    num_balls: int = 4,
    radius: float = 60.0,
    world_size: float = 800.0,
    max_init_speed: int = 20,
    min_separation: float = 2.5,
    max_speed: float = 60.0,
    substeps: int = 10,
    return_velocities: bool = False,
    chunk_size: int = 10000,
):
    """Simulate ``N`` trajectories of equal-mass elastic balls in a square box (see the module docstring).

    Returns:
        ``positions`` float64 ``(N, T, K, 2)`` (x, y centres in world units), and ``velocities`` (same shape, world
        units per frame, the velocity at each recorded frame) when ``return_velocities``.
    """
    n = check_int("num_sequences", num_sequences, 0)
    t_len = check_int("seq_len", seq_len, 1)
    k = check_int("num_balls", num_balls, 1)
    check_int("substeps", substeps, 1)
    check_int("max_init_speed", max_init_speed, 0)
    if not 0 < 2 * radius < world_size:
        raise ValueError(f"need 0 < 2 * radius < world_size, got radius={radius}, world_size={world_size}")
    if not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng(rng)
    positions = np.empty((n, t_len, k, 2))
    velocities = np.empty((n, t_len, k, 2))
    low, high, dt = float(radius), float(world_size - radius), 1.0 / substeps
    done = 0
    while done < n:
        m = min(chunk_size, n - done)
        pos = _initial_positions(rng, m, k, radius, world_size, min_separation * radius)
        vel = rng.integers(-max_init_speed, max_init_speed + 1, size=(m, k, 2)).astype(np.float64)
        p_out, v_out = positions[done : done + m], velocities[done : done + m]
        p_out[:, 0], v_out[:, 0] = pos, vel
        for t in range(1, t_len):
            for _ in range(substeps):
                pos += vel * dt
                _reflect_walls(pos, vel, low, high)
                _collide_pairs(pos, vel, radius, dt)
                _reflect_walls(pos, vel, low, high)
            p_out[:, t], v_out[:, t] = pos, vel
        bad = (np.linalg.norm(v_out, axis=-1) > max_speed).any(axis=(1, 2))
        bad |= ((p_out < 0) | (p_out > world_size)).any(axis=(1, 2, 3))
        keep = np.flatnonzero(~bad)  # rejected trajectories are resampled by the next chunk
        positions[done : done + keep.size] = p_out[keep]
        velocities[done : done + keep.size] = v_out[keep]
        done += keep.size
    return (positions, velocities) if return_velocities else positions


def _disk(radius_px: int) -> np.ndarray:
    r = int(radius_px)
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    return ((xx * xx + yy * yy) <= r * r).astype(np.uint8) * 255


def render_balls(
    positions: np.ndarray, image_size: int = 128, world_size: float = 800.0, radius: float = 60.0
) -> np.ndarray:
    """Render centres ``(N, T, K, 2)`` (x, y world units) as white discs: uint8 ``(N, T, 1, S, S)``."""
    positions = np.asarray(positions)
    n, t_len, k, _ = positions.shape
    scale = image_size / world_size
    r = int(radius * scale)
    disk = _disk(r)
    pad = image_size + 2 * r
    canvas = np.zeros((n, t_len, pad, pad), dtype=np.uint8)
    windows = sliding_window_view(canvas, disk.shape, axis=(2, 3), writeable=True)
    centres = np.clip((positions * scale).astype(np.int64), -r, image_size + r - 1) + r  # padded coordinates
    ii = np.arange(n)[:, None]
    tt = np.arange(t_len)[None, :]
    for b in range(k):
        cx, cy = centres[:, :, b, 0] - r, centres[:, :, b, 1] - r  # window top-left
        windows[ii, tt, cy, cx] = np.maximum(windows[ii, tt, cy, cx], disk)
    return np.ascontiguousarray(canvas[:, :, None, r : r + image_size, r : r + image_size])


class BouncingBallsClips(MappedNpy, Dataset):
    """Fixed clips rendered on the fly from stored trajectories ``(N, T_traj, K, 2)`` (frames ``[0, seq_len)``).

    Items are float32 ``(seq_len, 1, S, S)``, or dicts ``{"video", "positions"}`` (centres normalised by the world
    size, as DDPAE's loader returns them) with ``return_positions``.
    """

    def __init__(
        self,
        path: Union[str, os.PathLike],
        seq_len: int,
        image_size: int = 128,
        world_size: float = 800.0,
        radius: float = 60.0,
        return_positions: bool = False,
    ) -> None:
        super().__init__(path)
        self.seq_len, self.image_size = int(seq_len), int(image_size)
        self.world_size, self.radius = float(world_size), float(radius)
        self.return_positions = bool(return_positions)
        self._len = len(self.array)

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, index: int):
        pos = np.asarray(self.array[index, : self.seq_len], dtype=np.float64)[None]
        video = uint8_to_float(render_balls(pos, self.image_size, self.world_size, self.radius)[0])
        if self.return_positions:
            return {"video": video, "positions": torch.from_numpy((pos[0] / self.world_size).astype(np.float32))}
        return video


class _BallsBatcher:
    """Picklable ``make_batch(rng)``: random windows of stored trajectories, rendered (mmap reopened per process)."""

    def __init__(self, path, batch_size, seq_len, traj_len, image_size, world_size, radius, return_positions):
        self.trajectories = MappedNpy(path)
        self.batch_size, self.seq_len, self.traj_len = batch_size, seq_len, traj_len
        self.image_size, self.world_size, self.radius = image_size, world_size, radius
        self.return_positions = return_positions

    def __call__(self, rng: np.random.Generator):
        tr, b = self.trajectories.array, self.batch_size
        idx = rng.integers(0, len(tr), size=b)
        start = rng.integers(0, self.traj_len - self.seq_len + 1, size=b)
        order = np.argsort(idx, kind="stable")  # sorted reads from the memory map
        rows = np.empty((b,) + tr.shape[1:], dtype=np.float64)
        rows[order] = tr[idx[order]]
        steps = start[:, None] + np.arange(self.seq_len)[None]
        pos = rows[np.arange(b)[:, None], steps]
        video = uint8_to_float(render_balls(pos, self.image_size, self.world_size, self.radius))
        if self.return_positions:
            return {"video": video, "positions": torch.from_numpy((pos / self.world_size).astype(np.float32))}
        return video


class BouncingBallsDataModule(VideoDataModule):
    """Bouncing Balls (DDPAE's setting) as a LightningDataModule; batches float32 ``(B, T, 1, S, S)`` in {0, 1}.

    Trajectories (``num_train`` / ``num_val`` / ``num_test`` of ``traj_len`` frames) are simulated once with
    ``seed`` (train) and ``eval_seed`` (val, test; distinct streams) and cached as float32 ``.npy`` under ``root``
    (default ``$VPZOO_CACHE/bouncing_balls``), keyed by a hash of every option. Training is an endless seeded
    stream of random windows of the training trajectories; val/test are frames ``0 .. eval_seq_len - 1``.

    Args:
        root: cache directory of the simulated trajectories.
        batch_size: training batch size (DDPAE: 100).
        seq_len: training clip length (10 + 10 = 20).
        eval_seq_len: val/test clip length.
        image_size: rendered frame side (128).
        num_balls: balls per video (4).
        radius: ball radius in world units (60).
        world_size: side of the square world (800).
        traj_len: simulated frames per trajectory (60).
        num_train: training trajectories (50,000).
        num_val: validation trajectories.
        num_test: test trajectories (2,000).
        substeps: simulation sub-steps per frame.
        return_positions: batches become ``{"video", "positions"}`` dicts (centres / world_size, ``(B, T, K, 2)``).
        eval_batch_size, num_workers, seed, eval_seed, pin_memory, persistent_workers: as usual.
    """

    channels: int = 1

    def __init__(
        self,
        root: Optional[str] = None,
        batch_size: int = 100,
        seq_len: int = 20,
        eval_seq_len: int = 20,
        image_size: int = 128,
        num_balls: int = 4,
        radius: float = 60.0,
        world_size: float = 800.0,
        traj_len: int = 60,
        num_train: int = 50000,
        num_val: int = 256,
        num_test: int = 2000,
        substeps: int = 10,
        return_positions: bool = False,
        eval_batch_size: Optional[int] = None,
        num_workers: int = 0,
        seed: int = 0,
        eval_seed: int = 42,
        pin_memory: bool = False,
        persistent_workers: bool = False,
    ) -> None:
        super().__init__()
        check_int("batch_size", batch_size, 1)
        check_int("traj_len", traj_len, 2)
        check_int("seq_len", seq_len, 2, traj_len)
        check_int("eval_seq_len", eval_seq_len, 2, traj_len)
        check_int("image_size", image_size, 8)
        check_int("num_balls", num_balls, 1)
        check_int("num_train", num_train, 1)
        check_int("num_val", num_val, 1)
        check_int("num_test", num_test, 1)
        check_int("substeps", substeps, 1)
        check_loader_options(eval_batch_size, num_workers, seed=seed, eval_seed=eval_seed)
        if not 0 < 2 * radius < world_size:
            raise ValueError(f"need 0 < 2 * radius < world_size, got radius={radius}, world_size={world_size}")
        self.save_hyperparameters()
        self._store_loader_options(
            batch_size, eval_batch_size, num_workers, pin_memory, persistent_workers, seed=seed, eval_seed=eval_seed
        )
        self.root = Path(root) if root is not None else default_cache_dir("bouncing_balls")
        self.seq_len, self.eval_seq_len = int(seq_len), int(eval_seq_len)
        self.image_size, self.num_balls = int(image_size), int(num_balls)
        self.radius, self.world_size, self.traj_len = float(radius), float(world_size), int(traj_len)
        self.num_train, self.num_val, self.num_test = int(num_train), int(num_val), int(num_test)
        self.substeps = int(substeps)
        self.return_positions = bool(return_positions)

    def _options(self, split: str) -> dict:
        return {
            "dataset": "bouncing_balls",
            "simulator_version": SIMULATOR_VERSION,
            "split": split,
            "num": {"train": self.num_train, "val": self.num_val, "test": self.num_test}[split],
            "traj_len": self.traj_len,
            "num_balls": self.num_balls,
            "radius": self.radius,
            "world_size": self.world_size,
            "substeps": self.substeps,
            "seed": self.seed if split == "train" else self.eval_seed,
        }

    def trajectories_path(self, split: str) -> Path:
        """Path of the cached float32 ``(N, traj_len, K, 2)`` trajectories of ``split``."""
        return self.root / f"{split}-{options_hash(self._options(split))}.npy"

    def _ensure(self, split: str) -> Path:
        opts = self._options(split)
        shape = (opts["num"], self.traj_len, self.num_balls, 2)

        def simulate() -> np.ndarray:
            pos = simulate_bouncing_balls(
                opts["num"], self.traj_len, split_rng(opts["seed"], split), num_balls=self.num_balls,
                radius=self.radius, world_size=self.world_size, substeps=self.substeps,
            )
            return pos.astype(np.float32)

        def describe(_: np.ndarray) -> str:
            return json.dumps(dict(opts, shape=list(shape)), indent=2) + "\n"

        return ensure_cached_npy(self.trajectories_path(split), shape, np.float32, simulate, describe)

    def prepare_data(self) -> None:
        """Simulate and cache the train/val/test trajectories if missing."""
        for split in ("train", "val", "test"):
            self._ensure(split)

    def _make_train_batch(self, path: Path) -> "_BallsBatcher":
        return _BallsBatcher(
            path, self.batch_size, self.seq_len, self.traj_len, self.image_size, self.world_size, self.radius,
            self.return_positions,
        )

    def _make_train_set(self) -> BatchStream:
        return BatchStream(self._make_train_batch(self._ensure("train")), self.seed, self._rank())

    def _make_eval_set(self, split: Literal["val", "test"]) -> BouncingBallsClips:
        return BouncingBallsClips(
            self._ensure(split), self.eval_seq_len, image_size=self.image_size, world_size=self.world_size,
            radius=self.radius, return_positions=self.return_positions,
        )
