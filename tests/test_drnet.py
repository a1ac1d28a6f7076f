"""DRNet: parameter counts, losses and their gradients, the scene discriminator, overfitting, prediction, the
Lightning fit/checkpoint path, the configs, DRNet's Moving MNIST option of the SM-MNIST DataModule, and the
disentanglement checks (the strong form runs on the shipped drnet_mmnist checkpoint, or on the Lightning checkpoint
that VPZOO_DRNET_MMNIST_CKPT names)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from vpzoo.data.mnist_digits import load_digit_pool
from vpzoo.data.smmnist import StochasticMovingMNISTDataModule, generate_smmnist, render_frames
from vpzoo.models.drnet import (
    DRNet,
    content_swap_errors,
    make_content_swap_set,
    scene_discriminator_probe,
)

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "drnet"
TRAINED_CKPT = os.environ.get("VPZOO_DRNET_MMNIST_CKPT")


def tiny_drnet_kwargs(**overrides):
    """A small DRNet (64-px DCGAN codecs 8 channels wide, small vectors and LSTM) for fast CPU tests."""
    kwargs = dict(n_past=3, n_future=3, codec_width=8, content_dim=16, pose_dim=4, sd_hidden=16, rnn_size=32,
                  stage="autoencoder")
    kwargs.update(overrides)
    return kwargs


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These tiny models run several times faster on one thread than on two contended ones."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits():
    return load_digit_pool("train", 32, None)


def drnet_clips(digits, n: int, t: int, seed: int) -> torch.Tensor:
    """DRNet's Moving MNIST: 2 digits in their own channels of 3, reflecting, velocities in [-4, 3]."""
    return torch.from_numpy(generate_smmnist(digits, n, t, seed, colored=True, deterministic=True,
                                             velocity_range=(-4, 3)))


# ------------------------------------------------------------------------------------------ parameters
# Reference counts: ../shared/reference/models-drnet-svg-vrnn.md §3.7 (derived from drnet-py's layer shapes).
SHEET = {
    "mmnist": (dict(), dict(content_encoder=3.81e6, pose_encoder=2.84e6, decoder=6.64e6, discriminator=0.01e6,
                            pose_lstm=1.09e6), 14.4e6),
    "mmnist_plain_dcgan": (dict(content_model="dcgan"), dict(decoder=3.89e6), 11.6e6),
    "kth128": (dict(image_size=128, channels=1, content_model="vgg_unet", pose_model="resnet"),
               dict(content_encoder=15.77e6, pose_encoder=44.84e6, decoder=21.35e6, pose_lstm=1.09e6), 83.1e6),
}


@pytest.mark.parametrize("name", list(SHEET))
def test_parameter_counts_match_sheet(name):
    kwargs, modules, total = SHEET[name]
    with torch.device("meta"):  # no memory, no init: the 128-px model has 83 M parameters
        model = DRNet(**kwargs)
    for module, reference in modules.items():
        count = sum(p.numel() for p in getattr(model, module).parameters())
        tolerance = 0.02 if reference >= 1e6 else 0.25  # C's 12,301 is quoted as "0.01 M"
        assert abs(count - reference) / reference < tolerance, (module, count)
    assert abs(model.num_parameters() - total) / total < 0.02, model.num_parameters()


def test_default_count_is_exact():
    with torch.device("meta"):
        model = DRNet()
    # E_c 3,807,424 + E_p 2,840,414 + D 6,644,547 + C 12,301 + LSTM 1,090,826 (drnet-py's MNIST defaults)
    assert model.num_parameters() == 14_395_512


def test_fixed_content_norm_option():
    """content_norm_affine=False: the content head's BatchNorm loses its scale and shift (2 x content_dim
    parameters) and keeps every content dimension at unit spread across the batch before the tanh."""
    with torch.device("meta"):
        assert DRNet().num_parameters() - DRNet(content_norm_affine=False).num_parameters() == 2 * 128
    model = DRNet(**tiny_drnet_kwargs(content_norm_affine=False)).train()
    norm = model.content_encoder.head[1]
    assert isinstance(norm, torch.nn.BatchNorm2d) and not norm.affine
    assert model.pose_encoder.head[1].affine  # the pose encoder keeps the official head
    x = torch.rand(16, 3, 64, 64)
    pre_tanh = torch.atanh(model.encode_content(x)[0].flatten(1).clamp(-0.999999, 0.999999))
    torch.testing.assert_close(pre_tanh.var(0, unbiased=False), torch.ones(16), atol=1e-3, rtol=0)
    for content_model in ("dcgan_unet", "vgg_unet"):
        head = DRNet(**tiny_drnet_kwargs(content_model=content_model, content_norm_affine=False)).content_encoder.head
        assert not [m for m in head if isinstance(m, torch.nn.BatchNorm2d)][-1].affine


