"""Sharded zoo weights: ``model-0000k-of-0000N.safetensors`` + ``model.safetensors.index.json``.

A zoo folder may hold its weights as one ``model.safetensors`` or, when they are larger than a file limit (the GPU
machines return files of at most 16 MiB), as shards written by huggingface_hub's own sharded writer
(:func:`huggingface_hub.save_torch_state_dict`) with its index::

    model.safetensors.index.json   {"metadata": {"total_size": N, "vpzoo_config": "<config.json document>",
                                                 "shard_sha256": {"model-00001-of-00002.safetensors": "<hex>", ...}},
                                    "weight_map": {"<tensor name>": "model-00001-of-00002.safetensors", ...}}
    model-00001-of-00002.safetensors
    model-00002-of-00002.safetensors

``shard_sha256`` (added by vpzoo after the writer ran) records every shard's sha256, so the index alone pins the
whole checkpoint: a checkpoints.yaml entry records the sha256 of the index, the index those of the shards. Every
load checks every shard; a missing shard raises :class:`~vpzoo.zoo.errors.CheckpointUnavailableError`, a shard
whose sha256 differs :class:`~vpzoo.zoo.errors.CorruptCheckpointError`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from vpzoo.zoo.errors import CheckpointUnavailableError, CorruptCheckpointError

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["INDEX_NAME", "MAX_SHARD_BYTES", "is_index", "save_sharded", "read_index", "load_sharded"]

INDEX_NAME = "model.safetensors.index.json"
#: The largest shard vpzoo writes by default: 15 MiB (GPU machines return files of at most 16 MiB).
MAX_SHARD_BYTES = 15 * 2**20
_PATTERN = "model{suffix}.safetensors"


def _header_margin(max_shard_bytes: int) -> int:
    """Bytes left for the safetensors JSON header, which the splitter does not count (~100 bytes a tensor)."""
    return min(64 * 2**10, max_shard_bytes // 8)


def is_index(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a shard index (``*.safetensors.index.json``)."""
    return str(path).endswith(".safetensors.index.json")


def save_sharded(
    state_dict: Mapping[str, "torch.Tensor"],
    folder: str | os.PathLike,
    *,
    config_doc: Mapping[str, Any],
    max_shard_bytes: int = MAX_SHARD_BYTES,
) -> Path:
    """Write ``state_dict`` into ``folder`` as shards of at most ``max_shard_bytes`` bytes each plus the index.

    Uses :func:`huggingface_hub.save_torch_state_dict` (which also removes earlier ``model*.safetensors`` files of
    the folder). The index always exists, even for one shard, and records every shard's sha256. Raises
    ``ValueError`` if a single tensor is too large to fit a shard.

    Returns:
        the index file.
    """
    from huggingface_hub import save_torch_state_dict

    from vpzoo.cache import atomic_write_text
    from vpzoo.zoo.format import file_sha256

    if not isinstance(max_shard_bytes, int) or max_shard_bytes < 1024:
        raise ValueError(f"max_shard_bytes must be an int >= 1024, got {max_shard_bytes!r}")
    limit = max_shard_bytes - _header_margin(max_shard_bytes)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    too_big = [f"{k} ({t.numel() * t.element_size():,} bytes)" for k, t in state_dict.items()
               if t.numel() * t.element_size() > limit]
    if too_big:
        raise ValueError(f"tensors larger than one shard ({max_shard_bytes:,} bytes): {', '.join(too_big[:5])}; "
                         "raise the shard size or store a smaller dtype")
    config_text = json.dumps(dict(config_doc), sort_keys=True)
    total = sum(t.numel() * t.element_size() for t in state_dict.values())
    save_torch_state_dict(dict(state_dict), folder, filename_pattern=_PATTERN, max_shard_size=limit,
                          metadata={"vpzoo_config": config_text})
    index_path = folder / INDEX_NAME
    if not index_path.is_file():  # it all fitted one shard: the writer wrote model.safetensors without an index
        single = folder / _PATTERN.format(suffix="")
        shard = folder / _PATTERN.format(suffix="-00001-of-00001")
        os.replace(single, shard)
        index = {"metadata": {"total_size": total, "vpzoo_config": config_text},
                 "weight_map": {k: shard.name for k in state_dict}}
    else:
        index = json.loads(index_path.read_text())
    shards = sorted(set(index["weight_map"].values()))
    for name in shards:
        size = (folder / name).stat().st_size
        if size > max_shard_bytes:
            raise ValueError(f"{folder / name} has {size:,} bytes, more than the {max_shard_bytes:,} allowed")
        os.chmod(folder / name, 0o644)  # meant to be shared
    index["metadata"]["shard_sha256"] = {name: file_sha256(folder / name) for name in shards}
    atomic_write_text(index_path, json.dumps(index, indent=2, sort_keys=True) + "\n")
    os.chmod(index_path, 0o644)
    return index_path


