"""The authors' own pretrained weights: safe reading of their whole-module pickles and conversion to the zoo format.

Papers whose authors published PyTorch weights saved them as ``torch.save`` pickles of whole modules (PyTorch
0.3/0.4 era: ``{'encoder': <models.vgg_64.encoder>, ..., 'opt': <argparse.Namespace>}``), which plain
``torch.load`` can only open by importing the authors' code and unpickling with ``weights_only=False``, i.e. by
running whatever the file names. vpzoo never does that. It reads such files with PyTorch's weights-only
unpickler (:mod:`torch._weights_only_unpickler`) and an allow-list of **stand-in classes** registered under the
authors' module paths (``models.dcgan_64.encoder``, ``models.lstm.gaussian_lstm``, ``torch.nn.modules.conv.Conv2d``,
``argparse.Namespace``, ...). A stand-in runs no code of its own: it only keeps the arguments and the state the
pickle hands it (a module's ``_parameters``, ``_buffers``, ``_modules``, attributes). A pickle that names any other
global (``os.system``, ``builtins.eval``, a class of the authors' repository that no converter knows) is refused
before anything is unpickled, with an error naming every such global (:class:`UnsafePickleError`).

Both serialisations are read:

- the **zip** format (PyTorch >= 1.6): :func:`torch.load` with ``weights_only=True`` inside
  :func:`torch.serialization.safe_globals` holding the stand-ins;
- the **legacy** format (PyTorch <= 1.5, the authors' files): its container (magic number, protocol, system info,
  the pickle, the storage keys, the raw storages) is read here, and the pickle by PyTorch's weights-only
  ``Unpickler`` with a storage-only ``persistent_load``. PyTorch's own legacy loader cannot take these files with
  ``weights_only=True``: ``torch.save`` of a whole module records each module class as a persistent id
  ``('module', cls, source_file, source)`` (the class plus its source text, for a change warning), and the
  weights-only unpickler admits persistent ids of storages only. Before unpickling, each such id is rewritten
  (:func:`pickletools.genops` parses the stream; nothing runs) into a call of the allow-listed
  :func:`_module_class`, which returns the class, which is itself a stand-in. The saved source text is never
  executed or compared.

Converters (``CONVERTERS``: ``"svg"``, ``"drnet"``) map the collected tensors onto a vpzoo model built from the
file's saved options and write a zoo folder (:func:`convert_official`, ``vpzoo convert svg|drnet PATH OUT_DIR``).
Registered checkpoints with ``weights.source: official`` (:func:`official_checkpoint`) download the authors' file
from its pinned URL through :func:`vpzoo.cache.download_url` (resumable, progress bar), verify its git blob id,
convert it once into the vpzoo cache and load the converted folder from then on.
"""

from __future__ import annotations

import io
import os
import pickletools
import re
import struct
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping

from vpzoo.zoo.errors import CheckpointUnavailableError, ConfigMismatchError, CorruptCheckpointError, ZooError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from vpzoo.models.base import VideoPredictionModel

__all__ = [
    "UnsafePickleError",
    "OfficialModule",
    "OfficialObject",
    "read_official_file",
    "pickle_globals",
    "convert_svg",
    "convert_drnet",
    "CONVERTERS",
    "convert_official",
    "official_checkpoint",
    "official_cache_dir",
    "CONVERTER_VERSION",
]

#: Bumped when a converter's output changes; cached conversions of an older version are redone.
CONVERTER_VERSION = 1


class UnsafePickleError(ZooError, ValueError):
    """A pickle references a global outside the allow-list of stand-ins; it was not unpickled."""


# ------------------------------------------------------------------------------------------------ stand-ins
class OfficialObject:
    """Stand-in for a class an authors' pickle names: keeps its constructor arguments and state, runs nothing.

    Attributes:
        args: the positional arguments the pickle called the class (or its ``__new__``) with.
        state: what the pickle's BUILD gave it (an instance ``__dict__``), ``{}`` if none.
    """

    official_name: str = "OfficialObject"

    def __new__(cls, *args: Any, **kwargs: Any) -> "OfficialObject":
        obj = object.__new__(cls)
        obj.args = args
        obj.state = {}
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # REDUCE calls cls(*args): nothing to do
        pass

    def __setstate__(self, state: Any) -> None:
        self.state = state if isinstance(state, dict) else {"__state__": state}

    def __repr__(self) -> str:
        return f"<stand-in {self.official_name}>"


class OfficialModule(OfficialObject):
    """Stand-in for an ``nn.Module`` subclass (the authors' or PyTorch's): its tensors are read from its state."""

    def tensors(self, prefix: str = "") -> Iterator[tuple[str, "torch.Tensor"]]:
        """``(dotted name, tensor)`` for every parameter and buffer, in the order of a ``state_dict``."""
        for group in ("_parameters", "_buffers", "_modules"):
            if not isinstance(self.state.get(group) or {}, Mapping):
                raise CorruptCheckpointError(f"{self.official_name}: {group} is not a mapping")
        for group in ("_parameters", "_buffers"):
            for name, value in (self.state.get(group) or {}).items():
                if value is not None:
                    yield prefix + name, _as_tensor(value, f"{self.official_name} {prefix + name}")
        for name, child in (self.state.get("_modules") or {}).items():
            if child is None:
                continue
            if not isinstance(child, OfficialModule):
                raise CorruptCheckpointError(
                    f"{self.official_name}: submodule {prefix + name!r} is {type(child).__name__}, not a module")
            yield from child.tensors(prefix + name + ".")

    def state_dict(self) -> "OrderedDict[str, torch.Tensor]":
        """The module's tensors by dotted name (float tensors as float32, on the CPU)."""
        return OrderedDict(self.tensors())


