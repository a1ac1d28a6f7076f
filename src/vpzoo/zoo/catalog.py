"""``checkpoints.yaml``: the registry of pretrained checkpoints, its schema, and the helper that writes entries.

The packaged file is ``vpzoo/checkpoints.yaml`` (the repository's top-level ``checkpoints.yaml`` is a symlink to
it). ``$VPZOO_CHECKPOINTS`` (or ``path=`` of the functions here) points the zoo at another file, e.g. a private
registry or a test's. Entries with weights are what vpzoo.load takes; planned ones (the training queue, below)
have none yet. Document layout::

    format_version: 1
    checkpoints:
      - name: svg_lp_smmnist              # what vpzoo.load() takes; [a-z0-9][a-z0-9_.-]*
        model: svg_lp                     # registry name of the architecture
        dataset: smmnist
        image_size: 64                    # must equal config.image_size
        channels: 1                       # must equal config.channels
        context_frames: 5                 # must equal config.n_past
        future_frames: 10                 # must equal config.n_future (frames predicted in training)
        config: {...}                     # every init argument of the model
        weights:
          source: file                    # file: `path` relative to this YAML file's folder (the package)
          path: weights/svg_lp_smmnist.safetensors
          # source: hub -> repo: owner/name, filename: model.safetensors, revision: <40-hex commit>
          # source: official -> url (raw file at a pinned commit), git_blob, converter (see _official_entry_problems;
          #   the authors' file is downloaded and converted on first use, vpzoo.zoo.official)
          sha256: <64 hex>
          size: 25000000                  # bytes
          dtype: float16
        license: Apache-2.0
        paper: {title: ..., authors: ..., venue: ..., arxiv: ..., url: ...}
        training: {config: configs/svg_lp/smmnist.yaml, steps: 20000, hardware: ..., time: ...}
        metrics:                          # measured on the test protocol; see vpzoo.zoo.format.check_metrics
          - {metric: ssim, protocol: svg, reduction: best, num_samples: 100, context_frames: 5,
             predicted_frames: 20, num_sequences: 1000, test_set: ..., value: 0.85, copy_last: 0.70,
             black: 0.73}                 # copy_last, black: the baselines on the same clips
        notes: ...                        # optional; say here where the recipe deviates from the paper
        queue: {...}                      # optional: its training-queue recipe (below)

The training queue. Every checkpoint the zoo plans to have, shipped or not, carries a ``queue`` mapping (separable
from the rest of the entry, valid on any entry); a checkpoint without weights yet is a ``status: planned`` entry with
only ``name``, ``model``, ``dataset``, ``status``, ``queue`` (optional ``license``, ``paper``, ``notes``)::

      - name: svg_lp_bair
        model: svg_lp
        dataset: bair
        status: planned                   # shipped entries may say `status: shipped`; the default
        queue:
          config: configs/svg_lp/bair.yaml    # LightningCLI config, relative to the repository
          overrides: {data.init_args.root: data/bair}   # optional: dotted keys passed after --config
          paper_steps: 180000             # the paper's schedule
          paper_batch: 100
          steps_trained: 0                # steps of the shipped weights so far
          batch_trained: 16               # optional (default paper_batch): clips per step of those steps (their
                                          # mean where runs differed); CPU runs train smaller batches
          ship_bar: {benchmark: bair_fvd, metric: fvd, must_beat: [shipped, copy_last],
                     also: [{metric: ssim, must_beat: [copy_last]}]}   # optional: more conditions, all must hold
          priority: 1                     # 1 first
          data: "vpzoo data prepare bair --root data/bair (the 30 GB tar from rail.eecs.berkeley.edu)"
          bf16: true                      # optional (default true): bf16-mixed autocast is safe for this model
          other: "..."                    # optional: other ways to get weights (official ones, ...)
          resume: {weights: queue/svg_lp_bair.safetensors, sha256: ...}   # optional, planned entries only: an
                                          # unfinished run's weights (steps_trained counts theirs), where the next
                                          # `vpzoo train-checkpoint` starts; see keep_resume_weights

``vpzoo.load`` on a planned entry raises :class:`~vpzoo.zoo.errors.PlannedCheckpointError` saying how to train it;
``vpzoo train-checkpoint NAME`` (:mod:`vpzoo.zoo.training`) trains it; ``vpzoo add-checkpoint --replace`` ships the
result only when it beats the ship bar.

Add an entry with ``vpzoo add-checkpoint`` (:func:`make_checkpoint_entry` + :func:`add_checkpoint`).
"""

from __future__ import annotations

import copy
import fnmatch
import os
import re
import shutil
from pathlib import Path
from typing import Any, Mapping

from vpzoo.zoo.errors import CheckpointUnavailableError, UnknownCheckpointError
from vpzoo.zoo.format import check_metrics, model_paper, file_sha256, read_config, read_weights_config, WEIGHTS_NAME

__all__ = [
    "CHECKPOINTS_ENV",
    "CATALOG_FORMAT_VERSION",
    "packaged_checkpoints_file",
    "checkpoints_file",
    "repository_file",
    "read_checkpoints",
    "read_entries",
    "read_planned",
    "read_queue",
    "queue_progress",
    "mean_batch",
    "planned_message",
    "validate_checkpoints",
    "list_checkpoints",
    "checkpoint_info",
    "find_hub_entry",
    "make_checkpoint_entry",
    "add_checkpoint",
    "keep_resume_weights",
    "check_ship_bar",
    "describe_ship_bar",
    "ship_bar_conditions",
    "ReplacementRefusedError",
    "PACKAGED_WEIGHTS_BUDGET",
]

CHECKPOINTS_ENV = "VPZOO_CHECKPOINTS"
CATALOG_FORMAT_VERSION = 1

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_HEX40 = re.compile(r"^[0-9a-f]{40}$")
_REPO_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
_DTYPES = ("float32", "float16", "bfloat16")
_ENTRY_KEYS = {
    "name": str, "model": str, "dataset": str, "image_size": int, "channels": int, "context_frames": int,
    "future_frames": int, "config": dict, "weights": dict, "license": str, "paper": dict, "training": dict,
    "metrics": list,
}
_OPTIONAL_KEYS = {"notes": str, "status": str, "queue": dict}
# the training queue (see the module docstring): `queue:` on any entry, `status: planned` for entries without weights
_PLANNED_KEYS = {"name": str, "model": str, "dataset": str, "status": str, "queue": dict}
_PLANNED_OPTIONAL = {"license": str, "paper": dict, "notes": str}
_QUEUE_KEYS = {"config": str, "paper_steps": int, "paper_batch": int, "steps_trained": int, "ship_bar": dict,
               "priority": int, "data": str}
