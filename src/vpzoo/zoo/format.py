"""The zoo file format: a folder with ``config.json``, ``model.safetensors`` and a model card ``README.md``.

This is the layout of the Hugging Face Hub (and of ``PyTorchModelHubMixin``), with vpzoo's config:

``config.json``
    ``{"vpzoo_format": 1, "model": "svg_lp", "config": {...every init argument...}, "dtype": "float16", ...}``;
    ``model`` is the registry name (:func:`vpzoo.registry.get_model_class`), ``config`` the full keyword arguments
    of its ``__init__`` (``model.hparams``), ``dtype`` the dtype of the stored floating-point tensors.
    Optional ``training`` records provenance (Lightning checkpoint file name, step, data module).
``model.safetensors``
    the ``state_dict``; floating tensors in ``dtype`` (float16 weights are upcast to the model's float32 when
    loaded). The same config document is stored in the safetensors header metadata (key ``vpzoo_config``), so a
    lone ``.safetensors`` file is self-describing.
``README.md``
    a generated model card: YAML front matter (``library_name: vpzoo``, license, tags), usage, config, the metrics
    table with its protocol, the training recipe and the sha256 of the weights.

Nothing in a checkpoint is executed: configs are JSON, weights are safetensors, Lightning checkpoints are read with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from vpzoo.zoo.errors import CheckpointUnavailableError, ConfigMismatchError, CorruptCheckpointError
from vpzoo.zoo.sharded import INDEX_NAME, is_index

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from vpzoo.models.base import VideoPredictionModel

__all__ = [
    "FORMAT_VERSION",
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "CARD_NAME",
    "model_paper",
    "file_sha256",
    "verify_sha256",
    "model_config",
    "config_document",
    "save_pretrained",
    "read_config",
    "read_weights_config",
    "load_weights",
    "build_model",
    "load_folder_or_file",
    "read_lightning_checkpoint",
    "registered_class_paths",
    "export_lightning_checkpoint",
    "render_model_card",
    "check_metrics",
]

FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
_METADATA_KEY = "vpzoo_config"
_DTYPE_NAMES = ("float32", "float16", "bfloat16")

#: Paper of each registered model, used by model cards and new checkpoints.yaml entries.
def model_paper(model: str) -> dict[str, str]:
    """The paper of a registered model (its class attribute ``paper``: title, authors, venue, arxiv, url); empty for
    models without one (``copy_last``) and for unknown names."""
    from vpzoo.registry import get_model_class

    try:
        return dict(getattr(get_model_class(model), "paper", {}))
    except KeyError:
        return {}


# ------------------------------------------------------------------------------------------------ hashing
_SHA_MEMO: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file (memoised per process on path, size and modification time)."""
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_MEMO:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _SHA_MEMO[key] = h.hexdigest()
    return _SHA_MEMO[key]


def _check_sha256_string(value: Any, what: str) -> str:
    if not isinstance(value, str) or len(value) != 64 or any(c not in "0123456789abcdef" for c in value.lower()):
        raise ValueError(f"{what} must be a sha256 hex digest (64 hex characters), got {value!r}")
    return value.lower()


def verify_sha256(path: str | os.PathLike, expected: str, what: str) -> str:
    """Raise :class:`CorruptCheckpointError` unless ``sha256(path) == expected``; return the digest."""
    expected = _check_sha256_string(expected, "expected sha256")
    actual = file_sha256(path)
    if actual != expected:
        raise CorruptCheckpointError(
            f"{what}: sha256 mismatch for {path}: expected {expected}, got {actual}. The file is corrupt, "
            "truncated or not the recorded one."
        )
    return actual


# ------------------------------------------------------------------------------------------------ config
def _model_name(model: Any) -> str:
    name = getattr(type(model), "model_name", None)
    if not isinstance(name, str):
        raise TypeError(
            f"{type(model).__qualname__} is not a registered vpzoo model (decorate it with "
            "vpzoo.registry.register_model) so it cannot be saved in the zoo format"
        )
    return name


def _init_parameters(cls: type) -> list[inspect.Parameter]:
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [p for p in inspect.signature(cls.__init__).parameters.values() if p.name != "self" and p.kind in kinds]


