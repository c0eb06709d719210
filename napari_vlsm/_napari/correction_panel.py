"""The "Corrections" section: project folder, Add correction, auto-save, counts, stored list."""

from __future__ import annotations

import time
from pathlib import Path

from napari.utils.notifications import show_info
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QCheckBox, QFileDialog, QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QPushButton, QSizePolicy, QVBoxLayout,
    QWidget,
)
from superqt import QElidingLabel

from napari_vlsm.core.errors import PromptError
from napari_vlsm.core.store import normalize_target

from . import layers as L
from . import texts
from .autosave import PaintWatcher
from .workers import guarded, on_click


def save_plane(session, labels, image, plane, prompt: str):
    """Store one corrected slice with the model's proposal for it (durable when this returns)."""
    entry = session.proposals.get(labels, plane)
    return session.store.add(
        L.read_plane(image.data, image.ndim, plane), L.plane_mask(labels, plane), [prompt],
        proposal=None if entry is None else entry.mask, source=L.source_id(image, plane.axes),
        slice_index=plane.slice_index, window=session.window_for(image),
    )


class CorrectionPanel(QWidget):
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
        self.counts = QLabel()
        self.status = QLabel()
        self.list = QListWidget()
        self.list.setMaximumHeight(110)
        self.btn_remove = QPushButton("Remove selected")
        self.watcher = PaintWatcher(self.viewer, parent=self)
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
                                                  str(self.session.project))
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
        sample = save_plane(self.session, labels, image, plane, prompt)
        self._saved(1, target)
        show_info(texts.info(f"correction of '{target}' saved ({sample.split})"))

    def _auto_save(self, pending: dict) -> None:
        if not self.autosave.isChecked():
            return
        saved, targets = 0, set()
        for labels, planes in pending.values():
            image = L.image_of(self.viewer, labels)
            meta = L.output_meta(labels)
            if image is None or meta is None:
                continue
            for plane in sorted(planes, key=lambda p: p.index):
                save_plane(self.session, labels, image, plane, meta.get("prompt", meta["target"]))
                saved += 1
            targets.add(meta["target"])
        if saved:
            self._saved(saved, ", ".join(sorted(targets)), auto=True)

    def _saved(self, n: int, target: str, auto: bool = False) -> None:
        how = "auto-saved" if auto else "saved"
        self.status.setText(f"{how} {n} slice(s) of '{target}' at {time.strftime('%H:%M:%S')}")
        self.session.store_changed.emit()

    def remove_selected(self) -> None:
        items = self.list.selectedItems()
        for item in items:
            self.session.store.remove(item.data(Qt.ItemDataRole.UserRole))
        if items:
            self.session.store_changed.emit()

    # -------------------------------------------------------------------------- view
    def refresh(self) -> None:
        self.project.setText(str(self.session.project))
        self.project.setToolTip(str(self.session.project))
        target = normalize_target(self.session.prompt) if self.session.prompt else ""
        store = self.session.store
        counts = store.counts(target) if target else {"train": 0, "val": 0}
        self.counts.setText(texts.counts(target, counts["train"], counts["val"]))
        self.list.clear()
        if not target:
            return
        for sample in store.samples(target):
            where = f"slice {','.join(map(str, sample.slice_index))}" if sample.slice_index else "2D"
            source = Path(sample.source.removeprefix("layer:")).name or "?"
            item = QListWidgetItem(f"{source} · {where} · {sample.split} · {sample.created[11:19]}")
            item.setData(Qt.ItemDataRole.UserRole, sample.id)
            self.list.addItem(item)

