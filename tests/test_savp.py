"""SAVP: parameter counts against the sheet, shapes and ranges, the CDNA/mask heads, the losses and the
discriminator-then-generator iteration against a hand-made computation, spectral norm, the variants and presets,
the schedules, overfitting one batch, the configs, and `vpzoo fit` (one process and 2-process DDP on CPU)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml

from conftest import TINY_MODEL_KWARGS
from vpzoo.models.base import VideoPredictionModel
from vpzoo.models.savp import PRESETS, SAVP, SAVPGAN, SAVPVAE, SAVPDeterministic, scheduled_sampling_probability

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs" / "savp"
ASSETS = Path(__file__).parent / "assets"


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny(cls=SAVP, **overrides):
    kwargs = dict(TINY_MODEL_KWARGS[cls.model_name])
    kwargs.update(overrides)
    return cls(**kwargs)


def clips(b: int = 2, t: int = 6, seed: int = 0) -> torch.Tensor:
    """Smooth random clips (B, T, 1, 32, 32) in [0, 1]: a bright square moving one pixel per frame."""
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(b, t, 1, 32, 32)
    for i in range(b):
        r, c = torch.randint(4, 20, (2,), generator=g).tolist()
        for j in range(t):
            x[i, j, 0, r : r + 8, c + j : c + j + 8] = 0.9
    return x


def count(module) -> int:
    return sum(p.numel() for p in module.parameters())


# ------------------------------------------------------------------------------------------ parameters
def test_parameter_counts_match_sheet():
    """Sheet §2.9: BAIR G+E ≈ 7.35M (= the "SAVP-VAE 7.3M" of third-party tables), G+E+2D ≈ 17.6M, each video
    discriminator ≈ 5.1M; KTH (nz 32, grey) G ≈ 7.5M."""
    with torch.device("meta"):
        bair = SAVP()
        kth = SAVP(channels=1, n_past=10, preset="kth_2019")
        vae = SAVPVAE()
    for value, sheet in ((count(bair.generator) + count(bair.encoder), 7.35e6), (bair.num_parameters(), 17.6e6),
                         (count(bair.discriminator), 5.1e6), (count(bair.vae_discriminator), 5.1e6),
                         (vae.num_parameters(), 7.35e6), (count(kth.generator), 7.5e6)):
        assert abs(value - sheet) / sheet < 0.02, (value, sheet)
    assert count(bair.generator.cdna.fc) == 8192 * 100 + 100  # dense 8·8·128 → 5·5·4
    assert count(bair.encoder) == 666_832


# ------------------------------------------------------------------------------------------ shapes
def test_predict_shapes_ranges_and_seeds():
    model = tiny()
    ctx = clips(2, 3)
    out = model.predict(ctx, 4, num_samples=3, seed=0)
    assert out.shape == (2, 3, 4, 1, 32, 32) and 0 <= out.min() and out.max() <= 1
    torch.testing.assert_close(model.predict(ctx, 4, num_samples=3, seed=0), out, rtol=0, atol=0)
    assert not torch.equal(out[:, 0], out[:, 1])  # samples differ
    det = tiny(SAVPDeterministic)
    out = det.predict(ctx, 2, num_samples=2, seed=0)
    assert det.stochastic is False and torch.equal(out[:, 0], out[:, 1])
    with pytest.raises(ValueError, match="SAVP trains on clips of shape"):
        model.training_iteration(clips(2, 5), *model.configure_optimizers()[0], step=0)


def test_generator_paths_shapes():
    model = tiny()
    x = clips(2, 6)
    gen = model.forward_generator(x, step=0)
    assert gen["post"].shape == gen["prior"].shape == (2, 5, 1, 32, 32)
    assert gen["mu"].shape == gen["logvar"].shape == (2, 5, 2)
    assert gen["logvar"].abs().max() <= 10


def test_zoo_format_round_trip(tmp_path):
    import vpzoo

    model = tiny(SAVPGAN, preset="kth_2018")
    model.save_pretrained(tmp_path / "exported")
    loaded = vpzoo.load(str(tmp_path / "exported"))
    assert type(loaded) is SAVPGAN and loaded.encoder is None and loaded.cfg == model.cfg
    ctx = clips(1, 2)
    torch.testing.assert_close(loaded.predict(ctx, 3, 2, seed=1), model.predict(ctx, 3, 2, seed=1), rtol=0, atol=0)


def test_tf_bilinear_upsampling():
    """The decoder's ×2 bilinear upsampling is TF's transposed convolution with the (1/4, 3/4, 3/4, 1/4) kernel:
    ``F.interpolate`` inside, a zero neighbour at the border (edge pixels 3/4, corners 9/16 of the input)."""
    from vpzoo.models.blocks import tf_bilinear_upsample2x

    x = torch.rand(2, 3, 5, 6, dtype=torch.float64)
    up = tf_bilinear_upsample2x(x)
    ref = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    assert up.shape == (2, 3, 10, 12)
    torch.testing.assert_close(up[..., 1:-1, 1:-1], ref[..., 1:-1, 1:-1])
    torch.testing.assert_close(up[..., 0, 0], 0.5625 * x[..., 0, 0])
    torch.testing.assert_close(up[..., 0, 1:-1], 0.75 * ref[..., 0, 1:-1])


# ------------------------------------------------------------------------------------------ heads
def test_cdna_kernels_normalised_masks_sum_to_one_and_identity_start():
    model = tiny()
    x = clips(2, 6)
    z = torch.randn(2, 5, 2)
    out = model.unroll(x, z, ground_truth_prob=1.0)
    kernels, masks = out["kernels"], out["masks"]
    assert kernels.shape == (2, 5, 4, 5, 5) and masks.shape == (2, 5, 7, 32, 32)
    assert kernels.min() > 0
    torch.testing.assert_close(kernels.sum((-2, -1)), torch.ones(2, 5, 4))
    torch.testing.assert_close(masks.sum(2), torch.ones(2, 5, 32, 32))
    # identity offset: with a zero CDNA layer every kernel is the centre one-hot and moves nothing (symmetric pad)
    with torch.no_grad():
        model.generator.cdna.fc.weight.zero_()
        model.generator.cdna.fc.bias.zero_()
    k = model.generator.cdna.kernels(torch.randn(3, model.generator.cdna.fc.in_features))
    centre = torch.zeros(5, 5)
    centre[2, 2] = 1
    torch.testing.assert_close(k, centre.expand(3, 4, 5, 5), atol=1e-10, rtol=0)
    # the output is the mask-weighted sum of [4 CDNA images, x_t, x_0, scratch]: masks on x_t alone give x_t
    with torch.no_grad():
        model.generator.masks.weight.zero_()
        model.generator.masks.bias.copy_(torch.tensor([-1e4, -1e4, -1e4, -1e4, 1e4, -1e4, -1e4]))
    pred, _, _ = model.generator.step(x[:, 1], x[:, 0], z[:, 0])
    torch.testing.assert_close(pred, x[:, 1])


# ------------------------------------------------------------------------------------------ losses
def test_discriminator_first_then_generator_against_the_updated_one():
    """One training iteration equals the hand-made two-step computation: the discriminators step on the detached
    generated videos (LSGAN), then generator + encoder step on L1 + KL + LSGAN + feature cosine distance computed
    by the *updated* discriminators. A generator step against the old discriminators gives other weights."""
    torch.manual_seed(0)
    model = tiny(clip_length=5, kl_anneal_steps=(0, 0))  # clips = the 5 generated frames: no random window
    cfg = model.cfg
    assert (cfg["l1_weight"], cfg["kl_weight"], cfg["gan_weight"], cfg["vae_gan_weight"],
            cfg["vae_gan_feature_cdist_weight"]) == (100.0, 1.0, 0.1, 0.1, 10.0)
    x = clips(2, 6, seed=1)
    ref, stale = copy.deepcopy(model), copy.deepcopy(model)

    def sgd(m: SAVP) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
        # plain SGD: Adam's first step is nearly sign(gradient), which would amplify rounding differences
        return (torch.optim.SGD(m.generator_parameters(), lr=0.05),
                torch.optim.SGD(m.discriminator_parameters(), lr=0.5))

    opt_g, opt_d = sgd(model)
    torch.manual_seed(5)
    logs = model.training_iteration(x, opt_g, opt_d, step=0)

    def hand(m: SAVP, update_d_first: bool) -> None:
        opt_g, opt_d = sgd(m)
        torch.manual_seed(5)
        gen = m.forward_generator(x, 0)
        real = x[:, 1:]
        d_loss = 0
        for disc, fake in ((m.discriminator, gen["prior"]), (m.vae_discriminator, gen["post"])):
            logit_real, logit_fake = disc(real)[1], disc(fake.detach())[1]
            d_loss = d_loss + 0.1 * (((logit_real - 1) ** 2).mean() + (logit_fake**2).mean())
        if update_d_first:
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
        mu, logvar = gen["mu"], gen["logvar"]
        kl = (0.5 * (mu**2 + logvar.exp() - 1 - logvar)).sum(-1).mean()
        g_loss = 100 * (gen["post"] - real).abs().mean() + 1.0 * kl
        g_loss = g_loss + 0.1 * ((m.discriminator(gen["prior"])[1] - 1) ** 2).mean()
        features_fake, logits = m.vae_discriminator(gen["post"])
        features_real, _ = m.vae_discriminator(real)
        g_loss = g_loss + 0.1 * ((logits - 1) ** 2).mean()
        g_loss = g_loss + 10 * sum((1 - F.cosine_similarity(f, r.detach(), dim=1)).mean()
                                   for f, r in zip(features_fake, features_real))
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        if not update_d_first:
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
        return g_loss

    g_loss = hand(ref, update_d_first=True)
    assert logs["train/loss"].item() == pytest.approx(g_loss.item(), rel=1e-5)
    for (name, a), b in zip(model.named_parameters(), ref.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7, msg=name)
    hand(stale, update_d_first=False)
    g_params = dict(model.generator.named_parameters())
    assert any(not torch.allclose(g_params[n], p, rtol=1e-5, atol=1e-7)
               for n, p in stale.generator.named_parameters())


def test_spectral_norm_bounds_each_discriminator_layer():
    model = tiny(ndf=4)
    disc = model.discriminator
    clip = torch.rand(2, 4, 1, 32, 32)
    with torch.no_grad():  # raw weights well above norm 1, as training can make them
        for layer in [*disc.convs, disc.fc]:
            layer.parametrizations.weight.original.mul_(100.0)
    for _ in range(30):  # one power iteration per training forward
        disc(clip)
    layers = [*disc.convs, disc.fc]
    assert len(layers) == 8
    for layer in layers:
        raw = layer.parametrizations.weight.original
        assert torch.linalg.matrix_norm(raw.flatten(1), ord=2) > 5
        sigma = torch.linalg.matrix_norm(layer.weight.flatten(1), ord=2).item()
        assert sigma == pytest.approx(1.0, abs=1e-3)


def test_variants_switch_the_right_losses_off():
    x = clips(2, 6)
    parts = {}
    for cls, preset in ((SAVP, "bair_2019"), (SAVPVAE, "bair_2019"), (SAVPGAN, "bair_2019"), (SAVPGAN, "bair_2018"),
                        (SAVPDeterministic, "bair_2019"), (SAVP, "bair_2018")):
        model = tiny(cls, preset=preset, clip_length=4)
        gen = model.forward_generator(x, step=200_000)
        out = model.generator_losses(x, gen, step=200_000)
        d = model.discriminator_losses(x, gen)
        parts[(cls.model_name, preset)] = (
            set(out) - {"loss"}, set(d) - {"loss"}, model.encoder is not None, "post" in gen,
            sorted(len(o.param_groups[0]["params"]) > 0 for o in model.configure_optimizers()[0]),
        )
    assert parts[("savp", "bair_2019")][:4] == ({"l1", "kl", "g_gan", "g_vae_gan", "vae_gan_feature_cdist"},
                                                {"d_gan", "d_vae_gan"}, True, True)
    assert parts[("savp", "bair_2018")][:2] == ({"l1", "kl", "g_gan", "g_vae_gan"}, {"d_gan", "d_vae_gan"})
    assert parts[("savp_vae", "bair_2019")][:4] == ({"l1", "kl"}, set(), True, True)
    assert parts[("savp_vae", "bair_2019")][4] == [True]  # one optimiser: no discriminator
    # 2019 ours_gan: the encoder exists (L1 on the posterior path, KL computed for logging only: weight 0)
    gan19 = tiny(SAVPGAN, clip_length=4)
    assert gan19.cfg["kl_weight"] == 0 and gan19.vae_discriminator is None and gan19.encoder is not None
    assert parts[("savp_gan", "bair_2019")][:2] == ({"l1", "kl", "g_gan", "gan_feature_cdist"}, {"d_gan"})
    assert parts[("savp_gan", "bair_2018")][:4] == ({"l1", "g_gan"}, {"d_gan"}, False, False)
    assert parts[("savp_det", "bair_2019")][:4] == ({"l1"}, set(), False, False)
    # a KL weight of 0 keeps KL out of the total
    model = tiny(SAVPGAN, clip_length=4)
    torch.manual_seed(0)
    gen = model.forward_generator(x, 0)
    out = model.generator_losses(x, gen, 0)
    expected = 100 * out["l1"] + 0.1 * out["g_gan"] + 10 * out["gan_feature_cdist"]
    assert out["loss"].item() == pytest.approx(expected.item(), rel=1e-6)


def test_presets_and_overrides():
    assert PRESETS["savp"]["bair_2019"]["kl_weight"] == 1.0 and PRESETS["savp"]["bair_2018"]["kl_weight"] == 0.1
    assert PRESETS["savp"]["kth_2019"]["nz"] == 32 and PRESETS["savp"]["kth_2018"]["kl_weight"] == 0.001
    assert PRESETS["savp_vae"]["kth_2019"]["kl_weight"] == 1e-5 and PRESETS["savp_vae"]["bair_2019"]["lr"] == 1e-3
    assert {p["batch_size"] for p in PRESETS["savp"].values()} == {16}
    assert {p["batch_size"] for p in PRESETS["savp_det"].values()} == {32}
    model = tiny(preset="bair_2018", kl_weight=0.5)
    assert model.cfg["kl_weight"] == 0.5 and model.cfg["gan_weight"] == 1.0 and model.cfg["loss_frames"] == "future"
    with pytest.raises(ValueError, match="unknown savp preset 'bair_2020'"):
        tiny(preset="bair_2020")
    with pytest.raises(ValueError, match="need encoder=True"):
        tiny(encoder=False)
    with pytest.raises(ValueError, match="SAVPDeterministic needs nz = 0"):
        tiny(SAVPDeterministic, nz=2)
    with pytest.raises(ValueError, match="clip_length must lie in"):
        tiny(clip_length=6)


def test_prior_context_posterior_and_loss_frames():
    x = clips(2, 6)
    model = tiny()
    torch.manual_seed(0)
    gen = model.forward_generator(x, 0)
    # 2019: the context transition (t = 0) uses the posterior sample on both paths: the same first prediction
    torch.testing.assert_close(gen["post"][:, 0], gen["prior"][:, 0])
    assert not torch.allclose(gen["post"][:, 1], gen["prior"][:, 1])
    old = tiny(preset="bair_2018", clip_length=4)
    torch.manual_seed(0)
    gen = old.forward_generator(x, 0)
    assert not torch.allclose(gen["post"][:, 0], gen["prior"][:, 0])
    assert old.scored(gen["post"]).shape[1] == 4 and torch.equal(old.targets(x), x[:, 2:])
    assert model.scored(gen["post"]).shape[1] == 5 and torch.equal(model.targets(x), x[:, 1:])


def test_schedules():
    model = tiny()
    assert [model.kl_weight_at(s) for s in (0, 50_000, 75_000, 100_000, 200_000)] == [0, 0, 0.5, 1.0, 1.0]
    assert [model.lr_factor_at(s) for s in (0, 200_000, 250_000, 300_000, 400_000)] == [1, 1, 0.5, 0, 0]
    assert scheduled_sampling_probability(0, 900) == pytest.approx(900 / 901)
    assert scheduled_sampling_probability(5000, 900) == pytest.approx(900 / (900 + torch.e ** (5000 / 900)))
    assert scheduled_sampling_probability(12_400, 900) == 0.0  # below 0.001: fully autoregressive
    assert scheduled_sampling_probability(0, None) == 0.0


# ------------------------------------------------------------------------------------------ training
def test_overfits_one_batch_on_the_vae_path():
    torch.manual_seed(0)
    model = tiny(SAVPVAE, ngf=8, lr=3e-3, scheduled_sampling_k=None)
    (opt_g,), _ = model.configure_optimizers()
    x = clips(2, 6, seed=3)
    losses = [model.training_iteration(x, opt_g, None, step=0)["train/l1"].item() for _ in range(25)]
    assert losses[-1] < 0.5 * losses[0], losses[::5]


def test_bf16_autocast_keeps_the_latents_and_the_gan_losses_in_float32():
    """Under ``--trainer.precision bf16-mixed`` (CPU autocast here) the posterior's mean and log-variance, the LSGAN
    terms and the feature distances stay float32: with the same weights and noise the losses are float32's to 2e-3.
    Before, the posterior noise was drawn in bfloat16 (another random stream: other clips scored by the
    discriminators) and the losses were summed in bfloat16 ((1 - 3e-4)² is 1.0 there): the generator+encoder loss of
    this tiny SAVP was 8.8% from float32's."""
    torch.manual_seed(0)
    model = tiny(SAVP)
    x = clips()
    assert model.cfg["gan_weight"] and model.cfg["vae_gan_feature_cdist_weight"]  # both discriminators, the distance
    results = []
    for mixed in (False, True):
        with torch.no_grad():
            torch.manual_seed(5)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mixed):
                gen = model.forward_generator(x, 0)
                results.append((gen, model.generator_losses(x, gen, 0), model.discriminator_losses(x, gen)))
                if mixed:  # autocast is on: the discriminators compute in bfloat16
                    assert model.vae_discriminator(x[:, : model.hparams.clip_length])[1].dtype == torch.bfloat16
    (gen32, g32, d32), (gen16, g16, d16) = results
    assert gen16["mu"].dtype == gen16["logvar"].dtype == torch.float32
    for full, half in ((g32, g16), (d32, d16)):
        for name, value in full.items():
            assert half[name].dtype == torch.float32, name
            assert abs(half[name].item() - value.item()) <= 2e-3 * abs(value.item()), (name, value.item(),
                                                                                        half[name].item())


