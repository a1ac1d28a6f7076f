"""`vpzoo fit` with a shipped config: one run folder per run (CSV, TensorBoard, config, checkpoints), best-k
checkpoints without optimiser state, last.ckpt with it, and none of Lightning's tips or known-harmless warnings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--data.init_args.batch_size", "2", "--data.init_args.seq_len", "6", "--data.init_args.eval_seq_len", "6",
        "--data.init_args.num_val", "4", "--data.init_args.num_test", "4", "--data.init_args.eval_batch_size", "2",
        "--model.init_args.n_past", "3", "--model.init_args.n_future", "3", "--model.init_args.codec_width", "8",
        "--model.init_args.g_dim", "16", "--model.init_args.z_dim", "4", "--model.init_args.rnn_size", "32",
        "--model.init_args.val_num_samples", "1", "--trainer.limit_val_batches", "2",
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def fit(cwd: Path, steps: int) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    args = [sys.executable, "-m", "vpzoo.cli", "fit", "--config", str(ROOT / "configs/svg_lp/smmnist.yaml"), *TINY,
            "--trainer.max_steps", str(steps), "--trainer.val_check_interval", str(steps)]
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc.stdout + proc.stderr


def test_one_run_folder_per_run_with_light_best_checkpoints(tmp_path):
    output = fit(tmp_path, 4)
    for noise in ("Tip:", "litlogger", "litmodels", "LeafSpec", "FutureWarning", "DeprecationWarning"):
        assert noise not in output, f"{noise!r} printed:\n{output[-3000:]}"
    assert "[val] step 4: PSNR" in output
    runs = tmp_path / "runs" / "svg_lp_smmnist"
    assert sorted(p.name for p in runs.iterdir()) == ["version_0"]
    run = runs / "version_0"
    names = sorted(p.name for p in run.iterdir())
    assert {"metrics.csv", "config.yaml", "hparams.yaml", "checkpoints"} <= set(names)
    assert any(n.startswith("events.out.tfevents.") for n in names), names
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best-4.ckpt", "last.ckpt"]

    best = torch.load(run / "checkpoints/best-4.ckpt", map_location="cpu", weights_only=True)
    last = torch.load(run / "checkpoints/last.ckpt", map_location="cpu", weights_only=True)
    assert "optimizer_states" not in best and best["state_dict"].keys() == last["state_dict"].keys()
    assert len(last["optimizer_states"]) == 1 and last["global_step"] == 4
    # Adam keeps two moments per weight: the resumable checkpoint is about 3x the weights-only one
    best_size, last_size = (run / "checkpoints/best-4.ckpt").stat().st_size, (run / "checkpoints/last.ckpt").stat().st_size
    assert 2.5 < last_size / best_size < 3.5, (best_size, last_size)

    # a best-k checkpoint still exports to the zoo format
    from vpzoo.cli import main

    assert main(["export", str(run / "checkpoints/best-4.ckpt"), str(tmp_path / "exported")]) == 0
    assert (tmp_path / "exported" / "model.safetensors").is_file()

    # the next run gets the next folder, again with everything in it
    fit(tmp_path, 2)
    assert sorted(p.name for p in runs.iterdir()) == ["version_0", "version_1"]
    second = sorted(p.name for p in (runs / "version_1").iterdir())
    assert "metrics.csv" in second and any(n.startswith("events.out.tfevents.") for n in second), second
