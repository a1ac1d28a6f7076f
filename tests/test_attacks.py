"""The attack suite: security and fault tolerance (issue #25). Each test builds its own malicious or corrupt input,
names what it attacks, and asserts the clear error, that nothing ran, that nothing outside the cache changed and
that nothing half-written remains."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from _loopback import LoopbackServer

import vpzoo
from conftest import tiny_svg_kwargs
from vpzoo.cli import main
from vpzoo.models import SVGLP
from vpzoo.zoo.errors import CheckpointUnavailableError, ConfigMismatchError, CorruptCheckpointError

ASSETS = Path(__file__).parent / "assets"
TINY_CONFIG = str(ASSETS / "tiny_svg_lp.yaml")


class _RunsCode:
    """Unpickling this object calls ``open(marker, "w")``: proof that a loader executed code from a file."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture
def tiny_model():
    torch.manual_seed(0)
    return SVGLP(**tiny_svg_kwargs()).eval()


@pytest.fixture
def clip():
    return torch.rand(4, 1, 64, 64, generator=torch.Generator().manual_seed(0))


def _lightning_ckpt(model, path: Path, **extra) -> Path:
    hparams = {"_class_path": "vpzoo.models.svg.SVGLP", **dict(model.hparams)}
    hparams.update(extra.pop("hparams", {}))
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": hparams, "global_step": 1, **extra}, path)
    return path


# ------------------------------------------------------------------------------------------------ code execution
def test_remote_ckpt_path_is_refused_and_runs_nothing(tiny_model, tmp_path, capsys):
    marker = tmp_path / "pwned"
    evil = _lightning_ckpt(tiny_model, tmp_path / "evil.ckpt", payload=_RunsCode(marker))
    with LoopbackServer({"/evil.ckpt": evil.read_bytes()}) as server:
        code = main(["fit", "--config", TINY_CONFIG, "--ckpt_path", f"{server.url}/evil.ckpt"])
        assert server.requests == []  # not even downloaded
    assert code == 1 and not marker.exists()
    assert "remote checkpoints are refused" in capsys.readouterr().err


def test_local_pickle_in_a_checkpoint_is_refused_and_runs_nothing(tiny_model, tmp_path, capsys):
    marker = tmp_path / "pwned"
    evil = _lightning_ckpt(tiny_model, tmp_path / "evil.ckpt", payload=_RunsCode(marker))
    assert main(["fit", "--config", TINY_CONFIG, "--ckpt_path", str(evil)]) == 1
    assert not marker.exists()
    assert "not a checkpoint that loads with weights_only=True" in capsys.readouterr().err
    with pytest.raises(CorruptCheckpointError, match="cannot read it as a Lightning checkpoint"):
        vpzoo.load(evil)
    assert not marker.exists()


def test_weights_only_false_is_refused(tmp_path, capsys):
    assert main(["fit", "--config", TINY_CONFIG, "--weights_only", "false", "--trainer.max_steps", "1"]) == 1
    assert "--weights_only false is refused" in capsys.readouterr().err


@pytest.mark.parametrize("class_path", ["vpzoo_attack_module.Model", "this.X"])
def test_class_path_named_in_a_checkpoint_is_never_imported(tiny_model, tmp_path, monkeypatch, capsys, class_path):
    marker = tmp_path / "imported"
    (tmp_path / "vpzoo_attack_module.py").write_text(f"open({str(marker)!r}, 'w')\nclass Model: pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    ckpt = _lightning_ckpt(tiny_model, tmp_path / "m.ckpt", hparams={"_class_path": class_path})
    zen_already_imported = "this" in sys.modules
    with pytest.raises(ConfigMismatchError, match="is not a registered vpzoo model class"):
        vpzoo.load(ckpt)
    assert main(["fit", "--config", TINY_CONFIG, "--ckpt_path", str(ckpt)]) == 1
    captured = capsys.readouterr()
    assert "never imports a class named in a file" in captured.err
    assert not marker.exists() and "vpzoo_attack_module" not in sys.modules
    assert "Beautiful is better than ugly" not in captured.out + captured.err
    assert zen_already_imported or "this" not in sys.modules


# ------------------------------------------------------------------------------------------------ the Hub cache
def _cache_repo(cache: Path, filename: str, target: Path) -> Path:
    """A Hugging Face cache entry whose snapshot link points at ``target`` (a tampered cache)."""
    commit = "a" * 40
    repo = cache / "models--owner--repo"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True)
    (snap / filename).symlink_to(target)
    return snap / filename


