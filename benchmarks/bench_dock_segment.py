""""Segment all slices" in the dock (a real napari window under Xvfb) against
``Segmenter.predict_stack`` on the same volume, side by side in one run: wall and CPU time, ratio.

Both sides load the model first (untimed); the dock side then times from the click on "Segment
all slices" until the job has ended and the Labels layer holds every slice (results applied on
the GUI thread included: that is what the user waits for). Each side runs in its own interpreter.

    python benchmarks/bench_dock_segment.py --slices 16            # random full-size CLIPSeg
    python benchmarks/bench_dock_segment.py --arch tiny --with-animated
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

PROMPT = "liver"


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--side", choices=("engine", "dock", "dock-animated"), help=argparse.SUPPRESS)
    p.add_argument("--model", help="CLIPSeg folder (default: a random-weight CLIPSeg of --arch)")
    p.add_argument("--arch", choices=("full", "tiny"), default="full")
    p.add_argument("--slices", type=int, default=16)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--precision", default="auto")
    p.add_argument("--with-animated", action="store_true",
                   help="also run the dock with napari's animated activity indicator left on")
    p.add_argument("--repeats", type=int, default=1,
                   help="run the sides this many times, alternating their order; the fastest run of each "
                        "and the median of run-by-run ratios are reported (a shared machine's speed drifts)")
    return p.parse_args(argv)


def volume(args):
    import numpy as np

    return np.random.default_rng(0).integers(0, 4000, (args.slices, args.size, args.size), dtype=np.uint16)


def side_engine(args) -> dict:
    from napari_vlsm.core.engine import Segmenter

    common.setup_torch()
    seg = Segmenter(args.model, device="cpu", precision=args.precision)
    stack = volume(args)
    list(seg.predict_stack(stack[:1], [PROMPT], batch_size=1))  # warm up, as the dock's first Segment
    w, c = time.perf_counter(), time.process_time()
    n = sum(1 for _ in seg.predict_stack(stack, [PROMPT], batch_size=args.batch_size))
    return {"slices": n, "wall_s": time.perf_counter() - w, "cpu_s": time.process_time() - c}


def side_dock(args, animated: bool) -> dict:
    common.ensure_display()
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_vlsm._napari import workers
    from napari_vlsm._napari.dock import VLSMDock

    common.setup_torch()
    workers.STILL_INDICATOR = not animated
    viewer = napari.Viewer(show=True)
    viewer.window.resize(1600, 1000)
    viewer.add_image(volume(args), name="scan")
    dock = VLSMDock(viewer)
    viewer.window.add_dock_widget(dock, name="Text segmentation")
    s = dock.session
    s.set_model_source(args.model)
    s.set_project(tempfile.mkdtemp())
    s.device, s.precision, s.batch_size = "cpu", args.precision, args.batch_size
    app = QApplication.instance()

    def wait():
        """Qt's own event loop (as napari.run()), checking every 20 ms (not a Python busy loop,
        which would take the GIL from the worker 500 times a second)."""
        from qtpy.QtCore import QEventLoop, QTimer

        loop = QEventLoop()
        timer = QTimer(interval=20)
        timer.timeout.connect(lambda: not s.job and loop.quit())
        timer.start()
        if s.job:
            loop.exec()
        timer.stop()

    dock.segment.prompt.setCurrentText(PROMPT)
    dock.segment.btn_slice.click()  # loads the model and segments one slice (untimed warm-up)
    wait()
    end = time.time() + 1.0  # let the loading job's bar be deleted (napari stops its movie then)
    while time.time() < end:
        app.processEvents()
        time.sleep(0.005)
    w, c = time.perf_counter(), time.process_time()
    dock.segment.btn_all.click()
    wait()
    out = {"slices": args.slices, "wall_s": time.perf_counter() - w, "cpu_s": time.process_time() - c}
    viewer.close()
    return out


def main(argv=None) -> None:
    args = parse(argv)
    if args.side:
        result = side_engine(args) if args.side == "engine" else side_dock(args, args.side == "dock-animated")
        print(json.dumps(result))
        return
    common.warn_if_busy()
    # the dock remembers settings per user: the benchmark's docks must not read or change the user's
    os.environ["NAPARI_VLSM_CONFIG_DIR"] = tempfile.mkdtemp(prefix="bench-dock-config-")
    args.model = str(common.model_folder(args.model, args.arch))
    passed = ["--model", args.model, "--slices", str(args.slices), "--size", str(args.size),
              "--batch-size", str(args.batch_size), "--precision", args.precision]
    sides = ["engine", "dock"] + (["dock-animated"] if args.with_animated else [])
    runs = common.run_alternating(__file__, sides, passed, args.repeats)
    results = {side: min(r, key=lambda x: x["wall_s"]) for side, r in runs.items()}
    base = results["engine"]

    rows = [(side, f"{r['wall_s']:.2f}", f"{r['cpu_s']:.2f}", f"{r['wall_s'] / base['wall_s']:.2f}",
             f"{r['cpu_s'] / base['cpu_s']:.2f}", f"{common.median_pair_ratio(runs[side], runs['engine'], 'wall_s'):.2f}") for side, r in results.items()]
    print(common.table(rows, ("side", "wall s", "cpu s", "wall ratio", "cpu ratio", "median pair ratio")))
    out = {"machine": common.machine(), "args": {k: v for k, v in vars(args).items() if k != "side"},
           "results": results, "all_runs": runs}
    print(f"saved {common.save('dock_segment', out)}")


if __name__ == "__main__":
    main()
