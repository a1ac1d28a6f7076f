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

__all__ = ["default_cache_dir", "options_hash", "atomic_save_npy", "atomic_write_text", "try_load_npy"]


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
