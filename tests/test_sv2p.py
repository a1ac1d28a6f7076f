"""SV2P and the pixel-advection blocks: CDNA/DNA/STP, TF-style layers, parameter counts, the three training phases,
scheduled sampling, overfitting, the predict contract and stochasticity.

Small widths and 32-px frames keep every test on CPU in a second or two (SV2P accepts any multiple of 8)."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
import yaml
from torch.utils.data import DataLoader

from vpzoo.models.blocks import (
    CDNA,
    STP,
    Conv2dSame,
    ConvLSTMCell,
    ConvTranspose2dSame,
    LayerNorm2d,
    apply_image_kernels,
    composite_masks,
    dna_transform,
    symmetric_pad,
    tf_same_padding,
)
from vpzoo.models.sv2p import SV2P, scheduled_sampling_ground_truth

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "sv2p"


@pytest.fixture(autouse=True)
def _one_thread():
    """The CI machines have 2 cores shared with other jobs; one intra-op thread avoids OpenMP oversubscription."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_sv2p_kwargs(**overrides):
    """A small SV2P (32-px frames, conv-LSTMs 4-16 channels wide) for fast CPU tests."""
    kwargs = dict(
        image_size=32, n_past=2, n_future=3, lstm_sizes=(8, 8, 16, 16, 16, 16, 8), conv0_channels=8,
        posterior_widths=(8, 16, 16), phase1_steps=0, phase2_steps=10**6, val_num_samples=2,
    )
    kwargs.update(overrides)
    return kwargs


def moving_squares(size: int = 32, t: int = 5) -> torch.Tensor:
    """Two clips of a bright square moving right / left by 3 px per frame, ``(2, t, 1, size, size)``."""
    x = torch.zeros(2, t, 1, size, size)
    for i in range(t):
        x[0, i, :, 4:12, 2 + 3 * i : 10 + 3 * i] = 1.0
        x[1, i, :, 16:24, 20 - 3 * i : 28 - 3 * i] = 1.0
    return x


# ----------------------------------------------------------------------------------------------- blocks
def test_cdna_kernels_are_positive_and_sum_to_one():
    torch.manual_seed(0)
    for identity_offset in (False, True):
        cdna = CDNA(in_features=24, num_kernels=10, kernel_size=5, identity_offset=identity_offset)
        kernels = cdna.kernels(torch.randn(3, 24) * 5)
        assert kernels.shape == (3, 10, 5, 5)
        assert kernels.min() > 0
        torch.testing.assert_close(kernels.sum(dim=(-2, -1)), torch.ones(3, 10))
    out = cdna(torch.randn(3, 24), torch.rand(3, 2, 16, 16), num_used=9)
    assert out.shape == (3, 9, 2, 16, 16)
    assert out.min() >= 0 and out.max() <= 1  # normalised kernels average the image


@pytest.mark.parametrize("padding", ["zeros", "symmetric"])
def test_zero_motion_kernel_reproduces_the_image(padding):
    torch.manual_seed(0)
    image = torch.rand(2, 3, 16, 16)
    # an untrained CDNA layer whose linear output is a centre spike: normalised, the kernel is (almost) a delta
    cdna = CDNA(in_features=8, num_kernels=4, padding=padding)
    with torch.no_grad():
        cdna.fc.weight.zero_()
        cdna.fc.bias.copy_(torch.zeros(5, 5, 4).index_put_((torch.tensor(2), torch.tensor(2)), torch.tensor(1.0))
                           .flatten())
    moved = cdna(torch.randn(2, 8), image)
    for k in range(4):
        torch.testing.assert_close(moved[:, k], image, atol=1e-6, rtol=0)
    # an exact delta, and DNA's per-pixel delta, reproduce the image exactly
    delta = torch.zeros(2, 1, 5, 5)
    delta[..., 2, 2] = 1.0
    torch.testing.assert_close(apply_image_kernels(image, delta, padding)[:, 0], image, atol=0, rtol=0)
    dna_logits = torch.full((2, 25, 16, 16), -1.0)
    dna_logits[:, 12] = 1.0
    torch.testing.assert_close(dna_transform(image, dna_logits), image, atol=1e-6, rtol=0)