class _Variable(OfficialObject):
    """Stand-in for PyTorch 0.3's ``torch.autograd.variable.Variable``: the tensor is its first argument."""


def _as_tensor(value: Any, what: str) -> "torch.Tensor":
    import torch

    if isinstance(value, _Variable):
        value = value.args[0] if value.args else None
    if not isinstance(value, torch.Tensor):
        raise CorruptCheckpointError(f"{what} is {type(value).__name__}, expected a tensor")
    t = value.detach().to("cpu")
    return t.float() if t.is_floating_point() else t


def _module_class(pid: tuple) -> type:
    """Resolve a legacy ``('module', cls, source_file, source)`` persistent id to ``cls`` (a stand-in)."""
    if not (isinstance(pid, tuple) and len(pid) >= 2 and isinstance(pid[1], type) and issubclass(pid[1], OfficialObject)):
        raise UnsafePickleError(f"a module persistent id must name an allow-listed class, got {pid[:2]!r}")
    return pid[1]


_MODULE_CLASS_GLOBAL = f"{__name__}._module_class"

_TORCH_LAYERS = {
    "torch.nn.modules.conv": ("Conv2d", "ConvTranspose2d"),
    "torch.nn.modules.batchnorm": ("BatchNorm1d", "BatchNorm2d"),
    "torch.nn.modules.activation": ("LeakyReLU", "ReLU", "Tanh", "Sigmoid"),
    "torch.nn.modules.container": ("Sequential", "ModuleList"),
    "torch.nn.modules.linear": ("Linear",),
    "torch.nn.modules.rnn": ("LSTMCell",),
    "torch.nn.modules.pooling": ("MaxPool2d",),
    "torch.nn.modules.upsampling": ("Upsample", "UpsamplingNearest2d"),
}
#: Classes of the authors' repositories, by module path (edenton/svg and edenton/drnet-py).
AUTHOR_CLASSES: dict[str, tuple[str, ...]] = {
    "models.dcgan_64": ("encoder", "decoder", "dcgan_conv", "dcgan_upconv", "content_encoder", "pose_encoder"),
    "models.vgg_64": ("encoder", "decoder", "vgg_layer"),
    "models.lstm": ("lstm", "gaussian_lstm"),
    "models.dcgan_128": ("dcgan_conv", "dcgan_upconv", "content_encoder", "pose_encoder", "decoder"),
    "models.dcgan_unet_128": ("dcgan_conv", "dcgan_upconv", "content_encoder", "decoder"),
    "models.vgg_unet_128": ("vgg_layer", "content_encoder", "decoder"),
    "models.resnet_128": ("pose_encoder", "resnet18", "BasicBlock"),
}
_PLAIN_OBJECTS = {
    "argparse": ("Namespace",),
    "torch.optim.adam": ("Adam",),  # the official scripts store the optimiser class in opt.optimizer
    "torch.optim.rmsprop": ("RMSprop",),
    "torch.optim.sgd": ("SGD",),
    "torch.nn.backends.thnn": ("_get_thnn_function_backend",),  # every 0.3/0.4 module's _backend attribute
}


def _make_stand_ins() -> dict[str, type]:
    classes: dict[str, type] = {}

    def add(module: str, name: str, base: type) -> None:
        full = f"{module}.{name}"
        classes[full] = type(name, (base,), {"__module__": module, "__qualname__": name, "official_name": full})

    for table, base in ((_TORCH_LAYERS, OfficialModule), (AUTHOR_CLASSES, OfficialModule),
                        (_PLAIN_OBJECTS, OfficialObject)):
        for module, names in table.items():
            for name in names:
                add(module, name, base)
    classes["torch.autograd.variable.Variable"] = type(
        "Variable", (_Variable,), {"__module__": "torch.autograd.variable", "__qualname__": "Variable",
                                   "official_name": "torch.autograd.variable.Variable"})
    return classes


#: The allow-list: global name -> stand-in class (plus :func:`_module_class` for legacy module ids).
STAND_INS: dict[str, type] = _make_stand_ins()


def _safe_globals() -> list[tuple[Any, str]]:
    return [(cls, name) for name, cls in STAND_INS.items()] + [(_module_class, _MODULE_CLASS_GLOBAL)]


def _torch_allowed() -> set[str]:
    from torch import _weights_only_unpickler as wou

    return set(wou._get_allowed_globals())


# ------------------------------------------------------------------------------------------------ reading
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_STRING_OPS = {"BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING", "STRING"}


def pickle_globals(data: bytes) -> list[str]:
    """Every global (``module.name``) a pickle references, in order of first use; parsed, never executed."""
    from torch import _weights_only_unpickler as wou

    found: list[str] = []
    strings: list[str] = []  # the last string constants, for STACK_GLOBAL (protocol 4+)
    for op, arg, _ in pickletools.genops(data):
        if op.name == "GLOBAL":
            module, name = arg.split(" ", 1)
            if (module, name) in wou.NAME_MAPPING:
                module, name = wou.NAME_MAPPING[(module, name)]
            elif module in wou.IMPORT_MAPPING:
                module = wou.IMPORT_MAPPING[module]
            full = f"{module}.{name}"
        elif op.name == "STACK_GLOBAL":
            full = ".".join(strings[-2:]) if len(strings) >= 2 else "<unknown STACK_GLOBAL>"
        elif op.name in ("INST", "OBJ", "EXT1", "EXT2", "EXT4"):
            full = f"<{op.name} opcode {arg!r}>"
        else:
            if op.name in _STRING_OPS and isinstance(arg, (str, bytes)):
                strings.append(arg if isinstance(arg, str) else arg.decode("latin-1"))
            continue
        if full not in found:
            found.append(full)
    return found


