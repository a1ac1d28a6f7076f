"""Stochastic Movement Dataset ("stochastic shapes", tensor2tensor's ``video_stochastic_shapes10k``).

The toy set of VideoFlow (Kumar et al., ICLR 2020, arXiv 1903.01434; its ``next_frame_glow_shapes`` set) and of
SV2P's stochasticity demo (Babaeizadeh et al., ICLR 2018, arXiv 1710.11252). Re-implemented from
``tensor2tensor/data_generators/video_generated.py`` (``VideoStochasticShapes10k``); no t2t code is used.

The rule (t2t, checked against its source):

* one shape per video: a **circle** (radius ``s``), a **square** (``plt.Rectangle`` of side ``2 s`` centred on the
  position) or an upright **equilateral triangle** (vertices ``(x - s, y - s)``, ``(x, y - s + s sqrt 3)``,
  ``(x + s, y - s)``: the position is the middle of its base's bounding square, not its centroid), chosen uniformly;
* one of 6 colours chosen uniformly: matplotlib's ``"b", "g", "r", "c", "m", "y"`` (rendered as the RGB values of
  :data:`COLOURS`); size ``s`` uniform in ``[0.5, 1.5)``; shape, colour and size stay the same through a video;
* plot units: the axes span ``[0, 10]^2`` (``lim = 10``), y up; the shape starts at the centre ``(5, 5)`` and moves
  ``speed = 1`` unit per frame along one of **8 directions** chosen uniformly, :data:`DIRECTIONS` = ``(dx, dy)`` in
  t2t's order (the diagonal ones move 1 unit along *each* axis, sqrt 2 units in all);
* black background, 64x64 RGB frames, **5 frames per video** (:data:`VIDEO_LENGTH`); t2t's clips start at frame 0
  (``only_keep_videos_from_0th_frame``, no random skip), so a clip of ``T <= 5`` frames is frames ``0 .. T-1``;
* the random draws per video, in t2t's order: direction, colour, shape, size. Here they come from one
  ``numpy.random.Generator`` per call, vectorised (directions ``(N,)``, colours ``(N,)``, shapes ``(N,)``, sizes
  ``(N,)``), not from t2t's global ``np.random`` stream: the distribution is t2t's, the individual videos are not.
* t2t writes 10,000 videos (50,000 frames) round-robin in chunks of 4,545 frames over 10 train shards and 1 dev
  shard: the dev shard gets frames 45,450-49,994, i.e. **909** whole videos, the train shards the other 9,091.
  There is no separate test split (t2t evaluates on the dev shard): :data:`T2T_NUM_EVAL` = 909 is the default test
  size here. Training draws fresh videos endlessly (the set is a few discrete choices and one size, so t2t's fixed
  9,091 videos and an endless stream have the same distribution).

Geometry (measured with matplotlib 3.11, whose Agg backend t2t draws with): the figure is 2 x 2 inches at 32 dpi
(64 px) and ``plt.tight_layout(pad=-2.0)`` pads by -2 font sizes = -20 pt = -80/9 px, so the axes span
``[-80/9, 64 + 80/9]`` px for ``[0, 10]`` units: :data:`PIXELS_PER_UNIT` = 73.6 / 9 ~ 8.18 px and the visible area
is about ``[1.09, 8.91]`` units. So the shape moves ~8.18 px per frame along an axis (not 6.4 = 64 / 10), and by
frame 4 its centre (at 1 or 9 units on a moving axis) has just left the canvas; only part of the shape is visible.

Rasterisation (numpy here; t2t uses matplotlib/Agg): the shape is the same at the same position, but

* squares: Agg snaps axis-aligned rectangles to the pixel grid with no antialiasing; here a pixel is filled when its
  centre lies inside the square (the same rule; ties at exact pixel-centre edges may differ by one pixel row);
* circles and triangles: Agg antialiases with exact area coverage and draws the circle as Bezier arcs; here the
  coverage is estimated with ``supersample x supersample`` samples per pixel (8 x 8 by default) and the pixel is
  ``round(coverage * colour)``. Against t2t's drawing code run with matplotlib 3.11 on 60 random frames (an
  offline check, not a test: matplotlib is not a dependency): squares were pixel-identical; for circles and
  triangles the interior and the background were identical and only edge pixels differed (about 40 of ~190 lit
  pixels per circle frame and 33 of ~110 per triangle frame, by at most 28 and 16 of 255; ~7 and ~4 pixels per
  frame by more than 8).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal, NamedTuple, Optional, Union

import numpy as np
import torch

from vpzoo.cache import default_cache_dir, options_hash
from vpzoo.data._common import (
    BatchStream,
    UInt8ClipArray,
    VideoDataModule,
    check_int,
    check_loader_options,
    check_path,
    ensure_cached_clips,
    split_rng,
    uint8_to_float,
)

__all__ = [
    "FRAME_SIZE",
    "VIDEO_LENGTH",
    "LIMIT",
    "SPEED",
    "SIZE_RANGE",
    "DIRECTIONS",
    "COLOUR_NAMES",
    "COLOURS",
    "SHAPES",
    "PIXELS_PER_UNIT",
    "AXES_ORIGIN_PX",
    "T2T_NUM_EVAL",
    "GENERATOR_VERSION",
    "ShapesParams",
    "units_to_pixels",
    "render_shape",
    "generate_stochastic_shapes",
    "StochasticShapesDataModule",
]

FRAME_SIZE = 64
"""Frame height and width in pixels (t2t ``frame_height = frame_width = 64``)."""

VIDEO_LENGTH = 5
"""Frames per video (t2t ``video_length``)."""

LIMIT = 10.0
"""The axes span ``[0, LIMIT]`` plot units in x and y (t2t ``lim``)."""

SPEED = 1.0
"""Plot units moved per frame along each moving axis (t2t ``speed``)."""

SIZE_RANGE = (0.5, 1.5)
"""Shape size ``s`` (circle radius, half the square's side, half the triangle's base) is uniform in this range."""

DIRECTIONS = np.array(
    [[1, 1], [1, 0], [1, -1], [0, 1], [0, -1], [-1, 1], [-1, 0], [-1, -1]], dtype=np.float64
)
"""The 8 directions ``(dx, dy)`` in plot units (y up), in t2t's order."""

