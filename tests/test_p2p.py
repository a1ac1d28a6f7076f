"""P2P (Wang et al., ICCV 2019): parameter counts, the skip/time rules, the losses and the two-stage gradients against
a direct step-by-step computation, dynamic lengths, overfitting, end-frame prediction and its errors, `vpzoo fit`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from conftest import tiny_svg_kwargs
from test_cli import ASSETS, last_value, read_metrics, run_vpzoo
from vpzoo import create_model, list_models
from vpzoo.models.p2p import P2P, skipped_steps, time_counter
from vpzoo.models.svg import SVGLP

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(codec_width=8, g_dim=16, z_dim=4, rnn_size=32, max_seq_len=8, delta_len=2, val_num_samples=2)


def tiny(**overrides) -> P2P:
    return P2P(**{**TINY, **overrides})


def moving_square(b: int = 2, length: int = 8) -> torch.Tensor:
    x = torch.zeros(b, length, 1, 64, 64)
    for t in range(length):
        x[:, t, :, 20:36, 4 + 4 * t: 20 + 4 * t] = 1.0
    return x


# ------------------------------------------------------------------------------------------------ architecture
@pytest.mark.parametrize("codec, channels, sheet", [("dcgan", 1, 12.68e6), ("dcgan", 3, 12.69e6), ("vgg", 3, 22.83e6)])
def test_parameter_counts_match_the_sheet(codec, channels, sheet):
    """Sheet models-p2p-ddpae-odevideo.md §1.12 (computed from the official layer shapes)."""
    n = P2P(frame_codec=codec, channels=channels).num_parameters()
    assert abs(n - sheet) / sheet < 0.02, n


def test_reference_count_is_the_official_layer_count():
    # codec 10,363,905 (as SVG) + predictor 1,121,664 + posterior 597,780 + prior 597,780 (inputs g+z+2, 2g+2)
    assert P2P().num_parameters() == 12_681_129


def test_skip_rule_and_time_counter():
    u = np.array([0.0, 0.1, 0.9, 0.2, 0.3, 0.05, 0.01, 0.0])  # steps 1..8 of a 9-frame clip
    # step 1 and step T=8 are never dropped; drops stop once 9·0.25 = 2.25 are reached (2, 4, 6 go; 7 stays)
    skipped = skipped_steps(9, u, skip_prob=0.25)
    assert [t for t in range(1, 9) if skipped[t - 1]] == [2, 4, 6]
    assert skipped_steps(9, u, skip_prob=0.5) == [False, True, False, True, True, True, True, False]
    assert not any(skipped_steps(9, u, skip_prob=0.0))
    assert [t for t in range(1, 9) if skipped_steps(9, u, 0.25, n_past=3)[t - 1]] == [4, 6, 7]
    time = time_counter([1, 3, 4, 8], last=8)
    assert torch.allclose(time, torch.tensor([[8, 1], [6, 2], [5, 1], [1, 4]], dtype=torch.float64) / 8)


def test_bad_hyperparameters():
    with pytest.raises(ValueError, match="skip_prob"):
        tiny(skip_prob=1.5)
    with pytest.raises(ValueError, match="align_target"):
        tiny(align_target="nope")
    with pytest.raises(ValueError, match="cpc_state"):
        tiny(cpc_state="nope")
    with pytest.raises(ValueError, match="codec_batching"):
        tiny(codec_batching="frame")
    with pytest.raises(ValueError, match="shortest training clip"):
        tiny(max_seq_len=4, delta_len=2)
    with pytest.raises(ValueError, match="weight_cpc"):
        tiny(weight_cpc=-1.0)


# ------------------------------------------------------------------------------------------------ losses
def _direct(model: P2P, x, skipped, eps_q, eps_p):
    """The official per-step recursion, written out with the model's modules one step at a time (eval-mode BN)."""
    hp = model.hparams
    b, length = x.shape[:2]
    last = length - 1
    descriptor = model.encoder(x[:, last])[0]
    _, start_skips = model.encoder(x[:, 0])
    state_q = state_p = state_f = None
    mse = kl = align = cpc = 0.0
    prev_t, k, prev = 0, 0, None
    for t in range(1, length):
        if skipped[t - 1]:
            continue
        time = torch.tensor([(last - t + 1) / last, (t - prev_t) / last], dtype=x.dtype).expand(b, 2)
        prev_t = t
        h = model.encoder(x[:, t - 1])[0]
        h_target = model.encoder(x[:, t])[0]
        mu_q, logvar_q, state_q = model.posterior(torch.cat([h_target, descriptor, time], 1)[:, None], state_q)
        mu_p, logvar_p, state_p = model.prior(torch.cat([h, descriptor, time], 1)[:, None], state_p)
        mu_q, logvar_q, mu_p, logvar_p = mu_q[:, 0], logvar_q[:, 0], mu_p[:, 0], logvar_p[:, 0]
        z = mu_q + eps_q[:, k] * (0.5 * logvar_q).exp()
        state_before = state_f
        g, state_f = model.frame_predictor(torch.cat([h, z, time], 1)[:, None], state_f)
        g = g[:, 0]
        if hp.align_target == "code" and prev is not None:
            align = align + torch.nn.functional.mse_loss(prev[0][0].expand_as(prev[1]), prev[1])
        elif hp.align_target == "paper":
            align = align + torch.nn.functional.mse_loss(g, h_target)
        prev = (h, g)
        mse = mse + torch.nn.functional.mse_loss(model.decoder(g, start_skips), x[:, t])
        sigma_q, sigma_p = (0.5 * logvar_q).exp(), (0.5 * logvar_p).exp()
        kl = kl + (torch.log(sigma_p / sigma_q) + (sigma_q**2 + (mu_q - mu_p) ** 2) / (2 * sigma_p**2) - 0.5).sum() / b
        if t == last:
            z_p = mu_p + eps_p * sigma_p
            state = state_f if hp.cpc_state == "code" else state_before
            g_p, _ = model.frame_predictor(torch.cat([h, z_p, time], 1)[:, None], state)
            cpc = torch.nn.functional.mse_loss(model.decoder(g_p[:, 0], start_skips), x[:, last])
        k += 1
    return {"mse": mse, "kl": kl, "align": align, "cpc": cpc}


