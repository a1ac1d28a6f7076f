"""Enc-ODE-Dec (``encodedec``, ``encodedec_det``): sizes, the ODE solution, the losses, the reverse-order RNN,
continuous-time prediction (``times``) and its errors, the solver options, overfitting, and ``vpzoo fit``."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import vpzoo
from test_cli import ASSETS, last_value, read_metrics, run_vpzoo
from vpzoo.models.encodedec import EncODEDec, EncODEDecDet, gaussian_nll

TINY = dict(image_size=16, res_channels=(4, 8), hidden=16, latent_dim=4, n_past=3, n_future=3)


def tiny(cls=EncODEDec, **kw):
    torch.manual_seed(0)
    return cls(**{**TINY, **kw})


def clips(b=2, t=5, size=16, seed=1):
    return torch.rand(b, t, 1, size, size, generator=torch.Generator().manual_seed(seed))


def squares(b=2, t=3, size=16):
    """Clips of a 4x4 white square moving one pixel per frame on black, a different start per clip."""
    x = torch.zeros(b, t, 1, size, size)
    for i in range(b):
        for k in range(t):
            x[i, k, 0, 2 + 3 * i: 6 + 3 * i, 2 + k: 6 + k] = 1.0
    return x


# ------------------------------------------------------------------------------------------------ sizes
@pytest.mark.parametrize("name, sheet, parts", [
    ("encodedec", 0.27e6, (0.137e6, 0.100e6, 0.033e6)),
    ("encodedec_det", 0.98e6, (0.448e6, 0.399e6, 0.132e6)),
])
def test_parameter_counts_match_the_sheet(name, sheet, parts):
    """Sheet models-p2p-ddpae-odevideo.md §3.6 (from the code's layer shapes); the exact totals are the authors'
    modules' counts (270,223 and 978,319, measured against their code)."""
    model = vpzoo.create_model(name)
    total = model.num_parameters()
    assert total == {"encodedec": 270_223, "encodedec_det": 978_319}[name]
    assert abs(total - sheet) / sheet < 0.02
    for module, expected in zip((model.encoder, model.decoder, model.ode_func), parts):
        assert abs(sum(p.numel() for p in module.parameters()) - expected) / expected < 0.02


def test_skip_level_doubles_the_matching_decoder_block():
    for level in range(1, 5):
        model = tiny(skip_level=level, res_channels=(2, 4, 6, 8))
        # decoder block 4 - level runs at encoder level `level`'s resolution; its input is [x, skip]
        assert model.decoder.blocks[4 - level].norm1.num_channels == 2 * [8, 6, 4, 2][4 - level]
        out = model.predict(clips(2, 3), n_future=2, num_samples=2, seed=0)
        assert out.shape == (2, 2, 2, 1, 16, 16)
        # the decoder learns through the skip half of that block
        loss = model.forward_loss(clips(2, 3))["loss"]
        loss.backward()
        assert model.decoder.blocks[4 - level].conv1.weight.grad[[8, 6, 4, 2][4 - level]:].abs().sum() > 0  # skip rows
    with pytest.raises(ValueError, match="skip_level must be an int in \\[0, 4\\]"):
        vpzoo.create_model("encodedec", skip_level=5)


# ------------------------------------------------------------------------------------------------ prediction
@pytest.mark.parametrize("cls", [EncODEDec, EncODEDecDet])
def test_predict_shapes_range_and_sampling(cls):
    model = tiny(cls)
    out = model.predict(clips(2, 4), n_future=5, num_samples=3, seed=0)
    assert out.shape == (2, 3, 5, 1, 16, 16) and 0 <= out.min() and out.max() <= 1
    again = model.predict(clips(2, 4), n_future=5, num_samples=3, seed=0)
    assert torch.equal(out, again)
    spread = (out[:, 0] - out[:, 1]).abs().max().item()
    if cls.stochastic:
        assert spread > 1e-4  # z_0 is drawn from q(z_0 | context) per sample
    else:
        assert spread == 0
    # only the last n_past frames condition the model: an earlier frame changes nothing
    longer = torch.cat([torch.rand(2, 2, 1, 16, 16), clips(2, 4)], dim=1)
    assert torch.equal(model.predict(longer, n_future=5, num_samples=3, seed=0), out)


def test_the_rnn_reads_the_context_in_reverse_time_order():
    """h ← tanh(i2h([feat_t, h])) from h = 0 over t = T-1 … 0, (μ, logvar) = h2o(h): z_0 is anchored at frame 0."""
    model = tiny()
    x = clips(2, 3) * 2 - 1
    mu, logvar, _ = model.encode(x)
    enc = model.encoder

    def manual(order):
        h = torch.zeros(2, enc.hidden)
        for t in order:
            feat, _ = enc.features(x[:, t])
            h = torch.tanh(enc.i2h(torch.cat([feat, h], 1)))
        return enc.h2o(h).chunk(2, 1)

    mu_r, logvar_r = manual([2, 1, 0])
    torch.testing.assert_close(mu, mu_r)
    torch.testing.assert_close(logvar, logvar_r)
    mu_f, _ = manual([0, 1, 2])
    assert (mu - mu_f).abs().max() > 1e-3  # the order matters


# ------------------------------------------------------------------------------------------------ the ODE
def test_ode_solution_equals_the_closed_form_of_a_constant_and_a_linear_field():
    model = tiny().double()
    z0 = torch.randn(3, 4, dtype=torch.float64)
    t = torch.tensor([0.0, 0.1, 0.35, 1.0], dtype=torch.float64)
    # constant field f(z) = c (fc3's weights 0): z(t) = z0 + c t
    with torch.no_grad():
        model.ode_func.fc3.weight.zero_()
        model.ode_func.fc3.bias.copy_(torch.tensor([1.0, -2.0, 0.5, 0.0]))
    z = model.integrate(z0, t)
    assert z.shape == (3, 4, 4)
    torch.testing.assert_close(z, z0[:, None] + t[None, :, None] * model.ode_func.fc3.bias.detach(), rtol=0,
                               atol=1e-10)
    assert model.last_nfe > 0

    # linear field dz/dt = A z: z(t) = expm(A t) z0, to the solver's tolerances (rtol 1e-7, atol 1e-9)
    class Linear(nn.Module):
        def __init__(self, a):
            super().__init__()
            self.a, self.nfe = a, 0

        def forward(self, t, z):
            self.nfe += 1
            return z @ self.a.T

    a = torch.tensor([[0.0, 2.0, 0, 0], [-2.0, 0.0, 0, 0], [0, 0, -1.0, 0.5], [0, 0, 0, 0.3]], dtype=torch.float64)
    model.ode_func = Linear(a)
    z = model.integrate(z0, t)
    exact = torch.stack([z0 @ torch.linalg.matrix_exp(a * s).T for s in t], dim=1)
    torch.testing.assert_close(z, exact, rtol=1e-6, atol=1e-8)
    # a fixed-grid method with step_size is the textbook recursion: Euler z_{k+1} = (I + h A) z_k
    model.hparams.method, model.hparams.step_size = "euler", 0.05
    z = model.integrate(z0, torch.tensor([0.0, 0.5], dtype=torch.float64))
    euler = z0 @ torch.linalg.matrix_power(torch.eye(4, dtype=torch.float64) + 0.05 * a, 10).T
    torch.testing.assert_close(z[:, 1], euler, rtol=1e-12, atol=1e-12)
    assert model.last_nfe == 10


def test_solver_options_pass_through_and_are_checked():
    z0 = torch.randn(2, 4)
    t = torch.tensor([0.0, 0.5, 1.0])
    nfe = {}
    for name, kw in {"tight": {}, "loose": dict(rtol=1e-3, atol=1e-4), "rk4": dict(method="rk4", step_size=0.1),
                     "rk4_grid": dict(method="rk4")}.items():
        model = tiny(**kw)
        model.integrate(z0, t)
        nfe[name] = model.last_nfe
    assert nfe["loose"] < nfe["tight"]
    assert nfe["rk4"] == 4 * 10 and nfe["rk4_grid"] == 4 * 2  # 4 evaluations per rk4 step
    with pytest.raises(ValueError, match="method must be a torchdiffeq solver"):
        tiny(method="dopri6")
    with pytest.raises(ValueError, match="step_size is an option of the fixed-grid methods"):
        tiny(step_size=0.1)
    with pytest.raises(ValueError, match="rtol and atol must be > 0"):
        tiny(rtol=0.0)


def test_adjoint_gives_the_same_gradients_and_counts_backward_evaluations():
    batch = clips(2, 3)
    grads = {}
    for adjoint in (False, True):
        model = tiny(adjoint=adjoint)
        out = model.forward_loss(batch, noise=torch.zeros(2, 4))
        forward_nfe = model.last_nfe
        model.ode_func.nfe = 0
        out["loss"].backward()
        assert (model.ode_func.nfe > 0) == adjoint  # only the adjoint solves an ODE backward
        assert forward_nfe > 0
        grads[adjoint] = torch.cat([p.grad.flatten() for p in model.parameters()])
    torch.testing.assert_close(grads[True], grads[False], rtol=1e-3, atol=1e-3 * grads[False].abs().max().item())


# ------------------------------------------------------------------------------------------------ losses
def test_rnn_loss_terms_against_a_direct_computation():
    model = tiny()
    batch = clips(2, 5)
    eps = torch.randn(2, 4)
    out = model.forward_loss(batch, noise=eps)
    x = batch[:, :3] * 2 - 1
    mu, logvar, _ = model.encode(x)
    z0 = mu + eps * torch.exp(0.5 * logvar)
    z = model.integrate(z0, torch.tensor([0.0, 1 / 19, 2 / 19]))
    recon = model.decode(z, None)
    torch.testing.assert_close(out["recon"], recon)
    sigma = 0.3
    nll = (0.5 * math.log(2 * math.pi * sigma**2) + (x - recon) ** 2 / (2 * sigma**2)).sum(dim=(1, 2, 3, 4)).mean()
    kl = (0.5 * (mu**2 + logvar.exp() - 1 - logvar)).sum(1).mean()
    torch.testing.assert_close(out["nll"], nll)
    torch.testing.assert_close(out["kl"], kl)
    torch.testing.assert_close(out["loss"], nll + kl)
    torch.testing.assert_close(out["mse"], ((batch[:, :3] - (recon + 1) / 2) ** 2).mean())
    # the paper's σ = 1 weighs the pixel term 1/0.09 times less
    paper = tiny(recon_sigma=1.0).forward_loss(batch, noise=eps)
    nll1 = (0.5 * math.log(2 * math.pi) + (x - paper["recon"]) ** 2 / 2).sum(dim=(1, 2, 3, 4)).mean()
    torch.testing.assert_close(paper["nll"], nll1)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_deterministic_loss_terms_against_a_direct_computation(reduction):
    model = tiny(EncODEDecDet, latent_reduction=reduction)
    batch = clips(3, 4)
    out = model.forward_loss(batch)
    x = batch[:, :3] * 2 - 1
    codes = torch.stack([model.encoder(x[:, t])[0] for t in range(3)], dim=1)
    z = model.integrate(codes[:, 0], torch.tensor([0.0, 1 / 19, 2 / 19]))
    torch.testing.assert_close(z[:, 0], codes[:, 0])
    recon = model.decode(z, None)
    nll = gaussian_nll(x, recon, 0.3).sum(dim=(1, 2, 3, 4)).mean()
    per_clip = (0.5 * math.log(2 * math.pi * 0.09) + (codes - z) ** 2 / (2 * 0.09)).sum(dim=(1, 2))
    latent = per_clip.sum() if reduction == "sum" else per_clip.mean()  # the code sums over the batch
    torch.testing.assert_close(out["nll"], nll)
    torch.testing.assert_close(out["latent_nll"], latent)
    torch.testing.assert_close(out["loss"], nll + latent)


def test_stop_gradient_option_on_the_latent_target():
    batch = clips(2, 4)
    grads = {}
    for detach in (False, True):
        model = tiny(EncODEDecDet, detach_latent_target=detach)
        out = model.forward_loss(batch)
        model.zero_grad()
        out["latent_nll"].backward()
        grads[detach] = model.encoder.i2h.weight.grad.clone()
    # with the target detached the encoder still gets the gradient through z_0 = Enc(x_0), but not through x_1, x_2
    assert not torch.allclose(grads[True], grads[False])
    for name, bad in (("latent_sigma", dict(latent_sigma=0.0)), ("latent_reduction", dict(latent_reduction="avg"))):
        with pytest.raises(ValueError, match=name):
            tiny(EncODEDecDet, **bad)


@pytest.mark.parametrize("cls", [EncODEDec, EncODEDecDet])
def test_loss_falls_when_overfitting_one_batch(cls):
    model = tiny(cls, method="rk4", lr=1e-2)
    batch = squares(2, 3)
    opt = model.configure_optimizers()
    assert isinstance(opt, torch.optim.Adam) and tiny(cls).configure_optimizers().defaults["lr"] == 1e-4
    torch.manual_seed(0)
    losses, mses = [], []
    for _ in range(30):
        opt.zero_grad()
        out = model.forward_loss(batch)
        out["loss"].backward()
        opt.step()
        losses.append(out["loss"].item())
        mses.append(out["mse"].item())
    assert np.mean(losses[-3:]) < np.mean(losses[:3]) - 0.2 * abs(np.mean(losses[:3]))
    assert np.mean(mses[-3:]) < 0.4 * np.mean(mses[:3])


def test_lr_decay_step_drops_the_learning_rate_from_that_global_step():
    """The optional ×0.1 drop (not in the code) is set from ``global_step`` before every batch: a trainer that starts
    at step 0 uses lr, lr, then lr/10 from step 2 on; without the option the lr stays constant (the code)."""
    import lightning.pytorch as pl

    class RecordLR(pl.Callback):
        def __init__(self) -> None:
            self.lrs: list[float] = []

        def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:  # noqa: ANN001
            self.lrs.append(optimizer.param_groups[0]["lr"])

    data = torch.utils.data.DataLoader(squares(8, 3), batch_size=2)
    for decay, expected in ((2, [1e-3, 1e-3, 1e-4, 1e-4]), (None, [1e-3] * 4)):
        record = RecordLR()
        trainer = pl.Trainer(max_steps=4, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                             enable_model_summary=False, callbacks=[record], accelerator="cpu")
        trainer.fit(tiny(method="rk4", lr=1e-3, lr_decay_step=decay), data)
        assert record.lrs == pytest.approx(expected)
    model = tiny(lr=1e-3, lr_decay_step=5)
    assert model.learning_rate(4, 1, 2) == 1e-3 and model.learning_rate(5, 1, 2) == pytest.approx(1e-4)
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="lr_decay_step must be None or an integer >= 1"):
            tiny(lr_decay_step=bad)


