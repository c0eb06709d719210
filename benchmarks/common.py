"""Shared helpers of the benchmark scripts: model folder, timing, memory, machine, results.

Each side of a comparison runs in its own subprocess (``run_side``) so its peak resident memory
(``ru_maxrss``) is its own: tracemalloc does not see torch's allocations.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# NAPARI_VLSM_BENCH_RESULTS: another folder for the JSON files (benchmarks/gpu.sh collects one run's)
RESULTS = Path(os.environ.get("NAPARI_VLSM_BENCH_RESULTS") or Path(__file__).resolve().parent / "results")


def setup_torch(threads: int | None = None) -> None:
    import torch

    # Random weights on a CPU produce denormal floats that make timings jump 5-40x at random.
    torch.set_flush_denormal(True)
    if threads:
        torch.set_num_threads(threads)


def ensure_display(size=(1600, 1000)) -> None:
    """A virtual X display for the dock benchmarks when there is none (pyvirtualdisplay, what
    pytest-xvfb uses; needs the Xvfb binary)."""
    if os.environ.get("DISPLAY"):
        return
    import atexit

    from pyvirtualdisplay import Display

    display = Display(size=size, color_depth=24).start()
    atexit.register(display.stop)  # else every benchmark side leaves an Xvfb behind


def model_folder(path: str | None, arch: str = "full") -> Path:
    """``--model DIR`` or a random-weight CLIPSeg of ``arch`` in a temporary folder.

    "full": the real architecture, kept between runs; its processor resizes to 352 like the published
    CIDAS/clipseg-rd64-refined (485 image tokens), so the benchmark costs what the real model costs.
    "tiny": the tests' small model, written afresh (a smoke run of the benchmark's plumbing).
    """
    if path:
        return Path(path)
    from napari_vlsm.core.random_model import write_random_clipseg

    if arch == "tiny":
        return write_random_clipseg(Path(tempfile.mkdtemp()) / "tiny", arch="tiny", seed=0)
    folder = Path(tempfile.gettempdir()) / "napari-vlsm-bench-full-clipseg-352"
    if not (folder / "model.safetensors").is_file():
        print(f"writing a random-weight full CLIPSeg to {folder} ...", file=sys.stderr)
        write_random_clipseg(folder, arch="full", seed=0)
    return folder


def median_time(fn, repeats: int, setup=None) -> tuple[float, list[float]]:
    """Median wall time of ``fn()`` over ``repeats`` runs (``setup()`` runs untimed before each)."""
    times = []
    for _ in range(repeats):
        if setup is not None:
            setup()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def peak_rss_mib() -> float:
    """This process's peak resident memory in MiB.

    Linux: VmHWM of /proc/self/status, the high-water mark of this process's own memory. Not
    ``ru_maxrss``: Linux carries the parent's resident size at fork over exec into the child's
    ``ru_maxrss``, so a side started from a parent holding a model would report the parent's size.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    scale = 1 if sys.platform == "darwin" else 1024  # macOS reports bytes, others KiB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


class RssSampler:
    """Peak resident memory during a block, sampled every few ms (``ru_maxrss`` cannot be reset, and
    loading a model from safetensors has a higher peak than inference)."""

    def __init__(self, interval_s: float = 0.005):
        import threading

        import psutil

        self._proc, self._interval, self._stop = psutil.Process(), interval_s, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.start_mib = self.peak_mib = 0.0

    def _rss(self) -> float:
        return self._proc.memory_info().rss / 2**20

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.peak_mib = max(self.peak_mib, self._rss())

    def __enter__(self):
        self.start_mib = self.peak_mib = self._rss()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak_mib = max(self.peak_mib, self._rss())


def machine() -> dict:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from napari_vlsm.core.loading import cpu_has_native_bf16

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu, "gpu": gpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "load_average_1_5_15min": os.getloadavg(),
            "native_bf16": cpu_has_native_bf16(), "cuda": torch.cuda.is_available(),
            "python": platform.python_version(), "torch": torch.__version__, "os": platform.platform()}


def run_side(script: str, side: str, args: list[str]) -> dict:
    """Run ``script --side SIDE args`` in a fresh interpreter; it prints one JSON line last."""
    proc = subprocess.run([sys.executable, script, "--side", side, *args], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"{side} side failed with exit code {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_alternating(script: str, sides: list[str], args: list[str], repeats: int) -> dict[str, list[dict]]:
    """Each side ``repeats`` times, the order reversed every other round (no side always goes first
    on a machine whose speed drifts); -> {side: [result of round 0, round 1, ...]}."""
    runs: dict[str, list[dict]] = {side: [] for side in sides}
    for i in range(repeats):
        for side in sides if i % 2 == 0 else sides[::-1]:
            runs[side].append(run_side(script, side, args))
    return runs


def median_pair_ratio(runs: list[dict], base: list[dict], key: str) -> float:
    """The median of run i / base run i: each pair ran at the same moment, under the same load."""
    return statistics.median(r[key] / b[key] for r, b in zip(runs, base))


def warn_if_busy() -> None:
    """Other processes on the cores make torch's thread pool wait on descheduled threads: timings
    of small operations then inflate 10x or more. Say so, so a reader does not trust such a run."""
    load = os.getloadavg()[0]
    if load > 0.5 * (os.cpu_count() or 1):
        print(f"warning: load average {load:.1f} on {os.cpu_count()} cores: other processes are running, "
              "timings are unreliable; rerun on a quiet machine", file=sys.stderr)


def save(name: str, result: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = RESULTS / f"{name}-{stamp}.json"
    path.write_text(json.dumps(result, indent=2))
    return path


def table(rows: list[tuple], header: tuple) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*header), fmt.format(*("-" * w for w in widths))] + [fmt.format(*r) for r in rows])
