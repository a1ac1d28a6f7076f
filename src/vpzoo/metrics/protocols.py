"""Named metric protocols: the exact settings under which PSNR/SSIM numbers are computed.

Published video-prediction numbers are not comparable unless they were computed the same way; the main trap is
SSIM's ``data_range``. Every number vpzoo reports records the protocol name, and :class:`MetricProtocol` is a
frozen dataclass, so ``dataclasses.asdict(protocol)`` (or :meth:`MetricProtocol.to_dict`) serialises it.

Built-in protocols:

``"standard"``
    PSNR and SSIM with ``data_range=1`` for frames in [0, 1], SSIM window 7 (scikit-image defaults).
``"svg"``
    As the SVG paper's evaluation (Denton & Fergus, 2018): SSIM with ``data_range=2`` and PSNR with
    ``data_range=1``. Their evaluation called old scikit-image's ``compare_ssim`` on float frames in [0, 1]
    without a ``data_range``; it then took the range from the dtype, which for floats is [-1, 1], i.e. 2.
    ``compare_psnr`` in the same situation used 1 for non-negative float images. SSIM with ``data_range=2`` is
    higher than with 1 (the stabilising constants are 4x larger).
"""

from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Mapping

from torch import Tensor

from vpzoo.metrics.frame import _check_video_pair, _check_win_size, _psnr_frames, _result_dtype, _ssim_frames

__all__ = [
    "MetricProtocol",
    "PROTOCOLS",
    "available_protocols",
    "get_protocol",
    "register_protocol",
    "frame_metrics",
]


@dataclass(frozen=True)
class MetricProtocol:
    """Settings for per-frame PSNR/SSIM.

    Attributes:
        name: registry name, recorded next to every reported number.
        ssim_data_range: ``data_range`` passed to SSIM.
        psnr_data_range: ``data_range`` passed to PSNR.
        ssim_win_size: SSIM uniform window side (odd, >= 3).
        description: one line on where the protocol comes from.
    """

    name: str
    ssim_data_range: float
    psnr_data_range: float
    ssim_win_size: int = 7
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"MetricProtocol.name must be a non-empty str, got {self.name!r}")
        for field in ("ssim_data_range", "psnr_data_range"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < float(value) < float("inf"):
                raise ValueError(f"MetricProtocol.{field} must be a finite number > 0, got {value!r}")
        win = self.ssim_win_size
        if isinstance(win, bool) or not isinstance(win, numbers.Integral) or win < 3 or win % 2 == 0:
            raise ValueError(f"MetricProtocol.ssim_win_size must be an odd int >= 3, got {win!r}")

    def to_dict(self) -> dict[str, Any]:
        """``dataclasses.asdict(self)``: plain JSON-serialisable values."""
        return dataclasses.asdict(self)


_PROTOCOLS: dict[str, MetricProtocol] = {}

#: Read-only view of the registered protocols, by name.
PROTOCOLS: Mapping[str, MetricProtocol] = MappingProxyType(_PROTOCOLS)


def register_protocol(protocol: MetricProtocol, *, overwrite: bool = False) -> MetricProtocol:
    """Add ``protocol`` to the registry under ``protocol.name`` and return it.

    Raises:
        TypeError: if ``protocol`` is not a :class:`MetricProtocol`.
        ValueError: if the name is taken by a different protocol and ``overwrite`` is false.
    """
    if not isinstance(protocol, MetricProtocol):
        raise TypeError(f"expected a MetricProtocol, got {type(protocol).__name__}")
    existing = _PROTOCOLS.get(protocol.name)
    if existing is not None and existing != protocol and not overwrite:
        raise ValueError(f"metric protocol {protocol.name!r} is already registered as {existing}")
    _PROTOCOLS[protocol.name] = protocol
    return protocol


def available_protocols() -> tuple[str, ...]:
    """Names of the registered protocols, sorted."""
    return tuple(sorted(_PROTOCOLS))


def get_protocol(name: str | MetricProtocol) -> MetricProtocol:
    """The registered protocol called ``name`` (a :class:`MetricProtocol` is returned unchanged).

    Raises:
        TypeError: if ``name`` is neither a str nor a :class:`MetricProtocol`.
        ValueError: if no protocol has that name; the message lists the known names.
    """
    if isinstance(name, MetricProtocol):
        return name
    if not isinstance(name, str):
        raise TypeError(f"expected a protocol name (str) or MetricProtocol, got {type(name).__name__}")
    try:
        return _PROTOCOLS[name]
    except KeyError:
        known = ", ".join(repr(n) for n in available_protocols())
        raise ValueError(f"unknown metric protocol {name!r}; known protocols: {known}") from None


register_protocol(
    MetricProtocol(
        name="standard",
        ssim_data_range=1.0,
        psnr_data_range=1.0,
        ssim_win_size=7,
        description="PSNR and SSIM with data_range=1 for frames in [0, 1]; scikit-image SSIM defaults (7x7 "
        "uniform window, sample covariance, K1=0.01, K2=0.03).",
    )
)
register_protocol(
    MetricProtocol(
        name="svg",
        ssim_data_range=2.0,
        psnr_data_range=1.0,
        ssim_win_size=7,
        description="As the SVG paper's evaluation (Denton & Fergus 2018): old scikit-image compare_ssim on float "
        "frames guessed data_range=2 from the dtype; PSNR used data_range=1.",
    )
)


def frame_metrics(pred: Tensor, target: Tensor, protocol: str | MetricProtocol = "standard") -> dict[str, Tensor]:
    """Per-frame PSNR and SSIM under a named protocol.

    Args:
        pred: predicted video ``(B, T, C, H, W)``.
        target: ground-truth video ``(B, T, C, H, W)``.
        protocol: a protocol name (see :func:`available_protocols`) or a :class:`MetricProtocol`.

    Returns:
        ``{"psnr": (B, T), "ssim": (B, T)}``; PSNR is ``+inf`` for identical frames (see :func:`~vpzoo.metrics.psnr`).
    """
    proto = get_protocol(protocol)
    pred, target = _check_video_pair(pred, target, "frame_metrics")
    win = _check_win_size(proto.ssim_win_size, pred.shape[-2], pred.shape[-1], "frame_metrics")
    dtype = _result_dtype(pred)
    return {
        "psnr": _psnr_frames(pred, target, float(proto.psnr_data_range)).to(dtype),
        "ssim": _ssim_frames(pred, target, float(proto.ssim_data_range), win).to(dtype),
    }
