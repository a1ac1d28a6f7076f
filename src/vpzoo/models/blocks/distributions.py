"""Closed-form terms of diagonal Gaussians: the KL between two, and the log-density; and the upcast that keeps
precision-sensitive quantities out of half precision under autocast."""

from __future__ import annotations

import math

import torch
from torch import Tensor


__all__ = ["float32_or_wider", "gaussian_kl", "gaussian_log_density"]


def float32_or_wider(x: Tensor) -> Tensor:
    """``x`` in float32, or in its own dtype when that is wider (float64 stays float64; float32 is returned as is).

    For what half precision cannot hold under bf16/float16 autocast: sums over every pixel or latent, likelihoods,
    running sums of small increments (DDPAE's poses), whatever a layer's half-precision output feeds into them.
    """
    return x.to(torch.promote_types(x.dtype, torch.float32))


def gaussian_kl(mu_q: Tensor, logvar_q: Tensor, mu_p: Tensor, logvar_p: Tensor) -> Tensor:
    """Elementwise KL(N(mu_q, σ_q²) ‖ N(mu_p, σ_p²)) of diagonal Gaussians (same shape as the inputs).

    Computed in at least float32: under bfloat16/float16 autocast (``--trainer.precision bf16-mixed``) the heads
    return half-precision tensors, whose 8-bit mantissa cannot resolve the small per-dimension KL terms (it turns
    them negative), so the inputs are upcast first.
    """
    dtype = torch.promote_types(mu_q.dtype, torch.float32)
    mu_q, logvar_q, mu_p, logvar_p = (t.to(dtype) for t in (mu_q, logvar_q, mu_p, logvar_p))
    return 0.5 * (logvar_p - logvar_q + (logvar_q.exp() + (mu_q - mu_p) ** 2) / logvar_p.exp() - 1.0)


def gaussian_log_density(x: Tensor, mean: Tensor | float, log_scale: Tensor | float) -> Tensor:
    """Elementwise ``log N(x; mean, exp(log_scale)²)``, constants included (broadcasting), in at least float32.

    ``log_scale`` is log σ (not log σ²). Half-precision inputs (bf16 autocast) are upcast first: their mantissa is too
    coarse for sums over every pixel or latent. The one Gaussian log-density of the zoo: DDPAE's pixel likelihood and
    KL samples, Enc-ODE-Dec's pixel likelihood and VideoFlow's latent priors use it.
    """
    dtype = torch.promote_types(x.dtype, torch.float32)
    for other in (mean, log_scale):
        if isinstance(other, Tensor):
            dtype = torch.promote_types(dtype, other.dtype)
    x = x.to(dtype)
    mean = torch.as_tensor(mean, device=x.device).to(dtype)
    log_scale = torch.as_tensor(log_scale, device=x.device).to(dtype)
    return -0.5 * ((x - mean) * torch.exp(-log_scale)) ** 2 - log_scale - 0.5 * math.log(2.0 * math.pi)