def _check_globals(data: bytes, source: str) -> None:
    allowed = _torch_allowed() | set(STAND_INS)
    unknown = [g for g in pickle_globals(data) if g not in allowed]
    if unknown:
        raise UnsafePickleError(
            f"{source}: refused to unpickle: it references {', '.join(unknown)}, outside the allow-list of stand-in "
            "classes for the authors' models (vpzoo.zoo.official.STAND_INS) and PyTorch's tensor types. Nothing in "
            "the file was run. If this is a genuine authors' file of a model vpzoo does not convert yet, report it."
        )


def _rewrite_module_ids(data: bytes) -> bytes:
    """Turn each legacy ``('module', cls, file, source)`` persistent id into a call of :func:`_module_class`.

    At the tuple's MARK a GLOBAL of the allow-listed function is inserted; its BINPERSID becomes TUPLE1 + REDUCE.
    Memo indices are explicit in the stream, so inserting bytes changes nothing else.
    """
    ops = list(pickletools.genops(data))
    memo_str: dict[int, str] = {}
    marks: list[int] = []  # indices into ops of open MARKs
    tuple_first: dict[int, tuple[int, int]] = {}  # op index of a TUPLE -> (its MARK's op index, first item op index)
    inserts: dict[int, bytes] = {}  # byte position -> bytes to insert before it
    replaces: dict[int, bytes] = {}  # byte position of a one-byte opcode -> replacement
    module, name = _MODULE_CLASS_GLOBAL.rsplit(".", 1)
    call = b"c" + module.encode() + b"\n" + name.encode() + b"\n"
    for i, (op, arg, pos) in enumerate(ops):
        if op.name == "MARK":
            marks.append(i)
        elif op.name in ("TUPLE", "LIST", "DICT", "OBJ", "INST", "FROZENSET", "ADDITEMS", "APPENDS", "SETITEMS",
                         "POP_MARK"):
            if marks:
                m = marks.pop()
                if op.name == "TUPLE":
                    tuple_first[i] = (m, m + 1)
        elif op.name in ("BINPUT", "LONG_BINPUT", "PUT") and i > 0 and ops[i - 1][0].name in _STRING_OPS:
            memo_str[int(arg)] = ops[i - 1][1] if isinstance(ops[i - 1][1], str) else ops[i - 1][1].decode("latin-1")
        elif op.name == "BINPERSID":
            j = i - 1
            while j >= 0 and ops[j][0].name in ("BINPUT", "LONG_BINPUT", "PUT", "MEMOIZE"):
                j -= 1
            if j < 0 or j not in tuple_first:
                continue
            mark_i, first_i = tuple_first[j]
            first_op, first_arg, _ = ops[first_i]
            first = first_arg if first_op.name in _STRING_OPS else (
                memo_str.get(int(first_arg)) if first_op.name in ("BINGET", "LONG_BINGET", "GET") else None)
            if isinstance(first, bytes):
                first = first.decode("latin-1")
            if first == "module":
                inserts[ops[mark_i][2]] = call
                replaces[pos] = b"\x85R"  # TUPLE1, REDUCE
    if not replaces:
        return data
    out = bytearray()
    for i, (op, arg, pos) in enumerate(ops):
        end = ops[i + 1][2] if i + 1 < len(ops) else len(data)
        if pos in inserts:
            out += inserts[pos]
        out += replaces.get(pos, data[pos:end])
    return bytes(out)


def _read_legacy(f: io.BufferedReader, source: str) -> Any:
    """Read a legacy ``torch.save`` container with the weights-only unpickler (tensors on the CPU)."""
    import torch
    from torch import _weights_only_unpickler as wou

    def next_pickle(what: str) -> bytes:
        """The bytes of the next pickle in the container (parsed up to its STOP opcode; nothing is run)."""
        start = f.tell()
        try:
            for _ in pickletools.genops(f):
                pass
        except (ValueError, EOFError) as e:
            raise CorruptCheckpointError(f"{source}: its {what} is not a readable pickle ({e})") from None
        end = f.tell()
        f.seek(start)
        data = f.read(end - start)
        _check_globals(data, source)
        return data

    def small_pickle(what: str) -> Any:
        data = next_pickle(what)
        try:
            return wou.Unpickler(io.BytesIO(data), encoding="utf-8").load()
        except Exception as e:
            raise CorruptCheckpointError(f"{source}: cannot read its {what}: {e}") from None

    try:
        magic = small_pickle("magic number")
    except (ValueError, EOFError, CorruptCheckpointError) as e:
        raise CorruptCheckpointError(f"{source}: not a PyTorch file (neither zip nor legacy format): {e}") from None
    if magic != _LEGACY_MAGIC:
        raise CorruptCheckpointError(f"{source}: not a PyTorch file (bad magic number)")
    small_pickle("protocol version")
    small_pickle("system information")

    main = next_pickle("pickled object")

    storages: dict[str, "torch.storage.TypedStorage"] = {}
    views: dict[str, "torch.storage.TypedStorage"] = {}

    class LegacyUnpickler(wou.Unpickler):
        def persistent_load(self, pid: Any) -> Any:
            if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
                raise UnsafePickleError(f"{source}: unsupported persistent id {pid!r:.80}")
            _, storage_type, key, _location, numel, view = pid
            dtype = storage_type.dtype
            if key not in storages:
                nbytes = int(numel) * torch._utils._element_size(dtype)
                storages[key] = torch.storage.TypedStorage(
                    wrap_storage=torch.UntypedStorage(nbytes), dtype=dtype, _internal=True)
            root = storages[key]
            if view is None:
                return root
            view_key, offset, size = view
            if view_key not in views:
                el = torch._utils._element_size(dtype)
                views[view_key] = torch.storage.TypedStorage(
                    wrap_storage=root._untyped_storage[offset * el:(offset + size) * el], dtype=dtype, _internal=True)
            return views[view_key]

    with torch.serialization.safe_globals(_safe_globals()):
        try:
            result = LegacyUnpickler(io.BytesIO(_rewrite_module_ids(main)), encoding="utf-8").load()
        except UnsafePickleError:
            raise
        except Exception as e:
            raise CorruptCheckpointError(f"{source}: cannot unpickle it with the weights-only unpickler: {e}") from None
    keys = small_pickle("storage keys")
    if not isinstance(keys, list):
        raise CorruptCheckpointError(f"{source}: the storage key list is {type(keys).__name__}")
    for key in keys:
        if key not in storages:
            raise CorruptCheckpointError(f"{source}: storage {key!r} is listed but never used")
        storage = storages[key]
        header = f.read(8)
        if len(header) != 8:
            raise CorruptCheckpointError(f"{source}: truncated (storage {key!r} is missing)")
        (numel,) = struct.unpack("<q", header)
        el = torch._utils._element_size(storage.dtype)
        if numel * el != storage._untyped_storage.nbytes():
            raise CorruptCheckpointError(
                f"{source}: storage {key!r} holds {numel} elements, the pickle announced "
                f"{storage._untyped_storage.nbytes() // el}")
        raw = f.read(numel * el)
        if len(raw) != numel * el:
            raise CorruptCheckpointError(f"{source}: truncated inside storage {key!r}")
        if raw:
            storage._untyped_storage.copy_(torch.UntypedStorage.from_buffer(raw, dtype=torch.uint8))
    return result


