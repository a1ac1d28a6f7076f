"""VideoFlow size and speed: parameter counts of the published presets against the sheet, and the training-step and
sampling time of a configuration on this machine.

Rows:

- parameters of ``bair_quant``, ``bair_qual`` and ``shapes`` (built on the ``meta`` device: no memory, no time),
  split into the flow and the priors, beside the sheet's derived counts (models-videoflow-savp-sv2p.md §1.10);
- one training step (objective on a batch of random 4-frame patches, backward, Adam) and the sampling of
  ``--future`` frames for one clip, at the size of ``--config`` (default: the reduced SM-MNIST config; the paper
  size needs a GPU: ``--config configs/videoflow/bair.yaml --batch 5 --device cuda``).

Times are the best of ``--repeats`` after a warm-up.

Usage: python benchmarks/bench_videoflow.py [--config configs/videoflow/smmnist.yaml] [--batch 8] [--threads N]
       [--device cpu] [--out benchmarks/results/videoflow.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch
import yaml

from vpzoo.models.videoflow import VIDEOFLOW_PRESETS, VideoFlow

ROOT = Path(__file__).resolve().parents[1]
SHEET = {"bair_quant": (52.4e6, 15.1e6, 67e6), "bair_qual": (29.8e6, 15.1e6, 45e6), "shapes": None}


def best_time(fn, repeats: int, device: str) -> float:
    times = []
    for i in range(repeats + 1):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        if i:  # the first run is a warm-up
            times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/videoflow/smmnist.yaml")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--future", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    results: dict = {"machine": platform.platform(), "threads": torch.get_num_threads(),
                     "loadavg": os.getloadavg(), "presets": {}}
    print(f"{'preset':<12} {'flow':>12} {'priors':>12} {'total':>12}   sheet (flow + priors = total)")
    for name in VIDEOFLOW_PRESETS:
        with torch.device("meta"):
            model = VideoFlow.from_preset(name)
        total = model.num_parameters()
        flow = sum(p.numel() for p in model.levels.parameters())
        sheet = SHEET[name]
        ref = f"{sheet[0] / 1e6:.1f}M + {sheet[1] / 1e6:.1f}M = {sheet[2] / 1e6:.0f}M" if sheet else "not on the sheet"
        print(f"{name:<12} {flow:>12,} {total - flow:>12,} {total:>12,}   {ref}")
        results["presets"][name] = {"flow": flow, "priors": total - flow, "total": total, "sheet": sheet}

    config = yaml.safe_load((ROOT / args.config).read_text())["model"]["init_args"]
    torch.manual_seed(0)
    model = VideoFlow(**config).to(args.device)
    t = config["num_train_frames"]
    clips = (torch.rand(args.batch, t, config["channels"], config["image_size"], config["image_size"],
                        device=args.device) * 255).round() / 255
    model.initialize(clips)
    optimizer = model.configure_optimizers()["optimizer"]

    def step() -> None:
        loss = model.objective(clips).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step_s = best_time(step, args.repeats, args.device)
    generator = torch.Generator(device=args.device).manual_seed(0)
    context = clips[:1, : config["n_past"]]
    with torch.inference_mode():
        sample_s = best_time(lambda: model.sample_future(context, args.future, 1, generator), args.repeats,
                             args.device)
    print(f"\n{args.config} ({model.num_parameters():,} parameters) on {args.device}, {torch.get_num_threads()} "
          f"thread(s): training step at batch {args.batch}: {step_s:.2f} s; sampling {args.future} frames for one "
          f"clip: {sample_s:.2f} s")
    results.update(config=args.config, batch=args.batch, device=args.device, train_step_s=step_s,
                   sample_s=sample_s, future=args.future)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
