"""vpzoo.leaderboard and `vpzoo benchmark`: the protocols, the runner's numbers against a direct computation with
vpzoo.metrics on the same clips, prefix-stable test subsets, the zoo's recorded rows, errors, and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from conftest import tiny_svg_kwargs
from vpzoo.cli import main
from vpzoo.data import StochasticMovingMNISTDataModule
from vpzoo.leaderboard import (
    default_benchmark,
    format_report,
    get_benchmark,
    list_benchmarks,
    recorded_results,
    run_benchmark,
)
from vpzoo.metrics import get_protocol
from vpzoo.metrics.protocols import frame_metrics
from vpzoo.models.base import VideoPredictionModel
from vpzoo.models.copy_last import CopyLast
from vpzoo.models.svg import SVGLP
from vpzoo.zoo import add_checkpoint, make_checkpoint_entry


@pytest.fixture(scope="module")
def smmnist_test_clips():
    """The first 6 clips of the full fixed SM-MNIST test set (1000 clips of 5 + 20 frames), taken independently."""
    data = StochasticMovingMNISTDataModule(eval_seq_len=25, num_test=1000, eval_batch_size=6)
    data.setup("test")
    return next(iter(data.test_dataloader()))


def test_registry_and_errors():
    assert {"smmnist_svg", "mmnist_drnet", "kth_svg", "bair_fvd"} <= set(list_benchmarks())
    bench = get_benchmark("smmnist_svg")
    assert (bench.context_frames, bench.predicted_frames, bench.num_samples, bench.metric_protocol) == (5, 20, 100, "svg")
    assert default_benchmark("smmnist") == "smmnist_svg" and default_benchmark("nope") is None
    with pytest.raises(ValueError, match="unknown benchmark 'smmnist_sv'.*did you mean 'smmnist_svg'"):
        get_benchmark("smmnist_sv")
    with pytest.raises(ValueError, match="num_test must be <= 1000"):
        run_benchmark(CopyLast(), "smmnist_svg", num_test=1001)
    with pytest.raises(ValueError, match="num_samples must be a positive int"):
        run_benchmark(CopyLast(), "smmnist_svg", num_samples=0)
    with pytest.raises(ValueError, match="needs n_past=6 context frames but smmnist_svg gives 5"):
        run_benchmark(SVGLP(**tiny_svg_kwargs(n_past=6)), "smmnist_svg", num_test=1)
    with pytest.raises(ValueError, match="kth_svg needs the KTH data"):
        run_benchmark(CopyLast(), "kth_svg", num_test=1)


def test_copy_last_scores_equal_a_direct_computation(smmnist_test_clips):
    """A deterministic model is scored once per clip: its numbers are plain means of vpzoo.metrics on the first
    clips of the fixed test set (a prefix of the full set, whatever num_test is)."""
    result = run_benchmark(CopyLast(), "smmnist_svg", num_test=5, num_samples=7, batch_size=2)
    assert result.num_samples == 1 and result.num_sequences == 5  # deterministic: N forced to 1
    clips = smmnist_test_clips[:5]
    copies = clips[:, 4:5].expand(-1, 20, -1, -1, -1)
    direct = frame_metrics(copies, clips[:, 5:], get_protocol("svg"))
    black = frame_metrics(torch.zeros_like(copies), clips[:, 5:], get_protocol("svg"))
    for name in ("psnr", "ssim"):
        assert result.values["model"][name] == pytest.approx(direct[name].mean().item(), abs=1e-5)
        assert result.values["black"][name] == pytest.approx(black[name].mean().item(), abs=1e-5)
        assert result.per_frame["black"][name] == pytest.approx(black[name].mean(0).tolist(), abs=1e-5)
        assert result.values["copy_last"][name] == pytest.approx(result.values["model"][name], abs=1e-9)
        assert len(result.per_frame["model"][name]) == 20
        assert result.per_frame["model"][name] == pytest.approx(direct[name].mean(0).tolist(), abs=1e-5)


class NoisyCopy(VideoPredictionModel):
    """A stochastic stand-in whose samples clearly differ: the last context frame plus seeded uniform noise."""

    def __init__(self, channels: int = 1) -> None:
        super().__init__(image_size=64, channels=channels, n_past=1, n_future=1)

    def sample_future(self, context, n_future, num_samples, generator):
        last = context[:, -1][:, None, None].expand(-1, num_samples, n_future, -1, -1, -1)
        noise = torch.rand(last.shape, generator=generator, device=last.device)
        return (last + 0.4 * noise).clamp(0, 1)


def test_colour_benchmark_scores_a_three_channel_model():
    result = run_benchmark(CopyLast(channels=3), "mmnist_drnet", num_test=2, batch_size=2)
    assert result.num_sequences == 2 and len(result.per_frame["copy_last"]["ssim"]) == 20
    assert result.values["model"] == pytest.approx(result.values["copy_last"])


def test_kth_benchmark_on_real_format_files(tmp_path):
    """kth_svg on KTH AVIs written in the real format (zips + 00sequences.txt) and preprocessed by vpzoo: clips of
    10 + 30 frames from the SVG split's test persons."""
    import warnings

    from vpzoo.data.fixtures import write_kth_fixture
    from vpzoo.data.kth import prepare_kth

    write_kth_fixture(tmp_path / "raw", persons=(1, 21), num_frames=48)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "12 videos of 2 persons": a partial KTH, as intended here
        prepare_kth(tmp_path, (64,), progress=False)
    result = run_benchmark(CopyLast(), "kth_svg", root=str(tmp_path), num_test=4, batch_size=2)
    assert result.num_sequences == 4 and len(result.per_frame["model"]["psnr"]) == 30
    assert 0 < result.values["model"]["ssim"] < 1 and result.values["model"]["psnr"] > 0