def test_svg_codec_parameters_unchanged():
    from vpzoo.models.blocks import DCGANDecoder64, DCGANEncoder64

    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    with torch.device("meta"):
        # the U-Net decoder keeps its layers with the new skips flag (SVG's SM-MNIST codec; 1,049,088 + 1,024 +
        # 4,194,560 + 512 + 1,048,704 + 256 + 262,208 + 128 + 2,049 by hand)
        assert n(DCGANDecoder64(128, 1)) == n(DCGANDecoder64(128, 1, skips=True)) == 6_558_529
        assert n(DCGANDecoder64(128, 1, skips=False)) == 6_558_529 - 1024 * 256 * 16 // 2 - 512 * 128 * 16 // 2 - (
            256 * 64 * 16 // 2) - 64 * 16
        assert n(DCGANEncoder64(128, 1)) == 3_805_376


# ---------------------------------------------------------------------------------------------- losses
def test_loss_terms_values_and_gradient_routing(digits):
    torch.manual_seed(0)
    model = DRNet(**tiny_drnet_kwargs(sim_weight=0.5, adv_weight=0.25))
    frames = model.training_frames(drnet_clips(digits, 4, 5, 1))
    assert frames.shape == (4, 4, 3, 64, 64)
    out = model.autoencoder_losses(frames)
    torch.testing.assert_close(out["rec"], ((out["recon"] - frames[2]) ** 2).mean())
    torch.testing.assert_close(out["loss"], out["rec"] + 0.5 * out["sim"] + 0.25 * out["adv"])
    assert out["adv"] >= math.log(2) - 1e-6  # BCE against 1/2 is minimal (ln 2) where C outputs 1/2
    # the collapse watch: the spread of E_c(x_c1) across the batch (train-mode BN depends only on the batch)
    torch.testing.assert_close(out["content_std"], model.encode_content(frames[0])[0].flatten(1).std(dim=0).mean())
    assert not out["content_std"].requires_grad and out["content_std"] > 0

    def grads(loss):
        model.zero_grad(set_to_none=True)
        loss.backward(retain_graph=True)
        return {name: any(p.grad is not None and p.grad.abs().sum() > 0 for p in getattr(model, name).parameters())
                for name in ("content_encoder", "pose_encoder", "decoder", "discriminator", "pose_lstm")}

    assert grads(out["adv"]) == dict(content_encoder=False, pose_encoder=True, decoder=False, discriminator=True,
                                     pose_lstm=False)
    assert grads(out["sim"]) == dict(content_encoder=True, pose_encoder=False, decoder=False, discriminator=False,
                                     pose_lstm=False)
    assert grads(out["sd_loss"]) == dict.fromkeys(grads(out["sd_loss"]), False) | {"discriminator": True}
    assert grads(out["rec"])["decoder"] and grads(out["rec"])["pose_encoder"]


def test_discriminator_pairs_are_labelled_by_clip():
    """Half the batch is paired across clips by a permutation, half within the clip; labels say which (1: different)."""
    model = DRNet(**tiny_drnet_kwargs())

    class Oracle(torch.nn.Module):  # knows whether two poses are the same vector
        def forward(self, a, b):
            return torch.where((a == b).all(dim=1), -20.0, 20.0)

    model.discriminator = Oracle()
    poses = torch.randn(10, 4)
    for seed in range(5):
        torch.manual_seed(seed)
        out = model.discriminator_loss(poses, poses.clone())
        assert out["acc"] == 1.0 and out["loss"] < 1e-6  # also where the permutation maps a clip to itself