@pytest.mark.parametrize("align_target, cpc_state, codec_batching", [("code", "code", "clip"),
                                                                     ("paper", "paper", "step")])
def test_losses_and_two_stage_gradients_equal_a_direct_computation(align_target, cpc_state, codec_batching):
    """Batched over the clip (eval-mode BatchNorm, where batching does not matter) and with the official per-step
    encoder/decoder calls (training-mode BatchNorm: batch statistics over the B frames of each call)."""
    torch.manual_seed(0)
    model = tiny(align_target=align_target, cpc_state=cpc_state, codec_batching=codec_batching, weight_align=0.7,
                 weight_cpc=30.0, beta=0.01).double()
    model.train(codec_batching == "step")
    x = torch.rand(2, 7, 1, 64, 64, dtype=torch.float64)
    skipped = [False, True, False, True, False, False]
    k = 7 - 1 - sum(skipped)
    eps_q, eps_p = torch.randn(2, k, 4, dtype=torch.float64), torch.randn(2, 4, dtype=torch.float64)
    out = model.forward_loss(x, skipped, eps_q, eps_p)
    assert out["steps"].tolist() == [1, 3, 5, 6]
    assert out["recon"].shape == (2, k, 1, 64, 64) and out["cpc_frame"].shape == (2, 1, 64, 64)
    ref = _direct(model, x, skipped, eps_q, eps_p)
    for name in ("mse", "kl", "align", "cpc"):
        assert torch.allclose(out[name], ref[name], rtol=1e-10, atol=1e-12), (name, out[name], ref[name])

    # Stage A (weights β, w_align) trains everything but the prior; stage B (KL weight 1, w_cpc) only the prior.
    loss_a = ref["mse"] + 0.01 * ref["kl"] + 0.7 * ref["align"]
    loss_b = ref["kl"] + 30.0 * ref["cpc"]
    assert torch.allclose(out["loss_a"], loss_a) and torch.allclose(out["loss_b"], loss_b)
    prior = list(model.prior.parameters())
    others = [p for n, p in model.named_parameters() if not n.startswith("prior.")]
    want_a = torch.autograd.grad(loss_a, others, retain_graph=True)
    want_b = torch.autograd.grad(loss_b, prior)
    model.zero_grad()
    out["loss"].backward()
    for p, g in zip(others + prior, want_a + want_b):
        assert torch.allclose(p.grad, g, rtol=1e-9, atol=1e-13)
    assert max(g.abs().max() for g in want_a) > 0 and max(g.abs().max() for g in want_b) > 0


