"""State shared by the dock's panels: the engine, the project, kept proposals.

The project is a :class:`~napari_vlsm.core.project.Project` (the folder chosen under Corrections)
or, while connected to a server, a :class:`~napari_vlsm.client.project.RemoteProject`; the panels
call it the same way (``core/project/protocol.py``). The layout of the folder, "latest" and what a
finetune saves are the project's, not the dock's.

The panels are views: they read and change this object and listen to its signals. Model work
(loading, segmenting) runs through :meth:`DockSession.with_model`, which loads the model in the
background first when needed (lazily, at the first Segment) and allows one such job at a time.
Finetuning is a separate job: it trains a copy of the adapters, so segmenting may go on meanwhile.
"""

from __future__ import annotations

from pathlib import Path

from qtpy.QtCore import QObject, Signal

from napari_vlsm.core.constants import DEFAULT_MODEL  # imports nothing: no torch at dock start-up
from napari_vlsm.core.errors import AdapterError, VLSMError

from . import texts, workers
from .dock_values import DockValues
from .proposals import ProposalBook

ADAPTER_NONE, ADAPTER_LATEST = "none", "latest"


def load_segmenter(source: str, device: str, precision: str, variant: str, adapter: str | None):
    """Worker side: build the engine (imports torch; seconds for the real model)."""
    from napari_vlsm.core.engine import Segmenter

    return Segmenter(source, adapter=adapter, variant=variant, device=device, precision=precision)


def swap_adapter(segmenter, adapter: str | None):
    """Worker side: load an adapter file (or go back to the plain model)."""
    if adapter is None:
        segmenter.clear_adapter()
    else:
        segmenter.load_adapter(adapter)
    return segmenter


def _value(name: str):
    """A DockSession attribute that is a field of its DockValues (one place for the UI values)."""
    return property(lambda self: getattr(self.values, name), lambda self, v: setattr(self.values, name, v))


