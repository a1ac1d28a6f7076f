"""Benchmark: FVD feature extraction throughput (clips/s) and peak memory on CPU, with a random-weight I3D.

The real I3D file cannot be downloaded on the benchmark machines, so the network is vpzoo's plain-PyTorch
:class:`~vpzoo.metrics.i3d.InceptionI3d` at full width (the same architecture and cost as the TF-Hub I3D) with
random weights, scripted and saved as a TorchScript file like ``i3d_torchscript.pt``, and loaded through the same
resolution path as the real weights (a :class:`~vpzoo.metrics.weights.WeightSpec` pinning the file's sha256).

It streams ``--clips`` clips of 16 frames (uint8, ``--size`` px, RGB; half "real", half "generated") through
:class:`~vpzoo.metrics.FrechetVideoDistance` in batches of ``--batch-size`` (preprocessing to 224x224 included),
then computes the FVD. Reported:

- throughput: clips per second over the whole stream (and per batch: median, best), preprocessing alone;
- peak memory: the process's peak resident set size (``resource.getrusage``; ``ru_maxrss``) after loading the
  network and after the whole stream, and the peak of Python-level allocations while streaming (``tracemalloc``; tensors
  allocated by torch's C++ allocator are not traced there, they show in the RSS);
- the time of the final Fréchet distance (400-d, float64).

Usage::

    python benchmarks/bench_fvd.py [--clips 256] [--batch-size 8] [--size 64] [--threads N]

Writes ``benchmarks/results/fvd.json``. Speed targets live here, never in tests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc
import warnings
from pathlib import Path

import torch


def rss_peak_mib() -> float:
    """Peak resident set size of this process so far, MiB (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024.0 if sys.platform != "darwin" else peak / 2**20


def make_clips(n: int, size: int, seed: int) -> torch.Tensor:
    """Smooth moving random textures, uint8 (n, 16, 3, size, size) (about 200 KB per 64-px clip)."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, 16, size // 8, size // 8, generator=g)
    video = torch.nn.functional.interpolate(low, size=(16, size, size), mode="trilinear", align_corners=False)
    return (video.permute(0, 2, 1, 3, 4) * 255).round().to(torch.uint8).contiguous()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=256, help="total clips (half real, half generated)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--size", type=int, default=64, help="frame side of the input clips")
    parser.add_argument("--width", type=float, default=1.0, help="I3D width multiplier (1.0 = real network)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "fvd.json")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    from vpzoo.cache import sha256_file
    from vpzoo.metrics.fvd import FrechetVideoDistance, preprocess_clips
    from vpzoo.metrics.i3d import InceptionI3d, load_i3d, save_torchscript
    from vpzoo.metrics.weights import WeightSpec

    rss_start = rss_peak_mib()
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(args.seed)
        path = Path(tmp) / "i3d_random.pt"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit.script deprecation notice
            save_torchscript(InceptionI3d(width_mult=args.width), path)
        spec = WeightSpec(name="i3d_random_bench", filename="i3d_random.pt", sha256=sha256_file(path))
        t0 = time.perf_counter()
        extractor = load_i3d(path, weights=spec)
        load_s = time.perf_counter() - t0
        n_params = sum(p.numel() for p in extractor.parameters())
        file_mib = path.stat().st_size / 2**20

    n_real = args.clips // 2
    n_fake = args.clips - n_real
    real = make_clips(n_real, args.size, args.seed + 1)
    fake = make_clips(n_fake, args.size, args.seed + 2)
    rss_loaded = rss_peak_mib()
    tracemalloc.start()  # Python-level allocations during streaming only

    # preprocessing alone (one batch), for the split of the cost
    t0 = time.perf_counter()
    preprocess_clips(real[: args.batch_size])
    pre_s = (time.perf_counter() - t0) / min(args.batch_size, n_real)

    fvd = FrechetVideoDistance(feature_extractor=extractor, batch_size=args.batch_size, sync_on_compute=False)
    batch_rates = []
    t_stream = time.perf_counter()
    done = 0
    for videos, is_real in ((real, True), (fake, False)):
        for start in range(0, videos.shape[0], args.batch_size):
            chunk = videos[start : start + args.batch_size]
            t0 = time.perf_counter()
            fvd.update(chunk, real=is_real)
            batch_rates.append(chunk.shape[0] / (time.perf_counter() - t0))
            done += chunk.shape[0]
            print(f"  {done}/{args.clips} clips, {batch_rates[-1]:.3f} clips/s, peak RSS {rss_peak_mib():.0f} MiB",
                  flush=True)
    stream_s = time.perf_counter() - t_stream
    t0 = time.perf_counter()
    report = fvd.report()
    fd_s = time.perf_counter() - t0
    rss_end = rss_peak_mib()
    _, py_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    result = {
        "benchmark": "fvd",
        "config": {
            "clips_total": args.clips,
            "clips_real": n_real,
            "clips_generated": n_fake,
            "clip_length": 16,
            "input": f"uint8 RGB {args.size}x{args.size}, resized to 224x224 (tf1 bilinear)",
            "batch_size": args.batch_size,
            "network": f"InceptionI3d(width_mult={args.width}), random weights, TorchScript, CPU",
            "network_parameters": n_params,
            "network_file_mib": round(file_mib, 1),
            "seed": args.seed,
        },
        "environment": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(),
            "load_average_at_end": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
            "niceness": os.nice(0) if hasattr(os, "nice") else None,
            "platform": platform.platform(),
            "note": "shared 2-core machine (other jobs running): timings are noisy lower bounds of the speed",
        },
        "results": {
            "throughput_clips_per_s": args.clips / stream_s,
            "throughput_batch_median_clips_per_s": statistics.median(batch_rates),
            "throughput_batch_best_clips_per_s": max(batch_rates),
            "seconds_per_clip": stream_s / args.clips,
            "preprocess_seconds_per_clip": pre_s,
            "stream_seconds": stream_s,
            "load_seconds": load_s,
            "frechet_distance_seconds": fd_s,
            "peak_rss_mib_after_imports": rss_start,
            "peak_rss_mib_after_load": rss_loaded,
            "peak_rss_mib_after_stream": rss_end,
            "peak_rss_increase_streaming_mib": rss_end - rss_loaded,
            "tracemalloc_python_peak_mib": py_peak / 2**20,
            "fvd_random_weights": report["fvd"],
            "n_real": report["n_real"],
            "n_generated": report["n_generated"],
        },
    }
    r = result["results"]
    print()
    print(f"FVD feature extraction, CPU, {args.clips} clips x 16 frames, batch {args.batch_size}, "
          f"{torch.get_num_threads()} threads")
    print(f"{'throughput (whole stream)':<38}{r['throughput_clips_per_s']:10.3f} clips/s")
    print(f"{'throughput (per batch, median / best)':<38}{r['throughput_batch_median_clips_per_s']:10.3f} / "
          f"{r['throughput_batch_best_clips_per_s']:.3f} clips/s")
    print(f"{'preprocessing alone':<38}{r['preprocess_seconds_per_clip'] * 1000:10.1f} ms/clip")
    print(f"{'peak RSS after load / after stream':<38}{r['peak_rss_mib_after_load']:10.0f} / "
          f"{r['peak_rss_mib_after_stream']:.0f} MiB")
    print(f"{'tracemalloc Python peak':<38}{r['tracemalloc_python_peak_mib']:10.1f} MiB")
    print(f"{'Frechet distance (400-d)':<38}{r['frechet_distance_seconds'] * 1000:10.1f} ms")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
