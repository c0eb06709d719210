"""Which slices of a mask layer the user corrected (no Qt): the rule Segment all, Fill between
slices and the dock's list of corrected slices share.

A slice is *corrected* when it differs from the proposal kept for it (the user edited it), or
when it has no proposal and holds the structure (the user drew it from scratch; not counted when
the layer was segmented along another axis). A slice holding
an untouched *Fill between* proposal is *filled*. Per structure: only that structure's pixels are
compared, so correcting the liver on a slice does not make it a spleen correction.
"""

from __future__ import annotations

import numpy as np

from . import layers as L


def _differs(current: np.ndarray, proposed: np.ndarray | None, value: int | None) -> bool:
    mine = current != 0 if value is None else current == value
    if proposed is None:
        return bool(mine.any())
    theirs = proposed != 0 if value is None else proposed == value
    return not np.array_equal(current, proposed) if value is None else not np.array_equal(mine, theirs)


def corrected_planes(labels, book, axes: tuple[int, int], value: int | None = None) -> list:
    """Planes along ``axes`` the user corrected (for structure ``value``, or any), in slice order.

    A plane without a proposal counts as drawn from scratch only when the layer holds no
    proposals along another axis (else its content came from slices across it)."""
    axes = tuple(axes)
    scratch = not any(p.axes != axes for p in book.planes(labels))
    out = []
    for plane in L.all_planes(labels, axes):
        proposed = _values(book, labels, plane)
        if (proposed is not None or scratch) and _differs(L.plane_values(labels, plane), proposed, value):
            out.append(plane)
    return out


def filled_planes(labels, book, axes: tuple[int, int]) -> list:
    """Planes along ``axes`` that still hold exactly what Fill between slices wrote."""
    out = []
    for plane, entry in book.planes(labels).items():
        if plane.axes == tuple(axes) and entry.origin == "fill" and \
                np.array_equal(L.plane_values(labels, plane), entry.values):
            out.append(plane)
    return sorted(out, key=lambda p: p.index)


def kept_planes(labels, book, axes: tuple[int, int]) -> set:
    """What Segment all leaves alone by default: corrected slices and filled ones."""
    return set(corrected_planes(labels, book, axes)) | set(filled_planes(labels, book, axes))


def corrected_elsewhere(labels, book, axes: tuple[int, int], value: int | None = None) -> int:
    """Corrected slices on another axis (the user corrected a coronal view, now looks axially)."""
    count = 0
    for plane, entry in book.planes(labels).items():
        if plane.axes != tuple(axes) and _differs(L.plane_values(labels, plane), entry.values, value):
            count += 1
    return count


def _values(book, labels, plane):
    entry = book.get(labels, plane)
    return None if entry is None else entry.values


def describe(planes, limit: int = 12) -> str:
    """'10, 20, 31' (and '… +n' beyond ``limit``); '' when there are none."""
    names = [p.label() for p in planes]
    more = f", … +{len(names) - limit}" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more
