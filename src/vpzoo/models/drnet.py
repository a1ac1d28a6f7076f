"""DRNet: content/pose disentanglement with an adversarial scene discriminator, and its pose LSTM.

Paper: Emily Denton and Vighnesh Birodkar, "Unsupervised Learning of Disentangled Representations from Video",
NeurIPS 2017, arXiv:1705.10915. Official code: https://github.com/edenton/drnet-py (PyTorch 0.3, followed here)
and https://github.com/edenton/drnet (Lua Torch).

Architecture and losses follow the official PyTorch code (sheet ``models-drnet-svg-vrnn.md`` §3):

- content encoder E_c: DCGAN-64/128 (``dcgan``: no skips; ``dcgan_unet``: with U-Net skips, the PyTorch default)
  or VGG-64/128 with skips (``vgg_unet``), BN + tanh output of ``content_dim``;
- pose encoder E_p: DCGAN-64/128 (``dcgan``, the default) or ResNet-18-style (``resnet``), BN + tanh output of
  ``pose_dim``, optionally L2-normalised (``normalize_pose``, the official ``--normalize``);
- decoder D(h_c, h_p): the mirror of the content encoder on ``concat(h_c, h_p)``, with the skips of the *content*
  frame for the U-Net variants, sigmoid output;
- scene discriminator C: MLP ``2·pose_dim → 100 → 100 → 1`` on a pair of pose vectors (1 = different clips);
- one training iteration on four frames of each clip ``x_c1, x_c2, x_p1, x_p2``: (1) C takes one step on the
  detached poses of ``x_c1`` and ``x_c2``, the first half of the batch paired across clips by a random
  permutation, the second half within the clip (BCE); (2) E_c, E_p and D take one step on
  ``L = ||D(E_c(x_c1), E_p(x_p1)) - x_p1||² + α ||E_c(x_c1) - sg(E_c(x_c2))||²
  + β BCE(C(E_p(x_p1), sg(E_p(x_p2))), ½)``
  (MSE means; only E_p(x_p1) receives the adversarial gradient, C is not stepped on it). α = ``sim_weight`` = 1 and
  β = ``adv_weight`` = 1e-4 are the PyTorch defaults (the Lua code defaults to β = 0, i.e. no adversarial loss).
  The paper's α, β could not be verified (sheet §6: a third-party port reads β = 0.1; set ``adv_weight`` to try it);
- Adam(lr 2e-3, β1 0.5) for E_c, E_p, D and C; the official code keeps one Adam per module with equal settings,
  which is the same update as the one Adam over E_c, E_p and D used here (C keeps its own Adam and step);
- pose LSTM, trained afterwards on the frozen encoders (``stage``): Linear(pose+content → 256) → 2 × LSTM(256) →
  Linear(256 → pose) → tanh (→ L2 norm with ``normalize_pose``), input ``concat(h_p^{t-1}, h_c)`` with the content
  of the last context frame; loss ``Σ_{t=1}^{T-1} MSE(LSTM(h_p^{t-1}, h_c), h_p^t)`` teacher-forced over the whole
  clip (context steps included); Adam(lr 2e-4, β1 0.9). Prediction feeds ground-truth context poses, then its own
  predictions, and decodes ``D(h_c, ĥ_p^t)`` with the content (and skips) of the last context frame;
- weight init of the official ``utils.init_weights`` (N(0, 0.02) conv/linear, BN γ ~ N(1, 0.02); also on the
  ResNet, whose He init the official code overwrites the same way; LSTM weights keep PyTorch's default).

Training runs as manual optimisation with three optimisers (E_c+E_p+D, C, LSTM), selected by ``stage``:
``"autoencoder"`` (stage 1), ``"lstm"`` (stage 2; load the stage-1 weights with ``init_from``) or ``"both"``
(stage 1 for ``autoencoder_steps`` iterations, then stage 2, in one ``fit``). ``trainer.global_step`` counts
*iterations*: Lightning counts every ``LightningOptimizer.step()`` as a global step, so C's step goes through the
strategy directly (same precision/AMP handling) and only the main step (stage 1) or the LSTM step (stage 2) counts.

Deviations and options (all documented choices):

- **Batching.** Stage 1 keeps the official one-call-per-frame structure (B frames per encoder call, so BatchNorm
  statistics and running-statistic updates are drnet-py's; on CPU, batching the four frames into one call was no
  faster, and its BN statistics would couple the frames); the encodings the official code detaches run under
  ``no_grad``. Stage 2 encodes all frames of the batch in one call (eval-mode BN, so batching changes nothing) and
  runs the LSTM fused over the clip; prediction encodes the context in one call per encoder and decodes the
  predicted frames of all clips batched, grouping time steps only up to 16 frames per call (decoding with repeated
  skips is memory-bound on CPU, where larger calls were slower).
- **Stage-2 BatchNorm.** ``train_lstm.py`` keeps the frozen E_c, E_p, D in *train* mode (batch statistics, running
  statistics still updated) also when generating. vpzoo freezes them in *eval* mode during stage 2 and predicts in
  eval mode (the contract), so the LSTM learns the poses that prediction actually produces. Ported official weights
  can give slightly different numbers.
- **Discriminator labels.** A random permutation can map a clip to itself; the official code still labels such
  pairs "different". vpzoo labels every pair by whether its two clips differ.
- **Frame sampling.** ``frame_sampling="consecutive"`` takes frames 0-3 of each clip as (x_c1, x_c2, x_p1, x_p2),
  what drnet-py does on Moving MNIST; ``"random"`` draws the four frames uniformly with replacement from the clip,
  what drnet-py's KTH loader does (from the whole sub-sequence there, from the training clip here).
- **Content head (option).** ``content_norm_affine=False`` drops the scale and shift of the BatchNorm before the
  content vector's tanh (the official head keeps them). On CPU runs here the official head let the content vector
  collapse to a constant within ~2k iterations (its BN scale shrank to ~0.006); without the scale the content
  vector keeps unit spread before the tanh, but that does not prevent collapse: the decoder can shut the content
  out through its own weights, and the encoder can meet unit variance with a few outlying clips while most content
  vectors sit near 0 (measured at 15k iterations: kurtosis ~30, train/content_std 0.6 -> 0.33). It delayed the
  collapse in those runs but did not train a disentangled model (``configs/drnet/mmnist_dcgan.yaml``). Off by
  default.
- **Context.** ``predict`` conditions on all given context frames (at least ``n_past``): the LSTM is warmed on every
  context pose and the content comes from the last one (the official script uses exactly ``n_past`` frames).
- **KTH channels.** drnet-py feeds KTH as 3 replicated grey channels; the vpzoo KTH configs use 1 channel
  (``channels: 3`` in the model and the KTH DataModule reproduces drnet-py's input).
- **Multi-process.** Two backward passes per iteration touch C's parameters; DDP is untested for DRNet.

DRNet is deterministic: ``predict(..., num_samples=k)`` returns ``k`` identical copies of the one prediction.
"""

