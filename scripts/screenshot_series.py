"""Screenshot of the dock's Series section for docs/user-guide.md ("Annotate a series").

A series of six photos (crops of scikit-image's retina photo, written to a temporary folder), the
tiny random model, a few Nexts, one item marked done and one skipped; the whole window is saved
as ``docs/images/series.png``. Runs under Xvfb when there is no display (as scripts/screenshots.py).

    python scripts/screenshot_series.py
    python scripts/screenshot_series.py --model ./clipseg --prompt "optic disc"
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from screenshots import ROOT, SIZE, ensure_display, wait  # noqa: E402


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="CLIPSeg folder (default: a tiny random, untrained model)")
    p.add_argument("--prompt", default="optic disc")
    p.add_argument("--out", default=str(ROOT / "docs" / "images"))
    return p.parse_args()


def write_series(folder: Path) -> None:
    import imageio.v3 as iio
    from skimage import data

    photo = data.retina()[::3, ::3]  # (~530, ~530, 3)
    folder.mkdir(parents=True)
    h, w = photo.shape[:2]
    for i in range(6):
        top, left = (i % 3) * h // 10, (i // 3) * w // 8
        iio.imwrite(folder / f"fundus-{i + 1:02d}.png", photo[top: top + 2 * h // 3, left: left + 2 * w // 3])


def main() -> int:
    args = parse_args()
    ensure_display()
    import napari

    work = Path(tempfile.mkdtemp(prefix="napari-vlsm-series-shot-"))
    os.environ["NAPARI_VLSM_CONFIG_DIR"] = str(work / "config")  # never the user's own dock settings
    model = args.model
    if model is None:
        from napari_vlsm.core.random_model import write_random_clipseg

        model = str(write_random_clipseg(work / "tiny-model", arch="tiny", seed=0))
    write_series(work / "photos")
    viewer = napari.Viewer(title="napari-vlsm", show=True)
    viewer.window._qt_window.resize(*SIZE)  # no public API for the window size
    _, dock = viewer.window.add_plugin_dock_widget("napari-vlsm", "Text segmentation")
    dock.set_model_source(model)
    dock.session.set_project(work / "project")
    series = dock.series
    dock.segment.prompt.setCurrentText(args.prompt)
    series.add_paths([work / "photos"])
    wait(lambda: series.item is not None and series.settled())
    series.btn_done.click()  # the first: its mask is written, it is done
    wait(lambda: series.worklist.get(series.item.id).status == "done")
    for _ in range(2):
        before = series.item.id
        series.btn_next.click()
        wait(lambda before=before: series.item.id != before and series.settled())
    series.btn_skip.click()
    wait(lambda: series.item is not None and series.item.name == "fundus-04.png" and series.settled())
    viewer.layers.selection.active = series.mask_layer()
    wait(lambda: not series.prefetch.busy())  # the read-ahead has finished: nothing runs at exit
    from PIL import Image

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    wait(lambda: True)
    pixels = viewer.screenshot(canvas_only=False, flash=False)[..., :3]
    palette = Image.fromarray(pixels).quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    palette.save(out / "series.png", optimize=True)
    print("wrote", out / "series.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
