"""Throughput of vpzoo's dataset modules (KTH, BAIR, Moving MNIST, Bouncing Balls, Human3.6M).

For each dataset the script writes a tiny copy in the real on-disk format (``vpzoo.data.fixtures``) or generates the
data, runs the real preprocessing (timed), then times the DataModule's training stream and test loader in the main
process (``num_workers=0``, one thread):

* ``train clips/s``: training clips per second delivered as float32 batches (batch 16, the configs' clip lengths);
* ``test clips/s``: fixed evaluation clips per second through the test DataLoader;
* preprocessing rates: decoded frames/s (KTH, Human3.6M), TFRecord examples/s and CRC-32C MB/s (BAIR), simulated
  trajectories/s (Bouncing Balls).

The training-loader rate is compared with a model's training consumption: ``--consumption`` (default: the SVG-LP
anchor of ``bench_data.py``, about 7 sequences/s on the project's 2-core machine; not measured here). Loading from the
tiny fixtures reads from the page cache, as the real preprocessed arrays (1.2 GB for KTH at 64 px) do once warm.

Usage: python benchmarks/bench_datasets.py [--quick] [--consumption 7.0] [--out benchmarks/results/datasets.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from vpzoo.data.bair import BAIRDataModule, prepare_bair
from vpzoo.data.bouncing_balls import BouncingBallsDataModule, simulate_bouncing_balls
from vpzoo.data.fixtures import write_bair_fixture, write_human36m_fixture, write_kth_fixture, write_mnist_test_seq
from vpzoo.data.human36m import Human36MDataModule, prepare_human36m
from vpzoo.data.kth import KTHDataModule, prepare_kth
from vpzoo.data.moving_mnist import MovingMNISTDataModule
from vpzoo.data.tfrecord import crc32c

SVG_LP_CONSUMPTION = 7.0  # sequences/s, SVG-LP training on the project's 2-core machine (anchor, see bench_data.py)
BATCH = 16


def _video(batch):
    return batch["video"] if isinstance(batch, dict) else batch


def time_loaders(dm, num_batches: int, warmup: int = 2) -> dict:
    """Clips/s of the training stream and of the test loader (main process)."""
    dm.setup()
    it = iter(dm.train_dataloader())
    for _ in range(warmup):
        next(it)
    t = time.perf_counter()
    for _ in range(num_batches):
        b = _video(next(it))
    train_dt = time.perf_counter() - t
    shape = list(b.shape)
    t = time.perf_counter()
    n = 0
    for tb in dm.test_dataloader():
        n += _video(tb).shape[0]
    test_dt = time.perf_counter() - t
    clips = num_batches * shape[0]
    return {
        "batch_shape": shape,
        "train_clips_per_s": clips / train_dt,
        "train_frames_per_s": clips * shape[1] / train_dt,
        "ms_per_batch": 1000 * train_dt / num_batches,
        "test_clips": n,
        "test_clips_per_s": n / test_dt,
    }


def bench_kth(tmp: Path, quick: bool) -> dict:
    src = tmp / "kth-src"
    n_frames = 40 if quick else 100
    write_kth_fixture(src, persons=(1, 2, 21, 22), num_frames=n_frames)
    root = tmp / "kth"
    (root / "raw").mkdir(parents=True)
    for p in src.iterdir():
        (root / "raw" / p.name).write_bytes(p.read_bytes())
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepare_kth(root, (64, 128), download=False, progress=False)
    prep = time.perf_counter() - t
    frames = 4 * 6 * n_frames
    out = {"fixture": f"24 AVIs (4 persons x 6 actions) of {n_frames} frames, 160x120",
           "prepare_s": prep, "decode_frames_per_s_64_and_128": frames / prep}
    for size in (64, 128):
        dm = KTHDataModule(str(root), image_size=size, seq_len=20, eval_seq_len=30, batch_size=BATCH,
                           num_val=32, num_test=64, download=False)
        dm.prepare_data()
        out[f"{size}px"] = time_loaders(dm, 10 if quick else 50)
    return out


def bench_bair(tmp: Path, quick: bool) -> dict:
    files, per = (2, 4) if quick else (4, 8)
    truth = write_bair_fixture(tmp / "bair", train_files=files, clips_per_file=per, test_clips=16)
    n = files * per + 16
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepare_bair(tmp / "bair", download=False, progress=False)
    prep = time.perf_counter() - t
    blob = np.random.default_rng(0).integers(0, 256, 8 << 20, dtype=np.uint8).tobytes()
    t = time.perf_counter()
    crc32c(blob)
    crc_rate = len(blob) / (time.perf_counter() - t) / 1e6
    dm = BAIRDataModule(str(tmp / "bair"), seq_len=12, eval_seq_len=30, batch_size=BATCH, download=False)
    out = {"fixture": f"tar with {n} 30-frame examples ({files} train files + 1 test file)", "prepare_s": prep,
           "examples_per_s_with_crc": n / prep, "crc32c_MB_per_s": crc_rate,
           "tar_MB": truth["tar"].stat().st_size / 1e6}
    out.update(time_loaders(dm, 10 if quick else 50))
    return out


def bench_moving_mnist(tmp: Path, quick: bool) -> dict:
    write_mnist_test_seq(tmp / "mm" / "mnist_test_seq.npy", num_sequences=256)
    dm = MovingMNISTDataModule(root=str(tmp / "mm"), batch_size=BATCH, seq_len=20, num_val=32, download=False)
    dm.prepare_data()
    out = {"fixture": "train generated on the fly; test file (20, 256, 64, 64)"}
    out.update(time_loaders(dm, 20 if quick else 200))
    return out


def bench_bouncing_balls(tmp: Path, quick: bool) -> dict:
    n = 200 if quick else 2000
    t = time.perf_counter()
    simulate_bouncing_balls(n, 60, 0)
    sim_rate = n / (time.perf_counter() - t)
    dm = BouncingBallsDataModule(root=str(tmp / "bb"), num_train=n, num_val=32, num_test=128, batch_size=BATCH)
    dm.prepare_data()
    out = {"fixture": f"{n} simulated training trajectories of 60 frames, 4 balls", "trajectories_per_s": sim_rate}
    out.update(time_loaders(dm, 10 if quick else 50))
    return out


def bench_human36m(tmp: Path, quick: bool) -> dict:
    n_frames = 50 if quick else 150
    write_human36m_fixture(tmp / "h36m", subjects=(1, 5, 9, 11), num_frames=n_frames, height=250, width=250)
    t = time.perf_counter()
    prepare_human36m(tmp / "h36m", image_size=64, frame_step=5, progress=False)
    prep = time.perf_counter() - t
    dm = Human36MDataModule(str(tmp / "h36m"), image_size=64, seq_len=10, eval_seq_len=10, batch_size=BATCH,
                            num_val=32, num_test=64)
    dm.prepare_data()
    out = {"fixture": f"8 MP4s of {n_frames} frames at 250x250, every 5th frame kept",
           "prepare_s": prep, "decoded_frames_per_s": 8 * n_frames / prep}
    out.update(time_loaders(dm, 10 if quick else 50))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller fixtures and fewer batches (smoke test)")
    ap.add_argument("--consumption", type=float, default=SVG_LP_CONSUMPTION, help="model training seq/s")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "datasets.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    results: dict = {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        os.environ.setdefault("VPZOO_CACHE", str(tmp / "cache"))
        for name, fn in (("kth", bench_kth), ("bair", bench_bair), ("moving_mnist", bench_moving_mnist),
                         ("bouncing_balls", bench_bouncing_balls), ("human36m", bench_human36m)):
            results[name] = fn(tmp, args.quick)

    rows = []
    for name, r in results.items():
        loaders = {k: v for k, v in r.items() if isinstance(v, dict) and "train_clips_per_s" in v} or {"": r}
        for sub, lr in loaders.items():
            label = f"{name} {sub}".strip()
            shape = "x".join(map(str, lr["batch_shape"]))
            rows.append((label, shape, lr["train_clips_per_s"], lr["ms_per_batch"], lr["test_clips_per_s"],
                         lr["train_clips_per_s"] / args.consumption))
            lr["speedup_over_consumption"] = lr["train_clips_per_s"] / args.consumption
    head = ("dataset", "batch (B,T,C,H,W)", "train clips/s", "ms/batch", "test clips/s", "x consumption")
    widths = [max(len(head[0]), *(len(r[0]) for r in rows)), max(len(head[1]), *(len(r[1]) for r in rows)), 13, 8, 12,
              13]
    print(" | ".join(h.ljust(w) for h, w in zip(head, widths)))
    print("-|-".join("-" * w for w in widths))
    for r in rows:
        cells = [r[0], r[1], f"{r[2]:.0f}", f"{r[3]:.1f}", f"{r[4]:.0f}", f"{r[5]:.0f}x"]
        print(" | ".join(c.ljust(w) for c, w in zip(cells, widths)))
    print()
    print(f"KTH decode (64+128 px):        {results['kth']['decode_frames_per_s_64_and_128']:.0f} frames/s")
    print(f"BAIR TFRecord -> arrays:       {results['bair']['examples_per_s_with_crc']:.1f} examples/s (CRC on); "
          f"CRC-32C {results['bair']['crc32c_MB_per_s']:.0f} MB/s")
    print(f"Bouncing Balls simulation:     {results['bouncing_balls']['trajectories_per_s']:.0f} trajectories/s")
    print(f"Human3.6M decode (250 px src): {results['human36m']['decoded_frames_per_s']:.0f} frames/s")
    print(f"consumption anchor: {args.consumption:.1f} seq/s (SVG-LP training, not measured here)")

    out = {
        "results": results,
        "consumption_seq_per_s": args.consumption,
        "consumption_source": "SVG-LP anchor passed to bench_datasets.py (see bench_data.py); not measured here",
        "batch_size": BATCH,
        "processes": 1,
        "env": {"python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__,
                "cpu_count": os.cpu_count(), "machine": platform.machine(), "quick": bool(args.quick)},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = args.out.with_suffix(args.out.suffix + ".tmp")
    tmp_out.write_text(json.dumps(out, indent=2, sort_keys=True) + "\n")
    os.replace(tmp_out, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
