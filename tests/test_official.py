"""The authors' own weights (issue #26): safe reading of whole-module pickles, conversion, git-blob pins, and
``vpzoo.load("svg_lp_bair")`` end to end against a loopback server (offline; files written by the tests)."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
import sys
from pathlib import Path

import pytest
import torch
import yaml
from _loopback import LoopbackServer
from _official_files import (
    ResnetPoseEncoder,
    VggUnetContentEncoder,
    VggUnetDecoder,
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
from vpzoo.zoo.catalog import packaged_checkpoints_file
from vpzoo.zoo.official import (
    UnsafePickleError,
    convert_drnet,
    convert_official,
    convert_svg,
    official_cache_dir,
    read_official_file,
)

G_DIM, Z_DIM, RNN = 128, 8, 32  # small LSTMs keep the test fast
NF = 16  # codec width: 64 in the authors' code (their files give it, the converter reads it); 16 keeps tests fast


@pytest.fixture()
def authors(monkeypatch):
    return install_authors_modules(monkeypatch)


def _svg_saved(codec: str, *, channels: int = 1, n_past: int = 3, last_frame_skip: bool = False, prior: bool = True,
               batch_size: int = 4, z_dim: int = Z_DIM, rnn: int = RNN, nf: int = NF):
    torch.manual_seed(0)
    enc_cls, dec_cls = (DcganEncoder, DcganDecoder) if codec == "dcgan" else (VggEncoder, VggDecoder)
    nets = {
        "encoder": enc_cls(G_DIM, channels, nf),
        "decoder": dec_cls(G_DIM, channels, nf),
        "frame_predictor": Lstm(G_DIM + z_dim, G_DIM, rnn, 2, batch_size),
        "posterior": GaussianLstm(G_DIM, z_dim, rnn, 1, batch_size),
    }
    if prior:
        nets["prior"] = GaussianLstm(G_DIM, z_dim, rnn, 1, batch_size)
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
        channels=channels, dataset="bair", n_past=n_past, n_future=10, n_eval=30, rnn_size=rnn, prior_rnn_layers=1,
        posterior_rnn_layers=1, predictor_rnn_layers=2, z_dim=z_dim, g_dim=G_DIM, beta=0.0001, model=codec,
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
    ("dcgan", "legacy", False), ("dcgan", "zip", True), ("vgg", "legacy", True),
])
def test_svg_file_converts_and_predicts_what_the_official_loop_predicts(authors, tmp_path, codec, serialisation,
                                                                        last_frame_skip):
    saved = _svg_saved(codec, channels=3 if codec == "vgg" else 1, last_frame_skip=last_frame_skip)
    path = _save(saved, tmp_path / "model.pth", serialisation)
    assert path.read_bytes()[:2] == (b"PK" if serialisation == "zip" else b"\x80\x02")
    out = convert_official(path, tmp_path / "converted", "svg")
    model = vpzoo.load(out)
    cfg = model.hparams
    assert (cfg.frame_codec, cfg.codec_width, cfg.g_dim, cfg.z_dim, cfg.rnn_size, cfg.n_past, cfg.channels) == (
        codec, NF, G_DIM, Z_DIM, RNN, 3, saved["opt"].channels)
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


def test_a_pickle_naming_an_unknown_global_is_refused_and_runs_nothing(authors, tmp_path, monkeypatch):
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
    # a class of the authors' repository that no converter knows is refused the same way, by name
    secret = type("secret", (torch.nn.Module,), {"__module__": "models.unknown_net"})
    module = type(sys)("models.unknown_net")
    module.secret = secret
    monkeypatch.setitem(sys.modules, "models.unknown_net", module)
    saved = _svg_saved("dcgan")
    saved["encoder"] = secret()
    with pytest.raises(UnsafePickleError, match=r"models\.unknown_net\.secret"):
        read_official_file(_save(saved, tmp_path / "unknown.pth", "legacy"))


def test_vpzoo_convert_command(authors, tmp_path, capsys):
    from vpzoo.cli import main

    path = _save(_svg_saved("dcgan"), tmp_path / "model.pth", "legacy")
    assert main(["convert", "svg", str(path), str(tmp_path / "out")]) == 0
    assert "vpzoo.load" in capsys.readouterr().out
    assert vpzoo.load(tmp_path / "out").hparams.frame_codec == "dcgan"
    assert main(["convert", "drnet", str(path), str(tmp_path / "out2")]) == 1  # an SVG file is not a DRNet file
    assert "neither those of drnet-py's train_drnet.py" in capsys.readouterr().err


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


def test_vgg_zip_file_converts_with_the_same_tensors_as_its_legacy_twin(authors, tmp_path):
    saved = _svg_saved("vgg", channels=3)
    legacy = convert_svg(read_official_file(_save(saved, tmp_path / "l.pth", "legacy")), "l.pth")[0].state_dict()
    zipped = convert_svg(read_official_file(_save(saved, tmp_path / "z.pth", "zip")), "z.pth")[0].state_dict()
    assert legacy.keys() == zipped.keys()
    counters = [k for k in legacy if k.endswith("num_batches_tracked")]
    assert all(legacy[k] == 0 for k in counters)  # the 0.3 file has none: added as 0
    assert all(torch.equal(legacy[k], zipped[k]) for k in legacy if k not in counters)


# ------------------------------------------------------------------------------------------------ git blob pin
def test_git_blob_id_equals_git_hash_object(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(os.urandom(70_000) + b"\0 blob\n")
    expected = subprocess.run(["git", "hash-object", str(path)], capture_output=True, text=True, check=True).stdout
    assert git_blob_sha1(path) == expected.strip()
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert git_blob_sha1(empty) == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"  # git's well-known empty blob


def test_git_blob_pin_accepts_the_file_and_a_mismatch_removes_it(tmp_path):
    data = os.urandom(200_000)
    (tmp_path / "src.bin").write_bytes(data)
    blob = git_blob_sha1(tmp_path / "src.bin")
    with LoopbackServer({"/f.bin": data}) as server:
        dest = download_url(f"{server.url}/f.bin", tmp_path / "dl" / "f.bin", git_blob=blob, progress=False)
        assert dest.read_bytes() == data
        with pytest.raises(DownloadError, match=f"git blob id mismatch: expected {'0' * 40}, got {blob}"):
            download_url(f"{server.url}/f.bin", tmp_path / "dl" / "g.bin", git_blob="0" * 40, progress=False)
    assert sorted(p.name for p in (tmp_path / "dl").iterdir()) == ["f.bin"]  # nothing of the corrupt one remains
    with pytest.raises(ValueError, match="40 hex"):
        download_url("file:///x", tmp_path / "x", git_blob="abc")


# ------------------------------------------------------------------------------------------------ DRNet
def _drnet_files(tmp_path: Path, pose_dim: int = 6, content_dim: int = 16, rnn: int = 32):
    torch.manual_seed(0)
    nf = 8  # the authors' 64 at 128x128 px makes a 80M-parameter DRNet; the layout is the same
    nets = {"netEC": VggUnetContentEncoder(content_dim, 3, nf), "netD": VggUnetDecoder(content_dim, pose_dim, 3, nf),
            "netEP": ResnetPoseEncoder(pose_dim, 3, nf=nf)}
    randomise(*nets.values())
    calibrate_batchnorm(nets["netEC"], nets["netD"], 3, size=128, dim=content_dim,
                        extra=torch.rand(8, pose_dim, generator=torch.Generator().manual_seed(3)) * 2 - 1)
    with torch.no_grad():  # calibrate the pose encoder's statistics too
        for m in nets["netEP"].modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.momentum = 1.0
        nets["netEP"].train()(torch.rand(8, 3, 128, 128))
    for net in nets.values():
        net.eval()
    nets["opt"] = options(lr=0.002, beta1=0.5, batch_size=100, log_dir="logs", data_root="", optimizer=torch.optim.Adam,
                          niter=200, seed=1, epoch_size=600, content_dim=content_dim, pose_dim=pose_dim, image_width=128,
                          channels=3, dataset="kth", max_step=20, sd_weight=0.0001, sd_nf=100, content_model="vgg_unet",
                          pose_model="resnet", data_threads=5, normalize=False, data_type="drnet")
    lstm = {"lstm": Lstm(pose_dim + content_dim, pose_dim, rnn, 2, 100, normalize=False),
            "opt": options(lr=0.0002, beta1=0.9, batch_size=100, model_path="logs/kth128x128/model", data_root="",
                           optimizer=torch.optim.Adam, niter=200, seed=1, epoch_size=600, image_width=128, channels=3,
                           data="kth", n_past=4, n_future=3, rnn_size=rnn, rnn_layers=2, normalize=False,
                           data_threads=5, data_type="sequence")}
    randomise(lstm["lstm"])
    lstm["lstm"].eval()
    return nets, lstm, _save(nets, tmp_path / "kth128x128_model.pth", "legacy"), _save(lstm, tmp_path / "lstm.pth", "zip")


def test_drnet_networks_and_lstm_files_convert_and_predict_like_the_official_loop(authors, tmp_path):
    nets, lstm, nets_path, lstm_path = _drnet_files(tmp_path)
    alone, info = convert_drnet(read_official_file(nets_path), str(nets_path))
    assert info["lstm_trained"] is False and alone.hparams.stage == "lstm" and alone.hparams.image_size == 128
    x = torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        h_c, skips = nets["netEC"](x)
        ours_c, our_skips = alone.encode_content(x)
        torch.testing.assert_close(ours_c, h_c, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(alone.encode_pose(x), nets["netEP"](x), rtol=1e-4, atol=1e-5)
        pose = torch.rand(2, 6) * 2 - 1
        torch.testing.assert_close(alone.decode(h_c, our_skips, pose), nets["netD"]([h_c, skips, pose]),
                                   rtol=1e-4, atol=1e-5)

    with pytest.raises(CheckpointUnavailableError, match="logs/kth128x128/model"):
        convert_drnet(read_official_file(lstm_path), str(lstm_path))
    full, info = convert_drnet(read_official_file(lstm_path), str(lstm_path), networks=read_official_file(nets_path))
    assert info["lstm_trained"] is True and (full.hparams.n_past, full.hparams.rnn_size) == (4, 32)
    clip = torch.rand(2, 4, 3, 128, 128, generator=torch.Generator().manual_seed(5))
    ours = full.predict(clip, n_future=3)[:, 0]
    with torch.no_grad():  # train_lstm.py's generation loop (eval mode)
        net = lstm["lstm"]
        net.batch_size, net.hidden = 2, None
        net.hidden = net.init_hidden()
        h_c, skips = nets["netEC"](clip[:, 3])
        h_p, out = nets["netEP"](clip[:, 0]), []
        for i in range(1, 7):
            if i < 4:
                net(torch.cat([h_p, h_c], 1))
                h_p = nets["netEP"](clip[:, i])
            else:
                h_p = net(torch.cat([h_p, h_c], 1))
                out.append(nets["netD"]([h_c, skips, h_p]))
    torch.testing.assert_close(ours, torch.stack(out, 1), rtol=1e-4, atol=2e-5)


# ------------------------------------------------------------------------------------------------ vpzoo.load
def _registry_with(tmp_path: Path, name: str, url: str, blob: str, file: str = "checkpoints.yaml") -> Path:
    """The packaged entry ``name`` with its URL and git blob patched (for this test only) into a private registry,
    and its codec width set to the test file's (``NF``; the authors' files have 64)."""
    real = yaml.safe_load(packaged_checkpoints_file().read_text())
    entry = next(e for e in real["checkpoints"] if e["name"] == name)
    entry["weights"].update(url=url, git_blob=blob)
    entry["config"]["codec_width"] = NF
    path = tmp_path / file
    path.write_text(yaml.safe_dump({"format_version": 1, "checkpoints": [entry]}))
    return path


def test_load_svg_lp_bair_end_to_end_against_a_loopback_server(authors, tmp_path, monkeypatch):
    monkeypatch.setenv("VPZOO_CACHE", str(tmp_path / "cache"))
    for var in ("VPZOO_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    saved = _svg_saved("vgg", channels=3, n_past=2, z_dim=64, rnn=256)  # the entry's config (but NF)
    data = _save(saved, tmp_path / "svglp_bair.pth", "legacy").read_bytes()
    blob = git_blob_sha1(tmp_path / "svglp_bair.pth")
    route = "/edenton/svg/raw/pinned/pretrained_models/svglp_bair.pth"
    with LoopbackServer({route: data, "/wrong.pth": data[:-4] + b"XXXX"}) as server:
        registry = _registry_with(tmp_path, "svg_lp_bair", server.url + route, blob)
        monkeypatch.setenv("VPZOO_OFFLINE", "1")
        with pytest.raises(CheckpointUnavailableError, match=r"offline mode.*git hash-object FILE.*vpzoo convert svg"):
            vpzoo.load("svg_lp_bair", checkpoints=registry)
        assert server.requests == []  # offline means no request at all
        monkeypatch.delenv("VPZOO_OFFLINE")
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the file's options agree with the entry: no warning
            model = vpzoo.load("svg_lp_bair", checkpoints=registry)
        assert [path for path, _ in server.requests] == [route]

        bad = _registry_with(tmp_path, "svg_lp_bair", server.url + "/wrong.pth", blob, "bad.yaml")
        monkeypatch.setenv("VPZOO_CACHE", str(tmp_path / "cache2"))
        with pytest.raises(CheckpointUnavailableError, match="git blob id mismatch"):
            vpzoo.load("svg_lp_bair", checkpoints=bad)
        assert not any(p.is_file() for p in (tmp_path / "cache2").rglob("*"))  # nothing corrupt stays behind
        monkeypatch.setenv("VPZOO_CACHE", str(tmp_path / "cache"))

    assert model.zoo_info["name"] == "svg_lp_bair" and model.hparams.skip_frame == "penultimate"
    root = official_cache_dir("svg_lp_bair")
    assert (root / "source" / "svglp_bair.pth").read_bytes() == data
    expected = convert_svg(read_official_file(tmp_path / "svglp_bair.pth"))[0]
    clip = torch.rand(2, 2, 3, 64, 64, generator=torch.Generator().manual_seed(6))
    reference = expected.predict(clip, n_future=2, num_samples=2, seed=1)
    assert torch.equal(model.predict(clip, n_future=2, num_samples=2, seed=1), reference)

    monkeypatch.setenv("VPZOO_OFFLINE", "1")  # the server is gone: the converted copy is used
    assert torch.equal(vpzoo.load("svg_lp_bair", checkpoints=registry).predict(clip, 2, 2, seed=1), reference)
    for folder in root.glob("converted-*"):  # offline with only the downloaded file: converted again, no network
        import shutil

        shutil.rmtree(folder)
    again = vpzoo.load("svg_lp_bair", checkpoints=registry, local_files_only=True)
    assert torch.equal(again.predict(clip, 2, 2, seed=1), reference)
