r"""SAVP: Stochastic Adversarial Video Prediction, and its VAE-only, GAN-only and deterministic ablations.

Paper: Alex X. Lee, Richard Zhang, Frederik Ebert, Pieter Abbeel, Chelsea Finn and Sergey Levine, "Stochastic
Adversarial Video Prediction", arXiv:1804.01523 (2018). Official code: https://github.com/alexlee-gk/video_prediction
(TensorFlow 1; ``models/savp_model.py``, ``networks.py``, ``ops.py``, ``rnn_ops.py``, ``losses.py``,
``hparams/*/*/model_hparams.json``), read for facts (sheet ``models-videoflow-savp-sv2p.md`` §2); no code was copied.

Model (the official 64-px ``SAVPCell`` with its defaults; the CDNA transform, mask compositing and conv-LSTM cell
are the shared blocks of SV2P, :mod:`vpzoo.models.blocks`):

- generator, one step per frame: input ``[x_t, x_0]`` (``x_t`` the ground truth, the model's own previous
  prediction, or a scheduled-sampling mix; ``x_0`` the first frame of the clip). Encoder: 5×5 conv → 2×2 average
  pool, 3×3 conv → pool, 3×3 conv → pool (``ngf`` ×1, ×2, ×4 channels), each with instance norm (affine, ε 1e-6)
  and ReLU, each followed by a 5×5 conv-LSTM of the same width (instance norm on the gates and on the new cell
  state, forget bias 1, no conv bias). Decoder: TF bilinear ×2 upsampling then a 3×3 conv (×2, ×1, ×1 channels;
  IN, ReLU), with the U-Net skips of the encoder's conv-LSTMs concatenated before the second and third, and
  conv-LSTMs after the first two. The latent ``z_t ∈ R^nz`` goes through an LSTM of ``nz`` units and its output is
  tiled and concatenated to the input of **every** conv and conv-LSTM (``where_add="all"``);
- heads: 4 CDNA kernels (5×5) from a linear layer on the flattened bottleneck conv-LSTM output, offset by the
  identity kernel, normalised, applied to ``x_t`` with symmetric padding; a scratch image (3×3 conv ``ngf``, IN,
  ReLU, 3×3 conv, sigmoid); 7 masks from a 3×3 conv ``ngf`` (IN, ReLU) concatenated with the 7 candidate images
  (dependent masks), a 3×3 conv and a softmax; ``x̂_{t+1} = Σ mask_i · candidate_i`` over [4 CDNA images, ``x_t``,
  ``x_0``, scratch];
- posterior encoder E(x_t, x_{t+1}) (pix2pix/BicycleGAN "n_layers" encoder, ``nef`` 64): 4×4 s2 convs with zero
  padding 1 to 64 (LeakyReLU 0.2), 128, 256 (IN, LeakyReLU 0.2), global average pool, linear heads μ and log σ²,
  log σ² clipped to [−10, 10]; one z per transition, drawn afresh at every step. Prior: a fixed N(0, I);
- two video discriminators (:class:`~vpzoo.models.blocks.VideoSNDiscriminator`: 3-D convs, spectral norm,
  LeakyReLU 0.1), one on prior-path videos (GAN) and one on posterior-path videos (VAE-GAN), each on a random
  ``clip_length``-frame clip (10) of the real or generated frames, drawn independently per example and per call;
- training rolls the generator out twice, on posterior samples (the VAE path) and on prior samples (the GAN path),
  each on its own predictions. Losses: L1 (and/or L2) of the posterior path (of the prior path when there is no
  encoder), KL(q ‖ N(0, I)) summed over ``nz`` and averaged over transitions and batch, with a weight annealed
  linearly from 0 at ``kl_anneal_steps[0]`` to full at ``kl_anneal_steps[1]`` (50k → 100k); LSGAN losses (D:
  ``mean (D(real) − 1)² + mean D(fake)²``, G: ``mean (D(fake) − 1)²``, raw logits), each pair weighted by its GAN
  weight; optional feature matching, the sum over the discriminator's 7 layers of the mean per-location cosine
  distance ``(1 − cos)`` between the features of the generated and the real clip;
- one iteration = the discriminators' Adam step on the generated videos (detached), then the generator+encoder's
  Adam step with the losses computed by the **updated** discriminators on the same generated videos (the official
  ``joint_gan_optimization=False``); manual optimisation, as DRNet. Only the generator step counts as a global step;
- Adam (β2 0.999, ε 1e-8) for both, learning rate constant until ``lr_decay_steps[0]`` (200k) then linearly to 0 at
  ``lr_decay_steps[1]`` (300k), 300k steps; scheduled sampling with inverse-sigmoid k = 900: after the context,
  each example and step gets the ground truth with probability ``k / (k + exp(step / k))`` (none once below
  0.001); init N(0, 0.02²) truncated at 2σ for every conv, linear and conv-LSTM kernel, zero biases.

Variants and released hyperparameters (``preset``; every weight can be overridden by its own argument). The 2019
release (``*_2019``, default: the weights of the released checkpoints, retrained by the author in Dec 2018) and the
2018 paper-era JSONs (``*_2018``) differ:

========================  =====  =====  =====  =======  ==========  =====  =========  ==============================
preset                    L1     KL     GAN    VAE-GAN  feat. dist  batch  lr, β1     frames scored / prior context
========================  =====  =====  =====  =======  ==========  =====  =========  ==============================
savp bair_2019            100    1      0.1    0.1      10 (VAE)    16     2e-4, 0.5  all 1..T−1 / posterior z
savp bair_2018            100    0.1    1      1        —           16     2e-4, 0.5  future only / prior z
savp kth_2019 (nz 32)     100    0.01   0.1    0.1      10 (VAE)    16     2e-4, 0.5  all / posterior z
savp kth_2018 (nz 32)     100    0.001  1      1        —           16     2e-4, 0.5  future / prior z
savp_gan \*_2019          100    0      0.1    0        10 (GAN)    16     2e-4, 0.5  all / posterior z, L1 posterior
savp_gan \*_2018          100    0      1      0        —           16     2e-4, 0.5  future / no encoder, L1 prior
savp_vae bair_\*          1      1e-3   0      0        —           32     1e-3, 0.9  as the era
savp_vae kth_\*           1      1e-5   0      0        —           32     1e-3, 0.9  as the era
savp_det \* (nz 0)        1      —      0      0        —           32     1e-3, 0.9  as the era, no latent
========================  =====  =====  =====  =======  ==========  =====  =========  ==============================

"frames scored": the 2019 code computes every loss and feeds the discriminators on all predicted frames 1…T−1
(the predictions of the context frames included); the paper-era code only on the future frames. "prior
context": in the 2019 code the prior path uses posterior samples for the transitions inside the context
(``z_t``, ``t < n_past − 1``), and :meth:`SAVP.predict` does the same from the context frames; the paper-era code
draws them from N(0, I) too. The batch size is the data module's (the configs set it).

Deviations and choices:

- ``savp_gan`` 2019 builds the encoder and puts L1 on the posterior path with no KL, as the 2019 code does (sheet
  §2.10 pitfall 9); the paper-era preset builds no encoder and puts L1 on the prior path (the paper's GAN-only
  ablation). The feature-matching weight of 2019 ``ours_gan`` compares the GAN discriminator's features.
- Flattening for the CDNA linear layer is NCHW (TF: NHWC), a fixed permutation of its weight rows; conv-LSTM
  instance norms are per gate (TF: one norm over the 4 stacked gates; the same function and parameters for instance
  norm). The z-LSTM is ``nn.LSTMCell`` with its forget-gate bias initialised to 1 (TF adds a constant forget bias
  1; PyTorch has two bias vectors, 4·nz more parameters). ``conv_pool2d`` is a SAME conv followed by 2×2 average
  pooling (TF folds the pool into the kernel: the same function).
- Spectral norm is PyTorch's (one power iteration per training forward, the estimate ``u`` updated every call);
  TF runs one iteration per graph use from the stored ``u`` and updates it once per step. The discriminators are
  called four times per iteration, so their ``u`` converges faster here; the normalised weight is the same once
  converged.
- The generator step reuses the generated videos of the discriminator step (TF recomputes the discriminators with
  the updated weights on the same generated tensors, as here); random clips are drawn again for the generator's
  losses, as the TF graph does for its copy.
- Both paths run as one batch of 2B clips (instance norm is per example, so this is exact).
- The deterministic variant (``savp_det``, nz = 0) returns ``num_samples`` identical copies of its prediction.
- Under bf16/float16 autocast (``--trainer.precision bf16-mixed``) the posterior's mean, log-variance and sample,
  the LSGAN terms and the feature distances stay float32 (TF trains in float32 throughout); the layers compute in
  half precision.
"""

