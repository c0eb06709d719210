"""The dock's window choice: which intensity window the model sees (auto, CT presets, percentiles).

A small combo box; :class:`~napari_vlsm._napari.session.DockSession` reads ``session.window_preset``
when it computes a volume's window (``window_for``), so prediction and the stored corrections use
the chosen one. Typing two numbers ``lo,hi`` also works. See docs/volumes.md.
"""

from __future__ import annotations

from qtpy.QtWidgets import QComboBox

from napari_vlsm.core.medical.windows import LABELS, PRESETS, parse_window

TIP = ("Intensity window the model sees, one per volume. auto: 0.5-99.5 % of the volume. CT presets are in "
       "Hounsfield units (soft tissue W400 L40, lung W1500 L-600, bone W1800 L400, brain W80 L40); MR: "
       "percentiles. Or type two numbers: lo,hi")


class WindowChoice(QComboBox):
    def __init__(self, session, parent=None):
        super().__init__(parent)
        self.session = session
        self.setEditable(True)
        self.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        for name in PRESETS:
            self.addItem(LABELS.get(name, name), name)
        self.setToolTip(TIP)
        self.activated.connect(self._chosen)
        self.lineEdit().editingFinished.connect(self._typed)
        self.set_preset(getattr(session, "window_preset", "auto"))

    def preset(self):
        return getattr(self.session, "window_preset", "auto")

    def set_preset(self, value) -> None:
        """Use ``value`` (a preset name, "lo,hi" or (lo, hi)); ImageError if it is not one."""
        choice = parse_window(value)
        self.session.window_preset = choice
        self.session.windows.clear()  # windows of open volumes are computed again with the new choice
        index = self.findData(choice) if isinstance(choice, str) else -1
        if index >= 0:
            self.setCurrentIndex(index)
        else:
            self.setEditText(f"{choice[0]:g},{choice[1]:g}")

    def _chosen(self, index: int) -> None:
        self.set_preset(self.itemData(index))

    def _typed(self) -> None:
        text = self.currentText().strip()
        if self.findText(text) >= 0:
            return self.set_preset(self.itemData(self.findText(text)))
        from napari.utils.notifications import show_error

        from napari_vlsm.core.errors import VLSMError

        try:
            self.set_preset(text)
        except VLSMError as err:
            show_error(f"napari-vlsm: {err}")
