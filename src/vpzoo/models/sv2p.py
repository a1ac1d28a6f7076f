"""SV2P: Stochastic Variational Video Prediction, on the CDNA network of Finn et al. (2016).

Paper: Mohammad Babaeizadeh, Chelsea Finn, Dumitru Erhan, Roy H. Campbell and Sergey Levine, "Stochastic
Variational Video Prediction", ICLR 2018, arXiv:1710.11252. Generator: Chelsea Finn, Ian Goodfellow and Sergey
Levine, "Unsupervised Learning for Physical Interaction through Video Prediction", NeurIPS 2016, arXiv:1605.07157.
Official code: the SV2P patch of ``tensorflow/models`` ``research/video_prediction`` (mbz, PR #3174, never merged;
"the reference" below), its successor ``tensor2tensor/models/video/sv2p.py`` (t2t), and A. Lee's re-implementation
``video_prediction/models/sv2p_model.py`` (the SAVP paper's SV2P baselines). Facts: sheet
``models-videoflow-savp-sv2p.md`` §3; no code was copied.

Model (the reference's layout, sheet §3.2–3.4):

- generator: the CDNA network, 7 conv-LSTMs (5×5, forget bias 1, widths 32-32-64-64-128-64-32), each followed by
  TF-style layer norm (statistics over C·H·W, per-channel gain/bias); convs and transposed convs with TF "SAME"
  padding; U-Net skips enc1/enc0 into the decoder; the latent z is concatenated at the 8×8 bottleneck before the
  1×1 conv. The input at each step is the previous frame (ground truth, own prediction, or a scheduled-sampling
  mix); the output is a softmax-mask composite of the previous frame, a "scratch" image (sigmoid) and CDNA
  transformations of the previous frame (10 normalised 5×5 kernels from a linear layer on the flattened lstm5
  output, zero padding). DNA and STP are options (``transformation``);
- inference network q(z | x_{0:T-1}) over **all** frames of the training clip stacked on channels: 3×3 convs
  s2→32, s2→64, s1→64 (LN, ReLU), then two 3×3 s2 heads to ``latent_channels`` (8×8×1 at 64 px): the mean (LN,
  linear) and the log-variance (LN, ReLU, + ``latent_std_min`` = −5: a floor of −5, σ ≥ e^−2.5);
- prior N(0, I); time-invariant z (one sample per video) by default, ``time_variant=True`` draws a fresh ε per step;
- loss = MSE over the predicted frames (mean over pixels and the ``n_future`` frames; the context-step predictions
  are not scored, as in the reference) + β(step) · KL. **KL convention: the reference's.** Its ``kl_divergence``
  sums over the latent's height axis and averages over width, channels and batch, i.e. KL_ref = (KL summed over
  the latent map) / (latent width · latent channels), added once per video; ``beta`` multiplies KL_ref
  (β = 1e-3, the t2t default that Lee treats as the paper's). ``kl_reduction="sum"`` uses the full KL per video
  instead. The logged ``train/kl`` is always the full KL per video;
- three phases derived from the global step (Lee's "match the paper" schedule, sheet §3.4):
  1. steps [0, ``phase1_steps``): z ~ N(0, I); the inference network is not run (it would get no gradient);
  2. [``phase1_steps``, ``phase1_steps + phase2_steps``): z ~ q(z | x), β = 0;
  3. from then on β ramps linearly from 0 to ``beta`` over ``kl_anneal_steps``, then stays;
- scheduled sampling in "count" mode (Finn): after the context frames, round(B · k / (k + exp(step / k)))
  examples of the batch (a fresh random subset at every time step) get the ground-truth frame and the others
  their own prediction; k = 900. ``scheduled_sampling_k=None`` always feeds predictions;
- Adam(lr 1e-3, β1 0.9, β2 0.999, ε 1e-8), constant learning rate, no gradient clipping (the reference's
  ``tf.train.AdamOptimizer`` defaults); TF-slim init (Glorot-uniform weights, zero biases).

Official-code quirks, decided deliberately:

- **10 kernels, 9 used** (present in the reference, t2t and Lee): 11 masks are zipped with 12 candidates
  [previous frame, scratch, CDNA_1..CDNA_10], so CDNA_10 is computed but silently dropped. Default
  ``drop_last_kernel=True`` reproduces it (the 10th kernel's weights exist and get no gradient; vpzoo skips
  applying it). ``drop_last_kernel=False`` is the clean version: 12 masks, all 10 kernels used.
- **ReLU before the mask softmax**: this is in Finn's 2016 CDNA release only (slim's default ReLU left on the
  mask, scratch and enc6 layers, so the scratch image is ≥ 0.5). SV2P's own code (the reference at 8699e3b and
  t2t) and Lee's made those three layers linear, so following the SV2P code means linear heads, which is the
  default (``finn2016_heads=False``); ``finn2016_heads=True`` restores the 2016 ReLUs for reproducing CDNA numbers.

Other deviations and choices:

- The reference reshapes NHWC maps before its linear layers (CDNA/STP input); vpzoo flattens NCHW. It is a fixed
  permutation of the weight rows (same model), which matters only to port TF weights.
- Heads (enc6, scratch, CDNA, masks) are not evaluated at context steps whose prediction the loss never sees;
  the inference network is not evaluated in phase 1. Both give the same losses and gradients as the reference.
- ``predict`` samples z ~ N(0, I) (the inference network is never used at test time). All samples run in one
  batch; the part of the network below the latent (enc0–enc2, lstm1–lstm4) sees only ground-truth frames during
  the context, so it runs once per clip there and its states are repeated per sample.
- STP warps with ``grid_sample`` (half a pixel from the old TF transformer). Action/state conditioning (robot
  pushing) is not implemented: BAIR is used action-free here.
- The phase keys off Lightning's ``global_step`` (optimizer steps): with gradient accumulation, count the step
  arguments in optimizer steps.
"""

