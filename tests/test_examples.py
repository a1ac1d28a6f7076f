"""The runnable examples in examples/, each run as a user would (a subprocess) on tiny settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vpzoo.io import read_video, write_gif
from vpzoo.models import SVGLP
from vpzoo.zoo.format import check_metrics

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TINY = dict(n_past=3, n_future=3, codec_width=8, g_dim=16, z_dim=4, rnn_size=32)


def run_example(name: str, args: list[str], cwd: Path, timeout: int = 300) -> str:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(EXAMPLES / name), *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return SVGLP(**TINY).save_pretrained(tmp_path_factory.mktemp("examples") / "tiny")


def test_load_and_predict_on_a_users_clip(tiny_checkpoint, tmp_path):
    clip = torch.rand(7, 1, 64, 64, generator=torch.Generator().manual_seed(0))
    write_gif(tmp_path / "my_clip.gif", clip)
    out = run_example("load_and_predict.py", [tiny_checkpoint, "--input", "my_clip.gif", "--n-future", 4,
                                              "--num-samples", 2, "--out", "pred.gif"], tmp_path)
    assert "predicted samples: (1, 2, 4, 1, 64, 64)" in out
    # truth + 2 samples side by side (64-px frames at 2x, 2-px borders), panel names above, a caption below
    assert read_video(tmp_path / "pred.gif").shape[2] >= 3 * 132
    width, height = Image.open(tmp_path / "pred.png").size  # 3 context + 4 predicted frames, row labels at the left
    assert width > 7 * 68 and 3 * 68 < height < 3 * 68 + 120


def test_evaluate_svg_protocol_prints_the_table_with_copy_last(tiny_checkpoint, tmp_path):
    out = run_example("evaluate_svg_protocol.py", [tiny_checkpoint, "--num-test", 4, "--num-samples", 2,
                                                   "--n-future", 3, "--batch-size", 2, "--json", "m.json"], tmp_path)
    assert "5 context -> 3 predicted frames; best of N samples" in out and "metric protocol 'svg'" in out
    assert "measured now" in out and "copy_last" in out
    report = json.loads((tmp_path / "m.json").read_text())
    records = check_metrics(report["metrics"], "m.json")  # the format checkpoints.yaml takes
    assert {(r["metric"], r["num_samples"], r["num_sequences"], r["protocol"], r["benchmark"]) for r in records} == {
        ("psnr", 2, 4, "svg", "smmnist_svg_5to3"), ("ssim", 2, 4, "svg", "smmnist_svg_5to3")}
    assert all(np.isfinite(r["value"]) and np.isfinite(r["copy_last"]) for r in records)
    assert len(report["per_frame"]["model"]["ssim"]) == 3


def test_train_on_a_custom_folder_export_and_predict(tmp_path):
    out = run_example("train_custom_folder.py", ["--out", tmp_path / "run", "--tiny", "--max-steps", 2,
                                                 "--batch-size", 2, "--n-past", 3, "--n-future", 3], tmp_path)
    run = tmp_path / "run"
    assert len(list((run / "videos").glob("*.mp4"))) == 6
    assert "$ vpzoo fit --config" in out and (run / "checkpoints" / "last.ckpt").is_file()
    assert sorted(p.name for p in (run / "model").iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert json.loads((run / "model" / "config.json").read_text())["training"]["global_step"] == 2
    assert (run / "pred.gif").is_file() and (run / "pred.png").is_file()


def test_drnet_content_swap_scores_and_draws_the_swaps(tmp_path):
    from vpzoo.models import DRNet

    torch.manual_seed(0)
    drnet = DRNet(codec_width=8, content_dim=8, pose_dim=4, rnn_size=16, sd_hidden=8)
    folder = drnet.save_pretrained(tmp_path / "drnet")
    out = run_example("drnet_content_swap.py", [folder, "--pairs", 6, "--show", 4, "--probe", "--out", "s.png",
                                                "--json", "r.json"], tmp_path)
    assert "6 pairs (seed 0)" in out and "disentangled" in out and "probe_accuracy" in out
    assert Image.open(tmp_path / "s.png").size == (4 * 66 + 2, 5 * 66 + 2)  # 4 pairs x 5 rows, 2-px borders
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["pairs"] == 6 and isinstance(report["disentangled"], bool)
    for key in ("mse_to_swap", "mse_to_pose_frame", "mse_to_content_frame", "content_effect", "pose_effect"):
        assert np.isfinite(report[key]) and report[key] >= 0, key
    assert 0.0 <= report["probe_accuracy"] <= 1.0


def test_ddpae_decomposition_scores_and_draws_the_components(tmp_path):
    from vpzoo.models import DDPAE

    torch.manual_seed(0)  # untrained, narrow, 64-px: the example's numbers are computed, not good
    ddpae = DDPAE(image_size=64, n_past=3, n_future=2, n_components=2, image_latent_size=32, content_latent_size=16,
                  hidden_size=16, ngf=4, stn_scale_prior=2.0)
    folder = ddpae.save_pretrained(tmp_path / "ddpae")
    out = run_example("ddpae_decomposition.py", [folder, "--clips", 5, "--batch-size", 2, "--show", 2, "--out",
                                                 "d.png", "--json", "r.json"], tmp_path)
    assert "5 clips of 2 test digits (seed 0), 3 context -> 2 predicted frames" in out and "copy_last" in out
    # 2 clips x (truth, DDPAE, 2 components) rows, 5 frames, 64-px frames with 2-px borders
    assert Image.open(tmp_path / "d.png").size == (5 * 66 + 2, 2 * 4 * 66 + 2)
    report = json.loads((tmp_path / "r.json").read_text())
    assert 0.5 - 1e-9 <= report["separation_mean"] <= 1.0 and report["clips"] == 5
    assert report["mse"] >= 0 and report["copy_last_mse"] > 0 and 0 <= report["clips_matched"] <= 5
    # the untrained components match no digit one-to-one: no NaNs in the report, the pose scores need matched clips
    assert report["clips_matched"] == 0
    assert all(report[key] is None for key in POSE_KEYS) and "no pose scores" in out


POSE_KEYS = ("velocity_cosine_similarity", "velocity_relative_error", "context_centre_distance",
             "predicted_centre_distance")


def test_ddpae_decomposition_of_the_shipped_checkpoint_separates_the_digits_and_follows_them(tmp_path):
    """The example's default, ddpae_mmnist (packaged weights), on 6 clips: each component draws one digit, the
    prediction beats copy_last, and the poses follow the digits (6 clips: separation 0.879, MSE 114.0 vs 326.4,
    velocity cosine 0.931, centre distance 0.038 / 0.053 of the frame)."""
    out = run_example("ddpae_decomposition.py", ["--clips", 6, "--batch-size", 6, "--show", 1, "--out", "d.png",
                                                 "--json", "r.json"], tmp_path)
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["checkpoint"] == "ddpae_mmnist" and "(6 clips matched one-to-one)" in out
    assert report["clips_matched"] == 6 and report["separation_mean"] > 0.8
    assert report["mse"] < 0.5 * report["copy_last_mse"]
    assert report["velocity_cosine_similarity"] > 0.85 and 0 <= report["velocity_relative_error"] < 0.25
    assert report["context_centre_distance"] < 0.08 and report["predicted_centre_distance"] < 0.1
    assert Image.open(tmp_path / "d.png").size == (20 * 66 + 2, 4 * 66 + 2)  # 1 clip x 4 rows, 20 frames


def test_ddpae_decomposition_refuses_other_models_and_bad_counts(tiny_checkpoint, monkeypatch, capsys):
    import runpy  # in this process: the refusals come before any work, a subprocess would only add its imports

    script = str(EXAMPLES / "ddpae_decomposition.py")
    monkeypatch.setattr(sys, "argv", [script, str(tiny_checkpoint)])
    with pytest.raises(SystemExit, match="is a SVGLP, expected a DDPAE"):
        runpy.run_path(script, run_name="__main__")
    monkeypatch.setattr(sys, "argv", [script, str(tiny_checkpoint), "--clips", "0"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(script, run_name="__main__")
    assert exit_info.value.code == 2 and "--clips must be at least 1, got 0" in capsys.readouterr().err


def test_drnet_content_swap_refuses_other_models(tiny_checkpoint, monkeypatch):
    import runpy  # in this process, as the DDPAE example's refusals

    script = str(EXAMPLES / "drnet_content_swap.py")
    monkeypatch.setattr(sys, "argv", [script, str(tiny_checkpoint)])
    with pytest.raises(SystemExit, match="is a SVGLP, expected a DRNet"):
        runpy.run_path(script, run_name="__main__")
