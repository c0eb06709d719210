"""Voxel grids: the file's own grid, the one canonical orientation, and the exact way between them.

Canonical orientation (every volume is shown and given to the model this way): array axes
``(z, y, x)`` with x running to the patient's Left, y to Posterior, z to Superior (LPS, what DICOM
and SimpleITK call world coordinates). An axial slice on screen therefore has the patient's
anterior side at the top and the patient's LEFT on the screen's RIGHT: the radiological display,
as if looking up from the patient's feet. Slice 0 is the most inferior one.

The file's grid is kept as the NIfTI affine of the file (nibabel's convention: voxel ``(i, j, k)``
-> RAS millimetres), or for DICOM / NRRD / MHA the affine of the NIfTI that SimpleITK writes of
it. Between the two lies only a permutation of axes and flips (nibabel's orientation transform),
so going back to the file's grid is exact, oblique scans included: a mask written on the original
grid has the input's shape and affine, and every voxel sits where the scan's voxel sits.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass

import numpy as np

CANONICAL_CODES = ("L", "P", "S")  # where canonical x, y, z point (nibabel axis codes)
LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0])
TILT_TOLERANCE_DEG = 0.01  # below this a direction counts as lying on a patient axis
SHEAR_TOLERANCE = 1e-4  # |cos| between two axes above this: the grid is not orthogonal


def _apply_ornt(array, ornt):
    """nibabel's ``apply_orientation`` for the first three axes, keeping views (a memmap stays one)."""
    for axis, flip in enumerate(ornt[:, 1]):
        if flip == -1:
            array = np.flip(array, axis=axis)
    order = list(np.argsort(ornt[:, 0])) + list(range(3, array.ndim))
    return array.transpose(order)


