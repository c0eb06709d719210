"""Reading the files users give: one place for the CLI, the dataset folders and the launcher.

- 2D images (PNG, JPEG) through imageio; TIFF through tifffile (uncompressed stacks memory-mapped,
  so a TIFF larger than memory is read slice by slice).
- Medical volumes (NIfTI, DICOM series or file, NRRD, MHA) through :mod:`napari_vlsm.core.medical`,
  which returns a :class:`~napari_vlsm.core.medical.MedicalVolume` (canonical orientation + geometry).

Errors are :class:`ImageError` (medical ones its subclass) with one line naming the file.
"""

from __future__ import annotations

from pathlib import Path

from .errors import ImageError
from .medical import formats

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
TIFF_SUFFIXES = (".tif", ".tiff")
INPUT_SUFFIXES = IMAGE_SUFFIXES + formats.VOLUME_SUFFIXES


def _read_tiff(path: Path):
    import numpy as np
    import tifffile

    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        # RGB stored as separate planes reads as (3|4, H, W). Old tifffile versions tagged any
        # (3|4, H, W) array as RGB, so signed/float data (CT, MRI) with that tag stays a stack.
        planar_rgb = page.photometric == 2 and page.planarconfig == 2 and page.dtype.kind == "u"
    try:
        data = tifffile.memmap(path, mode="r")  # uncompressed: read lazily, slice by slice
    except Exception:  # noqa: BLE001 - compressed or odd layouts: read it whole
        data = tifffile.imread(path)
    if planar_rgb and data.ndim == 3 and data.shape[0] in (3, 4) and data.shape[-1] not in (3, 4):
        data = np.moveaxis(data, 0, -1)
    return data


def read_image(path) -> object:
    """A PNG / JPEG / TIFF file as an array (TIFF stacks may come back as a lazy memmap)."""
    path = Path(path)
    try:
        if path.suffix.lower() in TIFF_SUFFIXES:
            data = _read_tiff(path)
        else:  # imageio's v3 API (what skimage.io wraps), straight to Pillow: no legacy plugin scan
            import imageio.v3 as iio

            data = iio.imread(path)
    except Exception as err:  # noqa: BLE001 - any decoder failure is this file's problem
        reason = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        raise ImageError(f"cannot read {path}: {reason}") from None
    if data.ndim == 3 and data.shape[-1] == 2:  # grey + alpha PNG: keep the grey channel
        data = data[..., 0]
    return data


def read_input(path):
    """Any input: a MedicalVolume for volume files and DICOM folders, an array otherwise."""
    path = Path(path)
    if formats.is_volume_path(path):
        from .medical import read_volume

        return read_volume(path)
    return read_image(path)