def test_configs_parse_and_build(tmp_path, monkeypatch):
    import lightning as L
    from lightning.pytorch.cli import LightningCLI

    from vpzoo.models import VideoPredictionModel

    monkeypatch.chdir(tmp_path)
    # every config is also built through the training queue's recipe in tests/test_queue.py
    with torch.device("meta"):
        cli = LightningCLI(VideoPredictionModel, L.LightningDataModule, subclass_mode_model=True,
                           subclass_mode_data=True, run=False, args=["--config", str(CONFIGS / "smmnist.yaml")])
    model, dm = cli.model, cli.datamodule
    assert isinstance(model, SAVP) and model.hparams.preset == "bair_2019" and cli.trainer.max_steps == 300_000
    assert (model.channels, model.n_past, model.n_future, dm.batch_size, dm.seq_len) == (1, 5, 10, 16, 15)
    expected = {"bair": (3, 2, 16, "bair_2019", 30), "kth": (1, 10, 16, "kth_2019", 40)}
    for name, (channels, n_past, batch, preset, eval_len) in expected.items():
        config = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())
        args, data = config["model"]["init_args"], config["data"]["init_args"]
        assert config["model"]["class_path"] == "vpzoo.models.savp.SAVP" and config["trainer"]["max_steps"] == 300_000
        assert (args["channels"], args["n_past"], args["n_future"], args["preset"]) == (channels, n_past, 10, preset)
        assert (data["batch_size"], data["seq_len"], data["eval_seq_len"]) == (batch, n_past + 10, eval_len)
    for name in ("bair_vae", "bair_gan", "bair_det"):
        config = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())
        cls = {"vae": SAVPVAE, "gan": SAVPGAN, "det": SAVPDeterministic}[name.split("_")[1]]
        assert config["model"]["class_path"] == f"vpzoo.models.savp.{cls.__name__}"
        assert config["data"]["init_args"]["batch_size"] == PRESETS[cls.model_name]["bair_2019"]["batch_size"]