def read_official_file(path: str | os.PathLike) -> Any:
    """Unpickle an authors' ``torch.save`` file safely: weights-only unpickler + stand-ins; tensors on the CPU.

    Returns the saved object (typically a dict of :class:`OfficialModule` stand-ins and an ``argparse.Namespace``
    stand-in). Raises :class:`UnsafePickleError` (a global outside the allow-list; nothing was run) or
    :class:`~vpzoo.zoo.errors.CorruptCheckpointError` (not a readable PyTorch file).
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointUnavailableError(f"no such file: {path}")
    source = str(path)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            pkls = [n for n in z.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
            if len(pkls) != 1:
                raise CorruptCheckpointError(f"{source}: a zip file but not a torch.save archive (no data.pkl)")
            _check_globals(z.read(pkls[0]), source)
        with torch.serialization.safe_globals(_safe_globals()):
            try:
                return torch.load(path, map_location="cpu", weights_only=True)
            except Exception as e:
                raise CorruptCheckpointError(f"{source}: cannot read it with the weights-only unpickler: {e}") from None
    with open(path, "rb") as f:
        return _read_legacy(f, source)


# ------------------------------------------------------------------------------------------------ mapping helpers
def _options(saved: Mapping[str, Any], source: str) -> dict[str, Any]:
    opt = saved.get("opt")
    if not (isinstance(opt, OfficialObject) and opt.official_name == "argparse.Namespace"):
        raise CorruptCheckpointError(f"{source}: 'opt' is {type(opt).__name__}, expected the argparse options")
    return dict(opt.state)


def _need(opts: Mapping[str, Any], keys: tuple[str, ...], source: str) -> None:
    missing = [k for k in keys if k not in opts]
    if missing:
        raise CorruptCheckpointError(f"{source}: the saved options lack {missing} (found: {sorted(opts)})")


def _module(saved: Mapping[str, Any], key: str, allowed: tuple[str, ...], source: str) -> OfficialModule:
    mod = saved.get(key)
    if not isinstance(mod, OfficialModule) or mod.official_name not in allowed:
        got = mod.official_name if isinstance(mod, OfficialObject) else type(mod).__name__
        raise CorruptCheckpointError(f"{source}: {key!r} is {got}, expected one of {', '.join(allowed)}")
    return mod


def _lstm_rules() -> list[tuple[str, str]]:
    # nn.LSTMCell layer l -> nn.LSTM's weights of layer l (same gate order i, f, g, o)
    return [(r"lstm\.(\d+)\.(weight_ih|weight_hh|bias_ih|bias_hh)", r"lstm.\2_l\1")]


def _fit(model: "torch.nn.Module", state: dict[str, "torch.Tensor"], source: str) -> dict[str, "torch.Tensor"]:
    """Add ``num_batches_tracked`` (PyTorch 0.3 did not save it) and check names and shapes against ``model``."""
    import torch

    from vpzoo.zoo.format import check_state_dict

    expected = model.state_dict()
    for key in expected:
        if key.endswith(".num_batches_tracked") and key not in state:
            state[key] = torch.zeros((), dtype=torch.long)
    try:
        check_state_dict(model, state, True, source)
    except ConfigMismatchError as e:
        raise ConfigMismatchError(f"the file's tensors do not fit the vpzoo model built from its options: {e}") from None
    return {k: state[k].to(expected[k].dtype) for k in expected}


# ------------------------------------------------------------------------------------------------ SVG
_SVG_CODECS = {"models.dcgan_64": "dcgan", "models.vgg_64": "vgg"}
_SVG_OPTIONS = ("model", "image_width", "channels", "g_dim", "z_dim", "rnn_size", "predictor_rnn_layers",
                "posterior_rnn_layers", "n_past", "n_future")


def _svg_codec_rules(codec: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    if codec == "dcgan":
        enc = [(r"c([1-4])\.main\.([01])\.(\w+)", lambda m: f"blocks.{int(m[1]) - 1}.{m[2]}.{m[3]}"),
               (r"c5\.([01])\.(\w+)", r"head.\1.\2")]
        dec = [(r"upc1\.([01])\.(\w+)", r"project.\1.\2"),
               (r"upc([2-4])\.main\.([01])\.(\w+)", lambda m: f"blocks.{int(m[1]) - 2}.{m[2]}.{m[3]}"),
               (r"upc5\.0\.(\w+)", r"out.0.\1")]
    else:
        enc = [(r"c([1-4])\.(\d)\.main\.([01])\.(\w+)", lambda m: f"blocks.{int(m[1]) - 1}.{m[2]}.{m[3]}.{m[4]}"),
               (r"c5\.([01])\.(\w+)", r"head.\1.\2")]
        dec = [(r"upc1\.([01])\.(\w+)", r"project.\1.\2"),
               (r"upc([2-4])\.(\d)\.main\.([01])\.(\w+)", lambda m: f"blocks.{int(m[1]) - 2}.{m[2]}.{m[3]}.{m[4]}"),
               (r"upc5\.0\.main\.([01])\.(\w+)", r"out.0.\1.\2"),
               (r"upc5\.1\.(\w+)", r"out.1.\1")]
    return enc, dec


def _rename(tensors: Mapping[str, "torch.Tensor"], rules: list[tuple[str, Any]], prefix: str, what: str,
               source: str) -> dict[str, "torch.Tensor"]:
    out = {}
    for name, t in tensors.items():
        for pattern, repl in rules:
            m = re.fullmatch(pattern, name)
            if m:
                out[prefix + (repl(m) if callable(repl) else m.expand(repl))] = t
                break
        else:
            raise ConfigMismatchError(f"{source}: {what} has a tensor {name!r} that vpzoo's model has no place for")
    return out


def convert_svg(saved: Mapping[str, Any], source: str = "file") -> tuple["VideoPredictionModel", dict[str, Any]]:
    """Build the vpzoo SVG-LP (or SVG-FP) model of an edenton/svg ``model.pth`` and load its weights.

    Args:
        saved: what :func:`read_official_file` returned: ``{'encoder', 'decoder', 'frame_predictor', 'posterior',
            'prior', 'opt'}`` (``train_svg_lp.py``; without ``'prior'`` from ``train_svg_fp.py``).
        source: the file's name, for messages.

    Returns:
        ``(model, info)``: the model in eval mode, and ``info`` with the saved options (``options``) and the
        mapping facts (``skip_frame``, ``codec``).
    """
    from vpzoo.registry import get_model_class

    if not isinstance(saved, Mapping):
        raise CorruptCheckpointError(f"{source}: expected the dict train_svg_lp.py saves, got {type(saved).__name__}")
    keys = set(saved)
    lp = {"encoder", "decoder", "frame_predictor", "posterior", "prior", "opt"}
    fp = lp - {"prior"}
    if keys not in (lp, fp):
        raise CorruptCheckpointError(
            f"{source}: keys {sorted(keys)} are not those of an edenton/svg model.pth ({sorted(lp)}, or without "
            "'prior' for SVG-FP)")
    opts = _options(saved, source)
    _need(opts, _SVG_OPTIONS, source)
    enc_names = tuple(f"{m}.encoder" for m in _SVG_CODECS)
    encoder = _module(saved, "encoder", enc_names, source)
    codec_module = encoder.official_name.rsplit(".", 1)[0]
    codec = _SVG_CODECS[codec_module]
    decoder = _module(saved, "decoder", (f"{codec_module}.decoder",), source)
    if opts["model"] != codec:
        raise CorruptCheckpointError(f"{source}: opt.model is {opts['model']!r} but the encoder is {encoder.official_name}")
    if opts["image_width"] != 64:
        raise ConfigMismatchError(f"{source}: opt.image_width is {opts['image_width']}; vpzoo's SVG codecs are 64x64")
    predictor = _module(saved, "frame_predictor", ("models.lstm.lstm",), source)
    posterior = _module(saved, "posterior", ("models.lstm.gaussian_lstm",), source)
    prior = _module(saved, "prior", ("models.lstm.gaussian_lstm",), source) if "prior" in saved else None
    skip_frame = "previous" if opts.get("last_frame_skip", False) else "penultimate"
    enc_tensors = encoder.state_dict()
    config = {
        "image_size": 64, "channels": int(opts["channels"]), "n_past": int(opts["n_past"]),
        "n_future": int(opts["n_future"]), "frame_codec": codec,
        "codec_width": _first_width(enc_tensors, "c1.main.0.weight" if codec == "dcgan" else "c1.0.main.0.weight",
                                    source), "g_dim": int(opts["g_dim"]),
        "z_dim": int(opts["z_dim"]), "rnn_size": int(opts["rnn_size"]),
        "predictor_layers": int(opts["predictor_rnn_layers"]), "posterior_layers": int(opts["posterior_rnn_layers"]),
        "prior_layers": int(opts.get("prior_rnn_layers", 1)), "beta": float(opts.get("beta", 1e-4)),
        "lr": float(opts.get("lr", 2e-3)), "adam_beta1": float(opts.get("beta1", 0.9)), "skip_frame": skip_frame,
    }
    model = get_model_class("svg_lp" if prior is not None else "svg_fp")(**config)
    enc_rules, dec_rules = _svg_codec_rules(codec)
    gauss = [(r"embed\.(\w+)", r"embed.\1"), (r"mu_net\.(\w+)", r"mu.\1"), (r"logvar_net\.(\w+)", r"logvar.\1")]
    state: dict[str, Any] = {}
    state.update(_rename(enc_tensors, enc_rules, "encoder.", "the encoder", source))
    state.update(_rename(decoder.state_dict(), dec_rules, "decoder.", "the decoder", source))
    state.update(_rename(predictor.state_dict(), [(r"embed\.(\w+)", r"embed.\1"), (r"output\.0\.(\w+)", r"output.0.\1")]
                            + _lstm_rules(), "frame_predictor.", "the frame predictor", source))
    state.update(_rename(posterior.state_dict(), gauss + _lstm_rules(), "posterior.", "the posterior", source))
    if prior is not None:
        state.update(_rename(prior.state_dict(), gauss + _lstm_rules(), "prior.", "the prior", source))
    model.load_state_dict(_fit(model, state, source))
    info = {"options": _plain_options(opts), "codec": codec, "skip_frame": skip_frame,
            "family": "svg_lp" if prior is not None else "svg_fp"}
    return model.eval(), info


def _first_width(tensors: Mapping[str, "torch.Tensor"], key: str, source: str) -> int:
    """Channels of a codec's first convolution: 64 in the authors' code (not an option there), read from the file."""
    if key not in tensors or tensors[key].dim() != 4:
        raise CorruptCheckpointError(f"{source}: no first convolution {key!r} in the encoder")
    return int(tensors[key].shape[0])


def _plain_options(opts: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in opts.items():
        if isinstance(v, (str, int, float, bool)) or v is None:
            out[k] = v
        elif isinstance(v, type) and issubclass(v, OfficialObject):
            out[k] = v.official_name
        else:
            out[k] = repr(v)
    return out


# ------------------------------------------------------------------------------------------------ DRNet
_DRNET_NETS = {"netD", "netEP", "netEC", "opt"}
_DRNET_LSTM = {"lstm", "opt"}


def _vgg_unet_rules(size: int) -> tuple[list[tuple[str, Any]], list[tuple[str, Any]]]:
    """edenton/drnet-py ``models.vgg_unet_{64,128}`` names -> vpzoo's VGG encoder/decoder names."""
    n = 5 if size == 128 else 4  # skip blocks: c1..c5 (128 px) or c1..c4 (64 px); then the head
    enc = [(rf"c([1-{n}])\.(\d)\.main\.([01])\.(\w+)", lambda m: f"blocks.{int(m[1]) - 1}.{m[2]}.{m[3]}.{m[4]}"),
           (rf"c{n + 1}\.([01])\.(\w+)", r"head.\1.\2")]
    dec = [(r"upc1\.([01])\.(\w+)", r"project.\1.\2"),
           (rf"upc([2-{n}])\.(\d)\.main\.([01])\.(\w+)", lambda m: f"blocks.{int(m[1]) - 2}.{m[2]}.{m[3]}.{m[4]}"),
           (rf"upc{n + 1}\.0\.main\.([01])\.(\w+)", r"out.0.\1.\2"),
           (rf"upc{n + 1}\.1\.(\w+)", r"out.1.\1")]
    return enc, dec