def read_index(path: str | os.PathLike) -> dict[str, Any]:
    """Read and check a shard index: ``weight_map`` and the ``shard_sha256`` of every shard it names."""
    path = Path(path)
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointUnavailableError(f"no shard index at {path}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CorruptCheckpointError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(index, dict) or not isinstance(index.get("weight_map"), dict) or not index["weight_map"]:
        raise CorruptCheckpointError(f"{path}: not a safetensors shard index (no 'weight_map')")
    meta = index.get("metadata") if isinstance(index.get("metadata"), dict) else {}
    digests = meta.get("shard_sha256")
    shards = sorted(set(index["weight_map"].values()))
    if not isinstance(digests, dict) or sorted(digests) != shards:
        raise CorruptCheckpointError(
            f"{path}: the index must record the sha256 of every shard in metadata.shard_sha256 (shards "
            f"{shards}, recorded {sorted(digests) if isinstance(digests, dict) else None}); vpzoo writes it "
            "(save_pretrained(..., max_shard_bytes=...) or `vpzoo train-checkpoint`)"
        )
    for name in shards:
        if "/" in name or "\\" in name or name.startswith("."):
            raise CorruptCheckpointError(f"{path}: shard name {name!r} must be a file name beside the index")
    return index


def index_config(index: Mapping[str, Any], source: str) -> dict[str, Any] | None:
    """The config document stored in the index's metadata (``vpzoo_config``), or ``None``."""
    from vpzoo.zoo.format import _check_document

    text = (index.get("metadata") or {}).get("vpzoo_config")
    if text is None:
        return None
    try:
        return _check_document(json.loads(text), f"{source} (metadata.vpzoo_config)")
    except (TypeError, json.JSONDecodeError) as e:
        raise CorruptCheckpointError(f"{source}: metadata.vpzoo_config is not a JSON document ({e})") from None


def load_sharded(
    index_path: str | os.PathLike,
    map_location: "str | torch.device" = "cpu",
    *,
    shard_file: Callable[[str, str], Path] | None = None,
) -> dict[str, "torch.Tensor"]:
    """The tensors of a sharded checkpoint, every shard checked against the index's sha256 first.

    Args:
        index_path: the ``model.safetensors.index.json``.
        map_location: device the tensors are read to.
        shard_file: ``(shard_name, sha256) -> local path``; default: the file of that name beside the index (a Hub
            download passes its own, which fetches and verifies the shard).
    """
    from vpzoo.zoo.format import load_weights, verify_sha256

    index_path = Path(index_path)
    index = read_index(index_path)
    digests = index["metadata"]["shard_sha256"]
    state_dict: dict[str, Any] = {}
    for name in sorted(digests):
        if shard_file is None:
            path = index_path.parent / name
            if not path.is_file():
                raise CheckpointUnavailableError(
                    f"{index_path}: shard {name} is missing (expected at {path}); the checkpoint needs all "
                    f"{len(digests)} shards: {', '.join(sorted(digests))}"
                )
            verify_sha256(path, digests[name], f"shard {name} of {index_path}")
        else:
            path = shard_file(name, digests[name])
        tensors = load_weights(path, map_location)
        expected = sorted(k for k, v in index["weight_map"].items() if v == name)
        if sorted(tensors) != expected:
            raise CorruptCheckpointError(
                f"{path}: holds tensors {sorted(tensors)[:5]}..., the index maps {expected[:5]}... to it"
            )
        state_dict.update(tensors)
    return state_dict
