"""Enc-ODE-Dec: an encoder, a latent neural ODE and a decoder, for continuous-time video prediction.

Paper: David Kanaa*, Vikram Voleti*, Samira Ebrahimi Kahou, Christopher Pal, "Simple Video Generation using Neural
ODEs", NeurIPS 2019 Workshop on Learning with Rich Experience (LIRE), arXiv:2109.03292. Code by the authors (no
official release): https://github.com/voletiv/torchdiffeq, branches ``vikram/mmnist_rnn``
(``examples/latent_ode_moving_mnist.py``, the RNN-encoder model) and ``davidkanaa/develop`` (the deterministic
model). Sheet ``models-p2p-ddpae-odevideo.md`` §3.

The context is encoded to a latent state ``z_0`` at ODE time 0, a learned autonomous ODE ``dz/dt = f(z)`` is
integrated to the requested times and every state is decoded on its own. Time is continuous, so the model predicts
at any timestamps: between frames, or at another frame rate (``predict(..., times=...)``, below).

Two variants, as in the paper and the code:

- ``encodedec`` (:class:`EncODEDec`, Fig. 1b, Eq. elbo): a CNN of 4 pre-activation GroupNorm ResBlocks
  (``res_channels`` 8-16-32-32, 64 → 4 px) per frame, then an Elman RNN ``h ← tanh(W[feat, h])``, ``out = V h``
  (``hidden`` 128) fed the context frames **in reverse time order**, so that its last output parameterises
  q(z_0 | context) anchored at the *first* context frame; ``z_0 = μ + ε·exp(½ logvar)`` (``latent_dim`` 64).
  Loss ``-Σ_{t,pixels} log N(x_t; x̂_t, σ²) + Σ_latent KL(q(z_0) ‖ N(0, I))``, batch mean, with the code's
  ``σ = 0.3`` (``recon_sigma``; the paper writes σ = 1, an 11x weaker pixel term: set ``recon_sigma=1.0``).
- ``encodedec_det`` (:class:`EncODEDecDet`, Fig. 1a, Eq. loss2): a deterministic frame encoder (ResBlocks 16-32-64-64,
  then Linear(1024 → 256), tanh, Linear(256 → 128)) encodes every frame, ``z_0 = Enc(x_0)``, and the loss adds a
  latent-consistency term ``-Σ_{t,latent} log N(Enc(x_t); ẑ_t, 0.3²)`` to the pixel term (``latent_sigma``). The code
  *sums* that term over the batch while it averages the pixel term (its ``(B, T, latent)`` log-density goes through
  four ``.sum(-1)``, the batch included, before ``.mean()``), so the latent term weighs ``batch_size`` (100) times
  more per clip than the paper's equal-weight Eq. loss2; vpzoo follows the code (``latent_reduction="sum"``) and
  offers the paper's weighting as ``latent_reduction="mean"``. The code lets gradients flow into the encoder through
  the target ``Enc(x_t)``; ``detach_latent_target=True`` stops them (an option against latent collapse).

Both: ODE function Linear(latent → hidden), ELU, Linear(hidden → hidden), ELU, Linear(hidden → latent), autonomous
(t is ignored); decoder Linear(latent → hidden), ReLU, Linear(hidden → 4·4·C), 4 upsampling ResBlocks to the image
channels, tanh (frames live in [-1, 1] inside the model, ``x·2 - 1``); Adam(lr 1e-4), no schedule (``lr_decay_step``,
not in the code, drops it ×0.1 for CPU recipes), PyTorch's default
init. Time grid ``t_i = i / 19`` (``linspace(0, 1, 20)`` in the code; ``time_scale`` = 19 frames per unit time):
training reconstructs the ``n_past`` context frames at ``t = 0 … (n_past-1)/19`` (the code trains on reconstruction
only), prediction extrapolates to ``t = (n_past - 1 + k)/19``. The solver is ``torchdiffeq.odeint`` with its
defaults as the code calls it (dopri5, rtol 1e-7, atol 1e-9), gradients through the solver; ``method``,
``rtol``/``atol``, ``step_size`` (fixed-grid methods) and ``adjoint`` (``odeint_adjoint``) are options. Function
evaluations are counted and logged (``train/nfe``; ``train/nfe_backward`` under the adjoint).

Deviations and choices (all documented):

- **Context window.** The model conditions on the *last* ``n_past`` context frames (10 by default): ODE time 0 is
  the first frame of that window and the future frame ``k`` is at ``(n_past - 1 + k)/19``, the time range the model
  was trained on and the code's evaluation (reconstruct frames 1-10, extrapolate 11-20). Earlier frames of a longer
  context are not used (the code never sees more than 10). The deterministic variant encodes only the window's first
  frame, as the paper's Fig. 1a (one conditioning frame).
- **Skip level.** ``skip_level`` 1-4 (0 = off, the default) concatenates the encoder's feature map at that level, of
  the window's first frame (the RNN's last input), to the decoder's input at the same resolution, as the code's
  ``--skip_level``. The code concatenates the ``(B, …)`` map to the ``(B·T, …)`` decoder maps, which fails for
  ``T > 1``; here the map is repeated for every decoded frame (what the earlier commented-out code did).
- **Sampling.** ``predict`` draws ``num_samples`` values of z_0 per clip from q(z_0 | context) for ``encodedec``
  (as the code's visualisation); ``encodedec_det`` is deterministic (identical copies). Outputs are ``(x̂ + 1)/2``.
- **Adjoint at inference.** ``adjoint=True`` affects training only; ``predict`` and validation need no gradient and
  call ``odeint`` (same solution, no adjoint bookkeeping).

Continuous time (the model's ``predict_options``): ``predict(frames, n_future, times=[...])`` returns one frame per
entry of ``times``, the future timestamps **in units of the frame interval, counted from the last context frame**:
``times=[1, 2, 3]`` is exactly ``n_future=3``; ``[0.5, 1, 1.5, 2]`` adds the frames halfway between; 40 steps of 0.25
play the next 10 frames at 4x the frame rate. ``n_future`` must equal ``len(times)`` (the output has one frame per
time, and the contract's ``n_future`` is that count); times must be finite, > 0 (after the last context frame) and
strictly increasing. All clips of a batch share the times (torchdiffeq integrates one time grid per call).
"""

