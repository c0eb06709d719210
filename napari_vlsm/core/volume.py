"""Stacks and volumes: which axes are planes, colour and stack, and one intensity window per volume.

Why one window per volume: a CT in Hounsfield units (or any 16-bit or float volume) normalised
slice by slice gets a different contrast on every slice (a slice with bone stretches differently
from one without), so a structure's appearance would jump between neighbours. The window is
computed over the whole volume -- on a strided subsample when the volume is large or lazy, so a
dask / memmap / zarr-like array is never read whole.

Axis rules follow napari's ``rgb`` guess (``ndim >= 3`` and a last axis of 3 or 4): with no flag,
``(H, W, 3|4)`` is one colour image, ``(Z, H, W)`` a stack, ``(Z, H, W, 3|4)`` a colour stack, and
every leading axis of a higher-dimensional array (``(T, Z, H, W)``) is iterated.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from . import validation
from .errors import ImageError
from .intensity import DEFAULT_PERCENTILES, intensity_window  # not via preprocess: that one reaches torch

# Up to this many values an in-memory volume gets the exact window; beyond, a strided subsample of
# about this size (percentiles of 4M values are within a fraction of a grey level of the exact ones).
EXACT_WINDOW_VALUES = 2**24
SAMPLE_VALUES = 2**22
SAMPLE_SLICES = 64


def guess_rgb(shape, rgb: bool | None = None) -> bool:
    """napari's rule: the last axis is colour when it has 3 or 4 entries and ndim >= 3."""
    shape = tuple(int(s) for s in shape)
    if rgb is None:
        return len(shape) >= 3 and shape[-1] in (3, 4)
    if rgb and (len(shape) < 3 or shape[-1] not in (3, 4)):
        raise ImageError(f"rgb=True needs a last axis of 3 or 4 colours; got shape {shape}")
    return bool(rgb)


def is_lazy(array) -> bool:
    """True for anything that is not an in-memory numpy array (dask, memmap, zarr, h5py ...)."""
    return not isinstance(array, np.ndarray) or isinstance(array, np.memmap)


@dataclass(frozen=True)
class StackPlanes:
    """The 2D planes of an nD array, read one at a time (lazy arrays stay lazy).

    ``index`` values are ints when there is one stack axis and tuples of ints otherwise.
    """

    array: object
    rgb: bool
    axis: int  # the stack axis when there is exactly one; 0 otherwise
    leading_shape: tuple[int, ...]

    @classmethod
    def of(cls, array, axis: int = 0, rgb: bool | None = None) -> StackPlanes:
        if not hasattr(array, "shape") or not hasattr(array, "__getitem__"):
            array = np.asarray(array)
        shape = tuple(int(s) for s in array.shape)
        colour = guess_rgb(shape, rgb)
        spatial = len(shape) - (1 if colour else 0)  # axes that are not colour
        if spatial < 3:
            raise ImageError(
                f"expected a stack (Z, H, W) or (Z, H, W, 3|4); got shape {shape}, which is one "
                "2D image: use predict() for it"
            )
        if spatial == 3:
            if not -3 <= axis < 3:
                raise ImageError(f"stack axis {axis} is out of range for shape {shape}; use 0, 1 or 2")
            axis = axis % 3
            leading = (shape[axis],)
        else:
            if axis != 0:
                raise ImageError(
                    f"a {len(shape)}D array iterates over all its leading axes; axis must be 0, got {axis}"
                )
            leading = shape[: spatial - 2]
        return cls(array=array, rgb=colour, axis=axis, leading_shape=leading)

    @property
    def count(self) -> int:
        return math.prod(self.leading_shape)

    @property
    def single_axis(self) -> bool:
        return len(self.leading_shape) == 1

    def indices(self) -> list:
        if self.single_axis:
            return list(range(self.leading_shape[0]))
        return list(itertools.product(*(range(n) for n in self.leading_shape)))

    def check_index(self, index):
        """Normalise a user index (negative ints allowed) or raise ImageError."""
        idx = (index,) if self.single_axis and not isinstance(index, tuple) else tuple(index)
        if len(idx) != len(self.leading_shape):
            raise ImageError(f"slice index {index!r} does not fit the stack's leading shape {self.leading_shape}")
        out = []
        for i, n in zip(idx, self.leading_shape):
            if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not -n <= i < n:
                raise ImageError(f"slice index {index!r} is out of range for leading shape {self.leading_shape}")
            out.append(int(i) % n)
        return out[0] if self.single_axis else tuple(out)

    def read(self, index) -> np.ndarray:
        """One plane as a numpy array ``(H, W)`` or ``(H, W, C)``: only that plane is read."""
        if self.single_axis:
            key = (slice(None),) * self.axis + (index,)
        else:
            key = tuple(index)
        return np.asarray(self.array[key])

    @property
    def plane_shape(self) -> tuple[int, int]:
        shape = tuple(int(s) for s in self.array.shape)
        spatial = shape[:-1] if self.rgb else shape
        if self.single_axis:
            spatial = spatial[: self.axis] + spatial[self.axis + 1:]
        return spatial[-2:]