def test_training_step_cuts_batches_to_dynamic_lengths(monkeypatch):
    model = tiny()
    assert {model.draw_length() for _ in range(300)} == {4, 5, 6, 7, 8}
    seen = []
    original = model.forward_loss
    monkeypatch.setattr(model, "forward_loss", lambda x: seen.append(x.shape[1]) or original(x))
    batch = moving_square(2, 8)
    for _ in range(6):
        loss = model.training_step(batch, 0)
        assert loss.ndim == 0 and torch.isfinite(loss)
    assert set(seen) <= {4, 5, 6, 7, 8} and len(set(seen)) > 1
    with pytest.raises(ValueError, match="at least 8 frames"):
        model.training_step(batch[:, :7], 0)


def test_overfits_one_batch():
    """A tiny P2P (Adam at 4e-3) on one fixed 6-frame clip batch: reconstruction and the CPC frame's error fall 3x
    in 30 steps."""
    torch.manual_seed(0)
    model = tiny(max_seq_len=6, delta_len=1, lr=4e-3)
    x = moving_square(2, 6)
    opt = model.configure_optimizers()
    history = []
    for _ in range(30):
        opt.zero_grad()
        out = model.forward_loss(x)
        out["loss"].backward()
        opt.step()
        history.append((out["mse"].item() / len(out["steps"]), out["cpc"].item()))
    first, final = np.mean(history[:3], axis=0), np.mean(history[-3:], axis=0)
    assert final[0] < first[0] / 3 and final[1] < first[1] / 3, (first, final)


# ------------------------------------------------------------------------------------------------ prediction
def test_predict_shapes_ranges_and_seeds():
    torch.manual_seed(0)
    model = tiny()
    for module in (model.prior, model.frame_predictor):  # larger weights, so that small input changes show
        for layer in module.modules():
            if isinstance(layer, torch.nn.Linear):
                torch.nn.init.normal_(layer.weight, 0.0, 0.5)
    clip = torch.rand(2, 7, 1, 64, 64)
    pred = model.predict(clip[:, :1], 6, num_samples=3, seed=1, end_frame=clip[:, -1])
    assert pred.shape == (2, 3, 6, 1, 64, 64) and 0 <= pred.min() and pred.max() <= 1
    assert torch.equal(pred, model.predict(clip[:, :1], 6, num_samples=3, seed=1, end_frame=clip[:, -1]))
    assert not torch.equal(pred, model.predict(clip[:, :1], 6, num_samples=3, seed=2, end_frame=clip[:, -1]))
    assert not torch.equal(pred[:, 0], pred[:, 1])  # samples differ
    # a different end frame changes the prediction (the descriptor reaches the prior)
    assert not torch.equal(pred, model.predict(clip[:, :1], 6, num_samples=3, seed=1, end_frame=clip[:, 2]))
    # one (C, H, W) end frame for every clip = the same frame repeated per clip
    one = model.predict(clip[:, :1], 4, seed=3, end_frame=clip[0, -1])
    assert torch.equal(one, model.predict(clip[:, :1], 4, seed=3, end_frame=clip[0, -1].expand(2, 1, 64, 64)))
    # several context frames condition the model; uint8 and channels-last numpy end frames are read as frames are
    longer = model.predict(clip[0, :3], 2, seed=0, end_frame=clip[0, -1])
    assert longer.shape == (1, 1, 2, 1, 64, 64)
    frames8 = (clip[0, :1] * 255).round().to(torch.uint8)
    end8 = (clip[0, -1] * 255).round().to(torch.uint8)
    a = model.predict(frames8, 3, seed=0, end_frame=end8)
    b = model.predict(frames8.float() / 255, 3, seed=0, end_frame=end8.numpy().transpose(1, 2, 0))
    assert torch.equal(a, b)


