"""The "Finetune" section: a view of the project's finetune (``core/project``), run in the background.

The project trains on a SNAPSHOT of its corrections (corrections added during training wait for the
next round), saves the adapter and makes it "latest" when it beat the starting point; this panel
starts the run in a worker with the values it needs, shows every ProgressEvent (curve, status,
napari's activity panel) and, when the run became latest, switches the engine to it and segments
the current slice again. The same for a folder here and a server project (nothing here asks
which). By default a run is bounded by a time budget (``auto_budget``).

Two ways to stop early:

* the dock's Cancel: the user does not want this run; the adapter in use stays, nothing is saved;
* the dock closed (napari's x on its title bar, ``remove_dock_widget``) or napari closed (it asks
  first, listing the running task): the run ends after the current step and KEEPS the best adapter
  so far, saved like a finished one, and says so in a notification. A reopened dock shows that a
  finetune is still finishing. Nothing runs unseen: the job stops within one step.
"""

from __future__ import annotations

import threading
import time

from qtpy.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from napari_vlsm.core.errors import TrainingError

from . import texts, workers
from .plot import CurvePlot
from .workers import on_click

BUDGET_CPU_S, BUDGET_GPU_S = 90.0, 30.0
SHOW_EVERY_S = 1.0  # the status line, the curve and napari's bar are repainted at most this often (_event)
# Finetunes of docks that were closed while they ran (a reopened dock shows them and waits).
FINISHING: set = set()


def auto_budget(device: str) -> float:
    """The default time limit: what a clinician can wait for (a GPU does far more steps in it)."""
    return BUDGET_CPU_S if str(device).startswith("cpu") else BUDGET_GPU_S


def continued_adapter(segmenter, variant: str) -> str | None:
    """The adapter a run continues from: the one in use, when it has the variant asked for (a
    server adapter is continued whatever its variant: the server's own rule, its variant wins)."""
    adapters = segmenter.adapters
    if adapters is not None and adapters.variant != variant:
        return None
    path = segmenter.adapter_path
    return None if path is None else str(path)


def announce_closed(result) -> None:
    """GUI thread, dock gone: say what became of the run."""
    from napari.utils.notifications import show_info

    show_info(texts.finetune_closed(result))


