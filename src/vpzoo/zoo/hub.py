"""Hugging Face Hub: ``hf://`` references, verified downloads through ``huggingface_hub``, and publishing.

Downloads go through :func:`huggingface_hub.hf_hub_download`, so its cache and settings apply unchanged:
``HF_HOME`` / ``HF_HUB_CACHE`` (where files are cached), ``HF_HUB_OFFLINE=1`` (never touch the network, use the
cache), ``HF_ENDPOINT`` (a mirror), ``HF_TOKEN`` (private repositories), and revision pinning (branch, tag or
commit). ``huggingface_hub`` reads these environment variables when it is first imported; vpzoo imports it only
when a Hub file is needed.

Every downloaded file is verified before it is used: against the sha256 given by the caller or recorded in
checkpoints.yaml, otherwise against the hash the Hub itself named the file by (the cache's blob name is the
file's ETag: the sha256 of an LFS file, the git blob sha1 of a regular file). A mismatch deletes the blob and every
snapshot link to it from the cache, so nothing corrupt stays behind, and raises
:class:`~vpzoo.zoo.errors.CorruptCheckpointError`.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from vpzoo.cache import git_blob_sha1
from vpzoo.zoo.errors import CheckpointUnavailableError, CorruptCheckpointError
from vpzoo.zoo.format import CARD_NAME, CONFIG_NAME, WEIGHTS_NAME, file_sha256, save_pretrained

if TYPE_CHECKING:  # pragma: no cover
    from vpzoo.models.base import VideoPredictionModel

__all__ = ["HubRef", "parse_hub_ref", "hub_file", "purge_cached_file", "push_to_hub", "HF_PREFIX"]

HF_PREFIX = "hf://"
_REPO_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
_SPECIAL_REF = re.compile(r"^refs/(?:pr/\d+|convert/[\w.-]+)")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_HEX40 = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class HubRef:
    """A parsed ``hf://owner/repo[@revision][/subfolder]`` reference (model repositories only)."""

    repo_id: str
    revision: str | None = None
    subfolder: str | None = None

    def __str__(self) -> str:
        return HF_PREFIX + self.repo_id + (f"@{self.revision}" if self.revision else "") + (
            f"/{self.subfolder}" if self.subfolder else "")


def parse_hub_ref(ref: str) -> HubRef:
    """Parse ``hf://[models/]owner/repo[@revision][/subfolder]`` (the Hub's own URI grammar, models only).

    ``refs/pr/N`` revisions are recognised; any other revision containing ``/`` must be written ``%2F``.
    """
    if not isinstance(ref, str) or not ref.startswith(HF_PREFIX):
        raise ValueError(f"expected a Hub reference 'hf://owner/repo[@revision]', got {ref!r}")
    rest = ref[len(HF_PREFIX):]
    if rest.startswith("models/"):
        rest = rest[len("models/"):]
    elif rest.split("/", 1)[0] in ("datasets", "spaces", "buckets", "kernels"):
        raise ValueError(f"{ref}: vpzoo loads model repositories only (hf://owner/repo)")
    revision = subfolder = None
    if "@" in rest:
        repo_id, after = rest.split("@", 1)
        special = _SPECIAL_REF.match(after)
        if special:
            revision, tail = special.group(0), after[special.end():]
        else:
            revision, _, tail = after.partition("/")
        subfolder = tail.lstrip("/") or None
        revision = revision.replace("%2F", "/").replace("%2f", "/")
        if not revision:
            raise ValueError(f"{ref}: empty revision after '@'")
    else:
        parts = rest.split("/")
        repo_id, subfolder = "/".join(parts[:2]), ("/".join(parts[2:]) or None)
    if not _REPO_RE.match(repo_id):
        raise ValueError(f"{ref}: expected 'hf://owner/repo[@revision]' with a repository id 'owner/repo', "
                         f"got {repo_id!r}")
    if subfolder is not None and (".." in subfolder.split("/") or "//" in subfolder):
        raise ValueError(f"{ref}: invalid subfolder {subfolder!r}")
    return HubRef(repo_id, revision, subfolder)


# ------------------------------------------------------------------------------------------------ download
def _offline_mode() -> bool:
    from huggingface_hub import constants

    fn = getattr(constants, "is_offline_mode", None)
    return bool(fn()) if callable(fn) else bool(getattr(constants, "HF_HUB_OFFLINE", False))


