"""Improved VRNN: peak memory of one training step (forward + backward) at paper size, with and without activation
checkpointing of the renderer, measured on CPU as the process's peak resident memory.

Each configuration runs in its own subprocess (the peak RSS is a per-process high-water mark): it builds the model,
records the peak RSS, runs ``forward_loss`` + ``backward`` on random clips of ``batch`` clips, records the peak
again; the difference is the step's memory beyond the weights (gradients included, no optimiser state). Two batch
sizes give the memory per clip; the table extrapolates to the paper's batch of 16 and adds Adam's state (weights,
gradients and two moments: 16 bytes per parameter in float32). CPU allocations follow the same tensors a GPU step
allocates, but the allocators differ: treat the GPU figure as an estimate (cuDNN workspaces are not included).

Usage: python benchmarks/bench_vrnn_memory.py [--models vrnn_hier_bair vrnn_smmnist] [--batches 1 2]
                                              [--out benchmarks/results/vrnn_memory.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

CONFIGS = {  # name: (model class, constructor keywords, clip length)
    "vrnn_bair": ("VRNN", dict(channels=3, n_past=2, n_future=10, rec_loss="l1"), 12),
    "vrnn_hier_bair": ("VRNNHier", dict(channels=3, n_past=2, n_future=10, rec_loss="l1"), 12),
    "vrnn_smmnist": ("VRNN", dict(channels=1, n_past=10, n_future=10, rec_loss="bce"), 20),
}

CHILD = r"""
import json, resource, sys, torch
torch.set_num_threads(1)
from vpzoo.models import vrnn
name, kwargs, length, batch, ckpt = json.loads(sys.argv[1])
model = getattr(vrnn, name)(checkpoint_renderer=ckpt, **kwargs)
x = torch.rand(batch, length, kwargs["channels"], 64, 64)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
model.forward_loss(x)["loss"].backward()
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"parameters": model.num_parameters(), "step_kib": after - before}))
"""


def measure(config: str, batch: int, checkpoint: bool) -> dict:
    cls, kwargs, length = CONFIGS[config]
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps([cls, kwargs, length, batch, checkpoint])],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["vrnn_hier_bair"], choices=sorted(CONFIGS))
    parser.add_argument("--batches", nargs=2, type=int, default=[1, 2])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "vrnn_memory.json")
    args = parser.parse_args()
    rows = []
    for config in args.models:
        for checkpoint in (False, True):
            small, large = (measure(config, b, checkpoint) for b in args.batches)
            per_clip = (large["step_kib"] - small["step_kib"]) / (args.batches[1] - args.batches[0]) / 2**20  # GiB
            fixed = small["step_kib"] / 2**20 - per_clip * args.batches[0]
            params = small["parameters"]
            paper = fixed + 16 * per_clip + params * 16 / 2**30
            rows.append({"config": config, "checkpoint_renderer": checkpoint, "parameters": params,
                         "step_gib": {args.batches[0]: small["step_kib"] / 2**20,
                                      args.batches[1]: large["step_kib"] / 2**20},
                         "gib_per_clip": per_clip, "batch16_with_adam_gib": paper})
    print(f"{'config':<16} {'ckpt':>5} {'params':>12} " + " ".join(f"{'B=' + str(b):>8}" for b in args.batches)
          + f" {'GiB/clip':>9} {'B=16+Adam':>10}")
    for r in rows:
        steps = " ".join(f"{v:8.2f}" for v in r["step_gib"].values())
        print(f"{r['config']:<16} {str(r['checkpoint_renderer']):>5} {r['parameters']:>12,} {steps} "
              f"{r['gib_per_clip']:9.2f} {r['batch16_with_adam_gib']:10.1f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"float32_cpu_peak_rss": rows}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
