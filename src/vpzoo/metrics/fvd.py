"""Fréchet Video Distance (FVD), the standard protocol of Unterthiner et al. 2018 (arXiv:1812.01717).

What is computed, pinned to the reference implementation (google-research ``frechet_video_distance.py``):

- **Features**: the 400 Kinetics-400 logits of the TF-Hub I3D (``RGB/inception_i3d/Mean:0``), through the
  StyleGAN-V TorchScript port (see :mod:`vpzoo.metrics.i3d`; weights resolved by :mod:`vpzoo.metrics.weights`).
- **Preprocessing** (:func:`preprocess_clips`): every frame resized bilinearly to 224x224 as TF1's
  ``tf.image.resize_bilinear`` does by default (``align_corners=False, half_pixel_centers=False``: source
  coordinate ``i * in / out``, no anti-aliasing), values mapped to [-1, 1], grayscale repeated to three channels.
  ``resize_mode="half_pixel"`` gives PyTorch's ``F.interpolate(mode="bilinear", align_corners=False)`` instead
  (what several PyTorch ports do); the mode is recorded with the result.
- **Clips** of 16 frames by default (for video prediction: context and predicted frames together, e.g. BAIR
  1 + 15); every clip must have exactly ``clip_length`` frames, nothing is cut or padded.
- **Statistics over the whole set**, never per batch: the metric accumulates, in float64, the count, the sum and
  the sum of outer products of the features of real and of generated clips, across batches and (DDP) processes;
  the mean and the unbiased covariance (``n - 1``, as TF-GAN) are formed only in :meth:`~FrechetVideoDistance.compute`.
- **Fréchet distance** (:func:`frechet_distance`) in float64 with an exact matrix square root:
  ``|mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2))``, where ``tr((S1 S2)^(1/2))`` is the sum of the
  singular values of ``S1^(1/2) S2^(1/2)`` (symmetric square roots by eigendecomposition). This is exact for
  rank-deficient covariances (fewer clips than 400 features, e.g. BAIR's 256 test clips), where iterative or
  ``sqrtm``-based formulas lose accuracy or go complex.

Every reported FVD records the number of real and generated clips, the clip length and the I3D file's sha256
(:meth:`FrechetVideoDistance.report`). FVD is biased upwards for small sets; numbers computed on different
numbers of clips are not comparable (sheet §5.4).
"""

from __future__ import annotations

import contextlib
import math
import os
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torchmetrics import Metric

from vpzoo.metrics.i3d import I3D_FEATURE_DIM, I3D_INPUT_SIZE, I3D_MIN_FRAMES, I3DFeatureExtractor, load_i3d
from vpzoo.metrics.weights import I3D_TORCHSCRIPT, ResolvedWeights, WeightSpec

__all__ = [
    "FVD_CLIP_LENGTH",
    "RESIZE_MODES",
    "FrechetVideoDistance",
    "frechet_distance",
    "frechet_video_distance",
    "gaussian_statistics",
    "preprocess_clips",
    "resize_bilinear",
    "resize_matrix",
]

#: Frames per clip in the standard protocol.
FVD_CLIP_LENGTH: int = 16
#: ``"tf1"``: TF1 ``resize_bilinear`` (the reference); ``"half_pixel"``: ``F.interpolate(align_corners=False)``.
RESIZE_MODES: tuple[str, ...] = ("tf1", "half_pixel")
_RESIZE_DESCRIPTION = {
    "tf1": "bilinear, TF1 tf.image.resize_bilinear defaults (align_corners=False, half_pixel_centers=False), "
    "no anti-aliasing",
    "half_pixel": "bilinear, half-pixel centres (torch F.interpolate align_corners=False), no anti-aliasing",
}


