"""Tests for vpzoo.cache.download_url against a loopback HTTP server (offline)."""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest
from _loopback import LoopbackServer

from vpzoo.cache import DownloadError, download_url, sha256_file

BLOB = np.random.default_rng(0).integers(0, 256, size=300_000, dtype=np.uint8).tobytes()
SHA = hashlib.sha256(BLOB).hexdigest()


@pytest.fixture()
def server():
    with LoopbackServer({"/blob.bin": BLOB}) as srv:
        yield srv


def _get(server, tmp_path, **kw):
    kw.setdefault("progress", False)
    return download_url(f"{server.url}/blob.bin", tmp_path / "out" / "blob.bin", **kw)


def test_full_download_verified_and_cached(server, tmp_path):
    path = _get(server, tmp_path, sha256=SHA, expected_size=len(BLOB))
    assert path == tmp_path / "out" / "blob.bin" and path.read_bytes() == BLOB
    assert not (tmp_path / "out" / "blob.bin.part").exists() and not (tmp_path / "out" / "blob.bin.lock").exists()
    assert server.requests == [("/blob.bin", None)]
    assert _get(server, tmp_path, sha256=SHA) == path  # already there: no request
    assert len(server.requests) == 1
    assert sha256_file(path) == SHA


def test_interrupted_download_resumes(server, tmp_path):
    server.faults["/blob.bin"] = [("drop", 100_000)]
    with pytest.raises(DownloadError, match=r"run again to resume"):
        _get(server, tmp_path, sha256=SHA, retries=0)
    part = tmp_path / "out" / "blob.bin.part"
    assert part.stat().st_size == 100_000 and not (tmp_path / "out" / "blob.bin").exists()
    path = _get(server, tmp_path, sha256=SHA, expected_size=len(BLOB))
    assert path.read_bytes() == BLOB and not part.exists()
    assert server.requests[-1] == ("/blob.bin", "bytes=100000-")


def test_interruptions_are_retried_within_one_call(server, tmp_path):
    server.faults["/blob.bin"] = [("drop", 50_000), ("drop", 70_000), ("status", 503)]
    path = _get(server, tmp_path, sha256=SHA, retries=2)
    assert path.read_bytes() == BLOB
    assert [r for _, r in server.requests] == [None, "bytes=50000-", "bytes=120000-", "bytes=120000-"]


def test_corrupt_download_is_rejected_and_deleted(server, tmp_path):
    bad = "0" * 64
    with pytest.raises(DownloadError, match=r"sha256 mismatch: expected 0{64}, got " + SHA):
        _get(server, tmp_path, sha256=bad)
    assert not (tmp_path / "out" / "blob.bin.part").exists() and not (tmp_path / "out" / "blob.bin").exists()


def test_corrupt_partial_file_is_rejected_then_redownloaded(server, tmp_path):
    part = tmp_path / "out" / "blob.bin.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"\x00" * 1000)  # a stale part that is not a prefix of the file
    with pytest.raises(DownloadError, match="corrupt"):
        _get(server, tmp_path, sha256=SHA)
    assert not part.exists()
    assert _get(server, tmp_path, sha256=SHA).read_bytes() == BLOB


def test_size_checks(server, tmp_path):
    with pytest.raises(DownloadError, match=f"announces {len(BLOB)} bytes but 10 are expected"):
        _get(server, tmp_path, expected_size=10)
    # a part longer than the expected size is discarded and the file downloaded from the start
    part = tmp_path / "out" / "blob.bin.part"
    part.write_bytes(b"x" * (len(BLOB) + 5))
    assert _get(server, tmp_path, expected_size=len(BLOB)).read_bytes() == BLOB
    assert server.requests[-1] == ("/blob.bin", None)


def test_server_ignoring_range_restarts(server, tmp_path):
    part = tmp_path / "out" / "blob.bin.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(BLOB[:1234])
    server.faults["/blob.bin"] = [("ignore_range",)]
    assert _get(server, tmp_path, sha256=SHA).read_bytes() == BLOB


def test_complete_part_is_verified_on_416(server, tmp_path):
    part = tmp_path / "out" / "blob.bin.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(BLOB)
    assert _get(server, tmp_path, sha256=SHA).read_bytes() == BLOB
    assert server.requests[-1] == ("/blob.bin", f"bytes={len(BLOB)}-")


def test_http_errors_name_the_url(server, tmp_path):
    with pytest.raises(DownloadError, match=r"cannot download http://127\.0\.0\.1:\d+/nope\.bin: HTTP 404"):
        download_url(f"{server.url}/nope.bin", tmp_path / "nope.bin", progress=False)
    # nothing listens on this port: a clear network error after the retries
    sock_url = "http://127.0.0.1:9/x.bin"
    with pytest.raises(DownloadError, match=r"cannot download http://127\.0\.0\.1:9/x\.bin: .*attempt"):
        download_url(sock_url, tmp_path / "x.bin", progress=False, retries=1, timeout=2)
    with pytest.raises(DownloadError, match="unsupported URL scheme"):
        download_url("ftp://example.org/x", tmp_path / "x", progress=False)
    with pytest.raises(ValueError, match="sha256 must be 64 hex digits"):
        download_url(f"{server.url}/blob.bin", tmp_path / "y", sha256="abc")


def test_existing_file_with_wrong_checksum_is_replaced(server, tmp_path):
    dest = tmp_path / "out" / "blob.bin"
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"old")
    with pytest.warns(UserWarning, match="downloading it again"):
        assert _get(server, tmp_path, sha256=SHA).read_bytes() == BLOB


def test_file_urls_and_local_paths(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(BLOB)
    out = download_url(src.as_uri(), tmp_path / "a" / "copy.bin", sha256=SHA, progress=False)
    assert out.read_bytes() == BLOB
    out2 = download_url(os.fspath(src), tmp_path / "b" / "copy.bin", expected_size=len(BLOB), progress=False)
    assert out2.read_bytes() == BLOB
    with pytest.raises(DownloadError, match="no such file"):
        download_url((tmp_path / "missing.bin").as_uri(), tmp_path / "c" / "m.bin", progress=False)
