"""The collapsible "Model & adapter" and "Advanced" sections."""

from __future__ import annotations

from pathlib import Path

from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)
from superqt import QCollapsible

from napari_vlsm.core.constants import TRAINABLE

from . import texts
from .dock_values import bind
from .session import ADAPTER_LATEST, ADAPTER_NONE
from .workers import guarded, on_click

DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
PICK_FILE = "Choose a file…"


class ModelPanel(QCollapsible):
    def __init__(self, session, parent=None):
        super().__init__("Model && adapter", parent)
        self.session = session
        body = QWidget()
        form = QFormLayout(body)
        self.source = QLineEdit(session.model_source)
        self.source.setToolTip(texts.TIP_MODEL)
        self.source.setMinimumWidth(80)
        self.btn_folder = QPushButton("Folder…")
        row = QHBoxLayout()
        row.addWidget(self.source, 1)
        row.addWidget(self.btn_folder)
        form.addRow("Model", row)
        self.adapter = _combo((), "")
        self.adapter.setMinimumContentsLength(len(texts.ADAPTER_LATEST_ITEM))  # never "latest trained in this proje"
        self.adapter.addItem("none (plain model)", ADAPTER_NONE)
        self.adapter.addItem(texts.ADAPTER_LATEST_ITEM, ADAPTER_LATEST)
        self.adapter.setToolTip("latest: the adapter this project's last finetune made")
        self.adapter.addItem(PICK_FILE, None)
        form.addRow("Adapter", self.adapter)
        self.variant = _combo(TRAINABLE, session.variant)
        self.variant.setToolTip(texts.TIP_VARIANT)
        form.addRow("New adapters", self.variant)
        self.device = _combo(DEVICES, session.device)
        self.precision = _combo(PRECISIONS, session.precision)
        form.addRow("Device", self.device)
        form.addRow("Precision", self.precision)
        self.btn_load = QPushButton("Load now")
        form.addRow(self.btn_load)
        self.info = QLabel()
        self.info.setWordWrap(True)
        form.addRow(self.info)
        from .server_panel import ServerBox

        self.server = ServerBox(session)  # or work on a napari-vlsm server (URL + token)
        form.addRow(self.server)
        self.addWidget(body)
        self._connect()
        self.sync()

    def _connect(self) -> None:
        s = self.session
        self.source.editingFinished.connect(lambda: s.set_model_source(self.source.text()))
        on_click(self.btn_folder, self.choose_folder, "choosing the model")
        self.adapter.activated.connect(guarded(self._adapter_chosen, "choosing the adapter"))
        for name in ("variant", "device", "precision"):  # the controls and the dock's values, both ways
            combo = getattr(self, name)
            bind(s.values, name, combo.currentTextChanged, combo.setCurrentText)
        on_click(self.btn_load, lambda: s.with_model("loading", lambda seg: None), "loading the model")
        s.model_changed.connect(self.sync)
        s.busy_changed.connect(self._busy)

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "CLIPSeg model folder (config.json, model.safetensors)")
        if folder:
            self.session.set_model_source(folder)

    def _adapter_chosen(self, index: int) -> None:
        data = self.adapter.itemData(index)
        if data is None:  # "Choose a file…"
            path, _ = QFileDialog.getOpenFileName(self, "Adapter file", str(self.session.adapters_dir),
                                                  "napari-vlsm adapters (*.safetensors)")
            if not path:
                self.sync()
                return
            data = path
        self.session.adapter = data
        self.sync()

    def sync(self) -> None:
        """Show the session's state (also after a finetune or set_model_source)."""
        s = self.session
        if self.source.text() != s.model_source:
            self.source.setText(s.model_source)
        index = self.adapter.findData(s.adapter)
        if index < 0:
            self.adapter.insertItem(self.adapter.count() - 1, Path(s.adapter).name, s.adapter)
            index = self.adapter.findData(s.adapter)
        self.adapter.setCurrentIndex(index)
        local = getattr(s, "remote", None) is None  # on a server its model and adapters are used
        for widget in (self.source, self.btn_folder, self.adapter, self.device, self.precision):
            widget.setEnabled(local)
        self.info.setText(describe(s))

    def _busy(self, job: str) -> None:
        self.btn_load.setEnabled(not job)
        if job.startswith("loading"):
            self.info.setText(f"{job.capitalize()}…")
        else:
            self.info.setText(describe(self.session))


def describe(session) -> str:
    seg = session.segmenter
    remote = getattr(session, "remote", None)
    if remote is not None:  # no network call here: this runs on every model change
        return f"On the server {remote.client.url} (project {remote.project}); adapter: {remote.adapter or 'none'}"
    if seg is None:
        return "Not loaded yet (loads at the first Segment)."
    info = seg.info()
    adapter = Path(info["adapter_path"]).name if info.get("adapter_path") else (
        "in memory" if info.get("adapter_loaded") else "none")
    backend = f", {info['backend']}" if info.get("backend") else ""  # e.g. torch / onnxruntime
    return f"{Path(info['source']).name} on {info['device']} ({info['precision']}{backend}); adapter: {adapter}"


def _combo(items, current: str) -> QComboBox:
    combo = QComboBox()
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(10)
    combo.addItems(list(items))
    combo.setCurrentText(current)
    return combo


class AdvancedPanel(QCollapsible):
    """Batch size for stacks and the finetune's limits (steps, time budget)."""

    def __init__(self, session, parent=None):
        super().__init__("Advanced", parent)
        body = QWidget()
        form = QFormLayout(body)
        self.batch = QSpinBox(minimum=1, maximum=64, value=session.batch_size)
        self.steps = QSpinBox(minimum=0, maximum=100_000, value=session.max_steps or 0)
        self.steps.setSpecialValueText("no limit")
        self.budget = QDoubleSpinBox(minimum=0, maximum=86_400, decimals=0, value=session.budget_s or 0)
        self.budget.setSpecialValueText(texts.AUTO_BUDGET)
        self.budget.setSuffix(" s")
        self.budget.setToolTip(texts.TIP_BUDGET)
        form.addRow("Slices per batch", self.batch)
        form.addRow("Finetune steps", self.steps)
        form.addRow("Finetune time limit", self.budget)
        self.addWidget(body)
        values = session.values  # the controls and the dock's values, both ways
        bind(values, "batch_size", self.batch.valueChanged, self.batch.setValue, int)
        bind(values, "max_steps", self.steps.valueChanged, lambda v: self.steps.setValue(v or 0), int)  # 0: no limit
        bind(values, "budget_s", self.budget.valueChanged, lambda v: self.budget.setValue(v or 0),
             lambda v: float(v) or None)
