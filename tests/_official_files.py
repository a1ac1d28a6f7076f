"""Files in the authors' formats, written by the tests themselves (no authors' file is downloaded or copied).

- :func:`install_authors_modules` registers this file's own minimal re-implementations of the classes the authors'
  pickles reference, under the authors' module paths (``models.dcgan_64.encoder``, ``models.vgg_64.decoder``,
  ``models.lstm.gaussian_lstm``, ``models.vgg_unet_128.content_encoder``, ``models.resnet_128.pose_encoder``, ...),
  with the authors' attribute names (``c1 ... c5``, ``upc1 ... upc5``, ``main``, ``mu_net``, ``hidden``, ...) and
  the forward computations their code performs, so that pickling them writes the same globals and state layout.
- :func:`save_legacy_03` writes the legacy ``torch.save`` container the way PyTorch 0.3 did: magic number,
  protocol 1001, system info, a protocol-2 pickle in which each module class is the persistent id
  ``('module', cls, source_file, source)``, every module has its ``_backend`` (pickled as
  ``torch.nn.backends.thnn._get_thnn_function_backend()``) and no BatchNorm ``num_batches_tracked``, tensors are ``torch._utils._rebuild_tensor(storage, offset, size,
  stride)`` on ``torch.cuda.FloatStorage`` persistent ids saved at ``'cuda:0'``, parameters are
  ``Parameter(data)`` + state ``(requires_grad, False, hooks)`` and the LSTM states are
  ``torch.autograd.variable.Variable`` objects; then the storage keys and the raw storages.
- ``torch.save(obj, path)`` of the same objects gives the zip serialisation.
"""

from __future__ import annotations

import argparse
import io
import pickle
import struct
import sys
import types
from collections import OrderedDict

import torch
from torch import nn


def _mark(cls: type, module: str, name: str) -> type:
    cls.__module__, cls.__name__, cls.__qualname__ = module, name, name
    return cls


def _conv_bn_lrelu(conv: nn.Module, c: int) -> nn.Sequential:
    return nn.Sequential(conv, nn.BatchNorm2d(c), nn.LeakyReLU(0.2, inplace=True))


# ---------------------------------------------------------------------------------------------- edenton/svg
class DcganConv(nn.Module):
    def __init__(self, nin, nout):
        super().__init__()
        self.main = _conv_bn_lrelu(nn.Conv2d(nin, nout, 4, 2, 1), nout)

    def forward(self, x):
        return self.main(x)


class DcganUpconv(nn.Module):
    def __init__(self, nin, nout):
        super().__init__()
        self.main = _conv_bn_lrelu(nn.ConvTranspose2d(nin, nout, 4, 2, 1), nout)

    def forward(self, x):
        return self.main(x)


class DcganEncoder(nn.Module):
    def __init__(self, dim, nc=1, nf=64):  # nf: 64 in the authors' code; smaller only to keep the tests fast
        super().__init__()
        self.dim = dim
        self.c1, self.c2 = DcganConv(nc, nf), DcganConv(nf, nf * 2)
        self.c3, self.c4 = DcganConv(nf * 2, nf * 4), DcganConv(nf * 4, nf * 8)
        self.c5 = nn.Sequential(nn.Conv2d(nf * 8, dim, 4, 1, 0), nn.BatchNorm2d(dim), nn.Tanh())

    def forward(self, x):
        h1 = self.c1(x)
        h2 = self.c2(h1)
        h3 = self.c3(h2)
        h4 = self.c4(h3)
        return self.c5(h4).view(-1, self.dim), [h1, h2, h3, h4]


class DcganDecoder(nn.Module):
    def __init__(self, dim, nc=1, nf=64):
        super().__init__()
        self.dim = dim
        self.upc1 = _conv_bn_lrelu(nn.ConvTranspose2d(dim, nf * 8, 4, 1, 0), nf * 8)
        self.upc2, self.upc3 = DcganUpconv(nf * 16, nf * 4), DcganUpconv(nf * 8, nf * 2)
        self.upc4 = DcganUpconv(nf * 4, nf)
        self.upc5 = nn.Sequential(nn.ConvTranspose2d(nf * 2, nc, 4, 2, 1), nn.Sigmoid())

    def forward(self, inputs):
        vec, skip = inputs
        d = self.upc1(vec.view(-1, self.dim, 1, 1))
        d = self.upc2(torch.cat([d, skip[3]], 1))
        d = self.upc3(torch.cat([d, skip[2]], 1))
        d = self.upc4(torch.cat([d, skip[1]], 1))
        return self.upc5(torch.cat([d, skip[0]], 1))


