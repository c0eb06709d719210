"""Learning along the way: each stored correction counts for the series item it came from, and the
optional "Finetune after every N new corrections" starts the dock's own finetune (every stored
correction of the project; the new adapter is used only when its held-out Dice improved, as a
finetune started by hand) in the background once the dock is idle. Off by default."""

from __future__ import annotations

from napari.utils.notifications import show_info
from qtpy.QtCore import QTimer

from . import series_texts as T
from .workers import guarded


class Learning:
    def __init__(self, panel, finetune):
        self.panel, self.finetune = panel, finetune
        self.new = 0  # corrections stored since the last finetune this section started
        self._refresh = QTimer(panel, singleShot=True, interval=200)  # a burst of saves: one table refresh
        self._refresh.timeout.connect(guarded(panel.refresh, "the series"))
        panel.corrections.stored.connect(guarded(self.stored, "the series"))

    def stored(self, sample) -> None:
        panel = self.panel
        if panel.item is None or panel.worklist is None:
            return
        if not str(getattr(sample, "source", "")).startswith(str(panel.item.path)):
            return  # a correction of another image (not part of the series)
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
        show_info(T.finetune_started(count))
        self.finetune.start()

    def adapter_maybe_changed(self) -> None:
        """Hook for re-ranking the unseen items after the adapter changed (scoring lives in the core)."""
