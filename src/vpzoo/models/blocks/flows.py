"""Normalising-flow layers of Glow (Kingma & Dhariwal 2018) as tensor2tensor's ``glow_ops.py`` builds them (VideoFlow).

Every invertible layer maps ``x -> (y, logdet)`` with ``forward(x, reverse=False)`` and back with
``forward(y, reverse=True)`` (which returns ``-logdet``); ``logdet`` is ``log |det ∂y/∂x|`` per example, shape
``(N,)``, always float32 or wider (under bf16 autocast the network inside a coupling runs in bf16, the transform and
its log-determinant do not). Tensors are ``(N, C, H, W)`` (channels first; the channel orders of the t2t code,
NHWC, are kept where they matter for porting weights: squeeze, the coupling halves, interleaved shift/scale).

- :class:`ActNorm`: per-channel bias then scale, the scale stored as ``logs / logscale_factor`` (factor 3, an
  effective ×3 learning rate), data-dependent init (zero mean, unit variance per channel) inside
  :func:`data_dependent_init`; log-det ``H·W·Σ logs``. :class:`ActNormPerStep` normalises each time step of a
  ``(N, C, T, H, W)`` tensor with its own ActNorm (t2t ``actnorm_3d``).
- :class:`InvertibleConv1x1`: LU-parametrised 1×1 convolution ``W = P·L·(U + diag(sign(s)·exp(log s)))``, P and
  sign(s) fixed, initialised from the PLU factors of a random orthogonal matrix; log-det ``H·W·Σ log|s|``.
- :func:`edge_pad` / :func:`time_pad`: zero padding plus a binary channel that is 1 on the padding (edge bias).
- :class:`FlowConv` (conv without bias + ActNorm, N(0, 0.05²) init), :class:`ZeroConv` (zero-initialised conv,
  ``(conv + b)·exp(3·logs)``), :class:`ConvStack` (t2t ``conv_stack``: 3×3 conv + ActNorm + ReLU, a 1×1 conv +
  ActNorm + ReLU or the gated unit ``tanh(a)·sigmoid(b)``, then a :class:`ZeroConv`), in 2-D or causal 3-D.
- :class:`AffineCoupling` (``z2 = (x2 + shift)·sigmoid(raw + 2)``, interleaved shift/raw channels) and
  :class:`AdditiveCoupling` (``z2 = x2 + NN(x1)``).
- :class:`FlowStep`: ActNorm → invertible 1×1 conv → coupling.
- :func:`squeeze2d` / :func:`unsqueeze2d` (space-to-depth ×2), :func:`dequantize` (``x - 0.5 + U(0, 1/2^bits)`` and
  its constant ``-D·ln 2^bits``), :func:`postprocess` (back to the 8-bit grid as t2t's ``postprocess``),
  :func:`split_mean_log_scale` and :func:`gaussian_log_prob` (the Gaussian priors of the splits).
"""

from __future__ import annotations

import contextlib
import math
from typing import Iterator, Literal, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vpzoo.models.blocks.distributions import gaussian_log_density

__all__ = [
    "ActNorm",
    "ActNormPerStep",
    "InvertibleConv1x1",
    "edge_pad",
    "time_pad",
    "FlowConv",
    "ZeroConv",
    "ConvStack",
    "AffineCoupling",
    "AdditiveCoupling",
    "FlowStep",
    "squeeze2d",
    "unsqueeze2d",
    "dequantize",
    "postprocess",
    "split_mean_log_scale",
    "gaussian_log_prob",
    "data_dependent_init",
]

_DDI_ACTIVE = False


@contextlib.contextmanager
def data_dependent_init() -> Iterator[None]:
    """Within this context every :class:`ActNorm` not yet initialised sets its bias and scale from the first batch
    it sees (zero mean, unit variance per channel of its output), as t2t's init pass on the init batch does. Under
    ``torch.distributed`` the statistics are averaged over the processes (the init batch is the union of theirs),
    so every process ends with the same parameters."""
    global _DDI_ACTIVE
    previous, _DDI_ACTIVE = _DDI_ACTIVE, True
    try:
        yield
    finally:
        _DDI_ACTIVE = previous