#: Seconds to wait for the Hub to answer before giving up (``$VPZOO_HUB_TIMEOUT``, default 10). Without it, an
#: endpoint that accepts connections but never answers holds a download for minutes (huggingface_hub's retries).
DEFAULT_HUB_TIMEOUT = 10.0


def _hub_timeout(timeout: float | None) -> float:
    if timeout is None:
        raw = os.environ.get("VPZOO_HUB_TIMEOUT")
        try:
            timeout = float(raw) if raw else DEFAULT_HUB_TIMEOUT
        except ValueError:
            raise ValueError(f"VPZOO_HUB_TIMEOUT must be a number of seconds, got {raw!r}") from None
    if not timeout > 0:
        raise ValueError(f"the Hub timeout must be > 0 seconds, got {timeout}")
    return float(timeout)


def _check_hub_answers(where: str, timeout: float) -> None:
    """One HEAD request to the Hub endpoint: any HTTP answer (even an error status) means it is reachable; silence for
    ``timeout`` seconds or a refused connection is reported at once, instead of after huggingface_hub's retries."""
    import socket
    import urllib.error
    import urllib.request

    from huggingface_hub import constants

    endpoint = constants.ENDPOINT
    try:
        urllib.request.urlopen(urllib.request.Request(endpoint, method="HEAD"), timeout=timeout).close()
    except urllib.error.HTTPError:
        return
    except (urllib.error.URLError, socket.timeout, TimeoutError, OSError) as e:
        reason = getattr(e, "reason", e)
        silent = isinstance(reason, (socket.timeout, TimeoutError))
        what = f"did not answer within {timeout:g} s" if silent else f"could not be reached ({reason})"
        raise CheckpointUnavailableError(
            f"{where}: the Hub at {endpoint} {what}. Check the network (or HF_ENDPOINT)"
            + (", raise VPZOO_HUB_TIMEOUT for a slow connection" if silent else "")
            + ", or use a cached copy with HF_HUB_OFFLINE=1"
        ) from None


def _cache_dir(cache_dir: str | os.PathLike | None) -> str:
    from huggingface_hub import constants

    return str(cache_dir) if cache_dir is not None else str(constants.HF_HUB_CACHE)


def _unavailable_message(what: str, cache_dir: str, local_files_only: bool, cause: BaseException | None) -> str:
    from huggingface_hub import constants

    local = ("download the repository on a connected machine (e.g. `hf download REPO --local-dir DIR`) and pass "
             "that folder to vpzoo.load")
    if _offline_mode():
        return (
            f"{what} is not in the Hugging Face cache ({cache_dir}) and HF_HUB_OFFLINE is set, so it cannot be "
            f"downloaded. Fix: unset HF_HUB_OFFLINE (or set HF_HUB_OFFLINE=0) on a machine with network access to "
            f"download it once; or set HF_HOME / HF_HUB_CACHE to a cache that holds it; or {local}."
        )
    if local_files_only:
        return (f"{what} is not in the Hugging Face cache ({cache_dir}) and local_files_only=True. Fix: drop "
                f"local_files_only to download it; or set HF_HOME / HF_HUB_CACHE to a cache that holds it; or {local}.")
    reason = f" ({type(cause.__cause__ or cause).__name__}: {cause.__cause__ or cause})" if cause else ""
    return (
        f"{what} is not in the Hugging Face cache ({cache_dir}) and the Hub at {constants.ENDPOINT} could not be "
        f"reached{reason}. Fix: check the network (or HF_ENDPOINT for a mirror); or set HF_HOME / HF_HUB_CACHE to a "
        f"cache that holds it and HF_HUB_OFFLINE=1; or {local}."
    )


def purge_cached_file(path: str | os.PathLike) -> list[Path]:
    """Delete a cached Hub file: its blob and every snapshot link to that blob. Returns what was removed.

    Only paths inside the file's own repository folder of the cache are touched (``models--owner--repo/``): the
    snapshot links under its ``snapshots/`` and the blob under its ``blobs/``. A link that points anywhere else (a
    tampered cache) is unlinked itself, and whatever it points to is left alone. A path that is not a snapshot file
    of a cache repository is refused with ``ValueError``.
    """
    path = Path(os.path.abspath(path))
    parts = path.parts
    if "snapshots" not in parts[:-1]:
        raise ValueError(f"refusing to purge {path}: not a file under a Hugging Face cache's snapshots/ folder")
    i = len(parts) - 1 - parts[::-1].index("snapshots")
    repo_dir = Path(*parts[:i])
    blobs = Path(os.path.realpath(repo_dir / "blobs"))
    removed: list[Path] = []
    if path.is_symlink():
        target = Path(os.path.realpath(path))
        own_blob = target.parent == blobs and target.is_file()
        if own_blob:
            for link in (repo_dir / "snapshots").rglob("*"):
                if link != path and link.is_symlink() and Path(os.path.realpath(link)) == target:
                    link.unlink()
                    removed.append(link)
        path.unlink()
        removed.append(path)
        if own_blob:
            target.unlink()
            removed.append(target)
    elif path.is_file():
        path.unlink()
        removed.append(path)
    return removed