@pytest.mark.parametrize(
    "end_frame, error, match",
    [
        (None, ValueError, "end_frame="),
        ([0.5], TypeError, "end_frame must be a torch.Tensor"),
        (torch.rand(64, 64), ValueError, r"\(C, H, W\) or \(B, C, H, W\)"),
        (torch.rand(1, 2, 1, 64, 64), ValueError, r"\(C, H, W\) or \(B, C, H, W\)"),
        (torch.rand(3, 64, 64), ValueError, "end_frame: .*1 channel"),
        (torch.rand(1, 32, 32), ValueError, "end_frame: .*64x64"),
        (torch.full((1, 64, 64), 1.5), ValueError, r"end_frame: .*\[0, 1\]"),
        (torch.full((1, 64, 64), float("nan")), ValueError, "end_frame: .*NaN"),
        (torch.zeros(1, 64, 64, dtype=torch.bool), TypeError, "end_frame: .*uint8"),
        (torch.rand(3, 1, 64, 64), ValueError, "3 frame.* for 2 clip"),
        (torch.rand(1, 1, 64, 64), ValueError, "1 frame.* for 2 clip"),
        (np.zeros((0, 1, 64, 64), np.float32), ValueError, "end_frame: .*empty"),
    ],
)
def test_end_frame_errors(end_frame, error, match):
    model = tiny()
    kwargs = {} if end_frame is None else {"end_frame": end_frame}
    with pytest.raises(error, match=match):
        model.predict(torch.rand(2, 1, 1, 64, 64), 3, **kwargs)


@pytest.mark.parametrize("name", [n for n in list_models() if n != "p2p"])
def test_every_other_model_rejects_end_frame(name):
    """The base class refuses keywords a model does not list in predict_options, naming the model."""
    from conftest import TINY_MODEL_KWARGS

    model = create_model(name, **TINY_MODEL_KWARGS.get(name, {}))
    assert "end_frame" not in model.predict_options
    frames = torch.rand(model.n_past, model.channels, model.image_size, model.image_size)
    with pytest.raises(TypeError, match=f"{type(model).__name__}.predict got unexpected keyword.*end_frame"):
        model.predict(frames, 2, end_frame=frames[-1])


def test_registered_and_config_holds_the_official_command():
    assert isinstance(create_model("p2p", **TINY), P2P)
    config = yaml.safe_load((ROOT / "configs/p2p/smmnist.yaml").read_text())
    args = config["model"]["init_args"]
    official = dict(channels=1, n_past=1, frame_codec="dcgan", g_dim=128, z_dim=10, rnn_size=256, beta=1e-4,
                    weight_cpc=100.0, weight_align=0.5, skip_prob=0.5, max_seq_len=30, delta_len=5, lr=1e-3)
    assert {k: args[k] for k in official} == official
    assert config["data"]["init_args"]["batch_size"] == 100 and config["data"]["init_args"]["num_digits"] == 2
    assert config["data"]["init_args"]["seq_len"] == 30 and config["trainer"]["max_steps"] == 60000


# ------------------------------------------------------------------------------------------------ vpzoo fit
def test_fit_tiny_config(tmp_path, monkeypatch):
    """`vpzoo fit --config` in one process: 4 steps on dynamic-length batches, then validation towards each clip's
    last frame."""
    from vpzoo.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["fit", "--config", str(ASSETS / "tiny_p2p.yaml")]) == 0
    rows = read_metrics(tmp_path / "logs")
    assert len([r for r in rows if r.get("train/loss")]) == 4
    assert 0 < last_value(rows, "val/ssim") <= 1 and last_value(rows, "train/prior_loss") > 0
    assert "val/psnr_t06" in rows[0] and "val/psnr_t07" not in rows[0]  # frames 1..5 of the 6-frame clips


def test_fit_ddp_two_processes_on_cpu(tmp_path):
    """`vpzoo fit` of the tiny config under plain DDP (one optimiser, one backward: no unused parameters)."""
    proc = run_vpzoo(["fit", "--config", str(ASSETS / "tiny_p2p.yaml"), "--trainer.strategy", "ddp",
                      "--trainer.accelerator", "cpu", "--trainer.devices", "2"], tmp_path)
    assert "distributed_backend=gloo" in proc.stdout + proc.stderr
    rows = read_metrics(tmp_path / "logs")
    assert 0 < last_value(rows, "val/ssim") <= 1 and last_value(rows, "train/cpc") > 0
    assert len([r for r in rows if r.get("train/loss")]) == 4


