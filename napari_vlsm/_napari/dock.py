"""VLSMDock: the "Text segmentation" dock widget (a thin assembly of the panels).

prompt -> Segment -> correct with napari's Labels tools -> Add correction -> Finetune adapter ->
the next Segment uses the adapter. State lives in :class:`DockSession`; each panel is one section.
"""

from __future__ import annotations

from pathlib import Path

from qtpy.QtCore import QEvent, Qt, QTimer
from qtpy.QtWidgets import QFrame, QGroupBox, QHBoxLayout, QLabel, QPushButton, QScrollArea, QVBoxLayout, QWidget

from . import close_guard, model_source, reader_preference, settings, texts, workers
from .correction_panel import CorrectionPanel
from .finetune_panel import FinetunePanel
from .model_panel import AdvancedPanel, ModelPanel
from .segment_panel import SegmentPanel
from .series_panel import SeriesPanel
from .session import DockSession
from .volume_panel import VolumePanel


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
        self.session = DockSession(napari_viewer, parent=self)
        self.segment = SegmentPanel(self.session)
        self.corrections = CorrectionPanel(self.session)
        self.volume = VolumePanel(self.session, self.segment)
        self.finetune = FinetunePanel(self.session)
        self.model = ModelPanel(self.session)
        self.advanced = AdvancedPanel(self.session)
        self.series = SeriesPanel(self.session, self.segment, self.corrections, self.finetune)

        content = QWidget()
        box = QVBoxLayout(content)
        self.demo_banner = QLabel(texts.BANNER_DEMO)  # while the untrained demo model is in use
        self.demo_banner.setWordWrap(True)
        self.demo_banner.setStyleSheet("font-weight: bold; color: #f0a030;")
        box.addWidget(self.demo_banner)
        self.notice = self._make_notice()
        box.addWidget(self.notice)
        box.addWidget(_group("Series", self.series))
        box.addWidget(_group("Segment", self.segment))
        box.addWidget(_group("Corrections", self.corrections))
        box.addWidget(_group("Volume", self.volume))
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
        content.installEventFilter(self)
        self._fit_width()
        self._settings_project = None
        self._save_timer = QTimer(self, singleShot=True, interval=300)  # coalesce a burst of changes
        self._save_timer.timeout.connect(workers.guarded(self.save_settings, "saving the settings"))
        self.load_settings()
        self._watch_settings()
        workers.on_click(self.btn_notice_folder, self.model.choose_folder, "choosing the model")
        workers.on_click(self.btn_demo, self.use_demo_model, "writing the demo model")
        self.session.model_changed.connect(workers.guarded(self.check_model_source, "checking the model"))
        self.check_model_source()
        self.segment.refresh_context()
        workers.guarded(reader_preference.apply_once, "setting napari's readers")()  # once per user
        self._close_guard = close_guard.install(napari_viewer, self.running_job, self)  # asks once, in words
        workers.guarded(self.series.restore, "opening the series")()  # lands on the item left last time

    def running_job(self) -> str | None:
        """The job running now, in words (napari's close question names it), or None."""
        worker = self.finetune.worker if self.session.finetuning else None
        return getattr(worker, "title", None) or (self.session.job or "").capitalize() or None

    def _fit_width(self, *_) -> None:
        """Wide enough for the content beside a vertical scroll bar: nothing is ever cut off.

        The scroll area never makes its content narrower than the content's minimum size, so a
        narrower viewport clips the right edge. That minimum is known only once napari's style
        sheet is applied (after docking: larger paddings and fonts than at construction) and
        changes with the texts shown, so it is measured again whenever the content's layout is
        recomputed (eventFilter)."""
        content = self._content
        need = max(content.minimumSizeHint().width(), content.sizeHint().width())
        bar = self._scroll.verticalScrollBar().sizeHint().width()
        width = need + bar + 2 * self._scroll.frameWidth() + 2
        if width > self.minimumWidth():
            self.setMinimumWidth(width)

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 (Qt naming)
        if watched is self._content and event.type() in (QEvent.Type.LayoutRequest, QEvent.Type.Show,
                                                         QEvent.Type.StyleChange, QEvent.Type.FontChange):
            QTimer.singleShot(0, workers.guarded(self._fit_width, "laying out the dock"))
        return False

    # ------------------------------------------------------------------------- first run
    def _make_notice(self) -> QFrame:
        """Shown while the model source cannot be had offline: why, and three ways out."""
        frame = QFrame()
        frame.setFrameShape(QFrame.Shape.StyledPanel)
        box = QVBoxLayout(frame)
        self.notice_text = QLabel()
        self.notice_text.setWordWrap(True)
        self.notice_text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        box.addWidget(self.notice_text)
        row = QHBoxLayout()
        self.btn_notice_folder = QPushButton("Choose model folder…")
        self.btn_demo = QPushButton("Use demo model")
        self.btn_demo.setToolTip("A small random-weight, UNTRAINED model: its masks are noise until finetuned.")
        row.addWidget(self.btn_notice_folder)
        row.addWidget(self.btn_demo)
        box.addLayout(row)
        frame.hide()
        return frame

    def check_model_source(self) -> str | None:
        """Milliseconds, no network: show the notice when the model cannot be had offline."""
        source = self.session.model_source
        problem = model_source.problem(source)
        if problem:
            self.notice_text.setText(f"<b>{problem}</b><br>{model_source.advice(source)}")
        self.notice.setVisible(problem is not None)
        from .launch import is_demo_model

        self.demo_banner.setVisible(is_demo_model(source))
        return problem

    def use_demo_model(self) -> None:
        from .launch import demo_model_dir

        self.btn_demo.setEnabled(False)
        workers.start(demo_model_dir, what="writing the demo model",
                      on_return=lambda folder: self.session.set_model_source(str(folder)),
                      on_finish=lambda: self.btn_demo.setEnabled(True), torch_job=True)

    # ------------------------------------------------------------------------- settings
    def load_settings(self) -> None:
        """Apply the user's saved settings, then the project's (settings.py); bad files warn only."""
        values, warning = settings.read(settings.user_path(), settings.USER_KEYS)
        settings.warn(warning)
        s = self.session
        project, warning = settings.remembered_project(values.get("project"))  # never a temp or lost folder
        settings.warn(warning)
        if project:
            s.set_project(project)
        if values.get("model_source"):
            s.set_model_source(values["model_source"])
        for key, combo in (("device", self.model.device), ("precision", self.model.precision)):
            if key in values and combo.findText(values[key]) >= 0:
                combo.setCurrentText(values[key])
        for key in ("autosave", "batch_size", "max_steps", "budget_s"):  # the controls follow (dock_values.py)
            if key in values:
                setattr(s, key, values[key])
        self.model.server.restore(values)
        self._load_project_settings()

    def _load_project_settings(self) -> None:
        project = self.session.folder
        if project == self._settings_project:
            return
        self._settings_project = project
        values, warning = settings.read(settings.project_path(project), settings.PROJECT_KEYS)
        settings.warn(warning)
        if "variant" in values and self.model.variant.findText(values["variant"]) >= 0:
            self.model.variant.setCurrentText(values["variant"])
        adapter = values.get("adapter")
        if not (adapter in ("none", "latest") or (adapter and Path(adapter).is_file())):
            adapter = "none"  # another project's adapter (or "latest") means nothing here
        self.session.adapter = adapter
        self.model.sync()
        if "threshold" in values:
            self.session.threshold = min(0.99, max(0.01, float(values["threshold"])))
        from napari_vlsm.core.worklist import ORDERS

        order = values.get("series_order", "")  # not picked here (or unknown): the default order
        self.session.values.series_order = order if order in ORDERS else ""

    def _watch_settings(self) -> None:
        later = self._save_timer.start
        s = self.session
        s.model_changed.connect(later)
        s.values.events.connect(lambda *_: later())  # any of the dock's values (dock_values.py)
        s.store_changed.connect(self._project_maybe_changed)
        for field in (self.model.server.url, self.model.server.token_file, self.model.server.project):
            field.editingFinished.connect(later)

    def _project_maybe_changed(self) -> None:
        if self.session.folder != self._settings_project:
            self._load_project_settings()
            self._save_timer.start()

    def save_settings(self) -> None:
        s = self.session
        user = {"project": str(s.folder), "model_source": s.model_source, "device": s.device,
                "precision": s.precision, "autosave": s.autosave,
                "batch_size": s.batch_size, "max_steps": s.max_steps or 0, "budget_s": s.budget_s,
                **self.model.server.remembered()}
        settings.warn(settings.write(settings.user_path(), user, settings.USER_KEYS))
        if s.folder.is_dir():  # never create a project folder just to hold settings
            project = {"adapter": str(s.adapter), "variant": s.variant,
                       "threshold": float(s.threshold), "series_order": s.values.series_order}
            settings.warn(settings.write(settings.project_path(s.folder), project, settings.PROJECT_KEYS))

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
        self.session.closed = True
        if not self._closed:
            self.corrections.watcher.flush()  # edits still waiting for auto-save are stored, not dropped
            self.series.close()  # the mask on screen is saved
            self.finetune.detach()
            if self._save_timer.isActive():
                workers.guarded(self.save_settings, "saving the settings")()
        workers.cancel(self.session.workers)
        if not self._closed:
            self._closed = True
            self.segment.disconnect_viewer()
            self.volume.disconnect_viewer()
            self.corrections.close_watcher()
