"""The command line's errors: one sentence naming what was expected and what to do, never a raw errno or a
Lightning parser dump; channel conversions only on request."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vpzoo.cli import main
from vpzoo.io import SUPPORTED_FORMATS, read_video, write_gif
from vpzoo.models import SVGLP

TINY = dict(n_past=3, n_future=3, codec_width=8, g_dim=16, z_dim=4, rnn_size=32)
SRC = str(Path(__file__).resolve().parents[1] / "src")


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return SVGLP(**TINY).save_pretrained(tmp_path_factory.mktemp("errors") / "tiny")


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("vpzoo: error: ") and "Traceback" not in err and "Errno" not in err, err
    return err


def test_predict_without_a_model_names_what_to_pass_and_lists_checkpoints(capsys, monkeypatch):
    monkeypatch.delenv("VPZOO_CHECKPOINTS", raising=False)
    for args in (["predict"], ["predict", "--n-future", "4"]):
        with pytest.raises(SystemExit) as info:
            main(args)
        assert info.value.code == 2
        err = " ".join(capsys.readouterr().err.split())
        assert "vpzoo predict needs a model: vpzoo predict NAME_OR_PATH" in err
        from vpzoo.zoo import list_checkpoints

        assert f"registered checkpoints: {', '.join(list_checkpoints())}" in err
        assert "svg_lp_smmnist" in list_checkpoints()
        assert "vpzoo predict --config CONFIG" in err
        assert "required: predict.data" not in err


def test_fit_without_a_config_lists_the_configs(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no ./configs here: the source checkout's configs are listed
    for command in ("fit", "validate", "test"):
        assert main([command, "--trainer.max_steps", "3"]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"vpzoo: error: vpzoo {command} needs a config: vpzoo {command} --config CONFIG")
        assert "configs/svg_lp/smmnist.yaml" in err and "configs/sv2p/smmnist.yaml" in err
        assert "required:" not in err
    (tmp_path / "configs" / "mine").mkdir(parents=True)
    (tmp_path / "configs" / "mine" / "clips.yaml").write_text("trainer: {}\n")
    assert main(["fit"]) == 2
    assert "\n  configs/mine/clips.yaml" in capsys.readouterr().err  # the user's own configs, relative to cwd


def test_corrupt_and_non_video_inputs_name_the_supported_formats(folder, tmp_path, capsys):
    (tmp_path / "noise.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    (tmp_path / "notes.txt").write_text("not a video\n")
    (tmp_path / "broken.gif").write_bytes(b"GIF89a" + b"\0" * 20)
    (tmp_path / "broken.npy").write_bytes(b"\x93NUMPY garbage")
    for name in ("noise.mp4", "notes.txt", "broken.gif", "broken.npy"):
        assert main(["predict", str(folder), "--input", str(tmp_path / name), "--out",
                     str(tmp_path / "p.gif")]) == 1
        err = one_line_error(capsys)
        assert f"{tmp_path / name} could not be read as a clip (" in err
        assert SUPPORTED_FORMATS in err and "check that the file is complete" in err
    assert main(["predict", str(folder), "--input", str(tmp_path / "missing.gif")]) == 1
    assert f"{tmp_path / 'missing.gif'} does not exist: pass a clip file ({SUPPORTED_FORMATS})" in one_line_error(capsys)
    np.save(tmp_path / "flat.npy", np.zeros((4, 64), np.uint8))
    assert main(["predict", str(folder), "--input", str(tmp_path / "flat.npy")]) == 1
    assert "expected an array (T, H, W) or (T, H, W, C) with C in (1, 3), got shape (4, 64)" in one_line_error(capsys)


def test_unwritable_output_is_a_sentence(folder, tmp_path, capsys):
    (tmp_path / "file").write_text("")
    assert main(["predict", str(folder), "--n-future", "2", "--num-samples", "1",
                 "--out", str(tmp_path / "file" / "pred.gif")]) == 1
    err = one_line_error(capsys)
    assert "cannot use" in err and "check the path and its permissions" in err


def test_colour_clip_for_a_grey_model_is_refused_unless_grayscale(folder, tmp_path, capsys):
    rgb = np.random.default_rng(1).integers(0, 256, (6, 64, 64, 3), dtype=np.uint8)
    write_gif(tmp_path / "rgb.gif", rgb)
    args = ["predict", str(folder), "--input", str(tmp_path / "rgb.gif"), "--n-future", "2", "--num-samples", "1"]
    assert main(args + ["--out", str(tmp_path / "a.gif")]) == 1
    assert (f"{tmp_path / 'rgb.gif'} is colour (3 channels) but {folder} expects grey (1 channel) frames: pass "
            "--grayscale to convert it (ITU-R 601 luma)") in one_line_error(capsys)
    assert not (tmp_path / "a.gif").exists()
    assert main(args + ["--rgb", "--out", str(tmp_path / "a.gif")]) == 1
    assert "--rgb converts the clip to 3 channels, but" in one_line_error(capsys)
    assert main(args + ["--grayscale", "--out", str(tmp_path / "b.gif")]) == 0
    assert "3 context frames of" in capsys.readouterr().out
    assert read_video(tmp_path / "b.gif").shape[0] == 3 + 2  # 3 context + 2 predicted frames


def test_grey_clip_for_a_colour_model_is_refused_unless_rgb(tmp_path, capsys):
    from vpzoo.models import CopyLast

    model = CopyLast(image_size=32, channels=3, n_past=2).save_pretrained(tmp_path / "copy3")
    np.save(tmp_path / "grey.npy", np.zeros((5, 32, 32), np.uint8))
    for name in ("grey.npy",):
        args = ["predict", str(model), "--input", str(tmp_path / name), "--n-future", "2", "--num-samples", "1"]
        assert main(args + ["--out", str(tmp_path / "c.gif")]) == 1
        assert f"{tmp_path / name} is grey (1 channel) but {model} expects colour (3 channels) frames: pass --rgb" in one_line_error(capsys)
        assert main(args + ["--rgb", "--out", str(tmp_path / "c.gif")]) == 0
        capsys.readouterr()
        assert main(args + ["--grayscale", "--out", str(tmp_path / "c.gif")]) == 1
        assert "--grayscale converts the clip to 1 channel, but" in one_line_error(capsys)


def test_console_script_errors_exit_nonzero_without_traceback(tmp_path):
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1"}
    (tmp_path / "x.mp4").write_bytes(b"\0" * 100)
    proc = subprocess.run([sys.executable, "-m", "vpzoo.cli", "predict", "svg_lp_smmnist", "--input", "x.mp4"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.startswith("vpzoo: error: x.mp4 could not be read as a clip") and "Traceback" not in proc.stderr


def test_missing_files_of_other_commands_are_sentences(folder, tmp_path, capsys):
    args = ["add-checkpoint", str(folder), "--name", "x", "--dataset", "smmnist", "--metrics",
            str(tmp_path / "nofile.json"), "--training-config", "c.yaml", "--steps", "1", "--hardware", "cpu",
            "--time", "1 s"]
    assert main(args) == 1
    assert f"cannot use {tmp_path / 'nofile.json'}: no such file or directory; check the path" in one_line_error(capsys)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a usable GPU")
def test_cuda_device_without_a_gpu_is_a_sentence(folder, capsys):
    with pytest.raises(SystemExit) as info:
        main(["predict", str(folder), "--device", "cuda"])
    assert info.value.code == 2
    assert "--device cuda: no CUDA GPU is usable here" in capsys.readouterr().err


def test_fit_with_a_missing_config_file_says_so_before_lightning(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["fit", "--config", "configs/svg_lp/smnist.yaml", "--trainer.max_steps", "3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vpzoo: error: the config file configs/svg_lp/smnist.yaml does not exist. vpzoo fit needs")
    assert "configs/svg_lp/smmnist.yaml" in err and "usage:" not in err