# ------------------------------------------------------------------------------------------------ times
@pytest.mark.parametrize("cls", [EncODEDec, EncODEDecDet])
def test_times_at_integers_equal_n_future_and_interpolate_between_frames(cls):
    model = tiny(cls)
    context = clips(2, 3)
    base = model.predict(context, n_future=4, num_samples=2, seed=3)
    at = model.predict(context, n_future=2, num_samples=2, seed=3, times=[1, 2])
    torch.testing.assert_close(at, base[:, :, :2], rtol=0, atol=1e-6)
    half = model.predict(context, n_future=4, num_samples=2, seed=3, times=torch.tensor([0.5, 1.0, 1.5, 2.0]))
    torch.testing.assert_close(half[:, :, 1::2], base[:, :, :2], rtol=0, atol=1e-6)
    assert (half[:, :, 0] - base[:, :, 0]).abs().max() > 1e-5  # t = 0.5 is another frame
    fast = model.predict(context, n_future=16, num_samples=2, seed=3, times=np.arange(1, 17) * 0.25)  # 4x fps
    torch.testing.assert_close(fast[:, :, 3::4], base, rtol=0, atol=1e-6)


def test_times_map_to_ode_time_as_documented():
    """With a constant field f(z) = c, the frame at ``times = τ`` decodes z_0 + c (n_past - 1 + τ) / 19."""
    model = tiny(EncODEDecDet)
    with torch.no_grad():
        model.ode_func.fc3.weight.zero_()
        model.ode_func.fc3.bias.fill_(0.7)
    context = clips(1, 3)
    taus = [0.25, 1.0, 3.5]
    out = model.predict(context, n_future=3, times=taus)
    with torch.no_grad():
        z0, _ = model.encoder(context[:, 0] * 2 - 1)  # window = the last n_past=3 frames: frame 0 here
        z = torch.stack([z0[0] + 0.7 * (2 + tau) / 19 for tau in taus])
        direct = (model.decoder(z) + 1) / 2
    torch.testing.assert_close(out[0, 0], direct, rtol=0, atol=1e-5)


