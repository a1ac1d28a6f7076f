"""Tests for KTH (vpzoo.data.kth): real AVI/zip formats written with PyAV, served by a loopback server."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest
import torch
from _loopback import LoopbackServer

from vpzoo.data import DatasetNotFoundError
from vpzoo.data.fixtures import write_kth_fixture
from vpzoo.data.kth import (
    ACTIONS,
    KTHDataModule,
    decode_kth_video,
    parse_kth_name,
    parse_sequences_file,
    predrnn_windows,
    prepare_kth,
)

PERSONS = (1, 17, 21)
NUM_FRAMES = 24
# person01 jogging: a 5-frame annotated sub-sequence (too short for 6-frame clips) then 19 frames
SEQS = {"person01_jogging_d1": "1-5, 6-24", "person17_boxing_d1": "1-12,13-24"}


@pytest.fixture(scope="module")
def kth_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("kth-src")
    write_kth_fixture(d, persons=PERSONS, num_frames=NUM_FRAMES, sequences=SEQS)
    return {p.name: p.read_bytes() for p in d.iterdir()}


@pytest.fixture(scope="module")
def kth_root(kth_files, tmp_path_factory):
    """KTH downloaded from a loopback server and preprocessed at 64 and 128 px (done once for the module)."""
    root = tmp_path_factory.mktemp("kth-root")
    with LoopbackServer({f"/kth/{k}": v for k, v in kth_files.items()}) as srv:
        with pytest.warns(UserWarning, match="18 videos of 3 persons"):
            dirs = prepare_kth(root, (64, 128), base_url=f"{srv.url}/kth/", progress=False)
        assert sorted(p for p, _ in srv.requests) == sorted(f"/kth/{k}" for k in kth_files)
    assert set(dirs) == {64, 128}
    return root


def test_names_and_sequences_file():
    assert parse_kth_name("person01_walking_d1_uncomp.avi") == (1, "walking", 1)
    assert parse_kth_name("some/dir/person25_handclapping_d4_uncomp.avi") == (25, "handclapping", 4)
    assert parse_kth_name("person01_dancing_d1_uncomp.avi") is None and parse_kth_name("readme.txt") is None
    text = "header line\n\nperson01_boxing_d1\t\tframes\t1-95, 96-185, 186-245\nperson02_walking_d3  frames 5-9\n"
    assert parse_sequences_file(text) == {"person01_boxing_d1": [(0, 95), (95, 185), (185, 245)],
                                          "person02_walking_d3": [(4, 9)]}


def test_preprocessed_arrays(kth_root, kth_files, tmp_path):
    meta = json.loads((kth_root / "processed" / "64px" / "videos.json").read_text())
    videos = meta["videos"]
    assert len(videos) == len(PERSONS) * 6 and meta["sequences_file"]
    assert {v["person"] for v in videos} == set(PERSONS) and {v["action"] for v in videos} == set(ACTIONS)
    assert all(v["length"] == NUM_FRAMES for v in videos)
    assert meta["source_sha256"] == {k: hashlib.sha256(v).hexdigest() for k, v in kth_files.items() if k.endswith(".zip")}
    f64 = np.load(kth_root / "processed" / "64px" / "frames.npy", mmap_mode="r")
    f128 = np.load(kth_root / "processed" / "128px" / "frames.npy", mmap_mode="r")
    assert f64.shape == (18 * NUM_FRAMES, 64, 64) and f128.shape == (18 * NUM_FRAMES, 128, 128)
    assert f64.dtype == np.uint8
    jog = next(v for v in videos if v["name"] == "person01_jogging_d1")
    assert jog["sequences"] == [[0, 5], [5, 24]]
    # the stored frames are exactly what the decoder gives for that AVI, and close to the source drawing
    from vpzoo.data.fixtures import moving_square_video
    from vpzoo.io import write_video

    src = moving_square_video(NUM_FRAMES, 120, 160, 1, seed=7)
    avi = write_video(tmp_path / "person05_boxing_d2_uncomp.avi", src, fps=25)
    dec = decode_kth_video(avi, (64,))[64]
    assert dec.shape == (NUM_FRAMES, 64, 64)
    from PIL import Image

    ref = np.stack([np.asarray(Image.fromarray(f[..., 0]).resize((64, 64), Image.BICUBIC)) for f in src])
    assert np.abs(dec.astype(float) - ref).mean() < 6  # lossy mpeg4 + a different bicubic kernel
    v0 = videos[0]
    z = kth_root / "raw" / f"{v0['action']}.zip"
    import zipfile

    with zipfile.ZipFile(z) as zf:
        zf.extract(f"{v0['name']}_uncomp.avi", tmp_path)
    again = decode_kth_video(tmp_path / f"{v0['name']}_uncomp.avi", (64,))[64]
    assert np.array_equal(again, f64[v0["offset"] : v0["offset"] + v0["length"]])


def _persons_of(dm, starts):
    from vpzoo.data.kth import load_kth_videos

    _, allv = load_kth_videos(dm.root, dm.image_size)
    offsets = np.array([v["offset"] for v in allv])
    idx = np.searchsorted(offsets, starts, side="right") - 1
    return {allv[i]["person"] for i in idx}, [(allv[i], s - allv[i]["offset"]) for i, s in zip(idx, starts)]


@pytest.mark.parametrize("split,train_p,test_p", [("svg", {1, 17}, {21}), ("predrnn", {1}, {17, 21})])
def test_splits_and_clips(kth_root, split, train_p, test_p):
    dm = KTHDataModule(str(kth_root), image_size=64, seq_len=6, eval_seq_len=8, batch_size=5, split=split,
                       num_val=4, num_test=6 if split == "svg" else None, download=False, eval_batch_size=3)
    dm.prepare_data()
    dm.setup()
    assert set(dm.persons("train")).isdisjoint(dm.persons("test"))
    sampler = dm.train_set.make_batch.sampler
    starts = sampler(np.random.default_rng(0), 300) if split == "svg" else sampler
    persons, clips = _persons_of(dm, starts)
    assert persons == train_p
    assert all(off + 6 <= v["length"] for v, off in clips)  # clips never cross a video boundary
    if split == "svg":  # the 5-frame sub-sequence is never used; the other one is
        jog = [off for v, off in clips if v["name"] == "person01_jogging_d1"]
        assert jog and min(jog) >= 5
    else:  # strided windows: clip length for walking, 3 for jogging
        walk = sorted(off for v, off in clips if v["name"] == "person01_walking_d1")
        jog = sorted(off for v, off in clips if v["name"] == "person01_jogging_d1")
        assert walk == [0, 6, 12, 18] and jog == list(range(0, 19, 3))
    test_persons, test_clips = _persons_of(dm, dm.test_set.starts)
    val_persons, _ = _persons_of(dm, dm.val_set.starts)
    assert test_persons <= test_p and val_persons <= test_p and test_persons.isdisjoint(persons)
    if split == "predrnn":  # all windows of the 12 test videos: 4 actions x 3 windows + 2 actions x 6 windows
        assert len(dm.test_set) == 2 * (4 * 3 + 2 * 6)
        _, allv = dm._videos("test")
        assert np.array_equal(dm.test_set.starts, predrnn_windows(allv, 8))
    else:
        assert len(dm.test_set) == 6
    batch = next(iter(dm.train_dataloader()))
    assert batch.shape == (5, 6, 1, 64, 64) and batch.dtype == torch.float32
    assert 0 <= batch.min() and batch.max() <= 1 and batch.std() > 0
    tb = next(iter(dm.test_dataloader()))
    assert tb.shape == (3, 8, 1, 64, 64)
    # test clips are fixed: a fresh module (and a different training seed) gives the same clips
    dm2 = KTHDataModule(str(kth_root), image_size=64, seq_len=6, eval_seq_len=8, batch_size=5, split=split,
                        num_val=4, num_test=6 if split == "svg" else None, download=False, seed=9)
    dm2.setup("test")
    assert np.array_equal(dm2.test_set.starts, dm.test_set.starts)
    assert torch.equal(dm2.test_set[1], dm.test_set[1])
    if split == "svg":  # val and test come from distinct seed streams
        assert set(dm.val_set.starts.tolist()) != set(dm.test_set.starts[:4].tolist())


def test_128px_and_three_channels(kth_root):
    dm = KTHDataModule(str(kth_root), image_size=128, seq_len=6, eval_seq_len=10, batch_size=2, num_val=2,
                       num_test=3, channels=3, download=False)
    dm.setup()
    b = next(iter(dm.train_dataloader()))
    assert b.shape == (2, 6, 3, 128, 128) and torch.equal(b[:, :, 0], b[:, :, 2])
    assert dm.test_set[0].shape == (10, 3, 128, 128)
    eval_json = list((kth_root / "processed" / "128px" / "eval").glob("test-*.json"))
    assert eval_json and all(len(c) == 2 for c in json.loads(eval_json[0].read_text())["clips"])


def test_missing_data_errors(tmp_path):
    dm = KTHDataModule(str(tmp_path / "kth"), download=False)
    with pytest.raises(DatasetNotFoundError) as e:
        dm.prepare_data()
    msg = str(e.value)
    assert f"vpzoo data prepare kth --root {tmp_path / 'kth'}" in msg
    assert "boxing.zip" in msg and "www.nada.kth.se/cvap/actions/boxing.zip" in msg
    with pytest.raises(DatasetNotFoundError, match=r"frames\.npy.*vpzoo data prepare kth"):
        dm.setup("fit")
    with LoopbackServer({}) as srv:  # the host answers 404: the error names the URL and the command
        dm = KTHDataModule(str(tmp_path / "kth2"), base_url=f"{srv.url}/kth/")
        with pytest.raises(DatasetNotFoundError, match=r"HTTP 404.*vpzoo data prepare kth"):
            dm.prepare_data()
    with pytest.raises(ValueError, match="split must be one of"):
        KTHDataModule(str(tmp_path), split="openstl")


def test_extracted_avis_are_used_without_download(kth_files, tmp_path):
    root = tmp_path / "kth"
    (root / "raw").mkdir(parents=True)
    import zipfile

    for name, data in kth_files.items():  # a user who unzipped everything under root/avi
        if name.endswith(".zip"):
            (tmp_path / name).write_bytes(data)
            with zipfile.ZipFile(tmp_path / name) as zf:
                zf.extractall(root / "avi")
    with pytest.warns(UserWarning, match="18 videos"):
        prepare_kth(root, (32,), download=False, progress=False)
    meta = json.loads((root / "processed" / "32px" / "videos.json").read_text())
    assert len(meta["videos"]) == 18 and not meta["sequences_file"]
    shutil.rmtree(root)