def test_hub_purge_never_deletes_outside_the_cache(tmp_path):
    from vpzoo.zoo.hub import hub_file, purge_cached_file

    victim = tmp_path / "outside" / "precious.bin"
    victim.parent.mkdir()
    victim.write_bytes(b"the user's file")
    link = _cache_repo(tmp_path / "cache", "model.safetensors", victim)
    with pytest.raises(CorruptCheckpointError, match="sha256 mismatch"):
        hub_file("owner/repo", "model.safetensors", revision="a" * 40, sha256="0" * 64,
                 cache_dir=tmp_path / "cache", local_files_only=True)
    assert victim.read_bytes() == b"the user's file"  # the link's target outside the cache is untouched
    assert not link.is_symlink()  # the tampered link itself is gone
    with pytest.raises(ValueError, match="not a file under a Hugging Face cache's snapshots/ folder"):
        purge_cached_file(victim)
    assert victim.exists()


def test_hub_purge_removes_the_repositorys_own_blob(tmp_path):
    from vpzoo.zoo.hub import purge_cached_file

    blob = tmp_path / "cache" / "models--owner--repo" / "blobs" / ("b" * 64)
    blob.parent.mkdir(parents=True)
    blob.write_bytes(b"corrupt")
    link = _cache_repo(tmp_path / "cache2", "x", blob)  # a second repository whose link points into the first
    assert purge_cached_file(link) == [link] and blob.exists()  # another repository's blob is not ours to delete
    own = tmp_path / "cache" / "models--owner--repo" / "snapshots" / ("c" * 40) / "model.safetensors"
    own.parent.mkdir(parents=True)
    own.symlink_to(blob)
    assert set(purge_cached_file(own)) == {own, blob} and not blob.exists()


# ------------------------------------------------------------------------------------------------ weights
def test_corrupted_weights_give_an_error_not_nan(tiny_model, tmp_path, clip):
    """Bytes set to 0xFF in a lone .safetensors (no digest to check against) make NaN weights: predict refuses."""
    folder = tiny_model.save_pretrained(tmp_path / "m")
    lone = tmp_path / "lone.safetensors"
    data = bytearray((folder / "model.safetensors").read_bytes())
    header = 8 + int.from_bytes(data[:8], "little")
    data[header:] = b"\xff" * (len(data) - header)
    lone.write_bytes(bytes(data))
    model = vpzoo.load(lone)
    with pytest.raises(FloatingPointError, match="predicted NaN or infinite values .* weights are corrupt"):
        model.predict(clip, 2, seed=0)


def test_local_folder_weights_are_checked_against_their_recorded_sha256(tiny_model, tmp_path, clip):
    folder = tiny_model.save_pretrained(tmp_path / "m")
    recorded = json.loads((folder / "config.json").read_text())["weights_sha256"]
    assert recorded == hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    vpzoo.load(folder)
    data = bytearray((folder / "model.safetensors").read_bytes())
    data[-1] ^= 0x01
    (folder / "model.safetensors").write_bytes(bytes(data))
    for spec in (folder, folder / "model.safetensors", folder / "config.json"):
        with pytest.raises(CorruptCheckpointError, match="sha256 recorded in .*: sha256 mismatch"):
            vpzoo.load(spec)


