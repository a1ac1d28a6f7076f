"""Pieces shared by vpzoo's dataset modules (SM-MNIST, Moving MNIST, Bouncing Balls, KTH, BAIR, Human3.6M).

* :class:`DatasetNotFoundError` and :func:`missing_data_error`: the "data is missing" error, which always names the
  command that prepares the data and the file or URL that is missing.
* :func:`check_int`, :func:`check_optional_int`, :func:`check_path`, :func:`check_loader_options`: argument checks
  whose errors name the argument, what it must be and the value given.
* :data:`SPLIT_CODES` and :func:`split_rng`: how every module seeds its training stream and its fixed val/test sets.
* :class:`BatchStream`: an endless, seeded ``IterableDataset`` of training **batches** (batch ``i`` from
  ``SeedSequence([seed, 0, rank, i])``), used with ``DataLoader(batch_size=None)``.
* :class:`EpochLoader`: a DataLoader that tells its stream where each pass starts (so resumed runs continue it).
* :class:`MappedNpy` (and :class:`LazyArrays`, :class:`FrameStore`, :class:`UInt8ClipArray`, :class:`FrameClipSet`
  built on it): ``.npy`` files memory-mapped lazily in each process (workers neither copy nor pickle the arrays).
* :func:`ensure_cached_npy` and :func:`ensure_cached_clips`: generated arrays cached as ``.npy`` with a JSON sidecar.
* :func:`fixed_clip_list`, :func:`clip_names`, :func:`clip_starts`: fixed val/test clips of videos stored one after
  another in a :class:`FrameStore`, kept as JSON ``(video name, start frame)`` lists.
* :class:`NpyWriter`: a ``.npy`` written block by block; :func:`progress_bar`: the preprocessing progress bars.
* :class:`VideoDataModule`: the LightningDataModule plumbing (loader options, stages, loaders, DDP rank) of all
  modules.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Literal, Optional, Sequence, Union

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, get_worker_info

try:
    import lightning.pytorch as pl
except ImportError:  # pragma: no cover
    import pytorch_lightning as pl  # type: ignore

from vpzoo.cache import atomic_save_npy, atomic_write_text, options_hash, try_load_npy

__all__ = [
    "DatasetNotFoundError",
    "missing_data_error",
    "check_int",
    "check_optional_int",
    "check_path",
    "check_loader_options",
    "SPLIT_CODES",
    "split_rng",
    "BatchStream",
    "EpochLoader",
    "MappedNpy",
    "LazyArrays",
    "VideoDataModule",
    "uint8_to_float",
    "ensure_cached_npy",
    "ensure_cached_clips",
    "NpyWriter",
    "progress_bar",
    "UInt8ClipArray",
    "FrameStore",
    "prepared_frames",
    "source_fingerprint",
    "clean_stale_temporaries",
    "nothing_decoded_error",
    "FrameClipSet",
    "clip_names",
    "clip_starts",
    "fixed_clip_list",
]

Split = Literal["train", "val", "test"]

SPLIT_CODES = {"train": 0, "val": 1, "test": 2}
"""Second entry of every seed sequence ``SeedSequence([seed, SPLIT_CODES[split], ...])``: the training stream and the
fixed val and test sets draw from distinct streams even when their seeds are equal."""


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


# --------------------------------------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------------------------------------
def check_int(name: str, value: Any, minimum: int, maximum: Optional[int] = None) -> int:
    """Return ``int(value)`` after checking it is an integer (not bool) in ``[minimum, maximum]``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return int(value)


def check_optional_int(name: str, value: Any, minimum: int, maximum: Optional[int] = None) -> Optional[int]:
    """``None`` stays ``None``; anything else is checked by :func:`check_int`."""
    return None if value is None else check_int(name, value, minimum, maximum)


def check_path(name: str, value: Any, optional: bool = False) -> None:
    """Check that ``value`` is a path (``str`` or ``os.PathLike``), or ``None`` when ``optional``."""
    if optional and value is None:
        return
    if not isinstance(value, (str, os.PathLike)):
        raise ValueError(f"{name} must be a directory path{' or None' if optional else ''}, got {value!r}")


