"""What the Series section does on this computer's worklist (the project folder's), step by step.

Adding files in the background; Next (lease the next item for this window, read it, or take what
was read ahead); opening a row by hand (held for this window, or refused while another window
holds it); an item that cannot be read (listed as missing or unreadable, and Next goes on); leaving
an item (its auto-saved corrections stored, its mask written); closing. The worklist is SQLite in
the project folder, so these calls are quick and run on the GUI thread; reading pixels runs in a
worker. A server project's steps are in series_remote_steps.py.
"""

from __future__ import annotations

import os
import socket
from functools import partial
from pathlib import Path

from napari.utils.notifications import show_info, show_warning

from napari_vlsm.core.errors import VLSMError, WorklistError

from . import series_texts as T
from . import texts, workers
from .series_items import LEASE_S, Failed, keep_alive, read_layer, read_or_fail
from .workers import guarded


def gone(holder: str) -> bool:
    """True when ``holder`` is a dock of a napari on this machine that has ended (closed or
    crashed without giving its item back): its lease is stale, the item may be taken over."""
    parts = holder.split(":")
    if len(parts) < 3 or parts[0] != "dock" or parts[1] != socket.gethostname():
        return False
    try:
        os.kill(int(parts[2]), 0)
    except ProcessLookupError:
        return True
    except (ValueError, OSError):
        return False
    return False


class LocalSteps:
    def __init__(self, panel):
        self.panel = panel

    # ---------------------------------------------------------------------------- adding
    def add_paths(self, paths) -> None:
        """Add files/folders to the project's worklist in the background; opens the first item."""
        p = self.panel
        try:
            p._open_worklist()  # noqa: SLF001 - the panel's worklist (made on first use)
        except WorklistError as err:
            return p._problem(err)  # noqa: SLF001
        from napari_vlsm.core.worklist import Worklist

        p.status.setText("Adding to the series…")
        root = p.session.folder

        def add(paths):
            wl = Worklist(root)  # its own connection: the GUI keeps using the panel's
            try:
                return wl.add([Path(path) for path in paths])
            except WorklistError as err:
                return err
            finally:
                wl.close()

        keep_alive(workers.start(add, list(paths), what="adding to the series", on_return=self._added))

    def _added(self, report) -> None:
        p = self.panel
        if isinstance(report, VLSMError):
            return p._problem(report)  # noqa: SLF001
        show_info(texts.toast(T.added(len(report.added) - len(report.unreadable), len(report.duplicates), report.unreadable)))
        p.status.setText("")
        p.refresh()
        if p.item is None and not p.opening:
            p.next()

    # ---------------------------------------------------------------------------- moving
    def next(self, wl) -> None:
        self.leave()
        item = self._take_next(wl)
        if item is None:
            return self.panel.finished()
        self._open(item, advance=True)

    def _take_next(self, wl):
        """The next item, held for this window (another window on the project never gets it)."""
        p = self.panel
        planned = p.prefetch.planned()
        item = wl.lease(p._holder, LEASE_S, p.order_key(), seed=p.prefetch.seed)  # noqa: SLF001
        if item is not None and p.item is not None and item.id == p.item.id:
            item = wl.lease(p._holder, LEASE_S, p.order_key(), seed=p.prefetch.seed)  # noqa: SLF001 - the one after it
        if item is not None and planned and item.id != planned[0]:
            p.prefetch.replan()
        p._held = item.id if item is not None else None  # noqa: SLF001 - lease() ended the previous one
        return item

    def open_id(self, wl, item_id: int) -> None:
        p = self.panel
        item = wl.get(item_id)
        held = wl.holder(item.id)
        try:  # leased to this window, as Next's items are: another window's Next passes over it
            item = wl.hold(item.id, p._holder, LEASE_S, replace=(held,) if held and gone(held) else ())  # noqa: SLF001
            p._held = item.id  # noqa: SLF001
        except WorklistError:
            p.status.setText(f"'{item.name}' is open in another window.")
            show_warning(texts.toast(T.note("Item open in another window", f"'{item.name}' is being corrected elsewhere; "
                                            "pick another row or press Next.")))
            return
        if p.item is not None and p.item.id != item.id:
            self.leave()
        self._open(item, advance=False)

    def _open(self, item, advance: bool) -> None:
        p = self.panel
        if item.status in ("unreadable", "missing"):
            p.status.setText(f"'{item.name}' is {item.status}: {item.reason}")
            return p.next() if advance else None
        p.opening = True
        p._enable()  # noqa: SLF001
        ready = p.prefetch.take(item.id)
        if ready is not None:
            return self._show(item, advance, ready)
        p.status.setText(f"Opening '{item.name}'…")
        keep_alive(workers.start(read_or_fail, read_layer, item, what="opening the item",
                                 on_return=partial(self._show, item, advance),
                                 on_error=lambda *_: self._opened_failed(), group=p.session.workers))

    def _opened_failed(self) -> None:
        self.panel.opening = False
        self.panel._enable()  # noqa: SLF001

    def _show(self, item, advance: bool, found) -> None:
        p = self.panel
        p.opening = False
        wl = p._need_worklist()  # noqa: SLF001
        if isinstance(found, Failed):
            return self._unopenable(wl, item, found.error, advance)
        p.item = wl.mark_opened(item.id)
        wl.set_current(item.id)
        p.show_item(p.item, advance, found)

    def _unopenable(self, wl, item, err, advance: bool) -> None:
        p = self.panel
        if not item.path.exists():
            wl.refresh_missing()
            show_warning(texts.toast(T.missing(item.name, item.path)))
        else:
            wl.mark_unreadable(item.id, str(err))
            show_warning(texts.toast(T.unreadable(item.name, " ".join(str(err).split()))))
        p.prefetch.replan()
        p.refresh()
        p._enable()  # noqa: SLF001
        if advance:
            p.next()

    def saved_mask(self, item, fits):
        """(label map, prompts) the item was saved with in the project's masks folder, or None (a
        saved mask that no longer ``fits`` the image is kept aside under another name)."""
        from napari_vlsm.core.worklist.saved_masks import mask_files, read_saved, set_aside

        target, legend = mask_files(item, self.panel.session.folder)
        saved = read_saved(target, legend)
        if saved is not None and not fits(saved):
            show_warning(texts.toast(T.stale_mask(item.name, set_aside(target, legend))))
            return None
        return saved

    # ---------------------------------------------------------------------------- leaving
    def leave(self) -> None:
        """Before the item on screen goes: auto-saved edits are stored, its mask is saved."""
        p = self.panel
        p.prefetch.pause()
        p.learning.pause_rank()
        if p.item is None or p.image is None or p.worklist is None:
            return
        p.corrections.watcher.flush()
        labels = p.mask_layer()
        if labels is not None:
            p.saving.write_mask(labels)

    def close(self) -> None:
        """The dock is closing: the mask on screen is written now, the item is free again."""
        p = self.panel
        if p.item is not None and p.image is not None and p.worklist is not None:
            labels = p.mask_layer()
            if labels is not None:
                guarded(partial(p.saving.write_mask, labels, wait=True), "saving the mask")()
        self.give_back()

    def give_back(self) -> None:
        """The item leased to this window is free again (even one whose opening was under way)."""
        p = self.panel
        if p._held is not None and p.worklist is not None:  # noqa: SLF001
            guarded(partial(p.worklist.release, p._held, p._holder), "the series")()  # noqa: SLF001
        p._held = None  # noqa: SLF001
