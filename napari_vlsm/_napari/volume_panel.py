"""The dock's "Volume" section: display window, corrected slices, Fill between slices, 3D clean-up
and statistics of the mask layer being corrected (the work: ``volume_actions.py``).

The display window (napari's contrast limits) is what the user looks at; the *Model window* in
the Segment section is what the model sees. They are separate on purpose: a CT is read in a
soft-tissue window whatever window the model was trained with.
"""

from __future__ import annotations

from napari.layers import Image, Labels
from napari.utils.notifications import show_info
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from napari_vlsm.core.medical.windows import CT_PRESETS, LABELS, ct_window, display_presets

from . import layers as L
from . import slice_status, texts, volume_actions
from .workers import on_click

TIP_FILL = ("Propose masks for the slices between the slices you corrected, for the structure picked in the "
            "legend, along the axis you are viewing. Corrected slices are never changed; one Ctrl+Z undoes it. "
            "Editing a filled slice makes it a correction.")
TIP_DISPLAY = "Display contrast only (napari's contrast limits); the model's window is the Segment section's."


class VolumePanel(QWidget):
    def __init__(self, session, segment, parent=None):
        super().__init__(parent)
        self.session, self.segment, self.viewer = session, segment, session.viewer
        self.display = QComboBox()
        self.display.setToolTip(TIP_DISPLAY)
        self.corrected = QLabel("Corrected slices: –")
        self.corrected.setWordWrap(True)
        self.btn_fill = QPushButton("Fill between slices")
        self.btn_fill.setToolTip(TIP_FILL)
        self.keep_largest = QCheckBox("Keep largest part")
        self.fill_holes = QCheckBox("Fill holes")
        self.min_size = QDoubleSpinBox()
        self.min_size.setRange(0.0, 1e7)
        self.min_size.setDecimals(0)
        self.min_size.setSuffix(" mm³")
        self.min_size.setSpecialValueText("off")
        self.min_size.setToolTip("Remove islands smaller than this volume (real mm³ from the voxel spacing)")
        self.btn_clean = QPushButton("Clean up structure")
        self.btn_stats = QPushButton("Statistics")
        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["Structure", "Size", "Mean ± std", "Slices"])
        self.table.setVisible(False)
        self._layout()
        self._timer = QTimer(self, singleShot=True, interval=300)  # coalesce paint bursts
        self._timer.timeout.connect(self.refresh)
        self._watched = None
        self._connect()

    def _layout(self) -> None:
        form = QFormLayout()
        form.addRow("Display", self.display)
        box = QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        box.addLayout(form)
        box.addWidget(self.corrected)
        box.addWidget(self.btn_fill)
        row = QHBoxLayout()
        row.addWidget(self.keep_largest)
        row.addWidget(self.fill_holes)
        box.addLayout(row)
        row = QHBoxLayout()
        row.addWidget(QLabel("Islands <"))
        row.addWidget(self.min_size)
        row.addWidget(self.btn_clean)
        box.addLayout(row)
        box.addWidget(self.btn_stats)
        box.addWidget(self.table)

    def _connect(self) -> None:
        on_click(self.btn_fill, self.fill_between, "filling between slices")
        on_click(self.btn_clean, self.clean_up, "cleaning up")
        on_click(self.btn_stats, self.show_statistics, "computing statistics")
        self.display.activated.connect(lambda _: self.apply_display())
        self.session.context_changed.connect(self._context)
        self.session.busy_changed.connect(lambda job: None if job else self._timer.start())
        self.viewer.dims.events.order.connect(self._later)
        self.viewer.dims.events.ndisplay.connect(self._later)

    def disconnect_viewer(self) -> None:
        self.viewer.dims.events.order.disconnect(self._later)
        self.viewer.dims.events.ndisplay.disconnect(self._later)
        self._watch(None)

    def _later(self, *_) -> None:
        self._timer.start()

    # -------------------------------------------------------------------------- targets
    def image(self):
        image = self.segment.image.value
        return image if isinstance(image, Image) else None

    def target(self):
        """(mask layer, structure value): the output layer being corrected, the structure picked."""
        active = self.viewer.layers.selection.active
        labels = active if isinstance(active, Labels) and L.output_meta(active) is not None else self.segment._output()
        if labels is None:
            raise volume_actions.VolumeEditError("Segment the volume first; there is no mask layer for this "
                                                 "image and prompt yet")
        values = [s.value for s in L.structures_of(labels)]
        value = labels.selected_label if labels.selected_label in values else values[0]
        return labels, value

    def _context(self) -> None:
        self._sync_display()
        self._timer.start()

    def _watch(self, labels) -> None:
        if self._watched is labels:
            return
        if self._watched is not None:
            self._watched.events.paint.disconnect(self._later)
            self._watched.events.selected_label.disconnect(self._later)
        self._watched = labels
        if labels is not None:
            labels.events.paint.connect(self._later)
            labels.events.selected_label.connect(self._later)

    def refresh(self) -> None:
        """The list of corrected slices of the picked structure along the viewed axis."""
        try:
            labels, value = self.target()
        except volume_actions.VolumeEditError:
            self._watch(None)
            self.corrected.setText("Corrected slices: –")
            return
        self._watch(labels)
        if labels.ndim != 3:
            self.corrected.setText("Corrected slices: – (a 2D mask)")
            return
        axes = L.plane_axes(labels, self.viewer.dims)
        planes = slice_status.corrected_planes(labels, self.session.proposals, axes, value)
        name = volume_actions.structure_name(labels, value)
        text = slice_status.describe(planes) or "none yet"
        self.corrected.setText(f"Corrected slices of {name}: {text}")
        self.corrected.setToolTip(f"{len(planes)} slice(s) you corrected along this view; Segment all slices "
                                  "keeps them (and those filled between them)")

    # -------------------------------------------------------------------------- display
    def _sync_display(self) -> None:
        """The presets that fit the image (CT: HU windows) in the Display box."""
        image = self.image()
        self.display.clear()
        if image is None or getattr(image, "rgb", False):
            return
        for name in display_presets(self._modality(image)):
            self.display.addItem(LABELS.get(name, name), name)
        shown = tuple(float(v) for v in image.contrast_limits)
        for name in CT_PRESETS:  # show which HU window is on (percentile windows would need a pass)
            if self.display.findData(name) >= 0 and ct_window(name) == shown:
                self.display.setCurrentIndex(self.display.findData(name))
    def _modality(self, image) -> str:
        from .reader import volume_metadata

        return (volume_metadata(image) or {}).get("modality", "") or ""

    def apply_display(self) -> None:
        from napari_vlsm.core.medical.windows import resolve_window

        image, name = self.image(), self.display.currentData()
        if image is None or name is None:
            return
        image.contrast_limits = resolve_window(name, image.data, self._modality(image), rgb=False)

    # -------------------------------------------------------------------------- actions
    def fill_between(self) -> None:
        labels, value = self.target()
        axes = L.plane_axes(labels, self.viewer.dims)
        written = volume_actions.fill_between(self.session, labels, axes, value, self.segment.threshold.value())
        name = volume_actions.structure_name(labels, value)
        show_info(texts.info(f"{len(written)} slice(s) filled\n'{name}' between your corrected slices "
                             "(Ctrl+Z undoes it; edit a slice to make it a correction)"))
        self.refresh()

    def options(self):
        from napari_vlsm.core.volume_edit.cleanup import CleanupOptions

        return CleanupOptions(self.keep_largest.isChecked(), self.fill_holes.isChecked(), float(self.min_size.value()))

    def clean_up(self) -> None:
        labels, value = self.target()
        changed = volume_actions.clean_up(self.session, labels, value, self.options())
        name = volume_actions.structure_name(labels, value)
        show_info(texts.info(f"{changed} voxel(s) cleaned up\n'{name}' (Ctrl+Z undoes it)"))
        self.refresh()

    def show_statistics(self) -> list[dict]:
        from napari_vlsm.core.volume_edit import statistics as stats

        labels, _ = self.target()
        rows, in_mm = volume_actions.statistics(labels, L.image_of(self.viewer, labels) or self.image())
        self.table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            size, mean = stats.size_text(row), stats.mean_text(row)
            slices = f"{row['first_slice']}–{row['last_slice']}" if row.get("first_slice") is not None else ""
            for c, text in enumerate((row["name"], size, mean, slices)):
                self.table.setItem(r, c, QTableWidgetItem(text))
        self.table.setVisible(bool(rows))
        if not in_mm:
            show_info(texts.info("Sizes in voxels: no spacing known\nThe image has no voxel spacing (open the scan as "
                                 "NIfTI/DICOM, or set the layer's scale in mm)"))
        return rows