def test_bair_fvd_benchmark_on_real_format_files(tmp_path):
    """bair_fvd on BAIR TFRecords written in the real format and preprocessed by vpzoo, with a random-weight I3D
    file (the real one cannot be downloaded here) given as a local copy: whole 16-frame clips (1 context + 15
    predicted) are compared, and every FVD carries its clip counts, clip length and the weights' identity."""
    import warnings

    from vpzoo.data.bair import prepare_bair
    from vpzoo.data.fixtures import write_bair_fixture
    from vpzoo.metrics.i3d import InceptionI3d, save_torchscript

    truth = write_bair_fixture(tmp_path / "src", train_files=1, clips_per_file=2, test_clips=3)
    (tmp_path / "bair").mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "has 3 clips": a partial test split, as intended here
        prepare_bair(tmp_path / "bair", url=truth["tar"].as_uri(), progress=False)
        torch.manual_seed(0)
        save_torchscript(InceptionI3d(width_mult=0.125).eval(), tmp_path / "i3d.pt")
        bench = get_benchmark("bair_fvd")
        assert (bench.context_frames, bench.predicted_frames, bench.metrics) == (1, 15, ("fvd",))
        copies = run_benchmark(CopyLast(channels=3), bench, root=str(tmp_path / "bair"), batch_size=2,
                               fvd_weights_path=str(tmp_path / "i3d.pt"), fvd_verify=False)
        noisy = run_benchmark(NoisyCopy(channels=3), bench, root=str(tmp_path / "bair"), batch_size=2,
                              num_samples=2, fvd_weights_path=str(tmp_path / "i3d.pt"), fvd_verify=False)
        with pytest.raises(Exception, match="do not match the pinned git blob id"):  # the stand-in is not the pinned file
            run_benchmark(CopyLast(channels=3), bench, root=str(tmp_path / "bair"), batch_size=2,
                          fvd_weights_path=str(tmp_path / "i3d.pt"))
    assert copies.num_sequences == 3 and copies.values["model"]["fvd"] == pytest.approx(copies.values["copy_last"]["fvd"])
    report = noisy.details["model"]
    assert (report["n_real"], report["n_generated"], report["clip_length"]) == (3, 6, 16)
    assert report["weights"]["path"] == str(tmp_path / "i3d.pt") and len(report["weights_sha256"]) == 64
    # a random-weight I3D maps every clip to nearly the same features, so only the plumbing is checked here; the
    # distance itself is tested against scipy in tests/test_fvd.py
    assert noisy.values["model"]["fvd"] >= 0 and noisy.values["copy_last"]["fvd"] >= 0
    assert "black" not in noisy.values  # the all-black baseline is scored on PSNR/SSIM benchmarks only
    records = noisy.metric_records()
    assert [(r["metric"], r["protocol"], r["num_samples"], "reduction" in r) for r in records] == [("fvd", "fvd", 2, False)]
    assert "FVD" in format_report(bench, measured=[noisy]) and "262.5" in format_report(bench)


