"""Closing napari while a job of the dock runs: ONE question that names the job in words.

napari's window asks twice when a worker runs: first a list of busy tasks, then, since there are
layers, its usual "close the window?" (both in ``QtMainWindow.closeEvent``). This filter answers
the window's own close event (the title bar's x, the window manager) first while a dock job runs:
"Finetuning the adapter for 'polyp' is running..." Yes closes the viewer the way a script does
(``viewer.close()``: no further questions; its running workers are asked to stop, and a finetune
keeps its best adapter), No keeps everything. With no job running napari behaves as always.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable

from qtpy.QtCore import QEvent, QObject, QTimer
from qtpy.QtWidgets import QMessageBox

QUESTION = ("{job} is running.\n\nClose napari anyway? The job stops after its current step; a finetune "
            "keeps the best adapter it found.")


class CloseGuard(QObject):
    def __init__(self, viewer, window, busy: Callable[[], str | None], parent=None):
        super().__init__(parent)
        # weak: the dock must not keep napari's viewer or window alive
        self._viewer, self._window, self.busy = weakref.ref(viewer), weakref.ref(window), busy
        window.installEventFilter(self)

    @property
    def window(self):
        return self._window()

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 (Qt naming)
        if watched is not self.window or event.type() != QEvent.Type.Close or not event.spontaneous():
            return False
        job = self.busy()
        if not job:
            return False  # napari's own questions, as without the dock
        event.ignore()
        viewer = self._viewer()
        if self.ask(job) and viewer is not None:
            QTimer.singleShot(0, viewer.close)  # from code: napari closes without asking again
        return True

    def ask(self, job: str) -> bool:
        answer = QMessageBox.question(self.window, "Close napari?", QUESTION.format(job=job),
                                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                      QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes


def install(viewer, busy: Callable[[], str | None], parent) -> CloseGuard | None:
    """Guard ``viewer``'s window while ``parent`` (the dock) lives; None without a Qt window."""
    window = getattr(getattr(viewer, "window", None), "_qt_window", None)  # napari's QMainWindow
    return CloseGuard(viewer, window, busy, parent) if window is not None else None
