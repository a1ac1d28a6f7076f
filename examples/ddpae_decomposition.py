"""See how DDPAE decomposes Moving MNIST clips into objects, and score the decomposition.

    python examples/ddpae_decomposition.py [CHECKPOINT] [--clips 64] [--seed 0] [--show 2] [--out decomposition.png]
        [--json r.json]

DDPAE (Hsieh et al., NeurIPS 2018) explains a clip as K components, each one object (a content vector decoded once)
moved by its own pose (scale and position, a spatial transformer). Its claim is that with K = 2 on two-digit Moving
MNIST each component takes one digit and its pose follows that digit, so that predicting the future reduces to
predicting K low-dimensional poses. This script checks the claim on fresh two-digit clips drawn from the MNIST test
digits (Moving MNIST's rule, fixed seed), where each digit is also drawn alone:

- ``separation``: :func:`vpzoo.models.ddpae.component_separation`, per clip the share of each component's
  intensity that falls on its own digit under the best assignment (1: clean, ``1/K``: none);
- ``mse`` per predicted frame (DDPAE's: summed over the pixels of a frame) beside repeating the last context frame;
- the inferred poses against the digits' true centres (:func:`vpzoo.models.ddpae.velocity_metrics`, DDPAE's
  Bouncing Balls metrics applied to the digits): the velocity cosine similarity and relative speed error over the
  predicted frames, and the distance of each component's box centre from its digit's (a box need not be centred
  on its digit, so a constant offset counts in this distance but not in the velocities).

Writes a PNG (``--out``): for each of ``--show`` clips the ground truth, DDPAE's frames (the context reconstructed,
then the prediction) and one row per component, each in its own colour; one column per frame. CHECKPOINT (default
``ddpae_mmnist``) is a registered name, a zoo folder, a ``.safetensors`` file or a Lightning ``.ckpt``.
"""

from __future__ import annotations

import argparse
import json

import torch

import vpzoo
from vpzoo.data.moving_mnist import DIGIT_SIZE, MovingMNISTDataModule, generate_moving_mnist
from vpzoo.models.ddpae import DDPAE, component_separation, ddpae_frame_errors, pose_centres, velocity_metrics
from vpzoo.zoo.visualize import write_image_grid

