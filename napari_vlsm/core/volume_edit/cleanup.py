"""3D clean-up of one structure: keep the largest component, fill enclosed holes, drop islands.

Slice-by-slice prediction leaves speckle islands and holes; these are Slicer's *Islands* and
hole filling, in real millimetres (the voxel spacing), never in voxels. Components are 6-connected
(faces), scipy's and scikit-image's default. Every operation returns a new mask; a clean-up that
would leave nothing raises :class:`CleanupError`, so the caller keeps what the user had.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import VLSMError


class CleanupError(VLSMError):
    """The clean-up would remove the whole structure (or its options are impossible)."""


@dataclass(frozen=True)
class CleanupOptions:
    keep_largest: bool = False
    fill_holes: bool = False
    min_size_mm3: float = 0.0  # islands smaller than this are removed (0: off)

    @property
    def any(self) -> bool:
        return self.keep_largest or self.fill_holes or self.min_size_mm3 > 0

    def describe(self) -> str:
        parts = (["keep the largest part"] if self.keep_largest else []) + \
            (["fill holes"] if self.fill_holes else []) + \
            ([f"remove islands < {self.min_size_mm3:g} mm³"] if self.min_size_mm3 > 0 else [])
        return ", ".join(parts) or "nothing"


def voxel_mm3(spacing) -> float:
    spacing = tuple(float(s) for s in spacing)
    if len(spacing) != 3 or not all(np.isfinite(s) and s > 0 for s in spacing):
        raise CleanupError(f"the voxel spacing must be three positive sizes in mm; got {spacing}")
    return float(np.prod(spacing))


def clean_mask(mask: np.ndarray, options: CleanupOptions, spacing=(1.0, 1.0, 1.0)) -> np.ndarray:
    """``mask`` (3D bool) cleaned by ``options``: islands first, then the largest part, then holes."""
    from scipy import ndimage

    mask = np.asarray(mask, bool)
    if mask.ndim != 3:
        raise CleanupError(f"3D clean-up needs a volume; got shape {mask.shape}")
    if options.min_size_mm3 < 0:
        raise CleanupError(f"the smallest island size must be 0 or more mm³; got {options.min_size_mm3:g}")
    out = mask.copy()
    if options.min_size_mm3 > 0 or options.keep_largest:
        parts, n = ndimage.label(out)
        if n:
            sizes = np.bincount(parts.ravel())[1:] * voxel_mm3(spacing)  # mm³ per part
            keep = sizes >= options.min_size_mm3
            if options.keep_largest:
                keep &= sizes == sizes.max()
                keep[np.flatnonzero(keep)[1:]] = False  # a tie: the first of the largest
            out = np.isin(parts, np.flatnonzero(keep) + 1)
    if options.fill_holes:
        out = ndimage.binary_fill_holes(out)
    if mask.any() and not out.any():
        raise CleanupError(f"{options.describe()} would remove the whole structure "
                           "(every part is smaller than the limit); nothing was changed")
    return out


def clean_labels(labels: np.ndarray, options: CleanupOptions, spacing=(1.0, 1.0, 1.0), values=None,
                 spared: list | None = None) -> np.ndarray:
    """Every structure of a label map (or those in ``values``) cleaned on its own.

    A hole is filled only where it is background, so one structure never paints over another.
    A structure the clean-up would remove entirely raises :class:`CleanupError` naming its value,
    before anything is changed -- or, when a list ``spared`` is given, is left as it was and its
    value appended to ``spared`` (the CLI warns and goes on).
    """
    labels = np.asarray(labels)
    out = labels.copy()
    present = [int(v) for v in np.unique(labels) if v != 0]
    for value in present if values is None else [int(v) for v in values if int(v) in present]:
        try:
            cleaned = clean_mask(labels == value, options, spacing)
        except CleanupError as err:
            if spared is None:
                raise CleanupError(f"structure {value}: {err}") from None
            spared.append(value)
            continue
        out[(out == value) & ~cleaned] = 0
        out[cleaned & (out == 0)] = value
    return out
