"""Masks and label maps in canonical orientation -> NIfTI on the input's own voxel grid.

The written file has the input's shape and affine (for a NIfTI input its very header: qform and
sform with their codes, units, description; for DICOM / NRRD / MHA the NIfTI SimpleITK would make
of it), so nibabel, ITK-SNAP or 3D Slicer put every mask voxel where the scan's voxel is.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from .errors import GridMismatchError, MedicalFileError
from .geometry import Geometry

LABEL_DTYPES = (np.uint8, np.uint16, np.int16, np.int32)


def mask_image(mask_zyx, geometry: Geometry, description: str = "napari-vlsm mask"):
    """A nibabel image of ``mask_zyx`` (canonical ``(z, y, x)``: a mask, label map or float32
    probability) on the original grid."""
    import nibabel as nib

    mask = np.asarray(mask_zyx)
    if tuple(mask.shape) != geometry.shape:
        raise GridMismatchError(f"the mask has shape {tuple(mask.shape)} but its scan is {geometry.shape} "
                                "(z, y, x); segment the scan it was opened with")
    if mask.dtype == np.bool_:
        mask = mask.astype(np.uint8)
    elif mask.dtype == np.float32:  # a probability map: kept as it is
        pass
    elif mask.dtype not in LABEL_DTYPES:
        if mask.size and (mask.min() < 0 or mask.max() > 65535 or not np.array_equal(mask, np.round(mask))):
            raise MedicalFileError(f"a mask or label map holds whole numbers 0..65535; got {mask.dtype} values")
        mask = mask.astype(np.uint8 if not mask.size or mask.max() < 256 else np.uint16)
    data = np.ascontiguousarray(geometry.to_original(mask))
    if geometry.header is not None:
        klass = nib.Nifti1Image if len(geometry.header) == 348 else nib.Nifti2Image
        header = klass.header_class(binaryblock=geometry.header).copy()
        data = _in_file_shape(data, geometry.file_shape or header.get_data_shape())
        qform, qcode = header.get_qform(coded=True)
        sform, scode = header.get_sform(coded=True)
        image = klass(data, geometry.original_affine, header)
        # Restore both transforms with their own codes: nibabel would otherwise rebuild them.
        image.set_qform(qform, code=int(qcode) if qform is not None else 0)
        image.set_sform(sform, code=int(scode) if sform is not None else 0)
        if qform is None and sform is None:
            image.set_sform(geometry.original_affine, code=1)
    else:  # as SimpleITK writes the file: a 2D image stays 2D, (x, y, z, 1) stays 4D
        data = _in_file_shape(data, geometry.file_shape or data.shape)
        image = nib.Nifti1Image(data, geometry.original_affine)
        image.set_qform(geometry.original_affine, code=1)  # what SimpleITK writes: scanner, both forms
        image.set_sform(geometry.original_affine, code=1)
        image.header.set_xyzt_units("mm")
    image.set_data_dtype(data.dtype)
    image.header.set_slope_inter(1.0, 0.0)
    image.header["cal_min"], image.header["cal_max"] = 0, float(data.max()) if data.size else 0
    image.header["descrip"] = description.encode("ascii", "replace")[:79]
    image.header.set_intent("label" if data.dtype.kind in "iu" else "none")
    return image


def _in_file_shape(data: np.ndarray, file_shape) -> np.ndarray:
    """A 2D NIfTI (one slice) or one with trailing 1-long axes (x, y, z, 1) is read as 3D; its mask
    gets the file's own shape back, so nibabel sees the input's shape."""
    file_shape = tuple(int(n) for n in file_shape)
    if file_shape != data.shape and int(np.prod(file_shape)) == data.size and file_shape[:2] == data.shape[:2]:
        return data.reshape(file_shape)
    return data


def write_mask(path, mask_zyx, geometry: Geometry, description: str = "napari-vlsm mask") -> Path:
    """Write ``mask_zyx`` as NIfTI (``.nii`` or ``.nii.gz`` by the name) on ``geometry``'s grid, atomically."""
    from ..atomic import write_bytes_atomic

    path = Path(path).expanduser()
    name = path.name.lower()
    if not name.endswith((".nii", ".nii.gz")):
        raise MedicalFileError(f"{path}: masks of volumes are written as NIfTI; name the file .nii.gz or .nii")
    image = mask_image(mask_zyx, geometry, description)
    data = image.to_bytes()
    if name.endswith(".gz"):
        data = gzip.compress(data, compresslevel=6, mtime=0)
    try:
        write_bytes_atomic(path, data)
    except OSError as err:
        raise MedicalFileError(f"cannot write {path}: {err.strerror or err}; check the folder") from None
    return path
