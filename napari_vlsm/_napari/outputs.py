"""Model results -> layers (GUI thread): proposals as one undo step, re-thresholding, revert,
the optional probability layer. Writes made here are flagged so paint capture ignores them."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from napari_vlsm.core import labelmap as LM

from . import layers as L

_WRITING: set[str] = set()  # unique ids of Labels layers being written by the model right now


@contextmanager
def model_write(labels):
    """Group writes into ONE undo step and mark them as the model's (not a user's correction)."""
    uid = str(labels.unique_id)
    _WRITING.add(uid)
    try:
        with labels.block_history():
            yield
    finally:
        _WRITING.discard(uid)


def is_model_write(labels) -> bool:
    return str(labels.unique_id) in _WRITING


def apply_proposals(session, image, prompts, results, threshold: float):
    """Write ``results`` [(plane, probability)] as the proposal for ``prompts`` (one structure or
    several: one label map, see ``core.labelmap``); returns the layer."""
    viewer = session.viewer
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    labels = L.find_output(viewer, image, LM.join_structures(prompts), exact=True)
    if labels is None:
        from .launch import is_demo_model

        labels = L.create_output(viewer, image, prompts, demo=is_demo_model(session.model_source))
    entries = [(plane, session.proposals.put(labels, plane, prob, threshold)) for plane, prob in results]
    with model_write(labels):
        for plane, entry in entries:
            L.write_plane(labels, plane, entry.values)
    provenance = session.segmenter.provenance() if session.segmenter is not None else {}
    L.record_provenance(labels, [p for p, _ in entries], LM.join_structures(prompts), threshold, provenance)
    if session.show_probability:
        show_probability(viewer, image, labels, results)
    return labels


def is_untouched(labels, plane, entry) -> bool:
    """True when the slice still holds exactly what the model wrote (no user edit on it)."""
    return np.array_equal(L.plane_values(labels, plane), entry.values)


def rethreshold(labels, book, threshold: float) -> tuple[int, int]:
    """Re-threshold (re-compose) every kept proposal of ``labels`` that the user has not edited.

    Returns (slices changed, edited slices left alone). One undo step.
    """
    changes, skipped = [], 0
    for plane, entry in book.planes(labels).items():
        if abs(entry.threshold - threshold) < 1e-9:
            continue
        if not is_untouched(labels, plane, entry):
            skipped += 1  # the user corrected this slice: never overwrite a correction silently
            continue
        entry.threshold, entry.values = float(threshold), entry.at(threshold)
        changes.append((plane, entry.values))
    if changes:
        with model_write(labels):
            for plane, values in changes:
                L.write_plane(labels, plane, values)
        meta = labels.metadata.get(L.TAG, {})
        meta["threshold"] = float(threshold)
        for plane, _ in changes:
            meta.get("slices", {}).get(plane.label(), {})["threshold"] = float(threshold)
    return len(changes), skipped


def revert(labels, plane, entry) -> int:
    """Put the kept proposal back on one slice (one undo step); returns pixels changed."""
    with model_write(labels):
        return L.write_plane(labels, plane, entry.values)


def find_probability(viewer, labels):
    for layer in viewer.layers:
        meta = layer.metadata.get(L.TAG)
        if isinstance(meta, dict) and meta.get("probability_of") == str(labels.unique_id):
            return layer
    return None


def show_probability(viewer, image, labels, results) -> None:
    """Copy probabilities into an image layer aligned with ``labels`` (made on first use)."""
    layer = find_probability(viewer, labels)
    if layer is None:
        layer = viewer.add_image(
            np.zeros(labels.data.shape, np.float32), name=f"{labels.name} probability",
            scale=image.scale, translate=image.translate, rotate=image.rotate, shear=image.shear,
            affine=image.affine.affine_matrix, colormap="magma", contrast_limits=(0.0, 1.0),
            blending="additive", opacity=0.7, metadata={L.TAG: {"probability_of": str(labels.unique_id)}},
        )
        viewer.layers.selection.active = labels  # keep the mask selected for painting
    for plane, prob in results:  # several structures: the highest probability (what decides a pixel)
        layer.data[plane.key(labels.ndim)] = prob if prob.ndim == 2 else prob.max(axis=0)
    layer.refresh()
