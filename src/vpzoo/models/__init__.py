"""vpzoo models: one file per paper, shared blocks in :mod:`vpzoo.models.blocks`.

Importing this package registers every model in :mod:`vpzoo.registry`.
"""

from vpzoo.models.base import VideoPredictionModel
from vpzoo.models.copy_last import CopyLast
from vpzoo.models.ddpae import DDPAE
from vpzoo.models.drnet import DRNet
from vpzoo.models.encodedec import EncODEDec, EncODEDecDet
from vpzoo.models.p2p import P2P
from vpzoo.models.savp import SAVP, SAVPDeterministic, SAVPGAN, SAVPVAE
from vpzoo.models.sv2p import SV2P
from vpzoo.models.svg import SVG, SVGFP, SVGLP
from vpzoo.models.videoflow import VideoFlow
from vpzoo.models.vrnn import VRNN, ImprovedVRNN, VRNNHier

__all__ = [
    "VideoPredictionModel", "CopyLast", "DDPAE", "DRNet", "EncODEDec", "EncODEDecDet", "P2P", "SV2P", "SVG", "SVGLP",
    "SVGFP", "SAVP", "SAVPVAE", "SAVPGAN", "SAVPDeterministic", "VideoFlow", "ImprovedVRNN", "VRNN", "VRNNHier",
]
