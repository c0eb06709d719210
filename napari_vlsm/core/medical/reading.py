"""``read_volume(path)``: any supported medical file or DICOM folder -> a :class:`MedicalVolume`.

The array is in the canonical orientation (see :mod:`.geometry`); ``geometry`` knows the file's
own grid so that masks go back onto it exactly (:mod:`.writing`).
"""

from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from . import formats
from .errors import MedicalFileError, ObliqueWarning
from .geometry import Geometry, affine_problem

_warned: set[str] = set()
_warned_lock = threading.Lock()


@dataclass(eq=False)
class MedicalVolume:
    """A 3D scan in canonical ``(z, y, x)`` LPS orientation with its geometry."""

    array: object  # numpy array or memmap, shape (z, y, x)
    geometry: Geometry
    path: Path
    kind: str  # "nifti", "dicom" or "sitk" (NRRD / MetaImage)
    modality: str = ""  # "CT", "MR", ... from the header; "" when the file does not say
    info: dict = field(default_factory=dict)
    series_files: tuple[str, ...] = ()  # a DICOM series' files (real paths): any one stands for the volume

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(n) for n in self.array.shape)

    @property
    def spacing(self) -> tuple[float, float, float]:
        return self.geometry.spacing

    @property
    def origin(self) -> tuple[float, float, float]:
        return self.geometry.origin

    @property
    def direction(self):
        return self.geometry.direction

    @property
    def name(self) -> str:
        return formats.stem(self.path)

    def metadata(self) -> dict:
        """JSON-able description: what napari layers carry and what writers need."""
        return {"source": str(self.path), "format": self.kind, "modality": self.modality,
                "geometry": self.geometry.to_dict(), "header_info": dict(self.info)}


def read_volume(path) -> MedicalVolume:
    """Read a NIfTI / NRRD / MHA file, a DICOM series folder, or one DICOM file (its whole series).

    Raises :class:`MedicalFileError` with a one-line message naming the file and the fix.
    Warns once per file (:class:`ObliqueWarning`) when the scan is tilted against the patient axes.
    """
    path = Path(path).expanduser()
    kind = formats.kind(path) if not path.is_dir() else "dicom"
    header = None
    if kind == "nifti":
        from .nifti import read_nifti

        array, affine, header, info = read_nifti(path)
        modality = ""
    elif kind == "sitk":
        from .sitk_files import read_sitk_file

        array, affine, info = read_sitk_file(path)
        modality = info.pop("modality", "")
    else:
        from .dicom import read_dicom

        array, affine, info = read_dicom(path)
        modality = info.get("modality", "")
    if any(n == 0 for n in array.shape):
        raise MedicalFileError(f"{path} holds an empty volume of shape {tuple(array.shape)}; pass a non-empty scan")
    problem = affine_problem(affine)
    if problem is not None:
        raise MedicalFileError(f"{path} has no usable voxel-to-world affine (its header's sform/qform is {problem}); "
                               "re-export the scan from its source, or repair the header")
    file_shape = info.pop("file_shape", None)
    geometry = Geometry(array.shape, affine, header, file_shape if file_shape != tuple(array.shape) else None)
    _warn_if_oblique(path, geometry)
    files = info.pop("series_files", ())
    return MedicalVolume(geometry.to_canonical(array), geometry, path, kind, modality.upper(), info, files)


def _warn_if_oblique(path: Path, geometry: Geometry) -> None:
    if not geometry.oblique:
        return
    key = str(path.resolve())
    with _warned_lock:
        if key in _warned:
            return
        _warned.add(key)
    tilt = "its axes are not at right angles" if geometry.sheared else \
        f"its axes are tilted by up to {geometry.tilt_degrees:.1f} degrees from the patient's axes"
    warnings.warn(f"{path.name}: {tilt}; it is shown on the nearest patient axes (left/right, front/back, "
                  "head/feet), and masks are saved on its own tilted grid", ObliqueWarning, stacklevel=2)
