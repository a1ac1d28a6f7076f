"""Tests for ``vpzoo data prepare`` (vpzoo.data.prepare.main), offline with loopback servers and fixtures."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _loopback import LoopbackServer

from vpzoo.data.fixtures import write_bair_fixture, write_kth_fixture, write_mnist_test_seq
from vpzoo.data.prepare import main


def test_usage_and_list(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("kth", "bair", "moving_mnist", "bouncing_balls", "human36m"):
        assert name in out
    assert main(["prepare", "imagenet", "--root", "x"]) == 2
    assert main(["prepare", "kth"]) == 2  # --root is required
    assert main(["prepare", "kth", "--help"]) == 0
    capsys.readouterr()


def test_prepare_kth_and_bair_from_loopback(tmp_path, capsys):
    kth_src, bair_src = tmp_path / "kth-src", tmp_path / "bair-src"
    write_kth_fixture(kth_src, persons=(1, 21), actions=("walking", "boxing"), num_frames=12)
    bair = write_bair_fixture(bair_src, train_files=1, clips_per_file=2, test_clips=2)
    files = {f"/kth/{p.name}": p.read_bytes() for p in kth_src.iterdir()}
    files["/bair.tar"] = bair["tar"].read_bytes()
    with LoopbackServer(files) as srv:
        # only two actions exist on this "server": the missing zips are reported with their URLs
        rc = main(["prepare", "kth", "--root", str(tmp_path / "kth"), "--base-url", f"{srv.url}/kth/",
                   "--no-progress"])
        assert rc == 1
        err = capsys.readouterr().err
        assert "handclapping.zip" in err and "HTTP 404" in err and "vpzoo data prepare kth --root" in err
        # with all six actions served, it works, at two sizes
        write_kth_fixture(kth_src, persons=(1, 21), num_frames=12)
        srv.files.update({f"/kth/{p.name}": p.read_bytes() for p in kth_src.iterdir()})
        with pytest.warns(UserWarning, match="12 videos of 2 persons"):
            rc = main(["prepare", "kth", "--root", str(tmp_path / "kth"), "--base-url", f"{srv.url}/kth/",
                       "--image-size", "64", "128", "--no-progress"])
        assert rc == 0 and "64px" in capsys.readouterr().out
        assert np.load(tmp_path / "kth" / "processed" / "128px" / "frames.npy").shape == (12 * 12, 128, 128)
        with pytest.warns(UserWarning, match="has 2 clips"):
            rc = main(["prepare", "bair", "--root", str(tmp_path / "bair"), "--url", f"{srv.url}/bair.tar",
                       "--no-progress"])
        assert rc == 0 and "test: 2 clips" in capsys.readouterr().out
        index = json.loads((tmp_path / "bair" / "processed" / "index.json").read_text())
        assert index["splits"]["train"]["num_clips"] == 2
        # already prepared: nothing is fetched again
        n = len(srv.requests)
        assert main(["prepare", "bair", "--root", str(tmp_path / "bair"), "--url", f"{srv.url}/bair.tar"]) == 0
        assert len(srv.requests) == n
    capsys.readouterr()


def test_prepare_moving_mnist_bouncing_balls_and_errors(tmp_path, capsys):
    src = tmp_path / "m.npy"
    write_mnist_test_seq(src, num_sequences=3)
    assert main(["prepare", "moving_mnist", "--root", str(tmp_path / "mm"), "--url", src.as_uri(),
                 "--no-progress"]) == 0
    assert np.load(tmp_path / "mm" / "mnist_test_seq.npy").shape == (20, 3, 64, 64)
    assert main(["prepare", "moving_mnist", "--root", str(tmp_path / "mm2"), "--no-download"]) == 1
    assert "vpzoo data prepare moving_mnist --root" in capsys.readouterr().err
    assert main(["prepare", "bouncing_balls", "--root", str(tmp_path / "bb"), "--num-train", "4", "--num-val", "2",
                 "--num-test", "3"]) == 0
    assert len(list((tmp_path / "bb").glob("*.npy"))) == 3
    assert main(["prepare", "bair", "--root", str(tmp_path / "nobair"), "--no-download"]) == 1
    assert "bair_robot_pushing_dataset_v0.tar" in capsys.readouterr().err
    assert main(["prepare", "human36m", "--root", str(tmp_path / "h36m")]) == 1
    err = capsys.readouterr().err
    assert "vision.imar.ro" in err and "S1/Videos" in err


@pytest.mark.parametrize("config", ["svg_lp/kth.yaml", "svg_fp/kth.yaml", "svg_lp/bair.yaml", "svg_fp/bair.yaml"])
def test_shipped_configs_resolve_to_the_datamodules(config, tmp_path):
    """The lead's configs name vpzoo.data.kth.KTHDataModule / vpzoo.data.bair.BAIRDataModule and their arguments."""
    from pathlib import Path

    import yaml
    from jsonargparse import ArgumentParser
    from lightning.pytorch import LightningDataModule

    cfg = yaml.safe_load((Path(__file__).parents[1] / "configs" / config).read_text())["data"]
    cfg["init_args"]["root"] = str(tmp_path)
    parser = ArgumentParser()
    parser.add_subclass_arguments(LightningDataModule, "data")
    ns = parser.parse_object({"data": cfg})
    instantiate = getattr(parser, "instantiate", None) or parser.instantiate_classes
    dm = instantiate(ns).data
    assert type(dm).__name__ == ("KTHDataModule" if "kth" in config else "BAIRDataModule")
    assert dm.seq_len == cfg["init_args"]["seq_len"] and dm.eval_seq_len == cfg["init_args"]["eval_seq_len"]
    assert dm.image_size == 64 and dm.channels == (1 if "kth" in config else 3)
    assert dm.hparams["batch_size"] == 100
