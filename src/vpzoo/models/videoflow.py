"""VideoFlow: a flow-based video prediction model with exact likelihoods.

Paper: Manoj Kumar, Mohammad Babaeizadeh, Dumitru Erhan, Chelsea Finn, Sergey Levine, Laurent Dinh, Durk Kingma,
"VideoFlow: A Conditional Flow-Based Model for Stochastic Video Generation", ICLR 2020, arXiv:1903.01434.
Official code: tensorflow/tensor2tensor, ``models/video/next_frame_glow.py`` and ``models/research/glow_ops.py``
(TensorFlow 1; read for facts, nothing copied). Sheet ``models-videoflow-savp-sv2p.md`` §1.

The model, as the official code builds it:

- **Per-frame flow** (shared by every frame): dequantisation ``x - 0.5 + U(0, 1/256)`` with its constant
  ``-HWC·ln 256``; ``n_levels`` (L = 3) levels of squeeze → ``depth`` (K = 24) Glow steps (ActNorm with
  data-dependent init and log-scale factor 3, LU 1×1 convolution, affine or additive coupling whose network is the
  edge-bias padded conv stack with a zero-initialised output conv, ReLU or the gated unit) → split (except at the
  top): the second half of the channels is the level's latent ``z^(l)``, the first half goes on. The layers are in
  :mod:`vpzoo.models.blocks.flows`.
- **Priors**. Unconditional (frames with fewer than ``num_cond_latents`` predecessors): a level's latent is
  ``N(μ, σ)`` with ``(μ, log σ)`` = a zero-init 3×3 conv of the kept half ``x1`` ("level prior"); the top latent's
  prior is a zero-init conv of zeros (a learned, spatially varying Gaussian, N(0, 1) at init). Conditional
  ("conv3d_net"): per level, a causal 3-D residual network (``latent_encoder_depth`` = 5 blocks, each the sum of
  dilated branches: causal 2×3×3 conv + per-step ActNorm + ReLU, the gated unit, a zero-init 2×3×3 conv; spatial
  dilations 1, 2, 4 where ``3 + 2·rate`` fits the latent width) over the previous ``num_cond_latents`` (3) frames'
  latents of the level, each concatenated with the level prior's mean of the current frame (the coarser levels'
  information); the top level sees only the previous top latents. The last time step goes through a zero-init 1×1
  conv to ``(μ, log σ)``; with ``latent_skip`` μ ← μ + z_{t−1}. Conditioning latents are not detached.
- **Objective**: bits per dimension, ``-Σ log p(x_t | x_<t) / (ln 2 · H·W·C · n_scored)``, summed over the scored
  frames only (the frames after the ``n_past`` inputs), per clip, averaged over the batch. Training draws a random
  ``num_train_frames``-frame patch of each clip (4: 3 inputs, 1 scored). Adam (β = 0.85, 0.997, ε = 1e-6, the t2t
  defaults), ``lr·min(1, step / warmup_steps)`` (t2t "constant*linear_warmup"; the first update has rate 0), no
  weight decay, no clipping. ActNorm's data-dependent init runs once before the first step on
  ``init_batch_size`` training patches (t2t's init batch; split over the processes under DDP, statistics averaged).
- **Sampling**: the context frames are encoded (their latents are the history); for each new frame the top latent is
  drawn from its conditional prior, then the flow runs in reverse and each split draws its latent from its
  conditional prior given the partial reconstruction; the new latents join the history (generated frames are never
  re-encoded). ``temperature`` multiplies every prior σ (``predict(..., temperature=0.5)``; 0 gives the means; the
  default is the model's ``temperature``: 1.0, 0.5 in the qualitative BAIR preset). Frames are quantised to the 8-bit
  grid as t2t's ``postprocess``.
- **Likelihoods**: :meth:`VideoFlow.log_likelihood` (per frame, nats) and :meth:`VideoFlow.bits_per_dim` (the
  paper's unit over the target frames) of a user's clip, one dequantisation-noise draw (seeded).

Presets (:data:`VIDEOFLOW_PRESETS`, :meth:`VideoFlow.from_preset`): ``bair_quant`` (t2t ``next_frame_glow_bair_quant``,
the 1.87 bits/dim model), ``bair_qual`` (additive coupling, width 392, temperature 0.5) and ``shapes`` (1 input,
2 targets, 1 conditioning latent, additive, prior depth 10, no latent skip, lr 1e-4). Parameters: bair_quant
67,493,660 (flow 52,409,664 + priors 15,083,996; sheet ≈67M = 52.4M + 15.1M), bair_qual 44,909,708 (sheet ≈45M =
29.8M + 15.1M), shapes 68,021,188 (not on the sheet). The LU factors count as t2t stores them: full C×C variables
of which a triangle is used.

Deviations and options:

- **Batching.** The flow does not depend on the priors, so all ``B·T`` frames of a clip batch go through it in one
  call and the priors of all scored frames are then evaluated together (t2t loops over frames; same numbers).
- **Unconditional priors are not trained by the published recipe**: only frames with ``n_past`` predecessors are
  scored, and with ``num_cond_latents <= n_past`` every one of them is conditioned. The top prior of zeros gets no
  gradient (t2t the same); under DDP the model turns on ``find_unused_parameters`` for it. Per-frame likelihoods of
  the first ``num_cond_latents`` frames of a clip (:meth:`log_likelihood`) use these priors.
- **Memory**: ``checkpointing=True`` recomputes each flow step in the backward pass (``torch.utils.checkpoint``;
  t2t has no recomputation). ``--trainer.precision bf16-mixed`` is safe: the coupling and prior networks run in
  bf16 under autocast, while the coupling transforms, the 1×1 convolutions (float32, W re-derived from LU every
  step), ActNorm, log-determinants and Gaussian log-densities stay float32.
- **Random patches** are drawn with torch's global generator (seeded by ``seed_everything``); the init batch is the
  first training batches (the t2t init batch is drawn from the training data too). The data-dependent init pools
  the ``B·T`` frames of the init patches for the flow's ActNorms (the flow is shared by every frame); the prior
  networks' ActNorms see the conditioned frames' inputs.
- **Likelihoods are single-draw estimates**: like t2t's evaluation, bits/dim use one draw of the dequantisation
  noise (a stochastic estimate of the bound on the discrete likelihood), seeded in :meth:`VideoFlow.log_likelihood`,
  :meth:`VideoFlow.bits_per_dim` and validation.
"""

