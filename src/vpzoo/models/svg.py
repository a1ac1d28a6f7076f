"""SVG-FP and SVG-LP: Stochastic Video Generation with a Learned Prior.

Paper: Emily Denton and Rob Fergus, "Stochastic Video Generation with a Learned Prior", ICML 2018,
arXiv:1802.07687. Official code: https://github.com/edenton/svg (PyTorch 0.3).

Architecture and loss follow the official code (sheet ``models-drnet-svg-vrnn.md`` §2):

- frame encoder/decoder: DCGAN-64 (SM-MNIST) or VGG-64 (KTH, BAIR) with U-Net skips, ``|h| = g_dim = 128``;
- frame predictor ``LSTM_θ``: Linear(g+z → 256) → 2 × LSTM(256) → Linear(256 → g) → tanh;
- posterior ``LSTM_φ`` q(z_t | x_{1:t}) and, for SVG-LP, learned prior ``LSTM_ψ`` p(z_t | x_{1:t-1}):
  Linear → 1 × LSTM(256) → (μ, log σ²) heads; SVG-FP uses the fixed prior N(0, I);
- loss = Σ_t MSE_t + β Σ_t KL_t over every frame after the first (context frames included), where MSE_t is the
  per-pixel mean and KL_t is summed over z and divided by the batch size, exactly as the official scripts compute
  it (β = 1e-4 on SM-MNIST and BAIR, 1e-6 on KTH); fully teacher-forced; gradients flow into both q and p_ψ;
- Adam(lr 2e-3, β1 0.9, β2 0.999). The official code keeps one Adam per module, all with the same settings and
  stepped every iteration; that is the same update as the single Adam used here. The rate is constant (no
  schedule); resuming a run with ``--ckpt_path`` and a different ``lr`` applies the new rate and keeps Adam's
  moment estimates (Lightning alone would restore the saved rate);
- weight init of the official ``utils.init_weights`` (N(0, 0.02) conv/linear weights, BN γ ~ N(1, 0.02)).

Deviations and options (all documented choices):

- **Skip frame.** The paper says the decoder's skips come from the *last* context frame; the official code takes
  them from the *penultimate* one (edenton/svg#1). vpzoo follows the paper by default (``skip_frame="last"``) and
  offers the official behaviour as ``skip_frame="penultimate"`` (use it with ported official weights) and the
  official ``--last_frame_skip`` flag as ``skip_frame="previous"``.
- **Batching and BatchNorm.** The official code encodes every frame twice per step (once as the predictor's input,
  once as the posterior's target) and calls the encoder/decoder once per time step, so BatchNorm statistics are
  taken over the B frames of one time step. vpzoo encodes all ``B·T`` frames of a batch once, in one call, and
  decodes all ``B·(T-1)`` predictions in one call: training-mode BatchNorm statistics are taken over all frames of
  the clip batch (and running statistics are updated once per step instead of 2T-1 times). Frames that share a
  skip frame share the skip half of each concatenated decoder convolution, computed once
  (:func:`~vpzoo.models.blocks.concat_skip_conv`; the same function and parameters as the concatenation).
- **Sampling.** ``predict`` draws all samples in one batch: the context is encoded once per clip and the recurrent
  states are repeated per sample, then each future step decodes and re-encodes ``B·N`` frames at once. It runs in
  eval mode (BatchNorm running statistics), as the contract requires. The official SVG-LP generation script keeps
  the encoder/decoder in *train* mode (batch statistics of the test batch of 100 clips): ``predict(...,
  batchnorm="batch")`` reproduces that for ported official weights (statistics over the ``B`` clips of one time
  step and one sample, as the official loop batches them; running statistics untouched; needs ``B >= 2``, and
  each clip's prediction then depends on the other clips of the batch). SVG-FP conditions on the posterior *mean* during the context (as the
  official generation does); SVG-LP samples z from the posterior during the context and from the learned prior
  afterwards.
- **Recurrent states** are sized from the input (the official code fixes them to ``batch_size``), and the LSTMs
  run as fused ``nn.LSTM`` (same parameters as stacked ``nn.LSTMCell`` s) over whole teacher-forced sequences.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from vpzoo.models.base import VideoPredictionModel
from vpzoo.models.blocks import GaussianRecurrent, RecurrentMLP, build_frame_codec, denton_init, gaussian_kl
from vpzoo.registry import register_model

__all__ = ["SVG", "SVGLP", "SVGFP"]

SkipFrame = Literal["last", "penultimate", "previous"]


class SVG(VideoPredictionModel):
    """Shared implementation of SVG-LP (learned prior) and SVG-FP (fixed prior); use :class:`SVGLP`/:class:`SVGFP`.

    Defaults are the official SM-MNIST settings.

    Args:
        image_size: frame size (64 for the 64-px encoders).
        channels: channels per frame.
        n_past: context frames (5 SM-MNIST, 10 KTH, 2 BAIR).
        n_future: future frames in training clips (10 in the paper).
        frame_codec: "dcgan" (SM-MNIST) or "vgg" (KTH, BAIR) encoder/decoder.
        codec_width: channels of the codec's first block (64 as in the paper; smaller only for quick tests).
        g_dim: size of the frame encoding h (128).
        z_dim: latent size per step (10 SM-MNIST, 32 KTH in the paper / 24 in the README, 64 BAIR).
        rnn_size: LSTM width (256).
        predictor_layers: LSTM layers of the frame predictor (2).
        posterior_layers: LSTM layers of the posterior (1).
        prior_layers: LSTM layers of the learned prior (1; unused by SVG-FP).
        beta: KL weight β (1e-4 SM-MNIST and BAIR, 1e-6 KTH).
        lr: Adam learning rate (2e-3).
        adam_beta1: Adam β1 (0.9).
        skip_frame: which frame feeds the decoder's skips for future frames: "last" context frame (paper,
            default), "penultimate" context frame (official code), or "previous" frame (official
            ``--last_frame_skip``).
        val_num_samples, metric_protocol, val_seed: see :class:`~vpzoo.models.base.VideoPredictionModel`.
    """

    learned_prior: bool = True
    predict_options = {
        "batchnorm": "'running' (default): BatchNorm uses its running statistics (eval mode); 'batch': the encoder "
        "and decoder normalise with the statistics of the B clips of each time step and sample, as the official "
        "generate_svg_lp.py does (B >= 2)",
    }
    paper = {
        "title": "Stochastic Video Generation with a Learned Prior",
        "authors": "Emily Denton, Rob Fergus",
        "venue": "ICML 2018",
        "arxiv": "1802.07687",
        "url": "https://arxiv.org/abs/1802.07687",
    }

    def __init__(
        self,
        image_size: int = 64,
        channels: int = 1,
        n_past: int = 5,
        n_future: int = 10,
        frame_codec: Literal["dcgan", "vgg"] = "dcgan",
        codec_width: int = 64,
        g_dim: int = 128,
        z_dim: int = 10,
        rnn_size: int = 256,
        predictor_layers: int = 2,
        posterior_layers: int = 1,
        prior_layers: int = 1,
        beta: float = 1e-4,
        lr: float = 2e-3,
        adam_beta1: float = 0.9,
        skip_frame: SkipFrame = "last",
        val_num_samples: int = 5,
        metric_protocol: str = "standard",
        val_seed: int = 0,
    ) -> None:
        super().__init__(
            image_size=image_size, channels=channels, n_past=n_past, n_future=n_future,
            val_num_samples=val_num_samples, metric_protocol=metric_protocol, val_seed=val_seed,
        )
        self.save_hyperparameters()
        if skip_frame not in ("last", "penultimate", "previous"):
            raise ValueError(f"skip_frame must be 'last', 'penultimate' or 'previous', got {skip_frame!r}")
        if beta < 0:
            raise ValueError(f"beta must be >= 0, got {beta}")
        self.encoder, self.decoder = build_frame_codec(frame_codec, g_dim, channels, image_size, codec_width)
        self.frame_predictor = RecurrentMLP(g_dim + z_dim, g_dim, rnn_size, predictor_layers, tanh=True)
        self.posterior = GaussianRecurrent(g_dim, z_dim, rnn_size, posterior_layers)
        self.prior = GaussianRecurrent(g_dim, z_dim, rnn_size, prior_layers) if self.learned_prior else None
        for module in (self.encoder, self.decoder, self.frame_predictor, self.posterior, self.prior):
            if module is not None:
                module.apply(denton_init)

    # ------------------------------------------------------------------------------------------ helpers
    def _encode(self, frames: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Encode ``(B, T, C, H, W)`` in one batched call → ``h (B, T, g)`` and skips ``(B, T, c, h, w)``."""
        b, t = frames.shape[:2]
        h, skips = self.encoder(frames.reshape(b * t, *frames.shape[2:]))
        return h.view(b, t, -1), [s.view(b, t, *s.shape[1:]) for s in skips]

    def _skip_source(self, target: int, n_context: int) -> int:
        """Index of the frame whose encoder skips decode frame ``target`` (0-based) after ``n_context`` frames."""
        previous = target - 1
        if self.hparams.skip_frame == "previous":
            return previous
        last_used = n_context - 1 if self.hparams.skip_frame == "last" else max(n_context - 2, 0)
        return min(previous, last_used)

    def _check_batch(self, batch: Tensor) -> None:
        if batch.ndim != 5 or batch.shape[2:] != (self.channels, self.image_size, self.image_size):
            raise ValueError(
                f"expected batches of shape (B, T, {self.channels}, {self.image_size}, {self.image_size}), "
                f"got {tuple(batch.shape)}"
            )
        if batch.shape[1] < 2:
            raise ValueError(f"training clips need at least 2 frames, got T={batch.shape[1]}")

    # ------------------------------------------------------------------------------------------- training
    def forward_loss(self, x: Tensor) -> dict[str, Tensor]:
        """Teacher-forced pass over clips ``x (B, T, C, H, W)``; returns ``loss``, ``mse``, ``kl`` and ``recon``.

        ``recon`` holds the predictions of frames ``1 … T-1``, ``(B, T-1, C, H, W)``.
        """
        self._check_batch(x)
        b, t = x.shape[:2]
        h, skips = self._encode(x)
        mu_q, logvar_q, _ = self.posterior(h[:, 1:])
        z = mu_q + torch.randn_like(mu_q) * (0.5 * logvar_q).exp()
        if self.prior is not None:
            mu_p, logvar_p, _ = self.prior(h[:, :-1])
        else:
            mu_p, logvar_p = torch.zeros_like(mu_q), torch.zeros_like(logvar_q)
        g_pred, _ = self.frame_predictor(torch.cat([h[:, :-1], z], dim=-1))
        # Frames 1 .. T-1 take their skips from few distinct frames (every future frame from the same context
        # frame): pass those maps once per clip and an index, so the decoder does their half of each skip
        # convolution once per distinct frame instead of once per decoded frame.
        sources = [self._skip_source(i, self.n_past) for i in range(1, t)]
        distinct = sorted(set(sources))
        skip_maps = [s[:, distinct].flatten(0, 1) for s in skips]  # (B·U, c, h, w)
        slot = torch.tensor([distinct.index(src) for src in sources], device=x.device)
        skip_index = (torch.arange(b, device=x.device)[:, None] * len(distinct) + slot).flatten()
        recon = self.decoder(g_pred.flatten(0, 1), skip_maps, skip_index).view(b, t - 1, *x.shape[2:])
        mse = F.mse_loss(recon, x[:, 1:], reduction="none").mean(dim=(0, 2, 3, 4)).sum()
        kl = gaussian_kl(mu_q, logvar_q, mu_p, logvar_p).sum() / b
        loss = mse + self.hparams.beta * kl
        return {"loss": loss, "mse": mse, "kl": kl, "recon": recon}

    def training_step(self, batch: Tensor, batch_idx: int) -> Tensor:
        out = self.forward_loss(batch)
        steps = batch.shape[1] - 1
        self.log_dict(
            {"train/loss": out["loss"], "train/mse": out["mse"] / steps, "train/kl": out["kl"] / steps},
            prog_bar=True, batch_size=batch.shape[0],
        )
        return out["loss"]

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, betas=(self.hparams.adam_beta1, 0.999))

    def learning_rate(self, step: int, world_size: int, batch_size: int) -> float:
        """The configured ``lr`` at every step (no schedule, as the code), so that ``vpzoo fit --ckpt_path last.ckpt
        --model.init_args.lr 8e-4`` continues at 8e-4 with Adam's moments kept."""
        return self.hparams.lr

    # ------------------------------------------------------------------------------------------- sampling
    def check_predict_options(self, context: Tensor, n_future: int, **options) -> dict:
        mode = options.get("batchnorm", "running")
        if mode not in ("running", "batch"):
            raise ValueError(f"batchnorm must be 'running' or 'batch', got {mode!r}")
        if mode == "batch" and context.shape[0] < 2:
            raise ValueError(
                f"batchnorm='batch' normalises over the clips of the batch (the official script used 100); got "
                f"{context.shape[0]} clip: pass (B, T, C, H, W) with B >= 2")
        return {"batchnorm": mode}

    def sample_future(
        self, context: Tensor, n_future: int, num_samples: int, generator: torch.Generator,
        batchnorm: str = "running",
    ) -> Tensor:
        if batchnorm == "batch":
            with _batch_statistics(self.encoder, self.decoder):
                return self._sample(context, n_future, num_samples, generator, by_sample=True)
        return self._sample(context, n_future, num_samples, generator, by_sample=False)

    def _sample(self, context: Tensor, n_future: int, num_samples: int, generator: torch.Generator,
                by_sample: bool) -> Tensor:
        """``sample_future``; ``by_sample`` runs the codec on the ``B`` frames of one time step and one sample per
        call (the official loop's batches, for batch-statistics BatchNorm) instead of all frames at once."""
        b, n_ctx = context.shape[:2]
        n = num_samples
        if by_sample:
            per_step = [self.encoder(context[:, t]) for t in range(n_ctx)]
            h_ctx = torch.stack([h for h, _ in per_step], dim=1)
            skips_ctx = [torch.stack([sk[i] for _, sk in per_step], dim=1) for i in range(len(per_step[0][1]))]
        else:
            h_ctx, skips_ctx = self._encode(context)
        h_rep = h_ctx.repeat_interleave(n, dim=0)  # (B·N, Tc, g), sample-major within each clip
        predictor_state = prior_state = None
        if n_ctx > 1:  # warm the recurrent states on the context, as in training
            mu_q, logvar_q, _ = self.posterior(h_rep[:, 1:])
            if self.learned_prior:
                eps = torch.randn(mu_q.shape, generator=generator, device=mu_q.device, dtype=mu_q.dtype)
                z_ctx = mu_q + eps * (0.5 * logvar_q).exp()
                _, _, prior_state = self.prior(h_rep[:, :-1])
            else:
                z_ctx = mu_q
            _, predictor_state = self.frame_predictor(torch.cat([h_rep[:, :-1], z_ctx], dim=-1), predictor_state)

        # Skips of a context frame stay per clip (B rows) and are shared by the clip's N samples via skip_index.
        skip_mode = self.hparams.skip_frame
        skips = [s[:, self._skip_source(n_ctx, n_ctx)] for s in skips_ctx]
        skip_index = torch.arange(b, device=context.device).repeat_interleave(n)
        h_in = h_rep[:, -1]
        frames = []
        for k in range(n_future):
            if self.learned_prior:
                mu_p, logvar_p, prior_state = self.prior(h_in[:, None], prior_state)
                eps = torch.randn(mu_p.shape, generator=generator, device=mu_p.device, dtype=mu_p.dtype)
                z = (mu_p + eps * (0.5 * logvar_p).exp())[:, 0]
            else:
                z = torch.randn(
                    (b * n, self.hparams.z_dim), generator=generator, device=h_in.device, dtype=h_in.dtype
                )
            g, predictor_state = self.frame_predictor(torch.cat([h_in, z], dim=-1)[:, None], predictor_state)
            if by_sample:
                frame = _rows_by_sample(
                    lambda rows: self.decoder(g[rows, 0], skips if skip_index is not None else [s[rows] for s in skips],
                                              None if skip_index is None else skip_index[rows]), b, n)
            else:
                frame = self.decoder(g[:, 0], skips, skip_index)
            frames.append(frame)
            if k + 1 < n_future:
                if by_sample:
                    encoded = _rows_by_sample(lambda rows: self.encoder(frame[rows]), b, n)
                    h_in, new_skips = encoded[0], encoded[1:]
                else:
                    h_in, new_skips = self.encoder(frame)
                if skip_mode == "previous":
                    skips, skip_index = new_skips, None
        out = torch.stack(frames, dim=1)  # (B·N, T_f, C, H, W)
        return out.view(b, n, n_future, *out.shape[2:])


