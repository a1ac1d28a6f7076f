"""Reading and writing clips: video files through PyAV, GIFs through Pillow, arrays through numpy.

torchvision 0.29 has no video I/O, so vpzoo reads and writes video with PyAV (``av``). Frames are exchanged as
uint8 numpy arrays ``(T, H, W, C)`` (the layout imageio and PyAV use); :func:`to_video_tensor` converts them to the
model layout ``(T, C, H, W)`` float in [0, 1].
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = ["read_video", "write_video", "write_gif", "to_video_tensor", "to_uint8_frames", "VIDEO_SUFFIXES",
           "SUPPORTED_FORMATS", "UnreadableClipError", "check_clip_path"]

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".gif", ".npy")
#: What :func:`read_video` reads, in words (for error messages).
SUPPORTED_FORMATS = ("animated .gif, .npy arrays (T, H, W) or (T, H, W, C) with C 1 or 3, and videos FFmpeg "
                     "decodes (.mp4, .avi, .mov, .mkv, .webm, ...)")


class UnreadableClipError(ValueError):
    """A file that is not a clip :func:`read_video` can decode (corrupt, truncated, or another format)."""


def check_clip_path(path: str | os.PathLike) -> Path:
    """``Path(path)`` if it names a file; else ``FileNotFoundError`` saying it is a folder or missing, and what to pass."""
    path = Path(path)
    if not path.is_file():
        what = "is a folder, not a clip" if path.is_dir() else "does not exist"
        raise FileNotFoundError(f"{path} {what}: pass a clip file ({SUPPORTED_FORMATS})")
    return path


def read_video(path: str | os.PathLike, grayscale: bool | None = None, max_frames: int | None = None) -> np.ndarray:
    """Read a clip into a uint8 array ``(T, H, W, C)``.

    Args:
        path: ``.gif`` (Pillow), ``.npy`` (``(T, H, W)``, ``(T, H, W, C)`` uint8 or float in [0, 1]) or any
            container PyAV decodes (``.mp4``, ``.avi``, ...).
        grayscale: ``True`` → one channel (ITU-R 601 luma), ``False`` → RGB, ``None`` → one channel for
            grayscale sources (GIF/npy with equal channels or 2-d frames, PyAV ``gray`` formats, YUV videos whose
            chroma is neutral everywhere), RGB otherwise.
        max_frames: stop after this many frames.
    """
    path = check_clip_path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            frames = _read_npy(path)
        elif suffix == ".gif":
            frames = _read_gif(path, max_frames)
        else:
            frames = _read_av(path, max_frames)
    except UnreadableClipError:
        raise
    except Exception as e:  # decoders raise errno-style messages ("[Errno 1094995529] Invalid data found ...")
        reason = getattr(e, "strerror", None) or str(e) or type(e).__name__
        raise UnreadableClipError(
            f"{path} could not be read as a clip ({reason.rstrip('.')}); vpzoo reads {SUPPORTED_FORMATS}: check that "
            "the file is complete and in one of these formats"
        ) from e
    if suffix == ".npy":
        frames = to_uint8_frames(frames, what=str(path))
    if max_frames is not None:
        frames = frames[:max_frames]
    if frames.shape[0] == 0:
        raise ValueError(f"{path} holds no frames")
    return _set_channels(frames, grayscale)


def _read_npy(path: Path) -> np.ndarray:
    arr = np.load(path)  # allow_pickle=False: an object array is refused
    if arr.ndim == 3:
        arr = arr[..., None]
    if arr.ndim != 4 or arr.shape[-1] not in (1, 3):
        raise UnreadableClipError(f"{path}: expected an array (T, H, W) or (T, H, W, C) with C in (1, 3), got shape "
                                  f"{arr.shape}: save the frames in one of these layouts")
    return arr


def _read_gif(path: Path, max_frames: int | None) -> np.ndarray:
    from PIL import Image, ImageSequence

    frames = []
    with Image.open(path) as im:
        for frame in ImageSequence.Iterator(im):
            frames.append(np.asarray(frame.convert("RGB")))
            if max_frames is not None and len(frames) >= max_frames:
                break
    return np.stack(frames)


def _read_av(path: Path, max_frames: int | None) -> np.ndarray:
    import av

    frames, grey_frames = [], []
    # A YUV video whose chroma stays within 2 levels of neutral (128; lossy codecs drift by 1) holds a grey clip:
    # read its luma (its rgb24 conversion would differ between channels by a few levels of rounding).
    neutral = True
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise UnreadableClipError(f"{path} holds no video stream: pass a clip, not an audio or data file")
        stream = container.streams.video[0]
        gray = stream.codec_context.pix_fmt is not None and stream.codec_context.pix_fmt.startswith("gray")
        for frame in container.decode(stream):
            if gray:
                frames.append(frame.to_ndarray(format="gray"))
            else:
                frames.append(frame.to_ndarray(format="rgb24"))
                if neutral and frame.format.name.startswith(("yuv", "yuvj")):
                    chroma = frame.reformat(format="yuv444p").to_ndarray()[1:]
                    neutral = int(np.abs(chroma.astype(np.int16) - 128).max()) <= 2
                    grey_frames.append(frame.to_ndarray(format="gray"))
                else:
                    neutral = False
            if max_frames is not None and len(frames) >= max_frames:
                break
    if not frames:
        raise UnreadableClipError(f"{path} holds no decodable video frames: check that the file is complete")
    arr = np.stack(grey_frames if not gray and neutral else frames)
    return arr[..., None] if arr.ndim == 3 else arr


def _set_channels(frames: np.ndarray, grayscale: bool | None) -> np.ndarray:
    if frames.shape[-1] == 3:
        is_gray = bool(np.all(frames[..., 0] == frames[..., 1]) and np.all(frames[..., 1] == frames[..., 2]))
        if grayscale or (grayscale is None and is_gray):
            if is_gray:
                return frames[..., :1].copy()
            luma = frames.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
            return np.clip(np.rint(luma), 0, 255).astype(np.uint8)[..., None]
        return frames
    if grayscale is False:
        return np.repeat(frames, 3, axis=-1)
    return frames


def to_uint8_frames(frames: np.ndarray | Tensor, what: str = "frames") -> np.ndarray:
    """uint8 ``(…, H, W, C)`` from uint8 or float-in-[0, 1] data (floats outside [0, 1] are an error)."""
    arr = frames.detach().cpu().numpy() if isinstance(frames, Tensor) else np.asarray(frames)
    if arr.dtype == np.uint8:
        return arr
    if not np.issubdtype(arr.dtype, np.floating):
        raise TypeError(f"{what}: expected uint8 or float in [0, 1], got dtype {arr.dtype}")
    if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1:
        raise ValueError(f"{what}: float values must be finite and in [0, 1], got [{arr.min()}, {arr.max()}]")
    return np.rint(arr * 255.0).astype(np.uint8)


def to_video_tensor(frames: np.ndarray) -> Tensor:
    """uint8 ``(T, H, W, C)`` → float32 tensor ``(T, C, H, W)`` in [0, 1]."""
    if frames.ndim != 4:
        raise ValueError(f"expected frames (T, H, W, C), got shape {frames.shape}")
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div_(255.0)


def _as_hwc_uint8(frames: np.ndarray | Tensor) -> np.ndarray:
    """Accept ``(T, H, W, C)`` numpy or ``(T, C, H, W)`` tensors; return uint8 ``(T, H, W, C)`` with C in (1, 3)."""
    if isinstance(frames, Tensor):
        if frames.ndim != 4:
            raise ValueError(f"expected a tensor (T, C, H, W), got shape {tuple(frames.shape)}")
        frames = frames.permute(0, 2, 3, 1)
    arr = to_uint8_frames(frames)
    if arr.ndim != 4 or arr.shape[-1] not in (1, 3):
        raise ValueError(f"expected frames (T, H, W, C) with C in (1, 3), got shape {arr.shape}")
    return arr


def write_gif(path: str | os.PathLike, frames: np.ndarray | Tensor, fps: float = 4.0) -> Path:
    """Write a looping GIF from uint8/float ``(T, H, W, C)`` numpy or ``(T, C, H, W)`` tensor frames."""
    from PIL import Image

    arr = _as_hwc_uint8(frames)
    mode_frames = arr[..., 0] if arr.shape[-1] == 1 else arr
    images = [Image.fromarray(f) for f in mode_frames]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(round(1000 / fps)), loop=0)
    return path


def write_video(path: str | os.PathLike, frames: np.ndarray | Tensor, fps: int = 10, codec: str = "mpeg4") -> Path:
    """Write a video file with PyAV (``mpeg4`` by default, which every FFmpeg build has)."""
    import av

    arr = _as_hwc_uint8(frames)
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = arr.shape[2], arr.shape[1]
        stream.pix_fmt = "yuv420p"
        for frame in arr:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
