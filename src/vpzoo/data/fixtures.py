"""Tiny synthetic datasets written in the **real** on-disk formats, for offline tests, benchmarks and smoke runs.

Each writer produces files that vpzoo's real preprocessing and loading code reads exactly like the originals:

* :func:`write_kth_fixture`: greyscale 160x120 25-fps AVIs named ``personPP_ACTION_dS_uncomp.avi`` (written with PyAV),
  zipped per action like the KTH site's ``{action}.zip``, plus an ``00sequences.txt``;
* :func:`write_bair_fixture`: ``softmotion30_44k/{train,test}/traj_A_to_B.tfrecords`` with BAIR's feature keys
  (``{i}/image_aux1/encoded``, ``{i}/image_main/encoded``, ``{i}/action``, ``{i}/endeffector_pos``), optionally
  packed in a tar like ``bair_robot_pushing_dataset_v0.tar``;
* :func:`write_mnist_test_seq`: an array in ``mnist_test_seq.npy``'s layout ``(20, N, 64, 64)`` uint8;
* :func:`write_human36m_fixture`: ``S{n}/Videos/{Action} {k}.{camera}.mp4`` as in the official per-subject archives.

The contents are random moving shapes, not real data: they exercise formats, splits and code paths only.
"""

from __future__ import annotations

import os
import tarfile
import zipfile
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

import numpy as np

__all__ = ["moving_square_video", "write_kth_fixture", "write_bair_fixture", "write_mnist_test_seq",
           "write_human36m_fixture"]


