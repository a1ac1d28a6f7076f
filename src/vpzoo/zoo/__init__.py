"""The model zoo: pretrained checkpoints, ``vpzoo.load``, the zoo file format, the Hugging Face Hub.

- :func:`load` (also ``vpzoo.load``): a registered checkpoint name, a local folder/file or ``hf://owner/repo``.
- :func:`list_checkpoints` (also ``vpzoo.list_checkpoints``), :func:`checkpoint_info`: the registry
  ``checkpoints.yaml`` (:mod:`vpzoo.zoo.catalog`; ``$VPZOO_CHECKPOINTS`` selects another file).
- ``model.save_pretrained(dir)``, ``model.push_to_hub(repo_id)``, ``Model.from_pretrained(...)``
  (:class:`~vpzoo.zoo.mixin.PretrainedMixin`, a base of every model); folder layout in :mod:`vpzoo.zoo.format`.
- :func:`export_lightning_checkpoint` (``vpzoo export``): a ``vpzoo fit`` checkpoint to a zoo folder.
- :mod:`vpzoo.zoo.official` (``vpzoo convert``): the authors' own pretrained files, read safely and converted
  (registered as ``weights.source: official``: ``svg_lp_bair``, ``svg_lp_smmnist_official``, ``drnet_kth128_official``).
- :func:`make_checkpoint_entry` / :func:`add_checkpoint` (``vpzoo add-checkpoint``): a new registry entry.
- Errors: :mod:`vpzoo.zoo.errors`.

Importing this package is cheap: torch, safetensors and huggingface_hub are imported when first needed.
"""

from vpzoo.zoo.catalog import (
    CHECKPOINTS_ENV,
    add_checkpoint,
    checkpoint_info,
    checkpoints_file,
    list_checkpoints,
    make_checkpoint_entry,
    read_checkpoints,
    validate_checkpoints,
)
from vpzoo.zoo.errors import (
    CheckpointUnavailableError,
    ConfigMismatchError,
    CorruptCheckpointError,
    UnknownCheckpointError,
    ZooError,
)
from vpzoo.zoo.format import export_lightning_checkpoint, file_sha256, save_pretrained
from vpzoo.zoo.hub import parse_hub_ref, push_to_hub
from vpzoo.zoo.loading import load

__all__ = [
    "load",
    "list_checkpoints",
    "checkpoint_info",
    "checkpoints_file",
    "read_checkpoints",
    "validate_checkpoints",
    "make_checkpoint_entry",
    "add_checkpoint",
    "export_lightning_checkpoint",
    "save_pretrained",
    "push_to_hub",
    "parse_hub_ref",
    "file_sha256",
    "CHECKPOINTS_ENV",
    "ZooError",
    "UnknownCheckpointError",
    "CheckpointUnavailableError",
    "CorruptCheckpointError",
    "ConfigMismatchError",
]
