"""The ``vpzoo`` command line.

- ``vpzoo fit|validate|test|predict --config CONFIG [--section.key value ...]``: Lightning's own CLI
  (:class:`lightning.pytorch.cli.LightningCLI`), so every option of the model, the data module and the trainer
  can be set in the YAML config or overridden on the command line (e.g. ``--trainer.max_steps 200``);
  ``--init_from NAME_OR_PATH`` sets the model's weights from zoo weights first (fine-tuning; fresh optimiser).
- ``vpzoo predict NAME_OR_PATH [--input CLIP] ...``: the zoo's prediction demo. A positional argument (or ``--help``)
  right after ``predict`` selects it; ``vpzoo predict --config ...`` stays Lightning's.
- ``vpzoo list [PATTERN] [--checkpoints | --all]``: registered models (default) and pretrained checkpoints;
  ``--all`` adds the training queue (planned checkpoints too) with its progress.
- ``vpzoo train-checkpoint NAME --max-minutes M --out DIR``: train one checkpoint of the queue
  (:mod:`vpzoo.zoo.training`).
- ``vpzoo export CKPT OUT_DIR [--dtype float16]``: a ``vpzoo fit`` checkpoint to a zoo folder.
- ``vpzoo add-checkpoint SRC --name NAME ...``: the checkpoints.yaml entry of an exported folder (printed, or
  appended with ``--write``).
- ``vpzoo convert svg|drnet PATH OUT_DIR``: a model file saved by the authors' own code to a zoo folder
  (:mod:`vpzoo.zoo.official`).
- ``vpzoo benchmark [NAME] [--checkpoint CKPT ...] [--rerun]``: leaderboard reproduction (:mod:`vpzoo.leaderboard`):
  a benchmark's published numbers beside the zoo's recorded ones, and checkpoints measured under the same protocol.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import warnings
from pathlib import Path

__all__ = ["main"]

_LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")
#: Arguments that make ``vpzoo predict`` Lightning's (a model on a data module) rather than the zoo's demo.
_LIGHTNING_PREDICT_FLAGS = ("--config", "-c", "--model", "--data", "--trainer", "--ckpt_path", "--print_config",
                            "--seed_everything", "--return_predictions", "--optimizer", "--lr_scheduler")
#: Known-harmless warnings printed on every run, from inside Lightning (messages, as regular expressions).
_QUIET_WARNINGS = (r"`isinstance\(treespec, LeafSpec\)` is deprecated",  # torch 2.14 about Lightning 2.6's _pytree
                   r"\s*``instantiate_classes`` was deprecated",  # jsonargparse 4.49+ about Lightning 2.6's cli.py
                   # under DDP, per logged metric; vpzoo's validation metrics are synchronised by torchmetrics and
                   # logged by rank 0 only (VideoPredictionModel._log_evaluation)
                   r"It is recommended to use `self\.log\('(val|test)/")


class _DropLightningTips(logging.Filter):
    """Drops Lightning's "💡 Tip: ... try installing litlogger/litmodels" advertisements."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith("💡 Tip:")


_TIPS_FILTER = _DropLightningTips()


def _share_run_folder(loggers: list) -> None:
    """One run folder per run: CSVLogger and TensorBoardLogger with the same ``save_dir``/``name`` and no fixed
    version each pick "the next free version_N" on their own, so the second one lands in another folder than the
    first (which also holds config.yaml and the checkpoints). Give them the first one's version."""
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    folder_loggers = [lg for lg in loggers if isinstance(lg, (CSVLogger, TensorBoardLogger))]
    if len(folder_loggers) < 2:
        return
    first = folder_loggers[0]
    for other in folder_loggers[1:]:
        if other._version is None and Path(other.root_dir).resolve() == Path(first.root_dir).resolve():
            other._version = first.version


def _is_lightning_predict(args: list[str]) -> bool:
    """``vpzoo predict`` with Lightning's arguments (``--config``, ``--model...``, ...) is Lightning's command."""
    for arg in args:
        name = arg.split("=", 1)[0]
        if name in _LIGHTNING_PREDICT_FLAGS or name.split(".", 1)[0] in _LIGHTNING_PREDICT_FLAGS:
            return True
    return False


def _config_missing(args: list[str]) -> bool:
    """True when a Lightning command got neither a config nor a model (nor asked for help)."""
    return not any(a in ("-h", "--help", "-c") or a.startswith(("--config", "--model", "--print_config", "-c="))
                   for a in args)


def _config_files(args: list[str]) -> list[str]:
    """The YAML/JSON file names given with ``--config``/``-c`` (inline YAML strings are left to Lightning)."""
    files = []
    for i, arg in enumerate(args):
        value = None
        if arg in ("--config", "-c") and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith(("--config=", "-c=")):
            value = arg.split("=", 1)[1]
        if value is not None and value.lower().endswith((".yaml", ".yml", ".json")):
            files.append(value)
    return files


def _find_configs() -> tuple[Path | None, list[Path]]:
    """The configs folder (``./configs`` or the source checkout's) and the YAML files in it."""
    for folder in (Path.cwd() / "configs", Path(__file__).resolve().parents[2] / "configs"):
        files = sorted(folder.glob("*/*.yaml"))
        if files:
            return folder, files
    return None, []


def _missing_config_message(command: str) -> str:
    _, files = _find_configs()
    text = (f"vpzoo {command} needs a config: vpzoo {command} --config CONFIG [--section.key value ...], "
            f"e.g. vpzoo {command} --config configs/svg_lp/smmnist.yaml --trainer.max_steps 200.")
    if files:
        def shown(f: Path) -> str:
            try:
                return str(f.relative_to(Path.cwd()))
            except ValueError:
                return str(f)
        text += f"\nconfigs ({len(files)}, one per model and dataset):\n" + "\n".join(f"  {shown(f)}" for f in files)
    else:
        text += ("\nThe configs (configs/<model>/<dataset>.yaml) ship with vpzoo's source repository, not with the "
                 "installed package: pass the path of one.")
    if command == "predict":
        text += ("\nTo predict with a pretrained checkpoint instead: vpzoo predict NAME_OR_PATH (vpzoo list "
                 "--checkpoints).")
    return text


