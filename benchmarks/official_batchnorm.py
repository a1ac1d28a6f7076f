"""Measurement: what sampling with BatchNorm in train mode (the official generate_svg_lp.py) changes for an SVG model.

The SVG authors' generation script keeps the encoder and decoder in BatchNorm *train* mode, so every frame is
normalised with the statistics of the clips generated alongside it (the batch of 100 test clips, one sample and one
time step at a time). vpzoo samples in eval mode (running statistics). ``predict(..., batchnorm="batch")``
reproduces the official behaviour. This script predicts the same clips with the same seed both ways and reports:

- the mean and max absolute pixel difference between the two modes' frames,
- PSNR/SSIM (best of N samples, averaged over clips and frames, SVG protocol: SSIM data range 1 on [0, 1]) of each
  mode against the ground truth,

for batches of ``--batch`` clips (the official script used 100; with fewer clips the batch statistics are noisier).

Usage::

    python benchmarks/official_batchnorm.py [--checkpoint svg_lp_smmnist] [--clips 64] [--batch 32] \
        [--num-samples 10] [--n-future 10] [--out benchmarks/results/official_batchnorm.json]

``--checkpoint`` takes anything ``vpzoo.load`` takes: ``svg_lp_bair`` / ``svg_lp_smmnist_official`` (the authors'
weights, downloaded and converted on first use; needs network access once), or vpzoo's own ``svg_lp_smmnist``.
The clips come from vpzoo's fixed Stochastic Moving MNIST test set (2 digits), so a 1x64x64 model is expected.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default="svg_lp_smmnist")
    parser.add_argument("--clips", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--num-samples", type=int, default=10)
    parser.add_argument("--n-future", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/official_batchnorm.json")
    args = parser.parse_args()

    import vpzoo
    from vpzoo.data import StochasticMovingMNISTDataModule
    from vpzoo.metrics import psnr, ssim

    model = vpzoo.load(args.checkpoint)
    n_past = model.n_past
    data = StochasticMovingMNISTDataModule(num_digits=2, eval_seq_len=n_past + args.n_future, num_test=args.clips,
                                           eval_batch_size=args.batch)
    data.prepare_data()
    data.setup("test")
    rows = {"running": {"psnr": [], "ssim": []}, "batch": {"psnr": [], "ssim": []}}
    diffs, maxdiff = [], 0.0
    start = time.perf_counter()
    for i, clips in enumerate(data.test_dataloader()):
        clips = clips.float()
        if clips.max() > 1.5:
            clips = clips / 255.0
        context, truth = clips[:, :n_past], clips[:, n_past:]
        preds = {mode: model.predict(context, args.n_future, args.num_samples, seed=args.seed + i, batchnorm=mode)
                 for mode in ("running", "batch")}
        d = (preds["batch"] - preds["running"]).abs()
        diffs.append(d.mean().item())
        maxdiff = max(maxdiff, d.max().item())
        for mode, pred in preds.items():
            b, n = pred.shape[:2]
            rep = truth[:, None].expand_as(pred).flatten(0, 1)
            p = psnr(pred.flatten(0, 1), rep).view(b, n, -1).clamp(max=100)
            s = ssim(pred.flatten(0, 1), rep).view(b, n, -1)
            rows[mode]["psnr"].append(p.mean(-1).max(1).values.mean().item())  # best of N per clip (mean over t)
            rows[mode]["ssim"].append(s.mean(-1).max(1).values.mean().item())
    elapsed = time.perf_counter() - start
    result = {
        "checkpoint": args.checkpoint, "clips": args.clips, "batch": args.batch, "num_samples": args.num_samples,
        "context": n_past, "n_future": args.n_future, "seed": args.seed,
        "mean_abs_pixel_difference": sum(diffs) / len(diffs), "max_abs_pixel_difference": maxdiff,
        "running": {k: sum(v) / len(v) for k, v in rows["running"].items()},
        "batch_statistics": {k: sum(v) / len(v) for k, v in rows["batch"].items()},
        "seconds": elapsed, "machine": {"platform": platform.platform(), "load_average": os.getloadavg(),
                                        "torch": torch.__version__, "threads": torch.get_num_threads()},
    }
    print(f"{args.checkpoint}: {args.clips} SM-MNIST test clips in batches of {args.batch}, {n_past} -> "
          f"{args.n_future} frames, best of {args.num_samples}")
    print(f"{'BatchNorm at sampling':<34}{'PSNR':>8}{'SSIM':>8}")
    print(f"{'running statistics (vpzoo default)':<34}{result['running']['psnr']:>8.3f}{result['running']['ssim']:>8.4f}")
    print(f"{'batch statistics (official script)':<34}{result['batch_statistics']['psnr']:>8.3f}"
          f"{result['batch_statistics']['ssim']:>8.4f}")
    print(f"mean |difference| per pixel {result['mean_abs_pixel_difference']:.4f}, max "
          f"{result['max_abs_pixel_difference']:.4f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
