"""DDPAE: the Decompositional Disentangled Predictive Auto-Encoder.

Paper: Jun-Ting Hsieh, Bingbin Liu, De-An Huang, Li Fei-Fei, Juan Carlos Niebles, "Learning to Decompose and
Disentangle Representations for Video Prediction", NeurIPS 2018, arXiv:1806.04166. Official code:
https://github.com/jthsieh/DDPAE-video-prediction (PyTorch 0.3.1 + Pyro 0.2). Facts from the sheet
``models-p2p-ddpae-odevideo.md`` §2 and the official code; no code was copied.

A video is decomposed into ``K`` components. Component ``k`` has a content vector ``z_k`` (128-d, constant over
time) and a pose ``y_{k,t} = (s, x, y)`` per frame, the parameters of a scale-plus-translation spatial transformer.
The object image ``O_k = Dec(z_k)`` (``H/2 x W/2``) is pasted into the frame with ``affine_grid``/``grid_sample``
(θ = [[s, 0, x], [0, s, y]]) and the frame is ``min(Σ_k components, 1)``.

Generative model (priors, as in the official ``model()``):

- ``z_k ~ N(0, I)``;
- initial pose ``y_{k,init} ~ N([s_prior, 0, 0], diag(0.2, 1, 1)²)``;
- transitions ``β_{k,t} ~ N(0, 0.1² I)`` for every frame ``t`` (the context frames and the predicted ones);
- raw pose ``y_{k,t} = y_{k,init} + Σ_{i<=t} β_{k,i}`` (frame 0 already includes ``β_{k,0}``), then constrained:
  ``s' = clamp(s, s_prior - 1, s_prior + 1)``, ``(x', y') = tanh(x, y) (s' - 0.5)``;
- every pixel of all ``T_in + T_out`` frames ``~ N(frame, 0.3²)``.

Inference network (the official ``guide()``; it sees only the ``T_in`` context frames):

- frame encoder (DCGAN-like, no biases) → 256-d per frame;
- the 2-D recurrent encoder ``LSTM(256 + H → H)``: components are processed in order, each one runs along time from
  a zero state and receives, at frame ``j``, the hidden state of the previous component at frame ``j`` (zeros for
  the first) — the explaining-away ordering of the paper;
- β heads ``Linear(H → 3)`` for the means and ``softplus(Linear(H → 3))`` for the standard deviations;
- the initial pose from ``LSTM(H → H)`` run over the *component* axis on the first-frame hidden states, with its own
  two heads;
- the prediction RNN ``LSTM(2H → H)`` per component, started from the encoder's last state, fed its own previous
  output and the previous component's hidden state at the same step, ``T_out`` steps; the *same* β heads give the
  future β's (``independent_components=True`` drops the cross-component input: the paper's baseline);
- content: each context frame is cropped with the inverse pose into an ``H/2 x W/2`` patch per component, encoded
  (``ImageEncoder(1 → 128)``), run through the content ``LSTM(128 → H)`` per component, and the last output goes to
  ``Linear(H → 256)`` = (μ, softplus σ) of ``z_k``.

Sizes (the official scripts): Moving MNIST 64 px, K = 2, H = 64, s_prior = 2, 706,364 parameters; Bouncing Balls
128 px, K = 4, H = 128, s_prior = 4, 1,807,420 parameters. ngf 8, image latent 256, content 128, pose 3.

Objective: the negative ELBO per clip (the batch mean),
``Σ_pixels −log N(x; x̂, 0.3²) + KL(q(z) ‖ N(0, I)) + KL(q(β_in) ‖ N(0, 0.1²)) + KL(q(β_pred) ‖ N(0, 0.1²))
+ KL(q(y_init) ‖ N([s, 0, 0], diag(0.2, 1, 1)²))``, with one reparameterised sample of every latent. Optimiser: Adam
lr 1e-3, β = (0.5, 0.999), ×0.1 at half of training; weights N(0, 0.02) for conv/linear, BatchNorm γ ~ N(1, 0.02),
LSTMs at PyTorch's defaults (the official ``init_weights``). At test time every latent is replaced by its mean
(``sample=False`` in the official code), so the prediction is deterministic: ``stochastic = False``.

Deviations and options (all documented choices):

- **No Pyro; analytic KL by default.** Pyro's ``Trace_ELBO`` estimates each KL term by Monte Carlo,
  ``log q(w) − log p(w)`` at the guide's sample ``w``. Every latent here is a Gaussian against a Gaussian prior
  (the pose constraint is a deterministic function applied *after* sampling, so the KL lives in the raw space),
  so ``kl="analytic"`` (default) computes the same expectation in closed form with lower-variance gradients;
  ``kl="monte_carlo"`` reproduces Pyro's estimator exactly (same sample, same formula). The pixel term keeps the
  Gaussian's constants (``log σ + ½ log 2π``), as Pyro's log-probability does.
- **Loss scale.** Pyro sums the loss over the batch; vpzoo takes the batch mean (so the gradients are ``B`` times
  smaller; Adam's update is invariant to that scale up to its ε). ``train/loss_per_element`` divides by
  ``T·C·H·W`` and equals the official code's logged value.
- **One optimiser group.** The official code keeps two Adam parameter groups (pose model; the rest) with the same
  settings — the same update as one group.
- **The LR drop** happens at step ``lr_decay_step`` (default: half of ``trainer.max_steps``); the official code
  drops at half of its epochs (epoch 636 of 1,273 on Moving MNIST, ≈ step 99,852 of 200k).
- **Decode once.** The content is constant over time, so each ``z_k`` is decoded once and the object is pasted at
  every frame (the official code decodes the same ``z_k`` ``T`` times). In training mode the object decoder's
  BatchNorm therefore sees each object once instead of ``T`` times: the batch statistics are identical (each
  sample repeated ``T`` times has the same mean and biased variance); only the unbiased running-variance update
  differs by a factor ``(n−1)/n`` with ``n`` in the thousands.
- **Paste only around the boxes.** The constrained scale is at least ``s_prior − 1``, so no object's box is wider
  than ``S / (s_prior − 1)`` pixels: :func:`composite_objects` samples each object on a window of that width around
  its box and adds the windows into the frames (the official code samples every object on the whole frame, where
  it is zero outside the box, and sums the ``K`` full frames). The sampled values are the same (float64: equal);
  only the order of the sums differs. On Bouncing Balls (``s_prior`` 4: 46-px windows in 128-px frames) this is
  ~8x fewer samples; where the window would cover the frame (Moving MNIST's ``s_prior`` 2) the whole frame is used.
- **Recurrences.** Within a component, the encoder LSTM's inputs are all known (the previous component is done), so
  each component runs as one fused ``nn.LSTM`` call over time (the official code steps it frame by frame: same
  result). The content LSTM runs over all components in one batch (the official code loops over them with the same
  weights).
- **``align_corners``.** The official code ran PyTorch 0.3, whose ``affine_grid``/``grid_sample`` behave as
  ``align_corners=True`` today; that is the default (``align_corners=False`` is the modern convention).
- **Not ported:** ``when_to_predict_only`` (off in the official scripts); the 6-d affine pose (unused by the
  scripts); ``nn.DataParallel`` (Lightning's strategies do this).
- **Context length.** ``predict`` conditions on all given context frames (the LSTMs run over any length); the
  official code always takes exactly 10.
- **Dark-object trap and ``object_output_bias``** (an option of vpzoo; off by default). The object decoder ends in a
  bias-free transposed convolution and a sigmoid over ReLU features, so an object pixel exceeds 0.5 only through a
  positive weight of that layer. Bouncing Balls frames are ~94% black: in the first few hundred steps every
  component's box (a 0.5-grey square at initialisation) is darkened, and vpzoo's CPU runs of the official recipe
  (batch 32, seed 666) had *every* weight of that layer negative by step 500 (min/max −0.19/−0.10) and still at
  step 2,927: objects can then never be brighter than 0.5, the balls are drawn as grey blurs and the gradient that
  would flip a weight needs features active at the balls, which the same negative weights switch off. The
  session-19-21 run's flat validation SSIM (~0.60 from step 7,000) has this signature. ``object_output_bias=-3``
  adds one parameter, the layer's bias, initialised to −3 (sigmoid 0.05, about the share of ball pixels), so
  the boxes start dark and the weights need not all turn negative. The shipped Moving MNIST weights (official
  decoder) kept 19% of those weights positive: digits are less sparse.

Equality with the official code: ``benchmarks/ddpae_official_equality.py`` runs the official files (unmodified, with
Pyro 1.9 and shims for CUDA and PyTorch 0.3 semantics) beside this model in float64 with the same weights: the test
path's frames agree to 7e-15, Pyro's ``Trace_ELBO`` loss and vpzoo's ``kl="monte_carlo"`` loss (× B) to a relative
4e-16 from the same draws, and every gradient to a relative 3e-13 (Moving MNIST and Bouncing Balls settings).
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Literal, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vpzoo.metrics.aggregation import summed_frame_bce, summed_frame_mse
from vpzoo.models.base import VideoPredictionModel
from vpzoo.models.blocks import denton_init, float32_or_wider, gaussian_kl, gaussian_log_density
from vpzoo.registry import register_model

__all__ = [
    "DDPAE",
    "ImageEncoder",
    "ImageDecoder",
    "PoseRNN",
    "SequenceEncoder",
    "pose_grid",
    "invert_pose",
    "crop_objects",
    "paste_objects",
    "paste_every_frame",
    "composite_objects",
    "constrain_pose",
    "pose_centres",
    "normal_kl",
    "normal_log_prob",
    "ddpae_frame_errors",
    "velocity_metrics",
    "bouncing_balls_velocity",
    "component_separation",
]

POSE_SIZE = 3
"""(scale, x, y) of the spatial transformer."""


# --------------------------------------------------------------------------------------------------------
# Networks
# --------------------------------------------------------------------------------------------------------
def _log2_size(size: int, name: str, minimum: int) -> int:
    if not isinstance(size, int) or size < minimum or size & (size - 1):
        raise ValueError(f"{name} must be a power of two >= {minimum}, got {size!r}")
    return int(math.log2(size))


class ImageEncoder(nn.Module):
    """DCGAN-like encoder without biases: ``(N, C, S, S) → (N, out_dim)``, ``S = 2^(n_layers + 1)``.

    Conv4 s2 C→ngf + LeakyReLU(0.2); ``n_layers − 2`` × [Conv4 s2 doubling the channels + BatchNorm + LeakyReLU];
    Conv4 s1 p0 → ``out_dim`` (a 1x1 map). The official ``ImageEncoder``.
    """

    def __init__(self, channels: int, out_dim: int, ngf: int, n_layers: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(channels, ngf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True)]
        for _ in range(1, n_layers - 1):
            layers += [nn.Conv2d(ngf, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2),
                       nn.LeakyReLU(0.2, inplace=True)]
            ngf *= 2
        layers.append(nn.Conv2d(ngf, out_dim, 4, 1, 0, bias=False))
        self.main = nn.Sequential(*layers)
        self.input_size = 2 ** (n_layers + 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.main(x).flatten(1)


class ImageDecoder(nn.Module):
    """DCGAN-like decoder without biases: ``(N, in_dim) → (N, C, S, S)`` in (0, 1), ``S = 2^(n_layers + 1)``.

    ConvT4 s1 p0 in→ngf·2^(n_layers−2) + BatchNorm + ReLU (4x4); ``n_layers − 2`` × [ConvT4 s2 halving the channels
    + BatchNorm + ReLU]; ConvT4 s2 → C + Sigmoid. The official ``ImageDecoder(..., 'sigmoid')``.
    """

    def __init__(self, in_dim: int, channels: int, ngf: int, n_layers: int, output_bias: bool = False) -> None:
        super().__init__()
        ngf = ngf * 2 ** (n_layers - 2)
        layers: list[nn.Module] = [nn.ConvTranspose2d(in_dim, ngf, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf),
                                   nn.ReLU(inplace=True)]
        for _ in range(1, n_layers - 1):
            layers += [nn.ConvTranspose2d(ngf, ngf // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf // 2),
                       nn.ReLU(inplace=True)]
            ngf //= 2
        layers += [nn.ConvTranspose2d(ngf, channels, 4, 2, 1, bias=output_bias), nn.Sigmoid()]
        self.main = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.main(z[:, :, None, None])


class SequenceEncoder(nn.Module):
    """``LSTM(in → hidden)`` over a sequence, ``Linear(hidden → out)`` on its last output: ``(N, T, in) → (N, out)``."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int) -> None:
        super().__init__()
        self.encoder = nn.LSTM(in_dim, hidden, batch_first=True)
        self.out_layer = nn.Linear(hidden, out_dim)

    def forward(self, x: Tensor) -> Tensor:
        y, _ = self.encoder(x)
        return self.out_layer(y[:, -1])


