"""TensorFlow-compatible layers (slim/contrib semantics): ``"SAME"`` convolutions and layer norm."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["tf_same_padding", "Conv2dSame", "ConvTranspose2dSame", "LayerNorm2d", "tf_bilinear_upsample2x"]


def tf_same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """``(before, after)`` padding of TensorFlow's ``"SAME"`` convolution along one axis of length ``size``.

    The output has ``ceil(size / stride)`` entries; an odd total padding puts the extra row/column *after*.
    """
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class Conv2dSame(nn.Conv2d):
    """``nn.Conv2d`` with TensorFlow ``"SAME"`` zero padding (asymmetric for strided convs, as TF pads)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, bias: bool = True):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding=0, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        top, bottom = tf_same_padding(x.shape[-2], self.kernel_size[0], self.stride[0])
        left, right = tf_same_padding(x.shape[-1], self.kernel_size[1], self.stride[1])
        if top == bottom and left == right:
            return F.conv2d(x, self.weight, self.bias, self.stride, (top, left))
        return F.conv2d(F.pad(x, (left, right, top, bottom)), self.weight, self.bias, self.stride)


class ConvTranspose2dSame(nn.ConvTranspose2d):
    """``nn.ConvTranspose2d`` with TensorFlow ``"SAME"`` semantics: the output is ``stride`` × the input.

    TF's transposed conv is the gradient of a ``"SAME"`` conv whose (asymmetric) padding puts the extra row after;
    that is PyTorch's unpadded transposed conv cropped to ``[before, before + stride·n)`` per axis.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, bias: bool = True):
        if kernel_size < stride:
            raise ValueError(f"ConvTranspose2dSame needs kernel_size >= stride, got {kernel_size} < {stride}")
        super().__init__(in_channels, out_channels, kernel_size, stride, padding=0, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        y = super().forward(x)
        h, w = x.shape[-2] * self.stride[0], x.shape[-1] * self.stride[1]
        top = (self.kernel_size[0] - self.stride[0]) // 2
        left = (self.kernel_size[1] - self.stride[1]) // 2
        return y[..., top : top + h, left : left + w]


class LayerNorm2d(nn.GroupNorm):
    """Layer norm as ``tf.contrib.layers.layer_norm`` applies it to an image batch.

    Mean and variance are taken over all of ``(C, H, W)`` of each sample; the learned gain and bias are per channel
    (that is ``GroupNorm`` with one group). TF's ``variance_epsilon`` is 1e-12.
    """

    def __init__(self, channels: int, eps: float = 1e-12) -> None:
        super().__init__(1, channels, eps=eps)


def tf_bilinear_upsample2x(x: Tensor) -> Tensor:
    """×2 bilinear upsampling of ``x (N, C, H, W)`` as A. Lee's ``upsample2d`` does it in TensorFlow.

    A depthwise transposed convolution with the 4×4 bilinear kernel ``outer(w, w)``, ``w = (1/4, 3/4, 3/4, 1/4)``,
    and TF ``"SAME"`` cropping: interior pixels equal ``F.interpolate(..., mode="bilinear",
    align_corners=False)``; at the border the missing neighbour counts as zero (the edge row is ``3/4`` of the
    input), where ``F.interpolate`` would clamp.
    """
    n, c, h, w = x.shape
    taps = torch.tensor([0.25, 0.75, 0.75, 0.25], dtype=x.dtype, device=x.device)
    kernel = (taps[:, None] * taps[None, :]).expand(c, 1, 4, 4)
    y = F.conv_transpose2d(x, kernel, stride=2, groups=c)  # (N, C, 2H + 2, 2W + 2)
    return y[..., 1 : 1 + 2 * h, 1 : 1 + 2 * w]
