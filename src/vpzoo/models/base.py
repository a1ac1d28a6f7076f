"""The model contract every vpzoo model honours.

:class:`VideoPredictionModel` is a LightningModule. A subclass implements the paper: ``training_step`` (the
paper's loss), ``configure_optimizers`` (the paper's optimiser and schedule) and :meth:`sample_future`, the
batched sampler that ``predict`` and ``validation_step`` share. Everything else lives here once:

- input handling for :meth:`predict` (layouts, dtypes, range and shape checks with clear errors),
- eval mode, ``torch.inference_mode`` and seeded, batched sampling,
- publishing in the zoo format (``save_pretrained``/``push_to_hub``/``from_pretrained``, :mod:`vpzoo.zoo`),
- validation: the future of each validation clip is predicted from its first ``n_past`` frames and per-frame
  PSNR/SSIM are accumulated with :mod:`vpzoo.metrics` (best of ``val_num_samples`` for stochastic models),
  synchronised across processes under DDP.

Video tensors are ``(B, T, C, H, W)`` float in [0, 1] throughout.
"""

from __future__ import annotations

import math
import os
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor

from vpzoo.metrics import SampleAggregatedMetric, get_protocol
from vpzoo.zoo.mixin import PretrainedMixin

__all__ = ["VideoPredictionModel"]