COLOUR_NAMES = ("b", "g", "r", "c", "m", "y")
"""t2t's colours (matplotlib single-letter names), in its order."""

COLOURS = np.array(
    [[0, 0, 255], [0, 128, 0], [255, 0, 0], [0, 191, 191], [191, 0, 191], [191, 191, 0]], dtype=np.uint8
)
"""RGB of :data:`COLOUR_NAMES` as matplotlib >= 2.0 renders them (g = 0.5, c/m/y = 0.75 of full intensity)."""

SHAPES = ("circle", "square", "triangle")
"""Shape kinds, in t2t's order (``get_circle``, ``get_rectangle``, ``get_triangle``)."""

AXES_ORIGIN_PX = -80.0 / 9.0
"""Pixel coordinate of plot unit 0 (left edge / bottom edge): ``tight_layout(pad=-2.0)`` = -20 pt at 32 dpi."""

PIXELS_PER_UNIT = (FRAME_SIZE - 2 * AXES_ORIGIN_PX) / LIMIT
"""Pixels per plot unit: ``(64 + 160/9) / 10 = 73.6 / 9 ~ 8.18``."""

T2T_NUM_EVAL = 909
"""Videos in t2t's dev shard (of 10,000): the default test-set size."""

GENERATOR_VERSION = 1
"""Bumped whenever the generated videos for a seed change; part of every cache key."""


class ShapesParams(NamedTuple):
    """What was drawn for each of ``N`` videos of ``T`` frames."""

    direction: np.ndarray  #: int64 ``(N,)`` index into :data:`DIRECTIONS`
    colour: np.ndarray  #: int64 ``(N,)`` index into :data:`COLOURS`
    shape: np.ndarray  #: int64 ``(N,)`` index into :data:`SHAPES`
    size: np.ndarray  #: float64 ``(N,)`` in :data:`SIZE_RANGE`
    centre: np.ndarray  #: float64 ``(N, T, 2)`` position ``(x, y)`` in plot units (y up)


