"""Pictures of a prediction: an animated GIF, a PNG grid of context | ground truth | samples, a per-frame plot.

Every picture is labelled in text: the grid names each row ("ground truth", "sample k" with its PSNR/SSIM) and
numbers each column (frame index, grouped under "context" and "predicted"); each GIF frame names its panels and
says which frame it shows; a caption under both gives the metrics against the ground truth. Frames also keep a
coloured border: green = context frame (given to the model), blue = ground-truth future frame, red = predicted
frame, dark grey = not available (no ground truth that far), orange = the target end frame of a goal-conditioned
model (P2P), shown when given as one more column of the grid / panel of the GIF, labelled "end frame (target)".
A continuous-time prediction at ``steps_per_frame`` = K frames per frame interval (``vpzoo predict --fps-factor K``)
numbers its columns in frame units (10.25, 10.5, ...), shows the ground truth at the whole frames only and scores
those. Text uses Pillow's default font.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "PredictionScores",
    "prediction_scores",
    "prediction_gif_frames",
    "prediction_grid",
    "render_label",
    "write_prediction",
    "write_metrics_plot",
    "write_image_grid",
    "whole_frames",
]

_CONTEXT, _TRUTH, _PRED, _BLANK = (40, 170, 40), (40, 90, 220), (210, 40, 40), (45, 45, 45)
_GOAL = (240, 150, 20)
END_FRAME_LABEL = "end frame (target)"
_BACKGROUND, _INK, _GREY_INK = (255, 255, 255), (0, 0, 0), (90, 90, 90)
FONT_SIZE = 13
_PAD = 4


# ------------------------------------------------------------------------------------------------ metrics
@dataclass
class PredictionScores:
    """Per-frame PSNR/SSIM of each sample against the ground truth (only frames that have one).

    ``psnr``/``ssim``: ``(N, K)`` for ``N`` samples and ``K`` frames with ground truth; ``copy_last_psnr``/
    ``copy_last_ssim``: ``(K,)`` of the last context frame repeated (the baseline every prediction must beat).
    """

    psnr: np.ndarray
    ssim: np.ndarray
    copy_last_psnr: np.ndarray
    copy_last_ssim: np.ndarray
    protocol: str
    first_frame: int  # 1-based index (in the whole clip) of the first predicted frame

    def best(self, metric: str) -> tuple[int, float]:
        """Index of the best sample by the mean over frames of ``metric`` and that mean (best of N per sequence,
        as :class:`vpzoo.metrics.SampleAggregatedMetric` reduces it)."""
        means = getattr(self, metric).mean(axis=1)
        k = int(np.argmax(means))
        return k, float(means[k])


def prediction_scores(
    context: Tensor, samples: Tensor, target: Tensor, protocol: str = "standard"
) -> PredictionScores | None:
    """:class:`PredictionScores` of ``samples`` ``(N, T_f, C, H, W)`` against ``target`` ``(T_t, C, H, W)`` (the
    first ``min(T_f, T_t)`` frames) under a :mod:`vpzoo.metrics` protocol; None without ground truth."""
    from vpzoo.metrics import frame_metrics

    k = min(samples.shape[1], target.shape[0]) if target is not None else 0
    if k == 0:
        return None
    smp = samples[:, :k].detach().float().cpu()
    tgt = target[:k].detach().float().cpu()[None].expand_as(smp)
    scores = frame_metrics(smp, tgt, protocol)
    last = context[-1:].detach().float().cpu()[None].expand(1, k, *context.shape[1:])
    base = frame_metrics(last, tgt[:1], protocol)
    return PredictionScores(
        psnr=scores["psnr"].double().numpy(), ssim=scores["ssim"].double().numpy(),
        copy_last_psnr=base["psnr"][0].double().numpy(), copy_last_ssim=base["ssim"][0].double().numpy(),
        protocol=str(protocol), first_frame=context.shape[0] + 1,
    )


def _caption(scores: PredictionScores | None, num_samples: int, title: str | None,
             end_frame: bool = False, steps_per_frame: int = 1) -> list[str]:
    lines = [title] if title else []
    if steps_per_frame > 1:
        lines.append(f"{steps_per_frame} predicted frames per frame interval: ground truth and metrics at the whole "
                     "frames")
    if scores is None:
        lines.append("no ground truth for the predicted frames: no metrics")
    else:
        k = scores.psnr.shape[1]
        _, psnr = scores.best("psnr")
        _, ssim = scores.best("ssim")
        lines.append(f"vs ground truth ({k} frame{'s' if k != 1 else ''}, best of {num_samples}, protocol "
                     f"{scores.protocol!r}): PSNR {psnr:.2f} dB, SSIM {ssim:.3f}")
        lines.append(f"copy-last baseline: PSNR {scores.copy_last_psnr.mean():.2f} dB, SSIM "
                     f"{scores.copy_last_ssim.mean():.3f}")
    lines.append("borders: green context, blue ground truth, red predicted"
                 + (", orange end frame (target)" if end_frame else ""))
    return lines


# ------------------------------------------------------------------------------------------------ text
@functools.lru_cache(maxsize=8)
def _font(size: int = FONT_SIZE):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1 with FreeType: a scalable font
    except (TypeError, ImportError, OSError):
        return ImageFont.load_default()


def _text_size(text: str, font) -> tuple[int, int]:
    left, top, right, bottom = font.getbbox(text)
    return right - left, bottom - top


def _line_height(size: int = FONT_SIZE) -> int:
    return _text_size("Ag0|", _font(size))[1] + 4


def render_label(text: str, width: int, height: int, size: int = FONT_SIZE, align: str = "left",
                 ink: tuple[int, int, int] = _INK) -> np.ndarray:
    """A ``(height, width, 3)`` uint8 strip with ``text`` (lines split on newlines) on the pictures' white
    background, vertically centred; ``align`` is ``"left"`` or ``"center"``. Text that does not fit is clipped."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (max(width, 1), max(height, 1)), _BACKGROUND)
    if text:
        draw = ImageDraw.Draw(image)
        font = _font(size)
        lines = text.split("\n")
        line_h = _line_height(size)
        y = max((height - line_h * len(lines)) // 2, 0)
        for line in lines:
            left, top, right, _ = font.getbbox(line)
            x = _PAD - left if align == "left" else (width - (right - left)) // 2 - left
            draw.text((x, y + 2 - top), line, fill=ink, font=font)
            y += line_h
    return np.asarray(image).copy()


def _text_width(text: str, size: int = FONT_SIZE) -> int:
    font = _font(size)
    return max(_text_size(line, font)[0] for line in text.split("\n")) + 2 * _PAD


# ------------------------------------------------------------------------------------------------ frames
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


def _check_end_frame(end_frame: Tensor | None, context: Tensor) -> np.ndarray | None:
    """The target end frame ``(C, H, W)`` as uint8 ``(H, W, 3)``, or None; it must match the context frames."""
    if end_frame is None:
        return None
    if not isinstance(end_frame, Tensor):
        raise TypeError(f"end_frame must be a torch.Tensor (C, H, W) in [0, 1], got {type(end_frame).__name__}")
    if tuple(end_frame.shape) != tuple(context.shape[1:]):
        raise ValueError(f"end_frame must be one frame (C, H, W) = {tuple(context.shape[1:])} like the context "
                         f"frames, got shape {tuple(end_frame.shape)}")
    if not end_frame.is_floating_point():
        raise TypeError(f"end_frame must be a floating-point frame in [0, 1] like the context frames, got "
                        f"{end_frame.dtype}")
    return _check(end_frame[None], end_frame[None, None], None)[0][0]


def _check_steps(steps_per_frame: int, samples: Tensor) -> int:
    if isinstance(steps_per_frame, bool) or not isinstance(steps_per_frame, int) or steps_per_frame < 1:
        raise ValueError(f"steps_per_frame must be an integer >= 1, got {steps_per_frame!r}")
    if samples.shape[1] % steps_per_frame:
        raise ValueError(f"samples hold {samples.shape[1]} frames, not a whole number of frame intervals of "
                         f"{steps_per_frame} frames (steps_per_frame)")
    return steps_per_frame


def _truth_index(k: int, steps_per_frame: int) -> int | None:
    """The ground-truth frame shown beside predicted column ``k`` (0-based): the one at the same time, if whole."""
    return (k + 1) // steps_per_frame - 1 if (k + 1) % steps_per_frame == 0 else None


def _time_label(t_c: int, k: int, steps_per_frame: int) -> str:
    """Predicted column ``k``'s 1-based frame number: ``t_c + (k + 1)/K`` (``10.25`` at 4x after 10 context frames)."""
    return f"{t_c + (k + 1) / steps_per_frame:g}"


def whole_frames(samples: Tensor, steps_per_frame: int = 1) -> Tensor:
    """The frames of ``samples`` ``(N, T_f·K, C, H, W)`` at whole frame intervals: ``(N, T_f, C, H, W)``."""
    return samples[:, steps_per_frame - 1::steps_per_frame]


def _framed(img: np.ndarray | None, color: tuple[int, int, int], h: int, w: int, b: int, scale: int) -> np.ndarray:
    out = np.empty((h * scale + 2 * b, w * scale + 2 * b, 3), dtype=np.uint8)
    out[:] = color
    if img is None:
        out[b:b + h * scale, b:b + w * scale] = _BLANK
    else:
        out[b:b + h * scale, b:b + w * scale] = img.repeat(scale, axis=0).repeat(scale, axis=1)
    return out


def _paste(canvas: np.ndarray, part: np.ndarray, y: int, x: int) -> None:
    canvas[y:y + part.shape[0], x:x + part.shape[1]] = part


def _auto_scale(h: int) -> int:
    return max(1, math.ceil(96 / h)) if h < 96 else 1


# ------------------------------------------------------------------------------------------------ GIF
def prediction_gif_frames(
    context: Tensor,
    samples: Tensor,
    target: Tensor | None = None,
    border: int = 2,
    *,
    labels: bool = True,
    scores: PredictionScores | None = None,
    title: str | None = None,
    scale: int | None = None,
    return_boxes: bool = False,
    end_frame: Tensor | None = None,
    steps_per_frame: int = 1,
) -> np.ndarray | tuple[np.ndarray, list[dict[str, tuple[int, int, int, int]]]]:
    """Animation frames: panel 0 is the real clip (context, then ground truth), panels 1..N the samples, and with
    ``end_frame`` panel N + 1 the target end frame (orange border, labelled "end frame (target)") in every frame.

    Args:
        context: ``(T_c, C, H, W)`` in [0, 1].
        samples: ``(N, T_f, C, H, W)`` in [0, 1].
        target: ``(T_t, C, H, W)`` ground-truth future (any length; frames past ``T_t`` are shown blank).
        border: width of the coloured border.
        labels: name the panels above them ("ground truth", "sample k") and the frame below ("frame t of T,
            context/predicted"), with a caption of ``scores`` (the metrics) under it; ``False`` gives the bare
            panels.
        scores: :func:`prediction_scores` of the samples, for the caption (computed here when None and ``target``
            is given).
        title: first line of the caption.
        scale: integer upscaling of the frames (default: 2 for frames under 96 px, else 1; 1 without labels).
        return_boxes: also return, per frame, each label's text and its box ``(y0, y1, x0, x1)`` (panel ``i``'s
            name under the key ``"panel i"``).
        end_frame: ``(C, H, W)`` in [0, 1], the target end frame of a goal-conditioned model (same shape as the
            context frames), shown as one more panel at the right, set apart by a small gap when labelled.
        steps_per_frame: K predicted frames per frame interval (a continuous-time model's slow motion): sample
            frame ``k`` is at time ``(k + 1)/K`` after the last context frame; ``target`` holds whole frames, shown
            (and scored) beside the samples at whole times only.

    Returns:
        uint8 ``(T_c + T_f, height, width, 3)``; without labels and scale 1 ``(T_c + T_f, H + 2b, (N + 1) (W + 2b),
        3)`` (``N + 2`` panels with ``end_frame``).
    """
    ctx, smp, tgt = _check(context, samples, target)
    goal = _check_end_frame(end_frame, context)
    k_steps = _check_steps(steps_per_frame, samples)
    n, t_f, h, w = smp.shape[0], smp.shape[1], ctx.shape[1], ctx.shape[2]
    scale = scale if scale is not None else (_auto_scale(h) if labels else 1)
    if labels and scores is None and target is not None:
        scores = prediction_scores(context, whole_frames(samples, k_steps), target)
    total = ctx.shape[0] + t_f
    last_time = _time_label(ctx.shape[0], t_f - 1, k_steps)
    panel_w, panel_h = w * scale + 2 * border, h * scale + 2 * border
    names = ["ground truth"] + [f"sample {i + 1}" for i in range(n)]
    line_h = _line_height()
    caption = _caption(scores, n, title, end_frame=goal is not None, steps_per_frame=k_steps) if labels else []
    width = (n + 1) * panel_w
    goal_panel = goal_x = None
    if goal is not None:
        goal_panel = _framed(goal, _GOAL, h, w, border, scale)
        goal_w = max(panel_w, _text_width(END_FRAME_LABEL)) if labels else panel_w
        goal_x = width + (2 * _PAD if labels else 0)  # the end panel's column, apart from the time steps
        width = goal_x + goal_w
    if labels:
        widest = f"frame {last_time} of {last_time}: predicted"
        width = max(width, max(_text_width(line) for line in caption + [widest]))
    head_h = line_h if labels else 0
    foot_h = line_h * (1 + len(caption)) + _PAD if labels else 0
    frames, boxes = [], []
    for t in range(total):
        canvas = np.empty((head_h + panel_h + foot_h, width, 3), dtype=np.uint8)
        canvas[:] = _BACKGROUND
        frame_boxes: dict[str, tuple[int, int, int, int]] = {}
        if t < ctx.shape[0]:
            panels = [_framed(ctx[t], _CONTEXT, h, w, border, scale)] * (n + 1)
        else:
            k = t - ctx.shape[0]
            j = _truth_index(k, k_steps)
            truth = tgt[j] if tgt is not None and j is not None and j < len(tgt) else None
            panels = [_framed(truth, _TRUTH if truth is not None else _BLANK, h, w, border, scale)]
            panels += [_framed(smp[i, k], _PRED, h, w, border, scale) for i in range(n)]
        for i, panel in enumerate(panels):
            _paste(canvas, panel, head_h, i * panel_w)
            if labels:
                name = names[i] if t >= ctx.shape[0] else ("context" if i == 0 else names[i])
                _paste(canvas, render_label(name, panel_w, head_h, align="center"), 0, i * panel_w)
                frame_boxes[f"panel {i}"] = (0, head_h, i * panel_w, (i + 1) * panel_w)
        if goal_panel is not None:
            _paste(canvas, goal_panel, head_h, goal_x + (goal_w - panel_w) // 2)
            if labels:
                _paste(canvas, render_label(END_FRAME_LABEL, goal_w, head_h, align="center"), 0, goal_x)
                frame_boxes[f"panel {n + 1}"] = (0, head_h, goal_x, goal_x + goal_w)
        if labels:
            what = "context (given to the model)" if t < ctx.shape[0] else "predicted"
            now = str(t + 1) if t < ctx.shape[0] else _time_label(ctx.shape[0], t - ctx.shape[0], k_steps)
            lines = [f"frame {now} of {last_time}: {what}"] + caption
            y = head_h + panel_h + _PAD
            for j, line in enumerate(lines):
                _paste(canvas, render_label(line, width, line_h, ink=_INK if j < len(lines) - 1 else _GREY_INK), y, 0)
                frame_boxes[line] = (y, y + line_h, 0, width)
                y += line_h
        frames.append(canvas)
        boxes.append(frame_boxes)
    out = np.stack(frames)
    return (out, boxes) if return_boxes else out


# ------------------------------------------------------------------------------------------------ grid
def prediction_grid(
    context: Tensor,
    samples: Tensor,
    target: Tensor | None = None,
    border: int = 2,
    *,
    labels: bool = True,
    scores: PredictionScores | None = None,
    title: str | None = None,
    scale: int | None = None,
    return_boxes: bool = False,
    end_frame: Tensor | None = None,
    steps_per_frame: int = 1,
) -> np.ndarray | tuple[np.ndarray, dict[str, tuple[int, int, int, int]]]:
    """One picture: columns are time; row 0 the real clip (context | ground truth), rows 1..N context | sample k;
    with ``end_frame`` one more column at the right holds the target end frame in every row (orange border,
    headed "end frame (target)").

    With ``labels`` (the default) a column on the left names each row ("ground truth"; "sample k" with its mean
    PSNR/SSIM over the frames that have ground truth, the best marked), a header numbers the frames under
    "context" and "predicted", and a caption under the grid gives the metrics (best of N, the copy-last
    baseline, the protocol). Arguments as :func:`prediction_gif_frames`.

    ``scale`` (default: the smallest integer that makes a row as tall as its label, 1 for 64-px frames; 1 without
    labels) upscales the frames by pixel repetition.

    Returns:
        uint8 ``(height, width, 3)``; without labels and scale 1 ``((N + 1) (H + 2b), (T_c + T_f) (W + 2b), 3)``
        (``T_c + T_f + 1`` columns with ``end_frame``). With ``return_boxes`` also a dict from each label's text to
        its box ``(y0, y1, x0, x1)``.
    """
    ctx, smp, tgt = _check(context, samples, target)
    goal = _check_end_frame(end_frame, context)
    k_steps = _check_steps(steps_per_frame, samples)
    n, t_f, h, w = smp.shape[0], smp.shape[1], ctx.shape[1], ctx.shape[2]
    t_c = ctx.shape[0]
    if labels and scores is None and target is not None:
        scores = prediction_scores(context, whole_frames(samples, k_steps), target)
    if scale is None:
        label_lines = 3 if labels and scores is not None else 1
        scale = max(1, math.ceil((label_lines * _line_height() - 2 * border) / h)) if labels else 1
    head = [_framed(f, _CONTEXT, h, w, border, scale) for f in ctx]
    truth = [_truth_index(k, k_steps) for k in range(t_f)]
    truth = [j if tgt is not None and j is not None and j < len(tgt) else None for j in truth]
    rows = [head + [_framed(None if j is None else tgt[j], _BLANK if j is None else _TRUTH, h, w, border, scale)
                    for j in truth]]
    rows += [head + [_framed(smp[i, k], _PRED, h, w, border, scale) for k in range(t_f)] for i in range(n)]
    goal_panel = None if goal is None else _framed(goal, _GOAL, h, w, border, scale)
    if not labels:
        if goal_panel is not None:
            rows = [r + [goal_panel] for r in rows]
        body = np.concatenate([np.concatenate(r, axis=1) for r in rows], axis=0)
        return (body, {}) if return_boxes else body
    body = np.concatenate([np.concatenate(r, axis=1) for r in rows], axis=0)

    panel_w, panel_h = w * scale + 2 * border, h * scale + 2 * border
    line_h = _line_height()
    row_names = ["ground truth"]
    best_psnr = scores.best("psnr")[0] if scores is not None else -1
    for i in range(n):
        name = f"sample {i + 1}" + (" (best PSNR)" if i == best_psnr and n > 1 else "")
        if scores is not None:
            name += f"\nPSNR {scores.psnr[i].mean():.1f} dB\nSSIM {scores.ssim[i].mean():.3f}"
        row_names.append(name)
    label_w = max(_text_width(name) for name in row_names + ["frame"])
    caption = _caption(scores, n, title, end_frame=goal is not None, steps_per_frame=k_steps)
    width = label_w + body.shape[1]
    if goal_panel is not None:  # the end frame's column, set apart from the time steps by a small gap
        goal_x, goal_w = width + 2 * _PAD, max(panel_w, _text_width(END_FRAME_LABEL))
        width = goal_x + goal_w
    width = max(width, max(_text_width(line) for line in caption))
    head_h = 2 * line_h
    height = head_h + body.shape[0] + line_h * len(caption) + 2 * _PAD
    canvas = np.empty((height, width, 3), dtype=np.uint8)
    canvas[:] = _BACKGROUND
    boxes: dict[str, tuple[int, int, int, int]] = {}

    def put(text: str, y: int, x: int, w_: int, h_: int, **kw: Any) -> None:
        _paste(canvas, render_label(text, w_, h_, **kw), y, x)
        boxes[text] = (y, y + h_, x, x + w_)

    _paste(canvas, body, head_h, label_w)
    put("context", 0, label_w, t_c * panel_w, line_h, align="center")
    put("predicted", 0, label_w + t_c * panel_w, t_f * panel_w, line_h, align="center")
    put("frame", line_h, 0, label_w, line_h)
    for t in range(t_c + t_f):
        number = str(t + 1) if t < t_c else _time_label(t_c, t - t_c, k_steps)
        put(number, line_h, label_w + t * panel_w, panel_w, line_h, align="center")
    for r, name in enumerate(row_names):
        put(name, head_h + r * panel_h, 0, label_w, panel_h)
    if goal_panel is not None:
        put(END_FRAME_LABEL, 0, goal_x, goal_w, head_h, align="center")
        for r in range(len(row_names)):
            _paste(canvas, goal_panel, head_h + r * panel_h, goal_x + (goal_w - panel_w) // 2)
    y = head_h + body.shape[0] + _PAD
    for j, line in enumerate(caption):
        put(line, y, 0, width, line_h, ink=_INK if j < len(caption) - 1 else _GREY_INK)
        y += line_h
    return (canvas, boxes) if return_boxes else canvas


def write_image_grid(path: str | os.PathLike, images: Tensor, nrow: int, padding: int = 2,
                     pad_value: float = 0.25) -> Path:
    """A plain PNG of ``images (N, C, H, W)`` in [0, 1] (C = 1 grey or 3 RGB), ``nrow`` per row, in order, with
    ``padding``-pixel borders of grey ``pad_value`` (torchvision's ``make_grid``). Values outside [0, 1] are refused,
    not clipped. Returns the path."""
    from PIL import Image
    from torchvision.utils import make_grid

    if images.ndim != 4 or images.shape[1] not in (1, 3) or images.shape[0] == 0:
        raise ValueError(f"images must be (N >= 1, C in (1, 3), H, W), got {tuple(images.shape)}")
    if not images.is_floating_point() or not torch.isfinite(images).all() or images.min() < 0 or images.max() > 1:
        raise ValueError(f"images must be finite floats in [0, 1], got {images.dtype} in "
                         f"[{images.min().item()}, {images.max().item()}]")
    if nrow < 1:
        raise ValueError(f"nrow must be at least 1, got {nrow}")
    grid = make_grid(images.detach().float().cpu(), nrow=nrow, padding=padding, pad_value=pad_value)  # (3, H', W')
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((grid.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()).save(path)
    return path


# ------------------------------------------------------------------------------------------------ plot
def write_metrics_plot(path: str | os.PathLike, scores: PredictionScores, title: str | None = None) -> Path:
    """A PNG with per-frame PSNR and SSIM: each sample (thin), the best of N (thick) and copy-last (dashed).

    Needs matplotlib (imported here, not at import time).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    n, k = scores.psnr.shape
    frames = np.arange(scores.first_frame, scores.first_frame + k)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), constrained_layout=True)
    for ax, metric, unit in ((axes[0], "psnr", "PSNR (dB)"), (axes[1], "ssim", "SSIM")):
        values = getattr(scores, metric)
        finite = np.where(np.isfinite(values), values, np.nan)
        for i in range(n):
            ax.plot(frames, finite[i], color="tab:red", alpha=0.35, linewidth=1,
                    label="samples" if i == 0 else None)
        best = scores.best(metric)[0]
        ax.plot(frames, finite[best], color="tab:red", linewidth=2.2, label=f"best of {n} (sample {best + 1})")
        ax.plot(frames, getattr(scores, f"copy_last_{metric}"), color="0.35", linestyle="--", linewidth=1.5,
                label="copy last context frame")
        ax.set_xlabel("frame index (1 = first context frame)")
        ax.set_ylabel(unit)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title or f"per-frame metrics vs ground truth (protocol {scores.protocol!r})", fontsize=10)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------------------------ files
def write_prediction(
    gif_path: str | os.PathLike,
    context: Tensor,
    samples: Tensor,
    target: Tensor | None = None,
    png_path: str | os.PathLike | None = None,
    fps: float = 4.0,
    *,
    protocol: str = "standard",
    title: str | None = None,
    scores: PredictionScores | None = None,
    plot_path: str | os.PathLike | None = None,
    end_frame: Tensor | None = None,
    steps_per_frame: int = 1,
) -> tuple[Path, Path]:
    """Write the labelled animation (:func:`prediction_gif_frames`) and grid (:func:`prediction_grid`), and with
    ``plot_path`` the per-frame metrics plot (:func:`write_metrics_plot`; needs ground truth).

    ``end_frame`` ``(C, H, W)`` in [0, 1] (the shape of the context frames): the target end frame of a
    goal-conditioned model (P2P), shown in both pictures as an orange-framed column/panel "end frame (target)".
    ``steps_per_frame`` K: ``samples`` hold K frames per frame interval (see :func:`prediction_gif_frames`); the
    metrics and the plot use the whole frames.

    The grid goes to ``png_path`` (default: ``gif_path`` with suffix ``.png``). Metrics use the :mod:`vpzoo.metrics`
    ``protocol`` (or the given ``scores``). Returns the GIF's and the grid's paths.
    """
    from PIL import Image

    from vpzoo.io import write_gif

    _check_end_frame(end_frame, context)  # a bad end frame fails before any file is written
    _check_steps(steps_per_frame, samples)
    if scores is None and target is not None:
        scores = prediction_scores(context, whole_frames(samples, steps_per_frame), target, protocol)
    if plot_path is not None and scores is None:
        raise ValueError("a metrics plot needs ground-truth frames after the context; the clip has none")
    gif = write_gif(gif_path, prediction_gif_frames(context, samples, target, scores=scores, title=title,
                                                    end_frame=end_frame, steps_per_frame=steps_per_frame), fps=fps)
    png = Path(png_path) if png_path is not None else gif.with_suffix(".png")
    png.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(prediction_grid(context, samples, target, scores=scores, title=title,
                                    end_frame=end_frame, steps_per_frame=steps_per_frame)).save(png)
    if plot_path is not None:
        write_metrics_plot(plot_path, scores, title)
    return gif, png
