"""``vpzoo train-checkpoint NAME --max-minutes M --out DIR``: train one checkpoint of the queue, end to end.

Made for GPU machines that are offline and allow short jobs that return a few small files: nothing but this one
command has to be typed there. It

1. reads the entry's recipe from checkpoints.yaml (``queue``: the LightningCLI config and its overrides, see
   :mod:`vpzoo.zoo.catalog`) and builds the model, the data module and a Trainer through LightningCLI (every key of
   the config is validated as in ``vpzoo fit``), with the config's loggers replaced by one CSV logger in a scratch
   folder and its checkpoint callbacks dropped, so nothing but the results lands in ``--out``;
2. continues from the shipped weights of the entry, else from a planned entry's kept unfinished run
   (``queue.resume``, sha256-checked), or from ``--init-from`` (anything :func:`vpzoo.load` takes), with a fresh
   optimiser state (logged);
3. trains on whatever accelerator Lightning finds, in bf16-mixed where the hardware supports it and the entry does
   not opt out (``queue.bf16: false``), until the paper's remaining steps or Lightning's ``max_time`` (``M``
   minutes from the start of the command minus ``--reserve-minutes`` for validation and export) runs out;
4. validates, and writes into ``--out``: ``config.json`` + the weights sharded into files of at most 15 MiB
   (:mod:`vpzoo.zoo.sharded`: huggingface_hub's sharded safetensors writer, the index records every shard's
   sha256), ``train_result.json`` (validation metrics, steps before/during/after, throughput, hardware, times) and
   ``train.log``.

Back on the machine that holds the repository: ``vpzoo benchmark BENCH --checkpoint DIR --json DIR/benchmark.json``
then ``vpzoo add-checkpoint DIR --name NAME --replace --write --metrics DIR/benchmark.json --train-result
DIR/train_result.json`` ships the weights only if they beat the entry's ship bar; ``vpzoo add-checkpoint DIR --name
NAME --resume-weights --train-result DIR/train_result.json`` keeps a planned entry's weights that do not, for the
next run to continue.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

from vpzoo.zoo.catalog import checkpoints_file, read_entries, repository_file
from vpzoo.zoo.errors import ConfigMismatchError, UnknownCheckpointError
from vpzoo.zoo.sharded import INDEX_NAME, MAX_SHARD_BYTES

__all__ = ["RESULT_NAME", "LOG_NAME", "resolve_recipe", "build_from_recipe", "train_checkpoint", "main"]

RESULT_NAME = "train_result.json"
LOG_NAME = "train.log"
#: GPU jobs return at most this many files.
MAX_RETURNED_FILES = 8
_LOG = logging.getLogger("vpzoo.train")


def resolve_recipe(entry: Mapping[str, Any], path: str | os.PathLike | None = None) -> Path:
    """The entry's ``queue.config`` file (see :func:`vpzoo.zoo.catalog.repository_file`)."""
    return repository_file(entry["queue"]["config"], path, what=f"checkpoint {entry['name']!r}: its recipe")


def _entry(name: str, path: str | os.PathLike | None) -> dict[str, Any]:
    entries = read_entries(path)
    if name not in entries:
        queued = sorted(n for n, e in entries.items() if "queue" in e)
        raise UnknownCheckpointError(f"no checkpoint {name!r} in {checkpoints_file(path)}; the training queue has: "
                                     f"{', '.join(queued) or 'nothing'}")
    entry = entries[name]
    if "queue" not in entry:
        raise ValueError(f"checkpoint {name!r} has no training recipe (no `queue:` in {checkpoints_file(path)})")
    return entry


def _override_args(overrides: Mapping[str, Any]) -> list[str]:
    return [f"--{key}={value if isinstance(value, str) else json.dumps(value)}" for key, value in overrides.items()]


