"""The GPU path, proven on CPU: `vpzoo train-checkpoint` on a tiny queue entry (sharded export, train_result.json,
train.log), loading the sharded result (folder, package, Hub), `vpzoo benchmark` on it, and `vpzoo add-checkpoint
--replace` refusing worse weights and shipping better ones (the old weights leave the tree)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

import vpzoo
from test_zoo import FakeHub, fake_hub, folder_files  # noqa: F401 (fake_hub is a fixture)
from vpzoo.cli import main
from vpzoo.models import SVGLP
from vpzoo.zoo import CheckpointUnavailableError, CorruptCheckpointError, file_sha256
from vpzoo.zoo.catalog import add_checkpoint, make_checkpoint_entry, read_entries
from vpzoo.zoo.errors import PlannedCheckpointError
from vpzoo.zoo.format import load_weights
from vpzoo.zoo.sharded import INDEX_NAME, load_sharded, read_index
from vpzoo.zoo.training import train_checkpoint

TINY = dict(n_past=3, n_future=3, codec_width=8, g_dim=16, z_dim=4, rnn_size=32, val_num_samples=1)
SHARD_MIB = 0.4  # the tiny SVG-LP is ~0.8 MB in float32, ~0.4 MB in float16: at least two shards
RECIPE = {
    "seed_everything": 1,
    "trainer": {"max_steps": 100, "val_check_interval": 600, "check_val_every_n_epoch": None,
                "limit_val_batches": 1, "log_every_n_steps": 1},
    "model": {"class_path": "vpzoo.models.svg.SVGLP", "init_args": TINY},
    "data": {"class_path": "vpzoo.data.smmnist.StochasticMovingMNISTDataModule",
             "init_args": {"num_digits": 2, "image_size": 64, "seq_len": 6, "eval_seq_len": 6, "batch_size": 2,
                           "num_workers": 0, "num_val": 4}},
}


def queue(steps_trained: int, must_beat: list) -> dict:
    return {"config": "tiny_svg_lp.yaml", "paper_steps": 1000, "paper_batch": 2, "steps_trained": steps_trained,
            "ship_bar": {"benchmark": "smmnist_svg", "metric": "ssim", "must_beat": must_beat}, "priority": 1,
            "data": "generated on the fly", "overrides": {"trainer.limit_val_batches": 1}}


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def registry(tmp_path) -> Path:
    """A registry with a shipped tiny SVG-LP (packaged float32 weights, measured metrics) and a planned one."""
    (tmp_path / "tiny_svg_lp.yaml").write_text(yaml.safe_dump(RECIPE, sort_keys=False))
    file = tmp_path / "checkpoints.yaml"
    file.write_text("# test registry\nformat_version: 1\ncheckpoints: []\n")
    torch.manual_seed(0)
    folder = SVGLP(**TINY).save_pretrained(tmp_path / "export0")
    metrics = [{"metric": "ssim", "protocol": "svg", "reduction": "best", "num_samples": 2, "context_frames": 5,
                "predicted_frames": 20, "num_sequences": 4, "benchmark": "smmnist_svg", "test_set": "x",
                "value": 0.5, "copy_last": 0.4, "black": 0.7}]
    entry = make_checkpoint_entry(folder, name="tiny_shipped", dataset="smmnist", metrics=metrics,
                                  training={"config": "tiny_svg_lp.yaml", "steps": 10, "hardware": "cpu", "time": "0"},
                                  copy_to="weights/tiny_shipped.safetensors", path=file)
    entry["queue"] = queue(10, ["shipped", "copy_last"])
    add_checkpoint(entry, file)
    planned = {"name": "tiny_planned", "model": "svg_lp", "dataset": "smmnist", "status": "planned",
               "queue": dict(queue(0, ["copy_last"]), other="nowhere else")}
    text = file.read_text() + yaml.safe_dump([planned], sort_keys=False)
    file.write_text(text)
    assert sorted(read_entries(file)) == ["tiny_planned", "tiny_shipped"]
    return file


def train(registry: Path, name: str, out: Path, steps: int, *extra: str) -> dict:
    assert main(["train-checkpoint", name, "--max-minutes", "3", "--out", str(out), "--checkpoints", str(registry),
                 "--max-steps", str(steps), "--accelerator", "cpu", "--max-shard-mib", str(SHARD_MIB), *extra]) == 0
    return json.loads((out / "train_result.json").read_text())


def test_planned_entry_trains_to_sharded_weights_that_load(registry, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PlannedCheckpointError, match=r"no weights yet.*vpzoo train-checkpoint tiny_planned "
                                                     r"--max-minutes.*data: generated on the fly.*nowhere else"):
        vpzoo.load("tiny_planned", checkpoints=registry)

    out = tmp_path / "out"
    result = train(registry, "tiny_planned", out, 3, "--dtype", "float32")
    files = sorted(p.name for p in out.iterdir())
    shards = [f for f in files if f.startswith("model-")]
    assert files == sorted(["config.json", INDEX_NAME, "train.log", "train_result.json", *shards]) and len(files) <= 8
    assert len(shards) >= 2 and all((out / f).stat().st_size <= SHARD_MIB * 2**20 for f in shards)
    index = read_index(out / INDEX_NAME)
    assert index["metadata"]["shard_sha256"] == {f: file_sha256(out / f) for f in shards}
    assert set(index["weight_map"].values()) == set(shards)
    # the JSON: steps, throughput, validation, hardware; the log: every iteration and the fresh start
    assert (result["steps_before"], result["steps_this_run"], result["steps_trained"]) == (0, 3, 3)
    assert result["stopped_by"] == "max_steps" and result["init_from"] is None and result["precision"] == "32-true"
    assert result["steps_per_second"] > 0 and result["clips_per_second"] == pytest.approx(
        2 * result["steps_per_second"], rel=1e-3)
    assert 0 < result["validation"]["val/ssim"] <= 1 and result["validation"]["val/psnr"] > 0
    assert result["accelerator"] == "cpu" and 0 < result["max_time_seconds"] < 180
    assert {s["sha256"] for s in result["weights"]["shards"].values()} == set(index["metadata"]["shard_sha256"].values())
    log = (out / "train.log").read_text()
    assert "training from scratch" in log and "iteration 3 " in log and "validation" in log
    assert json.loads((out / "config.json").read_text())["training"]["steps_trained"] == 3

    # the sharded folder loads, the same as its index file and as the shards' own tensors
    model = vpzoo.load(out)
    assert isinstance(model, SVGLP) and model.zoo_info["weights"].endswith(INDEX_NAME)
    tensors = load_sharded(out / INDEX_NAME)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in tensors.items())
    clip = torch.rand(3, 1, 64, 64)
    kw = dict(n_future=2, num_samples=2, seed=3)
    assert torch.equal(model.predict(clip, **kw), vpzoo.load(out / INDEX_NAME).predict(clip, **kw))
    # training changed the weights (a fresh model of the same seed differs)
    torch.manual_seed(1)
    fresh = SVGLP(**TINY)
    assert not all(torch.equal(fresh.state_dict()[k], v) for k, v in tensors.items() if v.is_floating_point())

    # a corrupt or missing shard is named
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in out.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    data = bytearray((copy / shards[0]).read_bytes())
    data[-3] ^= 0xFF
    (copy / shards[0]).write_bytes(bytes(data))
    with pytest.raises(CorruptCheckpointError, match=f"shard {shards[0]}.*sha256 mismatch"):
        vpzoo.load(copy)
    (copy / shards[0]).unlink()
    with pytest.raises(CheckpointUnavailableError, match=f"shard {shards[0]} is missing"):
        vpzoo.load(copy)
    # an edited index (e.g. a shard digest swapped for a tampered shard's) no longer matches config.json's record
    (copy / shards[0]).write_bytes(bytes(data))
    index_doc = json.loads((copy / INDEX_NAME).read_text())
    index_doc["metadata"]["shard_sha256"][shards[0]] = file_sha256(copy / shards[0])
    (copy / INDEX_NAME).write_text(json.dumps(index_doc))
    with pytest.raises(CorruptCheckpointError, match="sha256 recorded in .*config.json"):
        vpzoo.load(copy)

    # a planned entry ships once its weights beat the bar (here copy_last); then vpzoo.load takes it
    def ssim_record(value: float) -> Path:
        path = tmp_path / f"metrics_{value}.json"
        path.write_text(json.dumps([{"metric": "ssim", "protocol": "svg", "reduction": "best", "num_samples": 2,
                                     "context_frames": 5, "predicted_frames": 20, "num_sequences": 4,
                                     "benchmark": "smmnist_svg", "test_set": "x", "value": value, "copy_last": 0.4}]))
        return path

    add = ["add-checkpoint", str(out), "--name", "tiny_planned", "--dataset", "smmnist", "--train-result",
           str(out / "train_result.json"), "--copy-to", "weights/tiny_planned", "--checkpoints", str(registry),
           "--write", "--replace"]
    capsys.readouterr()
    assert main([*add, "--metrics", str(ssim_record(0.3))]) == 1
    assert "0.3 does not beat copy_last's 0.4" in capsys.readouterr().err
    assert read_entries(registry)["tiny_planned"]["status"] == "planned"
    assert main([*add, "--metrics", str(ssim_record(0.45))]) == 0
    shipped = read_entries(registry)["tiny_planned"]
    assert "status" not in shipped and shipped["queue"]["steps_trained"] == 3
    assert shipped["weights"]["size"] == sum(f.stat().st_size for f in (tmp_path / "weights/tiny_planned").iterdir())
    assert torch.equal(vpzoo.load("tiny_planned", checkpoints=registry).predict(clip, **kw), model.predict(clip, **kw))

    # `vpzoo list --all` shows the queue with progress
    capsys.readouterr()
    monkeypatch.setenv("VPZOO_CHECKPOINTS", str(registry))
    assert main(["list", "--all"]) == 0
    listed = capsys.readouterr().out
    assert "training queue" in listed and "tiny_planned" in listed and "3 / 1,000 steps (0.3%)" in listed
    assert "10 / 1,000 steps (1.0%)" in listed


def test_continue_from_shipped_weights_then_replace_only_when_better(registry, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    result = train(registry, "tiny_shipped", out, 2)
    assert (result["steps_before"], result["steps_this_run"], result["steps_trained"]) == (10, 2, 12)
    assert result["init_from"] == "shipped weights of tiny_shipped" and result["weights"]["dtype"] == "float16"
    assert "the optimiser state is fresh" in (out / "train.log").read_text()

    # measured by the benchmark like any checkpoint (4 clips, 2 samples: the settings the shipped metric records)
    bench = tmp_path / "benchmark.json"
    assert main(["benchmark", "smmnist_svg", "--checkpoint", str(out), "--num-test", "4", "--num-samples", "2",
                 "--batch-size", "4", "--json", str(bench)]) == 0
    measured = json.loads(bench.read_text())
    record = next(m for m in measured[0]["metrics"] if m["metric"] == "ssim")
    assert (record["num_samples"], record["num_sequences"], record["benchmark"]) == (2, 4, "smmnist_svg")

    def with_ssim(value: float, path: Path) -> Path:
        doc = json.loads(bench.read_text())
        for m in doc[0]["metrics"]:
            if m["metric"] == "ssim":
                m.update(value=value, copy_last=0.4)
        path.write_text(json.dumps(doc))
        return path

    add = ["add-checkpoint", str(out), "--name", "tiny_shipped", "--dataset", "smmnist", "--train-result",
           str(out / "train_result.json"), "--copy-to", "weights/tiny_shipped-v2", "--checkpoints", str(registry),
           "--write", "--replace"]
    before = registry.read_text()
    old_weights = tmp_path / "weights" / "tiny_shipped.safetensors"
    capsys.readouterr()
    assert main([*add, "--metrics", str(with_ssim(0.45, tmp_path / "worse.json"))]) == 1
    err = capsys.readouterr().err
    assert "refusing to replace 'tiny_shipped'" in err and "0.45 does not beat the shipped weights' 0.5" in err
    assert registry.read_text() == before and old_weights.is_file()
    assert not (tmp_path / "weights" / "tiny_shipped-v2").exists(), "refused weights must not stay in the tree"
    # beats copy_last but equals the shipped value: still refused (strictly better is required)
    assert main([*add, "--metrics", str(with_ssim(0.5, tmp_path / "equal.json"))]) == 1
    assert registry.read_text() == before

    assert main([*add, "--metrics", str(with_ssim(0.55, tmp_path / "better.json"))]) == 0
    entry = read_entries(registry)["tiny_shipped"]
    assert entry["weights"]["path"] == f"weights/tiny_shipped-v2/{INDEX_NAME}"
    assert entry["queue"]["steps_trained"] == 12 and entry["training"]["steps"] == 12
    assert [m["value"] for m in entry["metrics"] if m["metric"] == "ssim"] == [0.55]
    assert not old_weights.exists(), "the replaced weights leave the tree"
    shipped = vpzoo.load("tiny_shipped", checkpoints=registry)
    clip = torch.rand(3, 1, 64, 64)
    kw = dict(n_future=2, num_samples=2, seed=3)
    assert torch.equal(shipped.predict(clip, **kw), vpzoo.load(out).predict(clip, **kw))
    # a packaged shard that went bad is caught through the index's sha256
    shard = sorted((tmp_path / "weights" / "tiny_shipped-v2").glob("model-*.safetensors"))[0]
    data = bytearray(shard.read_bytes())
    data[-3] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(CorruptCheckpointError, match=f"shard {shard.name}"):
        vpzoo.load("tiny_shipped", checkpoints=registry)


def test_unfinished_run_is_kept_in_the_repository_and_the_next_run_continues_from_it(registry, tmp_path, capsys,
                                                                                     monkeypatch):
    """A run that misses its bar is not lost with the machine: `add-checkpoint --resume-weights` keeps its weights
    as the planned entry's queue.resume (float32, sha256-pinned), and the next train-checkpoint starts from them."""
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run1"
    train(registry, "tiny_planned", out, 2)
    keep = ["add-checkpoint", str(out), "--name", "tiny_planned", "--resume-weights", "--train-result",
            str(out / "train_result.json"), "--checkpoints", str(registry)]
    assert main(keep) == 0
    entry = read_entries(registry)["tiny_planned"]
    kept = tmp_path / "queue" / "tiny_planned.safetensors"
    assert entry["status"] == "planned" and entry["queue"]["steps_trained"] == 2
    assert entry["queue"]["resume"] == {"weights": "queue/tiny_planned.safetensors", "sha256": file_sha256(kept)}
    trained, resumed = vpzoo.load(out), vpzoo.load(str(kept))
    assert all(torch.equal(resumed.state_dict()[k], v) for k, v in trained.state_dict().items())
    assert all(v.dtype == torch.float32 for v in load_weights(kept).values() if v.is_floating_point())
    with pytest.raises(PlannedCheckpointError, match=r"unfinished run of 2 steps is kept in the repository "
                                                     r"\(queue/tiny_planned.safetensors\)"):
        vpzoo.load("tiny_planned", checkpoints=registry)  # still planned: not a zoo checkpoint until it beats its bar

    assert entry["queue"]["batch_trained"] == 2  # the run's batch, the paper's here

    # the next run, given nothing, continues from them (here at batch 4); keeping it replaces the file and the step
    # count, and batch_trained becomes the mean clips per step over both runs: (2 x 2 + 1 x 4) / 3, rounded
    out2 = tmp_path / "run2"
    result = train(registry, "tiny_planned", out2, 1, "--", "--data.init_args.batch_size", "4")
    assert (result["steps_before"], result["steps_trained"], result["batch_size"]) == (2, 3, 4)
    assert result["init_from"] == "resume weights of tiny_planned (queue/tiny_planned.safetensors)"
    first_digest = file_sha256(kept)
    assert main([*keep[:1], str(out2), *keep[2:6], str(out2 / "train_result.json"), *keep[7:]]) == 0
    entry = read_entries(registry)["tiny_planned"]
    assert entry["queue"]["steps_trained"] == 3 and entry["queue"]["resume"]["sha256"] == file_sha256(kept) != first_digest
    assert entry["queue"]["batch_trained"] == 3
    capsys.readouterr()
    monkeypatch.setenv("VPZOO_CHECKPOINTS", str(registry))
    assert main(["list", "--all"]) == 0  # the share of the paper's clips: 3 steps x 3 / (1,000 x 2) = 0.45%
    assert "3 / 1,000 steps (0.3%) at batch 3: 0.5% of the paper's clips" in capsys.readouterr().out
    # --steps/--batch by hand (a run outside train-checkpoint)
    assert main([*keep[:1], str(out2), *keep[2:5], "--steps", "40", "--batch", "1", *keep[7:]]) == 0
    assert {k: read_entries(registry)["tiny_planned"]["queue"][k] for k in ("steps_trained", "batch_trained")} == {
        "steps_trained": 40, "batch_trained": 1}

    # a changed file is refused, naming it
    good = kept.read_bytes()
    data = bytearray(good)
    data[-3] ^= 0xFF
    kept.write_bytes(bytes(data))
    with pytest.raises(CorruptCheckpointError, match="resume weights of 'tiny_planned'.*sha256 mismatch"):
        train_checkpoint("tiny_planned", max_minutes=3, out=tmp_path / "run3", checkpoints=registry, max_steps=1,
                         accelerator="cpu")
    kept.write_bytes(good)

    # only planned entries keep resume weights, of their own model
    capsys.readouterr()
    assert main(["add-checkpoint", str(out), "--name", "tiny_shipped", "--resume-weights", "--steps", "5",
                 "--checkpoints", str(registry)]) == 1
    assert "'tiny_shipped' is not a planned entry" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["add-checkpoint", str(out), "--name", "tiny_planned", "--resume-weights", "--checkpoints", str(registry)])
    assert "--resume-weights needs --steps" in capsys.readouterr().err

    # --dtype float16 halves the kept file (the tracked tree's budget); its values are the run's, rounded
    float32_size = kept.stat().st_size
    assert main([*keep[:5], "--steps", "2", "--dtype", "float16", "--checkpoints", str(registry)]) == 0
    half = load_weights(kept)
    assert all(v.dtype == torch.float16 for v in half.values() if v.is_floating_point())
    assert all(torch.equal(half[k], v.half()) for k, v in vpzoo.load(out).state_dict().items() if v.is_floating_point())
    assert kept.stat().st_size < 0.6 * float32_size
    assert read_entries(registry)["tiny_planned"]["queue"]["resume"]["sha256"] == file_sha256(kept)
    with pytest.raises(SystemExit):
        main([*keep[:4], "--dataset", "smmnist", "--dtype", "float16", "--checkpoints", str(registry)])
    assert "--dtype applies to --resume-weights only" in capsys.readouterr().err

    # once it ships, the resume weights leave the tree and the entry
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps([{"metric": "ssim", "protocol": "svg", "reduction": "best", "num_samples": 2,
                                    "context_frames": 5, "predicted_frames": 20, "num_sequences": 4,
                                    "benchmark": "smmnist_svg", "test_set": "x", "value": 0.45, "copy_last": 0.4}]))
    assert main(["add-checkpoint", str(out2), "--name", "tiny_planned", "--dataset", "smmnist", "--train-result",
                 str(out2 / "train_result.json"), "--copy-to", "weights/tiny_planned", "--checkpoints", str(registry),
                 "--write", "--replace", "--metrics", str(metrics)]) == 0
    entry = read_entries(registry)["tiny_planned"]
    assert "status" not in entry and "resume" not in entry["queue"] and entry["queue"]["steps_trained"] == 3
    assert not kept.exists()