def test_frame_sampling():
    model = DRNet(**tiny_drnet_kwargs())
    x = torch.arange(6.0).view(1, 6, 1, 1, 1).expand(3, 6, 3, 64, 64) / 10
    assert model.training_frames(x)[:, 0, 0, 0, 0].tolist() == pytest.approx([0.0, 0.1, 0.2, 0.3])
    random = DRNet(**tiny_drnet_kwargs(frame_sampling="random")).training_frames(x)
    assert random.shape == (4, 3, 3, 64, 64)
    assert set(random[:, :, 0, 0, 0].flatten().tolist()) <= set(x[0, :, 0, 0, 0].tolist())
    with pytest.raises(ValueError, match="at least 4 frames"):
        model.training_frames(x[:, :3])


def test_bad_hyperparameters():
    for kwargs, match in [(dict(content_model="resnet"), "content_model"), (dict(pose_model="vgg"), "pose_model"),
                          (dict(image_size=96), "64x64 or 128x128"), (dict(stage="joint"), "stage"),
                          (dict(adv_weight=-1.0), "adv_weight"), (dict(frame_sampling="all"), "frame_sampling")]:
        with pytest.raises(ValueError, match=match):
            DRNet(**tiny_drnet_kwargs(**kwargs))


# -------------------------------------------------------------------------------------------- training
def test_overfits_one_batch(digits):
    """On one fixed batch, stage 1 drives the reconstruction error 20x down and well below an all-black frame's
    error; stage 2 (frozen encoders) drives the pose-prediction loss 5x down in 60 steps (30 were borderline on AVX-512
    CPUs: the loss plateaus near 0.5 around step 30 before falling to ~0.1)."""
    torch.manual_seed(0)
    model = DRNet(**tiny_drnet_kwargs(lr=1e-2, lstm_lr=1e-2))
    x = drnet_clips(digits, 4, 6, 3)
    opt_main, opt_disc, opt_lstm = model.configure_optimizers()
    rec = [model.autoencoder_iteration(x, opt_main, opt_disc)["rec"].item() for _ in range(40)]
    black = (x[:, 2] ** 2).mean().item()  # the reconstructed frame is x_p1 = frame 2
    assert rec[-1] < rec[0] / 20 and rec[-1] < black / 2, (rec[0], rec[-1], black)
    lstm = [model.lstm_iteration(x, opt_lstm)["loss"].item() for _ in range(60)]
    assert lstm[-1] < lstm[0] / 5, (lstm[0], lstm[-1])
    assert not model.content_encoder.training  # stage 2 keeps the frozen modules in eval mode


def test_scene_discriminator_separates_pose_pairs_without_adversarial_loss(digits):
    """With adv_weight = 0 nothing keeps clip identity out of the pose vectors: C, trained by the official
    iterations (40 iterations of batch 32), tells held-out same-clip from different-clip pairs (0.84-0.89 accuracy
    and BCE 0.31-0.37 over three seeds here; chance is 0.5 and ln 2 = 0.69)."""
    torch.manual_seed(0)
    model = DRNet(**tiny_drnet_kwargs(pose_dim=10, sd_hidden=100, adv_weight=0.0, lr=4e-3))
    opt_main, opt_disc, _ = model.configure_optimizers()
    batches = [drnet_clips(digits, 32, 4, 1000 + i) for i in range(8)]
    for i in range(40):
        logs = model.autoencoder_iteration(batches[i % 8], opt_main, opt_disc)
    assert logs["adv"] > math.log(2)  # nothing pushed C's output towards 1/2
    held_out = drnet_clips(digits, 64, 2, 99)
    model.eval()
    with torch.no_grad():
        torch.manual_seed(5)
        poses = model.encode_pose(held_out.transpose(0, 1).flatten(0, 1)).view(2, 64, -1)
        out = model.discriminator_loss(poses[0], poses[1])
    assert out["acc"] >= 0.75 and out["loss"] < 0.5, (out["acc"].item(), out["loss"].item())


