"""Paint capture: which slices of which output layers a user edited, reported ~1 s after the last edit.

napari fires ``Labels.events.paint`` once per committed edit (a brush stroke, a fill, a polygon,
``data_setitem``) with the history item, which holds the changed indices. The slices are read
from it at once (the view may move within the second), the model's own writes are ignored, and
a single-shot QTimer coalesces a burst of strokes into one save.
"""

from __future__ import annotations

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
        self._watched.clear()

    def _inserted(self, event) -> None:
        self._watch(event.value)

    def _removed(self, event) -> None:
        layer = event.value
        if self._watched.pop(str(layer.unique_id), None) is not None:
            layer.events.paint.disconnect(self._painted)
        self._pending.pop(str(layer.unique_id), None)

    def _watch(self, layer) -> None:
        # Output layers get their metadata at creation, before they are inserted.
        if isinstance(layer, Labels) and L.output_meta(layer) is not None:
            self._watched[str(layer.unique_id)] = layer
            layer.events.paint.connect(self._painted)

    def _painted(self, event) -> None:
        labels = event.source
        if is_model_write(labels):
            return
        axes = L.plane_axes(labels, self.viewer.dims)
        planes = {L.Plane(axes, idx) for idx in L.touched_planes(event.value, axes, labels.data.shape)}
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
