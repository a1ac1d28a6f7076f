"""Building blocks shared by several vpzoo models: one operation in one place, split by kind.

- :mod:`~vpzoo.models.blocks.codecs`: frame encoders/decoders with U-Net skips (DCGAN and VGG at 64/128 px; SVG,
  DRNet, P2P), DRNet's ResNet-18 pose encoder and the Improved VRNN's pre-activation ResBlock.
- :mod:`~vpzoo.models.blocks.recurrent`: SVG's LSTM predictor and Gaussian LSTM; the convolutional LSTM cell of the
  CDNA code (SV2P, SAVP); the Improved VRNN's group-normalised ConvLSTM cell.
- :mod:`~vpzoo.models.blocks.layers`: TensorFlow-compatible "SAME" convolutions and layer norm.
- :mod:`~vpzoo.models.blocks.transforms`: the pixel-advection transformations of Finn et al. (2016): CDNA, DNA,
  STP, mask compositing (SV2P, SAVP).
- :mod:`~vpzoo.models.blocks.distributions`: the diagonal-Gaussian KL and log-density, and the float32 upcast under
  autocast.
- :mod:`~vpzoo.models.blocks.init`: the weight initialisations of the official codes.
- :mod:`~vpzoo.models.blocks.discriminators`: DRNet's scene discriminator, SAVP's video discriminator.
- :mod:`~vpzoo.models.blocks.flows`: Glow's invertible layers as tensor2tensor builds them (VideoFlow): ActNorm,
  the LU 1×1 convolution, couplings with edge-bias conv stacks, squeeze, dequantisation.

Every block works on frames ``(N, C, H, W)``; callers flatten ``(B, T)`` into ``N`` so that all frames of a clip go
through the convolutions in one batched call. Every public name is re-exported here, so
``from vpzoo.models.blocks import X`` works for all of them.
"""

from __future__ import annotations

from vpzoo.models.blocks.codecs import *  # noqa: F401,F403
from vpzoo.models.blocks.recurrent import *  # noqa: F401,F403
from vpzoo.models.blocks.distributions import *  # noqa: F401,F403
from vpzoo.models.blocks.layers import *  # noqa: F401,F403
from vpzoo.models.blocks.transforms import *  # noqa: F401,F403
from vpzoo.models.blocks.init import *  # noqa: F401,F403
from vpzoo.models.blocks.discriminators import *  # noqa: F401,F403
from vpzoo.models.blocks.flows import *  # noqa: F401,F403

from vpzoo.models.blocks import codecs, recurrent, distributions, layers, transforms, init, discriminators  # noqa: E402
from vpzoo.models.blocks import flows  # noqa: E402

__all__ = [
    *codecs.__all__,
    *recurrent.__all__,
    *distributions.__all__,
    *layers.__all__,
    *transforms.__all__,
    *init.__all__,
    *discriminators.__all__,
    *flows.__all__,
]
