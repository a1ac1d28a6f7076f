"""SM-MNIST data speed: on-the-fly training-stream generation against SVG-LP's training consumption.

Measures, in a single process (no DataLoader workers), how many 15-frame SM-MNIST training sequences per
second vpzoo's endless training stream (:class:`vpzoo.data.SMMNISTTrainStream`, the exact object the
DataModule's ``train_dataloader`` iterates) produces at batch 16, i.e. generation + conversion to torch
tensors. Also reports the one-off costs: loading/resizing the digit pool and generating the fixed 1000-clip
test set of 25 frames.

Requirement: generation >= 10x the rate at which SVG-LP training consumes sequences. ``SVG_LP_CONSUMPTION``
is a placeholder anchor (about 7 sequences/s on the project's 2-core machine); pass ``--consumption`` or
call :func:`measure_smmnist_generation` from a script that measured the model side and compare there.

Usage: python benchmarks/bench_data.py [--quick] [--consumption 7.0] [--out benchmarks/results/data.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from vpzoo.data.mnist_digits import load_digit_pool
from vpzoo.data.smmnist import SMMNISTTrainStream, generate_smmnist

SVG_LP_CONSUMPTION = 7.0  # sequences/s, SVG-LP training on this machine (anchor supplied by the lead)
REQUIRED_FACTOR = 10.0


def measure_smmnist_generation(
    batch_size: int = 16,
    seq_len: int = 15,
    num_batches: int = 200,
    warmup_batches: int = 5,
    repeats: int = 3,
    num_digits: int = 2,
    image_size: int = 64,
    seed: int = 0,
) -> dict:
    """Throughput of the SM-MNIST training stream (single process). Returns a JSON-serialisable dict.

    ``sequences_per_s`` is the median over ``repeats`` timed runs of ``num_batches`` batches each.
    """
    t0 = time.perf_counter()
    pool = load_digit_pool("train", 32)
    digits_s = time.perf_counter() - t0

    stream = SMMNISTTrainStream(
        pool, batch_size, seq_len, num_digits=num_digits, image_size=image_size, seed=seed
    )
    it = iter(stream)
    for _ in range(warmup_batches):
        next(it)
    rates = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(num_batches):
            batch = next(it)
        dt = time.perf_counter() - t
        rates.append(num_batches * batch_size / dt)
    assert batch.shape == (batch_size, seq_len, 1, image_size, image_size)
    rate = float(np.median(rates))
    return {
        "batch_size": batch_size,
        "seq_len": seq_len,
        "num_digits": num_digits,
        "image_size": image_size,
        "num_batches": num_batches,
        "repeats": repeats,
        "sequences_per_s": rate,
        "sequences_per_s_runs": rates,
        "frames_per_s": rate * seq_len,
        "ms_per_batch": 1000.0 * batch_size / rate,
        "digit_pool_load_s": digits_s,
        "processes": 1,
    }


def measure_eval_set_generation(num_clips: int = 1000, seq_len: int = 25, seed: int = 42) -> dict:
    """Time to generate a fixed test set (uint8) the way the DataModule does (without writing the cache)."""
    pool = load_digit_pool("test", 32)
    t = time.perf_counter()
    data = generate_smmnist(pool, num_clips, seq_len, np.random.default_rng(seed), dtype="uint8")
    dt = time.perf_counter() - t
    return {"num_clips": num_clips, "seq_len": seq_len, "seconds": dt, "megabytes": data.nbytes / 2**20}


def _merge_json(path: Path, key: str, value: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {}
    if path.is_file():
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError:
            data = {}
    data[key] = value
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer batches (smoke test)")
    ap.add_argument("--consumption", type=float, default=SVG_LP_CONSUMPTION, help="SVG-LP training seq/s")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "data.json")
    args = ap.parse_args()

    torch.set_num_threads(1)
    gen = measure_smmnist_generation(num_batches=20 if args.quick else 200, repeats=1 if args.quick else 3)
    ev = measure_eval_set_generation(num_clips=100 if args.quick else 1000)
    factor = gen["sequences_per_s"] / args.consumption
    result = {
        "generation": gen,
        "eval_set_generation": ev,
        "svg_lp_consumption_seq_per_s": args.consumption,
        "svg_lp_consumption_source": "anchor passed to bench_data.py (not measured here)",
        "speedup_over_consumption": factor,
        "required_factor": REQUIRED_FACTOR,
        "meets_requirement": bool(factor >= REQUIRED_FACTOR),
        "env": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "torch": torch.__version__,
            "cpu_count": os.cpu_count(),
            "machine": platform.machine(),
            "quick": bool(args.quick),
        },
    }
    rows = [
        ("SM-MNIST train stream (B=16, T=15, 1 process)", f"{gen['sequences_per_s']:.0f} seq/s"),
        ("  per batch", f"{gen['ms_per_batch']:.2f} ms"),
        ("  frames", f"{gen['frames_per_s']:.0f} frames/s"),
        ("SVG-LP training consumption (anchor)", f"{args.consumption:.1f} seq/s"),
        ("generation / consumption", f"{factor:.0f}x (required >= {REQUIRED_FACTOR:.0f}x)"),
        ("digit pool load + resize (4,000 digits)", f"{gen['digit_pool_load_s']:.2f} s"),
        (
            f"fixed test set ({ev['num_clips']} x {ev['seq_len']} frames, uint8)",
            f"{ev['seconds']:.2f} s, {ev['megabytes']:.0f} MiB",
        ),
    ]
    w = max(len(r[0]) for r in rows)
    print(f"{'measure':<{w}} | value")
    print("-" * w + "-|-" + "-" * 24)
    for name, val in rows:
        print(f"{name:<{w}} | {val}")
    print("requirement met" if result["meets_requirement"] else "REQUIREMENT NOT MET")
    _merge_json(args.out, "smmnist", result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