from __future__ import annotations

from typing import Any, Literal, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Imported with the module, not lazily: torchdiffeq's solver tables are module-level tensors, and a first import
# inside predict's inference_mode would make them inference tensors that a later training step cannot save.
# Guarded: torchdiffeq imports SciPy, which a GPU image may lack (and the offline wheelhouse cannot carry, ~35 MB);
# without them every other model still imports and trains, and building an Enc-ODE-Dec says what is missing.
try:
    import torchdiffeq
except ImportError as _error:  # torchdiffeq itself, or SciPy under it
    torchdiffeq = None
    _TORCHDIFFEQ_ERROR: Optional[ImportError] = _error
else:
    _TORCHDIFFEQ_ERROR = None

from vpzoo.models.base import VideoPredictionModel
from vpzoo.models.blocks import gaussian_kl, gaussian_log_density
from vpzoo.registry import register_model

__all__ = [
    "ADAPTIVE_METHODS",
    "FIXED_GRID_METHODS",
    "PreActResBlock",
    "ResNetFeatures",
    "ODEFunc",
    "RNNLatentEncoder",
    "FrameLatentEncoder",
    "LatentDecoder",
    "gaussian_nll",
    "EncODEDec",
    "EncODEDecDet",
]

ADAPTIVE_METHODS = ("dopri5", "dopri8", "bosh3", "fehlberg2", "adaptive_heun")
"""torchdiffeq's adaptive-step solvers (they take ``rtol``/``atol``)."""
FIXED_GRID_METHODS = ("euler", "midpoint", "rk4", "heun2", "heun3", "explicit_adams", "implicit_adams")
"""torchdiffeq's fixed-grid solvers (they take ``step_size``; without it they step between the requested times)."""


def gaussian_nll(x: Tensor, mean: Tensor, sigma: float) -> Tensor:
    """Elementwise ``-log N(x; mean, sigma²) = ½ (log 2π + 2 log σ + (x - mean)² / σ²)`` (same shape as ``x``)."""
    return -gaussian_log_density(x, mean, float(np.log(sigma)))


# --------------------------------------------------------------------------------------------------------
# Networks
# --------------------------------------------------------------------------------------------------------
def _group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(32, channels), channels)