class PoseRNN(nn.Module):
    """The pose inference network: frame encoder, 2-D recurrent encoder, initial-pose RNN and prediction RNN.

    ``forward(frames (B, T_in, C, S, S), n_future)`` returns the Gaussian parameters (mean, std) of the input β's
    ``(B, T_in, K, 3)``, the predicted β's ``(B, n_future, K, 3)`` and the initial pose ``(B, K, 3)``.
    """

    def __init__(self, n_components: int, channels: int, image_size: int, image_latent_size: int,
                 hidden_size: int, ngf: int, independent_components: bool = False) -> None:
        super().__init__()
        self.n_components, self.hidden_size = n_components, hidden_size
        self.independent_components = bool(independent_components)
        self.image_encoder = ImageEncoder(channels, image_latent_size, ngf, int(math.log2(image_size)) - 1)
        self.encode_rnn = nn.LSTM(image_latent_size + hidden_size, hidden_size, batch_first=True)
        predict_in = hidden_size if self.independent_components else 2 * hidden_size
        self.predict_rnn = nn.LSTM(predict_in, hidden_size, batch_first=True)
        self.beta_mu_layer = nn.Linear(hidden_size, POSE_SIZE)
        self.beta_sigma_layer = nn.Linear(hidden_size, POSE_SIZE)
        self.initial_pose_rnn = nn.LSTM(hidden_size, hidden_size, batch_first=True)
        self.initial_pose_mu = nn.Linear(hidden_size, POSE_SIZE)
        self.initial_pose_sigma = nn.Linear(hidden_size, POSE_SIZE)

    def _beta(self, hidden: Tensor) -> tuple[Tensor, Tensor]:
        return self.beta_mu_layer(hidden), F.softplus(self.beta_sigma_layer(hidden))

    def encode(self, frames: Tensor) -> tuple[Tensor, list[tuple[Tensor, Tensor]]]:
        """Encoder outputs ``(B, T_in, K, H)`` and each component's final LSTM state ``((1, B, H), (1, B, H))``."""
        b, t = frames.shape[:2]
        features = self.image_encoder(frames.flatten(0, 1)).view(b, t, -1)
        previous = features.new_zeros(b, t, self.hidden_size)  # the previous component's hidden states
        outputs, states = [], []
        for _ in range(self.n_components):
            previous, state = self.encode_rnn(torch.cat([features, previous], dim=-1))
            outputs.append(previous)
            states.append(state)
        return torch.stack(outputs, dim=2), states

    def predict(self, encoder_outputs: Tensor, states: list[tuple[Tensor, Tensor]], n_future: int) -> Tensor:
        """Prediction-RNN outputs ``(B, n_future, K, H)``, autoregressive per component."""
        b = encoder_outputs.shape[0]
        previous = encoder_outputs.new_zeros(b, n_future, self.hidden_size)
        outputs = []
        for k in range(self.n_components):
            state, x, steps = states[k], encoder_outputs[:, -1:, k], []
            for j in range(n_future):
                rnn_in = x if self.independent_components else torch.cat([x, previous[:, j : j + 1]], dim=-1)
                x, state = self.predict_rnn(rnn_in, state)
                steps.append(x)
            previous = torch.cat(steps, dim=1)
            outputs.append(previous)
        return torch.stack(outputs, dim=2)

    def forward(self, frames: Tensor, n_future: int) -> dict[str, Tensor]:
        encoder_outputs, states = self.encode(frames)
        first = encoder_outputs[:, 0]  # (B, K, H): each component's hidden state at frame 0
        initial, _ = self.initial_pose_rnn(first)  # over the component axis
        input_mu, input_sigma = self._beta(encoder_outputs)
        pred_mu, pred_sigma = self._beta(self.predict(encoder_outputs, states, n_future))
        return {
            "input_beta_mu": input_mu, "input_beta_sigma": input_sigma,
            "pred_beta_mu": pred_mu, "pred_beta_sigma": pred_sigma,
            "initial_pose_mu": self.initial_pose_mu(initial),
            "initial_pose_sigma": F.softplus(self.initial_pose_sigma(initial)),
        }


