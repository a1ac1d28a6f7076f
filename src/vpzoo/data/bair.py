"""BAIR robot pushing (Ebert et al., CoRL 2017, arXiv 1710.05268), action-free video prediction setting.

Source: one tar, :data:`BAIR_URL` (about 30 GB), holding ``softmotion30_44k/{train,test}/traj_A_to_B.tfrecords``.
Each ``tf.train.Example`` is one 30-frame clip with, per frame ``i``: ``{i}/image_aux1/encoded`` (raw RGB bytes,
64x64x3; the standard camera), ``{i}/image_main/encoded`` (a second camera, not kept), ``{i}/action`` (4 floats) and
``{i}/endeffector_pos`` (3 floats). The test split is the single file ``traj_0_to_255`` = **256 clips**.

Preprocessing (once, :func:`prepare_bair` / ``vpzoo data prepare bair --root DIR``): the TFRecords are read without
TensorFlow (:mod:`vpzoo.data.tfrecord`, CRCs checked) straight from the tar (or from an extracted
``root/softmotion30_44k``) in the numeric order of their file names, and written as

* ``root/processed/{split}_frames.npy``: uint8 ``(N, 30, 3, 64, 64)`` (``image_aux1``, model layout),
* ``root/processed/{split}_actions.npy``: float32 ``(N, 30, 4)``,
* ``root/processed/{split}_endeffector_pos.npy``: float32 ``(N, 30, 3)``,
* ``root/processed/index.json``: the source files, their first row and clip count.

Loading memory-maps these arrays. Clips (SVG's protocol, edenton/svg ``data/bair.py``):

* train: a uniformly drawn training video, frames ``0 .. seq_len - 1`` (``train_crop="start"``, SVG) or a uniformly
  drawn window (``"random"``, Improved VRNN);
* test: the 256 test videos in order, frames ``0 .. eval_seq_len - 1`` (fixed, no randomness);
* val: ``val_split="test"`` (default, what SVG and DDPAE do: validate on the test clips; the first ``num_val``) or
  ``"savp"`` (SAVP: the training file ``traj_256_to_511`` is held out of training and used for validation).

Batches are float32 ``(B, T, 3, 64, 64)`` in [0, 1], or with ``return_actions=True`` dicts ``{"video", "actions",
"endeffector_pos"}`` (``(B, T, 4)`` and ``(B, T, 3)`` float32).
"""

from __future__ import annotations

import json
import os
import re
import tarfile
import warnings
from pathlib import Path
from typing import Literal, Optional, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from vpzoo.cache import DownloadError, atomic_write_text, download_url
from vpzoo.data._common import (
    BatchStream,
    LazyArrays,
    NpyWriter,
    VideoDataModule,
    check_int,
    check_loader_options,
    check_optional_int,
    check_path,
    missing_data_error,
    progress_bar,
    uint8_to_float,
)
from vpzoo.data.tfrecord import TFRecordError, iter_tfrecord, parse_example

__all__ = [
    "BAIR_URL",
    "BAIR_TAR",
    "BAIR_SHA256",
    "NUM_FRAMES",
    "prepare_bair",
    "bair_is_prepared",
    "decode_bair_example",
    "BAIRClipSet",
    "BAIRDataModule",
]

BAIR_URL = "http://rail.eecs.berkeley.edu/datasets/bair_robot_pushing_dataset_v0.tar"
BAIR_TAR = "bair_robot_pushing_dataset_v0.tar"
BAIR_SHA256 = "c6f8d164ab2be07174ef597e3e070d7466f3142caddc467b6af119b9458cd9cd"
"""sha256 of the tar at :data:`BAIR_URL` (32,274,964,480 bytes) as TensorFlow Datasets pins it
(``tensorflow_datasets/url_checksums/bair_robot_pushing_small.txt``). Not verified here (the host is unreachable
from this project's machines)."""
PUBLISHED_SHA256 = {BAIR_URL: BAIR_SHA256}
"""Published checksums by URL: downloads from these URLs are verified unless ``prepare_bair(sha256=...)`` says
otherwise; other URLs (mirrors) are checked by the TFRecord CRCs while preprocessing."""
NUM_FRAMES = 30
IMAGE_SIZE = 64
PREPROCESS_VERSION = 1
SAVP_VAL_FILE_START = 256
"""SAVP's validation file is ``train/traj_256_to_511.tfrecords``."""

_FILE_RE = re.compile(r"(?:^|/)softmotion30_44k/(train|test)/(traj_(\d+)_to_(\d+)\.tfrecords)$")
_ARRAYS = ("frames", "actions", "endeffector_pos")