def test_scene_discriminator_cannot_separate_pose_pairs_with_adversarial_loss(digits):
    """With the adversarial loss on, E_p learns to hide clip identity from the co-trained C: after 100 official
    iterations C's held-out accuracy, averaged over three seeds, stays near chance (0.64 measured here: 0.56, 0.72,
    0.63) while the same setup without the loss separates the pairs (0.81-0.89 above).

    β = 1 makes the game visible in 100 tiny iterations; at drnet-py's default β = 1e-4 the term is too weak to act
    that fast (measured 0.78-0.89, the same as β = 0), which is why it is not used here."""
    held_out = drnet_clips(digits, 64, 2, 99)
    batches = [drnet_clips(digits, 32, 4, 1000 + i) for i in range(8)]
    accuracies, adversarial = [], []
    for seed in (0, 1, 2):
        torch.manual_seed(seed)
        model = DRNet(**tiny_drnet_kwargs(pose_dim=10, sd_hidden=100, adv_weight=1.0, lr=4e-3))
        opt_main, opt_disc, _ = model.configure_optimizers()
        for i in range(100):
            logs = model.autoencoder_iteration(batches[i % 8], opt_main, opt_disc)
        adversarial.append(logs["adv"].item())
        model.eval()
        with torch.no_grad():
            torch.manual_seed(5)
            poses = model.encode_pose(held_out.transpose(0, 1).flatten(0, 1)).view(2, 64, -1)
            accuracies.append(model.discriminator_loss(poses[0], poses[1])["acc"].item())
    assert sum(accuracies) / 3 <= 0.70, accuracies
    assert min(adversarial) < 1.0, adversarial  # C's output is pulled towards 1/2 (BCE ln 2 = 0.69 there)


def test_fit_checkpoint_round_trip_and_stages(digits, tmp_path):
    """Both stages in one fit: global_step counts iterations (C's extra step is not counted), the stage switches
    at autoencoder_steps, validation runs through the base class, and the checkpoint restores the model."""
    import lightning as L
    from lightning.pytorch.loggers import CSVLogger

    dm = StochasticMovingMNISTDataModule(batch_size=4, seq_len=6, eval_seq_len=6, num_val=4, num_test=4,
                                         colored=True, channels=3, deterministic=True, velocity_range=(-4, 3),
                                         cache_dir=str(tmp_path / "cache"))
    model = DRNet(**tiny_drnet_kwargs(stage="both", autoencoder_steps=2))
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=4, val_check_interval=4, limit_val_batches=1,
                        logger=CSVLogger(tmp_path, name="log"), log_every_n_steps=1,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(model, dm)
    assert trainer.global_step == 4
    rows = (tmp_path / "log" / "version_0" / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    stage = [r.split(",")[header.index("train/stage")] for r in rows[1:]]
    assert [s for s in stage if s] == ["0.0", "0.0", "1.0", "1.0"]
    assert 0 < model.last_validation["ssim"] <= 1 and model.last_validation["selection"] == "single"

    ckpt = next((tmp_path / "log").rglob("*.ckpt"))
    restored = DRNet.load_from_checkpoint(ckpt)
    assert restored.hparams == model.hparams
    ctx = drnet_clips(digits, 2, 3, 7)
    torch.testing.assert_close(restored.predict(ctx, 4), model.predict(ctx, 4), rtol=0, atol=0)
    model.save_pretrained(tmp_path / "exported")  # the zoo format round trip as well
    torch.testing.assert_close(DRNet.from_pretrained(tmp_path / "exported").predict(ctx, 4), model.predict(ctx, 4),
                               rtol=0, atol=0)

    # stage 2 as its own run: init_from loads E_c, E_p, D and C (not the LSTM) when fitting starts
    lstm_only = DRNet(**tiny_drnet_kwargs(stage="lstm", init_from=str(ckpt)))
    lstm_only.setup("fit")
    for name in ("content_encoder", "pose_encoder", "decoder", "discriminator"):
        for a, b in zip(getattr(lstm_only, name).state_dict().values(), getattr(model, name).state_dict().values()):
            assert torch.equal(a, b), name
    assert not torch.equal(lstm_only.pose_lstm.embed.weight, model.pose_lstm.embed.weight)
    with pytest.raises(ValueError, match="architecture: decoder"):
        DRNet(**tiny_drnet_kwargs(content_model="dcgan", init_from=str(ckpt))).setup("fit")
    with pytest.raises(ValueError, match="lacks"):
        torch.save({"state_dict": {}}, tmp_path / "empty.ckpt")
        DRNet(**tiny_drnet_kwargs(init_from=str(tmp_path / "empty.ckpt"))).setup("fit")


# ------------------------------------------------------------------------------------------ prediction
@pytest.fixture(scope="module")
def eval_model(digits):
    torch.manual_seed(0)
    model = DRNet(**tiny_drnet_kwargs())
    opt_main, opt_disc, _ = model.configure_optimizers()
    for i in range(3):  # a few steps so BatchNorm running statistics are not the initial ones
        model.autoencoder_iteration(drnet_clips(digits, 4, 4, i), opt_main, opt_disc)
    return model.eval()


def test_predict_contract(eval_model, digits):
    model = eval_model
    assert model.stochastic is False and model.val_num_samples == 1
    ctx = drnet_clips(digits, 2, 3, 11)
    out = model.predict(ctx, n_future=5, num_samples=3, seed=0)
    assert out.shape == (2, 3, 5, 3, 64, 64) and out.dtype == torch.float32
    assert 0 <= out.min() and out.max() <= 1
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 0], out[:, 2])  # copies of one prediction
    torch.testing.assert_close(model.predict(ctx, 5, num_samples=1, seed=123)[:, 0], out[:, 0], rtol=0, atol=0)
    torch.testing.assert_close(model.predict(ctx[1], 5)[0], out[1, :1])  # clips are independent
    model.train()
    try:
        model.predict((ctx[0] * 255).round().to(torch.uint8).numpy(), 2)
        assert model.training and model.content_encoder.training
    finally:
        model.eval()
    assert model.predict(drnet_clips(digits, 1, 6, 12), 2).shape == (1, 1, 2, 3, 64, 64)  # longer context is fine
    with pytest.raises(ValueError, match="3 channel"):
        model.predict(torch.zeros(3, 1, 64, 64), 2)
    with pytest.raises(ValueError, match="n_past=3"):
        model.predict(ctx[:, :2], 2)


