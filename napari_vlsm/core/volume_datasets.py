"""Volume pairs in a dataset folder: ``images/case1.nii.gz`` with ``masks/case1.nii.gz``.

A pair is one :class:`VolumeSample` (the unit the train/validation split keeps together, so the
slices of one patient never sit on both sides). Training uses its axial slices in the canonical
orientation (:meth:`VolumeSample.slices`): every slice with foreground, plus as many evenly spaced
empty ones (at most), so the adapter also learns where the structure is absent. Each slice carries
the window of its whole volume, the same one ``predict`` uses. Evaluation scores the whole volume.

A mask volume must be on the scan's voxel grid; its orientation may differ (an LAS label map of an
LPS DICOM series is fine): both are compared in the canonical orientation. Non-zero is foreground.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .medical.errors import GridMismatchError


@dataclass(eq=False)
class VolumeSample:
    name: str
    image_path: Path
    mask_path: Path
    prompts: tuple[str, ...]
    window_choice: object = "auto"  # a preset name, "lo,hi" or (lo, hi): see medical/windows.py
    _cache: dict = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    is_volume = True

    def _load(self) -> dict:
        with self._lock:
            if not self._cache:
                from .medical import read_volume
                from .medical.windows import window_for

                scan, labels = read_volume(self.image_path), read_volume(self.mask_path)
                same = (scan.shape == labels.shape and np.allclose(scan.geometry.canonical_affine,
                                                                   labels.geometry.canonical_affine, atol=1e-4))
                if not same:
                    raise GridMismatchError(
                        f"{self.mask_path} is not on the voxel grid of {self.image_path} (shape {labels.shape} vs "
                        f"{scan.shape}, or another position/spacing); resample the mask onto the scan")
                self._cache.update(scan=scan, mask=np.asarray(labels.array) != 0,
                                   window=window_for(self.window_choice, scan.array, scan.modality, rgb=False))
            return self._cache

    @property
    def volume(self):
        return self._load()["scan"]

    @property
    def image(self):
        """The scan in canonical ``(z, y, x)`` orientation."""
        return self._load()["scan"].array

    @property
    def mask(self) -> np.ndarray:
        return self._load()["mask"]

    @property
    def window(self) -> tuple[float, float]:
        return self._load()["window"]

    def slices(self, empty_ratio: float = 1.0) -> list[VolumeSlice]:
        """Training slices: all with foreground, plus up to ``empty_ratio`` times as many empty ones."""
        mask = self.mask
        filled = [int(z) for z in np.flatnonzero(mask.reshape(mask.shape[0], -1).any(axis=1))]
        empty = sorted(set(range(mask.shape[0])) - set(filled))
        keep = min(len(empty), round(empty_ratio * max(len(filled), 1)))
        picks = [empty[round(i)] for i in np.linspace(0, len(empty) - 1, keep)] if keep else []
        return [VolumeSlice(self, z) for z in sorted(set(filled) | set(picks))]


@dataclass(frozen=True, eq=False)
class VolumeSlice:
    """One axial slice of a :class:`VolumeSample`, shaped like a training sample."""

    volume: VolumeSample
    slice_index: int

    @property
    def name(self) -> str:
        return f"{self.volume.name}#z{self.slice_index:03d}"

    @property
    def image(self) -> np.ndarray:
        return np.asarray(self.volume.image[self.slice_index])

    @property
    def mask(self) -> np.ndarray:
        return self.volume.mask[self.slice_index]

    @property
    def prompts(self) -> tuple[str, ...]:
        return self.volume.prompts

    @property
    def window(self) -> tuple[float, float]:
        return self.volume.window

    @property
    def source(self) -> str:
        return str(self.volume.image_path)


def expand_slices(samples) -> list:
    """Samples for the trainer: each volume pair becomes its training slices; 2D samples stay."""
    out = []
    for sample in samples:
        out.extend(sample.slices() if getattr(sample, "is_volume", False) else [sample])
    return out
