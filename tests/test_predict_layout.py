"""`predict`'s reading of numpy layouts: channels-first or channels-last decided by the model's channel count and
frame size; a shape that fits neither names both readings instead of blaming one dimension."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vpzoo.models import CopyLast


@pytest.fixture(scope="module")
def grey():
    return CopyLast(image_size=64, channels=1, n_past=2)


@pytest.fixture(scope="module")
def colour():
    return CopyLast(image_size=32, channels=3, n_past=2)


@pytest.mark.parametrize("shape", [(5, 64, 64, 1), (2, 5, 64, 64, 1)])
def test_channels_last_is_read_as_such(grey, shape):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, shape, dtype=np.uint8)
    pred = grey.predict(frames, n_future=2, seed=0)  # copy_last repeats the last frame
    expected = torch.from_numpy(frames).movedim(-1, -3).float().div(255)
    expected = expected if expected.ndim == 5 else expected[None]
    torch.testing.assert_close(pred[:, 0, 0], expected[:, -1])


def test_channels_first_wins_when_both_layouts_fit():
    model = CopyLast(image_size=3, channels=3, n_past=1)  # (T, 3, 3, 3): both readings are 3 channels of 3x3
    frames = np.arange(2 * 27, dtype=np.uint8).reshape(2, 3, 3, 3)
    pred = model.predict(frames, n_future=1)
    torch.testing.assert_close(pred[0, 0, 0], torch.from_numpy(frames[-1]).float() / 255)


def test_colour_channels_last(colour):
    frames = np.random.default_rng(1).random((4, 32, 32, 3)).astype(np.float32)
    pred = colour.predict(frames, n_future=1)
    torch.testing.assert_close(pred[0, 0, 0], torch.from_numpy(frames[-1]).permute(2, 0, 1))


def test_wrong_size_channels_last_is_blamed_on_its_size(grey):
    with pytest.raises(ValueError) as info:
        grey.predict(np.zeros((10, 32, 32, 1), np.uint8), n_future=1)
    message = str(info.value)
    assert message.startswith("CopyLast expects frames of 1 channel(s) and 64x64 pixels; the array of shape "
                              "(10, 32, 32, 1) fits neither layout: ")
    assert "read channels-first (T, C, H, W) it has 32 channel(s) instead of 1 and 32x1 frames instead of 64x64" in message
    assert "read channels-last (T, H, W, C) it has 32x32 frames instead of 64x64" in message
    assert message.endswith("vpzoo never resizes or converts silently: resize the frames to 64x64 yourself")
    assert "expects 1 channel(s) per frame, got 32" not in message


def test_wrong_channels_channels_last_is_blamed_on_its_channels(grey):
    with pytest.raises(ValueError) as info:
        grey.predict(np.zeros((2, 6, 64, 64, 3), np.uint8), n_future=1)
    message = str(info.value)
    assert "read channels-first (B, T, C, H, W) it has 64 channel(s) instead of 1 and 64x3 frames" in message
    assert "read channels-last (B, T, H, W, C) it has 3 channel(s) instead of 1." in message
    assert message.endswith("convert the frames to 1 channel(s) yourself")


def test_tensors_are_always_channels_first(grey):
    with pytest.raises(ValueError, match=r"expects 1 channel\(s\) per frame, got 64"):
        grey.predict(torch.zeros(5, 64, 64, 1), n_future=1)