from __future__ import annotations

import math
from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vpzoo.models.base import VideoPredictionModel
from vpzoo.models.blocks import (
    CDNA,
    STP,
    Conv2dSame,
    ConvLSTMCell,
    ConvTranspose2dSame,
    LayerNorm2d,
    composite_masks,
    dna_transform,
    gaussian_kl,
    slim_init,
)
from vpzoo.registry import register_model

__all__ = ["CDNAGenerator", "SV2PInferenceNetwork", "SV2P", "scheduled_sampling_ground_truth"]

Transformation = Literal["cdna", "dna", "stp"]
State = tuple[Tensor, Tensor]

DNA_KERNEL_SIZE = 5


def scheduled_sampling_ground_truth(step: int, batch_size: int, k: float | None) -> int:
    """Number of ground-truth examples per batch at ``step`` (Finn's "count" schedule): round(B·k/(k + e^{step/k})).

    ``k=None`` means never feed ground truth after the context (fully autoregressive). Rounding is half-to-even,
    as ``tf.round``.
    """
    if k is None:
        return 0
    exponent = step / k
    if exponent > 700:  # e^700 ≈ 1e304: the fraction is 0 long before
        return 0
    return int(round(batch_size * (k / (k + math.exp(exponent)))))


class CDNAGenerator(nn.Module):
    """The CDNA video predictor of Finn et al. (2016) with SV2P's latent at the bottleneck; one time step per call.

    The step is split in two so the sampler can share work: :meth:`lower` (enc0 … enc2, lstm1–lstm4) sees only
    the input frame, :meth:`upper` (latent, lstm5–lstm7, heads) everything else.

    Args:
        channels: colour channels.
        image_size: frame size (a multiple of 8; the latent map is ``image_size / 8`` wide).
        latent_channels: channels of z concatenated at the 8×8 bottleneck (1).
        transformation: ``"cdna"``, ``"dna"`` or ``"stp"``.
        num_masks: CDNA kernels / STP transforms + 1 (10); DNA needs 1.
        drop_last_kernel: reproduce the official CDNA pairing (``num_masks + 1`` masks, the last kernel unused).
        finn2016_heads: ReLU on enc6, the scratch/DNA layer and the mask logits (Finn's 2016 release).
        lstm_sizes: widths of the 7 conv-LSTMs (32, 32, 64, 64, 128, 64, 32).
        conv0_channels: width of the first conv (32).
        layer_norm_eps: epsilon of the layer norms (TF: 1e-12).
    """

    def __init__(
        self,
        channels: int,
        image_size: int = 64,
        latent_channels: int = 1,
        transformation: Transformation = "cdna",
        num_masks: int = 10,
        drop_last_kernel: bool = True,
        finn2016_heads: bool = False,
        lstm_sizes: Sequence[int] = (32, 32, 64, 64, 128, 64, 32),
        conv0_channels: int = 32,
        layer_norm_eps: float = 1e-12,
    ) -> None:
        super().__init__()
        s = tuple(int(v) for v in lstm_sizes)
        if len(s) != 7 or min(s) < 1:
            raise ValueError(f"lstm_sizes must be 7 positive widths, got {lstm_sizes!r}")
        if image_size % 8 != 0:
            raise ValueError(f"image_size must be a multiple of 8 (three stride-2 stages), got {image_size}")
        if transformation not in ("cdna", "dna", "stp"):
            raise ValueError(f"transformation must be 'cdna', 'dna' or 'stp', got {transformation!r}")
        if transformation == "dna" and num_masks != 1:
            raise ValueError(f"the DNA model uses one mask (num_masks=1), as the official code; got {num_masks}")
        if transformation == "cdna" and num_masks < (2 if drop_last_kernel else 1):
            raise ValueError(f"num_masks must be >= {2 if drop_last_kernel else 1} for CDNA, got {num_masks}")
        if transformation == "stp" and num_masks < 2:
            raise ValueError(f"num_masks must be >= 2 for STP, got {num_masks}")
        self.channels, self.image_size = channels, image_size
        self.latent_channels = latent_channels
        self.transformation = transformation
        self.num_masks = num_masks
        self.drop_last_kernel = drop_last_kernel
        self.finn2016_heads = finn2016_heads

        def ln(c: int) -> nn.Module:
            return LayerNorm2d(c, eps=layer_norm_eps)

        def lstm(c_in: int, c_out: int) -> ConvLSTMCell:
            return ConvLSTMCell(c_in, c_out, kernel_size=5, forget_bias=1.0, output_norm=ln)

        c0 = conv0_channels
        self.enc0 = Conv2dSame(channels, c0, 5, 2)  # → 32×32, LN, ReLU
        self.enc0_norm = ln(c0)
        self.lstm1, self.lstm2 = lstm(c0, s[0]), lstm(s[0], s[1])
        self.enc1 = Conv2dSame(s[1], s[1], 3, 2)  # → 16×16, ReLU
        self.lstm3, self.lstm4 = lstm(s[1], s[2]), lstm(s[2], s[3])
        self.enc2 = Conv2dSame(s[3], s[3], 3, 2)  # → 8×8, ReLU
        self.enc3 = nn.Conv2d(s[3] + latent_channels, s[3], 1)  # [enc2, z] → 1×1 conv, ReLU
        self.lstm5 = lstm(s[3], s[4])
        self.enc4 = ConvTranspose2dSame(s[4], s[4], 3, 2)  # → 16×16, ReLU
        self.lstm6 = lstm(s[4], s[5])
        c5 = s[5] + s[1]  # lstm6 ⊕ enc1
        self.enc5 = ConvTranspose2dSame(c5, c5, 3, 2)  # → 32×32, ReLU
        self.lstm7 = lstm(c5, s[6])
        c6 = s[6] + c0  # lstm7 ⊕ enc0
        self.enc6 = ConvTranspose2dSame(c6, c6, 3, 2)  # → 64×64, LN (linear; ReLU in Finn 2016)
        self.enc6_norm = ln(c6)
        if transformation == "dna":
            self.enc7 = nn.Conv2d(c6, DNA_KERNEL_SIZE**2, 1)  # per-pixel kernel logits
            n_out_masks = 2
        else:
            self.enc7 = nn.Conv2d(c6, channels, 1)  # scratch image (sigmoid)
            if transformation == "cdna":
                n_out_masks = num_masks + 1 if drop_last_kernel else num_masks + 2
            else:
                n_out_masks = num_masks + 1  # background + scratch + (num_masks - 1) warps
        latent_side = image_size // 8
        hidden_features = s[4] * latent_side * latent_side
        self.cdna = CDNA(hidden_features, num_masks, DNA_KERNEL_SIZE) if transformation == "cdna" else None
        self.stp = STP(hidden_features, num_masks - 1) if transformation == "stp" else None
        self.masks = nn.Conv2d(c6, n_out_masks, 1)
        self.apply(slim_init)

    def lower(
        self, frame: Tensor, states: list[State] | None = None
    ) -> tuple[Tensor, Tensor, Tensor, list[State]]:
        """enc0 … enc2 of ``frame (N, C, H, W)``; returns ``(enc0, enc1, enc2, [state1 … state4])``."""
        st = states if states is not None else [None] * 4
        enc0 = F.relu(self.enc0_norm(self.enc0(frame)))
        h1, s1 = self.lstm1(enc0, st[0])
        h2, s2 = self.lstm2(h1, st[1])
        enc1 = F.relu(self.enc1(h2))
        h3, s3 = self.lstm3(enc1, st[2])
        h4, s4 = self.lstm4(h3, st[3])
        enc2 = F.relu(self.enc2(h4))
        return enc0, enc1, enc2, [s1, s2, s3, s4]

    def upper(
        self,
        enc0: Tensor,
        enc1: Tensor,
        enc2: Tensor,
        z: Tensor | None,
        prev_frame: Tensor,
        states: list[State] | None = None,
        need_output: bool = True,
    ) -> tuple[Tensor | None, list[State]]:
        """Latent, lstm5–lstm7 and (if ``need_output``) the heads → ``(next frame or None, [state5 … 7])``."""
        st = states if states is not None else [None] * 3
        x = enc2 if z is None else torch.cat([enc2, z], dim=1)
        enc3 = F.relu(self.enc3(x))
        h5, s5 = self.lstm5(enc3, st[0])
        enc4 = F.relu(self.enc4(h5))
        h6, s6 = self.lstm6(enc4, st[1])
        enc5 = F.relu(self.enc5(torch.cat([h6, enc1], dim=1)))
        h7, s7 = self.lstm7(enc5, st[2])
        new_states = [s5, s6, s7]
        if not need_output:
            return None, new_states
        enc6 = self.enc6_norm(self.enc6(torch.cat([h7, enc0], dim=1)))
        if self.finn2016_heads:  # slim's default ReLU left on enc6, enc7 and the masks in the 2016 release
            enc6 = F.relu(enc6)
        enc7, mask_logits = self.enc7(enc6), self.masks(enc6)
        if self.finn2016_heads:
            enc7, mask_logits = F.relu(enc7), F.relu(mask_logits)
        if self.transformation == "dna":
            candidates = torch.stack([prev_frame, dna_transform(prev_frame, enc7)], dim=1)
        else:
            scratch = torch.sigmoid(enc7)
            if self.transformation == "cdna":
                used = self.num_masks - 1 if self.drop_last_kernel else self.num_masks
                moved = self.cdna(h5.flatten(1), prev_frame, num_used=used)
            else:
                moved = self.stp(h5.flatten(1), prev_frame)
            candidates = torch.cat([prev_frame[:, None], scratch[:, None], moved], dim=1)
        return composite_masks(mask_logits, candidates), new_states