def _global_mean(x: Tensor, dims: list[int]) -> Tensor:
    mean = x.mean(dim=dims)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        world = torch.distributed.get_world_size()
        if world > 1:
            torch.distributed.all_reduce(mean)
            mean = mean / world
    return mean


class ActNorm(nn.Module):
    """Per-channel affine normalisation ``y = (x + b)·exp(logscale_factor·logs)`` (t2t ``actnorm``).

    Args:
        channels: C.
        logscale_factor: the stored log-scale is multiplied by it (3 in every t2t config).

    ``forward(x, reverse=False)`` takes ``(N, C, *spatial)`` and returns ``(y, logdet)`` with
    ``logdet = prod(spatial)·Σ logs`` per example ``(N,)`` (negated in reverse).
    """

    def __init__(self, channels: int, logscale_factor: float = 3.0) -> None:
        super().__init__()
        self.logscale_factor = float(logscale_factor)
        self.bias = nn.Parameter(torch.zeros(channels))
        self.logs = nn.Parameter(torch.zeros(channels))
        self.register_buffer("initialized", torch.tensor(False))

    @torch.no_grad()
    def initialize(self, x: Tensor) -> None:
        """Data-dependent init from ``x (N, C, *spatial)``: the output has zero mean and unit variance per channel
        (t2t: ``b = -mean``, ``logs = log(1 / (sqrt(mean((x + b)²)) + 1e-6)) / logscale_factor``)."""
        dims = [0, *range(2, x.ndim)]
        x = x.detach().float()
        mean = _global_mean(x, dims)
        centred = x - mean.view(1, -1, *([1] * (x.ndim - 2)))
        var = _global_mean(centred**2, dims)
        self.bias.copy_(-mean)
        self.logs.copy_(torch.log(1.0 / (var.sqrt() + 1e-6)) / self.logscale_factor)
        self.initialized.fill_(True)

    def forward(self, x: Tensor, reverse: bool = False) -> tuple[Tensor, Tensor]:
        if _DDI_ACTIVE and not reverse and not bool(self.initialized):
            self.initialize(x)
        shape = (1, -1, *([1] * (x.ndim - 2)))
        logs = self.logs * self.logscale_factor
        pixels = math.prod(x.shape[2:])
        logdet = (logs.to(torch.promote_types(logs.dtype, torch.float32)).sum() * pixels).expand(x.shape[0])
        if not reverse:
            return (x + self.bias.view(shape)) * logs.exp().view(shape), logdet
        return x * (-logs).exp().view(shape) - self.bias.view(shape), -logdet


class ActNormPerStep(nn.Module):
    """One :class:`ActNorm` per time step of ``(N, C, T, H, W)`` (t2t ``actnorm_3d``: 2·C·T parameters)."""

    def __init__(self, channels: int, steps: int, logscale_factor: float = 3.0) -> None:
        super().__init__()
        self.norms = nn.ModuleList(ActNorm(channels, logscale_factor) for _ in range(steps))

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[2] != len(self.norms):
            raise ValueError(f"ActNormPerStep was built for {len(self.norms)} time steps, got {x.shape[2]} "
                             f"(input {tuple(x.shape)}, read as (N, C, T, H, W))")
        return torch.stack([norm(x[:, :, t])[0] for t, norm in enumerate(self.norms)], dim=2)


