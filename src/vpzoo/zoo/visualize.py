"""Pictures of a prediction: an animated GIF and a PNG grid of context | ground truth | samples.

Colour code (frames get a coloured border): green = context frame (given to the model), blue = ground truth
future frame, red = predicted frame, dark grey = not available (no ground truth that far), orange = the target end frame of a
goal-conditioned model (P2P), shown in an extra column/panel at the right.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = ["prediction_gif_frames", "prediction_grid", "write_prediction"]

_CONTEXT, _TRUTH, _PRED, _BLANK = (40, 170, 40), (40, 90, 220), (210, 40, 40), (45, 45, 45)
_GOAL = (240, 150, 20)


def _goal_panel(end_frame: Tensor | None, context: Tensor, border: int) -> np.ndarray | None:
    """The framed end frame ``(C, H, W)`` of a goal-conditioned prediction, or None."""
    if end_frame is None:
        return None
    if end_frame.shape != context.shape[1:]:
        raise ValueError(f"end_frame must be (C, H, W) = {tuple(context.shape[1:])}, got {tuple(end_frame.shape)}")
    img = _check(end_frame[None], end_frame[None, None], None)[0][0]
    return _framed(img, _GOAL, img.shape[0], img.shape[1], border)


def _check(context: Tensor, samples: Tensor, target: Tensor | None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    if context.ndim != 4:
        raise ValueError(f"context must be (T_c, C, H, W), got shape {tuple(context.shape)}")
    if samples.ndim != 5 or samples.shape[2:] != context.shape[1:]:
        raise ValueError(f"samples must be (N, T_f, C, H, W) with (C, H, W) = {tuple(context.shape[1:])}, got "
                         f"{tuple(samples.shape)}")
    if target is not None and (target.ndim != 4 or target.shape[1:] != context.shape[1:]):
        raise ValueError(f"target must be (T, C, H, W) with (C, H, W) = {tuple(context.shape[1:])}, got "
                         f"{tuple(target.shape)}")

    def rgb(x: Tensor) -> np.ndarray:  # (..., C, H, W) float [0, 1] -> (..., H, W, 3) uint8
        x = x.detach().float().cpu().clamp(0, 1)
        if x.shape[-3] == 1:
            x = x.expand(*x.shape[:-3], 3, *x.shape[-2:])
        return (x.movedim(-3, -1) * 255).round().to(torch.uint8).numpy()

    t = None if target is None or target.shape[0] == 0 else rgb(target[: samples.shape[1]])
    return rgb(context), rgb(samples), t


def _framed(img: np.ndarray | None, color: tuple[int, int, int], h: int, w: int, b: int) -> np.ndarray:
    out = np.empty((h + 2 * b, w + 2 * b, 3), dtype=np.uint8)
    out[:] = color
    out[b:b + h, b:b + w] = img if img is not None else _BLANK
    return out


def prediction_gif_frames(
    context: Tensor, samples: Tensor, target: Tensor | None = None, border: int = 2,
    end_frame: Tensor | None = None,
) -> np.ndarray:
    """Animation frames: panel 0 is the real clip (context, then ground truth), panels 1..N the samples.

    Args:
        context: ``(T_c, C, H, W)`` in [0, 1].
        samples: ``(N, T_f, C, H, W)`` in [0, 1].
        target: ``(T_t, C, H, W)`` ground-truth future (any length; frames past ``T_t`` are shown blank).
        border: width of the coloured border.
        end_frame: ``(C, H, W)`` target end frame of a goal-conditioned model, shown as one more panel (right).

    Returns:
        uint8 ``(T_c + T_f, H + 2b, (N + 1) (W + 2b), 3)`` (``N + 2`` panels with ``end_frame``).
    """
    ctx, smp, tgt = _check(context, samples, target)
    goal = _goal_panel(end_frame, context, border)
    n, t_f, h, w = smp.shape[0], smp.shape[1], ctx.shape[1], ctx.shape[2]
    frames = []
    for t in range(ctx.shape[0] + t_f):
        if t < ctx.shape[0]:
            panels = [_framed(ctx[t], _CONTEXT, h, w, border)] * (n + 1)
        else:
            k = t - ctx.shape[0]
            truth = tgt[k] if tgt is not None and k < len(tgt) else None
            panels = [_framed(truth, _TRUTH if truth is not None else _BLANK, h, w, border)]
            panels += [_framed(smp[i, k], _PRED, h, w, border) for i in range(n)]
        frames.append(np.concatenate(panels + ([goal] if goal is not None else []), axis=1))
    return np.stack(frames)


def prediction_grid(context: Tensor, samples: Tensor, target: Tensor | None = None, border: int = 2,
                    end_frame: Tensor | None = None) -> np.ndarray:
    """One picture: columns are time; row 0 the real clip (context | ground truth), rows 1..N context | sample i.

    Arguments as :func:`prediction_gif_frames`; returns uint8 ``((N + 1) (H + 2b), (T_c + T_f) (W + 2b), 3)``, with
    ``end_frame`` one more column at the right holding it in every row.
    """
    ctx, smp, tgt = _check(context, samples, target)
    goal = _goal_panel(end_frame, context, border)
    n, t_f, h, w = smp.shape[0], smp.shape[1], ctx.shape[1], ctx.shape[2]
    head = [_framed(f, _CONTEXT, h, w, border) for f in ctx]
    rows = [head + [_framed(tgt[k] if tgt is not None and k < len(tgt) else None,
                            _TRUTH if tgt is not None and k < len(tgt) else _BLANK, h, w, border) for k in range(t_f)]]
    rows += [head + [_framed(smp[i, k], _PRED, h, w, border) for k in range(t_f)] for i in range(n)]
    if goal is not None:
        rows = [r + [goal] for r in rows]
    return np.concatenate([np.concatenate(r, axis=1) for r in rows], axis=0)


def write_prediction(
    gif_path: str | os.PathLike,
    context: Tensor,
    samples: Tensor,
    target: Tensor | None = None,
    png_path: str | os.PathLike | None = None,
    fps: float = 4.0,
    end_frame: Tensor | None = None,
) -> tuple[Path, Path]:
    """Write the animation (:func:`prediction_gif_frames`) and the grid (:func:`prediction_grid`); ``end_frame``
    ``(C, H, W)``: the target of a goal-conditioned model, shown beside the samples.

    The grid goes to ``png_path`` (default: ``gif_path`` with suffix ``.png``). Returns both paths.
    """
    from PIL import Image

    from vpzoo.io import write_gif

    gif = write_gif(gif_path, prediction_gif_frames(context, samples, target, end_frame=end_frame), fps=fps)
    png = Path(png_path) if png_path is not None else gif.with_suffix(".png")
    png.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(prediction_grid(context, samples, target, end_frame=end_frame)).save(png)
    return gif, png
