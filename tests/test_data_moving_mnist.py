"""Tests for deterministic Moving MNIST (vpzoo.data.moving_mnist); offline, tiny."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from _loopback import LoopbackServer

from vpzoo.cache import sha256_file
from vpzoo.data import DatasetNotFoundError
from vpzoo.data.moving_mnist import (
    MovingMNISTDataModule,
    generate_moving_mnist,
    render_max,
    simulate_bounces,
)


@pytest.fixture(scope="module")
def digits():
    return np.random.default_rng(5).integers(0, 256, size=(30, 28, 28), dtype=np.uint8)


@pytest.fixture()
def test_seq(tmp_path):
    """A file in mnist_test_seq.npy's layout (20, N, 64, 64) uint8 with few sequences."""
    arr = np.random.default_rng(1).integers(0, 256, size=(20, 7, 64, 64), dtype=np.uint8)
    path = tmp_path / "given" / "mnist_test_seq.npy"
    path.parent.mkdir()
    np.save(path, arr)
    return path, arr


def test_bounce_rule_matches_scalar_reference():
    rng = np.random.default_rng(0)
    traj = simulate_bounces(20, 40, np.random.default_rng(0))
    # re-draw the same numbers and run the textbook loop (move, then clamp + reflect)
    pos0 = rng.random((20, 2, 2))
    theta = rng.random((20, 2)) * 2 * np.pi
    for i in range(20):
        for d in range(2):
            y, x = pos0[i, d]
            vy, vx = np.sin(theta[i, d]), np.cos(theta[i, d])
            for t in range(40):
                y += vy * 0.1
                x += vx * 0.1
                if x <= 0:
                    x, vx = 0.0, -vx
                if x >= 1:
                    x, vx = 1.0, -vx
                if y <= 0:
                    y, vy = 0.0, -vy
                if y >= 1:
                    y, vy = 1.0, -vy
                assert traj[i, t, d, 0] == pytest.approx(y, abs=1e-12)
                assert traj[i, t, d, 1] == pytest.approx(x, abs=1e-12)
    assert traj.min() == 0.0 and traj.max() == 1.0


def test_generator_shapes_range_and_speed(digits):
    v, corners = generate_moving_mnist(digits, 16, 20, 3, return_positions=True)
    assert v.shape == (16, 20, 1, 64, 64) and v.dtype == np.uint8
    assert corners.min() >= 0 and corners.max() <= 36
    step = np.abs(np.diff(corners, axis=1))
    assert step.max() <= 4  # 0.1 * 36 = 3.6 px per frame, truncated
    # same seed, same videos; different seed, different videos
    assert np.array_equal(v, generate_moving_mnist(digits, 16, 20, 3))
    assert not np.array_equal(v, generate_moving_mnist(digits, 16, 20, 4))


def test_generator_returns_each_digit_alone(digits):
    """return_objects: each digit drawn alone at its own corners, the same videos and corners from the same seed."""
    v, corners = generate_moving_mnist(digits, 6, 5, 3, num_digits=3, return_positions=True)
    v2, corners2, objects = generate_moving_mnist(digits, 6, 5, 3, num_digits=3, return_positions=True,
                                                  return_objects=True)
    assert objects.shape == (6, 5, 3, 1, 64, 64) and objects.dtype == np.uint8
    assert np.array_equal(v, v2) and np.array_equal(corners, corners2) and np.array_equal(objects.max(axis=2), v)
    for k in range(3):  # digit k's pixels lie inside its 28x28 box at its corner, and nothing outside it
        for i, t in ((0, 0), (5, 4)):
            y, x = corners[i, t, k]
            inside = np.zeros((64, 64), bool)
            inside[y : y + 28, x : x + 28] = True
            assert objects[i, t, k, 0][inside].max() > 0 and objects[i, t, k, 0][~inside].max() == 0
    only_videos, only_objects = generate_moving_mnist(digits, 6, 5, 3, num_digits=3, return_objects=True)
    assert np.array_equal(only_videos, v) and np.array_equal(only_objects, objects)


