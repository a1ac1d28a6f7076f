"""The Stochastic Movement Dataset (t2t video_stochastic_shapes10k): generator rule and DataModule."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vpzoo.data import StochasticShapesDataModule, generate_stochastic_shapes
from vpzoo.data.stochastic_shapes import (
    COLOURS,
    DIRECTIONS,
    PIXELS_PER_UNIT,
    SHAPES,
    render_shape,
    units_to_pixels,
)


def _centroid(frame: np.ndarray) -> np.ndarray:
    """Intensity-weighted centre ``(column, row)`` of the pixel centres of a uint8 ``(3, H, W)`` frame."""
    w = frame.astype(np.float64).sum(0)
    rows, cols = np.indices(w.shape) + 0.5
    return np.array([(w * cols).sum(), (w * rows).sum()]) / w.sum()


def test_frames_are_64x64_rgb_uint8_on_black():
    videos, params = generate_stochastic_shapes(12, 5, 0, return_params=True)
    assert videos.shape == (12, 5, 3, 64, 64) and videos.dtype == np.uint8
    for v in videos:
        assert (v[0] > 0).any()  # frame 0: the shape at the centre
        assert v[0, :, 0, 0].tolist() == [0, 0, 0]  # black corners
        assert v[0, :, 32, 32].tolist() != [0, 0, 0]  # the centre pixel is inside every shape at frame 0
    assert np.all((params.size >= 0.5) & (params.size < 1.5))
    np.testing.assert_array_equal(params.centre[:, 0], np.full((12, 2), 5.0))


def test_generator_is_deterministic_by_seed():
    a, pa = generate_stochastic_shapes(6, 3, 7, return_params=True)
    b, pb = generate_stochastic_shapes(6, 3, np.random.default_rng(7), return_params=True)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(pa.direction, pb.direction)
    c = generate_stochastic_shapes(6, 3, 8)
    assert not np.array_equal(a, c)


def test_shape_moves_one_unit_per_frame_along_its_direction_and_keeps_shape_and_colour():
    videos, p = generate_stochastic_shapes(40, 4, 3, return_params=True)
    for i in range(len(videos)):
        d = DIRECTIONS[p.direction[i]]
        # the drawn positions: 1 plot unit per frame along each moving axis (t2t speed 1)
        np.testing.assert_allclose(np.diff(p.centre[i], axis=0), np.tile(d, (3, 1)))
        colour = COLOURS[p.colour[i]]
        frames = videos[i, :3]  # frames 0-2 are fully on the canvas for every size
        # one colour: every lit pixel is a multiple of the same RGB (coverage x colour)
        lit = frames.transpose(0, 2, 3, 1).reshape(-1, 3)
        lit = lit[lit.any(1)].astype(np.float64)
        scale = lit.max(1, keepdims=True) / colour.max()
        np.testing.assert_allclose(lit, scale * colour, atol=1.0)
        assert (frames.transpose(0, 2, 3, 1) == colour).all(-1).sum((1, 2)).min() > 0  # fully covered pixels
        # same shape: the same area at every frame, up to one row and one column of edge pixels (a square snaps to
        # the pixel grid, so its side in pixels may change by one between frames, as matplotlib's does)
        areas = frames.astype(np.float64).sum((1, 2, 3)) / colour.sum()
        assert areas.max() - areas.min() <= 2 * math.sqrt(areas.max()) + 1
        # the drawing moved by PIXELS_PER_UNIT (~8.18 px) per frame along the direction (rows grow downwards)
        # (a circle's or square's centroid is its position; a triangle's is a fixed offset from it: same steps)
        step = np.diff([_centroid(f) for f in frames], axis=0)
        np.testing.assert_allclose(step, np.tile(d * [1, -1] * PIXELS_PER_UNIT, (2, 1)), atol=0.6)


def test_square_is_the_pixels_whose_centre_is_inside_and_the_triangle_points_up():
    frame = render_shape(SHAPES.index("square"), COLOURS[2], 1.0, (5.0, 5.0))
    (c0, r0), (c1, r1) = units_to_pixels(np.array([[4.0, 6.0], [6.0, 4.0]]))
    lit = np.argwhere(frame[0] > 0)
    assert lit[:, 0].min() == math.ceil(r0 - 0.5) and lit[:, 0].max() == math.ceil(r1 - 0.5) - 1
    assert lit[:, 1].min() == math.ceil(c0 - 0.5) and lit[:, 1].max() == math.ceil(c1 - 0.5) - 1
    assert set(np.unique(frame[0]).tolist()) == {0, 255} and frame[1:].max() == 0
    # reference: t2t's drawing code run with matplotlib 3.11 (Agg) fills rows and columns 24-39 for this square, and
    # rows 9-20, columns 12-23 for a square of size 0.77 at (3.3, 7.1) (the axes overhang the 64-px canvas by 80/9 px)
    assert (lit.min(0).tolist(), lit.max(0).tolist()) == ([24, 24], [39, 39])
    small = np.argwhere(render_shape(SHAPES.index("square"), COLOURS[2], 0.77, (3.3, 7.1))[0] > 0)
    assert (small.min(0).tolist(), small.max(0).tolist()) == ([9, 12], [20, 23])
    tri = render_shape(SHAPES.index("triangle"), COLOURS[0], 1.5, (5.0, 5.0)).astype(np.float64).sum(0)
    rows = np.argwhere(tri > 0)[:, 0]
    widths = [(tri[r] > 0).sum() for r in range(rows.min(), rows.max() + 1)]
    assert widths[0] < widths[-1]  # narrow at the top (apex), wide at the bottom (base)
    circle = render_shape(SHAPES.index("circle"), COLOURS[1], 1.0, (5.0, 5.0)).astype(np.float64)
    area = circle[1].sum() / 128.0
    assert area == pytest.approx(math.pi * PIXELS_PER_UNIT**2, rel=0.01)


def test_all_eight_directions_colours_and_shapes_appear():
    _, p = generate_stochastic_shapes(400, 2, 11, return_params=True)
    assert set(p.direction.tolist()) == set(range(8))
    assert set(p.colour.tolist()) == set(range(6))
    assert set(p.shape.tolist()) == set(range(3))
    counts = np.bincount(p.direction, minlength=8)
    assert counts.min() > 25 and counts.max() < 80  # uniform: 50 each


def test_datamodule_batches_and_fixed_eval_sets(tmp_path):
    dm = StochasticShapesDataModule(root=str(tmp_path), batch_size=4, seq_len=3, eval_seq_len=5, num_val=6,
                                    num_test=5, eval_batch_size=3, seed=1)
    dm.prepare_data()
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch.shape == (4, 3, 3, 64, 64) and batch.dtype == torch.float32
    assert 0.0 <= batch.min() and batch.max() <= 1.0 and batch.max() > 0
    # the training stream is seeded per batch position
    assert torch.equal(dm.train_set.batch_at(5), dm.train_set.batch_at(5))
    assert not torch.equal(dm.train_set.batch_at(5), dm.train_set.batch_at(6))
    other = StochasticShapesDataModule(root=str(tmp_path), batch_size=4, seq_len=3, seed=2)
    other.setup("fit")
    assert not torch.equal(other.train_set.batch_at(0), dm.train_set.batch_at(0))
    val = next(iter(dm.val_dataloader()))
    assert val.shape == (3, 5, 3, 64, 64)
    dm.setup("test")
    test = torch.cat(list(dm.test_dataloader()))
    assert test.shape == (5, 5, 3, 64, 64)
    # fixed: the same clips again from a fresh module (cache) and from the generator (no cache); val != test
    again = StochasticShapesDataModule(root=str(tmp_path / "elsewhere"), eval_seq_len=5, num_val=6, num_test=5)
    np.testing.assert_array_equal(again.generate_eval_set("test"), np.rint(test.numpy() * 255).astype(np.uint8))
    assert not torch.equal(val, test[:3])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(seq_len=6), "seq_len must be in \\[2, 5\\], got 6"),
        (dict(eval_seq_len=1), "eval_seq_len must be in \\[2, 5\\], got 1"),
        (dict(batch_size=0), "batch_size must be >= 1, got 0"),
        (dict(num_test=2.5), "num_test must be an integer"),
        (dict(supersample=0), "supersample must be >= 1"),
        (dict(seed=-1), "seed must be >= 0"),
        (dict(root=3), "root must be a directory path"),
    ],
)
def test_bad_arguments_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        StochasticShapesDataModule(**kwargs)


def test_generator_rejects_bad_input():
    with pytest.raises(ValueError, match="seq_len must be in \\[1, 5\\], got 6"):
        generate_stochastic_shapes(1, 6, 0)
    with pytest.raises(ValueError, match="num_videos must be an integer"):
        generate_stochastic_shapes("3", 2, 0)
    with pytest.raises(ValueError, match="rng"):
        generate_stochastic_shapes(1, 2, "seed")
    with pytest.raises(ValueError, match="split must be 'val' or 'test'"):
        StochasticShapesDataModule().generate_eval_set("train")


def test_vpzoo_data_prepare_writes_the_fixed_sets(tmp_path, capsys):
    from vpzoo.data.prepare import main

    assert main(["list"]) == 0 and "stochastic_shapes" in capsys.readouterr().out
    assert main(["prepare", "stochastic_shapes", "--root", str(tmp_path), "--num-val", "3", "--num-test", "2"]) == 0
    capsys.readouterr()
    dm = StochasticShapesDataModule(root=str(tmp_path), num_val=3, num_test=2)
    for split in ("val", "test"):
        stored = np.load(dm.cache_path(split))
        assert stored.shape == (3 if split == "val" else 2, 3, 3, 64, 64)
        np.testing.assert_array_equal(stored, dm.generate_eval_set(split))
    assert main(["prepare", "stochastic_shapes", "--root", str(tmp_path), "--eval-seq-len", "6"]) == 1
    assert "eval_seq_len must be in [2, 5], got 6" in capsys.readouterr().err
