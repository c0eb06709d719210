"""Masks: a probability map thresholded, and a user's correction checked and made binary."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .errors import MaskError
from .validation import check_threshold


def threshold_mask(prob, threshold: float) -> np.ndarray:
    """``prob >= threshold`` as a bool array; ``threshold`` must be a number in [0, 1] (SettingError)."""
    return np.asarray(prob) >= check_threshold(threshold)


def as_binary_mask(mask, shape: Sequence[int] | None = None, label: int | None = None) -> np.ndarray:
    """A correction (bool, or a Labels layer's integers) -> bool ``(H, W)``. Raises MaskError.

    Integer masks may hold at most one non-zero value (0/1, 0/255, 0/k): a Labels layer with several
    structures is ambiguous, so pass ``label=`` to pick one (then every other value is background).
    Float masks must hold only 0 and 1. ``shape`` (the image's ``(H, W)``) is checked if given.
    """
    try:
        arr = np.asarray(mask)
    except Exception as err:
        raise MaskError(f"cannot turn the mask ({type(mask).__name__}) into an array: {err}") from err
    kind = arr.dtype.kind
    if kind not in "biuf":
        raise MaskError(
            f"the mask has dtype {arr.dtype}; pass a bool or integer label array (0 = background)"
        )
    if arr.ndim != 2:
        raise MaskError(
            f"the mask must be 2D (H, W); got shape {tuple(arr.shape)}; "
            "for a stack, pass the mask of one slice"
        )
    if shape is not None:
        want = tuple(int(s) for s in tuple(shape)[:2])
        if tuple(arr.shape) != want:
            raise MaskError(
                f"mask shape {tuple(arr.shape)} does not match the image shape {want}; "
                "draw the correction on a Labels layer of the same size as the image"
            )
    if label is not None:
        if isinstance(label, (bool, np.bool_)) or not isinstance(label, (int, np.integer, float)):
            raise MaskError(f"label must be a non-zero label value (int); got {label!r}")
        if label == 0 or (isinstance(label, float) and not math.isfinite(label)):
            raise MaskError(f"label={label!r} selects the background; pass the structure's label value")
    if kind == "b":
        if label is not None and label != 1:
            return np.zeros(arr.shape, dtype=bool)
        return arr.copy()
    if kind == "f":
        if np.isnan(arr).any():
            raise MaskError("the mask contains NaN; pass a bool or 0/1 mask")
        if label is not None:
            return arr == label
        bad = (arr != 0) & (arr != 1)
        if bad.any():
            examples = np.unique(arr[bad])[:5].tolist()
            raise MaskError(
                f"a float mask must hold only 0 and 1; found values such as {examples}; "
                "threshold it first (e.g. mask >= 0.5) or pass a bool mask"
            )
        return arr == 1
    # integers: one non-zero value means one structure, whatever its label number
    if label is not None:
        return arr == label
    nonzero = arr[arr != 0]
    if nonzero.size and (nonzero != nonzero[0]).any():
        values = np.unique(nonzero)
        shown = ", ".join(str(v) for v in values[:10].tolist())
        more = f", ... ({values.size} values)" if values.size > 10 else ""
        raise MaskError(
            f"mask has label values [{shown}{more}]; keep one structure per correction or pass "
            f"label= (e.g. label={values[0]}) to save one of them"
        )
    return arr != 0
