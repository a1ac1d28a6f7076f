"""`vpzoo predict NAME_OR_PATH`, `vpzoo list`, `vpzoo add-checkpoint`: in process through vpzoo.cli.main, and the
console script once as a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vpzoo.cli import main
from vpzoo.io import read_video, write_gif, write_video
from vpzoo.models import SVGLP

TINY = dict(n_past=3, n_future=3, codec_width=8, g_dim=16, z_dim=4, rnn_size=32)
ROOT = Path(__file__).resolve().parents[1]
VPZOO = shutil.which("vpzoo") or str(Path(sys.executable).parent / "vpzoo")
METRICS = {"metrics": [{"metric": "ssim", "protocol": "svg", "num_samples": 2, "value": 0.5, "copy_last": 0.4}]}


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return SVGLP(**TINY).save_pretrained(tmp_path_factory.mktemp("cli") / "tiny")


@pytest.fixture(scope="module")
def clip() -> torch.Tensor:
    return torch.rand(8, 1, 64, 64, generator=torch.Generator().manual_seed(2))


def test_predict_a_gif_clip_writes_gif_and_grid(folder, clip, tmp_path, capsys):
    write_gif(tmp_path / "clip.gif", clip)
    assert main(["predict", str(folder), "--input", str(tmp_path / "clip.gif"), "--n-future", "4",
                 "--num-samples", "2", "--out", str(tmp_path / "pred.gif"), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "3 context frames of" in out and "2 sample(s) of 4 frames (seed 0)" in out
    assert "vs ground truth (4 frames, best of 2" in out  # 8 frames = 3 context + 5 ground truth (4 used)
    gif = read_video(tmp_path / "pred.gif")
    # 3 context + 4 predicted frames; truth + 2 samples side by side, 64-px frames shown at 2x with 2-px borders,
    # a line of panel names above them
    top = 17  # the panel-name line (vpzoo.zoo.visualize's 13-px font)
    assert gif.shape[:2] == (7, top + 132 + 17 * 5 + 4) and gif.shape[2] >= 3 * 132
    # panel 0 shows the real clip: context frames, then ground truth (blue border), samples in red
    np.testing.assert_allclose(gif[5, top + 2:top + 130:2, 2:130:2, 0] / 255, clip[5, 0].numpy(), atol=2 / 255)
    assert tuple(gif[5, top, 0]) == (40, 90, 220) and tuple(gif[5, top, 132]) == (210, 40, 40)
    grid = Image.open(tmp_path / "pred.png")
    assert grid.size[0] > 7 * 68 and grid.size[1] > 3 * 68  # labels beside and above the frames, a caption below
    # the same seed gives the same GIF
    assert main(["predict", str(folder), "--input", str(tmp_path / "clip.gif"), "--n-future", "4",
                 "--num-samples", "2", "--out", str(tmp_path / "again.gif"), "--device", "cpu"]) == 0
    assert np.array_equal(read_video(tmp_path / "again.gif"), gif)


def test_predict_mp4_and_npy_without_ground_truth(folder, clip, tmp_path, capsys):
    write_video(tmp_path / "clip.mp4", clip[:3])
    np.save(tmp_path / "clip.npy", (clip[:3, 0].numpy() * 255).round().astype(np.uint8))
    for name in ("clip.mp4", "clip.npy"):
        assert main(["predict", str(folder), "--input", str(tmp_path / name), "--n-future", "2",
                     "--num-samples", "1", "--out", str(tmp_path / f"{name}.gif"), "--grid",
                     str(tmp_path / f"{name}-grid.png")]) == 0
        assert "vs ground truth" not in capsys.readouterr().out
        # Pillow merges identical consecutive GIF frames (an untrained model's flat predictions), so check the grid
        assert read_video(tmp_path / f"{name}.gif").shape[2] >= 2 * 132
        width, height = Image.open(tmp_path / f"{name}-grid.png").size  # 3 context + 2 predicted, 2 rows + labels
        assert 5 * 68 < width and 2 * 68 < height < 3 * 68 + 100


def test_predict_without_input_uses_the_smmnist_test_set(folder, tmp_path, capsys):
    assert main(["predict", str(folder), "--n-future", "3", "--num-samples", "2", "--clip-index", "1",
                 "--out", str(tmp_path / "mnist.gif")]) == 0
    out = capsys.readouterr().out
    assert "smmnist_svg test clip 1" in out and "vs ground truth (3 frames" in out
    assert read_video(tmp_path / "mnist.gif").shape[0] == 6


def test_predict_without_input_uses_the_checkpoints_benchmark_clips(tmp_path, capsys, monkeypatch):
    """A registered colour checkpoint (dataset mmnist_drnet) shows a clip of that benchmark's fixed test set."""
    from vpzoo.models.drnet import DRNet
    from vpzoo.zoo import add_checkpoint, make_checkpoint_entry

    torch.manual_seed(0)
    drnet = DRNet(channels=3, n_past=3, n_future=3, codec_width=8, content_dim=16, pose_dim=4, sd_hidden=16,
                  rnn_size=32).save_pretrained(tmp_path / "drnet")
    registry = tmp_path / "checkpoints.yaml"
    monkeypatch.setenv("VPZOO_CHECKPOINTS", str(registry))
    add_checkpoint(make_checkpoint_entry(drnet, name="tiny_drnet", dataset="mmnist_drnet",
                                         metrics=[{"metric": "ssim", "protocol": "standard", "num_samples": 1,
                                                   "value": 0.5}],
                                         training={"config": "t", "steps": 0, "hardware": "cpu", "time": "0 s"},
                                         copy_to="w/tiny_drnet.safetensors", path=registry), registry)
    assert main(["predict", "tiny_drnet", "--n-future", "2", "--num-samples", "1", "--out",
                 str(tmp_path / "c.gif")]) == 0
    out = capsys.readouterr().out
    assert "mmnist_drnet test clip 0" in out and "vs ground truth (2 frames" in out
    with pytest.raises(SystemExit):  # a bare folder says nothing of its dataset, and 3x64x64 is not SM-MNIST's
        main(["predict", str(drnet), "--out", str(tmp_path / "d.gif")])
    assert "without --input the clip comes from a benchmark test set" in capsys.readouterr().err