class VideoPredictionModel(PretrainedMixin, L.LightningModule):
    """Base class of all vpzoo models.

    Publishing (:class:`~vpzoo.zoo.mixin.PretrainedMixin`): ``save_pretrained(dir)``, ``push_to_hub(repo_id)`` and
    ``from_pretrained(name_or_path)``; ``vpzoo.load`` loads any of them.

    Args:
        image_size: height and width of the frames the model was built for (no resizing is ever done).
        channels: channels per frame (1 for MNIST/KTH, 3 for BAIR).
        n_past: number of context frames the model conditions on (the minimum ``predict`` accepts).
        n_future: number of future frames predicted during training.
        val_num_samples: samples drawn per validation clip; metrics report the best of them per sequence
            (forced to 1 for deterministic models).
        metric_protocol: name of the :mod:`vpzoo.metrics` protocol used for validation PSNR/SSIM
            ("standard": data_range 1; "svg": SSIM with data_range 2 as the SVG paper's evaluation).
        val_seed: base seed of the validation samples, so validation numbers repeat between runs.
    """

    #: Whether different seeds give different samples.
    stochastic: bool = True
    #: The model's paper (title, authors, venue, arxiv, url), recorded with its checkpoints and model cards.
    paper: dict[str, str] = {}
    #: Model-specific keywords that :meth:`predict` accepts beyond the common ones (name -> one-line description),
    #: e.g. ``{"end_frame": "..."}`` for a goal-conditioned model or ``{"times": "..."}`` for a continuous-time one.
    #: ``predict`` refuses any other keyword, checks the given ones with :meth:`check_predict_options` and hands
    #: them to :meth:`sample_future` as keyword arguments. Empty for models that take none.
    predict_options: dict[str, str] = {}
    #: Constructor arguments added after zoo configs of this model were first written, each with the value that
    #: reproduces the older behaviour. A saved config that lacks any other argument is refused when loaded (vpzoo
    #: never fills in today's defaults, which may not be the ones the weights were trained with).
    legacy_config_defaults: dict[str, Any] = {}

    def __init__(
        self,
        image_size: int,
        channels: int,
        n_past: int,
        n_future: int,
        val_num_samples: int = 1,
        metric_protocol: str = "standard",
        val_seed: int = 0,
    ) -> None:
        super().__init__()
        for name, value, low in (("image_size", image_size, 1), ("channels", channels, 1), ("n_past", n_past, 1),
                                 ("n_future", n_future, 1), ("val_num_samples", val_num_samples, 1)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        get_protocol(metric_protocol)  # fail early on an unknown protocol name
        self.image_size = image_size
        self.channels = channels
        self.n_past = n_past
        self.n_future = n_future
        self.val_num_samples = val_num_samples if self.stochastic else 1
        self.metric_protocol = metric_protocol
        self.val_seed = val_seed
        self.val_metrics = torch.nn.ModuleDict(
            {
                name: SampleAggregatedMetric(metric=name, reduction="best", protocol=metric_protocol)
                for name in ("psnr", "ssim")
            }
        )
        self.last_validation: dict[str, Any] = {}

    # ------------------------------------------------------------------------------------------ training
    def allow_unused_parameters_under_ddp(self, why: str) -> None:
        """Switch on DDP's ``find_unused_parameters`` for a model whose training steps do not reach every parameter
        (several optimisers, or phases that leave a sub-network out), which plain DDP rejects. Call it from
        ``setup``: it acts before the strategy wraps the model, so that ``--trainer.strategy ddp`` works as it
        does for the other models. Does nothing outside DDP."""
        from lightning.pytorch.strategies import DDPStrategy
        from lightning.pytorch.utilities import rank_zero_info

        strategy = self._trainer.strategy if self._trainer is not None else None
        if not isinstance(strategy, DDPStrategy):
            return
        ddp_kwargs = getattr(strategy, "_ddp_kwargs", None)
        name = type(self).__name__
        if not isinstance(ddp_kwargs, dict):
            raise RuntimeError(f"{name} needs DDP's find_unused_parameters=True ({why}): use --trainer.strategy "
                               "ddp_find_unused_parameters_true")
        if not ddp_kwargs.get("find_unused_parameters", False):
            ddp_kwargs["find_unused_parameters"] = True
            rank_zero_info(f"{name}: DDP find_unused_parameters=True ({why})")

    # ------------------------------------------------------------------------------------------ sampling
    def sample_future(
        self, context: Tensor, n_future: int, num_samples: int, generator: torch.Generator, **options: Any
    ) -> Tensor:
        """Draw ``num_samples`` futures for each clip in one batched pass.

        Args:
            context: ``(B, T_ctx, C, H, W)`` float in [0, 1] on the model's device, ``T_ctx >= n_past``.
            n_future: number of frames to predict.
            num_samples: samples per clip.
            generator: the only source of randomness (a ``torch.Generator`` on the model's device).
            **options: the model's own :attr:`predict_options`, as :meth:`check_predict_options` returned them.

        Returns:
            ``(B, num_samples, n_future, C, H, W)`` in [0, 1].
        """
        raise NotImplementedError

    def check_predict_options(self, context: Tensor, n_future: int, **options: Any) -> dict[str, Any]:
        """Validate and convert the model-specific keywords of :meth:`predict` (only names listed in
        :attr:`predict_options` reach this method). ``context`` is the prepared ``(B, T, C, H, W)`` clip. Raise
        ``TypeError``/``ValueError`` naming what was expected and what was given; return the options to pass to
        :meth:`sample_future`. The default accepts them unchanged."""
        return options

    def predict(
        self,
        frames: Tensor | np.ndarray,
        n_future: int,
        num_samples: int = 1,
        seed: int | None = None,
        **options: Any,
    ) -> Tensor:
        """Predict ``n_future`` frames after ``frames``.

        Args:
            frames: context clip(s): a torch tensor or numpy array, ``(T, C, H, W)`` or ``(B, T, C, H, W)``,
                float in [0, 1] or uint8 in [0, 255]; a numpy array may also be channels-last, ``(T, H, W, C)`` or
                ``(B, T, H, W, C)`` (as imageio reads video). ``T >= n_past``; all ``T`` frames condition the model.
            n_future: number of frames to predict (>= 1).
            num_samples: samples per clip (>= 1), drawn in one batched pass.
            seed: seed of the samples; the same seed gives the same samples. ``None`` draws a fresh seed.
            **options: model-specific keywords, the ones the model lists in :attr:`predict_options` (e.g.
                ``end_frame`` for P2P, ``times`` for the ODE model); any other keyword is a ``TypeError``.

        Returns:
            ``(B, num_samples, n_future, C, H, W)`` float in [0, 1] on the model's device (``B = 1`` for an
            unbatched input). Runs in eval mode under ``torch.inference_mode``; the training mode is restored.

        Raises:
            FloatingPointError: the model produced NaN/infinite values (corrupt or diverged weights).
        """
        unknown = sorted(set(options) - set(self.predict_options))
        if unknown:
            accepted = ", ".join(sorted(self.predict_options)) or "none"
            raise TypeError(
                f"{type(self).__name__}.predict got unexpected keyword(s) {', '.join(unknown)}; its model-specific "
                f"keywords are: {accepted}"
            )
        for name, value in (("n_future", n_future), ("num_samples", num_samples)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
                raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if seed is not None and (not isinstance(seed, (int, np.integer)) or isinstance(seed, bool)):
            raise TypeError(f"seed must be an integer or None, got {type(seed).__name__}")
        if seed is not None and not -(2**63) <= int(seed) < 2**64:
            raise ValueError(f"seed must lie in [-2**63, 2**64 - 1] (a torch.Generator seed), got {seed}")
        context = self.prepare_frames(frames)
        self._check_output_fits(context.shape[0], int(num_samples), int(n_future))
        generator = torch.Generator(device=self.device)
        if seed is None:
            generator.seed()
        else:
            generator.manual_seed(int(seed))
        options = self.check_predict_options(context, int(n_future), **options)
        was_training = self.training
        self.eval()
        try:
            with torch.inference_mode():
                out = self.sample_future(context, int(n_future), int(num_samples), generator, **options)
        except (torch.OutOfMemoryError, RuntimeError) as e:
            if not isinstance(e, torch.OutOfMemoryError) and "allocate" not in str(e):
                raise
            raise MemoryError(
                f"{type(self).__name__}.predict ran out of memory drawing {num_samples} sample(s) of {n_future} "
                f"frames for {context.shape[0]} clip(s) in one pass on {self.device}; ask for fewer samples or clips "
                f"per call and concatenate the results ({str(e).splitlines()[0]})"
            ) from None
        finally:
            self.train(was_training)
        expected = (context.shape[0], int(num_samples), int(n_future), self.channels, self.image_size, self.image_size)
        if tuple(out.shape) != expected:  # a contract violation of the subclass, not a user error
            raise RuntimeError(f"{type(self).__name__}.sample_future returned {tuple(out.shape)}, expected {expected}")
        self._check_output(out)
        return out

    def _check_output_fits(self, clips: int, num_samples: int, n_future: int) -> None:
        """Refuse up front a request whose output tensor alone would not fit in the device's memory (the sampling
        itself needs several times more), instead of failing inside the allocator after the work has started."""
        need = clips * num_samples * n_future * self.channels * self.image_size**2 * 4
        if self.device.type == "cuda":
            total = torch.cuda.get_device_properties(self.device).total_memory
        else:
            try:
                total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
            except (ValueError, OSError, AttributeError):  # pragma: no cover - no sysconf (Windows)
                return
        if need > total:
            raise MemoryError(
                f"{type(self).__name__}.predict: {num_samples} sample(s) x {n_future} frames x {clips} clip(s) need "
                f"{need / 2**30:.1f} GiB for the output alone, more than the {total / 2**30:.1f} GiB of {self.device}; "
                "ask for fewer samples or clips per call and concatenate the results"
            )

    def _check_output(self, out: Tensor) -> None:
        """The contract promises values in [0, 1]: NaN/inf means broken weights, never a result to hand back."""
        finite = torch.isfinite(out)
        if not bool(finite.all()):
            bad = 1.0 - finite.float().mean().item()
            source = getattr(self, "zoo_info", {}) or {}
            where = f" loaded from {source.get('source')!r}" if source.get("source") else ""
            raise FloatingPointError(
                f"{type(self).__name__}{where} predicted NaN or infinite values ({bad:.1%} of the output): its "
                "weights are corrupt or diverged; re-download or re-export them (vpzoo.load checks the sha256 of "
                "registered weights)"
            )
        low, high = out.min().item(), out.max().item()
        if low < 0.0 or high > 1.0:  # a contract violation of the subclass, not a user error
            raise RuntimeError(f"{type(self).__name__}.sample_future returned values in [{low}, {high}], not [0, 1]")

    def _reads_channels_last(self, shape: tuple[int, ...]) -> bool:
        """Layout of a numpy clip ``(..., C, H, W)`` or ``(..., H, W, C)``, decided by which reading matches the
        model's channel count and frame size (channels-first when both do). When neither does, the error names
        both readings, so a clip of the wrong size is not blamed on its channels."""
        if len(shape) not in (4, 5):
            return False  # the rank error below says what is expected
        size, c = self.image_size, self.channels
        first = (shape[-3], shape[-2], shape[-1])  # (C, H, W)
        last = (shape[-1], shape[-3], shape[-2])  # (H, W, C) read as (C, H, W)
        if first == (c, size, size):
            return False
        if last == (c, size, size):
            return True
        lead = "(B, T, " if len(shape) == 5 else "(T, "
        fixes_both = (f"resize the frames to {size}x{size}", f"convert the frames to {c} channel(s)")
        fixes = [fix for fix, needed in zip(fixes_both, ((size, size) not in (first[1:], last[1:]),
                                                          c not in (first[0], last[0]))) if needed]

        def reading(name: str, layout: str, chw: tuple[int, int, int]) -> str:
            problems = []
            if chw[0] != c:
                problems.append(f"{chw[0]} channel(s) instead of {c}")
            if chw[1:] != (size, size):
                problems.append(f"{chw[1]}x{chw[2]} frames instead of {size}x{size}")
            return f"read {name} {lead}{layout}) it has " + " and ".join(problems)

        raise ValueError(
            f"{type(self).__name__} expects frames of {c} channel(s) and {size}x{size} pixels; the array of shape "
            f"{tuple(shape)} fits neither layout: {reading('channels-first', 'C, H, W', first)}; "
            f"{reading('channels-last', 'H, W, C', last)}. vpzoo never resizes or converts silently: "
            + (" and ".join(fixes) if fixes else f"{fixes_both[0]} or {fixes_both[1]}") + " yourself"
        )

    def prepare_frames(self, frames: Tensor | np.ndarray) -> Tensor:
        """Validate and convert user frames to ``(B, T, C, H, W)`` float32 in [0, 1] on the model's device."""
        if isinstance(frames, np.ndarray):
            if frames.dtype == object or not (
                np.issubdtype(frames.dtype, np.floating) or np.issubdtype(frames.dtype, np.integer)
                or frames.dtype == np.bool_
            ):
                raise TypeError(f"frames must be a numeric array, got dtype {frames.dtype}")
            x = torch.from_numpy(np.ascontiguousarray(frames))
            if self._reads_channels_last(frames.shape):
                x = x.movedim(-1, -3)
        elif isinstance(frames, Tensor):
            x = frames.detach()
        else:
            raise TypeError(f"frames must be a torch.Tensor or numpy.ndarray, got {type(frames).__name__}")

        if x.ndim == 4:
            x = x.unsqueeze(0)
        elif x.ndim != 5:
            raise ValueError(
                f"frames must have shape (T, C, H, W) or (B, T, C, H, W), got a {x.ndim}-d array of shape "
                f"{tuple(x.shape)}"
            )
        b, t, c, h, w = x.shape
        if c != self.channels:
            raise ValueError(
                f"{type(self).__name__} expects {self.channels} channel(s) per frame, got {c} "
                f"(input shape {tuple(x.shape)}, read as (B, T, C, H, W))"
            )
        if (h, w) != (self.image_size, self.image_size):
            raise ValueError(
                f"{type(self).__name__} expects {self.image_size}x{self.image_size} frames, got {h}x{w}; "
                "vpzoo never resizes silently: resize the frames yourself"
            )
        if b < 1:
            raise ValueError("frames holds an empty batch (B = 0)")
        if t < self.n_past:
            raise ValueError(
                f"{type(self).__name__} needs at least n_past={self.n_past} context frames, got {t}"
            )

        if x.dtype == torch.uint8:
            x = x.float().div_(255.0)
        elif x.dtype == torch.bool or not x.is_floating_point():
            raise TypeError(f"frames must be float in [0, 1] or uint8 in [0, 255], got dtype {x.dtype}")
        else:
            x = x.float()
            if not torch.isfinite(x).all():
                raise ValueError("frames contain NaN or infinite values")
            low, high = x.min().item(), x.max().item()
            if low < 0.0 or high > 1.0:
                raise ValueError(
                    f"float frames must lie in [0, 1], got values in [{low!r}, {high!r}]; pass uint8 for [0, 255] data"
                )
        return x.to(self.device)

    # ---------------------------------------------------------------------------------------- validation
    def _evaluate_batch(self, batch: Tensor, batch_idx: int) -> None:
        if batch.ndim != 5 or batch.shape[1] <= self.n_past:
            raise ValueError(
                f"validation batches must be (B, T, C, H, W) with T > n_past={self.n_past}, got {tuple(batch.shape)}"
            )
        context, target = batch[:, : self.n_past], batch[:, self.n_past :]
        generator = torch.Generator(device=self.device)
        generator.manual_seed(self.val_seed + 1_000_003 * batch_idx + 7919 * self.global_rank)
        samples = self.sample_future(context, target.shape[1], self.val_num_samples, generator)
        for metric in self.val_metrics.values():
            metric.update(samples, target)

    def validation_step(self, batch: Tensor, batch_idx: int) -> None:
        self._evaluate_batch(batch, batch_idx)

    def test_step(self, batch: Tensor, batch_idx: int) -> None:
        self._evaluate_batch(batch, batch_idx)

    def _log_evaluation(self, stage: str) -> None:
        summary: dict[str, Any] = {}
        for name, metric in self.val_metrics.items():
            result = metric.compute()  # synchronised across processes by torchmetrics
            curve = result["per_frame"]
            self.log(f"{stage}/{name}", result["mean"].item(), sync_dist=False, rank_zero_only=True)
            for t, value in enumerate(curve.tolist(), start=self.n_past + 1):
                self.log(f"{stage}/{name}_t{t:02d}", value, sync_dist=False, rank_zero_only=True)
            summary[name] = result["mean"].item()
            summary[f"{name}_per_frame"] = curve.tolist()
            metric.reset()
        summary.update(
            num_samples=self.val_num_samples, selection="best" if self.stochastic else "single",
            protocol=self.metric_protocol, n_past=self.n_past,
        )
        self.last_validation = summary
        if not self.trainer.sanity_checking:
            psnr, ssim = summary["psnr"], summary["ssim"]
            n = len(summary["psnr_per_frame"])
            how = f"best of {self.val_num_samples}" if self.stochastic else "deterministic"
            self.print(
                f"[{stage}] step {self.global_step}: PSNR {psnr:.2f} dB, SSIM {ssim:.4f} "
                f"({n} predicted frames, {how}, protocol {self.metric_protocol!r})"
            )

    def predict_step(self, batch: Tensor, batch_idx: int) -> Tensor:
        """``vpzoo predict --config``: samples ``(B, N, T_f, C, H, W)`` for the future of each clip in ``batch``.

        The first ``n_past`` frames are the context; ``T_f`` is the rest of the clip, or ``n_future`` if the clip
        holds only context. ``N`` is ``val_num_samples``.
        """
        n_future = batch.shape[1] - self.n_past if batch.shape[1] > self.n_past else self.n_future
        generator = torch.Generator(device=self.device)
        generator.manual_seed(self.val_seed + 1_000_003 * batch_idx + 7919 * self.global_rank)
        return self.sample_future(batch[:, : self.n_past], n_future, self.val_num_samples, generator)

    def on_validation_epoch_end(self) -> None:
        self._log_evaluation("val")

    def on_test_epoch_end(self) -> None:
        self._log_evaluation("test")

    # ------------------------------------------------------------------------------------------ resuming
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Save the random state the next training step starts from, so that a resumed run draws the same noise as
        the uninterrupted one (the data streams continue by themselves: :class:`vpzoo.data._common.BatchStream`).
        Subclasses that override this call ``super()``."""
        state = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        checkpoint["vpzoo_rng_state"] = state

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._rng_state_to_restore = checkpoint.get("vpzoo_rng_state")

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        """Restore the saved random state just before the first training step of a resumed run (not at loading
        time: creating the data loader draws from the global generator in between), then set every parameter
        group's rate to :meth:`learning_rate` when the model defines one. Subclasses that override this call
        ``super()``."""
        state = getattr(self, "_rng_state_to_restore", None)
        if state is not None:
            self._rng_state_to_restore = None
            torch.set_rng_state(state["torch"])
            if "cuda" in state and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(state["cuda"])
        video = batch["video"] if isinstance(batch, dict) else batch  # Bouncing Balls' return_positions: a dict
        if not isinstance(video, Tensor):
            raise TypeError(f"{type(self).__name__}: a training batch must be a (B, T, C, H, W) tensor or a dict with "
                            f"'video', got {type(batch).__name__}")
        lr = self.learning_rate(self.trainer.global_step, self.trainer.world_size, video.shape[0])
        if lr is not None:
            for optimizer in self.trainer.optimizers:
                for group in optimizer.param_groups:
                    group["lr"] = lr

    def learning_rate(self, step: int, world_size: int, batch_size: int) -> float | None:
        """The learning rate of (0-based) optimiser step ``step`` with ``world_size`` processes of ``batch_size``
        clips each, set on every parameter group before that step; ``None`` (the default) leaves the rate to the
        optimiser and its Lightning schedulers. Models whose rate is a function of the step (a constant, a decay, a
        warm-up) return it here: the one way a rate is scheduled outside a scheduler, and the reason the configured
        rate wins over the one saved in a resumed checkpoint (Adam's moments are kept)."""
        return None

    # ------------------------------------------------------------------------------------------ helpers
    def num_parameters(self) -> int:
        """Trainable parameters (the count the reference sheets quote; BatchNorm running stats excluded)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def _require_finite(self, loss: Tensor) -> Tensor:
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"{type(self).__name__}: the training loss became {loss.item()}")
        return loss
