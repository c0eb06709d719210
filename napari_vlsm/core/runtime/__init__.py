"""Faster runtimes for the frozen image encoder on CPUs without native bf16 (ONNX Runtime, int8).

``choice.resolve_backend`` picks the runtime per machine; ``prepare_image_runtime`` exports (once,
cached per model) and checks it, and attaches it to the frozen model, where ``VLSMModel`` finds it
(``image_runtime_for``): prediction and the trainer's precompute then use it for every variant
whose image features do not depend on adapters (dense variants keep torch). Any failure -- no
onnxruntime, an export error, a graph that disagrees with torch -- leaves torch in place with a
warning; nothing here is needed for napari-vlsm to work.
"""

from __future__ import annotations

import logging
import warnings
import weakref

from .choice import (
    BACKENDS,
    ONNX_EXTRA,
    check_backend,
    onnxruntime_available,
    resolve_backend,
)

__all__ = ["BACKENDS", "ONNX_EXTRA", "check_backend", "image_runtime_for", "onnxruntime_available",
           "prepare_image_runtime", "resolve_backend"]

log = logging.getLogger(__name__)
# id(patch-embedding weight) -> (weak reference to it, encoder). Keyed by the frozen weight tensor,
# not the module: the trainer wraps its own module copies around the same tensors and so finds
# the runtime too, while a low-precision copy (new bf16 tensors) does not.
_ATTACHED: dict[int, tuple] = {}


def _key_tensor(base):
    try:
        return base.clip.vision_model.embeddings.patch_embedding.weight
    except AttributeError:
        return None


def image_runtime_for(base):
    """The runtime attached to frozen CLIPSeg ``base`` (an ``OnnxImageEncoder``), or None."""
    tensor = _key_tensor(base)
    entry = _ATTACHED.get(id(tensor)) if tensor is not None else None
    if entry is None or entry[0]() is not tensor:
        return None
    return entry[1]


def _attach(base, encoder) -> None:
    tensor = _key_tensor(base)
    key = id(tensor)
    _ATTACHED[key] = (weakref.ref(tensor, lambda _ref, key=key: _ATTACHED.pop(key, None)), encoder)


def prepare_image_runtime(base, fingerprint: str, size: int, layers: tuple[int, ...], kind: str,
                          threads: int):
    """Export/load the ``kind`` graph of ``base``'s image encoder, check it, attach it; None on failure."""
    from . import agreement, export
    from .session import OnnxImageEncoder

    def check(graph):
        return agreement.measure(base, OnnxImageEncoder(graph, kind, size, threads, {}), size, kind)

    try:
        folder, meta = export.build(base, fingerprint, size, tuple(layers), kind, check)
        graph = folder / export.GRAPH_NAME
        if meta.get("sha256") != export.file_sha256(graph):
            raise RuntimeError(f"{graph} does not match its recorded sha256 (damaged); delete {folder}")
        if not meta.get("agreement", {}).get("ok"):
            errors = meta.get("agreement", {}).get("relative_error_per_layer")
            warnings.warn(f"napari-vlsm: the {kind} image encoder disagrees with torch fp32 (relative error "
                          f"{errors}, bound {meta.get('agreement', {}).get('bound')}); using torch", stacklevel=3)
            return None
        encoder = OnnxImageEncoder(graph, kind, size, threads, meta)
    except Exception as err:  # noqa: BLE001 - any failure of the optional runtime: torch still works
        warnings.warn(f"napari-vlsm: the {kind} image encoder is unavailable ({type(err).__name__}: "
                      f"{str(err).splitlines()[0][:200] if str(err) else ''}); using torch", stacklevel=3)
        return None
    _attach(base, encoder)
    return encoder