from __future__ import annotations

import math
from typing import Any, Literal, Sequence

import torch
import torch.nn.functional as F
from lightning.pytorch.core.optimizer import LightningOptimizer
from torch import Tensor, nn

from vpzoo.models.base import VideoPredictionModel
from vpzoo.models.blocks import (
    CDNA,
    ConvLSTMCell,
    VideoSNDiscriminator,
    apply_image_kernels,
    composite_masks,
    float32_or_wider,
    gaussian_kl,
    tf_bilinear_upsample2x,
    truncated_normal_init,
)
from vpzoo.registry import register_model

__all__ = ["SAVPGenerator", "SAVPEncoder", "SAVP", "SAVPVAE", "SAVPGAN", "SAVPDeterministic", "PRESETS",
           "scheduled_sampling_probability"]

State = tuple[Tensor, Tensor]
LossFrames = Literal["all", "future"]

_ADVERSARIAL = dict(lr=2e-4, adam_betas=(0.5, 0.999), batch_size=16)
_L1_ONLY = dict(lr=1e-3, adam_betas=(0.9, 0.999), batch_size=32, gan_weight=0.0, vae_gan_weight=0.0,
                gan_feature_cdist_weight=0.0, vae_gan_feature_cdist_weight=0.0, l1_weight=1.0)
_ERA = {"2019": dict(loss_frames="all", prior_context_posterior=True),
        "2018": dict(loss_frames="future", prior_context_posterior=False)}
_NZ = {"bair": 8, "kth": 32}


def _preset(dataset: str, era: str, **weights: Any) -> dict[str, Any]:
    return {"nz": _NZ[dataset], "l2_weight": 0.0, "encoder": True, **_ERA[era], **weights}