_RESNET_RULES: list[tuple[str, Any]] = [
    (r"main\.conv1\.(\w+)", r"stem.0.\1"),
    (r"main\.bn1\.(\w+)", r"stem.1.\1"),
    (r"main\.layer(\d)\.(\d)\.(conv1|bn1|conv2|bn2)\.(\w+)", lambda m: f"stages.{int(m[1]) - 1}.{m[2]}.{m[3]}.{m[4]}"),
    (r"main\.layer(\d)\.(\d)\.downsample\.([01])\.(\w+)",
     lambda m: f"stages.{int(m[1]) - 1}.{m[2]}.shortcut.{m[3]}.{m[4]}"),
    (r"main\.conv_out\.(\w+)", r"head.0.\1"),
    (r"main\.bn_out\.(\w+)", r"head.1.\1"),
]
_LSTM_MLP_RULES: list[tuple[str, Any]] = [(r"embed\.(\w+)", r"embed.\1"), (r"output\.0\.(\w+)", r"output.0.\1"),
                                          (r"lstm\.(\d+)\.(weight_ih|weight_hh|bias_ih|bias_hh)", r"lstm.\2_l\1")]


def convert_drnet(saved: Mapping[str, Any], source: str = "file",
                  networks: Mapping[str, Any] | None = None) -> tuple["VideoPredictionModel", dict[str, Any]]:
    """Build the vpzoo DRNet of an edenton/drnet-py file and load its weights.

    The layout is read from the pickle's own keys:

    - ``{'netD', 'netEP', 'netEC', 'opt'}`` (``train_drnet.py``): the content encoder, pose encoder and decoder.
      The pose LSTM (trained afterwards by ``train_lstm.py``, saved in its own file) keeps vpzoo's initialisation
      and ``info['lstm_trained']`` is False: such a model reconstructs and swaps content/pose, but its predictions
      are not meaningful until the LSTM is trained (``stage: lstm``) or an LSTM file is added.
    - ``{'lstm', 'opt'}`` (``train_lstm.py``): the pose LSTM alone; pass the DRNet networks file it was trained on
      (its ``opt.model_path``), read by :func:`read_official_file`, as ``networks``.

    The scene discriminator C is not saved by the official code; it keeps vpzoo's initialisation (prediction does
    not use it). Supported networks: ``vgg_unet`` content model and ``resnet`` pose model at 64 or 128 px (the
    released KTH model's).
    """
    from vpzoo.registry import get_model_class

    if not isinstance(saved, Mapping):
        raise CorruptCheckpointError(f"{source}: expected the dict drnet-py saves, got {type(saved).__name__}")
    keys = set(saved)
    if keys == _DRNET_LSTM:
        if networks is None:
            raise CheckpointUnavailableError(
                f"{source} holds the pose LSTM of train_lstm.py alone ('lstm', 'opt'); it needs the DRNet networks it "
                f"was trained on (opt.model_path = {_options(saved, source).get('model_path', '?')!r}): pass that "
                "file too (`vpzoo convert drnet NETWORKS.pth OUT_DIR --lstm LSTM.pth`)")
        nets, lstm_file = networks, saved
    elif keys == _DRNET_NETS:
        nets, lstm_file = saved, networks
    else:
        raise CorruptCheckpointError(
            f"{source}: keys {sorted(keys)} are neither those of drnet-py's train_drnet.py ({sorted(_DRNET_NETS)}) nor "
            f"of its train_lstm.py ({sorted(_DRNET_LSTM)})")
    if not isinstance(nets, Mapping) or set(nets) != _DRNET_NETS:
        raise CorruptCheckpointError(f"{source}: the networks file must hold {sorted(_DRNET_NETS)}")
    if lstm_file is not None and (not isinstance(lstm_file, Mapping) or set(lstm_file) != _DRNET_LSTM):
        raise CorruptCheckpointError(f"{source}: the LSTM file must hold {sorted(_DRNET_LSTM)}")
    opts = _options(nets, source)
    _need(opts, ("content_model", "pose_model", "content_dim", "pose_dim", "image_width", "channels"), source)
    size = int(opts["image_width"])
    if opts["content_model"] != "vgg_unet" or opts["pose_model"] != "resnet" or size not in (64, 128):
        raise ConfigMismatchError(
            f"{source}: content_model={opts['content_model']!r}, pose_model={opts['pose_model']!r}, "
            f"image_width={size}; this converter handles the released KTH configuration (vgg_unet + resnet, 64 or "
            "128 px) only")
    content = _module(nets, "netEC", (f"models.vgg_unet_{size}.content_encoder",), source)
    decoder = _module(nets, "netD", (f"models.vgg_unet_{size}.decoder",), source)
    pose = _module(nets, "netEP", (f"models.resnet_{size}.pose_encoder",), source)
    content_tensors, pose_tensors = content.state_dict(), pose.state_dict()
    width = _first_width(content_tensors, "c1.0.main.0.weight", source)
    if _first_width(pose_tensors, "main.conv1.weight", source) != width:
        raise ConfigMismatchError(f"{source}: the content and pose encoders have different widths; vpzoo's DRNet "
                                  "uses one codec_width for both")
    lstm_opts = _options(lstm_file, source) if lstm_file is not None else {}
    normalize = bool(opts.get("normalize", False))
    if lstm_file is not None and bool(lstm_opts.get("normalize", normalize)) != normalize:
        raise ConfigMismatchError(f"{source}: the LSTM and the networks disagree on --normalize")
    defaults = {"n_past": 10, "n_future": 10, "rnn_size": 256, "rnn_layers": 2, "lr": 2e-4, "beta1": 0.9}
    lo = {k: lstm_opts.get(k, v) for k, v in defaults.items()}
    config = {
        "image_size": size, "channels": int(opts["channels"]), "n_past": int(lo["n_past"]),
        "n_future": int(lo["n_future"]), "content_model": "vgg_unet", "pose_model": "resnet",
        "content_dim": int(opts["content_dim"]), "pose_dim": int(opts["pose_dim"]), "codec_width": width,
        "normalize_pose": normalize,
        "sd_hidden": int(opts.get("sd_nf", 100)), "adv_weight": float(opts.get("sd_weight", 1e-4)),
        "lr": float(opts.get("lr", 2e-3)), "adam_beta1": float(opts.get("beta1", 0.5)),
        "frame_sampling": "random" if str(opts.get("dataset", "")).startswith("kth") else "consecutive",
        "rnn_size": int(lo["rnn_size"]), "rnn_layers": int(lo["rnn_layers"]), "lstm_lr": float(lo["lr"]),
        "lstm_beta1": float(lo["beta1"]), "stage": "both" if lstm_file is not None else "lstm",
    }
    model = get_model_class("drnet")(**config)
    enc_rules, dec_rules = _vgg_unet_rules(size)
    state: dict[str, Any] = {}
    state.update(_rename(content_tensors, enc_rules, "content_encoder.", "netEC", source))
    state.update(_rename(decoder.state_dict(), dec_rules, "decoder.", "netD", source))
    state.update(_rename(pose_tensors, _RESNET_RULES, "pose_encoder.", "netEP", source))
    if lstm_file is not None:
        lstm = _module(lstm_file, "lstm", ("models.lstm.lstm",), source)
        state.update(_rename(lstm.state_dict(), _LSTM_MLP_RULES, "pose_lstm.", "the pose LSTM", source))
    kept = ("discriminator.",) + (("pose_lstm.",) if lstm_file is None else ())
    own = model.state_dict()
    state.update({k: v for k, v in own.items() if k.startswith(kept)})
    model.load_state_dict(_fit(model, state, source))
    info = {"options": _plain_options(opts), "lstm_options": _plain_options(lstm_opts),
            "lstm_trained": lstm_file is not None, "family": "drnet"}
    return model.eval(), info


