"""Shared fixtures. Tests run on CPU, with small models and data, and never touch the network."""

from __future__ import annotations

import os

import pytest
import torch

#: Small constructor keywords for tests that build *every* registered model (e.g. the end_frame refusal in
#: test_p2p.py): a model whose defaults are paper-size (tens of millions of parameters) registers a tiny
#: configuration here, one line per model, so such tests stay fast. Models not listed are built with defaults.
TINY_MODEL_KWARGS: dict[str, dict] = {
    **{name: dict(image_size=32, channels=1, n_past=2, n_future=4, nz=0 if name == "savp_det" else 2, ngf=4, nef=4,
                  ndf=2, clip_length=4) for name in ("savp", "savp_vae", "savp_gan", "savp_det")},
    "videoflow": dict(image_size=16, n_levels=2, depth=2, coupling_width=8, latent_encoder_width=8,
                      latent_encoder_depth=1),
    "vrnn": {"width": 16, "n_past": 2, "n_future": 2},
    "vrnn_hier": {"width": 16, "n_past": 2, "n_future": 2},
}

# Keep the test suite's caches out of the user's home and repeatable.
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    cache = tmp_path_factory.getbasetemp() / "vpzoo-cache"
    monkeypatch.setenv("VPZOO_CACHE", str(cache))
    torch.manual_seed(0)
    yield


def tiny_svg_kwargs(**overrides):
    """A small SVG config (64-px DCGAN codec 8 channels wide, small latent and LSTMs) for fast CPU tests."""
    kwargs = dict(n_past=3, n_future=3, codec_width=8, g_dim=16, z_dim=4, rnn_size=32, val_num_samples=2)
    kwargs.update(overrides)
    return kwargs
