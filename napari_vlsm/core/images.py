"""Is this one 2D image? The checks every image passes before anything else (ImageError otherwise).

Accepted: ``(H, W)`` grey, ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA (alpha dropped), any real dtype
(bool, (u)int8..64, float16..64), NaN and +/-Inf included. Rules in docs/preprocessing.md.
"""

from __future__ import annotations

import numpy as np

from .errors import ImageError


def describe(array: np.ndarray) -> str:
    return f"shape {tuple(array.shape)} and dtype {array.dtype}"


def check_real_numeric(array: np.ndarray, what: str = "image") -> None:
    """Raise ImageError unless the dtype is bool, integer or real floating point."""
    kind = array.dtype.kind
    if kind == "c":
        raise ImageError(
            f"the {what} has complex dtype {array.dtype}; pass a real image, e.g. np.abs(image) "
            "for a magnitude image or image.real"
        )
    if kind not in "biuf":
        raise ImageError(
            f"the {what} has non-numeric dtype {array.dtype}; pass a numeric array "
            "(bool, integer or float), e.g. image.astype(np.float32)"
        )


def native_order(arr: np.ndarray) -> np.ndarray:
    """Big-endian data (some TIFF/FITS readers) -> native byte order, same values; torch and the
    lookup tables below need native order."""
    return arr if arr.dtype.isnative else arr.astype(arr.dtype.newbyteorder("="))


def as_2d_image(array) -> np.ndarray:
    """Validate one 2D image and return it as ``(H, W)`` or ``(H, W, 3)`` with its own dtype.

    RGBA loses its alpha channel (a view, no copy). Bool stays bool (it means 0/1); the dtype is
    kept so the correction store can save the image losslessly. Raises :class:`ImageError`.
    """
    try:
        arr = np.asarray(array)
    except Exception as err:  # ragged lists, objects numpy cannot convert
        raise ImageError(
            f"cannot turn the image ({type(array).__name__}) into an array: {err}; "
            "pass a numpy array of shape (H, W) or (H, W, 3|4)"
        ) from err
    check_real_numeric(arr)
    arr = native_order(arr)
    if arr.ndim not in (2, 3):
        raise ImageError(
            f"expected one 2D image (H, W) or (H, W, 3|4); got shape {tuple(arr.shape)}; "
            "for stacks/volumes segment slice by slice"
        )
    if arr.ndim == 3 and arr.shape[-1] not in (3, 4):
        hint = ""
        if arr.shape[0] in (3, 4):
            hint = "; channels seem to come first: use np.moveaxis(image, 0, -1)"
        elif arr.shape[-1] == 1:
            hint = "; for a single channel pass image[..., 0]"
        raise ImageError(
            f"expected one 2D image (H, W) or (H, W, 3|4); got shape {tuple(arr.shape)} whose "
            f"last axis has {arr.shape[-1]} channels, not 3 (RGB) or 4 (RGBA); "
            f"for stacks/volumes segment slice by slice{hint}"
        )
    if arr.size == 0:
        raise ImageError(
            f"the image is empty (shape {tuple(arr.shape)}); pass an image with at least one pixel"
        )
    if arr.ndim == 3 and arr.shape[-1] == 4:
        arr = arr[..., :3]
    return arr
