"""Train on your own videos: a LightningDataModule over a folder of clips.

Every file with a suffix in :data:`vpzoo.io.VIDEO_SUFFIXES` (``.mp4``, ``.avi``, ``.gif``, ``.npy``, ...) below
``root`` is decoded with :func:`vpzoo.io.read_video` into memory as uint8 (so this suits folders that fit in RAM;
decoding happens once, in ``setup``). Clips are windows of consecutive frames:

- **train**: every window of ``seq_len`` frames, start positions ``stride`` apart, shuffled each epoch;
- **val / test**: non-overlapping windows of ``eval_seq_len`` frames, in a fixed order (the model's validation
  predicts the frames after its ``n_past`` context frames).

Splits: if ``root`` has a ``train/`` subfolder, ``train/``, ``val/`` and ``test/`` are the splits. Otherwise the
videos are split by file: a seeded ``val_fraction`` of them (at least one) for validation, the rest for training;
there is then no test split.

Frames must already be ``image_size`` × ``image_size`` with ``channels`` channels (1: grayscale, 3: RGB; colour
conversion is done by :func:`~vpzoo.io.read_video`). Nothing is resized silently: ``resize=True`` center-crops each
frame to a square and resizes it (bilinear, antialiased); otherwise a frame of another size is an error naming the
file. Batches are float32 ``(B, T, C, H, W)`` in [0, 1], like every vpzoo data module.

Example (``vpzoo fit``)::

    vpzoo fit --model vpzoo.models.svg.SVGLP --data vpzoo.data.video_folder.VideoFolderDataModule \\
        --data.root my_videos --data.seq_len 15 --data.eval_seq_len 25 --trainer.max_steps 10000
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

try:
    import lightning.pytorch as pl
except ImportError:  # pragma: no cover
    import pytorch_lightning as pl  # type: ignore

from vpzoo.data._common import uint8_to_float
from vpzoo.io import VIDEO_SUFFIXES, read_video

__all__ = ["VideoClips", "VideoFolderDataModule", "find_videos"]


def find_videos(folder: str | os.PathLike) -> list[Path]:
    """Sorted video files (suffix in :data:`vpzoo.io.VIDEO_SUFFIXES`) anywhere below ``folder``."""
    folder = Path(folder)
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)


class VideoClips(Dataset):
    """Windows of ``seq_len`` frames, ``stride`` apart, over in-memory uint8 videos ``(T, C, H, W)``.

    Items are float32 ``(seq_len, C, H, W)`` in [0, 1].
    """

    def __init__(self, videos: list[np.ndarray], seq_len: int, stride: int) -> None:
        super().__init__()
        self.videos = videos
        self.seq_len = int(seq_len)
        self.index = [(v, s) for v, video in enumerate(videos) for s in range(0, len(video) - seq_len + 1, stride)]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> torch.Tensor:
        v, s = self.index[i]
        return uint8_to_float(self.videos[v][s:s + self.seq_len])


def _check_positive(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


class VideoFolderDataModule(pl.LightningDataModule):
    """Clips from a folder of videos (see the module docstring).

    Args:
        root: the folder (searched recursively).
        seq_len: frames per training clip (context + future, e.g. 5 + 10).
        eval_seq_len: frames per val/test clip (default ``seq_len``).
        image_size: frame height and width the model expects.
        channels: 1 (grayscale) or 3 (RGB).
        batch_size: training batch size.
        eval_batch_size: val/test batch size (default ``batch_size``).
        stride: frames between the starts of consecutive training windows (1: every window).
        val_fraction: fraction of the videos held out for validation when ``root`` has no ``train/`` subfolder.
        resize: center-crop and resize frames of another size (otherwise they are an error).
        max_frames: read at most this many frames per video.
        num_workers: DataLoader workers.
        seed: seed of the file split and of the training shuffle.
    """

    def __init__(
        self,
        root: str,
        seq_len: int = 15,
        eval_seq_len: Optional[int] = None,
        image_size: int = 64,
        channels: int = 1,
        batch_size: int = 16,
        eval_batch_size: Optional[int] = None,
        stride: int = 1,
        val_fraction: float = 0.1,
        resize: bool = False,
        max_frames: Optional[int] = None,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        for name, value in (("seq_len", seq_len), ("image_size", image_size), ("batch_size", batch_size),
                            ("stride", stride)):
            _check_positive(name, value)
        for name, value in (("eval_seq_len", eval_seq_len), ("eval_batch_size", eval_batch_size),
                            ("max_frames", max_frames)):
            if value is not None:
                _check_positive(name, value)
        if seq_len < 2:
            raise ValueError(f"seq_len must be >= 2 (context + future), got {seq_len}")
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels!r}")
        if not 0.0 < float(val_fraction) < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
        if not Path(root).is_dir():
            raise FileNotFoundError(f"root must be a folder of videos, got {root!r} (not a directory)")
        self.save_hyperparameters()
        self.root = Path(root)
        self.seq_len, self.eval_seq_len = int(seq_len), int(eval_seq_len or seq_len)
        self.image_size, self.channels = int(image_size), int(channels)
        self.batch_size, self.eval_batch_size = int(batch_size), int(eval_batch_size or batch_size)
        self.stride, self.val_fraction, self.resize = int(stride), float(val_fraction), bool(resize)
        self.max_frames, self.num_workers, self.seed = max_frames, int(num_workers), int(seed)
        self.train_set: Optional[VideoClips] = None
        self.val_set: Optional[VideoClips] = None
        self.test_set: Optional[VideoClips] = None

    # ---- files ---------------------------------------------------------------------------------------
    def split_files(self) -> dict[str, list[Path]]:
        """``{"train": [...], "val": [...], "test": [...]}`` (see the module docstring)."""
        if (self.root / "train").is_dir():
            return {s: find_videos(self.root / s) if (self.root / s).is_dir() else [] for s in ("train", "val", "test")}
        files = find_videos(self.root)
        if len(files) < 2:
            raise ValueError(f"{self.root} holds {len(files)} video(s) ({', '.join(VIDEO_SUFFIXES)}); at least 2 are "
                             "needed to hold one out for validation")
        order = np.random.default_rng(self.seed).permutation(len(files))
        n_val = min(len(files) - 1, max(1, round(self.val_fraction * len(files))))
        return {"train": [files[i] for i in sorted(order[n_val:])], "val": [files[i] for i in sorted(order[:n_val])],
                "test": []}

    def read(self, path: Path) -> np.ndarray:
        """One video as uint8 ``(T, C, H, W)`` of the configured size and channels."""
        frames = read_video(path, grayscale=self.channels == 1, max_frames=self.max_frames)  # (T, H, W, C)
        video = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
        h, w = video.shape[-2:]
        if (h, w) != (self.image_size, self.image_size):
            if not self.resize:
                raise ValueError(
                    f"{path}: frames are {h}x{w}, the data module expects {self.image_size}x{self.image_size}; "
                    "resize the videos, or pass resize=True (center crop + resize)"
                )
            side = min(h, w)
            top, left = (h - side) // 2, (w - side) // 2
            video = torch.nn.functional.interpolate(
                video[..., top:top + side, left:left + side].float(), size=(self.image_size, self.image_size),
                mode="bilinear", antialias=True, align_corners=False,
            ).round_().clamp_(0, 255).to(torch.uint8)
        return video.numpy()

    def _clips(self, split: str, seq_len: int, stride: int) -> VideoClips:
        files = self.split_files()[split]
        if not files:
            raise ValueError(f"{self.root}: no {split} videos (add a {split}/ subfolder next to train/)")
        videos, short = [], []
        for path in files:
            video = self.read(path)
            if len(video) >= seq_len:
                videos.append(video)
            else:
                short.append(path.name)
        if short:
            warnings.warn(f"{len(short)} {split} video(s) shorter than {seq_len} frames are skipped: {short[:5]}")
        clips = VideoClips(videos, seq_len, stride)
        if len(clips) == 0:
            raise ValueError(f"{self.root}: no {split} video has {seq_len} frames")
        return clips

    # ---- LightningDataModule hooks -------------------------------------------------------------------
    def setup(self, stage: Optional[str] = None) -> None:
        if stage in (None, "fit") and self.train_set is None:
            self.train_set = self._clips("train", self.seq_len, self.stride)
        if stage in (None, "fit", "validate") and self.val_set is None:
            self.val_set = self._clips("val", self.eval_seq_len, self.eval_seq_len)
        if stage in ("test", "predict") and self.test_set is None:
            self.test_set = self._clips("test", self.eval_seq_len, self.eval_seq_len)

    def _loader(self, dataset: VideoClips, train: bool) -> DataLoader:
        generator = torch.Generator().manual_seed(self.seed) if train else None
        return DataLoader(dataset, batch_size=self.batch_size if train else self.eval_batch_size, shuffle=train,
                          drop_last=train and len(dataset) >= self.batch_size, num_workers=self.num_workers,
                          generator=generator, persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        self.setup("fit")
        return self._loader(self.train_set, train=True)

    def val_dataloader(self) -> DataLoader:
        self.setup("validate")
        return self._loader(self.val_set, train=False)

    def test_dataloader(self) -> DataLoader:
        self.setup("test")
        return self._loader(self.test_set, train=False)

    def predict_dataloader(self) -> DataLoader:
        self.setup("predict")
        return self._loader(self.test_set, train=False)
