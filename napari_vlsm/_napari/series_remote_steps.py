"""What the Series section does on a server project (series_remote.py), step by step.

Each step is one worker that talks to the server in order (save the mask of the item left, then
lease or hold the next one, then read its pixels, geometry and saved mask, then the new listing),
and one function on the GUI thread that shows what came back. The steps on this computer's
worklist stay in series_panel.py.
"""

from __future__ import annotations

from functools import partial

from napari.utils.notifications import show_info, show_warning

from napari_vlsm.core.errors import VLSMError

from . import layers as L
from . import series_texts as T
from . import texts, workers
from .series_items import LEASE_S, Failed, keep_alive


def _call(fn, *args):
    """Worker: ``fn(*args)``, or Failed(the error) for a problem a user can fix (a 409, a lost link)."""
    try:
        return fn(*args)
    except VLSMError as err:
        return Failed(err)


class RemoteSteps:
    def __init__(self, panel):
        self.panel = panel

    @property
    def series(self):
        return self.panel.worklist

    def _start(self, fn, *args, what: str, then) -> None:
        p = self.panel

        def unexpected(*_):  # shown by the worker already; the buttons must not stay off
            p.opening = False
            p._enable()  # noqa: SLF001 - the panel's own buttons

        keep_alive(workers.start(_call, fn, *args, what=what, on_return=then, on_error=unexpected,
                                 group=p.session.workers))

    def _failed(self, result, head: str) -> bool:
        if not isinstance(result, Failed):
            return False
        p = self.panel
        p.opening = False
        reason = " ".join(str(result.error).split())
        p.status.setText(reason)
        show_warning(texts.toast(T.note(head, reason)))
        p.refresh()
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

        self._start(series.fetch, what="reading the server's series", then=listed)

    def leaving(self):
        """(item id, labels, structures) of the item on screen, to be saved before it goes; None."""
        p = self.panel
        if p.item is None or p.image is None:
            return None
        p.corrections.watcher.flush()
        labels = p.mask_layer()
        if labels is None:
            return None
        import numpy as np

        return p.item.id, np.array(labels.data), L.structures_of(labels)

    def next(self, previous_status: str | None = None) -> None:
        p = self.panel
        if p.opening:
            return
        leave = self.leaving()
        p.prefetch.pause()
        p.learning.pause_rank()
        p.opening = True
        p._enable()  # noqa: SLF001 - the panel's own buttons
        p.status.setText("Asking the server for the next item…")
        self._start(self.series.take_next, p.order_key(), p.prefetch.seed, LEASE_S, leave, previous_status,
                    set(p.prefetch.ready()), what="opening the next item", then=self._next_came)

    def _next_came(self, result) -> None:
        p = self.panel
        if self._failed(result, "Cannot open the next item"):
            return
        item, found, saved, listing = result
        self.series.update(listing)
        if item is None:
            p.opening = False
            p.finished()
            return
        self._show(item, found, saved)

    def open_id(self, item_id: int) -> None:
        p = self.panel
        if p.opening:
            return
        leave = self.leaving() if p.item is not None and p.item.id != item_id else None
        p.opening = True
        p._enable()  # noqa: SLF001
        self._start(self.series.open, item_id, LEASE_S, leave, set(p.prefetch.ready()), what="opening the item",
                    then=self._opened)

    def _opened(self, result) -> None:
        if self._failed(result, "Cannot open this item"):
            return
        item, found, saved, listing = result
        self.series.update(listing)
        self._show(item, found, saved)

    def _show(self, item, found, saved) -> None:
        p = self.panel
        p._held = item.id  # noqa: SLF001 - leased to this dock until the next one
        found = found or p.prefetch.take(item.id)  # read ahead: the pixels are here already
        if found is None:  # dropped meanwhile (a replan): read them now
            return self._start(self.series.read, item.id, what="opening the item",
                               then=lambda again: self._failed(again, "Cannot open this item")
                               or self._show(item, again, saved))
        found.saved = saved
        p.show_item(item, False, found)

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

        self._start(self.series.mark_done, item.id, np.array(labels.data), L.structures_of(labels),
                    what="saving the mask", then=done)

    def close(self) -> None:
        """The dock is closing: the mask on screen goes to the server now. The item stays leased to
        this computer until its lease ends, so napari opened again lands on it (a crash leaves it
        the same way); after that, the server hands it to whoever asks."""
        leave = self.leaving()
        try:
            if leave is not None:
                self.series.save(*leave)
        except VLSMError as err:
            show_warning(texts.toast(T.note("Mask not sent", " ".join(str(err).split()))))
        self.panel._held = None  # noqa: SLF001

    def give_back(self) -> None:
        """Another project, or disconnected: as at closing, the item stays leased to this computer
        until its lease ends (no network call here: the connection may be closing, or gone)."""
        self.panel._held = None  # noqa: SLF001

    def rank(self, prompts, threshold: float, adapter, then) -> None:
        """Score the open items on the server (cached there per model, adapter and phrasings)."""
        series = self.series

        def ranked(result):
            if isinstance(result, Failed):
                show_info(texts.toast(T.note("Series not ranked", " ".join(str(result.error).split()))))
                return then(False)
            series.update(result)
            then(True)

        self._start(partial(series.api.rank, prompts, threshold, adapter), what="ranking the series", then=ranked)
