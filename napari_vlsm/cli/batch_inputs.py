"""What the batch driver knows of a DICOM input before any task reads it: its series' files.

In-process ``predict`` segments files of one series given one by one (``series/*.dcm``) once, named
after the first (the reader returns the series' files). The batch driver must know it before it
submits tasks, so it asks GDCM for the series' file list (headers only, as the reader does: one
listing per folder, not per file).
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from ..core.medical import formats


@lru_cache(maxsize=64)
def _series(folder: str) -> tuple[tuple[str, ...], ...]:
    """The series of a folder, each as the real paths of its files (GDCM, as the reader uses it)."""
    from ..core.medical.sitk_files import sitk

    reader = sitk().ImageSeriesReader
    return tuple(tuple(os.path.realpath(f) for f in reader.GetGDCMSeriesFileNames(folder, uid))
                 for uid in reader.GetGDCMSeriesIDs(folder))


def dicom_series_files(path: Path) -> tuple[str, ...]:
    """The real paths of the series ``path`` (a DICOM file or series folder) belongs to; () for other
    inputs, or when GDCM finds no single series (the file's task then reports why)."""
    path = Path(path)
    if formats.kind(path) != "dicom" and not path.is_dir():
        return ()
    try:
        if path.is_dir():
            found = _series(os.path.realpath(path))
            return found[0] if len(found) == 1 else ()
        target = os.path.realpath(path)
        return next((files for files in _series(os.path.dirname(target)) if target in files), ())
    except Exception:  # noqa: BLE001 - not readable as DICOM: no series to merge; its task says why
        return ()