def _processed(root: Union[str, os.PathLike]) -> Path:
    return Path(root) / "processed"


def bair_is_prepared(root: Union[str, os.PathLike]) -> bool:
    """Whether ``root/processed`` holds complete preprocessed BAIR arrays."""
    d = _processed(root)
    try:
        index = json.loads((d / "index.json").read_text())
        if index.get("version") != PREPROCESS_VERSION:
            return False
        for split, info in index["splits"].items():
            n = info["num_clips"]
            t = index["num_frames"]
            shapes = {"frames": (n, t, 3, IMAGE_SIZE, IMAGE_SIZE), "actions": (n, t, 4), "endeffector_pos": (n, t, 3)}
            for name, shape in shapes.items():
                if np.load(d / f"{split}_{name}.npy", mmap_mode="r", allow_pickle=False).shape != shape:
                    return False
        return set(index["splits"]) == {"train", "test"}
    except (OSError, ValueError, KeyError):
        return False


def _decode_image(data: bytes, key: str) -> np.ndarray:
    if len(data) == IMAGE_SIZE * IMAGE_SIZE * 3:  # raw RGB bytes (the standard encoding)
        return np.frombuffer(data, dtype=np.uint8).reshape(IMAGE_SIZE, IMAGE_SIZE, 3)
    try:  # tolerate PNG/JPEG-encoded variants
        import io

        from PIL import Image

        with Image.open(io.BytesIO(data)) as im:
            arr = np.asarray(im.convert("RGB"))
    except Exception as e:
        raise TFRecordError(f"{key}: {len(data)} bytes are neither raw 64x64x3 RGB nor an image file ({e})") from e
    if arr.shape != (IMAGE_SIZE, IMAGE_SIZE, 3):
        raise TFRecordError(f"{key}: expected a 64x64 RGB image, got {arr.shape}")
    return arr


