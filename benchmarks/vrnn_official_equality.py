"""Improved VRNN: vpzoo's model against the official code (facebookresearch/improved_vrnn), same weights, float64.

Not a test: it needs a checkout of the official repository (``--official DIR``, e.g. commit c370ede; CC BY-NC 4.0,
read and run here, never copied into vpzoo). The official files are imported unmodified; the only shim is for the
released ``models/vrnn_hier.py``, which imports a module ``vrnn_layers`` that the repository does not contain
(improved_vrnn#2; ``models/vrnn.py`` was fixed to import ``layers``): ``vrnn_layers`` is made an alias of ``layers``.

For each configuration it builds the official ``Model`` (PyTorch's default init, the code's zero-gain last GroupNorm),
copies its weights into vpzoo's ``VRNN`` / ``VRNNHier`` (the key mapping below; the parameter counts must match) and
compares in float64 on CPU:

1. the training pass: the renderer's frames, the reconstruction loss (``losses.reconstruction_loss``), the
   Monte-Carlo KL (``losses.kl_loss``) and every parameter's gradient of ``rec + KL``, with the posterior's noise
   drawn once and fed to both (the official ``flows.gaussian_rsample`` is replaced by one that returns the same
   draws);
2. sampling: the released O(T²) ``train_fns.sample_step`` against ``predict(..., procedure="rerun")``'s procedure,
   with the same prior noise in every pass.

Usage: python benchmarks/vrnn_official_equality.py --official DIR [--commit SHA]
                                                    [--out benchmarks/results/vrnn_equality.json]
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import sys
from pathlib import Path

import torch

from vpzoo.models.vrnn import VRNN, VRNNHier

CONFIGS = [  # (latent levels, rec_loss, image channels, context frames, predicted frames)
    (1, "l1", 3, 2, 3),
    (1, "bce", 1, 3, 3),
    (3, "l1", 3, 2, 3),
    (3, "l2", 1, 2, 3),
]


def official_to_vpzoo(name: str) -> str:
    """The vpzoo state-dict key of an official one."""
    rules = [
        (r"^emb_net\.(\d+)\.(\d+)\.conv_0\.0\.", r"frame_embedding.\1.\2.conv1."),
        (r"^emb_net\.(\d+)\.(\d+)\.conv_0\.1\.", r"frame_embedding.\1.\2.norm1."),
        (r"^emb_net\.(\d+)\.(\d+)\.conv_1\.0\.", r"frame_embedding.\1.\2.conv2."),
        (r"^emb_net\.(\d+)\.(\d+)\.conv_1\.1\.", r"frame_embedding.\1.\2.norm2."),
        (r"^emb_net\.(\d+)\.(\d+)\.conv_s\.", r"frame_embedding.\1.\2.shortcut."),
        (r"^emb_net\.0\.0\.", r"frame_embedding.0.0."),
        (r"^render_nets\.(\d+)\.0\.model\.", r"renderer.\1.lstm."),
        (r"^render_nets\.(\d+)\.1\.main\.", r"renderer.\1.up."),
        (r"^render_nets\.5\.2\.model\.", r"renderer.5.up.3."),
        (r"^init_nets\.(\d+)\.0\.main\.", r"renderer.\1.init.mix."),
        (r"^init_nets\.(\d+)\.1\.model\.", r"renderer.\1.init.out."),
        (r"^init_nets\.(\d+)\.2\.model\.", r"renderer.\1.init.norm."),
    ]
    for kind, ours in (("prior", "priors"), ("posterior", "posteriors")):
        rules += [
            (rf"^{kind}_nets\.(\d+)\.0\.model\.", rf"{ours}.\1.embed.0."),
            (rf"^{kind}_nets\.(\d+)\.1\.model\.", rf"{ours}.\1.embed.1."),
            (rf"^{kind}_nets\.(\d+)\.2\.model\.", rf"{ours}.\1.lstm."),
            (rf"^{kind}_nets\.(\d+)\.3\.model\.", rf"{ours}.\1.head."),
            (rf"^{kind}_nets\.(\d+)\.4\.model\.", rf"{ours}.\1.head_norm."),
            (rf"^{kind}_init_nets\.(\d+)\.0\.main\.", rf"{ours}.\1.init.mix."),
            (rf"^{kind}_init_nets\.(\d+)\.1\.model\.", rf"{ours}.\1.init.out."),
            (rf"^{kind}_init_nets\.(\d+)\.2\.model\.", rf"{ours}.\1.init.norm."),
        ]
    for pattern, replacement in rules:
        if re.match(pattern, name):
            name = re.sub(pattern, replacement, name)
            break
    else:
        raise KeyError(f"no vpzoo key for the official {name!r}")
    return (name.replace("ih_gates.0", "input_conv").replace("ih_gates.1", "input_norm")
            .replace("hh_gates.0", "hidden_conv").replace("hh_gates.1", "hidden_norm").replace("c_norm", "cell_norm"))


def import_official(root: Path):
    sys.path.insert(0, str(root))
    layers = importlib.import_module("layers")
    sys.modules.setdefault("vrnn_layers", layers)  # vrnn_hier.py's missing module (improved_vrnn#2)
    return {name: importlib.import_module(name) for name in ("flows", "losses", "train_fns", "models.vrnn",
                                                             "models.vrnn_hier")}


def compare(official, levels: int, rec_loss: str, channels: int, n_ctx: int, n_steps: int, width: int = 16,
            batch: int = 2) -> dict:
    torch.manual_seed(0)
    module = official["models.vrnn" if levels == 1 else "models.vrnn_hier"]
    theirs = module.Model(channels, n_ctx, n_hid=width).double()
    ours = (VRNN if levels == 1 else VRNNHier)(channels=channels, n_past=n_ctx, n_future=n_steps, width=width,
                                               rec_loss=rec_loss).double()
    ours.load_state_dict({official_to_vpzoo(k): v for k, v in theirs.state_dict().items()})
    n_theirs = sum(p.numel() for p in theirs.parameters())
    assert n_theirs == ours.num_parameters(), (n_theirs, ours.num_parameters())
    x = torch.rand(batch, n_ctx + n_steps, channels, 64, 64, dtype=torch.float64)
    if rec_loss == "bce":
        x = (x > 0.7).double() * x  # mostly black, as MNIST frames

    queue: list = []

    def official_rsample(mean, logvar, use_mean=False):
        eps = queue.pop(0)
        eps = torch.randn_like(mean) if eps is None else eps
        return eps.mul(torch.exp(0.5 * logvar)).add_(mean)

    official["flows"].gaussian_rsample = official_rsample

    # 1. training pass with the same posterior noise (the official pass also samples the prior: unused by the loss)
    drawn: list = []

    def our_noise(kind, level, shape):
        drawn.append(torch.randn(shape, dtype=torch.float64))
        return drawn[-1]

    out = ours.forward_loss(x, noise=our_noise)
    queue[:] = drawn + [None] * levels
    config = {"n_steps": n_steps, "n_ctx": n_ctx, "rec_loss": rec_loss, "beta": 1.0}
    (frames, p_dists, q_dists), _ = theirs(x, config, False)
    rec = official["losses"].reconstruction_loss(config, frames, x[:, n_ctx:])
    kl = official["losses"].kl_loss(config, p_dists, q_dists)
    grads_theirs = torch.autograd.grad(rec + kl, list(theirs.parameters()))
    grads_ours = dict(zip([n for n, _ in ours.named_parameters()],
                          torch.autograd.grad(out["loss"], list(ours.parameters()))))
    names = [official_to_vpzoo(n) for n, _ in theirs.named_parameters()]
    grad_abs = max((g - grads_ours[n]).abs().max().item() for g, n in zip(grads_theirs, names))
    grad_scale = max(g.abs().max().item() for g in grads_theirs)

    # 2. the released O(T^2) sampler, the same prior noise in every pass
    shapes = [(c, s, s) for c, s in zip(ours.latent_channels, ours.latent_size)]
    prior_noise = [[torch.randn(batch, n_steps, *s, dtype=torch.float64) for s in shapes] for _ in range(n_steps)]
    queue[:] = [e for t in range(n_steps)
                for e in [torch.randn(batch, n_steps, *s, dtype=torch.float64) for s in shapes] + prior_noise[t]]
    with torch.no_grad():
        (sampled, _), _ = official["train_fns"].sample_step(theirs, config, x.clone())
        passes = iter(range(n_steps * levels))

        def our_prior_noise(kind, level, shape):
            t = next(passes) // levels
            return prior_noise[t][level][:, : shape[1]]

        emb = ours.embed(x[:, :n_ctx])
        mine = ours._sample_rerun(x[:, :n_ctx], emb, ours.initial_states(emb), n_steps, our_prior_noise)
    return {
        "latent_levels": levels, "rec_loss": rec_loss, "channels": channels, "n_ctx": n_ctx, "n_steps": n_steps,
        "width": width, "batch": batch, "parameters": n_theirs,
        "frames_max_abs_diff": (frames - out["recon"]).abs().max().item(),
        "rec": [rec.item(), out["rec"].item()], "kl": [kl.item(), out["kl"].item()],
        "loss_abs_diff": abs((rec + kl).item() - out["loss"].item()),
        "grad_max_abs_diff": grad_abs, "grad_max_abs": grad_scale,
        "rerun_samples_max_abs_diff": (mine - sampled[:, n_ctx:]).abs().max().item(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", required=True, type=Path, help="checkout of facebookresearch/improved_vrnn")
    parser.add_argument("--commit", help="the official checkout's commit, recorded when DIR is not a git checkout")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "vrnn_equality.json")
    args = parser.parse_args()
    official = import_official(args.official.resolve())
    results = [compare(official, *config) for config in CONFIGS]
    print(f"{'levels':>6} {'loss':>4} {'C':>2} {'ctx':>3} {'params':>10} {'frames':>9} {'loss diff':>9} "
          f"{'grad diff':>9} {'(max grad)':>10} {'rerun':>9}")
    for r in results:
        print(f"{r['latent_levels']:>6} {r['rec_loss']:>4} {r['channels']:>2} {r['n_ctx']:>3} {r['parameters']:>10} "
              f"{r['frames_max_abs_diff']:9.1e} {r['loss_abs_diff']:9.1e} {r['grad_max_abs_diff']:9.1e} "
              f"{r['grad_max_abs']:10.1e} {r['rerun_samples_max_abs_diff']:9.1e}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    import subprocess

    try:
        commit = subprocess.run(["git", "-C", str(args.official), "rev-parse", "HEAD"], capture_output=True, text=True,
                                check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = args.commit or "unknown (not a git checkout; pass --commit)"
    args.out.write_text(json.dumps({"official_commit": commit, "results": results}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
