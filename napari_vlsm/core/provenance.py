"""What produced a mask, written with layers and output files: enough to reproduce it."""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def provenance(loaded, variant: str, adapter_path: str | None, adapter_sha256: str | None,
               adapter_metadata: dict | None) -> dict:
    """The model, the adapter (path, hash, creation time), precision, device and versions."""
    import torch
    import transformers

    from .. import __version__

    meta = adapter_metadata or {}
    return {
        "napari_vlsm": __version__, "model_source": str(loaded.source), "model_fingerprint": loaded.fingerprint,
        "variant": variant, "adapter_path": adapter_path, "adapter_sha256": adapter_sha256,
        "adapter_created": meta.get("created"), "precision": loaded.precision, "backend": loaded.backend,
        "device": str(loaded.device),
        "torch": torch.__version__, "transformers": transformers.__version__,
    }