# ------------------------------------------------------------------------------------------------ preprocessing
def resize_matrix(
    in_size: int, out_size: int, mode: str = "tf1", dtype: torch.dtype = torch.float64, device=None
) -> Tensor:
    """The ``(out_size, in_size)`` matrix of 1-D bilinear interpolation (rows sum to 1).

    ``mode="tf1"``: source coordinate ``i * in / out`` (TF1 ``resize_bilinear`` with its defaults);
    ``mode="half_pixel"``: ``max((i + 0.5) * in / out - 0.5, 0)`` (PyTorch ``align_corners=False``).
    The two neighbours are ``floor(src)`` and ``min(floor(src) + 1, in - 1)``.
    """
    if mode not in RESIZE_MODES:
        raise ValueError(f"expected resize mode to be one of {', '.join(map(repr, RESIZE_MODES))}, got {mode!r}")
    if in_size < 1 or out_size < 1:
        raise ValueError(f"sizes must be >= 1, got in_size={in_size}, out_size={out_size}")
    scale = in_size / out_size
    i = torch.arange(out_size, dtype=torch.float64)
    src = i * scale if mode == "tf1" else ((i + 0.5) * scale - 0.5).clamp(min=0.0)
    i0 = src.floor().long().clamp(max=in_size - 1)
    i1 = (i0 + 1).clamp(max=in_size - 1)
    frac = src - i0.double()
    mat = torch.zeros(out_size, in_size, dtype=torch.float64)
    rows = torch.arange(out_size)
    mat.index_put_((rows, i0), 1.0 - frac, accumulate=True)
    mat.index_put_((rows, i1), frac, accumulate=True)
    return mat.to(dtype=dtype, device=device)


def resize_bilinear(frames: Tensor, size: tuple[int, int], mode: str = "tf1") -> Tensor:
    """Resize the last two dims ``(..., H, W)`` to ``size`` by separable bilinear interpolation (float)."""
    h, w = frames.shape[-2:]
    if (h, w) == tuple(size):
        return frames
    dtype = frames.dtype if frames.is_floating_point() else torch.float32
    mh = resize_matrix(h, size[0], mode, dtype, frames.device)
    mw = resize_matrix(w, size[1], mode, dtype, frames.device)
    return torch.matmul(torch.matmul(mh, frames.to(dtype)), mw.transpose(0, 1))


def _check_videos(videos: object, fn: str, clip_length: int | None) -> Tensor:
    """Validate ``(B, T, C, H, W)`` / ``(B, N, T, C, H, W)`` videos (flattened to ``(B*N, T, C, H, W)``)."""
    if not isinstance(videos, Tensor):
        raise TypeError(f"{fn}: expected a torch.Tensor, got {type(videos).__module__}.{type(videos).__name__}")
    if videos.ndim == 6:
        videos = videos.flatten(0, 1)
    if videos.ndim != 5:
        raise ValueError(
            f"{fn}: expected videos (B, T, C, H, W) or samples (B, N, T, C, H, W), got {videos.ndim}-D shape "
            f"{tuple(videos.shape)}"
        )
    _, t, c, h, w = videos.shape
    if c not in (1, 3):
        raise ValueError(f"{fn}: expected 1 (grayscale) or 3 (RGB) channels, got C={c} in shape {tuple(videos.shape)}")
    if h < 1 or w < 1:
        raise ValueError(f"{fn}: expected frames with H, W >= 1, got shape {tuple(videos.shape)}")
    if clip_length is not None and t != clip_length:
        raise ValueError(
            f"{fn}: expected clips of exactly {clip_length} frames (clip_length), got T={t}; FVD clips are never "
            f"cut or padded, select the frames yourself (e.g. context + predicted frames)"
        )
    if t < I3D_MIN_FRAMES:
        raise ValueError(f"{fn}: I3D needs clips of at least {I3D_MIN_FRAMES} frames, got T={t}")
    if videos.dtype == torch.uint8:
        return videos
    if not videos.is_floating_point():
        raise TypeError(f"{fn}: expected float videos in [0, 1] or uint8 in [0, 255], got dtype {videos.dtype}")
    if videos.numel():
        if not bool(torch.isfinite(videos).all()):
            raise ValueError(f"{fn}: videos contain NaN or inf")
        lo, hi = float(videos.min()), float(videos.max())
        if lo < 0.0 or hi > 1.0:
            raise ValueError(f"{fn}: expected float videos in [0, 1], got values in [{lo:.4g}, {hi:.4g}]")
    return videos