# --------------------------------------------------------------------------------------------------------
# Spatial transformer and pose helpers
# --------------------------------------------------------------------------------------------------------
def pose_grid(pose: Tensor, size: int, align_corners: bool = True) -> Tensor:
    """The sampling grid ``(N, size, size, 2)`` of the poses ``(N, 3)`` ``(s, x, y)``: exactly
    ``F.affine_grid(θ, [N, C, size, size])`` with ``θ = [[s, 0, x], [0, s, y]]``, built by broadcasting.

    The transform has no rotation or shear, so ``grid[n, i, j] = (s·u_j + x, s·u_i + y)`` over the base coordinates
    ``u`` of ``affine_grid``. ``affine_grid`` computes the same values as a batched matrix product of an expanded
    ``(N, size², 3)`` base grid; for the decoder's pastes (``N = B·T·K`` grids of ``H x W``) that product and its
    backward were ~40% of a Bouncing Balls training step on CPU.
    """
    base = _grid_base(size, align_corners, pose.dtype, pose.device)
    scale, shift = pose[:, :1], pose[:, 1:]                     # (N, 1), (N, 2)
    xs = scale * base + shift[:, :1]                            # (N, size): x of each column
    ys = scale * base + shift[:, 1:]                            # (N, size): y of each row
    n = pose.shape[0]
    return torch.stack([xs[:, None, :].expand(n, size, size), ys[:, :, None].expand(n, size, size)], dim=-1)


def _grid_base(size: int, align_corners: bool, dtype: torch.dtype, device: torch.device) -> Tensor:
    """``affine_grid``'s base coordinates ``(size,)`` along one axis of a ``size``-pixel output."""
    base = torch.linspace(-1.0, 1.0, size, dtype=dtype, device=device)
    if size == 1:                                               # affine_grid's single coordinate is 0
        return base.zero_()
    return base if align_corners else base * (size - 1) / size


def invert_pose(pose: Tensor) -> Tensor:
    """The inverse transform of ``(s, x, y)``: ``(1/s, −x/s, −y/s)`` (``(..., 3)``)."""
    s, xy = pose[..., :1], pose[..., 1:]
    return torch.cat([torch.ones_like(s), -xy], dim=-1) / s


def paste_objects(objects: Tensor, pose: Tensor, image_size: int, align_corners: bool = True) -> Tensor:
    """Place objects ``(N, C, h, w)`` into ``(N, C, S, S)`` frames with poses ``(N, 3)`` (zeros outside the box).

    θ maps frame coordinates (in [−1, 1]) to object coordinates: the object's centre lands at ``−(x, y) / s`` and its
    box is ``S / s`` pixels wide.
    """
    grid = pose_grid(pose, image_size, align_corners)
    # The decoder's objects are bfloat16 under autocast, the poses float32 (DDPAE.infer): sample in the wider dtype
    # rather than rely on each device's autocast rules for grid_sample.
    dtype = torch.promote_types(objects.dtype, grid.dtype)
    return F.grid_sample(objects.to(dtype), grid.to(dtype), mode="bilinear", padding_mode="zeros",
                         align_corners=align_corners)


