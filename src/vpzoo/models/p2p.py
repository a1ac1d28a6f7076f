"""P2P: point-to-point video generation (a start frame and a target end frame, any length in between).

Paper: Tsun-Hsuan Wang*, Yen-Chi Cheng*, Chieh Hubert Lin, Hwann-Tzong Chen, Min Sun, "Point-to-Point Video
Generation", ICCV 2019, arXiv:1904.02912. Official code: https://github.com/yccyenchicheng/p2pvg (PyTorch 1.0).

P2P is SVG-LP (:mod:`vpzoo.models.svg`) conditioned on a control point, the end frame ``x_T`` (sheet
``models-p2p-ddpae-odevideo.md`` §1). Architecture and training follow the official code:

- frame encoder/decoder: the DCGAN-64 (SM-MNIST) or VGG-64 (BAIR) codec with U-Net skips of
  :mod:`vpzoo.models.blocks`, ``|h| = g_dim = 128``; the decoder's skips come from the start frame (the last
  context frame; ``last_frame_skip=True``: from the previous frame, the official flag);
- **global descriptor** ``c = Enc(x_T)`` (the same encoder, not detached), fed to the posterior and the prior;
- **time counter** ``(τ_t, Δ_t) = ((T - t + 1)/T, (t - t_prev)/T)`` (time left to the control point, time since the
  last processed step), fed to all three LSTMs;
- frame predictor: Linear(g + z + 2 → 256) → 2 × LSTM(256) → Linear(256 → g) → tanh, input ``[h_{t-1}, z_t, τ, Δ]``;
  posterior q(z_t): Linear(2g + 2 → 256) → LSTM(256) → (μ, log σ²), input ``[Enc(x_t), c, τ, Δ]``; learned prior
  p(z_t): the same on ``[Enc(x_{t-1}), c, τ, Δ]``; fully teacher-forced;
- losses per processed step ``t`` of a clip ``x_0 … x_T``: ``MSE_t`` (per-pixel mean), ``KL_t`` (summed over z,
  divided by the batch size), the **alignment** loss and, at ``t = T`` only, the **control-point consistency**
  ``CPC = MSE(Dec(FP([h_{T-1}, z^p_T, τ_T, Δ_T])), x_T)`` with ``z^p_T`` sampled from the *prior*;
- **two-stage update** of every step: stage A updates encoder, decoder, frame predictor and posterior with
  ``L_A = Σ MSE + β Σ KL + w_align Σ align``; stage B updates only the prior with ``L_B = Σ KL + w_cpc CPC`` (KL weight
  1, not β). Both gradients are taken at the same parameters. vpzoo computes them in one backward pass of
  ``L_A(prior's parameters held constant) + L_B(everything but the prior held constant)``: the prior runs a second
  time with its parameters detached for the KL of stage A and on detached inputs for the KL of stage B, and the
  CPC frame is decoded with detached frame-predictor and decoder parameters. Each parameter gets exactly the
  gradient of its stage, so a single Adam is the official update (five Adams with the same settings, each stepped
  once per iteration), and DDP, gradient accumulation and mixed precision work unchanged;
- **skip-frame training**: step ``t`` is dropped (no encoder, no LSTM step, no loss) when ``u_t <= skip_prob`` with
  ``u_t ~ U(0, 1)``, ``t >= n_past``, ``t ∉ {1, T}`` and fewer than ``L · skip_prob`` steps were dropped; one pattern
  per batch;
- **dynamic length**: each training batch is cut to ``L ~ U{max_seq_len - 2 delta_len, …, max_seq_len}`` frames,
  its last frame being the control point;
- Adam(lr 1e-3, β1 0.9, β2 0.999), constant rate; weight init of Denton's ``init_weights`` (LSTMs keep PyTorch's).

Defaults are the official README's SM-MNIST command (``--num_digits 2 --batch_size 100 --weight_cpc 100
--weight_align 0.5 --skip_prob 0.5``); ``train.py``'s own defaults are ``weight_cpc 1000, weight_align 0,
skip_prob 0.1, batch_size 22``.

Equality with the official code (float64, the official ``P2PModel`` next to this one with the same weights, noise and
skip patterns; DCGAN-64 and VGG-64, with and without skipped steps and ``last_frame_skip``): with eval-mode
BatchNorm the four loss terms agree to 1.7e-15, the gradients of both stages to 2.6e-16 (largest gradient 0.21) and
``p2p_generate(model_mode="full")`` frames to 1.1e-16; with training-mode BatchNorm and ``codec_batching="step"``
the loss terms agree to 8.9e-16, the gradients to 1.2e-13 (largest gradient 33) and the BatchNorm running
statistics to 6.7e-16; the default ``"clip"`` batching differs there (see below).

Code quirks reproduced by default, the paper's reading offered as an option:

- ``align_target="code"``: at each processed step after the first, the official code compares the previous step's
  predictor output ``ĥ_{t'}`` (B, g) with ``h[0]``, which is the **first sample's** encoding of the previous *input*
  frame ``Enc(x_{t'-1})``, broadcast over the batch; the last step's ``ĥ_T`` is never aligned.
  ``align_target="paper"`` aligns every step's ``ĥ_t`` with its own clip's ``Enc(x_t)`` (the paper's stated aim,
  the predictor's latent space matching the encoder's).
- ``cpc_state="code"``: the official code runs the frame predictor a second time at ``t = T`` (with the prior's
  ``z``) from its state *after* the posterior's step ``T``, i.e. the CPC frame is predicted after an extra LSTM
  step. ``cpc_state="paper"`` predicts it from the state before step ``T``, as generation does.

Other differences from the official code (documented choices):

- **Batching and BatchNorm** (``codec_batching``). The official code calls the encoder per time step (twice: input
  and target) and the decoder per step, so training-mode BatchNorm statistics are over the B frames of a step. By
  default (``"clip"``) vpzoo encodes the frames a batch needs once and decodes all predictions at once (as
  :mod:`vpzoo.models.svg` does): batch statistics are taken over all those frames and running statistics are
  updated once per step. ``codec_batching="step"`` makes the official calls in the official order (the same
  training-mode outputs and running statistics). In eval mode the two compute the same function.
- **Stage B's backward.** The official ``loss.backward(retain_graph=True)``, four optimiser steps, then
  ``prior_loss.backward()`` only ran on PyTorch 1.0, whose in-place Adam updates were not version-tracked: the
  second backward there multiplied by the *already updated* weights wherever autograd had saved a parameter. vpzoo
  takes stage B's gradient at the parameters of the step (on modern PyTorch the official order raises an error).
- **KL normalisation.** The official KL divides by the configured ``batch_size``; vpzoo divides by the actual batch
  size (the same for full batches).
- **Randomness.** The official code draws the length and skip pattern with unseeded numpy; vpzoo draws them from
  torch's global generator (seeded by ``seed_everything``).
- **Generation.** ``predict(frames, n_future, end_frame=...)`` conditions on all given context frames (the
  posterior's ``z`` during the context, as the official ``model_mode="full"`` does for ``i < n_past``), then samples
  ``z`` from the prior; the time counter uses ``T = T_ctx - 1 + n_future``, so the last returned frame is the
  generated control point. All samples are drawn in one batch, in eval mode. The decoder's skips come from the last
  context frame (the official generation takes them from ``x_{n_past-2}`` when ``n_past > 1``, unlike its
  training; identical at the default ``n_past = 1``). Test-time frame skipping (an official visualisation option)
  is not offered.
- **Recurrent states** are sized from the input, and the LSTMs run as fused ``nn.LSTM`` (same parameters as the
  official stacked ``nn.LSTMCell`` s) over the processed steps of a clip.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from vpzoo.models.base import VideoPredictionModel
from vpzoo.models.blocks import GaussianRecurrent, RecurrentMLP, build_frame_codec, denton_init, gaussian_kl
from vpzoo.registry import register_model

__all__ = ["P2P", "skipped_steps", "time_counter"]


def skipped_steps(length: int, uniforms: Tensor | np.ndarray, skip_prob: float, n_past: int = 1) -> list[bool]:
    """The official skip-frame rule for a clip of ``length`` frames ``x_0 … x_T`` (``T = length - 1``).

    Args:
        length: frames in the clip (>= 2).
        uniforms: ``(T,)`` draws of U(0, 1), ``uniforms[t - 1]`` for step ``t``.
        skip_prob: probability of dropping a step.
        n_past: context frames (steps ``t < n_past`` are never dropped).

    Returns:
        ``T`` booleans, entry ``t - 1`` true when step ``t`` is dropped: ``u_t <= skip_prob``, ``t >= n_past``,
        ``t`` is neither 1 nor ``T``, and fewer than ``length · skip_prob`` steps were dropped before.
    """
    last = length - 1
    skipped, count = [], 0
    for t in range(1, length):
        drop = (float(uniforms[t - 1]) <= skip_prob and t >= n_past and count < length * skip_prob
                and t != 1 and t != last)
        count += drop
        skipped.append(drop)
    return skipped


def time_counter(steps: list[int], last: int) -> Tensor:
    """Time inputs ``(K, 2)`` of the processed ``steps`` (increasing, >= 1) for a control point at index ``last``:
    column 0 ``τ_t = (T - t + 1)/T``, column 1 ``Δ_t = (t - t_prev)/T`` (``t_prev`` = previous processed step, 0
    before the first)."""
    t = torch.tensor(steps, dtype=torch.float64)
    prev = torch.cat([torch.zeros(1, dtype=torch.float64), t[:-1]])
    return torch.stack([(last - t + 1) / last, (t - prev) / last], dim=1)


def _detached(module: nn.Module) -> dict[str, Tensor]:
    return {name: p.detach() for name, p in module.named_parameters()}


@register_model("p2p")
class P2P(VideoPredictionModel):
    """P2P (Wang et al., ICCV 2019): SVG-LP with an end-frame descriptor, a time counter and the CPC loss.

    ``predict(frames, n_future, end_frame=...)`` requires the target end frame and returns ``n_future`` frames after
    the context, the last one being the generated control point. Defaults are the official SM-MNIST settings.

    Args:
        image_size: frame size (64 for the 64-px codecs).
        channels: channels per frame (1 SM-MNIST, 3 BAIR).
        n_past: context frames (1 in the official code: the start frame).
        frame_codec: "dcgan" (SM-MNIST) or "vgg" (BAIR) encoder/decoder.
        codec_width: channels of the codec's first block (64; smaller only for quick tests).
        g_dim: size of the frame encoding h and of the global descriptor (128).
        z_dim: latent size per step (10).
        rnn_size: LSTM width (256).
        predictor_layers: LSTM layers of the frame predictor (2).
        posterior_layers: LSTM layers of the posterior (1).
        prior_layers: LSTM layers of the learned prior (1).
        beta: KL weight β of stage A (1e-4); stage B weights the KL by 1.
        weight_cpc: weight of the CPC loss in stage B (README SM-MNIST: 100; ``train.py`` default 1000).
        weight_align: weight of the alignment loss in stage A (README SM-MNIST: 0.5; default 0).
        skip_prob: probability of dropping a training step (README SM-MNIST: 0.5; default 0.1).
        max_seq_len: longest training clip (30); training batches must hold at least this many frames.
        delta_len: training lengths are ``U{max_seq_len - 2 delta_len, …, max_seq_len}`` (5).
        lr: Adam learning rate (1e-3).
        adam_beta1: Adam β1 (0.9).
        last_frame_skip: decoder skips from the previous frame instead of the start frame (official flag).
        align_target: "code" (official quirk, default) or "paper"; see the module docstring.
        cpc_state: "code" (official, default) or "paper"; see the module docstring.
        codec_batching: "clip" (default: the frames of a batch through the encoder/decoder in one call) or "step"
            (the official calls, B frames each: its training-mode BatchNorm statistics; slower).
        val_num_samples, metric_protocol, val_seed: see :class:`~vpzoo.models.base.VideoPredictionModel`.
    """

    paper = {
        "title": "Point-to-Point Video Generation",
        "authors": "Tsun-Hsuan Wang, Yen-Chi Cheng, Chieh Hubert Lin, Hwann-Tzong Chen, Min Sun",
        "venue": "ICCV 2019",
        "arxiv": "1904.02912",
        "url": "https://arxiv.org/abs/1904.02912",
    }
    predict_options = {
        "end_frame": "the target end frame (control point), (C, H, W) for every clip or (B, C, H, W) one per clip, "
                     "same dtype and range rules as frames; required",
    }

    def __init__(
        self,
        image_size: int = 64,
        channels: int = 1,
        n_past: int = 1,
        frame_codec: Literal["dcgan", "vgg"] = "dcgan",
        codec_width: int = 64,
        g_dim: int = 128,
        z_dim: int = 10,
        rnn_size: int = 256,
        predictor_layers: int = 2,
        posterior_layers: int = 1,
        prior_layers: int = 1,
        beta: float = 1e-4,
        weight_cpc: float = 100.0,
        weight_align: float = 0.5,
        skip_prob: float = 0.5,
        max_seq_len: int = 30,
        delta_len: int = 5,
        lr: float = 1e-3,
        adam_beta1: float = 0.9,
        last_frame_skip: bool = False,
        align_target: Literal["code", "paper"] = "code",
        cpc_state: Literal["code", "paper"] = "code",
        codec_batching: Literal["clip", "step"] = "clip",
        val_num_samples: int = 5,
        metric_protocol: str = "standard",
        val_seed: int = 0,
    ) -> None:
        if not isinstance(max_seq_len, int) or not isinstance(delta_len, int) or delta_len < 0:
            raise ValueError(f"max_seq_len and delta_len must be integers (delta_len >= 0), got {max_seq_len!r}, "
                             f"{delta_len!r}")
        if max_seq_len - 2 * delta_len < n_past + 1:
            raise ValueError(f"the shortest training clip, max_seq_len - 2*delta_len = {max_seq_len - 2 * delta_len}, "
                             f"must hold n_past={n_past} context frames and an end frame")
        super().__init__(
            image_size=image_size, channels=channels, n_past=n_past, n_future=max_seq_len - n_past,
            val_num_samples=val_num_samples, metric_protocol=metric_protocol, val_seed=val_seed,
        )
        self.save_hyperparameters()
        for name, value in (("beta", beta), ("weight_cpc", weight_cpc), ("weight_align", weight_align)):
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        if not 0.0 <= skip_prob <= 1.0:
            raise ValueError(f"skip_prob must lie in [0, 1], got {skip_prob}")
        if align_target not in ("code", "paper"):
            raise ValueError(f"align_target must be 'code' or 'paper', got {align_target!r}")
        if cpc_state not in ("code", "paper"):
            raise ValueError(f"cpc_state must be 'code' or 'paper', got {cpc_state!r}")
        if codec_batching not in ("clip", "step"):
            raise ValueError(f"codec_batching must be 'clip' or 'step', got {codec_batching!r}")
        self.encoder, self.decoder = build_frame_codec(frame_codec, g_dim, channels, image_size, codec_width)
        self.frame_predictor = RecurrentMLP(g_dim + z_dim + 2, g_dim, rnn_size, predictor_layers, tanh=True)
        self.posterior = GaussianRecurrent(2 * g_dim + 2, z_dim, rnn_size, posterior_layers)
        self.prior = GaussianRecurrent(2 * g_dim + 2, z_dim, rnn_size, prior_layers)
        for module in (self.encoder, self.decoder, self.frame_predictor, self.posterior, self.prior):
            module.apply(denton_init)

    # ------------------------------------------------------------------------------------------ helpers
    def _skip_source(self, step: int) -> int:
        """Index of the frame whose encoder skips decode the prediction of frame ``step`` in training."""
        return step - 1 if self.hparams.last_frame_skip else min(step - 1, self.n_past - 1)

    def _check_batch(self, batch: Tensor, min_len: int = 2) -> None:
        if batch.ndim != 5 or batch.shape[2:] != (self.channels, self.image_size, self.image_size):
            raise ValueError(
                f"expected batches of shape (B, T, {self.channels}, {self.image_size}, {self.image_size}), "
                f"got {tuple(batch.shape)}"
            )
        if batch.shape[1] < max(min_len, self.n_past + 1):
            raise ValueError(f"clips need at least {max(min_len, self.n_past + 1)} frames, got T={batch.shape[1]}")

    def draw_length(self) -> int:
        """A training length ``L ~ U{max_seq_len - 2 delta_len, …, max_seq_len}`` (torch's global generator)."""
        high = self.hparams.max_seq_len
        return int(torch.randint(high - 2 * self.hparams.delta_len, high + 1, ()).item())

    # ------------------------------------------------------------------------------------------- training
    def forward_loss(
        self,
        x: Tensor,
        skipped: list[bool] | None = None,
        posterior_noise: Tensor | None = None,
        prior_noise: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """One teacher-forced pass over clips ``x (B, L, C, H, W)`` whose last frame ``x_T`` is the control point.

        Args:
            x: the clips, already cut to the training length ``L``.
            skipped: ``T = L - 1`` booleans (step ``t`` at ``t - 1``), see :func:`skipped_steps`; drawn if None.
            posterior_noise: ``(B, K, z_dim)`` standard normal noise of the posterior samples of the ``K`` processed
                steps; drawn if None.
            prior_noise: ``(B, z_dim)`` noise of the prior sample at ``t = T`` (the CPC frame); drawn if None.

        Returns:
            ``loss`` (the one scalar to backpropagate: its gradient is stage A's for the encoder, decoder, frame
            predictor and posterior and stage B's for the prior), ``loss_a`` and ``loss_b`` (the values of the two
            stages' losses), ``mse``, ``kl``, ``cpc``, ``align`` (sums over the processed steps, unweighted),
            ``recon`` ``(B, K, C, H, W)`` (the predictions of the processed steps), ``cpc_frame`` ``(B, C, H, W)``
            and ``steps`` ``(K,)`` (the processed steps ``t``).
        """
        self._check_batch(x)
        hp = self.hparams
        b, length = x.shape[:2]
        last = length - 1
        if skipped is None:
            skipped = skipped_steps(length, torch.rand(last), hp.skip_prob, self.n_past)
        if len(skipped) != last:
            raise ValueError(f"skipped must hold one flag per step (T={last}), got {len(skipped)}")
        steps = [t for t in range(1, length) if not skipped[t - 1]]
        k = len(steps)

        if hp.codec_batching == "clip":
            # Encode each frame the processed steps use (inputs x_{t-1}, targets x_t, the control point x_T) once.
            needed = sorted({t - 1 for t in steps} | set(steps) | {last})
            row = {frame: i for i, frame in enumerate(needed)}
            h_all, skips_all = self.encoder(x[:, needed].flatten(0, 1))
            h_all = h_all.view(b, len(needed), -1)
            skips_all = [s.view(b, len(needed), *s.shape[1:]) for s in skips_all]
            h_in = h_all[:, [row[t - 1] for t in steps]]
            h_target = h_all[:, [row[t] for t in steps]]
            descriptor = h_all[:, row[last]]
            cp_skips = [s[:, row[self._skip_source(last)]] for s in skips_all]
        else:  # the official call pattern: the end frame, then per step Enc(x_{t-1}) and Enc(x_t), B frames a call
            descriptor = self.encoder(x[:, last])[0]
            h_in_steps, h_target_steps, step_skips, skip = [], [], [], None
            for t in steps:
                h, new_skips = self.encoder(x[:, t - 1])
                if hp.last_frame_skip or t <= self.n_past:
                    skip = new_skips
                h_in_steps.append(h)
                h_target_steps.append(self.encoder(x[:, t])[0])
                step_skips.append(skip)
            h_in, h_target = torch.stack(h_in_steps, 1), torch.stack(h_target_steps, 1)
            cp_skips = step_skips[-1]
        descriptor = descriptor[:, None].expand(-1, k, -1)
        time = time_counter(steps, last).to(x)[None].expand(b, -1, -1)

        prior_in = torch.cat([h_in, descriptor, time], dim=-1)
        mu_q, logvar_q, _ = self.posterior(torch.cat([h_target, descriptor, time], dim=-1))
        if posterior_noise is None:
            posterior_noise = torch.randn_like(mu_q)
        z = mu_q + posterior_noise * (0.5 * logvar_q).exp()
        # Stage A sees the prior as a function of its inputs only; stage B trains the prior's parameters only.
        mu_pa, logvar_pa, _ = functional_call(self.prior, _detached(self.prior), (prior_in,))
        mu_p, logvar_p, _ = self.prior(prior_in.detach())

        predictor_in = torch.cat([h_in, z, time], dim=-1)
        if hp.cpc_state == "paper" and k > 1:
            g_head, state = self.frame_predictor(predictor_in[:, :-1])
            g_tail, state_after = self.frame_predictor(predictor_in[:, -1:], state)
            g_pred, cpc_state = torch.cat([g_head, g_tail], dim=1), state
        else:
            g_pred, state_after = self.frame_predictor(predictor_in)
            cpc_state = state_after if hp.cpc_state == "code" else None

        if hp.codec_batching == "clip":
            # Frames decoded with the same skip frame share the skip half of each skip convolution (computed once).
            sources = sorted({self._skip_source(t) for t in steps})
            skip_maps = [s[:, [row[f] for f in sources]].flatten(0, 1) for s in skips_all]
            slot = torch.tensor([sources.index(self._skip_source(t)) for t in steps], device=x.device)
            skip_index = (torch.arange(b, device=x.device)[:, None] * len(sources) + slot).flatten()
            recon = self.decoder(g_pred.flatten(0, 1), skip_maps, skip_index).view(b, k, *x.shape[2:])
        else:
            recon = torch.stack([self.decoder(g_pred[:, i], step_skips[i]) for i in range(k)], 1)
        targets = x[:, steps]
        mse = F.mse_loss(recon, targets, reduction="none").mean(dim=(0, 2, 3, 4)).sum()
        kl_a = gaussian_kl(mu_q, logvar_q, mu_pa, logvar_pa).sum() / b
        kl_b = gaussian_kl(mu_q.detach(), logvar_q.detach(), mu_p, logvar_p).sum() / b

        if hp.align_target == "code":  # first sample's Enc(x_{t'-1}) against every sample's ĥ_{t'}, t' before last
            align = ((h_in[:1, :-1] - g_pred[:, :-1]) ** 2).mean(dim=(0, 2)).sum()
        else:
            align = ((h_target - g_pred) ** 2).mean(dim=(0, 2)).sum()

        # CPC: the control point generated with the prior's z at t = T; only the prior's parameters learn from it.
        if prior_noise is None:
            prior_noise = torch.randn_like(mu_p[:, -1])
        z_prior = mu_p[:, -1] + prior_noise * (0.5 * logvar_p[:, -1]).exp()
        if cpc_state is not None:
            cpc_state = tuple(s.detach() for s in cpc_state)
        cpc_in = torch.cat([h_in[:, -1].detach(), z_prior, time[:, -1]], dim=-1)[:, None]
        g_cpc, _ = functional_call(self.frame_predictor, _detached(self.frame_predictor), (cpc_in, cpc_state))
        cp_skips = [s.detach() for s in cp_skips]
        cpc_frame = functional_call(self.decoder, _detached(self.decoder), (g_cpc[:, 0], cp_skips))
        cpc = F.mse_loss(cpc_frame, x[:, last])

        loss_a = mse + hp.beta * kl_a + hp.weight_align * align
        loss_b = kl_b + hp.weight_cpc * cpc
        return {
            "loss": loss_a + loss_b, "loss_a": loss_a.detach(), "loss_b": loss_b.detach(), "mse": mse,
            "kl": kl_a, "cpc": cpc, "align": align, "recon": recon, "cpc_frame": cpc_frame,
            "steps": torch.tensor(steps),
        }

    def training_step(self, batch: Tensor, batch_idx: int) -> Tensor:
        self._check_batch(batch, min_len=self.hparams.max_seq_len)
        length = self.draw_length()
        out = self.forward_loss(batch[:, :length])
        self.log_dict(  # per frame, as the official logs (divided by the clip length)
            {"train/loss": out["loss_a"], "train/prior_loss": out["loss_b"], "train/mse": out["mse"] / length,
             "train/kl": out["kl"] / length, "train/cpc": out["cpc"] / length, "train/align": out["align"] / length},
            prog_bar=True, batch_size=batch.shape[0],
        )
        return self._require_finite(out["loss"])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, betas=(self.hparams.adam_beta1, 0.999))

    def learning_rate(self, step: int, world_size: int, batch_size: int) -> float:
        """The configured ``lr`` at every step (no schedule, as the code; a resumed run takes the configured rate)."""
        return self.hparams.lr

    # ------------------------------------------------------------------------------------------- sampling
    def check_predict_options(self, context: Tensor, n_future: int, **options: Any) -> dict[str, Any]:
        """``end_frame`` is required: ``(C, H, W)`` (every clip) or ``(B, C, H, W)`` (one per clip; a numpy array may
        be channels-last), float in [0, 1] or uint8, the frames' size and channels; returned as ``(B, C, H, W)``."""
        if options.get("end_frame") is None:
            raise ValueError(
                "P2P generates towards a target end frame: pass end_frame=<(C, H, W) or (B, C, H, W) frame>, e.g. "
                "model.predict(frames, n_future, end_frame=clip[-1])"
            )
        end = options["end_frame"]
        if not isinstance(end, (Tensor, np.ndarray)):
            raise TypeError(f"end_frame must be a torch.Tensor or numpy.ndarray, got {type(end).__name__}")
        if end.ndim not in (3, 4):
            raise ValueError(
                f"end_frame must have shape (C, H, W) or (B, C, H, W), got a {end.ndim}-d array of shape "
                f"{tuple(end.shape)}"
            )
        # The frames' own checks (dtype, range, NaN, size, channels, channels-last numpy) on a one-frame clip.
        clip = end[None, None] if end.ndim == 3 else end[:, None]
        repeat = (1, max(self.n_past, 1)) + (1,) * (clip.ndim - 2)
        clip = np.tile(clip, repeat) if isinstance(clip, np.ndarray) else clip.repeat(*repeat)
        try:
            end = self.prepare_frames(clip)[:, 0]
        except (TypeError, ValueError) as error:
            raise type(error)(f"end_frame: {error}") from None
        b = context.shape[0]
        if end.shape[0] not in (1, b) or (end.shape[0] == 1 and options["end_frame"].ndim == 4 and b != 1):
            raise ValueError(
                f"end_frame holds {end.shape[0]} frame(s) for {b} clip(s): pass one (C, H, W) frame for all clips "
                f"or a (B={b}, C, H, W) batch"
            )
        return {"end_frame": end.expand(b, -1, -1, -1)}

    def sample_future(
        self, context: Tensor, n_future: int, num_samples: int, generator: torch.Generator,
        end_frame: Tensor | None = None,
    ) -> Tensor:
        """Generate ``n_future`` frames after ``context (B, T_ctx, C, H, W)`` towards ``end_frame (B, C, H, W)``; the
        last returned frame is the generated control point. Returns ``(B, num_samples, n_future, C, H, W)``."""
        if end_frame is None:
            raise ValueError("P2P.sample_future needs end_frame (B, C, H, W)")
        b, n_ctx = context.shape[:2]
        n = num_samples
        last = n_ctx - 1 + n_future
        h_ctx, skips_ctx = self.encoder(torch.cat([context.flatten(0, 1), end_frame]))
        descriptor = h_ctx[b * n_ctx:].repeat_interleave(n, dim=0)  # (B·N, g)
        h_ctx = h_ctx[: b * n_ctx].view(b, n_ctx, -1).repeat_interleave(n, dim=0)
        skips_ctx = [s[: b * n_ctx].view(b, n_ctx, *s.shape[1:]) for s in skips_ctx]
        time = time_counter(list(range(1, last + 1)), last).to(context)  # no skipped steps when generating

        def noise(like: Tensor) -> Tensor:
            return torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype)

        def with_time(h: Tensor, extra: Tensor, first: int, count: int) -> Tensor:
            return torch.cat([h, extra, time[first - 1: first - 1 + count][None].expand(h.shape[0], -1, -1)], -1)

        predictor_state = prior_state = None
        if n_ctx > 1:  # context steps 1 … T_ctx-1: teacher-forced, z from the posterior (official "full" mode)
            desc = descriptor[:, None].expand(-1, n_ctx - 1, -1)
            mu_q, logvar_q, _ = self.posterior(with_time(h_ctx[:, 1:], desc, 1, n_ctx - 1))
            _, _, prior_state = self.prior(with_time(h_ctx[:, :-1], desc, 1, n_ctx - 1))
            z_ctx = mu_q + noise(mu_q) * (0.5 * logvar_q).exp()
            _, predictor_state = self.frame_predictor(with_time(h_ctx[:, :-1], z_ctx, 1, n_ctx - 1))

        last_skip = self.hparams.last_frame_skip
        skips = [s[:, n_ctx - 1] for s in skips_ctx]
        skip_index = torch.arange(b, device=context.device).repeat_interleave(n)
        h_in = h_ctx[:, -1]
        frames = []
        for i in range(n_ctx, last + 1):
            mu_p, logvar_p, prior_state = self.prior(with_time(h_in[:, None], descriptor[:, None], i, 1), prior_state)
            z = (mu_p + noise(mu_p) * (0.5 * logvar_p).exp())[:, 0]
            g, predictor_state = self.frame_predictor(with_time(h_in[:, None], z[:, None], i, 1), predictor_state)
            frame = self.decoder(g[:, 0], skips, skip_index)
            frames.append(frame)
            if i < last:
                h_in, new_skips = self.encoder(frame)
                if last_skip:
                    skips, skip_index = new_skips, None
        out = torch.stack(frames, dim=1)
        return out.view(b, n, n_future, *out.shape[2:])

    # ---------------------------------------------------------------------------------------- validation
    def _evaluate_batch(self, batch: Tensor, batch_idx: int) -> None:
        """Each clip's last frame is the control point: generate frames ``n_past … T`` towards it and score them
        (the control point included) against the clip."""
        self._check_batch(batch)
        context, target = batch[:, : self.n_past], batch[:, self.n_past:]
        generator = torch.Generator(device=self.device)
        generator.manual_seed(self.val_seed + 1_000_003 * batch_idx + 7919 * self.global_rank)
        samples = self.sample_future(context, target.shape[1], self.val_num_samples, generator,
                                     end_frame=batch[:, -1])
        for metric in self.val_metrics.values():
            metric.update(samples, target)

    def predict_step(self, batch: Tensor, batch_idx: int) -> Tensor:
        """``vpzoo predict --config``: samples ``(B, N, T - n_past, C, H, W)`` from each clip's first ``n_past``
        frames towards its last frame."""
        self._check_batch(batch)
        generator = torch.Generator(device=self.device)
        generator.manual_seed(self.val_seed + 1_000_003 * batch_idx + 7919 * self.global_rank)
        return self.sample_future(batch[:, : self.n_past], batch.shape[1] - self.n_past, self.val_num_samples,
                                  generator, end_frame=batch[:, -1])
