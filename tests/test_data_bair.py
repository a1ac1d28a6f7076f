"""Tests for the TFRecord reader and BAIR (vpzoo.data.tfrecord, vpzoo.data.bair), offline with real formats."""

from __future__ import annotations

import io
import json
import struct

import numpy as np
import pytest
import torch
from _loopback import LoopbackServer

from vpzoo.data import DatasetNotFoundError
from vpzoo.data.bair import BAIRDataModule, prepare_bair
from vpzoo.data.fixtures import write_bair_fixture
from vpzoo.data.tfrecord import (
    TFRecordError,
    count_tfrecord,
    crc32c,
    encode_example,
    iter_tfrecord,
    masked_crc32c,
    parse_example,
    write_tfrecord,
)


# ------------------------------------------------------------------------------------------------ tfrecord
def test_crc32c_known_values():
    assert crc32c(b"") == 0 and crc32c(b"123456789") == 0xE3069283
    assert crc32c(bytes(32)) == 0x8A9136AA  # RFC 3720 B.4 test vectors
    assert crc32c(bytes([0xFF] * 32)) == 0x62A8AB43
    data = np.random.default_rng(0).integers(0, 256, 100_003, dtype=np.uint8).tobytes()
    assert crc32c(data[50_000:], crc32c(data[:50_000])) == crc32c(data)  # block path == incremental byte path
    tb = pytest.importorskip("tensorboard.summary.writer.record_writer")
    for n in (0, 7, 4096, 100_003):
        assert masked_crc32c(data[:n]) == tb.masked_crc32c(data[:n])


def test_tfrecord_framing_roundtrip_and_tensorboard_writer(tmp_path):
    recs = [b"", b"abc", bytes(range(256)) * 40]
    path = write_tfrecord(tmp_path / "a.tfrecords", recs)
    with open(path, "rb") as f:
        assert list(iter_tfrecord(f)) == recs
    with open(path, "rb") as f:
        assert count_tfrecord(f) == 3
    tb = pytest.importorskip("tensorboard.summary.writer.record_writer")
    buf = io.BytesIO()
    w = tb.RecordWriter(buf)
    for r in recs:
        w.write(r)
    assert buf.getvalue() == path.read_bytes()  # byte-identical to TensorBoard's TFRecord writer


def test_corrupt_and_truncated_records_are_rejected(tmp_path):
    raw = bytearray(write_tfrecord(tmp_path / "a.tfrecords", [b"x" * 100, b"y" * 100]).read_bytes())
    bad = bytearray(raw)
    bad[12 + 100 + 4 + 12 + 50] ^= 0xFF  # a data byte of record 1
    with pytest.raises(TFRecordError, match="f.tfrecords: bad data CRC in record 1"):
        list(iter_tfrecord(io.BytesIO(bytes(bad)), name="f.tfrecords"))
    assert len(list(iter_tfrecord(io.BytesIO(bytes(bad)), verify_crc=False))) == 2
    hdr = bytearray(raw)
    hdr[0] ^= 1
    with pytest.raises(TFRecordError, match="bad length CRC in record 0"):
        list(iter_tfrecord(io.BytesIO(bytes(hdr))))
    with pytest.raises(TFRecordError, match="record 1 is truncated"):
        list(iter_tfrecord(io.BytesIO(bytes(raw[:-10]))))