def preprocess_clips(
    videos: Tensor, size: int = I3D_INPUT_SIZE, resize_mode: str = "tf1", clip_length: int | None = None
) -> Tensor:
    """Videos ``(B, T, C, H, W)`` (float in [0, 1] or uint8) -> I3D input ``(B, 3, T, size, size)`` in [-1, 1].

    Frames are resized bilinearly to ``size x size`` (see :func:`resize_matrix` for ``resize_mode``), mapped
    to [-1, 1] (``2 x - 1``; uint8 is divided by 255 first) and grayscale is repeated to three channels. A
    ``(B, N, T, C, H, W)`` input is flattened to ``B * N`` clips. Returns float32 (float64 for float64 input).
    """
    videos = _check_videos(videos, "preprocess_clips", clip_length)
    if resize_mode not in RESIZE_MODES:
        raise ValueError(f"expected resize_mode to be one of {', '.join(map(repr, RESIZE_MODES))}, got {resize_mode!r}")
    x = videos.to(torch.float32) / 255.0 if videos.dtype == torch.uint8 else videos
    if x.dtype not in (torch.float32, torch.float64):
        x = x.to(torch.float32)
    # Scaling commutes with bilinear interpolation (its weights sum to 1), so it is done on the small frames, and
    # so is the move to (B, C, T, H, W): the resize then writes the output in its final layout.
    x = (x * 2.0 - 1.0).permute(0, 2, 1, 3, 4)
    x = resize_bilinear(x, (size, size), resize_mode)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1, -1)
    return x.contiguous()


# ------------------------------------------------------------------------------------------------ distance
def _as_f64(x: object, name: str) -> Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, Tensor):
        raise TypeError(f"frechet_distance: expected {name} to be a tensor or numpy array, got {type(x).__name__}")
    return x.detach().to(device="cpu", dtype=torch.float64)


def _psd_sqrt(sigma: Tensor) -> Tensor:
    """Symmetric square root of a symmetric PSD matrix (negative rounding eigenvalues clamped to 0)."""
    sym = 0.5 * (sigma + sigma.transpose(0, 1))
    evals, evecs = torch.linalg.eigh(sym)
    return (evecs * evals.clamp(min=0.0).sqrt()) @ evecs.transpose(0, 1)


