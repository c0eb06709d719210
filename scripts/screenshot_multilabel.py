"""Screenshot for docs/multilabel.md: a real abdominal CT with several structures and the legend.

    python scripts/screenshot_multilabel.py [--model DIR]

Runs napari in a real window (under Xvfb when there is no display, as scripts/screenshots.py),
types four structures into the dock and presses Segment slice: ONE label layer with four named,
coloured values and the legend. Without a trained CLIPSeg (--model), the random test model's
proposal is noise, so the layer is then filled with the scan's reference label map (a model's
output shipped with the data, ../shared/data/volumes) remapped to the four values, as a clinician's
corrected map would look. Only the screenshot is written to docs/images/.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from screenshots import ROOT, SIZE, ensure_display, wait  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "volumes"
STRUCTURES = {"liver": "liver", "spleen": "spleen", "left kidney": "kidney_left", "right kidney": "kidney_right",
              "stomach": "stomach"}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model")
    p.add_argument("--out", default=str(ROOT / "docs" / "images" / "multilabel-ct.png"))
    args = p.parse_args()
    ensure_display()
    import napari
    import numpy as np
    import tifffile
    from PIL import Image

    ct = tifffile.imread(DATA / "ct_abdomen.tif")
    reference = tifffile.imread(DATA / "ct_abdomen_labels.tif")
    names = {v: int(k) for k, v in json.loads((DATA / "ct_abdomen_labels.json").read_text())["labels"].items()}
    prompts = list(STRUCTURES)
    remapped = np.zeros(reference.shape, np.uint8)
    for value, organ in enumerate(STRUCTURES.values(), start=1):
        remapped[reference == names[organ]] = value
    z = int(np.argmax([len(np.unique(s)) * 10**6 + np.count_nonzero(s) for s in remapped]))

    work = Path(tempfile.mkdtemp(prefix="napari-vlsm-shot-"))
    model = args.model
    if model is None:
        from napari_vlsm.core.random_model import write_random_clipseg

        model = str(write_random_clipseg(work / "tiny-model", arch="tiny", seed=0))
    viewer = napari.Viewer(title="napari-vlsm", show=True)
    viewer.window._qt_window.resize(*SIZE)  # no public API for the window size
    viewer.add_image(ct, name="ct_abdomen", scale=(3.0, 3.0, 3.0), contrast_limits=(-160, 240))
    _, dock = viewer.window.add_plugin_dock_widget("napari-vlsm", "Text segmentation")
    dock.set_model_source(model)
    dock.session.set_project(work / "project")
    viewer.dims.set_current_step(0, z)
    dock.segment.prompt.setCurrentText("; ".join(prompts))
    dock.segment.btn_slice.click()
    wait(lambda: not dock.session.job)
    labels = viewer.layers.selection.active
    if args.model is None:
        labels.data = remapped  # the reference map (see the docstring): the random model draws noise
    labels.opacity = 0.55
    dock.segment.legend.pick(1)
    viewer.reset_view()
    wait(lambda: True)
    pixels = viewer.screenshot(canvas_only=False, flash=False)[..., :3]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
        out, optimize=True)
    print("wrote", out, "slice", z, "legend", dock.segment.legend.entries())
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