_QUEUE_OPTIONAL = {"overrides": dict, "bf16": bool, "other": str, "resume": dict, "batch_trained": int}
#: ``queue.resume`` (planned entries only): weights of an unfinished run, kept in the repository so that the next run,
#: on any machine, continues from them (``vpzoo train-checkpoint`` does by default); ``steps_trained`` counts theirs.
_RESUME_KEYS = {"weights": str, "sha256": str}
_SHIP_BAR_KEYS = {"benchmark": str, "metric": str, "must_beat": list}
#: ``ship_bar.also``: further conditions on other metrics of the same benchmark, each ``{metric, must_beat}``.
_SHIP_BAR_OPTIONAL = {"also": list}
_SHIP_CONDITION_KEYS = {"metric": str, "must_beat": list}
#: What a ship bar's ``must_beat`` may name besides numbers: the shipped weights, or a baseline that the bar's benchmark
#: measures on the same clips (``copy_last``/``black`` for forecasting benchmarks, ``repeat_start``/``crossfade`` for
#: point-to-point ones: :attr:`vpzoo.leaderboard.Benchmark.baselines`).
_BASELINES = ("shipped", "copy_last", "black", "repeat_start", "crossfade")
_TRAINING_KEYS = {"config": str, "steps": int, "hardware": str, "time": str}
#: typed optional keys of ``training`` (others, e.g. ``by``, ``command``, are free): ``batch``, the clips per step of
#: ``steps`` (their mean where runs differed)
_TRAINING_OPTIONAL = {"paper_steps": int, "batch": int}
_CONFIG_OF = {"image_size": "image_size", "channels": "channels", "context_frames": "n_past", "future_frames": "n_future"}

_CACHE: dict[tuple[str, int, int], dict[str, dict[str, Any]]] = {}


def packaged_checkpoints_file() -> Path:
    """``checkpoints.yaml`` inside the installed package."""
    return Path(__file__).resolve().parent.parent / "checkpoints.yaml"


def checkpoints_file(path: str | os.PathLike | None = None) -> Path:
    """The registry in use: ``path`` if given, else ``$VPZOO_CHECKPOINTS``, else the packaged file."""
    if path is not None:
        return Path(path)
    env = os.environ.get(CHECKPOINTS_ENV)
    return Path(env) if env else packaged_checkpoints_file()


def repository_file(rel: str | os.PathLike, path: str | os.PathLike | None = None, what: str = "file") -> Path:
    """A file that a registry entry names relative to the repository (a ``queue.config`` recipe, ``queue.resume``
    weights): relative to the working directory, else to the repository holding the registry
    (``src/vpzoo/checkpoints.yaml`` -> the repository root), else to the registry's folder."""
    rel = Path(rel)
    registry = checkpoints_file(path).resolve()
    candidates = [Path.cwd() / rel, registry.parent.parent.parent / rel, registry.parent / rel]
    for c in candidates:
        if c.is_file():
            return c
    raise FileNotFoundError(f"{what} {rel} is not in any of {[str(c.parent) for c in candidates]}; run from the "
                            "repository root")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_types(mapping: Mapping[str, Any], spec: Mapping[str, type], where: str, required: bool) -> list[str]:
    problems = []
    for key, typ in spec.items():
        if key not in mapping:
            if required:
                problems.append(f"{where}: missing {key!r}")
            continue
        value = mapping[key]
        ok = _is_int(value) if typ is int else isinstance(value, typ)
        if not ok:
            problems.append(f"{where}.{key} must be {typ.__name__}, got {value!r}")
    return problems


def _entry_problems(entry: Any, index: int) -> list[str]:
    """Structural checks (no model import, no file access)."""
    where = f"checkpoints[{index}]"
    if not isinstance(entry, dict):
        return [f"{where} must be a mapping, got {type(entry).__name__}"]
    if isinstance(entry.get("name"), str):
        where = f"checkpoints[{index}] ({entry['name']})"
    if isinstance(entry.get("weights"), dict) and entry["weights"].get("source") == "official":
        return _official_entry_problems(entry, where)
    if entry.get("status") == "planned":
        return _planned_problems(entry, where)
    problems = _check_types(entry, _ENTRY_KEYS, where, required=True)
    problems += _check_types(entry, _OPTIONAL_KEYS, where, required=False)
    if "status" in entry and entry["status"] != "shipped":
        problems.append(f"{where}.status must be 'shipped' (weights listed) or 'planned' (no weights yet), got "
                        f"{entry['status']!r}")
    if isinstance(entry.get("queue"), dict):
        problems += _queue_problems(entry["queue"], f"{where}.queue") + _shipped_resume_problems(entry, where)
    unknown = sorted(set(entry) - set(_ENTRY_KEYS) - set(_OPTIONAL_KEYS))
    if unknown:
        problems.append(f"{where}: unknown keys {unknown}")
    if problems:
        return problems
    if not _NAME_RE.match(entry["name"]):
        problems.append(f"{where}.name must match {_NAME_RE.pattern}, got {entry['name']!r}")
    for key, cfg_key in _CONFIG_OF.items():
        if entry[key] < 1:
            problems.append(f"{where}.{key} must be >= 1")
        if entry["config"].get(cfg_key) != entry[key]:
            problems.append(
                f"{where}.{key} = {entry[key]} but config.{cfg_key} = {entry['config'].get(cfg_key)!r}; they must agree"
            )
    w = entry["weights"]
    wh = f"{where}.weights"
    source = w.get("source")
    common = {"source": str, "sha256": str, "size": int, "dtype": str}
    if source == "file":
        spec = {**common, "path": str}
    elif source == "hub":
        spec = {**common, "repo": str, "filename": str, "revision": str}
    else:
        return problems + [f"{wh}.source must be 'file' or 'hub', got {source!r}"]
    typing = _check_types(w, spec, wh, required=True)
    extra = sorted(set(w) - set(spec))
    if extra:
        typing.append(f"{wh}: unknown keys {extra} for source {source!r}")
    if typing:
        return problems + typing
    if not _HEX64.match(w["sha256"]):
        problems.append(f"{wh}.sha256 must be 64 lowercase hex characters, got {w['sha256']!r}")
    if w["size"] < 1:
        problems.append(f"{wh}.size must be >= 1 byte")
    if w["dtype"] not in _DTYPES:
        problems.append(f"{wh}.dtype must be one of {_DTYPES}, got {w['dtype']!r}")
    if source == "file":
        p = Path(w["path"])
        if p.is_absolute() or ".." in p.parts:
            problems.append(f"{wh}.path must be relative to the checkpoints file's folder, got {w['path']!r}")
    else:
        if not _REPO_RE.match(w["repo"]):
            problems.append(f"{wh}.repo must be 'owner/name', got {w['repo']!r}")
        if not _HEX40.match(w["revision"]):
            problems.append(f"{wh}.revision must pin a 40-hex commit (a branch or tag can move), got {w['revision']!r}")
    problems += _check_types(entry["paper"], {"title": str}, f"{where}.paper", required=True)
    problems += _check_types(entry["training"], _TRAINING_KEYS, f"{where}.training", required=True)
    problems += _check_types(entry["training"], _TRAINING_OPTIONAL, f"{where}.training", required=False)
    if not entry["metrics"]:
        problems.append(f"{where}.metrics: at least one metric measured on the test protocol is required")
    else:
        try:
            check_metrics(entry["metrics"], f"{where}.metrics")
        except ValueError as e:
            problems.append(str(e))
    return problems


