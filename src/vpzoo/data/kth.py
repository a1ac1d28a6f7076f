"""KTH Actions (Schuldt et al., ICPR 2004) for video prediction: both community splits, 64 or 128 px.

Source: six zips of greyscale AVIs (160x120, 25 fps), one per action, at :data:`KTH_BASE_URL`
(``{boxing,handclapping,handwaving,jogging,running,walking}.zip``), 25 persons x 6 actions x 4 scenarios, file names
``personPP_ACTION_dS_uncomp.avi``; plus the sub-sequence annotation ``00sequences.txt`` (optional).

Preprocessing (once, :func:`prepare_kth` / ``vpzoo data prepare kth --root DIR``): every AVI is decoded with PyAV
and each frame is scaled by FFmpeg's swscale (bicubic, as ``ffmpeg -s 64x64`` in SVG's ``convert_kth.lua``) to
``S x S`` RGB on the **full** frame (no crop, so the 4:3 aspect is squeezed, as SVG does), keeping channel 0 (SVG's
grey level). All frames of all videos are stored in one uint8 array ``root/processed/{S}px/frames.npy``
``(F, S, S)`` (memory-mapped at load time) with ``videos.json`` listing each video's person, action, scenario, first
frame and length, and its annotated sub-sequences. Zips are read member by member (no permanent extraction).
AVIs already extracted anywhere under ``root`` are used as they are.

Splits and clip sampling (``split=``):

* ``"svg"`` (SVG, SAVP, SRVP, vp-suite): persons 1-20 train, 21-25 test. A clip is drawn as edenton/svg's loader
  does: uniform action, then uniform video of that action, then uniform annotated sub-sequence (the whole video when
  ``00sequences.txt`` is absent or ``use_sequences=False``), redrawing all three when the sub-sequence is shorter
  than the clip, then a uniform start. Test: ``num_test`` (default 1,000, SRVP's count) fixed clips drawn that way
  with ``eval_seed``.
* ``"predrnn"`` (PredRNN, E3D-LSTM, SimVP, OpenSTL): persons 1-16 train, 17-25 test. Clips are windows of whole
  videos whose starts advance by the clip length (boxing, handclapping, handwaving, walking) or by
  :data:`PREDRNN_FAST_STRIDE` = 3 frames (jogging, running). Training samples these windows uniformly; test takes
  all of them in order (or a seeded subset of ``num_test``). (OpenSTL reads a JPEG mirror resized with OpenCV; vpzoo
  decodes the AVIs, so pixel values differ slightly.)

Validation: ``num_val`` fixed clips from the test persons, drawn with a seed stream distinct from the test one (the
papers have no validation split; they validate on test persons). The chosen clips (video name + start frame) are
stored as JSON under ``root/processed/{S}px/eval/`` so the exact test clips can be published and compared.

Clip lengths: ``seq_len`` for training (10 + 10 = 20 for SVG) and ``eval_seq_len`` for val/test (10 -> 10, 20, 30,
40: 20, 30, 40, 50).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Iterable, Literal, Optional, Sequence, Union

import numpy as np
import torch

from vpzoo.cache import DownloadError, atomic_write_text, download_url, sha256_file
from vpzoo.data._common import (
    BatchStream,
    FrameClipSet,
    FrameStore,
    NpyWriter,
    VideoDataModule,
    check_int,
    check_loader_options,
    check_optional_int,
    check_path,
    clip_starts,
    fixed_clip_list,
    missing_data_error,
    prepared_frames,
    source_fingerprint,
    clean_stale_temporaries,
    nothing_decoded_error,
    progress_bar,
    uint8_to_float,
)

__all__ = [
    "ACTIONS",
    "KTH_BASE_URL",
    "SPLITS",
    "PREDRNN_FAST_ACTIONS",
    "PREDRNN_FAST_STRIDE",
    "parse_kth_name",
    "parse_sequences_file",
    "decode_kth_video",
    "prepare_kth",
    "predrnn_windows",
    "kth_is_prepared",
    "load_kth_videos",
    "KTHClipSet",
    "KTHDataModule",
]

ACTIONS = ("boxing", "handclapping", "handwaving", "jogging", "running", "walking")
KTH_BASE_URL = "http://www.nada.kth.se/cvap/actions/"
"""Official host (also reachable as ``https://www.csc.kth.se/cvap/actions/``); override with ``base_url=``."""
SEQUENCES_FILE = "00sequences.txt"
SPLITS = {"svg": (tuple(range(1, 21)), tuple(range(21, 26))), "predrnn": (tuple(range(1, 17)), tuple(range(17, 26)))}
"""Train and test persons of each split."""
PREDRNN_FAST_ACTIONS = ("jogging", "running")
PREDRNN_FAST_STRIDE = 3
PREPROCESS_VERSION = 1

_NAME_RE = re.compile(r"^person(\d{2})_([a-z]+)_d(\d)_uncomp\.avi$")
_SEQ_LINE_RE = re.compile(r"^\s*(person\d{2}_[a-z]+_d\d)\s+frames\s+(.*)$")


def parse_kth_name(name: str) -> Optional[tuple[int, str, int]]:
    """``"person01_walking_d1_uncomp.avi"`` -> ``(1, "walking", 1)``; ``None`` for other names."""
    m = _NAME_RE.match(os.path.basename(name))
    if not m or m.group(2) not in ACTIONS:
        return None
    return int(m.group(1)), m.group(2), int(m.group(3))


def parse_sequences_file(text: str) -> dict[str, list[tuple[int, int]]]:
    """Parse KTH's ``00sequences.txt``: ``{"person01_boxing_d1": [(start, end), ...]}`` as 0-based half-open ranges.

    Lines look like ``person01_boxing_d1<TAB>frames<TAB>1-95, 96-185, 186-245, 246-360`` (1-based, inclusive);
    other lines are ignored.
    """
    out: dict[str, list[tuple[int, int]]] = {}
    for line in text.splitlines():
        m = _SEQ_LINE_RE.match(line)
        if not m:
            continue
        ranges = [(int(a) - 1, int(b)) for a, b in re.findall(r"(\d+)\s*-\s*(\d+)", m.group(2))]
        ranges = [(a, b) for a, b in ranges if b > a >= 0]
        if ranges:
            out[m.group(1)] = ranges
    return out


# --------------------------------------------------------------------------------------------------------
# Decoding and preprocessing
# --------------------------------------------------------------------------------------------------------
def decode_kth_video(source: Union[str, os.PathLike], sizes: Sequence[int] = (64,)) -> dict[int, np.ndarray]:
    """Decode one AVI with PyAV and scale every frame to each ``S`` in ``sizes``: ``{S: uint8 (T, S, S)}``.

    Frames are converted by swscale to ``S x S`` rgb24 with bicubic interpolation (what ``ffmpeg -s SxS`` to PNG
    does) and channel 0 is kept.
    """
    import av
    from av.video.reformatter import VideoReformatter

    frames: dict[int, list[np.ndarray]] = {int(s): [] for s in sizes}
    scalers = {s: VideoReformatter() for s in frames}  # one cached swscale context per size
    with av.open(os.fspath(source)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            for s, scaler in scalers.items():
                rgb = scaler.reformat(frame, width=s, height=s, format="rgb24", interpolation="BICUBIC").to_ndarray()
                frames[s].append(rgb[..., 0])
    if not next(iter(frames.values())):
        raise ValueError(f"{source}: no decodable video frames")
    return {s: np.stack(f) for s, f in frames.items()}


def _processed_dir(root: Union[str, os.PathLike], image_size: int) -> Path:
    return Path(root) / "processed" / f"{int(image_size)}px"


def kth_is_prepared(root: Union[str, os.PathLike], image_size: int) -> bool:
    """Whether ``root`` holds complete preprocessed KTH frames at ``image_size``, prepared from the zips and AVIs
    present now (changed sources need a new preparation; sources deleted after preparation do not)."""
    root = Path(root)
    frames = prepared_frames(_processed_dir(root, image_size), PREPROCESS_VERSION, (image_size, image_size),
                             sources=_source_files_fingerprint(root))
    return frames is not None and frames.dtype == np.uint8


def _source_files_fingerprint(root: Path) -> list[list]:
    raw = root / "raw"
    files = list(raw.glob("*.zip")) if raw.is_dir() else []
    if root.is_dir():
        files += [a for a in root.rglob("*.avi")
                  if "processed" not in a.relative_to(root).parts and parse_kth_name(a.name)]
    return source_fingerprint(root, files)


def _find_sources(root: Path) -> tuple[dict[str, object], dict[str, Path]]:
    """AVIs under ``root`` (paths) and inside ``root/raw/*.zip`` (``(zip, member)``), keyed by video stem."""
    sources: dict[str, object] = {}
    zips: dict[str, Path] = {}
    raw = root / "raw"
    if raw.is_dir():
        for z in sorted(raw.glob("*.zip")):
            zips[z.stem] = z
            try:
                with zipfile.ZipFile(z) as zf:
                    for member in zf.namelist():
                        if parse_kth_name(member):
                            sources[os.path.basename(member)[: -len("_uncomp.avi")]] = (z, member)
            except zipfile.BadZipFile as e:
                raise ValueError(f"{z} is not a valid zip file ({e}); delete it and prepare again") from e
    for avi in sorted(root.rglob("*.avi")):
        if "processed" in avi.relative_to(root).parts:
            continue
        if parse_kth_name(avi.name):
            sources[avi.name[: -len("_uncomp.avi")]] = avi
    return sources, zips


def prepare_kth(
    root: Union[str, os.PathLike],
    image_sizes: Iterable[int] = (64,),
    download: bool = True,
    base_url: str = KTH_BASE_URL,
    progress: bool = True,
    actions: Sequence[str] = ACTIONS,
) -> dict[int, Path]:
    """Download (if needed) and preprocess KTH under ``root`` for each size in ``image_sizes``.

    Steps: for every action with no AVI under ``root``, download ``{base_url}{action}.zip`` to
    ``root/raw/{action}.zip`` (resumable); try to fetch ``00sequences.txt`` (optional: without it clips are drawn
    from whole videos); decode every video once and write ``root/processed/{S}px/{frames.npy, videos.json}`` for the
    sizes not prepared yet (``videos.json`` also records the sha256 of each zip: KTH publishes no checksums).
    Returns ``{S: processed directory}``.

    Raises:
        DatasetNotFoundError: zips are missing and ``download`` is False or the download failed.
    """
    root = Path(root)
    sizes = sorted({check_int("image_size", s, 8) for s in image_sizes})
    todo = [s for s in sizes if not kth_is_prepared(root, s)]
    result = {s: _processed_dir(root, s) for s in sizes}
    if not todo:
        return result
    base = base_url if base_url.endswith("/") else base_url + "/"
    raw = root / "raw"
    clean_stale_temporaries(raw)  # extraction folders of a killed preparation must not be taken for sources
    sources, _ = _find_sources(root)
    have_actions = {parse_kth_name(f"{k}_uncomp.avi")[1] for k in sources}
    missing = [a for a in actions if a not in have_actions]
    if missing:
        if not download:
            raise missing_data_error(
                "kth", root, [raw / f"{a}.zip" for a in missing], ", ".join(base + f"{a}.zip" for a in missing),
                hint="or put the zips (or the extracted AVIs) there yourself",
            )
        for a in missing:
            try:
                download_url(base + f"{a}.zip", raw / f"{a}.zip", progress=progress)
            except DownloadError as e:
                raise missing_data_error(
                    "kth", root, raw / f"{a}.zip", base + f"{a}.zip",
                    hint="or download the zips by hand into that folder (mirror: https://www.csc.kth.se/cvap/actions/)",
                    cause=e,
                ) from e
        sources, _ = _find_sources(root)
    seq_path = raw / SEQUENCES_FILE
    if not seq_path.is_file() and download:
        try:
            download_url(base + SEQUENCES_FILE, seq_path, progress=False)
        except DownloadError as e:
            warnings.warn(f"could not fetch {base + SEQUENCES_FILE} ({e}); KTH clips will be drawn from whole videos")
    sequences = parse_sequences_file(seq_path.read_text(errors="replace")) if seq_path.is_file() else {}
    if not sources:
        raise missing_data_error("kth", root, raw / "*.zip", base)

    def order(stem: str) -> tuple[int, int, int]:
        person, action, scenario = parse_kth_name(stem + "_uncomp.avi")
        return person, ACTIONS.index(action), scenario

    names = sorted(sources, key=order)
    writers = {s: NpyWriter(_processed_dir(root, s) / "frames.npy", (s, s), np.uint8) for s in todo}
    videos: list[dict] = []
    offset = 0
    bar = progress_bar(progress, len(names), f"KTH {'/'.join(map(str, todo))}px", "video")
    first_error = None
    try:
        for name in names:
            person, action, scenario = parse_kth_name(name + "_uncomp.avi")
            src = sources[name]
            try:
                if isinstance(src, tuple):
                    zpath, member = src
                    # extracted outside root: the source search must never see a half-written AVI
                    with zipfile.ZipFile(zpath) as zf, tempfile.TemporaryDirectory(prefix="vpzoo-kth-") as tmp:
                        local = zf.extract(member, tmp)
                        decoded = decode_kth_video(local, todo)
                else:
                    decoded = decode_kth_video(src, todo)
            except Exception as e:  # a broken video: report it and go on
                warnings.warn(f"skipping KTH video {name}: {type(e).__name__}: {e}")
                first_error = first_error or f"{name}: {type(e).__name__}: {e}"
                continue
            length = len(next(iter(decoded.values())))
            for s in todo:
                writers[s].append(decoded[s])
            segs = [(a, min(b, length)) for a, b in sequences.get(name, []) if a < length]
            videos.append(dict(name=name, person=person, action=action, scenario=scenario, offset=offset,
                               length=length, sequences=segs or None))
            offset += length
            bar.update(1)
        if not videos:
            raise nothing_decoded_error("KTH", root, len(names), first_error)
    except BaseException:
        for w in writers.values():
            w.abort()
        raise
    finally:
        bar.close()
    # KTH publishes no checksums: record those of the zips this was built from, so copies can be compared
    source_sha256 = {z.name: sha256_file(z) for z in sorted(raw.glob("*.zip"))}
    fingerprint = _source_files_fingerprint(root)
    for s in todo:
        writers[s].close()
        meta = dict(version=PREPROCESS_VERSION, image_size=s, num_frames=offset, sequences_file=bool(sequences),
                    source=base, source_sha256=source_sha256, sources=fingerprint, videos=videos)
        atomic_write_text(_processed_dir(root, s) / "videos.json", json.dumps(meta, indent=1) + "\n")
    persons = {v["person"] for v in videos}
    if len(videos) < 599 or len(persons) < 25:
        warnings.warn(
            f"KTH under {root}: {len(videos)} videos of {len(persons)} persons were preprocessed (the full set has "
            f"599 videos of 25 persons)"
        )
    return result


def load_kth_videos(root: Union[str, os.PathLike], image_size: int) -> tuple[Path, list[dict]]:
    """``(frames.npy path, video records)`` of prepared KTH, or :class:`DatasetNotFoundError` naming the command."""
    d = _processed_dir(root, image_size)
    if not kth_is_prepared(root, image_size):
        raise missing_data_error(
            "kth", root, [d / "frames.npy", d / "videos.json"], KTH_BASE_URL,
            hint=f"add --image-size {image_size} for this frame size" if image_size != 64 else "",
        )
    return d / "frames.npy", json.loads((d / "videos.json").read_text())["videos"]


# --------------------------------------------------------------------------------------------------------
# Clip sampling
# --------------------------------------------------------------------------------------------------------
class _SVGSampler:
    """edenton/svg's draw: uniform action -> uniform video -> uniform segment (redraw if short) -> uniform start."""

    def __init__(self, videos: list[dict], length: int, use_sequences: bool) -> None:
        self.length = length
        by_action: dict[str, list[int]] = {}
        self.segments: list[np.ndarray] = []  # per video: (n_seg, 2) global start, segment length
        for i, v in enumerate(videos):
            segs = v["sequences"] if (use_sequences and v.get("sequences")) else [(0, v["length"])]
            self.segments.append(np.array([(v["offset"] + a, b - a) for a, b in segs], dtype=np.int64))
            by_action.setdefault(v["action"], []).append(i)
        self.actions = [np.array(by_action[a]) for a in ACTIONS if a in by_action]
        if not any((s[:, 1] >= length).any() for s in self.segments):
            raise ValueError(f"no KTH video (sub-sequence) has {length} frames")

    def __call__(self, rng: np.random.Generator, n: int) -> np.ndarray:
        out = np.empty(n, dtype=np.int64)
        for k in range(n):
            while True:
                vids = self.actions[rng.integers(len(self.actions))]
                segs = self.segments[vids[rng.integers(len(vids))]]
                start, seg_len = segs[rng.integers(len(segs))]
                if seg_len >= self.length:
                    break
            out[k] = start + rng.integers(0, seg_len - self.length + 1)
        return out


def predrnn_windows(videos: list[dict], length: int) -> np.ndarray:
    """Global start frames of the PredRNN-family windows of ``length`` frames (see the module docstring)."""
    starts = []
    for v in videos:
        stride = PREDRNN_FAST_STRIDE if v["action"] in PREDRNN_FAST_ACTIONS else length
        starts.extend(v["offset"] + s for s in range(0, v["length"] - length + 1, stride))
    return np.array(starts, dtype=np.int64)


def _with_channels(clips: np.ndarray, channels: int) -> np.ndarray:
    clips = clips[:, :, None]  # (n, T, 1, S, S)
    return np.repeat(clips, 3, axis=2) if channels == 3 else clips


class KTHClipSet(FrameClipSet):
    """Fixed KTH clips: item ``i`` is frames ``[starts[i], starts[i] + length)``, float32 ``(length, C, S, S)``."""

    def __init__(self, frames_path: Union[str, os.PathLike], starts: np.ndarray, length: int, channels: int = 1):
        super().__init__(frames_path, starts, length)
        self.channels = int(channels)

    def __getitem__(self, index: int) -> torch.Tensor:
        return uint8_to_float(_with_channels(self._uint8_clip(index), self.channels)[0])


class _KTHBatcher:
    def __init__(self, frames_path, sampler, batch_size: int, length: int, channels: int) -> None:
        self.frames = FrameStore(frames_path)
        self.sampler, self.batch_size, self.length, self.channels = sampler, batch_size, length, channels

    def __call__(self, rng: np.random.Generator) -> torch.Tensor:
        if isinstance(self.sampler, np.ndarray):  # PredRNN windows
            starts = self.sampler[rng.integers(0, len(self.sampler), size=self.batch_size)]
        else:
            starts = self.sampler(rng, self.batch_size)
        return uint8_to_float(_with_channels(self.frames.clips(starts, self.length), self.channels))


# --------------------------------------------------------------------------------------------------------
# DataModule
# --------------------------------------------------------------------------------------------------------
class KTHDataModule(VideoDataModule):
    """KTH Actions as a LightningDataModule: float32 batches ``(B, T, C, S, S)`` in [0, 1] (see the module docstring).

    Args:
        root: dataset directory (raw zips/AVIs in ``root/raw``, preprocessed arrays in ``root/processed``).
        image_size: frame side, 64 (SVG) or 128 (PredRNN/OpenSTL, DRNet); any size >= 8 works.
        seq_len: training clip length (SVG: 10 + 10 = 20).
        eval_seq_len: val/test clip length (community protocol 10 + 30 = 40).
        batch_size: training batch size.
        split: ``"svg"`` (persons 1-20 / 21-25, SVG sampling) or ``"predrnn"`` (1-16 / 17-25, strided windows).
        num_val: fixed validation clips (from the test persons).
        num_test: fixed test clips (``None``: 1,000 for "svg", all windows for "predrnn").
        use_sequences: draw SVG-family clips inside the annotated sub-sequences of ``00sequences.txt``.
        channels: 1 (grey) or 3 (grey replicated, as drnet-py).
        download: let :meth:`prepare_data` download missing zips.
        base_url: where the action zips are downloaded from.
        eval_batch_size, num_workers, seed, eval_seed, pin_memory, persistent_workers: as usual.
    """

    def __init__(
        self,
        root: str,
        image_size: int = 64,
        seq_len: int = 20,
        eval_seq_len: int = 40,
        batch_size: int = 16,
        split: Literal["svg", "predrnn"] = "svg",
        num_val: int = 256,
        num_test: Optional[int] = None,
        use_sequences: bool = True,
        channels: int = 1,
        download: bool = True,
        base_url: str = KTH_BASE_URL,
        eval_batch_size: Optional[int] = None,
        num_workers: int = 0,
        seed: int = 0,
        eval_seed: int = 42,
        pin_memory: bool = False,
        persistent_workers: bool = False,
    ) -> None:
        super().__init__()
        check_path("root", root)
        check_int("image_size", image_size, 8)
        check_int("seq_len", seq_len, 2)
        check_int("eval_seq_len", eval_seq_len, 2)
        check_int("batch_size", batch_size, 1)
        if split not in SPLITS:
            raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
        check_int("num_val", num_val, 1)
        check_optional_int("num_test", num_test, 1)
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels!r}")
        check_loader_options(eval_batch_size, num_workers, seed=seed, eval_seed=eval_seed)
        self.save_hyperparameters()
        self._store_loader_options(
            batch_size, eval_batch_size, num_workers, pin_memory, persistent_workers, seed=seed, eval_seed=eval_seed
        )
        self.root = Path(root)
        self.image_size, self.seq_len, self.eval_seq_len = int(image_size), int(seq_len), int(eval_seq_len)
        self.split = split
        self.num_val = int(num_val)
        self.num_test = None if num_test is None else int(num_test)
        self.use_sequences, self.channels = bool(use_sequences), int(channels)
        self.download, self.base_url = bool(download), base_url

    # ---- data -----------------------------------------------------------------------------------------------
    def persons(self, which: Literal["train", "test"]) -> tuple[int, ...]:
        """Persons of the training or test side of ``split``."""
        return SPLITS[self.split][0 if which == "train" else 1]

    def _videos(self, which: str) -> tuple[Path, list[dict]]:
        path, videos = load_kth_videos(self.root, self.image_size)
        keep = set(self.persons(which))
        return path, [v for v in videos if v["person"] in keep]

    def eval_clips(self, which: Literal["val", "test"]) -> list[tuple[str, int]]:
        """The fixed ``(video name, start frame)`` list of the val or test set (computed once, stored as JSON)."""
        _, videos = self._videos("test")
        num = self.num_val if which == "val" else self.num_test

        def draw_starts(rng: np.random.Generator) -> np.ndarray:
            if self.split == "svg":
                return _SVGSampler(videos, self.eval_seq_len, self.use_sequences)(rng, num or 1000)
            starts = predrnn_windows(videos, self.eval_seq_len)
            if num is not None:  # val, or a seeded subset of the test windows
                starts = np.sort(rng.choice(starts, size=min(num, len(starts)), replace=False))
            return starts

        options = dict(dataset="kth", version=PREPROCESS_VERSION, which=which, split=self.split,
                       length=self.eval_seq_len, num=num, use_sequences=self.use_sequences)
        folder = _processed_dir(self.root, self.image_size) / "eval"
        return fixed_clip_list(folder, which, options, videos, self.eval_seed, draw_starts)

    # ---- LightningDataModule hooks --------------------------------------------------------------------------
    def prepare_data(self) -> None:
        """Download and preprocess KTH at ``image_size`` if needed, then fix the val/test clips."""
        prepare_kth(self.root, [self.image_size], download=self.download, base_url=self.base_url)
        self.eval_clips("val")
        self.eval_clips("test")

    def _make_train_set(self) -> BatchStream:
        path, videos = self._videos("train")
        if self.split == "svg":
            sampler = _SVGSampler(videos, self.seq_len, self.use_sequences)
        else:
            sampler = predrnn_windows(videos, self.seq_len)
            if len(sampler) == 0:
                raise ValueError(f"no KTH training window of {self.seq_len} frames")
        batcher = _KTHBatcher(path, sampler, self.batch_size, self.seq_len, self.channels)
        return BatchStream(batcher, self.seed, self._rank())

    def _make_eval_set(self, split: Literal["val", "test"]) -> KTHClipSet:
        path, videos = load_kth_videos(self.root, self.image_size)
        return KTHClipSet(path, clip_starts(videos, self.eval_clips(split)), self.eval_seq_len, self.channels)