def check_loader_options(eval_batch_size: Any, num_workers: Any, **seeds: Any) -> None:
    """Check the options every DataModule takes, in this order: ``eval_batch_size`` (``None`` or >= 1),
    ``num_workers`` (>= 0), then each of ``seeds`` (``seed=..., eval_seed=...``: integers >= 0) in the order given."""
    check_optional_int("eval_batch_size", eval_batch_size, 1)
    check_int("num_workers", num_workers, 0)
    for name, value in seeds.items():
        check_int(name, value, 0)


# --------------------------------------------------------------------------------------------------------
# Seeding and the training stream
# --------------------------------------------------------------------------------------------------------
def split_rng(seed: int, split: Split) -> np.random.Generator:
    """The generator that draws the fixed ``split`` data: ``default_rng(SeedSequence([seed, SPLIT_CODES[split]]))``."""
    return np.random.default_rng(np.random.SeedSequence([seed, SPLIT_CODES[split]]))


class BatchStream(IterableDataset):
    """Endless, seeded stream of training batches produced by ``make_batch(rng)``.

    ``make_batch`` is given to the constructor (a picklable callable) or defined by a subclass as a method.
    Batch ``i`` of the stream (its *position*: the number of batches this rank's training loader handed out before it,
    over all passes) is drawn with ``default_rng(SeedSequence([seed, 0, rank, i]))``. So the stream is the same for
    any number of DataLoader workers (worker ``w`` of ``W`` draws positions ``start + w``, ``start + w + W``, ...,
    which the DataLoader delivers in order), different ranks draw different batches, and a pass that starts at
    position ``start`` (:meth:`set_start`, called by :class:`EpochLoader` before each pass) continues the stream where
    the previous one stopped: a resumed training run sees the batches the uninterrupted run would have seen, never
    the first ones again.

    Persistent workers keep their own copy of the stream: from their second pass on they continue their own lane
    (no batch is repeated), which is exact whenever they consumed whole lanes.
    """

    def __init__(
        self, make_batch: Optional[Callable[[np.random.Generator], Any]] = None, seed: int = 0, rank: int = 0
    ) -> None:
        super().__init__()
        if make_batch is not None:
            self.make_batch = make_batch
        self.seed = check_int("seed", seed, 0)
        self.rank = check_int("rank", rank, 0)
        self.start = 0
        self._lane: Optional[tuple[int, int]] = None  # (start of the last pass, next position) inside a worker

    def make_batch(self, rng: np.random.Generator) -> Any:
        """One training batch drawn with ``rng`` (replaced by the constructor's ``make_batch``)."""
        raise NotImplementedError(f"{type(self).__name__} needs make_batch= or a make_batch method")

    def set_start(self, position: int) -> None:
        """Make the next pass start at batch ``position`` (>= 0) of the stream."""
        self.start = check_int("position", position, 0)

    def make_rng(self, position: int) -> np.random.Generator:
        """The generator of the batch at ``position`` (exposed for reproducibility checks)."""
        seq = np.random.SeedSequence([self.seed, SPLIT_CODES["train"], self.rank, int(position)])
        return np.random.default_rng(seq)

    def batches(self, start: int = 0, step: int = 1) -> Iterator[Any]:
        """The endless batches at positions ``start``, ``start + step``, ..."""
        position = start
        while True:
            batch = self.make_batch(self.make_rng(position))
            position += step
            if self._lane is not None:
                self._lane = (self._lane[0], position)
            yield batch

    def __iter__(self) -> Iterator[Any]:
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (int(info.id), int(info.num_workers))
        first = self.start + worker
        if info is not None:
            if self._lane is not None and self._lane[0] == self.start:  # a persistent worker's next pass
                first = self._lane[1]
            self._lane = (self.start, first)
        return self.batches(first, workers)


