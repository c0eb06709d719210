"""NIfTI (.nii, .nii.gz) through nibabel: the header kept as it is, uncompressed files memory-mapped.

nibabel is the reference for NIfTI geometry (it is what other tools and the checks use), so the
affine is nibabel's: the sform when its code is set, else the qform. An uncompressed ``.nii``
without intensity scaling comes back as a memory map: slices are read from disk when used, so a
volume larger than memory opens at once. A ``.nii.gz`` is decompressed whole (gzip cannot seek).
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from .errors import MedicalFileError, reason_of

FIX = "check that it is a complete NIfTI file (copy or export it again)"
# Files that arrive with a .nii / .nii.gz name but are something else (a renamed export, a screenshot).
SIGNATURES = {b"\x89PNG": "a PNG image", b"\xff\xd8\xff": "a JPEG image", b"II*\x00": "a TIFF image",
              b"MM\x00*": "a TIFF image", b"PK\x03\x04": "a ZIP archive"}


def _what_else(path: Path) -> str | None:
    """What a file that nibabel refused really is, by its first bytes (None: unknown)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return None
    if head[128:132] == b"DICM":
        return "a DICOM file"
    return next((what for magic, what in SIGNATURES.items() if head.startswith(magic)), None)


def read_nifti(path: Path) -> tuple[np.ndarray, np.ndarray, bytes, dict]:
    """-> (array (i, j, k), RAS affine, header bytes, info)."""
    import nibabel as nib

    if not path.is_file():
        raise MedicalFileError(f"{path} does not exist; pass an existing .nii or .nii.gz file")
    try:
        image = nib.load(str(path), mmap="r")
    except Exception as err:  # noqa: BLE001 - nibabel raises many kinds on damaged files
        other = _what_else(path)
        if other is not None:
            raise MedicalFileError(f"{path} is {other}, not NIfTI, despite its name; give it its own suffix "
                                   "(e.g. .png, .dcm) or pass the scan's NIfTI file") from None
        raise MedicalFileError(f"cannot read {path} as NIfTI ({reason_of(err)}); {FIX}") from None
    if not isinstance(image, (nib.Nifti1Image, nib.Nifti2Image)):
        raise MedicalFileError(f"{path} is not a NIfTI image; {FIX}")
    shape = tuple(int(n) for n in image.shape)
    if len(shape) > 3 and any(n != 1 for n in shape[3:]):
        raise MedicalFileError(f"{path} is a {len(shape)}D NIfTI of shape {shape} (time or channels); napari-vlsm "
                               "reads 3D volumes: extract one volume first (e.g. `fslroi IN OUT 0 1`)")
    try:
        data = np.asanyarray(image.dataobj)
    except (EOFError, zlib.error, OSError, ValueError) as err:
        raise MedicalFileError(f"{path} is truncated or damaged ({reason_of(err)}); {FIX}") from None
    if data.dtype == np.float64 and image.get_data_dtype().itemsize <= 2:
        data = data.astype(np.float32)  # scaled 8/16-bit data: float32 holds it exactly, at half the memory
    if data.ndim == 2:
        data = data[:, :, None]
    elif data.ndim > 3:
        data = data.reshape(shape[:3])
    if data.dtype.kind not in "biuf":
        raise MedicalFileError(f"{path} holds {data.dtype} voxels (e.g. RGB); napari-vlsm reads grey-value volumes")
    header = image.header
    info = {"description": header["descrip"].tobytes().rstrip(b"\0").decode("latin-1", "replace").strip(),
            "qform_code": int(header["qform_code"]), "sform_code": int(header["sform_code"]),
            "intent": str(header.get_intent()[0])}
    return data, np.asarray(image.affine, dtype=np.float64), header.binaryblock, info
