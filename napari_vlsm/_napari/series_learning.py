"""Learning along the way.

* Each stored correction counts for the series item it came from; the optional "Finetune after
  every N new corrections" starts the dock's own finetune (every stored correction of the project;
  the new adapter is used only when its held-out Dice improved, as a finetune started by hand) in
  the background once the dock is idle. Off by default.
* Ranking: after the adapter changes (and when "most uncertain first" is chosen) the open items
  are scored again in the background (core/worklist/scoring.py: cached per model, adapter and
  phrasings, so a stopped ranking goes on where it stopped). Like the read-ahead it runs at the
  lowest CPU priority, gives way to any model job of the dock and to the read-ahead, and goes on
  when the dock is idle.
"""

from __future__ import annotations

import threading

from napari.utils.notifications import show_info
from qtpy.QtCore import QTimer

from napari_vlsm.core import labelmap as LM

from . import series_texts as T
from . import texts, workers
from .series_items import keep_alive
from .workers import guarded


def rank_job(root, segmenter, prompts, threshold, cancel):
    """Worker (a torch thread, niced): score the open items not scored with this model/adapter."""
    from napari_vlsm.core.worklist import Worklist
    from napari_vlsm.core.worklist.scoring import rank

    from .series_items import lower_priority

    lower_priority()
    wl = Worklist(root)  # its own connection
    try:
        rank(wl, segmenter, prompts, threshold, cancel=cancel)
        return not cancel.is_set()
    finally:
        wl.close()


class Learning:
    def __init__(self, panel, finetune):
        self.panel, self.finetune = panel, finetune
        self.new = 0  # corrections stored since the last finetune this section started
        self.rank_wanted = False
        self._ranker = None
        self._rank_cancel: threading.Event | None = None
        self._ranked_for = object()  # the engine (model, adapter) the last ranking was asked for
        self._refresh = QTimer(panel, singleShot=True, interval=200)  # a burst of saves: one table refresh
        self._refresh.timeout.connect(guarded(panel.refresh, "the series"))
        panel.corrections.stored.connect(guarded(self.stored, "the series"))

    def stored(self, sample) -> None:
        panel = self.panel
        if panel.item is None or panel.worklist is None:
            return
        source, item_source = str(getattr(sample, "source", "")), str(panel.item.path)
        if source != item_source and not source.startswith(item_source + "#"):
            return  # a correction of another image (not part of the series); "#": a resliced view
        panel.item = panel.worklist.add_corrections(panel.item.id, 1)
        self.new += 1
        self._refresh.start()
        self.idle()

    def idle(self) -> None:
        """Start the finetune when it is due and nothing else runs (else at the next idle moment)."""
        s, panel = self.panel.session, self.panel
        if not panel.learn.isChecked() or self.new < panel.learn_every.value():
            return
        if s.finetuning or s.job or s.closed:
            return
        count, self.new = self.new, 0
        show_info(texts.toast(T.finetune_started(count)))
        self.finetune.start()

    # ------------------------------------------------------------------------------ ranking
    def adapter_maybe_changed(self) -> None:
        """A new adapter (or model) is in use: its doubts differ, so the open items are ranked again."""
        s = self.panel.session
        key = s.engine_key()
        if key is not None and key != self._ranked_for:
            self._ranked_for = key
            if self.panel.order_key() == "most-uncertain":
                self.want_rank()

    def want_rank(self) -> None:
        self.rank_wanted = True
        self.kick_rank()

    def pause_rank(self) -> None:
        if self._rank_cancel is not None:
            self._rank_cancel.set()  # stops after the item being scored; its scores are kept

    def kick_rank(self) -> None:
        panel, s = self.panel, self.panel.session
        if not self.rank_wanted or self._ranker is not None or panel.worklist is None:
            return
        if s.job or s.finetuning or s.closed or s.segmenter is None:
            return
        if panel.prefetch.busy() or panel.opening or panel.proposing:
            return
        prompts = LM.split_structures(panel.segment.prompt.currentText())
        if not prompts:
            return
        if panel.remote:  # the server scores its items with its model and the adapter in use
            self._ranker = True
            panel.status.setText("Ranking the series on the server…")
            return panel.remote_steps.rank(prompts, float(panel.segment.threshold.value()), s.segmenter.adapter,
                                           self._remote_ranked)
        if s.remote is not None:
            return  # a local series with the server's model: scoring would send every item
        self._rank_cancel = cancel = threading.Event()
        panel.status.setText("Ranking the series in the background…")
        self._ranker = keep_alive(workers.start(
            rank_job, panel.worklist.root, s.segmenter, prompts, float(panel.segment.threshold.value()), cancel,
            what="ranking the series", on_return=self._ranked, on_finish=self._rank_finished,
            group=s.workers, torch_job=True))

    def _ranked(self, complete: bool) -> None:
        if complete:
            self.rank_wanted = False
            self.panel.status.setText("Series ranked: most uncertain first.")
        self.panel.refresh()
        self.panel.prefetch.replan()

    def _remote_ranked(self, complete: bool) -> None:
        self._ranker = None
        self._ranked(complete)

    def _rank_finished(self) -> None:
        self._ranker = self._rank_cancel = None
