"""core/torch_threads.py: torch jobs on a thread of their own that ends with them, so that torch's
OpenMP helper teams do not pile up in long-lived pool threads (which makes OpenMP sleep and wake
its helpers between kernels: a dock finetune step 1.3x the CLI's)."""

from __future__ import annotations

import threading
import time

import pytest

from napari_vlsm.core import torch_threads

from helpers import linux_only, torch_os_threads, wait_for_no_torch_threads


def test_call_runs_on_a_fresh_named_thread_and_returns_its_value():
    caller = threading.get_ident()
    where = torch_threads.call(lambda: (threading.get_ident(), threading.current_thread().name))
    assert where[0] != caller and where[1] == torch_threads.THREAD_NAME
    # a second job gets a new thread (the first one ended, with its OpenMP team)
    assert torch_threads.call(threading.get_ident) != caller


def test_call_raises_the_jobs_own_exception_with_its_traceback():
    def job():
        raise ValueError("bad slice 7")

    with pytest.raises(ValueError, match="bad slice 7") as info:
        torch_threads.call(job)
    assert any(entry.name == "job" for entry in info.traceback)


def test_call_sets_flush_denormal_in_the_job_thread():
    """Even when the caller's thread has the flag off (a new thread copies its creator's)."""
    import torch

    def product_of_a_denormal():
        return float(torch.tensor([1e-39], dtype=torch.float32) * 1.0)  # 0.0 once denormals are flushed

    seen = {}

    def caller():
        torch.set_flush_denormal(False)
        seen["caller"] = product_of_a_denormal()
        seen["job"] = torch_threads.call(product_of_a_denormal)

    t = threading.Thread(target=caller)
    t.start()
    t.join()
    assert seen["caller"] != 0.0, "the caller flushes denormals: this test would show nothing"
    assert seen["job"] == 0.0


def test_iterate_relays_yields_return_value_and_errors():
    def job(n):
        yield from range(n)
        return "done"

    gen = torch_threads.iterate(job, 3)
    got = []
    with pytest.raises(StopIteration) as stop:
        while True:
            got.append(next(gen))
    assert got == [0, 1, 2] and stop.value.value == "done"

    def failing():
        yield 1
        raise RuntimeError("out of memory")

    gen = torch_threads.iterate(failing)
    assert next(gen) == 1
    with pytest.raises(RuntimeError, match="out of memory"):
        next(gen)


def test_closing_iterate_stops_the_job_and_waits_for_its_thread():
    finished = threading.Event()

    def endless():
        try:
            while True:
                yield threading.get_ident()
                time.sleep(0.01)
        finally:
            finished.set()

    gen = torch_threads.iterate(endless)
    job_thread = next(gen)
    gen.close()  # what napari does when a worker is aborted
    assert finished.is_set(), "the job kept running after its generator was closed"
    assert job_thread not in {t.ident for t in threading.enumerate()}


@linux_only
def test_the_jobs_openmp_helpers_end_with_the_job():
    """The point of the module: a torch job's OpenMP team lives only as long as the job."""
    import torch

    if torch.get_num_threads() < 2:
        pytest.skip("one torch thread: OpenMP makes no helpers")
    wait_for_no_torch_threads()
    during = []

    def job():
        a = torch.randn(256, 256)
        for _ in range(3):
            a = torch.tanh(a @ a / 256)  # parallel kernels: OpenMP starts its team in this thread
        during.append(torch_os_threads())

    for _ in range(3):
        torch_threads.call(job)
    # OpenMP's helpers carry the name of the thread that made them
    assert all(n >= 2 for n in during), f"no OpenMP helpers were seen during the job: {during}"
    assert wait_for_no_torch_threads() == 0, "OpenMP helpers outlived their job"
