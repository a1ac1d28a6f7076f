"""Resolution of the network weights that metrics need (I3D for FVD, AlexNet + linear layers for LPIPS).

Metric networks are resolved, downloaded, cached and verified like zoo checkpoints. A :class:`WeightSpec` pins a
file: its name, its download URL(s), its sha256 (or, where only that is published, the sha256 prefix that
torchvision puts in its file names), the environment variable that points at a local copy, and where it comes
from. :func:`resolve_weights` finds the file, in this order:

1. an explicit ``path`` argument (a local file the user supplies),
2. the spec's environment variable (e.g. ``$VPZOO_I3D_PATH``),
3. the vpzoo cache, ``<cache>/weights/<file name>`` (``<cache>`` is ``$VPZOO_CACHE`` or ``~/.cache/vpzoo``,
   see :mod:`vpzoo.cache`),
4. extra well-known places (e.g. torchvision's own download of the AlexNet weights under ``torch.hub.get_dir()``),
5. a download from the pinned URL(s) into the cache, unless offline.

Every file is hashed (sha256) before use; the digest is the weights' identity that FVD/LPIPS reports record.
A file that does not match the pinned digest is refused (``verify=False`` accepts it with a warning, and the
report then shows the file's own digest). Downloads go through :func:`vpzoo.cache.download_url` (resumable,
checksummed, atomic) into a staging name and are moved to their final cache name only once verified, so the cache
never holds a half-written or unverified file under the final name.

Offline: ``download=False``, or ``$VPZOO_OFFLINE`` / ``$HF_HUB_OFFLINE`` set to a true value (``1``, ``true``,
``yes``, ``on``), disables downloads; a missing file then raises :class:`MissingWeightsError`, whose message
says where vpzoo looked and how to get the file.
"""

from __future__ import annotations

import dataclasses
import os
import re
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from vpzoo.cache import DownloadError, default_cache_dir, download_url, git_blob_sha1, sha256_file

__all__ = [
    "WeightSpec",
    "ResolvedWeights",
    "MissingWeightsError",
    "WeightsVerificationError",
    "WEIGHTS",
    "register_weights",
    "get_weight_spec",
    "available_weights",
    "resolve_weights",
    "weights_cache_dir",
    "is_offline",
    "I3D_TORCHSCRIPT",
    "ALEXNET_IMAGENET",
    "LPIPS_ALEX_V01",
]

#: Environment variables that switch downloads off when set to a true value.
OFFLINE_ENV_VARS: tuple[str, ...] = ("VPZOO_OFFLINE", "HF_HUB_OFFLINE")
_TRUE = {"1", "true", "yes", "on"}
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_HEX = re.compile(r"^[0-9a-f]+$")


class MissingWeightsError(FileNotFoundError):
    """Metric weights are not available locally and could not (or may not) be downloaded.

    The message names the file, every place that was searched, and how to get the file.
    """


class WeightsVerificationError(ValueError):
    """A weights file does not match its pinned sha256 (or sha256 prefix)."""