def test_prediction_is_batched_and_decodes_the_predicted_poses(eval_model, digits):
    model = eval_model
    ctx = drnet_clips(digits, 2, 3, 13)
    calls = []
    handle = model.decoder.register_forward_hook(lambda m, i, o: calls.append(o.shape[0]))
    try:
        out = model.predict(ctx, 6, num_samples=4)
        assert calls == [2 * 6]  # every future frame of every clip in one decoder call, once for all samples
        calls.clear()
        long = model.predict(ctx, 40)
        assert calls == [16] * 5  # long horizons: whole time steps, at most 16 frames per call
    finally:
        handle.remove()
    torch.testing.assert_close(long[:, 0, :6], out[:, 0])
    with torch.no_grad():  # the same thing by hand: content of the last context frame, LSTM poses
        h_c, skips = model.encode_content(ctx[:, -1])
        poses = model.predict_poses(model.encode_pose(ctx.flatten(0, 1)).view(2, 3, -1), h_c, 6)
        frame3 = model.decode(h_c, skips, poses[:, 3])
    torch.testing.assert_close(out[:, 0, 3], frame3)


def test_validation_step_through_the_base_class(eval_model, digits):
    model = eval_model
    batch = drnet_clips(digits, 2, 6, 14)
    model.validation_step(batch, 0)
    result = model.val_metrics["psnr"].compute()
    model.val_metrics["psnr"].reset()
    model.val_metrics["ssim"].reset()
    assert result["per_frame"].shape == (3,) and torch.isfinite(result["mean"])