def test_kernels_move_the_image_and_padding_modes():
    image = torch.rand(1, 1, 8, 8)
    shift = torch.zeros(1, 1, 3, 3)
    shift[..., 1, 0] = 1.0  # cross-correlation: out[y, x] = in[y, x - 1], the image moves right by one pixel
    out = apply_image_kernels(image, shift, "zeros")[:, 0]
    torch.testing.assert_close(out[..., 1:], image[..., :-1])
    assert (out[..., 0] == 0).all()  # zero "SAME" padding comes in at the border
    sym = apply_image_kernels(image, shift, "symmetric")[:, 0]
    torch.testing.assert_close(sym[..., 0], image[..., 0])  # TF SYMMETRIC mirrors the edge pixel itself
    x = torch.arange(4.0).view(1, 1, 1, 4).expand(1, 1, 4, 4)
    assert symmetric_pad(x, 2)[0, 0, 0].tolist() == [1, 0, 0, 1, 2, 3, 3, 2]


def test_composite_masks_blends_a_convex_combination():
    candidates = torch.rand(2, 4, 3, 8, 8)
    logits = torch.full((2, 4, 8, 8), -30.0)
    logits[:, 2] = 30.0
    torch.testing.assert_close(composite_masks(logits, candidates), candidates[:, 2])
    out = composite_masks(torch.randn(2, 4, 8, 8), candidates)
    assert out.min() >= candidates.min() - 1e-6 and out.max() <= candidates.max() + 1e-6
    with pytest.raises(ValueError, match="masks"):
        composite_masks(torch.randn(2, 3, 8, 8), candidates)


@pytest.mark.parametrize("n, k, s", [(32, 5, 2), (16, 3, 2), (8, 3, 2), (7, 3, 2), (8, 1, 1)])
def test_tf_same_convolutions(n, k, s):
    """Output sizes of TF "SAME", and the transposed conv is the exact adjoint of the conv (as TF defines it)."""
    torch.manual_seed(0)
    conv, convt = Conv2dSame(3, 4, k, s, bias=False), ConvTranspose2dSame(4, 3, k, s, bias=False)
    with torch.no_grad():
        convt.weight.copy_(conv.weight)
    big, small = torch.randn(2, 3, n * s, n * s), torch.randn(2, 4, n, n)
    assert conv(big).shape == (2, 4, n, n) and convt(small).shape == (2, 3, n * s, n * s)
    torch.testing.assert_close((conv(big) * small).sum(), (convt(small) * big).sum(), rtol=1e-5, atol=1e-4)
    assert tf_same_padding(64, 5, 2) == (1, 2) and tf_same_padding(32, 3, 2) == (0, 1)


def test_layer_norm_and_conv_lstm_cell():
    x = torch.randn(2, 6, 5, 5) * 3 + 1
    y = LayerNorm2d(6)(x)
    torch.testing.assert_close(y.mean(dim=(1, 2, 3)), torch.zeros(2), atol=1e-5, rtol=0)  # over C, H, W
    cell = ConvLSTMCell(6, 4, output_norm=LayerNorm2d)
    out, (c, h) = cell(x)
    assert out.shape == c.shape == h.shape == (2, 4, 5, 5)
    assert not torch.allclose(out, h)  # the state keeps the un-normalised h, as the official code
    torch.testing.assert_close(out, cell.output_norm(h))
    zeros = torch.zeros(2, 4, 5, 5)
    torch.testing.assert_close(cell(x, (zeros, zeros))[0], out)  # the zero-state shortcut is exact
    # forget bias 1 on a zero-weight cell: c' = c·σ(1) + σ(0)·tanh(0)
    with torch.no_grad():
        cell.conv.weight.zero_()
        cell.conv.bias.zero_()
    _, (c2, _) = cell(x, (torch.ones_like(c), torch.zeros_like(h)))
    torch.testing.assert_close(c2, torch.full_like(c2, torch.sigmoid(torch.tensor(1.0)).item()))
    savp_cell = ConvLSTMCell(6, 4, gate_norm=lambda c: torch.nn.GroupNorm(c, c))  # SAVP: normed gates, no bias
    assert savp_cell.conv.bias is None and savp_cell(x)[0].shape == (2, 4, 5, 5)


