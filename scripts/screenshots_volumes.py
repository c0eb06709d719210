"""Screenshots of a real CT volume in napari for docs/volumes.md and the user guide.

Opens the scan through napari-vlsm's npe2 reader (the same path as File > Open), docks the widget,
picks the CT soft-tissue window and segments the viewed slice. Restarts itself under ``xvfb-run``
when there is no display (as scripts/screenshots.py does). Only PNGs are written to docs/images/.

    python scripts/screenshots_volumes.py                       # ../shared/data's example CT, tiny model
    python scripts/screenshots_volumes.py --scan ct.nii.gz --model ./clipseg --prompt liver
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from screenshots import ROOT, SIZE, ensure_display, wait  # noqa: E402

DEFAULT_SCAN = ROOT.parent / "shared" / "data" / "geometry" / "totalseg" / "example_ct_sm.nii.gz"


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scan", default=str(DEFAULT_SCAN), help="NIfTI / DICOM folder / NRRD / MHA")
    p.add_argument("--model", help="CLIPSeg folder (default: a tiny random, untrained model)")
    p.add_argument("--prompt", default="liver")
    p.add_argument("--slice", type=int, default=12, help="axial slice to show (canonical z)")
    p.add_argument("--out", default=str(ROOT / "docs" / "images"))
    return p.parse_args()


def main() -> int:
    args = parse_args()
    ensure_display()
    import napari
    from PIL import Image

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="napari-vlsm-volshots-"))
    model = args.model
    if model is None:
        from napari_vlsm.core.random_model import write_random_clipseg

        model = str(write_random_clipseg(work / "tiny-model", arch="tiny", seed=0))
    viewer = napari.Viewer(title="napari-vlsm", show=True)
    viewer.window._qt_window.resize(*SIZE)  # no public API for the window size
    (image,) = viewer.open(args.scan, plugin="napari-vlsm")
    _, dock = viewer.window.add_plugin_dock_widget("napari-vlsm", "Text segmentation")
    dock.set_model_source(model)
    dock.session.set_project(work / "project")
    dock.segment.window_choice.set_preset("soft-tissue")
    image.contrast_limits = dock.session.window_for(image)  # show what the model sees
    viewer.dims.set_point(0, image.data_to_world((args.slice, 0, 0))[0])
    viewer.reset_view()

    def shot(name: str) -> None:
        wait(lambda: True)
        pixels = viewer.screenshot(canvas_only=False, flash=False)[..., :3]
        palette = Image.fromarray(pixels).quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        path = out / f"{name}.png"
        palette.save(path, optimize=True)
        print("wrote", path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)

    shot("volume-01-ct-opened")
    dock.segment.prompt.setCurrentText(args.prompt)
    dock.segment.btn_slice.click()
    wait(lambda: not dock.session.job)
    shot("volume-02-ct-segmented")
    viewer.close()
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
