"""The training queue of the real checkpoints.yaml: every entry names a config that parses and builds its model and
data module (what `vpzoo train-checkpoint` runs on a GPU machine), its schedule is the config's, its ship bar is a
registered benchmark, and every (model, dataset) pair the configs cover is queued."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from lightning import LightningDataModule

import vpzoo
from vpzoo.leaderboard import get_benchmark, list_benchmarks
from vpzoo.models import VideoPredictionModel
from vpzoo.zoo.catalog import (read_checkpoints, read_entries, read_planned, read_queue, repository_file,
                               ship_bar_conditions)
from vpzoo.zoo.format import file_sha256
from vpzoo.zoo.errors import PlannedCheckpointError
from vpzoo.zoo.training import build_from_recipe, resolve_recipe

ROOT = Path(__file__).resolve().parents[1]
QUEUE = read_queue()
DATA_CLASS = {"smmnist": "StochasticMovingMNISTDataModule", "mmnist_drnet": "StochasticMovingMNISTDataModule",
              "bair": "BAIRDataModule", "kth": "KTHDataModule", "mmnist": "MovingMNISTDataModule",
              "mmnist1": "MovingMNISTDataModule", "bouncing_balls": "BouncingBallsDataModule",
              "stochastic_shapes": "StochasticShapesDataModule"}


def _official(entry) -> bool:
    return entry.get("weights", {}).get("source") == "official"


def test_every_config_is_queued_and_the_mission_example_too():
    configs = {str(p.relative_to(ROOT)) for p in (ROOT / "configs").rglob("*.yaml")}
    assert configs == {e["queue"]["config"] for e in QUEUE.values()}
    assert "svg_lp_bair" in QUEUE
    assert set(read_checkpoints()) | set(read_planned()) == set(read_entries())
    shipped = {n for n, e in read_checkpoints().items() if not _official(e)}  # the authors' weights need no training
    assert shipped <= {n for n, e in QUEUE.items() if e.get("status") != "planned"} <= set(read_checkpoints())


@pytest.mark.parametrize("name", sorted(QUEUE))
def test_queue_entry_builds_its_model_and_data_module(name, tmp_path):
    entry = QUEUE[name]
    q = entry["queue"]
    recipe = yaml.safe_load(resolve_recipe(entry).read_text())
    cli = build_from_recipe(entry, work_dir=tmp_path, trainer_settings={"accelerator": "cpu", "devices": 1})
    assert isinstance(cli.model, VideoPredictionModel) and type(cli.model).model_name == entry["model"]
    assert sum(p.numel() for p in cli.model.parameters()) > 0
    assert isinstance(cli.datamodule, LightningDataModule)
    assert type(cli.datamodule).__name__ == DATA_CLASS[entry["dataset"]]
    # the queue's schedule is the recipe's: paper steps and batch
    assert q["paper_steps"] == recipe["trainer"]["max_steps"] == cli.trainer.max_steps
    assert q["paper_batch"] == recipe["data"]["init_args"]["batch_size"] == cli.datamodule.hparams["batch_size"]
    assert not any(type(c).__name__ == "ModelCheckpoint" for c in cli.trainer.callbacks), "no .ckpt files in jobs"
    bar = q["ship_bar"]
    assert bar["benchmark"] in list_benchmarks()
    bench = get_benchmark(bar["benchmark"])
    for metric, must_beat in ship_bar_conditions(bar):  # every condition is something the benchmark measures
        assert metric in bench.metrics
        assert set(must_beat) - {"shipped"} <= set(bench.baselines) | {b for b in must_beat
                                                                        if isinstance(b, (int, float))}
    if _official(entry):  # the authors trained the paper's schedule; their weights are downloaded, not packaged
        assert q["steps_trained"] == q["paper_steps"]
    elif entry.get("status") != "planned":
        assert 0 < q["steps_trained"] == entry["training"]["steps"] < q["paper_steps"]
        assert q.get("batch_trained", q["paper_batch"]) == entry["training"].get("batch", q["paper_batch"])
        assert "shipped" in bar["must_beat"]
        # the shipped weights are exactly the recipe's architecture (what --init-from continues from)
        shipped = vpzoo.load(name)
        assert all(v.shape == shipped.state_dict()[k].shape for k, v in cli.model.state_dict().items())
    else:
        with pytest.raises(PlannedCheckpointError, match=f"vpzoo train-checkpoint {name} "):
            vpzoo.load(name)
        if "resume" in q:  # an unfinished run kept in the repository: intact, and the recipe's exact architecture
            file = repository_file(q["resume"]["weights"])
            assert ROOT in file.resolve().parents and file_sha256(file) == q["resume"]["sha256"]
            kept = vpzoo.load(str(file))
            assert kept.zoo_info["config"]["training"]["steps_trained"] == q["steps_trained"] > 0
            assert {k: v.shape for k, v in kept.state_dict().items()} == {
                k: v.shape for k, v in cli.model.state_dict().items()}
        else:
            assert q["steps_trained"] == 0


def test_tracked_tree_fits_a_gpu_job_and_packaged_weights_fit_their_budget():
    """Every GPU job carries the tracked tree (at most 64 MiB with what it carries besides): the tree stays under
    60 MiB, of which packaged weights take at most PACKAGED_WEIGHTS_BUDGET (README: "Where the weights live")."""
    import subprocess

    from vpzoo.zoo.catalog import PACKAGED_WEIGHTS_BUDGET, weights_file

    listing = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True)
    if listing.returncode != 0:
        pytest.skip("not a git checkout: the tracked tree is undefined")
    files = [ROOT / f for f in listing.stdout.decode().split("\0") if f]
    tracked = sum(f.stat().st_size for f in files if f.is_file() and not f.is_symlink())
    assert tracked < 60 * 2**20, f"tracked tree {tracked / 2**20:.1f} MiB"
    packaged = [e for e in read_checkpoints().values() if e["weights"]["source"] == "file"]
    assert sum(e["weights"]["size"] for e in packaged) <= PACKAGED_WEIGHTS_BUDGET
    assert all(weights_file(e).stat().st_size <= e["weights"]["size"] for e in packaged)
