"""``vpzoo data ...``: download and preprocess datasets once (``vpzoo data prepare NAME --root DIR``).

The console entry point (:mod:`vpzoo.cli`) dispatches ``vpzoo data ARGS...`` to :func:`main` with ``ARGS``, e.g.
``main(["prepare", "kth", "--root", "data/kth", "--image-size", "64", "128"])``. Subcommands:

* ``prepare NAME --root DIR [options]`` with NAME in ``kth``, ``bair``, ``moving_mnist``, ``bouncing_balls``,
  ``human36m``, ``stochastic_shapes`` (see ``vpzoo data prepare NAME --help``);
* ``list``: the datasets, where their data comes from and their DataModule classes.

Return codes: 0 on success, 1 when the data is missing/corrupt/cannot be downloaded (the message says what to do),
2 on a usage error.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional

__all__ = ["DATASETS", "main", "build_parser"]

DATASETS = {
    "kth": ("vpzoo.data.kth.KTHDataModule", "six action zips from http://www.nada.kth.se/cvap/actions/ (~1 GB)"),
    "bair": ("vpzoo.data.bair.BAIRDataModule", "one tar from rail.eecs.berkeley.edu (~30 GB)"),
    "moving_mnist": ("vpzoo.data.moving_mnist.MovingMNISTDataModule",
                     "mnist_test_seq.npy from www.cs.toronto.edu (~820 MB); training data is generated"),
    "bouncing_balls": ("vpzoo.data.bouncing_balls.BouncingBallsDataModule", "simulated locally with a seed"),
    "human36m": ("vpzoo.data.human36m.Human36MDataModule",
                 "your own licensed copy (http://vision.imar.ro/human3.6m/); never downloaded"),
    "stochastic_shapes": ("vpzoo.data.stochastic_shapes.StochasticShapesDataModule",
                          "generated locally with a seed (t2t's Stochastic Movement Dataset)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vpzoo data", description="Download and preprocess vpzoo datasets.")
    sub = parser.add_subparsers(dest="command", metavar="{prepare,list}")
    sub.required = True
    sub.add_parser("list", help="list the datasets and their sources")
    prep = sub.add_parser("prepare", help="download (if possible) and preprocess a dataset once")
    names = prep.add_subparsers(dest="name", metavar="NAME")
    names.required = True

    def add(name: str, help_: str, root_required: bool = True) -> argparse.ArgumentParser:
        p = names.add_parser(name, help=help_, description=help_)
        p.add_argument("--root", required=root_required, default=None,
                       help="dataset directory" + ("" if root_required else " (default: the vpzoo cache)"))
        p.add_argument("--no-progress", action="store_true", help="no progress bars")
        return p

    p = add("kth", "KTH Actions: download the action zips and decode the AVIs to uint8 arrays")
    p.add_argument("--image-size", type=int, nargs="+", default=[64], help="frame sizes to write (e.g. 64 128)")
    p.add_argument("--base-url", default=None, help="where the zips are downloaded from (a mirror)")
    p.add_argument("--no-download", action="store_true", help="only use zips/AVIs already under --root")

    p = add("bair", "BAIR robot pushing: download the tar and convert its TFRecords to uint8 arrays")
    p.add_argument("--url", default=None, help="the tar's URL (a mirror, or file:///path/to/the.tar)")
    p.add_argument("--sha256", default=None, help="expected sha256 of the tar (checked after download)")
    p.add_argument("--no-verify-crc", action="store_true", help="skip the per-record CRC-32C check")
    p.add_argument("--no-download", action="store_true", help="only use a tar/extracted tree under --root")

    p = add("moving_mnist", "Moving MNIST: fetch the standard test file mnist_test_seq.npy", root_required=False)
    p.add_argument("--url", default=None, help="the test file's URL (a mirror, or file:///...)")
    p.add_argument("--no-download", action="store_true", help="only check an existing file")

    p = add("bouncing_balls", "Bouncing Balls: simulate the train/val/test trajectories", root_required=False)
    p.add_argument("--num-train", type=int, default=50000)
    p.add_argument("--num-val", type=int, default=256)
    p.add_argument("--num-test", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-seed", type=int, default=42)

    p = add("human36m", "Human3.6M: preprocess your own copy (S*/Videos/*.mp4 under --root)")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--frame-step", type=int, default=5, help="keep every k-th frame (5: 50 -> 10 fps)")

    p = add("stochastic_shapes", "Stochastic shapes: generate the fixed val/test clips", root_required=False)
    p.add_argument("--eval-seq-len", type=int, default=3)
    p.add_argument("--num-val", type=int, default=256)
    p.add_argument("--num-test", type=int, default=909)
    p.add_argument("--eval-seed", type=int, default=42)
    return parser


def _prepare(args: argparse.Namespace) -> str:
    progress = not args.no_progress
    name = args.name
    if name == "kth":
        from vpzoo.data.kth import KTH_BASE_URL, prepare_kth

        dirs = prepare_kth(args.root, args.image_size, download=not args.no_download,
                           base_url=args.base_url or KTH_BASE_URL, progress=progress)
        return "KTH ready: " + ", ".join(f"{s}px in {d}" for s, d in sorted(dirs.items()))
    if name == "bair":
        import json

        from vpzoo.data.bair import BAIR_URL, prepare_bair

        out = prepare_bair(args.root, download=not args.no_download, url=args.url or BAIR_URL, progress=progress,
                           verify_crc=not args.no_verify_crc, sha256=args.sha256)
        index = json.loads((out / "index.json").read_text())
        counts = ", ".join(f"{k}: {v['num_clips']} clips" for k, v in index["splits"].items())
        return f"BAIR ready in {out} ({counts})"
    if name == "moving_mnist":
        from vpzoo.data.moving_mnist import MovingMNISTDataModule

        dm = MovingMNISTDataModule(root=args.root, download=not args.no_download, url=args.url)
        path = dm.ensure_test_file()
        return f"Moving MNIST test file ready: {path}"
    if name == "bouncing_balls":
        from vpzoo.data.bouncing_balls import BouncingBallsDataModule

        dm = BouncingBallsDataModule(root=args.root, num_train=args.num_train, num_val=args.num_val,
                                     num_test=args.num_test, seed=args.seed, eval_seed=args.eval_seed)
        dm.prepare_data()
        return "Bouncing Balls trajectories ready: " + ", ".join(
            str(dm.trajectories_path(s)) for s in ("train", "val", "test"))
    if name == "human36m":
        from vpzoo.data.human36m import prepare_human36m

        out = prepare_human36m(args.root, image_size=args.image_size, frame_step=args.frame_step, progress=progress)
        return f"Human3.6M ready in {out}"
    if name == "stochastic_shapes":
        from vpzoo.data.stochastic_shapes import StochasticShapesDataModule

        dm = StochasticShapesDataModule(root=args.root, eval_seq_len=args.eval_seq_len, num_val=args.num_val,
                                        num_test=args.num_test, eval_seed=args.eval_seed)
        dm.prepare_data()
        return "Stochastic shapes val/test clips ready: " + ", ".join(str(dm.cache_path(s)) for s in ("val", "test"))
    raise AssertionError(name)  # pragma: no cover - argparse restricts the names


def main(argv: Optional[list[str]] = None) -> int:
    """Run ``vpzoo data`` with ``argv`` (the arguments after ``data``); returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    except SystemExit as e:  # --help (0) or a usage error (2)
        return int(e.code or 0)
    if args.command == "list":
        width = max(map(len, DATASETS))
        for name, (cls, source) in DATASETS.items():
            print(f"{name:<{width}}  {cls}  ({source})")
        return 0
    from vpzoo.cache import DownloadError
    from vpzoo.data._common import DatasetNotFoundError
    from vpzoo.data.tfrecord import TFRecordError

    try:
        message = _prepare(args)
    except (DatasetNotFoundError, DownloadError, TFRecordError, ValueError) as e:
        print(f"vpzoo data prepare {args.name}: error: {e}", file=sys.stderr)
        return 1
    print(message)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
