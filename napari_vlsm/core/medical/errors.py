"""Errors and the one warning of the medical readers and writers.

Every message names the file and the fix on one line (the CLI prints it after ``error:``, the dock
shows it as a notification). They subclass :class:`ImageError`, so code that already reports a bad
image file per file (``napari-vlsm predict``) reports these the same way.
"""

from __future__ import annotations

from ..errors import ImageError


class MedicalFileError(ImageError):
    """A NIfTI / DICOM / NRRD / MHA file or folder cannot be read as one volume."""


class DicomSeriesError(MedicalFileError):
    """A DICOM folder holds no series or several, or a series cannot be decoded."""


class GridMismatchError(MedicalFileError):
    """A mask (or label volume) is not on the voxel grid of the image it belongs to."""


class ObliqueWarning(UserWarning):
    """The volume's axes are tilted against the patient axes (shown on the nearest ones)."""


class SliceGapWarning(UserWarning):
    """A DICOM series' slices are unevenly spaced (missing slices): positions past a gap are off."""


class GantryTiltWarning(UserWarning):
    """A DICOM series' slices are shifted sideways (gantry tilt): stacked straight, positions drift."""


def reason_of(err: BaseException) -> str:
    """The first meaningful line of a library error (ITK messages start with a source path)."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    for line in reversed(lines):  # ITK: "...cxx:99:\nsitk::ERROR: the reason"
        if "ERROR:" in line:
            return line.split("ERROR:", 1)[1].strip()[:200]
    # ITK without "ERROR:": "Exception thrown in SimpleITK X: /build/path.hxx:338:", then the reason
    lines = [ln for ln in lines if not (ln.startswith("Exception thrown in") and ln.endswith(":"))] or lines
    return (lines[0][:200] if lines else type(err).__name__)