def test_best_of_n_is_chosen_per_clip_by_each_metric(smmnist_test_clips):
    model = NoisyCopy()
    result = run_benchmark(model, "smmnist_svg", num_test=4, num_samples=3, batch_size=4, seed=11)
    clips = smmnist_test_clips[:4]
    samples = model.predict(clips[:, :5], 20, num_samples=3, seed=11)  # batch 0 uses seed + 0
    target = clips[:, 5:, None].expand(-1, -1, 3, -1, -1, -1).transpose(1, 2)  # (B, N, T, C, H, W)
    direct = frame_metrics(samples.flatten(0, 1), target.flatten(0, 1), get_protocol("svg"))
    for name in ("psnr", "ssim"):
        per_sample = direct[name].view(4, 3, 20).mean(-1)  # (B, N): mean over the predicted frames
        best, mean = per_sample.max(dim=1).values.mean().item(), per_sample.mean().item()
        assert result.values["model"][name] == pytest.approx(best, abs=1e-5)
        assert best > mean + 1e-4  # the samples differ, so choosing the best matters
    records = result.metric_records()
    assert {(r["metric"], r["benchmark"], r["num_samples"], r["reduction"]) for r in records} == {
        ("psnr", "smmnist_svg", 3, "best"), ("ssim", "smmnist_svg", 3, "best")}


def test_report_shows_published_recorded_and_measured_rows(tmp_path, monkeypatch):
    torch.manual_seed(0)
    folder = SVGLP(**tiny_svg_kwargs()).save_pretrained(tmp_path / "tiny")
    registry = tmp_path / "checkpoints.yaml"
    monkeypatch.setenv("VPZOO_CHECKPOINTS", str(registry))
    result = run_benchmark(str(folder), "smmnist_svg", num_test=2, num_samples=2, batch_size=2)
    entry = make_checkpoint_entry(folder, name="tiny_smmnist", dataset="smmnist", metrics=result.metric_records(),
                                  training={"config": "tests", "steps": 0, "hardware": "cpu", "time": "0 s"},
                                  copy_to="weights/tiny.safetensors", path=registry)
    add_checkpoint(entry, registry)
    recorded = recorded_results("smmnist_svg")
    assert [r["checkpoint"] for r in recorded] == ["tiny_smmnist"]
    assert recorded[0]["values"]["ssim"] == pytest.approx(result.values["model"]["ssim"], abs=1e-6)
    assert recorded[0]["black"]["ssim"] == pytest.approx(result.values["black"]["ssim"], abs=1e-6)
    assert recorded_results("mmnist_drnet") == []
    text = format_report("smmnist_svg", measured=[result], recorded=recorded)
    assert "SVG-LP" in text and "14.50" in text and "reported, unverified" in text  # published (sheet §6.3)
    assert "tiny_smmnist" in text and "vpzoo checkpoints.yaml" in text and "measured now" in text
    assert "metric protocol 'svg' (PSNR data_range 1, SSIM data_range 2)" in text
    black_rows = [line for line in text.splitlines() if "all-black frame" in line]
    assert [row.endswith("vpzoo checkpoints.yaml") for row in black_rows] == [True, False]  # recorded, then measured
    assert all(f"{result.values['black']['ssim']:8.4f}" in row for row in black_rows)
    assert black_rows[1].endswith("measured now")


