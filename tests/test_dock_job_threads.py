"""How the dock's background jobs run, the things that decide its speed against the CLI's
(docs/benchmarks-dock.md): torch jobs on a thread of their own, napari's activity indicator held
still while the job stays in the activity panel, and the finetune display repainted once a second."""

from __future__ import annotations

import threading
import time

import pytest

pytest.importorskip("napari")

from napari_vlsm._napari import workers  # noqa: E402
from napari_vlsm.core import torch_threads  # noqa: E402

from dock_helpers import corrected_image, idle  # noqa: E402
from helpers import linux_only, torch_os_threads, wait_for_no_torch_threads  # noqa: E402

pytestmark = pytest.mark.gui
WAIT_MS = 120_000


def running_movies(viewer) -> int:
    from qtpy.QtGui import QMovie
    from qtpy.QtWidgets import QLabel

    window = viewer.window._qt_window
    return sum(1 for label in window.findChildren(QLabel)
               if label.movie() is not None and label.movie().state() == QMovie.MovieState.Running)


def slow_job(release: threading.Event, seen: list):
    seen.append(threading.current_thread().name)
    while not release.wait(0.02):
        yield 1
    return "done"


def run_job(qtbot, viewer, torch_job: bool):
    """A generator job with a napari progress bar; -> (worker, thread names seen, movies running)."""
    release, seen, returned = threading.Event(), [], []
    worker = workers.start(slow_job, release, seen, what="testing", progress={"total": 0, "desc": "test job"},
                           torch_job=torch_job, on_return=returned.append)
    qtbot.waitUntil(lambda: bool(seen), timeout=WAIT_MS)
    qtbot.wait(300)  # napari starts its indicator once the worker has started
    movies = running_movies(viewer)
    pbar = worker.pbar
    release.set()
    qtbot.waitUntil(lambda: bool(returned), timeout=WAIT_MS)
    return seen[0], movies, pbar, returned[0]


def test_a_torch_job_runs_on_its_own_thread_and_stays_in_the_activity_panel(qtbot, make_napari_viewer):
    viewer = make_napari_viewer(show=True)
    name, movies, pbar, value = run_job(qtbot, viewer, torch_job=True)
    assert name == torch_threads.THREAD_NAME and value == "done"
    assert pbar is not None, "the job is not in napari's activity panel"
    assert movies == 0, "napari's animated indicator runs during our job (it repaints the GL window)"
    name, *_ = run_job(qtbot, viewer, torch_job=False)
    assert name != torch_threads.THREAD_NAME  # file writers and the like stay in napari's pool


def test_the_indicator_check_sees_naparis_animation_when_it_is_not_held(qtbot, make_napari_viewer, monkeypatch):
    """The control of the test above: napari does animate its indicator for a job with a bar."""
    monkeypatch.setattr(workers, "STILL_INDICATOR", False)
    viewer = make_napari_viewer(show=True)
    _, movies, _, _ = run_job(qtbot, viewer, torch_job=True)
    assert movies >= 1


@linux_only
def test_the_docks_finetune_trains_on_a_torch_thread_that_ends_with_it(qtbot, make_dock):
    import torch

    viewer, dock = make_dock()
    corrected_image(qtbot, viewer, dock)
    dock.advanced.steps.setValue(10_000)
    dock.advanced.budget.setValue(1)

    def finetune() -> list[int]:
        dock.finetune.btn_train.click()
        counts = []
        qtbot.waitUntil(lambda: counts.append(torch_os_threads()) or bool(idle(dock)), timeout=WAIT_MS)
        return counts

    finetune()
    # What stays named after a torch thread once the jobs ended: pools that libraries make once per
    # process from the first thread that needs them (tokenizers' Rust pool), not a team per job.
    wait_for_no_torch_threads(timeout=3)
    lasting = torch_os_threads()
    counts = finetune()
    assert max(counts) >= lasting + (2 if torch.get_num_threads() >= 2 else 1), (lasting, counts)
    assert wait_for_no_torch_threads(timeout=10, leave=lasting) == lasting, "the finetune's threads outlived it"


def test_the_finetune_display_is_repainted_once_a_second_not_every_step(qtbot, make_dock, monkeypatch):
    from napari_vlsm.core.training import ProgressEvent

    _, dock = make_dock()
    panel = dock.finetune
    panel.begin_run(60.0, 50, "Starting…")
    shown = []
    monkeypatch.setattr(panel, "_show", lambda event: shown.append(event.step))
    started = time.perf_counter()
    for step in range(1, 51):  # 50 steps in well under a second
        panel._event(ProgressEvent(kind="step", step=step, total=50, loss=1.0 / step, elapsed_s=0.01 * step))
    seconds = time.perf_counter() - started
    panel._set_running(False)
    assert len(panel.plot.loss) == 50  # every point is recorded
    assert shown[0] == 1 and shown[-1] == 50  # the first and the last step are shown
    assert len(shown) <= 2 + int(seconds / 1.0), shown

