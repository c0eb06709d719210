"""What the dock's Volume section does to a mask layer (GUI thread, no widgets): fill between
corrected slices, 3D clean-up and statistics, each edit ONE undo step.

The core does the work (``core.volume_edit``); here are the layer's rules: which slices are
corrected (``slice_status``), what counts as a proposal afterwards, and the clinician-readable
refusals (each message's first part is short: it is the notification's first line).
"""

from __future__ import annotations

import numpy as np

from napari_vlsm.core.errors import VLSMError

from . import layers as L
from . import slice_status
from .outputs import model_write


class VolumeEditError(VLSMError):
    """A volume edit the layer cannot take (too few corrected slices, a 2D layer, ...)."""


def stack_axis(labels, axes: tuple[int, int]) -> int:
    if labels.ndim != 3:
        raise VolumeEditError(f"Needs a 3D mask layer; '{labels.name}' is {labels.ndim}D")
    return next(a for a in range(3) if a not in axes)


def spacing_of(layer) -> tuple | None:
    """The voxel size in mm when known: a scan's geometry, or a scale someone set (not all 1)."""
    from .reader import volume_metadata

    meta = volume_metadata(layer)
    if meta is not None:
        return tuple(float(s) for s in meta["geometry"]["spacing_zyx"])
    scale = tuple(float(s) for s in layer.scale)
    return None if all(abs(s - 1.0) < 1e-9 for s in scale) else scale


def structure_name(labels, value: int) -> str:
    return next((s.name for s in L.structures_of(labels) if s.value == value), str(value))


def fill_between(session, labels, axes: tuple[int, int], value: int, threshold: float) -> list:
    """Fill structure ``value`` between its corrected slices along the viewed plane ``axes``.

    Corrected slices (of any structure) are never written; the filled slices become proposals of
    origin "fill". Returns the planes written (empty: nothing to change).
    """
    from napari_vlsm.core.volume_edit.fill_between import fill_between as fill

    axis = stack_axis(labels, axes)
    book, name = session.proposals, structure_name(labels, value)
    keys = slice_status.corrected_planes(labels, book, axes, value)
    if len(keys) < 2:
        elsewhere = slice_status.corrected_elsewhere(labels, book, axes, value)
        if elsewhere:
            raise VolumeEditError(f"Corrections are on another axis; {elsewhere} corrected slice(s) of '{name}' "
                                  "lie across this view: show the axis they were drawn on, then fill")
        raise VolumeEditError(f"Correct 2 slices first; fill between needs at least two corrected slices of "
                              f"'{name}' along this view ({len(keys)} so far)")
    index = [p.index[0] for p in keys]
    data = np.asarray(labels.data)
    filled = fill(data == value, index, axis=axis, spacing=spacing_of(labels))
    protected = {p.index for p in slice_status.corrected_planes(labels, book, axes)}
    count = len(L.structures_of(labels))
    writes = []
    for z in range(index[0] + 1, index[-1]):
        plane = L.Plane(tuple(axes), (z,))
        if plane.index in protected:
            continue  # a correction (of this or another structure) is never changed
        current = L.plane_values(labels, plane)
        new = np.where(current == value, 0, current)
        mine = np.take(filled, z, axis=axis)
        new[mine & (new == 0)] = value  # never over another structure
        writes.append((plane, new.astype(current.dtype)))
    with model_write(labels):  # ONE undo step, and not a user's edit
        for plane, new in writes:
            L.write_plane(labels, plane, new)
    for plane, new in writes:
        book.put_values(labels, plane, new, threshold, count, origin="fill")
    return [p for p, _ in writes]


def clean_up(session, labels, value: int, options) -> int:
    """3D clean-up of structure ``value`` (ONE undo step); returns voxels changed.

    Untouched proposals stay proposals (their kept values follow the clean-up); corrected slices
    stay corrections. A clean-up that would remove the structure raises, changing nothing.
    """
    from napari_vlsm.core.volume_edit.cleanup import CleanupError, clean_labels

    if labels.ndim != 3:
        raise VolumeEditError(f"Needs a 3D mask layer; '{labels.name}' is {labels.ndim}D")
    if not options.any:
        raise VolumeEditError("Pick a clean-up first; tick keep largest, fill holes or a minimum island size")
    data = np.asarray(labels.data)
    if not (data == value).any():
        raise VolumeEditError(f"Nothing to clean up; '{structure_name(labels, value)}' is empty")
    spacing = spacing_of(labels) or (1.0, 1.0, 1.0)
    try:
        new = clean_labels(data, options, spacing, values=[value])
    except CleanupError:
        raise VolumeEditError(f"Clean-up would remove it all; {options.describe()} would leave nothing of "
                              f"'{structure_name(labels, value)}': nothing was changed") from None
    changed = np.nonzero(new != data)
    if not changed[0].size:
        return 0
    book = session.proposals
    untouched = [(p, e) for p, e in book.planes(labels).items()
                 if np.array_equal(L.plane_values(labels, p), e.values)]
    with model_write(labels):
        if changed[0].size <= L.UNDO_PIXEL_BUDGET:
            labels.data_setitem(changed, new[changed])
        else:
            labels.data[...] = new
            labels.refresh()
    count = len(L.structures_of(labels))
    for plane, entry in untouched:
        values = L.plane_values(labels, plane)
        if not np.array_equal(values, entry.values):
            book.put_values(labels, plane, values, entry.threshold, count, origin=entry.origin)
    return int(changed[0].size)


def statistics(labels, image=None) -> tuple[list[dict], bool]:
    """Per-structure rows of ``labels`` (``core.volume_edit.statistics``), and whether sizes are in
    mm (False: no spacing known, sizes in voxels/pixels)."""
    from napari_vlsm.core.volume_edit.statistics import structure_statistics

    data = np.asarray(labels.data)
    pixels = None
    if image is not None and not getattr(image, "rgb", False) and tuple(image.data.shape) == data.shape:
        pixels = np.asarray(image.data)
    spacing = spacing_of(labels) or (spacing_of(image) if image is not None else None)
    names = {s.value: s.name for s in L.structures_of(labels)}
    return structure_statistics(data, spacing, image=pixels, names=names), spacing is not None
