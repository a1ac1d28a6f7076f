"""DRNet speed: vpzoo's training iterations and predictor against the official code's way of doing them.

The "reference way" is the official edenton/drnet-py algorithm re-expressed with vpzoo's modules (same weights,
same arithmetic): in stage 1 every encoder is called once per frame (``train_scene_discriminator`` encodes the poses
of x[0] and x[1], ``train`` encodes x_c1, x_c2, x_p1, x_p2 one call each) and E_c, E_p, D and C have one Adam each;
in stage 2 (``train_lstm.py``) the pose encoder is called once per frame, the LSTM is stepped one frame at a time,
and the frozen encoders stay in train mode; prediction encodes, steps and decodes one frame at a time. vpzoo keeps
stage 1's per-frame calls (so BatchNorm sees drnet-py's batches) but encodes the detached frames without a graph and
steps E_c, E_p and D with one Adam; in stage 2 it encodes all frames in one eval-mode call and runs the LSTM fused
over the teacher-forced clip; prediction encodes the context in one call and decodes one time step (16 clips) per
call.

The model is drnet-py's Moving MNIST configuration (14,395,512 parameters, 3-channel 64x64 frames); stage 2 and
prediction use 10 context + 10 future frames (prediction: 20 future frames).

On this project's 2 shared CPU cores one torch thread is several times faster than two contended ones, so the
default is ``--threads 1``; the load average is recorded with the numbers.

Usage: python benchmarks/bench_drnet.py [--quick] [--batch 16] [--threads 1] [--device cpu]
                                        [--out benchmarks/results/drnet.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from vpzoo.models.drnet import DRNet


def reference_optimizers(model: DRNet) -> dict[str, torch.optim.Optimizer]:
    hp = model.hparams
    adam = lambda m, lr, b1: torch.optim.Adam(m.parameters(), lr=lr, betas=(b1, 0.999))  # noqa: E731
    return {"ec": adam(model.content_encoder, hp.lr, hp.adam_beta1),
            "ep": adam(model.pose_encoder, hp.lr, hp.adam_beta1),
            "d": adam(model.decoder, hp.lr, hp.adam_beta1), "c": adam(model.discriminator, hp.lr, hp.adam_beta1),
            "lstm": adam(model.pose_lstm, hp.lstm_lr, hp.lstm_beta1)}


def reference_stage1(model: DRNet, x: torch.Tensor, opts: dict) -> None:
    """``train_scene_discriminator`` then ``train`` of drnet-py: one encoder call per frame, one Adam per module."""
    b = x.shape[0]
    x0, x1, x2, x3 = (x[:, i] for i in range(4))
    # scene discriminator step
    opts["c"].zero_grad(set_to_none=True)
    p1, p2 = model.encode_pose(x0).detach(), model.encode_pose(x1).detach()
    half = b // 2
    perm = torch.randperm(half, device=x.device)
    p2 = torch.cat([p2[perm], p2[half:]])
    target = torch.cat([torch.ones(half), torch.zeros(b - half)]).to(x.device)
    F.binary_cross_entropy_with_logits(model.discriminator(p1, p2), target).backward()
    opts["c"].step()
    # main step
    for k in ("ec", "ep", "d"):
        opts[k].zero_grad(set_to_none=True)
    h_c1, skips = model.encode_content(x0)
    h_c2 = model.encode_content(x1)[0].detach()
    h_p1, h_p2 = model.encode_pose(x2), model.encode_pose(x3).detach()
    rec = F.mse_loss(model.decode(h_c1, skips, h_p1), x2)
    sim = F.mse_loss(h_c1, h_c2)
    logits = model.discriminator(h_p1, h_p2)
    adv = F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, 0.5))
    (rec + model.hparams.sim_weight * sim + model.hparams.adv_weight * adv).backward()
    for k in ("ec", "ep", "d"):
        opts[k].step()


def reference_stage2(model: DRNet, x: torch.Tensor, opts: dict) -> None:
    """``train_lstm.py``: frozen encoders in train mode, one pose-encoder call per frame, one LSTM step per frame."""
    n_past, t = model.n_past, x.shape[1]
    opts["lstm"].zero_grad(set_to_none=True)
    with torch.no_grad():
        h_c = model.encode_content(x[:, n_past - 1])[0]
        h_p = [model.encode_pose(x[:, i]) for i in range(t)]
    state, mse = None, 0.0
    for i in range(1, t):
        out, state = model.pose_lstm(torch.cat([h_p[i - 1], h_c], 1)[:, None], state)
        mse = mse + F.mse_loss(out[:, 0], h_p[i])
    mse.backward()
    opts["lstm"].step()


@torch.no_grad()
def reference_predict(model: DRNet, context: torch.Tensor, n_future: int) -> torch.Tensor:
    """drnet-py's ``plot_gen``: frame by frame (encoders, LSTM and decoder called once per step)."""
    n_past = context.shape[1]
    h_c, skips = model.encode_content(context[:, -1])
    h_p, state, frames = model.encode_pose(context[:, 0]), None, []
    for i in range(1, n_past + n_future):
        out, state = model.pose_lstm(torch.cat([h_p, h_c], 1)[:, None], state)
        if i < n_past:
            h_p = model.encode_pose(context[:, i])
        else:
            h_p = out[:, 0]
            frames.append(model.decode(h_c, skips, h_p))
    return torch.stack(frames, 1)