class SV2PInferenceNetwork(nn.Module):
    """q(z | x_{0:T-1}): all frames stacked on channels → ``(mu, logvar)`` of the latent map.

    3×3 convs s2→w0, s2→w1, s1→w2 (each LN + ReLU), then two 3×3 s2 heads to ``latent_channels``: the mean (LN,
    linear) and the log-variance (LN, ReLU, then + ``latent_std_min``: a floor at −5).
    """

    def __init__(
        self,
        in_channels: int,
        latent_channels: int = 1,
        widths: Sequence[int] = (32, 64, 64),
        latent_std_min: float = -5.0,
        layer_norm_eps: float = 1e-12,
    ) -> None:
        super().__init__()
        w = tuple(int(v) for v in widths)
        if len(w) != 3 or min(w) < 1:
            raise ValueError(f"posterior_widths must be 3 positive widths, got {widths!r}")
        self.latent_std_min = latent_std_min

        def block(c_in: int, c_out: int, stride: int) -> nn.Sequential:
            return nn.Sequential(Conv2dSame(c_in, c_out, 3, stride), LayerNorm2d(c_out, layer_norm_eps), nn.ReLU())

        self.trunk = nn.Sequential(block(in_channels, w[0], 2), block(w[0], w[1], 2), block(w[1], w[2], 1))
        self.mean = nn.Sequential(Conv2dSame(w[2], latent_channels, 3, 2), LayerNorm2d(latent_channels, layer_norm_eps))
        self.logvar = nn.Sequential(
            Conv2dSame(w[2], latent_channels, 3, 2), LayerNorm2d(latent_channels, layer_norm_eps), nn.ReLU()
        )
        self.apply(slim_init)

    def forward(self, frames: Tensor) -> tuple[Tensor, Tensor]:
        """``frames (B, T, C, H, W)`` → ``mu, logvar (B, latent_channels, H/8, W/8)``."""
        h = self.trunk(frames.flatten(1, 2))  # channel index t·C + c, as the official concat over time
        return self.mean(h), self.logvar(h) + self.latent_std_min


