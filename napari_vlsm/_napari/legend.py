"""The legend of a multi-structure mask layer (colour, value and name of each structure), the
preset structure lists, and which structure the user works on.

It is also the structure picker: clicking a row selects that label in the layer (napari's
``selected_label``), makes the layer active and switches to the paint brush, so the next stroke
paints that structure. Choosing a label in napari's own layer controls highlights its row.
Hidden for a one-structure layer (nothing to tell apart).
"""

from __future__ import annotations

from qtpy.QtCore import Qt, Signal
from qtpy.QtGui import QColor, QIcon, QPixmap
from qtpy.QtWidgets import QComboBox, QListWidget, QListWidgetItem

from napari_vlsm.core import labelmap as LM

from . import layers as L

ROLE = Qt.ItemDataRole.UserRole  # holds the label value of a row
TIP = "Structures in this mask layer. Click one to paint it (the brush then draws that label)."


PRESET_HINT = "Structure lists…"
TIP_PRESETS = "Fill the prompt box with a curated list of structures (one label each); edit it freely."


def working_prompt(text: str, labels) -> str:
    """The structure the user works on (what the corrections panel counts and lists): the prompt,
    or with several structures the one picked in the legend (the first before a layer exists)."""
    prompts = LM.split_structures(text)
    if len(prompts) < 2:
        return LM.join_structures(prompts)
    if labels is not None:
        picked = {s.value: s.prompt for s in L.structures_of(labels)}.get(int(labels.selected_label))
        if picked is not None:
            return picked
    return prompts[0]


class PresetBox(QComboBox):
    """Curated structure lists (``core.labelmap.PRESETS``): choosing one fills the prompt box."""

    def __init__(self, prompt_box, parent=None):
        super().__init__(parent)
        self.prompt_box = prompt_box
        self.addItems([PRESET_HINT, *LM.PRESETS])
        self.setToolTip(TIP_PRESETS)
        self.activated.connect(self._chosen)

    def _chosen(self, index: int) -> None:
        if index > 0:
            self.prompt_box.setCurrentText(LM.join_structures(LM.PRESETS[self.itemText(index)]))
            self.setCurrentIndex(0)


def swatch(colour: str, size: int = 12) -> QIcon:
    pixmap = QPixmap(size, size)
    pixmap.fill(QColor(colour))
    return QIcon(pixmap)


class Legend(QListWidget):
    picked = Signal(int)  # the structure to paint changed (a click here or napari's label control)

    def __init__(self, viewer, parent=None):
        super().__init__(parent)
        self.viewer = viewer
        self.labels = None
        self.setToolTip(TIP)
        self.itemClicked.connect(self._picked)
        self.setVisible(False)

    def show_layer(self, labels) -> None:
        """Show the structures of ``labels`` (None or a one-structure layer: hide)."""
        if labels is not self.labels:
            self._unwatch()
            self.labels = labels
            if labels is not None:
                labels.events.selected_label.connect(self._follow_label)
        self.clear()
        structures = L.structures_of(labels) if labels is not None else []
        for s in structures:
            item = QListWidgetItem(swatch(s.colour), f"{s.value}  {s.name}")
            item.setData(ROLE, s.value)
            item.setToolTip(f"label {s.value}: prompt '{s.prompt}', colour {s.colour}")
            self.addItem(item)
        if structures:  # as tall as its rows (up to 8; more scroll)
            rows = min(len(structures), 8)
            self.setFixedHeight(self.sizeHintForRow(0) * rows + 2 * self.frameWidth() + 2)
        self.setVisible(len(structures) > 1)
        self._follow_label()

    def entries(self) -> list[tuple[int, str]]:
        """(value, text) of each row, for tests and screenshots."""
        return [(self.item(i).data(ROLE), self.item(i).text()) for i in range(self.count())]

    def pick(self, value: int) -> None:
        """Paint structure ``value`` next: select the label, the layer and the brush."""
        labels = self.labels
        if labels is None:
            return
        labels.selected_label = int(value)
        if self.viewer.layers.selection.active is not labels and labels in self.viewer.layers:
            self.viewer.layers.selection.active = labels
        labels.mode = "paint"

    def _picked(self, item) -> None:
        self.pick(item.data(ROLE))

    def _follow_label(self, event=None) -> None:
        if self.labels is None:
            return
        if event is not None:
            self.picked.emit(int(self.labels.selected_label))
        value = int(self.labels.selected_label)
        for i in range(self.count()):
            if self.item(i).data(ROLE) == value:
                self.blockSignals(True)
                self.setCurrentRow(i)
                self.blockSignals(False)
                return
        self.clearSelection()

    def _unwatch(self) -> None:
        if self.labels is not None:
            try:
                self.labels.events.selected_label.disconnect(self._follow_label)
            except (RuntimeError, TypeError, ValueError):
                pass
        self.labels = None

    def close_legend(self) -> None:
        self._unwatch()
