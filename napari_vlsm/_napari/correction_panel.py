"""The "Corrections" section: project folder, Add correction, auto-save, counts, stored list."""

from __future__ import annotations

import time
from pathlib import Path

from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)
from superqt import QElidingLabel

from napari_vlsm.core.errors import PromptError
from napari_vlsm.core.store import normalize_target

from . import layers as L
from . import texts, workers
from .autosave import PaintWatcher
from .corrections import plane_sample, write_samples
from .dock_values import bind
from .workers import guarded, on_click


class CorrectionPanel(QWidget):
    stored = Signal(object)  # a correction (Sample) is on disk

    def __init__(self, session, parent=None):
        super().__init__(parent)
        self.session = session
        self.viewer = session.viewer
        self.project = QElidingLabel()  # long paths lose their start, not the dock's width
        self.project.setElideMode(Qt.TextElideMode.ElideLeft)
        self.project.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.btn_project = QPushButton("Project…")
        self.btn_project.setToolTip("Folder that keeps this project's corrections and adapters")
        self.btn_add = QPushButton("Add &correction")
        self.btn_add.setToolTip(texts.TIP_ADD)
        self.autosave = QCheckBox("Auto-save corrections")
        self.autosave.setToolTip(texts.TIP_AUTOSAVE)
        self.autosave.setChecked(session.autosave)  # by default a correction is stored ~1 s after the last stroke
        bind(session.values, "autosave", self.autosave.toggled, self.autosave.setChecked)
        self.counts = QLabel()
        self.status = QLabel()
        self.list = QListWidget()
        self.list.setMaximumHeight(110)
        # Rows start with the time and elide in the middle: no horizontal scroll bar, nothing clipped.
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.list.setSizeAdjustPolicy(QListWidget.SizeAdjustPolicy.AdjustIgnored)
        self.btn_remove = QPushButton("Remove selected")
        self.watcher = PaintWatcher(self.viewer, parent=self)
        self._queue: list[dict] = []  # corrections waiting for the writer (kept in order)
        self._writer = None
        self._reader = None  # the worker reading the list, and whether it must read again
        self._dirty = False
        self._layout()
        on_click(self.btn_project, self.choose_project, "opening the project")
        on_click(self.btn_add, self.add_correction, "saving the correction")
        on_click(self.btn_remove, self.remove_selected, "removing the correction")
        self.watcher.edited.connect(guarded(self._auto_save, "auto-saving corrections"))
        session.store_changed.connect(guarded(self.refresh, "reading the corrections"))
        session.context_changed.connect(guarded(self.refresh, "reading the corrections"))

    def _layout(self) -> None:
        box = QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        row.addWidget(self.project, 1)
        row.addWidget(self.btn_project)
        box.addLayout(row)
        row = QHBoxLayout()
        row.addWidget(self.btn_add)
        row.addWidget(self.autosave)
        box.addLayout(row)
        box.addWidget(self.counts)
        box.addWidget(self.list)
        box.addWidget(self.btn_remove)
        box.addWidget(self.status)

    def close_watcher(self) -> None:
        self.watcher.close()

    # -------------------------------------------------------------------------- actions
    def choose_project(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Project folder (corrections and adapters)",
                                                  str(self.session.folder))
        if folder:
            self.session.set_project(folder)

    def add_correction(self) -> None:
        image, prompt = self.session.image, self.session.prompt
        L.check_image(image)
        if not prompt:
            raise PromptError(texts.EMPTY_PROMPT)
        target = normalize_target(prompt)
        labels = L.find_output(self.viewer, image, target)
        if labels is None:
            raise PromptError(texts.NO_MASK.format(target=target, image=image.name))
        plane = L.current_plane(image, self.viewer.dims)
        self.save([plane_sample(self.session, labels, image, plane, prompt)], auto=False)

    def _auto_save(self, pending: dict) -> None:
        if not self.session.autosave:
            return
        items = []
        for labels, planes in pending.values():
            image = L.image_of(self.viewer, labels)
            meta = L.output_meta(labels)
            if image is None or meta is None:
                continue
            prompt = meta.get("prompt", meta["target"])
            items += [plane_sample(self.session, labels, image, p, prompt) for p in sorted(planes, key=lambda p: p.index)]
        if items:
            self.save(items, auto=True)

    # -------------------------------------------------------------------------- writing
    def save(self, items: list[dict], auto: bool) -> None:
        """Queue corrections for the writer: one worker at a time, so they land in order and the
        GUI thread never waits for the disk (~0.1 s per 512 x 512 slice with its fsyncs)."""
        for item in items:
            item["_auto"] = auto
        self._queue += items
        if self._writer is None:
            self._write_next()

    def _write_next(self) -> None:
        batch, self._queue = self._queue, []
        if not batch:
            self._writer = None
            return
        auto = {item.pop("_auto") for item in batch}
        self.status.setText(f"Saving {len(batch)} correction(s)…")
        # Not in the dock's cancellable group: closing the dock must not stop a write between two
        # acknowledged corrections (each write takes a fraction of a second).
        self._writer = workers.start(
            write_and_count, self.session.project, batch, what="saving the correction",
            on_yield=lambda landed: self._saved(*landed, True in auto), on_finish=self._write_next,
        )

    @property
    def saving(self) -> bool:
        return self._writer is not None

    def _saved(self, sample, counts: dict, auto: bool) -> None:
        how = "Auto-saved" if auto else "Saved"
        where = f"slice {','.join(map(str, sample.slice_index))}" if sample.slice_index else "the image"
        self.status.setText(f"{how} {where} of '{sample.target}' ({sample.split}) at {time.strftime('%H:%M:%S')}")
        current = normalize_target(self.session.prompt) if self.session.prompt else ""
        if sample.target == current:  # the counts the writer read right after the save landed
            self.counts.setText(texts.counts(current, counts["train"], counts["val"]))
        self.stored.emit(sample)
        self.session.store_changed.emit()  # the list is re-read in the background

    def remove_selected(self):
        """Remove the selected corrections in a worker (on a server project that is a request each:
        never on the GUI thread); the list is re-read afterwards. Returns the worker."""
        ids = [item.data(Qt.ItemDataRole.UserRole) for item in self.list.selectedItems()]
        if not ids:
            return None
        return workers.start(remove_corrections, self.session.project, ids, what="removing the correction",
                             on_finish=self.session.store_changed.emit)

    # -------------------------------------------------------------------------- view
    def refresh(self) -> None:
        """Re-read counts and the list of stored corrections (in a worker, coalesced)."""
        self.project.setText(str(self.session.folder))
        self.project.setToolTip(str(self.session.folder))
        self._dirty = True
        if self._reader is None:
            self._read_next()

    def _read_next(self) -> None:
        if not self._dirty:
            self._reader = None
            return
        self._dirty = False
        target = normalize_target(self.session.prompt) if self.session.prompt else ""
        self._reader = workers.start(
            list_corrections, self.session.project, target, what="reading the corrections",
            on_return=lambda listing: self._show(target, *listing), on_finish=self._read_next,
            group=self.session.workers,
        )

    def _show(self, target: str, counts: dict, rows: list) -> None:
        self.counts.setText(texts.counts(target, counts["train"], counts["val"]))
        self.list.clear()
        for sample_id, text in rows:
            item = QListWidgetItem(text)
            item.setData(Qt.ItemDataRole.UserRole, sample_id)
            self.list.addItem(item)


def list_corrections(project, target: str):
    """Worker: counts and one line per stored correction of ``target`` (their records only: no
    image is decoded, or sent by a server)."""
    if not target:
        return {"train": 0, "val": 0}, []
    rows = []
    for sample in project.corrections(target):
        where = f"slice {','.join(map(str, sample.slice_index))}" if sample.slice_index else "2D"
        source = Path(sample.source.removeprefix("layer:")).name or "?"
        # time first: the part a user scans for, never the one elided
        rows.append((sample.id, f"{sample.created[11:19]} · {sample.split} · {where} · {source}"))
    return project.counts(target), rows


def remove_corrections(project, sample_ids: list[str]) -> None:
    """Worker: remove stored corrections by id."""
    for sample_id in sample_ids:
        project.remove_correction(sample_id)


def write_and_count(project, items: list[dict]):
    """Worker: ``write_samples``, each stored correction with its target's counts read at once,
    so the panel's counts change the moment the save lands."""
    for sample in write_samples(project, items):
        yield sample, project.counts(sample.target)
