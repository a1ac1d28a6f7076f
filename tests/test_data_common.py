"""Tests for the pieces the dataset modules share (vpzoo.data._common)."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch

from vpzoo.data._common import (
    BatchStream,
    EpochLoader,
    FrameClipSet,
    LazyArrays,
    MappedNpy,
    UInt8ClipArray,
    check_loader_options,
    check_optional_int,
    check_path,
    clip_names,
    clip_starts,
    ensure_cached_clips,
    fixed_clip_list,
    prepared_frames,
    split_rng,
)


def test_argument_checks_name_expected_and_given():
    assert check_optional_int("num_test", None, 1) is None and check_optional_int("num_test", np.int64(3), 1) == 3
    with pytest.raises(ValueError, match=r"^num_test must be >= 1, got 0$"):
        check_optional_int("num_test", 0, 1)
    check_path("root", "x")
    check_path("root", None, optional=True)
    with pytest.raises(ValueError, match=r"^root must be a directory path, got None$"):
        check_path("root", None)
    with pytest.raises(ValueError, match=r"^root must be a directory path or None, got 3$"):
        check_path("root", 3, optional=True)
    check_loader_options(None, 0, seed=0, eval_seed=42)
    # checked in a fixed order: eval_batch_size, num_workers, then the seeds as given
    with pytest.raises(ValueError, match=r"^eval_batch_size must be >= 1, got 0$"):
        check_loader_options(0, -1, seed=-1)
    with pytest.raises(ValueError, match=r"^num_workers must be >= 0, got -1$"):
        check_loader_options(None, -1, seed=-1)
    with pytest.raises(ValueError, match=r"^seed must be >= 0, got -1$"):
        check_loader_options(None, 0, seed=-1, eval_seed=-1)
    with pytest.raises(ValueError, match=r"^eval_seed must be an integer >= 0, got None$"):
        check_loader_options(None, 0, seed=0, eval_seed=None)


def test_split_rng_streams():
    a = split_rng(42, "val").integers(0, 2**31, size=4)
    assert np.array_equal(a, np.random.default_rng(np.random.SeedSequence([42, 1])).integers(0, 2**31, size=4))
    assert not np.array_equal(a, split_rng(42, "test").integers(0, 2**31, size=4))


class _Counter(BatchStream):
    def make_batch(self, rng: np.random.Generator) -> torch.Tensor:
        return torch.from_numpy(rng.integers(0, 100, size=3))


def test_batch_stream_method_or_callable_and_seeding():
    s = _Counter(seed=3, rank=1)
    first = next(iter(s))
    assert torch.equal(first, torch.from_numpy(s.make_rng(0).integers(0, 100, size=3)))
    assert torch.equal(first, next(s.batches(0)))
    s.set_start(5)
    assert torch.equal(next(iter(s)), next(s.batches(5))) and not torch.equal(next(iter(s)), first)
    same = BatchStream(lambda rng: torch.from_numpy(rng.integers(0, 100, size=3)), seed=3, rank=1)
    assert torch.equal(next(iter(same)), first)
    assert torch.equal(next(iter(pickle.loads(pickle.dumps(_Counter(seed=3, rank=1))))), first)
    with pytest.raises(NotImplementedError, match="make_batch"):
        next(iter(BatchStream()))
    with pytest.raises(ValueError, match=r"^rank must be >= 0, got -1$"):
        _Counter(rank=-1)


@pytest.mark.parametrize("workers", [0, 2])
def test_epoch_loader_continues_the_stream_for_any_number_of_workers(workers):
    """Batch i of the stream is the same with 0 or 2 workers, and each pass starts where the last one stopped."""
    from itertools import islice

    expected = [next(_Counter(seed=3).batches(i)) for i in range(7)]
    loader = EpochLoader(_Counter(seed=3), batch_size=None, num_workers=workers)
    got = list(islice(iter(loader), 3)) + list(islice(iter(loader), 4))
    assert all(torch.equal(a, b) for a, b in zip(got, expected, strict=True))
    resumed = EpochLoader(_Counter(seed=3), batch_size=None, num_workers=workers, position=lambda: 3)
    assert all(torch.equal(a, b) for a, b in zip(islice(iter(resumed), 4), expected[3:], strict=True))


def test_mapped_arrays_reopen_after_pickling(tmp_path):
    clips = np.arange(2 * 3 * 1 * 2 * 2, dtype=np.uint8).reshape(2, 3, 1, 2, 2)
    np.save(tmp_path / "c.npy", clips)
    m = MappedNpy(tmp_path / "c.npy")
    assert isinstance(m.array, np.memmap) and pickle.loads(pickle.dumps(m))._array is None
    ds = UInt8ClipArray(tmp_path / "c.npy")
    item = ds[1]
    assert len(ds) == 2 and item.dtype == torch.float32 and item.shape == (3, 1, 2, 2)
    assert torch.equal(item * 255, torch.from_numpy(clips[1]).float())
    assert torch.equal(pickle.loads(pickle.dumps(ds))[1], item)
    in_memory = UInt8ClipArray(clips)
    assert in_memory.path is None and torch.equal(pickle.loads(pickle.dumps(in_memory))[1], item)
    with pytest.raises(ValueError, match=r"expected a uint8 \(N, T, C, H, W\) array, got float32"):
        UInt8ClipArray(clips.astype(np.float32))
    arrays = LazyArrays({"c": tmp_path / "c.npy"})
    assert "c" in arrays and np.array_equal(arrays["c"], clips) and arrays.paths == {"c": str(tmp_path / "c.npy")}


def test_cached_clips_written_once_with_sidecar(tmp_path):
    calls = []

    def generate():
        calls.append(1)
        return np.full((2, 3, 1, 4, 4), 7, np.uint8)

    path = tmp_path / "val-x.npy"
    shape = (2, 3, 1, 4, 4)
    assert ensure_cached_clips(path, {"a": 1}, shape, generate) == path
    ensure_cached_clips(path, {"a": 1}, shape, generate)
    assert len(calls) == 1 and np.load(path).shape == shape
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["a"] == 1 and meta["shape"] == list(shape) and meta["dtype"] == "uint8" and len(meta["sha256"]) == 64
    ensure_cached_clips(path, {"a": 1}, (3, 3, 1, 4, 4), lambda: np.zeros((3, 3, 1, 4, 4), np.uint8))  # stale: redone
    assert np.load(path).shape == (3, 3, 1, 4, 4)


def test_frame_store_clips_and_fixed_lists(tmp_path):
    videos = [dict(name="a", offset=0, length=5), dict(name="b", offset=5, length=4)]
    frames = np.arange(9 * 2 * 2, dtype=np.uint8).reshape(9, 1, 2, 2)
    folder = tmp_path / "store"
    folder.mkdir()
    np.save(folder / "frames.npy", frames)
    (folder / "videos.json").write_text(json.dumps(dict(version=1, videos=videos)))
    assert prepared_frames(folder, 1, (1, 2, 2)) is not None
    assert prepared_frames(folder, 2, (1, 2, 2)) is None and prepared_frames(folder, 1, (1, 3, 3)) is None
    assert prepared_frames(tmp_path / "none", 1, (1, 2, 2)) is None

    starts = np.array([6, 1, 0])
    assert clip_names(videos, starts) == [("b", 1), ("a", 1), ("a", 0)]
    assert np.array_equal(clip_starts(videos, clip_names(videos, starts)), starts)
    ds = FrameClipSet(folder / "frames.npy", starts, 3)
    assert len(ds) == 3 and torch.equal(ds[0] * 255, torch.from_numpy(frames[6:9]).float())

    draws = []

    def draw(rng):
        draws.append(1)
        return np.sort(rng.choice([0, 1, 2, 5, 6], size=2, replace=False))

    clips = fixed_clip_list(tmp_path / "eval", "val", dict(dataset="t", num=2), videos, 42, draw)
    again = fixed_clip_list(tmp_path / "eval", "val", dict(dataset="t", num=2), videos, 42, draw)
    assert clips == again and len(draws) == 1 and all(isinstance(c, tuple) for c in again)
    (stored,) = (tmp_path / "eval").glob("val-*.json")
    assert list(json.loads(stored.read_text())) == ["dataset", "num", "eval_seed", "videos", "clips"]
    assert fixed_clip_list(tmp_path / "eval", "test", dict(dataset="t", num=2), videos, 42, draw) != []
    assert len(draws) == 2  # the test list is drawn separately
