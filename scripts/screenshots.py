"""Screenshots of the prompt -> correct -> finetune loop for docs/user-guide.md.

Runs napari in a real window (under Xvfb when there is no display: the script restarts itself with
``xvfb-run``), docks the widget through the manifest, drives it with the same public calls a test
uses, and saves the WHOLE window at each step into ``docs/images/``. Only screenshots are written
there; images and models stay in a temporary folder.

    python scripts/screenshots.py                      # untrained random model: masks are noise
    python scripts/screenshots.py --model ./clipseg     # a real CLIPSeg folder
    python scripts/screenshots.py --image scan.png --prompt "polyp"
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIZE = (1500, 940)  # window size in pixels


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="CLIPSeg folder (default: a tiny random, untrained model)")
    p.add_argument("--image", help="image file (default: scikit-image's retina photo)")
    p.add_argument("--prompt", default="optic disc")
    p.add_argument("--steps", type=int, default=300, help="finetune steps (default: %(default)s)")
    p.add_argument("--out", default=str(ROOT / "docs" / "images"))
    return p.parse_args()


def ensure_display() -> None:
    if os.environ.get("DISPLAY") or os.environ.get("NAPARI_VLSM_UNDER_XVFB"):
        return
    xvfb = shutil.which("xvfb-run")
    if xvfb is None:
        sys.exit("no display and no xvfb-run: install xvfb or run on a desktop")
    os.environ["NAPARI_VLSM_UNDER_XVFB"] = "1"
    screen = f"-screen 0 {SIZE[0] + 100}x{SIZE[1] + 100}x24"
    os.execv(xvfb, [xvfb, "-a", "-s", screen, sys.executable, *sys.argv])


def wait(condition, timeout: float = 300.0) -> None:
    from qtpy.QtWidgets import QApplication

    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError("the dock did not finish in time")
        QApplication.processEvents()
        time.sleep(0.02)
    for _ in range(5):  # let the canvas draw
        QApplication.processEvents()
        time.sleep(0.02)


def load_image(path: str | None):
    if path is None:
        from skimage import data

        return data.retina(), "retina (scikit-image)"
    import imageio.v3 as iio

    return iio.imread(path), Path(path).stem


def correction(shape, centre, radius):
    """The 'expert' mask a user would paint: a filled disc."""
    import numpy as np

    yy, xx = np.ogrid[: shape[0], : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


def main() -> int:
    args = parse_args()
    ensure_display()
    import napari
    import numpy as np

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="napari-vlsm-shots-"))
    model = args.model
    if model is None:
        from napari_vlsm.core.random_model import write_random_clipseg

        model = str(write_random_clipseg(work / "tiny-model", arch="tiny", seed=0))
    pixels, name = load_image(args.image)

    viewer = napari.Viewer(title="napari-vlsm", show=True)
    viewer.window._qt_window.resize(*SIZE)  # no public API for the window size
    image = viewer.add_image(pixels, name=name, rgb=pixels.ndim == 3 and pixels.shape[-1] in (3, 4))
    _, dock = viewer.window.add_plugin_dock_widget("napari-vlsm", "Text segmentation")
    dock.set_model_source(model)
    dock.session.set_project(work / "project")
    dock.advanced.steps.setValue(args.steps)

    def shot(step: str) -> None:
        wait(lambda: True)
        from PIL import Image

        path = out / f"{step}.png"
        pixels = viewer.screenshot(canvas_only=False, flash=False)[..., :3]
        # 256 colours keep the UI text crisp at about a third of the bytes of a full-colour PNG
        palette = Image.fromarray(pixels).quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        palette.save(path, optimize=True)
        print("wrote", path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)

    s = dock.session
    idle = lambda: not s.job and not s.finetuning  # noqa: E731
    shot("01-docked")

    dock.segment.prompt.setCurrentText(args.prompt)
    dock.segment.btn_slice.click()
    wait(idle)
    labels = viewer.layers.selection.active
    shot("02-proposal")

    # The user corrects: here the disc a clinician would paint (the optic disc of the retina photo).
    h, w = image.data.shape[:2]
    truth = correction((h, w), (int(h * 0.46), int(w * 0.155)), int(min(h, w) * 0.07))
    wrong = (labels.data != 0) != truth
    labels.data_setitem(np.nonzero(wrong), truth[wrong].astype(labels.data.dtype))
    labels.mode = "paint"
    dock.corrections.btn_add.click()
    wait(lambda: not dock.corrections.saving and dock.corrections.list.count() == 1)
    shot("03-corrected")

    dock.finetune.btn_train.click()
    wait(lambda: len(dock.finetune.plot.loss) >= max(5, args.steps // 3) or idle())
    shot("04-finetuning")
    wait(idle)
    # The corrected slice keeps the correction; the user asks for the adapter's proposal there.
    dock.segment.btn_slice.click()
    wait(idle)
    shot("05-after-finetune")
    dock.model.expand(animate=False)
    dock.advanced.expand(animate=False)
    wait(lambda: True)
    dock._scroll.ensureWidgetVisible(dock.advanced)  # show the sections just opened
    shot("06-model-and-advanced")
    viewer.close()
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