def check_resume_checkpoint(ckpt_path: object) -> None:
    """Refuse a ``--ckpt_path`` that vpzoo cannot load safely: a URL (Lightning would unpickle it with
    ``weights_only=False``, which can run code), or a local checkpoint that names a model class outside vpzoo's
    registry (LightningCLI would import that module). Lightning's own names (``last``, ``best``, ``hpc``, ``registry``)
    pass through. Raises :class:`vpzoo.zoo.errors.ZooError` subclasses with a one-line message."""
    from vpzoo.zoo.errors import CheckpointUnavailableError, ConfigMismatchError, CorruptCheckpointError

    if ckpt_path is None or str(ckpt_path) in ("last", "best", "hpc", "registry"):
        return
    path = str(ckpt_path)
    if "://" in path:
        raise CheckpointUnavailableError(
            f"--ckpt_path {path}: remote checkpoints are refused (Lightning would unpickle them, which can run code); "
            "download the file, check it, and pass the local path"
        )
    if not Path(path).is_file():
        raise CheckpointUnavailableError(f"--ckpt_path {path}: no such checkpoint file")
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means: not a plain Lightning checkpoint
        raise CorruptCheckpointError(
            f"--ckpt_path {path}: not a checkpoint that loads with weights_only=True ({str(e).splitlines()[0]}); "
            "vpzoo resumes only from checkpoints written by `vpzoo fit`"
        ) from None
    hparams = ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None
    class_path = hparams.get("_class_path") if isinstance(hparams, dict) else None
    if class_path is not None:
        from vpzoo.zoo.format import registered_class_paths

        if class_path not in registered_class_paths():
            raise ConfigMismatchError(
                f"--ckpt_path {path}: its model class {class_path!r} is not a registered vpzoo model class; vpzoo "
                "never imports a class named in a file"
            )


def _lightning_cli(args: list[str]) -> None:
    from typing import Optional

    from lightning.pytorch.callbacks import OnExceptionCheckpoint
    from lightning.pytorch.cli import LightningCLI
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from vpzoo.zoo.errors import ZooError

    class VpzooCLI(LightningCLI):
        """LightningCLI where the config file and the command line win over a resumed checkpoint's hyperparameters.

        With ``--ckpt_path``, Lightning (2.6) merges the checkpoint's saved model hyperparameters over everything the
        user wrote, so ``vpzoo fit --ckpt_path last.ckpt --model.init_args.lr 8e-4`` would silently keep the old
        rate (Lightning-AI/pytorch-lightning#21455). Here the checkpoint's values are the starting point and the
        ``--config`` files and flags are parsed again on top of them.
        """

        def parse_arguments(self, parser, args) -> None:  # noqa: ANN001 (Lightning's signature)
            self._vpzoo_args = args
            super().parse_arguments(parser, args)

        def _parse_ckpt_path(self) -> None:
            subcommand = self.config.get("subcommand")
            if subcommand:
                check_resume_checkpoint(self.config[subcommand].get("ckpt_path"))
            before = self.config
            super()._parse_ckpt_path()
            if self.config is not before and isinstance(self._vpzoo_args, list):
                self.config = self.parser.parse_args(self._vpzoo_args, namespace=self.config)

        def _prepare_subcommand_kwargs(self, subcommand: str) -> dict:
            kwargs = super()._prepare_subcommand_kwargs(subcommand)
            if "weights_only" in self._subcommand_method_arguments[subcommand]:
                if kwargs.get("weights_only") is False:
                    raise ZooError("--weights_only false is refused: vpzoo never unpickles a checkpoint (it could run "
                                   "code); checkpoints written by `vpzoo fit` load with weights_only=True")
                kwargs["weights_only"] = True  # Lightning would default to False for remote paths
            return kwargs

        def add_arguments_to_parser(self, parser) -> None:  # noqa: ANN001 (Lightning's signature)
            parser.add_argument(
                "--init_from", type=Optional[str], default=None,
                help="zoo weights (a checkpoint name, a zoo folder or .safetensors file, hf://owner/repo[@rev]) set "
                "on the model before the run starts: fine-tuning, or continuing an unfinished run kept in the "
                "repository (queue.resume). The optimiser state is fresh; not together with --ckpt_path.")

        def _set_initial_weights(self) -> None:
            source = self.config[self.subcommand].get("init_from")
            if source is None:
                return
            if self.config[self.subcommand].get("ckpt_path"):
                raise ZooError("give --init_from (zoo weights, fresh optimiser) or --ckpt_path (a `vpzoo fit` "
                               "checkpoint, resumed whole), not both")
            import vpzoo
            from vpzoo.zoo.errors import ConfigMismatchError

            loaded = vpzoo.load(source)
            if type(loaded) is not type(self.model):
                raise ConfigMismatchError(f"--init_from {source} holds a {type(loaded).__name__}; the config builds a "
                                          f"{type(self.model).__name__}")
            try:
                self.model.load_state_dict(loaded.state_dict(), strict=True)
            except RuntimeError as e:
                raise ConfigMismatchError(f"--init_from {source}: its weights do not fit the configured "
                                          f"{type(self.model).__name__} ({str(e).splitlines()[0]} ...); give the "
                                          "config the sizes those weights were trained with") from None
            print(f"vpzoo: model weights set from {source} (the optimiser state is fresh)", file=sys.stderr)

        def before_fit(self) -> None:
            self._set_initial_weights()

        before_validate = before_test = before_predict = before_fit

        def instantiate_trainer(self, **kwargs):  # noqa: ANN003, ANN201 (Lightning's signature)
            trainer = super().instantiate_trainer(**kwargs)
            _share_run_folder(trainer.loggers)
            if self.config.get("subcommand") == "fit":
                trainer.callbacks.append(_CheckpointOnSigterm())
            return trainer

    class _CheckpointOnSigterm(OnExceptionCheckpoint):
        """Lightning's on-exception checkpoint, for SIGTERM only, written beside the run's other checkpoints (the
        folder is known only once the run has started)."""

        def __init__(self) -> None:
            super().__init__(dirpath=".", filename="sigterm")

        def on_exception(self, trainer, pl_module, exception) -> None:  # noqa: ANN001
            if isinstance(exception, SIGTERMException):
                folder = getattr(trainer.checkpoint_callback, "dirpath", None) or trainer.default_root_dir
                self.dirpath = os.fspath(folder)
                # the full state (optimiser, loops) to resume from; explicit, so Lightning does not log that it
                # "defaulted weights_only to False" (a note about what it saves, not about loading)
                trainer.save_checkpoint(self.ckpt_path, weights_only=False)
                print(f"vpzoo: stopped by SIGTERM at step {trainer.global_step}; checkpoint saved to {self.ckpt_path} "
                      f"(resume with --ckpt_path {self.ckpt_path})", file=sys.stderr)

    try:
        _run_lightning_cli(VpzooCLI, args)
    except SIGTERMException:
        raise SystemExit(128 + 15) from None  # Lightning exits 0 on SIGTERM; a stopped run must not look finished


