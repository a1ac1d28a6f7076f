"""VideoFlow: the flow layers against direct computations (exact inverses, log-dets against brute-force Jacobians),
ActNorm's data-dependent init, bits/dim of a known density, the causal prior, temperature, overfitting, parameter
counts of the published presets, the predict keyword, and `vpzoo fit` (single process and 2-process DDP on CPU)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import yaml
from torch.autograd.functional import jacobian

from vpzoo.models.blocks import (
    ActNorm,
    AdditiveCoupling,
    AffineCoupling,
    FlowStep,
    InvertibleConv1x1,
    data_dependent_init,
    dequantize,
    postprocess,
    squeeze2d,
    unsqueeze2d,
)
from vpzoo.models.videoflow import VIDEOFLOW_PRESETS, TemporalLatentPrior, VideoFlow
from vpzoo.registry import create_model, list_models

ROOT = Path(__file__).resolve().parents[1]
ASSETS = Path(__file__).parent / "assets"


def tiny_kwargs(**overrides):
    """16-px RGB, 2 levels of 2 steps, narrow networks; 3 inputs, 4-frame patches as the BAIR recipe."""
    kwargs = dict(image_size=16, channels=3, n_past=3, n_future=2, n_levels=2, depth=2, coupling_width=8,
                  latent_encoder_width=8, latent_encoder_depth=1, warmup_steps=0, init_batch_size=4,
                  val_num_samples=2)
    kwargs.update(overrides)
    return kwargs


def perturb(module: torch.nn.Module, scale: float = 0.1) -> torch.nn.Module:
    """Random values in every parameter (zero-initialised convs included), so no layer is the identity."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * scale)
    return module


def brute_logdet(fn, x: torch.Tensor) -> torch.Tensor:
    """log |det J| of ``fn`` at a single example ``x (1, ...)`` from the full Jacobian."""
    jac = jacobian(lambda v: fn(v.view_as(x)).reshape(-1), x.reshape(-1))
    return torch.linalg.slogdet(jac)[1]


LAYERS = {
    "actnorm": lambda: ActNorm(4),
    "invconv": lambda: InvertibleConv1x1(4),
    "affine": lambda: AffineCoupling(4, 6, "relu"),
    "affine_gatu": lambda: AffineCoupling(4, 6, "gatu"),
    "additive": lambda: AdditiveCoupling(4, 6, "gatu"),
    "step": lambda: FlowStep(4, 6, "affine", "gatu"),
}


@pytest.mark.parametrize("name", list(LAYERS))
def test_every_layer_inverts_exactly_and_its_logdet_is_the_jacobians(name):
    layer = perturb(LAYERS[name]()).double()
    x = torch.randn(2, 4, 3, 3, dtype=torch.float64)
    y, logdet = layer(x)
    back, inv_logdet = layer(y, reverse=True)
    assert (back - x).abs().max() < 1e-10
    torch.testing.assert_close(inv_logdet, -logdet)
    for i in range(2):
        expected = brute_logdet(lambda v: layer(v)[0], x[i:i + 1])
        torch.testing.assert_close(logdet[i], expected, rtol=1e-9, atol=1e-9)


def test_squeeze_is_a_permutation_with_the_t2t_channel_order():
    x = torch.arange(2 * 3 * 4 * 6, dtype=torch.float64).view(2, 3, 4, 6)
    y = squeeze2d(x)
    assert y.shape == (2, 12, 2, 3)
    # channel c*4 + dy*2 + dx at (i, j) holds x[c, 2i + dy, 2j + dx] (t2t's NHWC reshape/transpose)
    assert y[1, 2 * 4 + 1 * 2 + 0, 1, 2] == x[1, 2, 3, 4]
    assert torch.equal(unsqueeze2d(y), x)


def test_whole_flow_inverts_to_1e_5_and_its_logdet_is_the_jacobians():
    model = perturb(VideoFlow(**tiny_kwargs(image_size=8, channels=1)), 0.05).double().eval()
    frames = torch.rand(3, 1, 8, 8, dtype=torch.float64)
    noise = torch.rand(frames.shape, dtype=torch.float64) / 256
    logdet, _, latents = model.encode(frames, noise)
    assert (model.flow_inverse(latents) - (frames - 0.5 + noise)).abs().max() < 1e-5
    constant = -64 * math.log(256)

    def flow(v):
        return torch.cat([z.flatten(1) for z in model.encode(v + 0.5, torch.zeros_like(v))[2]], dim=1)

    for i in range(2):
        expected = brute_logdet(flow, frames[i:i + 1] - 0.5 + noise[i:i + 1])
        torch.testing.assert_close(logdet[i] - constant, expected, rtol=1e-8, atol=1e-8)


