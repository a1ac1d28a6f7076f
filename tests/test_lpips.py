"""LPIPS (AlexNet, v0.1): network, per-frame function, weight resolution and the aggregated frame metric (offline).

The real AlexNet and linear weights cannot be downloaded here: random weights are saved in the real formats (a
torchvision AlexNet state dict with its ``features.*`` keys; the lpips package's ``lin{k}.model.1.weight`` dict)
and served from a loopback HTTP server, then resolved, verified and loaded through the real path.
"""

from __future__ import annotations

import hashlib
import io
import warnings

import pytest
import torch

from _loopback import LoopbackServer
from vpzoo.metrics import SampleAggregatedMetric
from vpzoo.metrics.lpips import (
    LPIPSAlex,
    default_lpips_network,
    load_lpips,
    lpips,
    lpips_weights_record,
    set_default_lpips_network,
)
from vpzoo.metrics.weights import ALEXNET_IMAGENET, LPIPS_ALEX_V01, MissingWeightsError, WeightSpec

CHANNELS = (64, 192, 384, 256, 256)


def _to_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


@pytest.fixture(scope="module")
def random_weight_files():
    """(backbone bytes, linear bytes): random AlexNet ``features.*`` and non-negative lpips linear layers."""
    g = torch.Generator().manual_seed(0)
    ref = LPIPSAlex()
    backbone = {f"features.{k}": torch.randn(v.shape, generator=g) * 0.05 for k, v in ref.features.state_dict().items()}
    linear = {f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1, generator=g) for k, c in enumerate(CHANNELS)}
    return _to_bytes(backbone), _to_bytes(linear)


@pytest.fixture(scope="module")
def net(random_weight_files, tmp_path_factory):
    backbone, linear = random_weight_files
    d = tmp_path_factory.mktemp("lpips")
    (d / "alex.pth").write_bytes(backbone)
    (d / "lin.pth").write_bytes(linear)
    b = WeightSpec(name="t_alex", filename="t_alex.pth", sha256=hashlib.sha256(backbone).hexdigest())
    lin = WeightSpec(name="t_lin", filename="t_lin.pth", sha256=hashlib.sha256(linear).hexdigest())
    return load_lpips(d / "alex.pth", d / "lin.pth", backbone=b, linear=lin)


@pytest.fixture
def as_default(net):
    set_default_lpips_network(net)
    yield net
    set_default_lpips_network(None)


def _videos(seed: int, shape=(2, 2, 3, 48, 48)):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g)


def test_weights_download_verify_and_load(random_weight_files, tmp_path):
    backbone, linear = random_weight_files
    with LoopbackServer({"/alexnet.pth": backbone, "/alex.pth": linear}) as server:
        b = WeightSpec(name="t_alex_dl", filename="a.pth", urls=(server.url + "/alexnet.pth",),
                       sha256_prefix=hashlib.sha256(backbone).hexdigest()[:8])  # torchvision-style prefix pin
        lin = WeightSpec(name="t_lin_dl", filename="l.pth", urls=(server.url + "/alex.pth",),
                         sha256=hashlib.sha256(linear).hexdigest(), size=len(linear))
        net = load_lpips(backbone=b, linear=lin, cache_dir=tmp_path, download=True, progress=False)
    assert net.weights["backbone"].verified == "sha256_prefix" and net.weights["linear"].verified == "sha256"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pth", "l.pth"]
    expected = torch.load(io.BytesIO(linear), weights_only=True)
    for k in range(5):
        assert torch.equal(net.lins[k].weight, expected[f"lin{k}.model.1.weight"])
    assert torch.equal(net.features[0].weight, torch.load(io.BytesIO(backbone), weights_only=True)["features.0.weight"])
    record = lpips_weights_record(net)
    assert record["linear"]["sha256"] == lin.sha256 and record["backbone"]["origin"] == "download"


