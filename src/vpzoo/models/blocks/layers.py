"""TensorFlow-compatible layers (slim/contrib semantics): ``"SAME"`` convolutions and layer norm."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["tf_same_padding", "Conv2dSame", "ConvTranspose2dSame", "LayerNorm2d"]


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
