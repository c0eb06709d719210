"""Any 2D image napari can show -> CLIPSeg input; logits -> probability at image size.

How intensities are normalised (this text is copied into docs/preprocessing.md)
-----------------------------------------------------------------------------
1. **Accepted images**: one 2D image, ``(H, W)`` grey, ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA (the
   alpha channel is dropped). Any real dtype: bool, (u)int8..64, float16/32/64, with negative
   values, NaN and +/-Inf allowed. Stacks and volumes are segmented slice by slice.
2. **Intensity window** ``(lo, hi)`` (:func:`intensity_window`):

   * ``uint8``: fixed ``(0, 255)``. Photographs (endoscopy, dermoscopy, H&E) keep their meaning and
     the result equals the Hugging Face CLIPSeg processor's ``rescale_factor = 1/255``.
   * ``bool``: ``(0, 1)``.
   * everything else (CT in Hounsfield units, 16-bit microscopy, float MRI): the 0.5th and 99.5th
     percentiles of the *finite* values, so a few hot pixels or a NaN background do not squash the
     contrast. One window covers all channels of an RGB image (colours keep their balance).
   * a constant image falls back to ``(min, max)``, then to ``(lo, lo + 1)``: nothing divides by
     zero. An image with no finite value gets ``(0, 1)``.

   For a volume, compute ONE window over the whole volume and pass it to every slice
   (``window=``), so neighbouring slices are normalised identically.
3. **Scaling**: ``(x - lo) / (hi - lo)`` clipped to ``[0, 1]``; NaN and -Inf become 0, +Inf becomes
   1. Grey images are replicated to three channels.
4. **Resizing** to the model's square input (352 for CLIPSeg): bilinear with antialiasing, aspect
   ratio not kept, as the CLIPSeg paper and the Hugging Face processor do. It runs in torch on the
   normalised float32 image (one channel for grey images), so a 4000 x 4000 slide costs a few
   hundred milliseconds, not seconds.
5. **Standardisation**: ``(x - mean) / std`` per channel with the model's CLIP mean and std.
6. **Back to the image**: the model's logits (352 x 352) are upsampled bilinearly to ``(H, W)``
   *before* the sigmoid (interpolating logits keeps boundaries sharper than interpolating
   probabilities), in float32 even when the model ran in bfloat16/float16.

torch is imported inside the functions that need it, so the correction store (which validates
images and masks with this module) stays importable without loading torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from .errors import ImageError, MaskError
from .validation import check_threshold, check_window

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

__all__ = [
    "as_2d_image",
    "intensity_window",
    "normalize_intensity",
    "to_model_input",
    "logits_to_probability",
    "threshold_mask",
    "as_binary_mask",
]

DEFAULT_PERCENTILES = (0.5, 99.5)


def _describe(array: np.ndarray) -> str:
    return f"shape {tuple(array.shape)} and dtype {array.dtype}"


def _check_real_numeric(array: np.ndarray, what: str = "image") -> None:
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


def _native(arr: np.ndarray) -> np.ndarray:
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
    _check_real_numeric(arr)
    arr = _native(arr)
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


def _percentiles_from_histogram(values: np.ndarray, percentiles) -> tuple[float, float]:
    """np.percentile's default (linear) method for 8/16-bit integers, from a histogram: same
    numbers, about 4x faster on a 4000 x 4000 slide than sorting."""
    table = _table_values(values.dtype)
    hist = np.bincount(_unsigned_view(values).ravel(), minlength=table.size)
    order = np.argsort(table, kind="stable")  # two's-complement order -> numeric order
    sorted_values, cum = table[order], np.cumsum(hist[order])
    n = int(cum[-1])

    def kth(k: int) -> float:  # the k-th smallest value (0-based)
        return float(sorted_values[np.searchsorted(cum, k, side="right")])

    out = []
    for p in percentiles:
        pos = p / 100.0 * (n - 1)
        below = math.floor(pos)
        frac = pos - below
        v0 = kth(below)
        v1 = kth(min(below + 1, n - 1))
        out.append(v0 + frac * (v1 - v0))
    return out[0], out[1]


def intensity_window(array, percentiles: tuple[float, float] = DEFAULT_PERCENTILES) -> tuple[float, float]:
    """Robust intensity window ``(lo, hi)``, ``lo < hi``, over the finite values of ``array``.

    Works on any number of dimensions, so a volume can get ONE window shared by its slices.
    See the module docstring for the rules (uint8 fixed, bool (0, 1), percentiles otherwise).
    """
    arr = np.asarray(array)
    _check_real_numeric(arr)
    arr = _native(arr)
    if arr.size == 0:
        raise ImageError(f"cannot compute an intensity window of an empty array ({_describe(arr)})")
    p_lo, p_hi = (float(p) for p in percentiles)
    if not (0.0 <= p_lo < p_hi <= 100.0):
        raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100; got {percentiles!r}")
    if arr.dtype == np.bool_:
        return (0.0, 1.0)
    if arr.dtype == np.uint8:
        return (0.0, 255.0)

    if arr.dtype.kind == "f":
        finite = np.isfinite(arr)
        # Only pay for a masked copy when something is actually non-finite.
        values = arr if finite.all() else arr[finite]
        if values.size == 0:
            return (0.0, 1.0)
        if values.dtype == np.float16:
            values = values.astype(np.float32)
    else:
        values = arr
    if values.dtype.kind in "iu" and values.dtype.itemsize <= 2:
        lo, hi = _percentiles_from_histogram(values, (p_lo, p_hi))
    else:
        with np.errstate(over="ignore", invalid="ignore"):  # overflow is handled just below
            lo, hi = (float(v) for v in np.percentile(values, [p_lo, p_hi]))
    # Percentile interpolation can overflow on values near the float limits; min/max cannot.
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        lo, hi = float(values.min()), float(values.max())
    if not lo < hi:
        # Constant image: any positive width works; values equal to lo map to 0.
        hi = lo + 1.0
        if not lo < hi:  # |lo| so large that lo + 1 == lo in float64
            hi = lo + abs(lo) * 1e-6
        if not math.isfinite(hi):  # lo is the largest float64: widen downwards instead
            lo, hi = lo - abs(lo) * 1e-6, lo
    return (lo, hi)


def _unsigned_view(img: np.ndarray) -> np.ndarray:
    """bool / (u)int8 / (u)int16 as unsigned integers of the same width (a view, no copy), used as
    indices into a lookup table; signed values land in two's-complement order."""
    if img.dtype == np.bool_:
        return img.view(np.uint8)
    return img.view(np.dtype(f"u{img.dtype.itemsize}"))