@pytest.mark.parametrize("times, error, match", [
    ([], ValueError, "times is empty"),
    ([1.0, 1.0], ValueError, "strictly increasing"),
    ([2.0, 1.0], ValueError, "strictly increasing"),
    ([-1.0, 1.0], ValueError, "must be > 0, got -1"),
    ([0.0, 1.0], ValueError, "must be > 0, got 0"),
    ([1.0, float("nan")], ValueError, "finite"),
    ([1.0, float("inf")], ValueError, "finite"),
    ([[1.0, 2.0]], ValueError, "1-D"),
    (["a", "b"], TypeError, "real numbers"),
    ([True, False], TypeError, "real numbers"),
    (1.0, TypeError, "1-D list, tuple, numpy array or tensor"),
    ([1.0, 2.0, 3.0], ValueError, "n_future must equal len\\(times\\), got n_future=2 and 3 times"),
])
def test_bad_times_are_refused(times, error, match):
    model = tiny()
    with pytest.raises(error, match=match):
        model.predict(clips(1, 3), n_future=2, times=times)


def test_models_without_continuous_time_refuse_times():
    with pytest.raises(TypeError, match="CopyLast.predict got unexpected keyword\\(s\\) times"):
        vpzoo.create_model("copy_last").predict(clips(1, 2, 64), n_future=2, times=[1, 2])