def _run_lightning_cli(cli_class: type, args: list[str]) -> None:
    import lightning as L

    from vpzoo.models import VideoPredictionModel

    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logging.getLogger(name).addFilter(_TIPS_FILTER)  # once per logger: the same filter object
    with warnings.catch_warnings():
        for message in _QUIET_WARNINGS:
            warnings.filterwarnings("ignore", message=message)
        if args == sys.argv[1:]:  # the console script: LightningCLI warns that it got both args and sys.argv, but
            # they are the same, and sys.argv must stay whole (Lightning's DDP launcher re-runs it in each process)
            warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended to run from within")
        cli_class(
            VideoPredictionModel,
            L.LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            args=args,
            save_config_kwargs={"overwrite": True},
        )


# ------------------------------------------------------------------------------------------------ list
def _list(args: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="vpzoo list", description="Registered models and pretrained checkpoints.")
    parser.add_argument("pattern", nargs="?", default="*", help="fnmatch pattern, e.g. 'svg*'")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--checkpoints", action="store_true", help="list pretrained checkpoints instead of models")
    group.add_argument("--all", action="store_true", help="list models, pretrained checkpoints and the training "
                       "queue (planned checkpoints, steps trained / paper steps)")
    opts = parser.parse_args(args)

    from vpzoo.registry import list_models
    from vpzoo.zoo import checkpoints_file, list_checkpoints, read_checkpoints

    status = 0
    if not opts.checkpoints:
        names = list_models(opts.pattern)
        if opts.all:
            print("models:")
        if names:
            print("\n".join(("  " if opts.all else "") + n for n in names))
        else:
            print(f"no model matches {opts.pattern!r}", file=sys.stderr)
            status = 1
        if not opts.all:
            try:
                n = len(list_checkpoints())
                print(f"({n} pretrained checkpoint{'s' if n != 1 else ''} registered: vpzoo list --checkpoints)",
                      file=sys.stderr)
            except (ValueError, OSError) as e:  # a broken registry must not hide the models
                print(f"(checkpoints registry unreadable: {e})", file=sys.stderr)
            return status
        print()
    entries = read_checkpoints()
    names = list_checkpoints(opts.pattern)
    if opts.all:
        print("pretrained checkpoints:")
    if not names:
        what = "no pretrained checkpoints are registered yet" if not entries else f"no checkpoint matches {opts.pattern!r}"
        print(f"{what} (registry: {checkpoints_file()})", file=sys.stderr if not opts.all else sys.stdout)
        return status if opts.all else (0 if not entries else 1)
    rows = [("name", "model", "dataset", "trained", "weights", "metrics")]

    def metric_text(m: dict) -> str:
        frames = (f", {m['context_frames']}->{m['predicted_frames']} frames"
                  if "context_frames" in m and "predicted_frames" in m else "")
        return (f"{m['metric']} {m['value']:.4g} ({m['protocol']}, {m.get('reduction', 'best')} of "
                f"{m['num_samples']}{frames})")

    for name in names:
        e = entries[name]
        w = e["weights"]
        metrics = ", ".join(metric_text(m) for m in e["metrics"])
        rows.append((name, e["model"], e["dataset"], f"{e['context_frames']}->{e['future_frames']}",
                     f"{w['size'] / 1e6:.1f} MB {w['dtype']} ({w['source']})" if "dtype" in w
                     else "authors' file (official)", metrics))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r[:-1], widths)) + "  " + r[-1])
    if opts.all:
        _print_queue(opts.pattern)
    return status


