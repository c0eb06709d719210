"""Medical volumes: NIfTI, DICOM series, NRRD and MetaImage in, masks out on the scan's own grid.

No napari or Qt here. Canonical orientation, geometry and the way back to the file's grid:
:mod:`.geometry`; reading: :func:`read_volume`; writing: :func:`write_mask`; intensity windows
(CT presets in HU, percentile windows): :mod:`.windows`. See docs/volumes.md.
"""

from .errors import DicomSeriesError, GridMismatchError, MedicalFileError, ObliqueWarning
from .formats import VOLUME_SUFFIXES, is_volume_path, stem
from .geometry import CANONICAL_CODES, Geometry
from .reading import MedicalVolume, read_volume
from .writing import mask_image, write_mask

__all__ = ["CANONICAL_CODES", "VOLUME_SUFFIXES", "DicomSeriesError", "Geometry", "GridMismatchError",
           "MedicalFileError", "MedicalVolume", "ObliqueWarning", "is_volume_path", "mask_image", "read_volume",
           "stem", "write_mask"]