def test_actnorm_data_dependent_init_gives_zero_mean_unit_variance():
    norm = ActNorm(5)
    x = torch.randn(64, 5, 4, 4) * torch.tensor([0.1, 1.0, 3.0, 7.0, 0.5]).view(1, 5, 1, 1) + 2.0
    assert torch.equal(norm(x)[0], x)  # not initialised outside the context
    with data_dependent_init():
        y, logdet = norm(x)
    assert bool(norm.initialized)
    torch.testing.assert_close(y.mean(dim=(0, 2, 3)), torch.zeros(5), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.var(dim=(0, 2, 3), unbiased=False), torch.ones(5), atol=1e-4, rtol=0)
    torch.testing.assert_close(logdet, (norm.logs * 3).sum().expand(64) * 16)
    with data_dependent_init():  # initialised once only
        before = norm.bias.clone()
        norm(x * 5)
    assert torch.equal(norm.bias, before)


def test_model_initialize_sets_every_actnorm():
    model = VideoFlow(**tiny_kwargs())
    assert not model.actnorms_initialized()
    model.initialize(torch.rand(4, 5, 3, 16, 16))
    assert model.actnorms_initialized()
    first = model.levels[0][0].actnorm
    assert first.logs.abs().sum() > 0


def test_bits_per_dim_of_a_known_density():
    """A fresh additive model is an orthogonal linear flow (ActNorm identity, couplings zero, rotations), its
    unconditional priors are N(0, 1) and its conditional priors N(z_{t-1}, 1) (latent skip, zero-init heads): with
    zero dequantisation noise every term has a closed form."""
    model = VideoFlow(**tiny_kwargs(coupling="additive")).double()
    clips = torch.randint(0, 256, (2, 5, 3, 16, 16)).double() / 255
    noise = torch.zeros_like(clips)
    d = 3 * 16 * 16
    logp = model.frame_log_probs(clips, range(5), noise)
    base = -d * math.log(256) - 0.5 * d * math.log(2 * math.pi)
    uncond = base - 0.5 * ((clips[:, :3] - 0.5) ** 2).flatten(2).sum(2)
    cond = base - 0.5 * ((clips[:, 3:] - clips[:, 2:4]) ** 2).flatten(2).sum(2)
    # (the orthogonal 1x1 convolutions were built in float32, so their log-dets are 0 to ~1e-7 each)
    torch.testing.assert_close(logp, torch.cat([uncond, cond], dim=1), rtol=0, atol=1e-5)
    bpd = model.objective(clips, noise=noise)  # frames 3 and 4 are scored
    torch.testing.assert_close(bpd, -cond.mean(1) / (math.log(2) * d), rtol=0, atol=1e-8)
    # identical frames: N(0; 0, 1) per dimension, 8 + log2(2π)/2 bits
    still = clips[:, :1].expand(-1, 5, -1, -1, -1)
    expected = torch.full((2,), 8 + 0.5 * math.log2(2 * math.pi), dtype=torch.float64)
    torch.testing.assert_close(model.objective(still, noise=noise), expected, rtol=0, atol=1e-8)


def test_likelihood_api_agrees_with_the_objective():
    model = perturb(VideoFlow(**tiny_kwargs()), 0.02)
    clips = torch.randint(0, 256, (2, 5, 3, 16, 16), dtype=torch.uint8)
    logp = model.log_likelihood(clips, seed=3)
    assert logp.shape == (2, 5) and torch.isfinite(logp).all()
    bpd = model.bits_per_dim(clips, seed=3)
    torch.testing.assert_close(bpd, -logp[:, 3:].sum(1) / (math.log(2) * 3 * 256 * 2))
    torch.testing.assert_close(model.bits_per_dim(clips[0], n_past=4, seed=3), -logp[:1, 4] / (math.log(2) * 768))
    with pytest.raises(ValueError, match="more than n_past=3"):
        model.bits_per_dim(clips[:, :3])


def test_temporal_prior_is_causal():
    prior = perturb(TemporalLatentPrior(6, 3, 8, 2, steps=3, spatial_width=8, dilation_rates=(1, 3)), 0.1)
    assert len(prior.blocks[0]) == 2  # rate 1 fits (3 + 2 <= 8), rate 3 does not (9 > 8)
    x = torch.randn(2, 6, 3, 8, 8)
    changed = x.clone()
    changed[:, :, 2] += 1.0
    a, b = prior.features(x), prior.features(changed)
    torch.testing.assert_close(a[:, :, :2], b[:, :, :2], rtol=0, atol=0)
    assert (a[:, :, 2] - b[:, :, 2]).abs().max() > 1e-3