class PreActResBlock(nn.Module):
    """Pre-activation GroupNorm ResBlock halving (``"down"``) or doubling (``"up"``) the resolution.

    ``a = relu(GN(x))``; output ``conv2(relu(GN(conv1(a)))) + resample(a)``. Down: ``conv1`` 3x3 stride 2,
    ``resample`` 1x1 stride 2 (no biases); up: both ``ConvTranspose2d`` k2 s2 with biases; ``conv2`` 3x3, no bias.
    GroupNorm has ``min(32, C)`` groups. Maps ``(N, c_in, H, W)`` to ``(N, c_out, H/2, W/2)`` or ``(…, 2H, 2W)``.
    """

    def __init__(self, c_in: int, c_out: int, mode: Literal["down", "up"]) -> None:
        super().__init__()
        self.norm1 = _group_norm(c_in)
        if mode == "down":
            self.resample = nn.Conv2d(c_in, c_out, 1, 2, bias=False)
            self.conv1 = nn.Conv2d(c_in, c_out, 3, 2, 1, bias=False)
        elif mode == "up":
            self.resample = nn.ConvTranspose2d(c_in, c_out, 2, 2)
            self.conv1 = nn.ConvTranspose2d(c_in, c_out, 2, 2)
        else:
            raise ValueError(f"mode must be 'down' or 'up', got {mode!r}")
        self.norm2 = _group_norm(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        a = F.relu(self.norm1(x))
        return self.conv2(F.relu(self.norm2(self.conv1(a)))) + self.resample(a)


class ResNetFeatures(nn.Module):
    """Downsampling ResBlocks ``channels → res_channels[0] → …``; returns the flat last map and the map after block
    ``skip_level`` (1-based; ``None`` when 0). ``(N, C, H, W)`` → ``(N, res_channels[-1]·(H/2^L)²)``."""

    def __init__(self, channels: int, res_channels: Sequence[int], skip_level: int = 0) -> None:
        super().__init__()
        chans = [channels, *res_channels]
        self.blocks = nn.ModuleList(PreActResBlock(a, b, "down") for a, b in zip(chans[:-1], chans[1:]))
        self.skip_level = skip_level

    def forward(self, x: Tensor) -> tuple[Tensor, Optional[Tensor]]:
        skip = None
        for level, block in enumerate(self.blocks, start=1):
            x = block(x)
            if level == self.skip_level:
                skip = x
        return x.flatten(1), skip


class ODEFunc(nn.Module):
    """Autonomous latent dynamics ``f(t, z) = fc3(elu(fc2(elu(fc1(z)))))`` (``t`` is ignored).

    ``nfe`` counts the evaluations (reset it before a solve to count that solve's).
    """

    def __init__(self, latent_dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(latent_dim, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.fc3 = nn.Linear(hidden, latent_dim)
        self.nfe = 0

    def forward(self, t: Tensor, z: Tensor) -> Tensor:
        self.nfe += 1
        return self.fc3(F.elu(self.fc2(F.elu(self.fc1(z)))))


class RNNLatentEncoder(nn.Module):
    """Elman-RNN encoder of q(z_0 | x_{0:T}): ResBlock features per frame, ``h ← tanh(i2h([feat, h]))`` from
    ``h = 0`` over the frames in **reverse** time order, ``(μ, logvar) = split(h2o(h))`` after frame 0.

    ``frames (B, T, C, H, W)`` in [-1, 1] → ``mu, logvar (B, latent_dim)`` and the skip map of frame 0 (or None).
    """

    def __init__(self, channels: int, image_size: int, res_channels: Sequence[int], hidden: int, latent_dim: int,
                 skip_level: int = 0) -> None:
        super().__init__()
        self.features = ResNetFeatures(channels, res_channels, skip_level)
        feat_dim = (image_size // 2 ** len(res_channels)) ** 2 * res_channels[-1]
        self.i2h = nn.Linear(feat_dim + hidden, hidden)
        self.h2o = nn.Linear(hidden, 2 * latent_dim)
        self.hidden = hidden

    def forward(self, frames: Tensor) -> tuple[Tensor, Tensor, Optional[Tensor]]:
        b, t = frames.shape[:2]
        feats, skip = self.features(frames.flatten(0, 1))  # all frames in one call; the RNN is the only recurrence
        feats = feats.view(b, t, -1)
        h = feats.new_zeros(b, self.hidden)
        for i in reversed(range(t)):
            h = torch.tanh(self.i2h(torch.cat([feats[:, i], h], dim=1)))
        mu, logvar = self.h2o(h).chunk(2, dim=1)
        if skip is not None:
            skip = skip.view(b, t, *skip.shape[1:])[:, 0]
        return mu, logvar, skip


class FrameLatentEncoder(nn.Module):
    """Deterministic per-frame encoder: ResBlock features, ``h2o(tanh(i2h(feat)))``.

    ``frames (N, C, H, W)`` in [-1, 1] → ``z (N, latent_dim)`` and the skip map (or None).
    """

    def __init__(self, channels: int, image_size: int, res_channels: Sequence[int], hidden: int, latent_dim: int,
                 skip_level: int = 0) -> None:
        super().__init__()
        self.features = ResNetFeatures(channels, res_channels, skip_level)
        feat_dim = (image_size // 2 ** len(res_channels)) ** 2 * res_channels[-1]
        self.i2h = nn.Linear(feat_dim, hidden)
        self.h2o = nn.Linear(hidden, latent_dim)

    def forward(self, frames: Tensor) -> tuple[Tensor, Optional[Tensor]]:
        feats, skip = self.features(frames)
        return self.h2o(torch.tanh(self.i2h(feats))), skip


class LatentDecoder(nn.Module):
    """``fc2(relu(fc1(z)))`` reshaped to ``(C_L, s, s)``, upsampling ResBlocks through the reversed
    ``res_channels`` to the image channels, tanh. ``z (N, latent)`` → ``(N, C, H, W)`` in [-1, 1].

    With ``skip_level`` = l > 0, the block that takes the level-l resolution gets ``cat([x, skip])`` (its input
    channels doubled); ``skip (M, C_l, h, w)`` is gathered onto the N rows by ``skip_index (N,)``.
    """

    def __init__(self, channels: int, image_size: int, res_channels: Sequence[int], hidden: int, latent_dim: int,
                 skip_level: int = 0) -> None:
        super().__init__()
        rev = list(res_channels)[::-1]
        n = len(rev)
        self.start_size = image_size // 2**n
        self.start_channels = rev[0]
        self.fc1 = nn.Linear(latent_dim, hidden)
        self.fc2 = nn.Linear(hidden, self.start_size**2 * rev[0])
        outs = rev[1:] + [channels]
        # block i works at the resolution of encoder level n - i
        self.skip_block = n - skip_level if skip_level else -1
        self.blocks = nn.ModuleList(
            PreActResBlock(c_in * (2 if i == self.skip_block else 1), c_out, "up")
            for i, (c_in, c_out) in enumerate(zip(rev, outs))
        )

    def forward(self, z: Tensor, skip: Optional[Tensor] = None, skip_index: Optional[Tensor] = None) -> Tensor:
        x = self.fc2(F.relu(self.fc1(z))).view(-1, self.start_channels, self.start_size, self.start_size)
        for i, block in enumerate(self.blocks):
            if i == self.skip_block:
                s = skip if skip_index is None else skip.index_select(0, skip_index)
                x = torch.cat([x, s], dim=1)
            x = block(x)
        return torch.tanh(x)


# --------------------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------------------
@register_model("encodedec")
class EncODEDec(VideoPredictionModel):
    """Enc-ODE-Dec with the RNN encoder (the VAE variant, ``vikram/mmnist_rnn``); the paper's Fig. 1b.

    Defaults are the code's Moving MNIST settings (≈0.27M parameters).

    Args:
        image_size: frame size (64; must be divisible by ``2 ** len(res_channels)``).
        channels: channels per frame (1 for Moving MNIST).
        n_past: context frames; the training loss reconstructs them (10 in the code).
        n_future: future frames of validation clips (10 in the code's evaluation).
        res_channels: channels of the downsampling ResBlocks (the decoder mirrors them); [8, 16, 32, 32].
        hidden: RNN, ODE-function and decoder hidden width (the code's ``nhidden``, 128).
        latent_dim: size of z (64).
        skip_level: encoder level (1-4) whose map of the window's first frame is concatenated into the decoder;
            0 = off (the code's default).
        recon_sigma: σ of the Gaussian pixel likelihood on [-1, 1] frames: 0.3 as the code (the paper: 1).
        time_scale: frames per unit of ODE time: 19 (the code's ``linspace(0, 1, 20)``).
        method: torchdiffeq solver (``dopri5`` as the code; see :data:`ADAPTIVE_METHODS`, :data:`FIXED_GRID_METHODS`).
        rtol, atol: tolerances of adaptive solvers (torchdiffeq's defaults 1e-7, 1e-9, as the code).
        step_size: step of a fixed-grid solver in ODE time units (None: step between the requested times only).
        adjoint: train with ``odeint_adjoint`` (O(1) memory in the solver steps; the code's ``--adjoint``).
        lr: Adam learning rate (1e-4).
        lr_decay_step: multiply the learning rate by 0.1 from this global step on (None: constant, as the code). Not
            in the code: an option for CPU recipes that train at a higher lr. The rate is set from ``global_step``
            before every batch, so the configured ``lr`` and drop also win over the rate saved in a resumed
            checkpoint (Adam's moments are kept), as for SVG and P2P.
        val_num_samples, metric_protocol, val_seed: see :class:`~vpzoo.models.base.VideoPredictionModel`.
    """

    stochastic = True
    encoder_kind = "rnn"
    paper = {
        "title": "Simple Video Generation using Neural ODEs",
        "authors": "David Kanaa, Vikram Voleti, Samira Ebrahimi Kahou, Christopher Pal",
        "venue": "NeurIPS 2019 Workshop on Learning with Rich Experience (LIRE)",
        "arxiv": "2109.03292",
        "url": "https://arxiv.org/abs/2109.03292",
    }
    predict_options = {
        "times": "future timestamps in frame intervals after the last context frame (finite, > 0, strictly "
                 "increasing; one frame per time; n_future must equal len(times)), e.g. [0.5, 1, 1.5, 2]",
    }

    def __init__(
        self,
        image_size: int = 64,
        channels: int = 1,
        n_past: int = 10,
        n_future: int = 10,
        res_channels: Sequence[int] = (8, 16, 32, 32),
        hidden: int = 128,
        latent_dim: int = 64,
        skip_level: int = 0,
        recon_sigma: float = 0.3,
        time_scale: float = 19.0,
        method: str = "dopri5",
        rtol: float = 1e-7,
        atol: float = 1e-9,
        step_size: Optional[float] = None,
        adjoint: bool = False,
        lr: float = 1e-4,
        lr_decay_step: Optional[int] = None,
        val_num_samples: int = 1,
        metric_protocol: str = "standard",
        val_seed: int = 0,
    ) -> None:
        if torchdiffeq is None:
            raise ImportError(
                f"{type(self).__name__} needs torchdiffeq and SciPy (its ODE solvers), which could not be imported "
                f"({_TORCHDIFFEQ_ERROR}): pip install 'torchdiffeq>=0.2.5' scipy"
            ) from _TORCHDIFFEQ_ERROR
        super().__init__(
            image_size=image_size, channels=channels, n_past=n_past, n_future=n_future,
            val_num_samples=val_num_samples, metric_protocol=metric_protocol, val_seed=val_seed,
        )
        res_channels = [int(c) for c in res_channels]
        self.save_hyperparameters()
        self.hparams.res_channels = res_channels
        self._check_options(image_size, res_channels, skip_level, method, rtol, atol, step_size, time_scale)
        for name, value in (("recon_sigma", recon_sigma), ("lr", lr)):
            if not value > 0:
                raise ValueError(f"{name} must be > 0, got {value}")
        if lr_decay_step is not None and (isinstance(lr_decay_step, bool) or not isinstance(lr_decay_step, int)
                                          or lr_decay_step < 1):
            raise ValueError(f"lr_decay_step must be None or an integer >= 1, got {lr_decay_step!r}")
        args = (channels, image_size, res_channels, hidden, latent_dim, skip_level)
        self.encoder = RNNLatentEncoder(*args) if self.encoder_kind == "rnn" else FrameLatentEncoder(*args)
        self.ode_func = ODEFunc(latent_dim, hidden)
        self.decoder = LatentDecoder(*args)
        self.last_nfe = 0

    @staticmethod
    def _check_options(image_size: int, res_channels: list[int], skip_level: int, method: str, rtol: float,
                       atol: float, step_size: Optional[float], time_scale: float) -> None:
        if not res_channels or min(res_channels) < 1:
            raise ValueError(f"res_channels must be a non-empty list of positive ints, got {res_channels}")
        if image_size % 2 ** len(res_channels):
            raise ValueError(
                f"image_size {image_size} must be divisible by 2**len(res_channels) = {2 ** len(res_channels)}"
            )
        if not (isinstance(skip_level, int) and 0 <= skip_level <= len(res_channels)):
            raise ValueError(f"skip_level must be an int in [0, {len(res_channels)}], got {skip_level!r}")
        if method not in ADAPTIVE_METHODS + FIXED_GRID_METHODS:
            raise ValueError(
                f"method must be a torchdiffeq solver, one of {ADAPTIVE_METHODS + FIXED_GRID_METHODS}, got {method!r}"
            )
        if step_size is not None:
            if method not in FIXED_GRID_METHODS:
                raise ValueError(f"step_size is an option of the fixed-grid methods {FIXED_GRID_METHODS}, not of "
                                 f"{method!r} (an adaptive solver: set rtol/atol)")
            if not step_size > 0:
                raise ValueError(f"step_size must be > 0, got {step_size}")
        if not (rtol > 0 and atol > 0):
            raise ValueError(f"rtol and atol must be > 0, got rtol={rtol}, atol={atol}")
        if not time_scale > 0:
            raise ValueError(f"time_scale must be > 0 (frames per unit of ODE time), got {time_scale}")

    # ------------------------------------------------------------------------------------------ pieces
    def to_model_range(self, frames: Tensor) -> Tensor:
        """[0, 1] frames → the model's [-1, 1]."""
        return frames * 2.0 - 1.0

    def integrate(self, z0: Tensor, t: Tensor) -> Tensor:
        """Solve ``dz/dt = f(z)`` from ``z(t[0]) = z0 (B, latent)``; ``t`` 1-D strictly increasing, ``t[0]`` the start.

        Returns ``(B, len(t), latent)`` (the state at every time of ``t``, ``t[0]`` included). Counts the function
        evaluations in :attr:`last_nfe`. Uses ``odeint_adjoint`` when ``adjoint`` is set and autograd records.
        The solve runs in at least float32 with autocast off (bf16/fp16 states cannot meet the tolerances).
        """
        hp = self.hparams
        if z0.dtype in (torch.float16, torch.bfloat16):
            z0 = z0.float()
        t = t.to(device=z0.device, dtype=z0.dtype)
        options = {"step_size": hp.step_size} if hp.step_size is not None else None
        kwargs = dict(rtol=hp.rtol, atol=hp.atol, method=hp.method, options=options)
        self.ode_func.nfe = 0
        with torch.autocast(z0.device.type, enabled=False):
            if hp.adjoint and torch.is_grad_enabled():
                z = torchdiffeq.odeint_adjoint(self.ode_func, z0, t, **kwargs)
            else:
                z = torchdiffeq.odeint(self.ode_func, z0, t, **kwargs)
        self.last_nfe = self.ode_func.nfe
        return z.transpose(0, 1)

    def decode(self, z: Tensor, skip: Optional[Tensor]) -> Tensor:
        """Decode ``z (B, T, latent)`` with the clip's skip map ``(B, c, h, w)`` (or None) → ``(B, T, C, H, W)``
        in [-1, 1]."""
        b, t = z.shape[:2]
        skip_index = None
        if skip is not None:
            skip_index = torch.arange(b, device=z.device).repeat_interleave(t)
        x = self.decoder(z.flatten(0, 1), skip, skip_index)
        return x.view(b, t, *x.shape[1:])

    def encode(self, window: Tensor) -> tuple[Tensor, Tensor, Optional[Tensor]]:
        """q(z_0 | window): ``window (B, T, C, H, W)`` in [-1, 1] → ``mu, logvar (B, latent)``, skip map or None."""
        return self.encoder(window)

    def frame_times(self, n: int, start: int = 0) -> Tensor:
        """ODE times of frames ``start … start+n-1`` of the window, ``(start + i) / time_scale``, float64
        (:meth:`integrate` casts them to the state's dtype)."""
        return torch.arange(start, start + n, dtype=torch.float64) / self.hparams.time_scale

    # ------------------------------------------------------------------------------------------- training
    def _window(self, batch: Tensor) -> Tensor:
        if batch.ndim != 5 or batch.shape[2:] != (self.channels, self.image_size, self.image_size):
            raise ValueError(
                f"expected batches of shape (B, T, {self.channels}, {self.image_size}, {self.image_size}), "
                f"got {tuple(batch.shape)}"
            )
        if batch.shape[1] < self.n_past:
            raise ValueError(f"training clips need at least n_past={self.n_past} frames, got T={batch.shape[1]}")
        return self.to_model_range(batch[:, : self.n_past])

    def forward_loss(self, batch: Tensor, noise: Optional[Tensor] = None) -> dict[str, Tensor]:
        """The code's loss on the first ``n_past`` frames of ``batch (B, T, C, H, W)`` in [0, 1].

        Returns ``loss = nll + kl`` (batch means), ``nll`` (``-Σ log N(x; x̂, σ²)`` over frames and pixels), ``kl``,
        ``mse`` (per-pixel mean on [0, 1]) and ``recon`` ``(B, n_past, C, H, W)`` in [-1, 1]. ``noise`` (the ε of
        z_0, ``(B, latent)``) defaults to a fresh normal draw.
        """
        x = self._window(batch)
        mu, logvar, skip = self.encode(x)
        eps = torch.randn_like(mu) if noise is None else noise
        z0 = mu + eps * (0.5 * logvar).exp()
        recon = self.decode(self.integrate(z0, self.frame_times(x.shape[1])), skip)
        nll = gaussian_nll(x, recon, self.hparams.recon_sigma).flatten(1).sum(1).mean()
        kl = gaussian_kl(mu, logvar, torch.zeros_like(mu), torch.zeros_like(logvar)).sum(1).mean()
        mse = F.mse_loss(recon.detach(), x).div(4.0)  # on [0, 1]: ((x̂ - x) / 2)²
        return {"loss": nll + kl, "nll": nll, "kl": kl, "mse": mse, "recon": recon}

    def training_step(self, batch: Tensor, batch_idx: int) -> Tensor:
        out = self.forward_loss(batch)
        logs = {k: out[k] for k in out if k != "recon"}
        self.log_dict({f"train/{k}": v for k, v in logs.items()}, prog_bar=True, batch_size=batch.shape[0])
        self.log("train/nfe", float(self.last_nfe), batch_size=batch.shape[0])
        self.ode_func.nfe = 0  # counts the adjoint's backward evaluations (plain backprop makes none)
        return self._require_finite(out["loss"])

    def on_after_backward(self) -> None:
        if self.hparams.adjoint:
            self.log("train/nfe_backward", float(self.ode_func.nfe))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)  # each step's rate: learning_rate

    def learning_rate(self, step: int, world_size: int, batch_size: int) -> float:
        """The learning rate of global step ``step``: ``lr``, times 0.1 from ``lr_decay_step`` on."""
        decay = self.hparams.get("lr_decay_step")
        return self.hparams.lr * (0.1 if decay is not None and step >= decay else 1.0)

    # ------------------------------------------------------------------------------------------- sampling
    def check_predict_options(self, context: Tensor, n_future: int, **options: Any) -> dict[str, Any]:
        times = options.get("times")
        if times is None:
            return {}
        name = type(self).__name__
        if isinstance(times, Tensor):
            values = times.detach().cpu()
        elif isinstance(times, (list, tuple, np.ndarray)):
            try:
                values = torch.as_tensor(np.asarray(times))
            except (TypeError, ValueError) as e:
                raise TypeError(f"{name}.predict: times must be a sequence of real numbers, got {times!r}") from e
        else:
            raise TypeError(
                f"{name}.predict: times must be a 1-D list, tuple, numpy array or tensor of real numbers, "
                f"got {type(times).__name__}"
            )
        if values.dtype == torch.bool or values.is_complex():
            raise TypeError(f"{name}.predict: times must hold real numbers, got dtype {values.dtype}")
        if values.ndim != 1:
            raise ValueError(f"{name}.predict: times must be 1-D, got shape {tuple(values.shape)}")
        if values.numel() == 0:
            raise ValueError(f"{name}.predict: times is empty; give at least one future timestamp")
        values = values.to(torch.float64)
        if not bool(torch.isfinite(values).all()):
            raise ValueError(f"{name}.predict: times must be finite, got {values.tolist()}")
        if values.min().item() <= 0:
            raise ValueError(
                f"{name}.predict: times are counted in frame intervals after the last context frame and must be "
                f"> 0, got {values.min().item():g}"
            )
        if values.numel() > 1 and not bool((values[1:] > values[:-1]).all()):
            raise ValueError(f"{name}.predict: times must be strictly increasing, got {values.tolist()}")
        if values.numel() != n_future:
            raise ValueError(
                f"{name}.predict returns one frame per entry of times: n_future must equal len(times), got "
                f"n_future={n_future} and {values.numel()} times"
            )
        return {"times": values}

    def initial_state(self, window: Tensor, num_samples: int, generator: torch.Generator
                      ) -> tuple[Tensor, Optional[Tensor]]:
        """z_0 for ``num_samples`` samples per clip ``(B·N, latent)``, sample-major within each clip, and the skip
        maps ``(B, c, h, w)`` (or None) of the ``window (B, T, C, H, W)`` in [-1, 1]."""
        mu, logvar, skip = self.encode(window)
        mu, logvar = mu.repeat_interleave(num_samples, 0), logvar.repeat_interleave(num_samples, 0)
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + eps * (0.5 * logvar).exp(), skip

    def sample_future(
        self, context: Tensor, n_future: int, num_samples: int, generator: torch.Generator,
        times: Optional[Tensor] = None,
    ) -> Tensor:
        b = context.shape[0]
        n = num_samples if self.stochastic else 1  # a deterministic model solves once and repeats the result
        window = self.to_model_range(context[:, -self.n_past :])
        z0, skip = self.initial_state(window, n, generator)
        if times is None:
            times = torch.arange(1, n_future + 1, dtype=torch.float64)
        ode_t = torch.cat([times.new_zeros(1), (self.n_past - 1 + times) / self.hparams.time_scale])
        z = self.integrate(z0, ode_t)[:, 1:]  # (B·N, n_future, latent)
        skip_index = None
        if skip is not None:  # clip of each decoded row: rows are (clip, sample, time)
            skip_index = torch.arange(b, device=z.device).repeat_interleave(n * n_future)
        x = self.decoder(z.flatten(0, 1), skip, skip_index)
        out = x.add(1.0).mul_(0.5).clamp_(0.0, 1.0).view(b, n, n_future, *x.shape[1:])
        return out if n == num_samples else out.expand(b, num_samples, *out.shape[2:]).clone()


@register_model("encodedec_det")
class EncODEDecDet(EncODEDec):
    """Enc-ODE-Dec with the deterministic frame encoder (``davidkanaa/develop``); the paper's Fig. 1a.

    ``z_0 = Enc(x_0)`` of the window's first frame; the loss is the pixel term plus the latent-consistency term
    ``-Σ log N(Enc(x_t); ẑ_t, latent_sigma²)``. Defaults are the code's (≈0.98M parameters).

    Args:
        latent_sigma: σ of the latent-consistency term (0.3 as the code).
        detach_latent_target: stop the gradient through the target ``Enc(x_t)`` (not in the code, which lets the
            encoder shrink its codes to lower the term; an option against that collapse).
        latent_reduction: how the latent term is reduced over the batch: "sum" as the code (batch_size times the
            weight of the batch-mean pixel term) or "mean" (the paper's Eq. loss2, equal weights).
        Other arguments as :class:`EncODEDec`; defaults res_channels [16, 32, 64, 64], hidden 256, latent_dim 128.
    """

    stochastic = False
    encoder_kind = "frame"

    def __init__(
        self,
        image_size: int = 64,
        channels: int = 1,
        n_past: int = 10,
        n_future: int = 10,
        res_channels: Sequence[int] = (16, 32, 64, 64),
        hidden: int = 256,
        latent_dim: int = 128,
        skip_level: int = 0,
        recon_sigma: float = 0.3,
        latent_sigma: float = 0.3,
        detach_latent_target: bool = False,
        latent_reduction: Literal["sum", "mean"] = "sum",
        time_scale: float = 19.0,
        method: str = "dopri5",
        rtol: float = 1e-7,
        atol: float = 1e-9,
        step_size: Optional[float] = None,
        adjoint: bool = False,
        lr: float = 1e-4,
        lr_decay_step: Optional[int] = None,
        metric_protocol: str = "standard",
        val_seed: int = 0,
    ) -> None:
        if not latent_sigma > 0:
            raise ValueError(f"latent_sigma must be > 0, got {latent_sigma}")
        if latent_reduction not in ("sum", "mean"):
            raise ValueError(
                f"latent_reduction must be 'sum' (the code) or 'mean' (the paper), got {latent_reduction!r}"
            )
        super().__init__(
            image_size=image_size, channels=channels, n_past=n_past, n_future=n_future, res_channels=res_channels,
            hidden=hidden, latent_dim=latent_dim, skip_level=skip_level, recon_sigma=recon_sigma,
            time_scale=time_scale, method=method, rtol=rtol, atol=atol, step_size=step_size, adjoint=adjoint, lr=lr,
            lr_decay_step=lr_decay_step, val_num_samples=1, metric_protocol=metric_protocol, val_seed=val_seed,
        )

    def encode_frames(self, frames: Tensor) -> tuple[Tensor, Optional[Tensor]]:
        """``frames (B, T, C, H, W)`` in [-1, 1] → codes ``(B, T, latent)`` and the skip map of frame 0 (or None)."""
        b, t = frames.shape[:2]
        z, skip = self.encoder(frames.flatten(0, 1))
        if skip is not None:
            skip = skip.view(b, t, *skip.shape[1:])[:, 0]
        return z.view(b, t, -1), skip

    def forward_loss(self, batch: Tensor, noise: Optional[Tensor] = None) -> dict[str, Tensor]:
        """The code's loss on the first ``n_past`` frames of ``batch (B, T, C, H, W)`` in [0, 1].

        Returns ``loss = nll + latent_nll``: ``nll`` sums over frames and pixels and averages over the batch,
        ``latent_nll`` sums over frames and latent dims and then sums (the code) or averages over the batch
        (``latent_reduction``); also ``mse`` (per-pixel mean on [0, 1]), ``recon`` ``(B, n_past, C, H, W)`` in [-1, 1].
        """
        x = self._window(batch)
        codes, skip = self.encode_frames(x)
        z = self.integrate(codes[:, 0], self.frame_times(x.shape[1]))
        recon = self.decode(z, skip)
        target = codes.detach() if self.hparams.detach_latent_target else codes
        nll = gaussian_nll(x, recon, self.hparams.recon_sigma).flatten(1).sum(1).mean()
        latent_nll = gaussian_nll(target, z, self.hparams.latent_sigma).flatten(1).sum(1)
        latent_nll = latent_nll.sum() if self.hparams.latent_reduction == "sum" else latent_nll.mean()
        mse = F.mse_loss(recon.detach(), x).div(4.0)
        return {"loss": nll + latent_nll, "nll": nll, "latent_nll": latent_nll, "mse": mse, "recon": recon}

    def initial_state(self, window: Tensor, num_samples: int, generator: torch.Generator
                      ) -> tuple[Tensor, Optional[Tensor]]:
        z0, skip = self.encoder(window[:, 0])
        return z0.repeat_interleave(num_samples, 0), skip
