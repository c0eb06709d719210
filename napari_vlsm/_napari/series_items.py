"""What the Series section does with one worklist item off the GUI thread (no Qt, no layers here).

* :func:`read_layer` reads an item the way File > Open would: a 2D image or TIFF stack as an array,
  a scan (NIfTI, NRRD, MHA, DICOM series) through the napari-vlsm reader's layer data, so the layer
  carries the scan's geometry (scale = spacing, translate = origin, the grid for saving).
* :func:`prefetch` is that read plus the image pass of the slice the item will open on, run while
  the user corrects the current item: the engine keeps the image features in its cache, so Next
  only runs the text side and the small decoder.
The mask an item was saved with (the worked-on item comes back with it, not with a new proposal)
is the core's: ``core.worklist.saved_masks`` (where it lives, reading it back, setting aside one
that no longer fits), shared with the server.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import numpy as np

LEASE_S = 30 * 60.0  # an item on screen is held this long for its window (renewed by each Next)
_RUNNING: set = set()  # background workers of the series, held until they end (see keep_alive)


def keep_alive(worker):
    """Hold a worker until it has ended, even if its dock is gone: a worker whose Python object is
    collected while its thread still runs (a read-ahead when napari closes) aborts the process when
    it signals its end. Returns the worker."""
    _RUNNING.add(worker)
    worker.finished.connect(lambda: _RUNNING.discard(worker))
    return worker


@dataclass
class Failed:
    """A worker's answer for an item that cannot be read (superqt raises a returned exception)."""

    error: Exception


def read_or_fail(read, *args):
    """Worker: ``read(*args)``, or Failed(the user-caused error) for the panel to word."""
    from napari_vlsm.core.errors import VLSMError

    try:
        return read(*args)
    except VLSMError as err:
        return Failed(err)


@dataclass
class ReadyProposal:
    """The model's proposal for an item's first slice, computed while the user corrected the item
    before. Next shows it as it is when the same model, adapter, prompts and window still hold."""

    prompts: tuple[str, ...]
    segmenter: object
    adapter_version: int
    window: object
    probability: np.ndarray  # (H, W), or (N, H, W) for N structures

    def fits(self, segmenter, prompts, window) -> bool:
        return (self.segmenter is segmenter and segmenter.adapter_version == self.adapter_version
                and self.prompts == tuple(prompts) and self.window == window)


@dataclass
class ItemData:
    """An item read for napari: ``viewer.add_image(data, **kwargs)``; ``start`` = the slice to open on."""

    item_id: int
    data: object
    kwargs: dict
    start: int | None  # volumes: the first slice shown (the most uncertain one, else the middle)
    medical: bool
    proposal: ReadyProposal | None = None  # computed ahead (prefetch), for the slice ``start``
    saved: tuple | None = None  # a server item: (label map, prompts) it was saved with there

    @property
    def plane(self):
        """The slice the item opens on (axes: the last two spatial axes, as napari shows it first)."""
        from .planes import Plane

        return Plane((self.ndim - 2, self.ndim - 1), () if self.start is None else (self.start,))

    @property
    def rgb(self) -> bool:
        return bool(self.kwargs.get("rgb", _looks_rgb(self.data)))  # napari's own guess when not said

    @property
    def ndim(self) -> int:
        return self.data.ndim - (1 if self.rgb else 0)


def _looks_rgb(data) -> bool:
    return data.ndim == 3 and data.shape[-1] in (3, 4)


def read_layer(item) -> ItemData:
    """Worker: the item's pixels and layer keywords (ImageError, with the file named, when it fails)."""
    from napari_vlsm.core.worklist import read_item

    found = read_item(item)
    return item_data(item, found, found if hasattr(found, "geometry") else None)


def item_data(item, array, volume=None) -> ItemData:
    """An item's pixels as napari shows them: a scan (``volume``, a MedicalVolume) through the
    napari-vlsm reader's own layer (its geometry included), else the image or stack as it is."""
    from .reader import volume_layer

    if volume is not None:
        data, kwargs, _ = volume_layer(volume)
        kwargs["name"] = item.name
        medical = True
    else:
        data, kwargs, medical = array, {"name": item.name}, False
        if data.ndim == 3 and not _looks_rgb(data):
            kwargs["rgb"] = False
    ndim = data.ndim - (1 if kwargs.get("rgb", _looks_rgb(data)) else 0)
    return ItemData(item.id, data, kwargs, start_of(item, data) if ndim == 3 else None, medical)


def start_of(item, data) -> int:
    """The slice a scan or stack opens on: its most uncertain one when ranked, else the middle."""
    worst = [z for z in (item.worst_slices or ()) if 0 <= z < data.shape[0]]
    return worst[0] if worst else data.shape[0] // 2


def window_of(preset, found: ItemData):
    """The intensity window the dock's Segment will use for this item (Session.window_for's rule:
    2D images under 'auto' need none; a volume gets one window for all its slices)."""
    if found.ndim < 3 and preset == "auto":
        return None
    from napari_vlsm.core.medical.windows import resolve_window

    meta = found.kwargs.get("metadata", {}).get("napari_vlsm_volume") or {}
    return resolve_window(preset, found.data, meta.get("modality", ""), rgb=bool(found.kwargs.get("rgb")))


def start_plane(found: ItemData) -> np.ndarray:
    """The pixels of the slice the item opens on (the whole image in 2D)."""
    return np.asarray(found.data if found.start is None else found.data[found.start])


def lower_priority() -> None:
    """This thread (and the OpenMP helpers it will start) yields the CPU to everything else: a
    prefetch never slows the brush. Linux sets niceness per thread; elsewhere nothing happens."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except (AttributeError, OSError):
        pass


def prefetch(segmenter, item, prompts: list[str], preset, cancel: threading.Event):
    """Worker (a torch thread of its own, niced): read the item, then, unless cancelled meanwhile,
    compute its proposal for ``prompts`` (the engine also keeps the image features in its cache, so
    a proposal asked for again with another prompt needs the decoder only). Returns the ItemData."""
    lower_priority()
    return propose_ahead(read_layer(item), segmenter, prompts, preset, cancel)


def propose_ahead(found: ItemData, segmenter, prompts, preset, cancel) -> ItemData:
    """Worker: the proposal for the slice an item opens on, kept with it (unless cancelled, or no
    engine: then only the pixels were read). The engine is this computer's or the server's."""
    from .segment_jobs import probabilities

    if segmenter is not None and prompts and not cancel.is_set():
        window = window_of(preset, found)
        version = segmenter.adapter_version
        probability = probabilities(segmenter.predict(start_plane(found), list(prompts), window=window))
        found.proposal = ReadyProposal(tuple(prompts), segmenter, version, window, probability)
    return found