class EpochLoader(DataLoader):
    """DataLoader of a :class:`BatchStream` that tells it, before each pass, where the pass starts.

    The position is ``position()`` when that callable is given and returns a number (the data modules pass the
    trainer's count of processed training batches, restored from the checkpoint when a run resumes), else the number
    of batches this loader has handed out so far.
    """

    def __init__(self, *args, position: Optional[Callable[[], Optional[int]]] = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._position = position
        self.handed_out = 0

    def __iter__(self):
        start = self._position() if self._position is not None else None
        if start is None:
            start = self.handed_out
        self.handed_out = int(start)
        if hasattr(self.dataset, "set_start"):
            self.dataset.set_start(self.handed_out)
        for batch in super().__iter__():
            self.handed_out += 1
            yield batch


# --------------------------------------------------------------------------------------------------------
# Lazily memory-mapped arrays
# --------------------------------------------------------------------------------------------------------
def uint8_to_float(array: np.ndarray) -> torch.Tensor:
    """uint8 array -> float32 tensor in [0, 1] (values exactly ``k / 255``)."""
    out = np.array(array, dtype=np.float32)  # a copy: also detaches memory-mapped / read-only inputs
    out /= np.float32(255)
    return torch.from_numpy(out)


class MappedNpy:
    """A ``.npy`` file opened with ``mmap_mode="r"`` on first use of :attr:`array`, separately in each process.

    Pickling (DataLoader workers, DDP spawn) keeps :attr:`path` and drops the open map. Subclasses may hold an
    in-memory array instead (``path = None``), which is then pickled with them.
    """

    def __init__(self, path: Union[str, os.PathLike]) -> None:
        self.path: Optional[str] = os.fspath(path)
        self._array: Optional[np.ndarray] = None

    def _open(self) -> np.ndarray:
        return np.load(self.path, mmap_mode="r", allow_pickle=False)

    @property
    def array(self) -> np.ndarray:
        if self._array is None:
            self._array = self._open()
        return self._array

    def __getstate__(self):
        state = self.__dict__.copy()
        if self.path is not None:
            state["_array"] = None
        return state


class LazyArrays:
    """A set of named ``.npy`` files, each a :class:`MappedNpy`: ``arrays[name]`` is the memory-mapped array."""

    def __init__(self, paths: dict[str, Union[str, os.PathLike]]) -> None:
        self.files = {k: MappedNpy(v) for k, v in paths.items()}

    @property
    def paths(self) -> dict[str, str]:
        return {k: f.path for k, f in self.files.items()}

    def __getitem__(self, key: str) -> np.ndarray:
        return self.files[key].array

    def __contains__(self, key: str) -> bool:
        return key in self.files


class UInt8ClipArray(MappedNpy, Dataset):
    """Map-style clips from a uint8 ``(N, T, C, H, W)`` array; items are float32 ``(T, C, H, W)`` in [0, 1].

    ``source`` is the path of a ``.npy`` file (memory-mapped lazily in each process) or an in-memory array.
    """

    def __init__(self, source: Union[np.ndarray, str, os.PathLike]) -> None:
        if isinstance(source, np.ndarray):
            if source.dtype != np.uint8 or source.ndim != 5:
                raise ValueError(f"expected a uint8 (N, T, C, H, W) array, got {source.dtype} {source.shape}")
            self.path = None
            self._array = source
        else:
            super().__init__(source)
        self._len = len(self.array)

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, index: int) -> torch.Tensor:
        return uint8_to_float(self.array[index])


# --------------------------------------------------------------------------------------------------------
# Cached generated arrays
# --------------------------------------------------------------------------------------------------------
def ensure_cached_npy(
    path: Path,
    shape: tuple[int, ...],
    dtype: np.dtype,
    generate: Callable[[], np.ndarray],
    describe: Callable[[np.ndarray], str],
) -> Path:
    """Return ``path`` after making sure it holds an array of exactly ``shape`` and ``dtype``.

    When it does not (missing, truncated or stale), ``generate()`` is saved there atomically and
    ``describe(array)`` is written beside it as ``path.with_suffix(".json")``.
    """
    cached = try_load_npy(path, shape, dtype)
    if cached is not None and not _matches_recorded_sha256(path, cached):
        warnings.warn(f"{path} does not match the sha256 recorded beside it (changed or corrupted): regenerating it")
        cached = None
    if cached is None:
        data = generate()
        atomic_save_npy(path, data)
        atomic_write_text(path.with_suffix(".json"), describe(data))
        _VERIFIED_ARRAYS.add(_file_key(path))
    return path