# ------------------------------------------------------------------------------------------------ benchmark
def test_point_to_point_benchmark_equals_a_direct_metrics_computation():
    from vpzoo.data.smmnist import StochasticMovingMNISTDataModule
    from vpzoo.metrics import psnr, ssim
    from dataclasses import replace

    from vpzoo.leaderboard import format_report, get_benchmark, run_benchmark
    from vpzoo.point_to_point import crossfade

    model = tiny()
    data = StochasticMovingMNISTDataModule(eval_seq_len=6, num_test=4, eval_batch_size=2, batch_size=2)
    # smmnist_p2p's protocol on 6-frame clips (the tiny model's length)
    bench = replace(get_benchmark("smmnist_p2p"), predicted_frames=5, num_test=4,
                    make_datamodule=lambda seq_len, num_test, batch_size, root: data)
    result = run_benchmark(model, bench, num_samples=3, num_test=4, seed=5)
    assert result.num_sequences == 4 and result.num_samples == 3

    data.setup("test")
    clips = torch.cat(list(data.test_dataloader()))
    samples = torch.cat([model.predict(c[:, :1], 5, num_samples=3, seed=5 + i, end_frame=c[:, -1])
                         for i, c in enumerate(clips.split(2))])
    end = clips[:, -1:]
    want = {
        "cp_psnr": torch.stack([psnr(samples[:, k, -1:], end) for k in range(3)]).mean(),
        "cp_ssim": torch.stack([ssim(samples[:, k, -1:], end) for k in range(3)]).mean(),
        "psnr": torch.stack([psnr(samples[:, k, :-1], clips[:, 1:-1]).mean(1) for k in range(3)]).amax(0).mean(),
        "ssim": torch.stack([ssim(samples[:, k, :-1], clips[:, 1:-1]).mean(1) for k in range(3)]).amax(0).mean(),
        "diversity": torch.stack([(samples[:, i, :-1] - samples[:, j, :-1]).pow(2).mean((1, 2, 3, 4))
                                  for i, j in ((0, 1), (0, 2), (1, 2))]).mean(),
    }
    for name, value in want.items():
        assert result.values["model"][name] == pytest.approx(float(value), rel=1e-5, abs=1e-7), name
    start = clips[:, :1]
    assert result.values["repeat_start"]["cp_psnr"] == pytest.approx(float(psnr(start, end).mean()), rel=1e-5)
    assert result.values["repeat_start"]["diversity"] == 0.0
    assert result.values["crossfade"]["cp_psnr"] == 100.0  # the end frame itself, clamped like a perfect frame
    fade = crossfade(clips)[:, 0]
    assert torch.allclose(fade[:, -1], clips[:, -1]) and torch.allclose(fade[:, 2], 0.4 * clips[:, 0] + 0.6 * clips[:, -1])
    assert result.values["crossfade"]["ssim"] == pytest.approx(float(ssim(fade[:, :-1], clips[:, 1:-1]).mean()),
                                                               rel=1e-5)
    # the checkpoints.yaml records carry both baselines, so a ship bar can name either
    records = {r["metric"]: r for r in result.metric_records()}
    assert set(records) == {"cp_psnr", "cp_ssim", "psnr", "ssim", "diversity"}
    assert records["psnr"]["crossfade"] == pytest.approx(result.values["crossfade"]["psnr"], abs=1e-6)
    assert records["cp_psnr"]["repeat_start"] == pytest.approx(result.values["repeat_start"]["cp_psnr"], abs=1e-6)
    assert records["psnr"]["reduction"] == "best" and records["cp_psnr"]["reduction"] == "mean"
    assert "reduction" not in records["diversity"] and "copy_last" not in records["psnr"]
    text = format_report(bench, measured=[result])
    assert "repeat start frame" in text and "start-to-end crossfade" in text and "CP_PSNR" in text
    with pytest.raises(ValueError, match="end_frame"):
        run_benchmark(SVGLP(**tiny_svg_kwargs(n_past=1)), bench)


def test_point_to_point_ship_bar_compares_with_the_crossfade_and_the_start_frame():
    """p2p_smmnist's ship bar is the issue's rule: intermediate PSNR and SSIM above both baselines and the control
    point closer to the end frame than the start frame is; check_ship_bar reads the baselines from the records."""
    from vpzoo.zoo.catalog import ReplacementRefusedError, check_ship_bar, read_queue

    entry = read_queue()["p2p_smmnist"]
    common = {"benchmark": "smmnist_p2p", "protocol": "standard", "num_samples": 5}
    records = [dict(common, metric="psnr", value=15.0, repeat_start=12.0, crossfade=14.0),
               dict(common, metric="ssim", value=0.80, repeat_start=0.70, crossfade=0.75),
               dict(common, metric="cp_psnr", value=20.0, repeat_start=12.5, crossfade=100.0)]
    verdict = check_ship_bar(entry, records)
    assert "psnr 15 beats repeat_start 12, crossfade 14" in verdict and "cp_psnr 20 beats repeat_start 12.5" in verdict
    with pytest.raises(ReplacementRefusedError, match="psnr .*15 does not beat crossfade's 16"):
        check_ship_bar(entry, [dict(records[0], crossfade=16.0), *records[1:]])
    with pytest.raises(ReplacementRefusedError, match="cp_psnr .*12 does not beat repeat_start's 12.5"):
        check_ship_bar(entry, [*records[:2], dict(records[2], value=12.0)])
    with pytest.raises(ReplacementRefusedError, match="no ssim measured by benchmark 'smmnist_p2p'"):
        check_ship_bar(entry, [records[0], records[2]])


