"""The dock's "busy" state belongs to one model job: a late signal of an earlier job never frees it.

A napari worker emits ``errored`` (or ``returned``) and then ``finished``, from its own thread; on a
loaded machine the GUI can handle the first, the user can click Segment again, and the next model
load can start before the first worker's ``finished`` arrives. The order is forced here by
delivering the callbacks by hand (the real window runs the same sequence in
tests/test_reliability_gui.py::test_a_hostile_or_broken_adapter_chosen_in_the_dock).
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

pytest.importorskip("napari")

from napari_vlsm._napari import session as session_module  # noqa: E402
from napari_vlsm.core.errors import AdapterError  # noqa: E402

from dock_helpers import segment  # noqa: E402


@pytest.fixture
def session(qtbot, monkeypatch):
    jobs = []

    def start(func, *args, what, on_return=None, on_error=None, on_finish=None, **kwargs):
        jobs.append(SimpleNamespace(what=what, on_return=on_return, on_error=on_error, on_finish=on_finish))

    monkeypatch.setattr(session_module.workers, "start", start)
    s = session_module.DockSession(None)
    s.jobs = jobs
    return s


def test_a_failed_loads_late_finish_leaves_the_next_load_busy(session):
    session.adapter = "/nowhere/other-base.safetensors"
    session.with_model("segmenting", lambda seg: None)
    first = session.jobs[0]
    first.on_error(AdapterError("made for another base"))  # 'errored': the dock is free again
    assert session.job == ""
    session.adapter = "none"
    got = []
    session.with_model("segmenting", got.append)  # the user's next Segment loads the model again
    assert [j.what for j in session.jobs] == ["loading the model"] * 2
    first.on_finish()  # the failed worker's 'finished' arrives only now
    assert session.job == "loading the model"  # still busy: the second load runs
    second = session.jobs[1]
    segmenter = object()
    second.on_return(segmenter)
    assert got == [segmenter] and session.job == ""
    second.on_finish()
    assert session.job == ""


def test_a_stopped_load_still_frees_the_dock(session):
    """'finished' without 'returned' (napari stopped the worker: window closed): not busy forever."""
    session.with_model("segmenting", lambda seg: None)
    session.jobs[0].on_finish()
    assert session.job == ""


@pytest.mark.gui
def test_in_the_window_a_failed_loads_late_finish_does_not_end_the_next_segment_early(
        qtbot, make_dock, notes, tmp_path, monkeypatch):  # noqa: F811 (fixtures)
    """The same order in the real dock: the failed load's thread is held between 'errored' and
    'finished' until the next load has started (which takes 1 s longer than usual)."""
    import threading
    import time

    import numpy as np
    from qtpy.QtCore import Qt
    from test_reliability_gui import _choose_adapter_file

    from napari_vlsm._napari import workers

    next_started = threading.Event()
    real_start = workers._FunctionWorker.start

    def hold(*_):  # runs in the failed worker's thread, after the dock's 'errored' slot was queued
        next_started.clear()
        next_started.wait(60)

    def start(self):
        next_started.set()
        self.errored.connect(hold, Qt.ConnectionType.DirectConnection)
        self.started.connect(lambda: time.sleep(1.0), Qt.ConnectionType.DirectConnection)
        real_start(self)

    monkeypatch.setattr(workers._FunctionWorker, "start", start)
    viewer, dock = make_dock()
    viewer.add_image(np.zeros((32, 32), np.uint8), name="scan")
    path = tmp_path / "broken.safetensors"
    path.write_bytes(b"not an adapter")
    _choose_adapter_file(dock, monkeypatch, path)
    assert segment(qtbot, dock, "liver") is None  # the load fails: a message, no layer
    assert any(path.name in n for n in notes)
    dock.model.adapter.activated.emit(dock.model.adapter.findData("none"))
    assert segment(qtbot, dock, "liver") is not None
