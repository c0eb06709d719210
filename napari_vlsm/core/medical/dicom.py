"""DICOM series and multi-frame files through SimpleITK (GDCM sorts slices and decodes JPEG 2000).

A folder must hold exactly one series; any one file stands for its whole series. The slice order
is GDCM's: by ImagePositionPatient along the slice normal, never by file name, InstanceNumber or
acquisition time. When GDCM cannot read a file, pydicom looks at it to say why in one line (no
pixel data, a compressed transfer syntax without codec, not DICOM at all, cut short).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .errors import DicomSeriesError, MedicalFileError, reason_of
from .sitk_files import image_to_grid, sitk

TAGS = {"modality": "0008|0060", "series_uid": "0020|000e", "series_description": "0008|103e",
        "patient_position": "0018|5100", "manufacturer": "0008|0070"}
CONVERT = "convert it to an uncompressed transfer syntax (e.g. `gdcmconv --raw IN OUT`) and open it again"


def _series_of(folder: Path, wanted: Path | None) -> list[str]:
    reader = sitk().ImageSeriesReader
    uids = reader.GetGDCMSeriesIDs(str(folder))
    if not uids and wanted is not None:
        raise _diagnose(wanted, None)
    if not uids:
        raise DicomSeriesError(f"{folder} holds no readable DICOM image series; pass a folder with the series' "
                               ".dcm files (or one of them)")
    if wanted is None:
        if len(uids) > 1:
            raise DicomSeriesError(f"{folder} holds {len(uids)} DICOM series; pass one file of the series you want "
                                   "(its whole series is read), or give each series its own folder")
        return list(reader.GetGDCMSeriesFileNames(str(folder), uids[0]))
    target = os.path.realpath(wanted)
    for uid in uids:
        files = list(reader.GetGDCMSeriesFileNames(str(folder), uid))
        if target in (os.path.realpath(f) for f in files):
            return files
    raise _diagnose(wanted, None)


def _diagnose(path: Path, err: Exception | None) -> MedicalFileError:
    """Why GDCM could not read ``path``, in words a user can act on."""
    try:
        import pydicom
        from pydicom.errors import InvalidDicomError
    except ImportError:  # pragma: no cover - pydicom is a dependency
        pydicom = None
    if pydicom is not None:
        try:
            ds = pydicom.dcmread(path, defer_size=1024)
        except InvalidDicomError:
            return MedicalFileError(f"{path} is not a DICOM file; pass a DICOM series folder, one of its .dcm files, "
                                    "or a NIfTI/NRRD/MHA volume")
        except Exception as bad:  # noqa: BLE001 - pydicom raises many kinds on damaged files
            return MedicalFileError(f"{path} is damaged ({reason_of(bad)}); copy the file again")
        if not any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
            what = str(ds.get("Modality", "")) or "non-image"
            return MedicalFileError(f"{path} is a DICOM without pixel data (a {what} object, not an image); "
                                    "pass the image series instead")
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        if syntax is not None and syntax.is_compressed:
            return MedicalFileError(f"{path} uses the compressed transfer syntax {syntax.name} ({syntax}), which "
                                    f"the installed decoders cannot read; {CONVERT}")
    reason = reason_of(err) if err is not None else "GDCM cannot read it"
    return MedicalFileError(f"cannot read the DICOM {path} ({reason}); the file may be cut short: copy it again")


def _tags(path: str) -> dict:
    reader = sitk().ImageFileReader()
    reader.SetFileName(path)
    reader.ReadImageInformation()
    return {name: reader.GetMetaData(tag).strip() for name, tag in TAGS.items() if reader.HasMetaDataKey(tag)}


def read_dicom(path: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """A DICOM folder (one series) or file (its series; or one multi-frame file) -> (array (i, j, k), affine, info)."""
    lib = sitk()
    path = Path(path)
    if not path.exists():
        raise MedicalFileError(f"{path} does not exist; pass a DICOM series folder or one of its files")
    files = _series_of(path if path.is_dir() else path.parent, None if path.is_dir() else path)
    try:
        info = _tags(files[0])
        if len(files) == 1:  # one slice, or a multi-frame file that holds the whole volume
            image = lib.ReadImage(files[0])
        else:
            reader = lib.ImageSeriesReader()
            reader.SetFileNames(files)
            reader.MetaDataDictionaryArrayUpdateOn()  # per-slice positions, checked below
            image = reader.Execute()
            _check_positions(path, reader, len(files), image.GetDirection())
    except RuntimeError as err:
        bad = next((Path(f) for f in files if _readable(f) is False), None)
        if bad is None:  # each file reads on its own: the slices do not fit together
            _check_sizes(path, files)
        raise _diagnose(bad or Path(files[0]), err) from None
    array, affine = image_to_grid(image, path)
    info["files"] = len(files)
    info["series_files"] = tuple(os.path.realpath(f) for f in files)  # read_volume keeps them off the metadata
    return array, affine, info


def _check_positions(path: Path, reader, count: int, direction) -> None:
    """GDCM sorted the slices along their normal; refuse two slices at one position (mixed
    acquisitions) and warn about uneven gaps (missing slices), instead of a silently wrong volume."""
    _check_orientations(path, reader, count)
    key = "0020|0032"  # ImagePositionPatient
    if not all(reader.HasMetaDataKey(i, key) for i in range(count)):
        return
    try:
        points = np.array([[float(v) for v in reader.GetMetaData(i, key).split("\\")] for i in range(count)])
    except ValueError:
        return
    normal = np.asarray(direction, dtype=np.float64).reshape(3, 3)[:, 2]
    _warn_if_shifted(path, points, normal)
    steps = np.diff(points @ normal)
    if np.any(np.abs(steps) < 1e-3):
        raise DicomSeriesError(f"{path}: {int(np.sum(np.abs(steps) < 1e-3)) + 1} slices of one series lie at the "
                               "same position (several acquisitions or phases mixed); give each its own folder")
    typical = float(np.median(np.abs(steps)))
    if np.abs(np.abs(steps) - typical).max() > 0.1 * typical:
        import warnings

        from .errors import SliceGapWarning

        warnings.warn(f"{path.name}: the slices are unevenly spaced ({np.abs(steps).min():.2f} to "
                      f"{np.abs(steps).max():.2f} mm apart; missing slices?); the volume uses {typical:.2f} mm, "
                      "so positions past a gap are off", SliceGapWarning, stacklevel=3)


def _warn_if_shifted(path: Path, points: np.ndarray, normal: np.ndarray) -> None:
    """Slices whose positions move sideways, not only along the normal (a tilted gantry): SimpleITK
    (and so the reference NIfTI) stacks them straight, so the far slices sit off by the drift."""
    sideways = (points - points[0]) - np.outer((points - points[0]) @ normal, normal)
    drift = float(np.linalg.norm(sideways, axis=1).max())
    if drift > 0.5:  # mm; well above rounding in the headers
        import warnings

        from .errors import GantryTiltWarning

        warnings.warn(f"{path.name}: the slices are shifted sideways (gantry tilt), by up to {drift:.1f} mm; they are "
                      "stacked straight, as SimpleITK does, so positions are off by up to that much; correct the "
                      "tilt (e.g. dcm2niix does) for exact positions", GantryTiltWarning, stacklevel=4)


def _check_orientations(path: Path, reader, count: int) -> None:
    """One series, one stack: a localizer or a second stack under the same UID would be stacked in."""
    key = "0020|0037"  # ImageOrientationPatient
    try:
        rows = [[float(v) for v in reader.GetMetaData(i, key).split("\\")] for i in range(count)
                if reader.HasMetaDataKey(i, key)]
    except ValueError:
        return
    if len(rows) == count and np.abs(np.asarray(rows) - rows[0]).max() > 1e-3:
        raise DicomSeriesError(f"{path}: the series holds slices of different orientations (a localizer or "
                               "several stacks under one series UID); give each stack its own folder")


def _check_sizes(path: Path, files: list[str]) -> None:
    sizes = set()
    for name in files:
        reader = sitk().ImageFileReader()
        reader.SetFileName(name)
        reader.ReadImageInformation()
        sizes.add(tuple(reader.GetSize()[:2]))
    if len(sizes) > 1:
        listed = ", ".join("x".join(map(str, s)) for s in sorted(sizes))
        raise DicomSeriesError(f"{path}: the series' slices have different sizes ({listed}); a volume needs one "
                               "image size: give each acquisition its own folder")


def _readable(path: str) -> bool:
    try:
        sitk().ReadImage(path)
    except RuntimeError:
        return False
    return True
