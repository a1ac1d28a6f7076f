"""``vpzoo.load``: one call from a checkpoint name, a local folder or file, or an ``hf://`` reference to a model."""

from __future__ import annotations

import os
import posixpath
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vpzoo.zoo.catalog import (
    checkpoints_file,
    find_hub_entry,
    planned_message,
    read_checkpoints,
    read_planned,
    unknown_name_message,
    weights_file,
)
from vpzoo.zoo.errors import (
    CheckpointUnavailableError,
    CorruptCheckpointError,
    PlannedCheckpointError,
    UnknownCheckpointError,
)
from vpzoo.zoo.format import FORMAT_VERSION, WEIGHTS_NAME, build_model, load_folder_or_file, load_weights, verify_sha256
from vpzoo.zoo.hub import HF_PREFIX, download_checkpoint_files, hub_file, parse_hub_ref
from vpzoo.zoo.sharded import is_index, load_sharded

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from vpzoo.models.base import VideoPredictionModel

__all__ = ["load"]

_FILE_SUFFIXES = (".safetensors", ".ckpt", ".json")


def _device(value: Any, name: str) -> "torch.device | None":
    import torch

    if value is None:
        return None
    if not isinstance(value, (str, torch.device)):
        raise TypeError(f"{name} must be a str or torch.device (e.g. 'cpu', 'cuda:0'), got {type(value).__name__}")
    try:
        return torch.device(value)
    except RuntimeError as e:
        raise ValueError(f"{name}={value!r} is not a device: {e}") from None


def load(
    name_or_path: str | os.PathLike,
    *,
    device: "str | torch.device | None" = None,
    map_location: "str | torch.device | None" = None,
    revision: str | None = None,
    sha256: str | None = None,
    strict: bool = True,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool = False,
    force_download: bool = False,
    token: str | bool | None = None,
    checkpoints: str | os.PathLike | None = None,
) -> "VideoPredictionModel":
    """Load a pretrained model, ready to ``predict``, in eval mode.

    Args:
        name_or_path: one of
            - a registered checkpoint name (:func:`vpzoo.list_checkpoints`), e.g. ``"svg_lp_smmnist"``;
            - a local zoo folder (``config.json`` + ``model.safetensors``), a ``.safetensors`` file (config in its
              header or ``config.json`` beside it), or a Lightning ``.ckpt`` written by ``vpzoo fit``;
            - a Hub reference ``"hf://owner/repo"``, ``"hf://owner/repo@revision"`` (branch, tag or commit) or
              ``"hf://owner/repo@revision/subfolder"``.
        device: device of the returned model (default: ``map_location``, else CPU).
        map_location: device the weight tensors are read to (default CPU). Only a device, not a mapping.
        revision: revision of an ``hf://`` reference (alternative to ``@revision``).
        sha256: expected sha256 of the weights file (registered checkpoints carry their own).
        strict: require the weights' keys to equal the model's (shape mismatches always raise).
        cache_dir: Hugging Face cache directory (default ``HF_HUB_CACHE``, i.e. ``$HF_HOME/hub``).
        local_files_only: never touch the network (like ``HF_HUB_OFFLINE=1`` for this call).
        force_download: download Hub files again even if cached.
        token: Hugging Face token for private repositories (default: ``HF_TOKEN`` / the saved login).
        checkpoints: checkpoints registry file to use (default ``$VPZOO_CHECKPOINTS``, else the packaged one).

    Returns:
        the model (a :class:`~vpzoo.models.VideoPredictionModel`) in eval mode on ``device``. Float16 weights are
        upcast to float32. ``model.zoo_info`` records where it came from (source, weights path, sha256, commit,
        registry entry).

    Raises:
        UnknownCheckpointError: not a registered name, an existing path, or an ``hf://`` reference (lists the
            closest names).
        CheckpointUnavailableError: a missing file; a Hub file not cached while offline (says which environment
            variable or path fixes it).
        CorruptCheckpointError: sha256 mismatch or unreadable file (corrupt Hub files are removed from the cache).
        ConfigMismatchError: the config does not match the weights (missing/unexpected keys, shapes named).
    """
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(f"name_or_path must be a str or path, got {type(name_or_path).__name__}")
    if not isinstance(strict, bool):
        raise TypeError(f"strict must be a bool, got {type(strict).__name__}")
    read_to = _device(map_location, "map_location") or _device("cpu", "map_location")
    target = _device(device, "device") or read_to
    spec = os.fspath(name_or_path)
    hub_kwargs = dict(cache_dir=cache_dir, local_files_only=local_files_only, force_download=force_download,
                      token=token)

    if spec.startswith(HF_PREFIX):
        ref = parse_hub_ref(spec)
        if revision is not None and ref.revision is not None and revision != ref.revision:
            raise ValueError(f"two revisions given: {ref.revision!r} in {spec!r} and revision={revision!r}")
        rev = revision or ref.revision
        ref = type(ref)(ref.repo_id, rev, ref.subfolder)
        if sha256 is None:
            fname = f"{ref.subfolder}/{WEIGHTS_NAME}" if ref.subfolder else WEIGHTS_NAME
            entry = find_hub_entry(ref.repo_id, fname, rev, checkpoints)
            sha256 = entry["weights"]["sha256"] if entry else None
        config_path, weights, commit = download_checkpoint_files(ref, sha256=sha256, **hub_kwargs)
        model, info = load_folder_or_file(weights, config_path=config_path, map_location=read_to, device=target,
                                          strict=strict)
        info.update(source=str(ref), revision=commit, name=None, entry=None)
        return _finish(model, info)

    if revision is not None:
        raise ValueError(f"revision= applies to hf:// references only, not to {spec!r}")

    path = Path(spec).expanduser()
    if path.exists():
        model, info = load_folder_or_file(path, map_location=read_to, device=target, strict=strict, sha256=sha256)
        info.update(source=str(path), revision=None, name=None, entry=None)
        return _finish(model, info)

    entries = read_checkpoints(checkpoints)
    if spec in entries:
        return _load_entry(entries[spec], read_to, target, strict, sha256, checkpoints, hub_kwargs)

    planned = read_planned(checkpoints)
    if spec in planned:
        raise PlannedCheckpointError(planned_message(planned[spec], checkpoints))
    if path.suffix in _FILE_SUFFIXES or spec.startswith((".", "/", "~")) or spec.count("/") > 1:
        raise CheckpointUnavailableError(f"no such file or folder: {path}")
    raise UnknownCheckpointError(unknown_name_message(spec, entries, checkpoints))


