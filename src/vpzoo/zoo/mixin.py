"""``save_pretrained`` / ``push_to_hub`` / ``from_pretrained`` on every vpzoo model (a base of VideoPredictionModel)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, TypeVar

__all__ = ["PretrainedMixin"]

M = TypeVar("M", bound="PretrainedMixin")


class PretrainedMixin:
    """Zoo-format publishing for models; see :mod:`vpzoo.zoo.format` for the folder layout."""

    #: Where a model loaded by :func:`vpzoo.load` came from (``None`` for a model built in code).
    zoo_info: dict[str, Any] | None = None

    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        *,
        dtype: str | None = None,
        metrics: list[Mapping[str, Any]] | None = None,
        card: Mapping[str, Any] | None = None,
        repo_id: str | None = None,
        model_card: bool = True,
        max_shard_bytes: int | None = None,
    ) -> Path:
        """Write ``config.json``, ``model.safetensors`` and a model card ``README.md`` (the Hub layout).

        See :func:`vpzoo.zoo.format.save_pretrained` for the arguments. ``vpzoo.load(save_directory)`` gives the
        model back.
        """
        from vpzoo.zoo.format import save_pretrained

        return save_pretrained(self, save_directory, dtype=dtype, metrics=metrics, card=card, repo_id=repo_id,
                               model_card=model_card, max_shard_bytes=max_shard_bytes)

    def push_to_hub(
        self,
        repo_id: str,
        *,
        private: bool | None = None,
        token: str | None = None,
        revision: str | None = None,
        commit_message: str | None = None,
        create_pr: bool = False,
        dtype: str | None = None,
        metrics: list[Mapping[str, Any]] | None = None,
        card: Mapping[str, Any] | None = None,
    ) -> Any:
        """Publish to a Hugging Face Hub model repository; see :func:`vpzoo.zoo.hub.push_to_hub`."""
        from vpzoo.zoo.hub import push_to_hub

        return push_to_hub(self, repo_id, private=private, token=token, revision=revision,
                           commit_message=commit_message, create_pr=create_pr, dtype=dtype, metrics=metrics, card=card)

    @classmethod
    def from_pretrained(cls: type[M], name_or_path: str | os.PathLike, **kwargs: Any) -> M:
        """:func:`vpzoo.load`, checking that the checkpoint is a ``cls`` (e.g. ``SVGLP.from_pretrained(...)``)."""
        from vpzoo.zoo.loading import load

        model = load(name_or_path, **kwargs)
        if not isinstance(model, cls):
            raise TypeError(f"{name_or_path!r} holds a {type(model).__qualname__}, not a {cls.__qualname__}")
        return model
