"""Paint capture: which slices of which output layers a user edited, reported ~1 s after the last edit.

napari fires ``Labels.events.paint`` once per committed edit (a brush stroke, a fill, a polygon,
``data_setitem``) with the history item, which holds the changed indices. The slices are read
from it at once (the view may move within the second), the model's own writes are ignored, and
a single-shot QTimer coalesces a burst of strokes into one save.

A whole new array assigned by a script or another plugin (``layer.data = mask``) fires
``events.data`` instead, with no history: the slices it changed are found by comparing it with
the array the layer held before (kept by reference, never copied: painting edits it in place).
"""

from __future__ import annotations

import numpy as np
from napari.layers import Labels
from qtpy.QtCore import QObject, QTimer, Signal

from . import layers as L
from .outputs import is_model_write

DELAY_MS = 1000


class PaintWatcher(QObject):
    # {labels layer unique id: (labels layer, set of Plane)} edited since the last emission
    edited = Signal(object)

    def __init__(self, viewer, delay_ms: int = DELAY_MS, parent=None):
        super().__init__(parent)
        self.viewer = viewer
        self._pending: dict[str, tuple] = {}
        self._watched: dict[str, object] = {}
        self._arrays: dict[str, object] = {}  # the array each watched layer holds (a reference)
        self._timer = QTimer(self, singleShot=True, interval=delay_ms)
        self._timer.timeout.connect(self.flush)
        viewer.layers.events.inserted.connect(self._inserted)
        viewer.layers.events.removed.connect(self._removed)
        for layer in viewer.layers:
            self._watch(layer)

    def close(self) -> None:
        self._timer.stop()
        self.viewer.layers.events.inserted.disconnect(self._inserted)
        self.viewer.layers.events.removed.disconnect(self._removed)
        for layer in list(self._watched.values()):
            layer.events.paint.disconnect(self._painted)
            layer.events.data.disconnect(self._replaced)
        self._watched.clear()
        self._arrays.clear()

    def _inserted(self, event) -> None:
        self._watch(event.value)

    def _removed(self, event) -> None:
        layer = event.value
        if self._watched.pop(str(layer.unique_id), None) is not None:
            layer.events.paint.disconnect(self._painted)
            layer.events.data.disconnect(self._replaced)
        self._arrays.pop(str(layer.unique_id), None)
        self._pending.pop(str(layer.unique_id), None)

    def _watch(self, layer) -> None:
        # Output layers get their metadata at creation, before they are inserted.
        if isinstance(layer, Labels) and L.output_meta(layer) is not None:
            self._watched[str(layer.unique_id)] = layer
            self._arrays[str(layer.unique_id)] = layer.data
            layer.events.paint.connect(self._painted)
            layer.events.data.connect(self._replaced)

    def _painted(self, event) -> None:
        labels = event.source
        if is_model_write(labels):
            return
        axes = L.plane_axes(labels, self.viewer.dims)
        self._add(labels, {L.Plane(axes, idx) for idx in L.touched_planes(event.value, axes, labels.data.shape)})

    def _replaced(self, event) -> None:
        labels = event.source
        uid = str(labels.unique_id)
        before, self._arrays[uid] = self._arrays.get(uid), labels.data
        if is_model_write(labels) or before is None or before is labels.data:
            return
        axes = L.plane_axes(labels, self.viewer.dims)
        self._add(labels, {L.Plane(axes, idx) for idx in changed_planes(before, labels.data, axes)})

    def _add(self, labels, planes: set) -> None:
        if not planes:
            return
        uid = str(labels.unique_id)
        _, known = self._pending.get(uid, (labels, set()))
        self._pending[uid] = (labels, known | planes)
        self._timer.start()  # restart: save one second after the LAST edit

    def flush(self) -> None:
        self._timer.stop()
        pending, self._pending = self._pending, {}
        if pending:
            self.edited.emit(pending)


def changed_planes(before, after, axes: tuple[int, int]) -> set[tuple[int, ...]]:
    """The plane indices (positions off ``axes``) where ``after`` differs from ``before``; every
    plane holding a label when the shapes differ (nothing to compare with)."""
    after = np.asarray(after)
    others = tuple(a for a in range(after.ndim) if a not in axes)
    if np.shape(before) == after.shape:
        differs = np.asarray(before) != after
    else:
        differs = after != 0
    if not others:
        return {()} if differs.any() else set()
    hit = differs.any(axis=tuple(axes))  # (remaining axes, in order)
    return {tuple(int(v) for v in idx) for idx in np.argwhere(hit)}