class VggLayer(nn.Module):
    def __init__(self, nin, nout):
        super().__init__()
        self.main = _conv_bn_lrelu(nn.Conv2d(nin, nout, 3, 1, 1), nout)

    def forward(self, x):
        return self.main(x)


class VggUnetLayer(VggLayer):
    """``models.vgg_unet_128.vgg_layer`` (drnet-py's copy of the same layer)."""


def _vgg_block(widths: list[int], layer=None) -> nn.Sequential:
    layer = layer or VggLayer
    return nn.Sequential(*[layer(a, b) for a, b in zip(widths[:-1], widths[1:])])


class VggEncoder(nn.Module):
    def __init__(self, dim, nc=1, nf=64):
        super().__init__()
        self.dim = dim
        a, b, c, d = nf, 2 * nf, 4 * nf, 8 * nf
        self.c1 = _vgg_block([nc, a, a])
        self.c2 = _vgg_block([a, b, b])
        self.c3 = _vgg_block([b, c, c, c])
        self.c4 = _vgg_block([c, d, d, d])
        self.c5 = nn.Sequential(nn.Conv2d(d, dim, 4, 1, 0), nn.BatchNorm2d(dim), nn.Tanh())
        self.mp = nn.MaxPool2d(kernel_size=2, stride=2, padding=0)

    def forward(self, x):
        h1 = self.c1(x)
        h2 = self.c2(self.mp(h1))
        h3 = self.c3(self.mp(h2))
        h4 = self.c4(self.mp(h3))
        return self.c5(self.mp(h4)).view(-1, self.dim), [h1, h2, h3, h4]


class VggDecoder(nn.Module):
    def __init__(self, dim, nc=1, nf=64):
        super().__init__()
        self.dim = dim
        a, b, c, d = nf, 2 * nf, 4 * nf, 8 * nf
        self.upc1 = _conv_bn_lrelu(nn.ConvTranspose2d(dim, d, 4, 1, 0), d)
        self.upc2 = _vgg_block([2 * d, d, d, c])
        self.upc3 = _vgg_block([2 * c, c, c, b])
        self.upc4 = _vgg_block([2 * b, b, a])
        self.upc5 = nn.Sequential(VggLayer(2 * a, a), nn.ConvTranspose2d(a, nc, 3, 1, 1), nn.Sigmoid())
        self.up = nn.UpsamplingNearest2d(scale_factor=2)

    def forward(self, inputs):
        vec, skip = inputs
        d = self.upc1(vec.view(-1, self.dim, 1, 1))
        d = self.upc2(torch.cat([self.up(d), skip[3]], 1))
        d = self.upc3(torch.cat([self.up(d), skip[2]], 1))
        d = self.upc4(torch.cat([self.up(d), skip[1]], 1))
        return self.upc5(torch.cat([self.up(d), skip[0]], 1))


def _variable(t: torch.Tensor) -> torch.Tensor:
    t._as_variable = True  # pickled as a PyTorch 0.3 Variable by save_legacy_03
    return t


class Lstm(nn.Module):
    """``models.lstm.lstm`` (SVG's frame predictor; DRNet's pose LSTM takes ``normalize``)."""

    def __init__(self, input_size, output_size, hidden_size, n_layers, batch_size, normalize=None):
        super().__init__()
        self.input_size, self.output_size, self.hidden_size = input_size, output_size, hidden_size
        self.batch_size, self.n_layers = batch_size, n_layers
        self.embed = nn.Linear(input_size, hidden_size)
        self.lstm = nn.ModuleList([nn.LSTMCell(hidden_size, hidden_size) for _ in range(n_layers)])
        self.output = nn.Sequential(nn.Linear(hidden_size, output_size), nn.Tanh())
        self.hidden = self.init_hidden()
        if normalize is not None:
            self.normalize = normalize

    def init_hidden(self):
        return [(_variable(torch.zeros(self.batch_size, self.hidden_size)),
                 _variable(torch.zeros(self.batch_size, self.hidden_size))) for _ in range(self.n_layers)]

    def forward(self, x):
        h_in = self.embed(x.view(-1, self.input_size))
        for i in range(self.n_layers):
            self.hidden[i] = self.lstm[i](h_in, self.hidden[i])
            h_in = self.hidden[i][0]
        out = self.output(h_in)
        return nn.functional.normalize(out, p=2) if getattr(self, "normalize", False) else out