def test_predict_errors_are_one_clear_line(folder, tmp_path, capsys):
    write_gif(tmp_path / "small.gif", torch.rand(5, 1, 32, 32))
    assert main(["predict", str(folder), "--input", str(tmp_path / "small.gif")]) == 1
    assert "expects 64x64 frames, got 32x32" in capsys.readouterr().err
    assert main(["predict", "svg_lp_smnist"]) == 1
    assert "unknown checkpoint 'svg_lp_smnist'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["predict", str(folder), "--out", str(tmp_path / "x.png")])
    assert "--out must end with .gif" in capsys.readouterr().err


def test_list_checkpoints_shows_training_and_metric_frames_apart(capsys, monkeypatch):
    """The packaged svg_lp_smmnist trains on 5->10 frames and is measured on 5->20: the listing says both."""
    monkeypatch.delenv("VPZOO_CHECKPOINTS", raising=False)
    assert main(["list", "--checkpoints", "svg_lp_smmnist"]) == 0
    header, row = capsys.readouterr().out.splitlines()[:2]
    assert header.split()[:4] == ["name", "model", "dataset", "trained"]
    assert row.split()[:4] == ["svg_lp_smmnist", "svg_lp", "smmnist", "5->10"]
    assert "psnr 13.7 (svg, best of 100, 5->20 frames)" in row and "ssim 0.623 (svg, best of 100, 5->20 frames)" in row


def test_predict_help_is_the_zoos_and_flags_first_is_still_lightnings(capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["vpzoo"])
    with pytest.raises(SystemExit) as info:
        main(["predict", "--help"])
    assert info.value.code == 0
    help_text = capsys.readouterr().out
    assert "NAME_OR_PATH" in help_text and "--n-future" in help_text and "--trainer" not in help_text
    assert "vpzoo predict --config CONFIG --help" in " ".join(help_text.split())
    with pytest.raises(SystemExit) as info:
        main(["predict", "--config", str(ROOT / "configs/svg_lp/smmnist.yaml"), "--help"])
    assert info.value.code == 0
    help_text = capsys.readouterr().out
    assert "--trainer.max_steps" in help_text and "--n-future" not in help_text


def test_list_and_add_checkpoint(folder, tmp_path, monkeypatch, capsys):
    registry = tmp_path / "checkpoints.yaml"
    registry.write_text("# my registry\nformat_version: 1\ncheckpoints: []\n")
    monkeypatch.setenv("VPZOO_CHECKPOINTS", str(registry))
    assert main(["list", "--checkpoints"]) == 0
    assert "no pretrained checkpoints are registered yet" in capsys.readouterr().err
    (tmp_path / "metrics.json").write_text(json.dumps(METRICS))
    args = ["add-checkpoint", str(folder), "--name", "tiny_lp", "--dataset", "smmnist", "--metrics",
            str(tmp_path / "metrics.json"), "--training-config", "tests/assets/tiny_svg_lp.yaml", "--steps", "0",
            "--hardware", "none", "--time", "0 s", "--copy-to", "weights/tiny_lp.safetensors"]
    assert main(args) == 0  # prints the entry, writes nothing
    printed = capsys.readouterr().out
    assert printed.startswith("- name: tiny_lp\n") and "sha256:" in printed
    assert "tiny_lp" not in registry.read_text()
    assert main(args + ["--write"]) == 0
    capsys.readouterr()
    assert registry.read_text().startswith("# my registry\n")
    assert main(args + ["--write"]) == 1 and "already has a checkpoint named 'tiny_lp'" in capsys.readouterr().err
    assert main(["list", "--checkpoints", "tiny*"]) == 0
    table = capsys.readouterr().out
    assert "tiny_lp" in table and "ssim 0.5 (svg, best of 2)" in table
    assert main(["list", "--all"]) == 0
    listing = capsys.readouterr().out
    assert "models:\n" in listing and "  svg_lp\n" in listing and "pretrained checkpoints:" in listing
    assert main(["predict", "tiny_lp", "--n-future", "2", "--num-samples", "1", "--out",
                 str(tmp_path / "named.gif")]) == 0


def test_console_script_predict(folder, clip, tmp_path):
    write_video(tmp_path / "clip.mp4", clip)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([VPZOO, "predict", str(folder), "--input", "clip.mp4", "--n-future", "3",
                           "--num-samples", "2", "--out", "out/pred.gif"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "out" / "pred.gif").is_file() and (tmp_path / "out" / "pred.png").is_file()
