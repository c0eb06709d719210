"""VLSMDock: the "Text segmentation" dock widget (a thin assembly of the panels).

prompt -> Segment -> correct with napari's Labels tools -> Add correction -> Finetune adapter ->
the next Segment uses the adapter. State lives in :class:`Session`; each panel is one section.
"""

from __future__ import annotations

from qtpy.QtCore import QEvent, Qt
from qtpy.QtWidgets import QFrame, QGroupBox, QScrollArea, QVBoxLayout, QWidget

from . import workers
from .correction_panel import CorrectionPanel
from .finetune_panel import FinetunePanel
from .model_panel import AdvancedPanel, ModelPanel
from .segment_panel import SegmentPanel
from .session import Session


def _group(title: str, widget: QWidget) -> QGroupBox:
    box = QGroupBox(title)
    layout = QVBoxLayout(box)
    layout.addWidget(widget)
    return box


class VLSMDock(QWidget):
    def __init__(self, napari_viewer, parent=None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self._closed = False
        self.session = Session(napari_viewer, parent=self)
        self.segment = SegmentPanel(self.session)
        self.corrections = CorrectionPanel(self.session)
        self.finetune = FinetunePanel(self.session)
        self.model = ModelPanel(self.session)
        self.advanced = AdvancedPanel(self.session)

        content = QWidget()
        box = QVBoxLayout(content)
        box.addWidget(_group("Segment", self.segment))
        box.addWidget(_group("Corrections", self.corrections))
        box.addWidget(_group("Finetune", self.finetune))
        box.addWidget(self.model)
        box.addWidget(self.advanced)
        box.addStretch(1)
        scroll = QScrollArea()  # the dock may be shorter than its content
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)  # squeeze, don't scroll
        scroll.setWidget(content)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)
        self._scroll, self._content = scroll, content
        for section in (self.model, self.advanced):
            section.toggled.connect(self._fit_width)
        self._fit_width()
        self.segment._context_changed()

    def _fit_width(self, *_) -> None:
        """Wide enough for the content beside a vertical scroll bar: nothing is ever cut off."""
        bar = self._scroll.verticalScrollBar().sizeHint().width()
        self.setMinimumWidth(max(self.minimumWidth(), self._content.sizeHint().width() + bar + 4))

    def set_model_source(self, source: str) -> None:
        """Use this model (hub id or local CLIPSeg folder); it is loaded at the next Segment."""
        self.session.set_model_source(source)

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        self.close_session()
        super().closeEvent(event)

    def event(self, event) -> bool:
        # napari's x on the dock's title bar and viewer.window.remove_dock_widget take the widget
        # out with setParent(None) and never call closeEvent: that is the dock closing too.
        if event.type() == QEvent.Type.ParentChange:
            if self.parent() is not None:
                self._docked = True
            elif getattr(self, "_docked", False):
                self.close_session()
        return super().event(event)

    def close_session(self) -> None:
        """Stop listening to the viewer and stop running jobs: a finetune ends after its current step
        and keeps its best adapter (saved, and said in a notification); other jobs save nothing
        half-done."""
        if not self._closed:
            self.corrections.watcher.flush()  # edits still waiting for auto-save are stored, not dropped
            self.finetune.detach()
        workers.cancel(self.session.workers)
        if not self._closed:
            self._closed = True
            self.segment.disconnect_viewer()
            self.corrections.close_watcher()
