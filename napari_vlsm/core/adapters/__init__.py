"""VLSM adapters (Dhakal et al., MICCAI 2024): config, block, injection, checkpoints."""

from .block import AdapterBlock
from .config import VARIANTS, AdapterConfig
from .inject import AdapterSet, build_adapters, count_trainable

__all__ = ["VARIANTS", "AdapterBlock", "AdapterConfig", "AdapterSet", "build_adapters", "count_trainable"]
