"""Faster runtimes for the frozen image encoder on CPUs without native bf16 (ONNX Runtime, int8).

``choice.resolve_backend`` picks the runtime per machine; ``prepare_runtimes`` exports (once,
cached per model) and checks the image encoder graph (int8 or fp32) plus fp32 graphs of the text
encoder and decoder and returns them. The loader keeps them on its ``LoadedModel``, and every
``VLSMModel`` over the same frozen weights is given them explicitly (``LoadedModel.runtimes_for``):
prediction and the trainer's precompute then use the image graph for every variant whose image features do not depend on adapters (dense variants keep torch), the text graph
for variants without text adapters, the decoder graph whenever no gradient is needed. Any failure -- no
onnxruntime, an export error, a graph that disagrees with torch -- leaves torch in place with a
warning; nothing here is needed for napari-vlsm to work.
"""

from __future__ import annotations

import logging
import warnings

from .choice import (
    BACKENDS,
    ONNX_EXTRA,
    check_backend,
    onnxruntime_available,
    resolve_backend,
)

__all__ = ["BACKENDS", "ONNX_EXTRA", "check_backend", "onnxruntime_available",
           "prepare_runtimes", "resolve_backend"]

log = logging.getLogger(__name__)


def _prepare_part(base, fingerprint: str, size: int, layers: tuple[int, ...], kind: str, threads: int):
    """Export/load one graph, check it; the OnnxPart, or None (with a warning) on any failure."""
    from . import agreement, export
    from .session import OnnxPart

    def check(graph):
        return agreement.measure(base, OnnxPart(graph, kind, size, threads, {}), size, layers, kind)

    try:
        folder, meta = export.build(base, fingerprint, size, tuple(layers), kind, check)
        graph = folder / export.GRAPH_NAME
        if meta.get("sha256") != export.file_sha256(graph):
            raise RuntimeError(f"{graph} does not match its recorded sha256 (damaged); delete {folder}")
        verdict = meta.get("agreement", {})
        if not verdict.get("ok"):
            warnings.warn(f"napari-vlsm: the {kind} graph disagrees with torch fp32 (relative error "
                          f"{verdict.get('relative_error_per_output')}, bound {verdict.get('bound')}); using torch",
                          stacklevel=4)
            return None
        return OnnxPart(graph, kind, size, threads, meta)
    except Exception as err:  # noqa: BLE001 - any failure of the optional runtime: torch still works
        warnings.warn(f"napari-vlsm: the {kind} graph is unavailable ({type(err).__name__}: "
                      f"{str(err).splitlines()[0][:200] if str(err) else ''}); using torch", stacklevel=4)
        return None


def prepare_runtimes(base, fingerprint: str, size: int, layers: tuple[int, ...], kind: str,
                     threads: int) -> dict:
    """Prepare the ``kind`` image encoder and the fp32 text encoder and decoder graphs of ``base``;
    returns those that agree with torch (kind -> OnnxPart), which the loader keeps on its
    ``LoadedModel`` and hands to every ``VLSMModel`` over the same weights.

    Without a usable image graph the result is {} (the backend is then torch); the text encoder
    and decoder graphs are each used when they agree, torch otherwise.
    """
    image = _prepare_part(base, fingerprint, size, layers, kind, threads)
    if image is None:
        return {}
    parts = {kind: image}
    for other in ("text-fp32", "decoder-fp32"):
        part = _prepare_part(base, fingerprint, size, layers, other, threads)
        if part is not None:
            parts[other] = part
    return parts