def paste_every_frame(objects: Tensor, pose: Tensor, image_size: int, align_corners: bool = True) -> Tensor:
    """Each object ``(B, K, C, h, w)`` pasted on the whole frame at every frame's pose ``(B, T, K, 3)``:
    ``(B, T, K, C, S, S)``, the components one by one (:func:`composite_objects` gives their sum cheaply)."""
    b, k, c, h, w = objects.shape
    t = pose.shape[1]
    repeated = objects[:, None].expand(b, t, k, c, h, w).flatten(0, 2)
    pasted = paste_objects(repeated, pose.reshape(-1, POSE_SIZE), image_size, align_corners)
    return pasted.view(b, t, k, c, image_size, image_size)


def composite_objects(
    objects: Tensor, pose: Tensor, image_size: int, min_scale: float | None = None, align_corners: bool = True
) -> Tensor:
    """The sum over components of each object pasted at every frame: objects ``(B, K, C, h, w)``, poses
    ``(B, T, K, 3)`` → ``(B, T, C, S, S)``, equal to ``paste_objects`` of every (frame, component) summed over ``K``.

    With ``min_scale`` (every pose's scale is at least that: DDPAE's constraint gives ``s_prior − 1``) each object is
    sampled only on a square window around its box (at most ``S / min_scale`` pixels wide plus the interpolation
    margin) and the windows are added into the frames; the sampled values are those of the whole-frame paste (the
    same grid coordinates), only the order of the sums differs. Without it, or where the window would be as wide as
    the frame, every object is pasted on the whole frame.
    """
    b, k, c, h, w = objects.shape
    t = pose.shape[1]
    if pose.shape != (b, t, k, POSE_SIZE):
        raise ValueError(f"poses must be (B, T, K, 3) = ({b}, T, {k}, 3) for objects {tuple(objects.shape)}, got "
                         f"{tuple(pose.shape)}")
    size = image_size
    # the object is non-zero where its sampling coordinate lies within `margin` of [-1, 1] (one input pixel)
    margin_x, margin_y = (2.0 / (w - 1), 2.0 / (h - 1)) if align_corners else (1.0 / w, 1.0 / h)
    span = (size - 1) / 2.0 if align_corners else size / 2.0  # output pixels per unit of the base coordinate
    window = (math.ceil((1.0 + max(margin_x, margin_y)) * 2.0 * span / min_scale) + 2
              if min_scale is not None and min_scale > 0 else size)
    if window >= size:
        return paste_every_frame(objects, pose, size, align_corners).sum(dim=2)
    pose = pose.permute(0, 2, 1, 3)                                     # (B, K, T, 3): one grid per object
    scale, shift_x, shift_y = pose.unbind(-1)                           # (B, K, T)
    if bool((scale < min_scale).any()):
        raise ValueError(f"min_scale={min_scale} but a pose has scale {float(scale.min()):.4g}: its box would be "
                         "wider than the window")
    offsets = torch.arange(window, device=pose.device)
    base = _grid_base(size, align_corners, pose.dtype, pose.device)

    def window_of(shift: Tensor, object_margin: float) -> tuple[Tensor, Tensor]:
        """First output pixel of each box's window (the box's low edge, rounded down), the window's pixels
        ``(B, K, T, window)`` and their base coordinates (the whole frame's, as in :func:`pose_grid`)."""
        low = ((-1.0 - object_margin - shift) / scale + 1.0) * span - (0.0 if align_corners else 0.5)
        pixels = low.detach().floor().long().clamp(-window, size)[..., None] + offsets
        return pixels, base[pixels.clamp(0, size - 1)]

    cols, col_base = window_of(shift_x, margin_x)
    rows, row_base = window_of(shift_y, margin_y)
    xs = scale[..., None] * col_base + shift_x[..., None]              # (B, K, T, window)
    ys = scale[..., None] * row_base + shift_y[..., None]
    shape = (b, k, t, window, window)
    grid = torch.stack([xs[..., None, :].expand(shape), ys[..., :, None].expand(shape)], dim=-1)
    dtype = torch.promote_types(objects.dtype, grid.dtype)             # as paste_objects
    # the T windows of an object stacked along the height: each object is sampled T times without being copied
    sampled = F.grid_sample(objects.reshape(b * k, c, h, w).to(dtype),
                            grid.to(dtype).view(b * k, t * window, window, 2), mode="bilinear",
                            padding_mode="zeros", align_corners=align_corners)
    inside = (((rows >= 0) & (rows < size))[..., :, None] & ((cols >= 0) & (cols < size))[..., None, :])
    index = torch.where(inside, rows[..., :, None] * size + cols[..., None, :], 0)      # (B, K, T, win, win)
    values = sampled.view(b, k, c, t, window, window) * inside[:, :, None]
    values = values.permute(0, 3, 2, 1, 4, 5).reshape(b * t, c, k * window * window)
    index = index.permute(0, 2, 1, 3, 4).reshape(b * t, 1, k * window * window).expand(-1, c, -1)
    frames = values.new_zeros(b * t, c, size * size).scatter_add(2, index, values)
    return frames.view(b, t, c, size, size)


def crop_objects(images: Tensor, pose: Tensor, object_size: int, align_corners: bool = True) -> Tensor:
    """Crop ``(N, C, object_size, object_size)`` patches out of frames ``(N, C, S, S)`` with the inverse of ``pose``
    ``(N, 3)``: the inverse of :func:`paste_objects` (up to interpolation). With poses ``(N, K, 3)``, ``K`` patches
    per frame, ``(N, K, C, object_size, object_size)`` (one sampling call; the frames are not copied ``K`` times)."""
    per_frame = pose.dim() == 3
    n, k = pose.shape[0], pose.shape[1] if per_frame else 1
    grid = pose_grid(invert_pose(pose.reshape(-1, POSE_SIZE)), object_size, align_corners)
    grid = grid.view(n, k * object_size, object_size, 2)  # a frame's K grids stacked along the height
    dtype = torch.promote_types(images.dtype, grid.dtype)  # as paste_objects
    crops = F.grid_sample(images.to(dtype), grid.to(dtype), mode="bilinear", padding_mode="zeros",
                          align_corners=align_corners)
    if not per_frame:
        return crops
    return crops.view(n, -1, k, object_size, object_size).transpose(1, 2)


