"""The zoo: save/load round trips, checkpoints.yaml, errors, export, and the Hugging Face Hub paths.

Hub tests run huggingface_hub's real client (``hf_hub_download``, ``HfApi.create_commit``) against
(a) a Hugging Face cache layout the test writes itself, read with ``HF_HUB_OFFLINE=1`` in a subprocess that sets
``HF_HOME`` before anything imports huggingface_hub, and (b) a loopback HTTP server (:class:`FakeHub`, started by
the test) that answers the Hub's resolve, repo-creation, pre-upload and commit endpoints. In-process tests point
huggingface_hub at the server by patching ``huggingface_hub.constants`` consistently (endpoint, URL template, cache
directory, offline flag), because it reads ``HF_ENDPOINT``/``HF_HUB_OFFLINE``/``HF_HOME`` once, at import.
Nothing of vpzoo's own loading code is mocked.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import types
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import torch
import yaml

import vpzoo
from vpzoo.models import SVGFP, SVGLP
from vpzoo.zoo import (
    CheckpointUnavailableError,
    ConfigMismatchError,
    CorruptCheckpointError,
    UnknownCheckpointError,
    file_sha256,
)
from vpzoo.zoo.format import read_weights_config
from vpzoo.zoo.sharded import is_index
from vpzoo.zoo.catalog import (
    add_checkpoint,
    make_checkpoint_entry,
    packaged_checkpoints_file,
    read_checkpoints,
    validate_checkpoints,
)

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(n_past=3, n_future=3, codec_width=8, g_dim=16, z_dim=4, rnn_size=32)
METRICS = [
    {"metric": "ssim", "protocol": "svg", "reduction": "best", "num_samples": 2, "context_frames": 3,
     "predicted_frames": 3, "num_sequences": 4, "test_set": "tiny", "value": 0.5, "copy_last": 0.4, "black": 0.6},
    {"metric": "psnr", "protocol": "svg", "num_samples": 2, "value": 12.5},
]
TRAINING = {"config": "tests/assets/tiny_svg_lp.yaml", "steps": 0, "hardware": "none", "time": "0 s"}


# ------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One intra-op thread: on 2 shared cores, 2 threads oversubscribe and run tiny models 20x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_model() -> SVGLP:
    torch.manual_seed(0)
    return SVGLP(**TINY).eval()


@pytest.fixture(scope="module")
def tiny_folder(tiny_model, tmp_path_factory) -> Path:
    return tiny_model.save_pretrained(tmp_path_factory.mktemp("zoo") / "tiny_svg_lp")


@pytest.fixture(scope="module")
def clip() -> torch.Tensor:
    return torch.rand(3, 1, 64, 64, generator=torch.Generator().manual_seed(1))


def same_predictions(a, b, clip, **kwargs) -> bool:
    kw = dict(n_future=3, num_samples=2, seed=5) | kwargs
    return torch.equal(a.predict(clip, **kw), b.predict(clip, **kw))


# ------------------------------------------------------------------------------------------------ local format
def test_save_pretrained_layout_and_round_trip(tiny_model, tiny_folder, clip):
    assert sorted(p.name for p in tiny_folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    doc = json.loads((tiny_folder / "config.json").read_text())
    assert doc["model"] == "svg_lp" and doc["vpzoo_format"] == 1 and doc["dtype"] == "float32"
    assert doc["config"] == dict(tiny_model.hparams)  # the full init kwargs
    card = (tiny_folder / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: vpzoo\n") and file_sha256(tiny_folder / "model.safetensors") in card
    for source in (tiny_folder, tiny_folder / "model.safetensors", str(tiny_folder)):
        loaded = vpzoo.load(source)
        assert isinstance(loaded, SVGLP) and not loaded.training
        assert same_predictions(tiny_model, loaded, clip)
    assert SVGLP.from_pretrained(tiny_folder).zoo_info["sha256"] == file_sha256(tiny_folder / "model.safetensors")
    with pytest.raises(TypeError, match="holds a SVGLP, not a SVGFP"):
        SVGFP.from_pretrained(tiny_folder)


def test_copy_last_round_trip_and_hub_refs(tmp_path, clip):
    from vpzoo.zoo import parse_hub_ref

    baseline = vpzoo.create_model("copy_last", n_past=2)
    loaded = vpzoo.load(baseline.save_pretrained(tmp_path / "copy_last") / "config.json")
    assert loaded.hparams == baseline.hparams and same_predictions(baseline, loaded, clip)
    for text in ("hf://a/b", "hf://models/a/b"):
        ref = parse_hub_ref(text)
        assert (ref.repo_id, ref.revision, ref.subfolder) == ("a/b", None, None)
    ref = parse_hub_ref("hf://a/b@refs/pr/3/sub/dir")
    assert (ref.repo_id, ref.revision, ref.subfolder) == ("a/b", "refs/pr/3", "sub/dir")
    assert str(parse_hub_ref("hf://a/b@v1.0")) == "hf://a/b@v1.0"
    with pytest.raises(ValueError, match="repository id 'owner/repo'"):
        parse_hub_ref("hf://just-a-name")


def test_lone_safetensors_file_carries_its_config(tiny_model, tiny_folder, tmp_path, clip):
    lone = tmp_path / "weights.safetensors"
    lone.write_bytes((tiny_folder / "model.safetensors").read_bytes())
    assert same_predictions(tiny_model, vpzoo.load(lone), clip)


def test_float16_weights_load_as_float32(tiny_model, tmp_path, clip):
    folder = tiny_model.save_pretrained(tmp_path / "fp16", dtype="float16")
    from safetensors import safe_open

    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        assert f.get_tensor("frame_predictor.embed.weight").dtype == torch.float16
    full = tiny_model.save_pretrained(tmp_path / "fp32")
    assert (folder / "model.safetensors").stat().st_size < 0.55 * (full / "model.safetensors").stat().st_size
    loaded = vpzoo.load(folder)
    assert {p.dtype for p in loaded.parameters()} == {torch.float32}
    out, ref = loaded.predict(clip, 3, num_samples=2, seed=5), tiny_model.predict(clip, 3, num_samples=2, seed=5)
    assert (out - ref).abs().max() < 2e-2


def test_device_and_map_location(tiny_folder):
    model = vpzoo.load(tiny_folder, map_location="cpu", device=torch.device("cpu"))
    assert model.device.type == "cpu"
    with pytest.raises(TypeError, match="map_location must be a str or torch.device"):
        vpzoo.load(tiny_folder, map_location={"cuda:0": "cpu"})
    with pytest.raises(ValueError, match="not a device"):
        vpzoo.load(tiny_folder, device="gpu7")


# ------------------------------------------------------------------------------------------------ errors
def test_unknown_name_suggests_closest_checkpoints(tiny_folder, tmp_path):
    registry = write_registry(tmp_path, tiny_folder, names=["tiny_svg_lp", "tiny_svg_fp"])
    with pytest.raises(UnknownCheckpointError, match=r"did you mean 'tiny_svg_lp'") as info:
        vpzoo.load("tiny_svg_lq", checkpoints=registry)
    assert isinstance(info.value, KeyError) and "tiny_svg_fp" in str(info.value)
    with pytest.raises(UnknownCheckpointError, match=r"model architecture: vpzoo.create_model\('svg_lp'\)"):
        vpzoo.load("svg_lp", checkpoints=registry)
    with pytest.raises(UnknownCheckpointError, match=r"write 'hf://owner/repo'"):
        vpzoo.load("owner/repo", checkpoints=registry)
    with pytest.raises(CheckpointUnavailableError, match="no such file or folder"):
        vpzoo.load(tmp_path / "missing.safetensors")


def test_missing_and_corrupt_local_files(tiny_folder, tmp_path):
    folder = tmp_path / "copy"
    folder.mkdir()
    with pytest.raises(CheckpointUnavailableError, match="has no model.safetensors"):
        vpzoo.load(folder)
    (folder / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(CorruptCheckpointError, match="not a readable safetensors file"):
        vpzoo.load(folder)
    (folder / "model.safetensors").write_bytes((tiny_folder / "model.safetensors").read_bytes())
    (folder / "config.json").write_text("{not json")
    with pytest.raises(CorruptCheckpointError, match="not valid JSON"):
        vpzoo.load(folder)
    (folder / "config.json").write_text((tiny_folder / "config.json").read_text())
    with pytest.raises(CorruptCheckpointError, match="sha256 mismatch"):
        vpzoo.load(folder, sha256="0" * 64)
    assert vpzoo.load(folder, sha256=file_sha256(folder / "model.safetensors")) is not None


def test_config_that_does_not_match_the_weights_is_named(tiny_folder, tmp_path):
    folder = tmp_path / "mismatch"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes((tiny_folder / "model.safetensors").read_bytes())
    doc = json.loads((tiny_folder / "config.json").read_text())
    doc["config"]["g_dim"] = 24
    (folder / "config.json").write_text(json.dumps(doc))
    with pytest.raises(ConfigMismatchError, match=r"shape mismatches: .*weights \(16, ") as info:
        vpzoo.load(folder)
    assert isinstance(info.value, ValueError)
    doc["config"]["g_dim"] = 16
    doc["model"] = "svg_fp"  # SVG-FP has no learned prior: the prior's weights are unexpected
    (folder / "config.json").write_text(json.dumps(doc))
    with pytest.raises(ConfigMismatchError, match=r"unexpected keys \(in the weights, not in the model\): prior\."):
        vpzoo.load(folder)
    assert isinstance(vpzoo.load(folder, strict=False), SVGFP)
    doc["model"], doc["config"]["no_such_arg"] = "svg_lp", 1
    (folder / "config.json").write_text(json.dumps(doc))
    with pytest.raises(ConfigMismatchError, match=r"\['no_such_arg'\] are not arguments of SVGLP"):
        vpzoo.load(folder)


# ------------------------------------------------------------------------------------------------ registry
def write_registry(tmp_path: Path, folder: Path, names=("tiny_svg_lp",), **entry_kwargs) -> Path:
    """A checkpoints.yaml in tmp_path whose entries use the weights of ``folder`` copied under weights/."""
    registry = tmp_path / "checkpoints.yaml"
    registry.write_text("# test registry\nformat_version: 1\ncheckpoints: []\n")
    for name in names:
        entry = make_checkpoint_entry(folder, name=name, dataset="smmnist", metrics=METRICS, training=TRAINING,
                                      copy_to=f"weights/{name}.safetensors", path=registry, **entry_kwargs)
        add_checkpoint(entry, registry)
    return registry


def test_registry_entry_loads_and_is_checked(tiny_model, tiny_folder, tmp_path, monkeypatch, clip):
    registry = write_registry(tmp_path, tiny_folder)
    text = registry.read_text()
    assert text.startswith("# test registry\n")
    entry = yaml.safe_load(text)["checkpoints"][0]
    assert entry["weights"] == {"source": "file", "path": "weights/tiny_svg_lp.safetensors",
                                "sha256": file_sha256(tiny_folder / "model.safetensors"),
                                "size": (tiny_folder / "model.safetensors").stat().st_size, "dtype": "float32"}
    assert (entry["context_frames"], entry["future_frames"], entry["image_size"], entry["channels"]) == (3, 3, 64, 1)
    assert validate_checkpoints(registry) == ["tiny_svg_lp"]
    monkeypatch.setenv("VPZOO_CHECKPOINTS", str(registry))
    assert vpzoo.list_checkpoints() == ["tiny_svg_lp"] and vpzoo.list_checkpoints("svg*") == []
    assert vpzoo.list_checkpoints(model="svg_lp", dataset="smmnist") == ["tiny_svg_lp"]
    model = vpzoo.load("tiny_svg_lp")
    assert same_predictions(tiny_model, model, clip) and model.zoo_info["name"] == "tiny_svg_lp"
    # the card of a re-saved registry checkpoint carries the entry's metrics and recipe
    card = (model.save_pretrained(tmp_path / "resaved") / "README.md").read_text()
    assert "| ssim | 0.5000 | copy_last 0.4000; all-black frame 0.6000 | svg | best of 2 |" in card
    assert "tests/assets/tiny_svg_lp.yaml" in card
    # a flipped byte in the packaged weights is caught
    weights = tmp_path / "weights" / "tiny_svg_lp.safetensors"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CorruptCheckpointError, match="sha256 mismatch.*Reinstall vpzoo"):
        vpzoo.load("tiny_svg_lp")
    with pytest.raises(ValueError, match="sha256 of"):
        validate_checkpoints(registry)
    weights.unlink()
    with pytest.raises(CheckpointUnavailableError, match="weights file .* is missing"):
        vpzoo.load("tiny_svg_lp")


def test_registry_schema_errors_are_listed(tiny_folder, tmp_path):
    registry = write_registry(tmp_path, tiny_folder)
    doc = yaml.safe_load(registry.read_text())
    entry = doc["checkpoints"][0]
    entry["context_frames"] = 5
    entry["weights"]["sha256"] = "xyz"
    entry["metrics"] = []
    del entry["license"]
    registry.write_text(yaml.safe_dump(doc))
    with pytest.raises(ValueError) as info:
        read_checkpoints(registry)
    assert "missing 'license'" in str(info.value)
    entry["license"] = "MIT"
    registry.write_text(yaml.safe_dump(doc))
    with pytest.raises(ValueError) as info:
        read_checkpoints(registry)
    message = str(info.value)
    for expected in ("context_frames = 5 but config.n_past = 3", "sha256 must be 64", "at least one metric"):
        assert expected in message
    entry.update(context_frames=3, metrics=METRICS, weights=dict(entry["weights"], source="hub", repo="a/b",
                 filename="model.safetensors", revision="main", sha256="0" * 64))
    del entry["weights"]["path"]
    registry.write_text(yaml.safe_dump(doc))
    with pytest.raises(ValueError, match="revision must pin a 40-hex commit"):
        read_checkpoints(registry)
    entry["weights"]["revision"] = "0" * 40
    entry["training"]["batch"] = 0.5  # the clips per step: an int
    registry.write_text(yaml.safe_dump(doc))
    with pytest.raises(ValueError, match=r"training.batch must be int, got 0.5"):
        read_checkpoints(registry)
    entry["training"]["batch"] = 16
    entry["queue"] = {"config": "configs/x.yaml", "paper_steps": 10, "paper_batch": 4, "steps_trained": 2,
                      "batch_trained": 0, "ship_bar": {"benchmark": "smmnist_svg", "metric": "ssim",
                                                       "must_beat": ["copy_last"]}, "priority": 1, "data": "x"}
    registry.write_text(yaml.safe_dump(doc))
    with pytest.raises(ValueError, match=r"queue.batch_trained must be >= 1, got 0"):
        read_checkpoints(registry)
    entry["queue"]["batch_trained"] = 16
    registry.write_text(yaml.safe_dump(doc))
    assert read_checkpoints(registry)["tiny_svg_lp"]["queue"]["batch_trained"] == 16


def test_every_entry_of_the_real_checkpoints_file_loads_and_matches_its_sha256(clip):
    """Every entry of the packaged checkpoints.yaml loads, matches its sha256 and size limit, and predicts."""
    real = packaged_checkpoints_file()
    assert (ROOT / "checkpoints.yaml").resolve() == real.resolve(), "top-level checkpoints.yaml must be the packaged file"
    names = validate_checkpoints(real)  # schema, config keys, file sizes and sha256
    for name in names:
        entry = read_checkpoints(real)[name]
        if entry["weights"]["source"] == "official":  # the authors' files: tests/test_official.py (loopback server)
            continue
        model = vpzoo.load(name, checkpoints=real)
        assert model.zoo_info["sha256"] == entry["weights"]["sha256"]
        if entry["weights"]["source"] == "file":
            assert file_sha256(Path(model.zoo_info["weights"])) == entry["weights"]["sha256"]
            # the lone file carries the registry's config (a constructor argument added later is recorded there
            # too), so it loads on its own into the same model
            if Path(model.zoo_info["weights"]).name.endswith(".safetensors") and not is_index(model.zoo_info["weights"]):
                assert read_weights_config(model.zoo_info["weights"])["config"] == entry["config"]
                alone = vpzoo.load(model.zoo_info["weights"])
                assert all(torch.equal(v, model.state_dict()[k]) for k, v in alone.state_dict().items())
        frames = torch.rand(entry["context_frames"], entry["channels"], entry["image_size"], entry["image_size"])
        out = model.predict(frames, n_future=2, num_samples=1, seed=0)
        assert out.shape == (1, 1, 2, entry["channels"], entry["image_size"], entry["image_size"])
        # packaged weights: at most 25 MB each, read as 25 MiB (the paper-size SVG-LP in float16 is 25.25e6 bytes,
        # 24.1 MiB: its 12.6M parameters cannot be shipped smaller without changing the architecture)
        assert entry["weights"]["size"] <= 25 * 2**20 or entry["weights"]["source"] == "hub"


# ------------------------------------------------------------------------------------------------ export
def test_export_lightning_checkpoint(tiny_model, tmp_path, clip):
    """A checkpoint shaped like `vpzoo fit`'s (LightningCLI hyper_parameters with _class_path) exports and loads."""
    ckpt = tmp_path / "last.ckpt"
    hparams = {"_class_path": "vpzoo.models.svg.SVGLP", **dict(tiny_model.hparams),
               "_instantiator": "lightning.pytorch.cli.instantiate_module"}
    torch.save({"state_dict": tiny_model.state_dict(), "hyper_parameters": hparams, "global_step": 7, "epoch": 0,
                "pytorch-lightning_version": "2.6.0"}, ckpt)
    from vpzoo.cli import main

    assert main(["export", str(ckpt), str(tmp_path / "out"), "--dtype", "float16"]) == 0
    doc = json.loads((tmp_path / "out" / "config.json").read_text())
    assert doc["dtype"] == "float16" and doc["training"]["global_step"] == 7
    assert "Exported from the Lightning checkpoint `last.ckpt` (step 7" in (tmp_path / "out" / "README.md").read_text()
    out = vpzoo.load(tmp_path / "out")
    diff = (out.predict(clip, 3, num_samples=2, seed=5) - tiny_model.predict(clip, 3, num_samples=2, seed=5)).abs()
    assert diff.max() < 2e-2
    assert same_predictions(tiny_model, vpzoo.load(ckpt), clip)  # .ckpt files load directly too
    del hparams["_class_path"]
    torch.save({"state_dict": tiny_model.state_dict(), "hyper_parameters": hparams}, ckpt)
    assert main(["export", str(ckpt), str(tmp_path / "out2")]) == 1  # cannot tell the model: clear error
    assert main(["export", str(ckpt), str(tmp_path / "out2"), "--model", "svg_lp"]) == 0


