"""Train a model on your own folder of videos with `vpzoo fit`, export it to the zoo format, and predict with it.

    python examples/train_custom_folder.py --videos my_videos --out runs/custom --max-steps 5000

1. ``--videos``: a folder of clips (``.mp4``, ``.avi``, ``.gif``, ``.npy``, ...; searched recursively), or
   ``train/``, ``val/`` (and ``test/``) subfolders. Without it, a small folder of synthetic ``.mp4`` clips (bouncing
   squares, written with ``vpzoo.io.write_video``) is made in ``OUT/videos``.
2. A config for ``vpzoo fit`` is written to ``OUT/config.yaml``: SVG-LP (paper settings unless ``--tiny``) on
   :class:`vpzoo.data.video_folder.VideoFolderDataModule`. The script runs exactly
   ``vpzoo fit --config OUT/config.yaml`` (in this process), which you can rerun or edit yourself.
3. The last checkpoint is converted with ``vpzoo export`` to ``OUT/model`` (config.json + model.safetensors + card).
4. ``vpzoo.load(OUT/model)`` predicts the future of a validation clip and writes ``OUT/pred.gif``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import yaml

import vpzoo
from vpzoo.cli import main as vpzoo_cli
from vpzoo.data.video_folder import VideoFolderDataModule
from vpzoo.io import write_video
from vpzoo.zoo.visualize import write_prediction


def make_synthetic_videos(folder: Path, count: int, frames: int, size: int, seed: int = 0) -> None:
    """``count`` mp4 clips of a bright square bouncing around a ``size`` x ``size`` canvas."""
    g = torch.Generator().manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    side = size // 4
    for i in range(count):
        y, x = (int(v) for v in torch.randint(0, size - side, (2,), generator=g))
        dy, dx = (int(v) for v in torch.randint(1, 5, (2,), generator=g))
        clip = torch.zeros(frames, 1, size, size)
        for t in range(frames):
            clip[t, :, y:y + side, x:x + side] = 1.0
            if not 0 <= y + dy <= size - side:
                dy = -dy
            if not 0 <= x + dx <= size - side:
                dx = -dx
            y, x = y + dy, x + dx
        write_video(folder / f"clip_{i:03d}.mp4", clip, fps=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=Path, help="folder of videos (default: make synthetic ones)")
    parser.add_argument("--out", type=Path, default=Path("runs/custom_folder"))
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--channels", type=int, default=1, choices=(1, 3))
    parser.add_argument("--n-past", type=int, default=5)
    parser.add_argument("--n-future", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-steps", type=int, default=2000)
    parser.add_argument("--resize", action="store_true", help="center-crop and resize frames of another size")
    parser.add_argument("--tiny", action="store_true", help="a very small SVG-LP (for a quick check, not results)")
    args = parser.parse_args()

    out = args.out.resolve()
    videos = args.videos
    if videos is None:
        videos = out / "videos"
        make_synthetic_videos(videos, count=6, frames=2 * (args.n_past + args.n_future), size=args.image_size)
        print(f"made 6 synthetic clips in {videos}")

    model_args = dict(image_size=args.image_size, channels=args.channels, n_past=args.n_past, n_future=args.n_future)
    if args.tiny:
        model_args.update(codec_width=8, g_dim=16, z_dim=4, rnn_size=32, val_num_samples=2)
    seq_len = args.n_past + args.n_future
    config = {
        "seed_everything": 0,
        "trainer": {
            "max_steps": args.max_steps,
            "val_check_interval": min(args.max_steps, 500),
            "check_val_every_n_epoch": None,
            "limit_val_batches": 4,
            "log_every_n_steps": 10,
            "default_root_dir": str(out),
            "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": str(out)}},
            "callbacks": [{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                           "init_args": {"dirpath": str(out / "checkpoints"), "save_last": True}}],
        },
        "model": {"class_path": "vpzoo.models.svg.SVGLP", "init_args": model_args},
        "data": {
            "class_path": "vpzoo.data.video_folder.VideoFolderDataModule",
            "init_args": {"root": str(videos), "seq_len": seq_len, "eval_seq_len": seq_len,
                          "image_size": args.image_size, "channels": args.channels, "batch_size": args.batch_size,
                          "resize": args.resize},
        },
    }
    out.mkdir(parents=True, exist_ok=True)
    config_path = out / "config.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    print(f"$ vpzoo fit --config {config_path}")
    vpzoo_cli(["fit", "--config", str(config_path)])

    ckpt = out / "checkpoints" / "last.ckpt"
    print(f"$ vpzoo export {ckpt} {out / 'model'}")
    vpzoo_cli(["export", str(ckpt), str(out / "model")])

    model = vpzoo.load(out / "model")
    data = VideoFolderDataModule(root=str(videos), seq_len=seq_len, image_size=args.image_size,
                                 channels=args.channels, resize=args.resize)
    data.setup("validate")
    clip = data.val_set[0]
    context, truth = clip[: args.n_past], clip[args.n_past:]
    samples = model.predict(context, n_future=args.n_future, num_samples=3, seed=0)
    gif, png = write_prediction(out / "pred.gif", context, samples[0], truth)
    print(f"wrote {gif} and {png}; load the model anywhere with vpzoo.load({str(out / 'model')!r})")


if __name__ == "__main__":
    main()