def build_from_recipe(
    entry: Mapping[str, Any],
    *,
    path: str | os.PathLike | None = None,
    work_dir: str | os.PathLike,
    trainer_settings: Mapping[str, Any] | None = None,
    extra_args: Sequence[str] = (),
) -> Any:
    """The LightningCLI (``run=False``) of an entry's recipe: ``.model``, ``.datamodule``, ``.trainer``.

    The recipe's loggers are replaced by a CSV logger under ``work_dir``, its ModelCheckpoint callbacks dropped;
    ``trainer_settings`` (e.g. ``max_steps``, ``max_time``, ``precision``) are set on top of the recipe, then the
    entry's ``queue.overrides`` and ``extra_args`` (``--key value`` as for ``vpzoo fit``) are applied.
    """
    import yaml

    import lightning as L
    from lightning.pytorch.cli import LightningCLI

    from vpzoo.models import VideoPredictionModel

    recipe = resolve_recipe(entry, path)
    doc = yaml.safe_load(recipe.read_text())
    work_dir = Path(work_dir)
    trainer = dict(doc.get("trainer") or {})
    callbacks = trainer.get("callbacks") or []
    callbacks = [callbacks] if isinstance(callbacks, dict) else callbacks
    trainer.update(
        logger={"class_path": "lightning.pytorch.loggers.CSVLogger",
                "init_args": {"save_dir": str(work_dir / "logs"), "name": ""}},
        # checkpoint files would only fill the job's output: the result is exported at the end
        callbacks=[c for c in callbacks if not str(c.get("class_path", "")).endswith("ModelCheckpoint")],
        enable_checkpointing=False, default_root_dir=str(work_dir), enable_progress_bar=False,
    )
    trainer.update(trainer_settings or {})
    doc["trainer"] = trainer
    work_dir.mkdir(parents=True, exist_ok=True)
    config = work_dir / "recipe.yaml"
    config.write_text(yaml.safe_dump(doc, sort_keys=False))
    args = ["--config", str(config), *_override_args(entry["queue"].get("overrides", {})), *extra_args]
    with warnings.catch_warnings():  # args are ours, not sys.argv's: LightningCLI's warning about both is moot
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended to run from within")
        cli = LightningCLI(VideoPredictionModel, L.LightningDataModule, subclass_mode_model=True,
                           subclass_mode_data=True, args=args, run=False, save_config_callback=None)
    built = getattr(type(cli.model), "model_name", None)
    if built != entry["model"]:
        raise ConfigMismatchError(f"checkpoint {entry['name']!r} is a {entry['model']!r} but its recipe {recipe} "
                                  f"builds {built!r}")
    return cli


def _precision(choice: str, accelerator: str, entry: Mapping[str, Any]) -> str:
    import torch

    if choice != "auto":
        return choice
    if entry["queue"].get("bf16", True) is False:
        return "32-true"
    on_cuda = accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    return "bf16-mixed" if on_cuda and torch.cuda.is_bf16_supported() else "32-true"


def _hardware(trainer: Any) -> str:
    import torch

    root = trainer.strategy.root_device
    if root.type == "cuda":
        return f"{torch.cuda.get_device_name(root)} ({trainer.num_devices} device(s))"
    return f"{root.type.upper()}: {platform.processor() or platform.machine()}, {os.cpu_count()} logical cores"


def _init_weights(entry: Mapping[str, Any], init_from: str | None, path: str | os.PathLike | None) -> tuple[Any, str | None, int]:
    """The model to continue from, its description, and the steps it was trained for: ``init_from`` if given, else
    the shipped weights, else a planned entry's ``queue.resume`` weights (sha256-checked), else none."""
    import vpzoo
    from vpzoo.zoo.format import verify_sha256

    q = entry["queue"]
    if init_from is not None:
        source = vpzoo.load(init_from, checkpoints=path)
        training = (source.zoo_info or {}).get("config", {}).get("training") or {}
        return source, str(init_from), int(training.get("steps_trained", 0))
    if entry.get("status") != "planned" and "weights" in entry:
        return vpzoo.load(entry["name"], checkpoints=path), f"shipped weights of {entry['name']}", int(
            q["steps_trained"])
    if "resume" in q:
        file = repository_file(q["resume"]["weights"], path, what=f"checkpoint {entry['name']!r}: its resume weights")
        verify_sha256(file, q["resume"]["sha256"], f"the resume weights of {entry['name']!r} ({file})")
        return vpzoo.load(str(file)), f"resume weights of {entry['name']} ({q['resume']['weights']})", int(
            q["steps_trained"])
    return None, None, 0