def _sample(array, rgb: bool, max_values: int, max_slices: int) -> np.ndarray:
    """Evenly spaced slices along axis 0, each read with a spatial stride: about max_values values."""
    shape = tuple(int(s) for s in array.shape)
    picks = np.unique(np.linspace(0, shape[0] - 1, min(shape[0], max_slices)).round().astype(int))
    rest = shape[1:-1] if rgb else shape[1:]
    colours = shape[-1] if rgb else 1
    stride = 1
    while len(picks) * colours * math.prod(math.ceil(d / stride) for d in rest) > max_values:
        stride += 1
    key_rest = tuple(slice(None, None, stride) for _ in rest) + ((slice(None),) if rgb else ())
    return np.stack([np.asarray(array[(int(z),) + key_rest]) for z in picks])


def volume_window(stack, rgb: bool | None = None, max_values: int = SAMPLE_VALUES,
                  max_slices: int = SAMPLE_SLICES, percentiles=DEFAULT_PERCENTILES) -> tuple[float, float]:
    """``preprocess.intensity_window`` of a whole volume, read at most about ``max_values`` values.

    uint8 and bool get their fixed windows without reading anything; an in-memory volume up to
    ``EXACT_WINDOW_VALUES`` values gets the exact window; anything larger or lazy a strided sample.
    ``percentiles`` (low, high) picks the window (default: 0.5 and 99.5, the automatic window).
    """

    def window(values):
        return intensity_window(values, percentiles)

    if not hasattr(stack, "shape") or not hasattr(stack, "dtype"):
        stack = np.asarray(stack)
    dtype = np.dtype(stack.dtype)
    if dtype in (np.dtype(np.uint8), np.dtype(np.bool_)):
        return window(np.zeros(1, dtype))  # fixed windows: the data does not matter
    shape = tuple(int(s) for s in stack.shape)
    if math.prod(shape) == 0:
        raise ImageError(f"cannot compute an intensity window of an empty stack (shape {shape})")
    if not is_lazy(stack) and stack.size <= EXACT_WINDOW_VALUES:
        return window(stack)
    colour = guess_rgb(shape, rgb) if len(shape) >= 3 else False
    if len(shape) < (4 if colour else 3):  # one (possibly huge) 2D image: stride it directly
        step = max(1, math.ceil(math.sqrt(math.prod(shape) / max_values)))
        return window(np.asarray(stack[::step, ::step]))
    return window(_sample(stack, colour, max_values, max_slices))


class StackRequest(NamedTuple):
    """What ``predict_stack`` runs on, checked: the planes, their order, prompts, threshold, batch size
    and the one window (``None``: one per slice)."""

    planes: StackPlanes
    order: list
    prompts: list[str]
    threshold: float
    batch_size: int
    window: tuple[float, float] | None


def stack_request(stack, prompts, threshold, batch_size, window, axis: int = 0, indices=None,
                  rgb: bool | None = None) -> StackRequest:
    """``predict_stack``'s arguments checked now (not at the first ``next()``) and resolved.

    ``window``: None -> one window for the whole volume (:func:`volume_window`), ``"slice"`` -> one
    per slice, or ``(lo, hi)``. The engine and the server's client (``client.remote_segmenter``) both start
    here, so a stack is windowed and ordered the same way locally and over the wire.
    """
    prompts = list(validation.clean_prompts(prompts))
    threshold = validation.check_threshold(threshold)
    batch_size = validation.check_positive_int(batch_size, "batch_size")
    planes = StackPlanes.of(stack, axis=axis, rgb=rgb)
    order = planes.indices() if indices is None else [planes.check_index(i) for i in indices]
    if isinstance(window, str) and window == "slice":
        window = None
    elif window is None:
        window = volume_window(planes.array, rgb=planes.rgb)
    else:
        window = validation.check_window(window)
    return StackRequest(planes, order, prompts, threshold, int(batch_size), window)
