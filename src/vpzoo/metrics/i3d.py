"""The I3D feature network of FVD: the StyleGAN-V TorchScript port of TF-Hub's ``deepmind/i3d-kinetics-400/1``.

FVD (Unterthiner et al. 2018, arXiv:1812.01717) embeds 16-frame clips with the Kinetics-400 I3D network published
on TF-Hub and uses its 400 logits (``RGB/inception_i3d/Mean:0``). vpzoo uses the TorchScript port made for
StyleGAN-V (``i3d_torchscript.pt``), shown to reproduce the TF-Hub module to float precision (L2 difference
2.6e-4 on four clips; FVD 10.138085 vs 10.138084) in universome/fvd-comparison. The weights are resolved by
:mod:`vpzoo.metrics.weights` (name ``"i3d_torchscript"``; ``$VPZOO_I3D_PATH`` points at a local copy).

The TorchScript module is called as ``detector(x, rescale=False, resize=False, return_features=True)`` with
``x`` ``(B, 3, T, 224, 224)`` float32 in [-1, 1]: that is exactly the configuration in which the port was checked
against TF-Hub (universome/fvd-comparison ``compare_models.py``). Resizing and scaling are done by vpzoo itself
(:func:`vpzoo.metrics.fvd.preprocess_clips`, the reference implementation's preprocessing), never inside the
network. The result is ``(B, 400)`` logits.

:class:`InceptionI3d` is an independent plain-PyTorch definition of the same architecture (Carreira & Zisserman
2017, Inception-v1 inflated to 3-D, TensorFlow "SAME" padding, BatchNorm eps 1e-3, temporal mean of the logits),
with the TorchScript call signature above. It is used to build random-weight stand-ins saved in the real file
format (``torch.jit.save``) for offline tests and CPU benchmarks; its parameter names are vpzoo's own, so it
does not load the StyleGAN-V file's weights (that file is itself the network).
"""

from __future__ import annotations

import os
from typing import List

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vpzoo.metrics.weights import I3D_TORCHSCRIPT, ResolvedWeights, WeightSpec, resolve_weights

__all__ = [
    "I3D_FEATURE_DIM",
    "I3D_INPUT_SIZE",
    "I3D_MIN_FRAMES",
    "I3DFeatureExtractor",
    "InceptionI3d",
    "load_i3d",
    "save_torchscript",
]

#: Number of features (Kinetics-400 logits).
I3D_FEATURE_DIM: int = 400
#: Spatial input size of the network.
I3D_INPUT_SIZE: int = 224
#: Fewest frames the network accepts (the final 2x7x7 average pool needs two time steps after /8 striding).
I3D_MIN_FRAMES: int = 9


# ------------------------------------------------------------------------------------------------ architecture
def _same_padding(size: int, kernel: int, stride: int) -> List[int]:
    """TensorFlow "SAME" padding ``[before, after]`` for one dimension."""
    out = (size + stride - 1) // stride
    total = max((out - 1) * stride + kernel - size, 0)
    return [total // 2, total - total // 2]


def _pad_same(x: Tensor, kernel: List[int], stride: List[int], value: float) -> Tensor:
    pt = _same_padding(x.shape[2], kernel[0], stride[0])
    ph = _same_padding(x.shape[3], kernel[1], stride[1])
    pw = _same_padding(x.shape[4], kernel[2], stride[2])
    if pt[0] + pt[1] + ph[0] + ph[1] + pw[0] + pw[1] == 0:
        return x
    return F.pad(x, [pw[0], pw[1], ph[0], ph[1], pt[0], pt[1]], value=value)


class Unit3D(nn.Module):
    """Conv3d with TF "SAME" padding, then BatchNorm (eps 1e-3) and ReLU (or a plain biased conv for logits)."""

    def __init__(
        self, in_ch: int, out_ch: int, kernel: List[int], stride: List[int], bn_act: bool = True
    ) -> None:
        super().__init__()
        self.kernel = list(kernel)
        self.stride = list(stride)
        self.conv = nn.Conv3d(in_ch, out_ch, self.kernel, self.stride, padding=0, bias=not bn_act)
        self.bn = nn.BatchNorm3d(out_ch, eps=1e-3, momentum=0.01) if bn_act else nn.Identity()
        self.bn_act = bn_act

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(_pad_same(x, self.kernel, self.stride, 0.0))
        if self.bn_act:
            x = F.relu(self.bn(x))
        return x


class MaxPool3dSame(nn.Module):
    """Max pooling with TF "SAME" padding (padded positions never win)."""

    def __init__(self, kernel: List[int], stride: List[int]) -> None:
        super().__init__()
        self.kernel = list(kernel)
        self.stride = list(stride)

    def forward(self, x: Tensor) -> Tensor:
        x = _pad_same(x, self.kernel, self.stride, float("-inf"))
        return F.max_pool3d(x, self.kernel, self.stride)


class Mixed(nn.Module):
    """Inception block: 1x1x1 | 1x1x1 -> 3x3x3 | 1x1x1 -> 3x3x3 | 3x3x3 max pool -> 1x1x1, concatenated."""

    def __init__(self, in_ch: int, b0: int, b1a: int, b1b: int, b2a: int, b2b: int, b3: int) -> None:
        super().__init__()
        one, three = [1, 1, 1], [3, 3, 3]
        self.branch0 = Unit3D(in_ch, b0, one, one)
        self.branch1 = nn.Sequential(Unit3D(in_ch, b1a, one, one), Unit3D(b1a, b1b, three, one))
        self.branch2 = nn.Sequential(Unit3D(in_ch, b2a, one, one), Unit3D(b2a, b2b, three, one))
        self.branch3 = nn.Sequential(MaxPool3dSame(three, one), Unit3D(in_ch, b3, one, one))
        self.out_channels = b0 + b1b + b2b + b3

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], dim=1)


