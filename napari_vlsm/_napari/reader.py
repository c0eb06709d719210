"""npe2 reader: File > Open and drag and drop of NIfTI, DICOM (a series folder or any one of its
files), NRRD and MetaImage give one Image layer in the canonical orientation; a bad file gives one
notification naming it and the fix.

The layer carries the geometry: ``scale`` = voxel spacing (mm), ``translate`` = origin (LPS mm,
listed z, y, x), and ``metadata["napari_vlsm_volume"]`` = the volume's description (source, modality,
direction, and the original grid and header that the writer restores exactly); see docs/volumes.md.
The contrast limits are a display window: soft tissue (W400 L40) for a CT (its modality, or HU
values), auto otherwise; the model's window is chosen apart, in the dock. A NIfTI whose header
says it holds labels (intent "label", as napari-vlsm writes its masks) opens as a Labels layer
with the same geometry, so it can be corrected and saved again on its grid.
"""

from __future__ import annotations

import os
from pathlib import Path

METADATA_KEY = "napari_vlsm_volume"  # "napari_vlsm" is the dock's own tag on output layers


def _one_path(path):
    if isinstance(path, (list, tuple)):
        paths = [os.fspath(p) for p in path]
        if len(paths) == 1:
            return paths[0]
        folders = {str(Path(p).parent) for p in paths}  # several files of one series dropped at once
        return paths[0] if len(folders) == 1 and all(_is_dicom(p) for p in paths) else None
    return os.fspath(path)


def _is_dicom(path) -> bool:
    from napari_vlsm.core.medical.formats import looks_like_dicom

    return looks_like_dicom(path)


def get_reader(path):
    """npe2 ``get_reader``: a reader function for medical volumes and folders, None for anything else.

    napari opens folders with napari-vlsm without asking (reader_preference.py), so every folder
    gets an answer here: a DICOM series or the volumes in it, else what napari's own reader makes
    of it (a Zarr store, a folder of images), else one line saying what was in it."""
    from napari_vlsm.core.medical.formats import is_dicom_folder, is_volume_path

    one = _one_path(path)
    if one is None:
        return None
    if Path(one).is_dir():
        return read_layers if is_dicom_folder(one) else read_folder
    return read_layers if is_volume_path(one) else None


def _volume_files(folder: Path) -> list[Path]:
    from napari_vlsm.core.medical.formats import VOLUME_SUFFIXES, full_suffix

    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                  and full_suffix(p) in VOLUME_SUFFIXES)


def read_folder(path) -> list[tuple]:
    """A folder without a DICOM series: each volume in it, else napari's own reader's layers, else
    one notification naming what the folder holds and what napari-vlsm reads."""
    folder = Path(_one_path(path))
    volumes = _volume_files(folder)
    if volumes:
        return [layer for file in volumes for layer in read_layers(str(file)) if layer != (None,)] or [(None,)]
    try:
        from npe2 import io_utils

        layers = io_utils.read([str(folder)], stack=False, plugin_name="napari")
        if layers:
            return layers
    except Exception:  # napari's reader found nothing it knows either: our message says what was there
        pass
    _nothing_to_open(folder)
    return [(None,)]


def _nothing_to_open(folder: Path) -> None:
    from napari.utils import notifications

    from napari_vlsm._napari import texts

    try:
        names = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
    except OSError as err:
        names, held = [], f"could not be listed ({err.strerror or err})"
    else:
        shown = ", ".join(names[:3]) + (", \u2026" if len(names) > 3 else "")
        held = f"holds {len(names)} item(s): {shown}" if names else "is empty"
    notifications.show_error(texts.toast(texts.NOTHING_IN_FOLDER.format(folder=folder, held=held)))


def read_layers(path) -> list[tuple]:
    """The volume's layer; for a bad file one notification with the reason and the fix, and no layer.

    Raising would not show the reason: napari replaces a reader's error with its own generic
    "Tried opening with napari-vlsm, but failed". ``[(None,)]`` is npe2's "read, nothing to add".
    """
    from napari_vlsm.core.errors import ImageError
    from napari_vlsm.core.medical import read_volume

    try:
        return [volume_layer(read_volume(_one_path(path)))]
    except ImageError as err:
        from napari.utils import notifications

        from napari_vlsm._napari import texts

        notifications.show_error(texts.toast(f"Cannot open {Path(str(_one_path(path))).name}\n{err}"))
        return [(None,)]


def is_label_volume(volume) -> bool:
    return volume.info.get("intent") == "label" and volume.array.dtype.kind in "biu"


def volume_layer(volume) -> tuple:
    """A MedicalVolume -> ``(data, kwargs, "image" | "labels")`` with its geometry."""
    from napari_vlsm.core.medical.windows import display_window

    kwargs = {"name": volume.name, "scale": volume.spacing, "translate": volume.origin,
              "metadata": {METADATA_KEY: volume.metadata()}}
    if is_label_volume(volume):
        return (volume.array, kwargs, "labels")
    # The DISPLAY window: soft tissue (W400 L40) for a CT, else auto. The model's window is the
    # dock's Model window row, chosen apart (docs/volumes.md).
    window, _ = display_window(volume.array, volume.modality)
    kwargs.update(colormap="gray", contrast_limits=window, rgb=False)  # an x of 3 or 4 voxels is no colour
    return (volume.array, kwargs, "image")


def volume_metadata(layer) -> dict | None:
    """The medical description of a layer (Image from this reader, or Labels given it), or None."""
    meta = getattr(layer, "metadata", None) or {}
    doc = meta.get(METADATA_KEY)
    return doc if isinstance(doc, dict) and "geometry" in doc else None