# ``weights.source: official``: the authors' own file, downloaded from its pinned URL, verified by its git blob id
# and converted by vpzoo.zoo.official (see official_checkpoint). ``status: planned`` marks an entry whose converter
# does not exist yet (only url and the facts a converter needs are recorded; it cannot be loaded).
_OFFICIAL_KEYS = {"name": str, "model": str, "dataset": str, "weights": dict, "license": str, "paper": dict,
                  "notes": str}
_OFFICIAL_READY_KEYS = {"image_size": int, "channels": int, "context_frames": int, "future_frames": int,
                        "config": dict}
_OFFICIAL_OPTIONAL = {"status": str, "training": dict, "metrics": list, "queue": dict, **_OFFICIAL_READY_KEYS}
_OFFICIAL_WEIGHTS = {"source": str, "url": str, "git_blob": str, "converter": str}
_OFFICIAL_WEIGHTS_OPTIONAL = {"size": int, "repo": str, "commit": str, "path": str, "format": str, "filename": str}


def _official_entry_problems(entry: dict[str, Any], where: str) -> list[str]:
    planned = entry.get("status") == "planned"
    problems = _check_types(entry, _OFFICIAL_KEYS, where, required=True)
    problems += _check_types(entry, _OFFICIAL_OPTIONAL, where, required=False)
    if not planned:
        problems += _check_types(entry, _OFFICIAL_READY_KEYS, where, required=True)
    unknown = sorted(set(entry) - set(_OFFICIAL_KEYS) - set(_OFFICIAL_OPTIONAL))
    if unknown:
        problems.append(f"{where}: unknown keys {unknown}")
    if "status" in entry and entry["status"] != "planned":
        problems.append(f"{where}.status must be 'planned' (or absent), got {entry['status']!r}")
    if problems:
        return problems
    if not _NAME_RE.match(entry["name"]):
        problems.append(f"{where}.name must match {_NAME_RE.pattern}, got {entry['name']!r}")
    w, wh = entry["weights"], f"{where}.weights"
    problems += _check_types(w, {"source": str, "url": str} if planned else _OFFICIAL_WEIGHTS, wh, required=True)
    problems += _check_types(w, {**_OFFICIAL_WEIGHTS, **_OFFICIAL_WEIGHTS_OPTIONAL}, wh, required=False)
    extra = sorted(set(w) - set(_OFFICIAL_WEIGHTS) - set(_OFFICIAL_WEIGHTS_OPTIONAL))
    if extra:
        problems.append(f"{wh}: unknown keys {extra} for source 'official'")
    if problems:
        return problems
    if not w["url"].startswith(("https://", "http://")):  # the content is pinned by git_blob, not by the transport
        problems.append(f"{wh}.url must be an http(s):// URL, got {w['url']!r}")
    if "git_blob" in w and not _HEX40.match(w["git_blob"]):
        problems.append(f"{wh}.git_blob must be a git blob id (40 lowercase hex), got {w['git_blob']!r}")
    if "commit" in w and not _HEX40.match(w["commit"]):
        problems.append(f"{wh}.commit must be a 40-hex commit, got {w['commit']!r}")
    if not planned:
        from vpzoo.zoo.official import CONVERTERS

        if w["converter"] not in CONVERTERS:
            problems.append(f"{wh}.converter must be one of {sorted(CONVERTERS)}, got {w['converter']!r}")
        for key, cfg_key in _CONFIG_OF.items():
            if entry["config"].get(cfg_key) != entry[key]:
                problems.append(f"{where}.{key} = {entry[key]} but config.{cfg_key} = "
                                f"{entry['config'].get(cfg_key)!r}; they must agree")
    problems += _check_types(entry["paper"], {"title": str}, f"{where}.paper", required=True)
    if entry.get("metrics"):
        try:
            check_metrics(entry["metrics"], f"{where}.metrics")
        except ValueError as e:
            problems.append(str(e))
    if isinstance(entry.get("queue"), dict):
        problems += _queue_problems(entry["queue"], f"{where}.queue") + _shipped_resume_problems(entry, where)
    return problems


def _queue_problems(queue: Mapping[str, Any], where: str) -> list[str]:
    """Checks of an entry's ``queue`` recipe (valid on shipped and planned entries alike)."""
    problems = _check_types(queue, _QUEUE_KEYS, where, required=True)
    problems += _check_types(queue, _QUEUE_OPTIONAL, where, required=False)
    unknown = sorted(set(queue) - set(_QUEUE_KEYS) - set(_QUEUE_OPTIONAL))
    if unknown:
        problems.append(f"{where}: unknown keys {unknown}")
    if problems:
        return problems
    for key in ("paper_steps", "paper_batch", "priority"):
        if queue[key] < 1:
            problems.append(f"{where}.{key} must be >= 1, got {queue[key]}")
    if queue["steps_trained"] < 0:
        problems.append(f"{where}.steps_trained must be >= 0, got {queue['steps_trained']}")
    if queue.get("batch_trained", 1) < 1:
        problems.append(f"{where}.batch_trained must be >= 1, got {queue['batch_trained']}")
    cfg = Path(queue["config"])
    if cfg.is_absolute() or ".." in cfg.parts or cfg.suffix not in (".yaml", ".yml"):
        problems.append(f"{where}.config must be a YAML file relative to the repository, e.g. "
                        f"configs/svg_lp/bair.yaml, got {queue['config']!r}")
    for key in queue.get("overrides", {}):
        if not isinstance(key, str) or key.startswith("-"):
            problems.append(f"{where}.overrides keys are dotted LightningCLI keys without dashes "
                            f"(e.g. trainer.limit_val_batches), got {key!r}")
    if "resume" in queue:
        problems += _resume_problems(queue, f"{where}.resume")
    bar = queue["ship_bar"]
    bar_problems = _check_types(bar, _SHIP_BAR_KEYS, f"{where}.ship_bar", required=True)
    bar_problems += _check_types(bar, _SHIP_BAR_OPTIONAL, f"{where}.ship_bar", required=False)
    extra = sorted(set(bar) - set(_SHIP_BAR_KEYS) - set(_SHIP_BAR_OPTIONAL))
    if extra:
        bar_problems.append(f"{where}.ship_bar: unknown keys {extra}")
    if bar_problems:
        return problems + bar_problems
    conditions = [(f"{where}.ship_bar", bar)]
    for i, cond in enumerate(bar.get("also", [])):
        at = f"{where}.ship_bar.also[{i}]"
        if not isinstance(cond, Mapping):
            bar_problems.append(f"{at} must be a mapping {{metric, must_beat}}, got {cond!r}")
            continue
        cond_problems = _check_types(cond, _SHIP_CONDITION_KEYS, at, required=True)
        if set(cond) - set(_SHIP_CONDITION_KEYS):
            cond_problems.append(f"{at}: unknown keys {sorted(set(cond) - set(_SHIP_CONDITION_KEYS))}")
        bar_problems += cond_problems
        if not cond_problems:
            conditions.append((at, cond))
    for at, cond in conditions:
        bad = [b for b in cond["must_beat"] if not (b in _BASELINES or (isinstance(b, (int, float))
                                                                         and not isinstance(b, bool)))]
        if bad or not cond["must_beat"]:
            bar_problems.append(f"{at}.must_beat lists what the new weights must beat: some of "
                                f"{list(_BASELINES)} or numbers, got {cond['must_beat']!r}")
    return problems + bar_problems