def units_to_pixels(xy: np.ndarray) -> np.ndarray:
    """Plot-unit positions ``(..., 2)`` ``(x, y up)`` -> image coordinates ``(..., 2)`` ``(column, row)`` in pixels,
    continuous (pixel ``(r, c)`` covers ``[c, c + 1) x [r, r + 1)``; rows grow downwards)."""
    xy = np.asarray(xy, dtype=np.float64)
    col = AXES_ORIGIN_PX + PIXELS_PER_UNIT * xy[..., 0]
    row = FRAME_SIZE - (AXES_ORIGIN_PX + PIXELS_PER_UNIT * xy[..., 1])
    return np.stack([col, row], axis=-1)


def _inside(kind: int, ux: np.ndarray, uy: np.ndarray, x: float, y: float, s: float) -> np.ndarray:
    """Boolean mask of the sample points ``(ux, uy)`` (plot units) inside the shape."""
    if kind == 0:  # circle of radius s
        return (ux - x) ** 2 + (uy - y) ** 2 <= s * s
    if kind == 1:  # square [x - s, x + s) x [y - s, y + s)
        return (ux >= x - s) & (ux < x + s) & (uy > y - s) & (uy <= y + s)
    # triangle (x - s, y - s), (x, y - s + s sqrt3), (x + s, y - s)
    h = uy - (y - s)
    r3 = math.sqrt(3.0)
    return (h >= 0) & (h <= r3 * (ux - (x - s))) & (h <= r3 * ((x + s) - ux))


def render_shape(
    kind: int, colour: np.ndarray, size: float, centre: tuple[float, float], supersample: int = 8
) -> np.ndarray:
    """One frame: shape ``kind`` (index into :data:`SHAPES`) of ``size`` at ``centre`` ``(x, y)`` (plot units) in
    ``colour`` (uint8 RGB) on black. Returns uint8 ``(3, 64, 64)``. Squares fill the pixels whose centre is inside;
    circles and triangles are antialiased by ``supersample x supersample`` coverage samples per pixel."""
    out = np.zeros((3, FRAME_SIZE, FRAME_SIZE), dtype=np.uint8)
    x, y, s = float(centre[0]), float(centre[1]), float(size)
    (c_lo, r_lo), (c_hi, r_hi) = units_to_pixels(np.array([[x - s, y + s], [x + s, y - s]]))
    c0, c1 = max(0, math.floor(c_lo)), min(FRAME_SIZE, math.ceil(c_hi))
    r0, r1 = max(0, math.floor(r_lo)), min(FRAME_SIZE, math.ceil(r_hi))
    if c0 >= c1 or r0 >= r1:
        return out  # entirely off the canvas
    k = 1 if kind == 1 else int(supersample)
    offsets = (np.arange(k) + 0.5) / k
    cols = (np.arange(c0, c1)[:, None] + offsets[None, :]).ravel()  # sample x in pixels
    rows = (np.arange(r0, r1)[:, None] + offsets[None, :]).ravel()  # sample y in pixels (down)
    ux = (cols - AXES_ORIGIN_PX) / PIXELS_PER_UNIT
    uy = (FRAME_SIZE - rows - AXES_ORIGIN_PX) / PIXELS_PER_UNIT
    mask = _inside(kind, ux[None, :], uy[:, None], x, y, s)
    coverage = mask.reshape(r1 - r0, k, c1 - c0, k).mean(axis=(1, 3))
    out[:, r0:r1, c0:c1] = np.rint(coverage[None] * np.asarray(colour, dtype=np.float64)[:, None, None])
    return out