def _print_queue(pattern: str) -> None:
    """The training queue (`vpzoo list --all`): every entry with a recipe, shipped or planned, with its progress."""
    import fnmatch

    from vpzoo.zoo.catalog import describe_ship_bar, queue_progress, read_queue

    queue = [e for n, e in read_queue().items() if fnmatch.fnmatch(n, pattern)]
    print("\ntraining queue (vpzoo train-checkpoint NAME --max-minutes M --out DIR):")
    rows = [("priority", "name", "status", "progress (steps trained / paper steps)", "paper batch", "recipe",
             "ship bar")]
    for e in queue:
        q = e["queue"]
        bar = q["ship_bar"]
        rows.append((str(q["priority"]), e["name"], e.get("status", "shipped"), queue_progress(e),
                     str(q["paper_batch"]), q["config"],
                     describe_ship_bar(bar)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        print("  " + "  ".join(c.ljust(w) for c, w in zip(r[:-1], widths)) + "  " + r[-1])


# ------------------------------------------------------------------------------------------------ predict
def _predict(args: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="vpzoo predict",
        description="Predict the future of a clip with a pretrained model and write a GIF and a PNG grid of "
        "context | ground truth | samples, labelled, with PSNR/SSIM against the ground truth in the caption.",
        epilog="Lightning's predict command (a model on a data module's predict set) is `vpzoo predict --config "
        "CONFIG [--key value ...]`; `vpzoo predict --config CONFIG --help` lists its options.",
    )
    parser.add_argument("model", metavar="NAME_OR_PATH", nargs="?",
                        help="checkpoint name, zoo folder, .safetensors/.ckpt file, or hf://owner/repo[@revision]")
    parser.add_argument("--input", "-i", help="clip (.gif, .npy, or a video FFmpeg decodes: .mp4, .avi, .mov, .mkv, "
                        ".webm); default: a clip of the checkpoint's benchmark test set (embedded SM-MNIST for "
                        "1x64x64 models)")
    colour = parser.add_mutually_exclusive_group()
    colour.add_argument("--grayscale", action="store_true", help="convert a colour --input to one channel (ITU-R "
                        "601 luma) for a 1-channel model; without it a colour clip is refused")
    colour.add_argument("--rgb", action="store_true", help="repeat a 1-channel --input to 3 channels for an RGB "
                        "model; without it a grey clip is refused")
    parser.add_argument("--clip-index", type=int, default=0, help="test clip used without --input")
    parser.add_argument("--context", type=int, default=None, help="context frames taken from the clip "
                        "(default: the model's n_past); the frames after them are the ground truth")
    parser.add_argument("--n-future", type=int, default=10, help="frames to predict (default 10)")
    parser.add_argument("--num-samples", type=int, default=3, help="samples to draw (default 3)")
    parser.add_argument("--fps-factor", type=int, default=1, help="continuous-time models (e.g. encodedec): predict "
                        "K frames per frame interval over the --n-future frames, a slow-motion GIF (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    parser.add_argument("--end-frame", help="target end frame of goal-conditioned models (p2p): an image (.png, "
                        ".jpg) or the first frame of a .gif/.npy/video; the last predicted frame aims at it")
    parser.add_argument("--end-from-input", action="store_true", help="goal-conditioned models: the clip's own "
                        "frame at the last predicted position is the end frame")
    parser.add_argument("--out", default="pred.gif", help="output GIF (default pred.gif)")
    parser.add_argument("--grid", default=None, help="output PNG grid (default: --out with suffix .png)")
    parser.add_argument("--plot", action="store_true", help="also plot per-frame PSNR/SSIM of every sample against "
                        "the ground truth, into --out's name with _metrics.png (pred.gif: pred_metrics.png)")
    parser.add_argument("--fps", type=float, default=4.0, help="GIF frame rate")
    parser.add_argument("--device", default="auto", help="'auto' (CUDA if available), 'cpu', 'cuda:0', ...")
    parser.add_argument("--revision", default=None, help="revision of an hf:// reference")
    opts = parser.parse_args(args)
    if opts.model is None:
        parser.error(_missing_checkpoint_message())
    if Path(opts.out).suffix.lower() != ".gif":
        parser.error(f"--out must end with .gif, got {opts.out!r}")
    for name, value in (("--n-future", opts.n_future), ("--num-samples", opts.num_samples), ("--fps", opts.fps)):
        if not value > 0:
            parser.error(f"{name} must be positive, got {value}")
    # everything the user typed is checked before the model is loaded and the sampling work is done
    if not opts.fps <= 100:
        parser.error(f"--fps must be at most 100 (GIF frame times are whole hundredths of a second), got {opts.fps}")
    if opts.fps_factor < 1:
        parser.error(f"--fps-factor must be an integer >= 1, got {opts.fps_factor}")
    grid = opts.grid if opts.grid is not None else str(Path(opts.out).with_suffix(".png"))
    if Path(grid).suffix.lower() != ".png":
        parser.error(f"--grid must end with .png, got {grid!r}")
    for flag, target in (("--out", opts.out), ("--grid", grid)):
        if Path(target).is_dir():
            raise ValueError(f"{flag} {target} is a folder: give a file name")
        existing = Path(target).resolve().parent  # missing folders are created: their nearest existing one counts
        while not existing.exists():
            existing = existing.parent
        if not existing.is_dir() or not os.access(existing, os.W_OK):
            problem = "is a file, so no folder can be made there" if not existing.is_dir() else "is not writable"
            raise ValueError(f"cannot use {flag} {target}: {existing} {problem}; check the path and its permissions")
    if opts.input is not None:
        from vpzoo.io import check_clip_path

        check_clip_path(opts.input)
    if opts.device != "auto":
        try:
            import torch

            torch.device(opts.device)
        except RuntimeError:
            parser.error(f"--device {opts.device!r} is not a device: use 'auto', 'cpu', 'cuda' or 'cuda:N'")

    import torch

    import vpzoo
    from vpzoo.zoo.visualize import prediction_scores, whole_frames, write_prediction

    device = ("cuda" if torch.cuda.is_available() else "cpu") if opts.device == "auto" else opts.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {device}: no CUDA GPU is usable here (torch.cuda.is_available() is False); use "
                     "--device cpu, or --device auto to take a GPU when there is one")
    model = vpzoo.load(opts.model, device=device, revision=opts.revision)
    if opts.fps_factor > 1 and "times" not in model.predict_options:
        parser.error(f"--fps-factor needs a continuous-time model (predict(..., times=...)); "
                     f"{type(model).__name__} predicts at the frame interval only")
    n_ctx = model.n_past if opts.context is None else opts.context
    if n_ctx < model.n_past:
        parser.error(f"--context {n_ctx}: {type(model).__name__} needs at least n_past={model.n_past} context frames")
    if opts.input is not None:
        from vpzoo.io import read_video, to_video_tensor

        clip = to_video_tensor(_read_input(opts, model, read_video, n_ctx + opts.n_future))
        source = opts.input
    else:
        if opts.grayscale or opts.rgb:
            parser.error("--grayscale and --rgb convert an --input clip; without --input the clip comes from the "
                         "model's benchmark test set, which already has its channels")
        bench = _demo_benchmark(opts.model, model)
        if bench is None:
            parser.error(f"without --input the clip comes from a benchmark test set (SM-MNIST: 1x64x64 frames), but "
                         f"this model expects {model.channels}x{model.image_size}x{model.image_size}: pass --input")
        data = bench.make_datamodule(bench.context_frames + bench.predicted_frames, bench.num_test, 1, None)
        data.setup("test")
        if not 0 <= opts.clip_index < len(data.test_set):
            parser.error(f"--clip-index must be in [0, {len(data.test_set) - 1}], got {opts.clip_index}")
        clip = data.test_set[opts.clip_index]
        source = f"{bench.name} test clip {opts.clip_index}"
    if clip.shape[0] < n_ctx:
        parser.error(f"{source} has {clip.shape[0]} frames, fewer than the {n_ctx} context frames needed: pass a "
                     f"longer clip or a smaller --context (at least n_past={model.n_past})")
    context, target = clip[:n_ctx], clip[n_ctx:n_ctx + opts.n_future]
    options = {}
    goal = "end_frame" in model.predict_options
    if opts.end_frame is not None or opts.end_from_input:
        if not goal:
            parser.error(f"{type(model).__name__} takes no end frame (--end-frame/--end-from-input are for "
                         "goal-conditioned models such as p2p)")
        if opts.end_frame is not None and opts.end_from_input:
            parser.error("give either --end-frame or --end-from-input, not both")
        if opts.end_from_input:
            if len(target) < opts.n_future:
                parser.error(f"--end-from-input needs {n_ctx + opts.n_future} frames in {source}, it has "
                             f"{clip.shape[0]}")
            options["end_frame"] = target[-1]
        else:
            options["end_frame"] = _read_end_frame(opts.end_frame, model.channels)
    elif goal:
        parser.error(f"{type(model).__name__} generates towards a target end frame: pass --end-frame END.png or "
                     "--end-from-input")
    k_fps = opts.fps_factor
    if k_fps == 1:
        pred = model.predict(context, opts.n_future, num_samples=opts.num_samples, seed=opts.seed,
                             **options)  # (1, N, T, C, H, W)
        shown = pred
    else:  # K frames per interval at times 1/K, 2/K, …; the frames at whole intervals are scored against the truth
        times = [i / k_fps for i in range(1, opts.n_future * k_fps + 1)]
        shown = model.predict(context, len(times), num_samples=opts.num_samples, seed=opts.seed, times=times,
                              **options)
        pred = whole_frames(shown[0], k_fps)[None]
    samples = pred[0].cpu()
    scores = prediction_scores(context, samples, target, model.metric_protocol) if len(target) else None
    plot = None
    if opts.plot:  # the metrics of the whole frames (with --fps-factor too)
        if scores is None:
            parser.error(f"--plot compares the samples with the ground truth, but {source} has no frames after the "
                         f"{n_ctx} context frames: pass a longer clip")
        plot = str(Path(opts.out).with_name(Path(opts.out).stem + "_metrics.png"))
    rate = f" at {k_fps}x the frame rate ({shown.shape[2]} frames)" if k_fps > 1 else ""
    title = (f"{opts.model}: {n_ctx} context frames of {source} -> {opts.num_samples} sample(s) of {opts.n_future} "
             f"frames{rate} (seed {opts.seed})")
    gif, png = write_prediction(opts.out, context, shown[0].cpu(), target if len(target) else None,
                                png_path=opts.grid, fps=opts.fps, scores=scores, title=title, plot_path=plot,
                                end_frame=options.get("end_frame"), steps_per_frame=k_fps)
    print(f"{opts.model} ({type(model).__name__}, {model.device}): {n_ctx} context frames of {source} -> "
          f"{opts.num_samples} sample(s) of {opts.n_future} frames{rate} (seed {opts.seed})")
    if scores is not None:
        k = scores.psnr.shape[1]
        print(f"vs ground truth ({k} frames, best of {opts.num_samples}, protocol {model.metric_protocol!r}): "
              f"PSNR {scores.best('psnr')[1]:.4g}, SSIM {scores.best('ssim')[1]:.4g} (copy-last: PSNR "
              f"{scores.copy_last_psnr.mean():.4g}, SSIM {scores.copy_last_ssim.mean():.4g})")
    print(f"wrote {gif} and {png}" + (f" and {plot}" if plot else ""))
    return 0


def _missing_checkpoint_message() -> str:
    try:
        from vpzoo.zoo import list_checkpoints

        names = list_checkpoints()
    except (ValueError, OSError) as e:  # a broken registry must not hide the usage
        names, broken = [], f" (checkpoints registry unreadable: {e})"
    else:
        broken = ""
    known = (f"registered checkpoints: {', '.join(names)}" if names else "no checkpoint is registered yet") + broken
    return (f"vpzoo predict needs a model: vpzoo predict NAME_OR_PATH [--input CLIP] [--out pred.gif], where "
            f"NAME_OR_PATH is a registered checkpoint name, a zoo folder, a .safetensors/.ckpt file or "
            f"hf://owner/repo; {known}. Lightning's predict on a data module is vpzoo predict --config CONFIG.")


def _read_input(opts: argparse.Namespace, model, read_video, max_frames: int):  # noqa: ANN001, ANN202
    """The ``--input`` clip as uint8 ``(T, H, W, C)`` with the model's channel count: a clip whose channels differ is
    refused unless ``--grayscale``/``--rgb`` asks for the conversion."""
    want = model.channels
    if opts.grayscale and want != 1:
        raise ValueError(f"--grayscale converts the clip to 1 channel, but {opts.model} expects {want} channels per "
                         "frame: drop --grayscale")
    if opts.rgb and want != 3:
        raise ValueError(f"--rgb converts the clip to 3 channels, but {opts.model} expects {want} channel(s) per "
                         "frame: drop --rgb")
    grayscale = True if opts.grayscale else False if opts.rgb else None  # None: as stored (grey if all equal)
    frames = read_video(opts.input, grayscale=grayscale, max_frames=max_frames)
    have = frames.shape[-1]
    if have != want:
        kind = {1: "grey (1 channel)", 3: "colour (3 channels)"}
        flag = {1: "--grayscale", 3: "--rgb"}.get(want)
        fix = (f"pass {flag} to convert it" if flag else "convert it yourself") + (
            " (ITU-R 601 luma)" if want == 1 else " (the grey channel repeated)" if want == 3 else "")
        raise ValueError(f"{opts.input} is {kind.get(have, f'{have} channels')} but {opts.model} expects "
                         f"{kind.get(want, f'{want} channels')} frames: {fix}, or use a model trained on "
                         f"{have}-channel frames")
    return frames


def _read_end_frame(path: str, channels: int):
    """One frame ``(C, H, W)`` float in [0, 1] from an image file, or the first frame of a clip file."""
    import numpy as np

    from vpzoo.io import _set_channels, read_video, to_video_tensor

    gray = {1: True, 3: False}.get(channels)
    if Path(path).suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp", ".webp"):
        if not Path(path).is_file():
            raise FileNotFoundError(f"no such end frame: {path}")
        from PIL import Image

        with Image.open(path) as image:
            frames = _set_channels(np.asarray(image.convert("RGB"))[None], gray)
    else:
        frames = read_video(path, grayscale=gray, max_frames=1)
    return to_video_tensor(frames)[0]


def _demo_benchmark(reference: str, model):
    """The benchmark whose test clips ``vpzoo predict`` shows without ``--input``: the one of the checkpoint's
    dataset for a registered checkpoint, else SM-MNIST for 1x64x64 models (None if nothing fits)."""
    from vpzoo.leaderboard import default_benchmark, get_benchmark
    from vpzoo.zoo import checkpoint_info, list_checkpoints

    name = default_benchmark(checkpoint_info(reference)["dataset"]) if reference in list_checkpoints() else None
    if name is None and (model.channels, model.image_size) == (1, 64):
        name = "smmnist_svg"
    return get_benchmark(name) if name is not None else None


# ------------------------------------------------------------------------------------------------ export
def _export(args: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="vpzoo export",
        description="Convert a Lightning checkpoint of `vpzoo fit` into a zoo folder (config.json, model.safetensors, "
        "README.md) that vpzoo.load and `vpzoo predict` take.",
    )
    parser.add_argument("ckpt", help="Lightning checkpoint (.ckpt)")
    parser.add_argument("out_dir", help="output folder")
    parser.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), default=None,
                        help="dtype of the stored weights (default: as trained); float16 halves the file, loading "
                        "upcasts to float32")
    parser.add_argument("--model", default=None, help="registry name of the model, if the checkpoint lacks its class")
    opts = parser.parse_args(args)

    from vpzoo.zoo import export_lightning_checkpoint, file_sha256

    out = export_lightning_checkpoint(opts.ckpt, opts.out_dir, dtype=opts.dtype, model=opts.model)
    weights = out / "model.safetensors"
    print(f"wrote {out}/: config.json, model.safetensors ({weights.stat().st_size:,} bytes, sha256 "
          f"{file_sha256(weights)}), README.md")
    return 0