# (name, b0, b1a, b1b, b2a, b2b, b3) of the Inception-v1 blocks, as in the I3D paper / DeepMind kinetics-i3d.
_MIXED = {
    "mixed_3b": (64, 96, 128, 16, 32, 32),
    "mixed_3c": (128, 128, 192, 32, 96, 64),
    "mixed_4b": (192, 96, 208, 16, 48, 64),
    "mixed_4c": (160, 112, 224, 24, 64, 64),
    "mixed_4d": (128, 128, 256, 24, 64, 64),
    "mixed_4e": (112, 144, 288, 32, 64, 64),
    "mixed_4f": (256, 160, 320, 32, 128, 128),
    "mixed_5b": (256, 160, 320, 32, 128, 128),
    "mixed_5c": (384, 192, 384, 48, 128, 128),
}


class InceptionI3d(nn.Module):
    """Kinetics I3D (RGB stream) in plain PyTorch, with the StyleGAN-V TorchScript call signature.

    ``forward(x, rescale=False, resize=False, return_features=False)``: ``x`` ``(B, 3, T, 224, 224)`` in [-1, 1]
    with ``T >= 9``; returns the ``(B, num_classes)`` logits averaged over time when ``return_features`` is
    true, else their softmax. ``rescale``/``resize`` (input scaling and resizing inside the network) are not
    supported: vpzoo preprocesses clips itself and always passes ``False``.

    Args:
        num_classes: number of logits (400 for Kinetics-400).
        width_mult: multiplies every hidden channel count (1.0 is the real network; tests use small values).
    """

    def __init__(self, num_classes: int = I3D_FEATURE_DIM, width_mult: float = 1.0) -> None:
        super().__init__()
        if not width_mult > 0:
            raise ValueError(f"width_mult must be > 0, got {width_mult!r}")

        def w(c: int) -> int:
            return max(1, int(round(c * width_mult)))

        self.conv3d_1a_7x7 = Unit3D(3, w(64), [7, 7, 7], [2, 2, 2])
        self.maxpool3d_2a_3x3 = MaxPool3dSame([1, 3, 3], [1, 2, 2])
        self.conv3d_2b_1x1 = Unit3D(w(64), w(64), [1, 1, 1], [1, 1, 1])
        self.conv3d_2c_3x3 = Unit3D(w(64), w(192), [3, 3, 3], [1, 1, 1])
        self.maxpool3d_3a_3x3 = MaxPool3dSame([1, 3, 3], [1, 2, 2])
        ch = w(192)
        blocks = {}
        for name, widths in _MIXED.items():
            blocks[name] = Mixed(ch, *(w(c) for c in widths))
            ch = blocks[name].out_channels
        self.mixed_3b, self.mixed_3c = blocks["mixed_3b"], blocks["mixed_3c"]
        self.maxpool3d_4a_3x3 = MaxPool3dSame([3, 3, 3], [2, 2, 2])
        self.mixed_4b, self.mixed_4c, self.mixed_4d = blocks["mixed_4b"], blocks["mixed_4c"], blocks["mixed_4d"]
        self.mixed_4e, self.mixed_4f = blocks["mixed_4e"], blocks["mixed_4f"]
        self.maxpool3d_5a_2x2 = MaxPool3dSame([2, 2, 2], [2, 2, 2])
        self.mixed_5b, self.mixed_5c = blocks["mixed_5b"], blocks["mixed_5c"]
        self.logits = Unit3D(ch, num_classes, [1, 1, 1], [1, 1, 1], bn_act=False)
        self.num_classes = num_classes

    def forward(
        self, x: Tensor, rescale: bool = False, resize: bool = False, return_features: bool = False
    ) -> Tensor:
        if rescale or resize:
            raise RuntimeError("InceptionI3d: rescale/resize are not supported; pass preprocessed clips")
        if x.dim() != 5 or x.shape[1] != 3:
            raise RuntimeError("InceptionI3d: expected input (B, 3, T, H, W)")
        x = self.maxpool3d_2a_3x3(self.conv3d_1a_7x7(x))
        x = self.maxpool3d_3a_3x3(self.conv3d_2c_3x3(self.conv3d_2b_1x1(x)))
        x = self.mixed_3c(self.mixed_3b(x))
        x = self.maxpool3d_4a_3x3(x)
        x = self.mixed_4f(self.mixed_4e(self.mixed_4d(self.mixed_4c(self.mixed_4b(x)))))
        x = self.maxpool3d_5a_2x2(x)
        x = self.mixed_5c(self.mixed_5b(x))
        x = F.avg_pool3d(x, [2, 7, 7], [1, 1, 1])  # "VALID" average pool, as in the original
        logits = self.logits(x).mean(dim=[3, 4]).mean(dim=2)  # squeeze space, mean over time: (B, classes)
        if return_features:
            return logits
        return F.softmax(logits, dim=1)


