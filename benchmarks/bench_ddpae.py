"""DDPAE training-step speed: vpzoo's spatial-transformer grid (``pose_grid``, built by broadcasting) against the
reference way, ``F.affine_grid`` of the ``[[s, 0, x], [0, s, y]]`` matrices (the official code's call).

Both compute the same grid (exactly, in float64; ``tests/test_ddpae.py`` checks values and gradients). The
reference way is swapped in by replacing ``vpzoo.models.ddpae.pose_grid`` for the reference steps only; the two ways
alternate step by step on the same model, optimiser and batch, so a busy machine slows both alike. The clips are
random sparse binary frames (the step's cost does not depend on the content).

Usage: python benchmarks/bench_ddpae.py [--config configs/ddpae/bouncing_balls.yaml] [--batch 16] [--steps 8]
                                        [--threads 2] [--out benchmarks/results/ddpae_step.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml

import vpzoo.models.ddpae as ddpae_module


def affine_grid_way(pose: torch.Tensor, size: int, align_corners: bool = True) -> torch.Tensor:
    """The reference: ``F.affine_grid`` of θ = [[s, 0, x], [0, s, y]] (a batched matmul of an expanded base grid)."""
    s, x, y = pose.unbind(-1)
    zero = torch.zeros_like(s)
    theta = torch.stack([s, zero, x, zero, s, y], dim=-1).view(-1, 2, 3)
    return F.affine_grid(theta, [pose.shape[0], 1, size, size], align_corners=align_corners)


def main() -> None:
    root = Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(root / "configs/ddpae/bouncing_balls.yaml"))
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=8, help="timed steps of each way (after 2 warm-up steps each)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(root / "benchmarks/results/ddpae_step.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    hparams = yaml.safe_load(Path(args.config).read_text())["model"]["init_args"]
    model = ddpae_module.DDPAE(**hparams)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.5, 0.999))
    frames = model.n_past + model.n_future
    clips = (torch.rand(args.batch, frames, hparams["channels"], hparams["image_size"], hparams["image_size"])
             > 0.94).float()
    ours = ddpae_module.pose_grid

    def step(grid_fn) -> float:
        ddpae_module.pose_grid = grid_fn
        try:
            start = time.perf_counter()
            loss = model.forward_loss(clips)["loss"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            return time.perf_counter() - start
        finally:
            ddpae_module.pose_grid = ours

    for _ in range(2):
        step(affine_grid_way), step(ours)
    times: dict[str, list[float]] = {"reference": [], "vpzoo": []}
    for _ in range(args.steps):
        times["reference"].append(step(affine_grid_way))
        times["vpzoo"].append(step(ours))

    ref, new = statistics.median(times["reference"]), statistics.median(times["vpzoo"])
    result = {
        "config": os.path.relpath(args.config, root), "batch": args.batch, "threads": args.threads,
        "steps": args.steps, "parameters": sum(p.numel() for p in model.parameters()),
        "reference_s_per_step": ref, "vpzoo_s_per_step": new, "speedup": ref / new,
        "reference_clips_per_s": args.batch / ref, "vpzoo_clips_per_s": args.batch / new,
        "times": times, "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
        "load_average": os.getloadavg(), "torch": torch.__version__,
    }
    print(f"{'way':<32}{'s/step':>10}{'clips/s':>10}")
    print(f"{'reference (F.affine_grid)':<32}{ref:>10.3f}{args.batch / ref:>10.1f}")
    print(f"{'vpzoo (pose_grid)':<32}{new:>10.3f}{args.batch / new:>10.1f}")
    print(f"speedup {ref / new:.2f}x  (batch {args.batch}, {args.threads} threads, load {os.getloadavg()[0]:.1f})")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
