"""SVG-LP speed: vpzoo's batched training step and sampler against the official code's way of doing them.

The "reference way" is the official edenton/svg algorithm re-expressed with vpzoo's modules (same weights, same
FLOPs structure): per training step every frame is encoded twice (once as the predictor's input, once as the
posterior's target), encoder and decoder are called once per time step, and the LSTMs are stepped one frame at a
time; sampling draws one sample after another with the encoder/decoder BatchNorm in training mode, as
``generate_svg_lp.py`` does. vpzoo's way encodes every frame once per step, batched over time, and draws all
samples in one batch.

Anchors measured on these 2 CPU cores with the official code (SM-MNIST config, 12,614,057 parameters): training
4.4 sequences/s at batch 16; 100 samples of 5+20 frames for 16 clips in 157 s. Targets: >= 1.5x that training
rate and >= 20x that sampling rate.

The same run also measures SM-MNIST training-stream generation (``bench_data.measure_smmnist_generation``)
against SVG-LP's measured training consumption (target >= 10x), and, for one clip, ``predict`` with 100 samples
in one batch against a loop of 100 single-sample ``predict`` calls (target >= 5x).

With ``--bf16`` the same run also times vpzoo's training step and batched sampling under CPU bfloat16 autocast
(what ``--trainer.precision bf16-mixed`` does in ``vpzoo fit``), which is fast on CPUs with AMX/AVX-512-BF16 units.

Usage: python benchmarks/bench_svg.py [--quick] [--bf16] [--out benchmarks/results/svg.json]
       python benchmarks/bench_svg.py --one-clip-only --out benchmarks/results/svg_one_clip.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import sys

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_data import measure_smmnist_generation  # noqa: E402

from vpzoo.models.blocks import gaussian_kl
from vpzoo.models.svg import SVGLP

OFFICIAL_TRAIN_SEQ_PER_S = 4.4
OFFICIAL_SAMPLE_SECONDS = 157.0


def reference_train_step(model: SVGLP, x: torch.Tensor, optimizer: torch.optim.Optimizer) -> float:
    """One optimisation step the official way (time-major loop, each frame encoded twice)."""
    b, t = x.shape[:2]
    n_past = model.n_past
    optimizer.zero_grad(set_to_none=True)
    pred_state = post_state = prior_state = None
    mse = kl = 0.0
    skips = None
    for i in range(1, t):
        h, new_skips = model.encoder(x[:, i - 1])
        if i < n_past:
            skips = new_skips
        h_target, _ = model.encoder(x[:, i])
        mu_q, logvar_q, post_state = model.posterior(h_target[:, None], post_state)
        z = mu_q + torch.randn_like(mu_q) * (0.5 * logvar_q).exp()
        mu_p, logvar_p, prior_state = model.prior(h[:, None], prior_state)
        g, pred_state = model.frame_predictor(torch.cat([h[:, None], z], -1), pred_state)
        frame = model.decoder(g[:, 0], skips)
        mse = mse + torch.nn.functional.mse_loss(frame, x[:, i])
        kl = kl + gaussian_kl(mu_q, logvar_q, mu_p, logvar_p).sum() / b
    loss = mse + model.hparams.beta * kl
    loss.backward()
    optimizer.step()
    return float(loss)


def vpzoo_train_step(model: SVGLP, x: torch.Tensor, optimizer: torch.optim.Optimizer) -> float:
    optimizer.zero_grad(set_to_none=True)
    loss = model.forward_loss(x)["loss"]
    loss.backward()
    optimizer.step()
    return float(loss)


@torch.no_grad()
def reference_sample(model: SVGLP, context: torch.Tensor, n_future: int, num_samples: int) -> torch.Tensor:
    """One sample after another, BatchNorm of encoder/decoder in training mode (``generate_svg_lp.py``)."""
    model.eval()
    model.encoder.train()
    model.decoder.train()
    n_past = context.shape[1]
    outs = []
    for _ in range(num_samples):
        pred_state = post_state = prior_state = None
        x_in = context[:, 0]
        frames = []
        for i in range(1, n_past + n_future):
            h, new_skips = model.encoder(x_in)
            if i < n_past:
                skips = new_skips
                h_target, _ = model.encoder(context[:, i])
                mu_q, logvar_q, post_state = model.posterior(h_target[:, None], post_state)
                z = mu_q + torch.randn_like(mu_q) * (0.5 * logvar_q).exp()
                _, _, prior_state = model.prior(h[:, None], prior_state)
                _, pred_state = model.frame_predictor(torch.cat([h[:, None], z], -1), pred_state)
                x_in = context[:, i]
            else:
                mu_p, logvar_p, prior_state = model.prior(h[:, None], prior_state)
                z = mu_p + torch.randn_like(mu_p) * (0.5 * logvar_p).exp()
                g, pred_state = model.frame_predictor(torch.cat([h[:, None], z], -1), pred_state)
                x_in = model.decoder(g[:, 0], skips)
                frames.append(x_in)
        outs.append(torch.stack(frames, 1))
    model.train()
    return torch.stack(outs, 1)


def timeit(fn, repeats: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def one_clip_only(model: SVGLP, out_path: str, num_samples: int = 100, n_future: int = 20) -> None:
    """The issue's predict target: 100 samples of one clip in one batch against 100 single-sample calls."""
    model.eval()
    clip = torch.rand(1, 5, 1, 64, 64).round()
    t_loop = timeit(lambda: [model.predict(clip, n_future, num_samples=1, seed=s) for s in range(num_samples)], 1)
    t_batch = timeit(lambda: model.predict(clip, n_future, num_samples=num_samples, seed=0), 3)
    print(f"{'measurement':<64} {'seconds':>9} {'ratio':>7}")
    print(f"{f'1 clip: loop of {num_samples} single-sample predict calls (5+{n_future})':<64} {t_loop:9.3f}")
    print(f"{f'1 clip: predict(num_samples={num_samples}) in one batch':<64} {t_batch:9.3f} {t_loop / t_batch:7.2f}")
    result = {"model": "svg_lp (SM-MNIST config)", "threads": torch.get_num_threads(), "num_samples": num_samples,
              "n_future": n_future, "single_sample_loop_seconds": t_loop, "batched_seconds": t_batch,
              "speedup": t_loop / t_batch, "target_ratio": 5}
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repeats and samples (smoke run)")
    parser.add_argument("--out", default="benchmarks/results/svg.json")
    parser.add_argument("--bf16", action="store_true",
                        help="also time vpzoo's training step and sampling under CPU bfloat16 autocast")
    parser.add_argument("--one-clip-only", action="store_true",
                        help="only 1 clip: predict(num_samples=100) in one batch vs 100 single-sample calls")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = SVGLP()  # the SM-MNIST configuration, 12,614,057 parameters
    if args.one_clip_only:
        one_clip_only(model, args.out)
        return
    batch, seq_len = 16, 15
    x = torch.rand(batch, seq_len, 1, 64, 64).round()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    repeats = 2 if args.quick else 5

    rows = []
    t_ref = timeit(lambda: reference_train_step(model, x, opt), repeats)
    t_ours = timeit(lambda: vpzoo_train_step(model, x, opt), repeats)
    rows.append(("train step, reference way (batch 16, 5+10)", t_ref, batch / t_ref, None))
    rows.append(("train step, vpzoo batched over time", t_ours, batch / t_ours, t_ref / t_ours))

    clips, n_past, n_future = 16, 5, 20
    num_samples = 10 if args.quick else 100
    ref_samples = 2 if args.quick else 5  # the loop is linear in samples: time a few and scale
    context = torch.rand(clips, n_past, 1, 64, 64).round()
    start = time.perf_counter()
    reference_sample(model, context, n_future, ref_samples)
    t_ref_sample = (time.perf_counter() - start) * num_samples / ref_samples
    model.eval()
    t_ours_sample = timeit(lambda: model.predict(context, n_future, num_samples=num_samples, seed=0), 1)
    loop_single = timeit(
        lambda: [model.predict(context, n_future, num_samples=1, seed=s) for s in range(ref_samples)], 1
    ) * num_samples / ref_samples
    rows.append((f"sample {num_samples}x(5+20) for 16 clips, reference way (scaled from {ref_samples})",
                 t_ref_sample, None, None))
    rows.append((f"sample {num_samples} as a loop of single-sample predict (scaled from {ref_samples})",
                 loop_single, None, t_ref_sample / loop_single))
    rows.append((f"sample {num_samples}, vpzoo predict (one batch)", t_ours_sample, None, t_ref_sample / t_ours_sample))
    bf16 = None
    if args.bf16:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            t_bf16 = timeit(lambda: vpzoo_train_step(model, x, opt), repeats)
            t_bf16_sample = timeit(lambda: model.predict(context, n_future, num_samples=num_samples, seed=0), 1)
        rows.append(("train step, vpzoo batched over time, bf16 autocast", t_bf16, batch / t_bf16, t_ref / t_bf16))
        rows.append((f"sample {num_samples}, vpzoo predict (one batch), bf16 autocast", t_bf16_sample, None,
                     t_ref_sample / t_bf16_sample))
        bf16 = {"train_seq_per_s": batch / t_bf16,
                "train_ratio_vs_official_anchor": (batch / t_bf16) / OFFICIAL_TRAIN_SEQ_PER_S,
                "sample_seconds": t_bf16_sample,
                "sample_ratio_vs_official_anchor": OFFICIAL_SAMPLE_SECONDS / (t_bf16_sample * 100 / num_samples)}

    one_clip = context[:1]
    loop_calls = 10 if args.quick else 20  # the loop is linear in calls: time some and scale to num_samples
    t_one_loop = timeit(
        lambda: [model.predict(one_clip, n_future, num_samples=1, seed=s) for s in range(loop_calls)], 1
    ) * num_samples / loop_calls
    t_one_batch = timeit(lambda: model.predict(one_clip, n_future, num_samples=num_samples, seed=0), 1)
    rows.append((f"1 clip: loop of {num_samples} single-sample predict calls (scaled from {loop_calls})",
                 t_one_loop, None, None))
    rows.append((f"1 clip: predict(num_samples={num_samples}) in one batch", t_one_batch, None,
                 t_one_loop / t_one_batch))

    gen = measure_smmnist_generation(batch_size=batch, seq_len=seq_len, num_batches=50 if args.quick else 200)
    consumption = batch / t_ours
    rows.append(("SM-MNIST training stream generation (batch 16, 15 frames)", batch / gen["sequences_per_s"],
                 gen["sequences_per_s"], gen["sequences_per_s"] / consumption))

    print(f"{'measurement':<80} {'seconds':>9} {'seq/s':>8} {'ratio':>7}")
    for name, sec, rate, ratio in rows:
        print(f"{name:<80} {sec:9.3f} {rate if rate else float('nan'):8.2f} {ratio if ratio else float('nan'):7.2f}")
    scale = 100 / num_samples
    result = {
        "machine": {"processor": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                    "torch": torch.__version__},
        "model": "svg_lp (SM-MNIST config)",
        "parameters": model.num_parameters(),
        "train": {"batch": batch, "seq_len": seq_len, "reference_seq_per_s": batch / t_ref,
                  "vpzoo_seq_per_s": batch / t_ours, "speedup_vs_reference": t_ref / t_ours,
                  "official_anchor_seq_per_s": OFFICIAL_TRAIN_SEQ_PER_S,
                  "ratio_vs_official_anchor": (batch / t_ours) / OFFICIAL_TRAIN_SEQ_PER_S, "target_ratio": 1.5},
        "sample": {"clips": clips, "n_past": n_past, "n_future": n_future, "num_samples": num_samples,
                   "reference_seconds": t_ref_sample, "single_sample_loop_seconds": loop_single,
                   "vpzoo_seconds": t_ours_sample, "speedup_vs_reference": t_ref_sample / t_ours_sample,
                   "speedup_vs_single_sample_loop": loop_single / t_ours_sample,
                   "official_anchor_seconds_100_samples": OFFICIAL_SAMPLE_SECONDS,
                   "ratio_vs_official_anchor": OFFICIAL_SAMPLE_SECONDS / (t_ours_sample * scale), "target_ratio": 20,
                   "target_ratio_vs_single_sample_loop": 5},
        "one_clip_sampling": {"num_samples": num_samples, "single_sample_loop_seconds": t_one_loop,
                              "batched_seconds": t_one_batch, "speedup": t_one_loop / t_one_batch,
                              "target_ratio": 5},
        "bf16_autocast": bf16,
        "data_vs_training": {"generation_seq_per_s": gen["sequences_per_s"], "training_seq_per_s": consumption,
                             "ratio": gen["sequences_per_s"] / consumption, "target_ratio": 10},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"\ntraining: {batch / t_ours:.2f} seq/s = {result['train']['ratio_vs_official_anchor']:.2f}x the official "
          f"anchor (target 1.5x); sampling: {result['sample']['ratio_vs_official_anchor']:.1f}x the official anchor "
          f"(target 20x); 1 clip x {num_samples} samples batched: {result['one_clip_sampling']['speedup']:.1f}x a loop of "
          f"single-sample calls (target 5x); data generation {result['data_vs_training']['ratio']:.0f}x training "
          f"consumption (target 10x)")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
