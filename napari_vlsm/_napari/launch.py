"""Open napari with the napari-vlsm dock and a sample image: ``python -m napari_vlsm._napari.launch``.

The model is not loaded here: the dock loads it in the background when it is first needed and
shows a notification if the source cannot be loaded (for example a hub id on a machine without
internet). ``--demo-model`` writes a small random-weight, UNTRAINED CLIPSeg once into the user
cache and uses it, so the whole prompt -> correct -> finetune loop can be tried with no model at
all; its masks are noise until it has been finetuned on corrections.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from napari_vlsm.core.constants import DEFAULT_MODEL  # imports nothing: no torch here

SAMPLES = ("retina", "ct_slice", "mr_slice")
PLUGIN, WIDGET = "napari-vlsm", "Text segmentation"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m napari_vlsm._napari.launch",
        description="Open napari with the napari-vlsm dock and an image.",
    )
    model = parser.add_mutually_exclusive_group()
    model.add_argument(
        "--model", default=DEFAULT_MODEL, metavar="SRC",
        help=f"hub id or local CLIPSeg folder (default: the dock's last one, first time {DEFAULT_MODEL}; "
             "loaded by the dock at the first Segment)",
    )
    model.add_argument(
        "--demo-model", action="store_true",
        help="use a small random-weight UNTRAINED model written into the user cache "
             "(for machines with no internet and no local model folder)",
    )
    parser.add_argument("--sample", choices=SAMPLES, default="retina",
                        help="sample image to open (default: %(default)s)")
    parser.add_argument("--image", metavar="PATH",
                        help="open this image instead of the sample: NIfTI, NRRD, MHA, a DICOM series folder "
                             "or any one file of it (with its geometry), or any file napari reads")
    args = parser.parse_args(argv)
    given = sys.argv[1:] if argv is None else argv
    # Without --model the dock keeps the source it remembers (settings.py); first time the default.
    args.model_given = any(a == "--model" or a.startswith("--model=") for a in given)
    return args


def demo_model_path() -> Path:
    """Where the demo model lives (nothing is written)."""
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("napari-vlsm")) / "demo-model"


def is_demo_model(source) -> bool:
    """The model in use is the untrained demo: the dock says so, and its layers are named so."""
    return bool(source) and Path(str(source)).expanduser() == demo_model_path()


def demo_model_dir() -> Path:
    """The untrained demo model folder, written once (atomically) into the user cache."""
    folder = demo_model_path()
    if (folder / "config.json").is_file():
        return folder
    from napari_vlsm.core.random_model import write_random_clipseg

    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = folder.with_name(f"demo-model.tmp-{os.getpid()}")
    write_random_clipseg(staging, arch="tiny", seed=0)
    try:
        staging.rename(folder)
    except OSError:  # another launcher won the race: use its folder
        import shutil

        shutil.rmtree(staging, ignore_errors=True)
    return folder


def add_image(viewer, args: argparse.Namespace) -> None:
    """Add ``--image`` (medical volumes through napari-vlsm's reader, with their geometry; anything
    else through napari's readers) or a sample. A file that cannot be read: one line, no image."""
    from napari_vlsm.core.medical.formats import is_volume_path

    if args.image is None:
        viewer.open_sample(PLUGIN, args.sample)
    elif is_volume_path(Path(args.image).expanduser()):
        from napari.utils.notifications import show_error

        from napari_vlsm._napari.reader import volume_layer
        from napari_vlsm.core.errors import VLSMError
        from napari_vlsm.core.medical import read_volume

        try:
            data, kwargs, layer_type = volume_layer(read_volume(Path(args.image).expanduser()))
        except VLSMError as err:
            print(f"napari-vlsm: error: {err}", file=sys.stderr)
            from napari_vlsm._napari import texts

            show_error(texts.toast(f"Cannot open {Path(args.image).name}\n{err}"))
            return
        getattr(viewer, f"add_{layer_type}")(data, **kwargs)  # a saved mask reopens as Labels
    else:
        viewer.open(args.image)


def display_problem(env=None, argv: list[str] | None = None) -> str | None:
    """One line naming the fix when Qt could not open a window (instead of Qt's abort, exit 134);
    the suggested command keeps the arguments the user typed (``argv``)."""
    import shlex

    env = os.environ if env is None else env
    if not sys.platform.startswith("linux") or env.get("QT_QPA_PLATFORM"):
        return None
    if not env.get("DISPLAY") and not env.get("WAYLAND_DISPLAY"):
        again = " ".join(["xvfb-run -a bash scripts/launch.sh", shlex.join(argv or [])]).rstrip()
        return ("napari-vlsm: no display found (DISPLAY is not set). Run it on a desktop, or under a "
                f"virtual display: {again}")
    import ctypes.util

    missing = [lib for lib in ("xcb-icccm", "xcb-keysyms", "xcb-cursor") if ctypes.util.find_library(lib) is None]
    if missing and env.get("DISPLAY") and not env.get("WAYLAND_DISPLAY"):
        return ("napari-vlsm: Qt's X11 libraries are missing (" + ", ".join(f"lib{m}" for m in missing) + "). "
                "Fix (Debian/Ubuntu): sudo apt-get install libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0")
    return None


def fit_window(viewer) -> None:
    """A window big enough for the whole dock (90 % of the screen), the image fitted in it."""
    from qtpy.QtGui import QGuiApplication

    screen = QGuiApplication.primaryScreen()
    if screen is not None:
        area = screen.availableGeometry()
        viewer.window.resize(max(1280, int(area.width() * 0.9)), max(860, int(area.height() * 0.9)))
    viewer.reset_view()


def dock_widget(viewer, model_source: str | None):
    """Dock the plugin widget; on failure tell the user why instead of crashing napari."""
    from napari.utils.notifications import show_error, show_info

    from napari_vlsm._napari import texts

    try:
        _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)
    except Exception as err:  # the dock is optional for the viewer to be useful
        show_error(texts.toast(f"The dock could not be opened\nThe '{WIDGET}' dock could not be opened "
                               f"({type(err).__name__}: {err}). Reinstall with: pip install -e '.[all]'"))
        return None
    if model_source and hasattr(widget, "set_model_source"):
        widget.set_model_source(model_source)
    source = getattr(getattr(widget, "session", None), "model_source", model_source)
    problem = widget.check_model_source() if hasattr(widget, "check_model_source") else None
    if problem:
        print(f"napari-vlsm: {problem} Offline? Use --demo-model, or --model FOLDER "
              "(see the notice at the top of the dock)", file=sys.stderr)
    show_info(texts.toast(f"Model: {Path(str(source)).name}\nModel in use: {source} (loaded at the first Segment)"))
    return widget


def open_viewer(args: argparse.Namespace, viewer=None):
    """Set up ``viewer`` (a new one if None): image first, then the dock. Returns the viewer."""
    import napari

    source = str(demo_model_dir()) if args.demo_model else (args.model if getattr(args, "model_given", True) else None)
    if args.demo_model:
        print(f"napari-vlsm: using the UNTRAINED random-weight demo model in {source}; "
              "its masks are noise until finetuned", file=sys.stderr)
    viewer = viewer if viewer is not None else napari.Viewer(title="napari-vlsm")
    from napari_vlsm._napari import reader_preference

    reader_preference.apply_once()  # File > Open and drag and drop of medical files: no reader dialog
    add_image(viewer, args)
    dock_widget(viewer, source)
    fit_window(viewer)
    return viewer


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    problem = display_problem(argv=sys.argv[1:] if argv is None else argv)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    import napari

    open_viewer(args)
    napari.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
