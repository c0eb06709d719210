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

This module holds the model-facing steps (4-6: :func:`to_model_input`, :func:`logits_to_probability`);
steps 1-3 live in ``images`` (the checks), ``intensity`` (window and scaling) and ``masks``
(thresholds, corrections), and their public names are importable from here too. torch is imported
inside the functions that need it, so the correction store stays importable without loading torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .errors import ImageError

# The public names of the steps before and after the model, from the modules that hold them.
from .images import as_2d_image
from .intensity import DEFAULT_PERCENTILES, intensity_window, normalize_channels, normalize_intensity
from .masks import as_binary_mask, threshold_mask
from .validation import check_positive_int

# Upsampling logits to a 4000 x 4000 image makes 64 MB float32 per prompt (and as much again for
# the sigmoid): do it in chunks of prompts so the transient peak stays near this many bytes.
PROB_CHUNK_BYTES = 256 * 2**20

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

__all__ = [
    "as_2d_image",
    "intensity_window",
    "normalize_intensity",
    "to_model_input",
    "logits_to_probability",
    "probability_maps",
    "threshold_mask",
    "as_binary_mask",
    "DEFAULT_PERCENTILES",
]

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
    size = check_positive_int(size, "size (352 for CLIPSeg)", ValueError)
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
        norm = normalize_channels(image, windows[i])  # (H, W, C) float32, C in {1, 3}
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
    return check_positive_int(h, "out_hw's height", ValueError), check_positive_int(w, "out_hw's width", ValueError)


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


def probability_maps(logits: "torch.Tensor", out_hw) -> np.ndarray:
    """(P, s, s) logits of one image -> float32 (P, H, W), a few prompts at a time to bound the peak."""
    h, w = _check_out_hw(out_hw)
    out = np.empty((logits.shape[0], h, w), np.float32)
    step = max(1, PROB_CHUNK_BYTES // (h * w * 4 * 2))
    for i in range(0, logits.shape[0], step):
        out[i: i + step] = logits_to_probability(logits[i: i + step], (h, w))
    return out
