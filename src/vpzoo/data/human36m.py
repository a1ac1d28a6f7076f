"""Human3.6M (Ionescu et al., TPAMI 2014) videos for video prediction, from a **user-supplied** copy only.

The licence requires registration at :data:`H36M_SITE` and forbids redistribution, so vpzoo never downloads it.
Expected layout under ``root`` (the official per-subject "Videos" archives, extracted, as SRVP uses them)::

    root/S1/Videos/Directions 1.54138969.mp4
    root/S1/Videos/Walking.60457274.mp4
    ...
    root/S11/Videos/...

i.e. ``root/S{subject}/**/{Action}.{camera}.mp4`` for subjects 1, 5, 6, 7, 8 (train) and 9, 11 (test; the split of
SRVP, P2P and most video-prediction papers). Files whose name starts with ``_ALL`` (concatenations) are skipped.

Preprocessing (once, :func:`prepare_human36m` / ``vpzoo data prepare human36m --root DIR``): each video is decoded
with PyAV, every ``frame_step``-th frame is kept (default 5: 50 fps -> 10 fps, the temporal step of OpenSTL's Human
loader), the central square crop (side = the shorter side) is resized to ``image_size`` (PIL bicubic, antialiased)
in RGB, and all frames are stored in ``root/processed/{S}px_step{k}/frames.npy`` uint8 ``(F, 3, S, S)`` with
``videos.json`` (subject, action, camera, first frame, length).

Clips: training draws a uniform video, then a uniform start. Validation and test are fixed clips drawn once from the
test subjects with ``eval_seed`` (distinct streams for val and test), stored as JSON (video name, start frame).
"""

from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path
from typing import Literal, Optional, Sequence, Union

import numpy as np
import torch

from vpzoo.cache import atomic_write_text
from vpzoo.data._common import (
    BatchStream,
    DatasetNotFoundError,
    FrameClipSet,
    FrameStore,
    NpyWriter,
    VideoDataModule,
    check_int,
    check_loader_options,
    clip_starts,
    fixed_clip_list,
    prepared_frames,
    source_fingerprint,
    nothing_decoded_error,
    progress_bar,
    uint8_to_float,
)

__all__ = [
    "H36M_SITE",
    "TRAIN_SUBJECTS",
    "TEST_SUBJECTS",
    "find_human36m_videos",
    "prepare_human36m",
    "human36m_is_prepared",
    "Human36MClipSet",
    "Human36MDataModule",
]

H36M_SITE = "http://vision.imar.ro/human3.6m/"
TRAIN_SUBJECTS = (1, 5, 6, 7, 8)
TEST_SUBJECTS = (9, 11)
PREPROCESS_VERSION = 1
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv")

_SUBJECT_RE = re.compile(r"^S(\d+)$")
_NAME_RE = re.compile(r"^(?P<action>.+?)\.(?P<camera>\d+)$")


def _layout_help(root: Union[str, os.PathLike]) -> str:
    return (
        f"Human3.6M cannot be downloaded by vpzoo (licence; register at {H36M_SITE}). Download the per-subject "
        f"'Videos' archives of subjects S1, S5, S6, S7, S8, S9 and S11 and extract them so that the files are "
        f"{Path(root)}/S1/Videos/<Action>.<camera>.mp4 (e.g. 'Walking 1.54138969.mp4'), then run "
        f"`vpzoo data prepare human36m --root {root}`."
    )