def timeit(fn, repeats: int) -> float:
    fn()  # warm-up
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repeats (smoke run)")
    parser.add_argument("--batch", type=int, default=16, help="clips per batch (drnet-py trains with 100)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default="benchmarks/results/drnet.json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    model = DRNet(stage="autoencoder").to(device)  # drnet-py's Moving MNIST configuration
    b, t_train, n_past, n_future = args.batch, 20, 10, 20
    x = torch.rand(b, t_train, 3, 64, 64, device=device).round()
    repeats = 2 if args.quick else 5
    ours_main, ours_disc, ours_lstm = model.configure_optimizers()
    ref_opts = reference_optimizers(model)

    rows = []
    model.train()
    t_ref1 = timeit(lambda: reference_stage1(model, x, ref_opts), repeats)
    t_ours1 = timeit(lambda: model.autoencoder_iteration(x, ours_main, ours_disc), repeats)
    rows.append((f"stage 1 iteration (C + E_c/E_p/D), reference way (batch {b})", t_ref1, b / t_ref1, None))
    rows.append(("stage 1 iteration, vpzoo", t_ours1, b / t_ours1, t_ref1 / t_ours1))

    model.train()
    t_ref2 = timeit(lambda: reference_stage2(model, x, ref_opts), repeats)
    t_ours2 = timeit(lambda: model.lstm_iteration(x, ours_lstm), repeats)
    rows.append((f"stage 2 iteration (LSTM, {n_past}+10 frames), reference way", t_ref2, b / t_ref2, None))
    rows.append(("stage 2 iteration, vpzoo (fused LSTM, one encoder call)", t_ours2, b / t_ours2, t_ref2 / t_ours2))

    model.eval()
    context = x[:, :n_past]
    t_ref_pred = timeit(lambda: reference_predict(model, context, n_future), repeats)
    t_ours_pred = timeit(lambda: model.predict(context, n_future, num_samples=1), repeats)
    rows.append((f"predict {n_past}+{n_future} frames for {b} clips, reference way", t_ref_pred, b / t_ref_pred, None))
    rows.append(("predict, vpzoo (batched over clips)", t_ours_pred, b / t_ours_pred, t_ref_pred / t_ours_pred))

    print(f"{'measurement':<66} {'seconds':>9} {'clips/s':>8} {'vs ref':>7}")
    for name, sec, rate, ratio in rows:
        print(f"{name:<66} {sec:9.3f} {rate:8.2f} {ratio if ratio else float('nan'):7.2f}")
    result = {
        "machine": {"processor": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                    "cpus": os.cpu_count(), "device": str(device), "torch": torch.__version__,
                    "load_average_at_end": list(os.getloadavg())},
        "model": "drnet (Moving MNIST config, dcgan_unet + dcgan, 3 channels)",
        "parameters": model.num_parameters(),
        "batch": b,
        "stage1": {"reference_seconds": t_ref1, "vpzoo_seconds": t_ours1, "vpzoo_clips_per_s": b / t_ours1,
                   "reference_clips_per_s": b / t_ref1, "speedup_vs_reference": t_ref1 / t_ours1},
        "stage2": {"frames": t_train, "reference_seconds": t_ref2, "vpzoo_seconds": t_ours2,
                   "vpzoo_clips_per_s": b / t_ours2, "reference_clips_per_s": b / t_ref2,
                   "speedup_vs_reference": t_ref2 / t_ours2},
        "predict": {"n_past": n_past, "n_future": n_future, "reference_seconds": t_ref_pred,
                    "vpzoo_seconds": t_ours_pred, "speedup_vs_reference": t_ref_pred / t_ours_pred},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nstage 1: {b / t_ours1:.2f} clips/s ({t_ref1 / t_ours1:.2f}x the reference way); stage 2: "
          f"{b / t_ours2:.2f} clips/s ({t_ref2 / t_ours2:.2f}x); predict: {t_ref_pred / t_ours_pred:.2f}x")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