class GaussianLstm(nn.Module):
    """``models.lstm.gaussian_lstm``; ``forward(x, eps)`` takes the noise (the authors' draws it inside)."""

    def __init__(self, input_size, output_size, hidden_size, n_layers, batch_size):
        super().__init__()
        self.input_size, self.output_size, self.hidden_size = input_size, output_size, hidden_size
        self.n_layers, self.batch_size = n_layers, batch_size
        self.embed = nn.Linear(input_size, hidden_size)
        self.lstm = nn.ModuleList([nn.LSTMCell(hidden_size, hidden_size) for _ in range(n_layers)])
        self.mu_net = nn.Linear(hidden_size, output_size)
        self.logvar_net = nn.Linear(hidden_size, output_size)
        self.hidden = self.init_hidden()

    def init_hidden(self):
        return [(_variable(torch.zeros(self.batch_size, self.hidden_size)),
                 _variable(torch.zeros(self.batch_size, self.hidden_size))) for _ in range(self.n_layers)]

    def forward(self, x, eps):
        h_in = self.embed(x.view(-1, self.input_size))
        for i in range(self.n_layers):
            self.hidden[i] = self.lstm[i](h_in, self.hidden[i])
            h_in = self.hidden[i][0]
        mu, logvar = self.mu_net(h_in), self.logvar_net(h_in)
        return eps * logvar.mul(0.5).exp() + mu, mu, logvar


# ---------------------------------------------------------------------------------------------- edenton/drnet-py
class VggUnetContentEncoder(nn.Module):
    """``models.vgg_unet_128.content_encoder``: five VGG blocks (skips at 128 ... 8 px), conv 4/1/0 to the vector."""

    def __init__(self, content_dim, nc=1, nf=64):
        super().__init__()
        self.dim = content_dim
        a, b, c, d = nf, 2 * nf, 4 * nf, 8 * nf
        self.c1 = _vgg_block([nc, a, a], VggUnetLayer)
        self.c2 = _vgg_block([a, b, b], VggUnetLayer)
        self.c3 = _vgg_block([b, c, c, c], VggUnetLayer)
        self.c4 = _vgg_block([c, d, d, d], VggUnetLayer)
        self.c5 = _vgg_block([d, d, d, d], VggUnetLayer)
        self.c6 = nn.Sequential(nn.Conv2d(d, content_dim, 4, 1, 0), nn.BatchNorm2d(content_dim), nn.Tanh())
        self.mp = nn.MaxPool2d(kernel_size=2, stride=2, padding=0)

    def forward(self, x):
        skips = [self.c1(x)]
        for block in (self.c2, self.c3, self.c4, self.c5):
            skips.append(block(self.mp(skips[-1])))
        return self.c6(self.mp(skips[-1])).view(-1, self.dim), skips


class VggUnetDecoder(nn.Module):
    """``models.vgg_unet_128.decoder`` on ``[content, skips, pose]``."""

    def __init__(self, content_dim, pose_dim, nc=1, nf=64):
        super().__init__()
        self.content_dim, self.pose_dim = content_dim, pose_dim
        a, b, c, d = nf, 2 * nf, 4 * nf, 8 * nf
        self.upc1 = _conv_bn_lrelu(nn.ConvTranspose2d(content_dim + pose_dim, d, 4, 1, 0), d)
        self.upc2 = _vgg_block([2 * d, d, d, d], VggUnetLayer)
        self.upc3 = _vgg_block([2 * d, d, d, c], VggUnetLayer)
        self.upc4 = _vgg_block([2 * c, c, c, b], VggUnetLayer)
        self.upc5 = _vgg_block([2 * b, b, a], VggUnetLayer)
        self.upc6 = nn.Sequential(VggUnetLayer(2 * a, a), nn.ConvTranspose2d(a, nc, 3, 1, 1), nn.Sigmoid())
        self.up = nn.UpsamplingNearest2d(scale_factor=2)

    def forward(self, inputs):
        content, skip, pose = inputs
        d = self.upc1(torch.cat([content, pose], 1).view(-1, self.content_dim + self.pose_dim, 1, 1))
        for block, s in zip((self.upc2, self.upc3, self.upc4, self.upc5, self.upc6), reversed(skip)):
            d = block(torch.cat([self.up(d), s], 1))
        return d