def constrain_pose(pose: Tensor, scale_prior: float) -> Tensor:
    """``s' = clamp(s, s_prior − 1, s_prior + 1)``, ``(x', y') = tanh(x, y)·(s' − 0.5)`` (``(..., 3)``): keeps every
    object's box at least partly inside the frame."""
    scale = pose[..., :1].clamp(scale_prior - 1.0, scale_prior + 1.0)
    return torch.cat([scale, torch.tanh(pose[..., 1:]) * (scale - 0.5)], dim=-1)


def pose_centres(pose: Tensor) -> Tensor:
    """Box centres in [0, 1] image coordinates, ``((−x/s + 1)/2, (−y/s + 1)/2)``, of poses ``(..., 3)`` →
    ``(..., 2)`` (x first, as DDPAE's velocity metrics use them)."""
    s, x, y = pose.unbind(-1)
    return torch.stack([(1.0 - x / s) / 2.0, (1.0 - y / s) / 2.0], dim=-1)


def normal_log_prob(value: Tensor, mu: Tensor | float, sigma: Tensor | float) -> Tensor:
    """Elementwise ``log N(value; mu, sigma²)`` from a standard deviation (constants included; broadcasting), in at
    least float32 (under bf16 autocast the decoder's frames are half precision, too coarse for a sum over every
    pixel): :func:`~vpzoo.models.blocks.gaussian_log_density` with ``log σ``."""
    log_sigma = sigma.log() if isinstance(sigma, Tensor) else math.log(sigma)
    return gaussian_log_density(value, mu, log_sigma)


def normal_kl(mu_q: Tensor, sigma_q: Tensor, mu_p: Tensor | float, sigma_p: Tensor | float) -> Tensor:
    """Elementwise ``KL(N(mu_q, sigma_q²) ‖ N(mu_p, sigma_p²))`` from standard deviations (broadcasting)."""
    mu_p = torch.as_tensor(mu_p, dtype=mu_q.dtype, device=mu_q.device).expand_as(mu_q)
    sigma_p = torch.as_tensor(sigma_p, dtype=mu_q.dtype, device=mu_q.device).expand_as(mu_q)
    return gaussian_kl(mu_q, 2.0 * sigma_q.log(), mu_p, 2.0 * sigma_p.log())