def test_sharded_weights_load_from_the_hub(fake_hub, tmp_path):
    torch.manual_seed(0)
    model = SVGLP(**TINY).eval()
    folder = model.save_pretrained(tmp_path / "sharded", max_shard_bytes=int(SHARD_MIB * 2**20), dtype="float16")
    assert not (folder / "model.safetensors").exists() and (folder / INDEX_NAME).is_file()
    commit = fake_hub.commit("owner/tiny-sharded", folder_files(folder))
    loaded = vpzoo.load("hf://owner/tiny-sharded")
    clip = torch.rand(3, 1, 64, 64)
    kw = dict(n_future=2, num_samples=2, seed=3)
    assert torch.equal(loaded.predict(clip, **kw), vpzoo.load(folder).predict(clip, **kw))
    # a registry entry pinning the index on the Hub: the index's sha256 pins every shard
    registry = tmp_path / "checkpoints.yaml"
    registry.write_text("format_version: 1\ncheckpoints: []\n")
    metrics = [{"metric": "ssim", "protocol": "svg", "num_samples": 1, "value": 0.5}]
    entry = make_checkpoint_entry(folder, name="tiny_hub", dataset="smmnist", metrics=metrics,
                                  training={"config": "x.yaml", "steps": 1, "hardware": "cpu", "time": "0"},
                                  hub_repo="owner/tiny-sharded", hub_revision=commit, hub_filename=INDEX_NAME,
                                  path=registry)
    add_checkpoint(entry, registry)
    assert torch.equal(vpzoo.load("tiny_hub", checkpoints=registry).predict(clip, **kw), loaded.predict(clip, **kw))
    # a shard served corrupt is refused (and purged from the cache)
    shard = sorted(n for n in folder_files(folder) if n.startswith("model-"))[0]
    fake_hub.commit("owner/tiny-bad", folder_files(folder))
    fake_hub.corrupt.add(("owner/tiny-bad", shard))
    with pytest.raises(CorruptCheckpointError, match="sha256 mismatch"):
        vpzoo.load("hf://owner/tiny-bad")


