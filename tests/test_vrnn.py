"""Improved Conditional VRNN (`vrnn`, `vrnn_hier`): shapes, parameter counts, the ConvLSTM, the init, the loss,
overfitting, sampling (batched, O(T) and the released O(T²) procedure), activation checkpointing, bf16, the lr/β
schedules and `vpzoo fit` (plain and 2-process DDP on CPU)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml

from test_cli import last_value, read_metrics, run_vpzoo
from vpzoo.models.blocks import NormConvLSTMCell
from vpzoo.models.vrnn import VRNN, VRNNHier, frame_embedding_channels

ROOT = Path(__file__).resolve().parents[1]
ASSETS = Path(__file__).parent / "assets"


def tiny(cls=VRNN, **overrides):
    """The narrowest VRNN (width 16, the smallest GroupNorm(16) allows): ~9.5M (vrnn) / ~13M (vrnn_hier) params."""
    kwargs = dict(channels=1, n_past=2, n_future=3, width=16, rec_loss="l1", val_num_samples=2)
    kwargs.update(overrides)
    return cls(**kwargs)


def _recording_noise(store: list):
    def noise(kind, level, shape):
        eps = torch.randn(shape)
        store.append(eps)
        return eps
    return noise


# ------------------------------------------------------------------------------------------------ structure
@pytest.mark.parametrize("cls", [VRNN, VRNNHier])
def test_shapes_at_every_level(cls):
    model = tiny(cls)
    x = torch.rand(2, 5, 1, 64, 64)
    emb = model.embed(x)
    sides = [64, 32, 16, 8, 4, 1]
    assert [tuple(e.shape) for e in emb] == [(2, 5, c, s, s) for c, s in zip(frame_embedding_channels(16), sides)]
    out = model.forward_loss(x)
    expected = [(10, 1), (128, 8), (32, 32)][: cls.latent_levels]  # z: n_z@1², 8w@8², 2w@32² (w = 16)
    assert len(out["dists"]) == cls.latent_levels
    for d, (c, s) in zip(out["dists"], expected):
        for key in ("mean_q", "logvar_q", "mean_p", "logvar_p", "z"):
            assert tuple(d[key].shape) == (2, 3, c, s, s), key
    assert out["recon"].shape == (2, 3, 1, 64, 64) and 0 <= out["recon"].min() and out["recon"].max() <= 1
    states = model.initial_states(emb)
    hidden = [128, 128, 128, 64, 32, 16]
    render_sides = [1, 4, 8, 16, 32, 64]
    assert [tuple(h.shape) for h, _ in states["render"]] == [(2, c, s, s) for c, s in zip(hidden, render_sides)]
    pred = model.predict(x[:, :2], 4, num_samples=3, seed=0)
    assert pred.shape == (2, 3, 4, 1, 64, 64) and 0 <= pred.min() and pred.max() <= 1


def _config(path: str) -> dict:
    return yaml.safe_load((ROOT / "configs" / path).read_text())


# Sheet models-drnet-svg-vrnn.md §4.9 (derived from the released layer shapes).
@pytest.mark.parametrize("config, cls, reference", [
    ("vrnn/bair.yaml", VRNN, 151.4e6),
    ("vrnn_hier/bair.yaml", VRNNHier, 207.9e6),
    ("vrnn/smmnist.yaml", VRNN, 307.9e6),
])
def test_parameter_counts_match_the_sheet(config, cls, reference):
    spec = _config(config)["model"]
    assert spec["class_path"] == f"vpzoo.models.vrnn.{cls.__name__}"
    with torch.device("meta"):  # no memory, no init cost
        model = cls(**spec["init_args"])
    assert abs(model.num_parameters() - reference) / reference < 0.02, model.num_parameters()


def test_configs_hold_the_readme_settings():
    smmnist = _config("vrnn/smmnist.yaml")
    args = smmnist["model"]["init_args"]
    assert (args["rec_loss"], args["n_past"], args["n_future"], args["channels"]) == ("bce", 10, 10, 1)
    assert (args["width"], args["z_channels"], args["beta"], args["lr"], args["weight_decay"]) == (64, 10, 1.0, 1e-4,
                                                                                                   1e-4)
    assert smmnist["data"]["init_args"]["seq_len"] == 20 and smmnist["data"]["init_args"]["batch_size"] == 16
    for path in ("vrnn/bair.yaml", "vrnn_hier/bair.yaml"):
        config = _config(path)
        args = config["model"]["init_args"]
        assert (args["rec_loss"], args["n_past"], args["n_future"], args["channels"]) == ("l1", 2, 10, 3)
        data = config["data"]["init_args"]
        assert (data["seq_len"], data["eval_seq_len"], data["train_crop"]) == (12, 30, "random")
    small = _config("vrnn/smmnist_small.yaml")["model"]["init_args"]
    assert small["width"] < 64 and (small["rec_loss"], small["n_past"]) == ("bce", 10)


def test_prior_with_higher_latents_is_an_option():
    released, paper = tiny(VRNNHier), tiny(VRNNHier, prior_uses_higher_latents=True)
    # the paper's prior output convs also read z¹ (10 ch) at level 2 and z¹ + z² (10 + 128 ch) at level 3
    extra = (10 * 256) + (138 * 64)
    assert paper.num_parameters() - released.num_parameters() == extra
    assert tiny(VRNN, prior_uses_higher_latents=True).num_parameters() == tiny(VRNN).num_parameters()
    # the paper's prior at level 2 changes with z¹; the released one does not
    for model, depends in ((released, False), (paper, True)):
        torch.manual_seed(0)
        with torch.no_grad():
            model.priors[1].head_norm.weight.fill_(1.0)  # let the head's input through
            emb = model.embed(torch.rand(1, 3, 1, 64, 64))
            states = model.initial_states(emb)
            prev = [e[:, 1:2] for e in emb]
            means = []
            for scale in (0.0, 5.0):
                noise = lambda kind, level, shape, s=scale: torch.full(shape, s) if level == 0 else torch.zeros(shape)
                _, dists, _ = model.unroll(prev, None, states, noise)
                means.append(dists[1]["mean_p"])
        assert (not torch.equal(*means)) == depends


# ------------------------------------------------------------------------------------------------ equations
def test_norm_convlstm_step_equals_a_direct_computation():
    torch.manual_seed(0)
    cell = NormConvLSTMCell(5, 16)
    for norm in (cell.input_norm, cell.hidden_norm, cell.cell_norm):  # non-trivial affine parameters
        torch.nn.init.normal_(norm.weight, 1.0, 0.3)
        torch.nn.init.normal_(norm.bias, 0.0, 0.3)
    x, h, c = torch.randn(3, 5, 6, 6), torch.randn(3, 16, 6, 6), torch.randn(3, 16, 6, 6)
    new_h, (state_h, new_c) = cell(x, (h, c))

    def gn(v, norm):
        return F.group_norm(v, 16, norm.weight, norm.bias, norm.eps)

    gates = (gn(F.conv2d(x, cell.input_conv.weight, cell.input_conv.bias, padding=1), cell.input_norm)
             + gn(F.conv2d(h, cell.hidden_conv.weight, cell.hidden_conv.bias, padding=1), cell.hidden_norm))
    i, f, o, g = gates[:, :16], gates[:, 16:32], gates[:, 32:48], gates[:, 48:]
    expected_c = gn(torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g), cell.cell_norm)
    expected_h = torch.sigmoid(o) * torch.tanh(expected_c)
    torch.testing.assert_close(new_c, expected_c)
    torch.testing.assert_close(new_h, expected_h)
    assert state_h is new_h
    zero_h, _ = cell(x)  # None state = zeros
    torch.testing.assert_close(zero_h, cell(x, (torch.zeros_like(h), torch.zeros_like(c)))[0])


@pytest.mark.parametrize("cls", [VRNN, VRNNHier])
def test_initial_prior_and_posterior_are_near_n_0_softplus_0(cls):
    """The code zero-initialises the last GroupNorm's gain and draws its bias from N(0, 1e-3): whatever the input,
    every Gaussian starts at mean = bias ≈ 0 and variance = softplus(bias) ≈ log 2."""
    model = tiny(cls)
    out = model.forward_loss(torch.rand(2, 4, 1, 64, 64))
    for level, d in enumerate(out["dists"]):
        for kind, net in (("q", model.posteriors[level]), ("p", model.priors[level])):
            bias = net.head_norm.bias.detach()
            z = model.latent_channels[level]
            torch.testing.assert_close(d[f"mean_{kind}"], bias[:z].view(1, 1, z, 1, 1).expand_as(d[f"mean_{kind}"]))
            logvar = F.softplus(bias[z:]).log().view(1, 1, z, 1, 1)
            torch.testing.assert_close(d[f"logvar_{kind}"], logvar.expand_as(d[f"logvar_{kind}"]))
            assert bias.abs().max() < 6e-3 and torch.equal(net.head_norm.weight, torch.zeros_like(bias))
            assert (d[f"logvar_{kind}"].exp() - math.log(2)).abs().max() < 5e-3


@pytest.mark.parametrize("rec_loss", ["l1", "l2", "bce"])
def test_loss_equals_a_direct_computation(rec_loss):
    """Reconstruction summed over (T, C, H, W) and averaged over the batch; KL = log q(z) − log p(z) at the
    posterior sample, summed over everything but the batch and averaged over it; loss = rec + β·KL."""
    model = tiny(VRNNHier, rec_loss=rec_loss, beta=0.5).double()  # float64: the KL sums ~10⁵ terms of both signs
    x = torch.rand(2, 5, 1, 64, 64, dtype=torch.float64)
    out = model.forward_loss(x)
    assert out["kl"].dtype == torch.float64
    target = x[:, 2:]
    rec = {"l1": (out["recon"] - target).abs(), "l2": (out["recon"] - target) ** 2,
           "bce": -(target * out["recon"].log() + (1 - target) * (1 - out["recon"]).log())}[rec_loss]
    torch.testing.assert_close(out["rec"], rec.sum(dim=(1, 2, 3, 4)).mean())
    kl = 0
    for d in out["dists"]:
        q = torch.distributions.Normal(d["mean_q"], (0.5 * d["logvar_q"]).exp())
        p = torch.distributions.Normal(d["mean_p"], (0.5 * d["logvar_p"]).exp())
        kl = kl + (q.log_prob(d["z"]) - p.log_prob(d["z"])).sum(dim=(1, 2, 3, 4))
    torch.testing.assert_close(out["kl"], kl.mean())
    torch.testing.assert_close(out["loss"], out["rec"] + 0.5 * out["kl"])


def test_learning_rate_and_beta_schedules_follow_the_code():
    model = tiny(lr=1e-4, lr_warmup_steps=100, beta=1.0, beta_warmup_steps=40)
    assert model.learning_rate(0, world_size=1, batch_size=32) == 1e-4  # single process: never scaled
    # 4 processes of 16 clips: lr -> 1e-4 * 16 * 4 / 16 = 4e-4 over 100 / 4 = 25 steps, counted from 1
    assert model.learning_rate(0, 4, 16) == pytest.approx(1e-4 + 1 * 3e-4 / 25)
    assert model.learning_rate(23, 4, 16) == pytest.approx(1e-4 + 24 * 3e-4 / 25)
    assert model.learning_rate(24, 4, 16) == pytest.approx(4e-4)
    assert tiny(lr=1e-4).learning_rate(0, 2, 8) == pytest.approx(1e-4)  # batch 8 x 2 = 16: the reference rate
    assert model.beta_at(0) == pytest.approx(1 / 40) and model.beta_at(19) == pytest.approx(0.5)
    assert model.beta_at(39) == 1.0 and model.beta_at(9, world_size=2) == pytest.approx(0.5)
    assert tiny().beta_at(0) == 1.0
    optimizer = model.configure_optimizers()
    assert isinstance(optimizer, torch.optim.Adam) and optimizer.defaults["weight_decay"] == 1e-4


# ------------------------------------------------------------------------------------------------ training
def test_overfits_one_batch():
    """A tiny VRNN overfits one clip of a moving square: the loss falls at least 3x in 20 steps."""
    torch.manual_seed(0)
    model = tiny(n_future=1)
    x = torch.zeros(1, 3, 1, 64, 64)
    for t in range(3):
        x[:, t, :, 20:36, 10 + 6 * t : 26 + 6 * t] = 1.0
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(20):
        optimizer.zero_grad()
        loss = model.forward_loss(x)["loss"]
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 3, (losses[0], losses[-1])


def test_activation_checkpointing_gives_the_same_gradients():
    """In float64 (the checkpointed renderer computes the input convolutions per step instead of for all steps at
    once, which only changes float32 rounding): the same loss and the same gradients, and the renderer's
    activations are recomputed (the graph keeps fewer tensors outside the checkpointed regions)."""
    torch.manual_seed(0)
    plain = tiny(VRNNHier).double()
    checkpointed = tiny(VRNNHier, checkpoint_renderer=True).double()
    checkpointed.load_state_dict(plain.state_dict())
    x = torch.rand(2, 4, 1, 64, 64, dtype=torch.float64)
    grads, losses, saved = [], [], []
    for model in (plain, checkpointed):
        torch.manual_seed(1)
        count = [0]

        def pack(t, count=count):
            count[0] += t.numel()
            return t
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = model.forward_loss(x, noise=lambda kind, level, shape: torch.randn(shape, dtype=torch.float64))
        losses.append(loss["loss"])
        saved.append(count[0])
        grads.append(torch.autograd.grad(loss["loss"], list(model.parameters())))
    torch.testing.assert_close(losses[0], losses[1], rtol=1e-12, atol=0)
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
    assert saved[1] < 0.75 * saved[0], saved  # the tensors autograd keeps outside the checkpointed regions


def test_bf16_mixed_forward_and_backward():
    model = tiny(VRNNHier, rec_loss="bce")
    x = torch.rand(2, 4, 1, 64, 64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model.forward_loss(x)
    assert out["loss"].dtype == out["kl"].dtype == out["rec"].dtype == torch.float32
    assert math.isfinite(out["loss"].item()) and out["dists"][0]["logvar_q"].dtype == torch.float32
    out["loss"].backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


# ------------------------------------------------------------------------------------------------ sampling
@pytest.mark.parametrize("cls", [VRNN, VRNNHier])
def test_batched_sampling_equals_per_sample_sampling_with_the_same_noise(cls):
    model = tiny(cls).eval()
    context = torch.rand(1, 3, 1, 64, 64)  # one frame more than n_past: run through with the posterior
    n = 3
    with torch.no_grad():
        emb = [e.repeat_interleave(n, dim=0) for e in model.embed(context)]
        store: list = []
        batched = model.rollout(emb, 3, _recording_noise(store))
        for sample in range(n):
            replay = iter([eps[sample : sample + 1] for eps in store])
            single = model.rollout([e[sample : sample + 1] for e in emb], 3, lambda kind, level, shape: next(replay))
            torch.testing.assert_close(batched[sample : sample + 1], single, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(batched[0], batched[1])


def test_predict_uses_every_context_frame_and_is_seeded():
    model = tiny().eval()
    context = torch.rand(2, 4, 1, 64, 64)
    a = model.predict(context, 3, num_samples=2, seed=3)
    torch.testing.assert_close(a, model.predict(context, 3, num_samples=2, seed=3))
    assert not torch.equal(a, model.predict(context, 3, num_samples=2, seed=4))
    changed = context.clone()
    changed[:, 3] = torch.rand_like(changed[:, 3])  # a context frame after the first n_past = 2
    assert not torch.allclose(a, model.predict(changed, 3, num_samples=2, seed=3))


def test_rerun_procedure_redraws_earlier_latents():
    """The released O(T²) sampler: the first frame is the O(T) sampler's with the same noise; later frames are
    predicted after re-running the renderer with fresh latents for the earlier steps, so they differ."""
    model = tiny(VRNNHier).eval()
    context = torch.rand(1, 2, 1, 64, 64)
    recurrent = model.predict(context, 3, num_samples=2, seed=7)
    rerun = model.predict(context, 3, num_samples=2, seed=7, procedure="rerun")
    assert rerun.shape == recurrent.shape
    torch.testing.assert_close(rerun[:, :, 0], recurrent[:, :, 0], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(rerun[:, :, 1:], recurrent[:, :, 1:], atol=1e-4)
    # with the same latents for the earlier steps, re-running gives the same frames as carrying the states forward
    with torch.no_grad():
        emb = model.embed(context)
        store: list = []
        frames = model.rollout(emb, 3, _recording_noise(store))
        steps = [store[i : i + 3] for i in range(0, 9, 3)]  # per step: one draw per level

        def replay():
            calls = {"n": 0}

            def noise(kind, level, shape):  # pass t draws (1, t + 1, ...) per level: the first t + 1 steps' noise
                eps = torch.cat([steps[t][level] for t in range(shape[1])], dim=1)
                calls["n"] += 1
                return eps
            return noise
        again = model._sample_rerun(context, emb, model.initial_states(emb), 3, replay())
    torch.testing.assert_close(again, frames, rtol=1e-5, atol=1e-5)


def test_bad_arguments_and_inputs():
    with pytest.raises(ValueError, match="64x64"):
        VRNN(image_size=32)
    with pytest.raises(ValueError, match="multiple of 16"):
        VRNN(width=24)
    with pytest.raises(ValueError, match="rec_loss"):
        tiny(rec_loss="huber")
    with pytest.raises(ValueError, match="beta"):
        tiny(beta=-1.0)
    model = tiny()
    with pytest.raises(ValueError, match="more than n_past=2"):
        model.forward_loss(torch.rand(1, 2, 1, 64, 64))
    with pytest.raises(ValueError, match=r"\(B, T, 1, 64, 64\)"):
        model.forward_loss(torch.rand(1, 4, 3, 64, 64))
    with pytest.raises(ValueError, match="procedure"):
        model.predict(torch.rand(2, 1, 64, 64), 2, procedure="fast")
    with pytest.raises(ValueError, match="n_past=2"):
        model.predict(torch.rand(1, 1, 64, 64), 2)


# ------------------------------------------------------------------------------------------------ vpzoo fit
def _check_fit_outputs(root: Path) -> None:
    rows = read_metrics(root / "logs")
    assert math.isfinite(last_value(rows, "train/loss")) and 0 < last_value(rows, "val/ssim") <= 1
    assert math.isfinite(last_value(rows, "val/loss"))
    checkpoint = next((root / "logs").rglob("*.ckpt"))
    model = VRNNHier.load_from_checkpoint(checkpoint, map_location="cpu")
    assert model.predict(torch.rand(2, 1, 64, 64), 2, seed=0).shape == (1, 1, 2, 1, 64, 64)


def test_fit_single_process(tmp_path, monkeypatch):
    """`vpzoo fit` of the tiny config under bf16-mixed, in this process (the console script's own entry point,
    without a second import of Lightning)."""
    from vpzoo.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["vpzoo"])
    assert main(["fit", "--config", str(ASSETS / "tiny_vrnn.yaml"), "--trainer.precision", "bf16-mixed"]) == 0
    _check_fit_outputs(tmp_path)


def test_fit_ddp_two_processes_on_cpu(tmp_path):
    """`vpzoo fit --trainer.strategy ddp --trainer.devices 2` as users run it (a subprocess; gloo on CPU)."""
    run_vpzoo(["fit", "--config", str(ASSETS / "tiny_vrnn.yaml"), "--trainer.strategy", "ddp",
               "--trainer.devices", "2"], tmp_path)
    _check_fit_outputs(tmp_path)