def test_stp_starts_near_identity_warps():
    stp = STP(in_features=8, num_transforms=3)
    with torch.no_grad():
        stp.heads.weight.zero_()
        stp.heads.bias.zero_()
    image = torch.rand(2, 1, 16, 16)
    torch.testing.assert_close(stp(torch.randn(2, 8), image), image[:, None].expand(2, 3, 1, 16, 16))


# ------------------------------------------------------------------------------------------ parameters
# ../shared/reference/models-videoflow-savp-sv2p.md §3.2 and §4: SV2P ≈ 8.3M (64-px RGB CDNA network); the CDNA
# fully connected layer 2.05M, lstm5 2.46M, lstm6 1.23M.
def test_parameter_counts_match_the_sheet():
    model = SV2P(channels=3, n_past=2, n_future=10)
    gen = model.generator
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert abs(count(gen) - 8.3e6) / 8.3e6 < 0.02, count(gen)
    assert abs(model.num_parameters() - 8.3e6) / 8.3e6 < 0.02, model.num_parameters()
    assert count(gen.cdna) == 8192 * 250 + 250 == 2_048_250
    for module, reference in ((gen.lstm5, 2.46e6), (gen.lstm6, 1.23e6)):
        assert abs(count(module) - reference) / reference < 0.02
    assert model.latent_shape == (1, 8, 8)


@pytest.mark.parametrize("name", ["smmnist", "kth", "bair"])
def test_configs_build_the_paper_model(name):
    cfg = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())
    assert cfg["model"]["class_path"] == "vpzoo.models.sv2p.SV2P"
    args = cfg["model"]["init_args"]
    model = SV2P(**args)
    generator = sum(p.numel() for p in model.generator.parameters())
    assert abs(generator - 8.3e6) / 8.3e6 < 0.02, generator
    lengths = {"smmnist": (5, 10, 25, 32), "kth": (10, 10, 40, 16), "bair": (2, 10, 30, 32)}[name]
    data = cfg["data"]["init_args"]
    assert (args["n_past"], args["n_future"], data["eval_seq_len"], data["batch_size"]) == lengths
    assert data["seq_len"] == args["n_past"] + args["n_future"]
    assert (args["lr"], args["beta"], args["scheduled_sampling_k"], args["latent_channels"]) == (1e-3, 1e-3, 900.0, 1)
    assert (args["phase1_steps"], args["phase2_steps"], args["kl_anneal_steps"]) == (50_000, 50_000, 20_000)
    assert cfg["trainer"]["max_steps"] == 200_000 and cfg["trainer"]["gradient_clip_val"] is None
    assert args["drop_last_kernel"] is True and args["finn2016_heads"] is False


def test_clean_cdna_and_variants_build():
    quirk = SV2P(**tiny_sv2p_kwargs())
    clean = SV2P(**tiny_sv2p_kwargs(drop_last_kernel=False))
    assert quirk.generator.masks.out_channels == 11 and clean.generator.masks.out_channels == 12
    assert SV2P(**tiny_sv2p_kwargs(transformation="dna", num_masks=1)).generator.masks.out_channels == 2
    assert SV2P(**tiny_sv2p_kwargs(transformation="stp")).generator.stp.num_transforms == 9
    with pytest.raises(ValueError, match="one mask"):
        SV2P(**tiny_sv2p_kwargs(transformation="dna"))
    with pytest.raises(ValueError, match="multiple of 8"):
        SV2P(image_size=60)