from __future__ import annotations

import itertools
from typing import Any, Literal, Optional

import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.core.optimizer import LightningOptimizer
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import Tensor

from vpzoo.models.base import VideoPredictionModel
from vpzoo.models.blocks import (
    DCGANDecoder64,
    DCGANDecoder128,
    DCGANEncoder64,
    DCGANEncoder128,
    FrameDecoder,
    FrameEncoder,
    RecurrentMLP,
    ResNetPoseEncoder,
    SceneDiscriminator,
    VGGDecoder64,
    VGGDecoder128,
    VGGEncoder64,
    VGGEncoder128,
    denton_init,
)
from vpzoo.registry import register_model

__all__ = [
    "DRNet",
    "build_content_codec",
    "build_pose_encoder",
    "content_swap_errors",
    "make_content_swap_set",
    "scene_discriminator_probe",
]

ContentModel = Literal["dcgan", "dcgan_unet", "vgg_unet"]
PoseModel = Literal["dcgan", "resnet"]
Stage = Literal["autoencoder", "lstm", "both"]
FrameSampling = Literal["consecutive", "random"]

_STAGE1_MODULES = ("content_encoder", "pose_encoder", "decoder", "discriminator")
_DECODE_FRAMES_PER_CALL = 16  # time steps are grouped up to this many frames per decoder call (see above)


def build_content_codec(
    content_model: str, content_dim: int, pose_dim: int, channels: int, image_size: int, width: int = 64
) -> tuple[FrameEncoder, FrameDecoder]:
    """DRNet's content encoder and decoder: ``"dcgan"`` (no skips), ``"dcgan_unet"`` or ``"vgg_unet"``, 64/128 px.

    The decoder takes ``concat(h_c, h_p)`` (``content_dim + pose_dim``) and, for the U-Net variants, the skips of
    the content encoder.
    """
    if image_size not in (64, 128):
        raise ValueError(f"DRNet's encoders are built for 64x64 or 128x128 frames, got image_size={image_size}")
    dim = content_dim + pose_dim
    big = image_size == 128
    if content_model in ("dcgan", "dcgan_unet"):
        skips = content_model == "dcgan_unet"
        encoder = (DCGANEncoder128 if big else DCGANEncoder64)(content_dim, channels, width)
        decoder = (DCGANDecoder128 if big else DCGANDecoder64)(dim, channels, width, skips=skips)
    elif content_model == "vgg_unet":
        encoder = (VGGEncoder128 if big else VGGEncoder64)(content_dim, channels, width)
        decoder = (VGGDecoder128 if big else VGGDecoder64)(dim, channels, width)
    else:
        raise ValueError(f"unknown content_model {content_model!r}; expected 'dcgan', 'dcgan_unet' or 'vgg_unet'")
    return encoder, decoder