#: The released hyperparameters of each variant (``hparams/{bair_action_free,kth}/ours_*/model_hparams.json`` at
#: the 2019 release ``df43be5`` and the paper-era commit ``961addf``). ``batch_size`` is informative (the data
#: module's); everything else is a constructor default of the variant.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "savp": {
        f"{d}_{era}": _preset(d, era, **_ADVERSARIAL, l1_weight=100.0, kl_weight=kl, gan_weight=gan,
                              vae_gan_weight=gan, gan_feature_cdist_weight=0.0,
                              vae_gan_feature_cdist_weight=10.0 if era == "2019" else 0.0)
        for d, era, kl, gan in (("bair", "2019", 1.0, 0.1), ("bair", "2018", 0.1, 1.0),
                                ("kth", "2019", 0.01, 0.1), ("kth", "2018", 0.001, 1.0))
    },
    "savp_gan": {
        f"{d}_{era}": _preset(d, era, **_ADVERSARIAL, l1_weight=100.0, kl_weight=0.0, gan_weight=gan,
                              vae_gan_weight=0.0, gan_feature_cdist_weight=10.0 if era == "2019" else 0.0,
                              vae_gan_feature_cdist_weight=0.0, encoder=era == "2019")
        for d in ("bair", "kth") for era, gan in (("2019", 0.1), ("2018", 1.0))
    },
    "savp_vae": {
        f"{d}_{era}": _preset(d, era, **_L1_ONLY, kl_weight=kl)
        for d, kl in (("bair", 1e-3), ("kth", 1e-5)) for era in ("2019", "2018")
    },
    "savp_det": {
        f"{d}_{era}": _preset(d, era, **_L1_ONLY, kl_weight=0.0, nz=0, encoder=False, prior_context_posterior=False)
        for d in ("bair", "kth") for era in ("2019", "2018")
    },
}

_OVERRIDABLE = ("nz", "l1_weight", "l2_weight", "kl_weight", "gan_weight", "vae_gan_weight",
                "gan_feature_cdist_weight", "vae_gan_feature_cdist_weight", "encoder", "loss_frames",
                "prior_context_posterior", "lr", "adam_betas")


def scheduled_sampling_probability(step: int, k: float | None) -> float:
    """Probability of feeding the ground truth after the context at ``step``: ``k / (k + exp(step / k))`` (inverse
    sigmoid), 0 once it falls below 0.001 (the official code then turns sampling off); ``k=None`` gives 0."""
    if k is None or step / k > 700:
        return 0.0
    p = k / (k + math.exp(step / k))
    return 0.0 if p < 0.001 else p


def _instance_norm(channels: int) -> nn.Module:
    return nn.InstanceNorm2d(channels, eps=1e-6, affine=True)


def _tile(z: Tensor | None, like: Tensor) -> list[Tensor]:
    """``[z (N, nz)]`` broadcast to ``like``'s spatial size as ``(N, nz, H, W)``, or ``[]`` without a latent."""
    if z is None:
        return []
    return [z[:, :, None, None].expand(-1, -1, *like.shape[-2:])]


def _layer_specs(image_size: int, ngf: int) -> tuple[list[tuple[int, bool]], list[tuple[int, bool]]]:
    """Encoder and decoder ``(channels, has_conv_lstm)`` of the official cell for 32/64/128-px frames."""
    if image_size >= 128:
        return ([(ngf, False), (ngf * 2, True), (ngf * 4, True), (ngf * 8, True)],
                [(ngf * 8, True), (ngf * 4, True), (ngf * 2, False), (ngf, False)])
    if image_size >= 64:
        return [(ngf, True), (ngf * 2, True), (ngf * 4, True)], [(ngf * 2, True), (ngf, True), (ngf, False)]
    if image_size >= 32:
        return [(ngf, True), (ngf * 2, True)], [(ngf, True), (ngf, False)]
    raise ValueError(f"SAVP's generator is built for frames of at least 32x32, got image_size={image_size}")