# ------------------------------------------------------------------------------------------------ conversion
CONVERTERS: dict[str, Callable[..., tuple["VideoPredictionModel", dict[str, Any]]]] = {
    "svg": convert_svg,
    "drnet": convert_drnet,
}


def convert_official(
    path: str | os.PathLike,
    out_dir: str | os.PathLike,
    converter: str,
    *,
    card: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> Path:
    """Convert an authors' file into a zoo folder (``config.json``, ``model.safetensors``, ``README.md``).

    Args:
        path: the authors' ``.pth`` file (legacy or zip serialisation).
        out_dir: the zoo folder to write (created; its three files are overwritten).
        converter: ``"svg"`` or ``"drnet"`` (:data:`CONVERTERS`).
        card: model-card fields (default: a card naming the source file and the converter).
        kwargs: passed to the converter (``networks=`` of :func:`convert_drnet`).

    Returns:
        ``out_dir``. Load it with ``vpzoo.load(out_dir)``.
    """
    from vpzoo.zoo.format import save_pretrained

    if converter not in CONVERTERS:
        raise ValueError(f"unknown converter {converter!r}; expected one of {sorted(CONVERTERS)}")
    path = Path(path)
    saved = read_official_file(path)
    model, info = CONVERTERS[converter](saved, str(path), **kwargs)
    training = {"converted_from": path.name, "converter": converter, "converter_version": CONVERTER_VERSION,
                "official_options": info.get("options", {})}
    card_info = dict(card) if card is not None else {
        "name": path.stem, "notes": f"Converted by `vpzoo convert {converter}` from the authors' file {path.name}."}
    return save_pretrained(model, out_dir, card=card_info, training=training)


# ------------------------------------------------------------------------------------------------ registered entries
_TRAINING_ONLY = {"val_num_samples", "val_seed", "metric_protocol"}


def _offline() -> bool:
    from vpzoo.metrics.weights import is_offline

    return is_offline()


def official_cache_dir(name: str) -> Path:
    """``<vpzoo cache>/official/<name>``: the authors' file (``source/``) and its conversion (``converted-v*``)."""
    from vpzoo.cache import default_cache_dir

    return default_cache_dir("official", name)


def _source_name(weights: Mapping[str, Any]) -> str:
    from urllib.parse import unquote, urlparse

    return weights.get("filename") or Path(unquote(urlparse(weights["url"]).path)).name or "weights.pth"


def official_checkpoint(
    entry: Mapping[str, Any],
    *,
    local_files_only: bool = False,
    force_download: bool = False,
    progress: bool = True,
) -> Path:
    """The converted zoo folder of a registered ``weights.source: official`` checkpoint.

    On first use the authors' file is downloaded from ``weights.url`` (the repository's raw file at a pinned commit)
    with :func:`vpzoo.cache.download_url` (resumable, progress bar) into ``<vpzoo cache>/official/<name>/source/``,
    its git blob id is checked against ``weights.git_blob`` (a mismatch deletes it and raises), and it is converted
    by ``weights.converter`` into ``<vpzoo cache>/official/<name>/converted-v<CONVERTER_VERSION>-<blob>/``. Later
    calls return that folder without network access. The conversion's config comes from the file's own saved
    options; where it differs from the entry's ``config`` a warning names the keys.

    Offline (``local_files_only``, ``$VPZOO_OFFLINE`` or ``$HF_HUB_OFFLINE``): a cached conversion or a cached
    authors' file is used; otherwise :class:`~vpzoo.zoo.errors.CheckpointUnavailableError` says how to get it.
    """
    import shutil
    import tempfile
    import warnings

    from vpzoo.cache import DownloadError, download_url, git_blob_sha1
    from vpzoo.zoo.format import CONFIG_NAME, WEIGHTS_NAME, read_config

    name, w = entry["name"], entry["weights"]
    if entry.get("status") == "planned":
        raise CheckpointUnavailableError(
            f"checkpoint {name!r} is planned, not available yet: {entry.get('notes', '')}".strip())
    blob = w["git_blob"].lower()
    root = official_cache_dir(name)
    raw = root / "source" / _source_name(w)
    converted = root / f"converted-v{CONVERTER_VERSION}-{blob[:12]}"
    if force_download:
        for p in (raw, converted):
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
    if (converted / WEIGHTS_NAME).is_file() and (converted / CONFIG_NAME).is_file():
        return converted
    offline = local_files_only or _offline()
    if raw.is_file():
        got = git_blob_sha1(raw)
        if got != blob:
            raw.unlink()
            if offline:
                raise CorruptCheckpointError(
                    f"checkpoint {name!r}: the cached authors' file had git blob {got}, not the pinned {blob}; it was "
                    "deleted. Download it again with network access.")
    if not raw.is_file():
        if offline:
            why = "local_files_only=True" if local_files_only else "offline mode ($VPZOO_OFFLINE / $HF_HUB_OFFLINE)"
            raise CheckpointUnavailableError(
                f"checkpoint {name!r} comes from the authors' file {w['url']} (git blob {blob}), which is neither "
                f"converted nor downloaded in the vpzoo cache ({root}) and {why} forbids downloading it. Fix: run "
                f"once with network access; or download the file elsewhere, check `git hash-object FILE` prints "
                f"{blob}, and put it at {raw}; or convert it yourself: `vpzoo convert {w['converter']} FILE DIR` "
                "and vpzoo.load(DIR).")
        try:
            download_url(w["url"], raw, git_blob=blob, expected_size=w.get("size"), progress=progress)
        except DownloadError as e:
            raise CheckpointUnavailableError(f"checkpoint {name!r}: {e}") from e
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=".converting-"))
    try:
        card = {k: entry[k] for k in ("name", "dataset", "license", "paper", "notes") if k in entry}
        convert_official(raw, tmp, w["converter"], card=card)
        if converted.exists():
            shutil.rmtree(converted)
        os.replace(tmp, converted)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    got_cfg = read_config(converted / CONFIG_NAME)["config"]
    differ = sorted(k for k, v in entry.get("config", {}).items()
                    if k not in _TRAINING_ONLY and k in got_cfg and got_cfg[k] != v)
    if differ:
        warnings.warn(
            f"checkpoint {name!r}: the authors' file's own options give "
            + ", ".join(f"{k}={got_cfg[k]!r}" for k in differ) + " where checkpoints.yaml records "
            + ", ".join(f"{k}={entry['config'][k]!r}" for k in differ) + "; the file's options are used (the "
            "entry is out of date)", stacklevel=3)
    return converted