_VERIFIED_ARRAYS: set[tuple[str, int, int]] = set()


def _file_key(path: Path) -> tuple[str, int, int]:
    st = os.stat(path)
    return (os.path.realpath(path), int(st.st_size), int(st.st_mtime_ns))


def _matches_recorded_sha256(path: Path, array: np.ndarray) -> bool:
    """Whether ``array`` (loaded from ``path``) has the sha256 its JSON sidecar records. Hashed once per process and
    file version (path, size, mtime); a sidecar without a digest has nothing to check, a missing or unreadable one
    fails (the cache entry is incomplete)."""
    key = _file_key(path)
    if key in _VERIFIED_ARRAYS:
        return True
    try:
        meta = json.loads(path.with_suffix(".json").read_text())
    except (OSError, ValueError):
        return False
    expected = meta.get("sha256") if isinstance(meta, dict) else None
    if expected is not None and hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest() != expected:
        return False
    _VERIFIED_ARRAYS.add(key)
    return True


def ensure_cached_clips(
    path: Path, options: dict, shape: tuple[int, int, int, int, int], generate: Callable[[], np.ndarray]
) -> Path:
    """:func:`ensure_cached_npy` for generated uint8 clips ``(N, T, C, H, W)``; the JSON sidecar holds ``options``,
    the shape, the dtype and the sha256 of the array's bytes."""

    def describe(data: np.ndarray) -> str:
        meta = dict(options, shape=list(shape), dtype="uint8", sha256=hashlib.sha256(data.tobytes()).hexdigest())
        return json.dumps(meta, indent=2, sort_keys=True) + "\n"

    return ensure_cached_npy(path, shape, np.uint8, generate, describe)


# --------------------------------------------------------------------------------------------------------
# Preprocessing
# --------------------------------------------------------------------------------------------------------
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
        self._remove_stale_temporaries()
        self._f = open(self._tmp, "wb")
        self._f.write(self._header((0,) + self.row_shape))

    def _remove_stale_temporaries(self) -> None:
        """Delete the temporary files of writers of the same ``path`` whose process is gone (a killed preparation
        leaves tens of MB behind otherwise); those of live processes are left alone."""
        for stale in self.path.parent.glob(f".{self.path.name}.*.tmp"):
            pid = stale.name[len(self.path.name) + 2: -len(".tmp")]
            if not pid.isdigit():
                continue
            try:
                os.kill(int(pid), 0)
                alive = int(pid) != os.getpid()
            except ProcessLookupError:
                alive = False
            except PermissionError:  # another user's live process
                alive = True
            if not alive:
                stale.unlink(missing_ok=True)

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


class _NoProgress:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(enabled: bool, total: int, desc: str, unit: str):
    """A ``tqdm`` bar (``update``, ``close``), or one that shows nothing when disabled or tqdm is not installed."""
    if enabled:
        try:
            from tqdm.auto import tqdm
        except ImportError:  # pragma: no cover - tqdm ships with lightning
            pass
        else:
            return tqdm(total=total, desc=desc, unit=unit)
    return _NoProgress()


# --------------------------------------------------------------------------------------------------------
# Videos stored frame after frame
# --------------------------------------------------------------------------------------------------------
class FrameStore(MappedNpy):
    """Frames of many videos concatenated in one ``.npy`` ``(F, ...)``, memory-mapped lazily in each process.

    The videos are described by records ``{"name", "offset", "length", ...}``: video ``v`` is frames
    ``[v["offset"], v["offset"] + v["length"])``. A clip is given by its global start frame.
    """

    def clips(self, starts: np.ndarray, length: int) -> np.ndarray:
        """uint8 ``(len(starts), length, ...)``: frames ``[s, s + length)`` for each start (read in sorted order)."""
        arr = self.array
        starts = np.asarray(starts, dtype=np.int64)
        out = np.empty((len(starts), length) + arr.shape[1:], dtype=arr.dtype)
        for k in np.argsort(starts, kind="stable"):
            out[k] = arr[starts[k] : starts[k] + length]
        return out


