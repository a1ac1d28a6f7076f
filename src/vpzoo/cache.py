"""vpzoo's on-disk cache: location, option hashing and atomic writes (shared by data, weights and metrics).

The cache root is, in order of precedence:

1. an explicit directory passed by the caller (e.g. ``cache_dir=`` of a DataModule),
2. ``$VPZOO_CACHE``,
3. ``$XDG_CACHE_HOME/vpzoo`` (``~/.cache/vpzoo`` when ``XDG_CACHE_HOME`` is unset).

Files are written atomically: the data goes to a temporary file in the target directory, is flushed and
fsync'ed, and is then renamed over the final name (``os.replace``). An interrupted write therefore leaves at
most a stray ``.*.tmp`` file, never a truncated cache entry, and concurrent writers of identical content
(e.g. several DDP ranks) are harmless.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "default_cache_dir",
    "options_hash",
    "atomic_save_npy",
    "atomic_write_text",
    "try_load_npy",
    "download_url",
    "DownloadError",
    "sha256_file",
]


def default_cache_dir(*parts: str) -> Path:
    """Return the vpzoo cache directory (not created), optionally joined with ``parts``."""
    base = os.environ.get("VPZOO_CACHE")
    if not base:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        base = os.path.join(xdg, "vpzoo")
    return Path(base, *parts)


def options_hash(options: dict[str, Any], length: int = 16) -> str:
    """Stable hex digest of a JSON-serialisable options dict (key order does not matter)."""
    blob = json.dumps(options, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:length]


def _atomic_write(path: Path, write_fn) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write_fn(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def atomic_save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    """``np.save`` to ``path`` atomically (temp file in the same directory + rename)."""
    _atomic_write(Path(path), lambda f: np.save(f, np.ascontiguousarray(array), allow_pickle=False))


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write a UTF-8 text file atomically."""
    _atomic_write(Path(path), lambda f: f.write(text.encode("utf-8")))


def try_load_npy(
    path: str | os.PathLike, shape: tuple[int, ...], dtype: np.dtype, mmap: bool = True
) -> np.ndarray | None:
    """Load ``path`` if it exists and holds an array of exactly ``shape``/``dtype``; else return ``None``."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        arr = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    if tuple(arr.shape) != tuple(shape) or arr.dtype != np.dtype(dtype):
        return None
    return arr


# --------------------------------------------------------------------------------------------------------
# Downloads
# --------------------------------------------------------------------------------------------------------
class DownloadError(OSError):
    """A download failed: network error, HTTP error status, or a size/sha256 mismatch.

    Attributes:
        url: the URL that was being fetched.
        dest: the final destination path.
    """

    def __init__(self, message: str, url: str | None = None, dest: str | os.PathLike | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.dest = None if dest is None else Path(dest)


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk_size), b""):
            h.update(block)
    return h.hexdigest()


_USER_AGENT = "vpzoo-downloader/1 (+https://github.com/; python-urllib)"


def _progress_bar(enabled: bool, total: int | None, initial: int, desc: str):
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm ships with lightning
        return None
    return tqdm(total=total, initial=initial, desc=desc, unit="B", unit_scale=True, unit_divisor=1024, leave=True)


class _Lock:
    """Advisory lock on ``path`` between processes and threads (``fcntl.flock`` on a file of its own, removed when
    released; a no-op where fcntl is unavailable)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def __enter__(self) -> "_Lock":
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            return self
        while True:  # the holder unlinks the file when done: a lock taken on an unlinked file is retried
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self._fd = fd
                return self
            os.close(fd)

    def __exit__(self, *exc) -> None:
        if self._fd is None:
            return
        import fcntl

        try:
            os.unlink(self.path)
        except OSError:
            pass
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None


def _parse_content_range(value: str | None) -> tuple[int | None, int | None]:
    """``"bytes START-END/TOTAL"`` -> ``(START, TOTAL)`` (``None`` for unknown parts)."""
    if not value or not value.strip().lower().startswith("bytes"):
        return None, None
    spec = value.strip()[5:].strip()
    rng, _, total = spec.partition("/")
    start = None
    if rng and rng != "*":
        try:
            start = int(rng.split("-")[0])
        except ValueError:
            start = None
    try:
        tot = int(total) if total and total != "*" else None
    except ValueError:
        tot = None
    return start, tot


