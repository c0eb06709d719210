"""The "Series" section: a worklist of images and scans in the project, and Next.

*Open series…* adds files or a folder to the project's worklist (core/worklist: SQLite in the
project folder, shared with the CLI and the server). **Next** (Shift+N in the viewer) saves what
is pending on the item on screen (its auto-saved corrections and its mask), then replaces that
item's layers with the next item's: one image and its mask at a time. A new item gets the model's
proposal at once (the prompt and adapter in use); an item already worked on comes back with its
saved mask. While the user corrects, the items Next will open are read and their image pass is
run in the background (series_prefetch.py), so Next needs only the decoder.

*Mark done* (series_saving.py) writes the mask into ``<project>/masks`` (ProjectLayout.masks,
atomically; NIfTI on the scan's grid for a scan, PNG for a 2D image, with its JSON legend); an
empty mask asks first. The worklist remembers the item on screen: a dock reopened on the project
lands on it again (:meth:`restore`).

The worklist is the project folder's (series_local_steps.py) or, while connected to a server whose
project has one, the server's, shared by several annotators (series_remote.py,
series_remote_steps.py). This panel is the view and what both share: showing an item, its saved
mask or the model's proposal, the order, the statuses.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from napari.utils.notifications import show_info, show_warning
from qtpy.QtCore import QTimer, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMenu,
    QPushButton,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from napari_vlsm.core import labelmap as LM
from napari_vlsm.core.errors import VLSMError, WorklistError

from . import layers as L
from . import series_layers as SL
from . import series_texts as T
from . import texts
from .series_items import ItemData
from .series_learning import Learning
from .series_local_steps import LocalSteps
from .series_prefetch import Prefetcher
from .series_remote_steps import RemoteSteps
from .series_saving import Saving
from .series_table import SeriesTable
from .workers import guarded, on_click

ORDERS = {"in-order": "In order", "random": "Random", "most-uncertain": "Most uncertain first"}
NEXT_KEY = "Shift-N"  # free in napari's viewer and in every layer's keymap (napari/utils/shortcuts.py)
DB_NAME = "worklist.sqlite"


class SeriesPanel(QWidget):
    item_shown = Signal(int)  # an item is on screen (its proposal may still be running)

    def __init__(self, session, segment, corrections, finetune, parent=None):
        super().__init__(parent)
        self.session, self.segment, self.corrections = session, segment, corrections
        self.viewer = session.viewer
        self.worklist = None  # core Worklist (this computer's), or RemoteSeries (a server project's)
        self._source_key = None  # which: the project folder, or ("server", url, project)
        self.item = None  # the Item on screen
        self.image = None  # its Image layer
        self.opening = self.proposing = False
        self._held = None  # the item leased to this window (Next's lease or hold): one at a time
        self._holder = f"dock:{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._build()
        self.prefetch = Prefetcher(self)
        self.saving = Saving(self)
        self.learning = Learning(self, finetune)
        self.local_steps, self.remote_steps = LocalSteps(self), RemoteSteps(self)
        self._connect()

    # ---------------------------------------------------------------------------- layout
    def _build(self) -> None:
        self.btn_open = QToolButton()
        self.btn_open.setText("Open series…")
        self.btn_open.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.btn_open)
        self.act_folder = menu.addAction("A folder…")
        self.act_files = menu.addAction("Files…")
        self.btn_open.setMenu(menu)
        self.counts = QLabel(T.counts({}))
        self.table = SeriesTable()
        self.order = QComboBox()
        for key, text in ORDERS.items():
            self.order.addItem(text, key)
        self.order.setToolTip(T.TIP_ORDER)
        self._order_chosen = False  # until the user picks one, the default follows the adapter
        self.btn_next = QPushButton("&Next")
        self.btn_next.setToolTip(T.TIP_NEXT)
        self.btn_done = QPushButton("Mark done")
        self.btn_done.setToolTip(T.TIP_DONE)
        self.btn_skip = QPushButton("Skip")
        self.btn_skip.setToolTip(T.TIP_SKIP)
        self.btn_worst = QPushButton("Go to the most uncertain slice")
        self.btn_worst.setToolTip(T.TIP_WORST)
        self.learn = QCheckBox("Finetune after every")
        self.learn.setToolTip(T.TIP_LEARN)
        self.learn_every = QSpinBox()
        self.learn_every.setRange(1, 1000)
        self.learn_every.setValue(20)
        self.learn_every.setSuffix(" new corrections")
        self.status = QLabel()
        self.status.setWordWrap(True)

        box = QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        row.addWidget(self.btn_open)
        row.addWidget(self.counts, 1)
        box.addLayout(row)
        box.addWidget(self.table)
        row = QHBoxLayout()
        row.addWidget(QLabel("Order"))
        row.addWidget(self.order, 1)
        box.addLayout(row)
        row = QHBoxLayout()
        for button in (self.btn_next, self.btn_done, self.btn_skip):
            row.addWidget(button)
        box.addLayout(row)
        box.addWidget(self.btn_worst)
        row = QHBoxLayout()
        row.addWidget(self.learn)
        row.addWidget(self.learn_every, 1)
        box.addLayout(row)
        box.addWidget(self.status)
        self._enable()

    def _connect(self) -> None:
        self.act_folder.triggered.connect(guarded(self.choose_folder, "opening the series"))
        self.act_files.triggered.connect(guarded(self.choose_files, "opening the series"))
        on_click(self.btn_next, self._action(self.next, "Cannot open the next item"), "opening the next item")
        on_click(self.btn_done, self._action(self.mark_done, "Cannot mark it done"), "marking the item done")
        on_click(self.btn_skip, self._action(self.skip, "Cannot skip it"), "skipping the item")
        on_click(self.btn_worst, self._action(self.go_to_worst_slice, "No uncertain slice known"), "going to the slice")
        self.table.opened.connect(guarded(self._action(self.open_id, "Cannot open this item"), "opening the item"))
        self.order.activated.connect(lambda *_: self._order_picked())
        # The order picked is the project's (its settings.json, kept by the dock): a project
        # opened again, or switched to, comes back with its own.
        self.session.values.events.series_order.connect(lambda key: guarded(self._order_set, "the series")(key))
        self.session.busy_changed.connect(guarded(self._busy_changed, "the series"))
        self.session.finetune_changed.connect(guarded(lambda on: self._busy_changed("finetuning" if on else ""),
                                                      "the series"))
        self.session.store_changed.connect(guarded(self._project_maybe_changed, "opening the series"))
        self.session.model_changed.connect(guarded(self._model_changed, "the series"))
        self.viewer.bind_key(NEXT_KEY, self._next_key, overwrite=True)

    def _next_key(self, _viewer=None) -> None:
        guarded(self._action(self.next, "Cannot open the next item"), "opening the next item")()

    def _action(self, fn, head: str):
        """A user's action: a problem they can fix becomes a short notification (``head``, then the
        reason and the fix) and the section's status line, never a traceback."""
        def run(*args):
            try:
                return fn(*args)
            except VLSMError as err:
                reason = " ".join(str(err).split())
                self.status.setText(reason)
                show_warning(texts.toast(T.note(head, reason)))
        run.__name__ = getattr(fn, "__name__", "action")
        return run

    # ---------------------------------------------------------------------------- worklist
    @property
    def remote(self) -> bool:
        """The section works through a server project's worklist (series_remote.py)."""
        return getattr(self.worklist, "remote", False)

    def _open_worklist(self):
        """The project's worklist (made on first use); WorklistError, shown by the caller, if unusable."""
        root = self.session.folder
        if self.worklist is None or self.remote or Path(self.worklist.root) != root:
            self.worklist = None
            self.worklist = self.session.local_project.worklist  # the project owns it (core/project)
        return self.worklist

    def _wanted_key(self):
        s = self.session
        if s.remote is not None and s.remote.project:
            return ("server", s.remote.client.url, s.remote.project)
        return s.folder

    def _project_maybe_changed(self) -> None:
        if self._source_key is not None and self._source_key == self._wanted_key():
            return
        self.prefetch.reset()
        if self.worklist is not None:
            if self.remote:
                self.remote_steps.leave()
            else:
                self.local_steps.leave()
                self.local_steps.give_back()
            self._remove_layers()
            self.worklist.close()
            self.worklist, self.item = None, None
        self._source_key = None
        self.restore()

    def restore(self) -> None:
        """A project with a series: show it and reopen the item the user was on (after a restart)."""
        if self.item is not None or self.opening:
            return self.refresh()
        key = self._wanted_key()
        if isinstance(key, tuple):  # a server project: its worklist, if it has one
            from .series_remote import RemoteSeries

            self._source_key = key
            return self.remote_steps.restore(RemoteSeries(self.session.remote.client, self.session.remote.project))
        self._source_key = key
        if not (self.session.folder / DB_NAME).is_file():
            self.refresh()
            return
        try:
            wl = self._open_worklist()
            current = wl.current()
        except WorklistError as err:
            self._problem(err)
            return
        self.refresh()
        if current is not None:
            self.open_id(current)

    def server_has_no_series(self, series, err) -> None:
        """The server's project has no worklist (or cannot be asked): this computer's series is used."""
        from napari_vlsm.client import ServerError

        if isinstance(err, ServerError) and err.status == 404:
            self.status.setText("The server's project has no series; Open series… works on this computer's files.")
        else:
            self._problem(err)
        if self._wanted_key() != series.key:
            return  # the dock moved on meanwhile
        self.worklist = None
        if (self.session.folder / DB_NAME).is_file():
            try:
                self._open_worklist()
            except WorklistError as error:
                self._problem(error)
        self.refresh()

    def order_key(self) -> str:
        return self.order.currentData()

    def _order_picked(self) -> None:
        self._order_chosen = True
        self.session.values.series_order = self.order_key()  # remembered for the project
        if self.order_key() == "most-uncertain":
            self.learning.want_rank()
        self.prefetch.replan()

    def _order_set(self, key: str) -> None:
        """The project's remembered order ("" = none picked: in order, or most uncertain first
        once an adapter exists)."""
        self._order_chosen = bool(key)
        if not key:
            key = "most-uncertain" if self.session.adapter != "none" else "in-order"
        if key != self.order_key():
            self.order.setCurrentIndex(self.order.findData(key))
            self.prefetch.replan()

    def _model_changed(self) -> None:
        """Most uncertain first becomes the default once the project has an adapter."""
        if not self._order_chosen and self.session.adapter != "none":
            self.order.setCurrentIndex(self.order.findData("most-uncertain"))
        self.learning.adapter_maybe_changed()

    # ---------------------------------------------------------------------------- adding
    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Series: a folder of images or scans")
        if folder:
            self.add_paths([folder])

    def choose_files(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Series: images or scans")
        if files:
            self.add_paths(files)

    def add_paths(self, paths) -> None:
        """Add files/folders to the project's worklist in the background; opens the first item."""
        if self.remote:
            raise VLSMError(f"the items of server project '{self.session.remote.project}' are added on the server: "
                            f"napari-vlsm worklist add --project <project-root>/{self.session.remote.project} INPUTS...")
        self.local_steps.add_paths(paths)

    # ---------------------------------------------------------------------------- moving
    def next(self) -> None:
        """Save what is pending, then open the next item (its proposal follows at once)."""
        wl = self._need_worklist()
        if self.opening:
            return
        return self.remote_steps.next() if self.remote else self.local_steps.next(wl)

    def finished(self) -> None:
        """Nothing left for Next: every item is done, skipped, unreadable or held elsewhere."""
        self._remove_layers()
        self.item = None
        self.refresh()
        self.status.setText("Series finished.")
        show_info(texts.toast(T.finished()))

    def open_id(self, item_id: int) -> None:
        """Open one item (double-click, or the item a restart comes back to)."""
        wl = self._need_worklist()
        if self.opening:
            return
        return self.remote_steps.open_id(item_id) if self.remote else self.local_steps.open_id(wl, item_id)

    def show_item(self, item, advance: bool, found) -> None:
        """An item read (here or from the server) on screen: its saved mask, or the model's proposal."""
        self.opening = False
        self.item = item
        saved = self._saved_mask(item, found)
        prompts = saved[1] if saved else LM.split_structures(self.segment.prompt.currentText())
        if SL.can_reuse(self.viewer, self.image, found):
            SL.reuse_image(self.viewer, self.session, self.image, item, found, L.target_key(LM.join_structures(prompts)))
        else:
            if self.image is not None:
                SL.remove(self.viewer, self.session, self.image)
            self.image = SL.add_image(self.viewer, item, found)
        if found.start is not None:
            self.viewer.dims.set_current_step(0, found.start)
        self.segment.image.reset_choices()
        self.segment.image.value = self.image
        self.refresh()
        self.item_shown.emit(item.id)
        if saved:
            SL.show_saved(self.viewer, self.image, *saved)
            self.segment.prompt.setCurrentText(LM.join_structures(saved[1]))
            self.status.setText(f"'{item.name}': its saved mask.")
            QTimer.singleShot(0, guarded(self._maybe_idle, "the series"))  # no model job: read ahead again now
        else:
            self._propose(found)
        self.segment.refresh_context()  # the legend and the corrections follow the item
        self.prefetch.replan()
        self._enable()

    def _saved_mask(self, item, found: ItemData):
        """(label map, prompts) the item was saved with, or None: then it gets a new proposal."""
        fits = lambda saved: saved[0].shape == tuple(found.data.shape[: found.ndim])  # noqa: E731
        if self.remote:  # read with the item; a mask that no longer fits is replaced at the next save
            return found.saved if found.saved is not None and fits(found.saved) else None
        return self.local_steps.saved_mask(item, fits)

    def _propose(self, found: ItemData) -> None:
        """The model's proposal for the item just opened: the one computed ahead when it still
        holds (same model, adapter, prompts, window and slice), else a Segment slice now."""
        prompts = LM.split_structures(self.segment.prompt.currentText())
        if not prompts:
            self.status.setText(T.no_prompt())
            return
        ready = found.proposal
        if ready is not None and self._still_holds(ready, prompts, found):
            self.segment.show_proposal(self.image, prompts, [(found.plane, ready.probability)])
            self._proposed()
            return
        self.proposing = True
        try:
            self.segment.segment_slice()
        except VLSMError as err:
            self.proposing = False
            self.status.setText(" ".join(str(err).split()))

    def _still_holds(self, ready, prompts, found: ItemData) -> bool:
        s = self.session
        if s.job or L.current_plane(self.image, self.viewer.dims) != found.plane:
            return False
        try:  # the model and adapter the next Segment would use are the ones that made it
            wanted = s.wanted_adapter()
        except VLSMError:
            return False
        return s.holds(wanted) and ready.fits(s.segmenter, prompts, s.window_for(self.image))

    def _proposed(self) -> None:
        """A proposal for the item on screen is in its mask layer: note which adapter made it."""
        if self.item is not None and self.worklist is not None:
            if not self.remote:  # a server item's adapter is the server's business
                adapter = self.session.held_adapter
                self.item = self.worklist.set_adapter(self.item.id, Path(adapter).name if adapter else "")
            self.status.setText(f"'{self.item.name}': the model's proposal.")

    def _busy_changed(self, job: str) -> None:
        if job:
            self.prefetch.pause()
            self.learning.pause_rank()
            return
        # A model load is followed at once by the segmentation it was for: look once that has begun.
        QTimer.singleShot(0, guarded(self._maybe_idle, "the series"))

    def _maybe_idle(self) -> None:
        if self.session.job or self.session.closed:
            return
        if self.proposing:
            self.proposing = False
            self._proposed()
        self.learning.idle()
        self.prefetch.resume()
        self.learning.kick_rank()  # after the read-ahead (it starts only when that is idle)
        self._enable()

    # ---------------------------------------------------------------------------- statuses
    def mark_done(self) -> None:
        """Write the mask on screen, then set the item done (series_saving.py)."""
        self.saving.mark_done()

    def skip(self) -> None:
        wl = self._need_worklist()
        if self.item is None:
            raise VLSMError("no series item is open: press Next first")
        if self.remote:
            return self.remote_steps.next(status="skipped")
        self.item = wl.set_status(self.item.id, "skipped")
        self.next()

    def go_to_worst_slice(self) -> None:
        if self.item is None or self.image is None or self.image.ndim < 3:
            raise VLSMError("the most uncertain slice is for scans and stacks: open one with Next")
        worst = [z for z in self.worklist.get(self.item.id).worst_slices if 0 <= z < self.image.data.shape[0]]
        if not worst:
            raise VLSMError(f"'{self.item.name}' has no uncertainty score yet: rank the series first")
        now = int(self.viewer.dims.current_step[0])
        later = [z for z in worst if z != now]
        target = later[worst.index(now)] if now in worst and worst.index(now) < len(later) else worst[0]
        self.viewer.dims.set_current_step(0, target)

    # ---------------------------------------------------------------------------- saving
    def mask_layer(self):
        """The mask layer of the item on screen (series_saving.py)."""
        return self.saving.mask_layer()

    def _remove_layers(self) -> None:
        if self.image is not None:
            SL.remove(self.viewer, self.session, self.image)
        self.image = None

    def close(self) -> None:
        """The dock is closing: the mask on screen is saved now; background reads stop."""
        self.prefetch.stop()
        self.learning.pause_rank()
        try:
            self.viewer.bind_key(NEXT_KEY, None)
        except (KeyError, ValueError):
            pass
        if self.remote:
            self.remote_steps.leave()
        else:
            self.local_steps.close()

    # ---------------------------------------------------------------------------- view
    def _need_worklist(self):
        if self.worklist is None:
            if not (self.session.folder / DB_NAME).is_file():
                raise VLSMError("no series in this project yet: press 'Open series…' and choose a folder or files")
            return self._open_worklist()
        return self.worklist

    def refresh(self) -> None:
        wl = self.worklist
        if wl is None:
            self.counts.setText(T.counts({}))
            self.table.show_items([], None)
        else:
            self.counts.setText(T.counts(wl.counts()))
            self.table.show_items(wl.items(), self.item.id if self.item else None)
        self._enable()

    def _problem(self, err) -> None:
        self.status.setText(" ".join(str(err).split()))
        show_warning(texts.toast(T.worklist_problem(err)))

    def _enable(self) -> None:
        has = self.worklist is not None
        on_item = has and self.item is not None
        self.btn_next.setEnabled(has and not self.opening)
        self.btn_done.setEnabled(on_item and not self.opening)
        self.btn_skip.setEnabled(on_item and not self.opening)
        self.btn_worst.setVisible(self.image is not None and self.image.ndim >= 3)

    def settled(self) -> bool:
        """Nothing of the series is on its way (tests and benchmarks wait for this)."""
        return not self.opening and not self.proposing and not self.session.job