from __future__ import annotations

import math
from typing import Any, Literal, Optional, Sequence

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from vpzoo.models.base import VideoPredictionModel
from vpzoo.models.blocks import (
    ActNorm,
    ConvStack,
    FlowStep,
    ZeroConv,
    data_dependent_init,
    dequantize,
    gaussian_log_prob,
    postprocess,
    split_mean_log_scale,
    squeeze2d,
    unsqueeze2d,
)
from vpzoo.registry import register_model

__all__ = ["VideoFlow", "TemporalLatentPrior", "VIDEOFLOW_PRESETS"]

_BAIR_QUANT: dict[str, Any] = dict(
    image_size=64, channels=3, n_past=3, n_future=10, n_levels=3, depth=24, coupling="affine", coupling_width=512,
    activation="gatu", num_cond_latents=3, latent_encoder_width=256, latent_encoder_depth=5,
    latent_activation="gatu", latent_apply_dilations=True, latent_dilation_rates=(1, 3), latent_skip=True,
    num_train_frames=4, lr=3e-4, warmup_steps=10000, init_batch_size=128, temperature=1.0,
)
#: The published hyperparameter sets of t2t (``next_frame_glow_bair_quant``, ``_bair_qual``, ``_shapes``) as
#: constructor keywords. The batch sizes (5, 5, 10; per replica in t2t) belong to the data configs.
VIDEOFLOW_PRESETS: dict[str, dict[str, Any]] = {
    "bair_quant": _BAIR_QUANT,
    "bair_qual": {**_BAIR_QUANT, "coupling": "additive", "coupling_width": 392, "temperature": 0.5},
    "shapes": {**_BAIR_QUANT, "n_past": 1, "n_future": 2, "num_train_frames": 2, "num_cond_latents": 1,
               "coupling": "additive", "coupling_width": 512, "latent_encoder_depth": 10, "latent_skip": False,
               "lr": 1e-4},
}

