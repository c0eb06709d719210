"""The only place in napari-vlsm that starts threads.

Every background job (model loading, segmentation, finetuning) goes through :func:`start`, which
wraps ``napari.qt.threading.create_worker`` so that

* generator jobs show up in napari's activity panel (``_progress``) and can be cancelled there;
* user-caused errors (:class:`VLSMError`) reach the user as ONE clean notification with the
  message the core wrote for them, and anything else as a notification that says it is a bug —
  never a traceback dialog per error and never a dead widget;
* a cancel request (our Cancel button, the activity panel's cancel, or closing napari) sets a
  ``threading.Event`` that the job checks between steps, so the job can finish cleanly (keep the
  previous adapter, return what it has) instead of being dropped at a random ``yield``.

Callbacks run on the GUI thread (the worker's signals live on a QObject made there); results are
applied to layers only there.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from napari.qt.threading import FunctionWorker, GeneratorWorker, create_worker

from napari_vlsm.core import torch_threads  # no torch at import: torch is imported by the jobs

from . import texts

log = logging.getLogger(__name__)

# napari starts an animated GIF ("in progress...", a QMovie in the status bar) for every progress
# bar and runs it until the job ends. Each of its frames repaints the main window, which holds the
# OpenGL canvas: with software OpenGL (Mesa llvmpipe: VMs, remote desktops, thin clients) that
# costs about one CPU core, taken from the training (measured: a finetune step 3-4x slower).
# The job stays in napari's activity panel with its bar, Cancel and ETA; only the animation is
# held still (its first frame stays visible). Benchmarks set this False to measure the old way.
STILL_INDICATOR = True
# Torch jobs run on a thread of their own that ends with them (see _in_thread). Benchmarks set
# this False to measure the old way (torch in napari's pool threads).
OWN_TORCH_THREAD = True


def still_activity_indicator() -> int:
    """Stop napari's animated activity indicator(s) in the status bar; returns how many were stopped.

    Public Qt API only: the movie is found as a running QMovie on a QLabel inside a main window's
    QStatusBar (napari keeps no public handle on it).
    """
    from qtpy.QtGui import QMovie
    from qtpy.QtWidgets import QApplication, QLabel, QMainWindow

    stopped = 0
    app = QApplication.instance()
    if app is None:
        return 0
    for window in app.topLevelWidgets():
        if not isinstance(window, QMainWindow):
            continue
        for label in window.statusBar().findChildren(QLabel):
            movie = label.movie()
            if movie is not None and movie.state() == QMovie.MovieState.Running:
                movie.stop()
                movie.jumpToFrame(0)
                stopped += 1
    return stopped


class _Quiet:
    """Mixin: napari's workers relay every error as a traceback notification; we report ourselves."""

    cancel_event: threading.Event | None = None
    on_quit: Callable | None = None  # called when napari (window close) or the dock stops the job

    def _relay_error(self, exc: Exception) -> None:  # overrides napari's _NotifyingMixin
        pass

    def quit(self) -> None:
        # Only napari's task manager (closing the window) and cancel() below call quit(); the
        # dock's Cancel button sets the event itself. on_quit lets a job tell the two apart.
        if self.on_quit is not None:
            self.on_quit()
        # With a cancel event the job stops itself at its next check and still returns its result.
        if self.cancel_event is not None:
            self.cancel_event.set()
        else:
            super().quit()


class _GeneratorWorker(_Quiet, GeneratorWorker):
    pass


class _FunctionWorker(_Quiet, FunctionWorker):
    pass


class JobError(Exception):
    """A RuntimeError raised inside a generator job, carried out as something superqt lets through:
    superqt's GeneratorWorker takes any RuntimeError for "the worker was deleted" and ends the job
    without ``errored`` or ``finished`` (no message, buttons never re-enabled). torch raises
    RuntimeError for out-of-memory and most device failures."""


def report_error(exc: BaseException, what: str = "") -> None:
    """Show an error as a napari notification: the core's own message for user errors."""
    from napari.utils.notifications import show_error

    from napari_vlsm.core.errors import VLSMError

    if isinstance(exc, JobError) and exc.__cause__ is not None:
        exc = exc.__cause__
    if isinstance(exc, VLSMError):
        show_error(texts.user_error(what, exc))
    else:
        log.error("napari-vlsm: %s failed", what or "a task", exc_info=exc)
        show_error(texts.unexpected_error(what, exc))


