"""Pieces shared by vpzoo's dataset modules (KTH, BAIR, Moving MNIST, Bouncing Balls, Human3.6M).

* :class:`DatasetNotFoundError` and :func:`missing_data_error`: the "data is missing" error, which always names the
  command that prepares the data and the file or URL that is missing.
* :class:`BatchStream`: an endless, seeded ``IterableDataset`` of training **batches** (seeded like the SM-MNIST
  stream: ``SeedSequence([seed, 0, rank, worker_id, epoch, n_iter])``), used with ``DataLoader(batch_size=None)``.
* :class:`EpochLoader`: a DataLoader that tells its dataset the epoch before each pass.
* :class:`LazyArrays`: memory-mapped ``.npy`` files opened lazily in each process (workers neither copy nor pickle
  the arrays).
* :class:`VideoDataModule`: the LightningDataModule plumbing (loaders, DDP rank, workers) common to all modules.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Union

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, get_worker_info

try:
    import lightning.pytorch as pl
except ImportError:  # pragma: no cover
    import pytorch_lightning as pl  # type: ignore

__all__ = [
    "DatasetNotFoundError",
    "missing_data_error",
    "check_int",
    "BatchStream",
    "EpochLoader",
    "LazyArrays",
    "VideoDataModule",
    "uint8_to_float",
    "NpyWriter",
    "UInt8ClipArray",
    "FrameStore",
]


class DatasetNotFoundError(FileNotFoundError):
    """Raised when a dataset's raw or preprocessed files are missing and cannot be downloaded."""


def missing_data_error(
    name: str,
    root: Union[str, os.PathLike],
    missing: Union[str, os.PathLike, list],
    url: Optional[str] = None,
    hint: str = "",
    cause: Optional[BaseException] = None,
) -> DatasetNotFoundError:
    """Build the standard error: what is missing, where, the URL it comes from and the command to run."""
    items = missing if isinstance(missing, list) else [missing]
    shown = ", ".join(str(m) for m in items[:5]) + (f" (and {len(items) - 5} more)" if len(items) > 5 else "")
    msg = f"{name} data is missing under root={str(root)!r}: {shown}."
    if url:
        msg += f" Source: {url}."
    if cause is not None:
        msg += f" ({type(cause).__name__}: {cause})"
    msg += f" Run `vpzoo data prepare {name} --root {root}` to download and preprocess it"
    msg += "." if not hint else f"; {hint}"
    return DatasetNotFoundError(msg)


def check_int(name: str, value: Any, minimum: int, maximum: Optional[int] = None) -> int:
    """Return ``int(value)`` after checking it is an integer (not bool) in ``[minimum, maximum]``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return int(value)


def uint8_to_float(array: np.ndarray) -> torch.Tensor:
    """uint8 array -> float32 tensor in [0, 1] (values exactly ``k / 255``)."""
    out = np.array(array, dtype=np.float32)  # a copy: also detaches memory-mapped / read-only inputs
    out /= np.float32(255)
    return torch.from_numpy(out)


class LazyArrays:
    """A set of ``.npy`` files opened with ``mmap_mode="r"`` on first access in each process.

    Pickling (DataLoader workers, DDP spawn) drops the open maps and keeps the paths.
    """

    def __init__(self, paths: dict[str, Union[str, os.PathLike]]) -> None:
        self.paths = {k: os.fspath(v) for k, v in paths.items()}
        self._arrays: dict[str, np.ndarray] = {}

    def __getitem__(self, key: str) -> np.ndarray:
        arr = self._arrays.get(key)
        if arr is None:
            arr = np.load(self.paths[key], mmap_mode="r", allow_pickle=False)
            self._arrays[key] = arr
        return arr

    def __contains__(self, key: str) -> bool:
        return key in self.paths

    def __getstate__(self):
        return {"paths": self.paths, "_arrays": {}}


class BatchStream(IterableDataset):
    """Endless, seeded stream of training batches produced by ``make_batch(rng)``.

    Every ``__iter__`` starts a fresh stream whose numpy generator is seeded with
    ``SeedSequence([seed, 0, rank, worker_id, epoch, n_iter])`` (``rank``: global DDP rank; ``worker_id``: the
    DataLoader worker, 0 in the main process; ``epoch``: last :meth:`set_epoch`; ``n_iter``: previous ``__iter__``
    calls on this object). Same coordinates => same batches; different rank or worker => different batches.
    """

    def __init__(self, make_batch: Callable[[np.random.Generator], Any], seed: int = 0, rank: int = 0) -> None:
        super().__init__()
        self.make_batch = make_batch
        self.seed = check_int("seed", seed, 0)
        self.rank = check_int("rank", rank, 0)
        self.epoch = 0
        self._n_iter = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def make_rng(self, worker_id: int = 0, epoch: Optional[int] = None, n_iter: int = 0) -> np.random.Generator:
        e = self.epoch if epoch is None else int(epoch)
        return np.random.default_rng(np.random.SeedSequence([self.seed, 0, self.rank, int(worker_id), e, int(n_iter)]))

    def _batches(self, rng: np.random.Generator) -> Iterator[Any]:
        while True:
            yield self.make_batch(rng)

    def __iter__(self) -> Iterator[Any]:
        info = get_worker_info()
        rng = self.make_rng(0 if info is None else int(info.id), self.epoch, self._n_iter)
        self._n_iter += 1
        return self._batches(rng)


class EpochLoader(DataLoader):
    """DataLoader that calls ``dataset.set_epoch(k)`` (k = number of previous passes) before iterating."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._epochs_started = 0

    def __iter__(self):
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(self._epochs_started)
        self._epochs_started += 1
        return super().__iter__()


