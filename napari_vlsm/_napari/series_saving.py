"""Saving a series item: its mask on screen, *Mark done*, and the question an empty mask asks.

The mask of the item on screen is written into the project's masks folder (``ProjectLayout.masks``,
named by the worklist's ``item_files``: NIfTI on the scan's grid for a scan, TIFF for a stack, PNG
in 2D, with its JSON legend), atomically and in a worker that is never cancelled half-way. *Mark
done* sets the status only once the mask is on disk; an empty mask asks first. These are the files
``napari-vlsm worklist export`` copies.
"""

from __future__ import annotations

from napari.utils.notifications import show_warning
from qtpy.QtWidgets import QMessageBox

from napari_vlsm.core.errors import VLSMError

from . import layers as L
from . import series_texts as T
from . import texts, workers
from .series_items import Failed, keep_alive, read_or_fail


class Saving:
    def __init__(self, panel):
        self.panel = panel

    def mask_layer(self):
        """The mask layer of the item on screen (the one for the prompt in use, else the first)."""
        p = self.panel
        if p.image is None:
            return None
        uid = str(p.image.unique_id)
        mine = [layer for layer in p.viewer.layers
                if (L.output_meta(layer) or {}).get("image_id") == uid]
        wanted = L.target_key(p.segment.prompt.currentText() or "")
        return next((m for m in mine if L.output_meta(m)["target"] == wanted), mine[0] if mine else None)

    def mark_done(self) -> None:
        p = self.panel
        wl = p._need_worklist()  # noqa: SLF001 - the panel's worklist (made on first use)
        if p.item is None or p.image is None:
            raise VLSMError("no series item is open: press Next first")
        labels = self.mask_layer()
        if labels is None:
            raise VLSMError(f"'{p.item.name}' has no mask yet: type a prompt and press Segment slice")
        if not labels.data.any() and not self.confirm_empty(p.item.name):
            return
        if p.remote:  # the server writes it on the scan's grid, then sets the status
            return p.remote_steps.mark_done(labels)
        p.corrections.watcher.flush()
        item = p.item
        self.write_mask(labels, on_saved=lambda target: self._done(wl, item, target))

    def confirm_empty(self, name: str) -> bool:
        answer = QMessageBox.question(self.panel, T.EMPTY_TITLE, T.EMPTY_ASK.format(name=name))
        return answer == QMessageBox.StandardButton.Yes

    def _done(self, wl, item, target) -> None:
        p = self.panel
        done = wl.set_status(item.id, "done")  # only once its mask is on disk
        if p.item is not None and p.item.id == item.id:
            p.item = done
        p.status.setText(f"Done: mask saved as {target.name}.")
        p.refresh()

    def write_mask(self, labels, on_saved=None, wait: bool = False) -> None:
        """Write the item on screen's mask (``wait``: now, on this thread, as the dock closes)."""
        from .export import snapshot, write_export

        p = self.panel
        from napari_vlsm.core.worklist.saved_masks import mask_files

        target, _ = mask_files(p.item, p.session.folder)
        item = snapshot(labels, p.image)
        if wait:  # the dock is closing: write now, the app may be gone in a moment
            write_export(item, target)
            return

        def saved_or_not(result):
            if isinstance(result, Failed):  # a full disk, a read-only folder: say so, keep the layer
                reason = " ".join(str(result.error).split())
                p.status.setText(reason)
                show_warning(texts.toast(T.note("Mask not saved", reason)))
            elif on_saved is not None:
                on_saved(result[0])

        # Not in the dock's cancellable group: a write is never stopped half-way.
        keep_alive(workers.start(read_or_fail, write_export, item, target, what="saving the mask",
                                 on_return=saved_or_not))