class _Progress:
    """Lightning callback: counts training iterations, times them, logs every ``every`` iterations."""

    def __new__(cls, every: int):  # built lazily so that importing this module does not import Lightning
        from lightning.pytorch.callbacks import Callback

        class Progress(Callback):
            def __init__(self) -> None:
                self.batches = 0
                self.started = self.ended = None

            def on_train_start(self, trainer, pl_module) -> None:  # noqa: ANN001
                self.started = time.perf_counter()

            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
                self.batches += 1
                self.ended = time.perf_counter()
                if self.batches % every == 0 or self.batches == 1:
                    rate = self.batches / max(self.ended - self.started, 1e-9)
                    losses = {k: round(float(v), 5) for k, v in trainer.callback_metrics.items() if k.startswith("train")}
                    _LOG.info("iteration %d (global_step %d): %.3f it/s %s", self.batches, trainer.global_step, rate,
                              losses)

        return Progress()


def _batch_size(datamodule: Any) -> int | None:
    hp = getattr(datamodule, "hparams", {}) or {}
    value = hp.get("batch_size", getattr(datamodule, "batch_size", None))
    return int(value) if isinstance(value, int) else None


def train_checkpoint(
    name: str,
    *,
    max_minutes: float,
    out: str | os.PathLike,
    init_from: str | None = None,
    checkpoints: str | os.PathLike | None = None,
    max_steps: int | None = None,
    accelerator: str = "auto",
    precision: str = "auto",
    dtype: str = "float16",
    max_shard_bytes: int = MAX_SHARD_BYTES,
    reserve_minutes: float = 1.0,
    extra_args: Sequence[str] = (),
    started: float | None = None,
) -> dict[str, Any]:
    """Train checkpoint ``name`` of the queue for at most ``max_minutes`` and write the results to ``out``.

    Args:
        name: an entry of checkpoints.yaml with a ``queue`` recipe (shipped or planned).
        max_minutes: wall-clock budget of the whole command, from ``started`` (default: now).
        out: output folder (created; must hold no earlier results).
        init_from: weights to continue from (default: the entry's shipped weights, if any).
        max_steps: training iterations of this run (default: the paper's steps minus those trained so far).
        accelerator, precision: Lightning's; ``precision="auto"`` is bf16-mixed on CUDA GPUs with bf16 unless the
            entry says ``queue.bf16: false``, else 32-true.
        dtype: dtype of the exported weights.
        max_shard_bytes: largest weights file written.
        reserve_minutes: time kept back from training for validation and export.
        extra_args: ``--key value`` overrides, as for ``vpzoo fit``.

    Returns:
        the ``train_result.json`` document.
    """
    import torch

    import lightning
    import vpzoo
    from vpzoo.zoo.format import save_pretrained

    started = time.monotonic() if started is None else started
    started_wall = _dt.datetime.now(_dt.timezone.utc)
    if not max_minutes > 0:
        raise ValueError(f"--max-minutes must be > 0, got {max_minutes}")
    entry = _entry(name, checkpoints)
    q = entry["queue"]
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty; give train-checkpoint a new folder")
    out.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(out / LOG_NAME)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
    loggers = [logging.getLogger(n) for n in ("vpzoo.train", "lightning", "lightning.pytorch", "py.warnings")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.INFO)
    logging.captureWarnings(True)
    work = Path(tempfile.mkdtemp(prefix=f"vpzoo-train-{name}-"))
    try:
        source, init_desc, steps_before = _init_weights(entry, init_from, checkpoints)
        remaining = max(q["paper_steps"] - steps_before, 1)
        steps = remaining if max_steps is None else max_steps
        budget_s = max_minutes * 60 - (time.monotonic() - started) - reserve_minutes * 60
        if budget_s < 10:
            raise ValueError(f"--max-minutes {max_minutes} leaves {budget_s:.0f} s of training after the "
                             f"{reserve_minutes} min kept for validation and export; give more minutes")
        prec = _precision(precision, accelerator, entry)
        settings = {"max_steps": steps, "max_time": {"seconds": int(budget_s)}, "precision": prec,
                    "accelerator": accelerator, "devices": 1, "max_epochs": -1}
        _LOG.info("train-checkpoint %s: recipe %s, %d iterations at most (paper %d, trained %d), max_time %d s, "
                  "precision %s", name, q["config"], steps, q["paper_steps"], steps_before, int(budget_s), prec)
        cli = build_from_recipe(entry, path=checkpoints, work_dir=work, trainer_settings=settings,
                                extra_args=extra_args)
        model, datamodule, trainer = cli.model, cli.datamodule, cli.trainer
        if source is not None:
            try:
                model.load_state_dict(source.state_dict(), strict=True)
            except RuntimeError as e:
                raise ConfigMismatchError(f"the weights to continue from ({init_desc}) do not fit the recipe's "
                                          f"{entry['model']}: {e}") from None
            _LOG.info("continuing from %s (%d steps); the optimiser state is fresh (zoo weights carry none)",
                      init_desc, steps_before)
        else:
            _LOG.info("no weights to continue from: training from scratch")
        progress = _Progress(every=max(1, min(50, steps // 10)))
        trainer.callbacks.append(progress)
        trainer.fit(model, datamodule=datamodule)
        iterations = progress.batches
        seconds = (progress.ended - progress.started) if progress.batches else 0.0
        stopped_by = "max_steps" if trainer.global_step >= steps or iterations >= steps else "max_time"
        _LOG.info("trained %d iterations in %.1f s (stopped by %s); validating", iterations, seconds, stopped_by)
        t_val = time.perf_counter()
        validation = trainer.validate(model, datamodule=datamodule, verbose=False)
        val_seconds = time.perf_counter() - t_val
        metrics = {k: float(v) for d in validation for k, v in d.items()}
        _LOG.info("validation (%.1f s): %s", val_seconds, metrics)
        trained_total = steps_before + iterations
        provenance = {"checkpoint": name, "recipe": q["config"], "steps_trained": trained_total,
                      "steps_this_run": iterations, "init_from": init_desc}
        save_pretrained(model, out, dtype=dtype, model_card=False, max_shard_bytes=max_shard_bytes,
                        training=provenance)
        index = json.loads((out / INDEX_NAME).read_text())
        shards = {n: {"sha256": d, "bytes": (out / n).stat().st_size}
                  for n, d in index["metadata"]["shard_sha256"].items()}
        batch = _batch_size(datamodule)
        result = {
            "name": name, "model": entry["model"], "dataset": entry["dataset"], "recipe": q["config"],
            "overrides": dict(q.get("overrides", {})), "extra_args": list(extra_args),
            "init_from": init_desc, "optimizer_state": "fresh",
            "steps_before": steps_before, "steps_this_run": iterations, "global_step": int(trainer.global_step),
            "steps_trained": trained_total, "paper_steps": q["paper_steps"], "batch_size": batch,
            "paper_batch": q["paper_batch"], "stopped_by": stopped_by,
            "train_seconds": round(seconds, 3),
            "steps_per_second": round(iterations / seconds, 4) if seconds > 0 else None,
            "clips_per_second": round(iterations * batch / seconds, 3) if seconds > 0 and batch else None,
            "validation": metrics, "validation_seconds": round(val_seconds, 3),
            "precision": prec, "accelerator": trainer.strategy.root_device.type, "hardware": _hardware(trainer),
            "max_minutes": max_minutes, "reserve_minutes": reserve_minutes, "max_time_seconds": int(budget_s),
            "weights": {"index": INDEX_NAME, "dtype": dtype, "shards": shards, "max_shard_bytes": max_shard_bytes},
            "started": started_wall.isoformat(timespec="seconds"),
            "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "wall_seconds": round(time.monotonic() - started, 1),
            "versions": {"vpzoo": vpzoo.__version__, "torch": torch.__version__, "lightning": lightning.__version__,
                         "python": platform.python_version()},
        }
        (out / RESULT_NAME).write_text(json.dumps(result, indent=2) + "\n")
        files = sorted(p.name for p in out.iterdir())
        if len(files) > MAX_RETURNED_FILES:
            _LOG.warning("%s holds %d files, more than the %d a GPU job returns: %s", out, len(files),
                         MAX_RETURNED_FILES, files)
        _LOG.info("wrote %s: %s (%.0f s since the start)", out, ", ".join(files), time.monotonic() - started)
        return result
    except Exception:
        _LOG.exception("train-checkpoint %s failed", name)  # the traceback travels back in train.log
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
        for lg, level in zip(loggers, levels):
            lg.removeHandler(handler)
            lg.setLevel(level)
        logging.captureWarnings(False)
        handler.close()


def main(args: Sequence[str]) -> int:
    """``vpzoo train-checkpoint``'s command line."""
    started = time.monotonic()
    parser = argparse.ArgumentParser(
        prog="vpzoo train-checkpoint",
        description="Train one checkpoint of the training queue (checkpoints.yaml) for at most M minutes and write "
                    "its sharded zoo weights, train_result.json and train.log into DIR.",
        epilog="Anything after `--` is passed to the recipe like `vpzoo fit` flags, e.g. "
               "`-- --data.init_args.batch_size 64`.",
    )
    parser.add_argument("name", help="checkpoint name (`vpzoo list --all` shows the queue)")
    parser.add_argument("--max-minutes", type=float, required=True, help="wall-clock budget of the whole command")
    parser.add_argument("--out", required=True, help="output folder (new or empty)")
    parser.add_argument("--init-from", default=None, help="weights to continue from (default: the shipped ones, else "
                        "the entry's queue.resume)")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="training iterations of this run (default: the paper's steps not yet trained)")
    parser.add_argument("--accelerator", default="auto", help="Lightning accelerator (default auto)")
    parser.add_argument("--precision", default="auto", help="Lightning precision (default: bf16-mixed on GPUs "
                        "with bf16 unless the entry opts out, else 32-true)")
    parser.add_argument("--dtype", choices=("float16", "bfloat16", "float32"), default="float16",
                        help="dtype of the exported weights (default float16)")
    parser.add_argument("--max-shard-mib", type=float, default=MAX_SHARD_BYTES / 2**20,
                        help="largest weights file in MiB (default 15)")
    parser.add_argument("--reserve-minutes", type=float, default=1.0,
                        help="minutes kept back from training for validation and export (default 1)")
    parser.add_argument("--checkpoints", default=None, help="registry file (default: $VPZOO_CHECKPOINTS, else the "
                        "packaged checkpoints.yaml)")
    argv = list(args)
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1:]
    opts = parser.parse_args(argv)
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    _LOG.addHandler(console)
    try:
        result = train_checkpoint(
            opts.name, max_minutes=opts.max_minutes, out=opts.out, init_from=opts.init_from,
            checkpoints=opts.checkpoints, max_steps=opts.max_steps, accelerator=opts.accelerator,
            precision=opts.precision, dtype=opts.dtype, max_shard_bytes=int(opts.max_shard_mib * 2**20),
            reserve_minutes=opts.reserve_minutes, extra_args=extra, started=started,
        )
    finally:
        _LOG.removeHandler(console)
    print(json.dumps({k: result[k] for k in ("name", "steps_this_run", "steps_trained", "steps_per_second",
                                             "validation", "stopped_by")}, indent=2))
    return 0
