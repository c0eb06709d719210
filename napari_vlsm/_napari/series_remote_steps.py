"""What the Series section does on a server project (series_remote.py), step by step.

Each step is one worker that talks to the server in order (send the mask of the item left, then
lease or hold the next one, then read its pixels, geometry and saved mask, then the new listing),
and one function on the GUI thread that shows what came back -- unless the dock moved on
meanwhile (disconnected, another project): then the answer is dropped. The item on screen stays
this dock's while it is worked on: its lease is renewed in the background. The steps on this
computer's worklist are in series_local_steps.py.
"""

from __future__ import annotations

from napari.utils.notifications import show_info, show_warning
from qtpy.QtCore import QTimer

from napari_vlsm.core.errors import VLSMError

from . import layers as L
from . import series_texts as T
from . import texts, workers
from .series_items import LEASE_S, Failed, keep_alive, read_or_fail
from .workers import guarded

AGAIN = object()  # a step's answer: it started another worker that goes on opening the item
CLOSING_TIMEOUT_S = 10.0  # sending the mask on screen as napari closes or disconnects: never a long freeze


def _words(err) -> str:
    return " ".join(str(err).split())


class RemoteSteps:
    def __init__(self, panel):
        self.panel = panel
        self._renewal = QTimer(panel, interval=int(LEASE_S * 1000 / 3))  # well before the lease ends
        self._renewal.timeout.connect(guarded(self.renew, "the series"))

    @property
    def series(self):
        return self.panel.worklist

    def _start(self, fn, *args, what: str, then, opening: bool = False) -> None:
        """``fn(*args)`` in a worker; ``then(result)`` on the GUI thread only if the section still
        shows the same series (a result for a project left is dropped). ``opening``: this step
        opens an item (the section's ``opening`` ends with it, whatever happens)."""
        p, series = self.panel, self.series

        def end_opening():
            if opening:
                p.opening = False
                p._enable()  # noqa: SLF001 - the panel's own buttons

        def returned(result):
            if p.worklist is not series:
                return end_opening()
            again = False
            try:
                again = then(result) is AGAIN
            finally:
                if not again:
                    end_opening()

        keep_alive(workers.start(read_or_fail, fn, *args, what=what, on_return=returned,
                                 on_error=lambda *_: end_opening(), group=p.session.workers))

    def _failed(self, result, head: str) -> bool:
        if not isinstance(result, Failed):
            return False
        p = self.panel
        p.opening = False
        p.status.setText(_words(result.error))
        show_warning(texts.toast(T.note(head, _words(result.error))))
        p.refresh()
        p._maybe_idle()  # noqa: SLF001 - the read-ahead and the ranking go on
        self.renew()  # a Next that failed after its lease: the item on screen is this dock's again
        return True

    # ---------------------------------------------------------------------------- opening
    def restore(self, series) -> None:
        """Connected: show the server's list; land on the item this computer held (a restart)."""
        p = self.panel
        p.status.setText("Reading the server's series…")

        def listed(listing):
            if p._wanted_key() != series.key:  # noqa: SLF001 - the dock moved on meanwhile
                return
            if isinstance(listing, Failed):
                return p.server_has_no_series(series, listing.error)
            p.worklist = series
            series.update(listing)
            p.status.setText("")
            p.refresh()
            current = series.current()
            if current is not None and p.item is None and not p.opening:
                self.open_id(current)

        keep_alive(workers.start(read_or_fail, series.fetch, what="reading the server's series", on_return=listed,
                                 group=p.session.workers))

    def leaving(self):
        """(item id, labels, structures) of the item on screen, to be sent before it goes; None."""
        p = self.panel
        if p.item is None or p.image is None:
            return None
        p.corrections.watcher.flush()  # its corrections are stored (the outbox keeps them if need be)
        labels = p.mask_layer()
        if labels is None:
            return None
        import numpy as np

        return p.item.id, np.array(labels.data), L.structures_of(labels)

    def next(self, status: str | None = None) -> None:
        """Next (``status``: the item left becomes e.g. skipped, mask or not)."""
        p = self.panel
        if p.opening:
            return
        left = p.item.id if p.item is not None else None
        leave = self.leaving()
        p.prefetch.pause()
        p.learning.pause_rank()
        p.opening = True
        p._enable()  # noqa: SLF001 - the panel's own buttons
        p.status.setText("Asking the server for the next item…")
        self._start(self.series.take_next, p.order_key(), p.prefetch.seed, LEASE_S, leave, left, status,
                    set(p.prefetch.ready()), what="opening the next item", then=self._next_came, opening=True)

    def _next_came(self, result) -> None:
        p = self.panel
        if self._failed(result, "Cannot open the next item"):
            return
        item, found, saved, listing, lost = result
        self.series.update(listing)
        self._lost(lost)
        if item is None:
            self._held(None)
            return p.finished()
        return self._show(item, found, saved)

    def open_id(self, item_id: int) -> None:
        p = self.panel
        if p.opening:
            return
        leave = self.leaving() if p.item is not None and p.item.id != item_id else None
        p.opening = True
        p._enable()  # noqa: SLF001
        self._start(self.series.open, item_id, LEASE_S, leave, set(p.prefetch.ready()), what="opening the item",
                    then=self._opened, opening=True)

    def _opened(self, result) -> None:
        if self._failed(result, "Cannot open this item"):
            return
        item, found, saved, listing, lost = result
        self.series.update(listing)
        self._lost(lost)
        return self._show(item, found, saved)

    def _lost(self, why: str) -> None:
        if why:
            show_warning(texts.toast(T.note("Mask not sent", f"{_words(why)}. Your corrections of it are stored.")))

    def _show(self, item, found, saved) -> None:
        p = self.panel
        self._held(item.id)
        found = found or p.prefetch.take(item.id)  # read ahead: the pixels are here already
        if found is None:  # dropped meanwhile (a replan): read them now
            self._start(self.series.read, item.id, what="opening the item", opening=True,
                        then=lambda again: self._failed(again, "Cannot open this item") or self._show(item, again, saved))
            return AGAIN
        found.saved = saved
        p.show_item(item, False, found)
        return None

    # ---------------------------------------------------------------------------- the lease
    def _held(self, item_id: int | None) -> None:
        self.panel._held = item_id  # noqa: SLF001 - the item leased to this dock
        if item_id is None:
            self._renewal.stop()
        else:
            self._renewal.start()

    def renew(self) -> None:
        """Keep the item on screen leased to this dock while it is worked on (a CT can take long)."""
        p = self.panel
        if not p.remote or p.item is None or p.opening:
            return
        item_id = p.item.id

        def renewed(result):
            if isinstance(result, Failed):  # taken by someone else after a lapse (a laptop asleep)
                p.status.setText(_words(result.error))
                show_warning(texts.toast(T.note("Item taken by someone else", _words(result.error))))
            elif p.item is not None and p.item.id == item_id:
                self._held(item_id)

        self._start(self.series.renew, item_id, LEASE_S, what="keeping the item", then=renewed)

    # ---------------------------------------------------------------------------- statuses
    def mark_done(self, labels) -> None:
        p = self.panel
        import numpy as np

        p.corrections.watcher.flush()
        item = p.item

        def done(result):
            if self._failed(result, "Mask not saved"):
                return
            name, new, listing = result
            self.series.update(listing, new)
            if p.item is not None and p.item.id == item.id:
                p.item = new
            p.status.setText(f"Done: mask saved on the server as {name}.")
            p.refresh()

        self._start(self.series.mark_done, item.id, np.array(labels.data), L.structures_of(labels), LEASE_S,
                    what="saving the mask", then=done)

    def leave(self) -> None:
        """The dock closes, disconnects or changes project: the mask on screen goes to the server now
        (briefly: never a long freeze). The item stays leased to this computer until its lease ends,
        so napari opened again lands on it (a crash leaves it the same way); after that, the server
        hands it to whoever asks."""
        self._renewal.stop()
        leave = self.leaving()
        try:
            if leave is not None:
                self.series.save(*leave, lease_s=LEASE_S, timeout=CLOSING_TIMEOUT_S)
        except VLSMError as err:
            show_warning(texts.toast(T.note("Mask not sent", f"{_words(err)}. Your corrections of it are stored.")))
        self.panel._held = None  # noqa: SLF001

    def rank(self, prompts, threshold: float, adapter, then) -> None:
        """Score the open items on the server (cached there per model, adapter and phrasings);
        ``then(complete)`` in every case (the ranking may be asked for again)."""
        series, p = self.series, self.panel

        def ranked(result):
            if p.worklist is not series:
                return then(False)
            if isinstance(result, Failed):
                show_info(texts.toast(T.note("Series not ranked", _words(result.error))))
                return then(False)
            series.update(result)
            then(True)

        keep_alive(workers.start(read_or_fail, series.api.rank, prompts, threshold, adapter, what="ranking the series",
                                 on_return=ranked, on_error=lambda *_: then(False), group=p.session.workers))