def test_queue_schema_errors_are_named(registry):
    from vpzoo.zoo.catalog import _parse

    doc = yaml.safe_load(registry.read_text())
    planned = doc["checkpoints"][1]
    bad = [
        dict(planned, weights={"source": "file"}),
        dict(planned, queue={k: v for k, v in planned["queue"].items() if k != "ship_bar"}),
        dict(planned, queue=dict(planned["queue"], ship_bar={"benchmark": "b", "metric": "ssim", "must_beat": ["x"]})),
        dict(planned, queue=dict(planned["queue"], config="/abs/path.yaml")),
        dict(planned, status="maybe"),
        dict(planned, queue=dict(planned["queue"], steps_trained=4, resume={"weights": "../x.safetensors",
                                                                          "sha256": "0" * 64})),
        dict(planned, queue=dict(planned["queue"], resume={"weights": "queue/x.safetensors", "sha256": "0" * 64})),
        dict(doc["checkpoints"][0], queue=dict(doc["checkpoints"][0]["queue"],
                                               resume={"weights": "queue/x.safetensors", "sha256": "0" * 64})),
    ]
    expected = ["unknown keys \\['weights'\\] for a planned entry", "missing 'ship_bar'", "must_beat lists",
                "must be a YAML file relative to the repository", "must be 'shipped'",
                "resume.weights must be a .safetensors file relative", "steps_trained counts the steps of the resume",
                "only planned entries keep resume weights"]
    for entry, pattern in zip(bad, expected):
        doc["checkpoints"][1] = entry
        registry.write_text(yaml.safe_dump(doc))
        with pytest.raises(ValueError, match=pattern):
            _parse(registry)


