"""The layers of the series item on screen: one image and its mask, replaced at each Next.

napari makes a new layer slowly and removes one slower: controls, shaders and textures are built for
each new layer, and each removal runs a full garbage collection (``gc.collect()``, for GPU drivers),
~0.75 s with torch loaded on a 2-core CPU. So Next gives the image layer on screen the next item's
pixels and geometry when it can (same kind: both RGB or both grey, same number of axes), and
blanks its mask layer for the new proposal (a fresh undo history: Ctrl+Z never reaches the item
before). Otherwise the old layers go and new ones come, one removal at a time: napari's
``batched_update()`` left the canvas drawing a freed texture (a segfault in software OpenGL).
"""

from __future__ import annotations

import gc

import numpy as np

from . import layers as L
from .planes import SOURCE_KEY
from .reader import METADATA_KEY, volume_metadata

_FROZEN = [False]  # gc.freeze() done (once per process, see freeze_once)
KEEP_KEYS = ("target", "prompt", "structures", "image", "image_id")  # what create_output writes


def masks_of(viewer, image) -> list:
    """The output layers made for ``image`` (masks), and the probability maps made for those."""
    uid = str(image.unique_id)
    masks = [layer for layer in viewer.layers if (L.output_meta(layer) or {}).get("image_id") == uid]
    ids = {str(m.unique_id) for m in masks}
    probs = [layer for layer in viewer.layers
             if isinstance(layer.metadata.get(L.TAG), dict) and layer.metadata[L.TAG].get("probability_of") in ids]
    return masks + probs


def freeze_once(session) -> None:
    """Once the model is loaded, move every object alive (torch, transformers, the model, napari)
    out of the cycle collector's reach (``gc.freeze``): napari's collection at a layer removal then
    walks only what was made since (measured: 0.75 s -> 0.05 s). Objects are still freed by
    reference counting; only reference cycles among those alive now would outlive their use."""
    if not _FROZEN[0] and session.segmenter is not None:
        gc.collect()
        gc.freeze()
        _FROZEN[0] = True


def remove(viewer, session, image) -> None:
    """Take ``image`` and everything made for it out of the viewer."""
    gone = [image, *masks_of(viewer, image)]
    freeze_once(session)
    for layer in gone:
        if layer in viewer.layers:
            viewer.layers.remove(layer)


def image_metadata(item, found) -> dict:
    """The layer's metadata: the reader's (a scan's grid) and the file, which corrections name."""
    return {**found.kwargs.get("metadata", {}), SOURCE_KEY: str(item.path)}


def add_image(viewer, item, found):
    return viewer.add_image(found.data, **{**found.kwargs, "metadata": image_metadata(item, found)})


def can_reuse(viewer, image, found) -> bool:
    return (image is not None and image in viewer.layers and bool(image.rgb) == found.rgb
            and image.ndim == found.ndim and not image.multiscale)


def reuse_image(viewer, session, image, item, found, keep_target: str) -> None:
    """Give the layer on screen the next item's pixels; its mask for ``keep_target`` is blanked for
    the new item, any other mask made for it goes."""
    masks = masks_of(viewer, image)
    session.forget_layer(image)  # its intensity window belonged to the old pixels
    kwargs = found.kwargs
    image.data = found.data
    image.scale = kwargs.get("scale", (1.0,) * found.ndim)
    image.translate = kwargs.get("translate", (0.0,) * found.ndim)
    image.metadata = image_metadata(item, found)
    if "contrast_limits" in kwargs:
        image.contrast_limits = kwargs["contrast_limits"]
    elif not image.rgb:
        image.reset_contrast_limits()
    image.name = kwargs["name"]
    keep = next((m for m in masks if (L.output_meta(m) or {}).get("target") == keep_target), None)
    for layer in masks:
        if layer is not keep:
            viewer.layers.remove(layer)
    if keep is not None:
        blank_mask(session, keep, image)


def blank_mask(session, labels, image) -> None:
    """An empty mask for the new pixels, with the same structures, and no undo history."""
    session.forget_layer(labels)
    labels.data = np.zeros(L.spatial_shape(image), dtype=labels.data.dtype)
    labels.editable = False  # napari resets the undo history of a layer that stops being editable
    labels.editable = True
    labels.scale, labels.translate = image.scale, image.translate
    meta = {k: v for k, v in labels.metadata.get(L.TAG, {}).items() if k in KEEP_KEYS}
    meta.update(image=image.name, slices={})
    scan = volume_metadata(image)
    labels.metadata = {L.TAG: meta, **({METADATA_KEY: scan} if scan is not None else {})}
    labels.name = L.layer_name([s.prompt for s in L.structures_of(labels)], image)
    labels.mode = "paint"


def show_saved(viewer, image, data, prompts: list[str]):
    """The item's saved mask in its mask layer (found again, or made)."""
    from napari_vlsm.core import labelmap as LM

    from .outputs import model_write

    labels = L.find_output(viewer, image, LM.join_structures(prompts), exact=True)
    if labels is None:
        labels = L.create_output(viewer, image, prompts)
    with model_write(labels):  # not a correction: the auto-save does not store it again
        labels.data = data.astype(labels.data.dtype, copy=False)
    viewer.layers.selection.active = labels
    labels.mode = "paint"
    return labels