def guarded(fn: Callable, what: str = "") -> Callable:
    """Wrap a GUI callback so an exception becomes a notification instead of a broken slot."""

    def call(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except RuntimeError as exc:
            if "has been deleted" in str(exc):  # the widget closed while the job ran: nothing to update
                return None
            report_error(exc, what)
        except Exception as exc:
            report_error(exc, what)
        return None

    call.__name__ = getattr(fn, "__name__", "callback")
    return call


def _in_thread(func: Callable, generator: bool, torch_job: bool = False) -> Callable:
    """The worker's body. A torch job runs on a thread of its own that ends with it (see
    core/torch_threads.py: torch's OpenMP keeps a team of helpers per thread that ever used it, and
    napari's pool threads live on; with several teams alive a 2-core finetune step took 1.3-1.5x
    the CLI's). The napari worker waits for it, the GIL released, and relays its yields."""
    import functools

    def here(*args, **kwargs):  # the old way (OWN_TORCH_THREAD off): in napari's pool thread
        if torch_job:
            torch_threads.prepare_thread()
        return func(*args, **kwargs)

    own_thread = torch_job and OWN_TORCH_THREAD
    if generator:
        @functools.wraps(func)
        def run_gen(*args, **kwargs):
            try:
                if own_thread:
                    return (yield from torch_threads.iterate(func, *args, **kwargs))
                return (yield from here(*args, **kwargs))
            except RuntimeError as err:
                raise JobError(str(err)) from err

        return run_gen

    @functools.wraps(func)
    def run(*args, **kwargs):
        return torch_threads.call(func, *args, **kwargs) if own_thread else here(*args, **kwargs)

    return run


def _show_warning(args: tuple) -> None:
    from napari.utils.notifications import show_warning

    show_warning(texts.toast(str(args[0])))


def on_click(button, fn: Callable, what: str = "") -> None:
    """Connect a button to ``fn()`` (without Qt's ``checked`` argument), errors as notifications."""
    safe = guarded(fn, what)
    button.clicked.connect(lambda *_: safe())


def start(
    func: Callable,
    *args,
    what: str,
    on_yield: Callable | None = None,
    on_return: Callable | None = None,
    on_error: Callable | None = None,
    on_finish: Callable | None = None,
    progress: dict | bool | None = None,
    cancel_event: threading.Event | None = None,
    group: set | None = None,
    torch_job: bool = False,
    title: str | None = None,
    **kwargs,
):
    """Run ``func(*args, **kwargs)`` (a function or a generator function) in a worker thread.

    ``what`` names the job in messages ("loading the model"). ``on_error`` runs after the error
    was shown (to re-enable buttons); ``on_finish`` runs in every case, last. The worker stays in
    ``group`` (a set) while it runs, so its owner can cancel it (see :func:`cancel`).
    ``torch_job``: the job runs torch (model loading, segmentation, training): see _in_thread.
    ``title``: the job in words for napari's close dialog (default: ``what``).
    """
    import inspect

    generator = inspect.isgeneratorfunction(func)
    tasks_before = set(_napari_tasks())  # the keys now: the worker's own entry is the new one
    worker = create_worker(
        _in_thread(func, generator, torch_job), *args,
        _worker_class=_GeneratorWorker if generator else _FunctionWorker,
        _progress=progress if generator else (bool(progress) or None),
        _ignore_errors=True,
        _start_thread=False,
        **kwargs,
    )
    worker.cancel_event = cancel_event
    worker.title = title or what[:1].upper() + what[1:]
    _name_for_napari(worker, tasks_before, worker.title)
    if on_yield is not None:
        worker.yielded.connect(guarded(on_yield, what))
    if on_return is not None:
        worker.returned.connect(guarded(on_return, what))

    def errored(exc):
        report_error(exc, what)
        if on_error is not None:
            guarded(on_error, what)(exc)

    worker.errored.connect(errored)
    # napari's own relay of worker warnings is not connected in napari 0.9 (its mixin's __init__
    # is never reached): show them here, e.g. "prompt ... was truncated".
    worker.warned.connect(guarded(_show_warning, what))

    def finished():
        if group is not None:
            group.discard(worker)
        if on_finish is not None:
            guarded(on_finish, what)()

    worker.finished.connect(finished)
    if group is not None:
        group.add(worker)
    if progress and STILL_INDICATOR:
        # napari adds the bar to its activity panel, and starts the movie, when the worker has
        # started (a slot connected before this one, so this one runs after it).
        worker.started.connect(still_activity_indicator)
    worker.start()
    return worker


def _napari_tasks() -> dict:
    """napari's list of running workers (its close dialog reads it); {} without a viewer."""
    try:
        from napari import current_viewer

        return current_viewer().window._task_status_manager._tasks  # noqa: SLF001 (no public handle)
    except Exception:
        return {}


def _name_for_napari(worker, before: set, title: str) -> None:
    """napari lists a running worker in its close dialog as "napari-worker: Executing <function
    train_job at 0x7f...>": name ours in words ("napari-vlsm: Finetuning the adapter for 'polyp'").
    napari sets its words when the worker starts, so ours are set again after it (a slot connected
    later runs later). Private napari attributes: if they change, napari's own words stay."""
    items = [item for key, item in _napari_tasks().items() if key not in before]

    def name() -> None:
        for item in items:
            try:
                item._provider, item._description[-1] = "napari-vlsm", title  # noqa: SLF001
            except (AttributeError, IndexError, TypeError):
                return

    name()
    worker.started.connect(name)


def cancel(group: set) -> None:
    """Ask every running job of ``group`` to stop (used when the dock closes)."""
    for worker in list(group):
        worker.quit()