# ------------------------------------------------------------------------------------------------ vpzoo fit
def test_vpzoo_fit_plain_and_under_two_process_ddp(tmp_path):
    """The tiny config (the RNN variant on fixed 32-px Moving MNIST clips) trains from the command line, logs the
    losses and the NFE, validates, and does the same under 2-process DDP on CPU (gloo)."""
    for strategy in ("auto", "ddp"):
        cwd = tmp_path / strategy
        cwd.mkdir()
        run_vpzoo(["fit", "--config", str(ASSETS / "tiny_encodedec.yaml"), "--trainer.strategy", strategy,
                   "--trainer.devices", "2" if strategy == "ddp" else "1"], cwd)
        rows = read_metrics(cwd / "logs")
        assert last_value(rows, "train/nfe") >= 2
        assert math.isfinite(last_value(rows, "train/kl")) and math.isfinite(last_value(rows, "train/nll"))
        assert -1 <= last_value(rows, "val/ssim") <= 1  # validated (an untrained model may score below 0)


def test_vpzoo_predict_fps_factor_writes_a_slow_motion_gif(tmp_path, capsys):
    from vpzoo.cli import main
    from vpzoo.io import read_video
    from vpzoo.models import CopyLast

    folder = tiny().save_pretrained(tmp_path / "ode")
    clip = (clips(1, 6)[0, :, 0].numpy() * 255).round().astype(np.uint8)  # (T, H, W): 3 context + 3 ground truth
    np.save(tmp_path / "clip.npy", clip)
    args = ["predict", str(folder), "--input", str(tmp_path / "clip.npy"), "--n-future", "3", "--num-samples", "1",
            "--device", "cpu"]
    assert main(args + ["--fps-factor", "4", "--out", str(tmp_path / "slow.gif")]) == 0
    out = capsys.readouterr().out
    assert "1 sample(s) of 3 frames at 4x the frame rate (12 frames)" in out
    assert "vs ground truth (3 frames" in out  # scored on the frames at whole intervals
    assert read_video(tmp_path / "slow.gif").shape[0] == 3 + 12
    assert main(args + ["--out", str(tmp_path / "plain.gif")]) == 0
    assert read_video(tmp_path / "plain.gif").shape[0] == 3 + 3
    CopyLast(image_size=16, n_past=3).save_pretrained(tmp_path / "copy")
    with pytest.raises(SystemExit):
        main(["predict", str(tmp_path / "copy"), "--input", str(tmp_path / "clip.npy"), "--fps-factor", "2",
              "--out", str(tmp_path / "c.gif")])
    assert "--fps-factor needs a continuous-time model" in capsys.readouterr().err


