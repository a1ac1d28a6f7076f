"""DDPAE: parameter counts, configs, the spatial transformer, the recurrences against the official step-by-step loops,
the negative ELBO's terms against torch.distributions, overfitting, the predict contract, the Lightning fit path
(LR drop at half of training, dict batches, checkpoint round trip; `vpzoo fit` under 2-process DDP is in
test_cli.py with the other models') and DDPAE's evaluation metrics and benchmark."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from torch.distributions import Normal, kl_divergence

from vpzoo.models.ddpae import (
    DDPAE,
    composite_objects,
    constrain_pose,
    crop_objects,
    ddpae_frame_errors,
    normal_kl,
    paste_objects,
    pose_grid,
    bouncing_balls_velocity,
    component_separation,
    pose_centres,
    velocity_metrics,
)

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs" / "ddpae"
ASSETS = Path(__file__).resolve().parent / "assets"


def tiny_ddpae_kwargs(**overrides):
    """A small DDPAE (32-px frames, 16-px objects, narrow networks) for fast CPU tests."""
    kwargs = dict(image_size=32, n_past=3, n_future=2, n_components=2, image_latent_size=32, content_latent_size=16,
                  hidden_size=16, ngf=4)
    kwargs.update(overrides)
    return kwargs


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These tiny models run faster on one thread than on two contended ones."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _config(name: str) -> dict:
    return yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())


# ------------------------------------------------------------------------------------------ parameters
# Sheet models-p2p-ddpae-odevideo.md §2.9 (derived from the official layer shapes): totals ≈0.71M / ≈1.81M.
SHEET = {
    "mmnist": (dict(pose_model=0.488e6, content_lstm=0.066e6, object_encoder=0.076e6, object_decoder=0.076e6),
               0.71e6, 706_364),
    "bouncing_balls": (dict(pose_model=1.293e6, content_lstm=0.165e6, object_encoder=0.174e6,
                            object_decoder=0.174e6), 1.81e6, 1_807_420),
}


@pytest.mark.parametrize("name", list(SHEET))
def test_parameter_counts_match_sheet(name):
    modules, total, exact = SHEET[name]
    model = DDPAE(**_config(name)["model"]["init_args"])
    for module, reference in modules.items():
        count = sum(p.numel() for p in getattr(model, module).parameters())
        assert abs(count - reference) / reference < 0.02, (module, count)
    assert sum(p.numel() for p in model.pose_model.image_encoder.parameters()) == (305_504 if name == "mmnist"
                                                                                  else 698_976)
    assert abs(model.num_parameters() - total) / total < 0.02
    assert model.num_parameters() == exact  # this implementation's count, pinned


def test_object_output_bias_adds_one_initialised_parameter():
    """The official decoder's last layer has no bias; ``object_output_bias`` adds it (one parameter), set to the value:
    an all-zero feature map then decodes to sigmoid(value), not 0.5."""
    kwargs = dict(image_size=32, n_components=2, hidden_size=16)
    official, biased = DDPAE(**kwargs), DDPAE(**kwargs, object_output_bias=-3.0)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(biased) == count(official) + 1
    last = biased.object_decoder.main[-2]
    assert official.object_decoder.main[-2].bias is None and last.bias.item() == -3.0
    features = torch.zeros(1, last.in_channels, 8, 8)
    torch.testing.assert_close(biased.object_decoder.main[-1](last(features)), torch.full((1, 1, 16, 16), 0.0474258732))
    torch.testing.assert_close(official.object_decoder.main[-1](official.object_decoder.main[-2](features)),
                               torch.full((1, 1, 16, 16), 0.5))


def test_configs_written_before_object_output_bias_load_as_the_official_decoder(tmp_path):
    """``object_output_bias`` is a legacy config default: a saved config without it (ddpae_mmnist's) builds the
    official bias-free decoder, in loading and in the registry's check alike; any other missing argument is refused."""
    import json

    import vpzoo
    from vpzoo.zoo.format import ConfigMismatchError, config_keys_check

    folder = DDPAE(**tiny_ddpae_kwargs(object_output_bias=None)).save_pretrained(tmp_path / "m")
    doc = json.loads((folder / "config.json").read_text())
    del doc["config"]["object_output_bias"]
    assert config_keys_check(DDPAE, doc["config"]) == ([], [])
    (folder / "config.json").write_text(json.dumps(doc))
    loaded = vpzoo.load(folder)
    assert loaded.object_decoder.main[-2].bias is None
    del doc["config"]["pixel_sigma"]
    assert config_keys_check(DDPAE, {**doc["config"], "colour": 1}) == (["colour"], ["pixel_sigma"])
    (folder / "config.json").write_text(json.dumps(doc))
    with pytest.raises(ConfigMismatchError, match=r"the config lacks \['pixel_sigma'\]"):
        vpzoo.load(folder)


def test_configs_hold_the_official_hyperparameters(tmp_path, monkeypatch):
    import lightning as L
    from lightning.pytorch.cli import LightningCLI

    from vpzoo.data.bouncing_balls import BouncingBallsDataModule
    from vpzoo.data.moving_mnist import MovingMNISTDataModule
    from vpzoo.models import VideoPredictionModel

    monkeypatch.chdir(tmp_path)
    official = {"mmnist": (2, 64, 2.0, 64, 64, MovingMNISTDataModule),
                "bouncing_balls": (4, 128, 4.0, 128, 100, BouncingBallsDataModule)}
    for name, (k, hidden, scale, size, batch, data_cls) in official.items():
        cli = LightningCLI(VideoPredictionModel, L.LightningDataModule, subclass_mode_model=True,
                           subclass_mode_data=True, run=False, args=["--config", str(CONFIGS / f"{name}.yaml")])
        model, dm, hp = cli.model, cli.datamodule, cli.model.hparams
        assert isinstance(model, DDPAE) and isinstance(dm, data_cls)
        assert (hp.n_components, hp.hidden_size, hp.stn_scale_prior, hp.image_size) == (k, hidden, scale, size)
        assert (hp.ngf, hp.image_latent_size, hp.content_latent_size, hp.n_past, hp.n_future) == (8, 256, 128, 10, 10)
        assert (hp.lr, hp.adam_beta1, hp.lr_decay, hp.pixel_sigma, hp.beta_prior_sigma) == (1e-3, 0.5, True, 0.3, 0.1)
        assert tuple(hp.initial_pose_prior_sigma) == (0.2, 1.0, 1.0) and hp.align_corners is True
        assert dm.batch_size == batch and dm.seq_len == hp.n_past + hp.n_future and dm.image_size == size
        assert cli.trainer.max_steps == 200_000
        shared = {key for key in set(model.hparams) & set(dm.hparams) if not key.startswith("_")}
        assert all(model.hparams[key] == dm.hparams[key] for key in shared), shared


# ------------------------------------------------------------------------------------- spatial transformer
def _blob(size: int) -> torch.Tensor:
    """A smooth, asymmetric object ``(1, 1, size, size)`` that vanishes at its border."""
    u = torch.linspace(-1, 1, size)
    yy, xx = torch.meshgrid(u, u, indexing="ij")
    return (torch.exp(-((xx - 0.15) ** 2 + (yy + 0.1) ** 2) / 0.12) * (1 - xx**2) * (1 - yy**2))[None, None]


@pytest.mark.parametrize("align_corners", [True, False])
def test_pose_grid_is_affine_grid_of_the_scale_translation_matrix(align_corners):
    pose = torch.tensor([[2.0, 0.3, -0.45], [4.5, -1.2, 0.8], [0.7, 0.0, 2.0]], dtype=torch.float64,
                        requires_grad=True)
    s, x, y = pose.unbind(-1)
    zero = torch.zeros_like(s)
    theta = torch.stack([s, zero, x, zero, s, y], dim=-1).view(-1, 2, 3)
    weights = torch.randn(3, 24, 24, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    expected = F.affine_grid(theta, [3, 1, 24, 24], align_corners=align_corners)
    grid = pose_grid(pose, 24, align_corners)
    assert grid.shape == (3, 24, 24, 2)
    torch.testing.assert_close(grid, expected, atol=1e-15, rtol=0)
    (grad_expected,) = torch.autograd.grad((expected * weights).sum(), pose)
    (grad,) = torch.autograd.grad((grid * weights).sum(), pose)
    torch.testing.assert_close(grad, grad_expected, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("align_corners", [True, False])
def test_crops_of_k_components_per_frame_equal_one_crop_each(align_corners):
    """crop_objects with poses (N, K, 3) crops K patches of each frame in one call: the patches of one crop per
    (frame, component), (N, K, C, o, o)."""
    g = torch.Generator().manual_seed(1)
    frames = torch.rand(3, 2, 40, 40, generator=g, dtype=torch.float64)
    pose = constrain_pose(torch.randn(3, 4, 3, generator=g, dtype=torch.float64) + 3.0, 3.0)
    crops = crop_objects(frames, pose, 20, align_corners)
    each = crop_objects(frames[:, None].expand(3, 4, 2, 40, 40).flatten(0, 1), pose.flatten(0, 1), 20,
                        align_corners)
    assert crops.shape == (3, 4, 2, 20, 20)
    torch.testing.assert_close(crops, each.view(3, 4, 2, 20, 20), atol=0, rtol=0)


@pytest.mark.parametrize("align_corners", [True, False])
def test_paste_then_crop_reproduces_the_object(align_corners):
    obj = _blob(32).double()
    pose = torch.tensor([[2.0, 0.3, -0.45]], dtype=torch.float64)
    frame = paste_objects(obj, pose, 64, align_corners)
    back = crop_objects(frame, pose, 32, align_corners)
    assert (back - obj).abs().max() < 0.04  # two bilinear resamplings of a smooth object
    assert frame.sum() == pytest.approx(obj.sum().item(), rel=0.05)  # scale 2: the 32-px box of a 32-px object
    # the object's centre (u_o, v_o) lands at ((u_o, v_o) - (x, y)) / s in normalised image coordinates
    ys, xs = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    j = torch.arange(32, dtype=torch.float64)
    u = j / 31 * 2 - 1 if align_corners else (2 * j + 1) / 32 - 1
    obj_centre = torch.stack([(obj[0, 0].sum(0) * u).sum(), (obj[0, 0].sum(1) * u).sum()]) / obj.sum()
    centre = torch.stack([(frame[0, 0] * xs).sum(), (frame[0, 0] * ys).sum()]) / frame.sum()
    expected_norm = (obj_centre - pose[0, 1:]) / pose[0, 0]
    expected = (expected_norm + 1) / 2 * 63 if align_corners else ((expected_norm + 1) * 64 - 1) / 2
    torch.testing.assert_close(centre, expected, atol=0.15, rtol=0)


def test_pasted_object_moves_with_the_pose():
    """With align_corners=True, shifting x by -s·2d/(S-1) moves the pasted object by exactly d pixels."""
    obj, s, d = _blob(32).double(), 2.5, 5
    pose = torch.tensor([[s, 0.4, 0.2], [s, 0.4 - s * 2 * d / 63, 0.2], [s, 0.4, 0.2 - s * 2 * d / 63]],
                        dtype=torch.float64)
    frames = paste_objects(obj.expand(3, -1, -1, -1), pose, 64, align_corners=True)[:, 0]
    assert frames[0, :, -d:].abs().max() < 1e-12 and frames[0, -d:].abs().max() < 1e-12  # room to move
    torch.testing.assert_close(frames[1, :, d:], frames[0, :, :-d], atol=1e-12, rtol=0)  # right by d
    torch.testing.assert_close(frames[2, d:], frames[0, :-d], atol=1e-12, rtol=0)  # down by d
    centres = pose_centres(pose)
    torch.testing.assert_close(centres[1] - centres[0], torch.tensor([d / 63, 0.0], dtype=torch.float64))


@pytest.mark.parametrize("align_corners", [True, False])
def test_composite_pastes_only_around_the_boxes_with_the_whole_frame_values(align_corners):
    """composite_objects with min_scale samples each object on a window around its box: float64 values and
    gradients equal to pasting every object on the whole frame and summing the components (boxes at the edges,
    half outside the frame, included; scale prior 4 of 48-px frames: 19-px windows)."""
    g = torch.Generator().manual_seed(0)
    b, t, k, size = 2, 3, 3, 48
    objects = torch.rand(b, k, 1, 24, 24, generator=g, dtype=torch.float64).requires_grad_()
    raw = torch.randn(b, t, k, 3, generator=g, dtype=torch.float64) * torch.tensor([1.0, 3.0, 3.0],
                                                                                   dtype=torch.float64)
    raw[0, 0, 0] = torch.tensor([2.0, 9.0, -9.0])  # scale clamped to 3, box centre near a corner
    pose = constrain_pose(raw + torch.tensor([4.0, 0.0, 0.0], dtype=torch.float64), 4.0).requires_grad_()
    windowed = composite_objects(objects, pose, size, min_scale=3.0, align_corners=align_corners)
    whole = paste_objects(objects[:, None].expand(b, t, k, 1, 24, 24).flatten(0, 2), pose.reshape(-1, 3), size,
                          align_corners).view(b, t, k, 1, size, size).sum(2)
    assert windowed.shape == (b, t, 1, size, size) and whole[0, 0, 0, -1, 0] > 0  # bottom-left corner
    torch.testing.assert_close(windowed, whole, atol=1e-13, rtol=0)
    weights = torch.randn(windowed.shape, generator=g, dtype=torch.float64)
    grads = torch.autograd.grad((windowed * weights).sum(), (objects, pose))
    expected = torch.autograd.grad((whole * weights).sum(), (objects, pose))
    for got, want in zip(grads, expected):
        torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-12)
    # without min_scale (or where the window would cover the frame) the whole frame is used: the same values
    torch.testing.assert_close(composite_objects(objects, pose, size, align_corners=align_corners), whole,
                               atol=1e-13, rtol=0)
    with pytest.raises(ValueError, match="min_scale=3.5 but a pose has scale 3"):  # a box wider than the window
        composite_objects(objects, pose, size, min_scale=3.5, align_corners=align_corners)
    with pytest.raises(ValueError, match=r"poses must be \(B, T, K, 3\)"):
        composite_objects(objects, pose[:, :, :2], size, min_scale=3.0)


def test_constrained_pose_keeps_every_box_partly_inside():
    raw = torch.randn(1000, 3) * 10
    pose = constrain_pose(raw, 2.0)
    assert pose[:, 0].min() >= 1.0 and pose[:, 0].max() <= 3.0
    assert ((pose[:, 1:].abs() - (pose[:, :1] - 0.5)) <= 1e-6).all()
    assert ((-pose[:, 1:] / pose[:, :1]).abs() < 1).all()  # the box centre, in normalised coordinates, is inside
    torch.testing.assert_close(constrain_pose(torch.tensor([2.5, 0.3, -0.2]), 2.0),
                               torch.tensor([2.5, math.tanh(0.3) * 2.0, math.tanh(-0.2) * 2.0]))


# ------------------------------------------------------------------------------- inference network
def _official_pose_rnn(net, frames: torch.Tensor, n_future: int) -> dict[str, torch.Tensor]:
    """The official PoseRNN.encode/predict, stepped frame by frame and component by component."""
    b, t = frames.shape[:2]
    hidden_size, k = net.hidden_size, net.n_components
    features = net.image_encoder(frames.flatten(0, 1)).view(b, t, -1)
    previous = [torch.zeros(b, 1, hidden_size)] * t
    encoder_outputs, states, first = [], [], []
    for _ in range(k):
        hidden, outputs = None, []
        for j in range(t):
            output, hidden = net.encode_rnn(torch.cat([features[:, j : j + 1], previous[j]], dim=2), hidden)
            previous[j] = hidden[0].view(b, 1, -1)
            if j == 0:
                first.append(hidden[0].view(b, 1, -1))
            outputs.append(output)
        encoder_outputs.append(torch.cat(outputs, dim=1))
        states.append(hidden)
    encoder_outputs = torch.stack(encoder_outputs, dim=2)
    initial, _ = net.initial_pose_rnn(torch.cat(first, dim=1))
    previous, predicted = [torch.zeros(b, 1, hidden_size)] * n_future, []
    for i in range(k):
        hidden, x, outputs = states[i], encoder_outputs[:, -1:, i], []
        for j in range(n_future):
            x, hidden = net.predict_rnn(torch.cat([x, previous[j]], dim=2), hidden)
            previous[j] = hidden[0].view(b, 1, -1)
            outputs.append(x)
        predicted.append(torch.cat(outputs, dim=1))
    predicted = torch.stack(predicted, dim=2)
    return {
        "input_beta_mu": net.beta_mu_layer(encoder_outputs),
        "input_beta_sigma": F.softplus(net.beta_sigma_layer(encoder_outputs)),
        "pred_beta_mu": net.beta_mu_layer(predicted), "pred_beta_sigma": F.softplus(net.beta_sigma_layer(predicted)),
        "initial_pose_mu": net.initial_pose_mu(initial),
        "initial_pose_sigma": F.softplus(net.initial_pose_sigma(initial)),
    }


def test_pose_rnn_equals_the_official_step_by_step_recurrences():
    model = DDPAE(**tiny_ddpae_kwargs(n_components=3)).eval()
    frames = torch.rand(2, 4, 1, 32, 32)
    with torch.no_grad():
        fused, official = model.pose_model(frames, 5), _official_pose_rnn(model.pose_model, frames, 5)
    assert fused["input_beta_mu"].shape == (2, 4, 3, 3) and fused["pred_beta_mu"].shape == (2, 5, 3, 3)
    assert fused["initial_pose_mu"].shape == (2, 3, 3)
    for key, value in official.items():
        torch.testing.assert_close(fused[key], value, atol=1e-6, rtol=1e-5, msg=key)
    # the components depend on each other (explaining away) unless independent_components is set
    independent = DDPAE(**tiny_ddpae_kwargs(independent_components=True))
    assert independent.pose_model.predict_rnn.input_size == 16 and model.pose_model.predict_rnn.input_size == 32


def test_inference_composes_pose_content_and_frames_as_the_official_code():
    model = DDPAE(**tiny_ddpae_kwargs()).eval()
    context = torch.rand(2, 3, 1, 32, 32)
    with torch.no_grad():
        out = model.infer(context, 4, components=True)
        assert "components" not in model.infer(context, 4)  # K full videos only when asked
        b, t, k = 2, 7, 2
        assert out["frames"].shape == (b, t, 1, 32, 32) and out["components"].shape == (b, t, k, 1, 32, 32)
        assert out["objects"].shape == (b, k, 1, 16, 16) and out["pose"].shape == (b, t, k, 3)
        assert out["content"].shape == (b, k, 16) and (out["content_sigma"] > 0).all()
        beta = torch.cat([out["input_beta_mu"], out["pred_beta_mu"]], dim=1)
        torch.testing.assert_close(out["beta"], beta)  # sample=False: the means
        raw = out["initial_pose_mu"][:, None] + torch.stack([beta[:, : i + 1].sum(1) for i in range(t)], dim=1)
        torch.testing.assert_close(out["pose"], constrain_pose(raw, 2.0))
        # content: crop each component from each context frame, encode, content LSTM per component
        for c in range(k):
            crops = crop_objects(context.flatten(0, 1), out["pose"][:, :3, c].reshape(-1, 3), 16)
            codes = model.object_encoder(crops).view(b, 3, -1)
            mu, sigma = model.content_lstm(codes).chunk(2, dim=-1)
            torch.testing.assert_close(out["content_mu"][:, c], mu)
            torch.testing.assert_close(out["content_sigma"][:, c], F.softplus(sigma))
            for i in range(t):
                pasted = paste_objects(model.object_decoder(mu), out["pose"][:, i, c], 32)
                torch.testing.assert_close(out["components"][:, i, c], pasted)
        torch.testing.assert_close(out["frames"], out["components"].sum(2).clamp(max=1))
    assert 0 <= out["frames"].min() and out["frames"].max() <= 1
    # with scale prior 4 (as Bouncing Balls) the frames come from the windows around the boxes: the same frames
    balls_like = DDPAE(**tiny_ddpae_kwargs(image_size=64, stn_scale_prior=4.0)).eval()
    with torch.no_grad():
        out = balls_like.infer(torch.rand(2, 3, 1, 64, 64), 2, components=True)
    torch.testing.assert_close(out["frames"], out["components"].sum(2).clamp(max=1), atol=1e-6, rtol=0)


# ----------------------------------------------------------------------------------------------- loss
@pytest.mark.parametrize("kl", ["analytic", "monte_carlo"])
def test_loss_terms_equal_direct_computations(kl):
    model = DDPAE(**tiny_ddpae_kwargs(kl=kl))
    clips = torch.rand(3, 5, 1, 32, 32)
    torch.manual_seed(7)
    out = model.forward_loss(clips)
    torch.manual_seed(7)  # the same draws again
    with torch.no_grad():
        ref = model.infer(clips[:, :3], 2, sample=True)
    b = 3
    torch.testing.assert_close(out["recon"], ref["frames"])
    assert not torch.equal(ref["beta"], torch.cat([ref["input_beta_mu"], ref["pred_beta_mu"]], 1))  # sampled
    nll = -Normal(ref["frames"], 0.3).log_prob(clips).sum() / b
    torch.testing.assert_close(out["nll"], nll, rtol=1e-5, atol=0)
    priors = {
        "kl_content": (ref["content"], ref["content_mu"], ref["content_sigma"], Normal(0.0, 1.0)),
        "kl_input_beta": (ref["beta"][:, :3], ref["input_beta_mu"], ref["input_beta_sigma"], Normal(0.0, 0.1)),
        "kl_pred_beta": (ref["beta"][:, 3:], ref["pred_beta_mu"], ref["pred_beta_sigma"], Normal(0.0, 0.1)),
        "kl_initial_pose": (ref["initial_pose"], ref["initial_pose_mu"], ref["initial_pose_sigma"],
                            Normal(torch.tensor([2.0, 0.0, 0.0]), torch.tensor([0.2, 1.0, 1.0]))),
    }
    for name, (value, mu, sigma, prior) in priors.items():
        q = Normal(mu, sigma)
        if kl == "analytic":
            expected = kl_divergence(q, Normal(prior.loc.expand_as(mu), prior.scale.expand_as(mu))).sum() / b
        else:  # Pyro's Trace_ELBO estimate at the sample
            expected = (q.log_prob(value) - prior.log_prob(value)).sum() / b
        torch.testing.assert_close(out[name], expected, rtol=1e-4, atol=1e-4, msg=name)
    total = out["nll"] + out["kl_content"] + out["kl_input_beta"] + out["kl_pred_beta"] + out["kl_initial_pose"]
    torch.testing.assert_close(out["loss"], total)
    out["loss"].backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_monte_carlo_kl_averages_to_the_analytic_kl():
    mu_q, sigma_q = torch.tensor([0.3, -1.0, 2.1], dtype=torch.float64), torch.tensor([0.05, 0.5, 1.3],
                                                                                      dtype=torch.float64)
    mu_p, sigma_p = torch.tensor([2.0, 0.0, 0.0], dtype=torch.float64), torch.tensor([0.2, 1.0, 1.0],
                                                                                     dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    w = mu_q + sigma_q * torch.randn(400_000, 3, generator=g, dtype=torch.float64)
    mc = (Normal(mu_q, sigma_q).log_prob(w) - Normal(mu_p, sigma_p).log_prob(w)).mean(0)
    analytic = normal_kl(mu_q, sigma_q, mu_p, sigma_p)
    torch.testing.assert_close(mc, analytic, rtol=0.01, atol=0.01)
    torch.testing.assert_close(analytic, kl_divergence(Normal(mu_q, sigma_q), Normal(mu_p, sigma_p)))


def _two_shapes(b: int, t: int, size: int = 32, d: int = 11) -> torch.Tensor:
    """A hollow square and a cross, moving linearly (clipped at the border), combined by max."""
    g = torch.Generator().manual_seed(0)
    square = torch.zeros(d, d)
    square[1:-1, 1:-1] = 1
    cross = torch.zeros(d, d)
    cross[4:7], cross[:, 4:7] = 1, 1
    clips = torch.zeros(b, t, 1, size, size)
    for i in range(b):
        for shape in (square, cross):
            p = torch.randint(0, size - d, (2,), generator=g).float()
            v = torch.randint(-2, 3, (2,), generator=g).float()
            for j in range(t):
                y, x = (p + v * j).clamp(0, size - d).long().tolist()
                clips[i, j, 0, y : y + d, x : x + d] = torch.maximum(clips[i, j, 0, y : y + d, x : x + d], shape)
    return clips


def test_overfits_one_batch():
    torch.manual_seed(0)
    clips = _two_shapes(4, 6)
    model = DDPAE(**tiny_ddpae_kwargs(n_past=4, hidden_size=32, image_latent_size=64, ngf=8))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3, betas=(0.5, 0.999))
    losses = []
    for _ in range(200):
        out = model.forward_loss(clips)
        optimizer.zero_grad()
        out["loss"].backward()
        optimizer.step()
        losses.append(out["loss"].item())
    black = clips.pow(2).mean().item()
    mse = F.mse_loss(out["recon"], clips).item()
    assert losses[-1] < 0.1 * losses[0], (losses[0], losses[-1])
    assert mse < 0.7 * black, (mse, black)  # it draws the shapes, not just the background


# ------------------------------------------------------------------------------------------ prediction
def test_predict_contract():
    model = DDPAE(**tiny_ddpae_kwargs())
    assert model.stochastic is False and model.val_num_samples == 1
    context = torch.rand(2, 4, 1, 32, 32)  # more context frames than n_past: all of them condition the model
    pred = model.predict(context, n_future=6, num_samples=3, seed=0)
    assert pred.shape == (2, 3, 6, 1, 32, 32) and 0 <= pred.min() and pred.max() <= 1
    assert torch.equal(pred[:, 0], pred[:, 2])  # deterministic: the posterior means
    torch.testing.assert_close(model.predict(context, n_future=6, seed=123)[:, 0], pred[:, 0], rtol=0, atol=0)
    with torch.no_grad():
        torch.testing.assert_close(pred[:, 0], model.eval().infer(context, 6)["frames"][:, 4:])
    torch.testing.assert_close(model.predict(context[1], n_future=6)[0, 0], pred[1, 0], atol=1e-6, rtol=0)
    model.train()
    model.predict(context, n_future=1)
    assert model.training  # predict restores the mode
    uint8 = (context * 255).round().to(torch.uint8)
    assert model.predict(uint8, n_future=2).shape == (2, 1, 2, 1, 32, 32)
    with pytest.raises(ValueError, match="32x32"):
        model.predict(torch.rand(4, 1, 64, 64), 2)
    with pytest.raises(ValueError, match="1 channel"):
        model.predict(torch.rand(4, 3, 32, 32), 2)
    with pytest.raises(ValueError, match="n_past=3"):
        model.predict(torch.rand(2, 1, 32, 32), 2)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        model.predict(torch.rand(4, 1, 32, 32) * 2, 2)
    with pytest.raises(TypeError, match="unexpected keyword"):
        model.predict(context, 2, temperature=0.5)


def test_bad_hyperparameters_and_inputs():
    for bad, match in ((dict(image_size=48), "power of two"), (dict(image_size=8), "power of two"),
                       (dict(stn_scale_prior=1.0), "stn_scale_prior"), (dict(kl="mc"), "kl must be"),
                       (dict(initial_pose_prior_sigma=(1.0, 1.0)), "3 positive"),
                       (dict(n_components=0), "n_components"),
                       (dict(pixel_sigma=0.0), "pixel_sigma"), (dict(lr_decay_step=0), "lr_decay_step")):
        with pytest.raises(ValueError, match=match):
            DDPAE(**tiny_ddpae_kwargs(**bad))
    model = DDPAE(**tiny_ddpae_kwargs())
    with pytest.raises(ValueError, match="at least 4 frames"):
        model.forward_loss(torch.rand(2, 3, 1, 32, 32))  # no frame to predict after n_past = 3
    with pytest.raises(ValueError, match=r"\(B, T, 1, 32, 32\)"):
        model.forward_loss(torch.rand(2, 5, 1, 64, 64))
    with pytest.raises(ValueError, match="n_future"):
        model.infer(torch.rand(1, 3, 1, 32, 32), -1)


# ------------------------------------------------------------------------------------------- training
def test_fit_drops_the_learning_rate_at_half_and_round_trips(tmp_path):
    """A Lightning fit on Bouncing Balls batches that are dicts (return_positions): the LR drops ×0.1 at half of
    max_steps, validation is deterministic, and the checkpoint and the zoo format restore the model."""
    import lightning as L

    from vpzoo.data.bouncing_balls import BouncingBallsDataModule

    dm = BouncingBallsDataModule(root=str(tmp_path / "balls"), batch_size=2, seq_len=5, eval_seq_len=5, image_size=32,
                                 num_train=6, num_val=2, num_test=2, traj_len=8, return_positions=True)
    model = DDPAE(**tiny_ddpae_kwargs(n_components=4, stn_scale_prior=4.0))
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=4, val_check_interval=4, limit_val_batches=1,
                        logger=False, enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=tmp_path)
    trainer.fit(model, dm)
    assert trainer.global_step == 4
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(1e-4)
    assert trainer.lr_scheduler_configs[0].scheduler.milestones == {2: 1}
    assert model.last_validation["selection"] == "single" and 0 < model.last_validation["ssim"] <= 1
    ckpt = next(tmp_path.rglob("*.ckpt"))
    restored = DDPAE.load_from_checkpoint(ckpt)
    context = torch.rand(1, 3, 1, 32, 32)
    torch.testing.assert_close(restored.predict(context, 3), model.predict(context, 3), rtol=0, atol=0)
    model.save_pretrained(tmp_path / "exported")
    torch.testing.assert_close(DDPAE.from_pretrained(tmp_path / "exported").predict(context, 3),
                               model.predict(context, 3), rtol=0, atol=0)
    fixed = DDPAE(**tiny_ddpae_kwargs(lr_decay_step=3))
    fixed.trainer = trainer
    assert fixed.configure_optimizers()["lr_scheduler"]["scheduler"].milestones == {3: 1}
    assert isinstance(DDPAE(**tiny_ddpae_kwargs(lr_decay=False)).configure_optimizers(), torch.optim.Adam)


# --------------------------------------------------------------------------------------------- metrics
def test_frame_errors_equal_the_official_formula():
    g = torch.Generator().manual_seed(0)
    pred = torch.rand(3, 4, 1, 8, 8, generator=g)
    pred[0, 0, 0, 0, :2] = torch.tensor([0.0, 1.0])  # clamped to [1e-4, 1 - 1e-4] for the BCE
    target = torch.rand(3, 4, 1, 8, 8, generator=g)
    out = ddpae_frame_errors(pred, target)
    assert out["mse"].shape == (3, 4)
    # official: nn.MSELoss / nn.BCELoss over the batch, times C·H·W
    torch.testing.assert_close(out["mse"].mean().float(), F.mse_loss(pred, target) * 64)
    torch.testing.assert_close(out["bce"].mean().float(),
                               F.binary_cross_entropy(pred.clamp(1e-4, 1 - 1e-4), target) * 64)
    torch.testing.assert_close(out["mse"][1, 2].float(), ((pred[1, 2] - target[1, 2]) ** 2).sum())
    with pytest.raises(ValueError, match="equal"):
        ddpae_frame_errors(pred, target[:, :2])


def test_velocity_metrics_match_components_to_balls():
    n_in, t = 4, 8
    g = torch.Generator().manual_seed(1)
    p0, v = torch.rand(3, 1, 2, 2, generator=g), torch.rand(3, 1, 2, 2, generator=g) * 0.02 + 0.01
    steps = torch.arange(t, dtype=torch.float32)[None, :, None, None]
    true = p0 + v * steps
    pred = true.flip(2).clone()  # components in the other order: the matching undoes it
    future = steps[:, n_in:] - (n_in - 1)
    pred[:, n_in:] = pred[:, n_in - 1 : n_in] + 2 * v.flip(2) * future  # twice the speed, same direction
    pred[2] = true[2, :, :1]  # both components on ball 0: ambiguous, left out
    out = velocity_metrics(pred, true, n_in)
    assert int(out["num_matched"]) == 2
    # shift 2: the first predicted velocity spans one true and one predicted step (3v vs 2v), then 4v vs 2v
    torch.testing.assert_close(out["relative_error"].float(), torch.tensor([0.5, 1.0, 1.0, 1.0]), atol=1e-5,
                               rtol=0)
    torch.testing.assert_close(out["cosine_similarity"].float(), torch.ones(4), atol=1e-5, rtol=0)
    # positions: exact on the context frames, then j·|v| behind the twice-as-fast components (the matched clips)
    speed = v[:2].norm(dim=-1).mean()
    expected = torch.cat([torch.zeros(n_in), speed * torch.arange(1, t - n_in + 1)])
    torch.testing.assert_close(out["position_error"].float(), expected, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="shift"):
        velocity_metrics(pred, true, 1)


def test_mmnist_ddpae_benchmark_scores_equal_direct_computations(tmp_path, capsys):
    """`vpzoo benchmark mmnist_ddpae`: DDPAE's per-frame MSE/BCE and PSNR/SSIM of the model, copy_last and the black
    frame equal a direct computation on the standard file's clips (a small file in its layout under root)."""
    import numpy as np

    from vpzoo.leaderboard import format_report, get_benchmark, run_benchmark
    from vpzoo.metrics import psnr, ssim

    g = np.random.default_rng(0)
    seq = (g.random((20, 5, 64, 64)) > 0.85).astype(np.uint8) * g.integers(0, 256, (20, 5, 64, 64), dtype=np.uint8)
    np.save(tmp_path / "mnist_test_seq.npy", seq)
    model = DDPAE().eval()
    result = run_benchmark(model, "mmnist_ddpae", num_test=3, batch_size=2, root=str(tmp_path))
    assert "standard mnist_test_seq.npy" in capsys.readouterr().err
    assert result.num_sequences == 3 and result.num_samples == 1
    clips = torch.from_numpy(seq[:, :3]).transpose(0, 1)[:, :, None].float() / 255
    context, target = clips[:, :10], clips[:, 10:]
    predictions = {"model": model.predict(context, 10)[:, 0], "copy_last": context[:, -1:].expand_as(target),
                   "black": torch.zeros_like(target)}
    for who, pred in predictions.items():
        errors = ddpae_frame_errors(pred, target)
        expected = {"mse_sum": errors["mse"].mean(), "bce_sum": errors["bce"].mean(),
                    "psnr": psnr(pred, target).clamp(max=100).mean(), "ssim": ssim(pred, target).mean()}
        for name, value in expected.items():
            assert result.values[who][name] == pytest.approx(value.item(), rel=1e-5), (who, name)
    assert result.values["model"]["mse_sum"] == pytest.approx(
        (F.mse_loss(predictions["model"], target) * 4096).item(), rel=1e-5)  # DDPAE's nn.MSELoss x C·H·W
    report = format_report("mmnist_ddpae", measured=[result])
    assert "38.9" in report and "MSE_SUM" in report
    bench = get_benchmark("mmnist_ddpae")
    assert (bench.context_frames, bench.predicted_frames, bench.num_samples, bench.num_test) == (10, 10, 1, 10000)
    # without the file: vpzoo's generated set, and it says so
    generated = run_benchmark(model, "mmnist_ddpae", num_test=1, batch_size=1, root=str(tmp_path / "none"))
    assert "fixed generated set" in capsys.readouterr().err and generated.num_sequences == 1


def test_bouncing_balls_velocity_evaluation_uses_the_inferred_poses(tmp_path):
    from vpzoo.data.bouncing_balls import BouncingBallsDataModule

    dm = BouncingBallsDataModule(root=str(tmp_path), image_size=32, seq_len=8, eval_seq_len=8, num_train=2,
                                 num_val=2, num_test=5, traj_len=8, eval_batch_size=2, return_positions=True)
    dm.setup("test")
    model = DDPAE(**tiny_ddpae_kwargs(n_components=4, stn_scale_prior=4.0))
    model.train()
    scores = bouncing_balls_velocity(model, dm.test_dataloader(), max_clips=3)
    assert model.training and scores["num_clips"] == 3 and len(scores["relative_error"]) == 5
    batches = list(dm.test_dataloader())
    video = torch.cat([b["video"] for b in batches])[:3]
    positions = torch.cat([b["positions"] for b in batches])[:3]
    with torch.no_grad():
        pose = model.eval().infer(video[:, :3], 5)["pose"]
    expected = velocity_metrics(pose_centres(pose), positions, 3)
    assert scores["num_matched"] == int(expected["num_matched"])
    torch.testing.assert_close(torch.tensor(scores["relative_error"], dtype=torch.float64),
                               expected["relative_error"], equal_nan=True)
    position = torch.tensor(scores["position_error"], dtype=torch.float64)
    torch.testing.assert_close(position, expected["position_error"], equal_nan=True)
    assert len(position) == 8
    torch.testing.assert_close(torch.tensor(scores["context_position_error"], dtype=torch.float64), position[:3].mean(),
                               equal_nan=True)
    with pytest.raises(ValueError, match="return_positions"):
        bouncing_balls_velocity(model, [video])



def test_bouncing_balls_benchmark_reports_ddpae_velocity_metrics(tmp_path):
    """`vpzoo benchmark bouncing_balls_ddpae` adds DDPAE's own measures (velocity errors of the inferred poses) for a
    4-component DDPAE: those of bouncing_balls_velocity on the same test clips with the benchmark's 10 context
    frames (whatever the model's n_past), in the JSON and in the report; other models get none."""
    from vpzoo.leaderboard import _bouncing_balls, format_report, run_benchmark
    from vpzoo.registry import create_model

    torch.manual_seed(0)
    model = DDPAE(**tiny_ddpae_kwargs(image_size=128, n_components=4, stn_scale_prior=4.0)).eval()  # n_past 3
    result = run_benchmark(model, "bouncing_balls_ddpae", num_test=3, batch_size=2, root=str(tmp_path))
    velocity = result.details["ddpae_velocity"]
    data = _bouncing_balls(20, 2000, 2, str(tmp_path), return_positions=True)
    data.setup("test")
    expected = bouncing_balls_velocity(model, data.test_dataloader(), max_clips=3, n_past=10)  # the benchmark's 10
    assert velocity["num_clips"] == 3 and len(velocity["cosine_similarity"]) == 10  # per predicted step
    assert json.dumps(velocity) == json.dumps(expected)  # NaN-aware: the same numbers
    assert json.loads(json.dumps(result.to_dict()))["details"]["ddpae_velocity"]["num_clips"] == 3
    report = format_report("bouncing_balls_ddpae", measured=[result])
    matched = velocity["num_matched"]
    assert f"DDPAE's velocity metrics of DDPAE (inferred poses; predicted steps; {matched} of 3 clips" in report
    baseline = create_model("copy_last", n_past=1, channels=1, image_size=128)
    other = run_benchmark(baseline, "bouncing_balls_ddpae", num_test=2, batch_size=2, root=str(tmp_path))
    assert "ddpae_velocity" not in other.details
    assert "velocity metrics of" not in format_report("bouncing_balls_ddpae", measured=[other])


# ------------------------------------------------------------------------------------------ separation
def _digits_alone(n: int, seed: int, seq_len: int = 20):
    """Two-digit Moving MNIST clips ``(N, T, 1, 64, 64)`` and each digit rendered alone ``(N, T, 2, 1, 64, 64)``."""
    from vpzoo.data.moving_mnist import MovingMNISTDataModule, generate_moving_mnist

    digits = MovingMNISTDataModule(num_digits=2).digit_pool("test")
    clips, alone = generate_moving_mnist(digits, n, seq_len, seed, num_digits=2, return_objects=True)
    return torch.from_numpy(clips).float() / 255, torch.from_numpy(alone).float() / 255


def test_component_separation_scores_assignments():
    _, alone = _digits_alone(3, seed=0, seq_len=4)
    swapped = alone.flip(2)  # components in the other order: the best assignment undoes it
    torch.testing.assert_close(component_separation(swapped, alone), torch.ones(3, dtype=torch.float64))
    both = alone.sum(dim=2, keepdim=True).expand_as(alone)  # every component draws both digits
    torch.testing.assert_close(component_separation(both, alone), torch.full((3,), 0.5, dtype=torch.float64))
    mixed = torch.stack([alone[:, :, 0] + 0.25 * alone[:, :, 1], alone[:, :, 1]], dim=2)
    score = component_separation(mixed, alone)
    assert ((score > 0.5) & (score < 1.0)).all(), score
    with pytest.raises(ValueError, match="equal"):
        component_separation(alone[:, :, :1], alone)


def trained_ddpae() -> DDPAE:
    """The shipped ``ddpae_mmnist`` checkpoint, or the Lightning checkpoint that VPZOO_DDPAE_MMNIST_CKPT names."""
    import os

    import vpzoo

    path = os.environ.get("VPZOO_DDPAE_MMNIST_CKPT")
    if path:
        return DDPAE.load_from_checkpoint(path, map_location="cpu").eval()
    if "ddpae_mmnist" in vpzoo.list_checkpoints():
        return vpzoo.load("ddpae_mmnist", device="cpu")
    pytest.skip("no trained DDPAE: ddpae_mmnist is not in checkpoints.yaml and VPZOO_DDPAE_MMNIST_CKPT is unset")


def test_trained_checkpoint_separates_the_two_digits():
    """The paper's claim: each of the K = 2 components draws one digit. On 64 clips of test digits the best
    assignment puts most of each component's intensity on its own digit (0.5 would be no separation)."""
    model = trained_ddpae()
    clips, alone = _digits_alone(64, seed=0)
    with torch.no_grad():
        components = model.infer(clips[:, :10], 10, components=True)["components"]
    score = component_separation(components, alone)
    print(f"component separation: mean {score.mean():.3f}, median {score.median():.3f}")
    assert score.mean() > 0.75, score


def test_gaussian_log_density_equals_torch_distributions():
    """The zoo's one Gaussian log-density (DDPAE, Enc-ODE-Dec and VideoFlow use it) against Normal.log_prob, and
    half-precision inputs come back in float32."""
    from vpzoo.models.blocks import gaussian_log_density
    from vpzoo.models.ddpae import normal_log_prob

    g = torch.Generator().manual_seed(0)
    x, mean = torch.randn(5, 7, generator=g, dtype=torch.float64), torch.randn(5, 7, generator=g, dtype=torch.float64)
    log_scale = 0.3 * torch.randn(5, 7, generator=g, dtype=torch.float64)
    torch.testing.assert_close(gaussian_log_density(x, mean, log_scale), Normal(mean, log_scale.exp()).log_prob(x))
    torch.testing.assert_close(normal_log_prob(x, 0.5, 0.3), Normal(0.5, 0.3).log_prob(x))
    assert gaussian_log_density(x.bfloat16(), 0.0, 0.0).dtype == torch.float32


def test_bf16_autocast_keeps_the_poses_and_the_loss_in_float32():
    """Under ``--trainer.precision bf16-mixed`` (CPU autocast here) the latents' distributions, the sampled poses and
    the loss stay float32: with the same weights and noise the loss is float32's to 1e-3. In bfloat16 the running
    pose sum would swallow the small β steps (3.0 + 0.01 is 3.0 in bfloat16) and move the objects; that put the
    loss of a Moving MNIST-size model 13% away from float32's."""
    torch.manual_seed(0)
    model = DDPAE(**tiny_ddpae_kwargs(image_size=64, n_past=5, n_future=5))
    clips = (torch.rand(2, 10, 1, 64, 64, generator=torch.Generator().manual_seed(1)) > 0.9).float()
    with torch.no_grad():
        torch.manual_seed(2)
        full = model.forward_loss(clips)
        torch.manual_seed(2)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert model.object_decoder(torch.zeros(1, 16)).dtype == torch.bfloat16  # autocast is on
            mixed = model.forward_loss(clips)
            out = model.infer(clips[:, :5], 5, sample=True)
    for name in ("pose", "beta", "initial_pose", "content", "input_beta_mu", "pred_beta_sigma", "content_sigma"):
        assert out[name].dtype == torch.float32, name
    assert all(mixed[name].dtype == torch.float32 for name in ("loss", "nll", "kl_pred_beta", "kl_content"))
    rel = abs(mixed["loss"].item() - full["loss"].item()) / abs(full["loss"].item())
    assert rel < 1e-3, (full["loss"].item(), mixed["loss"].item())
    # outside autocast too (a GPU's autocast rules for grid_sample differ): bfloat16 objects, float32 poses
    objects, pose = torch.rand(3, 1, 8, 8), torch.tensor([[2.0, 0.1, -0.2]]).expand(3, 3)
    pasted = paste_objects(objects.bfloat16(), pose, 16)
    assert pasted.dtype == torch.float32
    torch.testing.assert_close(pasted, paste_objects(objects.bfloat16().float(), pose, 16))