class DockSession(QObject):
    model_changed = Signal()  # a model or adapter was loaded (info() changed)
    store_changed = Signal()  # a correction was added or removed, or the project changed
    busy_changed = Signal(str)  # the running model job's name, "" when idle
    finetune_changed = Signal(bool)  # a finetune started (True) or ended (False)
    context_changed = Signal()  # the image or prompt the user works on changed
    resegment_requested = Signal()  # a new adapter is in use: refresh the current slice

    # The UI values live in one evented model (dock_values.py); these names read and write it.
    model_source = _value("model_source")
    device = _value("device")
    precision = _value("precision")
    variant = _value("variant")
    adapter = _value("adapter")
    threshold = _value("threshold")
    autosave = _value("autosave")
    show_probability = _value("show_probability")
    window_preset = _value("window_preset")
    batch_size = _value("batch_size")
    train_batch_size = _value("train_batch_size")
    max_steps = _value("max_steps")
    budget_s = _value("budget_s")

    def __init__(self, viewer, parent=None):
        super().__init__(parent)
        self.viewer = viewer
        self.values = DockValues()  # the UI values panels and settings bind to (dock_values.py)
        self.segmenter = None
        self._loaded_key = None  # (source, device, precision) of self.segmenter
        self._adapter_key = None  # the adapter file the segmenter holds (None: plain model)
        self._folder = None
        self._local = None  # the Project of the folder, opened on first use
        self._server_project = None  # a RemoteProject while connected to a server, else None
        self.remote = None  # a RemoteEngine while connected to a server (server_panel.py), else None
        self.proposals = ProposalBook()
        self.windows: dict[str, tuple | None] = {}  # image unique id -> intensity window
        self.job = ""
        self._job_serial = 0  # bumped by set_job: which job the current ``job`` belongs to
        self._waiting: list = []
        self.finetuning = False
        self.workers: set = set()  # this dock's running jobs
        self.closed = False  # the dock was closed: start no new job
        # What the user works on (kept up to date by the segment panel).
        self.image = None
        self.prompt = ""

    # ----------------------------------------------------------------------------- project
    @property
    def folder(self) -> Path:
        """The local project folder (corrections, adapters, settings; the server outbox)."""
        if self._folder is None:
            from napari_vlsm.core.store import default_root

            self._folder = default_root()
        return self._folder

    def set_project(self, folder) -> None:
        self._folder = Path(folder).expanduser()
        self._local = None  # connected: corrections keep going to the server's project
        self.store_changed.emit()

    @property
    def local_project(self):
        """The folder's Project; it trains with the model this dock loaded."""
        if self._local is None:
            from napari_vlsm.core.project import Project

            self._local = Project(self.folder, model=lambda: getattr(self.segmenter, "loaded", None))
        return self._local

    @property
    def project(self):
        """The project the dock works on: the server's while connected, else the folder's."""
        return self._server_project if self._server_project is not None else self.local_project

    @property
    def adapters_dir(self) -> Path:
        return self.local_project.layout.adapters

    def latest_adapter(self) -> Path | None:
        """The folder project's latest adapter (``core/project``: the last run that improved Dice)."""
        return self.local_project.latest_path()

    def set_latest(self, path: Path) -> None:
        self.local_project.layout.write_latest(path)

    def use_server(self, engine, project) -> None:
        """Work through a server: its engine and project replace the local ones (server_client.py)."""
        self.adapter = ADAPTER_NONE  # server adapters are chosen by name on the engine, not as local files
        self.segmenter, self._loaded_key, self._adapter_key = engine, self.model_key(), None
        self.remote, self._server_project = engine, project
        self.model_changed.emit()
        self.store_changed.emit()

    def use_local(self) -> None:
        """Back to the local model and the folder's project."""
        self.remote = self._server_project = None
        self.segmenter, self._loaded_key, self._adapter_key = None, None, None
        self.model_changed.emit()
        self.store_changed.emit()

    # ------------------------------------------------------------------------------ model
    def set_model_source(self, source: str) -> None:
        """Use another model (hub id or local folder); it loads at the next model job."""
        self.model_source = str(source).strip() or DEFAULT_MODEL
        self.model_changed.emit()

    def model_key(self) -> tuple:
        return (self.model_source, self.device, self.precision)

    @property
    def held_adapter(self) -> str | None:
        """The adapter file the loaded engine holds (None: the plain model, or no engine)."""
        return self._adapter_key

    def engine_key(self) -> tuple | None:
        """What the loaded engine is (model, device, precision; adapter), None before a load: it
        changes exactly when the engine's proposals may change."""
        if self.segmenter is None:
            return None
        if self.remote is not None:  # the server's engine: its adapter is chosen by name there
            return (self._loaded_key, f"server:{self.remote.adapter}")
        return (self._loaded_key, self._adapter_key)

    def holds(self, adapter: str | None) -> bool:
        """The engine loaded now is the wanted model with ``adapter``: nothing to load first."""
        return self.segmenter is not None and self._loaded_key == self.model_key() and self._adapter_key == adapter

    def wanted_adapter(self) -> str | None:
        if self.adapter == ADAPTER_NONE:
            return None
        if self.adapter == ADAPTER_LATEST:
            path = self.latest_adapter()
            if path is None:
                raise AdapterError(texts.NO_LATEST.format(root=self.folder))
            return str(path)
        return str(self.adapter)

    def with_model(self, what: str, then) -> None:
        """Call ``then(segmenter)`` on the GUI thread once the wanted model + adapter are loaded."""
        if self.job:
            raise VLSMError(texts.BUSY.format(job=self.job))
        if self.remote is not None:  # the server's model and adapter: nothing to load here
            return then(self.segmenter)
        adapter = self.wanted_adapter()
        if self.holds(adapter):
            return then(self.segmenter)
        if self.segmenter is not None and self._loaded_key == self.model_key():
            if self.finetuning:
                raise VLSMError(texts.BUSY.format(job="finetuning"))
            return self._start("loading the adapter", swap_adapter, (self.segmenter, adapter), adapter, then)
        if self.finetuning:
            raise VLSMError(texts.BUSY.format(job="finetuning"))
        args = (*self.model_key(), self.variant, adapter)
        return self._start("loading the model", load_segmenter, args, adapter, then)

    def _start(self, what, func, args, adapter, then) -> None:
        key = self.model_key()

        def loaded(segmenter):
            self.segmenter, self._loaded_key, self._adapter_key = segmenter, key, adapter
            self.set_job("")
            self.model_changed.emit()
            if not self.closed:  # a dock closed during the load starts nothing (no unseen job)
                then(segmenter)

        def release(*_):  # on error, and when stopped (dock closed): napari then emits no 'returned'
            # Only while the dock is still busy with THIS job: a worker emits 'finished' after
            # 'errored' or 'returned', and the dock may already run the next job of the same name
            # by then (a load that failed, then the user's next Segment): freeing it would let that
            # job's caller, and a second job, think the dock idle while the load still runs.
            if self._job_serial == serial:
                self.set_job("")

        self.set_job(what)
        serial = self._job_serial
        workers.start(func, *args, what=what, on_return=loaded, on_error=release, on_finish=release,
                      progress={"desc": f"napari-vlsm: {what}"}, group=self.workers, torch_job=True)

    def run_job(self, what: str, func, *args, on_return=None, on_yield=None, progress=None, cancel_event=None):
        """A model job (segmentation) in the background; one at a time."""
        self.set_job(what)

        def done():
            self.set_job("")

        return workers.start(func, *args, what=what, on_return=on_return, on_yield=on_yield,
                             on_finish=done, progress=progress, cancel_event=cancel_event, group=self.workers,
                             torch_job=True)

    def set_job(self, name: str) -> None:
        self.job = name
        self._job_serial += 1
        self.busy_changed.emit(name)

    def adapter_trained(self, result) -> None:
        """A finetune's adapter became the project's latest: use it (GUI thread; local weights are
        already in memory, a server adapter is used by its name)."""
        self.segmenter.set_adapters(result.adapters, result.metadata, path=result.adapter_path or result.adapter)
        if self.remote is None:  # the folder's "latest" is what the model panel then shows
            self.adapter = ADAPTER_LATEST
            self._adapter_key = str(self.latest_adapter())
        self.model_changed.emit()

    # ------------------------------------------------------------------------------ images
    def window_for(self, image) -> tuple | None:
        """One intensity window per volume (CT: every slice normalised the same way); None in 2D.

        Computed in a worker (it may read a strided sample of a lazy volume) and cached.
        """
        if image.ndim < 3 and self.window_preset == "auto":
            return None
        uid = str(image.unique_id)
        if uid not in self.windows:
            from napari_vlsm.core.medical.windows import resolve_window

            modality = ((image.metadata or {}).get("napari_vlsm_volume") or {}).get("modality", "")
            self.windows[uid] = resolve_window(self.window_preset, image.data, modality, rgb=image.rgb)
        return self.windows[uid]

    def forget_layer(self, layer) -> None:
        self.proposals.forget(layer)
        self.windows.pop(str(layer.unique_id), None)

