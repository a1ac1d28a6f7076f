"""Check a DRNet's disentanglement: decode the content of one Moving MNIST clip with the pose of another.

    python examples/drnet_content_swap.py CHECKPOINT [--pairs 64] [--seed 0] [--out swaps.png] [--probe] [--json r.json]

DRNet (Denton & Birodkar 2017) claims that its content encoder keeps what stays fixed in a clip (here: which digit
is drawn in which colour) and its pose encoder what moves (where the digits are). This script measures that claim on
pairs of DRNet-style Moving MNIST frames (coloured digits, drnet-py's generator, fixed seed), with the exact frame
a perfect swap decodes to (clip A's digits at clip B's positions) rendered by the same generator:

- ``content_swap_errors``: mean squared error of ``D(E_c(A), E_p(B))`` to that ideal swap, to B's frame (what a pose
  vector that also carries the digits gives) and to A's frame (what a decoder that ignores the pose gives);
  ``disentangled`` when the error to the ideal swap is below 0.8 times the smaller of the other two. Also how much
  the decoded frame changes when another clip's content / pose vector is fed (``content_effect`` near 0: the
  decoder does not use the content vector).
- ``--probe``: the held-out accuracy of a *fresh* scene discriminator trained on the frozen pose vectors of frames 0
  and 1 (near 0.5: the poses do not tell the clips apart). Adjacent frames have close poses, so even a well
  disentangled model scores well above 0.5 here; read it beside the swap errors.

Writes a PNG grid (``--out``), one column per pair; rows: content frame A | pose frame B | decoded swap | ideal swap |
A autoencoded (``D(E_c(A), E_p(A))``). CHECKPOINT is a registered name, a zoo folder, a ``.safetensors`` file or a
Lightning ``.ckpt`` from ``vpzoo fit`` (e.g. a stage-1 run of ``configs/drnet/mmnist.yaml``).
"""

from __future__ import annotations

import argparse
import json

import torch

import vpzoo
from vpzoo.models.drnet import DRNet, content_swap_errors, make_content_swap_set, scene_discriminator_probe
from vpzoo.zoo.visualize import write_image_grid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", help="a DRNet checkpoint: registered name, zoo folder, .safetensors or .ckpt")
    parser.add_argument("--pairs", type=int, default=64, help="number of (content, pose) pairs to score")
    parser.add_argument("--seed", type=int, default=0, help="seed of the pairs")
    parser.add_argument("--show", type=int, default=8, help="pairs drawn in the PNG grid")
    parser.add_argument("--out", default="swaps.png", help="PNG grid to write")
    parser.add_argument("--probe", action="store_true", help="also train a fresh scene discriminator on the poses")
    parser.add_argument("--json", help="write the numbers to this JSON file")
    args = parser.parse_args()
    if args.pairs < 2:
        parser.error(f"--pairs must be at least 2 (the effects compare each pair with the next), got {args.pairs}")

    model = vpzoo.load(args.checkpoint, device="cpu")
    if not isinstance(model, DRNet):
        raise SystemExit(f"{args.checkpoint} is a {type(model).__name__}, expected a DRNet")
    if model.image_size != 64:
        raise SystemExit(f"the swap pairs are 64x64 Moving MNIST frames; this DRNet takes {model.image_size}x"
                         f"{model.image_size} frames")
    pairs = make_content_swap_set(args.pairs, seed=args.seed, channels=model.channels)
    result = content_swap_errors(model, **pairs)
    print(f"{args.pairs} pairs (seed {args.seed}); all-black frame vs ideal swap: "
          f"{pairs['swap'].pow(2).mean().item():.5f}")
    for key, value in result.items():
        print(f"  {key:22s} {value:.5f}" if isinstance(value, float) else f"  {key:22s} {value}")

    if args.probe:
        from vpzoo.data.mnist_digits import load_digit_pool
        from vpzoo.data.smmnist import generate_smmnist

        digits = load_digit_pool("test", 32, None)  # drnet-py's 32x32 digits, clips of 2 frames in its form
        train, test = (torch.from_numpy(generate_smmnist(digits, n, 2, seed, colored=True, deterministic=True,
                                                         channels=model.channels, velocity_range=(-4, 3)))
                       for n, seed in ((256, 1), (128, 2)))
        result["probe_accuracy"] = scene_discriminator_probe(model, train, test)
        print(f"  {'probe_accuracy':22s} {result['probe_accuracy']:.3f} (fresh scene discriminator, frames 0/1)")

    k = min(args.show, args.pairs)
    with torch.no_grad():  # vpzoo.load returns the model in eval mode
        content, pose = pairs["content"][:k], pairs["pose"][:k]
        h_c, skips = model.encode_content(content)
        decoded = model.decode(h_c, skips, model.encode_pose(pose))
        autoencoded = model.decode(h_c, skips, model.encode_pose(content))
    rows = torch.cat([content, pose, decoded, pairs["swap"][:k], autoencoded])  # (5k, C, H, W), k per row
    write_image_grid(args.out, rows.float().clamp(0, 1), nrow=k)  # 5 (H+2)+2 x k (W+2)+2 pixels
    print(f"wrote {args.out}: rows content A | pose B | decoded swap | ideal swap | A autoencoded")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"checkpoint": str(args.checkpoint), "pairs": args.pairs, "seed": args.seed, **result}, f,
                      indent=2)


if __name__ == "__main__":
    main()
