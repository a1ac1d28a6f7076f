"""LPIPS (Zhang et al. 2018, arXiv:1801.03924), AlexNet backbone, linear layers v0.1, per frame.

The network is vpzoo's own implementation of the ``lpips`` package's ``LPIPS(net="alex", version="0.1")`` in
evaluation mode (the variant used by the SAVP and SRVP evaluations):

- inputs in [-1, 1] are shifted and scaled per channel (``shift = (-.030, -.088, -.188)``,
  ``scale = (.458, .448, .450)``);
- the five ReLU outputs of torchvision's AlexNet ``features`` (after conv1..conv5) are taken;
- each is unit-normalised along channels (``x / (||x||_2 + 1e-10)``), the two images' maps are subtracted and
  squared, weighted by the non-negative 1x1 "linear" layer of that stage, averaged over space, and summed.

vpzoo's functions take frames in [0, 1] and scale them to [-1, 1] internally; grayscale frames are repeated to
three channels. The ImageNet AlexNet weights (torchvision ``alexnet-owt-7be5be79.pth``) and the linear layers
(``lpips/weights/v0.1/alex.pth``) are resolved by :mod:`vpzoo.metrics.weights` (names ``"alexnet_imagenet"`` and
``"lpips_alex_v0.1"``; ``$VPZOO_ALEXNET_PATH`` / ``$VPZOO_LPIPS_ALEX_PATH`` point at local copies; torchvision's
own cached download is found too). Nothing is downloaded at import.

Importing this module registers ``"lpips"`` (lower is better) as a per-frame metric of
:class:`~vpzoo.metrics.SampleAggregatedMetric`; it uses :func:`default_lpips_network`, loaded on first use.
"""

from __future__ import annotations

import copy
import os
import threading
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vpzoo.metrics.aggregation import register_frame_metric
from vpzoo.metrics.frame import _check_video_pair
from vpzoo.metrics.protocols import MetricProtocol
from vpzoo.metrics.weights import ALEXNET_IMAGENET, LPIPS_ALEX_V01, ResolvedWeights, WeightSpec, resolve_weights

__all__ = [
    "LPIPSAlex",
    "LPIPS_MIN_SIZE",
    "load_lpips",
    "lpips",
    "default_lpips_network",
    "set_default_lpips_network",
    "lpips_weights_record",
]

#: Smallest frame side AlexNet's five stages accept.
LPIPS_MIN_SIZE: int = 31
_CHANNELS = (64, 192, 384, 256, 256)
# Indices in torchvision's AlexNet ``features`` after which the five ReLU outputs are tapped (exclusive ends).
_TAPS = (2, 5, 8, 10, 12)