def test_changing_frame_t_leaves_earlier_frames_and_its_own_top_prior_unchanged():
    model = perturb(VideoFlow(**tiny_kwargs()), 0.05).double()
    clips = torch.rand(2, 6, 3, 16, 16, dtype=torch.float64)
    noise = torch.rand_like(clips) / 256
    changed = clips.clone()
    changed[:, 4] = torch.rand_like(changed[:, 4])
    a = model.frame_log_probs(clips, range(6), noise)
    b = model.frame_log_probs(changed, range(6), noise)
    torch.testing.assert_close(a[:, :4], b[:, :4], rtol=0, atol=0)
    assert (a[:, 4:] - b[:, 4:]).abs().min() > 1e-6  # frame 4 itself and frame 5 (conditioned on it) change
    # the top prior of frame 4 sees frames 1..3 only
    tops = [model.encode(c[:, 1:4].flatten(0, 1), noise[:, 1:4].flatten(0, 1))[2][-1] for c in (clips, changed)]
    priors = [model.top_latent_prior(2, t.view(2, 3, *t.shape[1:])) for t in tops]
    torch.testing.assert_close(priors[0], priors[1], rtol=0, atol=0)


def test_temperature_zero_returns_the_means():
    model = perturb(VideoFlow(**tiny_kwargs()), 0.02).eval()
    hist = [torch.randn(4, 3, *z.shape[1:]) for z in model.encode(torch.rand(4, 3, 16, 16))[2]]
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        _, latents = model.decode(hist, 4, 0.0, g)
        torch.testing.assert_close(latents[-1], model.top_latent_prior(4, hist[-1])[0])
        torch.testing.assert_close(latents[0], model.level_prior(0, _kept_half(model, latents), hist[0])[0])
    # a fresh additive model predicts z_t = z_{t-1} at temperature 0: every frame and sample is the last context
    # frame (up to its dequantisation noise, within one 8-bit level)
    fresh = VideoFlow(**tiny_kwargs(coupling="additive"))
    context = torch.randint(0, 256, (2, 3, 3, 16, 16)).float() / 255
    out = fresh.predict(context, 3, num_samples=3, seed=0, temperature=0)
    assert out.shape == (2, 3, 3, 3, 16, 16)
    assert (out - context[:, None, None, -1]).abs().max() <= 1 / 255 + 1e-6
    assert torch.equal(out[:, :1].expand_as(out), out) and torch.equal(out[:, :, :1].expand_as(out), out)
    warm = fresh.predict(context, 3, num_samples=3, seed=0, temperature=1.0)
    assert (warm[:, 0] - warm[:, 1]).abs().max() > 0.1


def _kept_half(model: VideoFlow, latents):
    """The kept half x1 at level 0 when the flow is run in reverse from ``latents``: the reverse of the top level."""
    h = latents[-1]
    for step in reversed(model.levels[1]):
        h, _ = step(h, reverse=True)
    return unsqueeze2d(h)


def test_predict_contract_and_temperature_errors():
    model = VideoFlow(**tiny_kwargs())
    frames = torch.rand(4, 3, 16, 16)
    out = model.predict(frames, 2, num_samples=2, seed=1)
    assert out.shape == (1, 2, 2, 3, 16, 16) and 0 <= out.min() and out.max() <= 1
    assert torch.equal(out * 255, (out * 255).round())  # quantised to the 8-bit grid as t2t's postprocess
    torch.testing.assert_close(model.predict(frames, 2, num_samples=2, seed=1), out)
    with pytest.raises(TypeError, match="temperature must be a real number"):
        model.predict(frames, 2, temperature="hot")
    with pytest.raises(ValueError, match="finite and >= 0"):
        model.predict(frames, 2, temperature=-0.5)
    with pytest.raises(ValueError, match="at least n_past=3"):
        model.predict(frames[:2], 2)
    with pytest.raises(ValueError, match="num_train_frames must be"):
        VideoFlow(**tiny_kwargs(num_train_frames=3))
    with pytest.raises(ValueError, match="divisible by 2\\*\\*n_levels"):
        VideoFlow(**tiny_kwargs(image_size=18))


