"""Torch work on a thread of its own, one per job, gone when the job ends.

Why not simply in the caller's thread (a napari worker, a web server's threadpool): torch's CPU
kernels run on GNU OpenMP, and OpenMP keeps a team of helper threads for EVERY thread that ever ran
a parallel operation, for as long as that thread lives. Pool threads live on (napari's Qt pool,
starlette's threadpool), so after a model load in one pool thread, a segmentation in a second and
a finetune in a third, the process holds several teams. Once the teams together hold more threads
than there are cores, OpenMP stops spinning between parallel regions ("throttled" spin: 1/1000 of
the usual wait) and puts its helpers to sleep after each one; every kernel then waits for them to
be woken. Measured on a 2-core AMD EPYC (Zen 4), bf16, the same finetune step: 742 context switches
per step against 12, and 0.45 s against 0.30-0.34 s in the CLI's single thread.

A thread made for the job and ended with it takes its team with it, so at most one team per
running job exists. It costs about a millisecond per job.

The same thread state every torch job needs is set here once (:func:`prepare_thread`).
"""

from __future__ import annotations

import ctypes
import queue
import sys
import threading
from collections.abc import Callable, Generator

THREAD_NAME = "vlsm-torch"  # the OS name too (top -H, /proc): OpenMP's helpers inherit it


def prepare_thread() -> None:
    """Per-thread CPU state for torch, set BEFORE the thread's first torch operation: flush
    denormal floats to zero. The flag lives in each thread's floating-point control register, and
    torch's OpenMP helpers copy it from their thread once, when they are made. Random and freshly
    trained weights produce denormals; without the flag a step of the random test model took
    ~350 ms against ~30 ms."""
    import torch

    torch.set_flush_denormal(True)


def _name_os_thread(name: str) -> None:
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None)
            libc.prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME
        except (OSError, AttributeError):
            pass


def _start(body: Callable[[], None]) -> threading.Thread:
    def named():
        _name_os_thread(THREAD_NAME)
        body()

    thread = threading.Thread(target=named, name=THREAD_NAME, daemon=True)
    thread.start()
    return thread


def call(func: Callable, *args, **kwargs):
    """``func(*args, **kwargs)`` on a fresh torch thread; blocks (the GIL released) until it ends.
    Its exception, if any, is raised here with its own traceback."""
    outcome: dict = {}

    def body():
        try:
            prepare_thread()
            outcome["value"] = func(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001  (carried to the caller, raised there)
            outcome["error"] = exc

    _start(body).join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def iterate(genfunc: Callable[..., Generator], *args, **kwargs) -> Generator:
    """Run the generator ``genfunc(*args, **kwargs)`` on a fresh torch thread and yield what it
    yields, here; returns what it returns, raises what it raises.

    Closing this generator (a caller that stops early) stops the job after its current item and
    waits for its thread: when this generator is done, no torch work of it goes on unseen.
    """
    items: queue.SimpleQueue = queue.SimpleQueue()
    stop = threading.Event()

    def body():
        try:
            prepare_thread()
            gen = genfunc(*args, **kwargs)
            while True:
                try:
                    item = next(gen)
                except StopIteration as done:
                    items.put(("return", done.value))
                    return
                items.put(("yield", item))
                if stop.is_set():
                    gen.close()
                    items.put(("return", None))
                    return
        except BaseException as exc:  # noqa: BLE001  (carried to the caller, raised there)
            items.put(("error", exc))

    thread = _start(body)
    try:
        while True:
            kind, value = items.get()
            if kind == "yield":
                yield value
            elif kind == "return":
                return value
            else:
                raise value
    finally:
        stop.set()
        thread.join()