def test_the_dropped_kernel_gets_no_gradient():
    """Official pairing: CDNA kernel 10 is computed but never reaches the output; the clean version uses it."""
    for drop, expect_grad in ((True, False), (False, True)):
        torch.manual_seed(0)
        model = SV2P(**tiny_sv2p_kwargs(drop_last_kernel=drop))
        model.forward_loss(moving_squares(), step=10**5)["loss"].backward()
        grad = model.generator.cdna.fc.weight.grad.view(5, 5, 10, -1)[:, :, 9]  # output rows (k, k, K): kernel 10
        assert (grad.abs().sum() > 0) == expect_grad


# ----------------------------------------------------------------------------------------------- phases
def test_phase_and_beta_schedule():
    model = SV2P(**tiny_sv2p_kwargs(phase1_steps=10, phase2_steps=5, kl_anneal_steps=4, beta=1e-3))
    assert [model.phase_at(s) for s in (0, 9, 10, 14, 15, 100)] == [1, 1, 2, 2, 3, 3]
    assert [model.beta_at(s) for s in (0, 14, 15, 16, 17, 19, 50)] == pytest.approx(
        [0, 0, 0, 2.5e-4, 5e-4, 1e-3, 1e-3])
    jump = SV2P(**tiny_sv2p_kwargs(phase1_steps=1, phase2_steps=1, kl_anneal_steps=0))
    assert jump.beta_at(1) == 0 and jump.beta_at(2) == jump.hparams.beta


def test_phases_use_the_latent_as_the_paper_says():
    torch.manual_seed(0)
    model = SV2P(**tiny_sv2p_kwargs(phase1_steps=3, phase2_steps=3, kl_anneal_steps=0, beta=0.5))
    x = moving_squares()
    calls = []
    model.posterior.register_forward_hook(lambda m, i, o: calls.append(1))
    for step, phase in ((0, 1), (3, 2), (6, 3)):
        model.zero_grad()
        calls.clear()
        out = model.forward_loss(x, step=step)
        out["loss"].backward()
        posterior_grad = sum(p.grad.abs().sum() for p in model.posterior.parameters() if p.grad is not None)
        assert int(out["phase"]) == phase
        if phase == 1:  # z ~ N(0, I): the inference network is not even run
            assert not calls and "kl" not in out and posterior_grad == 0
            torch.testing.assert_close(out["loss"], out["mse"])
        elif phase == 2:  # z ~ q(z | x), no KL
            assert calls and out["kl"] > 0 and posterior_grad > 0
            torch.testing.assert_close(out["loss"], out["mse"])
        else:  # KL to N(0, I) on the reference convention: KL / (latent width · channels)
            torch.testing.assert_close(out["loss"], out["mse"] + 0.5 * out["kl"] / 4)


