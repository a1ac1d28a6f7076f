"""Improved Conditional VRNN: a VRNN with a hierarchy of latents and a ConvLSTM renderer.

Paper: Lluis Castrejon, Nicolas Ballas and Aaron Courville, "Improved Conditional VRNNs for Video Prediction",
ICCV 2019, arXiv:1904.12165. Official code: https://github.com/facebookresearch/improved_vrnn (PyTorch 0.4.1,
CC BY-NC 4.0; read for facts only, this implementation is vpzoo's own). Registered as ``vrnn`` (one latent level,
the code's ``--model vrnn``) and ``vrnn_hier`` (three levels, ``--model vrnn_hier``).

Architecture as the released code builds it (sheet ``models-drnet-svg-vrnn.md`` §4.3), ``w = width`` (64):

- frame embedding, applied to every frame: six levels of pre-activation ResBlocks
  (:class:`~vpzoo.models.blocks.PreActResBlock`, GroupNorm(4), residual scale 0.1) with max-pooling,
  ``w@64², 2w@32², 4w@16², 8w@8², 8w@4², 8w@1²``;
- renderer (the likelihood): six group-normalised ConvLSTMs (:class:`~vpzoo.models.blocks.NormConvLSTMCell`) at
  ``1², 4², 8², 16², 32², 64²``, each followed by a transposed conv (or, last, two 3×3 convs) and a sigmoid at the
  end. Its only frame input is the previous frame's 1×1 top embedding; the scene enters through the ConvLSTMs'
  initial states, which "init nets" compute from the embeddings of the ``n_past`` context frames concatenated on
  channels (conv 1×1 + GroupNorm(4) + LReLU → conv 1×1 → GroupNorm(1) → ``(h₀, c₀)``): these are the skips;
- prior ``p(z_t | x_<t)`` and posterior ``q(z_t | x_≤t)`` per latent level: conv 1×1 + GroupNorm(1) →
  NormConvLSTM (initial state from its own init net) → conv 1×1 → GroupNorm(1) → ``(μ, s)``,
  ``log σ² = log softplus(s)``. The last GroupNorm's gain starts at 0 and its bias ~ N(0, 10⁻³), so every
  Gaussian starts near ``N(0, softplus(0) = 0.69)``. The prior reads the previous frame's embedding, the
  posterior the current frame's. Latents: ``z_channels`` (10) channels at 1×1 for ``vrnn``; for ``vrnn_hier`` also
  ``8w`` channels at 8×8 and ``2w`` at 32×32, concatenated to the renderer's input at 1², 8² and 32²;
- loss as the code: reconstruction of the predicted frames only (L1 default, L2 or BCE), summed over
  ``T, C, H, W`` and averaged over the batch, plus ``β`` (1) times the single-sample Monte-Carlo KL
  ``log q(z) − log p(z)`` at the posterior sample, summed over channels, positions, time and levels; optional
  linear β warm-up (the code's ``--beta_wu``); Adam(lr 1e-4, coupled weight decay 1e-4); PyTorch's default init.
- multi-GPU (the code's ``--multigpu``): the learning rate is scaled to ``lr · batch · world_size / 16`` with a
  linear warm-up from ``lr`` over ``lr_warmup_steps / world_size`` steps; here it is set before every training
  step from Lightning's ``global_step`` and ``trainer.world_size`` (so a resumed run continues the schedule),
  and only when ``world_size > 1``, as in the code.

Deviations and options (documented choices):

- **The prior's use of higher-level latents.** The paper conditions each level on the levels above it for both
  distributions; the released ``vrnn_hier.py`` feeds the nearest-upsampled higher-level samples only to the
  *posterior*'s output conv and its prior ignores them. Default: the released behaviour
  (``prior_uses_higher_latents=False``); ``True`` gives the paper's version (as the older ``s2s_big_hier.py``):
  the prior's output conv also takes the higher levels' samples (the posterior's during training, the prior's
  when sampling), which adds their channels to that conv's input. One-level ``vrnn`` is unaffected.
- **Sampling.** ``predict`` runs the model once, step by step, carrying every recurrent state forward: O(T) for
  T predicted frames, all samples of all clips in one batch (the context is embedded and its init nets run once per
  clip). The released ``sample.py`` instead re-runs the whole model over the zero-padded sequence for every new
  frame (O(T²)), drawing fresh latents for all earlier steps each time, so the renderer's recurrent states of step
  t are recomputed with latents that did not generate the frames already kept. ``predict(...,
  procedure="rerun")`` reproduces that procedure for comparisons with the released numbers; both are samples of
  the same prior, the default is the model's own generative process.
- **More context frames than ``n_past``.** The init nets take exactly ``n_past`` frames (their channel counts
  depend on it), as in the code. ``predict`` conditions on all given frames: the first ``n_past`` set the
  initial states, later ones are run through the model with the posterior's latents (as in training), then the
  prior takes over.
- **Memory.** ``checkpoint_renderer=True`` recomputes each renderer ConvLSTM step (its input and hidden
  convolutions) and each up-sampling layer in the backward pass (activation checkpointing) instead of storing
  them: the same gradients, about 20% less memory per clip for ``vrnn_hier`` on BAIR (0.78 instead of 0.97 GiB per
  12-frame clip, float32; the frame embedding and the prior/posterior keep theirs). By that CPU measurement
  (``benchmarks/bench_vrnn_memory.py``) the paper batch of 16 with Adam needs about 19 GiB without checkpointing,
  well within one 80 GB GPU. Under ``bf16-mixed`` the Gaussian parameters, the KL and the reconstruction loss are
  computed in float32.
- **Validation.** Besides vpzoo's sampled PSNR/SSIM, ``val/loss``, ``val/rec`` and ``val/kl`` log the posterior
  (teacher-forced) loss on the first ``n_past + n_future`` frames of each validation clip, the code's
  validation number.
- The input-to-hidden half of every ConvLSTM is computed for all time steps in one call (it does not depend on
  the state); this changes the order of operations, not the function.
"""