def _commit_of(path: Path) -> str | None:
    """The commit hash of a cached snapshot path (``.../snapshots/<commit>/<file>``)."""
    parts = path.parts
    if "snapshots" in parts:
        i = len(parts) - 1 - parts[::-1].index("snapshots")
        if i + 1 < len(parts) and _HEX40.match(parts[i + 1]):
            return parts[i + 1]
    return None


def hub_file(
    repo_id: str,
    filename: str,
    *,
    revision: str | None = None,
    subfolder: str | None = None,
    sha256: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool = False,
    force_download: bool = False,
    token: str | bool | None = None,
    timeout: float | None = None,
) -> Path:
    """Download (or find in the cache) one file of a Hub model repository and verify it.

    Args:
        repo_id: ``owner/repo``.
        filename: file name inside the repository (inside ``subfolder`` if given).
        revision: branch, tag or commit (default ``main``); a commit hash that is cached needs no network.
        sha256: expected sha256 of the file; if ``None`` the file is checked against the hash the Hub named it by.
        cache_dir: Hugging Face cache directory (default ``HF_HUB_CACHE``).
        local_files_only, force_download, token: as in :func:`huggingface_hub.hf_hub_download`.
        timeout: seconds to wait for the Hub to answer (default ``$VPZOO_HUB_TIMEOUT`` or 10).

    Returns:
        the local path (inside the Hugging Face cache).

    Raises:
        CheckpointUnavailableError: repository, revision or file missing; or not cached while offline.
        CorruptCheckpointError: the file does not match its hash (it has been deleted from the cache).
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.utils import (
        EntryNotFoundError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"hf://{repo_id}" + (f"@{revision}" if revision else "") + f": {subfolder + '/' if subfolder else ''}{filename}"
    cache = _cache_dir(cache_dir)
    wait = _hub_timeout(timeout)
    if not (local_files_only or _offline_mode()):
        pinned_and_cached = False
        if revision is not None and _HEX40.match(revision) and not force_download:
            from huggingface_hub import try_to_load_from_cache

            name = f"{subfolder}/{filename}" if subfolder else filename
            cached = try_to_load_from_cache(repo_id, name, cache_dir=cache_dir, revision=revision)
            pinned_and_cached = isinstance(cached, str)
        if not pinned_and_cached:  # a commit that is cached needs no network: hf_hub_download will not ask
            _check_hub_answers(where, wait)
    try:
        local = hf_hub_download(
            repo_id, filename, subfolder=subfolder, revision=revision, cache_dir=cache_dir,
            local_files_only=local_files_only, force_download=force_download, token=token,
            library_name="vpzoo",
        )
    except LocalEntryNotFoundError as e:
        raise CheckpointUnavailableError(_unavailable_message(where, cache, local_files_only, e)) from e
    except RevisionNotFoundError as e:
        raise CheckpointUnavailableError(f"{where}: the repository has no revision {revision!r} (a branch, tag or "
                                         "commit hash)") from e
    except RepositoryNotFoundError as e:
        raise CheckpointUnavailableError(
            f"{where}: repository {repo_id!r} not found, or it is private/gated and no valid token was sent "
            "(set HF_TOKEN, run `hf auth login`, or pass token=)") from e
    except EntryNotFoundError as e:
        raise CheckpointUnavailableError(f"{where}: the repository has no such file at this revision") from e
    except HfHubHTTPError as e:
        raise CheckpointUnavailableError(f"{where}: the Hub answered with an error: {e}") from e
    except Exception as e:  # a dropped connection surfaces as an httpx error: one clear line instead
        if not (isinstance(e, OSError) or type(e).__module__.split(".")[0] in ("httpx", "httpx2", "httpcore",
                                                                                "httpcore2")):
            raise
        raise CheckpointUnavailableError(
            f"{where}: the connection to the Hub failed during the download ({type(e).__name__}: {e}); run the "
            "command again (downloads resume), or use a cached copy with HF_HUB_OFFLINE=1"
        ) from e
    path = Path(local)
    try:
        if sha256 is not None:
            actual, expected, kind = file_sha256(path), sha256.lower(), "sha256"
        else:
            etag = Path(os.path.realpath(path)).name if path.is_symlink() else ""
            if _HEX64.match(etag):
                actual, expected, kind = file_sha256(path), etag, "sha256 (the Hub's LFS hash)"
            elif _HEX40.match(etag):
                actual, expected, kind = git_blob_sha1(path), etag, "git blob sha1 (the Hub's hash)"
            else:  # no symlinks (e.g. Windows without developer mode): nothing to check against
                return path
    except OSError as e:
        raise CheckpointUnavailableError(f"{where}: cannot read the cached file {path}: {e}") from e
    if actual != expected:
        removed = purge_cached_file(path)
        raise CorruptCheckpointError(
            f"{where}: {kind} mismatch: expected {expected}, got {actual}. The file was corrupted in transfer or "
            f"on disk, or the repository's file is not the recorded one; removed it from the cache "
            f"({len(removed)} path(s)) so nothing corrupt stays there. Retrying downloads it again."
        )
    return path


def download_checkpoint_files(
    ref: HubRef,
    *,
    sha256: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool = False,
    force_download: bool = False,
    token: str | bool | None = None,
) -> tuple[Path, Path, str | None]:
    """``config.json`` and ``model.safetensors`` of a Hub zoo folder, both from the same commit.

    Returns ``(config_path, weights_path, commit)``.
    """
    kwargs = dict(subfolder=ref.subfolder, cache_dir=cache_dir, local_files_only=local_files_only,
                  force_download=force_download, token=token)
    config = hub_file(ref.repo_id, CONFIG_NAME, revision=ref.revision, **kwargs)
    commit = _commit_of(config)
    try:
        weights = hub_file(ref.repo_id, WEIGHTS_NAME, revision=commit or ref.revision, sha256=sha256, **kwargs)
    except CheckpointUnavailableError as single_error:  # a sharded folder: the index, then every shard it names
        from vpzoo.zoo.sharded import INDEX_NAME, read_index

        try:
            weights = hub_file(ref.repo_id, INDEX_NAME, revision=commit or ref.revision, sha256=sha256, **kwargs)
        except CheckpointUnavailableError:
            raise single_error from None
        for name, digest in read_index(weights)["metadata"]["shard_sha256"].items():
            hub_file(ref.repo_id, name, revision=commit or ref.revision, sha256=digest, **kwargs)
    return config, weights, commit


# ------------------------------------------------------------------------------------------------ upload
def push_to_hub(
    model: "VideoPredictionModel",
    repo_id: str,
    *,
    private: bool | None = None,
    token: str | None = None,
    revision: str | None = None,
    commit_message: str | None = None,
    create_pr: bool = False,
    dtype: str | None = None,
    metrics: list[Mapping[str, Any]] | None = None,
    card: Mapping[str, Any] | None = None,
) -> Any:
    """Publish ``model`` to a Hub model repository: ``config.json``, ``model.safetensors``, ``README.md``.

    Creates the repository if needed (``private`` applies only then) and the branch ``revision`` if given, then
    makes one commit with the three files (:meth:`huggingface_hub.HfApi.create_commit`). Arguments ``dtype``,
    ``metrics`` and ``card`` are those of :func:`~vpzoo.zoo.format.save_pretrained`.

    Returns:
        the :class:`huggingface_hub.CommitInfo` (``.oid`` is the commit to pin: ``hf://repo_id@<oid>``).
    """
    from huggingface_hub import CommitOperationAdd, HfApi

    if not isinstance(repo_id, str) or not _REPO_RE.match(repo_id):
        raise ValueError(f"repo_id must be 'owner/name', got {repo_id!r}")
    if _offline_mode():
        raise RuntimeError("push_to_hub needs the network but HF_HUB_OFFLINE is set; unset it (or set it to 0)")
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    if revision not in (None, "main"):
        api.create_branch(repo_id, branch=revision, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="vpzoo-push-") as tmp:
        save_pretrained(model, tmp, dtype=dtype, metrics=metrics, card=card, repo_id=repo_id)
        operations = [
            CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(Path(tmp) / name))
            for name in (CONFIG_NAME, WEIGHTS_NAME, CARD_NAME)
        ]
        return api.create_commit(
            repo_id, operations, commit_message=commit_message or f"Upload {type(model).model_name} with vpzoo",
            revision=revision, create_pr=create_pr,
        )
