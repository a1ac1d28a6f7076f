"""The model contract of VideoPredictionModel.predict: layouts, dtypes, seeds, batching, and every bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import tiny_svg_kwargs
from vpzoo.models import CopyLast, SVGLP


@pytest.fixture(scope="module")
def svg():
    torch.manual_seed(0)
    return SVGLP(**tiny_svg_kwargs()).eval()


@pytest.fixture(scope="module")
def clip():
    g = torch.Generator().manual_seed(0)
    return torch.rand(4, 1, 64, 64, generator=g)  # (T, C, H, W)


def test_output_shape_and_range(svg, clip):
    out = svg.predict(clip[None].expand(2, -1, -1, -1, -1), n_future=5, num_samples=3, seed=0)
    assert out.shape == (2, 3, 5, 1, 64, 64)
    assert out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 1
    assert out.is_inference()


def test_every_input_layout_gives_the_same_prediction(svg, clip):
    ref = svg.predict(clip, 3, num_samples=2, seed=7)
    assert ref.shape == (1, 2, 3, 1, 64, 64)
    u8 = (clip * 255).round().to(torch.uint8)
    ref_u8 = svg.predict(u8, 3, num_samples=2, seed=7)
    layouts = {
        "tensor (B,T,C,H,W)": u8[None],
        "numpy (T,C,H,W) uint8": u8.numpy(),
        "numpy (T,H,W,C) uint8 (imageio)": u8.permute(0, 2, 3, 1).numpy(),
        "numpy (B,T,H,W,C) uint8": u8.permute(0, 2, 3, 1).numpy()[None],
        "numpy float32 in [0,1]": (u8.float() / 255).numpy(),
        "torch float64 in [0,1]": u8.double() / 255,
    }
    for name, frames in layouts.items():
        out = svg.predict(frames, 3, num_samples=2, seed=7)
        assert out.shape == (1, 2, 3, 1, 64, 64), name
        torch.testing.assert_close(out, ref_u8, msg=name)
    assert not torch.equal(ref, svg.predict(clip, 3, num_samples=2, seed=8))


def test_same_seed_same_samples_and_training_mode_restored(svg, clip):
    svg.train()
    try:
        a = svg.predict(clip, 4, num_samples=2, seed=3)
        assert svg.training, "predict must restore the training mode"
        b = svg.predict(clip, 4, num_samples=2, seed=3)
    finally:
        svg.eval()
    torch.testing.assert_close(a, b)


def test_all_samples_in_one_batched_pass(svg, clip):
    calls = []
    handle = svg.decoder.register_forward_hook(lambda m, i, o: calls.append(o.shape[0]))
    try:
        svg.predict(clip, 4, num_samples=10, seed=0)
    finally:
        handle.remove()
    assert calls == [10] * 4  # one decoder call per future step, all 10 samples in it


def test_copy_last_is_deterministic_and_repeats():
    model = CopyLast(image_size=8, channels=3)
    x = torch.rand(2, 4, 3, 8, 8)
    out = model.predict(x, 5, num_samples=2)
    assert out.shape == (2, 2, 5, 3, 8, 8)
    assert torch.equal(out, x[:, None, None, -1].expand_as(out))
    assert model.num_parameters() == 0


@pytest.mark.parametrize(
    "frames, kwargs, error, match",
    [
        (np.zeros((64, 64)), {}, ValueError, "shape"),
        (np.zeros((1, 1, 4, 1, 64, 64)), {}, ValueError, "shape"),
        (torch.zeros(4, 3, 64, 64), {}, ValueError, "1 channel"),
        (torch.zeros(4, 1, 32, 32), {}, ValueError, "64x64 frames, got 32x32"),
        (torch.zeros(2, 1, 64, 64), {}, ValueError, "at least n_past=3"),
        (torch.full((4, 1, 64, 64), float("nan")), {}, ValueError, "NaN"),
        (torch.full((4, 1, 64, 64), float("inf")), {}, ValueError, "NaN or infinite"),
        (torch.full((4, 1, 64, 64), 2.0), {}, ValueError, r"\[0, 1\]"),
        (torch.full((4, 1, 64, 64), -0.5), {}, ValueError, r"\[0, 1\]"),
        (torch.zeros(4, 1, 64, 64, dtype=torch.int64), {}, TypeError, "uint8"),
        (torch.zeros(4, 1, 64, 64, dtype=torch.bool), {}, TypeError, "uint8"),
        ([[0.0]], {}, TypeError, "torch.Tensor or numpy"),
        (torch.zeros(4, 1, 64, 64), {"n_future": 0}, ValueError, "n_future must be >= 1"),
        (torch.zeros(4, 1, 64, 64), {"num_samples": 0}, ValueError, "num_samples must be >= 1"),
        (torch.zeros(4, 1, 64, 64), {"n_future": 2.5}, TypeError, "n_future must be an integer"),
        (torch.zeros(4, 1, 64, 64), {"seed": "a"}, TypeError, "seed"),
    ],
)
def test_bad_input_is_rejected_with_a_clear_error(svg, frames, kwargs, error, match):
    kwargs = {"n_future": 2, **kwargs}
    with pytest.raises(error, match=match):
        svg.predict(frames, **kwargs)


class _Shifted(CopyLast):
    """A model with one model-specific predict keyword (as P2P's end_frame or the ODE model's times)."""

    predict_options = {"offset": "a float added to the copied frame"}

    def check_predict_options(self, context, n_future, **options):
        offset = options.get("offset", 0.0)
        if not isinstance(offset, float):
            raise TypeError(f"offset must be a float, got {type(offset).__name__}")
        return {"offset": offset}

    def sample_future(self, context, n_future, num_samples, generator, offset=0.0):
        return super().sample_future(context, n_future, num_samples, generator) + offset


def test_model_specific_predict_keywords_go_through_the_declared_mechanism(clip):
    model = _Shifted(image_size=64, channels=1, n_past=2, n_future=3)
    half = torch.full_like(clip, 0.5)
    torch.testing.assert_close(model.predict(half, 2, offset=0.25), torch.full((1, 1, 2, 1, 64, 64), 0.75))
    with pytest.raises(TypeError, match="offset must be a float, got int"):
        model.predict(half, 2, offset=1)
    with pytest.raises(TypeError, match=r"unexpected keyword\(s\) end_frame; its model-specific keywords are: offset"):
        model.predict(half, 2, end_frame=half[0])
    with pytest.raises(TypeError, match=r"unexpected keyword\(s\) times; its model-specific keywords are: none"):
        CopyLast(image_size=64, channels=1, n_past=2, n_future=3).predict(half, 2, times=[1.0])


def test_nan_prediction_is_an_error_that_points_at_the_weights(clip):
    svg = SVGLP(**tiny_svg_kwargs()).eval()
    with torch.no_grad():
        next(svg.frame_predictor.parameters()).fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="predicted NaN or infinite values .* weights are corrupt"):
        svg.predict(clip, 2, seed=0)