def test_digits_combine_by_max():
    digits = np.stack([np.full((28, 28), 100, np.uint8), np.full((28, 28), 200, np.uint8)])
    corners = np.array([[[[0, 0], [10, 10]]]])  # (N=1, T=1, D=2, 2)
    out = render_max(digits, np.array([[0, 1]]), corners, 64)
    assert out[0, 0, 0, 10:28, 10:28].min() == 200 and out[0, 0, 0, 0:10, 0:28].max() == 100
    assert out[0, 0, 0, 38:].max() == 0


def test_standard_test_file_loading(test_seq, tmp_path):
    path, arr = test_seq
    dm = MovingMNISTDataModule(root=str(tmp_path / "r"), test_file=str(path), batch_size=3, num_val=5,
                               eval_batch_size=4, download=False)
    dm.prepare_data()
    dm.setup("test")
    assert len(dm.test_set) == 7
    clip = dm.test_set[2]
    assert clip.shape == (20, 1, 64, 64) and clip.dtype == torch.float32
    assert torch.equal(clip, torch.from_numpy(arr[:, 2, None].astype(np.float32)) / 255)
    batch = next(iter(dm.test_dataloader()))
    assert batch.shape == (4, 20, 1, 64, 64)
    # eval_seq_len 10 takes the first 10 frames; num_test limits the clips
    dm2 = MovingMNISTDataModule(root=str(tmp_path / "r"), test_file=str(path), eval_seq_len=10, num_test=3,
                                num_val=5, download=False)
    dm2.setup("test")
    assert len(dm2.test_set) == 3 and torch.equal(dm2.test_set[2], clip[:10])


def test_train_stream_and_fixed_val(test_seq, tmp_path):
    path, _ = test_seq
    kw = dict(root=str(tmp_path / "r"), test_file=str(path), batch_size=3, seq_len=6, num_val=5, eval_seq_len=8)
    dm = MovingMNISTDataModule(**kw)
    dm.prepare_data()
    dm.setup("fit")
    b = next(iter(dm.train_dataloader()))
    assert b.shape == (3, 6, 1, 64, 64) and b.dtype == torch.float32 and 0 <= b.min() and b.max() <= 1
    assert torch.equal(torch.round(b * 255) / 255, b)
    val = torch.stack([dm.val_set[i] for i in range(5)])
    assert val.shape == (5, 8, 1, 64, 64) and val.max() > 0
    dm_b = MovingMNISTDataModule(**kw)
    dm_b.setup("validate")
    assert torch.equal(val, torch.stack([dm_b.val_set[i] for i in range(5)]))
    # val differs from the test clips and from other eval seeds
    dm_c = MovingMNISTDataModule(**dict(kw, eval_seed=7))
    dm_c.setup("validate")
    assert not torch.equal(val, torch.stack([dm_c.val_set[i] for i in range(5)]))


def test_fixed_finite_training_set(tmp_path):
    """num_train=N (Enc-ODE-Dec's n_vids): every pass is a permutation of the same N clips, N // batch_size batches,
    the set is cached and the same for the same seed; a set that cannot fill a batch is refused."""
    kw = dict(root=str(tmp_path), test_source="generated", num_test=2, num_val=2, num_digits=1, batch_size=3,
              seq_len=4, num_train=7)
    dm = MovingMNISTDataModule(**kw)
    dm.prepare_data()
    dm.setup("fit")
    stream = iter(dm.train_dataloader())
    passes = [torch.cat([next(stream) for _ in range(2)]) for _ in range(3)]  # 7 // 3 = 2 batches per pass
    assert passes[0].shape == (6, 4, 1, 64, 64)
    fixed = torch.from_numpy(dm.generate_eval_set("train")).float() / 255
    assert fixed.shape == (7, 4, 1, 64, 64)
    rows = [[int(torch.nonzero((fixed == clip).flatten(1).all(1))[0]) for clip in p] for p in passes]
    assert all(len(set(r)) == 6 for r in rows)  # no clip twice within a pass, every clip from the fixed set
    assert len({tuple(r) for r in rows}) > 1  # reshuffled between passes
    same = MovingMNISTDataModule(**kw).generate_eval_set("train")
    assert np.array_equal(same, dm.generate_eval_set("train"))
    assert not np.array_equal(MovingMNISTDataModule(**dict(kw, seed=1)).generate_eval_set("train"), same)
    with pytest.raises(ValueError, match="num_train=2 clips cannot fill one batch of batch_size=3"):
        MovingMNISTDataModule(**dict(kw, num_train=2))