def test_phase_follows_the_trainer_global_step():
    """Inside Lightning, the phase and β are derived from ``trainer.global_step``; validation runs too."""
    torch.manual_seed(0)
    model = SV2P(**tiny_sv2p_kwargs(phase1_steps=2, phase2_steps=2, kl_anneal_steps=2))
    clips = moving_squares().repeat(2, 1, 1, 1, 1)
    seen = []

    class Record(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            m = trainer.callback_metrics
            seen.append((trainer.global_step - 1, int(m["train/phase"]), round(float(m["train/beta"]), 6)))

    trainer = L.Trainer(
        max_steps=6, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=[Record()], limit_val_batches=1,
        val_check_interval=6, check_val_every_n_epoch=None, num_sanity_val_steps=0,
    )
    loader = DataLoader(list(clips), batch_size=2)
    trainer.fit(model, train_dataloaders=loader, val_dataloaders=DataLoader(list(clips[:2]), batch_size=2))
    assert seen == [(0, 1, 0.0), (1, 1, 0.0), (2, 2, 0.0), (3, 2, 0.0), (4, 3, 0.0), (5, 3, 5e-4)]
    assert model.last_validation["num_samples"] == 2 and model.last_validation["psnr"] > 0


# ------------------------------------------------------------------------------------ scheduled sampling
def test_scheduled_sampling_counts():
    # round(B · k / (k + exp(step / k))), k = 900: ≈ 78 % ground truth at 5k steps, 27 % at 7k, 1 % at 10k
    assert [scheduled_sampling_ground_truth(s, 100, 900.0) for s in (0, 5000, 7000, 10_000, 20_000, 10**9)] == [
        100, 78, 27, 1, 0, 0]
    assert scheduled_sampling_ground_truth(0, 32, None) == 0


@pytest.mark.parametrize("step, expected_gt", [(0, 4), (6000, 2), (30_000, 0)])
def test_scheduled_sampling_feeds_whole_examples(step, expected_gt):
    """After the context, exactly round(B·k/(k+e^{step/k})) examples get their ground-truth frame, the others their
    own prediction; context steps always get ground truth."""
    torch.manual_seed(0)
    model = SV2P(**tiny_sv2p_kwargs())
    x = torch.rand(4, 5, 1, 32, 32)
    assert model.ground_truth_count(step, 4) == expected_gt
    enc0_inputs = []
    model.generator.enc0.register_forward_hook(lambda m, i, o: enc0_inputs.append(i[0].detach().clone()))
    recon = model.forward_loss(x, step=step)["recon"].detach()
    assert len(enc0_inputs) == 4
    for t in range(2):
        torch.testing.assert_close(enc0_inputs[t], x[:, t])
    for t in (2, 3):  # fed frame t: ground truth x_t or the prediction of x_t (recon index t - 2)
        is_gt = (enc0_inputs[t] == x[:, t]).flatten(1).all(1)
        is_pred = (enc0_inputs[t] == recon[:, t - 2]).flatten(1).all(1)
        assert int(is_gt.sum()) == expected_gt and bool((is_gt ^ is_pred).all())


def test_skipping_context_heads_changes_nothing():
    model = SV2P(**tiny_sv2p_kwargs(n_past=3, n_future=2))
    x = torch.rand(2, 5, 1, 32, 32)
    torch.manual_seed(1)
    fast = model.forward_loss(x, step=10**5)
    torch.manual_seed(1)
    full = model.forward_loss(x, step=10**5, all_outputs=True)
    torch.testing.assert_close(fast["loss"], full["loss"])
    torch.testing.assert_close(fast["recon"], full["recon"])


# ---------------------------------------------------------------------------------------------- training
def test_overfits_one_batch():
    """A tiny SV2P overfits two moving-square clips (posterior phase, autoregressive): loss falls >= 4x in 30 steps."""
    torch.manual_seed(0)
    model = SV2P(**tiny_sv2p_kwargs())
    x = moving_squares()
    opt = model.configure_optimizers()
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = model.forward_loss(x, step=20_000)["loss"]
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 4, (losses[0], losses[-1])


def test_training_batch_shape_is_checked():
    model = SV2P(**tiny_sv2p_kwargs())
    with pytest.raises(ValueError, match="n_past \\+ n_future"):
        model.forward_loss(torch.rand(2, 6, 1, 32, 32))


# ---------------------------------------------------------------------------------------------- sampling
@pytest.fixture(scope="module")
def sv2p():
    torch.manual_seed(0)
    return SV2P(**tiny_sv2p_kwargs()).eval()


def test_predict_contract(sv2p):
    ctx = torch.rand(2, 3, 1, 32, 32)  # more context frames than n_past: all of them condition the model
    out = sv2p.predict(ctx, n_future=4, num_samples=3, seed=0)
    assert out.shape == (2, 3, 4, 1, 32, 32) and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 1 and out.is_inference()
    torch.testing.assert_close(out, sv2p.predict(ctx, n_future=4, num_samples=3, seed=0))
    u8 = (ctx[0] * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()  # (T, H, W, C) as imageio reads
    assert sv2p.predict(u8, 2, num_samples=2, seed=1).shape == (1, 2, 2, 1, 32, 32)
    sv2p.train()
    try:
        sv2p.predict(ctx, 1, seed=0)
        assert sv2p.training
    finally:
        sv2p.eval()
    with pytest.raises(ValueError, match="at least n_past=2"):
        sv2p.predict(torch.rand(1, 1, 32, 32), 2)
    with pytest.raises(ValueError, match="1 channel"):
        sv2p.predict(torch.rand(3, 3, 32, 32), 2)


def test_all_samples_in_one_batched_pass(sv2p):
    lower, heads = [], []
    h1 = sv2p.generator.lstm1.register_forward_hook(lambda m, i, o: lower.append(i[0].shape[0]))
    h2 = sv2p.generator.masks.register_forward_hook(lambda m, i, o: heads.append(i[0].shape[0]))
    try:
        sv2p.predict(torch.rand(2, 3, 1, 32, 32), 4, num_samples=10, seed=0)
    finally:
        h1.remove()
        h2.remove()
    assert lower == [2, 2, 2, 20, 20, 20]  # context: once per clip; future: all 20 samples per call
    assert heads == [20] * 4  # heads only where a frame is predicted, all samples at once


def test_shared_context_sampler_equals_a_plain_unroll(sv2p):
    """Running the lower tower once per clip during the context gives the same samples as a per-sample unroll."""
    ctx = torch.rand(2, 3, 1, 32, 32)
    fast = sv2p.predict(ctx, 3, num_samples=2, seed=4)
    g = torch.Generator().manual_seed(4)
    z = torch.randn((4, *sv2p.latent_shape), generator=g)
    frames = ctx.repeat_interleave(2, dim=0)
    lower = upper = None
    with torch.no_grad():
        for t in range(3):
            enc0, enc1, enc2, lower = sv2p.generator.lower(frames[:, t], lower)
            out, upper = sv2p.generator.upper(enc0, enc1, enc2, z, frames[:, t], upper)
        plain = [out]
        for _ in range(2):
            enc0, enc1, enc2, lower = sv2p.generator.lower(out, lower)
            out, upper = sv2p.generator.upper(enc0, enc1, enc2, z, out, upper)
            plain.append(out)
    torch.testing.assert_close(fast, torch.stack(plain, 1).view(2, 2, 3, 1, 32, 32), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("time_variant", [False, True])
def test_samples_differ_between_seeds_and_within_a_call(time_variant):
    torch.manual_seed(0)
    model = SV2P(**tiny_sv2p_kwargs(time_variant=time_variant)).eval()
    ctx = torch.rand(1, 2, 1, 32, 32)
    a = model.predict(ctx, 3, num_samples=2, seed=1)
    b = model.predict(ctx, 3, num_samples=2, seed=2)
    assert not torch.equal(a, b)
    assert not torch.equal(a[:, 0], a[:, 1])
    if time_variant:
        model.forward_loss(moving_squares(), step=10**5)["loss"].backward()  # per-step ε in training too


def test_static_video_is_reproduced_by_a_zero_motion_model():
    """With centre-spike CDNA kernels and the mask on the first CDNA image, the model predicts "no motion"."""
    model = SV2P(**tiny_sv2p_kwargs()).eval()
    gen = model.generator
    with torch.no_grad():
        gen.cdna.fc.weight.zero_()
        gen.cdna.fc.bias.copy_(torch.zeros(5, 5, 10).index_put_((torch.tensor(2), torch.tensor(2)),
                                                                  torch.tensor(1.0)).flatten())
        gen.masks.weight.zero_()
        gen.masks.bias.fill_(-40.0)
        gen.masks.bias[2] = 40.0  # candidates: [previous frame, scratch, CDNA_1, ...]
    frame = moving_squares()[:1, :1]
    out = model.predict(frame.expand(1, 2, 1, 32, 32), 3, num_samples=2, seed=0)
    torch.testing.assert_close(out, frame[:, None].expand(1, 2, 3, 1, 32, 32), atol=1e-5, rtol=0)