# ------------------------------------------------------------------------------------------------ configs
def test_configs_parse_and_build(tmp_path, monkeypatch):
    import lightning as L
    from lightning.pytorch.cli import LightningCLI

    from vpzoo.models import VideoPredictionModel

    monkeypatch.chdir(tmp_path)
    cli = LightningCLI(VideoPredictionModel, L.LightningDataModule, subclass_mode_model=True,
                       subclass_mode_data=True, run=False, args=["--config", str(CONFIGS / "mmnist.yaml")])
    model, dm = cli.model, cli.datamodule
    assert isinstance(model, DRNet) and model.num_parameters() == 14_395_512
    assert (dm.colored, dm.channels, dm.deterministic, dm.velocity_range) == (True, 3, True, (-4, 3))
    shared = {k for k in set(model.hparams) & set(dm.hparams) if not k.startswith("_")}  # must agree to be logged
    assert shared and all(model.hparams[k] == dm.hparams[k] for k in shared), shared
    hp = model.hparams
    assert (hp.adv_weight, hp.sim_weight, hp.lr, hp.adam_beta1, hp.lstm_lr, hp.lstm_beta1) == (1e-4, 1, 2e-3, 0.5,
                                                                                                 2e-4, 0.9)
    assert cli.trainer.max_steps == hp.autoencoder_steps + 200 * 600 and hp.autoencoder_steps == 200 * 600
    assert dm.seq_len == hp.n_past + hp.n_future and dm.batch_size == 100
    # drnet-py's Oct 2017 settings (not yet a working recipe here), everything else as mmnist.yaml (sheet §3.7: 11.6M)
    earlier = yaml.safe_load((CONFIGS / "mmnist_dcgan.yaml").read_text())
    default = yaml.safe_load((CONFIGS / "mmnist.yaml").read_text())
    changed = {k: v for k, v in earlier["model"]["init_args"].items() if default["model"]["init_args"][k] != v}
    assert changed == {"content_model": "dcgan", "adv_weight": 0.01, "frame_sampling": "random"}
    assert earlier["data"] == default["data"] and earlier["model"]["class_path"] == default["model"]["class_path"]
    with torch.device("meta"):
        assert DRNet(**earlier["model"]["init_args"]).num_parameters() == 11_639_928
    for name, total in (("kth64", 32_914_614), ("kth128", 83.1e6)):  # kth64: derived here; kth128: sheet §3.7
        config = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())
        spec, data = config["model"], config["data"]
        assert spec["class_path"] == "vpzoo.models.drnet.DRNet"
        assert data["class_path"] == "vpzoo.data.kth.KTHDataModule"
        with torch.device("meta"):
            kth = DRNet(**spec["init_args"])
        assert (kth.hparams.content_model, kth.hparams.pose_model, kth.channels) == ("vgg_unet", "resnet", 1)
        assert (data["init_args"]["channels"], data["init_args"]["image_size"]) == (kth.channels, kth.image_size)
        assert data["init_args"]["seq_len"] == kth.n_past + kth.n_future
        assert abs(kth.num_parameters() - total) / total < 0.02, (name, kth.num_parameters())


# ----------------------------------------------------------------------------- DRNet's Moving MNIST data
def test_colored_moving_mnist_generator(digits):
    videos, traj = generate_smmnist(digits, 6, 12, 5, colored=True, deterministic=True, velocity_range=(-4, 3),
                                    return_trajectories=True, dtype="uint8")
    assert videos.shape == (6, 12, 3, 64, 64) and traj.front.shape == (6,)
    assert (videos[:, :, 2] == 0).all()  # 2 digits: the third colour channel stays empty
    start = traj.velocities[:, 0]
    assert start.min() >= -4 and start.max() <= 3
    assert (np.abs(traj.velocities) == np.abs(traj.velocities[:, :1])).all()  # reflection keeps the speed
    for k in range(2):  # channel k is digit k, blanked where the front digit is drawn
        alone = render_frames(digits, traj.digit_indices[:, k : k + 1], traj.positions[:, :, k : k + 1], 64,
                              dtype="uint8")[:, :, 0]
        behind = traj.front[:, None, None, None] != k
        expected = np.where(behind & (videos[:, :, 1 - k] > 0), 0, alone)
        np.testing.assert_array_equal(videos[:, :, k], expected)
    grey = generate_smmnist(digits, 6, 12, 5)
    assert grey.shape == (6, 12, 1, 64, 64)  # the default stream is untouched by the new options
    with pytest.raises(ValueError, match="1 channel"):
        generate_smmnist(digits, 1, 2, 0, channels=3)
    with pytest.raises(ValueError, match="channels=1 < 2 digits"):
        generate_smmnist(digits, 1, 2, 0, colored=True, channels=1)
    with pytest.raises(ValueError, match="low <= high"):
        generate_smmnist(digits, 1, 2, 0, velocity_range=(3, -4))