@pytest.mark.parametrize("cls", [EncODEDec, EncODEDecDet])
def test_save_pretrained_and_load_round_trip(cls, tmp_path):
    model = tiny(cls, skip_level=1, method="bosh3", rtol=1e-5)
    loaded = vpzoo.load(model.save_pretrained(tmp_path / "m"), device="cpu")
    assert type(loaded) is cls and loaded.hparams.method == "bosh3" and list(loaded.hparams.res_channels) == [4, 8]
    a = model.predict(clips(1, 3), n_future=2, num_samples=2, seed=4, times=[0.5, 2.0])
    torch.testing.assert_close(loaded.predict(clips(1, 3), n_future=2, num_samples=2, seed=4, times=[0.5, 2.0]), a)


# ------------------------------------------------------------------------------------------------ the shipped weights
def _centroids(frames: torch.Tensor) -> torch.Tensor:
    """Intensity-weighted centre ``(..., 2)`` (row, column) of frames ``(..., H, W)``."""
    h, w = frames.shape[-2:]
    rows, cols = torch.arange(h, dtype=frames.dtype).view(h, 1), torch.arange(w, dtype=frames.dtype).view(1, w)
    mass = frames.sum((-1, -2)).clamp_min(1e-8)
    return torch.stack([(frames * rows).sum((-1, -2)) / mass, (frames * cols).sum((-1, -2)) / mass], -1)