def test_cli_lists_benchmarks_and_measures_a_checkpoint(tmp_path, monkeypatch, capsys):
    torch.manual_seed(0)
    folder = SVGLP(**tiny_svg_kwargs()).save_pretrained(tmp_path / "tiny")
    run = lambda *args: subprocess.run([sys.executable, "-m", "vpzoo.cli", "benchmark", *map(str, args)],
                                       capture_output=True, text=True, cwd=tmp_path)
    listing = run()
    assert listing.returncode == 0 and "smmnist_svg:" in listing.stdout and "mmnist_drnet:" in listing.stdout
    bad = run("smmnist_sv")
    assert bad.returncode == 1 and "did you mean 'smmnist_svg'" in bad.stderr
    out = run("smmnist_svg", "--checkpoint", folder, "--num-test", 2, "--num-samples", 2, "--batch-size", 2,
              "--json", "r.json")
    assert out.returncode == 0, out.stderr
    assert "measured now" in out.stdout and "copy_last" in out.stdout
    report = json.loads((tmp_path / "r.json").read_text())
    assert report[0]["num_sequences"] == 2 and report[0]["benchmark"] == "smmnist_svg"
    # the publishing workflow: benchmark --json -> add-checkpoint --metrics -> the row shows in the leaderboard
    registry = tmp_path / "checkpoints.yaml"
    monkeypatch.setenv("VPZOO_CHECKPOINTS", str(registry))
    assert main(["add-checkpoint", str(folder), "--name", "tiny_lp", "--dataset", "smmnist", "--metrics",
                 str(tmp_path / "r.json"), "--training-config", "tests", "--steps", "0", "--hardware", "cpu",
                 "--time", "0 s", "--copy-to", "weights/tiny.safetensors", "--write"]) == 0
    capsys.readouterr()
    assert main(["benchmark", "smmnist_svg"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.strip().startswith("tiny_lp"))
    assert f"{report[0]['values']['model']['ssim']:.4f}" in row and "vpzoo checkpoints.yaml" in row


def test_bair_vrnn_benchmark_scores_ssim_lpips_and_fvd_on_real_format_files(tmp_path):
    """bair_vrnn (the Improved VRNN's BAIR protocol): 2 context -> 28 predicted frames, best-of-N SSIM and LPIPS
    (random-weight LPIPS network and I3D stand-ins: the real files cannot be downloaded here), FVD on the first sample
    of each clip only; the published rows are shown beside the measured ones."""
    import warnings

    from vpzoo.data.bair import prepare_bair
    from vpzoo.data.fixtures import write_bair_fixture
    from vpzoo.metrics import lpips as lpips_distance
    from vpzoo.metrics import set_default_lpips_network
    from vpzoo.metrics.i3d import InceptionI3d, save_torchscript
    from vpzoo.metrics.lpips import LPIPSAlex

    truth = write_bair_fixture(tmp_path / "src", train_files=1, clips_per_file=2, test_clips=3)
    (tmp_path / "bair").mkdir()
    torch.manual_seed(0)
    network = LPIPSAlex().eval()
    for lin in network.lins:  # the real linear layers are non-negative (a distance); random ones are not
        lin.weight.abs_()
    set_default_lpips_network(network)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "has 3 clips": a partial test split, as intended here
            prepare_bair(tmp_path / "bair", url=truth["tar"].as_uri(), progress=False)
            save_torchscript(InceptionI3d(width_mult=0.125).eval(), tmp_path / "i3d.pt")
            bench = get_benchmark("bair_vrnn")
            assert (bench.context_frames, bench.predicted_frames, bench.num_samples) == (2, 28, 100)
            assert bench.metrics == ("ssim", "lpips", "fvd") and bench.fvd_num_samples == 1
            result = run_benchmark(NoisyCopy(channels=3), bench, root=str(tmp_path / "bair"), batch_size=3,
                                   num_samples=3, fvd_weights_path=str(tmp_path / "i3d.pt"), fvd_verify=False)
        # the runner's best-of-3 LPIPS equals a direct computation on the same samples (the first batch's seed 0)
        from vpzoo.data.bair import BAIRDataModule

        data = BAIRDataModule(root=str(tmp_path / "bair"), eval_seq_len=30, num_test=3, eval_batch_size=3,
                              download=False)
        data.setup("test")
        clips = next(iter(data.test_dataloader()))
        samples = NoisyCopy(channels=3).predict(clips[:, :2], 28, num_samples=3, seed=0)
        per_sample = torch.stack([lpips_distance(samples[:, k], clips[:, 2:]) for k in range(3)], dim=1)  # (B, N, T)
        expected = per_sample.mean(dim=2).min(dim=1).values.mean()
        assert result.values["model"]["lpips"] == pytest.approx(expected.item(), rel=1e-4)
    finally:
        set_default_lpips_network(None)
    assert result.num_sequences == 3 and len(result.per_frame["model"]["ssim"]) == 28
    report = result.details["model"]
    assert (report["n_real"], report["n_generated"], report["clip_length"]) == (3, 3, 30)  # one sample per clip
    assert 0 < result.values["model"]["ssim"] < 1 and result.values["model"]["lpips"] >= 0
    records = {r["metric"]: r for r in result.metric_records()}
    assert records["fvd"]["num_samples"] == 1 and records["ssim"]["num_samples"] == 3
    assert records["lpips"]["reduction"] == "best" and "reduction" not in records["fvd"]
    text = format_report(bench, measured=[result])
    assert "LPIPS" in text and "143.4" in text and "0.829" in text and "Hier-VRNN" in text


def test_smmnist_vrnn_benchmark_gives_ten_context_frames():
    """smmnist_vrnn: the fixed SM-MNIST test clips with the Improved VRNN's 10 context frames, 20 predicted."""
    bench = get_benchmark("smmnist_vrnn")
    assert (bench.context_frames, bench.predicted_frames, bench.num_samples, bench.published) == (10, 20, 100, ())
    result = run_benchmark(CopyLast(n_past=10), bench, num_test=2, batch_size=2)
    assert result.num_sequences == 2 and len(result.per_frame["model"]["ssim"]) == 20
    assert result.values["model"] == pytest.approx(result.values["copy_last"])
    assert default_benchmark("smmnist") == "smmnist_svg"
