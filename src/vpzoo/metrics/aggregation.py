"""Aggregation of per-frame metrics over samples, sequences and processes.

Stochastic video-prediction models are evaluated by drawing ``N`` samples per test sequence and reporting, per
predicted frame, the metric of the best (or mean, or worst) sample, averaged over sequences. This module provides

- :func:`reduce_samples`: the per-sequence choice among samples, ``(B, N, T) -> (B, T)``;
- :class:`SampleAggregatedMetric`: a ``torchmetrics.Metric`` that accumulates the per-frame curve over batches
  and synchronises it across processes (DDP) with sum reductions;
- :func:`register_frame_metric`: the registry of per-frame metrics it can aggregate (``"psnr"``, ``"ssim"``,
  ``"mse_sum"``/``"bce_sum"`` (DDPAE's per-frame sums over the pixels); further metrics such as LPIPS register
  themselves here).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import Tensor
from torchmetrics import Metric

from vpzoo.metrics.frame import _check_tensor, _check_win_size, _psnr_frames, _ssim_frames
from vpzoo.metrics.protocols import MetricProtocol, get_protocol

__all__ = [
    "FrameMetricSpec",
    "SampleAggregatedMetric",
    "available_frame_metrics",
    "reduce_samples",
    "register_frame_metric",
    "REDUCTIONS",
    "SELECTIONS",
    "summed_frame_mse",
    "summed_frame_bce",
]

#: Valid ``reduction`` values: how the ``N`` samples of a sequence are reduced.
REDUCTIONS: tuple[str, ...] = ("best", "mean", "worst")
#: Valid ``select`` values: whether the best/worst sample is chosen per sequence or independently per frame.
SELECTIONS: tuple[str, ...] = ("sequence", "frame")

#: ``fn(preds, target, protocol) -> values``: preds and target ``(B, N, T, C, H, W)`` (target may be an expanded
#: view), values ``(B, N, T)``.
FrameMetricFn = Callable[[Tensor, Tensor, MetricProtocol], Tensor]


@dataclass(frozen=True)
class FrameMetricSpec:
    """A per-frame metric that :class:`SampleAggregatedMetric` can aggregate.

    Attributes:
        name: the name passed as ``metric=``.
        fn: ``fn(preds (B, N, T, C, H, W), target (B, N, T, C, H, W), protocol) -> (B, N, T)``.
        higher_is_better: decides what "best" and "worst" mean.
    """

    name: str
    fn: FrameMetricFn
    higher_is_better: bool


_FRAME_METRICS: dict[str, FrameMetricSpec] = {}


def register_frame_metric(name: str, fn: FrameMetricFn, *, higher_is_better: bool, overwrite: bool = False) -> None:
    """Make ``name`` available as ``SampleAggregatedMetric(metric=name, ...)``.

    Args:
        name: metric name.
        fn: ``fn(preds (B, N, T, C, H, W), target (B, N, T, C, H, W), protocol) -> (B, N, T)``.
        higher_is_better: True for PSNR/SSIM, False for distances such as LPIPS.
        overwrite: allow replacing an existing registration.
    """
    if name in _FRAME_METRICS and not overwrite:
        raise ValueError(f"frame metric {name!r} is already registered")
    _FRAME_METRICS[name] = FrameMetricSpec(name=name, fn=fn, higher_is_better=bool(higher_is_better))


def available_frame_metrics() -> tuple[str, ...]:
    """Names accepted by ``SampleAggregatedMetric(metric=...)``, sorted."""
    return tuple(sorted(_FRAME_METRICS))


def _psnr_spec(preds: Tensor, target: Tensor, protocol: MetricProtocol) -> Tensor:
    return _psnr_frames(preds, target, float(protocol.psnr_data_range))


def _ssim_spec(preds: Tensor, target: Tensor, protocol: MetricProtocol) -> Tensor:
    win = _check_win_size(protocol.ssim_win_size, preds.shape[-2], preds.shape[-1], "SampleAggregatedMetric")
    return _ssim_frames(preds, target, float(protocol.ssim_data_range), win)


register_frame_metric("psnr", _psnr_spec, higher_is_better=True)
register_frame_metric("ssim", _ssim_spec, higher_is_better=True)


def summed_frame_mse(pred: Tensor, target: Tensor) -> Tensor:
    """Squared error summed over the ``C·H·W`` pixels of each frame, in float64: ``(..., C, H, W) → (...)``. DDPAE's
    per-frame MSE (``nn.MSELoss`` times ``C·H·W``), the Moving MNIST convention of DDPAE/PhyDNet tables."""
    return (pred.double() - target.double()).pow(2).sum(dim=(-3, -2, -1))


def summed_frame_bce(pred: Tensor, target: Tensor, eps: float = 1e-4) -> Tensor:
    """Binary cross-entropy summed over the pixels of each frame, in float64: ``(..., C, H, W) → (...)``. The
    prediction is clamped to ``[eps, 1 − eps]``; the target is the [0, 1] intensity, not binarised (DDPAE's BCE)."""
    p, t = pred.double().clamp(eps, 1.0 - eps), target.double()
    return -(t * p.log() + (1.0 - t) * (1.0 - p).log()).sum(dim=(-3, -2, -1))


register_frame_metric("mse_sum", lambda preds, target, protocol: summed_frame_mse(preds, target),
                      higher_is_better=False)
register_frame_metric("bce_sum", lambda preds, target, protocol: summed_frame_bce(preds, target),
                      higher_is_better=False)


def _check_choice(value: object, choices: tuple[str, ...], what: str) -> str:
    if value not in choices:
        raise ValueError(f"expected {what} to be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value  # type: ignore[return-value]


def reduce_samples(values: Tensor, reduction: str, select: str = "sequence", higher_is_better: bool = True) -> Tensor:
    """Reduce per-sample per-frame values ``(B, N, T)`` to ``(B, T)``.

    Args:
        values: metric of each sample and frame ``(B, N, T)``.
        reduction: ``"best"``, ``"mean"`` or ``"worst"`` over the ``N`` samples.
        select: for best/worst, ``"sequence"`` picks one sample per sequence, the one with the best/worst mean
            over the ``T`` frames (as SVG's release code ranks samples), and returns its whole curve;
            ``"frame"`` picks the best/worst sample independently for every frame. Ignored for ``"mean"``.
            Ties go to the lowest sample index.
        higher_is_better: orientation of the metric.

    Returns:
        ``(B, T)``.
    """
    _check_choice(reduction, REDUCTIONS, "reduction")
    _check_choice(select, SELECTIONS, "select")
    if not isinstance(values, Tensor) or values.ndim != 3:
        shape = tuple(values.shape) if isinstance(values, Tensor) else type(values).__name__
        raise ValueError(f"expected values of shape (B, N, T), got {shape}")
    if reduction == "mean":
        return values.mean(dim=1)
    take_max = (reduction == "best") == higher_is_better
    if select == "frame":
        return values.amax(dim=1) if take_max else values.amin(dim=1)
    score = values.mean(dim=2)  # (B, N)
    index = score.argmax(dim=1) if take_max else score.argmin(dim=1)  # (B,)
    return values.gather(1, index[:, None, None].expand(-1, 1, values.shape[2])).squeeze(1)


class SampleAggregatedMetric(Metric):
    """Per-frame PSNR/SSIM curve over a dataset, best/mean/worst over samples, synchronised across processes.

    Each :meth:`update` computes the per-frame metric of every sample ``(B, N, T)``, reduces the samples of each
    sequence with :func:`reduce_samples` to ``(B, T)``, and adds the result to a per-frame running sum. The states
    (per-frame sums, per-frame counts, number of sequences) are fixed-size tensors with ``dist_reduce_fx="sum"``,
    so the result is the same however sequences are split over processes or batches, and processes that saw no
    data take part in the sync without special cases. All states are float64/int64.

    PSNR of a perfect frame is ``+inf``; before selecting and averaging, PSNR values are clamped to
    ``psnr_max`` (100 dB by default), so a perfect frame counts as 100 dB (also when ranking samples).

    Args:
        metric: name of the per-frame metric, ``"psnr"`` or ``"ssim"`` (see :func:`available_frame_metrics`).
        reduction: ``"best"``, ``"mean"`` or ``"worst"`` over the samples of a sequence (higher is better for
            PSNR and SSIM).
        protocol: metric protocol name or :class:`~vpzoo.metrics.MetricProtocol` (data ranges, SSIM window).
        select: ``"sequence"`` (default) chooses one sample per sequence by its mean over the predicted frames,
            as SVG's release code does; ``"frame"`` chooses independently per frame. Ignored for ``"mean"``.
        n_frames: if given, every update must predict exactly this many frames, and :meth:`compute` returns a
            curve of this length. If None, sequences may have any length up to ``max_frames``; frame ``t`` of the
            curve averages the sequences that have a frame ``t``.
        max_frames: capacity of the per-frame state when ``n_frames`` is None.
        psnr_max: clamp for PSNR values in dB (None: no clamp, so a perfect frame makes the mean ``+inf``).
        **kwargs: passed to ``torchmetrics.Metric`` (e.g. ``sync_on_compute``, ``process_group``).

    ``update(preds, target)``: ``preds`` ``(B, N, T, C, H, W)`` samples, or ``(B, T, C, H, W)`` for a
    deterministic model (treated as ``N = 1``); ``target`` ``(B, T, C, H, W)``.

    ``compute()`` returns a dict:
        ``"per_frame"``: float64 ``(T,)`` mean over sequences of each predicted frame's metric;
        ``"mean"``: float64 scalar, the mean of ``per_frame`` over frames;
        ``"n_sequences"``: int64 scalar, the number of sequences accumulated (over all processes).
    """

    is_differentiable = False
    full_state_update = False

    frame_sum: Tensor
    frame_count: Tensor
    n_sequences: Tensor

    def __init__(
        self,
        metric: str,
        reduction: str,
        protocol: str | MetricProtocol = "standard",
        select: str = "sequence",
        n_frames: int | None = None,
        max_frames: int = 1024,
        psnr_max: float | None = 100.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if metric not in _FRAME_METRICS:
            raise ValueError(
                f"expected metric to be one of {', '.join(map(repr, available_frame_metrics()))}, got {metric!r}"
            )
        _check_choice(reduction, REDUCTIONS, "reduction")
        _check_choice(select, SELECTIONS, "select")
        for name, value in (("n_frames", n_frames), ("max_frames", max_frames)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"expected {name} to be a positive int, got {value!r}")
        if psnr_max is not None and not (isinstance(psnr_max, (int, float)) and math.isfinite(psnr_max)):
            raise ValueError(f"expected psnr_max to be a finite number or None, got {psnr_max!r}")
        self.metric_name = metric
        self.spec = _FRAME_METRICS[metric]
        self.reduction = reduction
        self.select = select
        self.protocol = get_protocol(protocol)
        self.n_frames = n_frames
        self.psnr_max = None if psnr_max is None else float(psnr_max)
        capacity = n_frames if n_frames is not None else max_frames
        self.add_state("frame_sum", torch.zeros(capacity, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("frame_count", torch.zeros(capacity, dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state("n_sequences", torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum")

    @property
    def higher_is_better(self) -> bool:  # type: ignore[override]
        """Orientation of the aggregated metric (True for PSNR and SSIM)."""
        return self.spec.higher_is_better

    def describe(self) -> dict[str, Any]:
        """The settings behind the numbers, for recording next to them (JSON-serialisable)."""
        return {
            "metric": self.metric_name,
            "reduction": self.reduction,
            "select": self.select,
            "protocol": self.protocol.to_dict(),
            "psnr_max": self.psnr_max if self.metric_name == "psnr" else None,
        }

    def _check_inputs(self, preds: Tensor, target: Tensor) -> Tensor:
        fn = f"{type(self).__name__}.update"
        preds = _check_tensor(preds, "preds", fn)
        target = _check_tensor(target, "target", fn)
        if target.ndim != 5:
            raise ValueError(f"{fn}: expected target (B, T, C, H, W), got {target.ndim}-D shape {tuple(target.shape)}")
        if preds.ndim == 5:
            preds = preds.unsqueeze(1)
        elif preds.ndim != 6:
            raise ValueError(
                f"{fn}: expected preds (B, N, T, C, H, W) or (B, T, C, H, W), got {preds.ndim}-D shape "
                f"{tuple(preds.shape)}"
            )
        if preds.shape[0] != target.shape[0] or preds.shape[2:] != target.shape[1:]:
            raise ValueError(
                f"{fn}: preds {tuple(preds.shape)} do not match target {tuple(target.shape)}; expected preds "
                f"(B, N, T, C, H, W) with (B, T, C, H, W) equal to the target's"
            )
        if min(target.shape[2:]) == 0:
            raise ValueError(f"{fn}: expected frames with C, H, W >= 1, got target shape {tuple(target.shape)}")
        n_frames = target.shape[1]
        if self.n_frames is not None and n_frames != self.n_frames:
            raise ValueError(f"{fn}: expected {self.n_frames} frames (n_frames), got T={n_frames}")
        if n_frames > self.frame_sum.numel():
            raise ValueError(
                f"{fn}: got T={n_frames} frames but the metric holds at most {self.frame_sum.numel()}; "
                f"pass a larger max_frames"
            )
        return preds

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Add a batch: ``preds`` ``(B, N, T, C, H, W)`` or ``(B, T, C, H, W)``, ``target`` ``(B, T, C, H, W)``."""
        preds = self._check_inputs(preds, target)
        batch, _, n_frames = preds.shape[:3]
        if batch == 0 or n_frames == 0:
            return
        with torch.no_grad():
            preds, target = preds.detach(), target.detach()
            values = self.spec.fn(preds, target.unsqueeze(1).expand_as(preds), self.protocol)
            values = values.to(device=self.frame_sum.device, dtype=torch.float64)
            if self.metric_name == "psnr" and self.psnr_max is not None:
                values = values.clamp(max=self.psnr_max)
            chosen = reduce_samples(values, self.reduction, self.select, self.spec.higher_is_better)
            self.frame_sum[:n_frames] += chosen.sum(dim=0)
            self.frame_count[:n_frames] += batch
            self.n_sequences += batch

    def compute(self) -> dict[str, Tensor]:
        """``{"per_frame": (T,), "mean": (), "n_sequences": ()}``; see the class docstring."""
        if self.n_frames is not None:
            length = self.n_frames
        else:
            seen = torch.nonzero(self.frame_count > 0)
            length = int(seen.max().item()) + 1 if seen.numel() else 0
        per_frame = self.frame_sum[:length] / self.frame_count[:length]
        mean = per_frame.mean() if length else torch.tensor(float("nan"), dtype=torch.float64, device=per_frame.device)
        return {"per_frame": per_frame, "mean": mean, "n_sequences": self.n_sequences.clone()}
