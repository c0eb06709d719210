"""Planes: one 2D slice of an image layer, and reading it (no layer writes here).

A :class:`Plane` names one 2D slice of an image layer: the two layer axes it spans (the axes the
viewer displays) and the position on every other axis. Labels layers made by napari-vlsm have the
image's spatial shape, so the same Plane addresses the mask.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from napari_vlsm.core.errors import ImageError

from . import texts


@dataclass(frozen=True)
class Plane:
    """One 2D slice: ``axes`` (the two spatial layer axes it spans, ascending) and ``index`` (the
    position on each other spatial axis, in axis order; empty for a 2D image)."""

    axes: tuple[int, int]
    index: tuple[int, ...] = ()

    def key(self, ndim: int) -> tuple:
        """Indexing tuple over the spatial axes (a colour axis, if any, is kept whole)."""
        rest = iter(self.index)
        return tuple(slice(None) if a in self.axes else next(rest) for a in range(ndim))

    @property
    def slice_index(self) -> tuple[int, ...] | None:
        return self.index or None

    def label(self) -> str:
        return ",".join(str(i) for i in self.index) if self.index else "2d"

    def full_indices(self, ndim: int, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, ...]:
        """Fancy indices over all axes for in-plane pixel coordinates (rows, cols)."""
        rest = iter(self.index)
        out = []
        for a in range(ndim):
            if a == self.axes[0]:
                out.append(rows)
            elif a == self.axes[1]:
                out.append(cols)
            else:
                out.append(np.full(rows.shape, next(rest), dtype=rows.dtype))
        return tuple(out)


# ---------------------------------------------------------------------------- image side
def check_image(layer) -> None:
    if layer is None:
        raise ImageError(texts.NO_IMAGE)
    if getattr(layer, "multiscale", False):
        raise ImageError(texts.MULTISCALE.format(name=layer.name))
    if layer.ndim < 2:
        raise ImageError(f"image '{layer.name}' has {layer.ndim} dimension(s); a 2D image or a stack is needed")


def spatial_shape(layer) -> tuple[int, ...]:
    """The image's shape without its colour axis (= the shape of its Labels layers)."""
    return tuple(int(s) for s in layer.data.shape[: layer.ndim])


def plane_axes(layer, dims) -> tuple[int, int]:
    """The layer axes the viewer shows; the last two when it shows 3D (or something odd)."""
    offset = dims.ndim - layer.ndim
    axes = sorted(a - offset for a in dims.displayed if a - offset >= 0)
    if dims.ndisplay != 2 or len(axes) != 2:
        return (layer.ndim - 2, layer.ndim - 1)
    return (axes[0], axes[1])


def current_plane(layer, dims) -> Plane:
    """The slice of ``layer`` the viewer is on now."""
    axes = plane_axes(layer, dims)
    pos = layer.world_to_data(dims.point)
    shape = spatial_shape(layer)
    index = tuple(
        int(np.clip(np.round(pos[a]), 0, shape[a] - 1)) for a in range(layer.ndim) if a not in axes
    )
    return Plane(axes, index)


def all_planes(layer, axes: tuple[int, int]) -> list[Plane]:
    shape = spatial_shape(layer)
    others = [range(shape[a]) for a in range(layer.ndim) if a not in axes]
    return [Plane(axes, tuple(idx)) for idx in itertools.product(*others)]


def read_plane(data, ndim: int, plane: Plane) -> np.ndarray:
    """One plane of image (or labels) data as a numpy array (only that plane is read)."""
    return np.asarray(data[plane.key(ndim)])


SOURCE_KEY = "napari_vlsm_source"  # metadata: the file a layer's pixels come from, when napari's source cannot say


def source_id(layer, axes: tuple[int, int]) -> str:
    """Where a slice comes from, for the store (same source + slice -> a correction is replaced).
    The Series section shows each item in a layer whose pixels it replaces at Next: the file they
    come from is in the layer's metadata (napari's ``layer.source`` cannot be changed)."""
    path = (getattr(layer, "metadata", None) or {}).get(SOURCE_KEY) or getattr(getattr(layer, "source", None), "path", None)
    base = str(path) if path else f"layer:{layer.name}"
    if layer.ndim > 2 and tuple(axes) != (layer.ndim - 2, layer.ndim - 1):
        base += f"#axes={axes[0]},{axes[1]}"  # a resliced view is another set of slices
    return base