@dataclass(frozen=True)
class WeightSpec:
    """A pinned weights file.

    Attributes:
        name: registry name (``"i3d_torchscript"``).
        filename: file name in the vpzoo cache.
        urls: download locations, tried in order.
        sha256: the file's full hex sha256, or ``None`` where it has not been pinned.
        sha256_prefix: the leading hex digits of the sha256 (torchvision's ``<name>-<prefix>.pth`` convention),
            checked when ``sha256`` is ``None``.
        git_blob: the file's git blob id (40 hex, ``git hash-object``), checked when ``sha256`` is ``None``: the
            pin of a file whose only public identity is its blob in a git repository at a known commit.
        size: the file size in bytes, if known (checked by the downloader).
        env_var: environment variable naming a local copy (``"VPZOO_I3D_PATH"``).
        search_paths: further local places to look; ``{torch_hub}`` expands to ``torch.hub.get_dir()``.
        description: what the file is.
        source: where the file and its pin come from.
        license: the license of the weights.
    """

    name: str
    filename: str
    urls: tuple[str, ...] = ()
    sha256: str | None = None
    sha256_prefix: str | None = None
    git_blob: str | None = None
    size: int | None = None
    env_var: str | None = None
    search_paths: tuple[str, ...] = ()
    description: str = ""
    source: str = ""
    license: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"WeightSpec.name must be a non-empty str, got {self.name!r}")
        if not isinstance(self.filename, str) or not self.filename or "/" in self.filename or "\\" in self.filename:
            raise ValueError(f"WeightSpec.filename must be a plain file name, got {self.filename!r}")
        object.__setattr__(self, "urls", tuple(self.urls))
        object.__setattr__(self, "search_paths", tuple(self.search_paths))
        if self.sha256 is not None:
            object.__setattr__(self, "sha256", self.sha256.lower())
            if not _HEX64.match(self.sha256):
                raise ValueError(f"WeightSpec.sha256 must be 64 hex digits or None, got {self.sha256!r}")
        if self.sha256_prefix is not None:
            object.__setattr__(self, "sha256_prefix", self.sha256_prefix.lower())
            if not _HEX.match(self.sha256_prefix) or not 6 <= len(self.sha256_prefix) <= 64:
                raise ValueError(f"WeightSpec.sha256_prefix must be 6-64 hex digits, got {self.sha256_prefix!r}")
        if self.git_blob is not None:
            object.__setattr__(self, "git_blob", self.git_blob.lower())
            if not re.match(r"^[0-9a-f]{40}$", self.git_blob):
                raise ValueError(f"WeightSpec.git_blob must be 40 hex digits or None, got {self.git_blob!r}")
        if self.size is not None and (isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 0):
            raise ValueError(f"WeightSpec.size must be a non-negative int or None, got {self.size!r}")

    @property
    def pin(self) -> str:
        """How the file is pinned: ``"sha256"``, ``"git_blob"``, ``"sha256_prefix"`` or ``"none"``."""
        if self.sha256 is not None:
            return "sha256"
        if self.git_blob is not None:
            return "git_blob"
        return "sha256_prefix" if self.sha256_prefix is not None else "none"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable fields."""
        out = dataclasses.asdict(self)
        out["urls"] = list(self.urls)
        out["search_paths"] = list(self.search_paths)
        return out


@dataclass(frozen=True)
class ResolvedWeights:
    """A weights file found (or downloaded) and hashed.

    Attributes:
        name: the spec's name.
        path: the local file.
        sha256: the file's own sha256 (its identity, recorded with every reported number).
        verified: ``"sha256"`` (matches the pinned digest), ``"git_blob"`` (matches the pinned git blob id),
            ``"sha256_prefix"`` (matches the pinned prefix),
            ``"unpinned"`` (the spec pins no digest) or ``"mismatch"`` (accepted with ``verify=False``).
        origin: ``"argument"``, ``"env:<VAR>"``, ``"cache"``, ``"search_path"`` or ``"download"``.
        url: the URL it was downloaded from (``None`` unless ``origin == "download"``).
    """

    name: str
    path: Path
    sha256: str
    verified: str
    origin: str
    url: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable record (the path as a string)."""
        out = dataclasses.asdict(self)
        out["path"] = str(self.path)
        return out


_WEIGHTS: dict[str, WeightSpec] = {}
#: Read-only view of the registered weight specs, by name.
WEIGHTS: Mapping[str, WeightSpec] = MappingProxyType(_WEIGHTS)


def register_weights(spec: WeightSpec, *, overwrite: bool = False) -> WeightSpec:
    """Add ``spec`` to the registry under ``spec.name`` and return it."""
    if not isinstance(spec, WeightSpec):
        raise TypeError(f"expected a WeightSpec, got {type(spec).__name__}")
    existing = _WEIGHTS.get(spec.name)
    if existing is not None and existing != spec and not overwrite:
        raise ValueError(f"weights {spec.name!r} are already registered as {existing}")
    _WEIGHTS[spec.name] = spec
    return spec


def available_weights() -> tuple[str, ...]:
    """Names of the registered weight specs, sorted."""
    return tuple(sorted(_WEIGHTS))


def get_weight_spec(name: str | WeightSpec) -> WeightSpec:
    """The registered spec called ``name`` (a :class:`WeightSpec` is returned unchanged)."""
    if isinstance(name, WeightSpec):
        return name
    if not isinstance(name, str):
        raise TypeError(f"expected a weights name (str) or WeightSpec, got {type(name).__name__}")
    try:
        return _WEIGHTS[name]
    except KeyError:
        known = ", ".join(repr(n) for n in available_weights())
        raise ValueError(f"unknown weights {name!r}; known weights: {known}") from None