def test_fit_one_process_and_ddp(tmp_path, monkeypatch):
    """`vpzoo fit` of the tiny config, plainly (in this process, through the CLI's entry point) and under 2-process
    DDP on CPU (gloo, the console script): manual optimisation with two optimisers, global_step counts iterations,
    the KL anneal follows it, validation is logged, and the checkpoint loads."""
    from test_cli import last_value, read_metrics, run_vpzoo
    from vpzoo.cli import main

    plain, ddp = tmp_path / "plain", tmp_path / "ddp"
    plain.mkdir(), ddp.mkdir()
    monkeypatch.chdir(plain)
    main(["fit", "--config", str(ASSETS / "tiny_savp.yaml")])
    proc = run_vpzoo(["fit", "--config", str(ASSETS / "tiny_savp.yaml"), "--trainer.strategy", "ddp",
                      "--trainer.accelerator", "cpu", "--trainer.devices", "2"], ddp)
    assert "find_unused_parameters=True" in proc.stdout + proc.stderr
    for root in (plain, ddp):
        rows = read_metrics(root / "logs")
        assert [float(r["train/kl_weight"]) for r in rows if r.get("train/kl_weight")] == [0.0, 0.5, 1.0]
        assert 0 < last_value(rows, "val/ssim") <= 1 and last_value(rows, "train/d_loss") > 0
        ckpt = next((root / "logs").rglob("*.ckpt"))
        assert torch.load(ckpt, map_location="cpu", weights_only=False)["global_step"] == 3
        model = SAVP.load_from_checkpoint(ckpt, map_location="cpu")
        assert model.predict(torch.rand(2, 1, 32, 32), 2, num_samples=2).shape == (1, 2, 2, 1, 32, 32)


