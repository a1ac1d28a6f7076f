"""The model registry: models register themselves by name with :func:`register_model` (as timm does)."""

from __future__ import annotations

import difflib
import fnmatch
from typing import Any, Callable, TypeVar

__all__ = ["register_model", "list_models", "declared_models", "get_model_class", "create_model", "suggest"]

_MODELS: dict[str, type] = {}
T = TypeVar("T", bound=type)


def register_model(name: str) -> Callable[[T], T]:
    """Class decorator that registers a :class:`~vpzoo.models.base.VideoPredictionModel` under ``name``."""

    def decorator(cls: T) -> T:
        if name in _MODELS and _MODELS[name] is not cls:
            raise ValueError(f"model name {name!r} is already registered by {_MODELS[name].__qualname__}")
        _MODELS[name] = cls
        cls.model_name = name
        return cls

    return decorator


def _ensure_models_imported() -> None:
    import vpzoo.models  # noqa: F401  (importing the package registers every model)


def declared_models() -> list[str]:
    """The names the packaged models register, read from their source without importing them.

    Importing a model imports Lightning (a few seconds), so ``vpzoo list`` reads the ``@register_model("name")``
    decorators of the modules that :mod:`vpzoo.models` imports instead; a test checks that this agrees with the
    registry after the import. Raises ``OSError``/``SyntaxError`` when the sources cannot be read.
    """
    import ast
    from pathlib import Path

    package = Path(__file__).resolve().parent / "models"
    modules = []
    for node in ast.walk(ast.parse((package / "__init__.py").read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):  # from vpzoo.models.svg import ..., from .svg import ...,
            module = node.module or ""  # from vpzoo.models import svg, from . import svg
            if node.level == 1 and not module or module == "vpzoo.models":
                modules += [alias.name for alias in node.names]
            elif node.level == 1:
                modules.append(module.split(".")[0])
            elif module.startswith("vpzoo.models."):
                modules.append(module.split(".")[2])
        elif isinstance(node, ast.Import):  # import vpzoo.models.svg
            modules += [a.name.split(".")[2] for a in node.names if a.name.startswith("vpzoo.models.")]
    names = []
    for module in dict.fromkeys(modules):
        if not (package / f"{module}.py").is_file():  # a name imported from the package itself, not a module
            continue
        tree = ast.parse((package / f"{module}.py").read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.ClassDef):
                continue
            for deco in node.decorator_list:
                func = deco.func if isinstance(deco, ast.Call) else None
                name = getattr(func, "id", None) or getattr(func, "attr", None)
                if name == "register_model" and deco.args and isinstance(deco.args[0], ast.Constant):
                    names.append(str(deco.args[0].value))
    return sorted(set(names))


def list_models(pattern: str = "*") -> list[str]:
    """Sorted names of the registered models matching the fnmatch ``pattern`` (e.g. ``"svg*"``).

    Does not import the models (nor Lightning): the packaged ones are read from their source
    (:func:`declared_models`), models registered by other code are taken from the registry.
    """
    try:
        names = set(declared_models()) | set(_MODELS)
    except (OSError, SyntaxError):  # sources unavailable (e.g. a zipped install): import them
        _ensure_models_imported()
        names = set(_MODELS)
    return sorted(n for n in names if fnmatch.fnmatch(n, pattern))


def suggest(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.4)
    return f"; did you mean {', '.join(map(repr, close))}?" if close else ""


def get_model_class(name: str) -> type:
    """The class registered under ``name``; an unknown name raises ``KeyError`` with the closest names."""
    _ensure_models_imported()
    if name not in _MODELS:
        raise KeyError(f"unknown model {name!r}{suggest(name, list(_MODELS))} Known models: {sorted(_MODELS)}")
    return _MODELS[name]


def create_model(name: str, **overrides: Any):
    """Build an untrained model from its default config, with ``overrides`` applied to its init arguments."""
    return get_model_class(name)(**overrides)