@pytest.mark.parametrize("key", ["n_past", "skip_frame"])
def test_config_missing_a_constructor_argument_is_refused(tiny_model, tmp_path, key):
    folder = tiny_model.save_pretrained(tmp_path / "m")
    doc = json.loads((folder / "config.json").read_text())
    del doc["config"][key]
    (folder / "config.json").write_text(json.dumps(doc))
    with pytest.raises(ConfigMismatchError, match=rf"the config lacks \['{key}'\].*does not fill in today's defaults"):
        vpzoo.load(folder)


def test_format_version_that_is_not_an_integer_is_named_as_such(tiny_model, tmp_path):
    folder = tiny_model.save_pretrained(tmp_path / "m")
    doc = json.loads((folder / "config.json").read_text())
    doc["vpzoo_format"] = "1"
    (folder / "config.json").write_text(json.dumps(doc))
    with pytest.raises(CorruptCheckpointError, match="vpzoo_format must be a positive integer, got '1'"):
        vpzoo.load(folder)


def test_concurrent_save_pretrained_into_one_folder(tiny_model, tmp_path, clip):
    errors = []

    def save() -> None:
        try:
            tiny_model.save_pretrained(tmp_path / "m")
        except BaseException as e:  # noqa: BLE001 - collected for the assertion
            errors.append(e)

    threads = [threading.Thread(target=save) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert not list((tmp_path / "m").glob(".*.tmp"))  # nothing half-written remains
    torch.testing.assert_close(vpzoo.load(tmp_path / "m").predict(clip, 2, seed=1), tiny_model.predict(clip, 2, seed=1))


# ------------------------------------------------------------------------------------------------ data
def test_kth_preparation_that_decodes_nothing_fails_and_recovers_when_files_are_fixed(tmp_path):
    from vpzoo.data.fixtures import write_kth_fixture
    from vpzoo.data.kth import kth_is_prepared, prepare_kth

    root = tmp_path / "kth"
    avis = root / "avi"
    avis.mkdir(parents=True)
    names = ["person01_walking_d1_uncomp.avi", "person21_walking_d1_uncomp.avi"]
    for name in names:
        (avis / name).write_bytes(b"not a video" * 100)
    with pytest.warns(UserWarning, match="skipping KTH video"), pytest.raises(ValueError, match="none of the 2 videos"):
        prepare_kth(root, (32,), download=False, progress=False, actions=("walking",))
    assert not kth_is_prepared(root, 32)
    assert not list((root / "processed").rglob("*.npy"))  # nothing half-written remains
    # the files are fixed: real videos replace the broken ones, and the next preparation uses them
    good = write_kth_fixture(tmp_path / "zips", persons=(1, 21), actions=("walking",), num_frames=12)
    with zipfile.ZipFile(good["walking.zip"]) as zf:
        for member in zf.namelist():
            if member.endswith(".avi"):
                (avis / os.path.basename(member)).write_bytes(zf.read(member))
    with pytest.warns(UserWarning, match="2 videos"):
        prepare_kth(root, (32,), download=False, progress=False, actions=("walking",))
    assert kth_is_prepared(root, 32)
    # a source that changes after preparation makes the prepared frames stale
    os.utime(avis / names[0], ns=(1, 1))
    assert not kth_is_prepared(root, 32)


def test_kth_partial_extraction_from_a_killed_run_is_not_used(tmp_path):
    from vpzoo.data.fixtures import write_kth_fixture
    from vpzoo.data.kth import prepare_kth

    root = tmp_path / "kth"
    (root / "raw").mkdir(parents=True)
    files = write_kth_fixture(root / "raw", persons=(1, 21), actions=("walking",), num_frames=12)
    stale = root / "raw" / "tmpab12cd34"  # what a killed older preparation left: a truncated AVI
    stale.mkdir()
    with zipfile.ZipFile(files["walking.zip"]) as zf:
        member = next(m for m in zf.namelist() if "person01" in m)
        (stale / "person01_walking_d1_uncomp.avi").write_bytes(zf.read(member)[:300])
    with pytest.warns(UserWarning, match="2 videos"):
        prepare_kth(root, (32,), download=False, progress=False, actions=("walking",))
    assert not stale.exists()
    meta = json.loads((root / "processed" / "32px" / "videos.json").read_text())
    assert [v["length"] for v in meta["videos"]] == [12, 12]
    assert not [p for p in (root / "raw").iterdir() if p.name.startswith("tmp")]


def test_changed_fixed_evaluation_set_is_regenerated(tmp_path):
    from vpzoo.data import StochasticMovingMNISTDataModule

    dm = StochasticMovingMNISTDataModule(cache_dir=str(tmp_path), num_val=4, num_test=4, eval_seq_len=6, seq_len=5,
                                         batch_size=2)
    dm.setup("test")
    original = torch.stack([dm.test_set[i] for i in range(4)])
    cached = next(p for p in tmp_path.rglob("*.npy") if "test" in p.name)
    arr = np.load(cached)
    arr[0, 0, 0, :4, :4] = 255 - arr[0, 0, 0, :4, :4]  # same shape and dtype, other content
    np.save(cached, arr)
    dm2 = StochasticMovingMNISTDataModule(cache_dir=str(tmp_path), num_val=4, num_test=4, eval_seq_len=6, seq_len=5,
                                          batch_size=2)
    with pytest.warns(UserWarning, match="does not match the sha256 recorded beside it"):
        dm2.setup("test")
    assert torch.equal(torch.stack([dm2.test_set[i] for i in range(4)]), original)


# ------------------------------------------------------------------------------------------------ resuming
def _tiny_encodedec() -> vpzoo.models.VideoPredictionModel:
    from vpzoo.models.encodedec import EncODEDec

    return EncODEDec(image_size=64, res_channels=(4, 8), hidden=16, latent_dim=4, n_past=3, n_future=3,
                     method="rk4", step_size=0.25, lr_decay_step=4)


@pytest.mark.parametrize("make_model", [lambda: SVGLP(**tiny_svg_kwargs()), _tiny_encodedec],
                         ids=["svg_lp", "encodedec_with_lr_decay"])
def test_resumed_run_sees_the_batches_and_losses_of_the_uninterrupted_run(tmp_path, make_model):
    """Interrupted at step 3 and resumed to 6, a run trains on the same batches with the same losses as one run of 6
    steps (the data stream continues from the checkpoint's position; the noise from the saved random state; a
    model's ``learning_rate`` schedule from the global step)."""
    import lightning.pytorch as pl

    from vpzoo.data import StochasticMovingMNISTDataModule

    class Record(pl.Callback):
        def __init__(self) -> None:
            self.rows: list[tuple[int, str, float]] = []

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            digest = hashlib.sha256(batch.numpy().tobytes()).hexdigest()[:16]
            self.rows.append((trainer.global_step, digest, float(outputs["loss"])))

    def run(max_steps: int, ckpt_path: str | None, folder: Path) -> Record:
        pl.seed_everything(1)
        record = Record()
        trainer = pl.Trainer(
            max_steps=max_steps, accelerator="cpu", logger=False, enable_progress_bar=False,
            enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0, default_root_dir=str(folder),
            callbacks=[record, pl.callbacks.ModelCheckpoint(dirpath=folder, every_n_train_steps=3, save_top_k=-1)],
        )
        dm = StochasticMovingMNISTDataModule(cache_dir=str(tmp_path / "data"), batch_size=2, seq_len=6, num_val=2,
                                             num_test=2, eval_seq_len=6)
        trainer.fit(make_model(), datamodule=dm, ckpt_path=ckpt_path)
        return record

    whole = run(6, None, tmp_path / "whole").rows
    run(3, None, tmp_path / "part")
    resumed = run(6, str(tmp_path / "part" / "epoch=0-step=3.ckpt"), tmp_path / "part").rows
    assert [r[0] for r in resumed] == [4, 5, 6]
    assert [r[1] for r in resumed] == [r[1] for r in whole[3:]]  # the same batches, not batches 0-2 again
    assert len({r[1] for r in whole}) == 6
    np.testing.assert_allclose([r[2] for r in resumed], [r[2] for r in whole[3:]], rtol=1e-6)


# ------------------------------------------------------------------------------------------------ predict's errors
def test_predict_errors_name_the_right_argument(tiny_model, clip):
    with pytest.raises(ValueError, match=r"^n_future must be >= 1, got -3$"):
        tiny_model.predict(clip[:, :, :32], -3)  # the clip is wrong too, but n_future is what is named first
    with pytest.raises(ValueError, match=r"seed must lie in \[-2\*\*63, 2\*\*64 - 1\].*got 18446744073709551616"):
        tiny_model.predict(clip, 2, seed=2**64)
    with pytest.raises(ValueError, match=r"got values in \[[0-9.e-]+, 1\.0001"):
        tiny_model.predict(torch.cat([clip[:3], torch.full_like(clip[:1], 1.0001)]), 2)


def test_huge_num_samples_is_refused_before_any_work(tiny_model, clip):
    with pytest.raises(MemoryError, match=r"10000000 sample\(s\) x 20 frames x 1 clip\(s\) need .* GiB for the output"):
        tiny_model.predict(clip, 20, num_samples=10_000_000)


# ------------------------------------------------------------------------------------------------ the network
def test_hub_endpoint_that_never_answers_fails_fast(tmp_path, monkeypatch):
    """A server that accepts connections and never answers: the error comes after the timeout, not minutes later."""
    import socket
    import time

    from huggingface_hub import constants

    from vpzoo.zoo.hub import hub_file

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{silent.getsockname()[1]}")
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setenv("VPZOO_HUB_TIMEOUT", "1")
        start = time.monotonic()
        with pytest.raises(CheckpointUnavailableError, match=r"did not answer within 1 s.*VPZOO_HUB_TIMEOUT"):
            hub_file("owner/repo", "config.json", revision="main", cache_dir=tmp_path / "hf")
        assert time.monotonic() - start < 10
    finally:
        silent.close()


def test_tar_without_bair_content_is_named_and_kept(tmp_path):
    import io
    import tarfile

    from vpzoo.data.bair import BAIR_TAR, prepare_bair

    root = tmp_path / "bair"
    root.mkdir()
    with tarfile.open(root / BAIR_TAR, "w") as tf:
        data = b"holiday photos"
        info = tarfile.TarInfo("photos/beach.txt")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    before = (root / BAIR_TAR).read_bytes()
    for download in (True, False):
        with pytest.raises(ValueError, match=r"exists but holds no softmotion30_44k.*'photos/beach.txt'.*left untouched"):
            prepare_bair(root, download=download, url="http://127.0.0.1:9/never-contacted.tar", progress=False)
        assert (root / BAIR_TAR).read_bytes() == before


@pytest.mark.parametrize("content", [b"\x93NUMPY\x01\x00v\x00{'descr'", b"not numpy at all", None])
def test_broken_moving_mnist_test_file_names_its_path(tmp_path, content):
    from vpzoo.data.moving_mnist import load_mnist_test_seq

    path = tmp_path / "mnist_test_seq.npy"
    if content is None:
        np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)  # a pickled object array
    else:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=rf"^{path}: not a readable .npy array .*delete it and download it again"):
        load_mnist_test_seq(path)


