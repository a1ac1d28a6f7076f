"""The authors' own weights (issue #26): safe reading of whole-module pickles, conversion, git-blob pins, and
``vpzoo.load("svg_lp_bair")`` end to end against a loopback server (offline; files written by the tests)."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from _loopback import LoopbackServer
from _official_files import (
    DcganDecoder,
    DcganEncoder,
    GaussianLstm,
    Lstm,
    VggDecoder,
    VggEncoder,
    calibrate_batchnorm,
    install_authors_modules,
    options,
    randomise,
    save_legacy_03,
)

import vpzoo
from vpzoo.cache import DownloadError, download_url, git_blob_sha1
from vpzoo.zoo import CheckpointUnavailableError, ConfigMismatchError
from vpzoo.zoo.official import UnsafePickleError, convert_official, convert_svg, pickle_globals, read_official_file

G_DIM, Z_DIM, RNN = 128, 8, 32  # small LSTMs keep the test fast; the codecs are the authors' fixed 64-wide ones


@pytest.fixture()
def authors(monkeypatch):
    return install_authors_modules(monkeypatch)


def _svg_saved(codec: str, *, channels: int = 1, n_past: int = 3, last_frame_skip: bool = False, prior: bool = True,
               batch_size: int = 4):
    torch.manual_seed(0)
    enc_cls, dec_cls = (DcganEncoder, DcganDecoder) if codec == "dcgan" else (VggEncoder, VggDecoder)
    nets = {
        "encoder": enc_cls(G_DIM, channels),
        "decoder": dec_cls(G_DIM, channels),
        "frame_predictor": Lstm(G_DIM + Z_DIM, G_DIM, RNN, 2, batch_size),
        "posterior": GaussianLstm(G_DIM, Z_DIM, RNN, 1, batch_size),
    }
    if prior:
        nets["prior"] = GaussianLstm(G_DIM, Z_DIM, RNN, 1, batch_size)
    randomise(*nets.values())
    calibrate_batchnorm(nets["encoder"], nets["decoder"], channels, dim=G_DIM)
    with torch.no_grad():  # make z matter, so that a noise or prior mix-up shows in the frames
        nets["frame_predictor"].embed.weight[:, G_DIM:] *= 30
        for key in ("posterior", "prior"):
            if key in nets:
                nets[key].logvar_net.bias.fill_(2.0)
    for net in nets.values():
        net.eval()
    nets["opt"] = options(
        lr=0.002, beta1=0.9, batch_size=batch_size, log_dir="logs/lp/bair/model=vgg64x64", model_dir="", name="",
        data_root="data", optimizer=torch.optim.Adam, niter=300, seed=1, epoch_size=600, image_width=64,
        channels=channels, dataset="bair", n_past=n_past, n_future=10, n_eval=30, rnn_size=RNN, prior_rnn_layers=1,
        posterior_rnn_layers=1, predictor_rnn_layers=2, z_dim=Z_DIM, g_dim=G_DIM, beta=0.0001, model=codec,
        data_threads=5, num_digits=2, last_frame_skip=last_frame_skip)
    return nets


def _save(saved, path: Path, serialisation: str) -> Path:
    if serialisation == "legacy":
        save_legacy_03(saved, path)
    else:
        torch.save(saved, path)
    return path


def _official_sampling(nets, context: torch.Tensor, n_future: int, num_samples: int, seed: int,
                       last_frame_skip: bool, batch_stats: bool = False) -> torch.Tensor:
    """The official generate_svg_lp.py loop (one sample of all B clips at a time), with the noise vpzoo draws (same
    generator, same order). ``batch_stats``: encoder/decoder in train mode, as that script runs them."""
    b, t_ctx = context.shape[:2]
    g = torch.Generator().manual_seed(seed)
    eps_ctx = torch.randn((b * num_samples, t_ctx - 1, Z_DIM), generator=g).view(b, num_samples, t_ctx - 1, Z_DIM)
    eps_future = [torch.randn((b * num_samples, 1, Z_DIM), generator=g).view(b, num_samples, Z_DIM)
                  for _ in range(n_future)]
    enc, dec, pred, post, prior = (nets[k] for k in ("encoder", "decoder", "frame_predictor", "posterior", "prior"))
    norms = [m for net in (enc, dec) for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in norms:
        m.train(batch_stats)
        m.track_running_stats = not batch_stats
    samples = []
    with torch.no_grad():
        for s in range(num_samples):
            for net in (pred, post, prior):
                net.batch_size = b
                net.hidden = net.init_hidden()
            x_in, out = context[:, 0], []
            for i in range(1, t_ctx + n_future):
                h, sk = enc(x_in)
                if last_frame_skip or i < t_ctx:
                    skip = sk
                if i < t_ctx:
                    z, _, _ = post(enc(context[:, i])[0], eps_ctx[:, s, i - 1])
                    prior(h, torch.zeros(b, Z_DIM))
                    pred(torch.cat([h, z], 1))
                    x_in = context[:, i]
                else:
                    z, _, _ = prior(h, eps_future[i - t_ctx][:, s])
                    x_in = dec([pred(torch.cat([h, z], 1)), skip])
                    out.append(x_in)
            samples.append(torch.stack(out, 1))
    for m in norms:
        m.eval()
        m.track_running_stats = True
    return torch.stack(samples, 1)


# ------------------------------------------------------------------------------------------------ conversion
@pytest.mark.parametrize("codec,serialisation,last_frame_skip", [
    ("dcgan", "legacy", False), ("vgg", "zip", False), ("dcgan", "zip", True), ("vgg", "legacy", True),
])
def test_svg_file_converts_and_predicts_what_the_official_loop_predicts(authors, tmp_path, codec, serialisation,
                                                                        last_frame_skip):
    saved = _svg_saved(codec, channels=3 if codec == "vgg" else 1, last_frame_skip=last_frame_skip)
    path = _save(saved, tmp_path / "model.pth", serialisation)
    assert path.read_bytes()[:2] == (b"PK" if serialisation == "zip" else b"\x80\x02")
    out = convert_official(path, tmp_path / "converted", "svg")
    model = vpzoo.load(out)
    cfg = model.hparams
    assert (cfg.frame_codec, cfg.g_dim, cfg.z_dim, cfg.rnn_size, cfg.n_past, cfg.channels) == (
        codec, G_DIM, Z_DIM, RNN, 3, saved["opt"].channels)
    assert cfg.skip_frame == ("previous" if last_frame_skip else "penultimate")
    assert model.state_dict()["encoder.head.1.num_batches_tracked"].dtype == torch.long  # added: 0.3 lacked it

    context = torch.rand(1, 3, cfg.channels, 64, 64, generator=torch.Generator().manual_seed(1))
    ours = model.predict(context, n_future=2, num_samples=2, seed=5)
    official = _official_sampling(saved, context, 2, 2, 5, last_frame_skip)
    torch.testing.assert_close(ours, official, rtol=1e-4, atol=2e-5)
    assert ours.std(dim=1).mean() > 1e-3  # the two samples differ: the noise really flows through the prior


def test_svg_fp_file_and_a_vpzoo_model_with_the_same_weights_predict_the_same(authors, tmp_path):
    saved = _svg_saved("dcgan", prior=False)
    model, info = convert_svg(read_official_file(_save(saved, tmp_path / "fp.pth", "legacy")), "fp.pth")
    assert info["family"] == "svg_fp" and type(model).model_name == "svg_fp"
    twin = vpzoo.create_model("svg_fp", **{k: v for k, v in model.hparams.items()})
    twin.load_state_dict(model.state_dict())
    context = torch.rand(1, 3, 1, 64, 64)
    assert torch.equal(model.predict(context, 2, 2, seed=3), twin.predict(context, 2, 2, seed=3))


def test_tensors_that_do_not_fit_are_named(authors, tmp_path):
    saved = _svg_saved("dcgan")
    saved["opt"].z_dim = Z_DIM + 1  # the options promise a larger z than the LSTMs have
    path = _save(saved, tmp_path / "bad.pth", "legacy")
    with pytest.raises(ConfigMismatchError, match=r"do not fit.*posterior\.mu\.weight"):
        convert_official(path, tmp_path / "out", "svg")
    assert not (tmp_path / "out").exists()


def test_a_pickle_naming_an_unknown_global_is_refused_and_runs_nothing(authors, tmp_path):
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    saved = _svg_saved("dcgan")
    saved["opt"].payload = Evil()
    for serialisation in ("legacy", "zip"):
        path = _save(saved, tmp_path / f"evil_{serialisation}.pth", serialisation)
        with pytest.raises(UnsafePickleError, match=r"(posix|os)\.system"):
            read_official_file(path)
        assert not marker.exists()


def test_batchnorm_batch_option_reproduces_the_official_train_mode_sampling(authors, tmp_path):
    saved = _svg_saved("dcgan")
    model, _ = convert_svg(read_official_file(_save(saved, tmp_path / "m.pth", "zip")), "m.pth")
    context = torch.rand(3, 3, 1, 64, 64, generator=torch.Generator().manual_seed(2))
    running_stats = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    ours = model.predict(context, n_future=2, num_samples=2, seed=7, batchnorm="batch")
    official = _official_sampling(saved, context, 2, 2, 7, False, batch_stats=True)
    torch.testing.assert_close(ours, official, rtol=1e-4, atol=2e-5)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in running_stats.items())  # left untouched
    eval_mode = model.predict(context, n_future=2, num_samples=2, seed=7)
    assert (ours - eval_mode).abs().max() > 1e-3  # the option changes the frames
    with pytest.raises(ValueError, match="B >= 2"):
        model.predict(context[:1], n_future=2, batchnorm="batch")
    with pytest.raises(ValueError, match="'running' or 'batch'"):
        model.predict(context, n_future=2, batchnorm="train")
