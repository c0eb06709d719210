"""VLSM adapters (Dhakal et al., MICCAI 2024): config, block, adapter set, checkpoints.

``VARIANTS`` and ``AdapterConfig`` import without torch (the CLI and the dock read them on
start-up); the modules, which need torch, resolve on first use.
"""

from ..constants import VARIANTS
from .config import AdapterConfig

_LAZY = {
    "AdapterBlock": ".block",
    "AdapterSet": ".adapter_set",
    "build_adapters": ".adapter_set",
    "count_trainable": ".adapter_set",
}

__all__ = ["VARIANTS", "AdapterBlock", "AdapterConfig", "AdapterSet", "build_adapters", "count_trainable"]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