def find_human36m_videos(root: Union[str, os.PathLike], cameras: Optional[Sequence[str]] = None) -> list[dict]:
    """Video records ``{path, name, subject, action, camera}`` under ``root`` (sorted), or a clear error."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetNotFoundError(f"Human3.6M root {root} does not exist. {_layout_help(root)}")
    out = []
    subjects = sorted((p for p in root.iterdir() if p.is_dir() and _SUBJECT_RE.match(p.name)),
                      key=lambda p: int(p.name[1:]))
    for sdir in subjects:
        subject = int(sdir.name[1:])
        for path in sorted(sdir.rglob("*")):
            if path.suffix.lower() not in VIDEO_SUFFIXES or path.name.startswith("_ALL") or not path.is_file():
                continue
            m = _NAME_RE.match(path.stem)
            action, camera = (m.group("action"), m.group("camera")) if m else (path.stem, "")
            if cameras is not None and camera not in cameras:
                continue
            out.append(dict(path=str(path), name=f"S{subject}/{path.stem}", subject=subject, action=action,
                            camera=camera))
    found = {v["subject"] for v in out}
    if not out:
        raise DatasetNotFoundError(f"no Human3.6M videos found under {root}. {_layout_help(root)}")
    missing = [s for s in TRAIN_SUBJECTS + TEST_SUBJECTS if s not in found]
    if not found & set(TRAIN_SUBJECTS) or not found & set(TEST_SUBJECTS):
        raise DatasetNotFoundError(
            f"Human3.6M under {root} needs videos of training (S1, S5-S8) and test (S9, S11) subjects; found "
            f"{sorted(found)}. {_layout_help(root)}"
        )
    if missing:
        warnings.warn(f"Human3.6M under {root}: no videos for subjects {missing}")
    return out


def _decode(path: str, image_size: int, frame_step: int) -> np.ndarray:
    import av
    from PIL import Image

    bicubic = getattr(Image, "Resampling", Image).BICUBIC
    frames = []
    with av.open(path) as container:
        stream = container.streams.video[0]
        for k, frame in enumerate(container.decode(stream)):
            if k % frame_step:
                continue
            img = frame.to_image()  # RGB PIL image
            w, h = img.size
            side = min(w, h)
            left, top = (w - side) // 2, (h - side) // 2
            img = img.crop((left, top, left + side, top + side)).resize((image_size, image_size), bicubic)
            frames.append(np.asarray(img).transpose(2, 0, 1))
    if not frames:
        raise ValueError(f"{path}: no decodable video frames")
    return np.stack(frames)


def _processed_dir(root: Union[str, os.PathLike], image_size: int, frame_step: int) -> Path:
    return Path(root) / "processed" / f"{int(image_size)}px_step{int(frame_step)}"


def human36m_is_prepared(root: Union[str, os.PathLike], image_size: int = 64, frame_step: int = 5) -> bool:
    """Whether complete frames prepared from the videos present now exist (changed videos need a new preparation;
    videos deleted after preparation do not)."""
    folder = _processed_dir(root, image_size, frame_step)
    return prepared_frames(folder, PREPROCESS_VERSION, (3, image_size, image_size),
                           sources=_source_files_fingerprint(Path(root))) is not None


def _source_files_fingerprint(root: Path) -> list[list]:
    try:
        with warnings.catch_warnings():  # find_human36m_videos warns about missing subjects: once, when preparing
            warnings.simplefilter("ignore")
            videos = find_human36m_videos(root)
    except DatasetNotFoundError:
        return []
    return source_fingerprint(root, [Path(v["path"]) for v in videos])


def prepare_human36m(
    root: Union[str, os.PathLike],
    image_size: int = 64,
    frame_step: int = 5,
    progress: bool = True,
) -> Path:
    """Preprocess a user-supplied Human3.6M copy under ``root`` (see the module docstring); returns the folder."""
    check_int("image_size", image_size, 8)
    check_int("frame_step", frame_step, 1)
    out = _processed_dir(root, image_size, frame_step)
    if human36m_is_prepared(root, image_size, frame_step):
        return out
    videos = find_human36m_videos(root)
    records = []
    offset = 0
    bar = progress_bar(progress, len(videos), f"Human3.6M {image_size}px", "video")
    first_error = None
    with NpyWriter(out / "frames.npy", (3, image_size, image_size), np.uint8) as writer:
        for v in videos:
            try:
                frames = _decode(v["path"], image_size, frame_step)
            except Exception as e:  # a broken file: report and go on
                warnings.warn(f"skipping Human3.6M video {v['path']}: {type(e).__name__}: {e}")
                first_error = first_error or f"{v['path']}: {type(e).__name__}: {e}"
                continue
            writer.append(frames)
            rec = {k: v[k] for k in ("name", "subject", "action", "camera")}
            records.append(dict(rec, offset=offset, length=len(frames)))
            offset += len(frames)
            bar.update(1)
        bar.close()
        if not records:  # raising inside the writer's block discards the partial frames.npy
            raise nothing_decoded_error("Human3.6M", Path(root), len(videos), first_error)
    meta = dict(version=PREPROCESS_VERSION, image_size=image_size, frame_step=frame_step, num_frames=offset,
                sources=_source_files_fingerprint(Path(root)), videos=records)
    atomic_write_text(out / "videos.json", json.dumps(meta, indent=1) + "\n")
    return out


class Human36MClipSet(FrameClipSet):
    """Fixed clips: item ``i`` is frames ``[starts[i], starts[i] + length)``, float32 ``(length, 3, S, S)``."""


def _sample_starts(videos: list[dict], length: int, rng: np.random.Generator, n: int) -> np.ndarray:
    ok = [v for v in videos if v["length"] >= length]
    if not ok:
        raise ValueError(f"no Human3.6M video has {length} frames (after subsampling)")
    vid = rng.integers(0, len(ok), size=n)
    return np.array([ok[i]["offset"] + rng.integers(0, ok[i]["length"] - length + 1) for i in vid], dtype=np.int64)


class _H36MBatcher:
    def __init__(self, frames_path, videos, batch_size: int, length: int) -> None:
        self.frames = FrameStore(frames_path)
        self.videos, self.batch_size, self.length = videos, batch_size, length

    def __call__(self, rng: np.random.Generator) -> torch.Tensor:
        return uint8_to_float(self.frames.clips(_sample_starts(self.videos, self.length, rng, self.batch_size),
                                                self.length))


class Human36MDataModule(VideoDataModule):
    """Human3.6M videos (user-supplied copy) as a LightningDataModule: float32 ``(B, T, 3, S, S)`` in [0, 1].

    Args:
        root: folder holding ``S{n}/Videos/*.mp4`` (see the module docstring); ``root/processed`` is written.
        image_size: frame side after the central square crop (64).
        seq_len: training clip length.
        eval_seq_len: val/test clip length.
        batch_size: training batch size.
        frame_step: keep every ``frame_step``-th frame (5: 50 -> 10 fps).
        cameras: camera ids to use (default: all).
        num_val, num_test: fixed clips drawn from the test subjects (S9, S11).
        eval_batch_size, num_workers, seed, eval_seed, pin_memory, persistent_workers: as usual.
    """

    channels: int = 3

    def __init__(
        self,
        root: str,
        image_size: int = 64,
        seq_len: int = 20,
        eval_seq_len: int = 20,
        batch_size: int = 16,
        frame_step: int = 5,
        cameras: Optional[list[str]] = None,
        num_val: int = 256,
        num_test: int = 1000,
        eval_batch_size: Optional[int] = None,
        num_workers: int = 0,
        seed: int = 0,
        eval_seed: int = 42,
        pin_memory: bool = False,
        persistent_workers: bool = False,
    ) -> None:
        super().__init__()
        if root is None or not isinstance(root, (str, os.PathLike)):
            raise ValueError(f"root must be the folder of your Human3.6M copy, got {root!r}. {_layout_help('DIR')}")
        check_int("image_size", image_size, 8)
        check_int("seq_len", seq_len, 2)
        check_int("eval_seq_len", eval_seq_len, 2)
        check_int("batch_size", batch_size, 1)
        check_int("frame_step", frame_step, 1)
        check_int("num_val", num_val, 1)
        check_int("num_test", num_test, 1)
        check_loader_options(eval_batch_size, num_workers, seed=seed, eval_seed=eval_seed)
        self.save_hyperparameters()
        self._store_loader_options(
            batch_size, eval_batch_size, num_workers, pin_memory, persistent_workers, seed=seed, eval_seed=eval_seed
        )
        self.root = Path(root)
        self.image_size, self.seq_len, self.eval_seq_len = int(image_size), int(seq_len), int(eval_seq_len)
        self.frame_step = int(frame_step)
        self.cameras = None if cameras is None else [str(c) for c in cameras]
        self.num_val, self.num_test = int(num_val), int(num_test)

    def _load(self) -> tuple[Path, list[dict]]:
        d = _processed_dir(self.root, self.image_size, self.frame_step)
        if not human36m_is_prepared(self.root, self.image_size, self.frame_step):
            raise DatasetNotFoundError(
                f"Human3.6M is not prepared under root={str(self.root)!r}: missing {d / 'frames.npy'}. "
                + _layout_help(self.root)
                + (f" (with --image-size {self.image_size} --frame-step {self.frame_step})"
                   if (self.image_size, self.frame_step) != (64, 5) else "")
            )
        videos = json.loads((d / "videos.json").read_text())["videos"]
        if self.cameras is not None:
            videos = [v for v in videos if v["camera"] in self.cameras]
        return d / "frames.npy", videos

    def _subset(self, videos: list[dict], which: Literal["train", "test"]) -> list[dict]:
        keep = TRAIN_SUBJECTS if which == "train" else TEST_SUBJECTS
        return [v for v in videos if v["subject"] in keep]

    def eval_clips(self, which: Literal["val", "test"]) -> list[tuple[str, int]]:
        """Fixed ``(video name, start)`` list of the val or test set (computed once, stored as JSON)."""
        _, videos = self._load()
        videos = self._subset(videos, "test")
        num = self.num_val if which == "val" else self.num_test
        options = dict(dataset="human36m", version=PREPROCESS_VERSION, which=which, length=self.eval_seq_len, num=num)
        folder = _processed_dir(self.root, self.image_size, self.frame_step) / "eval"
        return fixed_clip_list(folder, which, options, videos, self.eval_seed,
                               lambda rng: _sample_starts(videos, self.eval_seq_len, rng, num))

    def _make_eval_set(self, split: Literal["val", "test"]) -> Human36MClipSet:
        path, videos = self._load()
        return Human36MClipSet(path, clip_starts(videos, self.eval_clips(split)), self.eval_seq_len)

    def prepare_data(self) -> None:
        """Preprocess the user's copy (never downloads; a clear error explains the expected layout)."""
        prepare_human36m(self.root, self.image_size, self.frame_step, progress=True)
        self.eval_clips("val")
        self.eval_clips("test")

    def _make_train_set(self) -> BatchStream:
        path, videos = self._load()
        train = self._subset(videos, "train")
        _sample_starts(train, self.seq_len, np.random.default_rng(0), 1)  # fail early on too-short videos
        return BatchStream(_H36MBatcher(path, train, self.batch_size, self.seq_len), self.seed, self._rank())