class InvertibleConv1x1(nn.Module):
    """LU-parametrised invertible 1×1 convolution (t2t ``invertible_1x1_conv``).

    ``W = P·L·(U + diag(sign_s·exp(log_s)))`` with L unit lower triangular, U strictly upper triangular; ``P`` and
    ``sign_s`` are fixed buffers, ``lower``, ``upper`` and ``log_s`` are learned (``lower``/``upper`` are full C×C
    variables of which the masked triangles are used, as in t2t). Init: the PLU factors of a random orthogonal
    matrix (QR of a uniform random matrix). ``y = Wᵀ x`` per pixel (t2t's NHWC ``conv2d`` with kernel ``W``);
    ``logdet = H·W·Σ log_s``. W is always assembled in float32 or wider; the reverse pass uses ``W⁻¹``.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        random = torch.rand(channels, channels, device="cpu", dtype=torch.float64)
        q = torch.linalg.qr(random)[0]
        p, lower, upper = torch.linalg.lu(q)
        s = torch.diagonal(upper)
        self.register_buffer("permutation", torch.empty(channels, channels))
        self.register_buffer("sign_s", torch.empty(channels))
        self.register_buffer("lower_mask", torch.empty(channels, channels))
        self.lower = nn.Parameter(torch.empty(channels, channels))
        self.upper = nn.Parameter(torch.empty(channels, channels))
        self.log_s = nn.Parameter(torch.empty(channels))
        with torch.no_grad():
            self.permutation.copy_(p)
            self.sign_s.copy_(torch.sign(s))
            self.lower_mask.copy_(torch.tril(torch.ones(channels, channels), -1))
            self.lower.copy_(lower)
            self.upper.copy_(torch.triu(upper, 1))
            self.log_s.copy_(s.abs().log())

    def weight(self) -> Tensor:
        """W (C, C) in float32 or wider (the dtype of the parameters when they are wider)."""
        dtype = torch.promote_types(self.lower.dtype, torch.float32)
        mask = self.lower_mask.to(dtype)
        eye = torch.eye(mask.shape[0], dtype=dtype, device=mask.device)
        lower = self.lower.to(dtype) * mask + eye
        upper = self.upper.to(dtype) * mask.t() + torch.diag(self.sign_s.to(dtype) * self.log_s.to(dtype).exp())
        return self.permutation.to(dtype) @ (lower @ upper)

    def forward(self, x: Tensor, reverse: bool = False) -> tuple[Tensor, Tensor]:
        with torch.autocast(x.device.type, enabled=False):
            w = self.weight()
            logdet = (self.log_s.to(w.dtype).sum() * (x.shape[2] * x.shape[3])).expand(x.shape[0])
            if reverse:
                w, logdet = torch.linalg.inv(w), -logdet
            x = x.to(torch.promote_types(x.dtype, w.dtype))
            y = F.conv2d(x, w.t().to(x.dtype)[:, :, None, None])
        return y, logdet


def edge_pad(x: Tensor, kernel: tuple[int, int], dilation: int = 1) -> Tensor:
    """Zero-pad ``x (N, C, H, W)`` for a "SAME" ``kernel`` convolution and append a channel that is 1 on the padding
    (t2t ``add_edge_bias``): ``(N, C + 1, H + 2a, W + 2b)``. A 1×1 kernel returns ``x`` unchanged."""
    kh, kw = kernel
    if kh == 1 and kw == 1:
        return x
    a, b = (kh - 1) * dilation // 2, (kw - 1) * dilation // 2
    n, _, h, w = x.shape
    border = F.pad(x.new_zeros(1, 1, h, w), (b, b, a, a), value=1.0).expand(n, -1, -1, -1)
    return torch.cat([F.pad(x, (b, b, a, a)), border], dim=1)


def time_pad(x: Tensor, kernel: tuple[int, int, int], dilation: int = 1) -> Tensor:
    """Causal padding of ``x (N, C, T, H, W)`` for a ``kernel (kt, kh, kw)`` convolution with spatial ``dilation``
    (t2t ``time_pad``): ``kt - 1`` steps on the left of the time axis only, "SAME" in space, and a binary channel that
    is 1 on the padding **prepended**: ``(N, C + 1, T + kt - 1, H + 2a, W + 2b)``. A 1×1×1 kernel returns ``x``."""
    kt, kh, kw = kernel
    if kt == kh == kw == 1:
        return x
    a, b, c = (kh - 1) * dilation // 2, (kw - 1) * dilation // 2, kt - 1
    n, _, t, h, w = x.shape
    pad = (b, b, a, a, c, 0)
    flag = F.pad(x.new_zeros(1, 1, t, h, w), pad, value=1.0).expand(n, -1, -1, -1, -1)
    return torch.cat([flag, F.pad(x, pad)], dim=1)


class FlowConv(nn.Module):
    """t2t ``conv`` with ActNorm: edge-bias padding, a convolution without bias (weights N(0, 0.05²)), ActNorm
    (per time step in 3-D).

    Args:
        in_channels, out_channels: channels (the edge-bias channel is added internally).
        kernel: ``(kh, kw)`` for 2-D, ``(kt, kh, kw)`` for causal 3-D on ``(N, C, T, H, W)``.
        dilation: spatial dilation (3-D only, as t2t's latent network).
        steps: time steps of the 3-D input (one ActNorm each).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: tuple[int, ...], dilation: int = 1,
                 steps: int = 1) -> None:
        super().__init__()
        self.kernel = tuple(kernel)
        self.dilation = dilation
        padded = in_channels + (0 if all(k == 1 for k in self.kernel) else 1)
        if len(self.kernel) == 2:
            self.conv = nn.Conv2d(padded, out_channels, self.kernel, bias=False)
            self.norm = ActNorm(out_channels)
        else:
            self.conv = nn.Conv3d(padded, out_channels, self.kernel, bias=False, dilation=(1, dilation, dilation))
            self.norm = ActNormPerStep(out_channels, steps)
        nn.init.normal_(self.conv.weight, 0.0, 0.05)

    def forward(self, x: Tensor) -> Tensor:
        if len(self.kernel) == 2:
            return self.norm(self.conv(edge_pad(x, self.kernel)))[0]
        return self.norm(self.conv(time_pad(x, self.kernel, self.dilation)))


