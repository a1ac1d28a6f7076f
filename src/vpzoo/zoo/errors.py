"""Errors raised by the zoo (:func:`vpzoo.load`, checkpoints.yaml, the Hub), each with what to do about it.

All derive from :class:`ZooError` and from the built-in exception a caller would naturally catch
(``KeyError`` for an unknown name, ``FileNotFoundError`` for something that is not there, ``ValueError`` for
content that is wrong).
"""

from __future__ import annotations

__all__ = [
    "ZooError",
    "UnknownCheckpointError",
    "CheckpointUnavailableError",
    "CorruptCheckpointError",
    "ConfigMismatchError",
    "PlannedCheckpointError",
]


class ZooError(Exception):
    """Base class of the zoo's errors."""


class UnknownCheckpointError(ZooError, KeyError):
    """A name that is neither a registered checkpoint, nor a path, nor an ``hf://`` reference."""

    def __str__(self) -> str:  # KeyError would print the repr of the message
        return str(self.args[0]) if self.args else ""


class CheckpointUnavailableError(ZooError, FileNotFoundError):
    """A file that is not there: a missing local file, or a Hub file that is not cached and cannot be downloaded."""


class CorruptCheckpointError(ZooError, ValueError):
    """A file whose sha256 does not match the recorded one, or that cannot be parsed."""


class ConfigMismatchError(ZooError, ValueError):
    """A config that does not match the weights (missing/unexpected keys, shape mismatches) or the model class."""


class PlannedCheckpointError(CheckpointUnavailableError):
    """A checkpoint of the training queue (``status: planned`` in checkpoints.yaml) that has no weights yet."""