_LN2 = math.log(2.0)


class TemporalLatentPrior(nn.Module):
    """t2t ``temporal_latent_to_dist``: a causal 3-D residual network over the latents of the previous frames.

    Args:
        in_channels: channels of the input per time step (the residual width).
        out_channels: channels of the predicted Gaussian.
        width: ``latent_encoder_width`` (256).
        depth: residual blocks (``latent_encoder_depth``, 5).
        steps: time steps of the input (``num_cond_latents``, 3); the time kernel is 2, or 1 when ``steps == 1``.
        spatial_width: width of the latent; a dilation rate r is used only where ``3 + 2r <= spatial_width``.
        activation: "relu" or "gatu".
        dilation_rates: ``latent_dilation_rates`` ([1, 3] → spatial dilations 2 and 4 besides the undilated branch);
            empty for one undilated branch per block.

    ``forward(x)`` with ``x (N, in_channels, T, H, W)`` returns ``(mean, log_scale)``, each
    ``(N, out_channels, H, W)``, from the last time step.
    """

    def __init__(self, in_channels: int, out_channels: int, width: int, depth: int, steps: int, spatial_width: int,
                 activation: Literal["relu", "gatu"] = "gatu", dilation_rates: Sequence[int] = (1, 3)) -> None:
        super().__init__()
        self.steps = steps
        dilations = [1] + [rate + 1 for rate in dilation_rates if 3 + 2 * rate <= spatial_width]
        time_kernel = 2 if steps > 1 else 1
        self.blocks = nn.ModuleList(
            nn.ModuleList(ConvStack(in_channels, width, in_channels, activation, time_kernel=time_kernel,
                                    dilation=d, steps=steps) for d in dilations)
            for _ in range(depth)
        )
        self.out = ZeroConv(in_channels, 2 * out_channels, (1, 1))

    def features(self, x: Tensor) -> Tensor:
        """The residual features of every time step, ``(N, in_channels, T, H, W)`` (causal in T)."""
        h = x
        for branches in self.blocks:
            h = h + sum(branch(h) for branch in branches)
        return h

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return split_mean_log_scale(self.out(self.features(x)[:, :, -1]))


