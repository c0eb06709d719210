"""``read_item(item)``: the pixels of a worklist item, through the project's own readers.

Returns what :func:`napari_vlsm.core.image_files.read_input` gives: a numpy array (2D image, or a
lazily read TIFF stack) or a :class:`~napari_vlsm.core.medical.MedicalVolume`. A file that went
away, or whose shape changed since it was added (its stored corrections would no longer fit), is a
:class:`WorklistError` that says so; a reader's failure stays an ``ImageError`` naming the file.
"""

from __future__ import annotations

from ..errors import WorklistError
from ..image_files import read_input
from .items import Item


def read_item(item: Item):
    if not item.path.exists():
        raise WorklistError(f"{item.path} is gone (moved or deleted); put it back, or skip the item")
    data = read_input(item.path)
    shape = tuple(int(n) for n in getattr(data, "shape", ()))
    # Headers give (x, y, z) or (z, y, x) by format, RGB adds an axis: compare sizes, not their order.
    # A DICOM series' recorded shape is its file count (1 axis): not comparable, not checked.
    known = item.shape if len(item.shape) >= 2 else ()
    same = not known or sorted(shape) == sorted(known) or shape[:2] == known[:2]
    if not same:
        raise WorklistError(f"{item.name} has changed since it was added (shape {item.shape}, now {shape}); "
                            "its corrections may no longer fit: add the new file as a new item")
    return data


def label_shape(item: Item, data) -> tuple[int, ...]:
    """The shape of the item's label map: the image's without its colour axis ((H, W) for a 2D image,
    (z, y, x) for a stack or a volume in canonical order)."""
    return tuple(int(n) for n in (data.shape[:2] if item.kind == "image" else data.shape[:3]))
