"""Per-frame full-reference image metrics: PSNR and SSIM, batched in torch.

Both functions take two videos ``(B, T, C, H, W)`` and return one value per frame, ``(B, T)``. They reproduce
scikit-image exactly (to floating-point rounding; see ``tests/test_metrics.py``):

- :func:`psnr` matches ``skimage.metrics.peak_signal_noise_ratio(target_frame, pred_frame, data_range=...)``,
- :func:`ssim` matches ``skimage.metrics.structural_similarity(target_frame, pred_frame, data_range=...,
  channel_axis=...)`` with its defaults: a ``win_size x win_size`` uniform window, sample covariance
  (``use_sample_covariance=True``), ``K1=0.01``, ``K2=0.03``, SSIM averaged per channel and then over channels,
  and the ``(win_size - 1) // 2`` pixel border excluded from the mean.

Computation is done in float64 (float32 on devices without float64 support, e.g. Apple MPS) whatever the input
dtype; results are returned in ``torch.promote_types(pred.dtype, torch.float32)``.

Implementation note on SSIM. scikit-image filters with ``scipy.ndimage.uniform_filter`` (mode ``'reflect'``) and
then crops ``pad = (win_size - 1) // 2`` pixels from every border before averaging. A retained pixel ``i`` (with
``pad <= i < H - pad``) reads only inputs ``i - pad .. i + pad``, all inside the image, so the reflected values
never reach the mean: filtering in ``'valid'`` mode (no padding) gives exactly the cropped map. We therefore
compute the valid box filter directly, as a running (cumulative) sum along W, a transpose, and a running sum
along the former H axis. The SSIM mean does not depend on pixel order, so the transposed maps are never
transposed back.

``ssim(..., compile=True)`` evaluates the same formula through ``torch.compile`` instead: there the box filter is
written as ``win_size`` shifted adds along each axis, which TorchInductor fuses with the products and the SSIM
formula into a few loops over the frames (no float64 temporaries written to memory between the steps). Same
float64 arithmetic, same values (to ~1e-15), about 5-8x faster on CPU after a one-off compilation of a few seconds
per process; it needs a working C++ compiler on CPU (Triton on CUDA) and falls back to the eager path with a
warning when compilation fails.
"""

from __future__ import annotations

import numbers
import warnings

import torch
from torch import Tensor

__all__ = ["psnr", "ssim", "SSIM_K1", "SSIM_K2"]

#: SSIM stabilising constants (scikit-image / Wang et al. 2004 defaults).
SSIM_K1: float = 0.01
SSIM_K2: float = 0.03

# SSIM is evaluated in chunks of frames so that temporaries stay cache-sized on CPU (large float64 temporaries
# are much slower there) and bounded in memory on accelerators. Counted in elements (frames * C * H * W).
_CPU_CHUNK_ELEMENTS = 1 << 16
_ACCEL_CHUNK_ELEMENTS = 1 << 23
# The compiled path (fused loops, few temporaries) takes chunks of this many elements per call.
_COMPILED_CHUNK_ELEMENTS = 1 << 22