# ------------------------------------------------------------------------------------------------ add-checkpoint
def _add_checkpoint(args: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="vpzoo add-checkpoint",
        description="Build the checkpoints.yaml entry of an exported zoo folder (sha256, size, config, recipe, "
        "metrics); print it, or append it to the registry with --write.",
    )
    parser.add_argument("source", help="zoo folder (from `vpzoo export`) or .safetensors file")
    parser.add_argument("--name", required=True, help="checkpoint name, e.g. svg_lp_smmnist")
    parser.add_argument("--dataset", help="dataset name, e.g. smmnist (required unless --resume-weights)")
    parser.add_argument("--metrics", help="JSON file with the metric records (a list, an object with a 'metrics' "
                        "list, or what `vpzoo benchmark --checkpoint CKPT --json` writes; required unless "
                        "--resume-weights)")
    parser.add_argument("--resume-weights", action="store_true", help="keep SOURCE as the unfinished run of the "
                        "planned entry NAME instead (queue/NAME.safetensors, recorded as its queue.resume "
                        "with steps_trained = --steps): the next `vpzoo train-checkpoint NAME` on any machine "
                        "continues from it; no metrics or ship bar involved")
    parser.add_argument("--dtype", choices=["float32", "float16", "bfloat16"], default=None,
                        help="with --resume-weights: the stored dtype (default float32, the exact values; float16 "
                        "halves the file where the tracked tree's size matters)")
    parser.add_argument("--training-config", help="training config file, e.g. configs/svg_lp/smmnist.yaml")
    parser.add_argument("--steps", type=int, help="training steps")
    parser.add_argument("--batch", type=int, help="clips per step of those --steps (their mean where runs differed), "
                        "recorded as queue.batch_trained; default: from --train-result, else the entry's recorded one")
    parser.add_argument("--hardware", help="e.g. '2-core CPU (no GPU)'")
    parser.add_argument("--time", help="wall-clock training time, e.g. '31 h'")
    parser.add_argument("--train-result", help="train_result.json of `vpzoo train-checkpoint`: the defaults of "
                        "--training-config, --steps, --hardware, --time and --paper-steps")
    parser.add_argument("--paper-steps", type=int, default=None, help="the paper's steps, when fewer were run")
    parser.add_argument("--license", default="Apache-2.0")
    for key in ("title", "authors", "venue", "arxiv", "url"):
        parser.add_argument(f"--paper-{key}", default=None, help=f"paper {key} (default: the model's known paper)")
    parser.add_argument("--notes", default=None, help="deviations from the paper's recipe, caveats")
    parser.add_argument("--copy-to", default=None, help="copy the weights to this path relative to the registry's "
                        "folder, e.g. weights/svg_lp_smmnist.safetensors (packaged weights)")
    parser.add_argument("--hub-repo", default=None, help="weights on the Hub: owner/repo")
    parser.add_argument("--hub-revision", default=None, help="weights on the Hub: pinned 40-hex commit")
    parser.add_argument("--hub-filename", default="model.safetensors")
    parser.add_argument("--checkpoints", default=None, help="registry file (default: $VPZOO_CHECKPOINTS, else the "
                        "packaged checkpoints.yaml)")
    parser.add_argument("--write", action="store_true", help="append the entry to the registry")
    parser.add_argument("--replace", action="store_true", help="with --write: replace an entry of the same name, "
                        "only if the new metrics beat its ship bar (queue.ship_bar); the old packaged weights are "
                        "deleted")
    opts = parser.parse_args(args)
    if opts.train_result:
        run = json.loads(Path(opts.train_result).read_text())
        defaults = {"training_config": run.get("recipe"), "steps": run.get("steps_trained"),
                    "hardware": run.get("hardware"), "paper_steps": run.get("paper_steps"),
                    "time": f"{run['train_seconds'] / 60:.1f} min in the last run ({run.get('started', '?')})"
                    if "train_seconds" in run else None}
        if run.get("batch_size") and run.get("steps_trained"):  # mean over the steps before the run and the run's
            from vpzoo.zoo.catalog import mean_batch, read_queue

            q = read_queue(opts.checkpoints).get(opts.name, {}).get("queue", {})
            before = q.get("batch_trained", q.get("paper_batch", run["batch_size"]))
            defaults["batch"] = mean_batch(run.get("steps_before", 0), before, run.get("steps_this_run", 0),
                                           run["batch_size"])
        for key, value in defaults.items():
            if getattr(opts, key) is None:
                setattr(opts, key, value)
    if opts.resume_weights:
        if opts.steps is None:
            parser.error("--resume-weights needs --steps (the steps those weights have had in all) or --train-result")
        from vpzoo.zoo.catalog import keep_resume_weights

        dtype = opts.dtype or "float32"
        dest = keep_resume_weights(opts.name, opts.source, steps=opts.steps, path=opts.checkpoints, dtype=dtype,
                                   batch=opts.batch)
        of_batch = f" of batch {opts.batch}" if opts.batch else ""
        print(f"kept {opts.source} as the resume weights of {opts.name!r} ({opts.steps:,} steps{of_batch}, {dtype}): "
              f"{dest}", file=sys.stderr)
        return 0
    if opts.dtype is not None:
        parser.error("--dtype applies to --resume-weights only (`vpzoo export --dtype` sets a shipped entry's)")
    absent = [f"--{k}" for k in ("dataset", "metrics") if getattr(opts, k) is None]
    if absent:
        parser.error(f"missing {', '.join(absent)} (or give --resume-weights to keep an unfinished run)")
    missing = [f"--{k.replace('_', '-')}" for k in ("training_config", "steps", "hardware", "time")
               if getattr(opts, k) is None]
    if missing:
        parser.error(f"missing {', '.join(missing)} (or give --train-result)")

    from vpzoo.zoo.catalog import add_checkpoint, dump_entry, make_checkpoint_entry

    metrics = json.loads(Path(opts.metrics).read_text())
    if isinstance(metrics, list) and metrics and all(isinstance(m, dict) and "benchmark" in m and "metrics" in m
                                                     for m in metrics):  # `vpzoo benchmark --json`: one result each
        if len(metrics) != 1:
            raise ValueError(f"{opts.metrics} holds {len(metrics)} benchmark results; expected the one of this "
                             f"checkpoint (run vpzoo benchmark with a single --checkpoint)")
        metrics = metrics[0]
    if isinstance(metrics, dict):
        metrics = metrics.get("metrics")
    training = {"config": opts.training_config, "steps": opts.steps, "hardware": opts.hardware, "time": opts.time}
    if opts.paper_steps is not None:
        training["paper_steps"] = opts.paper_steps
    if opts.batch is not None:
        training["batch"] = opts.batch
    paper = {k: getattr(opts, f"paper_{k}") for k in ("title", "authors", "venue", "arxiv", "url")
             if getattr(opts, f"paper_{k}") is not None} or None
    entry = make_checkpoint_entry(
        opts.source, name=opts.name, dataset=opts.dataset, metrics=metrics, training=training, license=opts.license,
        paper=paper,
        notes=opts.notes, hub_repo=opts.hub_repo, hub_revision=opts.hub_revision, hub_filename=opts.hub_filename,
        copy_to=opts.copy_to, path=opts.checkpoints,
    )
    print(dump_entry(entry), end="")
    if opts.write:
        file = add_checkpoint(entry, opts.checkpoints, replace=opts.replace)
        print(f"{'wrote' if opts.replace else 'appended'} {opts.name!r} to {file}", file=sys.stderr)
    return 0


