"""SVG-FP / SVG-LP: parameter counts, loss, skips, overfitting, sampling."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from conftest import tiny_svg_kwargs
from vpzoo.models.svg import SVGFP, SVGLP

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _model_from_config(path: Path):
    spec = yaml.safe_load(path.read_text())["model"]
    cls = {"vpzoo.models.svg.SVGLP": SVGLP, "vpzoo.models.svg.SVGFP": SVGFP}[spec["class_path"]]
    return cls(**spec["init_args"])


# Reference counts from ../shared/reference/models-drnet-svg-vrnn.md §2.9 (derived from the official layer shapes;
# the SM-MNIST LP count 12,614,057 is the official code's own count).
@pytest.mark.parametrize(
    "config, reference",
    [
        ("svg_lp/smmnist.yaml", 12_614_057),
        ("svg_fp/smmnist.yaml", 12.1e6),
        ("svg_lp/kth.yaml", 22.8e6),
        ("svg_lp/bair.yaml", 22.8e6),
    ],
)
def test_parameter_counts_match_reference(config, reference):
    model = _model_from_config(CONFIGS / config)
    assert abs(model.num_parameters() - reference) / reference < 0.02, model.num_parameters()


def test_smmnist_lp_count_is_exact():
    assert SVGLP().num_parameters() == 12_614_057


def test_configs_hold_paper_hyperparameters():
    lp = yaml.safe_load((CONFIGS / "svg_lp/smmnist.yaml").read_text())
    args = lp["model"]["init_args"]
    assert (args["z_dim"], args["g_dim"], args["beta"], args["lr"], args["n_past"], args["n_future"]) == (
        10, 128, 1e-4, 2e-3, 5, 10)
    assert lp["data"]["init_args"]["batch_size"] == 100
    assert lp["trainer"]["max_steps"] == 300 * 600
    bair = yaml.safe_load((CONFIGS / "svg_lp/bair.yaml").read_text())["model"]["init_args"]
    assert (bair["z_dim"], bair["channels"], bair["n_past"], bair["frame_codec"]) == (64, 3, 2, "vgg")
    kth = yaml.safe_load((CONFIGS / "svg_fp/kth.yaml").read_text())["model"]["init_args"]
    assert (kth["beta"], kth["n_past"], kth["frame_codec"]) == (1e-6, 10, "vgg")


def test_loss_terms_and_shapes():
    model = SVGLP(**tiny_svg_kwargs())
    x = torch.rand(2, 6, 1, 64, 64)
    out = model.forward_loss(x)
    assert out["recon"].shape == (2, 5, 1, 64, 64)
    assert 0 <= out["recon"].min() and out["recon"].max() <= 1
    assert out["kl"] >= 0
    # the official loss: per-step per-pixel-mean MSE summed over the T-1 steps, plus beta * KL
    mse = ((out["recon"] - x[:, 1:]) ** 2).mean(dim=(0, 2, 3, 4)).sum()
    torch.testing.assert_close(out["mse"], mse)
    torch.testing.assert_close(out["loss"], out["mse"] + model.hparams.beta * out["kl"])


def test_fixed_prior_kl_is_against_standard_normal():
    model = SVGFP(**tiny_svg_kwargs())
    assert model.prior is None
    x = torch.rand(2, 5, 1, 64, 64)
    h, _ = model._encode(x)
    mu, logvar, _ = model.posterior(h[:, 1:])
    expected = 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum() / 2
    torch.manual_seed(1)
    torch.testing.assert_close(model.forward_loss(x)["kl"], expected)


def test_kl_under_bf16_autocast_is_computed_in_float32():
    """Under CPU bf16 autocast (``--trainer.precision bf16-mixed``) the Gaussian heads return bfloat16; the KL is
    still taken in float32 on those values, so it stays non-negative and equals the float64 KL of the same heads."""
    from vpzoo.models.blocks import gaussian_kl

    torch.manual_seed(0)
    model = SVGLP(**tiny_svg_kwargs())
    x = torch.rand(4, 6, 1, 64, 64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h, _ = model._encode(x)
        mu_q, logvar_q, _ = model.posterior(h[:, 1:])
        mu_p, logvar_p, _ = model.prior(h[:, :-1])
        assert mu_q.dtype == torch.bfloat16  # the situation the upcast is for
        kl = gaussian_kl(mu_q, logvar_q, mu_p, logvar_p)
        loss_kl = model.forward_loss(x)["kl"]
    assert kl.dtype == torch.float32 and loss_kl.dtype == torch.float32
    exact = gaussian_kl(*(t.double() for t in (mu_q, logvar_q, mu_p, logvar_p)))
    torch.testing.assert_close(kl.double(), exact, rtol=1e-5, atol=1e-7)
    assert kl.min() >= -1e-6 and loss_kl >= 0


@pytest.mark.parametrize(
    "mode, expected",
    [
        ("last", [0, 1, 2, 2, 2]),  # paper: skips of the last context frame (index 2) for every future frame
        ("penultimate", [0, 1, 1, 1, 1]),  # official code's off-by-one
        ("previous", [0, 1, 2, 3, 4]),  # official --last_frame_skip
    ],
)
def test_skip_frame_rule(mode, expected):
    model = SVGLP(**tiny_svg_kwargs(skip_frame=mode))  # n_past = 3
    assert [model._skip_source(i, model.n_past) for i in range(1, 6)] == expected


def test_bad_hyperparameters():
    with pytest.raises(ValueError, match="skip_frame"):
        SVGLP(skip_frame="first")
    with pytest.raises(ValueError, match="frame encoder"):
        SVGLP(frame_codec="resnet")
    with pytest.raises(ValueError, match="64x64"):
        SVGLP(image_size=128)


@pytest.mark.parametrize("cls", [SVGLP, SVGFP])
def test_overfits_one_batch(cls):
    """A tiny SVG overfits one fixed batch of two-digit-like clips: the loss falls at least 4x in 60 steps."""
    torch.manual_seed(0)
    model = cls(**tiny_svg_kwargs())
    x = torch.zeros(2, 5, 1, 64, 64)
    for t in range(5):  # a bright square moving right
        x[:, t, :, 20:36, 10 + 4 * t : 26 + 4 * t] = 1.0
    opt = model.configure_optimizers()
    losses = []
    for _ in range(60):
        opt.zero_grad()
        loss = model.forward_loss(x)["loss"]
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 4, (losses[0], losses[-1])


def test_sampling_uses_prior_and_differs_between_seeds():
    model = SVGLP(**tiny_svg_kwargs()).eval()
    ctx = torch.rand(2, 3, 1, 64, 64)
    a = model.predict(ctx, 4, num_samples=3, seed=1)
    b = model.predict(ctx, 4, num_samples=3, seed=2)
    assert a.shape == (2, 3, 4, 1, 64, 64)
    assert not torch.equal(a, b)
    assert not torch.equal(a[:, 0], a[:, 1])  # samples within one call differ


def test_batched_sampling_equals_per_clip_sampling():
    """Clips in a batch are independent: predicting a batch equals predicting each clip with the same noise."""
    model = SVGFP(**tiny_svg_kwargs()).eval()
    ctx = torch.rand(2, 3, 1, 64, 64)
    both = model.predict(ctx, 3, num_samples=1, seed=5)
    # with a fixed prior and one sample per clip, noise is drawn (B*N, z) per step: clip 0 gets row 0
    first = model.predict(ctx[:1], 3, num_samples=1, seed=5)
    torch.testing.assert_close(both[:1, :, 0], first[:, :, 0])


@pytest.mark.parametrize("codec", ["dcgan", "vgg"])
def test_shared_skip_decoding_equals_concatenating_gathered_skips(codec):
    """decoder(h, skips, skip_index) is decoder(h, [s[skip_index] for s in skips]): outputs and gradients."""
    from vpzoo.models.blocks import build_frame_codec

    torch.manual_seed(0)
    encoder, decoder = build_frame_codec(codec, 16, 3, 64, 8)
    _, skips = encoder(torch.rand(4, 3, 64, 64))
    skips = [s.detach().requires_grad_() for s in skips]
    index = torch.tensor([0, 0, 1, 3, 3, 3, 2])
    h = torch.randn(7, 16, requires_grad=True)
    reference = decoder(h, [s[index] for s in skips])
    shared = decoder(h, skips, index)
    torch.testing.assert_close(shared, reference, rtol=0, atol=5e-6)
    inputs = [h, *skips, *decoder.parameters()]
    grads_ref = torch.autograd.grad(reference.square().sum(), inputs)
    grads = torch.autograd.grad(shared.square().sum(), inputs)
    scale = max(g.abs().max() for g in grads_ref)
    assert max((a - b).abs().max() for a, b in zip(grads, grads_ref)) <= 1e-5 * scale


@pytest.mark.parametrize("in_channels, out_channels, kernel, stride, padding",
                         [(64, 1, 4, 2, 1), (16, 3, 4, 2, 1), (64, 3, 3, 1, 1), (8, 2, 5, 2, 2)])
def test_image_conv_transpose_without_autograd_equals_pytorch_kernel(in_channels, out_channels, kernel, stride,
                                                                     padding):
    """The output layer's matmul + col2im path (used when autograd is off) is nn.ConvTranspose2d's function,
    also on a weight slice (concat_skip_conv) and under bf16 autocast; with autograd on it is PyTorch's kernel."""
    from torch import nn

    from vpzoo.models.blocks import ImageConvTranspose2d

    torch.manual_seed(0)
    layer = ImageConvTranspose2d(in_channels, out_channels, kernel, stride, padding)
    reference = nn.ConvTranspose2d(in_channels, out_channels, kernel, stride, padding)
    reference.load_state_dict(layer.state_dict())  # same parameters, same state-dict keys
    x = torch.randn(5, in_channels, 16, 16)
    with torch.no_grad():
        expected = reference(x)
        torch.testing.assert_close(layer(x), expected, rtol=0, atol=1e-5)
        half = in_channels // 2
        torch.testing.assert_close(
            layer.transposed_conv(x[:, :half], layer.weight[:half], None),
            torch.nn.functional.conv_transpose2d(x[:, :half], layer.weight[:half], None, stride, padding),
            rtol=0, atol=1e-5,
        )
        with torch.autocast("cpu", dtype=torch.bfloat16):
            fast, slow = layer(x), reference(x)
        assert fast.dtype == slow.dtype == torch.bfloat16
        torch.testing.assert_close(fast.float(), slow.float(), rtol=0, atol=0.05 * expected.abs().max().item())
    out = layer(x)  # autograd on: PyTorch's kernel, gradients flow
    assert out.grad_fn is not None and "Convolution" in type(out.grad_fn).__name__
    torch.testing.assert_close(out.detach(), expected, rtol=0, atol=1e-5)