def test_fit_stopped_by_sigterm_saves_a_checkpoint_and_exits_non_zero(tmp_path):
    import signal
    import subprocess
    import time

    vpzoo_bin = str(Path(sys.executable).with_name("vpzoo"))
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [vpzoo_bin, "fit", "--config", TINY_CONFIG, "--trainer.max_steps", "100000", "--trainer.val_check_interval",
         "100000", "--trainer.limit_val_batches", "0", "--trainer.callbacks+=lightning.pytorch.callbacks.ModelCheckpoint",
         "--trainer.callbacks.dirpath", str(tmp_path / "ckpts")],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    lines = []
    for line in proc.stdout:  # wait until training runs (the progress bar shows step counts)
        lines.append(line)
        if "train/loss" in line or "Epoch 0" in line or time.monotonic() > deadline:
            break
    time.sleep(2)
    proc.send_signal(signal.SIGTERM)
    out = "".join(lines) + proc.communicate(timeout=120)[0]
    assert proc.returncode == 143, out[-3000:]
    saved = tmp_path / "ckpts" / "sigterm.ckpt"
    assert saved.is_file() and f"checkpoint saved to {saved}" in out
    assert torch.load(saved, weights_only=True)["global_step"] > 0


def test_add_checkpoint_copy_to_outside_the_registry_writes_nothing(tiny_model, tmp_path, capsys):
    folder = tiny_model.save_pretrained(tmp_path / "exported")
    registry = tmp_path / "registry" / "checkpoints.yaml"
    registry.parent.mkdir()
    registry.write_text("format_version: 1\ncheckpoints: []\n")
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps([{"metric": "psnr", "protocol": "svg", "num_samples": 1, "value": 10.0}]))
    code = main(["add-checkpoint", str(folder), "--name", "tiny", "--dataset", "smmnist", "--metrics", str(metrics),
                 "--training-config", "configs/svg_lp/smmnist.yaml", "--steps", "1", "--hardware", "cpu", "--time", "1 s",
                 "--copy-to", "../escaped.safetensors", "--checkpoints", str(registry)])
    assert code == 1 and "leads outside" in capsys.readouterr().err
    assert not (tmp_path / "escaped.safetensors").exists()