def decode_bair_example(record: bytes, num_frames: int = NUM_FRAMES) -> dict[str, np.ndarray]:
    """One BAIR Example -> ``{"frames": uint8 (T, 3, 64, 64), "actions": (T, 4), "endeffector_pos": (T, 3)}``.

    Missing actions or end-effector positions are filled with NaN (with a warning).
    """
    keys = [f"{i}/{k}" for i in range(num_frames) for k in ("image_aux1/encoded", "action", "endeffector_pos")]
    ex = parse_example(record, keys)
    frames = np.empty((num_frames, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    actions = np.full((num_frames, 4), np.nan, dtype=np.float32)
    endeff = np.full((num_frames, 3), np.nan, dtype=np.float32)
    missing = []
    for i in range(num_frames):
        img = ex.get(f"{i}/image_aux1/encoded")
        if not img:
            raise TFRecordError(f"BAIR example has no feature '{i}/image_aux1/encoded' (not a BAIR record?)")
        frames[i] = _decode_image(img[0], f"{i}/image_aux1/encoded")
        for name, out, width in (("action", actions, 4), ("endeffector_pos", endeff, 3)):
            v = ex.get(f"{i}/{name}")
            if v is None or len(v) != width:
                missing.append(f"{i}/{name}")
            else:
                out[i] = v
    if missing:
        warnings.warn(f"BAIR example without {missing[:3]}{'...' if len(missing) > 3 else ''}; stored as NaN")
    return {"frames": frames.transpose(0, 3, 1, 2), "actions": actions, "endeffector_pos": endeff}


def _count_frames(record: bytes) -> int:
    keys = parse_example(record).keys()
    idx = {int(m.group(1)) for k in keys if (m := re.match(r"^(\d+)/image_aux1/encoded$", k))}
    n = 0
    while n in idx:
        n += 1
    if n == 0:
        raise TFRecordError("the first record has no '0/image_aux1/encoded' feature (not a BAIR record?)")
    return n


def _list_sources(root: Path) -> tuple[dict[str, list], Optional[Path]]:
    """``{"train": [(name, start, opener)], "test": [...]}`` from an extracted tree or the tar (sorted numerically)."""
    found: dict[str, list] = {"train": [], "test": []}
    loose = root / "softmotion30_44k"
    tar_path = root / BAIR_TAR
    if loose.is_dir():
        for p in sorted(loose.glob("*/*.tfrecords")):
            m = _FILE_RE.search(p.as_posix())
            if m:
                found[m.group(1)].append((m.group(2), int(m.group(3)), ("file", p)))
    if not (found["train"] and found["test"]) and tar_path.is_file():
        found = {"train": [], "test": []}
        try:
            with tarfile.open(tar_path, "r:") as tf:
                for member in tf.getmembers():
                    m = _FILE_RE.search(member.name)
                    if m and member.isfile():
                        found[m.group(1)].append((m.group(2), int(m.group(3)), ("tar", member.name)))
        except tarfile.TarError as e:
            raise ValueError(f"{tar_path} is not a readable tar ({e}); delete it and prepare again") from e
    for split in found:
        found[split].sort(key=lambda x: x[1])
    return found, (tar_path if tar_path.is_file() else None)


def prepare_bair(
    root: Union[str, os.PathLike],
    download: bool = True,
    url: str = BAIR_URL,
    progress: bool = True,
    verify_crc: bool = True,
    sha256: Optional[str] = None,
) -> Path:
    """Download (if needed) and preprocess BAIR under ``root``; returns ``root/processed``.

    Uses ``root/softmotion30_44k/{train,test}/*.tfrecords`` when present, else ``root/bair_robot_pushing_dataset_v0.tar``
    (downloaded from ``url`` when missing and ``download``; resumable). The tar is kept (delete it by hand once
    ``root/processed`` is written). ``verify_crc`` checks every record's CRC-32C (about 45 MB/s). ``sha256`` is the
    tar's expected checksum (default: the published one when ``url`` is :data:`BAIR_URL`, none for other URLs).

    Raises:
        DatasetNotFoundError: the tar is missing and cannot be downloaded.
        TFRecordError: a corrupt record (the message names the file and record).
    """
    root = Path(root)
    out = _processed(root)
    if bair_is_prepared(root):
        return out
    sources, tar_path = _list_sources(root)
    if tar_path is not None and not (sources["train"] and sources["test"]):
        # never delete or call "missing" a tar the user put there: say what is wrong with it
        with tarfile.open(tar_path, "r:") as tf:
            names = [m.name for m in tf.getmembers()[:3]]
        raise ValueError(
            f"{tar_path} exists but holds no softmotion30_44k/{{train,test}}/*.tfrecords (first members: {names}): it "
            "is not the BAIR robot pushing tar. Move it away (it is left untouched) and prepare again"
        )
    if not (sources["train"] and sources["test"]):
        target = root / BAIR_TAR
        if not download:
            raise missing_data_error(
                "bair", root, target, url,
                hint=f"or extract the tar yourself so that {root / 'softmotion30_44k'}/{{train,test}} exist",
            )
        try:
            download_url(url, target, sha256=sha256 or PUBLISHED_SHA256.get(url), progress=progress)
        except DownloadError as e:
            raise missing_data_error("bair", root, target, url, cause=e) from e
        sources, tar_path = _list_sources(root)
        if not (sources["train"] and sources["test"]):
            raise ValueError(
                f"{target} holds no softmotion30_44k/{{train,test}}/*.tfrecords: not the BAIR robot pushing tar?"
            )

    tf = tarfile.open(tar_path, "r:") if tar_path is not None and any(
        s[2][0] == "tar" for v in sources.values() for s in v) else None

    def open_source(src):
        kind, ref = src
        return open(ref, "rb") if kind == "file" else tf.extractfile(ref)

    index: dict = {"version": PREPROCESS_VERSION, "source": url, "splits": {}}
    try:
        num_frames = None
        with open_source(sources["test"][0][2]) as f:
            first = next(iter_tfrecord(f, verify_crc, name=sources["test"][0][0]))
            num_frames = _count_frames(first)
        index["num_frames"] = num_frames
        bar = progress_bar(progress, sum(len(v) for v in sources.values()), "BAIR tfrecords", "file")
        for split in ("test", "train"):
            shapes = {"frames": (num_frames, 3, IMAGE_SIZE, IMAGE_SIZE), "actions": (num_frames, 4),
                      "endeffector_pos": (num_frames, 3)}
            writers = {k: NpyWriter(out / f"{split}_{k}.npy", shapes[k], np.uint8 if k == "frames" else np.float32)
                       for k in _ARRAYS}
            files = []
            rows = 0
            try:
                for name, _, src in sources[split]:
                    first_row = rows
                    with open_source(src) as f:
                        for rec in iter_tfrecord(f, verify_crc, name=f"{split}/{name}"):
                            try:
                                ex = decode_bair_example(rec, num_frames)
                            except TFRecordError as e:
                                raise TFRecordError(f"{split}/{name}, record {rows - first_row}: {e}") from e
                            for k in _ARRAYS:
                                writers[k].append(ex[k][None])
                            rows += 1
                    files.append([name, first_row, rows - first_row])
                    bar.update(1)
            except BaseException:
                for w in writers.values():
                    w.abort()
                raise
            for w in writers.values():
                w.close()
            index["splits"][split] = {"num_clips": rows, "files": files}
        bar.close()
    finally:
        if tf is not None:
            tf.close()
    atomic_write_text(out / "index.json", json.dumps(index, indent=1) + "\n")
    n_test = index["splits"]["test"]["num_clips"]
    if n_test != 256:
        warnings.warn(f"BAIR test split under {root} has {n_test} clips (the standard test file has 256)")
    return out


def _load_index(root: Path) -> dict:
    if not bair_is_prepared(root):
        d = _processed(root)
        raise missing_data_error("bair", root, [d / "train_frames.npy", d / "index.json"], BAIR_URL)
    return json.loads((_processed(root) / "index.json").read_text())


def _arrays(root: Path, split: str) -> LazyArrays:
    d = _processed(root)
    return LazyArrays({k: d / f"{split}_{k}.npy" for k in _ARRAYS})


def _gather(arrays: LazyArrays, rows: np.ndarray, starts: np.ndarray, length: int, return_actions: bool):
    frames = arrays["frames"]
    video = np.empty((len(rows), length) + frames.shape[2:], dtype=np.uint8)
    order = np.argsort(rows, kind="stable")
    for k in order:
        video[k] = frames[rows[k], starts[k] : starts[k] + length]
    video_t = uint8_to_float(video)
    if not return_actions:
        return video_t
    out = {"video": video_t}
    for name in ("actions", "endeffector_pos"):
        arr = arrays[name]
        out[name] = torch.from_numpy(np.stack([arr[r, s : s + length] for r, s in zip(rows, starts)]).astype(np.float32))
    return out


class BAIRClipSet(Dataset):
    """Fixed BAIR clips: item ``i`` is frames ``[0, length)`` of video ``rows[i]`` of a preprocessed split."""

    def __init__(self, root: Union[str, os.PathLike], split: str, rows: np.ndarray, length: int,
                 return_actions: bool = False) -> None:
        self.arrays = _arrays(Path(root), split)
        self.rows = np.asarray(rows, dtype=np.int64)
        self.length, self.return_actions = int(length), bool(return_actions)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int):
        item = _gather(self.arrays, self.rows[index : index + 1], np.zeros(1, np.int64), self.length,
                       self.return_actions)
        if isinstance(item, dict):
            return {k: v[0] for k, v in item.items()}
        return item[0]


class _BAIRBatcher:
    def __init__(self, root, rows, batch_size, length, num_frames, crop, return_actions) -> None:
        self.arrays = _arrays(Path(root), "train")
        self.rows = np.asarray(rows, dtype=np.int64)
        self.batch_size, self.length, self.num_frames = batch_size, length, num_frames
        self.crop, self.return_actions = crop, return_actions

    def __call__(self, rng: np.random.Generator):
        rows = self.rows[rng.integers(0, len(self.rows), size=self.batch_size)]
        if self.crop == "random":
            starts = rng.integers(0, self.num_frames - self.length + 1, size=self.batch_size)
        else:
            starts = np.zeros(self.batch_size, dtype=np.int64)
        return _gather(self.arrays, rows, starts, self.length, self.return_actions)


class BAIRDataModule(VideoDataModule):
    """BAIR robot pushing (action-free, 64x64 RGB) as a LightningDataModule (see the module docstring).

    Args:
        root: dataset directory (the tar or ``softmotion30_44k/`` go here; arrays in ``root/processed``).
        seq_len: training clip length (SVG: 2 + 10 = 12).
        eval_seq_len: val/test clip length (2 + 28 = 30).
        batch_size: training batch size.
        image_size: 64 (the only size of ``image_aux1``; kept as an argument for uniform configs).
        train_crop: ``"start"`` (frames 0..seq_len-1, SVG) or ``"random"`` (uniform window, Improved VRNN).
        val_split: ``"test"`` (the first ``num_val`` test clips) or ``"savp"`` (train file traj_256_to_511 held out).
        num_val: validation clips (at most the available ones).
        num_test: test clips (``None``: all 256).
        return_actions: batches become dicts with ``actions`` and ``endeffector_pos``.
        download: let :meth:`prepare_data` download the tar (about 30 GB, resumable).
        url: the tar's URL (a mirror or ``file://`` path).
        verify_crc: check every TFRecord CRC during preprocessing.
        eval_batch_size, num_workers, seed, pin_memory, persistent_workers: as usual.
    """

    channels: int = 3

    def __init__(
        self,
        root: str,
        seq_len: int = 12,
        eval_seq_len: int = 30,
        batch_size: int = 16,
        image_size: int = 64,
        train_crop: Literal["start", "random"] = "start",
        val_split: Literal["test", "savp"] = "test",
        num_val: int = 256,
        num_test: Optional[int] = None,
        return_actions: bool = False,
        download: bool = True,
        url: str = BAIR_URL,
        verify_crc: bool = True,
        eval_batch_size: Optional[int] = None,
        num_workers: int = 0,
        seed: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = False,
    ) -> None:
        super().__init__()
        check_path("root", root)
        check_int("seq_len", seq_len, 2, NUM_FRAMES)
        check_int("eval_seq_len", eval_seq_len, 2, NUM_FRAMES)
        check_int("batch_size", batch_size, 1)
        if image_size != IMAGE_SIZE:
            raise ValueError(f"BAIR frames are 64x64 (image_aux1); image_size must be 64, got {image_size!r}")
        if train_crop not in ("start", "random"):
            raise ValueError(f"train_crop must be 'start' or 'random', got {train_crop!r}")
        if val_split not in ("test", "savp"):
            raise ValueError(f"val_split must be 'test' or 'savp', got {val_split!r}")
        check_int("num_val", num_val, 1)
        check_optional_int("num_test", num_test, 1)
        check_loader_options(eval_batch_size, num_workers, seed=seed)
        self.save_hyperparameters()
        self._store_loader_options(batch_size, eval_batch_size, num_workers, pin_memory, persistent_workers, seed=seed)
        self.root = Path(root)
        self.seq_len, self.eval_seq_len = int(seq_len), int(eval_seq_len)
        self.image_size = IMAGE_SIZE
        self.train_crop, self.val_split = train_crop, val_split
        self.num_val = int(num_val)
        self.num_test = None if num_test is None else int(num_test)
        self.return_actions, self.download, self.url = bool(return_actions), bool(download), url
        self.verify_crc = bool(verify_crc)

    def _savp_rows(self, index: dict) -> np.ndarray:
        for name, first, count in index["splits"]["train"]["files"]:
            if int(name.split("_")[1]) == SAVP_VAL_FILE_START:
                return np.arange(first, first + count)
        raise ValueError(
            f"val_split='savp' needs train/traj_{SAVP_VAL_FILE_START}_to_511.tfrecords, which is not in the prepared "
            f"BAIR data under {self.root}"
        )

    def prepare_data(self) -> None:
        """Download the tar if needed and write the memory-mappable arrays (once)."""
        prepare_bair(self.root, download=self.download, url=self.url, verify_crc=self.verify_crc)

    def _prepared(self) -> tuple[dict, int, np.ndarray]:
        """``(index, frames per video, rows of the training file held out for validation)``, checked."""
        index = _load_index(self.root)
        num_frames = int(index["num_frames"])
        if max(self.seq_len, self.eval_seq_len) > num_frames:
            raise ValueError(f"clips of {max(self.seq_len, self.eval_seq_len)} frames exceed BAIR's {num_frames}")
        held_out = self._savp_rows(index) if self.val_split == "savp" else np.zeros(0, np.int64)
        return index, num_frames, held_out

    def setup(self, stage: Optional[str] = None) -> None:
        self._prepared()  # fails on missing data or too long clips whatever the stage
        super().setup(stage)

    def _make_train_set(self) -> BatchStream:
        index, num_frames, held_out = self._prepared()
        rows = np.setdiff1d(np.arange(index["splits"]["train"]["num_clips"]), held_out)
        batcher = _BAIRBatcher(self.root, rows, self.batch_size, self.seq_len, num_frames, self.train_crop,
                               self.return_actions)
        return BatchStream(batcher, self.seed, self._rank())

    def _make_eval_set(self, split: Literal["val", "test"]) -> BAIRClipSet:
        index, _, held_out = self._prepared()
        n_test = index["splits"]["test"]["num_clips"]
        if split == "val":
            if self.val_split == "savp":
                return BAIRClipSet(self.root, "train", held_out[: self.num_val], self.eval_seq_len, self.return_actions)
            n = min(self.num_val, n_test)
        else:
            n = n_test if self.num_test is None else min(self.num_test, n_test)
        return BAIRClipSet(self.root, "test", np.arange(n), self.eval_seq_len, self.return_actions)