def frechet_distance(mu1: Tensor, sigma1: Tensor, mu2: Tensor, sigma2: Tensor) -> Tensor:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), exact, in float64.

    ``|mu1 - mu2|^2 + tr(sigma1) + tr(sigma2) - 2 tr((sigma1 sigma2)^(1/2))``. The trace of the principal square
    root is the sum of the singular values of ``sigma1^(1/2) sigma2^(1/2)`` (whose squares are the eigenvalues
    of ``sigma1 sigma2``), so no iterative square root is involved and singular (rank-deficient) covariances are
    handled exactly. Symmetric in its two arguments; 0 for identical Gaussians (negative rounding is clamped).

    Args:
        mu1, mu2: means ``(D,)``; sigma1, sigma2: covariances ``(D, D)``. Tensors or numpy arrays.

    Returns:
        float64 scalar tensor (CPU).
    """
    mu1, mu2 = _as_f64(mu1, "mu1"), _as_f64(mu2, "mu2")
    sigma1, sigma2 = _as_f64(sigma1, "sigma1"), _as_f64(sigma2, "sigma2")
    if mu1.ndim != 1 or mu1.shape != mu2.shape:
        raise ValueError(f"frechet_distance: expected means of equal shape (D,), got {tuple(mu1.shape)} and {tuple(mu2.shape)}")
    d = mu1.shape[0]
    for name, s in (("sigma1", sigma1), ("sigma2", sigma2)):
        if tuple(s.shape) != (d, d):
            raise ValueError(f"frechet_distance: expected {name} of shape ({d}, {d}), got {tuple(s.shape)}")
    for name, t in (("mu1", mu1), ("mu2", mu2), ("sigma1", sigma1), ("sigma2", sigma2)):
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"frechet_distance: {name} contains NaN or inf")
    diff = mu1 - mu2
    with _single_thread():
        tr_covmean = torch.linalg.svdvals(_psd_sqrt(sigma1) @ _psd_sqrt(sigma2)).sum()
    value = diff.dot(diff) + torch.trace(sigma1) + torch.trace(sigma2) - 2.0 * tr_covmean
    return value.clamp(min=0.0)


@contextlib.contextmanager
def _single_thread():
    """Run the small (D x D) decompositions on one thread: for D = 400 that is as fast as several threads on an
    idle machine and several times faster on a busy one (or with DDP ranks sharing cores), where multi-threaded
    LAPACK oversubscribes."""
    previous = torch.get_num_threads()
    if previous == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def gaussian_statistics(features: Tensor) -> tuple[Tensor, Tensor]:
    """Mean ``(D,)`` and unbiased covariance ``(D, D)`` (``n - 1``) of ``(n, D)`` features, in float64."""
    f = _as_f64(features, "features")
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"gaussian_statistics: expected (n >= 2, D) features, got {tuple(f.shape)}")
    mu = f.mean(dim=0)
    centered = f - mu
    return mu, centered.transpose(0, 1) @ centered / (f.shape[0] - 1)


# ------------------------------------------------------------------------------------------------ metric
class FrechetVideoDistance(Metric):
    """FVD over a whole set of clips, accumulated across batches and processes (a torchmetrics ``Metric``).

    Usage (e.g. in ``validation_step``; DDP-safe)::

        fvd = FrechetVideoDistance()                     # resolves the I3D weights on first use
        fvd.update(real_clips, real=True)                # (B, 16, C, H, W) in [0, 1] or uint8
        fvd.update(generated_clips, real=False)          # or (B, N, 16, C, H, W): N samples per sequence
        fvd.compute()   # {"fvd", "n_real", "n_generated", "clip_length"} as tensors (log them with log_dict)
        fvd.report()    # the same as plain numbers + the protocol and the I3D file's sha256 (JSON-serialisable)

    States (float64 sums, ``dist_reduce_fx="sum"``, fixed size): for real and for generated clips, the number of
    clips, the feature sum ``(D,)`` and the sum of feature outer products ``(D, D)``. Nothing depends on how clips
    are split over batches or processes. The I3D network is not a submodule (it never enters checkpoints); it is
    loaded on the first :meth:`update` with videos and moved to the videos' device.

    Args:
        weights: the I3D weights spec (name or :class:`~vpzoo.metrics.weights.WeightSpec`).
        weights_path: a local I3D TorchScript file (else ``$VPZOO_I3D_PATH``, the vpzoo cache, a download).
        feature_extractor: a module mapping ``(B, 3, T, 224, 224)`` clips in [-1, 1] to ``(B, D)`` features,
            used instead of loading the weights (e.g. the result of :func:`~vpzoo.metrics.i3d.load_i3d`).
        clip_length: frames per clip (16 in the standard protocol); ``None`` accepts any length >= 9 (the
            report then says so).
        resize_mode: ``"tf1"`` (reference) or ``"half_pixel"``; see :func:`resize_matrix`.
        batch_size: clips per I3D forward pass inside :meth:`update` (bounds memory: about 100 MB per clip on CPU).
        feature_dim: feature size D (400).
        reset_real_features: if False, :meth:`reset` keeps the real-clip statistics (compute them once, compare
            many generated sets).
        cache_dir, download, verify: passed to :func:`~vpzoo.metrics.weights.resolve_weights`.
        **kwargs: passed to ``torchmetrics.Metric`` (``sync_on_compute``, ``process_group``, ...).
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    real_n: Tensor
    real_sum: Tensor
    real_outer: Tensor
    fake_n: Tensor
    fake_sum: Tensor
    fake_outer: Tensor

    def __init__(
        self,
        weights: str | WeightSpec = I3D_TORCHSCRIPT,
        weights_path: str | os.PathLike | None = None,
        feature_extractor: nn.Module | None = None,
        clip_length: int | None = FVD_CLIP_LENGTH,
        resize_mode: str = "tf1",
        batch_size: int = 8,
        feature_dim: int = I3D_FEATURE_DIM,
        reset_real_features: bool = True,
        cache_dir: str | os.PathLike | None = None,
        download: bool | None = None,
        verify: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if resize_mode not in RESIZE_MODES:
            raise ValueError(f"expected resize_mode to be one of {', '.join(map(repr, RESIZE_MODES))}, got {resize_mode!r}")
        for name, value in (("batch_size", batch_size), ("feature_dim", feature_dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"expected {name} to be a positive int, got {value!r}")
        if clip_length is not None and (
            isinstance(clip_length, bool) or not isinstance(clip_length, int) or clip_length < I3D_MIN_FRAMES
        ):
            raise ValueError(f"expected clip_length to be an int >= {I3D_MIN_FRAMES} or None, got {clip_length!r}")
        self.weights = weights
        self.weights_path = weights_path
        self.clip_length = clip_length
        self.resize_mode = resize_mode
        self.batch_size = batch_size
        self.feature_dim = feature_dim
        self.reset_real_features = bool(reset_real_features)
        self._resolve_kwargs = {"cache_dir": cache_dir, "download": download, "verify": verify}
        # Not a registered submodule: keeps the network out of state_dict / checkpoints.
        self.__dict__["_extractor"] = feature_extractor
        for prefix in ("real", "fake"):
            self.add_state(f"{prefix}_n", torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum")
            self.add_state(f"{prefix}_sum", torch.zeros(feature_dim, dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state(
                f"{prefix}_outer", torch.zeros(feature_dim, feature_dim, dtype=torch.float64), dist_reduce_fx="sum"
            )

    # -------------------------------------------------------------------------------------------- network
    @property
    def feature_extractor(self) -> nn.Module:
        """The feature network, loading (resolving, verifying) the I3D weights on first access."""
        if self.__dict__["_extractor"] is None:
            self.__dict__["_extractor"] = load_i3d(self.weights_path, weights=self.weights, **self._resolve_kwargs)
        return self.__dict__["_extractor"]

    @property
    def resolved_weights(self) -> ResolvedWeights | None:
        """The I3D file actually used (path, sha256), or None for a custom extractor without that record."""
        return getattr(self.feature_extractor, "weights", None)

    def extract_features(self, videos: Tensor) -> Tensor:
        """``(B, T, C, H, W)`` (or ``(B, N, T, C, H, W)``) videos -> ``(B[*N], D)`` float32 features."""
        return self._extract(_check_videos(videos, f"{type(self).__name__}.extract_features", self.clip_length))

    def _extract(self, videos: Tensor) -> Tensor:
        net = self.feature_extractor
        net.to(videos.device)
        feats = []
        with torch.no_grad():
            for start in range(0, videos.shape[0], self.batch_size):
                clips = preprocess_clips(videos[start : start + self.batch_size], resize_mode=self.resize_mode)
                feats.append(net(clips.to(torch.float32)))
        if not feats:
            return torch.zeros(0, self.feature_dim, device=videos.device)
        return torch.cat(feats)

    # -------------------------------------------------------------------------------------------- updates
    def update(self, videos: Tensor, real: bool, *, features: bool = False) -> None:
        """Add clips: ``videos`` ``(B, T, C, H, W)`` or ``(B, N, T, C, H, W)``, float in [0, 1] or uint8.

        ``real=True`` for ground-truth clips, ``False`` for generated ones. With ``features=True``, ``videos`` is
        a ``(B, D)`` tensor of precomputed features instead (see :meth:`update_features`).
        """
        if not isinstance(real, bool):
            raise TypeError(f"{type(self).__name__}.update: expected real to be a bool, got {type(real).__name__}")
        if features:
            self._add_features(videos, real)
            return
        videos = _check_videos(videos, f"{type(self).__name__}.update", self.clip_length)
        if videos.shape[0] == 0:
            return
        self._add_features(self._extract(videos.detach()), real)

    def update_features(self, features: Tensor, real: bool) -> None:
        """Add precomputed ``(B, D)`` features (e.g. cached I3D logits) of real or generated clips."""
        self.update(features, real, features=True)  # through torchmetrics' update bookkeeping

    def _add_features(self, features: Tensor, real: bool) -> None:
        if not isinstance(features, Tensor) or features.ndim != 2 or features.shape[1] != self.feature_dim:
            shape = tuple(features.shape) if isinstance(features, Tensor) else type(features).__name__
            raise ValueError(f"{type(self).__name__}.update_features: expected (B, {self.feature_dim}) features, got {shape}")
        if not bool(torch.isfinite(features).all()):
            raise ValueError(f"{type(self).__name__}.update_features: features contain NaN or inf")
        f = features.detach().to(device=self.real_sum.device, dtype=torch.float64)
        prefix = "real" if real else "fake"
        setattr(self, f"{prefix}_n", getattr(self, f"{prefix}_n") + f.shape[0])
        setattr(self, f"{prefix}_sum", getattr(self, f"{prefix}_sum") + f.sum(dim=0))
        setattr(self, f"{prefix}_outer", getattr(self, f"{prefix}_outer") + f.transpose(0, 1) @ f)

    def reset(self) -> None:
        """Clear the statistics (the real ones only if ``reset_real_features``)."""
        if self.reset_real_features:
            super().reset()
            return
        kept = {name: getattr(self, name).clone() for name in ("real_n", "real_sum", "real_outer")}
        super().reset()
        for name, value in kept.items():
            setattr(self, name, value)

    # -------------------------------------------------------------------------------------------- results
    def statistics(self, real: bool) -> tuple[int, Tensor, Tensor]:
        """``(n, mean (D,), unbiased covariance (D, D))`` of the accumulated real or generated features."""
        prefix = "real" if real else "fake"
        n = int(getattr(self, f"{prefix}_n"))
        if n < 2:
            raise ValueError(
                f"{type(self).__name__}: FVD needs at least 2 {'real' if real else 'generated'} clips, got {n}"
            )
        total = getattr(self, f"{prefix}_sum").detach().to("cpu", torch.float64)
        outer = getattr(self, f"{prefix}_outer").detach().to("cpu", torch.float64)
        mu = total / n
        sigma = (outer - n * torch.outer(mu, mu)) / (n - 1)
        return n, mu, 0.5 * (sigma + sigma.transpose(0, 1))

    def compute(self) -> dict[str, Tensor]:
        """``{"fvd": float64, "n_real": int64, "n_generated": int64, "clip_length": int64}`` scalar tensors.

        ``clip_length`` is -1 when the metric accepts any length (``clip_length=None``).
        """
        n_real, mu_r, sigma_r = self.statistics(real=True)
        n_fake, mu_f, sigma_f = self.statistics(real=False)
        device = self.real_sum.device
        return {
            "fvd": frechet_distance(mu_r, sigma_r, mu_f, sigma_f).to(device),
            "n_real": torch.tensor(n_real, dtype=torch.int64, device=device),
            "n_generated": torch.tensor(n_fake, dtype=torch.int64, device=device),
            "clip_length": torch.tensor(-1 if self.clip_length is None else self.clip_length, device=device),
        }

    def describe(self) -> dict[str, Any]:
        """The protocol and the identity of the feature network (JSON-serialisable)."""
        extractor = self.__dict__["_extractor"]
        resolved = getattr(extractor, "weights", None) if extractor is not None else None
        if isinstance(resolved, ResolvedWeights):
            weights = resolved.to_dict()
            network = "I3D Kinetics-400, TF-Hub deepmind/i3d-kinetics-400/1 (StyleGAN-V TorchScript port)"
        elif extractor is not None:
            weights = None
            network = f"custom feature extractor ({type(extractor).__name__})"
        else:
            weights = None
            network = "none loaded (features supplied through update_features)"
        return {
            "metric": "fvd",
            "reference": "Unterthiner et al. 2018, arXiv:1812.01717 (google-research frechet_video_distance)",
            "feature_network": network,
            "weights": weights,
            "features": f"logits ({self.feature_dim})",
            "input_size": I3D_INPUT_SIZE,
            "resize": _RESIZE_DESCRIPTION[self.resize_mode],
            "resize_mode": self.resize_mode,
            "value_range": [-1.0, 1.0],
            "grayscale": "repeated to 3 channels",
            "clip_length": self.clip_length,
            "statistics": "whole set; float64 sums; mean and unbiased covariance (n - 1)",
            "distance": "exact Fréchet distance in float64 (trace of the square root via singular values)",
        }

    def report(self) -> dict[str, Any]:
        """:meth:`compute` as plain numbers, with :meth:`describe` (what every reported FVD must carry)."""
        out = self.compute()
        record = {
            "fvd": float(out["fvd"]),
            "n_real": int(out["n_real"]),
            "n_generated": int(out["n_generated"]),
            "clip_length": self.clip_length,
        }
        record.update({k: v for k, v in self.describe().items() if k not in record})
        sha = record["weights"]["sha256"] if record.get("weights") else None
        record["weights_sha256"] = sha
        if not math.isfinite(record["fvd"]):  # pragma: no cover - inputs are checked finite
            raise ValueError("FVD is not finite")
        return record


def frechet_video_distance(real: Tensor, generated: Tensor, **kwargs: Any) -> dict[str, Any]:
    """FVD between two sets of clips in one call: :meth:`FrechetVideoDistance.report` after two updates.

    ``real`` ``(B1, T, C, H, W)``, ``generated`` ``(B2, T, C, H, W)`` or ``(B2, N, T, C, H, W)``; ``kwargs`` go to
    :class:`FrechetVideoDistance`.
    """
    metric = FrechetVideoDistance(sync_on_compute=False, **kwargs)
    metric.update(real, real=True)
    metric.update(generated, real=False)
    return metric.report()