def weights_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """Directory of cached metric weights: ``cache_dir`` if given, else ``<vpzoo cache>/weights``."""
    return Path(cache_dir) if cache_dir is not None else default_cache_dir("weights")


def is_offline() -> bool:
    """True when ``$VPZOO_OFFLINE`` or ``$HF_HUB_OFFLINE`` is set to a true value."""
    return any(os.environ.get(var, "").strip().lower() in _TRUE for var in OFFLINE_ENV_VARS)


# ------------------------------------------------------------------------------------------------ hashing
# Hashing a 250 MB file takes about a second; remember digests per (file, size, mtime) within the process.
_DIGESTS: dict[tuple[str, int, int], str] = {}
_DIGEST_LOCK = threading.Lock()


def _file_sha256(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    with _DIGEST_LOCK:
        if key in _DIGESTS:
            return _DIGESTS[key]
    digest = sha256_file(path)
    with _DIGEST_LOCK:
        _DIGESTS[key] = digest
    return digest


def _check(spec: WeightSpec, path: Path, verify: bool, origin: str) -> tuple[str, str]:
    """Hash ``path`` and compare with the spec's pin; returns ``(sha256, verified)``."""
    digest = _file_sha256(path)
    got = digest
    if spec.sha256 is not None:
        ok, level, expected = digest == spec.sha256, "sha256", spec.sha256
    elif spec.git_blob is not None:
        blob = git_blob_sha1(path)
        ok, level, expected, got = blob == spec.git_blob, "git_blob", spec.git_blob, blob
    elif spec.sha256_prefix is not None:
        ok, level, expected = digest.startswith(spec.sha256_prefix), "sha256_prefix", spec.sha256_prefix + "..."
    else:
        warnings.warn(
            f"weights {spec.name!r}: no sha256 is pinned for this file, so it cannot be verified; using {path} "
            f"(sha256 {digest}), which is recorded with every reported number",
            stacklevel=3,
        )
        return digest, "unpinned"
    if ok:
        return digest, level
    message = (
        f"weights {spec.name!r} from {origin} ({path}) do not match the pinned "
        f"{ {'sha256': 'sha256', 'git_blob': 'git blob id'}.get(level, 'sha256 prefix')}: expected {expected}, "
        f"got {got}"
    )
    if verify:
        raise WeightsVerificationError(
            message + ". Use the pinned file (see the spec's source), or pass verify=False to use these weights "
            "anyway (reports then record this file's sha256)."
        )
    warnings.warn(message + "; using them anyway because verify=False", stacklevel=3)
    return digest, "mismatch"


# ------------------------------------------------------------------------------------------------ resolution
def _expand(template: str) -> Path:
    if "{torch_hub}" in template:
        import torch.hub

        template = template.replace("{torch_hub}", torch.hub.get_dir())
    return Path(os.path.expanduser(template))


def _how_to_get(spec: WeightSpec, cache_path: Path) -> str:
    lines = []
    if spec.urls:
        pin = ("sha256 " + spec.sha256 if spec.sha256 else f"git blob {spec.git_blob}" if spec.git_blob
               else f"sha256 {spec.sha256_prefix}... (prefix)" if spec.sha256_prefix else "sha256 not pinned")
        lines.append(f"Download it on a machine with internet access ({pin}):")
        lines.append(f"    curl -L -o {spec.filename} '{spec.urls[0]}'")
        for url in spec.urls[1:]:
            lines.append(f"  (mirror: {url})")
    else:
        lines.append("No download location is registered for this file.")
    lines.append("then do one of:")
    lines.append(f"  - copy it to {cache_path}")
    if spec.env_var:
        lines.append(f"  - set {spec.env_var}=/path/to/{spec.filename}")
    lines.append("  - pass its path explicitly (weights_path=... / the loader's path argument)")
    if spec.urls:
        lines.append(
            "or allow vpzoo to download it (unset " + " / ".join(f"${v}" for v in OFFLINE_ENV_VARS)
            + ", or pass download=True)."
        )
    if spec.source:
        lines.append(f"Source: {spec.source}")
    return "\n".join(lines)


def _staging_path(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}.unverified")


def _download(spec: WeightSpec, dest: Path, verify: bool, progress: bool) -> tuple[ResolvedWeights | None, list[str]]:
    errors: list[str] = []
    staging = _staging_path(dest)
    for url in spec.urls:
        try:
            download_url(url, staging, sha256=spec.sha256, expected_size=spec.size, progress=progress,
                         git_blob=None if spec.sha256 else spec.git_blob)
        except DownloadError as e:
            errors.append(f"{url}: {e}")
            continue
        try:
            digest, level = _check(spec, staging, verify, f"download {url}")
        except WeightsVerificationError as e:
            staging.unlink(missing_ok=True)
            errors.append(f"{url}: {e}")
            continue
        os.replace(staging, dest)
        return ResolvedWeights(spec.name, dest, digest, level, "download", url), errors
    return None, errors


def resolve_weights(
    weights: str | WeightSpec,
    path: str | os.PathLike | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    download: bool | None = None,
    verify: bool = True,
    progress: bool = True,
) -> ResolvedWeights:
    """Find, verify (and if needed download) a metric weights file.

    Args:
        weights: a registered name (see :func:`available_weights`) or a :class:`WeightSpec`.
        path: a local file to use instead of searching (must exist).
        cache_dir: directory of cached weights (default ``<vpzoo cache>/weights``).
        download: ``True`` to allow a download, ``False`` to forbid it, ``None`` (default) to allow it unless
            ``$VPZOO_OFFLINE`` / ``$HF_HUB_OFFLINE`` is set.
        verify: refuse files that do not match the pinned sha256 (``False``: warn and use them; a corrupt cache
            entry is always replaced when a download is allowed).
        progress: show a download progress bar.

    Returns:
        :class:`ResolvedWeights` with the file's path and sha256.

    Raises:
        MissingWeightsError: the file is nowhere to be found and cannot be downloaded (the message says how to get
            it).
        WeightsVerificationError: a user-supplied file (``path`` or environment variable) does not match the pin.
    """
    spec = get_weight_spec(weights)
    cache_path = weights_cache_dir(cache_dir) / spec.filename
    if path is not None:
        p = Path(os.path.expanduser(os.fspath(path)))
        if not p.is_file():
            raise MissingWeightsError(
                f"weights {spec.name!r}: the given path {p} does not exist or is not a file.\n"
                + _how_to_get(spec, cache_path)
            )
        digest, level = _check(spec, p, verify, "the given path")
        return ResolvedWeights(spec.name, p, digest, level, "argument")

    looked: list[str] = []
    if spec.env_var:
        value = os.environ.get(spec.env_var, "").strip()
        if value:
            p = Path(os.path.expanduser(value))
            if not p.is_file():
                raise MissingWeightsError(
                    f"weights {spec.name!r}: ${spec.env_var}={value} does not exist or is not a file.\n"
                    + _how_to_get(spec, cache_path)
                )
            digest, level = _check(spec, p, verify, f"${spec.env_var}")
            return ResolvedWeights(spec.name, p, digest, level, f"env:{spec.env_var}")
        looked.append(f"${spec.env_var} (unset)")

    allow_download = (not is_offline()) if download is None else bool(download)

    looked.append(str(cache_path))
    if cache_path.is_file():
        try:
            digest, level = _check(spec, cache_path, verify or allow_download, "the vpzoo cache")
            return ResolvedWeights(spec.name, cache_path, digest, level, "cache")
        except WeightsVerificationError as e:
            if not allow_download:
                raise
            warnings.warn(f"{e}; deleting the corrupt cache entry and downloading it again", stacklevel=2)
            cache_path.unlink(missing_ok=True)

    for template in spec.search_paths:
        p = _expand(template)
        looked.append(str(p))
        if p.is_file():
            try:
                digest, level = _check(spec, p, True, "a well-known location")
            except WeightsVerificationError as e:
                warnings.warn(f"ignoring {p}: {e}", stacklevel=2)
                continue
            return ResolvedWeights(spec.name, p, digest, level, "search_path")

    errors: list[str] = []
    if allow_download and spec.urls:
        resolved, errors = _download(spec, cache_path, verify, progress)
        if resolved is not None:
            return resolved

    if not allow_download:
        why = "downloads are disabled (" + (
            "download=False" if download is False
            else ", ".join(f"${v}={os.environ[v]}" for v in OFFLINE_ENV_VARS if v in os.environ)
        ) + ")"
    elif not spec.urls:
        why = "no download URL is registered"
    else:
        why = "the download failed:\n" + "\n".join(f"    {e}" for e in errors)
    raise MissingWeightsError(
        f"weights {spec.name!r} ({spec.description or spec.filename}) are not available: {why}.\n"
        f"Looked in: {'; '.join(looked)}.\n" + _how_to_get(spec, cache_path)
    )


# ------------------------------------------------------------------------------------------------ registry
#: The TF-Hub-equivalent I3D (Kinetics-400) as a TorchScript file, from StyleGAN-V. Its sha256 is not published;
#: its git blob id is: the same file is committed to JunyaoHu/common_metrics_on_video_quality
#: (fvd/styleganv/i3d_torchscript.pt, blob 93daef59..., unchanged since commit 70984717), so it is pinned by that
#: blob id (checked on every download and every use) and also downloaded from there at a pinned commit.
I3D_TORCHSCRIPT = register_weights(
    WeightSpec(
        name="i3d_torchscript",
        filename="i3d_torchscript.pt",
        urls=(
            "https://www.dropbox.com/s/ge9e5ujwgetktms/i3d_torchscript.pt?dl=1",
            "https://github.com/JunyaoHu/common_metrics_on_video_quality/raw/"
            "5f751734ce9cef4cd2dddb235726b75dff62a387/fvd/styleganv/i3d_torchscript.pt",
        ),
        sha256=None,
        git_blob="93daef59c7ae0e9e8f76225521407e60cbafa6aa",
        env_var="VPZOO_I3D_PATH",
        description="I3D Kinetics-400 (TF-Hub deepmind/i3d-kinetics-400/1), TorchScript port of StyleGAN-V",
        source="universome/stylegan-v src/metrics/frechet_video_distance.py (detector_url); equivalence with "
        "TF-Hub shown in universome/fvd-comparison (L2 2.6e-4 on 4 clips, FVD 10.138085 vs 10.138084); git blob "
        "93daef59c7ae0e9e8f76225521407e60cbafa6aa of fvd/styleganv/i3d_torchscript.pt in "
        "JunyaoHu/common_metrics_on_video_quality at 5f751734ce9cef4cd2dddb235726b75dff62a387",
        license="DeepMind kinetics-i3d weights, Apache-2.0 (TF-Hub module); port by the StyleGAN-V authors",
    )
)

#: torchvision's ImageNet AlexNet (the LPIPS backbone). torchvision publishes only the sha256 prefix (in the
#: file name), which torchvision itself checks; we check the same prefix.
ALEXNET_IMAGENET = register_weights(
    WeightSpec(
        name="alexnet_imagenet",
        filename="alexnet-owt-7be5be79.pth",
        urls=("https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",),
        sha256_prefix="7be5be79",
        env_var="VPZOO_ALEXNET_PATH",
        search_paths=("{torch_hub}/checkpoints/alexnet-owt-7be5be79.pth",),
        description="torchvision AlexNet ImageNet-1k weights (AlexNet_Weights.IMAGENET1K_V1)",
        source="torchvision.models.AlexNet_Weights.IMAGENET1K_V1 (the backbone the lpips package loads)",
        license="BSD-3-Clause (torchvision)",
    )
)

#: LPIPS v0.1 linear calibration layers for AlexNet (6,009 bytes), from richzhang/PerceptualSimilarity.
LPIPS_ALEX_V01 = register_weights(
    WeightSpec(
        name="lpips_alex_v0.1",
        filename="lpips_alex_v0.1.pth",
        urls=(
            "https://raw.githubusercontent.com/richzhang/PerceptualSimilarity/"
            "082bb24f84c091ea94de2867d34c4544f68e0963/lpips/weights/v0.1/alex.pth",
        ),
        sha256="df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0",
        size=6009,
        env_var="VPZOO_LPIPS_ALEX_PATH",
        description="LPIPS v0.1 linear layers for AlexNet (Zhang et al. 2018)",
        source="richzhang/PerceptualSimilarity lpips/weights/v0.1/alex.pth (last changed in c33f89e9, shipped "
        "in the lpips package); sha256 computed from the repository blob 1df9dfe6",
        license="BSD-2-Clause (richzhang/PerceptualSimilarity)",
    )
)