def test_temporaries_of_a_killed_preparation_are_removed(tmp_path):
    import subprocess

    from vpzoo.data._common import NpyWriter

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".frames.npy.{int(dead.stdout)}.tmp"  # what a killed writer leaves
    stale.write_bytes(b"\0" * 1000)
    live = tmp_path / f".frames.npy.{os.getppid()}.tmp"  # a concurrent writer that is still running
    live.write_bytes(b"\0" * 10)
    with NpyWriter(tmp_path / "frames.npy", (2,), np.uint8) as writer:
        writer.append(np.zeros((3, 2), np.uint8))
    assert not stale.exists() and live.exists()
    assert np.load(tmp_path / "frames.npy").shape == (3, 2)


@pytest.mark.parametrize("flags, message, code", [
    (["--out", "a_file/p.gif"], "cannot use --out a_file/p.gif: .*a_file is a file, so no folder can be made", 1),
    (["--grid", "p.jpg"], "--grid must end with .png", 2),
    (["--fps", "1e9"], "--fps must be at most 100", 2),
    (["--fps", "nan"], "--fps must be positive", 2),
    (["--device", "gpu7"], "--device 'gpu7' is not a device", 2),
    (["--input", "."], r"^vpzoo: error: \. is a folder, not a clip: pass a clip file", 1),
])
def test_predict_output_options_are_checked_before_any_work(tmp_path, monkeypatch, capsys, flags, message, code):
    import re

    import vpzoo as package

    monkeypatch.chdir(tmp_path)
    (tmp_path / "a_file").write_text("")
    loaded = []
    monkeypatch.setattr(package, "load", lambda *a, **k: loaded.append(a))  # must not be reached
    try:
        result = main(["predict", "svg_lp_smmnist", *flags])
    except SystemExit as e:  # argparse's usage errors
        result = e.code
    assert result == code and loaded == []
    assert re.search(message, capsys.readouterr().err, re.M)