def test_pinned_specs_and_offline_error(tmp_path, monkeypatch):
    assert LPIPS_ALEX_V01.sha256 == "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0"
    assert LPIPS_ALEX_V01.size == 6009 and ALEXNET_IMAGENET.sha256_prefix == "7be5be79"
    for var in ("VPZOO_ALEXNET_PATH", "VPZOO_LPIPS_ALEX_PATH", "TORCH_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no torchvision download to find
    monkeypatch.setenv("VPZOO_OFFLINE", "1")
    with pytest.raises(MissingWeightsError) as info:
        load_lpips(cache_dir=tmp_path / "w")
    msg = str(info.value)
    assert "alexnet-owt-7be5be79.pth" in msg and "VPZOO_ALEXNET_PATH" in msg and "download.pytorch.org" in msg
    assert not (tmp_path / "w").exists() or list((tmp_path / "w").iterdir()) == []


def test_torchvision_cache_is_found(random_weight_files, tmp_path, monkeypatch):
    backbone, _ = random_weight_files
    spec = WeightSpec(name="t_hub", filename="t_hub.pth", sha256_prefix=hashlib.sha256(backbone).hexdigest()[:8],
                      search_paths=("{torch_hub}/checkpoints/t_hub.pth",))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    (tmp_path / "hub" / "checkpoints" / "t_hub.pth").write_bytes(backbone)
    from vpzoo.metrics.weights import resolve_weights

    r = resolve_weights(spec, cache_dir=tmp_path / "cache", download=False)
    assert r.origin == "search_path" and r.path == tmp_path / "hub" / "checkpoints" / "t_hub.pth"


def test_lpips_shapes_range_identity_and_grayscale(net):
    a, b = _videos(0), _videos(1)
    d = lpips(a, b, network=net)
    assert d.shape == (2, 2) and d.dtype == torch.float32 and (d > 0).all()
    assert torch.equal(lpips(a, a.clone(), network=net), torch.zeros(2, 2))
    torch.testing.assert_close(lpips(b, a, network=net), d, rtol=1e-5, atol=1e-7)  # symmetric
    gray_a, gray_b = a[:, :, :1], b[:, :, :1]
    torch.testing.assert_close(
        lpips(gray_a, gray_b, network=net), lpips(gray_a.expand_as(a), gray_b.expand_as(b), network=net)
    )
    # per frame: a frame's value does not depend on the other frames in the batch
    torch.testing.assert_close(lpips(a[:1, 1:2], b[:1, 1:2], network=net)[0, 0], d[0, 1])
    # inputs in [0, 1] are scaled to [-1, 1]: same as the network on 2x - 1
    x, y = a[0, 0:1], b[0, 0:1]
    torch.testing.assert_close(net(x * 2 - 1, y * 2 - 1)[0], d[0, 0])


def test_lpips_rejects_bad_input(net):
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        lpips(_videos(0) * 2, _videos(1), network=net)
    with pytest.raises(ValueError, match="31x31"):
        lpips(_videos(0, (1, 2, 3, 16, 16)), _videos(1, (1, 2, 3, 16, 16)), network=net)
    with pytest.raises(ValueError, match="same shape"):
        lpips(_videos(0), _videos(1, (2, 2, 3, 48, 32)), network=net)


def test_matches_the_lpips_package_with_the_same_weights(net):
    lp = pytest.importorskip("lpips")  # optional: the reference package, used offline with random weights
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = lp.LPIPS(net="alex", version="0.1", pretrained=False, pnet_rand=True, verbose=False)
    for k, layer in zip(range(5), ref.lins):
        layer.model[1].weight.data.copy_(net.lins[k].weight)
    ref_slices = [ref.net.slice1, ref.net.slice2, ref.net.slice3, ref.net.slice4, ref.net.slice5]
    for s in ref_slices:
        for name, module in s.named_children():
            if isinstance(module, torch.nn.Conv2d):
                module.load_state_dict(net.features[int(name)].state_dict())
    ref.eval()
    a, b = _videos(2, (1, 4, 3, 64, 64)), _videos(3, (1, 4, 3, 64, 64))
    with torch.no_grad():
        expected = ref(a[0], b[0], normalize=True).flatten()
    torch.testing.assert_close(lpips(a, b, network=net)[0], expected, rtol=1e-5, atol=1e-6)


def test_registered_frame_metric_best_of_n_and_merged_states(as_default):
    target = _videos(4, (3, 2, 1, 40, 40))
    good = (target + 0.02 * torch.randn(target.shape, generator=torch.Generator().manual_seed(5))).clamp(0, 1)
    bad = _videos(6, (3, 2, 1, 40, 40))
    preds = torch.stack([bad, good], dim=1)  # (B, N=2, T, C, H, W)
    metric = SampleAggregatedMetric("lpips", "best", sync_on_compute=False)
    assert metric.higher_is_better is False
    metric.update(preds, target)
    out = metric.compute()
    torch.testing.assert_close(out["per_frame"], lpips(good, target).double().mean(0), rtol=1e-6, atol=1e-7)
    worst = SampleAggregatedMetric("lpips", "worst", sync_on_compute=False)
    worst.update(preds, target)
    assert (worst.compute()["per_frame"] > out["per_frame"]).all()
    # per-process states merged as a sync would (sum): the same result as one process seeing everything
    part0, part1 = (SampleAggregatedMetric("lpips", "best", sync_on_compute=False) for _ in range(2))
    part0.update(preds[:1], target[:1])
    part1.update(preds[1:], target[1:])
    part0.merge_state(part1)
    torch.testing.assert_close(part0.compute()["per_frame"], out["per_frame"])
    assert int(part0.compute()["n_sequences"]) == 3


def test_default_network_is_used_and_cached(as_default):
    assert default_lpips_network() is as_default
    assert default_lpips_network("cpu") is as_default
    torch.testing.assert_close(lpips(_videos(0), _videos(1)), lpips(_videos(0), _videos(1), network=as_default))


def test_frame_metric_computes_target_features_once_with_the_same_result(as_default):
    from vpzoo.metrics.lpips import _lpips_spec
    from vpzoo.metrics.protocols import get_protocol

    target = _videos(7, (2, 3, 1, 40, 40))
    preds = _videos(8, (2, 5, 3, 1, 40, 40))
    expanded = target.unsqueeze(1).expand_as(preds)  # how SampleAggregatedMetric passes the target
    fast = _lpips_spec(preds, expanded, get_protocol("standard"))
    generic = _lpips_spec(preds, expanded.contiguous(), get_protocol("standard"))
    assert fast.shape == (2, 5, 3)
    torch.testing.assert_close(fast, generic, rtol=1e-5, atol=1e-7)
