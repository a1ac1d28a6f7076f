"""The pictures of `vpzoo predict`: every row, column and panel carries its label, the caption its metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from vpzoo.metrics import frame_metrics
from vpzoo.zoo.visualize import (
    prediction_gif_frames,
    prediction_grid,
    prediction_scores,
    render_label,
    write_prediction,
)

T_C, T_F, N = 3, 4, 2


@pytest.fixture(scope="module")
def clip():
    g = torch.Generator().manual_seed(0)
    context = torch.rand(T_C, 1, 16, 16, generator=g)
    samples = torch.rand(N, T_F, 1, 16, 16, generator=g)
    target = torch.rand(T_F, 1, 16, 16, generator=g)
    return context, samples, target


def assert_label(image: np.ndarray, boxes: dict, text: str, **render) -> None:
    """The label's box holds exactly the rendering of its text, which is not blank and differs from another text's."""
    y0, y1, x0, x1 = boxes[text]
    crop = image[y0:y1, x0:x1]
    expected = render_label(text, x1 - x0, y1 - y0, **render)
    blank = render_label("", x1 - x0, y1 - y0)
    assert np.array_equal(crop, expected), f"label {text!r} is not drawn where its box says"
    assert (crop != blank).any(axis=-1).sum() > 10 * len(text.replace(" ", "").replace("\n", "")) // 2, text
    assert not np.array_equal(expected, render_label(text + "x", x1 - x0, y1 - y0, **render))


def test_scores_are_the_metrics_of_each_sample(clip):
    context, samples, target = clip
    scores = prediction_scores(context, samples, target, "svg")
    direct = frame_metrics(samples, target[None].expand_as(samples), "svg")
    np.testing.assert_allclose(scores.psnr, direct["psnr"].double().numpy(), rtol=1e-6)
    np.testing.assert_allclose(scores.ssim, direct["ssim"].double().numpy(), rtol=1e-6)
    last = context[-1:][None].expand(1, T_F, 1, 16, 16)
    np.testing.assert_allclose(scores.copy_last_psnr, frame_metrics(last, target[None], "svg")["psnr"][0].numpy(),
                               rtol=1e-6)
    k, best = scores.best("psnr")
    assert best == pytest.approx(scores.psnr.mean(axis=1).max()) and k == int(scores.psnr.mean(axis=1).argmax())
    assert scores.first_frame == T_C + 1
    assert prediction_scores(context, samples, target[:0]) is None


def test_grid_labels_rows_columns_and_caption(clip):
    context, samples, target = clip
    scores = prediction_scores(context, samples, target)
    grid, boxes = prediction_grid(context, samples, target, scores=scores, title="my title", return_boxes=True)
    for text in ["context", "predicted", "frame", "my title"] + [str(t) for t in range(1, T_C + T_F + 1)]:
        assert_label(grid, boxes, text, **({"align": "center"} if text in ("context", "predicted") or
                                           text.isdigit() else {}))
    assert_label(grid, boxes, "ground truth")
    best = scores.best("psnr")[0]
    for i in range(N):
        text = (f"sample {i + 1}" + (" (best PSNR)" if i == best else "") +
                f"\nPSNR {scores.psnr[i].mean():.1f} dB\nSSIM {scores.ssim[i].mean():.3f}")
        assert_label(grid, boxes, text)
    caption = (f"vs ground truth ({T_F} frames, best of {N}, protocol 'standard'): PSNR "
               f"{scores.best('psnr')[1]:.2f} dB, SSIM {scores.best('ssim')[1]:.3f}")
    assert_label(grid, boxes, caption)
    # rows are in order: the "sample 2" label lies below "sample 1", the column numbers left to right
    ys = [boxes[t][0] for t in boxes if t.startswith(("ground truth", "sample"))]
    assert ys == sorted(ys) and len(ys) == N + 1
    xs = [boxes[str(t)][2] for t in range(1, T_C + T_F + 1)]
    assert xs == sorted(xs) and len(set(xs)) == T_C + T_F
    # rows are tall enough for their 3-line labels: 16-px frames are upscaled by pixel repetition
    y0, y1, x0, x1 = boxes["ground truth"][0], boxes["ground truth"][1], boxes["1"][2], boxes["1"][3]
    scale = (x1 - x0 - 4) // 16
    assert scale > 1 and y1 - y0 == x1 - x0 == 16 * scale + 4
    # the frames are there with their coloured borders: first context frame of the ground-truth row
    frame = grid[y0 + 2:y0 + 2 + 16 * scale:scale, x0 + 2:x0 + 2 + 16 * scale:scale, 0]
    np.testing.assert_allclose(frame / 255, context[0, 0].numpy(), atol=1 / 255)
    assert tuple(grid[y0, x0]) == (40, 170, 40)
    # 64-px frames are not scaled
    big = prediction_grid(context.repeat(1, 1, 4, 4), samples.repeat(1, 1, 1, 4, 4), target.repeat(1, 1, 4, 4),
                          return_boxes=True)[1]
    assert big["1"][3] - big["1"][2] == 68


def test_grid_without_ground_truth_says_so(clip):
    context, samples, _ = clip
    grid, boxes = prediction_grid(context, samples, None, return_boxes=True)
    assert_label(grid, boxes, "no ground truth for the predicted frames: no metrics")
    assert "sample 1" in boxes and "ground truth" in boxes


def test_unlabelled_grid_and_gif_keep_the_bare_layout(clip):
    context, samples, target = clip
    assert prediction_grid(context, samples, target, labels=False).shape == ((N + 1) * 20, (T_C + T_F) * 20, 3)
    assert prediction_gif_frames(context, samples, target, labels=False).shape == (T_C + T_F, 20, (N + 1) * 20, 3)


def test_gif_frames_name_panels_and_frame(clip):
    context, samples, target = clip
    frames, boxes = prediction_gif_frames(context, samples, target, title="t", return_boxes=True)
    assert frames.shape[0] == T_C + T_F
    scale = 6  # 16-px frames are scaled to at least 96 px
    panel = 16 * scale + 4
    assert frames.shape[2] >= (N + 1) * panel
    for t in (0, T_C + 1):
        names = (["context"] + [f"sample {i + 1}" for i in range(N)] if t < T_C else
                 ["ground truth"] + [f"sample {i + 1}" for i in range(N)])
        for i, name in enumerate(names):
            y0, y1, x0, x1 = boxes[t][f"panel {i}"]
            assert np.array_equal(frames[t, y0:y1, x0:x1], render_label(name, x1 - x0, y1 - y0, align="center"))
        what = "context (given to the model)" if t < T_C else "predicted"
        assert_label(frames[t], boxes[t], f"frame {t + 1} of {T_C + T_F}: {what}")
    # the predicted panel shows the sample, upscaled by pixel repetition
    y0 = boxes[T_C][f"panel 1"][1]
    shown = frames[T_C, y0 + 2:y0 + 2 + 16 * scale:scale, panel + 2:panel + 2 + 16 * scale:scale, 0]
    np.testing.assert_allclose(shown / 255, samples[0, 0, 0].numpy(), atol=1 / 255)


def test_write_prediction_writes_labelled_files_and_plot(clip, tmp_path):
    context, samples, target = clip
    gif, png = write_prediction(tmp_path / "p.gif", context, samples, target, protocol="svg",
                                plot_path=tmp_path / "plot.png", title="title")
    grid = np.asarray(Image.open(png).convert("RGB"))
    expected = prediction_grid(context, samples, target, scores=prediction_scores(context, samples, target, "svg"),
                               title="title")
    assert np.array_equal(grid, expected)
    plot = np.asarray(Image.open(tmp_path / "plot.png").convert("RGB"))
    assert plot.shape[0] > 200 and plot.shape[1] > 600
    assert (plot != 255).any(axis=-1).mean() > 0.02  # lines and text drawn, not an empty canvas
    with pytest.raises(ValueError, match="needs ground-truth frames"):
        write_prediction(tmp_path / "q.gif", context, samples, None, plot_path=tmp_path / "q.png")


def test_predict_cli_plot(tmp_path, capsys):
    from vpzoo.cli import main
    from vpzoo.io import write_gif
    from vpzoo.models import CopyLast

    model = CopyLast(image_size=16, channels=1, n_past=2).save_pretrained(tmp_path / "copy")
    write_gif(tmp_path / "clip.gif", torch.rand(6, 1, 16, 16, generator=torch.Generator().manual_seed(3)))
    assert main(["predict", str(model), "--input", str(tmp_path / "clip.gif"), "--n-future", "3", "--num-samples",
                 "1", "--out", str(tmp_path / "p.gif"), "--plot"]) == 0
    assert f"and {tmp_path / 'p_metrics.png'}" in capsys.readouterr().out
    assert Image.open(tmp_path / "p_metrics.png").size[0] > 600
    with pytest.raises(SystemExit):  # all 6 frames are context: no ground truth to compare with
        main(["predict", str(model), "--input", str(tmp_path / "clip.gif"), "--context", "6", "--plot",
              "--out", str(tmp_path / "q.gif")])
    assert "--plot compares the samples with the ground truth" in capsys.readouterr().err


def test_end_frame_is_a_labelled_orange_column_and_panel(clip):
    context, samples, target = clip
    end = torch.rand(1, 16, 16, generator=torch.Generator().manual_seed(7))
    label, key = "end frame (target)", "borders: green context, blue ground truth, red predicted"
    grid, boxes = prediction_grid(context, samples, target, return_boxes=True, end_frame=end)
    assert_label(grid, boxes, label, align="center")
    assert_label(grid, boxes, key + ", orange end frame (target)", ink=(90, 90, 90))  # the key: the last, grey line
    # the column lies right of the last time step and holds the end frame, framed orange, in every row
    y0, y1, x0, x1 = boxes[label]
    assert x0 > boxes[str(T_C + T_F)][3]
    panel = boxes["1"][3] - boxes["1"][2]
    scale = (panel - 4) // 16
    ys, xs = np.nonzero((grid == (240, 150, 20)).all(axis=-1))
    assert (ys.max() + 1 - ys.min(), xs.max() + 1 - xs.min()) == ((N + 1) * panel, panel)
    assert ys.min() == boxes["ground truth"][0] and x0 <= xs.min() and xs.max() < x1
    for r in range(N + 1):
        top, left = ys.min() + r * panel + 2, xs.min() + 2
        shown = grid[top:top + 16 * scale:scale, left:left + 16 * scale:scale, 0]
        np.testing.assert_allclose(shown / 255, end[0].numpy(), atol=1 / 255)
    # without an end frame: no such column, and the border key does not mention orange
    plain, plain_boxes = prediction_grid(context, samples, target, return_boxes=True)
    assert label not in plain_boxes and key in plain_boxes
    assert not (plain == (240, 150, 20)).all(axis=-1).any()
    # the GIF: panel N + 1 is the end frame, named in every frame
    frames, gif_boxes = prediction_gif_frames(context, samples, target, return_boxes=True, end_frame=end)
    for t in (0, T_C + 1):
        y0, y1, x0, x1 = gif_boxes[t][f"panel {N + 1}"]
        assert np.array_equal(frames[t, y0:y1, x0:x1], render_label(label, x1 - x0, y1 - y0, align="center"))
        assert x0 >= gif_boxes[t][f"panel {N}"][3]
        assert_label(frames[t], gif_boxes[t], key + ", orange end frame (target)", ink=(90, 90, 90))
        ys, xs = np.nonzero((frames[t] == (240, 150, 20)).all(axis=-1))
        assert x0 <= xs.min() and xs.max() < x1 and ys.min() == y1
        shown = frames[t, ys.min() + 2:ys.min() + 2 + 96:6, xs.min() + 2:xs.min() + 2 + 96:6, 0]
        np.testing.assert_allclose(shown / 255, end[0].numpy(), atol=1 / 255)
    # the bare layout gains one column / panel
    assert prediction_grid(context, samples, target, labels=False, end_frame=end).shape == (
        (N + 1) * 20, (T_C + T_F + 1) * 20, 3)
    assert prediction_gif_frames(context, samples, target, labels=False, end_frame=end).shape == (
        T_C + T_F, 20, (N + 2) * 20, 3)


def test_write_prediction_shows_and_checks_the_end_frame(clip, tmp_path):
    context, samples, target = clip
    end = torch.rand(1, 16, 16, generator=torch.Generator().manual_seed(8))
    gif, png = write_prediction(tmp_path / "p.gif", context, samples, target, end_frame=end, title="goal")
    expected = prediction_grid(context, samples, target, title="goal", end_frame=end)
    assert np.array_equal(np.asarray(Image.open(png).convert("RGB")), expected)
    for bad, error, match in ((end[None], ValueError, r"\(C, H, W\) = \(1, 16, 16\).*got shape \(1, 1, 16, 16\)"),
                              (torch.rand(3, 16, 16), ValueError, r"got shape \(3, 16, 16\)"),
                              (torch.rand(1, 8, 8), ValueError, r"got shape \(1, 8, 8\)"),
                              (end.numpy(), TypeError, "must be a torch.Tensor.*got ndarray"),
                              (torch.zeros(1, 16, 16, dtype=torch.uint8), TypeError, "floating-point.*uint8")):
        with pytest.raises(error, match=match):
            write_prediction(tmp_path / "bad.gif", context, samples, target, end_frame=bad)
        assert not (tmp_path / "bad.gif").exists() and not (tmp_path / "bad.png").exists()


def test_slow_motion_shows_the_truth_and_scores_at_whole_frames(clip, tmp_path):
    """steps_per_frame K (``vpzoo predict --fps-factor K``): columns numbered in frame units, the ground truth beside
    every K-th sample frame (the others blank), metrics of the whole frames only."""
    context, samples, target = clip
    k = 2
    fine = samples.repeat_interleave(k, dim=1)  # (N, T_F * 2, ...): frame j at time (j + 1)/2
    fine[:, 0::2] = 1 - fine[:, 0::2]  # the half-interval frames differ from the whole ones
    scores = prediction_scores(context, samples, target)
    grid, boxes = prediction_grid(context, fine, target, return_boxes=True, steps_per_frame=k)
    for label in ("3.5", "4", "4.5", "5", "6.5", "7"):
        assert_label(grid, boxes, label, align="center")
    assert "3" in boxes and "8" not in boxes
    assert_label(grid, boxes, "2 predicted frames per frame interval: ground truth and metrics at the whole frames")
    best = " (best PSNR)" if scores.best("psnr")[0] == 0 else ""  # the row's metrics are those of the whole frames
    assert_label(grid, boxes, f"sample 1{best}\nPSNR {scores.psnr[0].mean():.1f} dB\nSSIM {scores.ssim[0].mean():.3f}")
    bare = prediction_grid(context, fine, target, labels=False, steps_per_frame=k)
    panel = 20
    truth_row = bare[:panel]
    for j in range(T_F * k):
        x = (T_C + j) * panel
        inner = truth_row[2:18, x + 2:x + 18, 0]
        if (j + 1) % k:
            assert (inner == 45).all()  # no ground truth at a half interval
        else:
            np.testing.assert_allclose(inner / 255, target[(j + 1) // k - 1, 0].numpy(), atol=1 / 255)
    frames, gif_boxes = prediction_gif_frames(context, fine, target, return_boxes=True, steps_per_frame=k)
    assert frames.shape[0] == T_C + T_F * k
    assert_label(frames[T_C], gif_boxes[T_C], f"frame 3.5 of {T_C + T_F}: predicted")
    assert_label(frames[T_C + 1], gif_boxes[T_C + 1], f"frame 4 of {T_C + T_F}: predicted")
    gif, png = write_prediction(tmp_path / "slow.gif", context, fine, target, steps_per_frame=k,
                                plot_path=tmp_path / "plot.png")
    assert np.array_equal(np.asarray(Image.open(png).convert("RGB")),
                          prediction_grid(context, fine, target, scores=scores, steps_per_frame=k))
    with pytest.raises(ValueError, match="not a whole number of frame intervals"):
        prediction_grid(context, fine[:, :-1], target, steps_per_frame=k)
    with pytest.raises(ValueError, match="steps_per_frame must be an integer >= 1"):
        write_prediction(tmp_path / "x.gif", context, fine, target, steps_per_frame=0)


def test_write_image_grid_lays_out_images_in_order_and_refuses_bad_input(tmp_path):
    from vpzoo.zoo.visualize import write_image_grid

    images = torch.zeros(5, 3, 4, 6)
    for i in range(5):
        images[i, i % 3] = (i + 1) / 5  # image i: channel i % 3 at (i + 1) / 5
    path = write_image_grid(tmp_path / "sub" / "g.png", images, nrow=3)
    grid = np.asarray(Image.open(path))
    assert grid.shape == (2 * 6 + 2, 3 * 8 + 2, 3)  # 2 rows x 3 columns of 4x6 images, 2-px borders
    for i in range(5):
        row, col = divmod(i, 3)
        pixel = grid[2 + row * 6 + 1, 2 + col * 8 + 1]
        expected = np.zeros(3)
        expected[i % 3] = round((i + 1) / 5 * 255)
        assert np.array_equal(pixel, expected), (i, pixel)
    assert np.array_equal(grid[0, 0], [64, 64, 64]) and np.array_equal(grid[-1, -1], [64, 64, 64])  # round(0.25*255)
    grey = np.asarray(Image.open(write_image_grid(tmp_path / "grey.png", torch.full((2, 1, 3, 3), 0.5), nrow=2)))
    assert grey.shape == (7, 12, 3) and (grey[2:5, 2:5] == 128).all()
    for bad, match in ((torch.zeros(2, 2, 3, 3), "C in"), (torch.zeros(3, 3, 3), r"\(N >= 1"),
                       (torch.full((1, 1, 2, 2), 1.5), r"in \[0, 1\]"), (torch.zeros(1, 1, 2, 2, dtype=torch.uint8),
                                                                          "finite floats")):
        with pytest.raises(ValueError, match=match):
            write_image_grid(tmp_path / "bad.png", bad, nrow=1)
    with pytest.raises(ValueError, match="nrow must be at least 1"):
        write_image_grid(tmp_path / "bad.png", images, nrow=0)
    assert not (tmp_path / "bad.png").exists()