def _protobuf_example_class():
    pytest.importorskip("google.protobuf")
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    F = descriptor_pb2.FieldDescriptorProto
    fdp = descriptor_pb2.FileDescriptorProto(name="vpzoo_test_feature.proto", package="vpzootest", syntax="proto3")
    for name, typ in (("BytesList", F.TYPE_BYTES), ("FloatList", F.TYPE_FLOAT), ("Int64List", F.TYPE_INT64)):
        fdp.message_type.add(name=name).field.add(name="value", number=1, type=typ, label=F.LABEL_REPEATED)
    feat = fdp.message_type.add(name="Feature")
    feat.oneof_decl.add(name="kind")
    for i, (n, t) in enumerate((("bytes_list", "BytesList"), ("float_list", "FloatList"), ("int64_list", "Int64List"))):
        feat.field.add(name=n, number=i + 1, type=F.TYPE_MESSAGE, type_name=f".vpzootest.{t}",
                       label=F.LABEL_OPTIONAL, oneof_index=0)
    feats = fdp.message_type.add(name="Features")
    entry = feats.nested_type.add(name="FeatureEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    entry.field.add(name="value", number=2, type=F.TYPE_MESSAGE, type_name=".vpzootest.Feature", label=F.LABEL_OPTIONAL)
    feats.field.add(name="feature", number=1, type=F.TYPE_MESSAGE, type_name=".vpzootest.Features.FeatureEntry",
                    label=F.LABEL_REPEATED)
    ex = fdp.message_type.add(name="Example")
    ex.field.add(name="features", number=1, type=F.TYPE_MESSAGE, type_name=".vpzootest.Features",
                 label=F.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("vpzootest.Example"))


def test_example_codec_matches_protobuf():
    Example = _protobuf_example_class()
    feats = {"0/image": [b"\x00\x01" * 10, b"zz"], "0/action": np.array([0.5, -1.25, 3e7], np.float32),
             "ids": np.array([0, 1, -5, 2**40], np.int64), "empty_f": np.zeros(0, np.float32)}
    ours = encode_example(feats)
    msg = Example()
    msg.ParseFromString(ours)  # protobuf reads what we write
    assert list(msg.features.feature["0/image"].bytes_list.value) == feats["0/image"]
    assert list(msg.features.feature["ids"].int64_list.value) == [0, 1, -5, 2**40]
    theirs = Example()
    theirs.features.feature["a/b"].float_list.value.extend([1.5, 2.5])
    theirs.features.feature["n"].int64_list.value.extend([-1, 7])
    theirs.features.feature["s"].bytes_list.value.append(b"hello")
    parsed = parse_example(theirs.SerializeToString())  # we read what protobuf writes
    assert np.array_equal(parsed["a/b"], [1.5, 2.5]) and np.array_equal(parsed["n"], [-1, 7])
    assert parsed["s"] == [b"hello"]
    back = parse_example(ours)
    assert back["0/image"] == feats["0/image"] and np.array_equal(back["ids"], feats["ids"])
    assert np.array_equal(back["0/action"], feats["0/action"]) and back["empty_f"].size == 0
    assert set(parse_example(ours, keys=["ids"])) == {"ids"}


def test_unpacked_floats_are_read():
    # FloatList with two unpacked fixed32 values (wire type 5), as proto2 writers may emit
    fl = b"".join(b"\x0d" + struct.pack("<f", v) for v in (1.0, -2.0))
    feature = b"\x12" + bytes([len(fl)]) + fl
    entry = b"\x0a\x01k" + b"\x12" + bytes([len(feature)]) + feature
    features = b"\x0a" + bytes([len(entry)]) + entry
    ex = b"\x0a" + bytes([len(features)]) + features
    assert np.array_equal(parse_example(ex)["k"], [1.0, -2.0])
    with pytest.raises(TFRecordError, match="truncated"):
        parse_example(ex[:-3])


# ------------------------------------------------------------------------------------------------ BAIR
@pytest.fixture(scope="module")
def bair(tmp_path_factory):
    """BAIR tar (2 train files x 3 clips, 4 test clips) downloaded from a loopback server and preprocessed once."""
    src = tmp_path_factory.mktemp("bair-src")
    truth = write_bair_fixture(src, train_files=2, clips_per_file=3, test_clips=4)
    root = tmp_path_factory.mktemp("bair-root")
    with LoopbackServer({"/datasets/bair.tar": truth["tar"].read_bytes()}) as srv:
        with pytest.warns(UserWarning, match="has 4 clips"):
            prepare_bair(root, url=f"{srv.url}/datasets/bair.tar", progress=False)
    return root, truth


def test_download_from_a_url_with_a_published_checksum_must_match_it(tmp_path, monkeypatch):
    import vpzoo.data.bair as bair_module
    from vpzoo.data import DatasetNotFoundError

    assert bair_module.PUBLISHED_SHA256[bair_module.BAIR_URL] == bair_module.BAIR_SHA256
    truth = write_bair_fixture(tmp_path / "src", train_files=1, clips_per_file=2, test_clips=2)
    with LoopbackServer({"/bair.tar": truth["tar"].read_bytes()}) as srv:
        monkeypatch.setitem(bair_module.PUBLISHED_SHA256, f"{srv.url}/bair.tar", "f" * 64)  # stands in for BAIR_URL
        with pytest.raises(DatasetNotFoundError, match="sha256"):
            prepare_bair(tmp_path / "root", url=f"{srv.url}/bair.tar", progress=False)
    assert not list((tmp_path / "root").glob("*.tar*"))  # the mismatching download is not kept


def test_preprocessed_arrays_match_the_records(bair):
    root, truth = bair
    d = root / "processed"
    index = json.loads((d / "index.json").read_text())
    assert index["num_frames"] == 30 and index["splits"]["test"]["num_clips"] == 4
    # train files in numeric order of their names (traj_256 before traj_10240)
    assert [f[0] for f in index["splits"]["train"]["files"]] == ["traj_256_to_258.tfrecords",
                                                                "traj_10240_to_10242.tfrecords"]
    for split, n in (("train", 6), ("test", 4)):
        frames = np.load(d / f"{split}_frames.npy", mmap_mode="r")
        assert frames.shape == (n, 30, 3, 64, 64) and frames.dtype == np.uint8
        actions = np.load(d / f"{split}_actions.npy")
        endeff = np.load(d / f"{split}_endeffector_pos.npy")
        for i, t in enumerate(truth[split]):
            assert np.array_equal(frames[i], t["image_aux1"].transpose(0, 3, 1, 2))
            assert np.array_equal(actions[i], t["action"]) and np.array_equal(endeff[i], t["endeffector_pos"])
    assert (root / "bair_robot_pushing_dataset_v0.tar").is_file()


def test_datamodule_clips(bair):
    root, truth = bair
    dm = BAIRDataModule(str(root), seq_len=12, eval_seq_len=30, batch_size=5, eval_batch_size=3, download=False)
    dm.prepare_data()  # already prepared: no download, no error
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    assert batch.shape == (5, 12, 3, 64, 64) and batch.dtype == torch.float32 and 0 <= batch.min() <= batch.max() <= 1
    starts = [torch.from_numpy(t["image_aux1"][:12].transpose(0, 3, 1, 2).astype(np.float32) / 255)
              for t in truth["train"]]
    assert all(any(torch.equal(b, s) for s in starts) for b in batch)  # SVG: frames 0..11 of a training video
    test = next(iter(dm.test_dataloader()))
    assert test.shape == (3, 30, 3, 64, 64) and len(dm.test_set) == 4
    for i in range(3):
        ref = truth["test"][i]["image_aux1"].transpose(0, 3, 1, 2).astype(np.float32) / 255
        assert torch.equal(test[i], torch.from_numpy(ref))
    assert len(dm.val_set) == 4 and torch.equal(dm.val_set[0], dm.test_set[0])


def test_actions_random_crop_and_savp_val(bair):
    root, truth = bair
    dm = BAIRDataModule(str(root), seq_len=5, eval_seq_len=10, batch_size=8, train_crop="random",
                        val_split="savp", return_actions=True, download=False)
    dm.setup()
    b = next(iter(dm.train_dataloader()))
    assert b["video"].shape == (8, 5, 3, 64, 64) and b["actions"].shape == (8, 5, 4)
    assert b["endeffector_pos"].shape == (8, 5, 3)
    # every item is a window of a training video outside the held-out SAVP file (rows 0-2)
    held = {t["action"].tobytes() for t in truth["train"][:3]}
    for k in range(8):
        a = b["actions"][k].numpy()
        hits = [(i, s) for i, t in enumerate(truth["train"]) for s in range(26) if np.array_equal(t["action"][s:s + 5], a)]
        assert hits and all(i >= 3 for i, _ in hits)
        i, s = hits[0]
        ref = truth["train"][i]["image_aux1"][s:s + 5].transpose(0, 3, 1, 2).astype(np.float32) / 255
        assert torch.equal(b["video"][k], torch.from_numpy(ref))
    assert len(held) == 3
    assert len(dm.val_set) == 3  # the held-out file
    v = dm.val_set[1]
    assert np.array_equal(v["actions"].numpy(), truth["train"][1]["action"][:10])


def test_missing_and_bad_arguments(tmp_path):
    dm = BAIRDataModule(str(tmp_path / "b"), download=False)
    with pytest.raises(DatasetNotFoundError) as e:
        dm.prepare_data()
    assert f"vpzoo data prepare bair --root {tmp_path / 'b'}" in str(e.value)
    assert "bair_robot_pushing_dataset_v0.tar" in str(e.value) and "rail.eecs.berkeley.edu" in str(e.value)
    with pytest.raises(DatasetNotFoundError, match=r"index\.json"):
        dm.setup("test")
    with pytest.raises(ValueError, match="image_size must be 64"):
        BAIRDataModule(str(tmp_path), image_size=128)
    with pytest.raises(ValueError, match="eval_seq_len must be in"):
        BAIRDataModule(str(tmp_path), eval_seq_len=31)


def test_corrupt_tfrecord_in_extracted_tree(tmp_path):
    truth = write_bair_fixture(tmp_path, train_files=1, clips_per_file=2, test_clips=2, tar_name=None)
    f = tmp_path / "softmotion30_44k" / "train" / "traj_256_to_257.tfrecords"
    raw = bytearray(f.read_bytes())
    raw[len(raw) // 4] ^= 0x55  # inside the data of record 0
    f.write_bytes(bytes(raw))
    with pytest.raises(TFRecordError, match=r"train/traj_256_to_257\.tfrecords: bad data CRC in record 0"):
        prepare_bair(tmp_path, download=False, progress=False)
    assert not (tmp_path / "processed" / "index.json").exists()
    assert not list((tmp_path / "processed").glob("train_*.npy"))
    assert len(truth["test"]) == 2
