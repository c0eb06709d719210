"""napari-vlsm: text-prompted segmentation that learns from corrections.

Kept light on purpose: importing the package loads neither torch nor napari, so that the
napari start-up and ``napari-vlsm --help`` stay fast. Heavy names resolve lazily.
"""

__version__ = "0.1.0"

_LAZY = {
    "Segmenter": "napari_vlsm.core.engine",
    "load_model": "napari_vlsm.core.loading",
    "CorrectionStore": "napari_vlsm.core.store",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'napari_vlsm' has no attribute {name!r}")
