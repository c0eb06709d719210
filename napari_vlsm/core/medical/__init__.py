"""Medical volumes: NIfTI, DICOM series, NRRD and MetaImage in, masks out on the scan's own grid.

No napari or Qt here. Canonical orientation, geometry and the way back to the file's grid:
:mod:`.geometry`; reading: :func:`read_volume`; writing: :func:`write_mask`; intensity windows
(CT presets in HU, percentile windows): :mod:`.windows`. See docs/volumes.md.

Names load on first use, so ``from napari_vlsm.core.medical import formats`` (pure path logic)
stays instant for the CLI's ``--help``.
"""

from __future__ import annotations

import importlib

_NAMES = {
    "DicomSeriesError": "errors", "GridMismatchError": "errors", "MedicalFileError": "errors",
    "ObliqueWarning": "errors", "VOLUME_SUFFIXES": "formats", "is_volume_path": "formats", "stem": "formats",
    "CANONICAL_CODES": "geometry", "Geometry": "geometry", "MedicalVolume": "reading", "read_volume": "reading",
    "mask_image": "writing", "write_mask": "writing", "resolve_window": "windows", "parse_window": "windows",
}
__all__ = list(_NAMES)


def __getattr__(name):
    if name in _NAMES:
        return getattr(importlib.import_module(f"{__name__}.{_NAMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