class ZeroConv(nn.Module):
    """t2t ``conv(..., apply_actnorm=False, conv_init="zeros")``: ``(conv(edge_pad(x)) + b)·exp(3·logs)`` with the
    weights, ``b`` and ``logs`` all zero at init, so the layer outputs 0 until it learns (2-D, or causal 3-D with a
    3-entry ``kernel``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: tuple[int, ...] = (3, 3), dilation: int = 1,
                 logscale_factor: float = 3.0) -> None:
        super().__init__()
        self.kernel = tuple(kernel)
        self.dilation = dilation
        self.logscale_factor = logscale_factor
        padded = in_channels + (0 if all(k == 1 for k in self.kernel) else 1)
        if len(self.kernel) == 2:
            self.conv = nn.Conv2d(padded, out_channels, self.kernel, bias=False)
        else:
            self.conv = nn.Conv3d(padded, out_channels, self.kernel, bias=False, dilation=(1, dilation, dilation))
        nn.init.zeros_(self.conv.weight)
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.logs = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x: Tensor) -> Tensor:
        x = edge_pad(x, self.kernel) if len(self.kernel) == 2 else time_pad(x, self.kernel, self.dilation)
        y = self.conv(x)
        shape = (1, -1) + (1,) * (y.ndim - 2)
        return (y + self.bias.view(shape)) * (self.logs * self.logscale_factor).exp().view(shape)


class ConvStack(nn.Module):
    """t2t ``conv_stack``: ``FlowConv(3×3) → ReLU``, then ``FlowConv(1×1) → ReLU`` (``activation="relu"``) or
    ``tanh(FlowConv_a(1×1))·sigmoid(FlowConv_b(1×1))`` (``"gatu"``), then a :class:`ZeroConv` (3×3) to
    ``out_channels``. With ``time_kernel`` set it works on ``(N, C, T, H, W)`` with causal ``(time_kernel, 3, 3)``
    convolutions dilated by ``dilation`` in space (the latent prior of VideoFlow); else on ``(N, C, H, W)``."""

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int,
                 activation: Literal["relu", "gatu"] = "relu", time_kernel: Optional[int] = None,
                 dilation: int = 1, steps: int = 1) -> None:
        super().__init__()
        if activation not in ("relu", "gatu"):
            raise ValueError(f"activation must be 'relu' or 'gatu', got {activation!r}")
        self.activation = activation
        if time_kernel is None:
            first, second = (3, 3), (1, 1)
            extra: dict = {}
        else:
            first, second = (time_kernel, 3, 3), (1, 1, 1)
            extra = {"dilation": dilation}
        self.first = FlowConv(in_channels, mid_channels, first, steps=steps, **extra)
        self.second = FlowConv(mid_channels, mid_channels, second, steps=steps, **extra)
        self.gate = FlowConv(mid_channels, mid_channels, second, steps=steps, **extra) if activation == "gatu" else None
        self.out = ZeroConv(mid_channels, out_channels, first, **extra)

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu(self.first(x))
        if self.gate is None:
            h = F.relu(self.second(h))
        else:
            h = torch.tanh(self.second(h)) * torch.sigmoid(self.gate(h))
        return self.out(h)


class AffineCoupling(nn.Module):
    """t2t ``affine_coupling``: ``x1, x2 = halves(x)``; ``h = NN(x1)`` with C channels, ``shift = h[0::2]``,
    ``scale = sigmoid(h[1::2] + 2)``; ``z2 = (x2 + shift)·scale``; ``logdet = Σ log scale``. The network may run in
    bf16 under autocast; its output is cast to ``x``'s dtype before the transform."""

    def __init__(self, channels: int, width: int, activation: Literal["relu", "gatu"] = "relu") -> None:
        super().__init__()
        if channels % 2:
            raise ValueError(f"coupling needs an even number of channels, got {channels}")
        self.nn = ConvStack(channels // 2, width, channels, activation)

    def forward(self, x: Tensor, reverse: bool = False) -> tuple[Tensor, Tensor]:
        x1, x2 = x.chunk(2, dim=1)
        h = self.nn(x1).to(x.dtype)
        shift, scale = h[:, 0::2], torch.sigmoid(h[:, 1::2] + 2.0)
        logdet = torch.log(scale).sum(dim=(1, 2, 3)).to(torch.promote_types(x.dtype, torch.float32))
        if not reverse:
            return torch.cat([x1, (x2 + shift) * scale], dim=1), logdet
        return torch.cat([x1, x2 / scale - shift], dim=1), -logdet


class AdditiveCoupling(nn.Module):
    """t2t ``additive_coupling``: ``z2 = x2 + NN(x1)`` (the network outputs C/2 channels); ``logdet = 0``."""

    def __init__(self, channels: int, width: int, activation: Literal["relu", "gatu"] = "relu") -> None:
        super().__init__()
        if channels % 2:
            raise ValueError(f"coupling needs an even number of channels, got {channels}")
        self.nn = ConvStack(channels // 2, width, channels // 2, activation)

    def forward(self, x: Tensor, reverse: bool = False) -> tuple[Tensor, Tensor]:
        x1, x2 = x.chunk(2, dim=1)
        shift = self.nn(x1).to(x.dtype)
        logdet = x.new_zeros(x.shape[0], dtype=torch.promote_types(x.dtype, torch.float32))
        return torch.cat([x1, x2 - shift if reverse else x2 + shift], dim=1), logdet


class FlowStep(nn.Module):
    """One Glow step (t2t ``revnet_step``): ActNorm → invertible 1×1 conv → affine or additive coupling (the
    reverse pass runs them in the reverse order)."""

    def __init__(self, channels: int, width: int, coupling: Literal["affine", "additive"] = "affine",
                 activation: Literal["relu", "gatu"] = "relu") -> None:
        super().__init__()
        if coupling not in ("affine", "additive"):
            raise ValueError(f"coupling must be 'affine' or 'additive', got {coupling!r}")
        self.actnorm = ActNorm(channels)
        self.invconv = InvertibleConv1x1(channels)
        self.coupling = (AffineCoupling if coupling == "affine" else AdditiveCoupling)(channels, width, activation)

    def forward(self, x: Tensor, reverse: bool = False) -> tuple[Tensor, Tensor]:
        layers = [self.actnorm, self.invconv, self.coupling]
        logdet = x.new_zeros(x.shape[0], dtype=torch.promote_types(x.dtype, torch.float32))
        for layer in reversed(layers) if reverse else layers:
            x, ld = layer(x, reverse=reverse)
            logdet = logdet + ld
        return x, logdet


def squeeze2d(x: Tensor, factor: int = 2) -> Tensor:
    """Space-to-depth ``(N, C, H, W) -> (N, C·f², H/f, W/f)``, channel ``c·f² + dy·f + dx`` (t2t ``squeeze``)."""
    n, c, h, w = x.shape
    if h % factor or w % factor:
        raise ValueError(f"squeeze needs H and W divisible by {factor}, got {h}x{w}")
    x = x.reshape(n, c, h // factor, factor, w // factor, factor).permute(0, 1, 3, 5, 2, 4)
    return x.reshape(n, c * factor * factor, h // factor, w // factor)


def unsqueeze2d(x: Tensor, factor: int = 2) -> Tensor:
    """The inverse of :func:`squeeze2d`: ``(N, C·f², H, W) -> (N, C, H·f, W·f)``."""
    n, c, h, w = x.shape
    x = x.reshape(n, c // (factor * factor), factor, factor, h, w).permute(0, 1, 4, 2, 5, 3)
    return x.reshape(n, c // (factor * factor), h * factor, w * factor)


def dequantize(x: Tensor, n_bits: int = 8, noise: Optional[Tensor] = None,
               generator: Optional[torch.Generator] = None) -> tuple[Tensor, Tensor]:
    """t2t's preprocessing and ``uniform_binning_correction``: ``x (N, C, H, W)`` in [0, 1] (the 8-bit grid k/255)
    becomes ``x - 0.5 + u`` with ``u ~ U(0, 1/2^bits)`` (or the given ``noise``, same shape, in [0, 1/2^bits)), and
    the objective starts at ``-C·H·W·ln 2^bits`` per example ``(N,)``."""
    bins = 2**n_bits
    if noise is None:
        noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) / bins
    constant = -math.log(bins) * math.prod(x.shape[1:])
    return x - 0.5 + noise, torch.full((x.shape[0],), constant, device=x.device,
                                       dtype=torch.promote_types(x.dtype, torch.float32))


def postprocess(x: Tensor, n_bits: int = 8) -> Tensor:
    """t2t ``postprocess``: flow outputs in [-0.5, 0.5] to the 8-bit grid, returned in [0, 1] (``uint8 / 255``):
    non-finite values become 1, clip to [-0.5, 0.5], ``(x + 0.5)·2^bits`` clipped to [0, 255] and truncated."""
    x = torch.where(torch.isfinite(x), x, torch.ones_like(x)).clamp(-0.5, 0.5)
    return torch.floor(((x + 0.5) * 2**n_bits).clamp(0, 2**n_bits - 1)) / (2**n_bits - 1)


def split_mean_log_scale(h: Tensor) -> tuple[Tensor, Tensor]:
    """Interleaved Gaussian parameters of t2t's prior heads: ``mean = h[:, 0::2]``, ``log_scale = h[:, 1::2]``."""
    return h[:, 0::2], h[:, 1::2]


def gaussian_log_prob(z: Tensor, mean: Tensor, log_scale: Tensor) -> Tensor:
    """``Σ log N(z; mean, exp(log_scale))`` over all but the first dimension, ``(N,)``, in float32 or wider."""
    return gaussian_log_density(z, mean, log_scale).flatten(1).sum(1)
