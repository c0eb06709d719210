"""The same finetune through the dock (a real napari window under Xvfb) and through the core/CLI
path, side by side in one run: per-step wall and CPU time, their ratio, and the ETA's honesty.

Both sides read the SAME corrections from one project store (same split: the store's own), with
the same variant, batch size, steps, seed and precision. Each side runs in its own interpreter.

* ``cli``: ``core.training.finetune`` driven by ``run_to_end`` in the main thread (what
  ``napari-vlsm finetune`` does once its samples are read);
* ``dock``: napari window shown, the dock docked, "Finetune adapter" pressed, the Qt event loop
  turning until the job ends (napari's activity panel has the job's progress bar);
* ``dock-animated`` (``--with-animated``): the dock as it was before issue 14: napari's animated
  activity indicator left running (the known cost on software OpenGL).

Per-step time is measured from the first to the last training step (feature preparation and the
evaluation at step 0 excluded; the evaluations in between are the same on both sides). CPU time
is the whole process's (GUI thread included), which is what a second core would have to give.

    python benchmarks/bench_dock_finetune.py --steps 40            # random full-size CLIPSeg
    python benchmarks/bench_dock_finetune.py --model DIR --data ../shared/data/kvasir --n 10
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

PROMPT = "polyp"


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--side", choices=("cli", "dock", "dock-animated", "dock-pool-threads"), help=argparse.SUPPRESS)
    p.add_argument("--project", help=argparse.SUPPRESS)
    p.add_argument("--model", help="CLIPSeg folder (default: a random-weight full-size CLIPSeg)")
    p.add_argument("--arch", choices=("full", "tiny"), default="full", help="random model size (default full)")
    p.add_argument("--data", help="folder with images/ + masks/ (default ../shared/data/kvasir if present, "
                                  "else synthetic images)")
    p.add_argument("--n", type=int, default=10, help="corrections to store (default 10)")
    p.add_argument("--steps", type=int, default=40, help="optimiser steps (default 40)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--variant", default="shallow-vlc")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--precision", default="auto")
    p.add_argument("--repeats", type=int, default=1,
                   help="run the sides this many times, interleaved; the fastest run of each is reported "
                        "(a shared machine's load comes and goes)")
    p.add_argument("--with-animated", action="store_true",
                   help="also run the dock with napari's animated activity indicator left on")
    p.add_argument("--with-pool-threads", action="store_true",
                   help="also run the dock with its torch jobs in napari's pool threads (before the fix)")
    return p.parse_args(argv)


# ------------------------------------------------------------------------------------ the data
def write_project(args, folder: Path) -> dict:
    """Store ``n`` corrections (image, mask, prompt) in a project folder; both sides train on it."""
    import numpy as np

    from napari_vlsm.core.project import Project

    store = Project(folder).store  # the project's layout, as the dock reads it
    data = Path(args.data) if args.data else Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "kvasir"
    if (data / "images").is_dir():
        from napari_vlsm.core.datasets import read_folder

        for sample in read_folder(data, prompts=[PROMPT])[: args.n]:
            store.add(sample.image, sample.mask, [PROMPT], source=str(sample.name))
        where = str(data.resolve())
    else:
        rng = np.random.default_rng(0)
        for i in range(args.n):
            image = rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)
            mask = np.zeros((256, 256), np.uint8)
            mask[40 + 5 * i: 160 + 5 * i, 60:180] = 1
            store.add(image, mask, [PROMPT], source=f"synthetic-{i}")
        where = "synthetic"
    return {"data": where, **store.counts()}


# ------------------------------------------------------------------------------------ timing
class StepClock:
    """Wall + process CPU time at each training step (called on the thread that receives events).

    Per-thread CPU (/proc) and Xvfb's CPU are read at the first and the last step only: on the CLI
    side the clock runs in the training thread, so reading them every step would slow that side."""

    def __init__(self, probe=None, eta=None):
        self.steps: list[tuple[int, float, float, float | None, float | None]] = []  # step, wall, cpu, 2 ETAs
        self.first = self.last = None  # (this thread's CPU, Xvfb's CPU, threads_by_name())
        self.probe, self.probed = probe, None
        self.eta = eta or (lambda event: event.eta_s)  # the dock: the ETA its status line shows

    def __call__(self, event) -> None:
        if event.kind != "step":
            return
        # event.eta_s: the trainer's own estimate, made in its thread
        self.steps.append((event.step, time.perf_counter(), time.process_time(), self.eta(event), event.eta_s))
        if self.first is None or event.total is None or event.step == event.total:
            self.last = (time.thread_time(), x_server_cpu(), threads_by_name())  # this (GUI / main) thread
            self.first = self.first or self.last
        if self.probe is not None and self.probed is None and event.step >= 2:
            self.probed = self.probe()

    def summary(self) -> dict:
        (s0, w0, c0, *_), (s1, w1, c1, *_) = self.steps[0], self.steps[-1]
        n = s1 - s0
        # The ETA after a tenth of the run against the time the rest really took.
        tenth = next(st for st in self.steps if st[0] >= max(s0 + 1, s1 // 10))
        real_left = w1 - tenth[1]
        (g0, x0, names0), (g1, x1, names1) = self.first, self.last
        return {"steps": s1, "wall_per_step_s": (w1 - w0) / n, "cpu_per_step_s": (c1 - c0) / n,
                "calling_thread_cpu_per_step_s": (g1 - g0) / n,
                "x_server_cpu_per_step_s": None if x0 is None else (x1 - x0) / n,
                "threads_per_step": per_step(names0, names1, n),
                "eta_at_step": tenth[0], "eta_s": tenth[3], "real_left_s": real_left,
                "eta_error": eta_error(tenth[3], real_left), "trainer_eta_error": eta_error(tenth[4], real_left)}


def eta_error(eta, real_left):
    return None if eta is None or real_left <= 0 else eta / real_left - 1


def per_step(first: dict, last: dict, n: int) -> dict:
    out = {}
    for name, (cpu, switches) in sorted(last.items()):
        cpu0, switches0 = first.get(name, (0.0, 0))
        if cpu - cpu0 > 0 or switches - switches0 > 0:
            out[name] = {"cpu_s": round((cpu - cpu0) / n, 4), "switches": round((switches - switches0) / n, 1)}
    return out


def threads_by_name() -> dict[str, tuple[float, int]]:
    """CPU seconds and context switches of this process's threads, summed by thread name (Linux
    /proc; OpenMP's helpers carry the name of the thread that made them): where the dock's extra
    time goes (torch's threads, Mesa's llvmpipe rasterisers, Qt's), and whether torch's OpenMP
    helpers sleep and wake between kernels (hundreds of switches a step) or spin (a few dozen)."""
    out: dict[str, tuple[float, int]] = {}
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    for task in Path("/proc/self/task").glob("*"):
        try:
            name = (task / "comm").read_text().strip().rstrip("0123456789:-_$ ") or "?"
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            switches = sum(int(line.split()[1]) for line in (task / "status").read_text().splitlines()
                           if "ctxt_switches" in line)
        except OSError:
            continue
        cpu, n = out.get(name, (0.0, 0))
        out[name] = (cpu + (int(fields[11]) + int(fields[12])) / tick, n + switches)
    return out


def thread_names() -> list[str]:
    return [(t / "comm").read_text().strip() for t in Path("/proc/self/task").glob("*")]


def x_server_cpu() -> float | None:
    """CPU seconds of the Xvfb this process started (its drawing work happens there)."""
    try:
        import psutil

        for child in psutil.Process().children(recursive=True):
            if child.name().startswith("Xvfb"):
                t = child.cpu_times()
                return t.user + t.system
    except Exception:
        pass
    return None


def config(args):
    from napari_vlsm.core.training import TrainConfig

    return TrainConfig(variant=args.variant, max_steps=args.steps, batch_size=args.batch_size, seed=args.seed)


def side_cli(args) -> dict:
    from napari_vlsm.core.loading import load_model
    from napari_vlsm.core.project import Project
    from napari_vlsm.core.training import finetune, run_to_end

    common.setup_torch()
    store = Project(args.project).store
    loaded = load_model(args.model, device="cpu", precision=args.precision)
    clock = StepClock()
    run_to_end(finetune(loaded, store.samples(split="train"), store.samples(split="val"), config(args)), clock)
    return clock.summary()


def side_dock(args, animated: bool, pool_threads: bool = False) -> dict:
    common.ensure_display()
    import napari

    from napari_vlsm._napari import workers
    from napari_vlsm._napari.dock import VLSMDock

    common.setup_torch()
    workers.STILL_INDICATOR = not animated
    workers.OWN_TORCH_THREAD = not pool_threads
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1600, 1000)  # noqa: SLF001  (the launcher's size)
    viewer.add_image(__import__("numpy").zeros((256, 256), "uint8"), name="scan")
    dock = VLSMDock(viewer)
    viewer.window.add_dock_widget(dock, name="Text segmentation")
    s = dock.session
    s.set_model_source(args.model)
    s.set_project(args.project)
    s.device, s.precision, s.variant = "cpu", args.precision, args.variant
    s.max_steps, s.budget_s, s.train_batch_size = args.steps, 3600.0, args.batch_size
    clock = StepClock(probe=lambda: running_movies(viewer), eta=lambda event: dock.finetune.eta_s)
    real_run = dock.finetune._run

    def run_with_clock(segmenter):
        real_run(segmenter)
        dock.finetune.worker.yielded.connect(clock)  # GUI thread, as the dock's own slot

    dock.finetune._run = run_with_clock

    def turn(seconds=3600.0, until=lambda: not (s.job or s.finetuning)):
        """Run Qt's event loop as napari.run() does (blocked in Qt, the GIL released, until an
        event comes), checking ``until`` every 100 ms. A Python loop of processEvents + sleep
        would wake 200 times a second and take the GIL from the training thread each time."""
        from qtpy.QtCore import QEventLoop, QTimer

        loop, deadline = QEventLoop(), time.time() + seconds
        timer = QTimer(interval=100)
        timer.timeout.connect(lambda: (until() or time.time() > deadline) and loop.quit())
        timer.start()
        if not until():
            loop.exec()
        timer.stop()

    # As a user does: the model is loaded first (Segment or Load now), then Finetune. Started
    # right after the load, napari itself would stop its indicator when the loading bar is
    # deleted (it stops the movie when no VISIBLE bar is left, and bars in the closed activity
    # panel are not visible); that would hide the very cost this measures.
    s.with_model("loading", lambda segmenter: None)
    turn()
    turn(1.0, until=lambda: False)  # deferred deletions of the loading job's bar
    dock.finetune.start()
    turn()
    out = clock.summary()
    out["status"] = dock.finetune.status.text()
    names = thread_names()
    out["threads_alive_at_end"] = {name: names.count(name) for name in sorted(set(names))}
    out["animated_indicators_during_training"] = clock.probed
    viewer.close()
    return out


def running_movies(viewer) -> int:
    from qtpy.QtGui import QMovie
    from qtpy.QtWidgets import QLabel

    window = viewer.window._qt_window  # noqa: SLF001
    return sum(1 for label in window.findChildren(QLabel)
               if label.movie() is not None and label.movie().state() == QMovie.MovieState.Running)


def main(argv=None) -> None:
    args = parse(argv)
    if args.side:
        result = side_cli(args) if args.side == "cli" else side_dock(args, args.side == "dock-animated",
                                                                      args.side == "dock-pool-threads")
        print(json.dumps(result))
        return
    common.warn_if_busy()
    # the dock remembers settings per user: the benchmark's docks must not read or change the user's
    os.environ["NAPARI_VLSM_CONFIG_DIR"] = tempfile.mkdtemp(prefix="bench-dock-config-")
    args.model = str(common.model_folder(args.model, args.arch))
    project = Path(tempfile.mkdtemp(prefix="bench-dock-")) / "project"
    counts = write_project(args, project)
    passed = ["--project", str(project), "--model", args.model, "--steps", str(args.steps),
              "--batch-size", str(args.batch_size), "--variant", args.variant, "--seed", str(args.seed),
              "--precision", args.precision]
    sides = (["cli", "dock"] + (["dock-animated"] if args.with_animated else [])
             + (["dock-pool-threads"] if args.with_pool_threads else []))
    runs = common.run_alternating(__file__, sides, passed, args.repeats)
    results = {side: min(r, key=lambda x: x["wall_per_step_s"]) for side, r in runs.items()}
    cli = results["cli"]

    rows = [(side, f"{r['wall_per_step_s']:.3f}", f"{r['cpu_per_step_s']:.3f}",
             f"{r['wall_per_step_s'] / cli['wall_per_step_s']:.2f}", f"{r['cpu_per_step_s'] / cli['cpu_per_step_s']:.2f}",
             f"{common.median_pair_ratio(runs[side], runs['cli'], 'wall_per_step_s'):.2f}",
             "" if r["eta_error"] is None else f"{100 * r['eta_error']:+.0f}% (step {r['eta_at_step']})")
            for side, r in results.items()]
    print(common.table(rows, ("side", "wall s/step", "cpu s/step", "wall ratio", "cpu ratio", "median pair ratio", "ETA error")))
    for side, r in results.items():
        x = r.get("x_server_cpu_per_step_s")
        name, busiest = max(r["threads_per_step"].items(), key=lambda kv: kv[1]["cpu_s"])
        print(f"{side}: main/GUI thread {r['calling_thread_cpu_per_step_s'] * 1000:.0f} ms CPU per step"
              + ("" if x is None else f", Xvfb {x * 1000:.0f} ms")
              + f"; torch's threads ('{name}') {busiest['cpu_s'] * 1000:.0f} ms CPU and {busiest['switches']:.0f} "
              "context switches per step" + (f"; animated indicators during training: "
              f"{r['animated_indicators_during_training']}" if "animated_indicators_during_training" in r else ""))
    out = {"machine": common.machine(), "args": {k: v for k, v in vars(args).items() if k not in ("side", "project")},
           "corrections": counts, "results": results, "all_runs": runs}
    print(f"saved {common.save('dock_finetune', out)}")


if __name__ == "__main__":
    main()