def test_training_decodes_each_frame_with_its_skip_frame():
    """forward_loss's reconstructions equal decoding each target frame with its own skip frame's maps gathered."""
    torch.manual_seed(0)
    model = SVGLP(**tiny_svg_kwargs()).eval()  # eval: BatchNorm running statistics, independent of batching
    x = torch.rand(2, 6, 1, 64, 64)
    torch.manual_seed(1)
    recon = model.forward_loss(x)["recon"]
    torch.manual_seed(1)
    h, skips = model._encode(x)
    mu, logvar, _ = model.posterior(h[:, 1:])
    z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
    g, _ = model.frame_predictor(torch.cat([h[:, :-1], z], dim=-1))
    sources = [model._skip_source(i, model.n_past) for i in range(1, 6)]  # n_past 3: [0, 1, 2, 2, 2]
    assert sources == [0, 1, 2, 2, 2]
    expected = model.decoder(g.flatten(0, 1), [s[:, sources].flatten(0, 1) for s in skips]).view(2, 5, 1, 64, 64)
    torch.testing.assert_close(recon, expected, rtol=0, atol=5e-6)


def test_config_round_trip_rebuilds_the_same_model():
    """Hyperparameters alone rebuild the model: same parameters, and with the same weights the same samples."""
    model = SVGLP(**tiny_svg_kwargs(skip_frame="penultimate", beta=3e-4)).eval()
    rebuilt = SVGLP(**dict(model.hparams)).eval()
    assert dict(rebuilt.hparams) == dict(model.hparams)
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}
    rebuilt.load_state_dict(model.state_dict())
    ctx = torch.rand(1, 3, 1, 64, 64)
    torch.testing.assert_close(rebuilt.predict(ctx, 3, num_samples=2, seed=4), model.predict(ctx, 3, num_samples=2, seed=4))