def _verify(part: Path, url: str, dest: Path, digest: str | None, sha256: str | None, expected_size: int | None,
            total: int | None) -> None:
    size = part.stat().st_size
    problem = None
    if expected_size is not None and size != expected_size:
        problem = f"size mismatch: expected {expected_size} bytes, got {size}"
    elif total is not None and size != total:
        problem = f"size mismatch: the server announced {total} bytes, got {size}"
    elif sha256 is not None:
        got = digest if digest is not None else sha256_file(part)
        if got.lower() != sha256.lower():
            problem = f"sha256 mismatch: expected {sha256.lower()}, got {got}"
    if problem is not None:
        try:
            part.unlink()
        except OSError:
            pass
        raise DownloadError(
            f"download of {url} is corrupt ({problem}); the partial file {part} was deleted, run the command again "
            f"to download it afresh",
            url,
            dest,
        )


def download_url(
    url: str,
    dest: str | os.PathLike,
    sha256: str | None = None,
    expected_size: int | None = None,
    progress: bool = True,
    *,
    timeout: float = 60.0,
    retries: int = 3,
    chunk_size: int = 1 << 20,
    headers: dict[str, str] | None = None,
) -> Path:
    """Download ``url`` to the file ``dest`` (resumable, verified, atomic) and return ``Path(dest)``.

    Behaviour (stable API; used for datasets and network weights):

    * If ``dest`` already exists it is returned without any network access, after checking ``expected_size``
      and ``sha256`` when given (an existing file that fails the check is deleted and downloaded again).
    * Bytes are written to ``dest + ".part"``. If such a part file exists (an earlier interrupted download), the
      download resumes from its end with an HTTP ``Range: bytes=N-`` request; a server that ignores ranges
      (status 200) makes it start over, and a part that is already complete (status 416) is just verified.
      Connection errors, timeouts and truncated responses are retried up to ``retries`` times in a row (each
      retry resumes from the bytes received so far; a retry that made progress resets the count).
    * When the body is complete, its size is checked against ``expected_size`` and the server's announced size,
      and its sha256 against ``sha256`` (hex, case-insensitive; hashed while streaming). On a mismatch the part
      file is **deleted** and :class:`DownloadError` is raised. Otherwise the part is fsync'ed and renamed over
      ``dest`` (``os.replace``), so ``dest`` only ever holds a complete, verified file.
    * Concurrent callers for the same ``dest`` (e.g. DDP ranks) are serialised with an advisory lock on
      ``dest + ".lock"`` (POSIX); the second one finds the finished file.
    * ``file://`` URLs and plain local paths are copied (same verification), which is handy for local mirrors.
    * 4xx HTTP errors fail at once (the part file is kept); 5xx errors are retried.

    Args:
        url: ``http(s)://`` or ``file://`` URL, or a local path.
        dest: final file path (its parent directory is created).
        sha256: expected hex sha256 of the file, or ``None`` to skip the check.
        expected_size: expected size in bytes, or ``None``.
        progress: show a tqdm progress bar on stderr.
        timeout: socket timeout in seconds for connecting and for each read.
        retries: how many consecutive failed attempts to retry after the first.
        chunk_size: bytes per read.
        headers: extra HTTP request headers.

    Returns:
        ``Path(dest)``.

    Raises:
        DownloadError: the URL could not be fetched (message names the URL, the status or the network error) or
            the file is corrupt (size or sha256 mismatch; the part file is deleted).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if expected_size is not None and (isinstance(expected_size, bool) or int(expected_size) < 0):
        raise ValueError(f"expected_size must be a non-negative integer or None, got {expected_size!r}")
    if sha256 is not None and (len(sha256) != 64 or any(c not in "0123456789abcdefABCDEF" for c in sha256)):
        raise ValueError(f"sha256 must be 64 hex digits or None, got {sha256!r}")
    part = dest.with_name(dest.name + ".part")
    with _Lock(dest.with_name(dest.name + ".lock")):
        if dest.is_file():
            ok = expected_size is None or dest.stat().st_size == expected_size
            if ok and sha256 is not None:
                ok = sha256_file(dest).lower() == sha256.lower()
            if ok:
                return dest
            import warnings

            warnings.warn(f"{dest} exists but does not match the expected size/sha256; downloading it again")
            dest.unlink()
        from urllib.parse import urlparse

        scheme = urlparse(url).scheme.lower()
        if scheme in ("http", "https"):
            _download_http(url, dest, part, sha256, expected_size, progress, timeout, retries, chunk_size, headers)
        elif scheme == "file" or scheme == "" or (len(scheme) == 1 and os.name == "nt"):
            _copy_local(url, dest, part, sha256, expected_size, progress, chunk_size)
        else:
            raise DownloadError(f"unsupported URL scheme {scheme!r} in {url!r} (use http, https or file)", url, dest)
        with open(part, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(part, dest)
    return dest


def _copy_local(url, dest, part, sha256, expected_size, progress, chunk_size) -> None:
    from urllib.parse import urlparse
    from urllib.request import url2pathname

    parsed = urlparse(url)
    src = Path(url2pathname(parsed.path)) if parsed.scheme.lower() == "file" else Path(url)
    if not src.is_file():
        raise DownloadError(f"cannot copy {url}: no such file {src}", url, dest)
    h = hashlib.sha256()
    total = src.stat().st_size
    bar = _progress_bar(progress, total, 0, dest.name)
    try:
        with open(src, "rb") as fin, open(part, "wb") as fout:
            for block in iter(lambda: fin.read(chunk_size), b""):
                fout.write(block)
                h.update(block)
                if bar is not None:
                    bar.update(len(block))
    finally:
        if bar is not None:
            bar.close()
    _verify(part, url, dest, h.hexdigest(), sha256, expected_size, total)


def _download_http(url, dest, part, sha256, expected_size, progress, timeout, retries, chunk_size, headers) -> None:
    import http.client
    import socket
    import time
    import urllib.error
    import urllib.request

    failures = 0
    last_error: BaseException | None = None
    while True:
        offset = part.stat().st_size if part.is_file() else 0
        if expected_size is not None and offset > expected_size:
            part.unlink()
            offset = 0
        req_headers = {"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"}
        req_headers.update(headers or {})
        if offset > 0:
            req_headers["Range"] = f"bytes={offset}-"
        request = urllib.request.Request(url, headers=req_headers)
        received = 0
        total: int | None = None
        try:
            try:
                response = urllib.request.urlopen(request, timeout=timeout)
            except urllib.error.HTTPError as e:
                if e.code == 416 and offset > 0:
                    _, total = _parse_content_range(e.headers.get("Content-Range"))
                    e.close()
                    if total is None or total == offset:
                        _verify(part, url, dest, None, sha256, expected_size, total)
                        return
                    part.unlink()  # the part is longer than the remote file: it cannot be a prefix of it
                    continue
                e.close()
                if 500 <= e.code < 600:
                    raise ConnectionError(f"HTTP {e.code} {e.reason}") from e
                raise DownloadError(f"cannot download {url}: HTTP {e.code} {e.reason}", url, dest) from e
            with response:
                status = getattr(response, "status", 200)
                length = response.headers.get("Content-Length")
                length = int(length) if length is not None and length.strip().isdigit() else None
                if status == 206:
                    start, total = _parse_content_range(response.headers.get("Content-Range"))
                    if start != offset:
                        part.unlink()  # unexpected range: start over
                        continue
                    if total is None and length is not None:
                        total = offset + length
                    mode = "ab"
                else:
                    offset, mode = 0, "wb"  # the server ignored the range (or none was asked): start over
                    total = length
                if expected_size is not None and total is not None and total != expected_size:
                    if part.is_file():
                        part.unlink()
                    raise DownloadError(
                        f"cannot download {url}: the server announces {total} bytes but {expected_size} are "
                        f"expected (wrong or changed file)",
                        url,
                        dest,
                    )
                h = hashlib.sha256() if sha256 is not None else None
                if h is not None and mode == "ab":
                    with open(part, "rb") as f:
                        for block in iter(lambda: f.read(chunk_size), b""):
                            h.update(block)
                bar = _progress_bar(progress, total, offset, dest.name)
                try:
                    with open(part, mode) as f:
                        while True:
                            block = response.read(chunk_size)
                            if not block:
                                break
                            f.write(block)
                            received += len(block)
                            if h is not None:
                                h.update(block)
                            if bar is not None:
                                bar.update(len(block))
                finally:
                    if bar is not None:
                        bar.close()
            if total is not None and offset + received < total:
                raise http.client.IncompleteRead(b"", total - offset - received)
            _verify(part, url, dest, None if h is None else h.hexdigest(), sha256, expected_size, total)
            return
        except DownloadError:
            raise
        except (urllib.error.URLError, http.client.HTTPException, ConnectionError, socket.timeout, TimeoutError) as e:
            last_error = e
            failures = 1 if received > 0 else failures + 1  # progress starts a new streak of failures
            if failures > retries:
                have = part.stat().st_size if part.is_file() else 0
                reason = getattr(e, "reason", None) or e
                raise DownloadError(
                    f"cannot download {url}: {type(e).__name__}: {reason} (after {failures} failed attempt(s); "
                    f"{have} bytes kept in {part}, run again to resume)",
                    url,
                    dest,
                ) from e
            time.sleep(min(0.25 * 2 ** max(failures - 1, 0), 5.0))
    raise DownloadError(f"cannot download {url}: {last_error}", url, dest)  # pragma: no cover
