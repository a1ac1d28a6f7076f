"""Load a pretrained model and predict the future of your own clip.

    python examples/load_and_predict.py CHECKPOINT --input my_clip.mp4 --n-future 10 --num-samples 3 --out pred.gif

CHECKPOINT is a registered checkpoint name (``vpzoo list --checkpoints``), a folder written by
``model.save_pretrained`` or ``vpzoo export``, a ``.safetensors``/``.ckpt`` file, or ``hf://owner/repo[@revision]``.
The clip may be any video PyAV decodes (``.mp4``, ``.avi``, ...), a ``.gif`` or a ``.npy`` array; its frames must
have the model's size (nothing is resized). The first ``n_past`` frames are the context; frames after them, if any,
are shown as ground truth. Without ``--input`` a synthetic clip (a bouncing square) is used.

Writes ``pred.gif`` (context | ground truth | samples, animated) and ``pred.png`` (the same as a grid), both
labelled, with the PSNR/SSIM of the samples against the ground truth in the caption.
"""

from __future__ import annotations

import argparse

import torch

import vpzoo
from vpzoo.io import read_video, to_video_tensor
from vpzoo.zoo.visualize import write_prediction


def bouncing_square(frames: int, channels: int, size: int) -> torch.Tensor:
    """A ``(T, C, H, W)`` clip in [0, 1] of a square moving diagonally and bouncing off the walls."""
    clip = torch.zeros(frames, channels, size, size)
    side, (y, x), (dy, dx) = size // 4, (size // 8, size // 3), (3, 2)
    for t in range(frames):
        clip[t, :, y:y + side, x:x + side] = 1.0
        if not 0 <= y + dy <= size - side:
            dy = -dy
        if not 0 <= x + dx <= size - side:
            dx = -dx
        y, x = y + dy, x + dx
    return clip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="checkpoint name, folder, file or hf://owner/repo[@revision]")
    parser.add_argument("--input", help="your clip (.mp4, .gif, .npy, ...); default: a synthetic clip")
    parser.add_argument("--n-future", type=int, default=10)
    parser.add_argument("--num-samples", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="pred.gif")
    args = parser.parse_args()

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = vpzoo.load(args.checkpoint, device=device)  # eval mode, weights verified against their sha256
    print(f"loaded {args.checkpoint}: {type(model).__name__}, {model.channels}x{model.image_size}x{model.image_size} "
          f"frames, {model.n_past} context frames, on {model.device}")

    if args.input:
        # uint8 (T, H, W, C) -> float (T, C, H, W) in [0, 1]; grayscale for 1-channel models, RGB for 3-channel ones
        clip = to_video_tensor(read_video(args.input, grayscale=model.channels == 1))
    else:
        clip = bouncing_square(model.n_past + args.n_future, model.channels, model.image_size)
    context, truth = clip[: model.n_past], clip[model.n_past: model.n_past + args.n_future]

    samples = model.predict(context, n_future=args.n_future, num_samples=args.num_samples, seed=args.seed)
    print(f"predicted samples: {tuple(samples.shape)}  (batch, samples, frames, channels, height, width)")
    gif, png = write_prediction(args.out, context, samples[0], truth if len(truth) else None,
                                protocol=model.metric_protocol, title=f"{args.checkpoint}: seed {args.seed}")
    print(f"wrote {gif} and {png}")


if __name__ == "__main__":
    main()