# ------------------------------------------------------------------------------------------ benchmark
class NoisyCopy(VideoPredictionModel):
    """A cheap stochastic stand-in (the last context frame plus seeded noise) for the benchmark's plumbing."""

    def __init__(self) -> None:
        super().__init__(image_size=64, channels=3, n_past=2, n_future=1)

    def sample_future(self, context, n_future, num_samples, generator):
        last = context[:, -1][:, None, None].expand(-1, num_samples, n_future, -1, -1, -1)
        return (last + 0.3 * torch.rand(last.shape, generator=generator)).clamp(0, 1)


def test_bair_savp_benchmark_on_real_format_files(tmp_path):
    """`vpzoo benchmark bair_savp`: BAIR TFRecords in the real format, 2 context -> 28 predicted frames, best of N
    on PSNR/SSIM equal to a direct computation with vpzoo.metrics, and the FVD of the 30-frame clips (a random-weight
    I3D as a local file: only the plumbing is checked here, the distance itself in tests/test_fvd.py)."""
    import warnings

    from vpzoo.data.bair import BAIRDataModule, prepare_bair
    from vpzoo.data.fixtures import write_bair_fixture
    from vpzoo.leaderboard import default_benchmark, format_report, get_benchmark, list_benchmarks, run_benchmark
    from vpzoo.metrics import get_protocol
    from vpzoo.metrics.i3d import InceptionI3d, save_torchscript
    from vpzoo.metrics.protocols import frame_metrics
    from vpzoo.models.copy_last import CopyLast

    assert "bair_savp" in list_benchmarks() and default_benchmark("bair") == "bair_fvd"
    bench = get_benchmark("bair_savp")
    assert (bench.context_frames, bench.predicted_frames, bench.num_samples, bench.metrics) == (2, 28, 100,
                                                                                               ("psnr", "ssim", "fvd"))
    assert {p.model: p.values["fvd"] for p in bench.published} == {"SAVP": 152.0, "SV2P": 965.0}
    with pytest.raises(ValueError, match="BAIR benchmarks .*need the BAIR data"):
        run_benchmark(CopyLast(channels=3), bench, num_test=1)
    truth = write_bair_fixture(tmp_path / "src", train_files=1, clips_per_file=2, test_clips=3)
    (tmp_path / "bair").mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a partial test split, as intended here
        prepare_bair(tmp_path / "bair", url=truth["tar"].as_uri(), progress=False)
        torch.manual_seed(0)
        save_torchscript(InceptionI3d(width_mult=0.125).eval(), tmp_path / "i3d.pt")
        model = NoisyCopy()
        result = run_benchmark(model, bench, root=str(tmp_path / "bair"), batch_size=2, num_test=2, num_samples=2,
                               seed=4,
                               fvd_weights_path=str(tmp_path / "i3d.pt"), fvd_verify=False)
        data = BAIRDataModule(root=str(tmp_path / "bair"), eval_seq_len=30, num_test=256, eval_batch_size=2,
                              download=False)
        data.setup("test")
        test = next(iter(data.test_dataloader()))
    assert result.num_sequences == 2 and result.num_samples == 2 and test.shape == (2, 30, 3, 64, 64)
    samples = model.predict(test[:, :2], 28, num_samples=2, seed=4)  # batch 0 uses seed + 0
    target = test[:, None, 2:].expand(-1, 2, -1, -1, -1, -1)
    direct = frame_metrics(samples.flatten(0, 1), target.flatten(0, 1), get_protocol("standard"))  # (4, 28)
    for name in ("psnr", "ssim"):
        per_sample = direct[name].view(2, 2, 28).mean(-1)  # (clips, samples)
        best, mean = per_sample.max(dim=1).values.mean().item(), per_sample.mean().item()
        assert result.values["model"][name] == pytest.approx(best, abs=1e-4)
        assert result.values["model_mean"][name] == pytest.approx(mean, abs=1e-4) and best > mean
        assert len(result.per_frame["model"][name]) == 28
    report = result.details["model"]
    assert (report["n_real"], report["n_generated"], report["clip_length"]) == (2, 4, 30)
    assert result.values["model"]["fvd"] >= 0
    assert "18.44" in format_report(bench) and "mean of N" in format_report(bench, measured=[result])