# ------------------------------------------------------------------------------------------- benchmark
def _benchmark(args: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="vpzoo benchmark",
        description="Leaderboard reproduction: a benchmark's published numbers beside the zoo's recorded ones; with "
                    "--checkpoint (or --rerun) the checkpoints are measured now under the same protocol.",
    )
    parser.add_argument("name", nargs="?", help="benchmark protocol (omit to list them)")
    parser.add_argument("--checkpoint", action="append", default=[],
                        help="measure this checkpoint (name, folder, file or hf://owner/repo[@rev]); repeatable")
    parser.add_argument("--rerun", action="store_true", help="measure every zoo checkpoint recorded for it")
    parser.add_argument("--num-samples", type=int, help="N of best-of-N (default: the protocol's)")
    parser.add_argument("--num-test", type=int, help="score only the first K test clips (default: all)")
    parser.add_argument("--batch-size", type=int, default=8, help="clips per batch (memory: batch x N)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (batch i uses seed + i)")
    parser.add_argument("--root", help="dataset folder, for benchmarks on downloaded data")
    parser.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cuda if available)")
    parser.add_argument("--fvd-weights", help="local copy of the I3D TorchScript file (FVD benchmarks)")
    parser.add_argument("--json", type=Path, help="write the measured results (and checkpoints.yaml metric records)")
    opts = parser.parse_args(args)

    from vpzoo.leaderboard import format_report, get_benchmark, list_benchmarks, recorded_results, run_benchmark

    if opts.name is None:
        for name in list_benchmarks():
            print(format_report(name, recorded=recorded_results(name)), end="\n\n")
        return 0
    bench = get_benchmark(opts.name)
    recorded = recorded_results(bench)
    targets = list(opts.checkpoint) + ([r["checkpoint"] for r in recorded] if opts.rerun else [])
    measured = []
    for target in targets:
        def progress(done: int, total: int, target: str = target) -> None:
            print(f"\r{target}: {done}/{total} clips", end="", file=sys.stderr, flush=True)

        measured.append(run_benchmark(target, bench, num_samples=opts.num_samples, num_test=opts.num_test,
                                      batch_size=opts.batch_size, seed=opts.seed, root=opts.root,
                                      device=opts.device, progress=progress, fvd_weights_path=opts.fvd_weights))
        print(file=sys.stderr)
    print(format_report(bench, measured=measured, recorded=recorded))
    if opts.json:
        opts.json.write_text(json.dumps([m.to_dict() for m in measured], indent=2) + "\n")
        print(f"wrote {opts.json}", file=sys.stderr)
    return 0