# --------------------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------------------
@register_model("ddpae")
class DDPAE(VideoPredictionModel):
    """DDPAE (Hsieh et al., NeurIPS 2018). Defaults are the official Moving MNIST settings; see
    :mod:`vpzoo.models.ddpae` for the model, the objective and the deviations.

    Args:
        image_size: frame side (64 Moving MNIST, 128 Bouncing Balls); a power of two >= 16. Objects are half of it.
        channels: channels per frame (1).
        n_past: context frames (10).
        n_future: predicted frames in training clips (10).
        n_components: K, the number of objects (2 Moving MNIST, 4 Bouncing Balls).
        image_latent_size: frame-encoder output (256).
        content_latent_size: content vector size (128).
        hidden_size: LSTM width H (64 Moving MNIST, 128 Bouncing Balls).
        ngf: encoder/decoder base width (8).
        stn_scale_prior: prior mean s of the transformer scale; the scale is clamped to [s − 1, s + 1] (2 Moving
            MNIST, 4 Bouncing Balls; the official default 3 is overridden by both scripts). Must be > 1.
        independent_components: the paper's baseline without the cross-component input of the prediction RNN.
        pixel_sigma: standard deviation of the Gaussian pixel likelihood (0.3).
        beta_prior_sigma: standard deviation of the β prior (0.1).
        initial_pose_prior_sigma: standard deviations of the initial-pose prior, (scale, x, y) = (0.2, 1, 1).
        kl: "analytic" (closed-form Gaussian KLs) or "monte_carlo" (Pyro's ``log q − log p`` at the sample).
        align_corners: of ``affine_grid``/``grid_sample`` (True: the official PyTorch 0.3 behaviour).
        lr: Adam learning rate (1e-3).
        adam_beta1: Adam β1 (0.5).
        lr_decay: multiply the learning rate by 0.1 at ``lr_decay_step`` (the official ``--lr_decay 1``).
        lr_decay_step: the step of the drop; ``None`` means half of the trainer's total steps.
        val_num_samples, metric_protocol, val_seed: see :class:`~vpzoo.models.base.VideoPredictionModel`
            (deterministic: one prediction per clip).
        object_output_bias: ``None`` (the official decoder: its last transposed convolution has no bias); a number
            adds that bias (one parameter) initialised to the value, e.g. −3 (sigmoid 0.05, the share of ball pixels)
            — an option of vpzoo, not of the paper; see the module docstring's "Dark-object trap".
    """

    stochastic = False
    #: Zoo configs written before ``object_output_bias`` existed describe the official decoder (no bias).
    legacy_config_defaults = {"object_output_bias": None}
    paper = {
        "title": "Learning to Decompose and Disentangle Representations for Video Prediction",
        "authors": "Jun-Ting Hsieh, Bingbin Liu, De-An Huang, Li Fei-Fei, Juan Carlos Niebles",
        "venue": "NeurIPS 2018",
        "arxiv": "1806.04166",
        "url": "https://arxiv.org/abs/1806.04166",
    }

    def __init__(
        self,
        image_size: int = 64,
        channels: int = 1,
        n_past: int = 10,
        n_future: int = 10,
        n_components: int = 2,
        image_latent_size: int = 256,
        content_latent_size: int = 128,
        hidden_size: int = 64,
        ngf: int = 8,
        stn_scale_prior: float = 2.0,
        independent_components: bool = False,
        pixel_sigma: float = 0.3,
        beta_prior_sigma: float = 0.1,
        initial_pose_prior_sigma: tuple[float, float, float] = (0.2, 1.0, 1.0),
        kl: Literal["analytic", "monte_carlo"] = "analytic",
        align_corners: bool = True,
        lr: float = 1e-3,
        adam_beta1: float = 0.5,
        lr_decay: bool = True,
        lr_decay_step: Optional[int] = None,
        val_num_samples: int = 1,
        metric_protocol: str = "standard",
        val_seed: int = 0,
        object_output_bias: Optional[float] = None,
    ) -> None:
        super().__init__(
            image_size=image_size, channels=channels, n_past=n_past, n_future=n_future,
            val_num_samples=val_num_samples, metric_protocol=metric_protocol, val_seed=val_seed,
        )
        _log2_size(image_size, "image_size", 16)
        for name, value in (("n_components", n_components), ("image_latent_size", image_latent_size),
                            ("content_latent_size", content_latent_size), ("hidden_size", hidden_size),
                            ("ngf", ngf)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if not stn_scale_prior > 1.0:
            raise ValueError(
                f"stn_scale_prior must be > 1 (scales are clamped to [s - 1, s + 1]), got {stn_scale_prior}"
            )
        sigmas = tuple(float(v) for v in initial_pose_prior_sigma)
        if len(sigmas) != POSE_SIZE or min(sigmas) <= 0:
            raise ValueError(f"initial_pose_prior_sigma must be 3 positive numbers, got {initial_pose_prior_sigma!r}")
        for name, value in (("pixel_sigma", pixel_sigma), ("beta_prior_sigma", beta_prior_sigma), ("lr", lr)):
            if not value > 0:
                raise ValueError(f"{name} must be > 0, got {value}")
        if kl not in ("analytic", "monte_carlo"):
            raise ValueError(f"kl must be 'analytic' or 'monte_carlo', got {kl!r}")
        if lr_decay_step is not None and (not isinstance(lr_decay_step, int) or lr_decay_step < 1):
            raise ValueError(f"lr_decay_step must be None or an integer >= 1, got {lr_decay_step!r}")
        self.save_hyperparameters()
        self.n_components = n_components
        self.object_size = image_size // 2
        object_layers = int(math.log2(self.object_size)) - 1
        self.pose_model = PoseRNN(n_components, channels, image_size, image_latent_size, hidden_size, ngf,
                                  independent_components)
        self.content_lstm = SequenceEncoder(content_latent_size, hidden_size, 2 * content_latent_size)
        self.object_encoder = ImageEncoder(channels, content_latent_size, ngf, object_layers)
        self.object_decoder = ImageDecoder(content_latent_size, channels, ngf, object_layers,
                                           output_bias=object_output_bias is not None)
        self.apply(denton_init)  # LSTMs keep PyTorch's defaults, as in the official init_weights
        if object_output_bias is not None:
            nn.init.constant_(self.object_decoder.main[-2].bias, float(object_output_bias))
        self.register_buffer("initial_pose_prior_mu", torch.tensor([float(stn_scale_prior), 0.0, 0.0]),
                             persistent=False)
        self.register_buffer("initial_pose_prior_sigma", torch.tensor(sigmas), persistent=False)

    # ------------------------------------------------------------------------------------------ inference
    def _check_clips(self, x: Tensor, what: str, min_frames: int) -> None:
        expected = (self.channels, self.image_size, self.image_size)
        if not isinstance(x, Tensor) or x.ndim != 5 or tuple(x.shape[2:]) != expected:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"{what} must be a (B, T, {', '.join(map(str, expected))}) tensor, got {shape}")
        if x.shape[1] < min_frames:
            raise ValueError(f"{what} needs at least {min_frames} frames, got T={x.shape[1]}")

    def infer(self, context: Tensor, n_future: int, sample: bool = False, components: bool = False
              ) -> dict[str, Tensor]:
        """Decompose ``context (B, T_in, C, S, S)`` and reconstruct/predict ``T_in + n_future`` frames.

        Args:
            context: the input frames in [0, 1].
            n_future: frames to predict after the context (>= 0).
            sample: draw every latent from the inference network with ``torch.randn`` (training); ``False`` takes
                the means (the official test-time behaviour).
            components: also return each component pasted on its own (memory: ``K`` full videos).

        Returns:
            ``frames (B, T, C, S, S)`` (``T = T_in + n_future``: reconstruction then prediction),
            ``components (B, T, K, C, S, S)`` if asked, ``objects (B, K, C, S/2, S/2)``, ``pose (B, T, K, 3)``
            (constrained),
            the latents ``beta (B, T, K, 3)``, ``initial_pose (B, K, 3)``, ``content (B, K, 128)``, and the
            inference network's means/stds ``*_mu``/``*_sigma`` of the input β's, predicted β's, initial pose and
            content.
        """
        self._check_clips(context, "context", 1)
        if n_future < 0:
            raise ValueError(f"n_future must be >= 0, got {n_future}")
        b, t_in = context.shape[:2]
        k, align = self.n_components, self.hparams.align_corners
        # The latents' distributions are float32 under autocast too: in bfloat16 (8 significant bits) a raw pose of
        # magnitude ~3 moves in steps of 1/64, which swallows most β increments (prior σ 0.1) of the running sum and
        # shifts every object by up to ~half a pixel; the sampled poses and the KL terms then stay float32.
        out = {name: float32_or_wider(value) for name, value in self.pose_model(context, n_future).items()}

        def draw(mu: Tensor, sigma: Tensor) -> Tensor:
            return mu + sigma * torch.randn_like(mu) if sample else mu

        beta = torch.cat([draw(out["input_beta_mu"], out["input_beta_sigma"]),
                          draw(out["pred_beta_mu"], out["pred_beta_sigma"])], dim=1)
        initial_pose = draw(out["initial_pose_mu"], out["initial_pose_sigma"])
        pose = constrain_pose(beta.cumsum(dim=1) + initial_pose[:, None], self.hparams.stn_scale_prior)

        # Content: crop every component out of every context frame with its pose, encode, summarise over time.
        crops = crop_objects(context.flatten(0, 1), pose[:, :t_in].flatten(0, 1), self.object_size, align)
        codes = self.object_encoder(crops.flatten(0, 1)).view(b, t_in, k, -1)
        codes = codes.transpose(1, 2).flatten(0, 1)  # (B·K, T_in, 128)
        content_mu, content_sigma = float32_or_wider(self.content_lstm(codes)).view(b, k, -1).chunk(2, dim=-1)
        content_sigma = F.softplus(content_sigma)
        content = draw(content_mu, content_sigma)

        # Decode each object once, paste it at every frame (only around its box), sum the components and clip at 1.
        objects = self.object_decoder(content.flatten(0, 1))  # (B·K, C, S/2, S/2)
        objects = objects.view(b, k, *objects.shape[1:])
        min_scale = self.hparams.stn_scale_prior - 1.0  # constrain_pose's lower bound
        frames = composite_objects(objects, pose, self.image_size, min_scale, align)
        out.update(
            frames=frames.clamp(max=1.0), objects=objects, pose=pose, beta=beta, initial_pose=initial_pose,
            content=content, content_mu=content_mu, content_sigma=content_sigma,
        )
        if components:
            out["components"] = paste_every_frame(objects, pose, self.image_size, align)
        return out

    # ------------------------------------------------------------------------------------------- training
    def forward_loss(self, clips: Tensor) -> dict[str, Tensor]:
        """The negative ELBO of clips ``(B, T, C, S, S)``: context ``n_past`` frames, the rest predicted.

        Returns ``loss`` (batch mean of the per-clip negative ELBO), its terms ``nll`` (pixels),
        ``kl_content``, ``kl_input_beta``, ``kl_pred_beta``, ``kl_initial_pose`` (each the batch mean of a sum
        over the clip), and ``recon (B, T, C, S, S)``.
        """
        self._check_clips(clips, "training clips", self.n_past + 1)
        b = clips.shape[0]
        out = self.infer(clips[:, : self.n_past], clips.shape[1] - self.n_past, sample=True)
        hp = self.hparams
        nll = -normal_log_prob(clips, out["frames"], hp.pixel_sigma).sum() / b
        t_in = self.n_past
        terms = {
            "kl_content": (out["content"], out["content_mu"], out["content_sigma"], 0.0, 1.0),
            "kl_input_beta": (out["beta"][:, :t_in], out["input_beta_mu"], out["input_beta_sigma"], 0.0,
                              hp.beta_prior_sigma),
            "kl_pred_beta": (out["beta"][:, t_in:], out["pred_beta_mu"], out["pred_beta_sigma"], 0.0,
                             hp.beta_prior_sigma),
            "kl_initial_pose": (out["initial_pose"], out["initial_pose_mu"], out["initial_pose_sigma"],
                                self.initial_pose_prior_mu, self.initial_pose_prior_sigma),
        }
        result = {"nll": nll}
        for name, (value, mu_q, sigma_q, mu_p, sigma_p) in terms.items():
            if hp.kl == "analytic":
                kl = normal_kl(mu_q, sigma_q, mu_p, sigma_p)
            else:  # Pyro's Trace_ELBO: log q(w) - log p(w) at the guide's sample w
                kl = normal_log_prob(value, mu_q, sigma_q) - normal_log_prob(value, mu_p, sigma_p)
            result[name] = kl.sum() / b
        result["loss"] = sum(result.values())
        result["recon"] = out["frames"]
        return result

    @staticmethod
    def _video(batch: Any) -> Tensor:
        return batch["video"] if isinstance(batch, dict) else batch

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        clips = self._video(batch)
        out = self.forward_loss(clips)
        loss = self._require_finite(out["loss"])
        per_element = clips[0].numel()
        logs = {"train/loss": loss, "train/loss_per_element": loss / per_element}
        logs.update({f"train/{k}": out[k] for k in ("nll", "kl_content", "kl_input_beta", "kl_pred_beta",
                                                     "kl_initial_pose")})
        logs["train/mse"] = F.mse_loss(out["recon"].detach(), clips)
        self.log_dict(logs, prog_bar=False, batch_size=clips.shape[0])
        self.log("loss", loss, prog_bar=True, logger=False, batch_size=clips.shape[0])
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._evaluate_batch(self._video(batch), batch_idx)

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._evaluate_batch(self._video(batch), batch_idx)

    def predict_step(self, batch: Any, batch_idx: int) -> Tensor:
        return super().predict_step(self._video(batch), batch_idx)

    def configure_optimizers(self) -> Any:
        hp = self.hparams
        optimizer = torch.optim.Adam(self.parameters(), lr=hp.lr, betas=(hp.adam_beta1, 0.999))
        if not hp.lr_decay:
            return optimizer
        step = hp.lr_decay_step
        if step is None:
            total = self.trainer.estimated_stepping_batches if self._trainer is not None else math.inf
            if not math.isfinite(total):
                raise ValueError("DDPAE drops the learning rate at half of training: set trainer.max_steps or "
                                 "model lr_decay_step (or lr_decay false)")
            step = max(int(total) // 2, 1)
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[step], gamma=0.1)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # ------------------------------------------------------------------------------------------- sampling
    def sample_future(
        self, context: Tensor, n_future: int, num_samples: int, generator: torch.Generator
    ) -> Tensor:
        """Deterministic (every latent at its mean): ``num_samples`` identical copies (``generator`` unused)."""
        frames = self.infer(context, n_future, sample=False)["frames"][:, context.shape[1] :].clamp(0.0, 1.0)
        return frames[:, None].expand(frames.shape[0], num_samples, *frames.shape[1:]).clone()


