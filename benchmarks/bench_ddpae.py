"""DDPAE training-step speed on CPU, two ways alternating on one model, optimiser and batch (a busy machine slows
both alike):

- ``--compare grid`` (default): vpzoo's spatial-transformer grid (``pose_grid``, built by broadcasting) against the
  reference way, ``F.affine_grid`` of the ``[[s, 0, x], [0, s, y]]`` matrices (the official code's call). Both compute
  the same grid (exactly, in float64; ``tests/test_ddpae.py`` checks values and gradients). The reference way is
  swapped in by replacing ``vpzoo.models.ddpae.pose_grid`` for the reference steps only.
- ``--compare paste``: vpzoo's paste of each object on a window around its box (``composite_objects`` with the
  scale constraint's ``min_scale``) against the reference way, every object pasted on the whole frame and the ``K``
  components summed (the official code's way; the same values, ``tests/test_ddpae.py``). The reference is swapped in
  by calling ``composite_objects`` without ``min_scale`` for the reference steps only.
- ``--compare precision``: float32 against bfloat16 autocast on the CPU (``torch.autocast("cpu", torch.bfloat16)``,
  what Lightning's ``--trainer.precision bf16-mixed`` runs), for CPUs with native bf16 (AVX512-BF16/AMX). Also
  records how far the bf16 loss of one batch lies from the float32 one (the same weights, before any step).

The clips are random sparse binary frames (the step's cost does not depend on the content).

Usage: python benchmarks/bench_ddpae.py [--compare grid|paste|precision] [--config configs/ddpae/bouncing_balls.yaml]
                                        [--batch 16] [--steps 8] [--threads 2] [--out JSON]
       (default JSON: benchmarks/results/ddpae_step.json, ddpae_step_<paste|precision>.json for the others)
"""

from __future__ import annotations

import argparse
import contextlib
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
    parser.add_argument("--compare", choices=("grid", "paste", "precision"), default="grid")
    parser.add_argument("--config", default=str(root / "configs/ddpae/bouncing_balls.yaml"))
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=8, help="timed steps of each way (after 2 warm-up steps each)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", help="JSON to write (default: benchmarks/results/ddpae_step[_precision].json)")
    args = parser.parse_args()
    out = args.out or str(root / "benchmarks/results" / (
        "ddpae_step.json" if args.compare == "grid" else f"ddpae_step_{args.compare}.json"))
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    hparams = yaml.safe_load(Path(args.config).read_text())["model"]["init_args"]
    model = ddpae_module.DDPAE(**hparams)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.5, 0.999))
    frames = model.n_past + model.n_future
    clips = (torch.rand(args.batch, frames, hparams["channels"], hparams["image_size"], hparams["image_size"])
             > 0.94).float()
    ours, our_composite = ddpae_module.pose_grid, ddpae_module.composite_objects

    @contextlib.contextmanager
    def reference_grid():
        ddpae_module.pose_grid = affine_grid_way
        try:
            yield
        finally:
            ddpae_module.pose_grid = ours

    @contextlib.contextmanager
    def whole_frame_paste():
        ddpae_module.composite_objects = lambda objects, pose, size, min_scale=None, align_corners=True: (
            our_composite(objects, pose, size, None, align_corners))
        try:
            yield
        finally:
            ddpae_module.composite_objects = our_composite

    if args.compare == "grid":  # (baseline, candidate): the reference way first
        ways = {"reference (F.affine_grid)": reference_grid, "vpzoo (pose_grid)": contextlib.nullcontext}
    elif args.compare == "paste":
        ways = {"reference (whole-frame paste)": whole_frame_paste,
                "vpzoo (window per box)": contextlib.nullcontext}
    else:
        ways = {"float32": contextlib.nullcontext,
                "bf16 autocast (bf16-mixed)": lambda: torch.autocast("cpu", dtype=torch.bfloat16)}
    (base_name, base), (cand_name, cand) = ways.items()

    extra = {}
    if args.compare == "precision":
        with torch.no_grad():  # the same weights and the same noise (the loss samples every latent)
            torch.manual_seed(1)
            loss32 = model.forward_loss(clips)["loss"].item()
            torch.manual_seed(1)
            with cand():
                loss16 = model.forward_loss(clips)["loss"].item()
        extra = {"float32_loss": loss32, "bf16_loss": loss16, "loss_relative_difference": abs(loss16 - loss32) / abs(loss32)}

    def step(way) -> float:
        start = time.perf_counter()
        with way():
            loss = model.forward_loss(clips)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return time.perf_counter() - start

    for _ in range(2):
        step(base), step(cand)
    times: dict[str, list[float]] = {base_name: [], cand_name: []}
    for _ in range(args.steps):
        times[base_name].append(step(base))
        times[cand_name].append(step(cand))

    ref, new = statistics.median(times[base_name]), statistics.median(times[cand_name])
    result = {
        "compare": args.compare, "config": os.path.relpath(args.config, root), "batch": args.batch,
        "threads": args.threads, "steps": args.steps, "parameters": sum(p.numel() for p in model.parameters()),
        "baseline": base_name, "candidate": cand_name,
        "baseline_s_per_step": ref, "candidate_s_per_step": new, "speedup": ref / new,
        "baseline_clips_per_s": args.batch / ref, "candidate_clips_per_s": args.batch / new, **extra,
        "times": times, "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
        "bf16_cpu": _cpu_has_bf16(), "load_average": os.getloadavg(), "torch": torch.__version__,
    }
    print(f"{'way':<32}{'s/step':>10}{'clips/s':>10}")
    print(f"{base_name:<32}{ref:>10.3f}{args.batch / ref:>10.1f}")
    print(f"{cand_name:<32}{new:>10.3f}{args.batch / new:>10.1f}")
    print(f"speedup {ref / new:.2f}x  (batch {args.batch}, {args.threads} threads, load {os.getloadavg()[0]:.1f})")
    if extra:
        print(f"loss of one batch, same weights: float32 {loss32:.2f}, bf16 {loss16:.2f} "
              f"(relative difference {extra['loss_relative_difference']:.1e})")
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(result, indent=2) + "\n")


def _cpu_has_bf16() -> bool | None:
    """Whether /proc/cpuinfo lists avx512_bf16 or amx_bf16 (None where there is no /proc/cpuinfo)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    return "avx512_bf16" in flags or "amx_bf16" in flags


if __name__ == "__main__":
    main()