def test_benchmark_command_describes_the_protocol_and_has_no_guessed_numbers(capsys):
    from vpzoo.cli import main

    assert main(["benchmark", "smmnist_p2p"]) == 0
    out = capsys.readouterr().out
    assert "smmnist_p2p" in out and "Published: none" in out and "CP_PSNR" in out


def test_predict_command_with_an_end_frame(tmp_path, capsys):
    from PIL import Image

    from vpzoo.cli import main
    from vpzoo.io import read_video

    torch.manual_seed(0)
    tiny().save_pretrained(tmp_path / "p2p")
    clip = (moving_square(1, 8)[0, :, 0] * 255).numpy().astype(np.uint8)  # (T, H, W)
    np.save(tmp_path / "clip.npy", clip)
    Image.fromarray(clip[5]).save(tmp_path / "end.png")
    common = ["predict", str(tmp_path / "p2p"), "--input", str(tmp_path / "clip.npy"), "--n-future", "5",
              "--num-samples", "2"]
    assert main([*common, "--end-from-input", "--out", str(tmp_path / "a.gif")]) == 0
    assert main([*common, "--end-frame", str(tmp_path / "end.png"), "--out", str(tmp_path / "b.gif")]) == 0
    assert (tmp_path / "a.gif").is_file() and (tmp_path / "b.png").is_file()
    assert (tmp_path / "a.gif").read_bytes() == (tmp_path / "b.gif").read_bytes()  # the same end frame, same seed
    # the grid (rows labelled, a header and a caption around the frames): an orange-framed column holds the end frame
    # in every row (truth + 2 samples), at the right of all the time steps (start, 5 predicted frames)
    grid = np.asarray(Image.open(tmp_path / "a.png").convert("RGB"))
    ys, xs = np.nonzero((grid == (240, 150, 20)).all(axis=-1))
    y0, x0 = ys.min(), xs.min()
    assert (ys.max() + 1 - y0, xs.max() + 1 - x0) == (3 * 68, 68)
    for row in range(3):
        assert (grid[y0 + row * 68 + 2: y0 + row * 68 + 66, x0 + 2:x0 + 66, 0] == clip[5]).all()
        assert tuple(grid[y0 + row * 68, x0]) == tuple(grid[y0 + row * 68 + 67, x0 + 67]) == (240, 150, 20)
    red = np.nonzero((grid == (210, 40, 40)).all(axis=-1))[1]
    assert len(red) and red.max() < x0
    # the GIF: every frame has the orange-framed end-frame panel at the right of the clip and sample panels
    gif = read_video(tmp_path / "a.gif")
    for frame in gif:
        ys, xs = np.nonzero((frame == (240, 150, 20)).all(axis=-1))
        assert (ys.max() + 1 - ys.min(), xs.max() + 1 - xs.min()) == (132, 132)  # 64-px frames shown at 2x
        inner = frame[ys.min() + 2:ys.min() + 130:2, xs.min() + 2:xs.min() + 130:2, 0]
        assert np.abs(inner.astype(int) - clip[5]).max() <= 2
        assert xs.min() >= 3 * 132
    for extra, match in (([], "--end-frame END.png or --end-from-input"),
                         (["--end-from-input", "--n-future", "9"], "needs 10 frames")):
        with pytest.raises(SystemExit):
            main([*common, *extra, "--out", str(tmp_path / "c.gif")])
        assert match in capsys.readouterr().err
    SVGLP(**tiny_svg_kwargs(n_past=1)).save_pretrained(tmp_path / "svg")
    with pytest.raises(SystemExit):
        main(["predict", str(tmp_path / "svg"), "--input", str(tmp_path / "clip.npy"), "--n-future", "2",
              "--end-from-input", "--out", str(tmp_path / "d.gif")])
    assert "SVGLP takes no end frame" in capsys.readouterr().err
