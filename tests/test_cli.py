"""`vpzoo` as users run it: subprocesses of the console script, single process and DDP on CPU (gloo)."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ASSETS = Path(__file__).parent / "assets"
VPZOO = shutil.which("vpzoo") or str(Path(sys.executable).parent / "vpzoo")


def run_vpzoo(args: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([VPZOO, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"vpzoo {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc


def read_metrics(root: Path) -> list[dict[str, str]]:
    files = sorted(root.rglob("metrics.csv"))
    assert files, f"no metrics.csv under {root}"
    with open(files[-1]) as f:
        return list(csv.DictReader(f))


def last_value(rows: list[dict[str, str]], key: str) -> float:
    values = [float(r[key]) for r in rows if r.get(key)]
    assert values, f"{key} was never logged; columns: {list(rows[0])}"
    return values[-1]


def test_list_shows_registered_models(tmp_path):
    out = run_vpzoo(["list"], tmp_path).stdout.split()
    assert {"copy_last", "svg_lp", "svg_fp"} <= set(out)
    assert run_vpzoo(["list", "svg*"], tmp_path).stdout.split() == ["svg_fp", "svg_lp"]


def test_fit_runs_and_reports_validation_metrics(tmp_path):
    proc = run_vpzoo(["fit", "--config", str(ASSETS / "tiny_svg_lp.yaml"), "--trainer.max_steps", "4"], tmp_path)
    rows = read_metrics(tmp_path / "logs")
    assert 0 < last_value(rows, "val/ssim") <= 1
    assert last_value(rows, "val/psnr") > 0
    assert "train/loss" in rows[0]
    assert "[val] step 4: PSNR" in proc.stdout
    assert "args parameter is intended" not in proc.stderr  # LightningCLI's args-and-sys.argv warning is noise here
    ckpts = list((tmp_path / "logs").rglob("*.ckpt"))
    assert ckpts, "a checkpoint must be written"
    # the Lightning checkpoint rebuilds the model from its saved hyperparameters alone
    import torch
    import yaml

    from vpzoo.models import SVGLP

    model = SVGLP.load_from_checkpoint(ckpts[0], map_location="cpu")
    config_args = yaml.safe_load((ASSETS / "tiny_svg_lp.yaml").read_text())["model"]["init_args"]
    assert {k: model.hparams[k] for k in config_args} == config_args
    state = torch.load(ckpts[0], map_location="cpu", weights_only=False)["state_dict"]
    torch.testing.assert_close(model.state_dict()["decoder.out.0.weight"], state["decoder.out.0.weight"])
    assert model.predict(torch.rand(3, 1, 64, 64), 2, num_samples=2, seed=0).shape == (1, 2, 2, 1, 64, 64)


def test_fit_command_line_overrides_reach_the_model(tmp_path):
    run_vpzoo(["fit", "--config", str(ASSETS / "tiny_svg_lp.yaml"), "--trainer.max_steps", "2",
               "--trainer.val_check_interval", "2", "--model.init_args.z_dim", "6"], tmp_path)
    config = next((tmp_path / "logs").rglob("config.yaml")).read_text()
    assert "z_dim: 6" in config


def test_fit_ddp_two_processes_on_cpu(tmp_path):
    proc = run_vpzoo(["fit", "--config", str(ASSETS / "tiny_svg_lp.yaml"), "--trainer.strategy", "ddp",
                      "--trainer.accelerator", "cpu", "--trainer.devices", "2"], tmp_path)
    assert "world_size=2" in proc.stdout + proc.stderr or "distributed_backend=gloo" in proc.stdout + proc.stderr
    rows = read_metrics(tmp_path / "logs")
    assert 0 < last_value(rows, "val/ssim") <= 1


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_fit_under_torchrun(tmp_path):
    """The multi-node launcher path: torchrun starts the processes, Lightning picks up its environment."""
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([torchrun, "--nnodes", "1", "--nproc_per_node", "2", "--master_port", str(_free_port()),
                           "-m", "vpzoo.cli", "fit", "--config", str(ASSETS / "tiny_svg_lp.yaml"), "--trainer.strategy",
                           "ddp", "--trainer.accelerator", "cpu", "--trainer.devices", "2"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-5000:]
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in proc.stdout + proc.stderr
    assert 0 < last_value(read_metrics(tmp_path / "logs"), "val/ssim") <= 1


def test_fit_under_a_slurm_allocation(tmp_path):
    """What `srun` gives each task (SLURM_* variables): two tasks started as srun would start them form one run."""
    port = _free_port()
    procs = []
    for rank in (0, 1):
        env = {**os.environ, "OMP_NUM_THREADS": "1", "SLURM_NTASKS": "2", "SLURM_NTASKS_PER_NODE": "2",
               "SLURM_PROCID": str(rank), "SLURM_LOCALID": str(rank), "SLURM_NODEID": "0", "SLURM_JOB_ID": "1",
               "SLURM_JOB_NAME": "vpzoo", "SLURM_NODELIST": "localhost", "MASTER_ADDR": "127.0.0.1",
               "MASTER_PORT": str(port)}
        procs.append(subprocess.Popen([VPZOO, "fit", "--config", str(ASSETS / "tiny_svg_lp.yaml"), "--trainer.strategy",
                                       "ddp", "--trainer.accelerator", "cpu", "--trainer.devices", "2"], cwd=tmp_path,
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in outputs[1] and "SLURM" in outputs[0]
    assert 0 < last_value(read_metrics(tmp_path / "logs"), "val/ssim") <= 1


def test_drnet_fit_ddp_two_processes_on_cpu(tmp_path):
    """DRNet's manual optimisation (three optimisers, each backward reaching part of the model) under plain
    `--trainer.strategy ddp`: both stages run, validation is logged, and the checkpoint loads."""
    proc = run_vpzoo(["fit", "--config", str(ASSETS / "tiny_drnet.yaml"), "--trainer.strategy", "ddp",
                      "--trainer.accelerator", "cpu", "--trainer.devices", "2"], tmp_path)
    assert "find_unused_parameters=True" in proc.stdout + proc.stderr
    rows = read_metrics(tmp_path / "logs")
    assert [float(r["train/stage"]) for r in rows if r.get("train/stage")] == [0.0, 0.0, 1.0, 1.0]
    assert 0 < last_value(rows, "val/ssim") <= 1 and last_value(rows, "train/lstm_loss") > 0
    from vpzoo.models.drnet import DRNet

    model = DRNet.load_from_checkpoint(next((tmp_path / "logs").rglob("*.ckpt")), map_location="cpu")
    assert model.predict(torch.rand(3, 3, 64, 64), 2).shape == (1, 1, 2, 3, 64, 64)


def test_fit_starts_from_zoo_weights_with_init_from(tmp_path):
    """`vpzoo fit --init_from` sets the configured model's weights from zoo weights before training (fine-tuning, or
    continuing a run kept as queue.resume): one step of Adam moves each weight by about the learning rate, so the
    trained checkpoint sits next to the given weights and far from the config's own random init."""
    import yaml

    from vpzoo.models import SVGLP

    init_args = yaml.safe_load((ASSETS / "tiny_svg_lp.yaml").read_text())["model"]["init_args"]
    torch.manual_seed(123)
    start = SVGLP(**init_args)
    with torch.no_grad():
        for p in start.parameters():
            p.add_(0.5)  # far from any fresh initialisation
    folder = start.save_pretrained(tmp_path / "start")
    config = str(ASSETS / "tiny_svg_lp.yaml")
    proc = run_vpzoo(["fit", "--config", config, "--trainer.max_steps", "1", "--trainer.val_check_interval", "1",
                      "--init_from", str(folder)], tmp_path)
    assert f"model weights set from {folder}" in proc.stderr
    ckpt = max((tmp_path / "logs").rglob("*.ckpt"), key=lambda p: p.stat().st_mtime)
    trained = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    given = {k: v.detach() for k, v in start.named_parameters()}  # buffers (BatchNorm statistics) move freely
    floats = [k for k in given if k in trained]
    assert floats and max((trained[k] - given[k]).abs().max().item() for k in floats) < 0.01
    assert any(not torch.equal(trained[k], given[k]) for k in floats), "one step of training must change weights"
    assert "init_from" in next((tmp_path / "logs").rglob("config.yaml")).read_text()  # recorded with the run

    # weights of other sizes, another model, or with --ckpt_path: one clear error each
    def fails(*extra: str) -> str:
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        proc = subprocess.run([VPZOO, "fit", "--config", config, "--trainer.max_steps", "1", *extra], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 1, proc.stderr[-2000:]
        return proc.stderr

    err = fails("--init_from", str(folder), "--model.init_args.rnn_size", "16")
    assert "its weights do not fit the configured SVGLP" in err and "Traceback" not in err
    from vpzoo.models import SVGFP

    other = SVGFP(**init_args).save_pretrained(tmp_path / "fp")
    assert "holds a SVGFP; the config builds a SVGLP" in fails("--init_from", str(other))
    assert "not both" in fails("--init_from", str(folder), "--ckpt_path", str(ckpt))


def test_sigterm_saves_the_current_step_and_training_resumes(tmp_path):
    """The committed configs checkpoint on SIGTERM / Ctrl-C (save_on_exception): a preempted run keeps the step it
    reached, and `--ckpt_path` resumes from there (here at a new learning rate, which must take effect). Run with the
    real SVG-LP SM-MNIST config at tiny sizes."""
    import re
    import signal
    import time

    config = str(ASSETS.parent.parent / "configs" / "svg_lp" / "smmnist.yaml")
    tiny = ["--model.init_args.codec_width", "8", "--model.init_args.g_dim", "16", "--model.init_args.z_dim", "4",
            "--model.init_args.rnn_size", "32", "--data.init_args.batch_size", "2", "--data.init_args.seq_len", "6",
            "--trainer.logger", "false", "--trainer.default_root_dir", "out"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([VPZOO, "fit", "--config", config, *tiny], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    seen, deadline = b"", time.time() + 240
    while time.time() < deadline and not re.search(rb"\b([3-9]|\d{2,})/180000", seen):
        chunk = proc.stdout.read1(4096)
        if not chunk:
            break
        seen += chunk
    proc.send_signal(signal.SIGTERM)
    out = seen + proc.communicate(timeout=120)[0]
    assert b"saved checkpoint" in out, out[-3000:]
    ckpts = list((tmp_path / "out").rglob("*.ckpt"))
    step = torch.load(ckpts[0], map_location="cpu", weights_only=False)["global_step"]
    assert step >= 3 and all(c.stat().st_size > 0 for c in ckpts)
    # Resume at a lower learning rate: the configured rate replaces the saved one, Adam's moments carry on.
    run_vpzoo(["fit", "--config", config, *tiny, "--trainer.max_steps", str(step + 2), "--ckpt_path",
               str(ckpts[0]), "--model.init_args.lr", "0.0005"], tmp_path)
    last = max((tmp_path / "out").rglob("*.ckpt"), key=lambda p: p.stat().st_mtime)
    resumed = torch.load(last, map_location="cpu", weights_only=False)
    assert resumed["global_step"] == step + 2
    optimizer = resumed["optimizer_states"][0]
    assert [g["lr"] for g in optimizer["param_groups"]] == [0.0005]
    assert int(next(iter(optimizer["state"].values()))["step"]) == step + 2


def test_sv2p_fit_ddp_two_processes_on_cpu(tmp_path):
    """SV2P's phase 1 (random latent) leaves the inference network without gradients; plain DDP must still work
    through the three phases."""
    proc = run_vpzoo(["fit", "--config", str(ASSETS / "tiny_sv2p.yaml"), "--trainer.strategy", "ddp",
                      "--trainer.accelerator", "cpu", "--trainer.devices", "2"], tmp_path)
    assert "find_unused_parameters=True" in proc.stdout + proc.stderr
    rows = read_metrics(tmp_path / "logs")
    assert [float(r["train/phase"]) for r in rows if r.get("train/phase")][:3] == [1.0, 2.0, 3.0]
    assert 0 < last_value(rows, "val/ssim") <= 1


def test_validation_metrics_are_synchronised_across_processes(tmp_path):
    """copy_last is deterministic: 2 DDP processes, each seeing half the clips, must log the single-process value."""
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    single.mkdir(), ddp.mkdir()
    config = str(ASSETS / "copy_last_smmnist.yaml")
    run_vpzoo(["validate", "--config", config], single)
    run_vpzoo(["validate", "--config", config, "--trainer.strategy", "ddp", "--trainer.devices", "2"], ddp)
    for key in ("val/psnr", "val/ssim", "val/ssim_t06", "val/psnr_t10"):
        a, b = last_value(read_metrics(single), key), last_value(read_metrics(ddp), key)
        assert a == pytest.approx(b, abs=1e-5), key


def test_data_command_reaches_prepare(tmp_path):
    out = run_vpzoo(["data", "list"], tmp_path).stdout
    for name in ("kth", "bair", "moving_mnist", "bouncing_balls", "human36m"):
        assert name in out
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([VPZOO, "data", "prepare", "human36m", "--root", str(tmp_path / "h36m")], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "human36m" in proc.stderr.lower()


def test_ddpae_fit_ddp_two_processes_on_cpu(tmp_path):
    """DDPAE through `vpzoo fit --trainer.strategy ddp`: the negative ELBO trains, validation is logged, the LR drops
    x0.1 at half of max_steps, and a checkpoint is written."""
    import math

    proc = run_vpzoo(["fit", "--config", str(ASSETS / "tiny_ddpae.yaml"), "--trainer.strategy", "ddp",
                      "--trainer.devices", "2"], tmp_path)
    rows = read_metrics(tmp_path / "logs")
    assert math.isfinite(last_value(rows, "train/loss")) and 0 < last_value(rows, "val/ssim") <= 1, proc.stdout[-2000:]
    assert last_value(rows, "lr-Adam") == pytest.approx(1e-4)  # dropped at step 2 of 4
    assert next((tmp_path / "logs").rglob("*.ckpt")).is_file()