def source_fingerprint(root: Path, paths: Iterable[Path]) -> list[list]:
    """``[relative path, size, mtime in ns]`` of each source file: what a preparation was built from, recorded in its
    ``videos.json`` so that changed, added or removed sources make :func:`prepared_frames` ask for a new one."""
    out = []
    for p in sorted(set(paths)):
        st = p.stat()
        out.append([p.relative_to(root).as_posix(), int(st.st_size), int(st.st_mtime_ns)])
    return out


def prepared_frames(
    folder: Path, version: int, frame_shape: tuple[int, ...], sources: Optional[list[list]] = None
) -> Optional[np.ndarray]:
    """The memory-mapped ``folder/frames.npy`` if it holds exactly the frames of the videos listed in
    ``folder/videos.json`` (``(sum of their lengths,) + frame_shape``, at least one video) and that file has
    preprocessing ``version``; ``None`` when either file is missing, unreadable or does not match. With ``sources``
    (:func:`source_fingerprint` of the sources present now; an empty list means none are present, e.g. deleted after
    preparation, which keeps the prepared frames), a preparation recorded from other sources is not ready either."""
    try:
        meta = json.loads((folder / "videos.json").read_text())
        arr = np.load(folder / "frames.npy", mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError):
        return None
    videos = meta.get("videos") or []
    total = sum(v["length"] for v in videos)
    if meta.get("version") != version or not videos or arr.shape != (total,) + tuple(frame_shape):
        return None
    if sources and meta.get("sources") is not None and meta["sources"] != sources:
        return None
    return arr


def clean_stale_temporaries(folder: Path) -> list[Path]:
    """Remove the ``tmp*`` extraction folders that a killed preparation of an older vpzoo left in ``folder`` (current
    versions extract outside the searched tree). Returns what was removed."""
    import shutil

    removed = []
    if not folder.is_dir():
        return removed
    for p in folder.iterdir():
        if p.is_dir() and not p.is_symlink() and p.name.startswith("tmp") and len(p.name) == 11:
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    return removed


def nothing_decoded_error(dataset: str, root: Path, count: int, first_error: Optional[str]) -> ValueError:
    """The error of a preparation in which no video could be decoded (nothing is recorded as prepared)."""
    return ValueError(
        f"{dataset} under {root}: none of the {count} videos could be decoded (first error: {first_error}); nothing "
        "was prepared. Check or replace the files, then prepare again"
    )


class FrameClipSet(Dataset):
    """Fixed clips of a :class:`FrameStore`: item ``i`` is frames ``[starts[i], starts[i] + length)``, float32 in
    [0, 1] (``(length, C, H, W)`` for frames stored as ``(F, C, H, W)``)."""

    def __init__(self, frames_path: Union[str, os.PathLike], starts: np.ndarray, length: int) -> None:
        self.frames = FrameStore(frames_path)
        self.starts = np.asarray(starts, dtype=np.int64)
        self.length = int(length)

    def __len__(self) -> int:
        return len(self.starts)

    def _uint8_clip(self, index: int) -> np.ndarray:
        """uint8 frames of clip ``index`` as a batch of one, ``(1, length, ...)``."""
        return self.frames.clips(self.starts[index : index + 1], self.length)

    def __getitem__(self, index: int) -> torch.Tensor:
        return uint8_to_float(self._uint8_clip(index)[0])


def clip_names(videos: Sequence[dict], starts: np.ndarray) -> list[tuple[str, int]]:
    """Global start frames -> ``(video name, start frame within that video)``."""
    by_offset = sorted(videos, key=lambda v: v["offset"])
    offsets = np.array([v["offset"] for v in by_offset])
    idx = np.searchsorted(offsets, starts, side="right") - 1
    return [(by_offset[i]["name"], int(s - by_offset[i]["offset"])) for i, s in zip(idx, starts)]


def clip_starts(videos: Sequence[dict], clips: Sequence[tuple[str, int]]) -> np.ndarray:
    """``(video name, start frame within that video)`` -> global start frames, int64 ``(len(clips),)``."""
    offset = {v["name"]: v["offset"] for v in videos}
    return np.array([offset[name] + s for name, s in clips], dtype=np.int64)