class FinetunePanel(QWidget):
    def __init__(self, session, parent=None):
        super().__init__(parent)
        self.session = session
        self._cancel: threading.Event | None = None
        self.worker = None
        self._keep: threading.Event | None = None
        self._open = {"dock": True}  # read by the run's closing announcement
        self.btn_train = QPushButton("Fine&tune adapter")
        self.btn_train.setToolTip(texts.TIP_FINETUNE)
        self.btn_cancel = QPushButton("Cancel")
        self.btn_cancel.setEnabled(False)
        self.status = QLabel("Uses every stored correction of this project.")
        self.status.setWordWrap(True)
        self.plot = CurvePlot()
        self.result = QLabel()
        self.result.setWordWrap(True)
        box = QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        row.addWidget(self.btn_train)
        row.addWidget(self.btn_cancel)
        box.addLayout(row)
        box.addWidget(self.status)
        box.addWidget(self.plot)
        box.addWidget(self.result)
        on_click(self.btn_train, self.start, "finetuning")
        on_click(self.btn_cancel, self.cancel, "cancelling")
        self._result_prompt = None
        session.context_changed.connect(workers.guarded(self._context_changed, "finetuning"))
        self._show_finishing()

    def _context_changed(self) -> None:
        """A result shown for one structure is not left on screen for another."""
        if self._result_prompt is not None and self.session.prompt != self._result_prompt and not self.session.finetuning:
            self.result.setText("")
            self.plot.clear()
            self.status.setText("Uses every stored correction of this project.")
            self._result_prompt = None

    def _show_finishing(self) -> None:
        """A run of a closed dock is still ending: say so and wait for it (one step at most)."""
        running = list(FINISHING)
        if not running:
            return
        self.btn_train.setEnabled(False)
        self.status.setText(texts.FINISHING_ELSEWHERE)
        for worker in running:
            worker.finished.connect(workers.guarded(self._finishing_done, "finetuning"))

    def _finishing_done(self) -> None:
        if not FINISHING and not self.session.finetuning:
            self.btn_train.setEnabled(True)
            self.status.setText(texts.FINISHED_ELSEWHERE)

    def start(self) -> None:
        s = self.session
        if s.finetuning:
            return
        if FINISHING:
            raise TrainingError(texts.FINISHING_ELSEWHERE)
        if s.project.counts()["train"] == 0:
            raise TrainingError(texts.NO_CORRECTIONS.format(root=s.project.name))
        s.with_model("finetuning", self._run)

    def _run(self, segmenter) -> None:
        from napari_vlsm.core.project import FinetuneRequest

        s = self.session
        project = s.project
        budget = s.budget_s or auto_budget(str(segmenter.info().get("device", "cpu")))
        request = FinetuneRequest(variant=s.variant, max_steps=s.max_steps or None, budget_s=budget,
                                  batch_size=s.train_batch_size, init_adapter=continued_adapter(segmenter, s.variant))
        request.config()  # a bad setting is one message now, not a failed worker
        self.begin_run(budget, request.max_steps, "Starting…" if project.runs_here else f"Starting on {project.name}…")
        open_ = self._open
        self.worker = workers.start(
            project.train, request, self._cancel, self._keep, what="finetuning",
            on_yield=self._event, on_return=self._done, on_finish=lambda: self._set_running(False),
            progress={"total": int(request.max_steps or budget), "desc": "Finetuning adapter"},
            cancel_event=self._cancel, group=s.workers, torch_job=project.runs_here,
        )
        self.worker.on_quit = self._keep.set
        self.worker.returned.connect(lambda result: None if open_["dock"] else announce_closed(result))
        pbar = getattr(self.worker, "pbar", None)
        if pbar is not None:
            # napari counts every yield; only optimiser steps (or seconds) should move the bar
            self.worker.yielded.disconnect(pbar.increment_with_overflow)

    def begin_run(self, budget: float, max_steps: int | None, status: str) -> None:
        """GUI thread: a fresh run's state and display (local or on a server)."""
        self._cancel, self._keep = threading.Event(), threading.Event()
        self._first_step, self._budget, self.eta_s, self._shown_at = None, budget, None, 0.0
        self._open = {"dock": True}
        # The bar counts steps when there is a step limit, else seconds of the time budget.
        self._bar_seconds = not max_steps
        self.plot.clear(max_steps or 0)
        self.result.setText("")
        self.status.setText(status)
        self._set_running(True)

    def detach(self) -> None:
        """The dock is closing: a running finetune stops after this step and keeps its best adapter."""
        worker = self.worker
        if worker is None or not self.session.finetuning:
            return
        self._open["dock"] = False
        FINISHING.add(worker)
        worker.finished.connect(lambda: FINISHING.discard(worker))
        self._keep.set()
        self._cancel.set()

    def cancel(self) -> None:
        if self._cancel is not None:
            self._cancel.set()
            self.status.setText("Cancelling after the current step…")

    # ---------------------------------------------------------------------- GUI thread
    def _eta(self, event) -> float | None:
        """Seconds left from the steps measured so far, the first one left out (it pays one-off
        costs: allocations, kernel choice), evaluations included; capped by the time budget left."""
        now = time.perf_counter()
        left = None if not self._budget else max(0.0, self._budget - (event.elapsed_s or 0.0))
        if self._first_step is None or event.step <= self._first_step[0]:
            self._first_step = (event.step, now)
            return event.eta_s
        if not event.total:
            return left
        step0, t0 = self._first_step
        own = (now - t0) / (event.step - step0) * (event.total - event.step)
        return own if left is None else min(own, left)

    def _event(self, event) -> None:
        if event.kind == "step":
            self.plot.add_loss(event.step, event.loss, repaint=False)
            self.eta_s = self._eta(event)
            now = time.perf_counter()
            # Each repaint costs the training: in a window that holds napari's OpenGL canvas, Qt
            # composites the whole window through OpenGL for any widget's repaint (on software
            # OpenGL, as on VMs and remote desktops, ~25 ms of CPU), and napari's bar calls
            # QApplication.processEvents(), which paints at once with Python's GIL held. Per step
            # that was ~10 % of a 0.3 s step on 2 cores; once a second keeps the display live.
            if now - self._shown_at >= SHOW_EVERY_S or event.step == event.total:
                self._shown_at = now
                self._show(event)
        elif event.kind == "eval":
            self.plot.add_dice(event.step, event.val_dice)
        elif event.message and not (self._cancel and self._cancel.is_set()):
            self.status.setText(event.message[:1].upper() + event.message[1:])

    def _show(self, event) -> None:
        self.status.setText(texts.step_status(event, self.eta_s))
        self.plot.update()
        pbar = getattr(self.worker, "pbar", None)
        if pbar is not None and pbar.total:
            value = int(event.elapsed_s or 0) if self._bar_seconds else event.step
            pbar.update(min(value, pbar.total) - pbar.n)

    def _done(self, result) -> None:
        self.plot.update()  # the last steps' points (repaints were spaced out, see _event)
        if result.cancelled and result.adapter is not None:  # only a closing dock's stopped run is kept
            result.stopped = "closed"  # the dock or napari is closing: show what the kept run made
            self._finish(result)
            return
        if result.cancelled or result.adapter is None:
            self.result.setText(texts.dice_result(result.before.get("dice"), result.after.get("dice"),
                                                  result.heldout, cancelled=True))
            self.status.setText("Cancelled.")
            self._result_prompt = self.session.prompt
            return
        self._finish(result)

    def _finish(self, result) -> None:
        self._result_prompt = self.session.prompt
        text = texts.dice_result(result.before.get("dice"), result.after.get("dice"), result.heldout, False)
        on_server = not self.session.project.runs_here
        self.status.setText(texts.done_status(result))
        if not result.latest:
            # Never make the user's results worse behind their back: keep what was in use.
            self.result.setText(f"{text}\n{texts.not_improved(result.adapter, on_server)}")
            return
        self.session.adapter_trained(result)
        self.result.setText(f"{text}\n{texts.in_use(result.adapter, on_server)}")
        self.session.resegment_requested.emit()

    def _set_running(self, on: bool) -> None:
        self.session.finetuning = on
        self.session.finetune_changed.emit(on)
        self.btn_train.setEnabled(not on)
        self.btn_cancel.setEnabled(on)