@dataclass(frozen=True, eq=False)
class Geometry:
    """A volume's original grid and its canonical view of it."""

    original_shape: tuple[int, int, int]  # (i, j, k): the file's voxel order, as nibabel reads it
    original_affine: np.ndarray  # 4x4, voxel (i, j, k) -> RAS mm
    header: bytes | None = None  # the NIfTI-1 header of a NIfTI source (348 bytes), else None
    file_shape: tuple[int, ...] | None = None  # the file's array shape when not 3D: (i, j) or (i, j, k, 1)

    def __post_init__(self):
        import nibabel.orientations as nio

        affine = np.asarray(self.original_affine, dtype=np.float64)
        object.__setattr__(self, "original_affine", affine)
        object.__setattr__(self, "original_shape", tuple(int(n) for n in self.original_shape))
        if self.file_shape is not None:
            object.__setattr__(self, "file_shape", tuple(int(n) for n in self.file_shape))
        start = nio.io_orientation(affine)
        end = nio.axcodes2ornt(CANONICAL_CODES)
        forward = nio.ornt_transform(start, end)
        object.__setattr__(self, "_forward", forward)
        object.__setattr__(self, "_backward", nio.ornt_transform(end, start))
        canonical = affine @ nio.inv_ornt_aff(forward, self.original_shape)
        object.__setattr__(self, "canonical_affine", canonical)

    # ------------------------------------------------------------------ canonical grid
    @property
    def shape(self) -> tuple[int, int, int]:
        """Canonical array shape ``(z, y, x)``."""
        order = np.argsort(self._forward[:, 0])
        return tuple(self.original_shape[int(a)] for a in order)[::-1]

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along canonical ``(z, y, x)``: napari's ``scale``."""
        norms = np.linalg.norm(self.canonical_affine[:3, :3], axis=0)
        return tuple(float(v) for v in norms[::-1])

    @property
    def origin(self) -> tuple[float, float, float]:
        """LPS position (mm) of voxel (0, 0, 0), listed ``(z, y, x)``: napari's ``translate``."""
        lps = LPS_FROM_RAS @ self.canonical_affine[:3, 3]
        return tuple(float(v) for v in lps[::-1])

    @property
    def direction(self) -> np.ndarray:
        """3x3 LPS unit vectors of canonical x, y, z (columns); the identity unless oblique."""
        return LPS_FROM_RAS @ (self.canonical_affine[:3, :3] / np.linalg.norm(self.canonical_affine[:3, :3], axis=0))

    @property
    def tilt_degrees(self) -> float:
        """Largest angle between a canonical axis and the patient axis it is shown along."""
        cosines = np.abs(self.direction).max(axis=0).clip(-1.0, 1.0)
        return float(np.degrees(np.arccos(cosines)).max())

    @property
    def sheared(self) -> bool:
        gram = self.direction.T @ self.direction
        return bool(np.abs(gram - np.eye(3)).max() > SHEAR_TOLERANCE)

    @property
    def oblique(self) -> bool:
        return self.tilt_degrees > TILT_TOLERANCE_DEG or self.sheared

    def world_ras(self, index_zyx) -> np.ndarray:
        """RAS mm of a canonical voxel index ``(z, y, x)`` (exact, oblique grids included)."""
        z, y, x = (float(v) for v in index_zyx)
        return (self.canonical_affine @ np.array([x, y, z, 1.0]))[:3]

    # ------------------------------------------------------------------ arrays
    def to_canonical(self, array_ijk):
        """The file's array ``(i, j, k)`` -> canonical ``(z, y, x)`` (a view: lazy arrays stay lazy)."""
        return _apply_ornt(array_ijk, self._forward).transpose(2, 1, 0)

    def to_original(self, array_zyx):
        """Canonical ``(z, y, x)`` -> the file's ``(i, j, k)``: the exact inverse of :meth:`to_canonical`."""
        return _apply_ornt(np.asarray(array_zyx).transpose(2, 1, 0), self._backward)

    # ------------------------------------------------------------------ as data
    def to_dict(self) -> dict:
        """JSON-able (layer metadata, provenance); :meth:`from_dict` restores it exactly."""
        return {
            "canonical_orientation": "".join(CANONICAL_CODES) + " (array axes z, y, x)",
            "shape_zyx": list(self.shape), "spacing_zyx": list(self.spacing), "origin_lps_zyx": list(self.origin),
            "direction_lps": self.direction.tolist(), "tilt_degrees": self.tilt_degrees,
            "original_shape_ijk": list(self.original_shape), "original_affine_ras": self.original_affine.tolist(),
            "original_header": base64.b64encode(self.header).decode("ascii") if self.header else None,
            "file_shape": list(self.file_shape) if self.file_shape else None,
        }

    @classmethod
    def from_dict(cls, doc: dict) -> Geometry:
        header = doc.get("original_header")
        return cls(tuple(doc["original_shape_ijk"]), np.asarray(doc["original_affine_ras"], dtype=np.float64),
                   base64.b64decode(header) if header else None, doc.get("file_shape"))

    def same_grid(self, other: Geometry, atol: float = 1e-4) -> bool:
        return (self.original_shape == other.original_shape
                and np.allclose(self.original_affine, other.original_affine, atol=atol))


def affine_problem(affine) -> str | None:
    """Why an affine cannot place voxels in the world (None: it can): not finite, or flat (singular)."""
    linear = np.asarray(affine, dtype=np.float64)[:3, :3]
    if not np.all(np.isfinite(affine)):
        return "not finite"
    singular = np.linalg.svd(linear, compute_uv=False)
    if singular[0] == 0 or singular[-1] < 1e-6 * singular[0]:
        return "singular: some voxel axes have no direction or length"
    return None


def affine_from_sitk(size, spacing, origin, direction) -> np.ndarray:
    """The NIfTI (RAS) affine of a SimpleITK (LPS) grid: what SimpleITK writes into a .nii."""
    d = np.asarray(direction, dtype=np.float64).reshape(3, 3)
    affine = np.eye(4)
    affine[:3, :3] = LPS_FROM_RAS @ d @ np.diag(np.asarray(spacing, dtype=np.float64))
    affine[:3, 3] = LPS_FROM_RAS @ np.asarray(origin, dtype=np.float64)
    if not all(math.isfinite(v) for v in affine.ravel()):
        raise ValueError("non-finite geometry")
    return affine