def _fix_output_norm(encoder: FrameEncoder) -> None:
    """Replace the BatchNorm of ``encoder``'s output head (conv → BN → tanh) by one without scale and shift."""
    norms = [i for i, layer in enumerate(encoder.head) if isinstance(layer, torch.nn.BatchNorm2d)]
    if not norms:
        raise ValueError(f"{type(encoder).__name__} has no BatchNorm in its output head")
    last = norms[-1]
    encoder.head[last] = torch.nn.BatchNorm2d(encoder.head[last].num_features, affine=False)


def build_pose_encoder(pose_model: str, pose_dim: int, channels: int, image_size: int, width: int = 64) -> FrameEncoder:
    """DRNet's pose encoder: ``"dcgan"`` (DCGAN-64/128) or ``"resnet"`` (ResNet-18-style, 64/128 px)."""
    if image_size not in (64, 128):
        raise ValueError(f"DRNet's encoders are built for 64x64 or 128x128 frames, got image_size={image_size}")
    if pose_model == "dcgan":
        return (DCGANEncoder128 if image_size == 128 else DCGANEncoder64)(pose_dim, channels, width)
    if pose_model == "resnet":
        return ResNetPoseEncoder(pose_dim, channels, image_size, width)
    raise ValueError(f"unknown pose_model {pose_model!r}; expected 'dcgan' or 'resnet'")


def _no_closure() -> None:
    return None