def save_torchscript(module: nn.Module, path: str | os.PathLike) -> None:
    """Script ``module`` (e.g. a random-weight :class:`InceptionI3d`) and save it as a TorchScript file."""
    torch.jit.save(torch.jit.script(module.eval()), os.fspath(path))


# ------------------------------------------------------------------------------------------------ loading
class I3DFeatureExtractor(nn.Module):
    """Wraps the TorchScript I3D: ``(B, 3, T, 224, 224)`` clips in [-1, 1] -> ``(B, 400)`` float32 logits.

    Attributes:
        detector: the TorchScript (or plain) module, in eval mode with gradients off.
        weights: the resolved weights file (path and sha256), or ``None`` for a module built in memory.
    """

    def __init__(self, detector: nn.Module, weights: ResolvedWeights | None = None) -> None:
        super().__init__()
        self.detector = detector.eval()
        for p in self.detector.parameters():
            p.requires_grad_(False)
        self.weights = weights

    def train(self, mode: bool = True) -> "I3DFeatureExtractor":  # always eval: BatchNorm uses its statistics
        return super().train(False)

    @property
    def device(self) -> torch.device:
        for t in self.detector.parameters():
            return t.device
        return torch.device("cpu")

    def forward(self, clips: Tensor) -> Tensor:
        if clips.dim() != 5 or clips.shape[1] != 3 or tuple(clips.shape[-2:]) != (I3D_INPUT_SIZE, I3D_INPUT_SIZE):
            raise ValueError(
                f"I3DFeatureExtractor: expected clips (B, 3, T, {I3D_INPUT_SIZE}, {I3D_INPUT_SIZE}), got "
                f"{tuple(clips.shape)}"
            )
        if clips.shape[2] < I3D_MIN_FRAMES:
            raise ValueError(f"I3DFeatureExtractor: I3D needs at least {I3D_MIN_FRAMES} frames, got {clips.shape[2]}")
        with torch.no_grad():
            feats = self.detector(clips, rescale=False, resize=False, return_features=True)
        if feats.dim() != 2 or feats.shape[0] != clips.shape[0]:
            raise RuntimeError(f"I3D returned features of shape {tuple(feats.shape)}, expected (B, D)")
        return feats.float()


def load_i3d(
    path: str | os.PathLike | None = None,
    *,
    weights: str | WeightSpec = I3D_TORCHSCRIPT,
    device: str | torch.device = "cpu",
    cache_dir: str | os.PathLike | None = None,
    download: bool | None = None,
    verify: bool = True,
    progress: bool = True,
) -> I3DFeatureExtractor:
    """Resolve (download, verify) and load the TorchScript I3D.

    Args:
        path: a local TorchScript file to use (else ``$VPZOO_I3D_PATH``, the cache, then a download).
        weights: the weights spec (name or :class:`~vpzoo.metrics.weights.WeightSpec`).
        device: where to load the network.
        cache_dir, download, verify, progress: see :func:`vpzoo.metrics.weights.resolve_weights`.

    Returns:
        :class:`I3DFeatureExtractor` (eval mode), whose ``weights`` records the file's sha256.
    """
    resolved = resolve_weights(
        weights, path, cache_dir=cache_dir, download=download, verify=verify, progress=progress
    )
    try:
        detector = torch.jit.load(os.fspath(resolved.path), map_location=torch.device(device))
    except Exception as e:  # noqa: BLE001 - torch raises RuntimeError/ValueError/zipfile errors
        raise RuntimeError(
            f"could not load the I3D TorchScript file {resolved.path} (sha256 {resolved.sha256}): {e}"
        ) from e
    return I3DFeatureExtractor(detector, resolved)
