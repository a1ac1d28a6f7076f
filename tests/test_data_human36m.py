"""Tests for Human3.6M (vpzoo.data.human36m): user-supplied folder in the official layout, MP4s via PyAV."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vpzoo.data import DatasetNotFoundError
from vpzoo.data.fixtures import write_human36m_fixture
from vpzoo.data.human36m import Human36MDataModule, find_human36m_videos, prepare_human36m


@pytest.fixture(scope="module")
def h36m_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("h36m")
    write_human36m_fixture(root, subjects=(1, 5, 9, 11), num_frames=40)
    (root / "S1" / "Videos" / "_ALL 1.54138969.mp4").write_bytes(b"not a video")  # concatenations are skipped
    with pytest.warns(UserWarning, match=r"no videos for subjects \[6, 7, 8\]"):
        prepare_human36m(root, image_size=32, frame_step=5, progress=False)
    return root


def test_layout_and_preprocessing(h36m_root):
    with pytest.warns(UserWarning):
        videos = find_human36m_videos(h36m_root)
    assert len(videos) == 8 and {v["subject"] for v in videos} == {1, 5, 9, 11}
    assert {v["action"] for v in videos} == {"Walking 1", "Eating"} and {v["camera"] for v in videos} == {"54138969"}
    d = h36m_root / "processed" / "32px_step5"
    meta = json.loads((d / "videos.json").read_text())
    frames = np.load(d / "frames.npy", mmap_mode="r")
    assert all(v["length"] == 8 for v in meta["videos"])  # 40 frames, every 5th
    assert frames.shape == (64, 3, 32, 32) and frames.dtype == np.uint8 and frames.std() > 0


def test_datamodule_splits_and_fixed_clips(h36m_root):
    kw = dict(image_size=32, seq_len=4, eval_seq_len=6, batch_size=3, num_val=5, num_test=7, eval_batch_size=7)
    dm = Human36MDataModule(str(h36m_root), **kw)
    dm.setup()
    b = next(iter(dm.train_dataloader()))
    assert b.shape == (3, 4, 3, 32, 32) and b.dtype == torch.float32 and 0 <= b.min() <= b.max() <= 1
    assert {v["subject"] for v in dm.train_set.make_batch.videos} == {1, 5}
    test = next(iter(dm.test_dataloader()))
    assert test.shape == (7, 6, 3, 32, 32)
    clips = dm.eval_clips("test")
    assert {name.split("/")[0] for name, _ in clips} <= {"S9", "S11"} and all(0 <= s <= 2 for _, s in clips)
    dm2 = Human36MDataModule(str(h36m_root), **dict(kw, seed=5))
    dm2.setup("test")
    assert torch.equal(torch.stack([dm2.test_set[i] for i in range(7)]), test)


def test_errors_explain_the_layout(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"does not exist.*register at http://vision\.imar\.ro"):
        prepare_human36m(tmp_path / "nowhere", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotFoundError, match=r"no Human3\.6M videos.*S1/Videos/<Action>\.<camera>\.mp4"):
        Human36MDataModule(str(tmp_path / "empty")).prepare_data()
    with pytest.raises(DatasetNotFoundError, match=r"vpzoo data prepare human36m --root"):
        Human36MDataModule(str(tmp_path / "empty")).setup("fit")
    write_human36m_fixture(tmp_path / "only_train", subjects=(1,), num_frames=6)
    with pytest.raises(DatasetNotFoundError, match=r"test \(S9, S11\) subjects; found \[1\]"):
        prepare_human36m(tmp_path / "only_train", progress=False)