def test_max_minutes_stops_training_by_max_time_and_still_exports(registry, tmp_path, monkeypatch, capsys):
    """A budget of 1.3 minutes with 1 minute kept for validation and export leaves ~18 s of training: Lightning's
    max_time stops it long before the 100,000 iterations asked, and the command still validates and exports."""
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    result = train(registry, "tiny_planned", out, 100_000, "--max-minutes", "1.3", "--reserve-minutes", "1")
    assert result["stopped_by"] == "max_time" and 0 < result["steps_this_run"] < 100_000
    assert result["max_time_seconds"] <= 18 and result["train_seconds"] <= result["max_time_seconds"] + 5
    assert result["wall_seconds"] < 1.3 * 60
    assert (out / INDEX_NAME).is_file() and "val/ssim" in result["validation"]
    capsys.readouterr()
    assert main(["train-checkpoint", "tiny_planned", "--max-minutes", "1.1", "--out", str(tmp_path / "out2"),
                 "--checkpoints", str(registry), "--accelerator", "cpu"]) == 1
    assert "--max-minutes 1.1 leaves" in capsys.readouterr().err
    assert "--max-minutes 1.1 leaves" in (tmp_path / "out2" / "train.log").read_text(), "errors reach the log"


@pytest.mark.parametrize("metric, good, bad", [("mse_sum", 90.0, 130.0), ("bits_per_dim", 2.0, 3.0),
                                               ("fvd", 100.0, 300.0), ("ssim", 0.8, 0.6), ("psnr", 20.0, 10.0)])
def test_ship_bar_compares_each_metric_the_right_way(metric, good, bad):
    """Summed MSE, bits/dim and FVD are costs (lower beats the baseline), PSNR/SSIM scores (higher does)."""
    from vpzoo.zoo.catalog import ReplacementRefusedError, check_ship_bar, metric_lower_is_better

    lower = metric_lower_is_better(metric)
    baseline = 120.0 if metric == "mse_sum" else 2.5 if metric == "bits_per_dim" else 200.0 if metric == "fvd" \
        else 0.7 if metric == "ssim" else 15.0
    entry = {"name": "x", "queue": {"ship_bar": {"benchmark": "b", "metric": metric, "must_beat": ["copy_last"]}}}
    record = lambda v: [{"metric": metric, "benchmark": "b", "value": v, "copy_last": baseline}]  # noqa: E731
    assert lower == (metric in ("mse_sum", "bits_per_dim", "fvd"))
    check_ship_bar(entry, record(good))
    with pytest.raises(ReplacementRefusedError, match="does not beat copy_last"):
        check_ship_bar(entry, record(bad))
    with pytest.raises(ValueError, match="unknown ship-bar metric"):
        metric_lower_is_better("accuracy")
