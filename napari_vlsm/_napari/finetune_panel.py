"""The "Finetune" section: train an adapter on the stored corrections in the background.

The run trains on a SNAPSHOT of the store taken when the worker starts (corrections added during
training wait for the next round), reports every ProgressEvent to the GUI thread (curve, status,
napari's activity panel), and can be cancelled between steps; a cancelled run keeps the adapter
that was in use. A finished run saves ``<project>/adapters/adapter-<time>.safetensors``, points
``latest.json`` at it, switches the engine to it and segments the current slice again.
"""

from __future__ import annotations

import threading
import time

from qtpy.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from napari_vlsm.core.errors import TrainingError

from . import texts, workers
from .plot import CurvePlot
from .workers import on_click


def train_job(loaded, store, config, init_adapters, out_path, cancel):
    """Worker side: snapshot the store, then run ``finetune``; returns its TrainResult (or None
    when cancelled before training began)."""
    from napari_vlsm.core.training import finetune

    train, val = store.samples(split="train"), store.samples(split="val")  # the snapshot
    gen = finetune(loaded, train, val, config, init_adapters=init_adapters, out_path=out_path, cancel=cancel)
    while True:
        try:
            event = next(gen)
        except StopIteration as stop:
            return stop.value
        yield event
        if cancel.is_set() and event.kind in ("start", "prepare"):  # the loop checks only between steps
            gen.close()
            return None


class FinetunePanel(QWidget):
    def __init__(self, session, parent=None):
        super().__init__(parent)
        self.session = session
        self._cancel: threading.Event | None = None
        self.worker = None
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

    def start(self) -> None:
        s = self.session
        if s.finetuning:
            return
        if s.store.counts()["train"] == 0:
            raise TrainingError(texts.NO_CORRECTIONS.format(root=s.project))
        s.with_model("finetuning", self._run)

    def _run(self, segmenter) -> None:
        from napari_vlsm.core.training import TrainConfig  # torch comes with it: import when needed

        s = self.session
        config = TrainConfig(variant=s.variant, max_steps=s.max_steps, budget_s=s.budget_s)
        current = segmenter.adapters
        init = current if current is not None and current.variant == s.variant else None
        out = s.adapters_dir / f"adapter-{time.strftime('%Y%m%d-%H%M%S')}.safetensors"
        self._cancel = threading.Event()
        self.plot.clear(config.max_steps or 0)
        self.result.setText("")
        self.status.setText("Starting…")
        self._set_running(True)
        self.worker = workers.start(
            train_job, segmenter.loaded, s.store, config, init, out, self._cancel, what="finetuning",
            on_yield=self._event, on_return=self._done, on_finish=lambda: self._set_running(False),
            progress={"total": config.max_steps or 0, "desc": "Finetuning adapter"}, cancel_event=self._cancel,
            group=s.workers, torch_job=True,
        )
        pbar = getattr(self.worker, "pbar", None)
        if pbar is not None and config.max_steps:
            # napari counts every yield; only optimiser steps should move the bar
            self.worker.yielded.disconnect(pbar.increment_with_overflow)

    def cancel(self) -> None:
        if self._cancel is not None:
            self._cancel.set()
            self.status.setText("Cancelling after the current step…")

    # ---------------------------------------------------------------------- GUI thread
    def _event(self, event) -> None:
        pbar = getattr(self.worker, "pbar", None)
        if event.kind == "step":
            self.plot.add_loss(event.step, event.loss)
            eta = f", about {event.eta_s:.0f} s left" if event.eta_s is not None else ""
            self.status.setText(f"Step {event.step}/{event.total or '?'}: loss {event.loss:.3f}{eta}")
            if pbar is not None and pbar.total:
                pbar.update(event.step - pbar.n)
        elif event.kind == "eval":
            self.plot.add_dice(event.step, event.val_dice)
        elif event.message and not (self._cancel and self._cancel.is_set()):
            self.status.setText(event.message[:1].upper() + event.message[1:])

    def _done(self, result) -> None:
        if result is None or result.cancelled or result.adapters is None:
            before = (result.before or {}).get("dice") if result is not None else None
            after = (result.after or {}).get("dice") if result is not None else None
            heldout = result.heldout if result is not None else True
            self.result.setText(texts.dice_result(before, after, heldout, cancelled=True))
            self.status.setText("Cancelled.")
            return
        text = texts.dice_result(result.before.get("dice"), result.after.get("dice"), result.heldout, False)
        name = result.adapter_path.name if result.adapter_path else "(not saved)"
        if result.before and not result.improved:
            # Never make the user's results worse behind their back: keep what was in use.
            self.result.setText(f"{text}\n{texts.NOT_IMPROVED.format(name=name)}")
            self.status.setText(f"Done: {result.steps} steps ({result.stopped}).")
            return
        self.session.adapter_trained(result)
        self.result.setText(f"{text}\nAdapter {name} is now in use.")
        self.status.setText(f"Done: {result.steps} steps ({result.stopped}).")
        self.session.resegment_requested.emit()

    def _set_running(self, on: bool) -> None:
        self.session.finetuning = on
        self.session.finetune_changed.emit(on)
        self.btn_train.setEnabled(not on)
        self.btn_cancel.setEnabled(on)
