"""The "Segment" section: image, prompt(s), threshold, Segment slice / all slices, revert, legend.

Several structures at once: the prompt box takes them separated by ';' ("liver; spleen; left
kidney"; a pasted list with one per line works too), or a preset list. They are segmented from ONE
image pass into ONE Labels layer per image (value i for the i-th structure, named and coloured,
with a legend below); one structure works exactly as before.
"""

from __future__ import annotations

import threading
from functools import partial

import numpy as np
from magicgui.widgets import create_widget
from napari.layers import Image
from napari.utils.notifications import show_info
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)
from superqt import QLabeledDoubleSlider

from napari_vlsm.core import labelmap as LM
from napari_vlsm.core.errors import PromptError

from . import layers as L
from . import outputs, texts
from .dock_values import bind
from .legend import Legend, PresetBox, working_prompt
from .segment_jobs import predict_plane, predict_planes
from .window_choice import WindowChoice
from .workers import guarded, on_click

HISTORY = 15  # recent prompts kept in the prompt box
TIP_RESEGMENT_CORRECTED = ("Off (default): Segment all slices leaves the slices you corrected, and those filled "
                           "between them, as they are. On: the model replaces them too (Ctrl+Z undoes it).")
TIP_MODEL_WINDOW = ("The intensity window the MODEL sees (stored with each correction). The display contrast is "
                    "napari's own (layer controls, or Display in the Volume section).")
TIP_EXPORT = "Save this mask layer as a label map (PNG for 2D, TIFF for stacks) with a JSON legend."


