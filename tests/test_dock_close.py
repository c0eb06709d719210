"""Closing the dock (napari's x, remove_dock_widget) or napari during a finetune never leaves an
invisible job: the run ends after its current step, keeps its best adapter (a complete file) and
says so; a reopened dock shows it finishing; napari lists the running task before it closes."""

from __future__ import annotations

import pytest

pytest.importorskip("napari")

from napari_vlsm._napari import finetune_panel  # noqa: E402
from napari_vlsm._napari.dock import VLSMDock  # noqa: E402
from napari_vlsm.core.adapters.checkpoint import read_metadata  # noqa: E402

from dock_helpers import corrected_image  # noqa: E402

pytestmark = pytest.mark.gui
WAIT_MS = 120_000  # as test_dock_finetune's: finetunes on a slow shared machine, never a speed threshold


def start_long_finetune(qtbot, viewer, dock):
    corrected_image(qtbot, viewer, dock)
    dock.advanced.steps.setValue(0)  # no step limit: the time budget ends it (evaluating every tenth)
    dock.advanced.budget.setValue(30)
    dock.finetune.btn_train.click()
    # two evaluations: there is a best adapter to keep
    qtbot.waitUntil(lambda: len(dock.finetune.plot.dice) >= 2, timeout=WAIT_MS)
    return dock.finetune.worker


def kept_adapter(dock):
    (path,) = dock.session.adapters_dir.glob("adapter-*.safetensors")
    assert read_metadata(path)["adapter_config"]["variant"] == dock.session.variant  # complete, readable
    assert not list(dock.session.adapters_dir.glob(".*tmp*"))
    return path


@pytest.mark.parametrize("how", ["remove_dock_widget", "title bar x"])
def test_closing_the_dock_ends_the_finetune_and_keeps_its_best_adapter(qtbot, make_dock, notes, how):  # noqa: F811
    viewer, dock = make_dock()
    worker = start_long_finetune(qtbot, viewer, dock)
    with qtbot.waitSignal(worker.finished, timeout=WAIT_MS):
        if how == "remove_dock_widget":
            viewer.window.remove_dock_widget(dock)
        else:
            dock.parent().title.close_button.click()  # napari's own x: calls remove_dock_widget
    path = kept_adapter(dock)
    qtbot.waitUntil(lambda: any("dock closed" in n for n in notes), timeout=5000)
    note = next(n for n in notes if "dock closed" in n)
    assert path.name in note and len(note.splitlines()[0]) < 80, note
    # the worker's 'finished' reaches each slot as its own queued event: the one that forgets the
    # run may come after the test's own, so wait for it instead of reading the set at once
    qtbot.waitUntil(lambda: not finetune_panel.FINISHING, timeout=5000)


def test_a_reopened_dock_shows_the_finishing_finetune(qtbot, make_dock, notes):  # noqa: F811
    viewer, dock = make_dock()
    worker = start_long_finetune(qtbot, viewer, dock)
    viewer.window.remove_dock_widget(dock)
    again = VLSMDock(viewer)  # what napari's Plugins menu makes when the dock is opened again
    viewer.window.add_dock_widget(again, name="Text segmentation 2")
    if worker in finetune_panel.FINISHING:  # still ending its last step
        assert "finishing" in again.finetune.status.text()
        assert not again.finetune.btn_train.isEnabled()
        qtbot.waitUntil(lambda: worker not in finetune_panel.FINISHING, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: again.finetune.btn_train.isEnabled(), timeout=WAIT_MS)
    kept_adapter(dock)


def test_closing_napari_during_a_finetune_is_asked_and_keeps_the_best_adapter(qtbot, make_dock):
    viewer, dock = make_dock()
    worker = start_long_finetune(qtbot, viewer, dock)
    # napari's close dialog lists busy tasks; our jobs are registered with it
    assert viewer.window._task_status_manager.is_busy()  # noqa: SLF001
    with qtbot.waitSignal(worker.finished, timeout=WAIT_MS):
        viewer.close()
    kept_adapter(dock)


def test_cancel_button_still_discards_the_run(qtbot, make_dock):
    viewer, dock = make_dock()
    start_long_finetune(qtbot, viewer, dock)
    dock.finetune.btn_cancel.click()
    qtbot.waitUntil(lambda: not dock.session.finetuning, timeout=WAIT_MS)
    assert "Cancelled" in dock.finetune.result.text()
    assert not list(dock.session.adapters_dir.glob("*.safetensors"))


def test_closing_the_dock_while_the_model_loads_starts_no_finetune(qtbot, make_dock):
    viewer, dock = make_dock()
    corrected_image(qtbot, viewer, dock)
    dock.session.segmenter = None  # the next job loads the model first
    dock.finetune.btn_train.click()
    assert dock.session.job == "loading the model"
    viewer.window.remove_dock_widget(dock)
    qtbot.waitUntil(lambda: not dock.session.job, timeout=WAIT_MS)
    qtbot.wait(200)
    assert not dock.session.finetuning and dock.finetune.worker is None


class _WindowManagerClose:
    """The close event of the title bar's x (Qt marks it spontaneous; one made in code is not)."""

    def __init__(self):
        self.ignored = False

    def type(self):
        from qtpy.QtCore import QEvent

        return QEvent.Type.Close

    def spontaneous(self):
        return True

    def ignore(self):
        self.ignored = True


def test_closing_napari_by_its_x_during_a_finetune_asks_once_and_names_the_job(qtbot, make_dock, monkeypatch):
    from napari._qt.dialogs.confirm_close_dialog import ConfirmCloseDialog
    from qtpy.QtWidgets import QMessageBox

    viewer, dock = make_dock()
    worker = start_long_finetune(qtbot, viewer, dock)
    title = f"Finetuning the adapter for '{dock.session.prompt}'"
    # napari's list of busy tasks names it in words, not "napari-worker: Executing <function ...>"
    assert viewer.window._task_status_manager.get_status() == [f"napari-vlsm: {title}"]  # noqa: SLF001
    # napari's activity bar: seconds of the budget as seconds (it read "1.01s/it")
    eta = str(worker.pbar).split("|")[-1]
    assert "s of the time budget" in eta and "it]" not in eta and "/it" not in eta, eta
    asked, answers = [], [QMessageBox.StandardButton.No, QMessageBox.StandardButton.Yes]
    monkeypatch.setattr(QMessageBox, "question", staticmethod(lambda _w, _t, text, *a: asked.append(text)
                                                               or answers.pop(0)))
    monkeypatch.setattr(ConfirmCloseDialog, "exec_", lambda self: pytest.fail("napari asked a second time"))
    window = viewer.window._qt_window  # noqa: SLF001
    no = _WindowManagerClose()
    assert dock._close_guard.eventFilter(window, no) and no.ignored  # noqa: SLF001
    assert len(asked) == 1 and title in asked[0] and dock.session.finetuning  # No: nothing stops
    with qtbot.waitSignal(worker.finished, timeout=WAIT_MS):
        assert dock._close_guard.eventFilter(window, _WindowManagerClose())  # noqa: SLF001
    assert len(asked) == 2  # one question per close, never napari's two
    kept_adapter(dock)