def test_shipped_checkpoint_moves_the_digit_and_interpolates_between_frames():
    """encodedec_mmnist1 on 32 of its benchmark's test clips (1 digit, 10 -> 10 extrapolated): per-frame MSE below
    copy_last's and the black frame's; the predicted digit follows the true one (centroid error well under
    copy_last's); and the frames at half intervals put the digit at the midpoint of the neighbouring whole-interval
    frames (measured 0.34 px off the midpoint for 3.0 px steps), which is what continuous time is for."""
    from vpzoo.data.moving_mnist import MovingMNISTDataModule

    dm = MovingMNISTDataModule(num_digits=1, image_size=64, eval_seq_len=20, eval_batch_size=32, download=False,
                               test_source="generated", num_test=32)
    dm.setup("test")
    batch = next(iter(dm.test_dataloader()))
    x = batch if torch.is_tensor(batch) else batch[0]
    context, future = x[:, :10], x[:, 10:]
    model = vpzoo.load("encodedec_mmnist1", device="cpu")
    pred = model.predict(context, n_future=10, seed=0)[:, 0]
    per_frame = lambda a: ((a - future) ** 2).sum((2, 3, 4)).mean().item()  # noqa: E731
    mse, copy_last, black = per_frame(pred), per_frame(context[:, -1:]), per_frame(torch.zeros_like(future))
    print(f"per-frame MSE {mse:.1f}, copy_last {copy_last:.1f}, black {black:.1f}")
    assert mse < copy_last and mse < black

    half = model.predict(context, n_future=10, seed=0, times=[0.5 * k for k in range(1, 11)])[:, 0, :, 0]
    track = torch.cat([_centroids(context[:, -1:, 0]), _centroids(half)], 1)  # t = 0, 0.5, 1, ..., 5
    whole, between = track[:, 0::2], track[:, 1::2]
    step = (whole[:, 1:] - whole[:, :-1]).norm(dim=-1).mean()
    off_midpoint = (between - (whole[:, 1:] + whole[:, :-1]) / 2).norm(dim=-1).mean()
    error = (whole[:, 1:] - _centroids(future[:, :5, 0])).norm(dim=-1).mean()
    error_copy_last = (whole[:, :1] - _centroids(future[:, :5, 0])).norm(dim=-1).mean()
    print(f"centroid: step {step:.2f} px, half-interval frames {off_midpoint:.2f} px off the midpoint; error "
          f"{error:.2f} px vs copy_last {error_copy_last:.2f} px")
    assert step > 1.0 and off_midpoint < 0.25 * step
    assert error < 0.7 * error_copy_last


# ------------------------------------------------------------------------------------ without torchdiffeq
def test_vpzoo_imports_and_trains_other_models_without_torchdiffeq():
    """A GPU image may lack SciPy, which torchdiffeq imports (the offline wheelhouse cannot carry its ~35 MB), or
    torchdiffeq itself: the models still register, another model builds and takes a training step, and building an
    Enc-ODE-Dec raises an ImportError naming what to install. Run in a fresh interpreter in which importing
    torchdiffeq fails (SciPy stays importable: torchmetrics decides from the installed distributions, not imports,
    whether to import it)."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent("""
        import importlib.abc, sys

        class Missing(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "torchdiffeq":
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)
                return None

        sys.meta_path.insert(0, Missing())
        import torch
        from vpzoo.registry import get_model_class, list_models
        from vpzoo.models.encodedec import EncODEDec
        assert {"encodedec", "encodedec_det", "ddpae", "svg_lp"} <= set(list_models()), list_models()
        model = get_model_class("ddpae")(image_size=32, n_past=3, n_future=2, n_components=2, image_latent_size=32,
                                         content_latent_size=16, hidden_size=16, ngf=4)
        model.forward_loss(torch.rand(2, 5, 1, 32, 32))["loss"].backward()
        assert "torchdiffeq" not in sys.modules
        for cls in (EncODEDec, get_model_class("encodedec_det")):
            try:
                cls(image_size=16, res_channels=(4, 8), hidden=16, latent_dim=4)
            except ImportError as e:
                print("ERROR", cls.__name__, e)
            else:
                raise SystemExit(f"{cls.__name__} built without torchdiffeq")
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    errors = [line for line in proc.stdout.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 2, proc.stdout
    for line in errors:
        assert "needs torchdiffeq and SciPy" in line and "pip install 'torchdiffeq>=0.2.5' scipy" in line, line