def _load_entry(
    entry: dict[str, Any],
    read_to: "torch.device",
    target: "torch.device",
    strict: bool,
    sha256: str | None,
    checkpoints: str | os.PathLike | None,
    hub_kwargs: dict[str, Any],
) -> "VideoPredictionModel":
    w = entry["weights"]
    if w["source"] == "official":  # the authors' own file: downloaded, verified by git blob, converted once
        from vpzoo.zoo.official import official_checkpoint

        folder = official_checkpoint(entry, local_files_only=hub_kwargs["local_files_only"],
                                     force_download=hub_kwargs["force_download"])
        model, info = load_folder_or_file(folder, map_location=read_to, device=target, strict=strict, sha256=sha256)
        info.update(source=entry["name"], revision=None, name=entry["name"], entry=entry)
        return _finish(model, info)
    if sha256 is not None and sha256.lower() != w["sha256"]:
        raise ValueError(f"sha256={sha256!r} contradicts the registry's {w['sha256']} for {entry['name']!r}")
    what = f"checkpoint {entry['name']!r}"
    if w["source"] == "file":
        weights = weights_file(entry, checkpoints)
        if not weights.is_file():
            raise CheckpointUnavailableError(
                f"{what}: its weights file {weights} is missing (registry: {checkpoints_file(checkpoints)}); the "
                "installation is incomplete: reinstall vpzoo"
            )
        try:
            verify_sha256(weights, w["sha256"], what)
        except CorruptCheckpointError as e:
            raise CorruptCheckpointError(f"{e} Reinstall vpzoo to restore it.") from None
        revision = None
    else:
        weights = hub_file(w["repo"], w["filename"], revision=w["revision"], sha256=w["sha256"], **hub_kwargs)
        revision = w["revision"]
    doc = {"vpzoo_format": FORMAT_VERSION, "model": entry["model"], "config": entry["config"], "dtype": w["dtype"]}
    if is_index(weights):  # sharded weights: the entry's sha256 pins the index, the index every shard
        fetch = None
        if w["source"] == "hub":
            def fetch(shard: str, digest: str) -> Path:
                return hub_file(w["repo"], posixpath.join(posixpath.dirname(w["filename"]), shard),
                                revision=w["revision"], sha256=digest, **hub_kwargs)
        state_dict = load_sharded(weights, read_to, shard_file=fetch)
    else:
        state_dict = load_weights(weights, read_to)
    model = build_model(doc, state_dict, device=target, strict=strict, source=what)
    info = {"weights": str(weights), "sha256": w["sha256"], "config": doc, "source": entry["name"],
            "revision": revision, "name": entry["name"], "entry": entry}
    return _finish(model, info)


def _finish(model: "VideoPredictionModel", info: dict[str, Any]) -> "VideoPredictionModel":
    model.zoo_info = info
    return model.eval()
