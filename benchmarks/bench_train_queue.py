"""Training speed of every checkpoint in the training queue, at its recipe's batch, to plan GPU runs.

For each queue entry (checkpoints.yaml ``queue``; `vpzoo list --all`), the model is built from its recipe exactly as
`vpzoo train-checkpoint` builds it (:func:`vpzoo.zoo.training.build_from_recipe`) and trained for a few iterations
by a Lightning Trainer on random clips of the recipe's shape ``(batch, seq_len, C, H, W)`` (the data modules need
downloads for BAIR/KTH; a model's step costs the same on random pixels). The first iteration is warm-up; the
median of the others gives iterations/s and clips/s, and from them the hours the paper's remaining steps would take
at this rate.

What it measures on a CPU is the floor; run it on the GPU machine (same command) to get the GPU rate beside it.
DRNet's recipes start with the autoencoder stage (4 frames per clip), so its rate is that stage's.

Usage: nice -n 10 python benchmarks/bench_train_queue.py [--steps 3] [--only NAME ...] [--accelerator cpu]
       [--precision 32-true] [--batch B] [--out benchmarks/results/train_queue_cpu.json]
On the shared 2-core CPUs here a recipe batch of 100 takes minutes per iteration, so the whole queue was measured
with --batch 10 and the recipe batch only for svg_lp_smmnist (results/train_queue_cpu*.json say which).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch


def _clips(batch: int, seq_len: int, channels: int, size: int, n_batches: int):
    """A DataLoader of ``n_batches`` random batches ``(batch, seq_len, C, H, W)`` in [0, 1]."""
    from torch.utils.data import DataLoader, Dataset

    class Random(Dataset):
        def __len__(self) -> int:
            return batch * n_batches

        def __getitem__(self, i: int) -> torch.Tensor:
            g = torch.Generator().manual_seed(i)
            return torch.rand(seq_len, channels, size, size, generator=g)

    return DataLoader(Random(), batch_size=batch, shuffle=False, num_workers=0)


def measure(entry: dict, steps: int, accelerator: str, precision: str, max_step_seconds: float,
            batch: int | None = None) -> dict:
    import lightning as L
    from lightning.pytorch.callbacks import Callback

    from vpzoo.zoo.training import build_from_recipe

    with tempfile.TemporaryDirectory() as work:
        cli = build_from_recipe(entry, work_dir=work, trainer_settings={"accelerator": accelerator, "devices": 1})
    model, data = cli.model, cli.datamodule
    recipe_batch = int(data.hparams["batch_size"])
    batch = recipe_batch if batch is None else min(batch, recipe_batch)
    seq_len = int(data.hparams.get("seq_len"))
    channels, size = int(model.channels), int(model.image_size)
    times: list[float] = []

    class Timer(Callback):
        def on_train_batch_start(self, trainer, pl_module, batch_, batch_idx) -> None:  # noqa: ANN001
            self.t = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch_, batch_idx) -> None:  # noqa: ANN001
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            times.append(time.perf_counter() - self.t)
            if times[-1] > max_step_seconds and len(times) >= 2:
                trainer.should_stop = True  # slow model: two iterations are enough

    trainer = L.Trainer(accelerator=accelerator, devices=1, precision=precision, max_steps=10**9,
                        limit_train_batches=steps, max_epochs=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                        limit_val_batches=0, callbacks=[Timer()])
    trainer.fit(model, train_dataloaders=_clips(batch, seq_len, channels, size, steps))
    timed = times[1:] or times
    per_step = statistics.median(timed)
    q = entry["queue"]
    remaining = q["paper_steps"] - q["steps_trained"]
    return {
        "name": entry["name"], "model": entry["model"], "dataset": entry["dataset"], "recipe": q["config"],
        "batch": batch, "recipe_batch": recipe_batch, "seq_len": seq_len, "frame": [channels, size, size],
        "parameters": sum(p.numel() for p in model.parameters()),
        "iterations_timed": len(timed), "seconds_per_iteration": round(per_step, 3),
        "iterations_per_second": round(1 / per_step, 4), "clips_per_second": round(batch / per_step, 2),
        "first_iteration_seconds": round(times[0], 3),
        "load_average_1min_after": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "paper_steps_remaining": remaining,
        # at the recipe's batch; scaled linearly in the batch when measured at a smaller one (see `batch`)
        "hours_for_remaining_steps": round(remaining * per_step * recipe_batch / batch / 3600, 1),
    }


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=3, help="iterations per model, the first one warm-up")
    parser.add_argument("--only", nargs="*", default=None, help="queue entries to measure (default: all)")
    parser.add_argument("--accelerator", default="auto")
    parser.add_argument("--precision", default=None, help="default: bf16-mixed on bf16 GPUs, else 32-true")
    parser.add_argument("--max-step-seconds", type=float, default=30.0,
                        help="after two iterations slower than this, stop measuring that model")
    parser.add_argument("--batch", type=int, default=None, help="measure at this batch instead of the recipe's "
                        "(when the recipe's is too slow here); hours are then scaled linearly to the recipe's batch")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--out", default="benchmarks/results/train_queue_cpu.json")
    opts = parser.parse_args()
    if opts.threads:
        torch.set_num_threads(opts.threads)
    from vpzoo.zoo.catalog import read_queue

    on_gpu = torch.cuda.is_available() and opts.accelerator in ("auto", "gpu", "cuda")
    precision = opts.precision or ("bf16-mixed" if on_gpu and torch.cuda.is_bf16_supported() else "32-true")
    queue = read_queue()
    names = opts.only or list(queue)
    rows: list[dict] = []
    device = torch.cuda.get_device_name() if on_gpu else _cpu_name()
    out = Path(opts.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    def write() -> None:  # after every model: a long run stopped midway keeps what it measured
        result = {
            "benchmark": "training iterations per second of each queued checkpoint at its recipe's batch",
            "device": device, "logical_cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "precision": precision, "torch": torch.__version__, "python": sys.version.split()[0],
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "notes": "random clips of the recipe's shape; first iteration excluded (warm-up); DRNet timed in its "
                     "autoencoder stage; on a shared machine the numbers move with the other jobs",
            "results": rows,
        }
        out.write_text(json.dumps(result, indent=2) + "\n")

    print(f"{'name':20s} {'batch':>5s} {'s/it':>8s} {'it/s':>8s} {'clips/s':>8s} {'h for rest':>10s}", flush=True)
    for name in names:
        row = measure(queue[name], opts.steps, opts.accelerator, precision, opts.max_step_seconds, opts.batch)
        rows.append(row)
        print(f"{name:20s} {row['batch']:5d} {row['seconds_per_iteration']:8.3f} {row['iterations_per_second']:8.3f} "
              f"{row['clips_per_second']:8.2f} {row['hours_for_remaining_steps']:10.1f}", flush=True)
        write()
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