def config_keys_check(cls: type, config: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """The keys of a saved ``config`` that ``cls``'s constructor does not accept, and the constructor arguments it
    lacks, both sorted. Arguments in ``cls.legacy_config_defaults`` (added after such configs were written) may be
    absent: :func:`complete_config` fills them with the values that reproduce the older behaviour."""
    accepted = {p.name for p in _init_parameters(cls)}
    legacy = set(getattr(cls, "legacy_config_defaults", {}) or {})
    return sorted(set(config) - accepted), sorted(accepted - set(config) - legacy)


def complete_config(cls: type, config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` with the legacy defaults of ``cls`` (see :func:`config_keys_check`) filled in where absent."""
    legacy = dict(getattr(cls, "legacy_config_defaults", {}) or {})
    return {**{k: v for k, v in legacy.items() if k not in config}, **config}


def _jsonable(value: Any, where: str) -> Any:
    if isinstance(value, tuple):
        value = list(value)
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{where} = {value!r} is not JSON-serialisable ({e}); zoo configs hold plain values") from None
    return value


def model_config(model: "VideoPredictionModel") -> dict[str, Any]:
    """Every ``__init__`` argument of ``model``, from ``model.hparams`` (falling back to attributes of that name).

    Returns the keyword arguments that rebuild the same architecture: ``type(model)(**model_config(model))``.
    """
    hparams = dict(getattr(model, "hparams", {}) or {})
    config: dict[str, Any] = {}
    for p in _init_parameters(type(model)):
        if p.name in hparams:
            value = hparams[p.name]
        elif hasattr(model, p.name):
            value = getattr(model, p.name)
        else:
            raise ValueError(
                f"cannot recover init argument {p.name!r} of {type(model).__qualname__}: call "
                "self.save_hyperparameters() in its __init__"
            )
        config[p.name] = _jsonable(value, f"{type(model).__qualname__} init argument {p.name}")
    return config


def config_document(
    model: "VideoPredictionModel", dtype: str = "float32", training: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The ``config.json`` document of ``model`` (see the module docstring)."""
    import vpzoo

    doc: dict[str, Any] = {
        "vpzoo_format": FORMAT_VERSION,
        "model": _model_name(model),
        "config": model_config(model),
        "dtype": dtype,
        "vpzoo_version": vpzoo.__version__,
    }
    if training:
        doc["training"] = _jsonable(dict(training), "training")
    return doc


def _check_document(doc: Any, source: str) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise CorruptCheckpointError(f"{source}: expected a JSON object, got {type(doc).__name__}")
    fmt = doc.get("vpzoo_format")
    if fmt is None or "model" not in doc or "config" not in doc:
        raise CorruptCheckpointError(
            f"{source}: not a vpzoo config (expected the keys 'vpzoo_format', 'model' and 'config', got "
            f"{sorted(doc)}); zoo folders are written by model.save_pretrained() or `vpzoo export`"
        )
    if not isinstance(fmt, int) or isinstance(fmt, bool) or fmt < 1:
        raise CorruptCheckpointError(f"{source}: vpzoo_format must be a positive integer, got {fmt!r}")
    if fmt > FORMAT_VERSION:
        raise CorruptCheckpointError(
            f"{source}: vpzoo_format {fmt!r} is newer than this vpzoo understands ({FORMAT_VERSION}); upgrade vpzoo"
        )
    if not isinstance(doc["model"], str) or not isinstance(doc["config"], dict):
        raise CorruptCheckpointError(f"{source}: 'model' must be a string and 'config' an object")
    if doc.get("dtype", "float32") not in _DTYPE_NAMES:
        raise CorruptCheckpointError(f"{source}: dtype must be one of {_DTYPE_NAMES}, got {doc.get('dtype')!r}")
    if "weights_sha256" in doc:
        try:
            _check_sha256_string(doc["weights_sha256"], "weights_sha256")
        except ValueError as e:
            raise CorruptCheckpointError(f"{source}: {e}") from None
    return doc


def read_config(path: str | os.PathLike) -> dict[str, Any]:
    """Read and check a ``config.json``."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointUnavailableError(f"no {CONFIG_NAME} at {path}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CorruptCheckpointError(f"{path}: not valid JSON ({e})") from None
    return _check_document(doc, str(path))


def read_weights_config(path: str | os.PathLike) -> dict[str, Any] | None:
    """The config document stored in a safetensors header, or ``None`` if it has none."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except FileNotFoundError:
        raise CheckpointUnavailableError(f"no weights file at {path}") from None
    except Exception as e:  # safetensors raises its own error type for a bad header
        raise CorruptCheckpointError(f"{path}: not a readable safetensors file ({e})") from None
    if _METADATA_KEY not in meta:
        return None
    try:
        return _check_document(json.loads(meta[_METADATA_KEY]), f"{path} (header metadata)")
    except json.JSONDecodeError as e:
        raise CorruptCheckpointError(f"{path}: header metadata {_METADATA_KEY!r} is not valid JSON ({e})") from None


def load_weights(path: str | os.PathLike, map_location: "str | torch.device" = "cpu") -> dict[str, "torch.Tensor"]:
    """The tensors of a safetensors file, on ``map_location``."""
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device=str(map_location))
    except FileNotFoundError:
        raise CheckpointUnavailableError(f"no weights file at {path}") from None
    except Exception as e:
        raise CorruptCheckpointError(f"{path}: not a readable safetensors file ({e})") from None


# ------------------------------------------------------------------------------------------------ building
def _list(items: list[str], limit: int = 8) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items)} in all)" if len(items) > limit else "")


def check_state_dict(model: "torch.nn.Module", state_dict: Mapping[str, "torch.Tensor"], strict: bool, source: str) -> None:
    """Raise :class:`ConfigMismatchError` naming missing/unexpected keys and shape or kind mismatches."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    shapes, kinds = [], []
    for key, tensor in state_dict.items():
        if key not in expected:
            continue
        want = expected[key]
        if tuple(tensor.shape) != tuple(want.shape):
            shapes.append(f"{key}: weights {tuple(tensor.shape)} vs model {tuple(want.shape)}")
        elif tensor.is_floating_point() != want.is_floating_point():
            kinds.append(f"{key}: weights {tensor.dtype} vs model {want.dtype}")
    problems = []
    if strict and missing:
        problems.append(f"missing keys (in the model, not in the weights): {_list(missing)}")
    if strict and unexpected:
        problems.append(f"unexpected keys (in the weights, not in the model): {_list(unexpected)}")
    if shapes:
        problems.append(f"shape mismatches: {_list(shapes)}")
    if kinds:
        problems.append(f"dtype kind mismatches: {_list(kinds)}")
    if problems:
        raise ConfigMismatchError(
            f"{source}: the config does not match the weights: " + "; ".join(problems)
            + ". The config and the weights come from different checkpoints (or one was edited)."
        )


def build_model(
    doc: Mapping[str, Any],
    state_dict: Mapping[str, "torch.Tensor"],
    *,
    device: "str | torch.device | None" = None,
    strict: bool = True,
    source: str = "checkpoint",
) -> "VideoPredictionModel":
    """Build the model a config document describes, load ``state_dict`` into it, move it to ``device``, eval mode.

    Floating tensors are cast to the model's dtype (float16 weights → float32 parameters).
    """
    import vpzoo
    from vpzoo.registry import get_model_class, list_models

    name, config = doc["model"], dict(doc["config"])
    try:
        cls = get_model_class(name)
    except KeyError:
        raise ConfigMismatchError(
            f"{source}: the config names model {name!r}, which vpzoo {vpzoo.__version__} does not have "
            f"(known models: {', '.join(list_models())}); a newer vpzoo may have it"
        ) from None
    unknown, missing = config_keys_check(cls, config)
    if unknown:
        accepted = sorted(p.name for p in _init_parameters(cls))
        raise ConfigMismatchError(
            f"{source}: config keys {unknown} are not arguments of {cls.__qualname__} (accepted: {accepted})"
        )
    if missing:
        raise ConfigMismatchError(
            f"{source}: the config lacks {missing}: a zoo config records every constructor argument of "
            f"{cls.__qualname__}, and vpzoo does not fill in today's defaults (they may differ from the ones the "
            "weights were trained with); add the values the model was trained with"
        )
    config = complete_config(cls, config)
    try:
        model = cls(**config)
    except (TypeError, ValueError) as e:
        raise ConfigMismatchError(f"{source}: the config cannot build {name}: {e}") from e
    check_state_dict(model, state_dict, strict, source)
    if device is not None:
        model.to(device)
    model.load_state_dict(dict(state_dict), strict=strict)
    return model.eval()


def load_folder_or_file(
    path: str | os.PathLike,
    *,
    map_location: "str | torch.device" = "cpu",
    device: "str | torch.device | None" = None,
    strict: bool = True,
    sha256: str | None = None,
    config_path: str | os.PathLike | None = None,
) -> tuple["VideoPredictionModel", dict[str, Any]]:
    """Load a zoo folder, a ``.safetensors`` file or a Lightning ``.ckpt`` file.

    Args:
        path: folder holding ``config.json`` + ``model.safetensors`` (or that ``config.json``); a ``.safetensors``
            file (config from its header metadata, else ``config.json`` beside it); or a Lightning checkpoint of
            ``vpzoo fit``.
        map_location: device the tensors are read to.
        device: device of the returned model.
        strict: require the weights' keys to equal the model's.
        sha256: if given, the weights file must have this sha256.
        config_path: use this ``config.json`` instead of the one beside the weights.

    Returns:
        ``(model, info)``; ``info`` holds ``weights`` (path), ``sha256``, ``config`` (the document).
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointUnavailableError(f"no such file or folder: {path}")
    if path.is_file() and path.name == CONFIG_NAME and config_path is None:
        path = path.parent  # the config.json of a zoo folder stands for the folder
    if path.is_dir():
        weights = path / WEIGHTS_NAME
        if not weights.is_file() and (path / INDEX_NAME).is_file():
            return _load_sharded_folder(path / INDEX_NAME, config_path, map_location, device, strict, sha256)
        if not weights.is_file():
            present = sorted(p.name for p in path.iterdir())[:10]
            raise CheckpointUnavailableError(
                f"{path} is not a zoo folder: it has no {WEIGHTS_NAME} (found: {present}); zoo folders are written "
                "by model.save_pretrained() or `vpzoo export`"
            )
        config_file = Path(config_path) if config_path is not None else path / CONFIG_NAME
    elif path.suffix == ".ckpt":
        if sha256 is not None:
            verify_sha256(path, sha256, str(path))
        doc, state_dict = read_lightning_checkpoint(path, map_location=map_location)
        model = build_model(doc, state_dict, device=device, strict=strict, source=str(path))
        return model, {"weights": str(path), "sha256": sha256, "config": doc}
    elif is_index(path):
        return _load_sharded_folder(path, config_path, map_location, device, strict, sha256)
    elif path.suffix == ".safetensors":
        weights = path
        config_file = Path(config_path) if config_path is not None else None
    else:
        raise ValueError(
            f"cannot load {path}: expected a zoo folder, a .safetensors file or a Lightning .ckpt file"
        )
    doc = read_config(config_file) if config_file is not None and config_file.is_file() else None
    beside = weights.parent / CONFIG_NAME
    if doc is None:
        doc = read_weights_config(weights)
        if doc is None:
            if config_file is None and beside.is_file():
                doc = read_config(beside)
            else:
                raise CheckpointUnavailableError(
                    f"{weights}: no {CONFIG_NAME} (looked for {config_file or beside}) and no vpzoo config in the "
                    "safetensors header, so the architecture is unknown; save with model.save_pretrained()"
                )
    # the folder's own record (config.json of save_pretrained): a changed weights file is caught without the caller
    record = config_file if config_file is not None else (beside if weights.name == WEIGHTS_NAME else None)
    recorded = read_config(record).get("weights_sha256") if record is not None and record.is_file() else None
    if sha256 is not None:
        digest = verify_sha256(weights, sha256, str(weights))
    elif recorded is not None:
        digest = verify_sha256(weights, recorded, f"{weights} (sha256 recorded in {record})")
    else:
        digest = file_sha256(weights)
    state_dict = load_weights(weights, map_location)
    model = build_model(doc, state_dict, device=device, strict=strict, source=str(weights))
    return model, {"weights": str(weights), "sha256": digest, "config": doc}


def _load_sharded_folder(
    index: Path,
    config_path: str | os.PathLike | None,
    map_location: "str | torch.device",
    device: "str | torch.device | None",
    strict: bool,
    sha256: str | None,
) -> tuple["VideoPredictionModel", dict[str, Any]]:
    """A sharded zoo folder (see :mod:`vpzoo.zoo.sharded`): ``sha256`` pins the index, the index every shard."""
    from vpzoo.zoo.sharded import index_config, load_sharded, read_index

    config_file = Path(config_path) if config_path is not None else index.parent / CONFIG_NAME
    doc = read_config(config_file) if config_file.is_file() else index_config(read_index(index), str(index))
    recorded = doc.get("weights_sha256") if doc is not None and config_file.is_file() else None
    if sha256 is not None:
        digest = verify_sha256(index, sha256, str(index))
    elif recorded is not None:  # the folder's own record (config.json of save_pretrained) pins the index
        digest = verify_sha256(index, recorded, f"{index} (sha256 recorded in {config_file})")
    else:
        digest = file_sha256(index)
    if doc is None:
        raise CheckpointUnavailableError(
            f"{index}: no {CONFIG_NAME} (looked for {config_file}) and no vpzoo_config in the index metadata, so the "
            "architecture is unknown"
        )
    state_dict = load_sharded(index, map_location)
    model = build_model(doc, state_dict, device=device, strict=strict, source=str(index))
    return model, {"weights": str(index), "sha256": digest, "config": doc}


# ------------------------------------------------------------------------------------------------ saving
def _cast_state_dict(state_dict: Mapping[str, "torch.Tensor"], dtype: str | None) -> dict[str, "torch.Tensor"]:
    import torch

    out = {}
    target = None if dtype is None else getattr(torch, dtype)
    overflow = []
    for key, tensor in state_dict.items():
        t = tensor.detach().to("cpu")
        if target is not None and t.is_floating_point():
            cast = t.to(target)
            if torch.isfinite(t).all() and not torch.isfinite(cast).all():
                overflow.append(key)
            t = cast
        out[key] = t.contiguous().clone()
    if overflow:
        raise ValueError(f"casting to {dtype} overflows (values beyond its range) in: {_list(overflow)}")
    return out


def _dtype_name(state_dict: Mapping[str, "torch.Tensor"]) -> str:
    names = {str(t.dtype).replace("torch.", "") for t in state_dict.values() if t.is_floating_point()}
    return names.pop() if len(names) == 1 and names <= set(_DTYPE_NAMES) else "float32"


def save_pretrained(
    model: "VideoPredictionModel",
    save_directory: str | os.PathLike,
    *,
    dtype: str | None = None,
    metrics: list[Mapping[str, Any]] | None = None,
    card: Mapping[str, Any] | None = None,
    training: Mapping[str, Any] | None = None,
    repo_id: str | None = None,
    model_card: bool = True,
    max_shard_bytes: int | None = None,
) -> Path:
    """Write ``config.json``, ``model.safetensors`` and a model card ``README.md`` into ``save_directory``.

    Args:
        model: a registered vpzoo model.
        save_directory: created if missing; these three files are overwritten, nothing else is touched.
        dtype: ``"float16"``/``"bfloat16"``/``"float32"`` for the stored floating tensors (``None``: as they are).
            Loading upcasts to the model's float32.
        metrics: metric records for the card (see :func:`check_metrics`); default: those of the checkpoints.yaml
            entry the model was loaded from, if any.
        card: extra card fields: ``name``, ``dataset``, ``license``, ``paper``, ``training``, ``notes``
            (default: the checkpoints.yaml entry the model was loaded from).
        training: provenance stored in ``config.json`` (e.g. by ``vpzoo export``).
        repo_id: Hub repository the folder is for (used in the card's usage snippet).
        model_card: write ``README.md``.
        max_shard_bytes: write the weights as shards of at most this many bytes (``model-0000k-of-0000N.safetensors``
            + ``model.safetensors.index.json``, see :mod:`vpzoo.zoo.sharded`) instead of one ``model.safetensors``.

    Returns:
        the folder.
    """
    from safetensors.torch import save_file

    from vpzoo.cache import _Lock as _FolderLock
    from vpzoo.cache import atomic_write_text

    if dtype is not None and dtype not in _DTYPE_NAMES:
        raise ValueError(f"dtype must be one of {_DTYPE_NAMES} or None, got {dtype!r}")
    folder = Path(save_directory)
    folder.mkdir(parents=True, exist_ok=True)
    state_dict = _cast_state_dict(model.state_dict(), dtype)
    doc = config_document(model, dtype=_dtype_name(state_dict), training=training)
    loaded_from = getattr(model, "zoo_info", None) or {}
    entry = loaded_from.get("entry") or {}
    card_info = dict(entry) if card is None else dict(card)
    if metrics is not None:
        card_info["metrics"] = check_metrics(list(metrics), "metrics")
    with _FolderLock(folder / ".vpzoo-save.lock"):  # concurrent saves into one folder: one at a time, never mixed
        if max_shard_bytes is not None:  # shards + index; the index records every shard's sha256
            from vpzoo.zoo.sharded import save_sharded

            (folder / WEIGHTS_NAME).unlink(missing_ok=True)
            weights = save_sharded(state_dict, folder, config_doc=doc, max_shard_bytes=max_shard_bytes)
            digest = file_sha256(weights)
        else:
            weights = folder / WEIGHTS_NAME
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{WEIGHTS_NAME}.", suffix=".tmp")
            os.close(fd)
            try:
                save_file(state_dict, tmp, metadata={"format": "pt", _METADATA_KEY: json.dumps(doc, sort_keys=True)})
                digest = file_sha256(tmp)
                os.replace(tmp, weights)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        # the digest cannot live in the header of the file it hashes: config.json records it, and loading checks it
        # (for sharded weights it is the index's)
        atomic_write_text(folder / CONFIG_NAME,
                          json.dumps({**doc, "weights_sha256": digest}, indent=2, sort_keys=True) + "\n")
    written = [weights, folder / CONFIG_NAME]
    if model_card:
        text = render_model_card(
            doc, card_info, repo_id=repo_id, weights_sha256=digest, weights_size=weights.stat().st_size,
            weights_name=weights.name,
        )
        atomic_write_text(folder / CARD_NAME, text)
        written.append(folder / CARD_NAME)
    for path in written:  # temp-file writes are private (0600); these files are meant to be shared
        os.chmod(path, 0o644)
    return folder


# ------------------------------------------------------------------------------------------------ metrics & card
_METRIC_FIELDS = {
    "metric": str, "protocol": str, "reduction": str, "num_samples": int, "context_frames": int,
    "predicted_frames": int, "num_sequences": int, "test_set": str, "benchmark": str, "value": float,
    "copy_last": float, "black": float, "repeat_start": float, "crossfade": float,
}
#: The baselines a metric record may carry (measured by its benchmark on the same clips) and their table labels
#: (model cards here, benchmark reports in vpzoo.leaderboard).
BASELINE_LABELS = {"copy_last": "copy_last", "black": "all-black frame", "repeat_start": "repeat start frame",
                     "crossfade": "start-to-end crossfade"}
_METRIC_REQUIRED = ("metric", "protocol", "num_samples", "value")


def check_metrics(metrics: Any, where: str) -> list[dict[str, Any]]:
    """Validate metric records; return them as plain dicts.

    A record: ``metric`` (``"psnr"``, ``"ssim"``, ...), ``protocol`` (a :mod:`vpzoo.metrics` protocol name),
    ``num_samples`` (N of best-of-N; 1 for deterministic models), ``value``; optional ``reduction`` (``"best"``,
    ``"mean"``, ``"worst"``), ``context_frames``, ``predicted_frames``, ``num_sequences``, ``test_set`` (which
    clips), ``benchmark`` (the :mod:`vpzoo.leaderboard` protocol that measured it), ``copy_last`` (the copy-last
    baseline's value under the same protocol), ``black`` (an all-black prediction's value, ditto), ``repeat_start``
    and ``crossfade`` (the point-to-point baselines, ditto).
    """
    if not isinstance(metrics, list):
        raise ValueError(f"{where} must be a list of metric records, got {type(metrics).__name__}")
    out = []
    for i, rec in enumerate(metrics):
        at = f"{where}[{i}]"
        if not isinstance(rec, Mapping):
            raise ValueError(f"{at} must be a mapping, got {type(rec).__name__}")
        missing = [k for k in _METRIC_REQUIRED if k not in rec]
        unknown = sorted(set(rec) - set(_METRIC_FIELDS))
        if missing or unknown:
            raise ValueError(f"{at}: missing fields {missing}, unknown fields {unknown}; fields: {sorted(_METRIC_FIELDS)}")
        for key, typ in _METRIC_FIELDS.items():
            if key not in rec:
                continue
            value = rec[key]
            ok = (isinstance(value, (int, float)) and not isinstance(value, bool)) if typ is float else (
                isinstance(value, typ) and not isinstance(value, bool))
            if not ok:
                raise ValueError(f"{at}.{key} must be {typ.__name__}, got {value!r}")
            if typ is int and value < 1:
                raise ValueError(f"{at}.{key} must be >= 1, got {value}")
        if rec.get("reduction", "best") not in ("best", "mean", "worst"):
            raise ValueError(f"{at}.reduction must be 'best', 'mean' or 'worst', got {rec['reduction']!r}")
        out.append(dict(rec))
    return out


def _metrics_table(metrics: list[Mapping[str, Any]]) -> str:
    rows = [
        "| metric | value | baselines on the same clips | protocol | selection | context | predicted | sequences "
        "| test set |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for m in metrics:
        n = m["num_samples"]
        selection = f"{m.get('reduction', 'best')} of {n}" if n > 1 else "single sample"
        fmt = (lambda v: f"{v:.4f}" if m["metric"] in ("ssim", "cp_ssim") else f"{v:.2f}")
        baselines = "; ".join(f"{label} {fmt(m[key])}" for key, label in BASELINE_LABELS.items() if key in m)
        rows.append(
            f"| {m['metric']} | {fmt(m['value'])} | {baselines} | "
            f"{m['protocol']} | {selection} | {m.get('context_frames', '')} | {m.get('predicted_frames', '')} | "
            f"{m.get('num_sequences', '')} | {m.get('test_set', '')} |"
        )
    return "\n".join(rows)


def render_model_card(
    doc: Mapping[str, Any],
    info: Mapping[str, Any] | None = None,
    *,
    repo_id: str | None = None,
    weights_sha256: str | None = None,
    weights_size: int | None = None,
    weights_name: str = WEIGHTS_NAME,
) -> str:
    """Markdown model card (with Hugging Face YAML front matter) for a config document and optional entry info."""
    import yaml

    info = dict(info or {})
    model = doc["model"]
    name = info.get("name") or (repo_id.split("/")[-1] if repo_id else model)
    license_id = info.get("license")
    paper = info.get("paper") or model_paper(model)
    front: dict[str, Any] = {"library_name": "vpzoo"}
    if license_id:
        front["license"] = str(license_id).lower()
    front["tags"] = ["vpzoo", "video-prediction", "pytorch-lightning", model] + (
        [info["dataset"]] if info.get("dataset") else [])
    lines = ["---", yaml.safe_dump(front, sort_keys=False).strip(), "---", "", f"# {name}", ""]
    what = f"Video-prediction model `{model}`" + (f" trained on {info['dataset']}" if info.get("dataset") else "")
    lines.append(f"{what}, in the vpzoo zoo format (`config.json` + `model.safetensors`; `pip install vpzoo`).")
    if paper:
        lines += ["", f"Paper: {paper.get('authors', '')}, *{paper.get('title', '')}*, {paper.get('venue', '')}"
                  + (f", arXiv:{paper['arxiv']}" if paper.get("arxiv") else "") + "."]
    ref = f"hf://{repo_id}" if repo_id else (info.get("name") or "path/to/this/folder")
    cfg = doc["config"]
    n_past = cfg.get("n_past", 1)
    lines += [
        "", "## Usage", "", "```python", "import torch, vpzoo", "",
        f'model = vpzoo.load("{ref}")          # eval mode; device="cuda" to move it',
        f"frames = torch.rand({n_past}, {cfg.get('channels', 1)}, {cfg.get('image_size', 64)}, "
        f"{cfg.get('image_size', 64)})   # (T, C, H, W) in [0, 1], T >= {n_past} context frames",
        "pred = model.predict(frames, n_future=10, num_samples=3, seed=0)   # (1, 3, 10, C, H, W)",
        "```", "",
        f"Command line: `vpzoo predict {ref} --input clip.mp4 --n-future 10 --num-samples 3 --out pred.gif`", "",
    ]
    metrics = info.get("metrics") or []
    if metrics:
        lines += ["## Metrics", "", _metrics_table(metrics), "",
                  "Protocols are defined in `vpzoo.metrics` (`svg`: SSIM with data_range 2 as the SVG paper's "
                  "evaluation; `standard`: data_range 1). Best-of-N picks, per test sequence, the sample with the "
                  "best mean over the predicted frames.", ""]
    else:
        lines += ["## Metrics", "", "Not measured for this checkpoint.", ""]
    training = info.get("training")
    provenance = doc.get("training") or {}
    if training:
        lines += ["## Training", ""] + [f"- {k}: {v}" for k, v in training.items()] + [""]
    elif provenance.get("lightning_checkpoint"):
        dm = (provenance.get("datamodule") or {}).get("_class_path")
        lines += ["## Training", "", f"Exported from the Lightning checkpoint `{provenance['lightning_checkpoint']}` "
                  f"(step {provenance.get('global_step')}, epoch {provenance.get('epoch')})"
                  + (f", data module `{dm}`" if dm else "") + "; see `training` in config.json.", ""]
    if info.get("notes"):
        lines += ["## Notes", "", str(info["notes"]).strip(), ""]
    lines += ["## Config", "", "```json", json.dumps(doc["config"], indent=2, sort_keys=True), "```", ""]
    files = [f"- `{CONFIG_NAME}`: model `{model}` and its init arguments (vpzoo_format {doc['vpzoo_format']})"]
    if weights_sha256:
        size = f", {weights_size:,} bytes" if weights_size is not None else ""
        files.append(f"- `{weights_name}`: {doc.get('dtype', 'float32')} weights, sha256 `{weights_sha256}`{size}"
                     + (" (the shard index; it records the sha256 of every shard)" if weights_name != WEIGHTS_NAME
                        else ""))
    lines += ["## Files", ""] + files + [""]
    if license_id:
        lines += ["## License", "", str(license_id), ""]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ Lightning
def registered_class_paths() -> dict[str, str]:
    """``module.QualName`` of every registered model class -> its registry name. The only class paths vpzoo accepts
    from a file: a path read from a checkpoint is looked up here and never imported."""
    from vpzoo.registry import get_model_class, list_models

    return {f"{get_model_class(n).__module__}.{get_model_class(n).__qualname__}": n for n in list_models()}


def _resolve_class_path(class_path: Any) -> str:
    from vpzoo.registry import list_models

    name = registered_class_paths().get(class_path) if isinstance(class_path, str) else None
    if name is None:
        raise ConfigMismatchError(
            f"the checkpoint's model class {class_path!r} is not a registered vpzoo model class (vpzoo never imports "
            f"a class named in a file); pass model=NAME (`--model NAME`) with one of {', '.join(list_models())}"
        )
    return name


def read_lightning_checkpoint(
    path: str | os.PathLike, *, model: str | None = None, map_location: "str | torch.device" = "cpu"
) -> tuple[dict[str, Any], dict[str, "torch.Tensor"]]:
    """Config document and ``state_dict`` of a Lightning checkpoint written by ``vpzoo fit``.

    The model is identified by ``model`` (registry name) or the checkpoint's ``hyper_parameters._class_path``
    (LightningCLI writes it); its init arguments are the checkpoint's ``hyper_parameters``.
    """
    import torch

    import lightning

    path = Path(path)
    if not path.is_file():
        raise CheckpointUnavailableError(f"no such Lightning checkpoint: {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if reason.strip("()").isdigit():  # torch's bare errno of an unreadable file, e.g. "(101)"
            reason = "not a PyTorch checkpoint file"
        raise CorruptCheckpointError(
            f"{path}: cannot read it as a Lightning checkpoint ({reason}); expected a .ckpt written by `vpzoo fit`"
        ) from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise CorruptCheckpointError(f"{path}: not a Lightning checkpoint (no 'state_dict')")
    hparams = dict(ckpt.get("hyper_parameters") or {})
    class_path = hparams.pop("_class_path", None)
    hparams.pop("_instantiator", None)
    if model is None:
        if class_path is None:
            from vpzoo.registry import list_models

            raise ConfigMismatchError(
                f"{path}: the checkpoint does not name its model class; pass model=NAME (`--model NAME`) with one of "
                f"{', '.join(list_models())}"
            )
        model = _resolve_class_path(class_path)
    from vpzoo.registry import get_model_class

    accepted = {p.name for p in _init_parameters(get_model_class(model))}
    config = {k: _jsonable(v, f"hyper_parameters.{k}") for k, v in hparams.items() if k in accepted}
    dropped = sorted(set(hparams) - accepted)
    training: dict[str, Any] = {
        "lightning_checkpoint": path.name,
        "global_step": ckpt.get("global_step"),
        "epoch": ckpt.get("epoch"),
        "lightning_version": ckpt.get("pytorch-lightning_version", lightning.__version__),
    }
    if dropped:
        training["ignored_hyper_parameters"] = dropped
    dm = dict(ckpt.get("datamodule_hyper_parameters") or {})
    if dm:
        dm.pop("_instantiator", None)
        training["datamodule"] = {k: v for k, v in dm.items() if _is_plain(v)}
    doc = {"vpzoo_format": FORMAT_VERSION, "model": model, "config": config, "dtype": "float32", "training": training}
    state_dict = {k: v for k, v in ckpt["state_dict"].items()}
    return doc, state_dict


def _is_plain(value: Any) -> bool:
    try:
        json.dumps(value)
        return True
    except (TypeError, ValueError):
        return False


def export_lightning_checkpoint(
    ckpt_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    dtype: str | None = None,
    model: str | None = None,
    card: Mapping[str, Any] | None = None,
) -> Path:
    """Convert a Lightning checkpoint of ``vpzoo fit`` to a zoo folder (what ``vpzoo export`` runs).

    The model is rebuilt from the checkpoint's hyperparameters and its weights loaded strictly, so the exported
    folder is known to load. ``dtype="float16"`` halves the file (loading upcasts to float32).
    """
    doc, state_dict = read_lightning_checkpoint(ckpt_path, model=model)
    built = build_model(doc, state_dict, strict=True, source=str(ckpt_path))
    return save_pretrained(built, out_dir, dtype=dtype, training=doc["training"], card=card or {})
