"""Weight initialisations of the official codes, applied with ``model.apply``."""

from __future__ import annotations

from torch import nn

from vpzoo.models.blocks.transforms import STP


__all__ = ["denton_init", "slim_init", "truncated_normal_init"]


def denton_init(module: nn.Module) -> None:
    """Weight init of Denton's official code (``utils.init_weights``), applied with ``model.apply``.

    Conv/ConvTranspose/Linear weights ~ N(0, 0.02), biases 0; BatchNorm γ ~ N(1, 0.02), β 0. LSTM weights keep
    PyTorch's default init, as ``nn.LSTMCell`` does in the official code.
    """
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d) and module.affine:
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def slim_init(module: nn.Module) -> None:
    """TF-slim's default init, applied with ``model.apply``: Glorot-uniform conv/linear weights, zero biases.

    Normalisation layers keep gain 1 and bias 0. (Glorot's bound is symmetric in fan-in/fan-out, so transposed
    convs get the same init as in TF.)
    """
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, STP):
        module.reset_heads()


def truncated_normal_init(module: nn.Module, std: float = 0.02) -> None:
    """A. Lee's SAVP init, applied with ``model.apply``: conv/linear weights ~ N(0, std²) truncated at ±2 std
    (``tf.truncated_normal_initializer(stddev=0.02)``), biases 0. Normalisation layers keep gain 1 and bias 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Conv3d, nn.Linear)):
        parametrized = getattr(module, "parametrizations", None)  # spectral norm: initialise the raw weight
        weight = module.weight
        if parametrized is not None and "weight" in parametrized:
            weight = parametrized.weight.original
        nn.init.trunc_normal_(weight, 0.0, std, -2 * std, 2 * std)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
