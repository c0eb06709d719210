"""SimpleITK images -> (array in the file's voxel order, NIfTI affine); NRRD and MetaImage files.

SimpleITK (ITK) works in LPS and its arrays come out ``(k, j, i)``; this module turns both into
nibabel's conventions (``(i, j, k)`` and a RAS affine), so all formats share one canonical path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import MedicalFileError, reason_of
from .geometry import affine_from_sitk


def sitk():
    """SimpleITK, imported on first use (it takes a moment and most commands never need it)."""
    try:
        import SimpleITK
    except ImportError:
        raise MedicalFileError("reading DICOM, NRRD and MetaImage files needs SimpleITK; "
                               "install it with `pip install SimpleITK`") from None
    SimpleITK.ProcessObject.SetGlobalWarningDisplay(False)  # ITK prints C++ warnings on stderr
    return SimpleITK


def image_to_grid(image, path) -> tuple[np.ndarray, np.ndarray]:
    """A SimpleITK image -> ``(array (i, j, k), 4x4 RAS affine)``; 2D images get one slice (the
    caller keeps ``image.GetSize()`` so the mask gets the file's shape back)."""
    lib = sitk()
    if image.GetNumberOfComponentsPerPixel() > 1:
        raise MedicalFileError(f"{path} holds a colour (multi-component) image; napari-vlsm reads grey-value "
                               "volumes: convert it to one channel first")
    dim = image.GetDimension()
    if dim == 2:
        image = lib.JoinSeries(image)  # (x, y) -> (x, y, 1), spacing 1 along the new axis
    elif dim == 4 and image.GetSize()[3] == 1:
        image = image[:, :, :, 0]
    elif dim != 3:
        raise MedicalFileError(f"{path} is a {dim}D image of size {image.GetSize()}; napari-vlsm reads 3D "
                               "volumes: extract one 3D volume first")
    array = lib.GetArrayFromImage(image).transpose(2, 1, 0)  # (k, j, i) -> (i, j, k)
    try:
        affine = affine_from_sitk(image.GetSize(), image.GetSpacing(), image.GetOrigin(), image.GetDirection())
    except ValueError:
        raise MedicalFileError(f"{path} has no usable geometry (non-finite spacing, origin or direction); "
                               "fix its header") from None
    return array, affine


def read_sitk_file(path: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """NRRD / MetaImage (or any other format SimpleITK reads) -> (array (i, j, k), affine, info)."""
    lib = sitk()
    if not path.is_file():
        raise MedicalFileError(f"{path} does not exist; pass an existing file")
    try:
        image = lib.ReadImage(str(path))
    except RuntimeError as err:
        raise MedicalFileError(f"cannot read {path}: {reason_of(err)}; check that the file (and for .mhd/.nhdr "
                               "its data file) is complete") from None
    array, affine = image_to_grid(image, path)
    found = [image.GetMetaData(key) for key in ("modality", "Modality") if image.HasMetaDataKey(key)]
    return array, affine, {"modality": modality_name(found[0] if found else ""), "file_shape": image.GetSize()}


def modality_name(value: str) -> str:
    """MetaImage writes ``MET_MOD_CT``; the windows want DICOM's ``CT`` ("" when unknown or other)."""
    value = value.strip().upper().removeprefix("MET_MOD_")
    return "" if value in ("UNKNOWN", "OTHER") else value