class VideoDataModule(pl.LightningDataModule):
    """Loader plumbing shared by vpzoo's video DataModules.

    Subclasses set ``self.train_set`` (a :class:`BatchStream`), ``self.val_set`` and ``self.test_set`` (map-style
    datasets of single clips) in :meth:`setup`, and define ``batch_size``, ``eval_batch_size``, ``num_workers``,
    ``pin_memory`` and ``persistent_workers``.
    """

    train_set: Optional[BatchStream] = None
    val_set: Optional[Dataset] = None
    test_set: Optional[Dataset] = None

    def _rank(self) -> int:
        trainer = getattr(self, "trainer", None)
        if trainer is not None:
            return int(trainer.global_rank)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return int(torch.distributed.get_rank())
        return 0

    def _loader_kwargs(self) -> dict:
        return dict(
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers and self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        if self.train_set is None:
            self.setup("fit")
        self.train_set.rank = self._rank()
        return EpochLoader(self.train_set, batch_size=None, **self._loader_kwargs())

    def _eval_loader(self, stage: str) -> DataLoader:
        dataset = self.val_set if stage == "validate" else self.test_set
        if dataset is None:
            self.setup(stage)
            dataset = self.val_set if stage == "validate" else self.test_set
        return DataLoader(
            dataset, batch_size=self.eval_batch_size, shuffle=False, drop_last=False, **self._loader_kwargs()
        )

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("validate")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._eval_loader("test")


class NpyWriter:
    """Write a ``.npy`` whose first dimension is not known in advance, by appending blocks of rows.

    The file is written to a temporary name beside ``path`` with a fixed-size (256-byte) header that is rewritten
    with the final shape by :meth:`close`, then renamed over ``path`` (atomic). Use as a context manager; an
    exception discards the temporary file.
    """

    HEADER_BYTES = 256

    def __init__(self, path: Union[str, os.PathLike], row_shape: tuple, dtype=np.uint8) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.row_shape = tuple(int(s) for s in row_shape)
        self.dtype = np.dtype(dtype)
        self.rows = 0
        self._tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        self._f = open(self._tmp, "wb")
        self._f.write(self._header((0,) + self.row_shape))

    def _header(self, shape: tuple) -> bytes:
        import struct

        descr = np.lib.format.dtype_to_descr(self.dtype)
        text = "{'descr': %r, 'fortran_order': False, 'shape': %r, }" % (descr, tuple(shape))
        head_len = self.HEADER_BYTES - 10
        if len(text) + 1 > head_len:
            raise ValueError(f"npy header too long for shape {shape}")
        return b"\x93NUMPY\x01\x00" + struct.pack("<H", head_len) + (text.ljust(head_len - 1) + "\n").encode("latin1")

    def append(self, block: np.ndarray) -> None:
        block = np.ascontiguousarray(block, dtype=self.dtype)
        if block.shape[1:] != self.row_shape:
            raise ValueError(f"expected rows of shape {self.row_shape}, got a block of shape {block.shape}")
        self._f.write(block.tobytes())
        self.rows += block.shape[0]

    def close(self) -> Path:
        self._f.seek(0)
        self._f.write(self._header((self.rows,) + self.row_shape))
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        if not self._f.closed:
            self._f.close()
        try:
            os.unlink(self._tmp)
        except OSError:
            pass

    def __enter__(self) -> "NpyWriter":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class UInt8ClipArray(Dataset):
    """Map-style clips from a uint8 ``(N, T, C, H, W)`` ``.npy`` (memory-mapped lazily); items float32 in [0, 1]."""

    def __init__(self, path: Union[str, os.PathLike]) -> None:
        self.path = os.fspath(path)
        self._array: Optional[np.ndarray] = None
        self._len = len(self.array)

    @property
    def array(self) -> np.ndarray:
        if self._array is None:
            self._array = np.load(self.path, mmap_mode="r", allow_pickle=False)
        return self._array

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_array"] = None
        return state

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, index: int) -> torch.Tensor:
        return uint8_to_float(self.array[index])


class FrameStore:
    """Frames of many videos concatenated in one ``.npy`` ``(F, ...)``, memory-mapped lazily in each process."""

    def __init__(self, path: Union[str, os.PathLike]) -> None:
        self.path = os.fspath(path)
        self._array: Optional[np.ndarray] = None

    @property
    def array(self) -> np.ndarray:
        if self._array is None:
            self._array = np.load(self.path, mmap_mode="r", allow_pickle=False)
        return self._array

    def __getstate__(self):
        return {"path": self.path, "_array": None}

    def clips(self, starts: np.ndarray, length: int) -> np.ndarray:
        """uint8 ``(len(starts), length, ...)``: frames ``[s, s + length)`` for each start (read in sorted order)."""
        arr = self.array
        starts = np.asarray(starts, dtype=np.int64)
        out = np.empty((len(starts), length) + arr.shape[1:], dtype=arr.dtype)
        for k in np.argsort(starts, kind="stable"):
            out[k] = arr[starts[k] : starts[k] + length]
        return out