def test_postprocess_is_t2t_quantisation():
    """floor((x + 0.5)·256) clipped to 255: the grid k/255 maps to itself; t2t's bins (1/256) are narrower than the
    grid's steps (1/255), so noise of 0.3/256 lifts the levels k >= 179 (k/255 + 0.3 >= 1) by one, as in t2t."""
    grid = torch.arange(256.0) / 255
    x, constant = dequantize(grid.view(1, 1, 16, 16), noise=torch.zeros(1, 1, 16, 16))
    torch.testing.assert_close(constant, torch.tensor([-256 * math.log(256)]))
    torch.testing.assert_close(postprocess(x).flatten(), grid)
    x, _ = dequantize(grid.view(1, 1, 16, 16), noise=torch.full((1, 1, 16, 16), 0.3 / 256))
    lifted = torch.where(torch.arange(256) >= 179, torch.clamp(grid + 1 / 255, max=1.0), grid)
    torch.testing.assert_close(postprocess(x).flatten(), lifted)
    assert postprocess(torch.tensor([float("nan"), -3.0, 3.0])).tolist() == [1.0, 0.0, 1.0]


@pytest.mark.parametrize("name", [n for n in list_models() if n != "videoflow"])
def test_every_other_model_rejects_temperature(name):
    from conftest import TINY_MODEL_KWARGS

    model = create_model(name, **TINY_MODEL_KWARGS.get(name, {}))
    frames = torch.rand(model.n_past, model.channels, model.image_size, model.image_size)
    with pytest.raises(TypeError, match=f"{type(model).__name__}.predict got unexpected keyword.*temperature"):
        model.predict(frames, 2, temperature=0.5)


def test_tiny_flow_overfits_one_batch():
    torch.manual_seed(0)
    model = VideoFlow(**tiny_kwargs(channels=1, coupling_width=16, latent_encoder_width=16, lr=2e-3))
    clips = torch.zeros(4, 4, 1, 16, 16)
    for t in range(4):  # a bright square moving right
        clips[:, t, :, 5:10, 2 + 2 * t:7 + 2 * t] = 1.0
    model.initialize(clips)
    optimizer = model.configure_optimizers()["optimizer"]
    losses = []
    for _ in range(60):
        loss = model.objective(clips).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 2.0, losses[::10]


def test_checkpointing_gives_the_same_gradients_and_bf16_keeps_logdets_float32():
    clips = torch.rand(2, 4, 3, 16, 16)
    grads = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model = perturb(VideoFlow(**tiny_kwargs(checkpointing=checkpointing)), 0.02)
        noise = torch.rand(clips.shape, generator=torch.Generator().manual_seed(2)) / 256
        model.objective(clips, noise=noise).mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    torch.testing.assert_close(grads[0], grads[1])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logdet, _, latents = model.encode(clips[:, 0])
        bpd = model.objective(clips)
    assert logdet.dtype == torch.float32 and latents[0].dtype == torch.float32 and bpd.dtype == torch.float32
    assert torch.isfinite(bpd).all()


def test_warmup_schedule_and_adam_settings():
    model = VideoFlow(**tiny_kwargs(warmup_steps=10))
    config = model.configure_optimizers()
    opt, sched = config["optimizer"], config["lr_scheduler"]["scheduler"]
    assert opt.defaults["betas"] == (0.85, 0.997) and opt.defaults["eps"] == 1e-6
    rates = []
    for _ in range(12):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert rates[0] == 0 and rates[5] == pytest.approx(1.5e-4) and rates[10] == rates[11] == pytest.approx(3e-4)


# Sheet models-videoflow-savp-sv2p.md §1.10 (derived from the code's layer shapes): flow 52.4M + priors 15.1M ≈ 67M
# (bair_quant), 29.8M + 15.1M ≈ 45M (bair_qual).
@pytest.mark.parametrize("name, flow, total", [("bair_quant", 52.4e6, 67e6), ("bair_qual", 29.8e6, 45e6)])
def test_parameter_counts_match_the_sheet(name, flow, total):
    with torch.device("meta"):
        model = VideoFlow.from_preset(name)
    count = model.num_parameters()
    assert abs(count - total) / total < 0.02, count
    assert abs(sum(p.numel() for p in model.levels.parameters()) - flow) / flow < 0.02
    assert VIDEOFLOW_PRESETS[name]["depth"] == 24 and VIDEOFLOW_PRESETS[name]["n_levels"] == 3


