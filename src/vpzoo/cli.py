"""The ``vpzoo`` command line.

- ``vpzoo fit|validate|test|predict --config CONFIG [--section.key value ...]``: Lightning's own CLI
  (:class:`lightning.pytorch.cli.LightningCLI`), so every option of the model, the data module and the trainer
  can be set in the YAML config or overridden on the command line (e.g. ``--trainer.max_steps 200``).
- ``vpzoo predict NAME_OR_PATH [--input CLIP] ...``: the zoo's prediction demo. A positional argument (or ``--help``)
  right after ``predict`` selects it; ``vpzoo predict --config ...`` stays Lightning's.
- ``vpzoo list [PATTERN] [--checkpoints | --all]``: registered models (default) and pretrained checkpoints;
  ``--all`` adds the training queue (planned checkpoints too) with its progress.
- ``vpzoo train-checkpoint NAME --max-minutes M --out DIR``: train one checkpoint of the queue
  (:mod:`vpzoo.zoo.training`).
- ``vpzoo export CKPT OUT_DIR [--dtype float16]``: a ``vpzoo fit`` checkpoint to a zoo folder.
- ``vpzoo add-checkpoint SRC --name NAME ...``: the checkpoints.yaml entry of an exported folder (printed, or
  appended with ``--write``).
- ``vpzoo benchmark [NAME] [--checkpoint CKPT ...] [--rerun]``: leaderboard reproduction (:mod:`vpzoo.leaderboard`):
  a benchmark's published numbers beside the zoo's recorded ones, and checkpoints measured under the same protocol.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

__all__ = ["main"]

_LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")


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

        def instantiate_trainer(self, **kwargs):  # noqa: ANN003, ANN201 (Lightning's signature)
            trainer = super().instantiate_trainer(**kwargs)
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
                super().on_exception(trainer, pl_module, exception)
                print(f"vpzoo: stopped by SIGTERM at step {trainer.global_step}; checkpoint saved to {self.ckpt_path} "
                      f"(resume with --ckpt_path {self.ckpt_path})", file=sys.stderr)

    try:
        _run_lightning_cli(VpzooCLI, args)
    except SIGTERMException:
        raise SystemExit(128 + 15) from None  # Lightning exits 0 on SIGTERM; a stopped run must not look finished


def _run_lightning_cli(cli_class: type, args: list[str]) -> None:
    import lightning as L

    from vpzoo.models import VideoPredictionModel

    with warnings.catch_warnings():
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
                     f"{w['size'] / 1e6:.1f} MB {w['dtype']} ({w['source']})", metrics))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r[:-1], widths)) + "  " + r[-1])
    if opts.all:
        _print_queue(opts.pattern)
    return status


def _print_queue(pattern: str) -> None:
    """The training queue (`vpzoo list --all`): every entry with a recipe, shipped or planned, with its progress."""
    import fnmatch

    from vpzoo.zoo.catalog import queue_progress, read_queue

    queue = [e for n, e in read_queue().items() if fnmatch.fnmatch(n, pattern)]
    print("\ntraining queue (vpzoo train-checkpoint NAME --max-minutes M --out DIR):")
    rows = [("priority", "name", "status", "progress (steps trained / paper steps)", "batch", "recipe", "ship bar")]
    for e in queue:
        q = e["queue"]
        bar = q["ship_bar"]
        rows.append((str(q["priority"]), e["name"], e.get("status", "shipped"), queue_progress(e),
                     str(q["paper_batch"]), q["config"],
                     f"{bar['metric']} on {bar['benchmark']} beats {', '.join(map(str, bar['must_beat']))}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        print("  " + "  ".join(c.ljust(w) for c, w in zip(r[:-1], widths)) + "  " + r[-1])


# ------------------------------------------------------------------------------------------------ predict
def _predict(args: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="vpzoo predict",
        description="Predict the future of a clip with a pretrained model and write a GIF and a PNG grid of "
        "context | ground truth | samples.",
        epilog="Lightning's predict command (a model on a data module's predict set) is `vpzoo predict --config "
        "CONFIG [--key value ...]`; `vpzoo predict --config CONFIG --help` lists its options.",
    )
    parser.add_argument("model", metavar="NAME_OR_PATH",
                        help="checkpoint name, zoo folder, .safetensors/.ckpt file, or hf://owner/repo[@revision]")
    parser.add_argument("--input", "-i", help="clip (.gif, .mp4 and other videos, .npy); default: a clip of the "
                        "checkpoint's benchmark test set (embedded SM-MNIST for 1x64x64 models)")
    parser.add_argument("--clip-index", type=int, default=0, help="test clip used without --input")
    parser.add_argument("--context", type=int, default=None, help="context frames taken from the clip "
                        "(default: the model's n_past); the frames after them are the ground truth")
    parser.add_argument("--n-future", type=int, default=10, help="frames to predict (default 10)")
    parser.add_argument("--num-samples", type=int, default=3, help="samples to draw (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    parser.add_argument("--out", default="pred.gif", help="output GIF (default pred.gif)")
    parser.add_argument("--grid", default=None, help="output PNG grid (default: --out with suffix .png)")
    parser.add_argument("--fps", type=float, default=4.0, help="GIF frame rate")
    parser.add_argument("--device", default="auto", help="'auto' (CUDA if available), 'cpu', 'cuda:0', ...")
    parser.add_argument("--revision", default=None, help="revision of an hf:// reference")
    opts = parser.parse_args(args)
    if Path(opts.out).suffix.lower() != ".gif":
        parser.error(f"--out must end with .gif, got {opts.out!r}")

    import torch

    import vpzoo
    from vpzoo.metrics import SampleAggregatedMetric
    from vpzoo.zoo.visualize import write_prediction

    device = ("cuda" if torch.cuda.is_available() else "cpu") if opts.device == "auto" else opts.device
    model = vpzoo.load(opts.model, device=device, revision=opts.revision)
    n_ctx = model.n_past if opts.context is None else opts.context
    if n_ctx < model.n_past:
        parser.error(f"--context {n_ctx}: {type(model).__name__} needs at least n_past={model.n_past} context frames")
    if opts.input is not None:
        from vpzoo.io import read_video, to_video_tensor

        gray = {1: True, 3: False}.get(model.channels)
        clip = to_video_tensor(read_video(opts.input, grayscale=gray, max_frames=n_ctx + opts.n_future))
        source = opts.input
    else:
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
        parser.error(f"{source} has {clip.shape[0]} frames, fewer than the {n_ctx} context frames needed")
    context, target = clip[:n_ctx], clip[n_ctx:n_ctx + opts.n_future]
    pred = model.predict(context, opts.n_future, num_samples=opts.num_samples, seed=opts.seed)  # (1, N, T, C, H, W)
    gif, png = write_prediction(opts.out, context, pred[0], target if len(target) else None,
                                png_path=opts.grid, fps=opts.fps)
    print(f"{opts.model} ({type(model).__name__}, {model.device}): {n_ctx} context frames of {source} -> "
          f"{opts.num_samples} sample(s) of {opts.n_future} frames (seed {opts.seed})")
    if len(target):
        k = len(target)
        scores = []
        for name in ("psnr", "ssim"):
            metric = SampleAggregatedMetric(name, "best", protocol=model.metric_protocol)
            metric.update(pred[:, :, :k].cpu(), target[None])
            scores.append(f"{name.upper()} {metric.compute()['mean'].item():.4g}")
        print(f"vs ground truth ({k} frames, best of {opts.num_samples}, protocol {model.metric_protocol!r}): "
              + ", ".join(scores))
    print(f"wrote {gif} and {png}")
    return 0


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
    parser.add_argument("--dataset", required=True, help="dataset name, e.g. smmnist")
    parser.add_argument("--metrics", required=True, help="JSON file with the metric records (a list, an object "
                        "with a 'metrics' list, or what `vpzoo benchmark --checkpoint CKPT --json` writes)")
    parser.add_argument("--training-config", help="training config file, e.g. configs/svg_lp/smmnist.yaml")
    parser.add_argument("--steps", type=int, help="training steps")
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
        for key, value in defaults.items():
            if getattr(opts, key) is None:
                setattr(opts, key, value)
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
  predict NAME_OR_PATH [--input CLIP] [--n-future 10] [--num-samples 3] [--out pred.gif]
                                                               predict with a pretrained model, write GIF + PNG
  list [PATTERN] [--checkpoints | --all]                       registered models / pretrained checkpoints
  export CKPT OUT_DIR [--dtype float16]                        Lightning checkpoint -> zoo folder
  add-checkpoint SRC --name NAME ... [--write]                 checkpoints.yaml entry of an exported folder
  benchmark [NAME] [--checkpoint CKPT ...] [--rerun]          published vs zoo numbers; measure checkpoints
  train-checkpoint NAME --max-minutes M --out DIR              train one checkpoint of the queue, sharded export
  data prepare NAME --root DIR                                 download and preprocess a dataset once
  data list                                                    the datasets `data prepare` knows

Run `vpzoo fit --help` for every option of a Lightning command, `vpzoo COMMAND --help` for the others."""

def _data(args: list[str]) -> int:
    from vpzoo.data.prepare import main as prepare_main

    return prepare_main(args)


def _train_checkpoint(args: list[str]) -> int:
    from vpzoo.zoo.training import main as train_main

    return train_main(args)


_ZOO_COMMANDS = {"list": _list, "export": _export, "add-checkpoint": _add_checkpoint, "benchmark": _benchmark,
                 "data": _data, "train-checkpoint": _train_checkpoint}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``vpzoo`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    command, rest = args[0], args[1:]
    if command == "predict" and rest and (not rest[0].startswith("-") or rest[0] in ("-h", "--help")):
        return _run(_predict, rest)
    if command in _LIGHTNING_COMMANDS:
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
    except (ZooError, ValueError, FileNotFoundError) as e:
        print(f"vpzoo: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