# ---------------------------------------------------------------------------------------------- validation
def _check_tensor(x: object, name: str, fn: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{fn}: expected {name} to be a torch.Tensor, got {type(x).__module__}.{type(x).__name__}")
    if x.dtype == torch.bool or x.is_complex():
        raise TypeError(f"{fn}: expected {name} to have a real (float or integer) dtype, got {x.dtype}")
    return x


def _check_video_pair(pred: object, target: object, fn: str) -> tuple[Tensor, Tensor]:
    """Validate two ``(B, T, C, H, W)`` videos of equal shape."""
    pred = _check_tensor(pred, "pred", fn)
    target = _check_tensor(target, "target", fn)
    for name, x in (("pred", pred), ("target", target)):
        if x.ndim != 5:
            raise ValueError(
                f"{fn}: expected {name} to be a 5-D video tensor (B, T, C, H, W), got {x.ndim}-D shape {tuple(x.shape)}"
            )
    if pred.shape != target.shape:
        raise ValueError(
            f"{fn}: expected pred and target to have the same shape (B, T, C, H, W), "
            f"got pred {tuple(pred.shape)} and target {tuple(target.shape)}"
        )
    if pred.shape[2] == 0 or pred.shape[3] == 0 or pred.shape[4] == 0:
        raise ValueError(f"{fn}: expected frames with C, H, W >= 1, got shape {tuple(pred.shape)}")
    return pred, target


def _check_data_range(data_range: object, fn: str) -> float:
    if isinstance(data_range, bool) or not isinstance(data_range, numbers.Real):
        raise TypeError(f"{fn}: expected data_range to be a real number, got {type(data_range).__name__}")
    value = float(data_range)
    if not (value > 0.0 and value != float("inf")):
        raise ValueError(f"{fn}: expected data_range to be a finite number > 0, got {data_range!r}")
    return value


def _check_win_size(win_size: object, height: int, width: int, fn: str) -> int:
    if isinstance(win_size, bool) or not isinstance(win_size, numbers.Integral):
        raise TypeError(f"{fn}: expected win_size to be an int, got {type(win_size).__name__}")
    win = int(win_size)
    if win < 3 or win % 2 == 0:
        raise ValueError(f"{fn}: expected win_size to be an odd integer >= 3, got {win}")
    if height < win or width < win:
        raise ValueError(
            f"{fn}: expected frames at least {win}x{win} (the SSIM window), got H={height}, W={width}; "
            f"pass a smaller odd win_size"
        )
    return win


def _compute_dtype(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "mps" else torch.float64


def _result_dtype(x: Tensor) -> torch.dtype:
    return torch.promote_types(x.dtype, torch.float32)


# ---------------------------------------------------------------------------------------------------- PSNR
def _psnr_frames(pred: Tensor, target: Tensor, data_range: float) -> Tensor:
    """PSNR over the last three dims of ``(..., C, H, W)`` tensors, in the compute dtype (unvalidated)."""
    dtype = _compute_dtype(pred.device)
    diff = pred.to(dtype) - target.to(dtype)
    mse = diff.square().mean(dim=(-3, -2, -1))
    # Same expression as skimage; mse == 0 gives data_range**2 / 0 = +inf, and log10(+inf) = +inf.
    return 10.0 * torch.log10(data_range**2 / mse)


def psnr(pred: Tensor, target: Tensor, data_range: float = 1.0) -> Tensor:
    """Per-frame peak signal-to-noise ratio in dB.

    ``10 * log10(data_range**2 / MSE)`` with the MSE taken over ``(C, H, W)`` of each frame, exactly as
    ``skimage.metrics.peak_signal_noise_ratio(target_frame, pred_frame, data_range=data_range)``.

    Identical frames (MSE = 0) give ``+inf``, as in scikit-image. Aggregate with care (e.g.
    :class:`~vpzoo.metrics.SampleAggregatedMetric` clamps PSNR to 100 dB before averaging).

    Args:
        pred: predicted video ``(B, T, C, H, W)``.
        target: ground-truth video ``(B, T, C, H, W)``.
        data_range: the dynamic range of the data (1.0 for frames in [0, 1]).

    Returns:
        PSNR per frame ``(B, T)``, dtype ``promote_types(pred.dtype, float32)``.

    Raises:
        TypeError: if an input is not a real-valued tensor or ``data_range`` is not a number.
        ValueError: on a wrong rank, a shape mismatch, empty frames, or ``data_range <= 0``.
    """
    pred, target = _check_video_pair(pred, target, "psnr")
    value = _check_data_range(data_range, "psnr")
    return _psnr_frames(pred, target, value).to(_result_dtype(pred))


# ---------------------------------------------------------------------------------------------------- SSIM
def _valid_box_sum_last(x: Tensor, win: int) -> Tensor:
    """Sum of every window of ``win`` consecutive elements along the last dim ('valid' mode, no padding)."""
    csum = x.cumsum(-1)
    n_out = x.shape[-1] - win + 1
    out = torch.empty(x.shape[:-1] + (n_out,), dtype=x.dtype, device=x.device)
    out[..., :1] = csum[..., win - 1 : win]
    torch.sub(csum[..., win:], csum[..., : n_out - 1], out=out[..., 1:])
    return out


def _ssim_chunk_fast(x: Tensor, y: Tensor, data_range: float, win: int) -> Tensor:
    """SSIM of ``(n, C, H, W)`` frames, in-place arithmetic, no autograd. Returns ``(n,)``."""
    n, c, h, w = x.shape
    dtype = _compute_dtype(x.device)
    maps = torch.empty((4, n, c, h, w), dtype=dtype, device=x.device)
    maps[0].copy_(x)
    maps[1].copy_(y)
    xd, yd = maps[0], maps[1]
    torch.mul(xd, xd, out=maps[2])
    maps[2].addcmul_(yd, yd)  # x^2 + y^2: only vx + vy is needed
    torch.mul(xd, yd, out=maps[3])

    n_px = win * win
    cov_norm = n_px / (n_px - 1)  # sample covariance, as skimage's use_sample_covariance=True
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2

    sums = _valid_box_sum_last(maps, win)
    sums = _valid_box_sum_last(sums.transpose(-1, -2), win)  # (4, n, c, w', h'): pixel order irrelevant below
    means = sums.mul_(1.0 / n_px)
    ux, uy, uss, uxy = means.unbind(0)

    uxuy = ux * uy
    a2 = uxy.sub_(uxuy).mul_(2.0 * cov_norm).add_(c2)  # 2 * vxy + C2
    a1 = uxuy.mul_(2.0).add_(c1)  # 2 * ux * uy + C1
    sq = ux.mul_(ux).add_(uy.mul_(uy))  # ux^2 + uy^2
    b2 = uss.sub_(sq).mul_(cov_norm).add_(c2)  # vx + vy + C2
    b1 = sq.add_(c1)  # ux^2 + uy^2 + C1
    s_map = a1.mul_(a2).div_(b1.mul_(b2))
    return s_map.mean(dim=(1, 2, 3))


def _ssim_chunk_shifted(x: Tensor, y: Tensor, c1: float, c2: float, win: int, dtype: torch.dtype) -> Tensor:
    """SSIM of ``(n, C, H, W)`` frames, out-of-place with box sums written as shifted adds. Returns ``(n,)``.

    The differentiable path (run eagerly when a gradient is needed) and the ``torch.compile`` path (Inductor fuses the
    shifted adds with the products and the formula) share it; same values as :func:`_ssim_chunk_fast`.
    """
    x = x.to(dtype)
    y = y.to(dtype)
    n_px = win * win
    cov_norm = n_px / (n_px - 1)
    h_out = x.shape[-2] - win + 1
    w_out = x.shape[-1] - win + 1

    def box_mean(z: Tensor) -> Tensor:
        rows = z[..., 0:w_out]
        for k in range(1, win):
            rows = rows + z[..., k : k + w_out]
        total = rows[..., 0:h_out, :]
        for k in range(1, win):
            total = total + rows[..., k : k + h_out, :]
        return total * (1.0 / n_px)

    ux, uy = box_mean(x), box_mean(y)
    uss = box_mean(x * x + y * y)  # only vx + vy is needed
    uxy = box_mean(x * y)
    uxuy = ux * uy
    sq = ux * ux + uy * uy
    s_map = (2.0 * uxuy + c1) * (2.0 * cov_norm * (uxy - uxuy) + c2) / ((sq + c1) * (cov_norm * (uss - sq) + c2))
    return s_map.mean(dim=(1, 2, 3))


_compiled_ssim_chunk = None
_compile_failed = False


def _ssim_frames_compiled(x: Tensor, y: Tensor, data_range: float, win: int, chunk: int) -> Tensor | None:
    """SSIM of ``(n, C, H, W)`` frames through the compiled chunk function; None if compilation is unavailable."""
    global _compiled_ssim_chunk, _compile_failed
    if _compile_failed:
        return None
    if _compiled_ssim_chunk is None:
        _compiled_ssim_chunk = torch.compile(_ssim_chunk_shifted, dynamic=True)
    dtype = _compute_dtype(x.device)
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    try:
        parts = [
            _compiled_ssim_chunk(x[i : i + chunk], y[i : i + chunk], c1, c2, win, dtype)
            for i in range(0, x.shape[0], chunk)
        ]
    except Exception as err:  # no C++ compiler / Triton, unsupported device: compute eagerly instead
        _compile_failed = True
        reason = str(err).splitlines()[0] if str(err) else ""
        warnings.warn(
            f"ssim(compile=True): torch.compile failed ({type(err).__name__}: {reason}); "
            "computing SSIM eagerly instead (same values, slower).",
            RuntimeWarning,
            stacklevel=4,
        )
        return None
    return torch.cat(parts)


def _ssim_frames(pred: Tensor, target: Tensor, data_range: float, win: int, compile: bool = False) -> Tensor:
    """SSIM of ``(..., C, H, W)`` tensors of equal shape, in the compute dtype (unvalidated)."""
    lead = pred.shape[:-3]
    c, h, w = pred.shape[-3:]
    x = pred.reshape(-1, c, h, w)
    y = target.reshape(-1, c, h, w)
    n = x.shape[0]
    dtype = _compute_dtype(pred.device)
    out = torch.empty(n, dtype=dtype, device=pred.device)
    if n == 0:
        return out.reshape(lead)

    per_frame = c * h * w
    budget = _CPU_CHUNK_ELEMENTS if pred.device.type == "cpu" else _ACCEL_CHUNK_ELEMENTS
    chunk = max(1, budget // per_frame)
    needs_grad = torch.is_grad_enabled() and (pred.requires_grad or target.requires_grad)
    if compile and not needs_grad:
        compiled = _ssim_frames_compiled(x, y, data_range, win, max(1, _COMPILED_CHUNK_ELEMENTS // per_frame))
        if compiled is not None:
            return compiled.reshape(lead)
    if needs_grad:
        c1 = (SSIM_K1 * data_range) ** 2
        c2 = (SSIM_K2 * data_range) ** 2
        parts = [
            _ssim_chunk_shifted(x[i : i + chunk], y[i : i + chunk], c1, c2, win, dtype) for i in range(0, n, chunk)
        ]
        return torch.cat(parts).reshape(lead)
    for start in range(0, n, chunk):
        stop = start + chunk
        out[start:stop] = _ssim_chunk_fast(x[start:stop], y[start:stop], data_range, win)
    return out.reshape(lead)


def ssim(
    pred: Tensor, target: Tensor, data_range: float = 1.0, win_size: int = 7, compile: bool = False
) -> Tensor:
    """Per-frame structural similarity, identical to scikit-image's ``structural_similarity`` defaults.

    For each frame, equivalent to ``skimage.metrics.structural_similarity(target_frame, pred_frame,
    data_range=data_range, win_size=win_size, channel_axis=0)`` on ``(C, H, W)`` arrays: uniform
    ``win_size x win_size`` window, sample covariance (N/(N-1) correction), ``K1=0.01``, ``K2=0.03``, the SSIM map
    averaged over pixels at least ``(win_size - 1) // 2`` away from the border, per channel, then over channels.
    SSIM is symmetric in its two arguments.

    Batched over all ``B * T * C`` images (processed in fixed-size chunks, never frame by frame). Differentiable
    when an input requires grad.

    Args:
        pred: predicted video ``(B, T, C, H, W)``.
        target: ground-truth video ``(B, T, C, H, W)``.
        data_range: the dynamic range of the data (1.0 for frames in [0, 1]). Note that the SVG paper's
            evaluation effectively used 2.0 (see :func:`vpzoo.metrics.get_protocol`).
        win_size: side of the uniform window, odd and >= 3; frames must be at least ``win_size x win_size``.
        compile: evaluate through ``torch.compile`` (fused loops; same float64 values, about 5-8x faster on CPU once
            compiled; the first call in a process compiles for a few seconds). Worth it for many frames, e.g. a
            whole test set; falls back to the eager path with a ``RuntimeWarning`` if compilation is unavailable.
            Ignored when a gradient is needed (the differentiable eager path is used).

    Returns:
        SSIM per frame ``(B, T)``, dtype ``promote_types(pred.dtype, float32)``.

    Raises:
        TypeError: if an input is not a real-valued tensor, or ``data_range``/``win_size`` have the wrong type.
        ValueError: on a wrong rank, a shape mismatch, ``data_range <= 0``, an even ``win_size``, or frames smaller
            than the window.
    """
    pred, target = _check_video_pair(pred, target, "ssim")
    value = _check_data_range(data_range, "ssim")
    win = _check_win_size(win_size, pred.shape[-2], pred.shape[-1], "ssim")
    if not isinstance(compile, bool):
        raise TypeError(f"ssim: compile must be a bool, got {type(compile).__name__}")
    return _ssim_frames(pred, target, value, win, compile).to(_result_dtype(pred))
