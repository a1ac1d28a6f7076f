"""Benchmark: batched ``vpzoo.metrics.ssim`` against a per-frame loop of scikit-image ``structural_similarity``.

Both compute SSIM of the same ``clips x frames`` frames with the same ``data_range`` (scikit-image defaults
otherwise). The values are checked to agree to 1e-5, a table is printed, and the numbers are written to
``benchmarks/results/ssim.json``.

``vpzoo.metrics.ssim`` is timed twice: the default eager path and ``compile=True`` (torch.compile; its one-off
compilation happens before timing and is reported separately).

Timings are the best (minimum) and the median of ``--repeats`` runs, after one warm-up run; the speedup is the
ratio of the best times. scikit-image is run on float64 arrays (the exact reference, and the precision vpzoo
computes in) and, for information, on float32 arrays (skimage then computes in float32). Torch uses its default
number of threads.

Usage::

    python benchmarks/bench_ssim.py [--clips 16] [--frames 20] [--channels 1] [--size 64] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from vpzoo.metrics import ssim

TARGET_SPEEDUP = 20.0
TOLERANCE = 1e-5


def make_videos(clips: int, frames: int, channels: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A smooth-ish target video and a noisy, slightly shifted prediction, float32 in [0, 1]: (B, T, C, H, W)."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(clips * frames * channels, 1, size // 4, size // 4, generator=g)
    smooth = torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
    target = smooth.view(clips, frames, channels, size, size)
    pred = torch.roll(target, shifts=1, dims=-1) + 0.05 * torch.randn(target.shape, generator=g)
    return pred.clamp(0, 1), target.clamp(0, 1)


def time_it(fn: Callable[[], object], repeats: int, sync: Callable[[], None]) -> list[float]:
    fn()  # warm-up
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return times


def skimage_loop(pred: np.ndarray, target: np.ndarray, data_range: float) -> np.ndarray:
    from skimage.metrics import structural_similarity

    out = np.empty(pred.shape[:2])
    for b in range(pred.shape[0]):
        for t in range(pred.shape[1]):
            out[b, t] = structural_similarity(target[b, t], pred[b, t], data_range=data_range, channel_axis=0)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--data-range", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="device for vpzoo's SSIM (scikit-image always runs on CPU)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "ssim.json")
    args = parser.parse_args(argv)

    import skimage

    device = torch.device(args.device)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    pred, target = make_videos(args.clips, args.frames, args.channels, args.size, args.seed)
    n_frames = args.clips * args.frames
    pred_dev, target_dev = pred.to(device), target.to(device)
    pred64, target64 = pred.double().numpy(), target.double().numpy()
    pred32, target32 = pred.numpy(), target.numpy()

    with torch.inference_mode():
        ours = ssim(pred_dev, target_dev, data_range=args.data_range).cpu().double().numpy()
    ref = skimage_loop(pred64, target64, args.data_range)
    max_diff = float(np.abs(ours - ref).max())
    max_diff32 = float(np.abs(skimage_loop(pred32, target32, args.data_range) - ref).max())

    compile_start = time.perf_counter()
    with torch.inference_mode():
        ours_compiled = ssim(pred_dev, target_dev, data_range=args.data_range, compile=True).cpu().double().numpy()
    compile_seconds = time.perf_counter() - compile_start
    max_diff_compiled = float(np.abs(ours_compiled - ref).max())

    def run_ours(compile: bool) -> None:
        with torch.inference_mode():
            ssim(pred_dev, target_dev, data_range=args.data_range, compile=compile)

    eager_name = f"vpzoo.metrics.ssim (batched, {device.type})"
    compiled_name = f"vpzoo.metrics.ssim compile=True ({device.type})"
    timings = {
        eager_name: time_it(lambda: run_ours(False), args.repeats, sync),
        compiled_name: time_it(lambda: run_ours(True), args.repeats, sync),
        "skimage loop (float64)": time_it(lambda: skimage_loop(pred64, target64, args.data_range), args.repeats,
                                          lambda: None),
        "skimage loop (float32)": time_it(lambda: skimage_loop(pred32, target32, args.data_range), args.repeats,
                                          lambda: None),
    }
    baseline = min(timings["skimage loop (float64)"])
    rows = []
    for method, times in timings.items():
        best = min(times)
        rows.append({
            "method": method,
            "seconds_best": best,
            "seconds_median": statistics.median(times),
            "frames_per_s": n_frames / best,
            "speedup_vs_skimage_float64": baseline / best,
        })

    print(f"SSIM of {args.clips} clips x {args.frames} frames x {args.channels}x{args.size}x{args.size} "
          f"({n_frames} frames), data_range={args.data_range}, torch threads={torch.get_num_threads()}, "
          f"best of {args.repeats}")
    header = f"{'method':<44} {'best s':>9} {'median s':>9} {'frames/s':>10} {'speedup':>8}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['method']:<44} {r['seconds_best']:>9.4f} {r['seconds_median']:>9.4f} "
              f"{r['frames_per_s']:>10.0f} {r['speedup_vs_skimage_float64']:>7.1f}x")
    speedup = rows[0]["speedup_vs_skimage_float64"]
    speedup_compiled = rows[1]["speedup_vs_skimage_float64"]
    agree = max(max_diff, max_diff_compiled) <= TOLERANCE
    print(f"max |vpzoo - skimage(float64)| = {max_diff:.3g} eager, {max_diff_compiled:.3g} compiled "
          f"({'OK' if agree else 'MISMATCH'}, tolerance {TOLERANCE}); skimage float32 vs float64: {max_diff32:.3g}")
    print(f"first compile=True call (compilation included): {compile_seconds:.1f} s")
    for name, value in (("eager", speedup), ("compile=True", speedup_compiled)):
        print(f"speedup {name} {value:.1f}x (target {TARGET_SPEEDUP:.0f}x: "
              f"{'met' if value >= TARGET_SPEEDUP else 'NOT met'})")

    result = {
        "benchmark": "ssim",
        "config": {
            "clips": args.clips, "frames": args.frames, "channels": args.channels, "size": args.size,
            "n_frames": n_frames, "data_range": args.data_range, "repeats": args.repeats, "seed": args.seed,
            "device": str(device), "timing": "best and median of repeats after one warm-up run",
        },
        "environment": {
            "python": sys.version.split()[0], "torch": torch.__version__, "numpy": np.__version__,
            "skimage": skimage.__version__, "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
            "platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cuda_device": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        },
        "results": rows,
        "max_abs_diff_vs_skimage_float64": max_diff,
        "max_abs_diff_compiled_vs_skimage_float64": max_diff_compiled,
        "first_compiled_call_seconds": compile_seconds,
        "max_abs_diff_skimage_float32_vs_float64": max_diff32,
        "values_agree": agree,
        "tolerance": TOLERANCE,
        "speedup": speedup,
        "speedup_compiled": speedup_compiled,
        "target_speedup": TARGET_SPEEDUP,
        "target_met": speedup >= TARGET_SPEEDUP,
        "target_met_compiled": speedup_compiled >= TARGET_SPEEDUP,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