# --------------------------------------------------------------------------------------------------------
# DDPAE's evaluation metrics
# --------------------------------------------------------------------------------------------------------
def ddpae_frame_errors(pred: Tensor, target: Tensor, eps: float = 1e-4) -> dict[str, Tensor]:
    """Per-frame MSE and BCE as DDPAE reports them (``utils/metrics.py``): summed over the ``C·H·W`` pixels of a frame.

    The same functions as the ``mse_sum``/``bce_sum`` frame metrics of :mod:`vpzoo.metrics.aggregation` (which the
    ``mmnist_ddpae`` benchmark aggregates).

    Args:
        pred, target: ``(B, T, C, H, W)`` in [0, 1]; the prediction is clamped to ``[eps, 1 − eps]`` for the BCE,
            the target is the intensity (not binarised).

    Returns:
        ``mse`` and ``bce``, each ``(B, T)`` float64 (average them over frames and clips for the reported number).
    """
    if pred.shape != target.shape or pred.ndim != 5:
        raise ValueError(f"pred and target must be equal (B, T, C, H, W) shapes, got {tuple(pred.shape)} and "
                         f"{tuple(target.shape)}")
    return {"mse": summed_frame_mse(pred, target), "bce": summed_frame_bce(pred, target, eps)}


def velocity_metrics(pred_centres: Tensor, true_centres: Tensor, n_input: int, shift: int = 2) -> dict[str, Tensor]:
    """DDPAE's Bouncing Balls velocity metrics from the inferred poses (``VelocityMetrics`` of the official code).

    Components are matched to balls by the smallest squared distance summed over the ``n_input`` context frames
    (a clip whose matching is not one-to-one is left out); velocities are ``shift``-frame differences over the
    predicted frames (the first uses the last context frames); steps where either speed is below 1e-4 are masked.

    Args:
        pred_centres: ``(B, T, K, 2)`` component centres (:func:`pose_centres` of the predicted poses).
        true_centres: ``(B, T, K, 2)`` ball centres in the same [0, 1] units (x, y).
        n_input: context frames.

    Returns:
        ``relative_error`` ``|1 − ‖v̂‖/‖v‖|`` and ``cosine_similarity``, each ``(T − n_input,)`` (per predicted
        step, averaged over the unmasked components and clips), ``position_error`` ``(T,)``, the distance between
        each component's centre and its matched ball's per frame (context frames included; averaged over the
        components of the matched clips; vpzoo's diagnostic, not one of the paper's metrics: it shows whether the
        inferred poses follow the balls at all), and ``num_matched`` clips.
    """
    if pred_centres.shape != true_centres.shape or pred_centres.ndim != 4 or pred_centres.shape[-1] != 2:
        raise ValueError(f"centres must be equal (B, T, K, 2) shapes, got {tuple(pred_centres.shape)} and "
                         f"{tuple(true_centres.shape)}")
    pred, true = pred_centres.double(), true_centres.double()
    b, t, k, _ = pred.shape
    if not 0 < n_input < t or not 0 < shift <= n_input:
        raise ValueError(f"need 0 < shift <= n_input < T, got shift={shift}, n_input={n_input}, T={t}")
    cost = ((pred[:, :n_input, :, None] - true[:, :n_input, None]) ** 2).sum(dim=(1, 4))  # (B, K, K)
    match = cost.argmin(dim=2)  # (B, K): ball of each component
    one_to_one = torch.tensor([len(set(m.tolist())) == k for m in match], device=pred.device)
    true = torch.gather(true, 2, match[:, None, :, None].expand(b, t, k, 2))
    pv = pred[:, n_input:] - pred[:, n_input - shift : t - shift]
    tv = true[:, n_input:] - true[:, n_input - shift : t - shift]
    pn, tn = pv.norm(dim=-1), tv.norm(dim=-1)
    distance = (pred - true).norm(dim=-1)[one_to_one]  # (matched, T, K)
    mask = (pn >= 1e-4) & (tn >= 1e-4) & one_to_one[:, None, None]
    pn_safe, tn_safe = pn.clamp_min(1e-4), tn.clamp_min(1e-4)
    relative = (1.0 - pn_safe / tn_safe).abs()
    cosine = (pv * tv).sum(-1) / pn_safe / tn_safe
    count = mask.sum(dim=(0, 2)).double()
    return {
        "relative_error": (relative * mask).sum(dim=(0, 2)) / count,
        "cosine_similarity": (cosine * mask).sum(dim=(0, 2)) / count,
        "position_error": distance.mean(dim=(0, 2)),
        "num_matched": one_to_one.sum(),
    }


