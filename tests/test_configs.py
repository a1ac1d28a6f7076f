"""The committed training configs (`configs/<model>/<dataset>.yaml`): each parses, and its model, data module and
callbacks build from it; the SM-MNIST SVG config runs as users run it and keeps its best-by-validation checkpoints."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import yaml
from lightning import LightningDataModule
from lightning.pytorch.cli import instantiate_class

from test_cli import run_vpzoo
from vpzoo.cli import main
from vpzoo.models import VideoPredictionModel

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").rglob("*.yaml"))


def test_configs_are_found():
    names = {str(p.relative_to(ROOT / "configs")) for p in CONFIGS}
    assert {"svg_lp/smmnist.yaml", "svg_fp/smmnist.yaml", "drnet/mmnist.yaml", "sv2p/smmnist.yaml"} <= names


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: str(p.relative_to(ROOT / "configs")))
def test_config_parses_and_builds(config, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["vpzoo"])
    with pytest.raises(SystemExit) as info:  # LightningCLI validates every key against the signatures, then prints
        main(["fit", "--config", str(config), "--print_config"])
    assert info.value.code == 0
    resolved = yaml.safe_load(capsys.readouterr().out)
    model = instantiate_class((), resolved["model"])
    assert sum(p.numel() for p in model.parameters()) > 0
    data = instantiate_class((), resolved["data"])
    assert isinstance(model, VideoPredictionModel) and isinstance(data, LightningDataModule)
    callbacks = [instantiate_class((), c) for c in resolved["trainer"]["callbacks"]]
    assert any(getattr(c, "save_last", False) for c in callbacks), "every config keeps last.ckpt for resuming"
    if config.parent.name.startswith("svg"):
        monitors = {(getattr(c, "monitor", None), getattr(c, "mode", None)) for c in callbacks}
        assert ("val/ssim", "max") in monitors, "SVG configs keep the best checkpoints by validation SSIM"


def test_svg_fp_smmnist_config_trains_and_keeps_best_validation_checkpoints(tmp_path):
    """The committed config itself (paper-size SVG-FP), shrunk only in steps and batch: last.ckpt for resuming and
    best-<step>.ckpt chosen by val/ssim are both written."""
    run_vpzoo(["fit", "--config", str(ROOT / "configs/svg_fp/smmnist.yaml"), "--trainer.max_steps", "4",
               "--trainer.val_check_interval", "2", "--trainer.limit_val_batches", "2",
               "--data.init_args.batch_size", "2", "--model.init_args.val_num_samples", "1"], tmp_path)
    checkpoints = {p.name: p for p in (tmp_path / "runs/svg_fp_smmnist").rglob("*.ckpt")}
    assert "last.ckpt" in checkpoints
    assert {"best-2.ckpt", "best-4.ckpt"} <= set(checkpoints), sorted(checkpoints)
    # best-k checkpoints hold the weights only; last.ckpt holds the optimiser and the callbacks' state for resuming
    assert "optimizer_states" not in torch.load(checkpoints["best-4.ckpt"], map_location="cpu", weights_only=True)
    state = torch.load(checkpoints["last.ckpt"], map_location="cpu", weights_only=True)
    assert state["optimizer_states"]
    best = [v for k, v in state["callbacks"].items() if "val/ssim" in k]
    assert len(best) == 1 and 0 < float(best[0]["best_model_score"]) <= 1
    assert {Path(p).name for p in best[0]["best_k_models"]} == {"best-2.ckpt", "best-4.ckpt"}