@register_model("drnet")
class DRNet(VideoPredictionModel):
    """DRNet (Denton & Birodkar 2017) with its pose LSTM; see :mod:`vpzoo.models.drnet` for the details.

    Defaults are the official PyTorch Moving MNIST settings (coloured 2-digit Moving MNIST, 3 channels): 14.4 M
    parameters (E_c 3.81 M, E_p 2.84 M, D 6.64 M, C 0.01 M, LSTM 1.09 M).

    DRNet is deterministic: :meth:`predict` with ``num_samples > 1`` returns ``num_samples`` identical copies of the
    one prediction (the seed has no effect), and validation scores that single prediction.

    Args:
        image_size: frame size, 64 or 128.
        channels: channels per frame (3 for drnet-py's coloured Moving MNIST, 1 for KTH here).
        n_past: context frames (10 in ``train_lstm.py``).
        n_future: future frames of the stage-2 training clips (10).
        content_model: "dcgan", "dcgan_unet" (default) or "vgg_unet" content encoder/decoder.
        pose_model: "dcgan" (default) or "resnet" pose encoder.
        content_dim: size of the content vector h_c (128).
        pose_dim: size of the pose vector h_p (10).
        codec_width: channels of the first encoder block (64 as in the paper; smaller only for quick tests).
        normalize_pose: L2-normalise pose vectors and LSTM outputs (official ``--normalize``, off by default).
        sd_hidden: hidden units of the scene discriminator's two layers (100).
        sim_weight: α, weight of the content-similarity loss (1).
        adv_weight: β, weight of the pose encoder's adversarial loss (1e-4, drnet-py's ``sd_weight``).
        frame_sampling: "consecutive" (frames 0-3, drnet-py on Moving MNIST) or "random" (drnet-py on KTH).
        content_norm_affine: whether the BatchNorm before the content vector's tanh has a learned scale and shift
            (True, the official code). False (a vpzoo option against content collapse) fixes them at 1 and 0, so
            every content dimension keeps unit spread across the batch before the tanh and neither the similarity
            nor the reconstruction loss can shrink the content vector to a constant through that scale (heavy
            tails still can: see the deviations above).
        lr: Adam learning rate of E_c, E_p, D and C (2e-3).
        adam_beta1: their Adam β1 (0.5).
        rnn_size: LSTM width (256).
        rnn_layers: LSTM layers (2).
        lstm_lr: Adam learning rate of the LSTM (2e-4).
        lstm_beta1: its Adam β1 (0.9).
        stage: "autoencoder" (stage 1), "lstm" (stage 2 on frozen encoders) or "both" (stage 1, then stage 2).
        autoencoder_steps: with ``stage="both"``, the number of stage-1 iterations before stage 2 starts
            (drnet-py: 200 epochs × 600 = 120,000).
        init_from: checkpoint (Lightning ``.ckpt`` or a state dict) whose E_c, E_p, D and C weights are loaded when
            fitting starts, e.g. a stage-1 run for ``stage="lstm"``; ignored outside ``fit``.
        metric_protocol, val_seed: see :class:`~vpzoo.models.base.VideoPredictionModel`.
    """

    stochastic = False
    paper = {
        "title": "Unsupervised Learning of Disentangled Representations from Video",
        "authors": "Emily Denton, Vighnesh Birodkar",
        "venue": "NeurIPS 2017",
        "arxiv": "1705.10915",
        "url": "https://arxiv.org/abs/1705.10915",
    }

    def __init__(
        self,
        image_size: int = 64,
        channels: int = 3,
        n_past: int = 10,
        n_future: int = 10,
        content_model: ContentModel = "dcgan_unet",
        pose_model: PoseModel = "dcgan",
        content_dim: int = 128,
        pose_dim: int = 10,
        codec_width: int = 64,
        normalize_pose: bool = False,
        sd_hidden: int = 100,
        sim_weight: float = 1.0,
        adv_weight: float = 1e-4,
        frame_sampling: FrameSampling = "consecutive",
        content_norm_affine: bool = True,
        lr: float = 2e-3,
        adam_beta1: float = 0.5,
        rnn_size: int = 256,
        rnn_layers: int = 2,
        lstm_lr: float = 2e-4,
        lstm_beta1: float = 0.9,
        stage: Stage = "both",
        autoencoder_steps: int = 120_000,
        init_from: Optional[str] = None,
        metric_protocol: str = "standard",
        val_seed: int = 0,
    ) -> None:
        super().__init__(
            image_size=image_size, channels=channels, n_past=n_past, n_future=n_future,
            val_num_samples=1, metric_protocol=metric_protocol, val_seed=val_seed,
        )
        self.save_hyperparameters()
        self.automatic_optimization = False
        for name, value in (("content_dim", content_dim), ("pose_dim", pose_dim), ("codec_width", codec_width),
                            ("sd_hidden", sd_hidden), ("rnn_size", rnn_size), ("rnn_layers", rnn_layers)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        for name, value in (("sim_weight", sim_weight), ("adv_weight", adv_weight), ("lr", lr), ("lstm_lr", lstm_lr)):
            if not value >= 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        if stage not in ("autoencoder", "lstm", "both"):
            raise ValueError(f"stage must be 'autoencoder', 'lstm' or 'both', got {stage!r}")
        if frame_sampling not in ("consecutive", "random"):
            raise ValueError(f"frame_sampling must be 'consecutive' or 'random', got {frame_sampling!r}")
        if not isinstance(autoencoder_steps, int) or autoencoder_steps < 0:
            raise ValueError(f"autoencoder_steps must be an integer >= 0, got {autoencoder_steps!r}")

        self.content_encoder, self.decoder = build_content_codec(
            content_model, content_dim, pose_dim, channels, image_size, codec_width
        )
        if not content_norm_affine:
            _fix_output_norm(self.content_encoder)
        self.pose_encoder = build_pose_encoder(pose_model, pose_dim, channels, image_size, codec_width)
        self.discriminator = SceneDiscriminator(pose_dim, sd_hidden)
        self.pose_lstm = RecurrentMLP(pose_dim + content_dim, pose_dim, rnn_size, rnn_layers, tanh=True)
        self.uses_skips = content_model != "dcgan"
        for module in (self.content_encoder, self.pose_encoder, self.decoder, self.discriminator, self.pose_lstm):
            module.apply(denton_init)
        self._announced_stage: Optional[str] = None

    # ------------------------------------------------------------------------------------- components
    def encode_content(self, frames: Tensor) -> tuple[Tensor, list[Tensor]]:
        """``frames (N, C, H, W)`` → content vectors ``(N, content_dim)`` and the encoder's skips."""
        h, skips = self.content_encoder(frames)
        return h, (skips if self.uses_skips else [])

    def encode_pose(self, frames: Tensor) -> Tensor:
        """``frames (N, C, H, W)`` → pose vectors ``(N, pose_dim)`` (L2-normalised with ``normalize_pose``)."""
        h, _ = self.pose_encoder(frames)
        return F.normalize(h, dim=1) if self.hparams.normalize_pose else h

    def decode(self, content: Tensor, skips: list[Tensor], pose: Tensor, skip_index: Optional[Tensor] = None) -> Tensor:
        """``D(h_c, h_p)``: ``content (N, c)``, the content frames' ``skips``, ``pose (N, p)`` → ``(N, C, H, W)``.

        ``skip_index (N,)`` picks the row of ``skips`` for each frame when several frames share a content frame
        (see :class:`~vpzoo.models.blocks.FrameDecoder`); without it the skips are row-aligned with ``pose``.
        """
        return self.decoder(torch.cat([content, pose], dim=1), skips, skip_index)

    def decode_sequence(self, content: Tensor, skips: list[Tensor], poses: Tensor) -> Tensor:
        """Decode ``poses (B, T, p)`` with one content per clip (``content (B, c)``, its skips) → ``(B, T, C, H, W)``.

        Frames are decoded batched over clips, one time step per call, or several while a call holds at most 16
        frames (e.g. 8 steps of 2 clips).
        """
        b, t = poses.shape[:2]
        per_call = max(1, _DECODE_FRAMES_PER_CALL // b)
        chunks = []
        for start in range(0, t, per_call):
            pose = poses[:, start : start + per_call]
            k = pose.shape[1]
            h_c = content[:, None].expand(-1, k, -1).flatten(0, 1)
            clip_of_frame = torch.arange(b, device=poses.device).repeat_interleave(k)  # the clip's skips, shared
            chunks.append(self.decode(h_c, skips, pose.flatten(0, 1), clip_of_frame).view(b, k, *self._frame_shape))
        return torch.cat(chunks, dim=1)

    @property
    def _frame_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.image_size, self.image_size)

    def _lstm(self, inputs: Tensor, state: Optional[tuple[Tensor, Tensor]] = None):
        out, state = self.pose_lstm(inputs, state)
        return (F.normalize(out, dim=-1) if self.hparams.normalize_pose else out), state

    def predict_poses(self, poses: Tensor, content: Tensor, n_future: int) -> Tensor:
        """Roll the LSTM: context ``poses (B, T, p)`` and ``content (B, c)`` → the next poses ``(B, n_future, p)``.

        The LSTM reads every context pose (teacher forcing); its output after the last one is the first predicted
        pose, which is fed back for the next step, and so on.
        """
        t = poses.shape[1]
        out, state = self._lstm(torch.cat([poses, content[:, None].expand(-1, t, -1)], dim=-1))
        predicted = [out[:, -1]]
        for _ in range(n_future - 1):
            out, state = self._lstm(torch.cat([predicted[-1], content], dim=-1)[:, None], state)
            predicted.append(out[:, 0])
        return torch.stack(predicted, dim=1)

    # -------------------------------------------------------------------------------------- stage 1
    def training_frames(self, x: Tensor) -> Tensor:
        """The frames ``(x_c1, x_c2, x_p1, x_p2)`` of each clip of ``x (B, T, C, H, W)`` → ``(4, B, C, H, W)``."""
        b, t = x.shape[:2]
        if self.hparams.frame_sampling == "consecutive":
            if t < 4:
                raise ValueError(f"frame_sampling='consecutive' needs clips of at least 4 frames, got T={t}")
            return x[:, :4].transpose(0, 1)
        index = torch.randint(0, t, (b, 4), device=x.device)
        return x[torch.arange(b, device=x.device)[:, None], index].transpose(0, 1)

    def discriminator_loss(self, pose_a: Tensor, pose_b: Tensor) -> dict[str, Tensor]:
        """Scene-discriminator BCE on pose pairs of the same clips ``pose_a, pose_b (B, p)`` (official pairing).

        The first half of the batch pairs ``pose_a[i]`` with ``pose_b[perm[i]]`` (a random permutation, label 1 where
        the clips differ), the second half keeps ``pose_b[i]`` (same clip, label 0). Returns ``loss`` and ``acc``.
        """
        b = pose_a.shape[0]
        half = b // 2
        perm = torch.randperm(half, device=pose_b.device)
        partner = torch.cat([pose_b[perm], pose_b[half:]])
        different = torch.cat(
            [(perm != torch.arange(half, device=perm.device)).to(pose_a.dtype), pose_a.new_zeros(b - half)]
        )
        logits = self.discriminator(pose_a, partner)
        loss = F.binary_cross_entropy_with_logits(logits, different)
        acc = ((logits > 0) == (different > 0.5)).to(pose_a.dtype).mean()
        return {"loss": loss, "acc": acc}

    def autoencoder_losses(self, frames: Tensor, discriminator_step=None) -> dict[str, Tensor]:
        """Stage-1 losses of one iteration on ``frames (4, B, C, H, W)`` = ``(x_c1, x_c2, x_p1, x_p2)``.

        ``discriminator_step(loss)`` (optional) is called with C's loss before the main loss is evaluated, so the
        adversarial term sees the updated C, as in the official iteration. Returns ``loss`` (the main objective)
        and its terms ``rec``, ``sim``, ``adv``, plus C's ``sd_loss`` and ``sd_acc``, ``recon`` (the decoded
        ``x_p1``) and ``content_std``: the content vectors' standard deviation across the batch, averaged over their
        dimensions (detached). It watches for *content collapse*: when the spread goes to 0 the decoder can only draw
        what the pose vector carries, and content swaps fail. Measured on CPU runs on Moving MNIST (batch 32, no
        skips): 0.35 after 600 iterations, 0.01 after 1,800, the content head's BatchNorm scale shrinking to ~0.01;
        the spread fell as fast with ``sim_weight=0`` and in float32, so it is the reconstruction loss that damps
        the content input while the decoder draws only the pose's positions (no digit identity yet at ~1k
        iterations), not the similarity loss.

        Each frame goes through its encoder in its own call, in the official order (E_p on x_c1 and x_c2 for C,
        then E_c on x_c1, x_c2 and E_p on x_p1, x_p2), so training-mode BatchNorm sees the same batches as in
        drnet-py; the detached encodings (C's poses, the similarity target, the partner pose) run without a graph.
        """
        x_c1, x_c2, x_p1, x_p2 = frames
        with torch.no_grad():
            pose_a, pose_b = self.encode_pose(x_c1), self.encode_pose(x_c2)
        disc = self.discriminator_loss(pose_a, pose_b)
        if discriminator_step is not None:
            discriminator_step(disc["loss"])
        h_c1, skips = self.encode_content(x_c1)
        with torch.no_grad():
            h_c2, _ = self.encode_content(x_c2)
        h_p1 = self.encode_pose(x_p1)
        with torch.no_grad():
            h_p2 = self.encode_pose(x_p2)
        recon = self.decode(h_c1, skips, h_p1)
        rec = F.mse_loss(recon, x_p1)
        sim = F.mse_loss(h_c1, h_c2)
        logits = self.discriminator(h_p1, h_p2)
        adv = F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, 0.5))
        loss = rec + self.hparams.sim_weight * sim + self.hparams.adv_weight * adv
        return {"loss": loss, "rec": rec, "sim": sim, "adv": adv, "sd_loss": disc["loss"], "sd_acc": disc["acc"],
                "recon": recon, "content_std": h_c1.detach().flatten(1).float().std(dim=0).mean()}

    def autoencoder_iteration(self, x: Tensor, opt_main, opt_disc) -> dict[str, Tensor]:
        """One official stage-1 iteration on clips ``x``: C's step, then the E_c/E_p/D step. Returns detached logs.

        ``opt_main`` / ``opt_disc`` are the first two optimisers of :meth:`configure_optimizers` (plain torch
        optimisers, or Lightning's wrappers inside ``fit``).
        """
        out = self.autoencoder_losses(
            self.training_frames(x), lambda loss: self._optimise(opt_disc, loss, counted=False)
        )
        self._optimise(opt_main, out["loss"])
        return {k: v.detach() for k, v in out.items() if k != "recon"}

    # -------------------------------------------------------------------------------------- stage 2
    def freeze_codec(self) -> None:
        """Put E_c, E_p, D and C in eval mode (stage 2 trains the LSTM on the frozen stage-1 model)."""
        for name in _STAGE1_MODULES:
            getattr(self, name).eval()

    def lstm_losses(self, x: Tensor) -> dict[str, Tensor]:
        """Stage-2 loss on clips ``x (B, T, C, H, W)``, ``T > n_past``: ``loss`` (Σ_t MSE_t) and ``mse`` (their mean).

        E_c and E_p run without gradients in their current mode (:meth:`freeze_codec` puts them in eval mode).
        """
        b, t = x.shape[:2]
        if t <= self.n_past:
            raise ValueError(f"stage-2 clips need more than n_past={self.n_past} frames, got T={t}")
        with torch.no_grad():
            h_c, _ = self.encode_content(x[:, self.n_past - 1])
            h_p = self.encode_pose(x.flatten(0, 1)).view(b, t, -1)
        pred, _ = self._lstm(torch.cat([h_p[:, :-1], h_c[:, None].expand(-1, t - 1, -1)], dim=-1))
        per_step = F.mse_loss(pred, h_p[:, 1:], reduction="none").mean(dim=(0, 2))
        return {"loss": per_step.sum(), "mse": per_step.mean()}

    def lstm_iteration(self, x: Tensor, opt_lstm) -> dict[str, Tensor]:
        """One stage-2 iteration (frozen E_c, E_p in eval mode; one LSTM step). Returns detached logs."""
        self.freeze_codec()
        out = self.lstm_losses(x)
        self._optimise(opt_lstm, out["loss"])
        return {k: v.detach() for k, v in out.items()}

    # ----------------------------------------------------------------------------------- Lightning
    @property
    def current_stage(self) -> str:
        """"autoencoder" or "lstm": the stage the next training iteration runs."""
        stage = self.hparams.stage
        if stage != "both":
            return stage
        step = self._trainer.global_step if self._trainer is not None else 0
        return "autoencoder" if step < self.hparams.autoencoder_steps else "lstm"

    def _optimise(self, optimizer, loss: Tensor, counted: bool = True) -> None:
        optimizer.zero_grad(set_to_none=True)
        if self._trainer is not None:
            self.manual_backward(loss)
        else:
            loss.backward()
        if not counted and isinstance(optimizer, LightningOptimizer):
            # Lightning counts every LightningOptimizer.step() as a global step; step through the strategy (same
            # precision plugin and AMP scaler) so that global_step, max_steps and checkpoint intervals count
            # training iterations, as the official epoch_size x niter does.
            self.trainer.strategy.optimizer_step(optimizer.optimizer, _no_closure)
        else:
            optimizer.step()

    def _check_batch(self, batch: Tensor) -> None:
        if not isinstance(batch, Tensor) or batch.ndim != 5 or tuple(batch.shape[2:]) != self._frame_shape:
            shape = tuple(batch.shape) if isinstance(batch, Tensor) else type(batch).__name__
            raise ValueError(f"expected batches of shape (B, T, {', '.join(map(str, self._frame_shape))}), got {shape}")

    def training_step(self, batch: Tensor, batch_idx: int) -> dict[str, Tensor]:
        self._check_batch(batch)
        opt_main, opt_disc, opt_lstm = self.optimizers()
        stage = self.current_stage
        if stage != self._announced_stage:
            rank_zero_info(f"DRNet: training stage '{stage}' from step {self.global_step}")
            self._announced_stage = stage
        # Lightning re-logs a training metric's last value until the epoch ends (never, with SM-MNIST's endless
        # stream): train/stage (0 = autoencoder, 1 = LSTM) says which of the columns are current.
        self.log("train/stage", float(stage == "lstm"), batch_size=batch.shape[0])
        if stage == "autoencoder":
            logs = self.autoencoder_iteration(batch, opt_main, opt_disc)
            self.log_dict(
                {"train/rec": logs["rec"], "train/sim": logs["sim"], "train/adv": logs["adv"],
                 "train/sd_loss": logs["sd_loss"], "train/sd_acc": logs["sd_acc"]},
                prog_bar=True, batch_size=batch.shape[0],
            )
            self.log("train/content_std", logs["content_std"], batch_size=batch.shape[0])
        else:
            logs = self.lstm_iteration(batch, opt_lstm)
            self.log_dict({"train/lstm_loss": logs["loss"], "train/lstm_mse": logs["mse"]}, prog_bar=True,
                          batch_size=batch.shape[0])
        return logs

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        """``[Adam(E_c, E_p, D), Adam(C), Adam(LSTM)]`` (all three always, so checkpoints of every stage match)."""
        hp = self.hparams
        main = torch.optim.Adam(
            itertools.chain(self.content_encoder.parameters(), self.pose_encoder.parameters(),
                            self.decoder.parameters()),
            lr=hp.lr, betas=(hp.adam_beta1, 0.999),
        )
        disc = torch.optim.Adam(self.discriminator.parameters(), lr=hp.lr, betas=(hp.adam_beta1, 0.999))
        lstm = torch.optim.Adam(self.pose_lstm.parameters(), lr=hp.lstm_lr, betas=(hp.lstm_beta1, 0.999))
        return [main, disc, lstm]

    def setup(self, stage: str) -> None:
        if stage != "fit":
            return
        # C's loss never reaches E_c, E_p or D, and the LSTM stage never reaches them either
        self.allow_unused_parameters_under_ddp("its optimisers step different parts of the model")
        if self.hparams.init_from:
            self.load_stage1(self.hparams.init_from)
        elif self.hparams.stage == "lstm":
            rank_zero_warn("DRNet stage='lstm' without init_from trains the LSTM on untrained encoders")

    def load_stage1(self, path: str) -> None:
        """Load E_c, E_p, D and C from a DRNet checkpoint (Lightning ``.ckpt`` or a plain state dict)."""
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        state = checkpoint.get("state_dict", checkpoint)
        prefixes = tuple(f"{name}." for name in _STAGE1_MODULES)
        wanted = {k: v for k, v in self.state_dict().items() if k.startswith(prefixes)}
        found = {k: v for k, v in state.items() if k in wanted}
        if set(found) != set(wanted):
            missing = sorted(set(wanted) - set(found))
            raise ValueError(f"{path} lacks {len(missing)} stage-1 entries of this DRNet, e.g. {missing[:3]}")
        for key, value in found.items():
            if value.shape != wanted[key].shape:
                raise ValueError(
                    f"{path} does not match this DRNet's architecture: {key} has shape {tuple(value.shape)}, "
                    f"expected {tuple(wanted[key].shape)}"
                )
        self.load_state_dict(found, strict=False)
        rank_zero_info(f"DRNet: loaded E_c, E_p, D and C from {path}")

    # ------------------------------------------------------------------------------------- sampling
    def sample_future(
        self, context: Tensor, n_future: int, num_samples: int, generator: torch.Generator
    ) -> Tensor:
        """Deterministic: ``num_samples`` identical copies of the one prediction (``generator`` is not used)."""
        b, t = context.shape[:2]
        content, skips = self.encode_content(context[:, -1])
        poses = self.encode_pose(context.flatten(0, 1)).view(b, t, -1)
        frames = self.decode_sequence(content, skips, self.predict_poses(poses, content, n_future))
        return frames[:, None].expand(b, num_samples, *frames.shape[1:]).clone()