def _resume_problems(queue: Mapping[str, Any], where: str) -> list[str]:
    resume = queue["resume"]
    problems = _check_types(resume, _RESUME_KEYS, where, required=True)
    if set(resume) - set(_RESUME_KEYS):
        problems.append(f"{where}: unknown keys {sorted(set(resume) - set(_RESUME_KEYS))}")
    if problems:
        return problems
    weights = Path(resume["weights"])
    if weights.is_absolute() or ".." in weights.parts or weights.suffix != ".safetensors":
        problems.append(f"{where}.weights must be a .safetensors file relative to the repository, e.g. "
                        f"queue/NAME.safetensors, got {resume['weights']!r}")
    if not _HEX64.match(resume["sha256"]):
        problems.append(f"{where}.sha256 must be 64 lowercase hex digits, got {resume['sha256']!r}")
    if queue["steps_trained"] < 1:
        problems.append(f"{where}: steps_trained counts the steps of the resume weights and must be >= 1, got "
                        f"{queue['steps_trained']}")
    return problems


def _planned_problems(entry: Mapping[str, Any], where: str) -> list[str]:
    """A ``status: planned`` entry: a name, a model, a dataset and its queue recipe; no weights, no metrics."""
    problems = _check_types(entry, _PLANNED_KEYS, where, required=True)
    problems += _check_types(entry, _PLANNED_OPTIONAL, where, required=False)
    unknown = sorted(set(entry) - set(_PLANNED_KEYS) - set(_PLANNED_OPTIONAL))
    if unknown:
        problems.append(f"{where}: unknown keys {unknown} for a planned entry (it gets weights, config and metrics "
                        "when `vpzoo add-checkpoint --replace` ships it)")
    if problems:
        return problems
    if not _NAME_RE.match(entry["name"]):
        problems.append(f"{where}.name must match {_NAME_RE.pattern}, got {entry['name']!r}")
    return problems + _queue_problems(entry["queue"], f"{where}.queue")


def _shipped_resume_problems(entry: Mapping[str, Any], where: str) -> list[str]:
    if isinstance(entry.get("queue"), dict) and "resume" in entry["queue"] and entry.get("status") != "planned":
        return [f"{where}.queue.resume: only planned entries keep resume weights (a shipped entry continues from its "
                "shipped weights)"]
    return []


def _parse(path: Path) -> dict[str, dict[str, Any]]:
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CheckpointUnavailableError(
            f"checkpoints file {path} does not exist" + (f" (set by ${CHECKPOINTS_ENV})" if os.environ.get(CHECKPOINTS_ENV) else "")
        ) from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: invalid YAML: {e}") from None
    if not isinstance(doc, dict) or set(doc) != {"format_version", "checkpoints"}:
        raise ValueError(f"{path}: expected a mapping with exactly 'format_version' and 'checkpoints'")
    if doc["format_version"] != CATALOG_FORMAT_VERSION:
        raise ValueError(f"{path}: format_version must be {CATALOG_FORMAT_VERSION}, got {doc['format_version']!r}")
    items = doc["checkpoints"] or []
    if not isinstance(items, list):
        raise ValueError(f"{path}: 'checkpoints' must be a list")
    problems, entries = [], {}
    for i, entry in enumerate(items):
        found = _entry_problems(entry, i)
        problems += found
        if not found:
            if entry["name"] in entries:
                problems.append(f"checkpoints[{i}]: duplicate name {entry['name']!r}")
            entries[entry["name"]] = entry
    if problems:
        raise ValueError(f"{path}: invalid checkpoints file:\n  - " + "\n  - ".join(problems))
    return entries


def read_checkpoints(path: str | os.PathLike | None = None) -> dict[str, dict[str, Any]]:
    """The entries of the registry (see :func:`checkpoints_file`) that have weights, by name, schema-checked; a
    deep copy. Planned entries (no weights yet) are in :func:`read_planned` / :func:`read_queue`."""
    return {n: e for n, e in read_entries(path).items() if e.get("status") != "planned"}


def read_planned(path: str | os.PathLike | None = None) -> dict[str, dict[str, Any]]:
    """The ``status: planned`` entries of the registry (checkpoints of the training queue without weights)."""
    return {n: e for n, e in read_entries(path).items() if e.get("status") == "planned"}


def read_queue(path: str | os.PathLike | None = None) -> dict[str, dict[str, Any]]:
    """The training queue: every entry with a ``queue`` recipe (shipped or planned), by priority then name."""
    entries = [e for e in read_entries(path).values() if "queue" in e]
    entries.sort(key=lambda e: (e["queue"]["priority"], e["name"]))
    return {e["name"]: e for e in entries}


def queue_progress(entry: Mapping[str, Any]) -> str:
    """``"16,884 / 180,000 steps (9.4%)"``: steps trained so far out of the paper's schedule; where those steps took
    fewer clips than the paper's (``queue.batch_trained``), also the share of the paper's clips:
    ``"16,884 / 180,000 steps (9.4%) at batch 16: 1.5% of the paper's clips"``."""
    q = entry["queue"]
    done, total = q["steps_trained"], q["paper_steps"]
    text = f"{done:,} / {total:,} steps ({100 * done / total:.1f}%)"
    batch = q.get("batch_trained", q["paper_batch"])
    if done and batch != q["paper_batch"]:
        text += f" at batch {batch}: {100 * done * batch / (total * q['paper_batch']):.1f}% of the paper's clips"
    return text


def mean_batch(steps_before: int, batch_before: int, steps_added: int, batch_added: int) -> int:
    """Clips per step over two stretches of training (rounded): what ``queue.batch_trained`` records after a run
    of ``steps_added`` steps of ``batch_added`` clips continued ``steps_before`` steps of ``batch_before``."""
    total = steps_before + steps_added
    if total < 1:
        raise ValueError(f"no steps to average over: {steps_before} + {steps_added}")
    return round((steps_before * batch_before + steps_added * batch_added) / total)


