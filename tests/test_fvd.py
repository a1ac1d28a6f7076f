"""FVD: Fréchet distance, preprocessing, the I3D loader and weight resolution, the torchmetrics Metric (offline).

The real I3D file cannot be downloaded here: a small random-weight :class:`InceptionI3d` is saved as TorchScript
(the real file's format and call signature) and served from a loopback HTTP server, then resolved, downloaded,
verified and loaded through the same path as the real weights. Metric and DDP tests use a cheap stand-in feature
network with the same interface so that they stay fast.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F
from torch import nn

from _loopback import LoopbackServer
from vpzoo.metrics.fvd import (
    FrechetVideoDistance,
    frechet_distance,
    frechet_video_distance,
    gaussian_statistics,
    preprocess_clips,
    resize_bilinear,
    resize_matrix,
)
from vpzoo.metrics.i3d import I3DFeatureExtractor, InceptionI3d, load_i3d, save_torchscript
from vpzoo.metrics.weights import (
    I3D_TORCHSCRIPT,
    MissingWeightsError,
    WeightSpec,
    WeightsVerificationError,
    resolve_weights,
)


# ------------------------------------------------------------------------------------------------ helpers
class StandIn(nn.Module):
    """Cheap stand-in for I3D with its interface: (B, 3, T, 224, 224) in [-1, 1] -> (B, 400) features."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("proj", torch.randn(3 * 4 * 4 * 4, 400, generator=g))

    def forward(self, x, rescale: bool = False, resize: bool = False, return_features: bool = False):
        pooled = F.adaptive_avg_pool3d(x, (4, 4, 4)).flatten(1)
        return torch.tanh(pooled @ self.proj)


def stand_in_metric(**kwargs) -> FrechetVideoDistance:
    return FrechetVideoDistance(feature_extractor=I3DFeatureExtractor(StandIn()), **kwargs)