class BasicBlock(nn.Module):
    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class Resnet18(nn.Module):
    """``models.resnet_128.resnet18``: stem, five stages of two basic blocks, conv 3x3 + BN + tanh."""

    def __init__(self, pose_dim, nc=3, nf=64):
        super().__init__()
        self.inplanes = nf
        self.conv1 = nn.Conv2d(nc, nf, kernel_size=5, stride=2, padding=3)
        self.bn1 = nn.BatchNorm2d(nf)
        self.relu = nn.ReLU(inplace=True)
        self.tanh = nn.Tanh()
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(nf, 1)
        self.layer2 = self._make_layer(2 * nf, 2)
        self.layer3 = self._make_layer(4 * nf, 2)
        self.layer4 = self._make_layer(8 * nf, 2)
        self.layer5 = self._make_layer(16 * nf, 2)
        self.conv_out = nn.Conv2d(16 * nf, pose_dim, kernel_size=3)
        self.bn_out = nn.BatchNorm2d(pose_dim)

    def _make_layer(self, planes, stride):
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes, 1, stride), nn.BatchNorm2d(planes))
        layers = [BasicBlock(self.inplanes, planes, stride, downsample), BasicBlock(planes, planes)]
        self.inplanes = planes
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4, self.layer5):
            x = layer(x)
        return self.tanh(self.bn_out(self.conv_out(x)))


class ResnetPoseEncoder(nn.Module):
    def __init__(self, pose_dim, nc=1, normalize=False, nf=64):
        super().__init__()
        self.main = Resnet18(pose_dim, nc, nf)
        self.normalize = normalize

    def forward(self, x):
        out = self.main(x).view(x.shape[0], -1)
        return nn.functional.normalize(out, p=2) if self.normalize else out


_CLASSES = {
    "models.dcgan_64": {"dcgan_conv": DcganConv, "dcgan_upconv": DcganUpconv, "encoder": DcganEncoder,
                        "decoder": DcganDecoder},
    "models.vgg_64": {"vgg_layer": VggLayer, "encoder": VggEncoder, "decoder": VggDecoder},
    "models.lstm": {"lstm": Lstm, "gaussian_lstm": GaussianLstm},
    "models.vgg_unet_128": {"vgg_layer": VggUnetLayer, "content_encoder": VggUnetContentEncoder,
                            "decoder": VggUnetDecoder},
    "models.resnet_128": {"pose_encoder": ResnetPoseEncoder, "resnet18": Resnet18, "BasicBlock": BasicBlock},
}


def install_authors_modules(monkeypatch) -> dict[str, types.ModuleType]:
    """Put ``models``, ``models.dcgan_64``, ``models.vgg_64``, ``models.lstm``, ``models.vgg_unet_128``,
    ``models.resnet_128`` into ``sys.modules`` (undone by ``monkeypatch``) with this file's classes."""
    modules = {"models": types.ModuleType("models")}
    monkeypatch.setitem(sys.modules, "models", modules["models"])
    for path, classes in _CLASSES.items():
        mod = types.ModuleType(path)
        for name, cls in classes.items():
            setattr(mod, name, _mark(cls, path, name))
        modules[path] = mod
        setattr(modules["models"], path.split(".")[1], mod)
        monkeypatch.setitem(sys.modules, path, mod)
    return modules