def planned_message(entry: Mapping[str, Any], path: str | os.PathLike | None = None) -> str:
    """What :func:`vpzoo.load` says about a planned checkpoint: no weights yet, how to train it, other ways."""
    name = entry["name"]
    if "queue" not in entry:  # published author weights that no converter reads yet
        url = entry.get("weights", {}).get("url", "")
        return (f"checkpoint {name!r} is planned: the authors publish these weights ({url}) but vpzoo has no converter "
                f"for their format yet, so it cannot be loaded. {entry.get('notes', '')}".rstrip())
    q = entry["queue"]
    msg = (f"checkpoint {name!r} is planned but has no weights yet (training queue, priority {q['priority']}: "
           f"{queue_progress(entry)}; the paper's schedule is at batch {q['paper_batch']}; registry: "
           f"{checkpoints_file(path)}). Train it on a GPU machine: `vpzoo train-checkpoint {name} --max-minutes 10 "
           f"--out DIR` (recipe {q['config']}; data: {q['data']}), then here `vpzoo benchmark "
           f"{q['ship_bar']['benchmark']} --checkpoint DIR --json DIR/benchmark.json` and `vpzoo add-checkpoint DIR "
           f"--name {name} --replace --write ...` (README: 'Training on an offline GPU machine').")
    if "resume" in q:
        msg += (f" An unfinished run of {q['steps_trained']:,} steps is kept in the repository "
                f"({q['resume']['weights']}): train-checkpoint continues from it, and `vpzoo fit --config "
                f"{q['config']} --init_from {q['resume']['weights']}` does from a checkout.")
    if q.get("other"):
        msg += f" Other ways to get it: {q['other'].rstrip('.')}."
    msg += f" An untrained {entry['model']}: vpzoo.create_model({entry['model']!r})."
    return msg


def read_entries(path: str | os.PathLike | None = None) -> dict[str, dict[str, Any]]:
    """Every entry of the registry, shipped and planned, by name, schema-checked; a deep copy."""
    file = checkpoints_file(path)
    try:
        st = file.stat()
    except FileNotFoundError:
        _parse(file)  # raises the explanatory error
        raise
    key = (str(file.resolve()), st.st_mtime_ns, st.st_size)
    if key not in _CACHE:
        _CACHE[key] = _parse(file)
    return copy.deepcopy(_CACHE[key])


def weights_file(entry: Mapping[str, Any], path: str | os.PathLike | None = None) -> Path:
    """Local path of a ``source: file`` entry's weights (relative paths are relative to the registry's folder)."""
    return checkpoints_file(path).resolve().parent / entry["weights"]["path"]


def weights_files(weights: str | os.PathLike) -> list[Path]:
    """The files of a weights location: the file itself, or a shard index and the shards it names."""
    from vpzoo.zoo.sharded import is_index, read_index

    weights = Path(weights)
    if not is_index(weights):
        return [weights]
    shards = sorted(set(read_index(weights)["weight_map"].values()))
    return [weights] + [weights.parent / name for name in shards]


def weights_bytes(weights: str | os.PathLike) -> int:
    """Bytes of a weights location (index and shards together for sharded weights)."""
    return sum(f.stat().st_size for f in weights_files(weights))


def validate_checkpoints(path: str | os.PathLike | None = None, *, check_files: bool = True) -> list[str]:
    """Full check of the registry: schema, model registered, config accepted by the model, and (``check_files``)
    that every ``source: file`` weights file exists with the recorded size and sha256.

    Returns the names checked; raises ``ValueError`` listing every problem.
    """
    from vpzoo.zoo.format import config_keys_check
    from vpzoo.registry import get_model_class, list_models

    entries = read_checkpoints(path)
    problems = []
    known = set(list_models())
    for name, entry in entries.items():
        if entry.get("status") == "planned":  # no converter or weights yet: nothing to build
            continue
        if entry["model"] not in known:
            problems.append(f"{name}: model {entry['model']!r} is not registered (known: {sorted(known)})")
            continue
        cls = get_model_class(entry["model"])
        unknown, missing = config_keys_check(cls, entry["config"])  # legacy defaults may be absent, as when loading
        if unknown or missing:
            problems.append(f"{name}: config has unknown keys {unknown} and lacks {missing}; it must be the full config")
        if check_files and entry["weights"]["source"] == "file":
            file = weights_file(entry, path)
            if not file.is_file():
                problems.append(f"{name}: weights file {file} does not exist")
                continue
            size = weights_bytes(file)
            if size != entry["weights"]["size"]:
                problems.append(f"{name}: {file} has {size} bytes, the entry records {entry['weights']['size']}")
            elif file_sha256(file) != entry["weights"]["sha256"]:
                problems.append(f"{name}: sha256 of {file} is {file_sha256(file)}, the entry records "
                                f"{entry['weights']['sha256']}")
    if problems:
        raise ValueError(f"{checkpoints_file(path)}:\n  - " + "\n  - ".join(problems))
    return list(entries)


def list_checkpoints(
    pattern: str = "*", *, model: str | None = None, dataset: str | None = None, path: str | os.PathLike | None = None
) -> list[str]:
    """Sorted names of the registered checkpoints matching the fnmatch ``pattern`` (and ``model``/``dataset``);
    entries with ``status: planned`` (not loadable yet) are left out."""
    if not isinstance(pattern, str):
        raise TypeError(f"pattern must be a str, got {type(pattern).__name__}")
    return sorted(
        name for name, e in read_checkpoints(path).items()
        if fnmatch.fnmatch(name, pattern) and model in (None, e["model"]) and dataset in (None, e["dataset"])
        and e.get("status") != "planned"
    )


def checkpoint_info(name: str, *, path: str | os.PathLike | None = None) -> dict[str, Any]:
    """The registry entry of checkpoint ``name`` (a copy); unknown names raise :class:`UnknownCheckpointError`."""
    entries = read_checkpoints(path)
    if name not in entries:
        raise UnknownCheckpointError(unknown_name_message(name, entries, path))
    return entries[name]


def unknown_name_message(name: str, entries: Mapping[str, Any], path: str | os.PathLike | None = None) -> str:
    from vpzoo.registry import suggest

    file = checkpoints_file(path)
    msg = f"unknown checkpoint {name!r}"
    if not entries:
        msg += f": no pretrained checkpoints are registered yet (registry: {file})"
    else:
        msg += f"{suggest(name, list(entries))} Registered checkpoints: {', '.join(sorted(entries))} (registry: {file})"
    if name in _model_names():
        pretrained = sorted(n for n, e in entries.items() if e["model"] == name)
        msg += (f". {name!r} is a model architecture: vpzoo.create_model({name!r}) builds it untrained"
                + (f"; its pretrained checkpoints: {', '.join(pretrained)}" if pretrained else ""))
    elif _REPO_RE.match(name):
        msg += f". For a Hugging Face Hub repository write 'hf://{name}'"
    msg += ". vpzoo.load also takes a local folder (config.json + model.safetensors), a .safetensors or .ckpt file."
    return msg


def _model_names() -> list[str]:
    from vpzoo.registry import list_models

    return list_models()


def find_hub_entry(
    repo_id: str, filename: str, revision: str | None, path: str | os.PathLike | None = None
) -> dict[str, Any] | None:
    """The entry whose weights are ``repo_id/filename`` at commit ``revision``, if one is registered."""
    for entry in read_checkpoints(path).values():
        w = entry["weights"]
        if w["source"] == "hub" and w["repo"] == repo_id and w["filename"] == filename and w["revision"] == revision:
            return entry
    return None