def test_generated_test_source(tmp_path):
    dm = MovingMNISTDataModule(root=str(tmp_path), test_source="generated", num_test=4, num_val=2,
                               eval_seq_len=30, num_digits=3, image_size=48)
    dm.prepare_data()
    dm.setup("test")
    assert len(dm.test_set) == 4 and dm.test_set[0].shape == (30, 1, 48, 48)
    assert not (tmp_path / "mnist_test_seq.npy").exists()


def test_incompatible_standard_settings():
    with pytest.raises(ValueError, match="eval_seq_len=30 > 20.*test_source='generated'"):
        MovingMNISTDataModule(eval_seq_len=30)
    with pytest.raises(ValueError, match="num_digits=3"):
        MovingMNISTDataModule(num_digits=3)


def test_missing_test_file_names_the_command(tmp_path):
    dm = MovingMNISTDataModule(root=str(tmp_path / "mm"), download=False, num_val=2)
    with pytest.raises(DatasetNotFoundError) as e:
        dm.prepare_data()
    msg = str(e.value)
    assert f"vpzoo data prepare moving_mnist --root {tmp_path / 'mm'}" in msg
    assert "mnist_test_seq.npy" in msg and "cs.toronto.edu" in msg


def test_download_from_loopback(test_seq, tmp_path, monkeypatch):
    _, arr = test_seq
    good = tmp_path / "good.npy"
    np.save(good, arr)
    bad = tmp_path / "bad.npy"
    np.save(bad, arr[:, :, :32])
    with LoopbackServer({"/m.npy": good.read_bytes(), "/bad.npy": bad.read_bytes()}) as srv:
        dm = MovingMNISTDataModule(root=str(tmp_path / "dl"), url=f"{srv.url}/m.npy", num_val=2)
        dm.prepare_data()
        target = tmp_path / "dl" / "mnist_test_seq.npy"
        assert np.array_equal(np.load(target), arr)
        meta = json.loads((tmp_path / "dl" / "mnist_test_seq.npy.json").read_text())
        assert meta["shape"] == [20, 7, 64, 64] and len(meta["sha256"]) == 64
        dm_bad = MovingMNISTDataModule(root=str(tmp_path / "dl2"), url=f"{srv.url}/bad.npy", num_val=2)
        with pytest.raises(ValueError, match="not Moving MNIST's test set"):
            dm_bad.prepare_data()
        assert not (tmp_path / "dl2" / "mnist_test_seq.npy").exists()
        # a URL with a published checksum (the official one, stood in for by the loopback URL) must match it
        import vpzoo.data.moving_mnist as mm

        assert re.fullmatch("[0-9a-f]{64}", mm.PUBLISHED_SHA256[mm.MNIST_TEST_SEQ_URL])
        monkeypatch.setitem(mm.PUBLISHED_SHA256, f"{srv.url}/m.npy", "0" * 64)
        dm_pinned = MovingMNISTDataModule(root=str(tmp_path / "dl4"), url=f"{srv.url}/m.npy", num_val=2)
        with pytest.raises(DatasetNotFoundError, match="sha256"):
            dm_pinned.prepare_data()
        assert not list((tmp_path / "dl4").glob("mnist_test_seq.npy*"))  # no half or wrong file left behind
        monkeypatch.setitem(mm.PUBLISHED_SHA256, f"{srv.url}/m.npy", sha256_file(good))
        dm_pinned.prepare_data()
        assert np.array_equal(np.load(tmp_path / "dl4" / "mnist_test_seq.npy"), arr)
        dm_404 = MovingMNISTDataModule(root=str(tmp_path / "dl3"), url=f"{srv.url}/none.npy", num_val=2)
        with pytest.raises(DatasetNotFoundError, match="HTTP 404.*vpzoo data prepare moving_mnist"):
            dm_404.prepare_data()
