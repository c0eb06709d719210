"""Next in the dock's Series section: how long from the click until the next item's proposal is on
screen, with the read-ahead (prefetch) and without it, side by side in one run.

A real napari window (under Xvfb when there is no display), the dock, a series of 2D colonoscopy
frames from ``../shared/data/kvasir`` and the full-size CLIPSeg (random weights: the cost is the
real model's). Opening the series loads the model and proposes for the first frame (untimed). Then
each Next alternates:

* ``prefetch``: the read-ahead is on and has finished the next item before the click (the user
  was correcting the current one meanwhile): Next shows the image and runs the decoder only;
* ``cold``: the read-ahead is off and the engine's image cache holds nothing of the next item:
  Next reads the file, runs the image pass and the decoder (what every image cost before).

With ``--server`` the series is a server project's (``napari-vlsm serve`` started here, on
127.0.0.1, the frames added to its worklist) and the dock works through it: Next leases from the
server, pixels come over HTTP, the proposal is the server's. The read-ahead then asks the server for
the planned items' pixels and proposals; ``cold`` is a frame the server has never seen.

    python benchmarks/bench_series_next.py                 # 10 Nexts, full model
    python benchmarks/bench_series_next.py --arch tiny --nexts 4
    python benchmarks/bench_series_next.py --server        # the same through a local server
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

KVASIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "kvasir" / "images"
PROMPT = "polyp"


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="CLIPSeg folder (default: a random-weight CLIPSeg of --arch)")
    p.add_argument("--arch", choices=("full", "tiny"), default="full")
    p.add_argument("--images", default=str(KVASIR), help="folder of 2D images (default: kvasir)")
    p.add_argument("--nexts", type=int, default=10, help="timed Nexts (half of them with prefetch)")
    p.add_argument("--precision", default="auto")
    p.add_argument("--server", action="store_true", help="the series of a napari-vlsm serve on 127.0.0.1")
    return p.parse_args(argv)


def wait_until(condition, timeout: float = 600.0) -> None:
    """Qt's own event loop until ``condition()`` (checked every 5 ms), as napari.run() would run."""
    from qtpy.QtCore import QEventLoop, QTimer

    if condition():
        return
    loop, end = QEventLoop(), time.monotonic() + timeout
    timer = QTimer(interval=5)
    timer.timeout.connect(lambda: (condition() or time.monotonic() > end) and loop.quit())
    timer.start()
    loop.exec()
    timer.stop()
    if not condition():
        raise TimeoutError("the dock did not finish in time")


def run(args) -> dict:
    common.ensure_display()
    import napari

    from napari_vlsm._napari.dock import VLSMDock

    common.setup_torch()
    files = sorted(Path(args.images).glob("*.jpg"))[: args.nexts + 1]
    if len(files) < args.nexts + 1:
        raise SystemExit(f"{args.images} has {len(files)} JPEG images; {args.nexts + 1} are needed")
    viewer = napari.Viewer(show=True)
    viewer.window.resize(1600, 1000)
    dock = VLSMDock(viewer)
    viewer.window.add_dock_widget(dock, name="Text segmentation")
    s, series = dock.session, dock.series
    s.set_model_source(args.model)
    s.set_project(tempfile.mkdtemp(prefix="bench-series-"))
    s.device, s.precision = "cpu", args.precision
    dock.segment.prompt.setCurrentText(PROMPT)
    series.order.setCurrentIndex(series.order.findData("in-order"))
    server = start_server(args, files, s) if args.server else None
    if server is None:
        series.add_paths(files)  # opens the first frame: loads the model and proposes (untimed)
    else:
        wait_until(lambda: series.worklist is not None and series.worklist.items())
        series.next()
    wait_until(lambda: series.item is not None and series.settled() and series.mask_layer() is not None)

    runs = []
    for i in range(args.nexts):
        mode = "prefetch" if i % 2 == 0 else "cold"
        series.prefetch.enabled = mode == "prefetch"
        waited = time.perf_counter()
        if mode == "prefetch":
            series.prefetch.resume()
            series.prefetch.replan()
            wait_until(lambda: series.prefetch.planned()[:1] and series.prefetch.planned()[0] in series.prefetch.ready()
                       and not series.prefetch.busy())
        else:
            series.prefetch.replan()  # disabled: forgets what it read
            if server is None:  # (a server has never seen the next frame)
                s.segmenter._features.clear()  # noqa: SLF001 - nothing of the next image may be cached
            wait_until(lambda: not series.prefetch.busy())
        waited = time.perf_counter() - waited
        # Nothing is read ahead for the item after this one (a server's cache would keep what a
        # read-ahead started, and the next "cold" Next would not be cold).
        series.prefetch.enabled = False
        time.sleep(0.5)  # a quiet moment, as when the user looks at the mask before clicking
        before = series.item.id
        start = time.perf_counter()
        series.btn_next.click()
        wait_until(lambda before=before: series.item.id != before and series.settled() and series.mask_layer() is not None
                   and bool(series.mask_layer().metadata["napari_vlsm"].get("time")))
        runs.append({"mode": mode, "seconds": time.perf_counter() - start, "ahead_s": waited, "item": series.item.name,
                     "shape": list(series.image.data.shape)})
        print(f"{mode:8s} {runs[-1]['seconds']:.3f} s  {series.item.name}", file=sys.stderr)
    viewer.close()
    if server is not None:
        server.stop()
    return {"runs": runs, "server": bool(server)}


def start_server(args, files, session):
    """``napari-vlsm serve`` on 127.0.0.1 with the same model, the frames in its project's worklist,
    the dock connected to it (its Series section then shows the server's list)."""
    from napari_vlsm._napari.server_client import connect_session
    from napari_vlsm.core.worklist import Worklist
    from napari_vlsm.server.process import ServerProcess

    work = Path(tempfile.mkdtemp(prefix="bench-series-server-"))
    server = ServerProcess(args.model, work, env={"OMP_NUM_THREADS": str(os.cpu_count() or 1)},
                           precision=args.precision).start()
    with Worklist(server.project_root / "bench") as wl:
        wl.add(files)
    connect_session(session, server.url, server.token, "bench", work / "outbox")
    return server


def main(argv=None) -> None:
    args = parse(argv)
    common.warn_if_busy()
    os.environ["NAPARI_VLSM_CONFIG_DIR"] = tempfile.mkdtemp(prefix="bench-series-config-")
    args.model = str(common.model_folder(args.model, args.arch))
    result = run(args)
    by_mode = {m: [r["seconds"] for r in result["runs"] if r["mode"] == m] for m in ("prefetch", "cold")}
    med = {m: statistics.median(v) for m, v in by_mode.items()}
    pairs = [c / p for p, c in zip(by_mode["prefetch"], by_mode["cold"])]
    rows = [(m, len(v), f"{med[m]:.3f}", f"{min(v):.3f}", f"{max(v):.3f}") for m, v in by_mode.items()]
    print(common.table(rows, ("Next", "n", "median s", "min s", "max s")))
    print(f"cold / prefetch: {med['cold'] / med['prefetch']:.1f}x (median of pairs {statistics.median(pairs):.1f}x)")
    out = {"machine": common.machine(), "args": vars(args), "median_s": med,
           "ratio_cold_over_prefetch": med["cold"] / med["prefetch"], **result}
    print(f"saved {common.save('series_next_server' if args.server else 'series_next', out)}")


if __name__ == "__main__":
    main()
