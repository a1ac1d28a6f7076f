"""Evaluate a checkpoint on the fixed SM-MNIST test set with the SVG protocol, next to the copy-last baseline.

    python examples/evaluate_svg_protocol.py CHECKPOINT [--num-samples 100] [--json metrics.json]

The protocol of Denton & Fergus (2018) as the community uses it on Stochastic Moving MNIST: the first 5 frames of
each test clip are the context, the next 20 are predicted; N samples are drawn per clip and the best one is kept,
chosen per clip by its mean SSIM for the SSIM score and by its mean PSNR for the PSNR score; scores are averaged
over the predicted frames and the clips. Metric settings are the ``svg`` protocol of :mod:`vpzoo.metrics` (SSIM with
data_range 2, as the paper's evaluation code computed it). The clips are vpzoo's fixed SM-MNIST test set (1000
clips, generated once and cached; ``--num-test K`` scores the first K), so every run and every model is scored on
the same clips. N is printed with every number.

This is the ``smmnist_svg`` benchmark of :mod:`vpzoo.leaderboard` called from Python (the command line equivalent
is ``vpzoo benchmark smmnist_svg --checkpoint CHECKPOINT``); ``--context``/``--n-future`` show how to derive a
variant of a benchmark protocol. ``--json`` writes the metric records in the format of checkpoints.yaml
(``vpzoo add-checkpoint --metrics``), with the per-frame curves beside them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json

import torch

from vpzoo.leaderboard import format_report, get_benchmark, run_benchmark


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="checkpoint name, folder, file or hf://owner/repo[@revision]")
    parser.add_argument("--num-samples", type=int, default=100, help="N of best-of-N (the SVG paper: 100)")
    parser.add_argument("--context", type=int, default=5)
    parser.add_argument("--n-future", type=int, default=20)
    parser.add_argument("--num-test", type=int, default=1000, help="score the first K clips of the fixed set")
    parser.add_argument("--batch-size", type=int, default=8, help="clips per batch (memory: batch x N samples)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (batch i uses seed + i)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", help="write the metric records here")
    args = parser.parse_args()

    benchmark = get_benchmark("smmnist_svg")
    if (args.context, args.n_future) != (benchmark.context_frames, benchmark.predicted_frames):
        benchmark = dataclasses.replace(benchmark, name=f"smmnist_svg_{args.context}to{args.n_future}",
                                        context_frames=args.context, predicted_frames=args.n_future)
    result = run_benchmark(args.checkpoint, benchmark, num_samples=args.num_samples, num_test=args.num_test,
                           batch_size=args.batch_size, seed=args.seed, device=args.device)
    print(format_report(benchmark, measured=[result]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"checkpoint": str(args.checkpoint), "metrics": result.metric_records(),
                       "per_frame": result.per_frame, "seed": args.seed, "batch_size": args.batch_size,
                       "seconds": result.seconds}, f, indent=2)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
