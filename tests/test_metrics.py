"""Tests of vpzoo.metrics: PSNR/SSIM against scikit-image, protocols, sample aggregation and its DDP sync."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import socket
import subprocess
import sys
import warnings
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as tmp

from vpzoo.metrics import (
    MetricProtocol,
    SampleAggregatedMetric,
    available_protocols,
    frame_metrics,
    get_protocol,
    psnr,
    reduce_samples,
    ssim,
)

skimage_metrics = pytest.importorskip("skimage.metrics")

TOL = 1e-5


# ------------------------------------------------------------------------------------------------ references
def sk_ssim(pred: torch.Tensor, target: torch.Tensor, data_range: float, win_size: int = 7) -> np.ndarray:
    """scikit-image SSIM of every frame of (B, T, C, H, W) float64 videos, one frame at a time."""
    p, t = pred.double().numpy(), target.double().numpy()
    out = np.empty(p.shape[:2])
    for b in range(p.shape[0]):
        for i in range(p.shape[1]):
            out[b, i] = skimage_metrics.structural_similarity(
                t[b, i], p[b, i], data_range=data_range, win_size=win_size, channel_axis=0
            )
    return out


def sk_psnr(pred: torch.Tensor, target: torch.Tensor, data_range: float) -> np.ndarray:
    p, t = pred.double().numpy(), target.double().numpy()
    out = np.empty(p.shape[:2])
    with warnings.catch_warnings(), np.errstate(divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        for b in range(p.shape[0]):
            for i in range(p.shape[1]):
                out[b, i] = skimage_metrics.peak_signal_noise_ratio(t[b, i], p[b, i], data_range=data_range)
    return out


# ---------------------------------------------------------------------------------------- structured images
def _grid(h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h, dtype=torch.float64), torch.linspace(0, 1, w, dtype=torch.float64),
                            indexing="ij")
    return yy, xx


def smooth_image(h: int, w: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    yy, xx = _grid(h, w)
    img = torch.zeros(h, w, dtype=torch.float64)
    for _ in range(4):
        cy, cx, s = torch.rand(3, generator=g, dtype=torch.float64)
        img += torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (0.02 + 0.1 * s))
    img += 0.3 * torch.sin(6 * xx + 3 * yy)
    return (img - img.min()) / (img.max() - img.min())


def digit_like(h: int, w: int, seed: int) -> torch.Tensor:
    """Binary {0, 1} strokes on a black background, like a thresholded MNIST digit."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = _grid(h, w)
    img = torch.zeros(h, w, dtype=torch.float64)
    cy, cx = 0.5 + 0.1 * (torch.rand(2, generator=g, dtype=torch.float64) - 0.5)
    ring = ((yy - cy) ** 2 + (xx - cx) ** 2).sqrt()
    img[(ring > 0.18) & (ring < 0.28)] = 1.0  # a "0"
    col = int(w * (0.3 + 0.4 * float(torch.rand(1, generator=g))))
    img[h // 5 : 4 * h // 5, col : col + max(2, w // 12)] = 1.0  # a "1" stroke
    return img


def structured_pairs(c: int, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B=1, T, C, H, W) pairs covering gradients, shifted/noised smooth images, binary digits, flat frames."""
    g = torch.Generator().manual_seed(1234)
    yy, xx = _grid(h, w)
    chans_p, chans_t = [], []
    for ch in range(c):
        smooth = smooth_image(h, w, seed=ch)
        digit = digit_like(h, w, seed=ch)
        noise = torch.randn(h, w, generator=g, dtype=torch.float64)
        pairs = [
            (xx, yy),  # horizontal vs vertical gradient
            (xx, (xx + 0.05 * noise)),  # gradient vs noisy gradient
            (0.5 * xx + 0.5 * yy, 0.5 * xx + 0.5 * yy),  # identical diagonal gradient
            (smooth, torch.roll(smooth, shifts=(2, 3), dims=(0, 1))),  # shifted copy
            (smooth, smooth + 0.1 * noise),  # noised copy
            (smooth, 0.8 * smooth + 0.1),  # contrast/brightness change
            (digit, torch.roll(digit, shifts=(1, -2), dims=(0, 1))),  # shifted binary digit
            (digit, torch.zeros_like(digit)),  # digit vs black frame
            (torch.full((h, w), 0.3, dtype=torch.float64), torch.full((h, w), 0.7, dtype=torch.float64)),  # flat
            (torch.zeros(h, w, dtype=torch.float64), torch.zeros(h, w, dtype=torch.float64)),  # identical black
        ]
        chans_p.append(torch.stack([p for p, _ in pairs]))
        chans_t.append(torch.stack([t for _, t in pairs]))
    pred = torch.stack(chans_p, dim=1)[None].clamp(0, 1)  # (1, T, C, H, W)
    target = torch.stack(chans_t, dim=1)[None].clamp(0, 1)
    return pred, target


def random_pairs(
    b: int, t: int, c: int, h: int, w: int, seed: int, scale: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    target = torch.rand(b, t, c, h, w, generator=g, dtype=torch.float64)
    pred = (target + 0.2 * torch.randn(b, t, c, h, w, generator=g, dtype=torch.float64)).clamp(0, 1)
    pred[:, 0] = torch.rand(b, c, h, w, generator=g, dtype=torch.float64)  # an unrelated frame too
    return pred * scale, target * scale


# ---------------------------------------------------------------------------------------------------- SSIM
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("data_range", [1.0, 2.0])
def test_ssim_matches_skimage_random(channels: int, data_range: float) -> None:
    pred, target = random_pairs(2, 3, channels, 32, 27, seed=channels)
    ours = ssim(pred, target, data_range=data_range)
    assert ours.shape == (2, 3) and ours.dtype == torch.float64
    np.testing.assert_allclose(ours.numpy(), sk_ssim(pred, target, data_range), rtol=0, atol=TOL)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("data_range", [1.0, 2.0])
def test_ssim_matches_skimage_structured(channels: int, data_range: float) -> None:
    pred, target = structured_pairs(channels, 40, 36)
    ours = ssim(pred, target, data_range=data_range)
    ref = sk_ssim(pred, target, data_range)
    np.testing.assert_allclose(ours.numpy(), ref, rtol=0, atol=TOL)
    assert np.ptp(ref) > 0.5  # the cases really span a range of SSIM values


def test_ssim_matches_skimage_data_range_255_and_float32_input() -> None:
    pred, target = random_pairs(1, 2, 3, 24, 24, seed=7, scale=255.0)
    ours = ssim(pred, target, data_range=255)
    np.testing.assert_allclose(ours.numpy(), sk_ssim(pred, target, 255.0), atol=TOL, rtol=0)
    pred32, target32 = random_pairs(2, 2, 1, 20, 20, seed=8)
    pred32, target32 = pred32.float(), target32.float()
    ours = ssim(pred32, target32)
    assert ours.dtype == torch.float32
    # float32 inputs are upcast exactly, so the reference is skimage on the same values in float64
    np.testing.assert_allclose(ours.numpy(), sk_ssim(pred32, target32, 1.0), atol=TOL, rtol=0)


@pytest.mark.parametrize("win_size", [3, 11])
def test_ssim_other_window_sizes(win_size: int) -> None:
    pred, target = random_pairs(1, 2, 2, 23, 19, seed=win_size)
    np.testing.assert_allclose(
        ssim(pred, target, win_size=win_size).numpy(), sk_ssim(pred, target, 1.0, win_size), atol=TOL, rtol=0
    )


def test_ssim_window_equal_to_image_size() -> None:
    pred, target = random_pairs(1, 1, 1, 7, 9, seed=3)
    np.testing.assert_allclose(ssim(pred, target).numpy(), sk_ssim(pred, target, 1.0), atol=TOL, rtol=0)


def test_ssim_many_frames_across_chunks() -> None:
    # more frames than one CPU chunk holds (2**16 elements = 16 frames of 64x64), so chunk seams are exercised
    pred, target = random_pairs(3, 7, 1, 64, 64, seed=11)
    ours = ssim(pred, target)
    np.testing.assert_allclose(ours.numpy(), sk_ssim(pred, target, 1.0), atol=TOL, rtol=0)
    per_frame = torch.stack([ssim(pred[:, i : i + 1], target[:, i : i + 1])[:, 0] for i in range(7)], dim=1)
    torch.testing.assert_close(ours, per_frame, rtol=0, atol=1e-12)


def test_ssim_properties_and_gradient() -> None:
    pred, target = random_pairs(2, 2, 1, 16, 16, seed=5)
    torch.testing.assert_close(ssim(target, target), torch.ones(2, 2, dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(ssim(pred, target), ssim(target, pred), rtol=0, atol=1e-12)
    pred_g = pred.clone().requires_grad_(True)
    value = ssim(pred_g, target)
    torch.testing.assert_close(value.detach(), ssim(pred, target), rtol=0, atol=1e-12)  # autograd path agrees
    value.sum().backward()
    assert pred_g.grad is not None and torch.isfinite(pred_g.grad).all() and pred_g.grad.abs().sum() > 0


def test_ssim_compiled_matches_skimage_and_eager() -> None:
    # compile=True runs the same float64 formula through torch.compile (shifted-add box filter, fused loops)
    import vpzoo.metrics.frame as frame

    structured_p, structured_t = structured_pairs(3, 40, 36)
    rand_p, rand_t = random_pairs(3, 7, 1, 64, 64, seed=11)
    for pred, target, data_range in ((structured_p, structured_t, 2.0), (rand_p, rand_t, 1.0)):
        compiled = ssim(pred, target, data_range=data_range, compile=True)
        assert not frame._compile_failed, "torch.compile fell back to eager on this machine"
        assert compiled.shape == pred.shape[:2] and compiled.dtype == torch.float64
        np.testing.assert_allclose(compiled.numpy(), sk_ssim(pred, target, data_range), rtol=0, atol=TOL)
        torch.testing.assert_close(compiled, ssim(pred, target, data_range=data_range), rtol=0, atol=1e-12)
    # odd leftovers: more frames than one compiled chunk holds, and a last chunk of a different size
    old = frame._COMPILED_CHUNK_ELEMENTS
    frame._COMPILED_CHUNK_ELEMENTS = 5 * 64 * 64
    try:
        chunked = ssim(rand_p, rand_t, compile=True)
    finally:
        frame._COMPILED_CHUNK_ELEMENTS = old
    torch.testing.assert_close(chunked, ssim(rand_p, rand_t), rtol=0, atol=1e-12)
    with pytest.raises(TypeError, match="compile must be a bool"):
        ssim(rand_p, rand_t, compile="yes")  # type: ignore[arg-type]


def test_ssim_compile_falls_back_to_eager_without_a_compiler(tmp_path: Path) -> None:
    # a machine without a C++ compiler: torch.compile fails, ssim warns and returns the eager values
    code = (
        "import warnings, torch\n"
        "from vpzoo.metrics import ssim\n"
        "g = torch.Generator().manual_seed(0)\n"
        "x, y = torch.rand(2, 3, 1, 16, 16, generator=g), torch.rand(2, 3, 1, 16, 16, generator=g)\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    value = ssim(x, y, compile=True)\n"
        "assert torch.equal(value, ssim(x, y)), (value, ssim(x, y))\n"
        "messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]\n"
        "assert any('computing SSIM eagerly' in m for m in messages), messages\n"
        "print('fallback ok')\n"
    )
    env = dict(os.environ, CXX=str(tmp_path / "no-such-compiler"), TORCHINDUCTOR_CACHE_DIR=str(tmp_path / "cache"))
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "fallback ok" in result.stdout


# ---------------------------------------------------------------------------------------------------- PSNR
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("data_range", [1.0, 2.0])
def test_psnr_matches_skimage(channels: int, data_range: float) -> None:
    pred, target = random_pairs(2, 3, channels, 16, 12, seed=20 + channels)
    structured_p, structured_t = structured_pairs(channels, 16, 12)
    for p, t in ((pred, target), (structured_p, structured_t)):
        ours = psnr(p, t, data_range=data_range)
        ref = sk_psnr(p, t, data_range)
        assert ours.shape == p.shape[:2]
        finite = np.isfinite(ref)
        np.testing.assert_array_equal(np.isfinite(ours.numpy()), finite)
        np.testing.assert_allclose(ours.numpy()[finite], ref[finite], atol=TOL, rtol=0)


def test_psnr_identical_frames_is_inf_like_skimage() -> None:
    pred, target = random_pairs(1, 2, 1, 8, 8, seed=1)
    pred[:, 1] = target[:, 1]
    ours = psnr(pred, target)
    assert math.isfinite(ours[0, 0].item()) and ours[0, 1].item() == math.inf
    assert sk_psnr(pred, target, 1.0)[0, 1] == math.inf
    assert psnr(pred.float(), target.float()).dtype == torch.float32


# ---------------------------------------------------------------------------------------------- validation
@pytest.mark.parametrize("fn", [psnr, ssim, frame_metrics])
def test_bad_inputs_raise(fn) -> None:
    good = torch.rand(1, 2, 1, 8, 8)
    with pytest.raises(ValueError, match=r"5-D.*got 4-D"):
        fn(good[0], good[0])
    with pytest.raises(ValueError, match=r"same shape.*\(1, 2, 1, 8, 8\).*\(1, 2, 1, 8, 9\)"):
        fn(good, torch.rand(1, 2, 1, 8, 9))
    with pytest.raises(TypeError, match=r"torch.Tensor, got numpy.ndarray"):
        fn(good.numpy(), good)
    with pytest.raises(TypeError, match="real"):
        fn(good > 0.5, good > 0.5)


def test_ssim_bad_arguments_raise() -> None:
    x = torch.rand(1, 1, 1, 6, 10)
    with pytest.raises(ValueError, match=r"at least 7x7.*H=6, W=10"):
        ssim(x, x)
    y = torch.rand(1, 1, 1, 10, 10)
    with pytest.raises(ValueError, match="odd"):
        ssim(y, y, win_size=4)
    with pytest.raises(TypeError, match="win_size"):
        ssim(y, y, win_size=7.0)
    for bad in (0, -1.0, float("inf")):
        with pytest.raises(ValueError, match="data_range"):
            ssim(y, y, data_range=bad)
        with pytest.raises(ValueError, match="data_range"):
            psnr(y, y, data_range=bad)
    with pytest.raises(TypeError, match="data_range"):
        psnr(y, y, data_range="1")


# ---------------------------------------------------------------------------------------------- protocols
def test_protocols() -> None:
    std, svg = get_protocol("standard"), get_protocol("svg")
    assert (std.ssim_data_range, std.psnr_data_range, std.ssim_win_size) == (1.0, 1.0, 7)
    assert (svg.ssim_data_range, svg.psnr_data_range, svg.ssim_win_size) == (2.0, 1.0, 7)
    assert {"standard", "svg"} <= set(available_protocols())
    assert get_protocol(svg) is svg
    record = json.loads(json.dumps(dataclasses.asdict(svg)))
    assert record == svg.to_dict() and MetricProtocol(**record) == svg
    with pytest.raises(dataclasses.FrozenInstanceError):
        svg.ssim_data_range = 1.0  # type: ignore[misc]
    with pytest.raises(ValueError, match=r"unknown metric protocol 'nope'.*'standard'.*'svg'"):
        get_protocol("nope")
    with pytest.raises(ValueError, match="ssim_win_size"):
        MetricProtocol("bad", 1.0, 1.0, ssim_win_size=6)


def test_frame_metrics_under_protocols() -> None:
    pred, target = random_pairs(2, 2, 3, 16, 16, seed=31)
    std = frame_metrics(pred, target)
    svg = frame_metrics(pred, target, protocol="svg")
    assert set(std) == {"psnr", "ssim"} and std["ssim"].shape == (2, 2)
    np.testing.assert_allclose(std["ssim"].numpy(), sk_ssim(pred, target, 1.0), atol=TOL, rtol=0)
    np.testing.assert_allclose(svg["ssim"].numpy(), sk_ssim(pred, target, 2.0), atol=TOL, rtol=0)
    np.testing.assert_allclose(svg["psnr"].numpy(), sk_psnr(pred, target, 1.0), atol=TOL, rtol=0)
    torch.testing.assert_close(std["psnr"], svg["psnr"])
    assert (svg["ssim"] > std["ssim"]).all()  # larger constants, higher SSIM


# -------------------------------------------------------------------------------------------- aggregation
def sample_data(b: int, n: int, t: int, seed: int, c: int = 1, size: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    target = torch.rand(b, t, c, size, size, generator=g)
    noise_level = torch.rand(b, n, 1, 1, 1, 1, generator=g) * 0.5
    preds = (target[:, None] + noise_level * torch.randn(b, n, t, c, size, size, generator=g)).clamp(0, 1)
    return preds, target


def reference_curve(preds, target, metric: str, reduction: str, select: str, protocol: str = "standard") -> np.ndarray:
    """Per-frame mean over sequences, written with numpy loops over sequences (independent of reduce_samples)."""
    proto = get_protocol(protocol)
    b, n, t = preds.shape[:3]
    values = np.empty((b, n, t))
    for j in range(n):
        if metric == "psnr":
            values[:, j] = np.minimum(sk_psnr(preds[:, j], target, proto.psnr_data_range), 100.0)
        else:
            values[:, j] = sk_ssim(preds[:, j], target, proto.ssim_data_range)
    rows = []
    for i in range(b):
        v = values[i]  # (N, T)
        if reduction == "mean":
            rows.append(v.mean(axis=0))
        elif select == "frame":
            rows.append(v.max(axis=0) if reduction == "best" else v.min(axis=0))
        else:
            ranks = v.mean(axis=1)
            rows.append(v[int(np.argmax(ranks) if reduction == "best" else np.argmin(ranks))])
    return np.mean(rows, axis=0)


@pytest.mark.parametrize("metric", ["psnr", "ssim"])
@pytest.mark.parametrize("reduction,select", [("best", "sequence"), ("worst", "sequence"), ("best", "frame"),
                                              ("worst", "frame"), ("mean", "sequence")])
def test_sample_aggregation_matches_reference(metric: str, reduction: str, select: str) -> None:
    preds, target = sample_data(5, 4, 3, seed=0)
    m = SampleAggregatedMetric(metric=metric, reduction=reduction, select=select, protocol="svg")
    m.update(preds[:2], target[:2])  # two batches of different sizes
    m.update(preds[2:], target[2:])
    out = m.compute()
    ref = reference_curve(preds, target, metric, reduction, select, protocol="svg")
    assert out["per_frame"].shape == (3,) and int(out["n_sequences"]) == 5
    np.testing.assert_allclose(out["per_frame"].numpy(), ref, atol=TOL, rtol=0)
    assert out["mean"].item() == pytest.approx(float(ref.mean()), abs=TOL)


def test_reduction_ordering_and_selection_modes() -> None:
    values = torch.tensor([[[1.0, 5.0, 1.0], [2.0, 2.0, 4.0], [0.0, 4.0, 0.0]]])  # (B=1, N=3, T=3)
    # per sequence: the sample with the best mean (8/3) wins as a whole, even though sample 0 has the best frame 1
    assert reduce_samples(values, "best", "sequence").tolist() == [[2.0, 2.0, 4.0]]
    assert reduce_samples(values, "best", "frame").tolist() == [[2.0, 5.0, 4.0]]
    assert reduce_samples(values, "worst", "sequence").tolist() == [[0.0, 4.0, 0.0]]
    assert reduce_samples(values, "worst", "frame").tolist() == [[0.0, 2.0, 0.0]]
    assert reduce_samples(values, "best", "sequence", higher_is_better=False).tolist() == [[0.0, 4.0, 0.0]]
    torch.testing.assert_close(reduce_samples(values, "mean"), values.mean(1))


def test_psnr_inf_is_clamped_and_deterministic_preds() -> None:
    preds, target = sample_data(3, 1, 4, seed=2)
    preds[0, 0, 1] = target[0, 1]  # one perfect frame
    det = SampleAggregatedMetric("psnr", "best")
    det.update(preds[:, 0], target)  # (B, T, C, H, W): N = 1
    six = SampleAggregatedMetric("psnr", "best")
    six.update(preds, target)
    out = det.compute()
    assert torch.isfinite(out["per_frame"]).all() and torch.isfinite(out["mean"])
    torch.testing.assert_close(out["per_frame"], six.compute()["per_frame"])
    values = psnr(preds[:, 0].double(), target.double()).clamp(max=100.0)
    torch.testing.assert_close(out["per_frame"], values.mean(0))
    assert values[0, 1] == 100.0
    unclamped = SampleAggregatedMetric("psnr", "best", psnr_max=None)
    unclamped.update(preds, target)
    assert unclamped.compute()["mean"].item() == math.inf


def test_variable_length_reset_and_n_frames() -> None:
    m = SampleAggregatedMetric("ssim", "mean")
    p1, t1 = sample_data(2, 2, 3, seed=4)
    p2, t2 = sample_data(1, 2, 5, seed=5)
    m.update(p1, t1)
    m.update(p2, t2)
    out = m.compute()
    v1 = reduce_samples(ssim(p1.flatten(0, 1), t1.repeat_interleave(2, 0)).double().view(2, 2, 3), "mean")
    v2 = reduce_samples(ssim(p2.flatten(0, 1), t2.repeat_interleave(2, 0)).double().view(1, 2, 5), "mean")
    expected = torch.cat([(v1.sum(0) + v2[0, :3]) / 3, v2[0, 3:]])
    torch.testing.assert_close(out["per_frame"], expected, rtol=0, atol=1e-6)
    m.reset()
    m.update(p1, t1)
    assert m.compute()["per_frame"].shape == (3,) and int(m.compute()["n_sequences"]) == 2

    fixed = SampleAggregatedMetric("psnr", "best", n_frames=3)
    fixed.update(p1, t1)
    with pytest.raises(ValueError, match=r"expected 3 frames \(n_frames\), got T=5"):
        fixed.update(p2, t2)
    small = SampleAggregatedMetric("psnr", "best", max_frames=4)
    with pytest.raises(ValueError, match="max_frames"):
        small.update(p2, t2)


def test_aggregation_bad_arguments_and_inputs() -> None:
    with pytest.raises(ValueError, match=r"metric.*'psnr'.*'ssim'.*got 'lpips2'"):
        SampleAggregatedMetric("lpips2", "best")
    with pytest.raises(ValueError, match=r"reduction.*got 'median'"):
        SampleAggregatedMetric("psnr", "median")
    with pytest.raises(ValueError, match=r"select.*got 'pixel'"):
        SampleAggregatedMetric("psnr", "best", select="pixel")
    with pytest.raises(ValueError, match="unknown metric protocol"):
        SampleAggregatedMetric("psnr", "best", protocol="nope")
    m = SampleAggregatedMetric("ssim", "best")
    preds, target = sample_data(2, 3, 2, seed=6)
    with pytest.raises(ValueError, match=r"do not match target"):
        m.update(preds[:, :, :1], target)
    with pytest.raises(ValueError, match=r"preds \(B, N, T, C, H, W\) or \(B, T, C, H, W\), got 4-D"):
        m.update(preds[0, 0], target)
    with pytest.raises(ValueError, match=r"at least 7x7"):
        m.update(preds[..., :5, :5], target[..., :5, :5])
    assert m.describe()["protocol"]["name"] == "standard"


def test_compute_without_updates_is_empty() -> None:
    m = SampleAggregatedMetric("psnr", "best")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = m.compute()
    assert out["per_frame"].numel() == 0 and math.isnan(out["mean"].item()) and int(out["n_sequences"]) == 0


# ---------------------------------------------------------------------------------------------- DDP (gloo)
DDP_CONFIGS = {
    "psnr_best_seq": dict(metric="psnr", reduction="best"),
    "ssim_worst_frame": dict(metric="ssim", reduction="worst", select="frame", protocol="svg"),
    "ssim_mean": dict(metric="ssim", reduction="mean", n_frames=3),
}
# sequences each rank sees, as (start, stop) per update: uneven, and rank 1 updates twice
DDP_SPLITS = {0: [(0, 3)], 1: [(3, 5), (5, 8)]}


def _ddp_data() -> tuple[torch.Tensor, torch.Tensor]:
    preds, target = sample_data(8, 3, 3, seed=42, size=10)
    preds[1, 2, 0] = target[1, 0]  # a perfect frame: PSNR +inf, clamped
    return preds, target


def _ddp_worker(rank: int, world_size: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size, timeout=timedelta(seconds=60)
    )
    try:
        preds, target = _ddp_data()
        results = {}
        for name, kwargs in DDP_CONFIGS.items():
            metric = SampleAggregatedMetric(**kwargs)
            for start, stop in DDP_SPLITS[rank]:
                metric.update(preds[start:stop], target[start:stop])
            results[name] = {k: v.clone() for k, v in metric.compute().items()}
        # a rank that saw no data still takes part in the sync
        idle = SampleAggregatedMetric("psnr", "best")
        if rank == 0:
            idle.update(preds, target)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            results["idle_rank"] = {k: v.clone() for k, v in idle.compute().items()}
        torch.save(results, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs torch.distributed gloo")
def test_ddp_sync_matches_single_process(tmp_path: Path) -> None:
    # fork (Linux) starts the workers without re-importing torch/torchmetrics; spawn elsewhere
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    tmp.start_processes(_ddp_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True, start_method=method)

    preds, target = _ddp_data()
    expected = {}
    for name, kwargs in DDP_CONFIGS.items():
        metric = SampleAggregatedMetric(**kwargs)
        metric.update(preds, target)
        expected[name] = metric.compute()
    expected["idle_rank"] = expected["psnr_best_seq"]
    for rank in (0, 1):
        results = torch.load(tmp_path / f"rank{rank}.pt")
        for name, want in expected.items():
            got = results[name]
            assert int(got["n_sequences"]) == 8, (rank, name)
            torch.testing.assert_close(got["per_frame"], want["per_frame"], rtol=0, atol=1e-12)
            torch.testing.assert_close(got["mean"], want["mean"], rtol=0, atol=1e-12)
