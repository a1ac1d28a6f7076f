"""Pixel-advection transformations of Finn et al. (2016), shared by SV2P and SAVP: CDNA, DNA, STP and mask
compositing. Re-derived from the papers and the documented behaviour of the official code
(sheet models-videoflow-savp-sv2p.md); no code was copied.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "RELU_SHIFT", "normalize_kernels", "symmetric_pad", "apply_image_kernels", "CDNA", "dna_transform", "STP",
    "composite_masks",
]


RELU_SHIFT = 1e-12
"""Lower bound of the CDNA/DNA kernel entries before normalisation (``relu(k - shift) + shift``)."""

def normalize_kernels(logits: Tensor, dims: tuple[int, ...], relu_shift: float = RELU_SHIFT) -> Tensor:
    """``relu(k - shift) + shift`` then divide by the sum over ``dims``: positive kernels that sum to one."""
    k = F.relu(logits - relu_shift) + relu_shift
    return k / k.sum(dim=dims, keepdim=True)


def symmetric_pad(x: Tensor, pad: int) -> Tensor:
    """TensorFlow ``"SYMMETRIC"`` padding of the last two axes: mirrored including the edge (``[b a|a b c|c b]``)."""
    if pad == 0:
        return x
    if pad > min(x.shape[-2:]):
        raise ValueError(f"symmetric padding {pad} exceeds the image size {tuple(x.shape[-2:])}")
    x = torch.cat([x[..., :pad].flip(-1), x, x[..., -pad:].flip(-1)], dim=-1)
    return torch.cat([x[..., :pad, :].flip(-2), x, x[..., -pad:, :].flip(-2)], dim=-2)


def apply_image_kernels(image: Tensor, kernels: Tensor, padding: str = "zeros") -> Tensor:
    """Convolve each sample's image with its own kernels: ``(B, C, H, W)`` × ``(B, K, k, k)`` → ``(B, K, C, H, W)``.

    The same kernel is applied to every colour channel (a depthwise convolution, as in CDNA); ``"zeros"`` is TF's
    ``"SAME"`` zero padding (CDNA/SV2P), ``"symmetric"`` mirrors the border (SAVP). One grouped convolution does
    the whole batch.
    """
    b, c, h, w = image.shape
    k = kernels.shape[-1]
    if kernels.ndim != 4 or kernels.shape[0] != b or kernels.shape[-2] != k or k % 2 != 1:
        raise ValueError(f"kernels must be (B={b}, K, k, k) with odd k, got {tuple(kernels.shape)}")
    n_k = kernels.shape[1]
    if padding == "zeros":
        x, pad = image, k // 2
    elif padding == "symmetric":
        x, pad = symmetric_pad(image, k // 2), 0
    else:
        raise ValueError(f"padding must be 'zeros' or 'symmetric', got {padding!r}")
    weight = kernels[:, None].expand(b, c, n_k, k, k).reshape(b * c * n_k, 1, k, k)
    out = F.conv2d(x.reshape(1, b * c, *x.shape[-2:]), weight, padding=pad, groups=b * c)
    return out.view(b, c, n_k, h, w).transpose(1, 2)


class CDNA(nn.Module):
    """Convolutional dynamic neural advection (Finn, Goodfellow & Levine 2016, arXiv:1605.07157).

    A linear layer maps a flattened hidden state to ``num_kernels`` kernels of ``kernel_size``² per sample. Each
    kernel is made positive (``relu(k - 1e-12) + 1e-12``), normalised to sum to one and applied to the sample's
    image, the same kernel for every colour channel. With normalised non-negative kernels each transformed image is
    a local weighted average of the input, so a kernel that is 1 at its centre reproduces the image exactly.

    Args:
        in_features: size of the flattened hidden state (``8·8·128`` for the 64-px CDNA network).
        num_kernels: kernels per sample (10 in CDNA/SV2P, 4 in SAVP).
        kernel_size: odd kernel size (5).
        identity_offset: add a one-hot centre kernel to the linear output before normalising (SAVP), so an
            untrained layer starts close to "no motion".
        padding: ``"zeros"`` (TF ``"SAME"``, CDNA/SV2P) or ``"symmetric"`` (SAVP).
        relu_shift: the positivity floor (1e-12).

    Kernel layout: the linear output is read as ``(k, k, K)`` with the kernel index fastest, as the official code
    reshapes it, then returned as ``(B, K, k, k)``.
    """

    def __init__(
        self,
        in_features: int,
        num_kernels: int = 10,
        kernel_size: int = 5,
        identity_offset: bool = False,
        padding: str = "zeros",
        relu_shift: float = RELU_SHIFT,
    ) -> None:
        super().__init__()
        if kernel_size % 2 != 1 or num_kernels < 1:
            raise ValueError(f"CDNA needs an odd kernel_size and num_kernels >= 1, got {kernel_size}, {num_kernels}")
        if padding not in ("zeros", "symmetric"):
            raise ValueError(f"padding must be 'zeros' or 'symmetric', got {padding!r}")
        self.num_kernels = num_kernels
        self.kernel_size = kernel_size
        self.identity_offset = identity_offset
        self.padding = padding
        self.relu_shift = relu_shift
        self.fc = nn.Linear(in_features, kernel_size * kernel_size * num_kernels)
        identity = torch.zeros(kernel_size, kernel_size)
        identity[kernel_size // 2, kernel_size // 2] = 1.0
        self.register_buffer("identity", identity, persistent=False)

    def kernels(self, hidden: Tensor) -> Tensor:
        """Normalised kernels ``(B, K, k, k)`` from a hidden state ``(B, in_features)``."""
        k = self.kernel_size
        logits = self.fc(hidden).view(-1, k, k, self.num_kernels).permute(0, 3, 1, 2)
        if self.identity_offset:
            logits = logits + self.identity
        return normalize_kernels(logits, dims=(-2, -1), relu_shift=self.relu_shift)

    def forward(self, hidden: Tensor, image: Tensor, num_used: int | None = None) -> Tensor:
        """Transformed images ``(B, K', C, H, W)`` of ``image (B, C, H, W)``, using the first ``num_used`` kernels."""
        kernels = self.kernels(hidden)
        if num_used is not None:
            kernels = kernels[:, :num_used]
        return apply_image_kernels(image, kernels, self.padding)


def dna_transform(image: Tensor, kernel_logits: Tensor, relu_shift: float = RELU_SHIFT) -> Tensor:
    """Dynamic neural advection: one normalised ``k×k`` kernel per pixel, applied to ``image`` with zero padding.

    ``kernel_logits`` is ``(B, k·k, H, W)`` (row-major kernel positions, as the official code orders its shifted
    copies); returns ``(B, C, H, W)``.
    """
    b, c, h, w = image.shape
    kk = kernel_logits.shape[1]
    k = int(round(kk**0.5))
    if k * k != kk or k % 2 != 1 or kernel_logits.shape[-2:] != image.shape[-2:]:
        raise ValueError(f"DNA kernels must be (B, k*k, {h}, {w}) with odd k, got {tuple(kernel_logits.shape)}")
    kernels = normalize_kernels(kernel_logits, dims=(1,), relu_shift=relu_shift)
    patches = F.unfold(image, k, padding=k // 2).view(b, c, kk, h, w)
    return (patches * kernels[:, None]).sum(dim=2)


class STP(nn.Module):
    """Spatial transformer predictor (Finn et al. 2016): ``num_transforms`` affine warps of the previous image.

    ``fc(in_features → hidden) + ReLU``, then one linear head of 6 affine parameters per transform, offset by the
    identity transform. Warping uses ``grid_sample`` (bilinear, border padding, ``align_corners=False``); the old TF
    ``spatial_transformer`` maps coordinates slightly differently (half a pixel), so ported weights would not match
    exactly.
    """

    def __init__(self, in_features: int, num_transforms: int, hidden: int = 100) -> None:
        super().__init__()
        self.num_transforms = num_transforms
        self.fc = nn.Linear(in_features, hidden)
        self.heads = nn.Linear(hidden, 6 * num_transforms)
        self.register_buffer("identity", torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]), persistent=False)

    def reset_heads(self) -> None:
        """Glorot-uniform init of each 100→6 head on its own (as separate TF layers would be), zero biases."""
        with torch.no_grad():
            for block in self.heads.weight.view(self.num_transforms, 6, -1):
                nn.init.xavier_uniform_(block)
            nn.init.zeros_(self.heads.bias)

    def forward(self, hidden: Tensor, image: Tensor) -> Tensor:
        """Warped images ``(B, K, C, H, W)``."""
        b, c, h, w = image.shape
        theta = self.heads(F.relu(self.fc(hidden))).view(b * self.num_transforms, 2, 3) + self.identity.view(2, 3)
        grid = F.affine_grid(theta, [b * self.num_transforms, c, h, w], align_corners=False)
        src = image[:, None].expand(b, self.num_transforms, c, h, w).reshape(-1, c, h, w)
        out = F.grid_sample(src, grid, mode="bilinear", padding_mode="border", align_corners=False)
        return out.view(b, self.num_transforms, c, h, w)


def composite_masks(mask_logits: Tensor, candidates: Tensor) -> Tensor:
    """Softmax the ``M`` mask logits ``(B, M, H, W)`` over masks and blend ``candidates (B, M, C, H, W)``.

    Returns ``Σ_m mask_m · candidate_m``, ``(B, C, H, W)``: a per-pixel convex combination, so candidates in [0, 1]
    give an output in [0, 1]. The counts must match: a caller that reproduces a pairing quirk (the official CDNA
    code silently drops its last candidate) slices the candidates itself.
    """
    if mask_logits.shape[1] != candidates.shape[1]:
        raise ValueError(
            f"{mask_logits.shape[1]} masks for {candidates.shape[1]} candidate images; the counts must be equal"
        )
    masks = torch.softmax(mask_logits, dim=1)
    return (masks.unsqueeze(2) * candidates).sum(dim=1)
