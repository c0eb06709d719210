"""Trace the two walks of docs/architecture.md through the real dock and count their hops.

    xvfb-run -a .venv/bin/python scripts/walk_hops.py        # a display is needed (napari)

Walk 1: a typed prompt to the mask on screen (the model already loaded: a Segment before).
Walk 2: a brush stroke to the refreshed mask after a finetune (one correction already stored;
the stroke, "Add correction", "Finetune adapter", the adopted adapter, the re-segmented slice).

A hop is one distinct call from a napari_vlsm function to another napari_vlsm function (a call
through napari, Qt or a thread hand-off counts as one hop from the last napari_vlsm function on
that stack; comprehensions belong to their function). The tiny random model keeps it quick; the
finetune's Dice is forced to "improved" (as the dock tests do) so the adapter is adopted.
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PACKAGE = str(ROOT / "napari_vlsm")


def _ours(code) -> bool:
    return code.co_filename.startswith(PACKAGE) and not (code.co_name.startswith("<") and code.co_name != "<lambda>")


def _name(code) -> str:
    return f"{Path(code.co_filename).relative_to(ROOT).as_posix()}:{code.co_qualname}"


class Walk:
    """Distinct caller -> callee hops among napari_vlsm functions, in every thread, while active."""

    def __init__(self):
        self.hops: dict[tuple, int] = {}
        self.lock = threading.Lock()

    def _profile(self, frame, event, arg):
        if event != "call" or not _ours(frame.f_code):
            return
        caller = frame.f_back
        while caller is not None and not _ours(caller.f_code):
            caller = caller.f_back
        key = (_name(caller.f_code) if caller is not None else None, _name(frame.f_code))
        with self.lock:
            self.hops.setdefault(key, len(self.hops))

    def __enter__(self):
        threading.setprofile(self._profile)
        sys.setprofile(self._profile)
        return self

    def __exit__(self, *exc):
        sys.setprofile(None)
        threading.setprofile(None)

    def report(self, title: str) -> dict:
        files = Counter(callee.split(":")[0] for _, callee in self.hops)
        print(f"\n== {title}: {len(self.hops)} hops over {len(files)} files")
        for path, n in files.most_common():
            print(f"   {n:4d}  {path}")
        order = list(dict.fromkeys(callee.split(":")[0].removeprefix("napari_vlsm/") for _, callee in self.hops))
        print("   files in the order the walk first enters them: " + " > ".join(order))
        return {"hops": len(self.hops), "files": len(files), "per_file": dict(files)}


def wait(app, until, timeout=180.0):
    end = time.monotonic() + timeout
    while not until():
        if time.monotonic() > end:
            raise TimeoutError("the dock did not finish in time")
        app.processEvents()
        time.sleep(0.01)
    app.processEvents()


def main() -> int:
    import napari
    import numpy as np
    from qtpy.QtWidgets import QApplication

    import napari_vlsm.core.training as training
    from napari_vlsm._napari import layers as L
    from napari_vlsm._napari.dock import VLSMDock
    from napari_vlsm.core.random_model import write_random_clipseg
    from napari_vlsm.core.store import normalize_target

    real = training.finetune

    def improved_finetune(*args, **kwargs):  # as the dock tests' force_dice: the adapter is adopted
        result = yield from real(*args, **kwargs)
        result.before, result.after = {**result.before, "dice": 0.2}, {**result.after, "dice": 0.6}
        return result

    training.finetune = improved_finetune
    tmp = Path(tempfile.mkdtemp(prefix="walk-hops-"))
    model = write_random_clipseg(tmp / "model", arch="tiny", seed=0)
    viewer = napari.Viewer(show=False)
    app = QApplication.instance()
    dock = VLSMDock(viewer)
    viewer.window.add_dock_widget(dock, name="Text segmentation")
    dock.set_model_source(str(model))
    dock.session.set_project(tmp / "project")

    def idle():
        return not dock.session.job and not dock.session.finetuning

    def segment(prompt, all_slices=False):
        dock.segment.prompt.setCurrentText(prompt)
        (dock.segment.btn_all if all_slices else dock.segment.btn_slice).click()
        wait(app, idle)
        return L.find_output(viewer, dock.segment.image.value, normalize_target(prompt))

    rng = np.random.default_rng(0)
    viewer.add_image(rng.integers(0, 255, (3, 48, 48), dtype=np.uint8), name="scan")
    labels = segment("lesion", all_slices=True)  # the model loads here, outside the walks
    with Walk() as first:
        segment("polyp")
    results = {"prompt to mask": first.report("walk 1: a typed prompt to the mask on screen")}

    viewer.layers.selection.active = labels
    dock.segment.prompt.setCurrentText("lesion")
    truth = np.zeros((48, 48), labels.data.dtype)
    truth[12:36, 12:36] = 1  # the "expert" mask of slices 0 and 1: a square

    def correct(z):  # a brush stroke (napari's paint writes through data_setitem), then Add correction
        viewer.dims.set_current_step(0, z)
        wrong = np.nonzero(labels.data[z] != truth)
        labels.data_setitem((np.full(len(wrong[0]), z), *wrong), truth[wrong])
        dock.corrections.btn_add.click()
        wait(app, lambda: not dock.corrections.saving)

    correct(0)  # one correction already stored (the first is "train", the second "val")
    walk = Walk().__enter__()
    correct(1)
    viewer.dims.set_current_step(0, 2)  # an uncorrected slice: its mask is refreshed by the new adapter
    dock.advanced.steps.setValue(4)
    dock.finetune.btn_train.click()
    wait(app, idle)
    walk.__exit__(None, None, None)
    results["stroke to refreshed mask"] = walk.report("walk 2: a brush stroke to the refreshed mask after a finetune")
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
