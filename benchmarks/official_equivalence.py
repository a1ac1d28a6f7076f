"""Check: vpzoo's conversion of the authors' files against the authors' own module code, in float64.

Builds the networks with the authors' classes imported from *your* checkouts of edenton/svg and edenton/drnet-py
(their code is not part of vpzoo; ``.cuda()`` is made a no-op so it runs on a CPU), gives them random weights and
BatchNorm statistics, saves them as PyTorch 0.3 did (legacy container, module classes as persistent ids; the
writer of ``tests/_official_files.py``) or with ``torch.save`` (zip), converts them with :mod:`vpzoo.zoo.official`,
and prints the largest float64 difference between the authors' modules and vpzoo's on the same inputs: SVG's
encoder, decoder, frame predictor (two steps) and prior for the DCGAN and VGG codecs; DRNet's KTH-128 content
encoder, pose encoder, decoder and pose LSTM (at the released size, 83 M parameters).

Usage::

    git clone https://github.com/edenton/svg /tmp/svg && git clone https://github.com/edenton/drnet-py /tmp/drnet-py
    python benchmarks/official_equivalence.py --svg-repo /tmp/svg --drnet-repo /tmp/drnet-py \
        [--out benchmarks/results/official_equivalence.json]
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import tempfile
from pathlib import Path

import torch


def _authors_modules(repo: str, names: list[str]) -> dict:
    for key in [k for k in sys.modules if k == "models" or k.startswith("models.")]:
        del sys.modules[key]
    sys.path.insert(0, repo)
    try:
        return {name: importlib.import_module(f"models.{name}") for name in names}
    finally:
        sys.path.remove(repo)


def _max(*pairs) -> float:
    return max((a.reshape(b.shape) - b).abs().max().item() for a, b in pairs)


def check_svg(repo: str, tmp: Path) -> dict:
    from _official_files import randomise, save_legacy_03

    from vpzoo.zoo.official import convert_svg, read_official_file

    mods = _authors_modules(repo, ["dcgan_64", "vgg_64", "lstm"])
    out = {}
    for codec, ch, serialisation in (("dcgan", 1, "legacy"), ("vgg", 3, "zip")):
        torch.manual_seed(0)
        codec_mod = mods[f"{codec}_64"]
        nets = {"encoder": codec_mod.encoder(128, ch), "decoder": codec_mod.decoder(128, ch),
                "frame_predictor": mods["lstm"].lstm(128 + 10, 128, 256, 2, 4),
                "posterior": mods["lstm"].gaussian_lstm(128, 10, 256, 1, 4),
                "prior": mods["lstm"].gaussian_lstm(128, 10, 256, 1, 4)}
        randomise(*nets.values())
        for net in nets.values():
            net.eval()
        nets["opt"] = argparse.Namespace(
            model=codec, image_width=64, channels=ch, g_dim=128, z_dim=10, rnn_size=256, predictor_rnn_layers=2,
            posterior_rnn_layers=1, prior_rnn_layers=1, n_past=5, n_future=10, last_frame_skip=False, beta=1e-4,
            lr=2e-3, beta1=0.9, optimizer=torch.optim.Adam)
        path = tmp / f"svg_{codec}.pth"
        save_legacy_03(nets, path) if serialisation == "legacy" else torch.save(nets, path)
        model, _ = convert_svg(read_official_file(path), str(path))
        model.double().eval()
        for key in ("encoder", "decoder", "frame_predictor", "prior"):
            nets[key].double()
        x = torch.rand(4, ch, 64, 64, dtype=torch.float64)
        with torch.no_grad():
            h, skips = nets["encoder"](x)
            h2, skips2 = model.encoder(x)
            inp = torch.rand(4, 138, dtype=torch.float64)
            nets["frame_predictor"].hidden = [tuple(t.double() for t in s) for s in nets["frame_predictor"].init_hidden()]
            o1, o2 = nets["frame_predictor"](inp), nets["frame_predictor"](inp)
            p1, state = model.frame_predictor(inp[:, None])
            p2, _ = model.frame_predictor(inp[:, None], state)
            nets["prior"].hidden = [tuple(t.double() for t in s) for s in nets["prior"].init_hidden()]
            _, mu, logvar = nets["prior"](h)
            mu2, logvar2, _ = model.prior(h[:, None])
            out[f"svg_{codec}_{serialisation}"] = {
                "encoder": _max((h, h2), *zip(skips, skips2)),
                "decoder": _max((nets["decoder"]([h, skips]), model.decoder(h, skips))),
                "frame_predictor_2_steps": _max((o1, p1[:, 0]), (o2, p2[:, 0])),
                "prior": _max((mu, mu2[:, 0]), (logvar, logvar2[:, 0])),
            }
    return out


def check_drnet(repo: str, tmp: Path) -> dict:
    from _official_files import randomise, save_legacy_03

    from vpzoo.zoo.official import convert_drnet, read_official_file

    mods = _authors_modules(repo, ["vgg_unet_128", "resnet_128", "lstm"])
    torch.manual_seed(0)
    nets = {"netEC": mods["vgg_unet_128"].content_encoder(128, 3), "netD": mods["vgg_unet_128"].decoder(128, 10, 3),
            "netEP": mods["resnet_128"].pose_encoder(10, 3)}
    randomise(*nets.values())
    for net in nets.values():
        net.eval()
    nets["opt"] = argparse.Namespace(
        content_model="vgg_unet", pose_model="resnet", content_dim=128, pose_dim=10, image_width=128, channels=3,
        normalize=False, sd_nf=100, sd_weight=1e-4, lr=2e-3, beta1=0.5, dataset="kth", optimizer=torch.optim.Adam)
    lstm = {"lstm": mods["lstm"].lstm(138, 10, 256, 2, 2),
            "opt": argparse.Namespace(n_past=10, n_future=10, rnn_size=256, rnn_layers=2, normalize=False, lr=2e-4,
                                      beta1=0.9, model_path="logs/model", optimizer=torch.optim.Adam)}
    randomise(lstm["lstm"])
    lstm["lstm"].eval()
    save_legacy_03(nets, tmp / "drnet.pth")
    torch.save(lstm, tmp / "lstm.pth")
    model, _ = convert_drnet(read_official_file(tmp / "drnet.pth"), networks=read_official_file(tmp / "lstm.pth"))
    model.double().eval()
    for net in (*(nets[k] for k in ("netEC", "netD", "netEP")), lstm["lstm"]):
        net.double()
    x = torch.rand(2, 3, 128, 128, dtype=torch.float64)
    with torch.no_grad():
        h_c, skips = nets["netEC"](x)
        h_c2, skips2 = model.encode_content(x)
        h_p, h_p2 = nets["netEP"](x), model.encode_pose(x)
        lstm["lstm"].hidden = [tuple(t.double() for t in s) for s in lstm["lstm"].init_hidden()]
        inp = torch.rand(2, 138, dtype=torch.float64)
        o2, _ = model.pose_lstm(inp[:, None])
        return {"drnet_kth128": {
            "content_encoder": _max((h_c, h_c2), *zip(skips, skips2)),
            "pose_encoder": _max((h_p, h_p2)),
            "decoder": _max((nets["netD"]([[h_c, skips], h_p]), model.decode(h_c2, skips2, h_p2))),
            "pose_lstm": _max((lstm["lstm"](inp), o2[:, 0])),
            "parameters": sum(t.numel() for t in model.parameters()),
        }}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--svg-repo", required=True, help="a checkout of edenton/svg")
    parser.add_argument("--drnet-repo", required=True, help="a checkout of edenton/drnet-py")
    parser.add_argument("--out", default="benchmarks/results/official_equivalence.json")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the 0.3-format writer
    torch.Tensor.cuda = lambda self, *a, **k: self  # the authors' init_hidden allocates on the GPU
    with tempfile.TemporaryDirectory() as tmp:
        result = {**check_svg(args.svg_repo, Path(tmp)), **check_drnet(args.drnet_repo, Path(tmp))}
    for name, diffs in result.items():
        print(name + ": " + ", ".join(f"{k} {v:.2e}" if isinstance(v, float) else f"{k} {v:,}"
                                      for k, v in diffs.items()))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