PALETTE = torch.tensor([[1.0, 0.3, 0.3], [0.3, 1.0, 0.3], [0.4, 0.6, 1.0], [1.0, 0.9, 0.2],
                        [1.0, 0.4, 1.0], [0.2, 1.0, 1.0], [1.0, 0.6, 0.2], [0.8, 0.8, 0.8]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", nargs="?", default="ddpae_mmnist",
                        help="a DDPAE checkpoint: registered name, zoo folder, .safetensors or .ckpt")
    parser.add_argument("--clips", type=int, default=64, help="clips to score")
    parser.add_argument("--seed", type=int, default=0, help="seed of the clips")
    parser.add_argument("--show", type=int, default=2, help="clips drawn in the PNG")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--out", default="decomposition.png", help="PNG to write")
    parser.add_argument("--json", help="write the numbers to this JSON file")
    args = parser.parse_args()
    for name in ("clips", "show", "batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")

    model = vpzoo.load(args.checkpoint, device="cpu")
    if not isinstance(model, DDPAE):
        raise SystemExit(f"{args.checkpoint} is a {type(model).__name__}, expected a DDPAE")
    k = model.n_components
    if model.image_size != 64 or model.channels != 1 or k > len(PALETTE):
        raise SystemExit(f"the clips are 64x64 one-channel Moving MNIST with one digit per component (at most "
                         f"{len(PALETTE)}); this DDPAE takes {model.channels}x{model.image_size}x{model.image_size} "
                         f"frames with {k} components")
    n_past, n_future = model.n_past, model.n_future
    digits = MovingMNISTDataModule(num_digits=k).digit_pool("test")
    videos, corners, alone = generate_moving_mnist(digits, args.clips, n_past + n_future, args.seed, num_digits=k,
                                                   return_positions=True, return_objects=True)
    clips, alone = torch.from_numpy(videos).float() / 255, torch.from_numpy(alone).float() / 255
    # the digits' centres in [0, 1], x first (corners are (y, x) top-left pixels of the 28-px digit box)
    centres = (torch.from_numpy(corners).double().flip(-1) + DIGIT_SIZE / 2) / model.image_size

    frames, components, poses = [], [], []
    with torch.no_grad():  # vpzoo.load returns the model in eval mode: every latent at its mean, as DDPAE tests
        for start in range(0, args.clips, args.batch_size):
            out = model.infer(clips[start : start + args.batch_size, :n_past], n_future, components=True)
            frames.append(out["frames"])
            components.append(out["components"])
            poses.append(out["pose"])
    frames, components, poses = torch.cat(frames), torch.cat(components), torch.cat(poses)

    separation = component_separation(components, alone)
    target = clips[:, n_past:]
    mse = ddpae_frame_errors(frames[:, n_past:], target)["mse"].mean().item()
    copy_last = ddpae_frame_errors(clips[:, n_past - 1 : n_past].expand_as(target), target)["mse"].mean().item()
    tracking = velocity_metrics(pose_centres(poses), centres, n_past)
    matched = int(tracking["num_matched"])  # the pose scores average over the clips matched one-to-one

    def over_matched(value: torch.Tensor) -> float | None:
        return value.mean().item() if matched else None

    result = {
        "separation_mean": separation.mean().item(), "separation_median": separation.median().item(),
        "mse": mse, "copy_last_mse": copy_last,
        "velocity_cosine_similarity": over_matched(tracking["cosine_similarity"]),
        "velocity_relative_error": over_matched(tracking["relative_error"]),
        "context_centre_distance": over_matched(tracking["position_error"][:n_past]),
        "predicted_centre_distance": over_matched(tracking["position_error"][n_past:]),
        "clips_matched": matched,
    }
    print(f"{args.clips} clips of {k} test digits (seed {args.seed}), {n_past} context -> {n_future} predicted frames")
    print(f"  separation   mean {result['separation_mean']:.3f}, median {result['separation_median']:.3f} "
          f"(1 = each component draws one digit, {1 / k:.2f} = none)")
    print(f"  MSE per predicted frame (sum over pixels)  DDPAE {mse:.1f}   copy_last {copy_last:.1f}")
    if matched:
        print(f"  poses vs digits ({matched} clips matched one-to-one): velocity cosine "
              f"{result['velocity_cosine_similarity']:.3f}, relative speed error "
              f"{result['velocity_relative_error']:.3f}, centre distance {result['context_centre_distance']:.3f} "
              f"(context) / {result['predicted_centre_distance']:.3f} (predicted), in frame widths")
    else:
        print("  poses vs digits: in no clip do the components match the digits one-to-one (nearest centres over "
              "the context frames), so there are no pose scores")

    show = min(args.show, args.clips)
    grey = lambda x: x.expand(*x.shape[:-3], 3, *x.shape[-2:])  # noqa: E731  (..., 1, H, W) -> (..., 3, H, W)
    rows = []
    for i in range(show):
        rows += [grey(clips[i]), grey(frames[i])]
        rows += [grey(components[i, :, j]) * PALETTE[j].view(3, 1, 1) for j in range(k)]
    write_image_grid(args.out, torch.cat(rows).clamp(0, 1), nrow=n_past + n_future)
    print(f"wrote {args.out}: per clip the rows truth | DDPAE (context reconstructed, then predicted) | "
          + " | ".join(f"component {j + 1}" for j in range(k)) + f"; columns frames 1-{n_past + n_future}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"checkpoint": str(args.checkpoint), "clips": args.clips, "seed": args.seed, **result}, f,
                      indent=2)


if __name__ == "__main__":
    main()