# ------------------------------------------------------------------------------------------------ Hub
def hub_etag(path: str, data: bytes) -> str:
    """What the Hub names a file by: sha256 for LFS files (weights), git blob sha1 for regular files."""
    if path.endswith(".safetensors"):
        return hashlib.sha256(data).hexdigest()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def folder_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


class FakeHub:
    """A loopback HTTP server answering the Hub endpoints huggingface_hub's download and commit calls use.

    ``repos[repo_id] = {"refs": {branch_or_tag: commit}, "commits": {commit: {path: bytes}}}``. Files listed in
    ``corrupt`` are served with one byte flipped (same size and ETag), as a bad transfer or a bad mirror would.
    ``log`` records every request ``(method, path)``.
    """

    def __init__(self) -> None:
        self.repos: dict[str, dict] = {}
        self.corrupt: set[tuple[str, str]] = set()
        self.log: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_HEAD(self):
                hub._resolve(self, send_body=False)

            def do_GET(self):
                hub._resolve(self, send_body=True)

            def do_POST(self):
                hub._post(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def commit(self, repo_id: str, files: dict[str, bytes], branch: str = "main", tag: str | None = None) -> str:
        with self._lock:
            repo = self.repos.setdefault(repo_id, {"refs": {}, "commits": {}})
            parent = repo["refs"].get(branch)
            tree = {**repo["commits"].get(parent, {}), **files}
            digest = hashlib.sha1(json.dumps([parent, len(repo["commits"])] + sorted(
                (k, hashlib.sha256(v).hexdigest()) for k, v in tree.items())).encode()).hexdigest()
            repo["commits"][digest] = tree
            repo["refs"][branch] = digest
            if tag:
                repo["refs"][tag] = digest
            return digest

    @staticmethod
    def _send(h, status: int, body: bytes = b"", headers: dict | None = None, send_body: bool = True) -> None:
        h.send_response(status)
        for key, value in (headers or {}).items():
            h.send_header(key, value)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if send_body and body:
            h.wfile.write(body)

    def _json(self, h, status: int, obj, headers: dict | None = None) -> None:
        self._send(h, status, json.dumps(obj).encode(), {"Content-Type": "application/json", **(headers or {})},
                   send_body=h.command != "HEAD")

    def _resolve(self, h, send_body: bool) -> None:
        raw = urlsplit(h.path).path
        self.log.append((h.command, unquote(raw)))
        parts = raw.strip("/").split("/")
        if len(parts) < 5 or parts[2] != "resolve":
            return self._json(h, 404, {"error": "not found"}, {"X-Error-Code": "RepoNotFound"})
        repo_id, revision, filename = "/".join(parts[:2]), unquote(parts[3]), unquote("/".join(parts[4:]))
        repo = self.repos.get(repo_id)
        if repo is None:
            return self._json(h, 404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
        commit = repo["refs"].get(revision) or (revision if revision in repo["commits"] else None)
        if commit is None:
            return self._json(h, 404, {"error": "Invalid rev id"}, {"X-Error-Code": "RevisionNotFound"})
        data = repo["commits"][commit].get(filename)
        if data is None:
            return self._json(h, 404, {"error": "Entry not found"},
                              {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit})
        etag = hub_etag(filename, data)
        if (repo_id, filename) in self.corrupt:
            data = data[: len(data) // 2] + bytes([data[len(data) // 2] ^ 0xFF]) + data[len(data) // 2 + 1:]
        self._send(h, 200, data, {"X-Repo-Commit": commit, "ETag": f'"{etag}"',
                                  "Content-Type": "application/octet-stream"}, send_body=send_body)

    def _read_body(self, h) -> bytes:
        if h.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(h.rfile.readline().strip(), 16)
                if size == 0:
                    h.rfile.readline()
                    return out
                out += h.rfile.read(size)
                h.rfile.readline()
        return h.rfile.read(int(h.headers.get("Content-Length") or 0))

    def _post(self, h) -> None:
        path = unquote(urlsplit(h.path).path)
        body = self._read_body(h)
        self.log.append(("POST", path))
        parts = path.strip("/").split("/")
        if path == "/api/repos/create":
            payload = json.loads(body)
            repo_id = f"{payload['organization']}/{payload['name']}"
            if repo_id in self.repos:
                return self._json(h, 409, {"error": "You already created this model repo",
                                           "url": f"{self.endpoint}/{repo_id}"})
            self.repos[repo_id] = {"refs": {}, "commits": {}}
            return self._json(h, 200, {"url": f"{self.endpoint}/{repo_id}"})
        if path == "/api/validate-yaml":
            return self._json(h, 200, {"errors": [], "warnings": []})
        if len(parts) == 6 and parts[:2] == ["api", "models"] and parts[4] == "preupload":
            files = json.loads(body)["files"]
            return self._json(h, 200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                                 for f in files]})
        if len(parts) == 6 and parts[:2] == ["api", "models"] and parts[4] == "commit":
            repo_id, branch = f"{parts[2]}/{parts[3]}", parts[5]
            files = {}
            for line in body.decode().splitlines():
                item = json.loads(line)
                if item["key"] == "file":
                    files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                elif item["key"] != "header":
                    return self._json(h, 400, {"error": f"unsupported commit operation {item['key']}"})
            oid = self.commit(repo_id, files, branch=branch)
            return self._json(h, 200, {"commitOid": oid, "commitUrl": f"{self.endpoint}/{repo_id}/commit/{oid}",
                                       "pullRequestUrl": None})
        return self._json(h, 404, {"error": f"FakeHub does not serve POST {path}"})


@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    """A FakeHub, with huggingface_hub pointed at it and at an empty cache (online)."""
    from huggingface_hub import constants

    hub = FakeHub()
    monkeypatch.setattr(constants, "ENDPOINT", hub.endpoint)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", hub.endpoint + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    yield hub
    hub.close()


@pytest.fixture(scope="module")
def tiny_model_v2(tmp_path_factory) -> SVGLP:
    torch.manual_seed(1)
    return SVGLP(**TINY).eval()


def test_hub_download_revisions_cache_and_offline(fake_hub, tiny_model, tiny_model_v2, tiny_folder, tmp_path,
                                                  monkeypatch, clip):
    from huggingface_hub import constants

    v1 = fake_hub.commit("owner/tiny", folder_files(tiny_folder), tag="v1")
    v2 = fake_hub.commit("owner/tiny", folder_files(tiny_model_v2.save_pretrained(tmp_path / "v2")))
    latest = vpzoo.load("hf://owner/tiny")
    assert same_predictions(latest, tiny_model_v2, clip) and latest.zoo_info["revision"] == v2
    for ref, kwargs in (("hf://owner/tiny@v1", {}), (f"hf://owner/tiny@{v1}", {}), ("hf://owner/tiny", {"revision": "v1"})):
        pinned = vpzoo.load(ref, **kwargs)
        assert same_predictions(pinned, tiny_model, clip) and pinned.zoo_info["revision"] == v1, ref
    with pytest.raises(ValueError, match="two revisions given"):
        vpzoo.load("hf://owner/tiny@v1", revision="main")
    storage = Path(constants.HF_HUB_CACHE) / "models--owner--tiny"
    assert (storage / "refs" / "main").read_text() == v2
    for commit in (v1, v2):
        assert (storage / "snapshots" / commit / "model.safetensors").is_symlink()
        assert (storage / "snapshots" / commit / "config.json").is_file()

    # offline: served from the cache without a single request; not cached: an actionable error
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    fake_hub.log.clear()
    assert same_predictions(vpzoo.load("hf://owner/tiny"), tiny_model_v2, clip)
    assert same_predictions(vpzoo.load(f"hf://owner/tiny@{v1}"), tiny_model, clip)
    with pytest.raises(CheckpointUnavailableError) as info:
        vpzoo.load("hf://owner/never-downloaded")
    assert fake_hub.log == []
    for words in ("HF_HUB_OFFLINE", "HF_HOME / HF_HUB_CACHE", str(constants.HF_HUB_CACHE), "pass that folder"):
        assert words in str(info.value)
    assert isinstance(info.value, FileNotFoundError)


def test_hub_errors_name_the_problem(fake_hub, tiny_folder, monkeypatch):
    from huggingface_hub import constants

    fake_hub.commit("owner/tiny", folder_files(tiny_folder))
    fake_hub.commit("owner/no-config", {"model.safetensors": (tiny_folder / "model.safetensors").read_bytes()})
    cases = [("hf://owner/missing", "repository 'owner/missing' not found"),
             ("hf://owner/tiny@nope", "has no revision 'nope'"),
             ("hf://owner/no-config", "config.json: the repository has no such file")]
    for ref, message in cases:
        with pytest.raises(CheckpointUnavailableError, match=message):
            vpzoo.load(ref)
    with pytest.raises(ValueError, match="model repositories only"):
        vpzoo.load("hf://datasets/owner/tiny")
    # an unreachable Hub (nothing listens on a freshly closed port), online mode, nothing cached for this repo
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setattr(constants, "ENDPOINT", dead)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", dead + "/{repo_id}/resolve/{revision}/{filename}")
    # huggingface_hub retries a refused connection with exponential backoff (about 30 s); skip its waits
    import huggingface_hub.utils._http as hf_http

    monkeypatch.setattr(hf_http, "time", types.SimpleNamespace(sleep=lambda seconds: None))
    with pytest.raises(CheckpointUnavailableError, match=r"could not be reached.*HF_ENDPOINT"):
        vpzoo.load("hf://owner/tiny")
    assert constants.HF_HUB_OFFLINE is False


def test_hub_corrupt_download_raises_and_leaves_nothing_in_the_cache(fake_hub, tiny_model, tiny_folder, clip):
    from huggingface_hub import constants

    commit = fake_hub.commit("owner/tiny", folder_files(tiny_folder))
    fake_hub.corrupt.add(("owner/tiny", "model.safetensors"))
    with pytest.raises(CorruptCheckpointError, match=r"sha256 \(the Hub's LFS hash\) mismatch.*removed it from the cache"):
        vpzoo.load("hf://owner/tiny")
    storage = Path(constants.HF_HUB_CACHE) / "models--owner--tiny"
    left = sorted(p.relative_to(storage).as_posix() for p in storage.rglob("*") if p.is_file() or p.is_symlink())
    weights_blob = storage / "blobs" / hub_etag("model.safetensors", (tiny_folder / "model.safetensors").read_bytes())
    assert not weights_blob.exists() and not (storage / "snapshots" / commit / "model.safetensors").is_symlink()
    assert left == sorted([f"blobs/{hub_etag('config.json', (tiny_folder / 'config.json').read_bytes())}",
                           "refs/main", f"snapshots/{commit}/config.json"]), left  # the good config stays
    fake_hub.corrupt.clear()  # the next attempt downloads again and succeeds
    assert same_predictions(vpzoo.load("hf://owner/tiny"), tiny_model, clip)
    # a sha256 given by the user (or recorded in the registry) is checked the same way
    with pytest.raises(CorruptCheckpointError, match="sha256 mismatch"):
        vpzoo.load("hf://owner/tiny", sha256="0" * 64)
    assert not weights_blob.exists()


def test_registry_entry_on_the_hub_is_pinned_and_verified(fake_hub, tiny_model, tiny_model_v2, tiny_folder,
                                                          tmp_path, clip):
    v1 = fake_hub.commit("org/tiny-svg", folder_files(tiny_folder))
    fake_hub.commit("org/tiny-svg", folder_files(tiny_model_v2.save_pretrained(tmp_path / "v2")))  # main moves on
    registry = write_registry(tmp_path, tiny_folder, names=["tiny_hub"], hub_repo="org/tiny-svg", hub_revision=v1)
    entry = read_checkpoints(registry)["tiny_hub"]
    assert entry["weights"]["source"] == "hub" and entry["weights"]["revision"] == v1
    model = vpzoo.load("tiny_hub", checkpoints=registry)
    assert same_predictions(model, tiny_model, clip) and model.zoo_info["revision"] == v1
    with pytest.raises(ValueError, match="revision= applies to hf:// references only"):
        vpzoo.load("tiny_hub", checkpoints=registry, revision="main")


def test_push_to_hub_then_load_round_trip(fake_hub, tiny_model, clip):
    info = tiny_model.push_to_hub("me/pushed", metrics=METRICS, card={"name": "pushed", "license": "Apache-2.0"})
    repo = fake_hub.repos["me/pushed"]
    assert repo["refs"]["main"] == info.oid
    files = repo["commits"][info.oid]
    assert sorted(files) == ["README.md", "config.json", "model.safetensors"]
    card = files["README.md"].decode()
    assert "license: apache-2.0" in card and 'vpzoo.load("hf://me/pushed")' in card and "| psnr | 12.50 |" in card
    assert ("POST", "/api/repos/create") in fake_hub.log
    loaded = vpzoo.load(f"hf://me/pushed@{info.oid}")
    assert same_predictions(loaded, tiny_model, clip)
    again = tiny_model.push_to_hub("me/pushed")  # existing repository: a new commit
    assert fake_hub.repos["me/pushed"]["refs"]["main"] == again.oid


def populate_hf_cache(hub_cache: Path, repo_id: str, commit: str, files: dict[str, bytes], ref: str = "main") -> None:
    """Write huggingface_hub's cache layout by hand: blobs named by hash, snapshot symlinks, a ref."""
    storage = hub_cache / ("models--" + repo_id.replace("/", "--"))
    for name, data in files.items():
        blob = storage / "blobs" / hub_etag(name, data)
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = storage / "snapshots" / commit / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (storage / "refs").mkdir(parents=True, exist_ok=True)
    (storage / "refs" / ref).write_text(commit)


def test_offline_load_from_a_populated_cache_in_a_fresh_process(tiny_model, tiny_folder, tmp_path, clip):
    """HF_HOME and HF_HUB_OFFLINE=1 set in the environment before huggingface_hub is imported, as a user would."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    populate_hf_cache(tmp_path / "hf_home" / "hub", "someone/tiny", commit, folder_files(tiny_folder))
    torch.save(clip, tmp_path / "clip.pt")
    script = f"""
import torch, vpzoo
clip = torch.load({str(tmp_path / 'clip.pt')!r})
for ref in ("hf://someone/tiny", "hf://someone/tiny@{commit}"):
    model = vpzoo.load(ref)
    torch.save(model.predict(clip, n_future=3, num_samples=2, seed=5), {str(tmp_path / 'out.pt')!r})
    print("loaded", ref, model.zoo_info["revision"])
try:
    vpzoo.load("hf://someone/other")
except vpzoo.zoo.CheckpointUnavailableError as e:
    print("ERROR", e)
"""
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "HF_ENDPOINT": "http://127.0.0.1:9"}  # nothing listens there: any request would fail
    env.pop("HF_HUB_CACHE", None)
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"loaded hf://someone/tiny {commit}" in proc.stdout
    assert torch.equal(torch.load(tmp_path / "out.pt"), tiny_model.predict(clip, n_future=3, num_samples=2, seed=5))
    error = proc.stdout.split("ERROR", 1)[1]
    assert "HF_HUB_OFFLINE is set" in error and str(tmp_path / "hf_home" / "hub") in error
