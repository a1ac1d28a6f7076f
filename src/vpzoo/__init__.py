"""vpzoo: a PyTorch Lightning model zoo for stochastic video prediction."""

from vpzoo.registry import create_model, get_model_class, list_models

__version__ = "0.1.0.dev0"

__all__ = ["create_model", "get_model_class", "list_models", "__version__"]