def fixed_clip_list(
    folder: Path,
    which: Literal["val", "test"],
    options: dict,
    videos: Sequence[dict],
    eval_seed: int,
    draw_starts: Callable[[np.random.Generator], np.ndarray],
) -> list[tuple[str, int]]:
    """The fixed ``(video name, start frame)`` clips of the ``which`` set, drawn once and stored as JSON.

    ``options`` describe the draw; ``eval_seed`` and a hash of the videos' names and lengths are added to them, and
    the clips are stored in ``folder / f"{which}-{options_hash(options)}.json"`` (with the options). When that file
    is missing, the global starts are drawn from ``videos`` by ``draw_starts(split_rng(eval_seed, which))``.
    """
    opts = dict(options, eval_seed=eval_seed, videos=options_hash({v["name"]: v["length"] for v in videos}))
    path = folder / f"{which}-{options_hash(opts)}.json"
    if path.is_file():
        return [tuple(c) for c in json.loads(path.read_text())["clips"]]
    clips = clip_names(videos, draw_starts(split_rng(eval_seed, which)))
    atomic_write_text(path, json.dumps(dict(opts, clips=clips)) + "\n")
    return clips


# --------------------------------------------------------------------------------------------------------
# LightningDataModule
# --------------------------------------------------------------------------------------------------------
class VideoDataModule(pl.LightningDataModule):
    """Plumbing shared by vpzoo's video DataModules: loader options, stages, loaders and the DDP rank.

    Batches are float32 ``(B, T, C, H, W)`` in [0, 1] (or dicts holding such a ``"video"``). Subclasses check their
    loader options with :func:`check_loader_options`, store them with :meth:`_store_loader_options` and implement
    :meth:`_make_train_set` (a :class:`BatchStream` of whole batches) and :meth:`_make_eval_set` (a map-style dataset
    of single clips); :meth:`setup` builds the sets a stage needs into ``train_set``, ``val_set`` and ``test_set``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.train_set: Optional[BatchStream] = None
        self.val_set: Optional[Dataset] = None
        self.test_set: Optional[Dataset] = None

    def _store_loader_options(
        self,
        batch_size: int,
        eval_batch_size: Optional[int],
        num_workers: int,
        pin_memory: bool,
        persistent_workers: bool,
        **seeds: int,
    ) -> None:
        """Store the checked loader options; ``eval_batch_size=None`` means ``batch_size``; ``seeds`` (``seed=...,
        eval_seed=...``) become integer attributes of the same names."""
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size or batch_size)
        self.num_workers = int(num_workers)
        for name, value in seeds.items():
            setattr(self, name, int(value))
        self.pin_memory = bool(pin_memory)
        self.persistent_workers = bool(persistent_workers)

    # ---- datasets ---------------------------------------------------------------------------------------
    def _make_train_set(self) -> BatchStream:
        """The training stream (batches ``(batch_size, seq_len, C, H, W)``)."""
        raise NotImplementedError

    def _make_eval_set(self, split: Literal["val", "test"]) -> Dataset:
        """The fixed ``split`` set (items ``(eval_seq_len, C, H, W)``)."""
        raise NotImplementedError

    def setup(self, stage: Optional[str] = None) -> None:
        """Build the sets of ``stage``: "fit" train and val, "validate" val, "test"/"predict" test, ``None`` all."""
        if stage in (None, "fit"):
            self.train_set = self._make_train_set()
        if stage in (None, "fit", "validate"):
            self.val_set = self._make_eval_set("val")
        if stage in (None, "test", "predict"):
            self.test_set = self._make_eval_set("test")

    # ---- loaders ----------------------------------------------------------------------------------------
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
        return EpochLoader(self.train_set, batch_size=None, position=self._batches_processed, **self._loader_kwargs())

    def _batches_processed(self) -> Optional[int]:
        """Training batches the trainer has processed (restored from the checkpoint on resume), ``None`` without one."""
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return None
        return int(trainer.fit_loop.epoch_loop.batch_progress.total.processed)

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