# ------------------------------------------------------------------------------------------------ writing
def make_checkpoint_entry(
    source: str | os.PathLike,
    *,
    name: str,
    dataset: str,
    metrics: list[Mapping[str, Any]],
    training: Mapping[str, Any],
    license: str = "Apache-2.0",
    paper: Mapping[str, Any] | None = None,
    notes: str | None = None,
    hub_repo: str | None = None,
    hub_revision: str | None = None,
    hub_filename: str = WEIGHTS_NAME,
    copy_to: str | os.PathLike | None = None,
    path: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Build a checkpoints.yaml entry for an exported zoo folder or ``.safetensors`` file.

    Computes the sha256 and size of the weights and takes the config from the folder. Weights location: with
    ``hub_repo``/``hub_revision`` the entry points at the Hub; otherwise at a file relative to the registry's folder
    (``copy_to``, relative to that folder, e.g. ``"weights/svg_lp_smmnist.safetensors"``, copies it there first;
    without it the weights must already lie inside that folder).

    Args:
        source: a zoo folder (``config.json`` + ``model.safetensors``) or a ``.safetensors`` file with a vpzoo header.
        name, dataset, license, paper (default: the model's paper), notes: entry fields.
        metrics: metric records measured on the test protocol (e.g. from ``examples/evaluate_svg_protocol.py --json``).
        training: recipe: ``config``, ``steps``, ``hardware``, ``time`` (more keys allowed, e.g. ``paper_steps``,
            ``batch``: the clips per step).
        path: the registry file (default: :func:`checkpoints_file`).
    """
    from vpzoo.zoo.sharded import INDEX_NAME, is_index

    source = Path(source)
    weights = source / WEIGHTS_NAME if source.is_dir() else source
    if source.is_dir() and not weights.is_file() and (source / INDEX_NAME).is_file():
        weights = source / INDEX_NAME  # sharded weights (`vpzoo train-checkpoint`)
    if not weights.is_file():
        raise CheckpointUnavailableError(f"no weights at {weights}")
    if source.is_dir() and (source / "config.json").is_file():
        doc = read_config(source / "config.json")
    elif is_index(weights):
        from vpzoo.zoo.sharded import index_config, read_index

        doc = index_config(read_index(weights), str(weights))
    else:
        doc = read_weights_config(weights)
    if doc is None:
        raise CheckpointUnavailableError(f"{weights}: no config.json beside it and no vpzoo config in its header")
    cfg = doc["config"]
    base = checkpoints_file(path).resolve().parent
    if hub_repo is not None or hub_revision is not None:
        if not (hub_repo and hub_revision):
            raise ValueError("a Hub entry needs both hub_repo and hub_revision (a 40-hex commit)")
        location: dict[str, Any] = {"source": "hub", "repo": hub_repo, "filename": hub_filename, "revision": hub_revision}
    else:
        if copy_to is not None and is_index(weights):  # sharded: copy_to is a folder for the index and shards
            dest_dir = base / copy_to
            if is_index(dest_dir):
                dest_dir = dest_dir.parent
            if not dest_dir.resolve().is_relative_to(base.resolve()):  # refuse before writing anything
                raise ValueError(f"copy_to={str(copy_to)!r} leads outside {base} (the registry's folder); give a folder "
                                 f"inside it, e.g. 'weights/{name}/'")
            dest_dir.mkdir(parents=True, exist_ok=True)
            for file in weights_files(weights):
                if (dest_dir / file.name).resolve() != file.resolve():
                    _refuse_overwrite(dest_dir / file.name, file)
                    shutil.copyfile(file, dest_dir / file.name)
            weights = dest_dir / weights.name
        elif copy_to is not None:
            dest = base / copy_to
            if not dest.resolve().is_relative_to(base.resolve()):  # refuse before writing anything
                raise ValueError(f"copy_to={str(copy_to)!r} leads outside {base} (the registry's folder); give a path "
                                 f"inside it, e.g. 'weights/{name}.safetensors'")
            dest.parent.mkdir(parents=True, exist_ok=True)
            if dest.resolve() != weights.resolve():
                _refuse_overwrite(dest, weights)
                shutil.copyfile(weights, dest)
            weights = dest
        try:
            rel = weights.resolve().relative_to(base)
        except ValueError:
            raise ValueError(
                f"{weights} is not inside {base} (the registry's folder); pass copy_to='weights/{name}.safetensors' "
                "(`--copy-to`) to copy it there, or publish it to the Hub and pass hub_repo/hub_revision"
            ) from None
        location = {"source": "file", "path": rel.as_posix()}
    size = weights_bytes(weights)  # index and shards together for sharded weights
    if is_index(weights):  # the index pins the shards: check each of them now
        from vpzoo.zoo.sharded import load_sharded

        load_sharded(weights)
    location.update(sha256=file_sha256(weights), size=size, dtype=doc.get("dtype", "float32"))
    entry: dict[str, Any] = {
        "name": name,
        "model": doc["model"],
        "dataset": dataset,
        "image_size": cfg.get("image_size"),
        "channels": cfg.get("channels"),
        "context_frames": cfg.get("n_past"),
        "future_frames": cfg.get("n_future"),
        "config": cfg,
        "weights": location,
        "license": license,
        "paper": dict(paper) if paper is not None else model_paper(doc["model"]),
        "training": dict(training),
        "metrics": check_metrics([dict(m) for m in metrics], "metrics"),
    }
    if notes:
        entry["notes"] = notes
    problems = _entry_problems(entry, 0)
    if problems:
        raise ValueError("the new entry is invalid:\n  - " + "\n  - ".join(problems))
    return entry


def _refuse_overwrite(dest: Path, source: Path) -> None:
    """Never overwrite other weights in the registry's folder: a refused replacement must leave them intact."""
    if dest.exists() and file_sha256(dest) != file_sha256(source):
        raise ValueError(f"{dest} already exists with other content (weights of a registered checkpoint?); copy the "
                         "new weights to a new path (e.g. --copy-to weights/NAME-v2/): `--replace` deletes the old "
                         "ones once the new ones are accepted")


def dump_entry(entry: Mapping[str, Any]) -> str:
    """YAML text of one entry as a list item (what ``vpzoo add-checkpoint`` prints)."""
    import yaml

    return yaml.safe_dump([dict(entry)], sort_keys=False, default_flow_style=False, width=110)


#: Bytes of packaged weights (``source: file`` entries) the registry may hold: the repository's tracked tree must stay
#: under 60 MiB because every GPU job carries it (README: "Where the weights live").
PACKAGED_WEIGHTS_BUDGET = 51 * 2**20
#: Ship-bar metrics that are not per-frame metrics of :mod:`vpzoo.metrics.aggregation` (whose registry says which
#: way each of those goes): distances and likelihood costs, lower is better.
_LOWER_IS_BETTER = ("fvd", "mse", "bits_per_dim")
#: ... and those that go up: the point-to-point control point's PSNR/SSIM and the diversity between samples.
_HIGHER_IS_BETTER = ("cp_psnr", "cp_ssim", "diversity")


def metric_lower_is_better(metric: str) -> bool:
    """Which way a ship-bar metric goes: the per-frame metric registry decides for the metrics it holds (PSNR/SSIM
    higher, LPIPS/``mse_sum``/``bce_sum`` lower), :data:`_LOWER_IS_BETTER` for the rest; an unknown name is an error."""
    from vpzoo.metrics.aggregation import _FRAME_METRICS

    if metric in _FRAME_METRICS:
        return not _FRAME_METRICS[metric].higher_is_better
    if metric in _LOWER_IS_BETTER:
        return True
    if metric in _HIGHER_IS_BETTER:
        return False
    raise ValueError(f"unknown ship-bar metric {metric!r}: expected one of "
                     f"{sorted(set(_FRAME_METRICS) | set(_LOWER_IS_BETTER) | set(_HIGHER_IS_BETTER))}")


class ReplacementRefusedError(ValueError):
    """New weights that do not beat an entry's ship bar (``vpzoo add-checkpoint --replace``)."""


def ship_bar_conditions(bar: Mapping[str, Any]) -> list[tuple[str, list[Any]]]:
    """The ``(metric, must_beat)`` conditions of a ship bar: its ``metric`` first, then those of ``also``."""
    return [(bar["metric"], list(bar["must_beat"]))] + [(c["metric"], list(c["must_beat"])) for c in bar.get("also", [])]


def describe_ship_bar(bar: Mapping[str, Any]) -> str:
    """One line: ``"psnr beats repeat_start, crossfade; ssim beats ... on smmnist_p2p"``."""
    conds = "; ".join(f"{m} beats {', '.join(map(str, beat))}" for m, beat in ship_bar_conditions(bar))
    return f"{conds} on {bar['benchmark']}"


def check_ship_bar(old: Mapping[str, Any], metrics: list[Mapping[str, Any]]) -> str:
    """Whether new ``metrics`` beat the ship bar of entry ``old`` (``queue.ship_bar``); returns a one-line verdict.

    Every condition must hold: the bar's ``metric`` against its ``must_beat``, and each ``{metric, must_beat}`` of
    its optional ``also`` list (other metrics of the same benchmark, e.g. SSIM beside MSE, or a point-to-point
    control point). ``must_beat`` items: ``shipped`` (the value recorded for the entry's current weights, measured
    under the same protocol, clips and samples), a baseline (``copy_last``, ``black``, ``repeat_start``,
    ``crossfade``: what the benchmark measured on the same clips, recorded in the new metric record) or a number.
    Strictly better is required (lower for FVD, LPIPS, summed MSE/BCE and bits/dim: :func:`metric_lower_is_better`).

    Raises:
        ReplacementRefusedError: naming every bar that was not beaten or could not be compared.
    """
    bar = (old.get("queue") or {}).get("ship_bar")
    name = old["name"]
    if bar is None:
        raise ReplacementRefusedError(f"{name!r} has no queue.ship_bar, so there is nothing to compare new weights "
                                      "against; add its queue recipe first")
    bench = bar["benchmark"]
    problems, verdicts = [], []
    for metric, must_beat in ship_bar_conditions(bar):
        found = [m for m in metrics if m.get("metric") == metric and m.get("benchmark") == bench]
        if not found:
            problems.append(f"the new metrics hold no {metric} measured by benchmark {bench!r} (its ship bar); "
                            f"measure them with `vpzoo benchmark {bench} --checkpoint DIR --json DIR/benchmark.json`")
            continue
        new = found[0]
        lower = metric_lower_is_better(metric)
        better = (lambda a, b: a < b) if lower else (lambda a, b: a > b)
        where = f"{metric} ({'lower' if lower else 'higher'} is better)"
        passed = []
        for target in must_beat:
            if target == "shipped":
                if old.get("status") == "planned":
                    continue
                recorded = [m for m in old.get("metrics", [])
                            if m.get("metric") == metric and m.get("benchmark") == bench]
                if not recorded:
                    problems.append(f"the shipped weights have no {metric} on {bench} recorded, so they cannot be "
                                    "compared")
                    continue
                ref = recorded[0]
                keys = ("protocol", "num_samples", "num_sequences", "context_frames", "predicted_frames", "reduction")
                differ = [f"{k} {ref.get(k)!r} vs {new.get(k)!r}" for k in keys if ref.get(k) != new.get(k)]
                if differ:
                    problems.append(f"{metric} not measured like the shipped weights ({'; '.join(differ)}): rerun "
                                    "the benchmark with the same settings")
                elif not better(new["value"], ref["value"]):
                    problems.append(f"{where} {new['value']:.6g} does not beat the shipped weights' "
                                    f"{ref['value']:.6g}")
                else:
                    passed.append(f"shipped {ref['value']:.6g}")
            elif target in _BASELINES:
                if target not in new:
                    problems.append(f"the new {metric} record lacks the {target} baseline")
                elif not better(new["value"], new[target]):
                    problems.append(f"{where} {new['value']:.6g} does not beat {target}'s {new[target]:.6g}")
                else:
                    passed.append(f"{target} {new[target]:.6g}")
            elif not better(new["value"], float(target)):
                problems.append(f"{where} {new['value']:.6g} does not beat the bar {target}")
            else:
                passed.append(f"{target}")
        verdicts.append(f"{metric} {new['value']:.6g} beats " + ", ".join(passed))
    if problems:
        raise ReplacementRefusedError(
            f"refusing to replace {name!r}: on {bench} " + "; ".join(problems)
            + ". The registry and the shipped weights are unchanged.")
    return f"{name} on {bench}: " + "; ".join(verdicts)


def _file_weights(entry: Mapping[str, Any], base: Path) -> list[Path]:
    w = entry.get("weights") or {}
    if w.get("source") != "file":
        return []
    path = base / w["path"]
    try:
        return [f.resolve() for f in weights_files(path)] if path.exists() else [path.resolve()]
    except (ValueError, OSError):
        return [path.resolve()]


def _registry_header(file: Path) -> list[str]:
    """The registry file's leading comment block (kept when the file is rewritten)."""
    text = file.read_text(encoding="utf-8") if file.exists() else ""
    header = []
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            header.append(line)
        else:
            break
    return header


def _write_registry(file: Path, header: list[str], entries: list[Mapping[str, Any]]) -> None:
    """Rewrite the registry: header, then the entries; schema-checked before it replaces the file (atomically)."""
    import yaml

    from vpzoo.cache import atomic_write_text

    body = yaml.safe_dump(
        {"format_version": CATALOG_FORMAT_VERSION, "checkpoints": entries},
        sort_keys=False, default_flow_style=False, width=110,
    )
    new_text = ("\n".join(header).rstrip() + "\n\n" if any(h.strip() for h in header) else "") + body
    tmp = file.with_name(f".{file.name}.check")
    tmp.write_text(new_text, encoding="utf-8")
    try:
        _parse(tmp)
    finally:
        tmp.unlink()
    atomic_write_text(file, new_text)
    _CACHE.clear()


def _repository_root(file: Path) -> Path:
    """Where paths relative to the repository start: the root of a checkout holding ``src/vpzoo/checkpoints.yaml``,
    else the registry's own folder."""
    if file.parent.name == "vpzoo" and file.parent.parent.name == "src":
        return file.parent.parent.parent
    return file.parent


def keep_resume_weights(
    name: str,
    source: str | os.PathLike,
    *,
    steps: int,
    path: str | os.PathLike | None = None,
    dtype: str = "float32",
    batch: int | None = None,
) -> Path:
    """Keep the weights of an unfinished run of planned checkpoint ``name`` in the repository as its
    ``queue.resume`` (``queue/NAME.safetensors``, a lone self-describing safetensors file) with ``steps_trained =
    steps``, so that the next run on any machine continues from them (``vpzoo train-checkpoint NAME``).

    Args:
        name: a ``status: planned`` entry of the registry.
        source: anything :func:`vpzoo.load` takes that holds a ``model`` of that entry (a zoo folder, a sharded
            ``train-checkpoint`` output, a ``.safetensors`` file).
        steps: training steps those weights have had in all (a run restarted from scratch may count fewer than the
            file it replaces).
        dtype: stored dtype (default float32: the next run continues from exactly these values).
        batch: clips per step of those ``steps`` (their mean where runs differed), recorded as
            ``queue.batch_trained``; ``None`` keeps the entry's recorded one (default: the paper's batch).

    Returns:
        the weights file written. A previous resume file of the entry is replaced.
    """
    import tempfile

    import vpzoo

    file = checkpoints_file(path).resolve()
    entries = list(_parse(file).values())
    names = [e["name"] for e in entries]
    if name not in names:
        raise ValueError(f"no checkpoint {name!r} in {file}")
    entry = dict(entries[names.index(name)])
    if entry.get("status") != "planned" or "queue" not in entry:
        raise ValueError(f"{name!r} is not a planned entry of the training queue; shipped weights are replaced with "
                         "`vpzoo add-checkpoint --replace`, which checks the ship bar")
    if not _is_int(steps) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if batch is not None and (not _is_int(batch) or batch < 1):
        raise ValueError(f"batch must be a positive int (clips per step), got {batch!r}")
    model = vpzoo.load(str(source))
    built = getattr(type(model), "model_name", None)
    if built != entry["model"]:
        raise ValueError(f"{source} holds a {built!r} model; {name!r} is a {entry['model']!r}")
    rel = Path("queue") / f"{name}.safetensors"
    dest = _repository_root(file) / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        from vpzoo.zoo.format import save_pretrained

        save_pretrained(model, tmp, dtype=dtype, model_card=False,
                        training={"checkpoint": name, "steps_trained": steps, "source": str(source)})
        shutil.copyfile(Path(tmp) / WEIGHTS_NAME, dest)
    queue = dict(entry["queue"], steps_trained=steps, resume={"weights": rel.as_posix(), "sha256": file_sha256(dest)})
    if batch is not None:
        queue["batch_trained"] = int(batch)
    entry["queue"] = queue
    entries[names.index(name)] = entry
    _write_registry(file, _registry_header(file), entries)
    return dest


def add_checkpoint(
    entry: Mapping[str, Any],
    path: str | os.PathLike | None = None,
    *,
    replace: bool = False,
    force: bool = False,
    weights_budget: int | None = PACKAGED_WEIGHTS_BUDGET,
) -> Path:
    """Append ``entry`` to the registry file (keeping its leading comment block); ``replace`` an entry of that name.

    Replacing (``vpzoo add-checkpoint --replace``) ships the new weights only if their metrics beat the entry's ship
    bar (:func:`check_ship_bar`; ``force`` skips that check); the entry keeps its ``queue`` recipe with
    ``steps_trained`` set to the new ``training.steps`` (and ``batch_trained`` to ``training.batch`` if given), and
    the old packaged weights files are deleted (they leave the tree). A planned entry becomes a shipped one. The
    packaged weights of the resulting registry must fit ``weights_budget`` bytes (``None``: no limit). On refusal,
    new weights copied into the registry's folder are removed again. The result is re-read and schema-checked
    before it replaces the file (atomically). A planned entry's ``queue.resume`` weights (an unfinished run's) leave
    the tree when it ships.
    """
    file = checkpoints_file(path).resolve()
    header = _registry_header(file)
    current = list(_parse(file).values()) if file.exists() else []
    names = [e["name"] for e in current]
    base = file.parent
    entry = dict(entry)
    old_files: list[Path] = []
    new_files = _file_weights(entry, base)
    try:
        if entry["name"] in names:
            if not replace:
                raise ValueError(f"{file} already has a checkpoint named {entry['name']!r}; pass replace=True "
                                 "(`--replace`)")
            old = current[names.index(entry["name"])]
            if not force:
                check_ship_bar(old, entry.get("metrics", []))
            if "queue" in old and "queue" not in entry:
                entry["queue"] = {k: v for k, v in old["queue"].items() if k != "resume"}
                entry["queue"]["steps_trained"] = int(entry["training"]["steps"])
                if "batch" in entry["training"]:  # else the recorded batch_trained stays
                    entry["queue"]["batch_trained"] = int(entry["training"]["batch"])
            entry.pop("status", None)
            old_files = [f for f in _file_weights(old, base) if f not in new_files]
            if "resume" in old.get("queue", {}):  # the unfinished run's weights leave the tree with the planned entry
                try:
                    old_files.append(repository_file(old["queue"]["resume"]["weights"], file).resolve())
                except FileNotFoundError:
                    pass
            current[names.index(entry["name"])] = entry
        else:
            current.append(entry)
        if weights_budget is not None:
            packaged = sum(e["weights"]["size"] for e in current
                           if e.get("status") != "planned" and e["weights"]["source"] == "file")
            if packaged > weights_budget:
                raise ValueError(
                    f"the packaged weights would total {packaged / 2**20:.1f} MiB, over the budget of "
                    f"{weights_budget / 2**20:.0f} MiB that keeps the repository small enough for GPU jobs (README: "
                    "'Where the weights live'); publish these weights to the Hub and register them with --hub-repo/"
                    "--hub-revision instead of --copy-to")
    except ValueError:
        others = {f for e in current if e is not entry for f in _file_weights(e, base)}
        for f in new_files:  # weights copied in for this entry leave again
            if f.is_file() and f not in others and base in f.parents:
                f.unlink()
                if f.parent != base and not any(f.parent.iterdir()):
                    f.parent.rmdir()
        raise
    _write_registry(file, header, current)
    for f in old_files:  # the replaced weights leave the tree
        if f.is_file() and (base in f.parents or _repository_root(file) in f.parents):
            f.unlink()
            if f.parent != base and not any(f.parent.iterdir()):
                f.parent.rmdir()
    return file