def _table_values(dtype: np.dtype) -> np.ndarray:
    """Every value of a <= 16-bit integer dtype, in the order of :func:`_unsigned_view`."""
    if dtype == np.bool_:
        return np.array([0.0, 1.0])
    n = 1 << (8 * dtype.itemsize)
    return np.arange(n, dtype=np.dtype(f"u{dtype.itemsize}")).view(dtype).astype(np.float64)


def _scale_to_unit(img: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``clip((img - lo) / (hi - lo), 0, 1)`` as float32; NaN, -inf -> 0, +inf -> 1."""
    if img.dtype.kind in "biu" and img.dtype.itemsize <= 2:
        # 8/16-bit data (photographs, microscopy, CT): one lookup per pixel instead of five array
        # passes, and the table is computed in float64.
        lut = np.clip((_table_values(img.dtype) - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)
        return lut[_unsigned_view(img)]
    # float32 keeps 24 bits: enough for float16/float32 data, not for 32/64-bit integers or float64
    # far from zero with a narrow window, so those subtract in float64 and then drop to float32.
    work = np.float32 if img.dtype in (np.float16, np.float32) else np.float64
    out = img.astype(work, copy=True)
    span = hi - lo
    with np.errstate(over="ignore", invalid="ignore"):
        if math.isfinite(span):
            out -= work(lo)
            out *= work(1.0 / span)
        else:  # a float64 window wider than the float64 range: halve to avoid inf * 0
            out *= work(0.5)
            out -= work(lo * 0.5)
            out *= work(1.0 / (hi * 0.5 - lo * 0.5))
        if img.dtype.kind == "f":
            # NaN (and NaN born of inf * 0) -> 0, -inf -> 0, +inf -> 1
            np.nan_to_num(out, copy=False, nan=0.0, posinf=1.0, neginf=0.0)
        np.clip(out, 0.0, 1.0, out=out)
    return out.astype(np.float32, copy=False)


def _normalize_channels(image, window=None) -> np.ndarray:
    """Scale to float32 ``(H, W, C)`` in [0, 1] with C = 1 (grey) or 3 (RGB): no replication yet,
    so that callers that resize can do it on one channel and replicate afterwards (3x cheaper)."""
    img = as_2d_image(image)
    lo, hi = check_window(window) if window is not None else intensity_window(img)
    out = _scale_to_unit(img, lo, hi)
    if out.ndim == 2:
        out = out[..., None]
    return out


def normalize_intensity(image, window=None) -> np.ndarray:
    """Return float32 ``(H, W, 3)`` in [0, 1]: clip to the window, scale, grey -> 3 channels."""
    out = _normalize_channels(image, window)
    if out.shape[-1] == 1:
        out = np.repeat(out, 3, axis=-1)
    return out


def to_model_input(images, size: int, mean, std, window=None) -> "torch.Tensor":
    """One image or a list of images -> float32 tensor ``(B, 3, size, size)`` for CLIPSeg.

    ``window``: None (each image gets its own :func:`intensity_window`), one ``(lo, hi)`` used for
    every image (e.g. one window per volume), or a list with one ``(lo, hi)`` or None per image
    (e.g. a training batch of stored corrections, each with the window it was predicted with).
    """
    import torch
    import torch.nn.functional as F

    if isinstance(images, (list, tuple)):
        batch = list(images)
        if not batch:
            raise ImageError("no images given; pass one image or a non-empty list of images")
    else:
        batch = [images]
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size <= 0:
        raise ValueError(f"size must be a positive int (352 for CLIPSeg); got {size!r}")
    size = int(size)
    mean_t = torch.as_tensor(np.asarray(mean, dtype=np.float32).reshape(-1))
    std_t = torch.as_tensor(np.asarray(std, dtype=np.float32).reshape(-1))
    if mean_t.numel() != 3 or std_t.numel() != 3 or not bool((std_t > 0).all()):
        raise ValueError(f"mean and std must be 3 numbers with std > 0; got {mean!r}, {std!r}")

    per_image = (
        isinstance(window, (list, tuple))
        and len(window) == len(batch)
        and all(w is None or np.ndim(w) == 1 for w in window)  # a pair of numbers has ndim 0 items
    )
    windows = list(window) if per_image else [window] * len(batch)

    out = torch.empty((len(batch), 3, size, size), dtype=torch.float32)
    for i, image in enumerate(batch):
        norm = _normalize_channels(image, windows[i])  # (H, W, C) float32, C in {1, 3}
        # (1, C, H, W) as a view: RGB is channels-last in memory, which interpolate reads directly
        x = torch.from_numpy(norm).permute(2, 0, 1).unsqueeze(0)
        # Antialiased bilinear downscaling in torch: fast on large slides, and it matches what
        # the paper and the HF processor do (aspect ratio not kept).
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        out[i] = x[0].expand(3, size, size)
    out -= mean_t.view(1, 3, 1, 1)
    out /= std_t.view(1, 3, 1, 1)
    return out


def _check_out_hw(out_hw) -> tuple[int, int]:
    try:
        h, w = out_hw
    except (TypeError, ValueError) as err:
        raise ValueError(f"out_hw must be (height, width); got {out_hw!r}") from err
    if any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0 for v in (h, w)):
        raise ValueError(f"out_hw must be two positive ints; got {out_hw!r}")
    return int(h), int(w)


def logits_to_probability(logits: "torch.Tensor", out_hw) -> np.ndarray:
    """Logits ``(B, s, s)`` -> probability float32 ``(B, H, W)``: bilinear on logits, then sigmoid."""
    import torch
    import torch.nn.functional as F

    if not isinstance(logits, torch.Tensor):
        logits = torch.as_tensor(np.asarray(logits))
    if logits.ndim != 3:
        raise ValueError(f"logits must have shape (B, s, s); got {tuple(logits.shape)}")
    h, w = _check_out_hw(out_hw)
    with torch.no_grad():
        x = logits.detach().to(torch.float32).unsqueeze(1)  # (B, 1, s, s), fp32 even from bf16
        if tuple(x.shape[-2:]) != (h, w):
            x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
        prob = torch.sigmoid(x[:, 0])
    return prob.cpu().numpy().astype(np.float32, copy=False)


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