# --------------------------------------------------------------------------------------------------------
# Disentanglement checks (run them on a trained checkpoint; see tests/test_drnet.py)
# --------------------------------------------------------------------------------------------------------
def make_content_swap_set(
    num_pairs: int = 64, *, seed: int = 0, num_digits: int = 2, channels: int = 3, split: str = "test",
    frames: tuple[int, int] = (0, 5), root: Optional[str] = None,
) -> dict[str, Tensor]:
    """Pairs of DRNet Moving MNIST frames and the exact frame a perfect content swap decodes to.

    Clips A and B are generated with drnet-py's rule (coloured, reflecting, velocities in [-4, 3]). For each pair,
    ``content`` is frame ``frames[0]`` of A, ``pose`` is frame ``frames[1]`` of B, and ``swap`` renders A's digits
    (A's digit in each colour channel, A's front digit) at B's positions: the content of one clip in the pose of the
    other. Returns float tensors ``content``, ``pose``, ``swap`` of shape ``(num_pairs, channels, 64, 64)``.
    """
    from vpzoo.data.mnist_digits import load_digit_pool
    from vpzoo.data.smmnist import generate_smmnist, render_colored_frames

    digits = load_digit_pool(split, 32, root)
    rng = np.random.default_rng(seed)
    t_a, t_b = frames
    length = max(t_a, t_b) + 1
    opts = dict(num_digits=num_digits, deterministic=True, colored=True, channels=channels, velocity_range=(-4, 3),
                dtype="uint8", return_trajectories=True)
    clips_a, traj_a = generate_smmnist(digits, num_pairs, length, rng, **opts)
    clips_b, traj_b = generate_smmnist(digits, num_pairs, length, rng, **opts)
    swap = render_colored_frames(digits, traj_a.digit_indices, traj_b.positions[:, t_b : t_b + 1], traj_a.front,
                                 64, channels=channels, dtype="uint8")
    as_float = lambda a: torch.from_numpy(np.ascontiguousarray(a)).float() / 255  # noqa: E731
    return {"content": as_float(clips_a[:, t_a]), "pose": as_float(clips_b[:, t_b]), "swap": as_float(swap[:, 0])}


