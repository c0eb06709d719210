"""Which paths are volumes, and their stems (``scan.nii.gz`` -> ``scan``).

Pure path logic (no file is opened, nothing heavy imported), so the CLI can sort its inputs before
any library loads.
"""

from __future__ import annotations

from pathlib import Path

NIFTI_SUFFIXES = (".nii", ".nii.gz")
SITK_SUFFIXES = (".nrrd", ".nhdr", ".mha", ".mhd")
DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")
VOLUME_SUFFIXES = NIFTI_SUFFIXES + SITK_SUFFIXES + DICOM_SUFFIXES


def full_suffix(path) -> str:
    """The lower-case suffix, with ``.nii.gz`` as one suffix."""
    name = Path(path).name.lower()
    if name.endswith(".nii.gz"):
        return ".nii.gz"
    return Path(name).suffix


def stem(path) -> str:
    """File name without its (double) suffix; a DICOM folder's own name."""
    path = Path(path)
    suffix = full_suffix(path)
    if path.is_dir() or not suffix:
        return path.name
    return path.name[: -len(suffix)]


def looks_like_dicom(path) -> bool:
    """A ``.dcm``-like name, or any file with the DICM marker at byte 128 (series often have no suffix)."""
    path = Path(path)
    if full_suffix(path) in DICOM_SUFFIXES:
        return True
    try:
        with open(path, "rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def is_dicom_folder(path) -> bool:
    """A folder holding at least one DICOM file (not recursive)."""
    path = Path(path)
    if not path.is_dir():
        return False
    return any(p.is_file() and not p.name.startswith(".") and looks_like_dicom(p) for p in path.iterdir())


def is_volume_path(path) -> bool:
    """True for the paths :func:`read_volume` reads: volume suffixes, DICOM files and DICOM folders."""
    path = Path(path)
    if path.is_dir():
        return is_dicom_folder(path)
    # Any file with the DICM marker: series often have no suffix, or UID names ("1.2.840...7.13")
    return full_suffix(path) in VOLUME_SUFFIXES or (path.is_file() and looks_like_dicom(path))


def kind(path) -> str:
    """``"nifti"``, ``"dicom"`` or ``"sitk"`` (NRRD / MetaImage)."""
    suffix = full_suffix(path)
    if suffix in NIFTI_SUFFIXES:
        return "nifti"
    if suffix in SITK_SUFFIXES:
        return "sitk"
    return "dicom"
