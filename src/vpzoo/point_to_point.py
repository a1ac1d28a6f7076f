"""Point-to-point scoring (the ``point_to_point`` task of :mod:`vpzoo.leaderboard`: ``vpzoo benchmark smmnist_p2p``,
``bair_p2p``): generating the frames between a start and a target end frame.

For each fixed test clip ``x_0 … x_T`` (e.g. vpzoo's SM-MNIST test set: 2 digits, 64x64, the SVG/P2P data rule) a
goal-conditioned model (``predict_options`` holding ``end_frame``, e.g. :class:`~vpzoo.models.p2p.P2P`) gets the
start frame ``x_0`` and the end frame ``x_T`` and draws ``N`` samples of the ``T`` frames after the start, the last
being its control point. Three numbers, as the P2P paper (Wang et al., ICCV 2019, arXiv:1904.02912) reports them:

- **control-point consistency** (``cp_psnr``, ``cp_ssim``): each sample's last frame against the target end frame,
  averaged over samples and clips (every sample must arrive, so no best-of-N);
- **quality** of the intermediate frames ``x_1 … x_{T-1}`` (``psnr``, ``ssim``): against the ground truth, best of N
  per clip (chosen per clip by each metric's mean over the frames, as :class:`~vpzoo.metrics.SampleAggregatedMetric`
  does), averaged over frames and clips;
- **diversity** (``diversity``): the per-pixel mean squared distance between two samples' intermediate frames,
  averaged over all pairs of samples and over clips (0 for a deterministic model).

Baselines in the same table: ``repeat_start`` (every frame is the start frame; its control-point numbers are the
distance of the start frame to the end frame, the bar a model's control point must beat) and ``crossfade``
(frame ``k`` is ``(1 - k/T) x_0 + (k/T) x_T``, so its control point is the end frame itself: PSNR clamped to 100 dB
as :class:`~vpzoo.metrics.SampleAggregatedMetric` clamps a perfect frame).

Published numbers: none. The P2P paper's tables could not be read from anywhere reachable while this was written
(sheet ``models-p2p-ddpae-odevideo.md`` §1.11), and its exact diversity measure is not known here; the benchmarks'
notes say so instead of guessing.
"""

from __future__ import annotations

import itertools
from typing import Any, Callable, Iterable, Optional

import torch
from torch import Tensor

from vpzoo.metrics import SampleAggregatedMetric, frame_metrics, get_protocol

__all__ = ["crossfade", "repeat_start", "score_point_to_point", "score_point_to_point_clips"]

CLIP_LENGTH = 30  # P2P's max_seq_len (SM-MNIST and BAIR): start frame, 28 intermediate frames, end frame
NUM_SAMPLES = 5
PSNR_MAX = 100.0  # dB for identical frames, as SampleAggregatedMetric clamps


def repeat_start(clips: Tensor) -> Tensor:
    """Baseline: the start frame repeated, ``(B, 1, T, C, H, W)`` for clips ``(B, T + 1, C, H, W)``."""
    return clips[:, :1, None].expand(-1, 1, clips.shape[1] - 1, -1, -1, -1)


def crossfade(clips: Tensor) -> Tensor:
    """Baseline: the linear cross-fade from start to end frame, frames ``1 … T``, ``(B, 1, T, C, H, W)``."""
    last = clips.shape[1] - 1
    w = torch.arange(1, last + 1, device=clips.device, dtype=clips.dtype).div(last).view(1, -1, 1, 1, 1)
    return ((1 - w) * clips[:, :1] + w * clips[:, -1:])[:, None]


def score_point_to_point(samples: Tensor, clips: Tensor, protocol: str = "standard") -> dict[str, Any]:
    """The benchmark's numbers for ``samples (B, N, T, C, H, W)`` generated between the ends of ``clips (B, T+1, …)``.

    Returns ``{"cp_psnr", "cp_ssim", "psnr", "ssim", "diversity"}`` (floats, averaged over these clips) and
    ``"per_clip"`` sums for accumulating over batches (``{name: (sum, count)}``).
    """
    b, n, t = samples.shape[:3]
    if clips.shape[0] != b or clips.shape[1] != t + 1 or samples.shape[3:] != clips.shape[2:]:
        raise ValueError(f"samples {tuple(samples.shape)} do not fit clips {tuple(clips.shape)}: expected "
                         "(B, N, T, C, H, W) for clips (B, T + 1, C, H, W)")
    proto = get_protocol(protocol)
    end = clips[:, -1:].expand(-1, n, -1, -1, -1).reshape(b * n, 1, *clips.shape[2:])
    cp = frame_metrics(samples[:, :, -1:].reshape(b * n, 1, *clips.shape[2:]), end, proto)
    cp["psnr"] = cp["psnr"].clamp(max=PSNR_MAX)
    sums: dict[str, tuple[float, int]] = {
        "cp_psnr": (float(cp["psnr"].sum()), b * n), "cp_ssim": (float(cp["ssim"].sum()), b * n),
    }
    if t > 1:
        for name in ("psnr", "ssim"):
            metric = SampleAggregatedMetric(name, "best", protocol=proto)
            metric.update(samples[:, :, :-1], clips[:, 1:-1])
            per_clip = metric.compute()["mean"]
            sums[name] = (float(per_clip) * b, b)
        pairs = list(itertools.combinations(range(n), 2))
        if pairs:
            inter = samples[:, :, :-1].double()
            distance = torch.stack([(inter[:, i] - inter[:, j]).pow(2).flatten(1).mean(1) for i, j in pairs], 1)
            sums["diversity"] = (float(distance.mean(1).sum()), b)
        else:
            sums["diversity"] = (0.0, b)
    values = {k: s / c for k, (s, c) in sums.items()}
    return {**values, "per_clip": sums}


def score_point_to_point_clips(
    model: torch.nn.Module,
    clip_batches: Iterable[Tensor],
    protocol: str = "standard",
    num_samples: int = NUM_SAMPLES,
    num_test: Optional[int] = None,
    seed: int = 0,
    progress: Optional[Callable[[int, int], None]] = None,
) -> tuple[dict[str, dict[str, float]], int]:
    """Score a goal-conditioned ``model`` and the two baselines on the first ``num_test`` clips of ``clip_batches``
    (``(B, T + 1, C, H, W)`` in [0, 1]): each clip's start frame and end frame go to ``model.predict(start, T,
    num_samples=N, seed=seed + i, end_frame=end)`` for batch ``i``.

    Returns ``({"model"|"repeat_start"|"crossfade": {metric: value}}, clips scored)``; what
    :func:`vpzoo.leaderboard.run_benchmark` runs for ``point_to_point`` benchmarks.
    """
    sums: dict[str, dict[str, list[float]]] = {}
    done = 0
    for i, clips in enumerate(clip_batches):
        if num_test is not None and done >= num_test:
            break
        clips = clips[: None if num_test is None else num_test - done].to(model.device)
        samples = model.predict(clips[:, :1], clips.shape[1] - 1, num_samples=num_samples, seed=seed + i,
                                end_frame=clips[:, -1])
        for who, pred in (("model", samples), ("repeat_start", repeat_start(clips)), ("crossfade", crossfade(clips))):
            for name, (s, c) in score_point_to_point(pred, clips, protocol)["per_clip"].items():
                acc = sums.setdefault(who, {}).setdefault(name, [0.0, 0])
                acc[0] += s
                acc[1] += c
        done += clips.shape[0]
        if progress is not None:
            progress(done, num_test if num_test is not None else done)
    values = {who: {name: s / c for name, (s, c) in metrics.items()} for who, metrics in sums.items()}
    return values, done