class SegmentPanel(QWidget):
    def __init__(self, session, parent=None):
        super().__init__(parent)
        self.session = session
        self.viewer = session.viewer
        self._cancel: threading.Event | None = None
        self._collected: list = []
        self._told_skip = False

        self.image = create_widget(annotation=Image, label="Image", options={"choices": self._images})
        self.prompt = QComboBox()
        self.prompt.setEditable(True)
        self.prompt.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)  # history is kept by us
        self.prompt.lineEdit().setPlaceholderText("e.g. polyp — or several: liver; spleen")
        self.prompt.setToolTip(texts.TIP_PROMPT)
        for combo in (self.prompt, self.image.native):  # long names must not widen the dock
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(12)
        self.presets = PresetBox(self.prompt)
        self.legend = Legend(self.viewer)
        self.threshold = QLabeledDoubleSlider(Qt.Orientation.Horizontal)
        self.threshold.setRange(0.01, 0.99)
        self.threshold.setDecimals(2)
        self.threshold.setValue(0.5)
        self.threshold.setToolTip(texts.TIP_THRESHOLD)
        self.window_choice = WindowChoice(session)  # the intensity window the model sees
        self.show_prob = QCheckBox("Show probability map")
        self.show_prob.setToolTip(texts.TIP_PROB)
        self.btn_slice = QPushButton("&Segment slice")
        self.btn_slice.setToolTip(texts.TIP_SEG_SLICE)
        self.btn_all = QPushButton("Segment &all slices")
        self.btn_all.setToolTip(texts.TIP_SEG_ALL)
        self.resegment_corrected = QCheckBox("Re-segment corrected slices too")
        self.resegment_corrected.setToolTip(TIP_RESEGMENT_CORRECTED)
        self.btn_revert = QPushButton("&Revert to proposal")
        self.btn_revert.setToolTip(texts.TIP_REVERT)
        self.btn_export = QPushButton("&Export label map…")
        self.btn_export.setToolTip(TIP_EXPORT)
        self.progress = QProgressBar()
        self.btn_cancel = QPushButton("Cancel")
        self._layout()
        self._threshold_timer = QTimer(self, singleShot=True, interval=60)  # coalesce slider drags
        self._connect()
        self._follow_selection()

    def _layout(self) -> None:
        form = QFormLayout()
        form.addRow("Image", self.image.native)
        form.addRow("Prompt", self.prompt)
        form.addRow("", self.presets)
        form.addRow("Threshold", self.threshold)
        form.addRow("Model window", self.window_choice)  # not the display contrast (volume_panel.py)
        self.window_choice.setToolTip(f"{TIP_MODEL_WINDOW} {self.window_choice.toolTip()}")
        buttons = QHBoxLayout()
        buttons.addWidget(self.btn_slice)
        buttons.addWidget(self.btn_all)
        running = QHBoxLayout()
        running.addWidget(self.progress)
        running.addWidget(self.btn_cancel)
        box = QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        box.addLayout(form)
        box.addLayout(buttons)
        box.addWidget(self.resegment_corrected)
        box.addLayout(running)
        row = QHBoxLayout()
        row.addWidget(self.show_prob)
        row.addWidget(self.btn_revert)
        box.addLayout(row)
        box.addWidget(self.legend)
        box.addWidget(self.btn_export)
        self._running(False)

    def _connect(self) -> None:
        s = self.session
        on_click(self.btn_slice, self.segment_slice, "segmentation")
        on_click(self.btn_all, self.segment_all, "segmentation")
        self.prompt.lineEdit().returnPressed.connect(guarded(self.segment_slice, "segmentation"))
        on_click(self.btn_revert, self.revert, "revert")
        on_click(self.btn_export, self.choose_export, "exporting the label map")
        on_click(self.btn_cancel, self.cancel, "cancelling")
        self.threshold.valueChanged.connect(lambda _: self._threshold_timer.start())
        self._threshold_timer.timeout.connect(guarded(self.rethreshold, "re-thresholding"))
        bind(s.values, "threshold", self.threshold.valueChanged, self.threshold.setValue, float)
        bind(s.values, "show_probability", self.show_prob.toggled, self.show_prob.setChecked)
        self.image.changed.connect(self.refresh_context)
        self.prompt.currentTextChanged.connect(self.refresh_context)
        self.legend.picked.connect(guarded(self.refresh_context, "choosing a structure"))
        s.busy_changed.connect(self._busy)
        s.resegment_requested.connect(guarded(self.resegment, "segmentation"))
        events = self.viewer.layers.events
        for ev in (events.inserted, events.removed, events.moved):
            ev.connect(self._refresh_choices)
        self.viewer.layers.selection.events.active.connect(self._follow_selection)

    def disconnect_viewer(self) -> None:
        events = self.viewer.layers.events
        for ev in (events.inserted, events.removed, events.moved):
            ev.disconnect(self._refresh_choices)
        self.viewer.layers.selection.events.active.disconnect(self._follow_selection)
        self.legend.close_legend()

    # -------------------------------------------------------------------------- inputs
    def _images(self, _widget=None) -> list:
        return [layer for layer in self.viewer.layers if isinstance(layer, Image)]

    def _refresh_choices(self, event=None) -> None:
        self.image.reset_choices()
        if event is not None and getattr(event, "type", "") == "removed":
            self.session.forget_layer(event.value)

    def _follow_selection(self, event=None) -> None:
        """Pick the image the user selects; selecting a mask made here brings back its prompt."""
        active = self.viewer.layers.selection.active
        if isinstance(active, Image) and L.TAG not in active.metadata:
            self.image.value = active
            return
        meta = L.output_meta(active)
        if meta is not None:
            image = L.image_of(self.viewer, active)
            if image is not None:
                self.image.value = image
            self.prompt.setCurrentText(meta.get("prompt", meta["target"]))

    def prompt_text(self) -> str:
        """The prompt box in its canonical form: 'liver; spleen' (one structure: as typed, stripped)."""
        return LM.join_structures(LM.split_structures(self.prompt.currentText()))

    def refresh_context(self, *_) -> None:
        """The legend, the session's image and prompt (what the corrections panel counts) follow the
        image and prompt in use (also called when another section changed them: the Series' Next)."""
        labels = self._output()
        self.legend.show_layer(labels)
        self.session.image = self.image.value
        self.session.prompt = working_prompt(self.prompt.currentText(), labels)
        self.session.context_changed.emit()

    def _output(self):
        image, prompt = self.image.value, self.prompt_text()
        return L.find_output(self.viewer, image, prompt, exact=True) if image is not None and prompt else None

    def inputs(self):
        """(image layer, prompts) or a clinician-readable error."""
        image = self.image.value
        L.check_image(image)
        prompts = LM.split_structures(self.prompt.currentText())
        if not prompts:
            raise PromptError(texts.EMPTY_PROMPT)
        return image, prompts

    def _remember(self, prompt: str) -> None:
        items = [prompt] + [self.prompt.itemText(i) for i in range(self.prompt.count())
                            if self.prompt.itemText(i) != prompt]
        self.prompt.blockSignals(True)
        self.prompt.clear()
        self.prompt.addItems(items[:HISTORY])
        self.prompt.setCurrentText(prompt)
        self.prompt.blockSignals(False)

    # ------------------------------------------------------------------------- actions
    def segment_slice(self) -> None:
        image, prompts = self.inputs()
        plane = L.current_plane(image, self.viewer.dims)
        self._remember(LM.join_structures(prompts))

        def run(segmenter):
            self.session.run_job("segmenting", predict_plane, segmenter, self.session, image, plane, prompts,
                                 on_return=partial(self._apply, image, prompts))

        self.session.with_model("segmentation", run)

    def segment_all(self) -> None:
        image, prompts = self.inputs()
        if image.ndim == 2:
            return self.segment_slice()
        axes = L.plane_axes(image, self.viewer.dims)
        prompt = LM.join_structures(prompts)
        planes, kept = self._planes_to_segment(image, prompt, axes)
        if not planes:
            raise PromptError("Every slice is corrected; nothing was re-segmented. Tick 'Re-segment corrected "
                              "slices too' to replace your corrections")
        total = len(planes)
        indices = None if not kept else [p.index[0] if len(p.index) == 1 else p.index for p in planes]
        self._remember(prompt)
        cancel = threading.Event()

        def run(segmenter):
            self._cancel, self._collected = cancel, []
            self.progress.setRange(0, total)
            self.progress.setValue(0)
            self._running(True)
            self.session.run_job(
                "segmenting all slices", predict_planes, segmenter, self.session, image, axes, prompts,
                self.session.batch_size, cancel, indices, on_yield=self._collect,
                on_return=lambda _: self._finish_all(image, prompts, kept),
                progress={"total": total, "desc": f"napari-vlsm: segmenting '{prompt}'"}, cancel_event=cancel,
            )

        self.session.with_model("segmentation", run)

    def _planes_to_segment(self, image, prompt, axes) -> tuple[list, int]:
        """All planes, less the corrected and filled ones unless the user ticked to replace them."""
        from .slice_status import kept_planes

        planes = L.all_planes(image, axes)
        labels = L.find_output(self.viewer, image, prompt, exact=True)
        if labels is None or self.resegment_corrected.isChecked():
            return planes, 0
        kept = kept_planes(labels, self.session.proposals, axes)
        return [p for p in planes if p not in kept], len(kept)

    def _collect(self, item) -> None:
        self._collected.append(item)
        self.progress.setValue(len(self._collected))

    def _finish_all(self, image, prompts, kept: int = 0) -> None:
        results, self._collected = self._collected, []
        if results:
            self._apply(image, prompts, results)
        if kept:
            show_info(texts.info(f"{kept} corrected slice(s) kept\nSlices you corrected, and those filled between "
                                 "them, were not re-segmented ('Re-segment corrected slices too' replaces them)"))
        if self._cancel is not None and self._cancel.is_set():
            show_info(texts.info(f"Stopped after {len(results)} slice(s); kept\n"
                                 "They are kept (Ctrl+Z removes them)"))

    def show_proposal(self, image, prompts, results) -> None:
        """A proposal computed elsewhere (the Series section's read-ahead) shown as Segment slice
        shows its own: the prompt remembered, the mask layer selected and ready to paint."""
        self._remember(LM.join_structures(prompts))
        self._apply(image, prompts, results)

    def _apply(self, image, prompts, results) -> None:
        labels = outputs.apply_proposals(self.session, image, prompts, results, self.threshold.value())
        if labels is None:
            return
        if self.viewer.layers.selection.active is not labels:
            self.viewer.layers.selection.active = labels
        if labels.selected_label not in {s.value for s in L.structures_of(labels)}:
            labels.selected_label = L.LABEL
        labels.mode = "paint"  # ready to paint corrections
        self.refresh_context()  # the legend, and the structure the corrections panel counts

    def cancel(self) -> None:
        if self._cancel is not None:
            self._cancel.set()

    def resegment(self) -> None:
        """After a finetune: show the new adapter's proposal on the current slice, unless the
        user has edited that slice (a correction is never replaced without a click)."""
        image, labels = self.image.value, self._output()
        if labels is None:
            return
        plane = L.current_plane(image, self.viewer.dims)
        entry = self.session.proposals.get(labels, plane)
        current = L.plane_values(labels, plane)
        if (entry is None and current.any()) or (entry is not None and not np.array_equal(current, entry.values)):
            show_info(texts.info(texts.NEW_ADAPTER_EDITED))
            return
        self.segment_slice()

    def current_output(self):
        image, prompts = self.inputs()
        prompt = LM.join_structures(prompts)
        return image, prompt, L.find_output(self.viewer, image, prompt, exact=True)

    def rethreshold(self) -> None:
        labels = self._output()
        if labels is None:
            return
        _, skipped = outputs.rethreshold(labels, self.session.proposals, self.threshold.value())
        if skipped and not self._told_skip:
            self._told_skip = True
            show_info(texts.info(f"Corrected slices keep your edits\n{skipped} corrected slice(s) keep your "
                                 "edits; 'Revert to proposal' brings the model's mask back"))

    def revert(self) -> None:
        image, prompt, labels = self.current_output()
        if labels is None:
            raise PromptError(texts.NO_MASK.format(target=L.target_key(prompt), image=image.name))
        plane = L.current_plane(image, self.viewer.dims)
        entry = self.session.proposals.get(labels, plane)
        if entry is None:
            raise PromptError(texts.NO_PROPOSAL.format(layer=labels.name))
        outputs.revert(labels, plane, entry)

    def choose_export(self) -> None:
        from .export import is_medical

        image, prompt, labels = self.current_output()
        if labels is None:
            raise PromptError(texts.NO_MASK.format(target=L.target_key(prompt), image=self.image.value.name))
        if is_medical(labels, image):  # a scan's mask: NIfTI on its own voxel grid first
            name, filters = f"{labels.name}.nii.gz", "NIfTI label map (*.nii.gz *.nii);;Label map (*.tif *.png)"
        else:
            name, filters = f"{labels.name}.tif", "Label map (*.tif *.png)"
        path, _ = QFileDialog.getSaveFileName(self, "Export label map", name, filters)
        if path:
            self.export_to(labels, path, image)

    def export_to(self, labels, path, image=None):
        """Write ``labels`` as a label map (NIfTI on the scan's grid for a scan) + JSON legend in the
        background (see export.py)."""
        from .export import start_export

        return start_export(self.session, labels, path, image)

    # -------------------------------------------------------------------------- state
    def _busy(self, job: str) -> None:
        for button in (self.btn_slice, self.btn_all):
            button.setEnabled(not job)
        if not job:
            self._running(False)

    def _running(self, on: bool) -> None:
        self.progress.setVisible(on)
        self.btn_cancel.setVisible(on)
