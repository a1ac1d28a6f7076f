"""Closed-form terms of diagonal-Gaussian latents."""

from __future__ import annotations

import torch
from torch import Tensor


__all__ = ["gaussian_kl"]


def gaussian_kl(mu_q: Tensor, logvar_q: Tensor, mu_p: Tensor, logvar_p: Tensor) -> Tensor:
    """Elementwise KL(N(mu_q, σ_q²) ‖ N(mu_p, σ_p²)) of diagonal Gaussians (same shape as the inputs).

    Computed in at least float32: under bfloat16/float16 autocast (``--trainer.precision bf16-mixed``) the heads
    return half-precision tensors, whose 8-bit mantissa cannot resolve the small per-dimension KL terms (it turns
    them negative), so the inputs are upcast first.
    """
    dtype = torch.promote_types(mu_q.dtype, torch.float32)
    mu_q, logvar_q, mu_p, logvar_p = (t.to(dtype) for t in (mu_q, logvar_q, mu_p, logvar_p))
    return 0.5 * (logvar_p - logvar_q + (logvar_q.exp() + (mu_q - mu_p) ** 2) / logvar_p.exp() - 1.0)
