"""The model registry: models register themselves by name with :func:`register_model` (as timm does)."""

from __future__ import annotations

import difflib
import fnmatch
from typing import Any, Callable, TypeVar

__all__ = ["register_model", "list_models", "get_model_class", "create_model", "suggest"]

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


def list_models(pattern: str = "*") -> list[str]:
    """Sorted names of the registered models matching the fnmatch ``pattern`` (e.g. ``"svg*"``)."""
    _ensure_models_imported()
    return sorted(n for n in _MODELS if fnmatch.fnmatch(n, pattern))


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