def test_configs_hold_the_published_hyperparameters():
    bair = yaml.safe_load((ROOT / "configs/videoflow/bair.yaml").read_text())
    args = bair["model"]["init_args"]
    assert {k: args[k] for k in VIDEOFLOW_PRESETS["bair_quant"]} == {
        k: list(v) if isinstance(v, tuple) else v for k, v in VIDEOFLOW_PRESETS["bair_quant"].items()}
    assert args["adam_betas"] == [0.85, 0.997] and args["adam_eps"] == 1e-6
    assert bair["data"]["init_args"]["batch_size"] == 5
    shapes = VIDEOFLOW_PRESETS["shapes"]  # t2t next_frame_glow_shapes (no config: vpzoo has no shapes data yet)
    assert (shapes["n_past"], shapes["num_cond_latents"], shapes["num_train_frames"], shapes["coupling"],
            shapes["latent_encoder_depth"], shapes["latent_skip"], shapes["lr"]) == (1, 1, 2, "additive", 10, False,
                                                                                1e-4)
    smmnist = yaml.safe_load((ROOT / "configs/videoflow/smmnist.yaml").read_text())
    VideoFlow(**smmnist["model"]["init_args"])  # builds


def test_save_pretrained_round_trip_keeps_the_init_and_the_samples(tmp_path):
    model = VideoFlow(**tiny_kwargs(temperature=0.5))
    model.initialize(torch.rand(4, 4, 3, 16, 16))
    restored = VideoFlow.from_pretrained(model.save_pretrained(tmp_path / "tiny"))
    assert restored.actnorms_initialized() and restored.hparams.temperature == 0.5
    context = torch.rand(2, 3, 3, 16, 16)
    torch.testing.assert_close(restored.predict(context, 2, num_samples=2, seed=4),
                               model.predict(context, 2, num_samples=2, seed=4))
    clip = torch.rand(1, 4, 3, 16, 16)
    torch.testing.assert_close(restored.bits_per_dim(clip, seed=1), model.bits_per_dim(clip, seed=1))