from __future__ import annotations

from typing import Callable, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from vpzoo.models.base import VideoPredictionModel
from vpzoo.models.blocks import NormConvLSTMCell, PreActResBlock, float32_or_wider
from vpzoo.registry import register_model

__all__ = ["ImprovedVRNN", "VRNN", "VRNNHier", "frame_embedding_channels"]

State = tuple[Tensor, Tensor]
#: ``noise(kind, level, shape)`` → a standard-normal tensor of ``shape``; ``kind`` is "q" (posterior) or "p".
NoiseSource = Callable[[str, int, tuple[int, ...]], Tensor]

_EMBED_WIDTHS = (1, 2, 4, 8, 8, 8)  # × width, levels 0..5 at 64, 32, 16, 8, 4, 1 px
_RENDER_HIDDEN = (8, 8, 8, 4, 2, 1)  # × width, renderer blocks 0..5 at 1, 4, 8, 16, 32, 64 px
_RENDER_OUT = (8, 8, 4, 2, 1, 1)


def frame_embedding_channels(width: int) -> list[int]:
    """Channels of the six frame-embedding levels (64, 32, 16, 8, 4, 1 px) for ``width``."""
    return [width * m for m in _EMBED_WIDTHS]


def _time_flat(module: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """Apply a frame module to ``(B, T, C, H, W)`` by flattening ``(B, T)``."""
    y = module(x.flatten(0, 1))
    return y.view(*x.shape[:2], *y.shape[1:])


class _ContextInit(nn.Module):
    """Init net: the context frames' embeddings ``(B, n_ctx, C, H, W)``, concatenated on channels → ``(h₀, c₀)``."""

    def __init__(self, in_channels: int, n_ctx: int, hidden: int) -> None:
        super().__init__()
        c = in_channels * n_ctx
        self.mix = nn.Sequential(nn.Conv2d(c, c, 1), nn.GroupNorm(4, c), nn.LeakyReLU(0.2))
        self.out = nn.Conv2d(c, 2 * hidden, 1)
        self.norm = nn.GroupNorm(1, 2 * hidden)

    def forward(self, context: Tensor) -> State:
        h, c = self.norm(self.out(self.mix(context.flatten(1, 2)))).chunk(2, dim=1)
        return h, c


def _run_lstm(cell: NormConvLSTMCell, x: Tensor, state: State, use_checkpoint: bool = False) -> tuple[Tensor, State]:
    """Run ``cell`` over ``x (B, T, C, H, W)`` from ``state`` → ``(h (B, T, hidden, H, W), last state)``.

    Without checkpointing the input half of the gates is computed for all steps in one call; with it, each step
    (input and hidden halves) is one checkpointed region, so only ``x``, ``h`` and ``c`` are kept per step."""
    outputs = []
    if use_checkpoint:
        for t in range(x.shape[1]):
            h, state = checkpoint(lambda xt, s: cell.step(cell.input_gates(xt), s), x[:, t], state,
                                  use_reentrant=False)
            outputs.append(h)
        return torch.stack(outputs, dim=1), state
    gates = _time_flat(cell.input_gates, x)
    for t in range(x.shape[1]):
        h, state = cell.step(gates[:, t], state)
        outputs.append(h)
    return torch.stack(outputs, dim=1), state


class _GaussianLevel(nn.Module):
    """Prior or posterior of one latent level: conv 1×1 + GN(1) → NormConvLSTM → conv 1×1 (+ higher z) → GN(1)."""

    def __init__(self, in_channels: int, hidden: int, z_channels: int, n_ctx: int, cond_channels: int) -> None:
        super().__init__()
        self.embed = nn.Sequential(nn.Conv2d(in_channels, hidden, 1), nn.GroupNorm(1, hidden))
        self.lstm = NormConvLSTMCell(hidden, hidden)
        self.head = nn.Conv2d(cond_channels + hidden, 2 * z_channels, 1)
        self.head_norm = nn.GroupNorm(1, 2 * z_channels)
        self.init = _ContextInit(in_channels, n_ctx, hidden)
        nn.init.zeros_(self.head_norm.weight)  # the code's init: N(μ ≈ 0, σ² ≈ softplus(0)) at the start
        nn.init.normal_(self.head_norm.bias, std=1e-3)

    def run(self, features: Tensor, state: State) -> tuple[Tensor, State]:
        """``features (B, T, in, H, W)`` → LSTM outputs ``(B, T, hidden, H, W)`` and the last state."""
        return _run_lstm(self.lstm, _time_flat(self.embed, features), state)

    def distribution(self, h: Tensor, higher: list[Tensor]) -> tuple[Tensor, Tensor]:
        """LSTM outputs ``(B, T, hidden, H, W)`` and upsampled higher-level samples → ``(μ, log σ²)`` in float32,
        each ``(B, T, z, H, W)``."""
        y = _time_flat(lambda v: self.head_norm(self.head(v)), torch.cat([*higher, h], dim=2) if higher else h)
        mean, raw = float32_or_wider(y).chunk(2, dim=2)
        return mean, F.softplus(raw).log()


class _RendererBlock(nn.Module):
    """One renderer block: NormConvLSTM (initial state from its init net) → up-sampling (or the output convs)."""

    def __init__(self, index: int, width: int, channels: int, z_channels: int, n_ctx: int) -> None:
        super().__init__()
        hidden, out = width * _RENDER_HIDDEN[index], width * _RENDER_OUT[index]
        in_channels = width * _RENDER_HIDDEN[index] + z_channels  # the previous block's output (+ a latent)
        self.lstm = NormConvLSTMCell(in_channels, hidden)
        if index < 5:
            stride, padding = (1, 0) if index == 0 else (2, 1)
            self.up = nn.Sequential(nn.ConvTranspose2d(hidden, out, 4, stride, padding), nn.GroupNorm(4, out),
                                    nn.LeakyReLU(0.2))
        else:
            self.up = nn.Sequential(nn.Conv2d(hidden, out, 3, 1, 1), nn.GroupNorm(4, out), nn.LeakyReLU(0.2),
                                    nn.Conv2d(out, channels, 3, 1, 1))
        self.init = _ContextInit(frame_embedding_channels(width)[5 - index], n_ctx, hidden)


class ImprovedVRNN(VideoPredictionModel):
    """Shared implementation of ``vrnn`` and ``vrnn_hier`` (use :class:`VRNN` / :class:`VRNNHier`).

    Defaults are the code's SM-MNIST README command (``--rec_loss bce --n_ctx 10 --n_steps 10``).

    Args:
        image_size: frame size (64; the architecture is built for 64×64).
        channels: channels per frame (1 SM-MNIST, 3 BAIR).
        n_past: context frames (10 SM-MNIST, 2 BAIR); the init nets are built for exactly this many.
        n_future: predicted frames of the training clips (10).
        width: the code's ``n_hid`` (64), a multiple of 16 (GroupNorm(16) in the ConvLSTMs); smaller only for
            CPU runs and tests.
        z_channels: channels of the top (1×1) latent, the code's ``n_z`` (10).
        rec_loss: "l1" (the code's default, BAIR), "l2" or "bce" (SM-MNIST README).
        beta: KL weight (1).
        beta_warmup_steps: linear β warm-up from 0 over this many steps (divided by the world size, as the code's
            ``--beta_wu 1``: 20 epochs of ``len(train set) // batch`` steps); 0 switches it off (the default).
        lr: Adam learning rate (1e-4).
        weight_decay: Adam's coupled L2 weight decay (1e-4).
        lr_reference_batch: the batch at which ``lr`` applies under multi-process training (16): the rate is scaled
            to ``lr · batch · world_size / lr_reference_batch``; single-process training uses ``lr`` unchanged.
        lr_warmup_steps: multi-process linear warm-up from ``lr`` to the scaled rate over this many steps divided by
            the world size (the code: 5 epochs of ``len(train set) // batch`` steps); 0: the scaled rate at once.
        prior_uses_higher_latents: False (released code): the prior of a lower level ignores the higher levels'
            latents; True (paper): it is conditioned on them (``vrnn_hier`` only).
        checkpoint_renderer: recompute the renderer's activations in the backward pass (saves memory).
        val_num_samples, metric_protocol, val_seed: see :class:`~vpzoo.models.base.VideoPredictionModel`.
    """

    #: Number of latent levels (1: ``vrnn``, 3: ``vrnn_hier``).
    latent_levels: int = 1
    predict_options = {
        "procedure": "'recurrent' (default): one O(T) pass that carries the recurrent states forward; 'rerun': the "
        "released sample.py's O(T^2) procedure, re-running the model over the whole sequence with fresh latents "
        "for every new frame",
    }
    paper = {
        "title": "Improved Conditional VRNNs for Video Prediction",
        "authors": "Lluis Castrejon, Nicolas Ballas, Aaron Courville",
        "venue": "ICCV 2019",
        "arxiv": "1904.12165",
        "url": "https://arxiv.org/abs/1904.12165",
    }

    def __init__(
        self,
        image_size: int = 64,
        channels: int = 1,
        n_past: int = 10,
        n_future: int = 10,
        width: int = 64,
        z_channels: int = 10,
        rec_loss: Literal["l1", "l2", "bce"] = "bce",
        beta: float = 1.0,
        beta_warmup_steps: int = 0,
        lr: float = 1e-4,
        weight_decay: float = 1e-4,
        lr_reference_batch: int = 16,
        lr_warmup_steps: int = 0,
        prior_uses_higher_latents: bool = False,
        checkpoint_renderer: bool = False,
        val_num_samples: int = 5,
        metric_protocol: str = "standard",
        val_seed: int = 0,
    ) -> None:
        super().__init__(
            image_size=image_size, channels=channels, n_past=n_past, n_future=n_future,
            val_num_samples=val_num_samples, metric_protocol=metric_protocol, val_seed=val_seed,
        )
        self.save_hyperparameters()
        if image_size != 64:
            raise ValueError(f"the Improved VRNN is built for 64x64 frames (five poolings to 1x1), got {image_size}")
        if not isinstance(width, int) or width < 16 or width % 16:
            raise ValueError(f"width must be a positive multiple of 16 (GroupNorm(16) in the ConvLSTMs), got {width!r}")
        if rec_loss not in ("l1", "l2", "bce"):
            raise ValueError(f"rec_loss must be 'l1', 'l2' or 'bce', got {rec_loss!r}")
        for name, value in (("beta", beta), ("lr", lr), ("weight_decay", weight_decay)):
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        for name, value in (("beta_warmup_steps", beta_warmup_steps), ("lr_warmup_steps", lr_warmup_steps)):
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
        if lr_reference_batch < 1:
            raise ValueError(f"lr_reference_batch must be >= 1, got {lr_reference_batch}")
        if self.latent_levels not in (1, 3):
            raise ValueError(f"latent_levels must be 1 or 3, got {self.latent_levels}")

        emb = frame_embedding_channels(width)
        levels = [nn.Sequential(nn.Conv2d(channels, emb[0], 1), PreActResBlock(emb[0], emb[0]))]
        for i in range(1, 6):
            pool = nn.MaxPool2d(4, 1) if i == 5 else nn.MaxPool2d(2, 2)
            levels.append(nn.Sequential(pool, PreActResBlock(emb[i - 1], emb[i]), PreActResBlock(emb[i], emb[i])))
        self.frame_embedding = nn.ModuleList(levels)

        # Latent level ℓ: (embedding level it reads, channels, side, renderer block it enters).
        specs = [(5, z_channels, 1, 0), (3, 8 * width, 8, 2), (1, 2 * width, 32, 4)][: self.latent_levels]
        self.latent_embedding_level = [s[0] for s in specs]
        self.latent_channels = [s[1] for s in specs]
        self.latent_size = [s[2] for s in specs]
        self.latent_block = [s[3] for s in specs]
        self.posteriors, self.priors = nn.ModuleList(), nn.ModuleList()
        for level, (emb_level, z_ch, _, _) in enumerate(specs):
            higher = sum(self.latent_channels[:level])
            self.posteriors.append(_GaussianLevel(emb[emb_level], emb[emb_level], z_ch, n_past, higher))
            self.priors.append(_GaussianLevel(emb[emb_level], emb[emb_level], z_ch, n_past,
                                              higher if prior_uses_higher_latents else 0))
        block_latent = {s[3]: s[1] for s in specs}
        self.renderer = nn.ModuleList(
            _RendererBlock(i, width, channels, block_latent.get(i, 0), n_past) for i in range(6))

    # ------------------------------------------------------------------------------------------ pieces
    def embed(self, frames: Tensor) -> list[Tensor]:
        """Frame embedding of ``(B, T, C, 64, 64)`` → six levels ``(B, T, c_l, s_l, s_l)``, ``s = 64, 32, 16, 8, 4, 1``."""
        b, t = frames.shape[:2]
        out, levels = frames.flatten(0, 1), []
        for level in self.frame_embedding:
            out = level(out)
            levels.append(out.view(b, t, *out.shape[1:]))
        return levels

    def initial_states(self, emb: list[Tensor]) -> dict[str, list[State]]:
        """The ConvLSTMs' initial states from the embeddings of the first ``n_past`` frames of ``emb``."""
        ctx = [e[:, : self.n_past] for e in emb]
        return {
            "q": [net.init(ctx[i]) for net, i in zip(self.posteriors, self.latent_embedding_level)],
            "p": [net.init(ctx[i]) for net, i in zip(self.priors, self.latent_embedding_level)],
            "render": [block.init(ctx[5 - i]) for i, block in enumerate(self.renderer)],
        }

    def _upsampled(self, zs: list[Tensor], level: int, steps: slice) -> list[Tensor]:
        """The samples of the levels above ``level`` (time ``steps``), nearest-upsampled to its resolution."""
        out = []
        for higher in range(level):
            z = zs[higher][:, steps]
            factor = self.latent_size[level] // self.latent_size[higher]
            out.append(_time_flat(lambda v, f=factor: F.interpolate(v, scale_factor=f), z))
        return out

    def unroll(
        self, emb_prev: list[Tensor], emb_next: list[Tensor] | None, states: dict[str, list[State]], noise: NoiseSource
    ) -> tuple[Tensor, list[dict[str, Tensor]], dict[str, list[State]]]:
        """Run the model over ``S`` consecutive steps from ``states``.

        Args:
            emb_prev: embeddings ``(B, S, c_l, s_l, s_l)`` (the six levels) of the frames before the predicted
                ones: the prior's and the renderer's inputs.
            emb_next: embeddings of the first ``S_obs <= S`` predicted frames, which are observed: their latents
                come from the posterior (all ``S`` in training); the other steps' from the prior. ``None``: none.
            states: the recurrent states (see :meth:`initial_states`); not modified, the new ones are returned.
            noise: the standard-normal source of the samples.

        Returns:
            ``(logits (B, S, C, 64, 64), per-level dicts with the posterior's mean_q/logvar_q (first S_obs steps),
            the prior's mean_p/logvar_p (all steps) and the samples z (all steps), the new states)``.
        """
        steps = emb_prev[0].shape[1]
        observed = 0 if emb_next is None else emb_next[0].shape[1]
        states = {k: list(v) for k, v in states.items()}
        dists, zs = [], []
        for level in range(self.latent_levels):
            e = self.latent_embedding_level[level]
            shape = (self.latent_channels[level], self.latent_size[level], self.latent_size[level])
            out: dict[str, Tensor] = {}
            parts = []
            if observed:
                h, states["q"][level] = self.posteriors[level].run(emb_next[e], states["q"][level])
                mean, logvar = self.posteriors[level].distribution(h, self._upsampled(zs, level, slice(0, observed)))
                eps = noise("q", level, (mean.shape[0], observed, *shape)).to(mean)
                parts.append(mean + eps * (0.5 * logvar).exp())
                out.update(mean_q=mean, logvar_q=logvar)
            h, states["p"][level] = self.priors[level].run(emb_prev[e], states["p"][level])
            # paper's prior: conditioned on the higher levels' samples the model uses (the posterior's where observed)
            higher = self._upsampled(zs, level, slice(None)) if self.hparams.prior_uses_higher_latents else []
            mean, logvar = self.priors[level].distribution(h, higher)
            out.update(mean_p=mean, logvar_p=logvar)
            if observed < steps:
                eps = noise("p", level, (mean.shape[0], steps - observed, *shape)).to(mean)
                parts.append(mean[:, observed:] + eps * (0.5 * logvar[:, observed:]).exp())
            z = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
            out["z"] = z
            zs.append(z)
            dists.append(out)

        use_checkpoint = self.hparams.checkpoint_renderer and torch.is_grad_enabled()
        x = emb_prev[5]
        for i, block in enumerate(self.renderer):
            if i in self.latent_block:
                x = torch.cat([x, zs[self.latent_block.index(i)].to(x.dtype)], dim=2)
            h, states["render"][i] = _run_lstm(block.lstm, x, states["render"][i], use_checkpoint)
            if use_checkpoint:
                x = _time_flat(lambda v, m=block.up: checkpoint(m, v, use_reentrant=False), h)
            else:
                x = _time_flat(block.up, h)
        return x, dists, states

    # ------------------------------------------------------------------------------------------- training
    def _check_batch(self, x: Tensor) -> None:
        if x.ndim != 5 or tuple(x.shape[2:]) != (self.channels, self.image_size, self.image_size):
            raise ValueError(f"expected clips of shape (B, T, {self.channels}, {self.image_size}, {self.image_size}), "
                             f"got {tuple(x.shape)}")
        if x.shape[1] <= self.n_past:
            raise ValueError(f"training clips need more than n_past={self.n_past} frames, got T={x.shape[1]}")

    def beta_at(self, step: int, world_size: int = 1) -> float:
        """β at (0-based) optimiser step ``step``: ``beta``, or with ``beta_warmup_steps > 0`` the code's linear
        warm-up from 0 over ``beta_warmup_steps / world_size`` steps."""
        beta, warmup = self.hparams.beta, self.hparams.beta_warmup_steps
        if warmup == 0:
            return beta
        iters = warmup / world_size
        count = step + 1  # the code counts batches from 1
        return beta * count / iters if count < iters else beta

    def current_beta(self) -> float:
        """β of the current training step (:meth:`beta_at` of the trainer's step; ``beta`` outside training)."""
        if self._trainer is None:
            return self.hparams.beta
        return self.beta_at(self.trainer.global_step, self.trainer.world_size)

    def forward_loss(self, x: Tensor, noise: NoiseSource | None = None, beta: float | None = None) -> dict[str, Tensor]:
        """Teacher-forced pass over clips ``x (B, T, C, H, W)``, ``T > n_past``: the first ``n_past`` frames are
        the context, the other ``S = T - n_past`` are reconstructed from the posterior's latents.

        Returns ``loss``, ``rec``, ``kl`` (both averaged over the batch), ``recon (B, S, C, H, W)`` in [0, 1] and
        ``dists`` (per level, see :meth:`unroll`). ``noise`` defaults to ``torch.randn`` (global generator).
        """
        self._check_batch(x)
        if noise is None:
            noise = lambda kind, level, shape: torch.randn(shape, device=x.device, dtype=x.dtype)  # noqa: E731
        emb = self.embed(x)
        logits, dists, _ = self.unroll([e[:, self.n_past - 1 : -1] for e in emb], [e[:, self.n_past :] for e in emb],
                                       self.initial_states(emb), noise)
        with torch.autocast(x.device.type, enabled=False):
            recon = torch.sigmoid(float32_or_wider(logits))
            target = float32_or_wider(x[:, self.n_past :])
            kind = self.hparams.rec_loss
            if kind == "l1":
                rec = F.l1_loss(recon, target, reduction="none")
            elif kind == "l2":
                rec = F.mse_loss(recon, target, reduction="none")
            else:
                rec = F.binary_cross_entropy(recon, target, reduction="none")
            rec = rec.flatten(1).sum(1).mean()
            kl = sum(self._log_ratio(d).flatten(1).sum(1) for d in dists).mean()
        beta = self.current_beta() if beta is None else beta
        return {"loss": rec + beta * kl, "rec": rec, "kl": kl, "recon": recon, "dists": dists}

    @staticmethod
    def _log_ratio(d: dict[str, Tensor]) -> Tensor:
        """``log q(z) − log p(z)`` per element at the posterior sample ``z`` (the code's Monte-Carlo KL)."""
        z = float32_or_wider(d["z"])
        log_q = -0.5 * (d["logvar_q"] + (z - d["mean_q"]) ** 2 / d["logvar_q"].exp())
        log_p = -0.5 * (d["logvar_p"] + (z - d["mean_p"]) ** 2 / d["logvar_p"].exp())
        return log_q - log_p

    def training_step(self, batch: Tensor, batch_idx: int) -> Tensor:
        out = self.forward_loss(batch)
        self.log_dict({"train/loss": out["loss"], "train/rec": out["rec"], "train/kl": out["kl"]},
                      prog_bar=True, batch_size=batch.shape[0])
        self.log("train/beta", self.current_beta(), batch_size=batch.shape[0])
        return self._require_finite(out["loss"])

    def validation_step(self, batch: Tensor, batch_idx: int) -> None:
        super().validation_step(batch, batch_idx)
        if batch.shape[1] > self.n_past:
            out = self.forward_loss(batch[:, : self.n_past + self.n_future], beta=self.hparams.beta)
            self.log_dict({"val/loss": out["loss"], "val/rec": out["rec"], "val/kl": out["kl"]},
                          batch_size=batch.shape[0], sync_dist=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)

    def learning_rate(self, step: int, world_size: int, batch_size: int) -> float:
        """The code's learning rate at (0-based) optimiser step ``step``: ``lr`` in single-process training; under
        ``world_size > 1`` processes of ``batch_size`` clips each, a linear warm-up from ``lr`` to
        ``lr · batch_size · world_size / lr_reference_batch`` over ``lr_warmup_steps / world_size`` steps."""
        lr = self.hparams.lr
        if world_size <= 1:
            return lr
        target = lr * batch_size * world_size / self.hparams.lr_reference_batch
        iters = self.hparams.lr_warmup_steps / world_size
        count = step + 1  # the code counts batches from 1
        return lr + count * (target - lr) / iters if count < iters else target

    # ------------------------------------------------------------------------------------------- sampling
    def check_predict_options(self, context: Tensor, n_future: int, **options) -> dict:
        procedure = options.get("procedure", "recurrent")
        if procedure not in ("recurrent", "rerun"):
            raise ValueError(f"procedure must be 'recurrent' or 'rerun', got {procedure!r}")
        return {"procedure": procedure}

    def sample_future(
        self, context: Tensor, n_future: int, num_samples: int, generator: torch.Generator,
        procedure: str = "recurrent",
    ) -> Tensor:
        def noise(kind: str, level: int, shape: tuple[int, ...]) -> Tensor:
            return torch.randn(shape, generator=generator, device=context.device, dtype=context.dtype)

        emb = self.embed(context)  # once per clip, as the init nets below
        states = {k: [tuple(t.repeat_interleave(num_samples, dim=0) for t in state) for state in v]
                  for k, v in self.initial_states(emb).items()}
        emb = [e.repeat_interleave(num_samples, dim=0) for e in emb]
        if procedure == "rerun":
            out = self._sample_rerun(context.repeat_interleave(num_samples, dim=0), emb, states, n_future, noise)
        else:
            out = self.rollout(emb, n_future, noise, states)
        return out.view(context.shape[0], num_samples, n_future, *out.shape[2:])

    def rollout(self, emb: list[Tensor], n_future: int, noise: NoiseSource,
                states: dict[str, list[State]] | None = None) -> Tensor:
        """The O(T) sampler: embeddings ``(N, T_ctx, ...)`` of the context (``T_ctx >= n_past``) → ``n_future``
        frames ``(N, n_future, C, H, W)`` in [0, 1], one step at a time with the recurrent states carried forward.
        ``states``: the context's :meth:`initial_states` (computed from ``emb`` when ``None``)."""
        states = self.initial_states(emb) if states is None else states
        n_ctx, t_ctx = self.n_past, emb[0].shape[1]
        if t_ctx > n_ctx:  # later context frames: run through the model with the posterior's latents
            _, _, states = self.unroll([e[:, n_ctx - 1 : -1] for e in emb], [e[:, n_ctx:] for e in emb], states, noise)
        prev = [e[:, -1:] for e in emb]
        frames = []
        for t in range(n_future):
            logits, _, states = self.unroll(prev, None, states, noise)
            frame = torch.sigmoid(float32_or_wider(logits))
            frames.append(frame)
            if t + 1 < n_future:
                prev = self.embed(frame.to(logits.dtype))
        return torch.cat(frames, dim=1)

    def _sample_rerun(self, context: Tensor, emb: list[Tensor], states: dict[str, list[State]], n_future: int,
                      noise: NoiseSource) -> Tensor:
        """The released O(T²) sampler: for every new frame, the whole model runs again from the context over the
        frames kept so far, with fresh latents for every step; only the newest frame is kept. ``states``: the
        context's :meth:`initial_states` (the same for every pass)."""
        n_ctx, t_ctx = self.n_past, context.shape[1]
        frames = context
        for t in range(n_future):
            if t > 0:
                emb = self.embed(frames)
            observed = [e[:, n_ctx:t_ctx] for e in emb] if t_ctx > n_ctx else None
            logits, _, _ = self.unroll([e[:, n_ctx - 1 :] for e in emb], observed, states, noise)
            frames = torch.cat([frames, torch.sigmoid(float32_or_wider(logits[:, -1:])).to(frames.dtype)], dim=1)
        return frames[:, t_ctx:]


@register_model("vrnn")
class VRNN(ImprovedVRNN):
    """Improved Conditional VRNN with one latent level (the code's ``--model vrnn``); see :class:`ImprovedVRNN`."""

    latent_levels = 1


@register_model("vrnn_hier")
class VRNNHier(ImprovedVRNN):
    """Improved Conditional VRNN with three latent levels (1×1, 8×8, 32×32; the code's ``--model vrnn_hier``);
    see :class:`ImprovedVRNN`."""

    latent_levels = 3