@torch.no_grad()
def bouncing_balls_velocity(model: DDPAE, batches: Any, max_clips: Optional[int] = None,
                            shift: int = 2, n_past: Optional[int] = None) -> dict[str, Any]:
    """DDPAE's Bouncing Balls evaluation: :func:`velocity_metrics` of the inferred poses over a test set.

    Args:
        model: a DDPAE (run in eval mode, every latent at its mean, as the official ``test.py``).
        batches: an iterable of ``{"video": (B, T, C, S, S), "positions": (B, T, K, 2)}`` batches, e.g. the test
            loader of ``BouncingBallsDataModule(return_positions=True)`` (ball centres divided by the world size).
        max_clips: score only the first ``max_clips`` clips.
        shift: frames of the velocity difference (2, as the paper).
        n_past: context frames of each clip (default: the model's ``n_past``; a benchmark passes its own); the rest
            of the clip is predicted.

    Returns:
        :func:`velocity_metrics`' ``relative_error`` and ``cosine_similarity`` per predicted step (lists), their
        means, ``position_error`` per frame (list; vpzoo's diagnostic, in units of the frame's side) with its mean
        over the context frames and over the predicted ones, ``num_matched`` and ``num_clips``.
    """
    n_past = model.n_past if n_past is None else n_past
    was_training = model.training
    model.eval()
    predicted, true = [], []
    seen = 0
    try:
        for batch in batches:
            if not isinstance(batch, dict) or not {"video", "positions"} <= set(batch):
                raise ValueError("batches must be {'video', 'positions'} dicts (BouncingBallsDataModule with "
                                 "return_positions=True)")
            video, positions = batch["video"].to(model.device), batch["positions"].to(model.device)
            if max_clips is not None:
                video, positions = video[: max_clips - seen], positions[: max_clips - seen]
            if positions.shape[2] != model.n_components:
                raise ValueError(f"the clips hold {positions.shape[2]} balls but the model has "
                                 f"{model.n_components} components")
            out = model.infer(video[:, :n_past], video.shape[1] - n_past)
            predicted.append(pose_centres(out["pose"]).cpu())
            true.append(positions.cpu())
            seen += video.shape[0]
            if max_clips is not None and seen >= max_clips:
                break
    finally:
        model.train(was_training)
    scores = velocity_metrics(torch.cat(predicted), torch.cat(true), n_past, shift)
    return {
        "relative_error": scores["relative_error"].tolist(), "cosine_similarity": scores["cosine_similarity"].tolist(),
        "mean_relative_error": scores["relative_error"].mean().item(),
        "mean_cosine_similarity": scores["cosine_similarity"].mean().item(),
        "position_error": scores["position_error"].tolist(),
        "context_position_error": scores["position_error"][:n_past].mean().item(),
        "predicted_position_error": scores["position_error"][n_past:].mean().item(),
        "num_matched": int(scores["num_matched"]), "num_clips": seen,
    }



def component_separation(components: Tensor, objects: Tensor) -> Tensor:
    """How cleanly DDPAE's components separate a clip's objects: per clip, in ``[0, 1]``.

    For every component ``k`` and object ``o`` the component's intensity is summed over the pixels that object
    ``o`` covers alone (no other object there), ``m[k, o]``. The score of a clip is, for the best one-to-one
    assignment of components to objects, the mean over components of ``m[k, σ(k)] / Σ_o m[k, o]``: 1 when each
    component draws only its own object, ``1/K`` when every component draws all objects alike. Components that
    draw nothing on any object-only pixel count 0.

    Args:
        components: ``(B, T, K, C, H, W)``, e.g. ``model.infer(context, n_future, components=True)["components"]``.
        objects: ``(B, T, K, C, H, W)``, each object rendered alone (the same ``K`` as components).

    Returns:
        ``(B,)`` scores.
    """
    if components.ndim != 6 or components.shape != objects.shape:
        raise ValueError(f"components and objects must be equal (B, T, K, C, H, W) shapes, got "
                         f"{tuple(components.shape)} and {tuple(objects.shape)}")
    k = components.shape[2]
    if k > 8:
        raise ValueError(f"the best assignment is searched exhaustively: at most 8 components, got {k}")
    covered = objects > 0
    alone = covered & (covered.sum(dim=2, keepdim=True) == 1)  # (B, T, K, C, H, W)
    mass = torch.einsum("btkchw,btochw->bko", components.double(), alone.double())  # (B, K, K)
    share = mass / mass.sum(dim=2, keepdim=True).clamp_min(1e-12)
    best = torch.full((components.shape[0],), -1.0, dtype=torch.float64, device=components.device)
    for perm in itertools.permutations(range(k)):
        best = torch.maximum(best, share[:, torch.arange(k), list(perm)].mean(dim=1))
    return best