@torch.no_grad()
def content_swap_errors(
    model: DRNet, content: Tensor, pose: Tensor, swap: Tensor, margin: float = 0.8
) -> dict[str, Any]:
    """Decode ``D(E_c(content), E_p(pose))`` (eval mode) and measure which frame it resembles.

    Returns the mean squared errors against ``swap`` (the ideal swap: content of one clip, pose of the other),
    ``pose`` (what a pose vector that also carries the content would give) and ``content`` (what a decoder that
    ignores the pose would give), and ``disentangled``: whether the error to the ideal swap is below ``margin``
    times the smaller of the other two (mostly-black frames make all three errors similar for a blurry decoder).
    Also ``content_effect`` and ``pose_effect``: the mean squared change of the decoded frames when the content
    (or the pose) of each pair is replaced by the next pair's, the other input kept. A decoder that ignores its
    content input (content collapse, or decoder weights that shut it out) has ``content_effect`` near 0.
    """
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        content, pose, swap = content.to(device), pose.to(device), swap.to(device)
        h_c, skips = model.encode_content(content)
        h_p = model.encode_pose(pose)
        out = model.decode(h_c, skips, h_p)
        other = lambda h: h.roll(1, dims=0)  # noqa: E731  (the next pair's vector)
        content_effect = F.mse_loss(model.decode(other(h_c), skips, h_p), out).item()
        pose_effect = F.mse_loss(model.decode(h_c, skips, other(h_p)), out).item()
    finally:
        model.train(was_training)
    errors = {name: F.mse_loss(out, ref).item() for name, ref in (("swap", swap), ("pose", pose), ("content", content))}
    return {"mse_to_swap": errors["swap"], "mse_to_pose_frame": errors["pose"],
            "mse_to_content_frame": errors["content"],
            "disentangled": errors["swap"] < margin * min(errors["pose"], errors["content"]),
            "content_effect": content_effect, "pose_effect": pose_effect}