def test_colored_datamodule(tmp_path):
    kwargs = dict(batch_size=2, seq_len=5, eval_seq_len=6, num_val=3, num_test=3, cache_dir=str(tmp_path))
    with pytest.raises(ValueError, match="own channel"):  # channels is explicit: 1 (the default) is too few
        StochasticMovingMNISTDataModule(colored=True, **kwargs)
    dm = StochasticMovingMNISTDataModule(colored=True, channels=3, deterministic=True, velocity_range=(-4, 3), **kwargs)
    dm.setup("fit")
    assert next(iter(dm.train_dataloader())).shape == (2, 5, 3, 64, 64)
    assert next(iter(dm.val_dataloader())).shape == (2, 6, 3, 64, 64)
    assert np.load(dm.cache_path("val")).shape == (3, 6, 3, 64, 64)
    grey = StochasticMovingMNISTDataModule(**kwargs)
    assert grey.channels == 1 and dm.cache_path("val") != grey.cache_path("val")
    opts, _ = grey._eval_options("val")
    assert not {"colored", "channels", "velocity_range"} & set(opts)  # caches of existing configs stay valid


# ----------------------------------------------------------------------------------- disentanglement
def test_content_swap_set_and_check_run(eval_model):
    swap_set = make_content_swap_set(8, seed=1)
    assert {k: tuple(v.shape) for k, v in swap_set.items()} == dict.fromkeys(("content", "pose", "swap"),
                                                                               (8, 3, 64, 64))
    # the ideal swap has the content frame's digits (per-channel ink, up to occlusion) at the pose frame's places
    assert not torch.equal(swap_set["swap"], swap_set["pose"])
    assert not torch.equal(swap_set["swap"], swap_set["content"])
    result = content_swap_errors(eval_model, **swap_set)
    assert all(math.isfinite(result[k]) for k in ("mse_to_swap", "mse_to_pose_frame", "mse_to_content_frame"))
    assert isinstance(result["disentangled"], bool)
    assert result["content_effect"] > 0 and result["pose_effect"] > 0


def test_content_effect_sees_a_decoder_that_ignores_the_content(eval_model):
    """content_effect is 0 when the decoder's weights on the content vector are zeroed, pose_effect stays."""
    import copy

    swap_set = make_content_swap_set(8, seed=1)
    model = copy.deepcopy(eval_model)
    first = next(m for m in model.decoder.modules() if isinstance(m, (torch.nn.ConvTranspose2d, torch.nn.Conv2d)))
    content_dim = model.hparams.content_dim
    assert first.in_channels == content_dim + model.hparams.pose_dim
    with torch.no_grad():  # the first layer's input is concat(h_c, h_p): cut the content half
        first.weight[:content_dim] = 0
    result = content_swap_errors(model, **swap_set)
    assert result["content_effect"] == 0.0 and result["pose_effect"] > 0


def trained_drnet() -> DRNet:
    """The shipped ``drnet_mmnist`` checkpoint, or the Lightning checkpoint that VPZOO_DRNET_MMNIST_CKPT names."""
    import vpzoo

    if TRAINED_CKPT:
        return DRNet.load_from_checkpoint(TRAINED_CKPT, map_location="cpu").eval()
    if "drnet_mmnist" in vpzoo.list_checkpoints():
        return vpzoo.load("drnet_mmnist", device="cpu")
    pytest.skip("no trained DRNet: drnet_mmnist is not in checkpoints.yaml and VPZOO_DRNET_MMNIST_CKPT is unset")


def test_trained_checkpoint_is_disentangled():
    """On the trained Moving MNIST model, decoding the content of one clip with the pose of another gives the first
    clip's digits at the second clip's positions (closer to that ideal swap than to either input frame).

    The fresh-discriminator probe is printed, not asserted: the poses of adjacent frames are close because the
    digits move little, so even a well-disentangled pose encoder lets a discriminator tell same-clip pairs
    (drnet-py#6 reports ~98 % accuracy for the Lua model on single-digit MNIST)."""
    model = trained_drnet()
    result = content_swap_errors(model, **make_content_swap_set(256, seed=0))
    digits = load_digit_pool("test", 32, None)
    accuracy = scene_discriminator_probe(model, drnet_clips(digits, 512, 2, 1), drnet_clips(digits, 256, 2, 2))
    print(f"content swap: {result}; fresh scene discriminator on frames 0/1: accuracy {accuracy:.3f}")
    assert result["disentangled"], result
    assert 0.0 <= accuracy <= 1.0
