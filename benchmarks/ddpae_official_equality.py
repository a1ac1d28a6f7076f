"""DDPAE: vpzoo's model against the official code (jthsieh/DDPAE-video-prediction), same weights, float64 on CPU.

Not a test: it needs a checkout of the official repository (``--official DIR``, e.g. commit 219e683) and Pyro
(``pip install --no-deps pyro-ppl pyro-api opt_einsum`` into any environment that has this project's torch). The
official files are imported unmodified; the script shims only the environment they were written for:

- ``.cuda()`` is the identity and ``torch.cuda.FloatTensor`` builds a CPU tensor (the code hard-codes CUDA);
- PyTorch 0.3 semantics: ``torch.cat`` skips empty tensors (``PoseRNN.encode`` concatenates an empty slice) and
  ``affine_grid``/``grid_sample`` default to ``align_corners=True``;
- Pyro 1.9 stands in for Pyro 0.2, with validation off (the flat sample sites predate plates/``to_event``);
  ``SVI.loss_and_grads`` and ``Trace_ELBO`` keep their meaning;
- ``tensorboardX`` is stubbed (only the training visualiser imports it).

It builds the official ``DDPAE`` with the script's settings and the official init, copies its weights into vpzoo's
``DDPAE(kl="monte_carlo")`` (the state-dict keys are the same), and compares:

1. the test path (eval mode, every latent at its mean): frames, poses and components;
2. the training objective: Pyro's ``Trace_ELBO`` loss (one sample, Monte-Carlo KL, summed over the batch) against
   vpzoo's negative ELBO times the batch size, drawn from the same seed, and every parameter's gradient.

Usage: python benchmarks/ddpae_official_equality.py --official DIR [--dataset mmnist|balls]
                                                    [--out benchmarks/results/ddpae_equality.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import types
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


def install_shims() -> None:
    torch.set_default_dtype(torch.float64)
    torch.Tensor.cuda = lambda self, *a, **k: self
    nn.Module.cuda = lambda self, *a, **k: self
    torch.cuda.FloatTensor = lambda data: torch.tensor(data, dtype=torch.float64)
    cat = torch.cat

    def cat_skipping_empty(tensors, dim=0, **kwargs):
        kept = [t for t in tensors if t.numel() > 0]
        return cat(kept if kept else list(tensors), dim, **kwargs)

    torch.cat = cat_skipping_empty
    affine_grid, grid_sample = F.affine_grid, F.grid_sample
    F.affine_grid = lambda theta, size, align_corners=True: affine_grid(theta, size, align_corners=align_corners)
    F.grid_sample = lambda x, grid, mode="bilinear", padding_mode="zeros", align_corners=True: grid_sample(
        x, grid, mode=mode, padding_mode=padding_mode, align_corners=align_corners)
    stub = types.ModuleType("tensorboardX")
    stub.SummaryWriter = object
    sys.modules["tensorboardX"] = stub


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official", required=True, help="checkout of jthsieh/DDPAE-video-prediction")
    parser.add_argument("--dataset", choices=["mmnist", "balls"], default="mmnist")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    install_shims()
    import pyro

    pyro.enable_validation(False)
    sys.path.insert(0, str(Path(args.official).resolve()))
    from models.DDPAE import DDPAE as OfficialDDPAE  # the official file, unmodified

    from vpzoo.models.ddpae import DDPAE

    size, k, hidden, scale, b = (64, 2, 64, 2.0, 4) if args.dataset == "mmnist" else (128, 4, 128, 4.0, 2)
    opt = argparse.Namespace(
        is_train=True, image_size=(size, size), n_channels=1, n_components=k, batch_size=b, n_frames_input=10,
        n_frames_output=10, image_latent_size=256, content_latent_size=128, pose_latent_size=3, hidden_size=hidden,
        ngf=8, independent_components=0, lr_init=1e-3, lr_decay=1, when_to_predict_only=0, stn_scale_prior=scale,
    )
    torch.manual_seed(666)
    official = OfficialDDPAE(opt)
    official.setup_training()
    official.initialize_weights()
    ours = DDPAE(image_size=size, n_components=k, hidden_size=hidden, stn_scale_prior=scale, kl="monte_carlo")
    for name in ("pose_model", "content_lstm", "object_encoder", "object_decoder"):
        getattr(ours, name).load_state_dict(official.nets[name].module.state_dict())

    g = torch.Generator().manual_seed(0)
    clips = (torch.rand(b, 20, 1, size, size, generator=g) > 0.8).double()
    clips = clips * torch.rand(b, 20, 1, size, size, generator=g)
    inputs, outputs = clips[:, :10].contiguous(), clips[:, 10:].contiguous()

    def maxdiff(a: torch.Tensor, c: torch.Tensor) -> float:
        return (a - c).abs().max().item()

    official.setup(is_train=False)
    ours.eval()
    with torch.no_grad():
        official_frames, official_latent = official.test(inputs, outputs)
        mine = ours.infer(inputs, 10, sample=False, components=True)
    results = {
        "dataset": args.dataset, "batch": b, "parameters_official": sum(
            p.numel() for net in official.nets.values() for p in net.parameters()),
        "parameters_vpzoo": ours.num_parameters(),
        "test_frames_max_abs_diff": maxdiff(official_frames, mine["frames"].clamp(0, 1)),
        "test_pose_max_abs_diff": maxdiff(official_latent["pose"], mine["pose"]),
        # the official test() draws bounding boxes into clip 0's components for its visualiser
        "test_components_max_abs_diff_clips_1plus": maxdiff(official_latent["components"][1:],
                                                            mine["components"][1:]),
    }

    official.setup(is_train=True)
    ours.train()
    pyro.clear_param_store()
    torch.manual_seed(123)
    svi = official.svis["elbo"]
    official_loss = svi.loss_and_grads(svi.model, svi.guide, inputs, outputs)
    official_grads = {f"{n}.{key}": p.grad.clone() for n, net in official.nets.items()
                      for key, p in net.module.named_parameters()}
    torch.manual_seed(123)
    out = ours.forward_loss(clips)
    (out["loss"] * b).backward()  # Pyro sums over the batch; vpzoo takes the batch mean
    our_loss = out["loss"].item() * b
    relative = {n: maxdiff(p.grad, official_grads[n]) / max(official_grads[n].abs().max().item(), 1e-300)
                for n, p in ours.named_parameters()}
    results.update(
        trace_elbo_official=official_loss, trace_elbo_vpzoo=our_loss,
        trace_elbo_abs_diff=abs(official_loss - our_loss), trace_elbo_rel_diff=abs(our_loss / official_loss - 1),
        gradient_max_abs_diff=max(maxdiff(p.grad, official_grads[n]) for n, p in ours.named_parameters()),
        gradient_max_rel_diff=max(relative.values()), gradient_worst_parameter=max(relative, key=relative.get),
    )
    width = max(map(len, results))
    for key, value in results.items():
        print(f"{key:<{width}}  {value}")
    if args.out:
        path = Path(args.out)
        existing = json.loads(path.read_text()) if path.is_file() else {}
        existing[args.dataset] = results
        path.write_text(json.dumps(existing, indent=2) + "\n")


if __name__ == "__main__":
    main()