def generate_stochastic_shapes(
    num_videos: int,
    seq_len: int,
    rng: Union[np.random.Generator, int],
    *,
    supersample: int = 8,
    return_params: bool = False,
):
    """Generate stochastic-shapes videos: uint8 ``(N, T, 3, 64, 64)`` (values / 255 are the frames).

    Args:
        num_videos: videos ``N`` (>= 0).
        seq_len: frames ``T`` in ``[1, 5]`` (frames ``0 .. T-1`` of t2t's 5-frame videos; later frames would show
            the shape off the canvas).
        rng: ``np.random.Generator`` (advanced in place) or an int seed. Draws directions ``(N,)``, colours
            ``(N,)``, shapes ``(N,)`` then sizes ``(N,)``.
        supersample: coverage samples per pixel side for circles and triangles (>= 1).
        return_params: also return the :class:`ShapesParams` of the videos.
    """
    n = check_int("num_videos", num_videos, 0)
    t_len = check_int("seq_len", seq_len, 1, VIDEO_LENGTH)
    check_int("supersample", supersample, 1)
    if not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng(check_int("rng (an integer seed or a numpy Generator)", rng, 0))
    direction = rng.integers(0, len(DIRECTIONS), size=n, dtype=np.int64)
    colour = rng.integers(0, len(COLOURS), size=n, dtype=np.int64)
    shape = rng.integers(0, len(SHAPES), size=n, dtype=np.int64)
    size = rng.uniform(SIZE_RANGE[0], SIZE_RANGE[1], size=n)
    start = np.full(2, LIMIT / 2.0)
    steps = np.arange(t_len, dtype=np.float64)[None, :, None]
    centre = start + SPEED * steps * DIRECTIONS[direction][:, None, :]  # (N, T, 2)
    videos = np.zeros((n, t_len, 3, FRAME_SIZE, FRAME_SIZE), dtype=np.uint8)
    for i in range(n):
        for t in range(t_len):
            videos[i, t] = render_shape(int(shape[i]), COLOURS[colour[i]], size[i], centre[i, t], supersample)
    if return_params:
        return videos, ShapesParams(direction, colour, shape, size, centre)
    return videos


class _ShapesBatcher:
    """Picklable ``make_batch(rng)`` of the training stream: float32 ``(B, T, 3, 64, 64)`` in [0, 1]."""

    def __init__(self, batch_size: int, seq_len: int, supersample: int) -> None:
        self.batch_size, self.seq_len, self.supersample = batch_size, seq_len, supersample

    def __call__(self, rng: np.random.Generator) -> torch.Tensor:
        return uint8_to_float(generate_stochastic_shapes(self.batch_size, self.seq_len, rng,
                                                         supersample=self.supersample))


