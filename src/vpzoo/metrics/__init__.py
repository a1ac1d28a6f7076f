"""Video-prediction metrics.

Per-frame metrics (``(B, T, C, H, W)`` videos in, ``(B, T)`` out), reproducing scikit-image:

- :func:`psnr`, :func:`ssim`, and :func:`frame_metrics` (both under a named protocol).

Protocols (the settings every reported number records by name):

- :class:`MetricProtocol`, :func:`get_protocol`, :func:`available_protocols`, :func:`register_protocol`;
  built-in ``"standard"`` (data_range 1) and ``"svg"`` (SSIM data_range 2, as the SVG paper's evaluation).

Aggregation over samples ``(B, N, T, C, H, W)``, sequences and processes (torchmetrics, DDP-synchronised):

- :class:`SampleAggregatedMetric` (best/mean/worst of N samples, per-frame curve and its mean),
- :func:`reduce_samples`, :func:`register_frame_metric`, :func:`available_frame_metrics`.
"""

from vpzoo.metrics.aggregation import (
    REDUCTIONS,
    SELECTIONS,
    FrameMetricSpec,
    SampleAggregatedMetric,
    available_frame_metrics,
    reduce_samples,
    register_frame_metric,
)
from vpzoo.metrics.frame import psnr, ssim
from vpzoo.metrics.protocols import (
    PROTOCOLS,
    MetricProtocol,
    available_protocols,
    frame_metrics,
    get_protocol,
    register_protocol,
)

__all__ = [
    "psnr",
    "ssim",
    "frame_metrics",
    "MetricProtocol",
    "PROTOCOLS",
    "available_protocols",
    "get_protocol",
    "register_protocol",
    "SampleAggregatedMetric",
    "FrameMetricSpec",
    "REDUCTIONS",
    "SELECTIONS",
    "available_frame_metrics",
    "reduce_samples",
    "register_frame_metric",
]

# LPIPS and FVD, with their network weights resolved like checkpoints (pinned, verified, cached; local paths and
# $VPZOO_I3D_PATH / $VPZOO_ALEXNET_PATH / $VPZOO_LPIPS_ALEX_PATH). Importing lpips registers the "lpips" frame
# metric of SampleAggregatedMetric; nothing is downloaded at import.
from vpzoo.metrics.fvd import (  # noqa: E402
    FVD_CLIP_LENGTH,
    FrechetVideoDistance,
    frechet_distance,
    frechet_video_distance,
    preprocess_clips,
)
from vpzoo.metrics.i3d import I3DFeatureExtractor, InceptionI3d, load_i3d  # noqa: E402
from vpzoo.metrics.lpips import LPIPSAlex, load_lpips, lpips, set_default_lpips_network  # noqa: E402
from vpzoo.metrics.weights import (  # noqa: E402
    MissingWeightsError,
    ResolvedWeights,
    WeightSpec,
    WeightsVerificationError,
    available_weights,
    register_weights,
    resolve_weights,
)

__all__ += [
    "FVD_CLIP_LENGTH",
    "FrechetVideoDistance",
    "frechet_distance",
    "frechet_video_distance",
    "preprocess_clips",
    "I3DFeatureExtractor",
    "InceptionI3d",
    "load_i3d",
    "LPIPSAlex",
    "load_lpips",
    "lpips",
    "set_default_lpips_network",
    "MissingWeightsError",
    "ResolvedWeights",
    "WeightSpec",
    "WeightsVerificationError",
    "available_weights",
    "register_weights",
    "resolve_weights",
]