class SAVPGenerator(nn.Module):
    """SAVP's recurrent generator (the official ``SAVPCell``): one step per call, see :mod:`vpzoo.models.savp`.

    Args:
        channels: colour channels.
        image_size: frame size (32, 64 or 128; a multiple of ``2 ** stages``).
        nz: latent size (0: deterministic, no latent path).
        ngf: base width (32).
        num_kernels: CDNA kernels (4).
        kernel_size: CDNA kernel size (5).
    """

    def __init__(self, channels: int, image_size: int = 64, nz: int = 8, ngf: int = 32, num_kernels: int = 4,
                 kernel_size: int = 5) -> None:
        super().__init__()
        self.encoder_specs, self.decoder_specs = _layer_specs(image_size, ngf)
        stride = 2 ** len(self.encoder_specs)
        if image_size % stride:
            raise ValueError(f"image_size must be a multiple of {stride}, got {image_size}")
        self.channels, self.nz = channels, nz
        self.z_lstm = nn.LSTMCell(nz, nz) if nz > 0 else None
        gate_norm = _instance_norm
        self.down, self.up = nn.ModuleList(), nn.ModuleList()
        self.down_norms, self.up_norms = nn.ModuleList(), nn.ModuleList()
        self.lstms = nn.ModuleDict()
        c_in = 2 * channels  # [x_t, x_0]
        outputs: list[int] = []
        for i, (c, has_lstm) in enumerate(self.encoder_specs):
            k = 5 if i == 0 else 3
            self.down.append(nn.Conv2d(c_in + nz, c, k, padding=k // 2))
            self.down_norms.append(_instance_norm(c))
            if has_lstm:
                self.lstms[f"h{i}"] = ConvLSTMCell(c + nz, c, 5, 1.0, gate_norm=gate_norm)
            c_in = c
            outputs.append(c)
        n_enc = len(self.encoder_specs)
        for i, (c, has_lstm) in enumerate(self.decoder_specs):
            skip = outputs[n_enc - i - 1] if i > 0 else 0
            self.up.append(nn.Conv2d(c_in + skip + nz, c, 3, padding=1))
            self.up_norms.append(_instance_norm(c))
            if has_lstm:
                self.lstms[f"h{n_enc + i}"] = ConvLSTMCell(c + nz, c, 5, 1.0, gate_norm=gate_norm)
            c_in = c
        side = image_size // stride
        self.cdna = CDNA(self.encoder_specs[-1][0] * side * side, num_kernels, kernel_size, identity_offset=True,
                         padding="symmetric")
        self.num_candidates = num_kernels + 3  # CDNA images, x_t, x_0, scratch
        self.scratch = nn.Sequential(nn.Conv2d(c_in, ngf, 3, padding=1), _instance_norm(ngf), nn.ReLU(),
                                     nn.Conv2d(ngf, channels, 3, padding=1), nn.Sigmoid())
        self.mask_hidden = nn.Sequential(nn.Conv2d(c_in, ngf, 3, padding=1), _instance_norm(ngf), nn.ReLU())
        self.masks = nn.Conv2d(ngf + self.num_candidates * channels, self.num_candidates, 3, padding=1)
        self.apply(truncated_normal_init)
        if self.z_lstm is not None:
            with torch.no_grad():  # TF's LSTMCell adds forget_bias = 1 (gate order i, f, g, o in PyTorch)
                self.z_lstm.bias_ih.zero_()
                self.z_lstm.bias_hh.zero_()
                self.z_lstm.bias_ih[nz : 2 * nz] = 1.0

    def step(
        self, image: Tensor, first_image: Tensor, z: Tensor | None, state: dict[str, Any] | None = None
    ) -> tuple[Tensor, dict[str, Any], dict[str, Tensor]]:
        """One step: ``image (N, C, H, W)`` = x_t, ``first_image`` = x_0, ``z (N, nz)`` (None when nz = 0).

        Returns ``(x̂_{t+1}, new state, {"masks": (N, 7, H, W), "kernels": (N, 4, k, k)})``.
        """
        state = state or {}
        new_state: dict[str, Any] = {}
        if self.z_lstm is not None:
            if z is None:
                raise ValueError(f"this generator needs a latent z of size {self.nz} at every step")
            hz, cz = self.z_lstm(z, state.get("z"))
            new_state["z"] = (hz, cz)
        else:
            hz = None
        skips: list[Tensor] = []
        h = torch.cat([image, first_image], dim=1)
        n_enc = len(self.encoder_specs)
        for i, conv in enumerate(self.down):
            h = F.relu(self.down_norms[i](F.avg_pool2d(conv(torch.cat([h, *_tile(hz, h)], 1)), 2)))
            if f"h{i}" in self.lstms:
                h, new_state[f"h{i}"] = self.lstms[f"h{i}"](torch.cat([h, *_tile(hz, h)], 1), state.get(f"h{i}"))
            skips.append(h)
        bottleneck = h
        for i, conv in enumerate(self.up):
            parts = [h] if i == 0 else [h, skips[n_enc - i - 1]]
            up = tf_bilinear_upsample2x(torch.cat([*parts, *_tile(hz, h)], 1))
            h = F.relu(self.up_norms[i](conv(up)))
            name = f"h{n_enc + i}"
            if name in self.lstms:
                h, new_state[name] = self.lstms[name](torch.cat([h, *_tile(hz, h)], 1), state.get(name))
        kernels = self.cdna.kernels(bottleneck.flatten(1))
        moved = apply_image_kernels(image, kernels, self.cdna.padding)
        candidates = torch.cat([moved, image[:, None], first_image[:, None], self.scratch(h)[:, None]], dim=1)
        mask_logits = self.masks(torch.cat([self.mask_hidden(h), candidates.flatten(1, 2)], dim=1))
        out = composite_masks(mask_logits, candidates)
        return out, new_state, {"masks": torch.softmax(mask_logits, 1), "kernels": kernels}


class SAVPEncoder(nn.Module):
    """Posterior q(z_t | x_t, x_{t+1}): ``pairs (N, 2C, H, W)`` → ``(mu, logvar) (N, nz)``, log σ² in [−10, 10]."""

    def __init__(self, channels: int, nz: int, nef: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(2 * channels, nef, 4, 2, 1), nn.LeakyReLU(0.2)]
        c = nef
        for i in range(1, n_layers):
            c_out = nef * min(2**i, 4)
            layers += [nn.Conv2d(c, c_out, 4, 2, 1), _instance_norm(c_out), nn.LeakyReLU(0.2)]
            c = c_out
        self.trunk = nn.Sequential(*layers)
        self.mu = nn.Linear(c, nz)
        self.logvar = nn.Linear(c, nz)
        self.apply(truncated_normal_init)

    def forward(self, pairs: Tensor) -> tuple[Tensor, Tensor]:
        h = self.trunk(pairs).mean(dim=(-2, -1))
        return self.mu(h), self.logvar(h).clamp(-10.0, 10.0)


def _cosine_distance(a: Tensor, b: Tensor, eps: float = 1e-10) -> Tensor:
    """Mean over locations of ``|â − b̂|² / 2`` = ``1 − cos`` along the channel axis 1 (the official
    ``cosine_distance``, with ``eps`` added to the norms); in float32 at least (half-precision features under
    autocast are upcast first)."""
    a, b = float32_or_wider(a), float32_or_wider(b)
    a = a / (a.norm(dim=1, keepdim=True) + eps)
    b = b / (b.norm(dim=1, keepdim=True) + eps)
    return (a - b).pow(2).sum(1).mean() / 2.0


def _no_closure() -> None:
    return None


@register_model("savp")
class SAVP(VideoPredictionModel):
    """SAVP (Lee et al. 2018) and its ablations; see :mod:`vpzoo.models.savp` for the model and the presets.

    Defaults are the 2019 release's BAIR action-free settings (2 context frames, 10 predicted in training, RGB).

    Args:
        image_size, channels: frame format (64, 3).
        n_past: context frames (2 BAIR, 10 KTH, 5 SM-MNIST).
        n_future: frames predicted in training (10); training clips hold ``n_past + n_future`` frames.
        preset: the released hyperparameters to start from, ``"{bair,kth}_{2019,2018}"`` (see the table).
        nz, l1_weight, l2_weight, kl_weight, gan_weight, vae_gan_weight, gan_feature_cdist_weight,
            vae_gan_feature_cdist_weight, encoder, loss_frames, prior_context_posterior, lr, adam_betas: override
            the preset's value when given (None keeps it). ``encoder``: build the posterior encoder (the VAE path);
            ``loss_frames``: ``"all"`` predicted frames 1..T−1 or ``"future"`` only; ``prior_context_posterior``:
            posterior z for the context transitions on the prior path and in ``predict``.
        kl_anneal_steps: the KL weight rises linearly from 0 to ``kl_weight`` between these steps ((50k, 100k)).
        lr_decay_steps: the learning rate is constant until the first, then falls linearly to 0 at the second.
        scheduled_sampling_k: k of the inverse-sigmoid schedule (900); None always feeds predictions.
        clip_length: frames of the discriminators' random clips (10).
        ngf, nef, ndf: widths of the generator, encoder and discriminators (32, 64, 32; smaller only for tests).
        val_num_samples, metric_protocol, val_seed: see :class:`~vpzoo.models.base.VideoPredictionModel`.
    """

    variant = "savp"
    paper = {
        "title": "Stochastic Adversarial Video Prediction",
        "authors": "Alex X. Lee, Richard Zhang, Frederik Ebert, Pieter Abbeel, Chelsea Finn, Sergey Levine",
        "venue": "arXiv 2018",
        "arxiv": "1804.01523",
        "url": "https://arxiv.org/abs/1804.01523",
    }

    def __init__(
        self,
        image_size: int = 64,
        channels: int = 3,
        n_past: int = 2,
        n_future: int = 10,
        preset: str = "bair_2019",
        nz: int | None = None,
        l1_weight: float | None = None,
        l2_weight: float | None = None,
        kl_weight: float | None = None,
        gan_weight: float | None = None,
        vae_gan_weight: float | None = None,
        gan_feature_cdist_weight: float | None = None,
        vae_gan_feature_cdist_weight: float | None = None,
        encoder: bool | None = None,
        loss_frames: LossFrames | None = None,
        prior_context_posterior: bool | None = None,
        lr: float | None = None,
        adam_betas: tuple[float, float] | None = None,
        kl_anneal_steps: Sequence[int] = (50_000, 100_000),
        lr_decay_steps: Sequence[int] = (200_000, 300_000),
        scheduled_sampling_k: float | None = 900.0,
        clip_length: int = 10,
        ngf: int = 32,
        nef: int = 64,
        ndf: int = 32,
        val_num_samples: int = 5,
        metric_protocol: str = "standard",
        val_seed: int = 0,
    ) -> None:
        presets = PRESETS[self.variant]
        if preset not in presets:
            raise ValueError(f"unknown {self.variant} preset {preset!r}; expected one of {sorted(presets)}")
        cfg = dict(presets[preset])
        given = dict(nz=nz, l1_weight=l1_weight, l2_weight=l2_weight, kl_weight=kl_weight, gan_weight=gan_weight,
                     vae_gan_weight=vae_gan_weight, gan_feature_cdist_weight=gan_feature_cdist_weight,
                     vae_gan_feature_cdist_weight=vae_gan_feature_cdist_weight, encoder=encoder,
                     loss_frames=loss_frames, prior_context_posterior=prior_context_posterior, lr=lr,
                     adam_betas=adam_betas)
        cfg.update({k: v for k, v in given.items() if v is not None})
        cfg.pop("batch_size")
        cfg["adam_betas"] = tuple(float(b) for b in cfg["adam_betas"])
        super().__init__(
            image_size=image_size, channels=channels, n_past=n_past, n_future=n_future,
            val_num_samples=val_num_samples, metric_protocol=metric_protocol, val_seed=val_seed,
        )
        self.save_hyperparameters()
        self.automatic_optimization = False
        self._check_config(cfg, kl_anneal_steps, lr_decay_steps, scheduled_sampling_k, clip_length)
        self.cfg = cfg
        nz_ = cfg["nz"]
        self.generator = SAVPGenerator(channels, image_size, nz_, ngf)
        self.encoder = SAVPEncoder(channels, nz_, nef) if cfg["encoder"] else None
        self.discriminator = (VideoSNDiscriminator(channels, clip_length, image_size, ndf)
                              if cfg["gan_weight"] > 0 else None)
        self.vae_discriminator = (VideoSNDiscriminator(channels, clip_length, image_size, ndf)
                                  if cfg["vae_gan_weight"] > 0 else None)

    def _check_config(self, cfg: dict, kl_anneal_steps: Sequence[int], lr_decay_steps: Sequence[int],
                      k: float | None, clip_length: int) -> None:
        if not isinstance(cfg["nz"], int) or cfg["nz"] < 0:
            raise ValueError(f"nz must be an integer >= 0, got {cfg['nz']!r}")
        if (cfg["nz"] > 0) != self.stochastic:
            raise ValueError(f"{type(self).__name__} needs nz {'> 0' if self.stochastic else '= 0'}, got "
                             f"{cfg['nz']} (savp_det is the deterministic variant)")
        for name in ("l1_weight", "l2_weight", "kl_weight", "gan_weight", "vae_gan_weight",
                     "gan_feature_cdist_weight", "vae_gan_feature_cdist_weight", "lr"):
            if not cfg[name] >= 0:
                raise ValueError(f"{name} must be >= 0, got {cfg[name]}")
        if cfg["loss_frames"] not in ("all", "future"):
            raise ValueError(f"loss_frames must be 'all' or 'future', got {cfg['loss_frames']!r}")
        if cfg["nz"] == 0 and (cfg["encoder"] or cfg["kl_weight"] or cfg["vae_gan_weight"]):
            raise ValueError("nz = 0 (deterministic) leaves no latent: it needs encoder=False, kl_weight=0 and "
                             "vae_gan_weight=0")
        if not cfg["encoder"] and (cfg["kl_weight"] or cfg["vae_gan_weight"] or cfg["vae_gan_feature_cdist_weight"]):
            raise ValueError("kl_weight, vae_gan_weight and vae_gan_feature_cdist_weight act on the posterior path: "
                             "they need encoder=True")
        if cfg["gan_feature_cdist_weight"] and not cfg["gan_weight"]:
            raise ValueError("gan_feature_cdist_weight needs the GAN discriminator (gan_weight > 0)")
        if cfg["vae_gan_feature_cdist_weight"] and not cfg["vae_gan_weight"]:
            raise ValueError("vae_gan_feature_cdist_weight needs the VAE-GAN discriminator (vae_gan_weight > 0)")
        for name, steps in (("kl_anneal_steps", kl_anneal_steps), ("lr_decay_steps", lr_decay_steps)):
            if len(steps) != 2 or not 0 <= steps[0] <= steps[1]:
                raise ValueError(f"{name} must be (start, end) with 0 <= start <= end, got {tuple(steps)}")
        if k is not None and k <= 0:
            raise ValueError(f"scheduled_sampling_k must be > 0 or None, got {k}")
        scored = self.n_past + self.n_future - (1 if cfg["loss_frames"] == "all" else self.n_past)
        if (cfg["gan_weight"] or cfg["vae_gan_weight"]) and not 1 <= clip_length <= scored:
            raise ValueError(f"clip_length must lie in [1, {scored}] (the frames the discriminators see with "
                             f"loss_frames={cfg['loss_frames']!r}), got {clip_length}")

    # ------------------------------------------------------------------------------------------ schedules
    def kl_weight_at(self, step: int) -> float:
        """KL weight at ``step``: 0 before ``kl_anneal_steps[0]``, linear to ``kl_weight`` at ``kl_anneal_steps[1]``."""
        start, end = self.hparams.kl_anneal_steps
        if end == start:
            return float(self.cfg["kl_weight"]) * float(step >= start)
        return float(self.cfg["kl_weight"]) * (min(max(step, start), end) - start) / (end - start)

    def lr_factor_at(self, step: int) -> float:
        """Learning-rate multiplier: 1 until ``lr_decay_steps[0]``, linear to 0 at ``lr_decay_steps[1]``."""
        start, end = self.hparams.lr_decay_steps
        if step <= start:
            return 1.0
        return 0.0 if end == start else max(0.0, 1.0 - (step - start) / (end - start))

    # ------------------------------------------------------------------------------------------ generation
    def _check_batch(self, x: Tensor) -> None:
        expected = (self.n_past + self.n_future, self.channels, self.image_size, self.image_size)
        if not isinstance(x, Tensor) or x.ndim != 5 or tuple(x.shape[1:]) != expected:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"SAVP trains on clips of shape (B, {', '.join(map(str, expected))}) (n_past + n_future "
                             f"frames), got {shape}")

    def unroll(self, x: Tensor, z: Tensor | None, ground_truth_prob: float) -> dict[str, Tensor]:
        """Roll the generator over ``x (N, T, C, H, W)`` with latents ``z (N, T-1, nz)``.

        Input at step t is ``x_t`` for ``t < n_past``, afterwards ``x_t`` with probability ``ground_truth_prob``
        (per example and step) else the previous prediction. Returns ``frames (N, T-1, C, H, W)`` (predictions of
        x_1 … x_{T-1}), ``masks (N, T-1, 7, H, W)`` and ``kernels (N, T-1, 4, k, k)``.
        """
        n, t = x.shape[:2]
        first = x[:, 0]
        state = None
        frames, masks, kernels = [], [], []
        pred = None
        for i in range(t - 1):
            image = x[:, i]
            if i >= self.n_past:
                if ground_truth_prob <= 0.0:
                    image = pred
                else:
                    use_gt = torch.rand(n, device=x.device) < ground_truth_prob
                    image = torch.where(use_gt[:, None, None, None], image, pred)
            pred, state, extra = self.generator.step(image, first, None if z is None else z[:, i], state)
            frames.append(pred)
            masks.append(extra["masks"])
            kernels.append(extra["kernels"])
        return {"frames": torch.stack(frames, 1), "masks": torch.stack(masks, 1), "kernels": torch.stack(kernels, 1)}

    def forward_generator(self, x: Tensor, step: int) -> dict[str, Tensor]:
        """Both training paths on clips ``x (B, T, C, H, W)`` at ``step``.

        Returns ``post`` (posterior path, ``(B, T-1, C, H, W)``; absent without an encoder), ``prior`` (prior path;
        for nz = 0 the only path), ``mu``, ``logvar`` ``(B, T-1, nz)`` when there is an encoder.
        """
        b, t = x.shape[:2]
        nz = self.cfg["nz"]
        p_gt = scheduled_sampling_probability(step, self.hparams.scheduled_sampling_k)
        out: dict[str, Tensor] = {}
        if nz == 0:
            out["prior"] = self.unroll(x, None, p_gt)["frames"]
            return out
        z_prior = torch.randn(b, t - 1, nz, device=x.device, dtype=x.dtype)
        if self.encoder is None:
            out["prior"] = self.unroll(x, z_prior, p_gt)["frames"]
            return out
        pairs = torch.cat([x[:, :-1], x[:, 1:]], dim=2).flatten(0, 1)
        # the posterior in float32 under autocast (its noise then comes from the same random stream as in float32)
        mu, logvar = (float32_or_wider(v.view(b, t - 1, nz)) for v in self.encoder(pairs))
        z_post = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        if self.cfg["prior_context_posterior"]:
            z_prior = torch.cat([z_post[:, : self.n_past - 1], z_prior[:, self.n_past - 1 :]], dim=1)
        frames = self.unroll(torch.cat([x, x]), torch.cat([z_post, z_prior]), p_gt)["frames"]
        out.update(post=frames[:b], prior=frames[b:], mu=mu, logvar=logvar)
        return out

    def scored(self, frames: Tensor) -> Tensor:
        """The generated frames ``(B, T-1, ...)`` that losses and discriminators see (``loss_frames``)."""
        return frames if self.cfg["loss_frames"] == "all" else frames[:, self.n_past - 1 :]

    def targets(self, x: Tensor) -> Tensor:
        """The real frames matching :meth:`scored`: ``x[:, 1:]`` or ``x[:, n_past:]``."""
        return x[:, 1:] if self.cfg["loss_frames"] == "all" else x[:, self.n_past :]

    def random_clip(self, video: Tensor) -> Tensor:
        """A random ``clip_length``-frame window of each video ``(B, T, C, H, W)`` (start drawn per example)."""
        b, t = video.shape[:2]
        length = self.hparams.clip_length
        start = torch.randint(0, t - length + 1, (b,), device=video.device)
        index = start[:, None] + torch.arange(length, device=video.device)
        return video[torch.arange(b, device=video.device)[:, None], index]

    # ------------------------------------------------------------------------------------------ losses
    def _pairs(self) -> list[tuple[str, nn.Module, str, float, float]]:
        """``(name, discriminator, path, gan weight, feature weight)`` of the discriminators in use."""
        pairs = []
        if self.discriminator is not None:
            pairs.append(("gan", self.discriminator, "prior", self.cfg["gan_weight"],
                          self.cfg["gan_feature_cdist_weight"]))
        if self.vae_discriminator is not None:
            pairs.append(("vae_gan", self.vae_discriminator, "post", self.cfg["vae_gan_weight"],
                          self.cfg["vae_gan_feature_cdist_weight"]))
        return pairs

    def discriminator_losses(self, x: Tensor, gen: dict[str, Tensor]) -> dict[str, Tensor]:
        """The discriminators' weighted LSGAN loss ``loss`` on real clips and detached generated ones, and its parts."""
        real = self.targets(x)
        out: dict[str, Tensor] = {}
        total = x.new_zeros(())
        for name, disc, path, weight, _ in self._pairs():
            _, logits_real = disc(self.random_clip(real))
            _, logits_fake = disc(self.random_clip(self.scored(gen[path].detach())))
            logits_real, logits_fake = float32_or_wider(logits_real), float32_or_wider(logits_fake)
            loss = (logits_real - 1).pow(2).mean() + logits_fake.pow(2).mean()
            out[f"d_{name}"] = loss
            total = total + weight * loss
        out["loss"] = total
        return out

    def generator_losses(self, x: Tensor, gen: dict[str, Tensor], step: int) -> dict[str, Tensor]:
        """The generator+encoder's weighted loss ``loss`` at ``step`` and its parts (unweighted)."""
        cfg = self.cfg
        recon = gen.get("post", gen["prior"])
        target = self.targets(x)
        out: dict[str, Tensor] = {}
        total = x.new_zeros(())
        if cfg["l1_weight"]:
            out["l1"] = (self.scored(recon) - target).abs().mean()
            total = total + cfg["l1_weight"] * out["l1"]
        if cfg["l2_weight"]:
            out["l2"] = (self.scored(recon) - target).pow(2).mean()
            total = total + cfg["l2_weight"] * out["l2"]
        if "mu" in gen:
            mu, logvar = gen["mu"], gen["logvar"]
            out["kl"] = gaussian_kl(mu, logvar, torch.zeros_like(mu), torch.zeros_like(logvar)).sum(-1).mean()
            kl_weight = self.kl_weight_at(step)
            if kl_weight:
                total = total + kl_weight * out["kl"]
        for name, disc, path, weight, feature_weight in self._pairs():
            features_fake, logits_fake = disc(self.random_clip(self.scored(gen[path])))
            out[f"g_{name}"] = (float32_or_wider(logits_fake) - 1).pow(2).mean()
            total = total + weight * out[f"g_{name}"]
            if feature_weight:
                features_real, _ = disc(self.random_clip(target))
                out[f"{name}_feature_cdist"] = sum(
                    _cosine_distance(f, r.detach()) for f, r in zip(features_fake, features_real)
                )
                total = total + feature_weight * out[f"{name}_feature_cdist"]
        out["loss"] = total
        return out

    # ------------------------------------------------------------------------------------------ training
    def _step_optimizer(self, optimizer: Any, loss: Tensor, counted: bool) -> None:
        optimizer.zero_grad(set_to_none=True)
        if self._trainer is not None:
            self.manual_backward(loss)
        else:
            loss.backward()
        if not counted and isinstance(optimizer, LightningOptimizer):
            # Lightning counts every LightningOptimizer.step() as a global step: the discriminators' step goes
            # through the strategy (same precision plugin) so that global_step counts iterations (as DRNet).
            self.trainer.strategy.optimizer_step(optimizer.optimizer, _no_closure)
        else:
            optimizer.step()

    def training_iteration(self, x: Tensor, opt_g: Any, opt_d: Any | None, step: int) -> dict[str, Tensor]:
        """One official iteration on clips ``x``: the discriminators' step on the generated videos, then the
        generator+encoder's step against the updated discriminators. Returns detached logs."""
        self._check_batch(x)
        gen = self.forward_generator(x, step)
        logs: dict[str, Tensor] = {}
        if opt_d is not None:
            d = self.discriminator_losses(x, gen)
            self._step_optimizer(opt_d, d["loss"], counted=False)
            logs.update({f"train/{k}": v.detach() for k, v in d.items() if k != "loss"})
            logs["train/d_loss"] = d["loss"].detach()
        g = self.generator_losses(x, gen, step)
        self._step_optimizer(opt_g, self._require_finite(g["loss"]), counted=True)
        logs.update({f"train/{k}": v.detach() for k, v in g.items()})
        return logs

    def training_step(self, batch: Tensor, batch_idx: int) -> None:
        optimizers = self.optimizers()
        optimizers = optimizers if isinstance(optimizers, list) else [optimizers]
        opt_g, opt_d = optimizers[0], (optimizers[1] if len(optimizers) > 1 else None)
        step = int(self.global_step)
        logs = self.training_iteration(batch, opt_g, opt_d, step)
        schedulers = self.lr_schedulers()
        for scheduler in schedulers if isinstance(schedulers, list) else [schedulers]:
            scheduler.step()
        logs["train/kl_weight"] = torch.tensor(self.kl_weight_at(step))
        logs["train/gt_prob"] = torch.tensor(scheduled_sampling_probability(step, self.hparams.scheduled_sampling_k))
        loss = logs.pop("train/loss")
        self.log_dict(logs, prog_bar=False, batch_size=batch.shape[0])
        self.log("train/loss", loss, prog_bar=True, batch_size=batch.shape[0])

    def discriminator_parameters(self) -> list[nn.Parameter]:
        return [p for d in (self.discriminator, self.vae_discriminator) if d is not None for p in d.parameters()]

    def generator_parameters(self) -> list[nn.Parameter]:
        modules = [self.generator] + ([self.encoder] if self.encoder is not None else [])
        return [p for m in modules for p in m.parameters()]

    def configure_optimizers(self) -> Any:
        """Adam for generator + encoder and, when there are discriminators, Adam for both discriminators; the same
        learning-rate schedule on each (stepped once per iteration)."""
        betas, lr = self.cfg["adam_betas"], self.cfg["lr"]
        optimizers = [torch.optim.Adam(self.generator_parameters(), lr=lr, betas=betas, eps=1e-8)]
        if self.discriminator_parameters():
            optimizers.append(torch.optim.Adam(self.discriminator_parameters(), lr=lr, betas=betas, eps=1e-8))
        schedulers = [torch.optim.lr_scheduler.LambdaLR(o, self.lr_factor_at) for o in optimizers]
        return optimizers, schedulers

    def setup(self, stage: str) -> None:
        if stage == "fit" and self.discriminator_parameters():
            self.allow_unused_parameters_under_ddp("the discriminators' loss does not reach the generator")

    # ------------------------------------------------------------------------------------------ sampling
    def sample_future(self, context: Tensor, n_future: int, num_samples: int, generator: torch.Generator) -> Tensor:
        """Samples ``(B, N, n_future, C, H, W)``: z ~ N(0, I) for every transition after the context; for the
        context transitions posterior samples when ``prior_context_posterior`` (the 2019 code), else N(0, I)."""
        b, t_ctx = context.shape[:2]
        nz = self.cfg["nz"]
        n = num_samples if nz > 0 else 1
        x = context.repeat_interleave(n, dim=0)  # sample-major within each clip
        total = t_ctx - 1 + n_future
        z = None
        if nz > 0:
            z = torch.randn(b * n, total, nz, generator=generator, device=context.device, dtype=context.dtype)
            if self.encoder is not None and self.cfg["prior_context_posterior"] and t_ctx > 1:
                pairs = torch.cat([context[:, :-1], context[:, 1:]], dim=2).flatten(0, 1)
                mu, logvar = (v.view(b, t_ctx - 1, nz).repeat_interleave(n, 0) for v in self.encoder(pairs))
                z[:, : t_ctx - 1] = mu + z[:, : t_ctx - 1] * (0.5 * logvar).exp()
        first, state, pred = x[:, 0], None, None
        frames = []
        for i in range(total):
            image = x[:, i] if i < t_ctx else pred
            pred, state, _ = self.generator.step(image, first, None if z is None else z[:, i], state)
            if i >= t_ctx - 1:
                frames.append(pred)
        out = torch.stack(frames, 1).clamp_(0.0, 1.0).view(b, n, n_future, *context.shape[2:])
        return out if n == num_samples else out.expand(b, num_samples, *out.shape[2:]).clone()


@register_model("savp_vae")
class SAVPVAE(SAVP):
    """SAVP-VAE (``ours_vae_l1``): L1 + KL on the posterior path; no discriminator."""

    variant = "savp_vae"


@register_model("savp_gan")
class SAVPGAN(SAVP):
    """SAVP-GAN (``ours_gan``): L1 + GAN (prior path); no KL, no VAE-GAN discriminator."""

    variant = "savp_gan"


@register_model("savp_det")
class SAVPDeterministic(SAVP):
    """Deterministic SAVP generator (``ours_deterministic_l1``): nz = 0, L1 only."""

    variant = "savp_det"
    stochastic = False
