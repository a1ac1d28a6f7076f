"""vpzoo: a PyTorch Lightning model zoo for stochastic video prediction.

- :func:`load`: a pretrained model from a checkpoint name, a local folder/file or ``hf://owner/repo[@revision]``.
- :func:`list_checkpoints`: registered pretrained checkpoints; :func:`list_models`: registered architectures.
- :func:`create_model`: an untrained model from its default config.
"""

from vpzoo.registry import create_model, get_model_class, list_models
from vpzoo.zoo import list_checkpoints, load

__version__ = "0.1.0.dev0"

__all__ = ["load", "list_checkpoints", "create_model", "get_model_class", "list_models", "__version__"]