def _alexnet_features() -> nn.Sequential:
    """torchvision's ``AlexNet.features`` layout (same indices, so its state_dict keys load), ReLUs not in place."""
    return nn.Sequential(
        nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(64, 192, kernel_size=5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(192, 384, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.Conv2d(384, 256, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.Conv2d(256, 256, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
    )


class LPIPSAlex(nn.Module):
    """LPIPS v0.1 with an AlexNet backbone; ``forward(x, y)`` on ``(N, 3, H, W)`` in [-1, 1] -> ``(N,)``.

    The network is frozen and always in eval mode. Load weights with :meth:`load_backbone` (a torchvision AlexNet
    state dict, ``features.*`` keys) and :meth:`load_linear` (the lpips package's ``lin{k}.model.1.weight``
    keys); :func:`load_lpips` does both from resolved files.

    Attributes:
        weights: the resolved backbone and linear weights files (``{"backbone": ..., "linear": ...}``).
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1), persistent=False)
        self.features = _alexnet_features()
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, kernel_size=1, bias=False) for c in _CHANNELS)
        self.weights: dict[str, ResolvedWeights | None] = {"backbone": None, "linear": None}
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "LPIPSAlex":  # always eval
        return super().train(False)

    def load_backbone(self, state_dict: dict[str, Tensor]) -> None:
        """Load torchvision AlexNet weights (only the ``features.*`` entries are used; all must be present)."""
        own = {k: v for k, v in state_dict.items() if k.startswith("features.")}
        self.features.load_state_dict({k[len("features."):]: v for k, v in own.items()}, strict=True)

    def load_linear(self, state_dict: dict[str, Tensor]) -> None:
        """Load the lpips package's linear layers (``lin{k}.model.1.weight``, or vpzoo's ``lins.{k}.weight``)."""
        mapped = {}
        for key, value in state_dict.items():
            parts = key.split(".")
            if len(parts) == 4 and parts[0].startswith("lin") and parts[1:] == ["model", "1", "weight"]:
                mapped[f"{parts[0][3:]}.weight"] = value
            elif len(parts) == 3 and parts[0] == "lins" and parts[2] == "weight":
                mapped[f"{parts[1]}.weight"] = value
            else:
                raise KeyError(f"unexpected key {key!r} in LPIPS linear weights")
        self.lins.load_state_dict(mapped, strict=True)

    def _stages(self, x: Tensor) -> list[Tensor]:
        outs, start = [], 0
        for end in _TAPS:
            for layer in self.features[start:end]:
                x = layer(x)
            outs.append(x)
            start = end
        return outs

    def normalized_features(self, x: Tensor) -> list[Tensor]:
        """The five channel-normalised AlexNet stages of ``(N, 3, H, W)`` images in [-1, 1]."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"LPIPSAlex: expected (N, 3, H, W) images, got {tuple(x.shape)}")
        if min(x.shape[-2:]) < LPIPS_MIN_SIZE:
            raise ValueError(f"LPIPSAlex: frames must be at least {LPIPS_MIN_SIZE}x{LPIPS_MIN_SIZE}, got {tuple(x.shape[-2:])}")
        return [f / (f.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10) for f in self._stages((x - self.shift) / self.scale)]

    def distance(self, fx: list[Tensor], fy: list[Tensor]) -> Tensor:
        """LPIPS ``(N,)`` between two lists of :meth:`normalized_features` (broadcastable)."""
        total = None
        for a, b, lin in zip(fx, fy, self.lins):
            term = lin((a - b).pow(2)).mean(dim=(1, 2, 3))
            total = term if total is None else total + term
        return total

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        if x.shape != y.shape:
            raise ValueError(f"LPIPSAlex: expected two batches of equal shape, got {tuple(x.shape)} and {tuple(y.shape)}")
        n = x.shape[0]
        feats = self.normalized_features(torch.cat([x, y]))
        return self.distance([f[:n] for f in feats], [f[n:] for f in feats])


def load_lpips(
    backbone_path: str | os.PathLike | None = None,
    linear_path: str | os.PathLike | None = None,
    *,
    backbone: str | WeightSpec = ALEXNET_IMAGENET,
    linear: str | WeightSpec = LPIPS_ALEX_V01,
    device: str | torch.device = "cpu",
    cache_dir: str | os.PathLike | None = None,
    download: bool | None = None,
    verify: bool = True,
    progress: bool = True,
) -> LPIPSAlex:
    """Resolve (download, verify) both weight files and build :class:`LPIPSAlex` on ``device``.

    ``backbone_path`` / ``linear_path`` are local files that replace the search (see
    :func:`vpzoo.metrics.weights.resolve_weights` for the order and the other arguments).
    """
    opts: dict[str, Any] = {"cache_dir": cache_dir, "download": download, "verify": verify, "progress": progress}
    res_backbone = resolve_weights(backbone, backbone_path, **opts)
    res_linear = resolve_weights(linear, linear_path, **opts)
    net = LPIPSAlex()
    net.load_backbone(torch.load(res_backbone.path, map_location="cpu", weights_only=True))
    net.load_linear(torch.load(res_linear.path, map_location="cpu", weights_only=True))
    net.weights = {"backbone": res_backbone, "linear": res_linear}
    return net.to(device)


_DEFAULT: dict[str, Any] = {"network": None, "copies": {}}
_DEFAULT_LOCK = threading.Lock()


def set_default_lpips_network(network: LPIPSAlex | None) -> None:
    """Use ``network`` for :func:`lpips` calls without ``network=`` and for the registered ``"lpips"`` frame
    metric (``None``: go back to loading the pinned weights on first use)."""
    if network is not None and not isinstance(network, LPIPSAlex):
        raise TypeError(f"expected an LPIPSAlex or None, got {type(network).__name__}")
    with _DEFAULT_LOCK:
        _DEFAULT["network"] = network
        _DEFAULT["copies"] = {}


def default_lpips_network(device: str | torch.device | None = None) -> LPIPSAlex:
    """The network used when none is given: the pinned AlexNet + v0.1 weights, loaded once per process (on
    CPU; a copy is kept per other ``device``)."""
    with _DEFAULT_LOCK:
        if _DEFAULT["network"] is None:
            _DEFAULT["network"] = load_lpips()
        base: LPIPSAlex = _DEFAULT["network"]
        if device is None:
            return base
        device = torch.device(device)
        if _network_device(base) == device:
            return base
        copies = _DEFAULT["copies"]
        if str(device) not in copies:
            copies[str(device)] = copy.deepcopy(base).to(device)
        return copies[str(device)]


def lpips_weights_record(network: LPIPSAlex | None = None) -> dict[str, Any]:
    """What every reported LPIPS should carry: variant and the two weight files' sha256 (JSON-serialisable)."""
    net = network if network is not None else default_lpips_network()
    return {
        "metric": "lpips",
        "variant": "LPIPS v0.1, AlexNet backbone (Zhang et al. 2018), inputs [0, 1] scaled to [-1, 1]",
        "backbone": None if net.weights.get("backbone") is None else net.weights["backbone"].to_dict(),
        "linear": None if net.weights.get("linear") is None else net.weights["linear"].to_dict(),
    }


def _network_device(network: nn.Module) -> torch.device:
    for p in network.parameters():
        return p.device
    return torch.device("cpu")


def _lpips_frames(pred: Tensor, target: Tensor, network: LPIPSAlex, chunk: int) -> Tensor:
    """``(..., C, H, W)`` pairs in [0, 1] -> ``(...)`` LPIPS, in chunks of ``chunk`` frames."""
    lead = pred.shape[:-3]
    c, h, w = pred.shape[-3:]
    x = pred.reshape(-1, c, h, w)
    y = target.reshape(-1, c, h, w)
    device = _network_device(network)
    out = []
    with torch.no_grad():
        for s in range(0, x.shape[0], chunk):
            xa = x[s : s + chunk].to(device=device, dtype=torch.float32) * 2.0 - 1.0
            ya = y[s : s + chunk].to(device=device, dtype=torch.float32) * 2.0 - 1.0
            if c == 1:
                xa, ya = xa.expand(-1, 3, -1, -1), ya.expand(-1, 3, -1, -1)
            out.append(network(xa, ya))
    values = torch.cat(out) if out else torch.zeros(0, device=device)
    return values.reshape(lead).to(pred.device)


def _check_range(x: Tensor, name: str) -> None:
    if not x.is_floating_point():
        raise TypeError(f"lpips: expected float {name} in [0, 1], got dtype {x.dtype}")
    if x.numel():
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"lpips: {name} contains NaN or inf")
        lo, hi = float(x.min()), float(x.max())
        if lo < 0.0 or hi > 1.0:
            raise ValueError(f"lpips: expected {name} in [0, 1], got values in [{lo:.4g}, {hi:.4g}]")


def lpips(pred: Tensor, target: Tensor, network: LPIPSAlex | None = None, chunk: int = 64) -> Tensor:
    """Per-frame LPIPS (AlexNet, v0.1) of two videos ``(B, T, C, H, W)`` in [0, 1] -> ``(B, T)`` float32.

    ``C`` is 1 (repeated to RGB) or 3; frames must be at least 31x31. ``network`` defaults to
    :func:`default_lpips_network` (the pinned weights). Lower is more similar; identical frames give 0.
    """
    pred, target = _check_video_pair(pred, target, "lpips")
    if pred.shape[2] not in (1, 3):
        raise ValueError(f"lpips: expected 1 or 3 channels, got C={pred.shape[2]}")
    _check_range(pred, "pred")
    _check_range(target, "target")
    net = network if network is not None else default_lpips_network(pred.device)
    return _lpips_frames(pred, target, net, chunk)


def _lpips_spec(preds: Tensor, target: Tensor, protocol: MetricProtocol) -> Tensor:
    """Frame-metric adapter: ``(B, N, T, C, H, W)`` -> ``(B, N, T)`` (protocol has no LPIPS settings).

    The target is usually the ground truth expanded over the ``N`` samples; its features are then computed once
    per frame, not once per sample.
    """
    if preds.shape[3] not in (1, 3):
        raise ValueError(f"lpips: expected 1 or 3 channels, got C={preds.shape[3]}")
    if min(preds.shape[-2:]) < LPIPS_MIN_SIZE:
        raise ValueError(f"lpips: frames must be at least {LPIPS_MIN_SIZE}x{LPIPS_MIN_SIZE}, got {tuple(preds.shape[-2:])}")
    _check_range(preds, "preds")
    _check_range(target, "target")
    net = default_lpips_network(preds.device)
    if target.shape[1] == 1 or target.stride(1) != 0:
        return _lpips_frames(preds, target, net, 64)
    b, n, t, c, h, w = preds.shape
    device = _network_device(net)

    def prep(x: Tensor) -> Tensor:
        x = x.to(device=device, dtype=torch.float32) * 2.0 - 1.0
        return x.expand(-1, 3, -1, -1) if c == 1 else x

    out = torch.empty(b, n, t, device=device)
    with torch.no_grad():
        for i in range(b):
            ref = net.normalized_features(prep(target[i, 0]))  # (T, ...) once per sequence
            for j in range(0, n, max(1, 64 // t)):
                k = min(n, j + max(1, 64 // t))
                feats = net.normalized_features(prep(preds[i, j:k].reshape(-1, c, h, w)))
                ref_rep = [f.repeat(k - j, 1, 1, 1) for f in ref]
                out[i, j:k] = net.distance(feats, ref_rep).view(k - j, t)
    return out.to(preds.device)


register_frame_metric("lpips", _lpips_spec, higher_is_better=False, overwrite=True)