def structured_clips(n: int, seed: int, t: int = 16, c: int = 3, size: int = 32) -> torch.Tensor:
    """Smooth random videos in [0, 1] whose stand-in features differ from clip to clip."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, c, t // 4, 4, 4, generator=g)
    return F.interpolate(low, size=(t, size, size), mode="trilinear", align_corners=False).permute(0, 2, 1, 3, 4)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fd_reference_scipy(mu1, s1, mu2, s2) -> float:
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean).real)


def fd_reference_from_data(x: np.ndarray, y: np.ndarray) -> float:
    """Exact FD of the sample Gaussians from the data: tr((S1 S2)^1/2) = nuclear norm of Xc Yc^T / sqrt(..)."""
    xc, yc = x - x.mean(0), y - y.mean(0)
    s1 = xc.T @ xc / (len(x) - 1)
    s2 = yc.T @ yc / (len(y) - 1)
    nuc = np.linalg.svd(xc @ yc.T, compute_uv=False).sum() / np.sqrt((len(x) - 1) * (len(y) - 1))
    return float(((x.mean(0) - y.mean(0)) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * nuc)


# ------------------------------------------------------------------------------------------------ Fréchet distance
def test_frechet_distance_known_answer_commuting_covariances():
    # Commuting covariances (shared eigenvectors): FD = |dmu|^2 + sum (sqrt(a_i) - sqrt(b_i))^2.
    g = np.random.default_rng(0)
    d = 12
    q, _ = np.linalg.qr(g.normal(size=(d, d)))
    a, b = g.uniform(0.1, 4.0, d), g.uniform(0.1, 4.0, d)
    mu1, mu2 = g.normal(size=d), g.normal(size=d)
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    got = frechet_distance(mu1, (q * a) @ q.T, mu2, (q * b) @ q.T)
    assert got.dtype == torch.float64
    assert float(got) == pytest.approx(expected, rel=1e-10)
    # rank-deficient known answer: zero variances on different axes
    a[:5], b[3:8] = 0.0, 0.0
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert float(frechet_distance(mu1, np.diag(a), mu2, np.diag(b))) == pytest.approx(expected, rel=1e-10)


def test_frechet_distance_matches_scipy_sqrtm_full_rank():
    g = np.random.default_rng(1)
    x = g.normal(size=(300, 24))
    y = g.normal(size=(250, 24)) @ g.normal(size=(24, 24)) * 0.5 + 0.3
    mu1, s1 = (t.numpy() for t in gaussian_statistics(torch.from_numpy(x)))
    mu2, s2 = (t.numpy() for t in gaussian_statistics(torch.from_numpy(y)))
    got = float(frechet_distance(mu1, s1, mu2, s2))
    assert got == pytest.approx(fd_reference_scipy(mu1, s1, mu2, s2), rel=1e-10)
    assert got == pytest.approx(fd_reference_from_data(x, y), rel=1e-10)


def test_frechet_distance_rank_deficient_fewer_clips_than_features():
    # 40 "clips" of 100-d features: both covariances have rank 39 < 100.
    g = np.random.default_rng(2)
    x = g.normal(size=(40, 100)) * g.uniform(0.5, 3.0, 100)
    y = g.normal(size=(40, 100)) * g.uniform(0.5, 3.0, 100) + 0.1
    mu1, s1 = (t.numpy() for t in gaussian_statistics(torch.from_numpy(x)))
    mu2, s2 = (t.numpy() for t in gaussian_statistics(torch.from_numpy(y)))
    assert np.linalg.matrix_rank(s1) == 39
    got = float(frechet_distance(mu1, s1, mu2, s2))
    exact = fd_reference_from_data(x, y)
    assert got == pytest.approx(exact, rel=1e-9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy may warn that the product is singular
        assert got == pytest.approx(fd_reference_scipy(mu1, s1, mu2, s2), rel=1e-5)


def test_frechet_distance_zero_for_identical_and_symmetric():
    g = np.random.default_rng(3)
    x = g.normal(size=(20, 50)) * 3.0 + 1.0  # rank-deficient too
    y = g.normal(size=(30, 50))
    mu1, s1 = gaussian_statistics(torch.from_numpy(x))
    mu2, s2 = gaussian_statistics(torch.from_numpy(y))
    assert float(frechet_distance(mu1, s1, mu1, s1)) == pytest.approx(0.0, abs=1e-9 * float(torch.trace(s1)))
    assert float(frechet_distance(mu1, s1, mu2, s2)) == pytest.approx(float(frechet_distance(mu2, s2, mu1, s1)), rel=1e-12)
    assert float(frechet_distance(mu1, s1, mu2, s2)) > 0


def test_frechet_distance_rejects_bad_input():
    with pytest.raises(ValueError, match="shape"):
        frechet_distance(torch.zeros(3), torch.eye(3), torch.zeros(4), torch.eye(4))
    with pytest.raises(ValueError, match="NaN"):
        frechet_distance(torch.tensor([float("nan"), 0.0]), torch.eye(2), torch.zeros(2), torch.eye(2))


def test_gaussian_statistics_match_numpy():
    x = np.random.default_rng(4).normal(size=(17, 5))
    mu, sigma = gaussian_statistics(torch.from_numpy(x))
    np.testing.assert_allclose(mu.numpy(), x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(sigma.numpy(), np.cov(x, rowvar=False), rtol=1e-12)


# ------------------------------------------------------------------------------------------------ preprocessing
def test_resize_tf1_known_values():
    # TF1 resize_bilinear (half_pixel_centers=False): source coordinate i * in / out, clamped neighbour.
    x = torch.tensor([[10.0, 20.0]])
    np.testing.assert_allclose(resize_bilinear(x, (1, 4), "tf1").numpy(), [[10.0, 15.0, 20.0, 20.0]])
    x = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    np.testing.assert_allclose(resize_bilinear(x, (1, 2), "tf1").numpy(), [[1.0, 3.0]])  # picks 0 and 2
    np.testing.assert_allclose(resize_bilinear(x, (1, 2), "half_pixel").numpy(), [[1.5, 3.5]])
    for mode in ("tf1", "half_pixel"):
        m = resize_matrix(64, 224, mode)
        np.testing.assert_allclose(m.sum(1).numpy(), np.ones(224), rtol=1e-12)


def test_resize_tf1_matches_independent_formula_and_half_pixel_matches_torch():
    g = torch.Generator().manual_seed(0)
    img = torch.rand(2, 64, 48, generator=g, dtype=torch.float64)
    ours = resize_bilinear(img, (224, 224), "tf1").numpy()
    ref = np.empty((2, 224, 224))
    src = img.numpy()
    for i in range(224):
        y = i * 64 / 224
        y0 = int(np.floor(y)); y1 = min(y0 + 1, 63); fy = y - y0
        for j in range(224):
            x = j * 48 / 224
            x0 = int(np.floor(x)); x1 = min(x0 + 1, 47); fx = x - x0
            top = src[:, y0, x0] * (1 - fx) + src[:, y0, x1] * fx
            bot = src[:, y1, x0] * (1 - fx) + src[:, y1, x1] * fx
            ref[:, i, j] = top * (1 - fy) + bot * fy
    np.testing.assert_allclose(ours, ref, atol=1e-12)
    torch_ref = F.interpolate(img[:, None], size=(224, 224), mode="bilinear", align_corners=False)[:, 0]
    np.testing.assert_allclose(resize_bilinear(img, (224, 224), "half_pixel").numpy(), torch_ref.numpy(), atol=1e-12)
    assert not np.allclose(ours, torch_ref.numpy(), atol=1e-3)  # the two conventions really differ


def test_preprocess_range_layout_and_channel_repeat():
    # uint8 0/255 -> -1/+1; a constant frame stays constant after resizing; frames keep their time index.
    video = torch.zeros(2, 16, 1, 64, 64, dtype=torch.uint8)
    video[:, 1::2] = 255
    video[1, 3] = 51  # 0.2 -> -0.6
    out = preprocess_clips(video)
    assert out.shape == (2, 3, 16, 224, 224) and out.dtype == torch.float32 and out.is_contiguous()
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 1], out[:, 2])  # grayscale repeated
    assert torch.allclose(out[0, :, 0], torch.full((3, 224, 224), -1.0))
    assert torch.allclose(out[0, :, 1], torch.full((3, 224, 224), 1.0))
    assert torch.allclose(out[1, :, 3], torch.full((3, 224, 224), -0.6), atol=1e-6)
    # RGB floats in [0, 1], channel order preserved; 224x224 input: scaling only
    rgb = torch.rand(1, 16, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    out = preprocess_clips(rgb)
    assert torch.allclose(out, rgb.permute(0, 2, 1, 3, 4) * 2 - 1, atol=1e-6)
    # samples (B, N, T, C, H, W) are flattened to B * N clips
    assert preprocess_clips(torch.rand(2, 3, 16, 3, 32, 32)).shape == (6, 3, 16, 224, 224)


def test_preprocess_rejects_bad_videos():
    with pytest.raises(ValueError, match="exactly 16 frames"):
        preprocess_clips(torch.rand(1, 15, 3, 32, 32), clip_length=16)
    with pytest.raises(ValueError, match="channels"):
        preprocess_clips(torch.rand(1, 16, 2, 32, 32))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        preprocess_clips(torch.rand(1, 16, 3, 32, 32) * 2)
    with pytest.raises(ValueError, match="NaN"):
        preprocess_clips(torch.full((1, 16, 3, 32, 32), float("nan")))
    with pytest.raises(TypeError, match="uint8"):
        preprocess_clips(torch.zeros(1, 16, 3, 32, 32, dtype=torch.int16))
    with pytest.raises(ValueError, match="at least 9"):
        preprocess_clips(torch.rand(1, 8, 3, 32, 32))


# ------------------------------------------------------------------------------------------------ I3D + weights
@pytest.fixture(scope="module")
def tiny_i3d_file(tmp_path_factory):
    """A random-weight I3D (1/8 width) saved as TorchScript, like i3d_torchscript.pt; (path, bytes, module)."""
    torch.manual_seed(0)
    net = InceptionI3d(width_mult=0.125).eval()
    path = tmp_path_factory.mktemp("i3d") / "i3d_random.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        save_torchscript(net, path)
    return path, path.read_bytes(), net


def _spec(name: str, url: str, data: bytes, **kw) -> WeightSpec:
    kw.setdefault("sha256", sha256_bytes(data))
    return WeightSpec(name=name, filename=f"{name}.pt", urls=(url,), size=len(data), **kw)


def test_i3d_random_weights_download_verify_load_and_features(tiny_i3d_file, tmp_path):
    path, data, net = tiny_i3d_file
    cache = tmp_path / "cache"
    with LoopbackServer({"/i3d.pt": data}) as server:
        spec = _spec("test_i3d", server.url + "/i3d.pt?dl=1", data)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load deprecation notice
            extractor = load_i3d(weights=spec, cache_dir=cache, download=True, progress=False)
        assert extractor.weights.origin == "download" and extractor.weights.verified == "sha256"
        assert extractor.weights.sha256 == spec.sha256 and extractor.weights.path == cache / "test_i3d.pt"
        assert sorted(p.name for p in cache.iterdir()) == ["test_i3d.pt"]  # nothing else left behind
        n_requests = len(server.requests)
        again = resolve_weights(spec, cache_dir=cache, download=True)  # served from the cache
        assert again.origin == "cache" and len(server.requests) == n_requests

    clip = structured_clips(1, seed=0, t=9, size=40)  # 9 frames: the fewest I3D takes (keeps the test fast)
    feats = extractor(preprocess_clips(clip))
    assert feats.shape == (1, 400) and feats.dtype == torch.float32 and torch.isfinite(feats).all()
    with torch.no_grad():
        direct = net(preprocess_clips(clip), return_features=True)
    torch.testing.assert_close(feats, direct, rtol=1e-5, atol=1e-6)
    assert not any(p.requires_grad for p in extractor.parameters())
    with pytest.raises(ValueError, match="224"):
        extractor(torch.zeros(1, 3, 16, 64, 64))


def test_real_i3d_spec_env_override_and_git_blob_pin(tiny_i3d_file, monkeypatch):
    path, _, _ = tiny_i3d_file
    monkeypatch.setenv("VPZOO_I3D_PATH", str(path))
    assert I3D_TORCHSCRIPT.env_var == "VPZOO_I3D_PATH" and I3D_TORCHSCRIPT.urls[0].startswith("https://www.dropbox")
    assert I3D_TORCHSCRIPT.pin == "git_blob" and I3D_TORCHSCRIPT.git_blob == "93daef59c7ae0e9e8f76225521407e60cbafa6aa"
    with pytest.raises(WeightsVerificationError, match="git blob id: expected 93daef59"):
        resolve_weights("i3d_torchscript")  # a random-weight stand-in is not the pinned file
    with pytest.warns(UserWarning, match="using them anyway"):
        resolved = resolve_weights("i3d_torchscript", verify=False)
    assert resolved.origin == "env:VPZOO_I3D_PATH" and resolved.verified == "mismatch"
    assert resolved.sha256 == sha256_bytes(path.read_bytes())
    monkeypatch.setenv("VPZOO_I3D_PATH", str(path) + ".missing")
    with pytest.raises(MissingWeightsError, match="VPZOO_I3D_PATH"):
        resolve_weights("i3d_torchscript")


def test_missing_i3d_offline_gives_clear_error_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv("VPZOO_I3D_PATH", raising=False)
    monkeypatch.setenv("VPZOO_OFFLINE", "1")
    cache = tmp_path / "weights"
    with pytest.raises(MissingWeightsError) as info:
        FrechetVideoDistance(cache_dir=cache).update(torch.rand(2, 16, 3, 32, 32), real=True)
    message = str(info.value)
    for needle in ("i3d_torchscript", "VPZOO_I3D_PATH", "dropbox.com/s/ge9e5ujwgetktms/i3d_torchscript.pt",
                   str(cache / "i3d_torchscript.pt"), "downloads are disabled", "curl"):
        assert needle in message
    assert not cache.exists() or list(cache.iterdir()) == []


def test_failed_downloads_leave_nothing_under_the_final_name(tiny_i3d_file, tmp_path):
    _, data, _ = tiny_i3d_file
    cache = tmp_path / "cache"
    with LoopbackServer({"/i3d.pt": data, "/wrong.pt": data[:-10] + b"0123456789"}) as server:
        # 1. wrong bytes: sha256 mismatch, the partial file is deleted
        spec = _spec("t_corrupt", server.url + "/wrong.pt", data)
        with pytest.raises(MissingWeightsError, match="sha256 mismatch"):
            resolve_weights(spec, cache_dir=cache, download=True, progress=False)
        assert list(cache.iterdir()) == []
        # 2. 404
        spec = _spec("t_404", server.url + "/nope.pt", data)
        with pytest.raises(MissingWeightsError, match="404"):
            resolve_weights(spec, cache_dir=cache, download=True, progress=False)
        assert not (cache / "t_404.pt").exists()
        # 3. connection dropped, then the server fails until the retries are spent: no final file; the next call
        #    resumes from the bytes received and completes
        spec = _spec("t_drop", server.url + "/i3d.pt", data)
        server.faults["/i3d.pt"] = [("drop", 1000), ("status", 503), ("status", 503), ("status", 503)]
        with pytest.raises(MissingWeightsError, match="cannot download"):
            resolve_weights(spec, cache_dir=cache, download=True, progress=False)
        assert not (cache / "t_drop.pt").exists()
        assert all(p.name.endswith(".part") for p in cache.iterdir())  # only the resumable part file
        resolved = resolve_weights(spec, cache_dir=cache, download=True, progress=False)
        assert resolved.path == cache / "t_drop.pt" and resolved.sha256 == spec.sha256
        assert server.requests[-1][1] == "bytes=1000-"  # resumed, not restarted
        assert sorted(p.name for p in cache.iterdir()) == ["t_drop.pt"]


def test_verification_of_local_files_and_prefix_pins(tmp_path):
    good, bad = tmp_path / "good.pt", tmp_path / "bad.pt"
    good.write_bytes(b"weights")
    bad.write_bytes(b"tampered")
    digest = sha256_bytes(b"weights")
    spec = WeightSpec(name="t_local", filename="t_local.pt", sha256=digest)
    assert resolve_weights(spec, good).verified == "sha256"
    with pytest.raises(WeightsVerificationError, match="expected " + digest):
        resolve_weights(spec, bad)
    with pytest.warns(UserWarning, match="verify=False"):
        r = resolve_weights(spec, bad, verify=False)
    assert r.verified == "mismatch" and r.sha256 == sha256_bytes(b"tampered")
    prefix = WeightSpec(name="t_prefix", filename="t_prefix.pt", sha256_prefix=digest[:8])
    assert resolve_weights(prefix, good).verified == "sha256_prefix"
    with pytest.raises(WeightsVerificationError, match="prefix"):
        resolve_weights(prefix, bad)
    with pytest.raises(MissingWeightsError, match="does not exist"):
        resolve_weights(spec, tmp_path / "absent.pt")


def test_corrupt_cache_entry_is_replaced_by_a_fresh_download(tmp_path):
    data = b"the real bytes" * 100
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "t_fix.pt").write_bytes(b"garbage")
    with LoopbackServer({"/w.pt": data}) as server:
        spec = _spec("t_fix", server.url + "/w.pt", data)
        with pytest.warns(UserWarning, match="corrupt cache entry"):
            r = resolve_weights(spec, cache_dir=cache, download=True, progress=False)
    assert r.origin == "download" and (cache / "t_fix.pt").read_bytes() == data
    with pytest.raises(WeightsVerificationError):  # offline, the corrupt entry is refused, not used
        (cache / "t_fix.pt").write_bytes(b"garbage")
        resolve_weights(spec, cache_dir=cache, download=False)


# ------------------------------------------------------------------------------------------------ the Metric
def test_metric_accumulates_whole_set_independently_of_batching():
    real, fake = structured_clips(5, seed=1, t=9), structured_clips(4, seed=2, t=9)
    whole = stand_in_metric(batch_size=16, clip_length=9)
    whole.update(real, real=True)
    whole.update(fake, real=False)
    split = stand_in_metric(batch_size=2, clip_length=9)
    for chunk in (real[:2], real[2:3], real[3:]):
        split.update(chunk, real=True)
    for chunk in (fake[:3], fake[3:]):
        split.update(chunk, real=False)
    a, b = whole.compute(), split.compute()
    assert int(a["n_real"]) == 5 and int(a["n_generated"]) == 4 and int(a["clip_length"]) == 9
    assert float(a["fvd"]) == pytest.approx(float(b["fvd"]), rel=1e-6) and float(a["fvd"]) > 0  # float32 features
    # equals the Fréchet distance of the features' sample statistics
    ext = I3DFeatureExtractor(StandIn())
    fr, ff = ext(preprocess_clips(real)).double(), ext(preprocess_clips(fake)).double()
    expected = frechet_distance(*gaussian_statistics(fr), *gaussian_statistics(ff))
    assert float(a["fvd"]) == pytest.approx(float(expected), rel=1e-9)
    n, mu, sigma = whole.statistics(real=True)
    assert n == 5
    np.testing.assert_allclose(sigma.numpy(), np.cov(fr.numpy(), rowvar=False), rtol=1e-8, atol=1e-12)


def test_metric_report_records_counts_clip_length_and_weights_identity(tiny_i3d_file):
    path, data, _ = tiny_i3d_file
    spec = WeightSpec(name="t_report", filename="t_report.pt", sha256=sha256_bytes(data))
    resolved = resolve_weights(spec, path)
    metric = FrechetVideoDistance(feature_extractor=I3DFeatureExtractor(StandIn(), resolved))
    metric.update(structured_clips(3, seed=3, c=1), real=True)
    metric.update(structured_clips(2, seed=4, c=1).unsqueeze(1).expand(-1, 2, -1, -1, -1, -1), real=False)
    report = metric.report()
    json.dumps(report)
    assert report["n_real"] == 3 and report["n_generated"] == 4 and report["clip_length"] == 16
    assert report["weights_sha256"] == spec.sha256 and report["weights"]["path"] == str(path)
    assert report["resize_mode"] == "tf1" and report["value_range"] == [-1.0, 1.0] and report["input_size"] == 224
    assert report["fvd"] >= 0
    assert "feature_extractor" not in str(list(metric.state_dict())) and len(metric.state_dict()) == 0


def test_metric_one_call_reset_and_errors():
    real, fake = structured_clips(3, seed=5, t=9, c=1), structured_clips(3, seed=6, t=9, c=1)
    r = frechet_video_distance(real, fake, feature_extractor=I3DFeatureExtractor(StandIn()), clip_length=None)
    assert r["n_real"] == 3 and r["n_generated"] == 3 and r["fvd"] > 0 and r["clip_length"] is None

    g = torch.Generator().manual_seed(0)
    f_real, f_fake = torch.randn(5, 400, generator=g), torch.randn(4, 400, generator=g) + 0.5
    metric = stand_in_metric(reset_real_features=False)
    metric.update_features(f_real, real=True)
    metric.update_features(f_real, real=False)
    assert float(metric.compute()["fvd"]) == pytest.approx(0.0, abs=1e-9)  # identical sets
    metric.update_features(f_fake, real=False)  # invalidates the cached result
    before = float(metric.compute()["fvd"])
    assert before > 1.0
    metric.reset()
    assert int(metric.real_n) == 5 and int(metric.fake_n) == 0  # real statistics kept
    with pytest.raises(ValueError, match="at least 2 generated"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchmetrics: compute before update
        metric.compute()
    metric.update_features(torch.cat([f_real, f_fake]), real=False)  # the generated set from before the reset
    assert float(metric.compute()["fvd"]) == pytest.approx(before, rel=1e-12)
    metric = stand_in_metric()
    with pytest.raises(ValueError, match="exactly 16 frames"):
        metric.update(torch.rand(2, 20, 3, 8, 8), real=True)
    with pytest.raises(TypeError, match="bool"):
        metric.update(real, real=1)
    with pytest.raises(ValueError, match=r"\(B, 400\)"):
        metric.update_features(torch.zeros(2, 10), real=True)


# ------------------------------------------------------------------------------------------------ DDP (gloo)
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_metric_syncs_across_two_gloo_processes(tmp_path):
    import torch.multiprocessing as mp

    from _fvd_ddp import ddp_features, ddp_worker  # a lean module: the spawned processes import only it

    # fork where available (as DataLoader workers do): the children need not import torch and torchmetrics again,
    # which takes tens of seconds on a loaded 2-core machine; spawn elsewhere
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    mp.start_processes(ddp_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True, start_method=method)
    real, fake = ddp_features(7, seed=11), ddp_features(6, seed=12) + 0.3
    expected = float(frechet_distance(*gaussian_statistics(real), *gaussian_statistics(fake)))
    for rank in range(2):
        got = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert got["n_real"] == 7 and got["n_generated"] == 6 and got["clip_length"] == 16
        assert got["fvd"] == pytest.approx(expected, rel=1e-8)  # sums vs centred products: float64 rounding