@register_model("videoflow")
class VideoFlow(VideoPredictionModel):
    """VideoFlow (Kumar et al., ICLR 2020). See :mod:`vpzoo.models.videoflow`; defaults are t2t's
    ``next_frame_glow_bair_quant`` (≈67M parameters).

    Args:
        image_size, channels: frame size and channels (H = W divisible by ``2**n_levels``).
        n_past: input frames (``video_num_input_frames``: 3 BAIR, 1 shapes); only later frames are scored.
        n_future: target frames of evaluation clips (10 BAIR).
        n_levels: flow levels L (3).
        depth: flow steps K per level (24 in every published config).
        coupling: "affine" (bair_quant) or "additive" (bair_qual, shapes).
        coupling_width: width of the coupling networks (512; 392 in bair_qual).
        activation: "gatu" (published) or "relu" in the coupling networks.
        num_cond_latents: previous frames the latent prior conditions on (3 BAIR, 1 shapes).
        latent_encoder_width, latent_encoder_depth, latent_activation: the 3-D prior network (256, 5, "gatu").
        latent_apply_dilations, latent_dilation_rates: the dilated branches (True, [1, 3]).
        latent_skip: μ ← μ + z_{t−1} (True; False in shapes).
        num_train_frames: frames of the random training patch (4 BAIR, 2 shapes).
        n_bits: bits per pixel of the data (8).
        lr: the constant learning rate (3e-4; 1e-4 shapes).
        warmup_steps: linear warm-up steps (10000; 0 for none).
        adam_betas, adam_eps: Adam's (0.85, 0.997) and 1e-6 (t2t defaults).
        init_batch_size: training patches of the data-dependent ActNorm init (128).
        temperature: default sampling temperature (1.0; 0.5 in bair_qual).
        checkpointing: recompute each flow step in the backward pass (saves activation memory).
        val_num_samples, metric_protocol, val_seed: see :class:`~vpzoo.models.base.VideoPredictionModel`.
    """

    predict_options = {
        "temperature": "multiplies the σ of every prior (a real number >= 0; 0 returns the means; default: the "
                       "model's temperature, 1.0, or 0.5 for the bair_qual preset)",
    }
    paper = {
        "title": "VideoFlow: A Conditional Flow-Based Model for Stochastic Video Generation",
        "authors": "Manoj Kumar, Mohammad Babaeizadeh, Dumitru Erhan, Chelsea Finn, Sergey Levine, Laurent Dinh, "
                   "Durk Kingma",
        "venue": "ICLR 2020",
        "arxiv": "1903.01434",
        "url": "https://arxiv.org/abs/1903.01434",
    }

    def __init__(
        self,
        image_size: int = 64,
        channels: int = 3,
        n_past: int = 3,
        n_future: int = 10,
        n_levels: int = 3,
        depth: int = 24,
        coupling: Literal["affine", "additive"] = "affine",
        coupling_width: int = 512,
        activation: Literal["relu", "gatu"] = "gatu",
        num_cond_latents: int = 3,
        latent_encoder_width: int = 256,
        latent_encoder_depth: int = 5,
        latent_activation: Literal["relu", "gatu"] = "gatu",
        latent_apply_dilations: bool = True,
        latent_dilation_rates: Sequence[int] = (1, 3),
        latent_skip: bool = True,
        num_train_frames: int = 4,
        n_bits: int = 8,
        lr: float = 3e-4,
        warmup_steps: int = 10000,
        adam_betas: Sequence[float] = (0.85, 0.997),
        adam_eps: float = 1e-6,
        init_batch_size: int = 128,
        temperature: float = 1.0,
        checkpointing: bool = False,
        val_num_samples: int = 1,
        metric_protocol: str = "standard",
        val_seed: int = 0,
    ) -> None:
        super().__init__(
            image_size=image_size, channels=channels, n_past=n_past, n_future=n_future,
            val_num_samples=val_num_samples, metric_protocol=metric_protocol, val_seed=val_seed,
        )
        self.save_hyperparameters()
        for name, value, low in (("n_levels", n_levels, 1), ("depth", depth, 1), ("coupling_width", coupling_width, 1),
                                 ("num_cond_latents", num_cond_latents, 1), ("n_bits", n_bits, 1),
                                 ("latent_encoder_width", latent_encoder_width, 1),
                                 ("latent_encoder_depth", latent_encoder_depth, 0), ("warmup_steps", warmup_steps, 0),
                                 ("init_batch_size", init_batch_size, 1)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if image_size % 2**n_levels:
            raise ValueError(f"image_size must be divisible by 2**n_levels = {2**n_levels}, got {image_size}")
        if not isinstance(num_train_frames, int) or num_train_frames <= n_past:
            raise ValueError(f"num_train_frames must be an integer > n_past={n_past} (at least one scored frame), "
                             f"got {num_train_frames!r}")
        if coupling not in ("affine", "additive"):
            raise ValueError(f"coupling must be 'affine' or 'additive', got {coupling!r}")
        if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature >= 0):
            raise ValueError(f"temperature must be a finite number >= 0, got {temperature!r}")
        self.n_levels = n_levels
        self.num_cond_latents = num_cond_latents
        self.latent_skip = latent_skip
        self.checkpointing = checkpointing
        rates = tuple(latent_dilation_rates) if latent_apply_dilations else ()

        self.levels = nn.ModuleList()
        self.level_priors = nn.ModuleList()
        self.temporal_priors = nn.ModuleList()
        c = channels
        for level in range(n_levels):
            c *= 4
            size = image_size // 2 ** (level + 1)
            self.levels.append(nn.ModuleList(FlowStep(c, coupling_width, coupling, activation) for _ in range(depth)))
            if level < n_levels - 1:
                half = c // 2
                self.level_priors.append(ZeroConv(half, 2 * half))
                self.temporal_priors.append(TemporalLatentPrior(
                    2 * half, half, latent_encoder_width, latent_encoder_depth, num_cond_latents, size,
                    latent_activation, rates))
                c = half
        self.top_channels, self.top_size = c, image_size // 2**n_levels
        self.top_prior = ZeroConv(c, 2 * c)
        self.top_temporal_prior = TemporalLatentPrior(
            c, c, latent_encoder_width, latent_encoder_depth, num_cond_latents, self.top_size, latent_activation,
            rates)

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> "VideoFlow":
        """A model with the hyperparameters of a published t2t set (:data:`VIDEOFLOW_PRESETS`), ``overrides``
        applied on top."""
        if name not in VIDEOFLOW_PRESETS:
            raise ValueError(f"unknown VideoFlow preset {name!r}; presets: {', '.join(VIDEOFLOW_PRESETS)}")
        return cls(**{**VIDEOFLOW_PRESETS[name], **overrides})

    # ------------------------------------------------------------------------------------------- the flow
    def _run_step(self, step: FlowStep, h: Tensor) -> tuple[Tensor, Tensor]:
        if self.checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(step, h, use_reentrant=False)
        return step(h)

    def encode(self, frames: Tensor, noise: Optional[Tensor] = None, generator: Optional[torch.Generator] = None
               ) -> tuple[Tensor, list[Tensor], list[Tensor]]:
        """The flow of frames ``(N, C, H, W)`` in [0, 1] (dequantised with ``noise`` or fresh uniform noise).

        Returns ``(logdet, kept, latents)``: ``logdet (N,)`` holds the dequantisation constant and every layer's
        log-determinant; ``kept[l]`` is the half ``x1`` the split of level ``l < L-1`` keeps, ``(N, C_l, h_l, w_l)``;
        ``latents[l]`` is ``z^(l)`` (the factored-out half; the last entry is the top latent).
        """
        h, logdet = dequantize(frames, self.hparams.n_bits, noise, generator)
        kept, latents = [], []
        for level, steps in enumerate(self.levels):
            h = squeeze2d(h)
            for step in steps:
                h, step_logdet = self._run_step(step, h)
                logdet = logdet + step_logdet
            if level < self.n_levels - 1:
                h, z = h.chunk(2, dim=1)
                kept.append(h)
                latents.append(z)
        latents.append(h)
        return logdet, kept, latents

    def level_prior(self, level: int, kept: Tensor, history: Optional[Tensor]) -> tuple[Tensor, Tensor]:
        """``(mean, log_scale)`` of ``z^(level)`` given the kept half ``kept (N, C, h, w)`` of the same frame and the
        level's latents of the previous frames ``history (N, num_cond_latents, C, h, w)`` (None: unconditional)."""
        mean, log_scale = split_mean_log_scale(self.level_priors[level](kept))
        if history is None:
            return mean, log_scale
        steps = history.shape[1]
        stacked = torch.cat([history, mean[:, None].expand(-1, steps, -1, -1, -1)], dim=2).transpose(1, 2)
        cond_mean, cond_log_scale = self.temporal_priors[level](stacked)
        if self.latent_skip:
            cond_mean = cond_mean + history[:, -1]
        return cond_mean, cond_log_scale

    def top_latent_prior(self, n: int, history: Optional[Tensor]) -> tuple[Tensor, Tensor]:
        """``(mean, log_scale)`` of the top latent, ``(n, C_top, h, w)``, given the previous frames' top latents
        ``history (n, num_cond_latents, C_top, h, w)`` (None: the unconditional prior, a zero-init conv of zeros)."""
        if history is None:
            weight = self.top_prior.bias
            zeros = weight.new_zeros(1, self.top_channels, self.top_size, self.top_size)
            mean, log_scale = split_mean_log_scale(self.top_prior(zeros))
            return mean.expand(n, -1, -1, -1), log_scale.expand(n, -1, -1, -1)
        mean, log_scale = self.top_temporal_prior(history.transpose(1, 2))
        if self.latent_skip:
            mean = mean + history[:, -1]
        return mean, log_scale

    def frame_log_probs(self, clips: Tensor, scored: Sequence[int], noise: Optional[Tensor] = None,
                        generator: Optional[torch.Generator] = None) -> Tensor:
        """``log p(x_t | x_<t)`` in nats of the frames ``scored`` of ``clips (B, T, C, H, W)`` in [0, 1], ``(B, S)``.

        Frame ``t`` is conditioned on the latents of frames ``t - num_cond_latents … t - 1`` when it has that many
        predecessors, else scored under the unconditional priors. ``noise``: the dequantisation noise,
        ``(B, T, C, H, W)`` in [0, 1/2^bits) (default: drawn from ``generator``).
        """
        b, t = clips.shape[:2]
        scored = list(scored)
        if not scored or min(scored) < 0 or max(scored) >= t:
            raise ValueError(f"scored frames must be indices in [0, {t}), got {scored}")
        logdet, kept, latents = self.encode(clips.flatten(0, 1), None if noise is None else noise.flatten(0, 1),
                                            generator)
        logdet = logdet.view(b, t)
        kept = [k.view(b, t, *k.shape[1:]) for k in kept]
        latents = [z.view(b, t, *z.shape[1:]) for z in latents]
        k = self.num_cond_latents
        out = {}
        for group in ([s for s in scored if s < k], [s for s in scored if s >= k]):
            if not group:
                continue
            conditioned = group[0] >= k
            index = torch.tensor(group, device=clips.device)
            logp = logdet[:, index].flatten()

            def history(z: Tensor) -> Optional[Tensor]:
                return torch.stack([z[:, s - k:s] for s in group], dim=1).flatten(0, 1) if conditioned else None

            for level in range(self.n_levels - 1):
                mean, log_scale = self.level_prior(level, kept[level][:, index].flatten(0, 1), history(latents[level]))
                logp = logp + gaussian_log_prob(latents[level][:, index].flatten(0, 1), mean, log_scale)
            mean, log_scale = self.top_latent_prior(b * len(group), history(latents[-1]))
            logp = logp + gaussian_log_prob(latents[-1][:, index].flatten(0, 1), mean, log_scale)
            for i, s in enumerate(group):
                out[s] = logp.view(b, len(group))[:, i]
        return torch.stack([out[s] for s in scored], dim=1)

    def objective(self, clips: Tensor, n_past: Optional[int] = None, noise: Optional[Tensor] = None,
                  generator: Optional[torch.Generator] = None) -> Tensor:
        """Bits per dimension of each clip ``(B, T, C, H, W)``, ``(B,)``: ``-Σ_{t >= n_past} log p(x_t | x_<t) /
        (ln 2 · C·H·W · (T - n_past))`` (t2t's "bits-per-pixel", normalised by H·W·C; only target frames
        count)."""
        n_past = self.n_past if n_past is None else n_past
        if clips.ndim != 5 or clips.shape[2:] != (self.channels, self.image_size, self.image_size):
            raise ValueError(f"expected clips of shape (B, T, {self.channels}, {self.image_size}, {self.image_size}), "
                             f"got {tuple(clips.shape)}")
        if clips.shape[1] <= n_past:
            raise ValueError(f"clips need more than n_past={n_past} frames (the later ones are scored), got "
                             f"T={clips.shape[1]}")
        logp = self.frame_log_probs(clips, range(n_past, clips.shape[1]), noise, generator)
        dims = self.channels * self.image_size**2
        return -logp.sum(1) / (_LN2 * dims * logp.shape[1])

    # ------------------------------------------------------------------------------------------ training
    def random_patches(self, clips: Tensor) -> Tensor:
        """A random ``num_train_frames``-frame window of each clip (t2t ``extract_random_video_patch``)."""
        b, t = clips.shape[:2]
        n = self.hparams.num_train_frames
        if t < n:
            raise ValueError(f"training clips need at least num_train_frames={n} frames, got T={t}")
        if t == n:
            return clips
        start = torch.randint(0, t - n + 1, (b,), device=clips.device)
        index = start[:, None] + torch.arange(n, device=clips.device)
        return clips[torch.arange(b, device=clips.device)[:, None], index]

    def training_step(self, batch: Tensor, batch_idx: int) -> Tensor:
        bpd = self.objective(self.random_patches(batch)).mean()
        self.log("train/bits_per_dim", bpd, prog_bar=True, batch_size=batch.shape[0])
        return self._require_finite(bpd)

    def validation_step(self, batch: Tensor, batch_idx: int) -> None:
        super().validation_step(batch, batch_idx)
        generator = torch.Generator(device=self.device)
        generator.manual_seed(self.val_seed + 1_000_003 * batch_idx + 7919 * self.global_rank + 1)
        bpd = self.objective(batch, generator=generator).mean()
        self.log("val/bits_per_dim", bpd, sync_dist=True, batch_size=batch.shape[0])

    def actnorms_initialized(self) -> bool:
        return all(bool(m.initialized) for m in self.modules() if isinstance(m, ActNorm))

    @torch.no_grad()
    def initialize(self, clips: Tensor) -> None:
        """Data-dependent init of every ActNorm from clips ``(B, T, C, H, W)`` (one objective pass over random
        ``num_train_frames`` patches, as t2t's init tower). Under DDP every process passes its own clips."""
        with data_dependent_init():
            self.objective(self.random_patches(clips))

    def setup(self, stage: str) -> None:
        if stage != "fit":
            return
        if self.n_past >= self.num_cond_latents:
            self.allow_unused_parameters_under_ddp(
                "only conditioned frames are scored, so the unconditional top prior gets no gradient")
        elif self.hparams.num_train_frames <= self.num_cond_latents:
            self.allow_unused_parameters_under_ddp(
                "no training patch has num_cond_latents predecessors, so the latent priors get no gradient")

    def on_train_start(self) -> None:
        if self.actnorms_initialized():
            return
        world = self.trainer.world_size
        wanted = -(-self.hparams.init_batch_size // world)
        clips, have = [], 0
        for batch in self.trainer.train_dataloader:
            clips.append(batch)
            have += batch.shape[0]
            if have >= wanted:
                break
        init = torch.cat(clips)[:wanted].to(self.device)
        self.initialize(init)
        self.print(f"VideoFlow: data-dependent ActNorm init on {init.shape[0] * world} training patches")

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = torch.optim.Adam(self.parameters(), lr=self.hparams.lr, betas=tuple(self.hparams.adam_betas),
                                     eps=self.hparams.adam_eps)
        warmup = self.hparams.warmup_steps
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, step / warmup) if warmup else 1.0)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    # ------------------------------------------------------------------------------------------ sampling
    def check_predict_options(self, context: Tensor, n_future: int, **options: Any) -> dict[str, Any]:
        temperature = options.get("temperature", self.hparams.temperature)
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
            raise TypeError(f"{type(self).__name__}.predict: temperature must be a real number, got "
                            f"{type(temperature).__name__}")
        if not math.isfinite(temperature) or temperature < 0:
            raise ValueError(f"{type(self).__name__}.predict: temperature must be finite and >= 0, got {temperature}")
        return {"temperature": float(temperature)}

    @staticmethod
    def _draw(mean: Tensor, log_scale: Tensor, temperature: float, generator: torch.Generator) -> Tensor:
        if temperature == 0:
            return mean
        eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return mean + temperature * log_scale.exp() * eps

    def decode(self, history: Optional[list[Tensor]], n: int, temperature: float, generator: torch.Generator
               ) -> tuple[Tensor, list[Tensor]]:
        """Sample one frame for each of ``n`` rows given the per-level latent ``history`` (a list over levels, top
        last, of ``(n, num_cond_latents, C_l, h_l, w_l)``; None: unconditional). Returns the flow output
        ``(n, C, H, W)`` in about [-0.5, 0.5] (before :func:`~vpzoo.models.blocks.postprocess`) and the sampled
        latents (list over levels, top last)."""
        hist = history if history is not None else [None] * self.n_levels
        mean, log_scale = self.top_latent_prior(n, hist[-1])
        h = self._draw(mean, log_scale, temperature, generator)
        latents: list[Tensor] = [h]
        for level in reversed(range(self.n_levels)):
            if level < self.n_levels - 1:
                mean, log_scale = self.level_prior(level, h, hist[level])
                z = self._draw(mean, log_scale, temperature, generator)
                latents.insert(0, z)
                h = torch.cat([h, z], dim=1)
            for step in reversed(self.levels[level]):
                h, _ = step(h, reverse=True)
            h = unsqueeze2d(h)
        return h, latents

    def flow_inverse(self, latents: Sequence[Tensor]) -> Tensor:
        """The reverse flow of given latents (a list over levels, top last, as :meth:`encode` returns them):
        the dequantised frames ``x - 0.5 + u``, ``(N, C, H, W)``."""
        h = latents[-1]
        for level in reversed(range(self.n_levels)):
            if level < self.n_levels - 1:
                h = torch.cat([h, latents[level]], dim=1)
            for step in reversed(self.levels[level]):
                h, _ = step(h, reverse=True)
            h = unsqueeze2d(h)
        return h

    def sample_future(self, context: Tensor, n_future: int, num_samples: int, generator: torch.Generator,
                      temperature: Optional[float] = None) -> Tensor:
        temperature = self.hparams.temperature if temperature is None else temperature
        b = context.shape[0]
        k = self.num_cond_latents
        recent = context[:, -k:]
        _, _, latents = self.encode(recent.flatten(0, 1), generator=generator)
        history = [z.view(b, recent.shape[1], *z.shape[1:]).repeat_interleave(num_samples, dim=0) for z in latents]
        frames = []
        for _ in range(n_future):
            conditioned = history[0].shape[1] >= k
            x, new = self.decode([h[:, -k:] for h in history] if conditioned else None, b * num_samples,
                                 temperature, generator)
            frames.append(postprocess(x, self.hparams.n_bits).to(context.dtype))
            history = [torch.cat([h, z[:, None]], dim=1)[:, -k:] for h, z in zip(history, new)]
        out = torch.stack(frames, dim=1)
        return out.view(b, num_samples, n_future, *out.shape[2:])

    # --------------------------------------------------------------------------------------- likelihoods
    def _score(self, frames: Any, seed: Optional[int]) -> Tensor:
        x = self.prepare_frames(frames)
        generator = torch.Generator(device=self.device)
        if seed is None:
            generator.seed()
        else:
            generator.manual_seed(int(seed))
        return x, generator

    def log_likelihood(self, frames: Any, seed: Optional[int] = 0) -> Tensor:
        """``log p(x_t | x_<t)`` in nats for every frame of a clip: ``(B, T)`` for ``frames`` ``(T, C, H, W)`` or
        ``(B, T, C, H, W)`` (float in [0, 1] or uint8, as :meth:`predict` takes them). One draw of the
        dequantisation noise (``seed``; None draws a fresh one): the t2t estimate of the discrete log-likelihood's
        lower bound. The first ``num_cond_latents`` frames are scored under the unconditional priors."""
        x, generator = self._score(frames, seed)
        was_training = self.training
        self.eval()
        try:
            with torch.inference_mode():
                return self.frame_log_probs(x, range(x.shape[1]), generator=generator)
        finally:
            self.train(was_training)

    def bits_per_dim(self, frames: Any, n_past: Optional[int] = None, seed: Optional[int] = 0) -> Tensor:
        """The paper's bits per dimension of each clip, ``(B,)``: frames after the first ``n_past`` (default the
        model's) are scored given their predecessors, normalised by H·W·C and the number of scored frames."""
        x, generator = self._score(frames, seed)
        n_past = self.n_past if n_past is None else n_past
        was_training = self.training
        self.eval()
        try:
            with torch.inference_mode():
                return self.objective(x, n_past, generator=generator)
        finally:
            self.train(was_training)