USAGE = """usage: vpzoo COMMAND ...

commands:
  fit|validate|test|predict --config CONFIG [--key value ...]   train or evaluate (LightningCLI)
  predict NAME_OR_PATH [--input CLIP] [--n-future 10] [--num-samples 3] [--fps-factor 1] [--out pred.gif]
                                                               predict with a pretrained model, write GIF + PNG
  list [PATTERN] [--checkpoints | --all]                       registered models / pretrained checkpoints
  export CKPT OUT_DIR [--dtype float16]                        Lightning checkpoint -> zoo folder
  add-checkpoint SRC --name NAME ... [--write]                 checkpoints.yaml entry of an exported folder
  add-checkpoint SRC --name NAME --resume-weights --steps N [--batch B]   keep an unfinished run of a planned entry
  convert svg|drnet PATH OUT_DIR [--lstm PATH]                 the authors' own model.pth -> zoo folder
  benchmark [NAME] [--checkpoint CKPT ...] [--rerun]          published vs zoo numbers; measure checkpoints
  train-checkpoint NAME --max-minutes M --out DIR              train one checkpoint of the queue, sharded export
  data prepare NAME --root DIR                                 download and preprocess a dataset once
  data list                                                    the datasets `data prepare` knows

Run `vpzoo fit --help` for every option of a Lightning command, `vpzoo COMMAND --help` for the others."""