def scene_discriminator_probe(
    model: DRNet, train_clips: Tensor, test_clips: Tensor, steps: int = 300, lr: float = 2e-3, seed: int = 0
) -> float:
    """Held-out accuracy of a *fresh* scene discriminator trained on the frozen pose encoder (eval mode).

    Pose pairs are formed as in training (frames 0 and 1 of each clip; half the batch across clips). Near 1: the
    poses identify their clip (no disentanglement); near 0.5: they do not. ``*_clips`` are ``(B, T >= 2, C, H, W)``.
    """
    if min(train_clips.shape[0], test_clips.shape[0]) < 4 or min(train_clips.shape[1], test_clips.shape[1]) < 2:
        raise ValueError("scene_discriminator_probe needs at least 4 clips of at least 2 frames per set")
    generator = torch.Generator().manual_seed(seed)
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        with torch.no_grad():
            def poses(clips: Tensor) -> tuple[Tensor, Tensor]:
                clips = clips.to(device)
                return model.encode_pose(clips[:, 0]), model.encode_pose(clips[:, 1])
            train_a, train_b = poses(train_clips)
            test_a, test_b = poses(test_clips)
    finally:
        model.train(was_training)
    probe = SceneDiscriminator(model.hparams.pose_dim, model.hparams.sd_hidden).to(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        probe.apply(denton_init)
    opt = torch.optim.Adam(probe.parameters(), lr=lr, betas=(0.5, 0.999))

    def pairs(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        n = a.shape[0]
        half = n // 2
        shift = int(torch.randint(1, half, (1,), generator=generator))
        perm = ((torch.arange(half) + shift) % half).to(b.device)  # a cyclic shift: every such pair crosses clips
        partner = torch.cat([b[:half][perm], b[half:]])
        label = torch.cat([torch.ones(half), torch.zeros(n - half)]).to(a.device)
        return a, partner, label

    for _ in range(steps):
        order = torch.randperm(train_a.shape[0], generator=generator).to(device)
        a, b, label = pairs(train_a[order], train_b[order])
        loss = F.binary_cross_entropy_with_logits(probe(a, b), label)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        a, b, label = pairs(test_a, test_b)
        return ((probe(a, b) > 0).float() == label).float().mean().item()