def randomise(*modules: nn.Module, seed: int = 0) -> None:
    """Random BatchNorm affine parameters, running statistics and biases on top of PyTorch's default init, so that a
    wrong mapping (e.g. two BN layers swapped) cannot go unnoticed."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in modules:
            for m in module.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.weight.copy_(1 + 0.1 * torch.randn(m.weight.shape, generator=g))
                    m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
                    m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=g))
                    m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
                elif isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)) and m.bias is not None:
                    m.bias.copy_(0.05 * torch.randn(m.bias.shape, generator=g))


def calibrate_batchnorm(encoder: nn.Module, decoder: nn.Module, channels: int, size: int = 64, dim: int = 128,
                        extra: torch.Tensor | None = None) -> None:
    """Set every BatchNorm's running statistics to those of one random batch (momentum 1), so that eval-mode
    activations keep unit scale through the deep codecs and the frames depend on their input."""
    bns = [m for net in (encoder, decoder) for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in bns:
        m.momentum = 1.0
    encoder.train(), decoder.train()
    with torch.no_grad():
        h, skips = encoder(torch.rand(8, channels, size, size, generator=torch.Generator().manual_seed(0)))
        g = torch.rand(8, dim, generator=torch.Generator().manual_seed(1)) * 2 - 1
        decoder([g, skips] if extra is None else [g, skips, extra])
    for m in bns:
        m.momentum = 0.1
    encoder.eval(), decoder.eval()


def options(**values) -> argparse.Namespace:
    return argparse.Namespace(**values)


# ---------------------------------------------------------------------------------------------- legacy writer
class _Pickler03(pickle.Pickler):
    """Pickles like PyTorch 0.3's ``torch.save``: module classes and storages as persistent ids."""

    def __init__(self, f):
        super().__init__(f, protocol=2)
        self.storages: "OrderedDict[str, torch.Tensor]" = OrderedDict()
        self._modules_seen: set[type] = set()

    def persistent_id(self, obj):
        if isinstance(obj, type) and issubclass(obj, nn.Module):
            if obj in self._modules_seen:
                return None
            self._modules_seen.add(obj)
            return ("module", obj, f"/home/author/{obj.__module__.replace('.', '/')}.py",
                    f"class {obj.__name__}(nn.Module):\n    ...\n")
        if isinstance(obj, torch.storage.TypedStorage):
            key = str(len(self.storages) + 1000)
            self.storages[key] = obj._vp_tensor
            return ("storage", torch.cuda.FloatStorage if obj.dtype == torch.float32 else torch.cuda.LongStorage,
                    key, "cuda:0", obj._vp_tensor.numel(), None)
        return None

    def reducer_override(self, obj):
        if isinstance(obj, torch.Tensor):
            if isinstance(obj, nn.Parameter):
                return (nn.Parameter, (obj.data,), (obj.requires_grad, False, OrderedDict()))
            if getattr(obj, "_as_variable", False):
                return (torch.autograd.variable.Variable, (obj.data,), (False, False, OrderedDict()))
            t = obj.detach().clone().contiguous()
            storage = torch.storage.TypedStorage(wrap_storage=t.untyped_storage(), dtype=t.dtype, _internal=True)
            storage._vp_tensor = t
            return (torch._utils._rebuild_tensor, (storage, 0, tuple(t.shape), t.stride()))
        return NotImplemented


class _ThnnBackend:
    """PyTorch 0.3/0.4 modules carried ``self._backend``, pickled as a call of this global."""

    def __reduce__(self):
        import torch.nn.backends.thnn

        return (torch.nn.backends.thnn._get_thnn_function_backend, ())


def save_legacy_03(obj, path) -> None:
    """Write ``obj`` in PyTorch 0.3's legacy ``torch.save`` format (see the module docstring)."""
    modules = [m for v in (obj.values() if isinstance(obj, dict) else [obj]) if isinstance(v, nn.Module)
               for m in v.modules()]
    counters = {}  # PyTorch 0.3's BatchNorm had no num_batches_tracked buffer
    for m in modules:
        m.__dict__["_backend"] = _ThnnBackend()
        if "num_batches_tracked" in m._buffers:
            counters[m] = m._buffers.pop("num_batches_tracked")
    try:
        _save_legacy_03(obj, path)
    finally:
        for m in modules:
            m.__dict__.pop("_backend", None)
        for m, counter in counters.items():
            m._buffers["num_batches_tracked"] = counter


def _save_legacy_03(obj, path) -> None:
    buf = io.BytesIO()
    pickle.dump(0x1950A86A20F9469CFC6C, buf, protocol=2)
    pickle.dump(1001, buf, protocol=2)
    pickle.dump({"protocol_version": 1001, "little_endian": True,
                 "type_sizes": {"short": 2, "int": 4, "long": 8}}, buf, protocol=2)
    pickler = _Pickler03(buf)
    pickler.dump(obj)
    pickle.dump(list(pickler.storages), buf, protocol=2)
    for t in pickler.storages.values():
        buf.write(struct.pack("<q", t.numel()))
        buf.write(t.numpy().tobytes())
    with open(path, "wb") as f:
        f.write(buf.getvalue())