# ------------------------------------------------------------------------------------------------ vpzoo fit
def test_fit_single_process_and_ddp(tmp_path):
    """`vpzoo fit` of the tiny config plainly and under 2-process DDP on CPU (gloo), the two runs side by side: the
    data-dependent init runs on the init batch (split over the processes), bits/dim and the sampled PSNR/SSIM are
    logged, the unconditional top prior (never scored) does not break DDP, and the checkpoint keeps the init."""
    import os
    import subprocess

    from test_cli import VPZOO, last_value, read_metrics

    config = str(ASSETS / "tiny_videoflow.yaml")
    runs = {"single": [], "ddp": ["--trainer.strategy", "ddp", "--trainer.devices", "2"]}
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    procs = {}
    for name, extra in runs.items():
        (tmp_path / name).mkdir()
        procs[name] = subprocess.Popen([VPZOO, "fit", "--config", config, *extra], cwd=tmp_path / name, env=env,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out = {}
    for name, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"{name} failed:\n{stdout[-3000:]}\n{stderr[-5000:]}"
        out[name] = stdout + stderr
    assert "data-dependent ActNorm init on 4 training patches" in out["single"]
    assert "data-dependent ActNorm init on 4 training patches" in out["ddp"]  # 2 per process
    assert "find_unused_parameters=True" in out["ddp"]
    for name in runs:
        rows = read_metrics(tmp_path / name / "logs")
        assert math.isfinite(last_value(rows, "train/bits_per_dim")), name
        assert math.isfinite(last_value(rows, "val/bits_per_dim")) and 0 < last_value(rows, "val/ssim") <= 1, name
    restored = VideoFlow.load_from_checkpoint(next((tmp_path / "single" / "logs").rglob("*.ckpt")), map_location="cpu")
    assert restored.actnorms_initialized()


# ------------------------------------------------------------------------------------------- vpzoo benchmark
def test_bair_videoflow_benchmark_on_real_format_files(tmp_path):
    """bair_videoflow on BAIR TFRecords in the real format (vpzoo's fixture) with a random-weight I3D file: bits/dim of
    the 10 targets given 3 context frames equals the model's own bits_per_dim on the same clips and seed; best-of-N
    PSNR/SSIM and FVD come with it; a model without a likelihood is refused."""
    import warnings

    from vpzoo.data.bair import BAIRDataModule, prepare_bair
    from vpzoo.data.fixtures import write_bair_fixture
    from vpzoo.leaderboard import format_report, get_benchmark, run_benchmark
    from vpzoo.metrics.i3d import InceptionI3d, save_torchscript
    from vpzoo.models.copy_last import CopyLast

    truth = write_bair_fixture(tmp_path / "src", train_files=1, clips_per_file=2, test_clips=2)
    (tmp_path / "bair").mkdir()
    model = VideoFlow(**tiny_kwargs(image_size=64, n_levels=2, depth=1, coupling_width=4, latent_encoder_width=4))
    bench = get_benchmark("bair_videoflow")
    assert (bench.context_frames, bench.predicted_frames, bench.num_samples) == (3, 10, 100)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a partial test split, as intended here
        prepare_bair(tmp_path / "bair", url=truth["tar"].as_uri(), progress=False)
        torch.manual_seed(0)
        save_torchscript(InceptionI3d(width_mult=0.125).eval(), tmp_path / "i3d.pt")
        result = run_benchmark(model, bench, root=str(tmp_path / "bair"), batch_size=2, num_samples=2, seed=5,
                               fvd_weights_path=str(tmp_path / "i3d.pt"), fvd_verify=False)
        with pytest.raises(ValueError, match="exact likelihood.*CopyLast has none"):
            run_benchmark(CopyLast(channels=3), bench, root=str(tmp_path / "bair"), batch_size=2,
                          fvd_weights_path=str(tmp_path / "i3d.pt"), fvd_verify=False)
    data = BAIRDataModule(root=str(tmp_path / "bair"), eval_seq_len=13, num_test=256, eval_batch_size=2,
                          download=False)
    data.setup("test")
    clips = next(iter(data.test_dataloader()))
    expected = model.bits_per_dim(clips, n_past=3, seed=5).mean().item()
    assert result.values["model"]["bits_per_dim"] == pytest.approx(expected, rel=1e-6)
    assert {"psnr", "ssim", "fvd"} <= set(result.values["model"]) and "bits_per_dim" not in result.values["copy_last"]
    records = {r["metric"]: r for r in result.metric_records()}
    assert records["bits_per_dim"]["protocol"] == "bits_per_dim" and "copy_last" not in records["bits_per_dim"]
    assert records["psnr"]["reduction"] == "best" and "reduction" not in records["bits_per_dim"]
    text = format_report(bench, measured=[result])
    assert "1.870" in text and "131.0" in text and "reported, unverified" in text


def test_shapes_videoflow_benchmark_scores_the_fixed_shapes_clips(tmp_path):
    """shapes_videoflow (VideoFlow's shapes protocol, 1 -> 2) on vpzoo's generated Stochastic Movement test clips:
    bits/dim equals the model's own bits_per_dim of the 2 targets given the first frame; copy_last's PSNR and the
    all-black frame's PSNR equal direct computations on the same clips."""
    from vpzoo.data.stochastic_shapes import StochasticShapesDataModule
    from vpzoo.leaderboard import get_benchmark, run_benchmark
    from vpzoo.metrics import psnr

    bench = get_benchmark("shapes_videoflow")
    assert (bench.context_frames, bench.predicted_frames, bench.num_samples, bench.num_test) == (1, 2, 100, 909)
    model = VideoFlow(**tiny_kwargs(image_size=64, n_levels=2, depth=1, coupling_width=4, latent_encoder_width=4,
                                    n_past=1, num_cond_latents=1, num_train_frames=3))
    result = run_benchmark(model, bench, root=str(tmp_path), num_test=4, batch_size=2, num_samples=2, seed=3)
    assert result.num_sequences == 4
    data = StochasticShapesDataModule(root=str(tmp_path), eval_seq_len=3, num_test=909, eval_batch_size=4)
    data.setup("test")
    clips = next(iter(data.test_dataloader()))
    assert clips.shape == (4, 3, 3, 64, 64) and clips[:, 1:].amax() > 0
    expected_bpd = torch.cat([model.bits_per_dim(clips[i:i + 2], n_past=1, seed=3 + i // 2) for i in (0, 2)])
    assert result.values["model"]["bits_per_dim"] == pytest.approx(expected_bpd.mean().item(), rel=1e-5)
    targets = clips[:, 1:]
    copy_last = psnr(clips[:, :1].expand_as(targets), targets).mean().item()
    black = psnr(torch.zeros_like(targets), targets).mean().item()
    assert result.values["copy_last"]["psnr"] == pytest.approx(copy_last, rel=1e-4)
    assert result.values["black"]["psnr"] == pytest.approx(black, rel=1e-4)
    assert -1 <= result.values["model"]["ssim"] <= 1 and math.isfinite(result.values["model"]["psnr"])