def _rows_by_sample(fn, b: int, n: int):
    """Apply ``fn`` to the rows of each sample (rows ``k, N + k, 2N + k, ...`` of a ``B·N`` batch, clip-major) and
    reassemble; ``fn`` returns a tensor or an encoder's ``(h, skips)``. Returns a tensor, or ``[h, *skips]``."""
    order = torch.arange(b * n).view(b, n).t()  # order[k]: the B rows of sample k
    parts = []
    for rows in order:
        out = fn(rows)
        parts.append([out] if isinstance(out, Tensor) else [out[0], *out[1]])
    results = []
    for i in range(len(parts[0])):
        first = parts[0][i]
        full = first.new_empty((b * n, *first.shape[1:]))
        for rows, part in zip(order, parts):
            full[rows] = part[i]
        results.append(full)
    return results[0] if len(results) == 1 else results


class _batch_statistics:
    """Context manager: the BatchNorm layers of ``modules`` normalise with batch statistics and leave their running
    statistics untouched (train mode with ``track_running_stats=False``); restored on exit."""

    def __init__(self, *modules: torch.nn.Module) -> None:
        self.norms = [m for module in modules for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]

    def __enter__(self) -> None:
        self.saved = [(m.training, m.track_running_stats) for m in self.norms]
        for m in self.norms:
            m.train()
            m.track_running_stats = False

    def __exit__(self, *exc) -> None:
        for m, (training, track) in zip(self.norms, self.saved):
            m.train(training)
            m.track_running_stats = track


@register_model("svg_lp")
class SVGLP(SVG):
    """SVG-LP: SVG with the learned prior p_ψ(z_t | x_{1:t-1}). See :mod:`vpzoo.models.svg` for details."""

    learned_prior = True


@register_model("svg_fp")
class SVGFP(SVG):
    """SVG-FP: SVG with the fixed prior N(0, I). See :mod:`vpzoo.models.svg` for details."""

    learned_prior = False