class StochasticShapesDataModule(VideoDataModule):
    """The Stochastic Movement Dataset (t2t ``video_stochastic_shapes10k``) as a LightningDataModule.

    Batches are float32 ``(B, T, 3, 64, 64)`` in [0, 1]. See the module docstring for the generator.

    * **train**: an endless stream generated on the fly (batch ``i`` seeded by ``SeedSequence([seed, 0, rank, i])``,
      :class:`~vpzoo.data._common.BatchStream`); bound training with ``Trainer(max_steps=...)``.
    * **val / test**: fixed sets of ``num_val`` / ``num_test`` clips of ``eval_seq_len`` frames generated once with
      ``eval_seed`` (distinct streams for val and test) and cached as uint8 ``.npy`` under ``root`` (default
      ``$VPZOO_CACHE/stochastic_shapes``) with a JSON sidecar (options + sha256).

    Args:
        root: directory of the cached val/test sets (default ``$VPZOO_CACHE/stochastic_shapes``).
        batch_size: training batch size (t2t ``next_frame_glow_shapes``: 10).
        seq_len: training clip length in ``[2, 5]`` (VideoFlow shapes: 1 input + 2 targets = 3).
        eval_seq_len: val/test clip length in ``[2, 5]``.
        num_val: fixed validation clips.
        num_test: fixed test clips (909 = t2t's dev shard).
        supersample: coverage samples per pixel side for circles and triangles (8).
        eval_batch_size: val/test batch size (default: ``batch_size``).
        num_workers: DataLoader workers.
        seed: training-stream seed (>= 0).
        eval_seed: seed of the fixed val/test sets (>= 0).
        pin_memory, persistent_workers: DataLoader options.
    """

    channels: int = 3

    def __init__(
        self,
        root: Optional[str] = None,
        batch_size: int = 10,
        seq_len: int = 3,
        eval_seq_len: int = 3,
        num_val: int = 256,
        num_test: int = T2T_NUM_EVAL,
        supersample: int = 8,
        eval_batch_size: Optional[int] = None,
        num_workers: int = 0,
        seed: int = 0,
        eval_seed: int = 42,
        pin_memory: bool = False,
        persistent_workers: bool = False,
    ) -> None:
        super().__init__()
        check_path("root", root, optional=True)
        check_int("batch_size", batch_size, 1)
        check_int("seq_len", seq_len, 2, VIDEO_LENGTH)
        check_int("eval_seq_len", eval_seq_len, 2, VIDEO_LENGTH)
        check_int("num_val", num_val, 1)
        check_int("num_test", num_test, 1)
        check_int("supersample", supersample, 1)
        check_loader_options(eval_batch_size, num_workers, seed=seed, eval_seed=eval_seed)
        self.save_hyperparameters()
        self._store_loader_options(
            batch_size, eval_batch_size, num_workers, pin_memory, persistent_workers, seed=seed, eval_seed=eval_seed
        )
        self.root = Path(root) if root is not None else default_cache_dir("stochastic_shapes")
        self.seq_len = int(seq_len)
        self.eval_seq_len = int(eval_seq_len)
        self.num_val = int(num_val)
        self.num_test = int(num_test)
        self.supersample = int(supersample)

    # ---- data -----------------------------------------------------------------------------------------------
    def _eval_options(self, split: str) -> dict:
        return {
            "dataset": "stochastic_shapes",
            "generator_version": GENERATOR_VERSION,
            "split": split,
            "num_clips": self.num_test if split == "test" else self.num_val,
            "seq_len": self.eval_seq_len,
            "supersample": self.supersample,
            "eval_seed": self.eval_seed,
        }

    def cache_path(self, split: Literal["val", "test"]) -> Path:
        """Path of the cached uint8 ``.npy`` of the fixed ``split`` ("val" or "test") set."""
        if split not in ("val", "test"):
            raise ValueError(f"split must be 'val' or 'test', got {split!r}")
        return self.root / f"{split}-{options_hash(self._eval_options(split))}.npy"

    def generate_eval_set(self, split: Literal["val", "test"]) -> np.ndarray:
        """Generate the fixed ``split`` set (uint8 ``(N, eval_seq_len, 3, 64, 64)``) without touching the cache."""
        if split not in ("val", "test"):
            raise ValueError(f"split must be 'val' or 'test', got {split!r}")
        opts = self._eval_options(split)
        return generate_stochastic_shapes(opts["num_clips"], self.eval_seq_len, split_rng(self.eval_seed, split),
                                          supersample=self.supersample)

    def _ensure_eval_set(self, split: Literal["val", "test"]) -> Path:
        opts = self._eval_options(split)
        shape = (opts["num_clips"], self.eval_seq_len, 3, FRAME_SIZE, FRAME_SIZE)
        return ensure_cached_clips(self.cache_path(split), opts, shape, lambda: self.generate_eval_set(split))

    # ---- LightningDataModule hooks --------------------------------------------------------------------------
    def prepare_data(self) -> None:
        """Write the val/test caches if missing."""
        self._ensure_eval_set("val")
        self._ensure_eval_set("test")

    def _make_train_set(self) -> BatchStream:
        return BatchStream(_ShapesBatcher(self.batch_size, self.seq_len, self.supersample), self.seed, self._rank())

    def _make_eval_set(self, split: Literal["val", "test"]) -> UInt8ClipArray:
        return UInt8ClipArray(self._ensure_eval_set(split))