@register_model("sv2p")
class SV2P(VideoPredictionModel):
    """SV2P (time-invariant latent by default) on the CDNA generator. See :mod:`vpzoo.models.sv2p`.

    Defaults are the reference's SV2P settings with SM-MNIST's frame format (1 channel, 5 context + 10 future).

    Args:
        image_size, channels: frame format (64, 1).
        n_past: context frames (5 SM-MNIST, 10 KTH, 2 BAIR).
        n_future: future frames of a training clip (10); training clips must hold ``n_past + n_future`` frames,
            since the inference network reads them all.
        transformation: ``"cdna"`` (paper), ``"dna"`` or ``"stp"``.
        num_masks: CDNA kernels (10); STP uses ``num_masks - 1`` warps; DNA needs 1.
        drop_last_kernel: official CDNA pairing, 9 of the 10 kernels used (True) or the clean 10 (False).
        finn2016_heads: ReLU on the mask/scratch/enc6 layers as Finn's 2016 release (False: SV2P's code).
        latent_channels: channels of the 8×8 latent map (1).
        time_variant: draw a fresh ε per time step (the paper's time-variant SV2P) instead of one z per video.
        latent_std_min: floor of the posterior log-variance (−5).
        beta: final KL weight β (1e-3), on the KL convention given by ``kl_reduction``.
        kl_reduction: ``"reference"`` (KL / (latent width · channels), the official code's) or ``"sum"``.
        phase1_steps: steps of phase 1, z ~ N(0, I) (50k).
        phase2_steps: steps of phase 2, z ~ q without KL (50k).
        kl_anneal_steps: steps over which β ramps from 0 to ``beta`` at the start of phase 3 (20k; 0 = jump).
        scheduled_sampling_k: k of the scheduled-sampling schedule (900); ``None`` feeds predictions only.
        lr, adam_betas, adam_eps: Adam (1e-3, (0.9, 0.999), 1e-8), constant.
        lstm_sizes, conv0_channels, posterior_widths: widths (paper values; smaller only for fast tests).
        layer_norm_eps: layer-norm epsilon (1e-12 as TF).
        val_num_samples, metric_protocol, val_seed: see :class:`~vpzoo.models.base.VideoPredictionModel`.
    """

    paper = {
        "title": "Stochastic Variational Video Prediction",
        "authors": "Mohammad Babaeizadeh, Chelsea Finn, Dumitru Erhan, Roy H. Campbell, Sergey Levine",
        "venue": "ICLR 2018",
        "arxiv": "1710.11252",
        "url": "https://arxiv.org/abs/1710.11252",
    }

    def __init__(
        self,
        image_size: int = 64,
        channels: int = 1,
        n_past: int = 5,
        n_future: int = 10,
        transformation: Transformation = "cdna",
        num_masks: int = 10,
        drop_last_kernel: bool = True,
        finn2016_heads: bool = False,
        latent_channels: int = 1,
        time_variant: bool = False,
        latent_std_min: float = -5.0,
        beta: float = 1e-3,
        kl_reduction: Literal["reference", "sum"] = "reference",
        phase1_steps: int = 50_000,
        phase2_steps: int = 50_000,
        kl_anneal_steps: int = 20_000,
        scheduled_sampling_k: float | None = 900.0,
        lr: float = 1e-3,
        adam_betas: tuple[float, float] = (0.9, 0.999),
        adam_eps: float = 1e-8,
        lstm_sizes: tuple[int, ...] = (32, 32, 64, 64, 128, 64, 32),
        conv0_channels: int = 32,
        posterior_widths: tuple[int, ...] = (32, 64, 64),
        layer_norm_eps: float = 1e-12,
        val_num_samples: int = 5,
        metric_protocol: str = "standard",
        val_seed: int = 0,
    ) -> None:
        super().__init__(
            image_size=image_size, channels=channels, n_past=n_past, n_future=n_future,
            val_num_samples=val_num_samples, metric_protocol=metric_protocol, val_seed=val_seed,
        )
        self.save_hyperparameters()
        for name, value in (("phase1_steps", phase1_steps), ("phase2_steps", phase2_steps),
                            ("kl_anneal_steps", kl_anneal_steps)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
        if beta < 0:
            raise ValueError(f"beta must be >= 0, got {beta}")
        if kl_reduction not in ("reference", "sum"):
            raise ValueError(f"kl_reduction must be 'reference' or 'sum', got {kl_reduction!r}")
        if scheduled_sampling_k is not None and scheduled_sampling_k <= 0:
            raise ValueError(f"scheduled_sampling_k must be > 0 or None, got {scheduled_sampling_k}")
        if latent_channels < 1:
            raise ValueError(f"latent_channels must be >= 1, got {latent_channels}")
        self.generator = CDNAGenerator(
            channels, image_size, latent_channels, transformation, num_masks, drop_last_kernel, finn2016_heads,
            lstm_sizes, conv0_channels, layer_norm_eps,
        )
        self.posterior = SV2PInferenceNetwork(
            channels * (n_past + n_future), latent_channels, posterior_widths, latent_std_min, layer_norm_eps
        )
        side = image_size // 8
        self.latent_shape = (latent_channels, side, side)
        self._kl_scale = 1.0 / (side * latent_channels) if kl_reduction == "reference" else 1.0

    # ------------------------------------------------------------------------------------------ schedule
    def phase_at(self, step: int) -> int:
        """Training phase (1, 2 or 3) at optimizer step ``step``."""
        if step < self.hparams.phase1_steps:
            return 1
        if step < self.hparams.phase1_steps + self.hparams.phase2_steps:
            return 2
        return 3

    def beta_at(self, step: int) -> float:
        """KL weight at ``step``: 0 in phases 1–2, then a linear ramp to ``beta`` over ``kl_anneal_steps``."""
        start = self.hparams.phase1_steps + self.hparams.phase2_steps
        if step < start:
            return 0.0
        ramp = self.hparams.kl_anneal_steps
        return float(self.hparams.beta) * (1.0 if ramp == 0 else min(1.0, (step - start) / ramp))

    def ground_truth_count(self, step: int, batch_size: int) -> int:
        """Examples fed ground truth (instead of their own prediction) after the context at ``step``."""
        return scheduled_sampling_ground_truth(step, batch_size, self.hparams.scheduled_sampling_k)

    # ------------------------------------------------------------------------------------------- training
    def _check_batch(self, x: Tensor) -> None:
        expected = (self.n_past + self.n_future, self.channels, self.image_size, self.image_size)
        if x.ndim != 5 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"SV2P trains on clips of shape (B, {', '.join(map(str, expected))}) (n_past + n_future frames: the "
                f"inference network reads the whole clip), got {tuple(x.shape)}"
            )

    def _unroll(
        self, x: Tensor, z: Tensor, num_ground_truth: int, all_outputs: bool = False
    ) -> Tensor:
        """Teacher-forced/scheduled-sampling pass over ``x (B, T, C, H, W)``; returns predictions of the future frames.

        ``z`` is ``(B, L, h, w)`` or, time-variant, ``(B, T-1, L, h, w)``. ``all_outputs`` also evaluates the heads
        at the early context steps (the official code's work, for benchmarks); the result is the same.
        """
        b, t = x.shape[:2]
        gen = self.generator
        lower = upper = None
        preds: list[Tensor] = []
        pred = None
        for i in range(t - 1):
            inp = x[:, i]
            if i >= self.n_past and num_ground_truth < b:
                if num_ground_truth == 0:
                    inp = pred
                else:
                    use_gt = torch.zeros(b, dtype=torch.bool, device=x.device)
                    use_gt[torch.randperm(b, device=x.device)[:num_ground_truth]] = True
                    inp = torch.where(use_gt[:, None, None, None], inp, pred)
            enc0, enc1, enc2, lower = gen.lower(inp, lower)
            z_i = z[:, i] if z.ndim == 5 else z
            need = i >= self.n_past - 1
            out, upper = gen.upper(enc0, enc1, enc2, z_i, inp, upper, need_output=need or all_outputs)
            if need:
                pred = out
                preds.append(out)
        return torch.stack(preds, dim=1)

    def forward_loss(self, x: Tensor, step: int | None = None, all_outputs: bool = False) -> dict[str, Tensor]:
        """Loss of clips ``x (B, n_past + n_future, C, H, W)`` at ``step`` (default: the global step).

        Returns ``loss``, ``mse``, ``kl`` (full KL per video; absent in phase 1), ``beta``, ``phase``,
        ``num_ground_truth`` and ``recon`` (predictions of the ``n_future`` frames).
        """
        self._check_batch(x)
        step = int(self.global_step) if step is None else int(step)
        phase, beta = self.phase_at(step), self.beta_at(step)
        b, t = x.shape[:2]
        shape = (b, t - 1, *self.latent_shape) if self.hparams.time_variant else (b, *self.latent_shape)
        eps = torch.randn(shape, device=x.device, dtype=x.dtype)
        out: dict[str, Tensor] = {}
        if phase == 1:
            z = eps
        else:
            mu, logvar = self.posterior(x)
            if self.hparams.time_variant:
                z = mu[:, None] + eps * (0.5 * logvar).exp()[:, None]
            else:
                z = mu + eps * (0.5 * logvar).exp()
            kl = gaussian_kl(mu, logvar, torch.zeros_like(mu), torch.zeros_like(logvar)).flatten(1).sum(1).mean()
            out["kl"] = kl
        n_gt = self.ground_truth_count(step, b)
        recon = self._unroll(x, z, n_gt, all_outputs=all_outputs)
        mse = F.mse_loss(recon, x[:, self.n_past :])
        loss = mse
        if "kl" in out and beta > 0:
            loss = loss + beta * self._kl_scale * out["kl"]
        out.update(
            loss=loss, mse=mse, recon=recon, beta=torch.tensor(beta), phase=torch.tensor(phase),
            num_ground_truth=torch.tensor(n_gt),
        )
        return out

    def training_step(self, batch: Tensor, batch_idx: int) -> Tensor:
        out = self.forward_loss(batch)
        b = batch.shape[0]
        logs = {
            "train/loss": out["loss"], "train/mse": out["mse"], "train/beta": float(out["beta"]),
            "train/phase": float(out["phase"]), "train/gt_fraction": float(out["num_ground_truth"]) / b,
        }
        if "kl" in out:
            logs["train/kl"] = out["kl"]
        self.log_dict(logs, prog_bar=True, batch_size=b)
        return self._require_finite(out["loss"])

    def setup(self, stage: str) -> None:
        if stage == "fit":  # phase 1 trains with a random latent: the inference network gets no gradient
            self.allow_unused_parameters_under_ddp("phase 1 leaves the inference network out")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        betas = tuple(self.hparams.adam_betas)
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, betas=betas, eps=self.hparams.adam_eps)

    # ------------------------------------------------------------------------------------------- sampling
    def sample_future(
        self, context: Tensor, n_future: int, num_samples: int, generator: torch.Generator
    ) -> Tensor:
        b, n_ctx = context.shape[:2]
        n = num_samples
        gen = self.generator
        time_variant = self.hparams.time_variant

        def draw() -> Tensor:
            return torch.randn((b * n, *self.latent_shape), generator=generator, device=context.device,
                               dtype=context.dtype)

        def rep(v: Tensor) -> Tensor:
            return v.repeat_interleave(n, dim=0)  # sample-major within each clip

        z = None if time_variant else draw()
        lower = upper = None
        out = None
        for i in range(n_ctx):  # the lower tower sees only ground truth here: once per clip
            frame = context[:, i]
            enc0, enc1, enc2, lower = gen.lower(frame, lower)
            out, upper = gen.upper(rep(enc0), rep(enc1), rep(enc2), draw() if time_variant else z, rep(frame),
                                   upper, need_output=i == n_ctx - 1)
        lower = [(rep(c), rep(h)) for c, h in lower]
        frames = [out]
        for _ in range(n_future - 1):
            enc0, enc1, enc2, lower = gen.lower(out, lower)
            out, upper = gen.upper(enc0, enc1, enc2, draw() if time_variant else z, out, upper)
            frames.append(out)
        pred = torch.stack(frames, dim=1).clamp_(0.0, 1.0)
        return pred.view(b, n, n_future, *pred.shape[2:])
