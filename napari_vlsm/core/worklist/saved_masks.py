"""An item's saved mask: the label map a user (in the dock, or through the server) saved for a
worklist item, in the project's ``masks/`` folder, with its JSON legend beside it.

One rule for where it lives (:func:`mask_files`, the worklist's own ``item_files`` naming: NIfTI on
the scan's grid for a volume, TIFF for a stack, PNG in 2D), one writer (:func:`write_saved`, the
dock's label-map export, atomic), one reader (:func:`read_saved`) and what happens to a saved mask
that no longer fits its image (:func:`set_aside`: kept under another name, never deleted). These
are the files ``napari-vlsm worklist export`` copies for a done item.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from .. import labelmap as LM
from .export import item_files
from .items import Item


def mask_files(item: Item, project_dir) -> tuple[Path, Path]:
    """The item's mask file and its JSON legend in the project's masks folder."""
    from ..project import ProjectLayout

    return item_files(item, ProjectLayout(Path(project_dir)).masks)


def read_saved(target: Path, legend: Path) -> tuple[np.ndarray, list[str]] | None:
    """(label map, prompts in value order) of a saved mask, or None when there is none; a volume's
    comes back canonical (z, y, x), as its image. ImageError (naming the file) when unreadable."""
    labels_and_legend = read_saved_legend(target, legend)
    if labels_and_legend is None:
        return None
    data, structures = labels_and_legend
    return data, [s.prompt for s in structures]


def read_saved_legend(target: Path, legend: Path) -> tuple[np.ndarray, list[LM.Structure]] | None:
    """As :func:`read_saved`, with the legend's structures (value, name, prompt, colour)."""
    target, legend = Path(target), Path(legend)
    if not target.is_file():
        return None
    from ..errors import ImageError

    name = target.name.lower()
    try:
        if name.endswith((".nii.gz", ".nii")):
            from ..medical import read_volume

            data = np.asarray(read_volume(target).array)
        else:
            from ..image_files import read_image

            data = np.asarray(read_image(target))
        structures = LM.read_legend(json.loads(legend.read_text(encoding="utf-8")))
    except (OSError, ValueError) as err:
        raise ImageError(f"cannot read the saved mask {target}: {err}") from None
    return data, structures


def set_aside(target: Path, legend: Path) -> Path | None:
    """Keep a saved mask that no longer fits its image (the file changed shape) under another name:
    nothing is lost, and the item gets a new mask. Returns where it went."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    moved = None
    for path in (Path(target), Path(legend)):
        if path.exists():
            name = path.name
            for suffix in (".nii.gz", ".nii", ".png", ".tif", ".json"):
                if name.lower().endswith(suffix):
                    name = f"{name[: -len(suffix)]}.old-{stamp}{name[-len(suffix):]}"
                    break
            os.replace(path, path.with_name(name))
            moved = moved or path.with_name(name)
    return moved


def as_structures(structures) -> list[LM.Structure]:
    """``labelmap.Structure`` entries, or dicts ``{"value", "name"?, "prompt", "colour"|"color"?}``
    (what the server receives): a missing name is the prompt's normalised form, a missing colour the
    palette's colour for the value."""
    out = []
    for s in structures:
        if isinstance(s, LM.Structure):
            out.append(s)
            continue
        value, prompt = int(s["value"]), str(s["prompt"])
        name = str(s.get("name") or " ".join(prompt.split()).lower())
        colour = str(s.get("colour") or s.get("color") or LM.colour_of(value - 1))
        out.append(LM.Structure(value, name, prompt, colour))
    return out


def write_saved(item: Item, project_dir, labels, structures, geometry=None, image=None, info=None) -> Path:
    """Write ``labels`` (canonical (z, y, x) for a volume, with its ``geometry``) as the item's saved
    mask, with its legend and statistics (``image``: the pixels inside each structure, when they have
    the map's shape); atomic. ``info``: the provenance keys the legend records (label_export.KEYS)
    and ``layer``. Returns the mask file."""
    from ..label_export import KEYS, write_export

    labels = np.asarray(labels)
    info = dict(info or {})
    pixels = None
    if image is not None and tuple(np.shape(image)) == labels.shape:
        pixels = np.asarray(image)
    record = {"data": labels, "structures": as_structures(structures), "geometry": geometry, "image": pixels,
              "spacing": geometry.spacing if geometry is not None else None,
              "info": {k: info[k] for k in KEYS if k in info} | {"layer": str(info.get("layer") or item.name)}}
    target, _ = write_export(record, mask_files(item, project_dir)[0])
    return target