# ------------------------------------------------------------------------------------------------ convert
def _convert(args: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="vpzoo convert",
        description="Convert a model file saved by the authors' own code (edenton/svg or edenton/drnet-py model.pth, "
        "legacy or zip serialisation) into a zoo folder that vpzoo.load and `vpzoo predict` take. The file is read "
        "with PyTorch's weights-only unpickler and stand-in classes: nothing in it is run.",
    )
    parser.add_argument("converter", choices=("svg", "drnet"), help="which authors' code saved the file")
    parser.add_argument("path", help="the authors' .pth file (for drnet: train_drnet.py's file)")
    parser.add_argument("out_dir", help="output folder")
    parser.add_argument("--lstm", default=None, metavar="PATH",
                        help="drnet only: the pose LSTM file of train_lstm.py trained on these networks")
    opts = parser.parse_args(args)

    from vpzoo.zoo.official import convert_official, read_official_file

    kwargs = {}
    if opts.lstm is not None:
        if opts.converter != "drnet":
            parser.error("--lstm applies to the drnet converter only")
        kwargs["networks"] = read_official_file(opts.lstm)
    out = convert_official(opts.path, opts.out_dir, opts.converter, **kwargs)
    print(f"wrote {out}/: config.json, model.safetensors, README.md (load it with vpzoo.load({str(out)!r}))")
    return 0


def _data(args: list[str]) -> int:
    from vpzoo.data.prepare import main as prepare_main

    return prepare_main(args)


def _train_checkpoint(args: list[str]) -> int:
    from vpzoo.zoo.training import main as train_main

    return train_main(args)


_ZOO_COMMANDS = {"list": _list, "export": _export, "add-checkpoint": _add_checkpoint, "benchmark": _benchmark,
                 "data": _data, "train-checkpoint": _train_checkpoint, "convert": _convert}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``vpzoo`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    command, rest = args[0], args[1:]
    if command == "predict" and not _is_lightning_predict(rest):
        return _run(_predict, rest)
    if command in _LIGHTNING_COMMANDS:
        if _config_missing(rest):
            print(f"vpzoo: error: {_missing_config_message(command)}", file=sys.stderr)
            return 2
        absent = [c for c in _config_files(rest) if not Path(c).is_file()]
        if absent:  # before Lightning's import and its parser's usage dump
            print(f"vpzoo: error: the config file {absent[0]} does not exist. {_missing_config_message(command)}",
                  file=sys.stderr)
            return 2
        from vpzoo.zoo.errors import ZooError

        try:
            _lightning_cli([command, *rest])
        except ZooError as e:
            print(f"vpzoo: error: {e}", file=sys.stderr)
            return 1
        return 0
    if command in _ZOO_COMMANDS:
        return _run(_ZOO_COMMANDS[command], rest)
    print(f"vpzoo: unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
    return 2


def _run(fn, args: list[str]) -> int:
    """Run a zoo command; the zoo's own errors (and bad input) print one clear line instead of a traceback."""
    from vpzoo.zoo.errors import ZooError

    try:
        return fn(args)
    except (ZooError, ValueError, TypeError) as e:
        print(f"vpzoo: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        if e.errno is None or not e.strerror:  # vpzoo's own sentence, e.g. FileNotFoundError("x does not exist: ...")
            print(f"vpzoo: error: {e}", file=sys.stderr)
        else:  # a sentence instead of "[Errno 13] Permission denied: 'x'"
            where = f" {e.filename}" if e.filename else ""
            print(f"vpzoo: error: cannot use{where}: {e.strerror.lower()}; check the path and its permissions",
                  file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