def moving_square_video(
    num_frames: int, height: int, width: int, channels: int = 1, seed: int = 0, size: Optional[int] = None
) -> np.ndarray:
    """uint8 ``(T, H, W, C)``: a bright square moving in a straight line (bouncing) over a noisy dark background."""
    rng = np.random.default_rng(seed)
    size = size or max(4, min(height, width) // 4)
    y, x = rng.uniform(0, height - size), rng.uniform(0, width - size)
    vy, vx = rng.uniform(-4, 4, size=2)
    colour = rng.integers(150, 256, size=channels)
    background = rng.integers(10, 60, size=(height, width, channels))
    out = np.empty((num_frames, height, width, channels), dtype=np.uint8)
    for t in range(num_frames):
        frame = background.copy()
        frame[int(y) : int(y) + size, int(x) : int(x) + size] = colour
        out[t] = frame
        y, x = y + vy, x + vx
        if not 0 <= y <= height - size:
            vy, y = -vy, float(np.clip(y, 0, height - size))
        if not 0 <= x <= width - size:
            vx, x = -vx, float(np.clip(x, 0, width - size))
    return out


# --------------------------------------------------------------------------------------------------------
# KTH
# --------------------------------------------------------------------------------------------------------
def write_kth_fixture(
    out_dir: Union[str, os.PathLike],
    persons: Iterable[int] = (1, 17, 21),
    actions: Optional[Sequence[str]] = None,
    scenarios: Iterable[int] = (1,),
    num_frames: int = 24,
    sequences: Optional[dict[str, str]] = None,
) -> dict[str, Path]:
    """Write ``{action}.zip`` files (each holding that action's AVIs) and ``00sequences.txt`` into ``out_dir``.

    Args:
        out_dir: target folder (e.g. what a loopback server serves as the KTH base URL, or ``root/raw``).
        persons, actions, scenarios: which videos to write (default actions: all six).
        num_frames: frames per video.
        sequences: optional ``{"person01_boxing_d1": "1-10, 11-24"}`` lines for ``00sequences.txt`` (default: one
            sub-sequence covering the whole video for every video).

    Returns:
        ``{file name: path}`` of everything written.
    """
    from vpzoo.data.kth import ACTIONS
    from vpzoo.io import write_video

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    actions = tuple(actions or ACTIONS)
    written: dict[str, Path] = {}
    seq_lines = ["KTH fixture sequences (vpzoo)", ""]
    tmp = out_dir / ".avi-tmp"
    tmp.mkdir(exist_ok=True)
    for a_idx, action in enumerate(actions):
        zpath = out_dir / f"{action}.zip"
        with zipfile.ZipFile(zpath, "w", compression=zipfile.ZIP_STORED) as zf:
            for person in persons:
                for scenario in scenarios:
                    stem = f"person{person:02d}_{action}_d{scenario}"
                    video = moving_square_video(num_frames, 120, 160, 1, seed=person * 100 + a_idx * 10 + scenario)
                    avi = tmp / f"{stem}_uncomp.avi"
                    write_video(avi, video, fps=25)
                    zf.write(avi, arcname=avi.name)
                    avi.unlink()
                    spec = (sequences or {}).get(stem, f"1-{num_frames}")
                    seq_lines.append(f"{stem}\t\tframes\t{spec}")
        written[zpath.name] = zpath
    tmp.rmdir()
    seq = out_dir / "00sequences.txt"
    seq.write_text("\n".join(seq_lines) + "\n")
    written[seq.name] = seq
    return written


# --------------------------------------------------------------------------------------------------------
# BAIR
# --------------------------------------------------------------------------------------------------------
def _bair_example(rng: np.random.Generator, seed: int, num_frames: int = 30) -> tuple[bytes, dict]:
    from vpzoo.data.tfrecord import encode_example

    aux = moving_square_video(num_frames, 64, 64, 3, seed=seed, size=12)
    main = moving_square_video(num_frames, 64, 64, 3, seed=seed + 1, size=12)
    actions = rng.normal(size=(num_frames, 4)).astype(np.float32)
    endeff = rng.normal(size=(num_frames, 3)).astype(np.float32)
    features: dict = {}
    for i in range(num_frames):
        features[f"{i}/image_aux1/encoded"] = [aux[i].tobytes()]
        features[f"{i}/image_main/encoded"] = [main[i].tobytes()]
        features[f"{i}/action"] = actions[i]
        features[f"{i}/endeffector_pos"] = endeff[i]
    return encode_example(features), {"image_aux1": aux, "action": actions, "endeffector_pos": endeff}


def write_bair_fixture(
    out_dir: Union[str, os.PathLike],
    train_files: int = 2,
    clips_per_file: int = 3,
    test_clips: int = 4,
    tar_name: Optional[str] = "bair_robot_pushing_dataset_v0.tar",
    num_frames: int = 30,
) -> dict:
    """Write BAIR-format TFRecords (and a tar of them) into ``out_dir``.

    Train files are ``softmotion30_44k/train/traj_{a}_to_{b}.tfrecords`` with ``clips_per_file`` examples each; the
    test file is ``softmotion30_44k/test/traj_0_to_{test_clips - 1}.tfrecords``. With ``tar_name``, the
    ``softmotion30_44k`` tree is also packed into ``out_dir/tar_name`` (and the loose files removed).

    Returns:
        ``{"train": [per-clip dicts in file order], "test": [...], "tar": path or None}``; each dict holds
        ``image_aux1`` (uint8 ``(30, 64, 64, 3)``), ``action`` ``(30, 4)`` and ``endeffector_pos`` ``(30, 3)``.
    """
    from vpzoo.data.tfrecord import write_tfrecord

    out_dir = Path(out_dir)
    rng = np.random.default_rng(0)
    base = out_dir / "softmotion30_44k"
    truth: dict = {"train": [], "test": []}
    files: list[Path] = []
    seed = 0
    plan = [("test", f"traj_0_to_{test_clips - 1}", test_clips)]
    # train files named as in the real set; the numbering is deliberately not in lexicographic order
    for f in range(train_files):
        a = 256 * (f + 1) if f != 1 else 256 * 40
        plan.append(("train", f"traj_{a}_to_{a + clips_per_file - 1}", clips_per_file))
    for split, stem, n in plan:
        records = []
        for _ in range(n):
            rec, t = _bair_example(rng, seed, num_frames)
            seed += 2
            records.append(rec)
            t["file"] = stem
            truth[split].append(t)
        path = base / split / f"{stem}.tfrecords"
        write_tfrecord(path, records)
        files.append(path)
    # order the expected train clips by the numeric start of their file name (how vpzoo orders them)
    truth["train"].sort(key=lambda t: int(t["file"].split("_")[1]))
    truth["tar"] = None
    if tar_name:
        tar_path = out_dir / tar_name
        with tarfile.open(tar_path, "w") as tf:
            for p in files:
                tf.add(p, arcname=str(p.relative_to(out_dir)))
        for p in files:
            p.unlink()
        for d in (base / "train", base / "test", base):
            d.rmdir()
        truth["tar"] = tar_path
    return truth


# --------------------------------------------------------------------------------------------------------
# Moving MNIST
# --------------------------------------------------------------------------------------------------------
def write_mnist_test_seq(path: Union[str, os.PathLike], num_sequences: int = 8, seed: int = 0) -> np.ndarray:
    """Write an array in ``mnist_test_seq.npy``'s layout, uint8 ``(20, num_sequences, 64, 64)``; returns it."""
    from vpzoo.data.mnist_digits import load_digit_pool
    from vpzoo.data.moving_mnist import generate_moving_mnist

    videos = generate_moving_mnist(load_digit_pool("test", 28), num_sequences, 20, seed)  # (N, 20, 1, 64, 64)
    arr = np.ascontiguousarray(videos[:, :, 0].transpose(1, 0, 2, 3))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, arr)
    return arr


# --------------------------------------------------------------------------------------------------------
# Human3.6M
# --------------------------------------------------------------------------------------------------------
def write_human36m_fixture(
    root: Union[str, os.PathLike],
    subjects: Iterable[int] = (1, 5, 9, 11),
    actions: Sequence[str] = ("Walking 1", "Eating"),
    cameras: Sequence[str] = ("54138969",),
    num_frames: int = 40,
    height: int = 100,
    width: int = 120,
) -> list[Path]:
    """Write ``root/S{n}/Videos/{action}.{camera}.mp4`` videos (PyAV, mpeg4), the official per-subject layout."""
    from vpzoo.io import write_video

    paths = []
    for s in subjects:
        for a_idx, action in enumerate(actions):
            for c_idx, cam in enumerate(cameras):
                path = Path(root) / f"S{s}" / "Videos" / f"{action}.{cam}.mp4"
                video = moving_square_video(num_frames, height, width, 3, seed=s * 100 + a_idx * 10 + c_idx)
                write_video(path, video, fps=50)
                paths.append(path)
    return paths
