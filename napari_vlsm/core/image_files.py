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


# TIFF resolution units in mm per unit (ResolutionUnit tag; tifffile's 4/5 are non-standard but written)
_MM_PER_RESUNIT = {2: 25.4, 3: 10.0, 4: 1.0, 5: 1e-3}
# ImageJ's ``unit`` (its XResolution is then pixels per that unit, ResolutionUnit NONE)
_MM_PER_IMAGEJ_UNIT = {"m": 1e3, "cm": 10.0, "mm": 1.0, "micron": 1e-3, "um": 1e-3, "\u00b5m": 1e-3,
                       "\\u00B5m": 1e-3, "nm": 1e-6}
# Image editors write 72 or 96 dpi when nothing was measured: those say "unknown", not a size.
_SCREEN_DPI = (72.0, 96.0)


def pixel_spacing(path) -> tuple[float, ...] | None:
    """A TIFF's pixel size in mm from its resolution tags: ``(y, x)``, or ``(z, y, x)`` when an
    ImageJ stack also gives its slice spacing. None when unknown: not a TIFF, no resolution or
    ResolutionUnit NONE without an ImageJ unit, or 72/96 dpi (an image editor's default).
    (PNG/JPEG carry no trustworthy spacing; a DICOM slice is a medical volume with its PixelSpacing.)"""
    path = Path(path)
    if path.suffix.lower() not in TIFF_SUFFIXES:
        return None
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            tags, imagej = tif.pages[0].tags, tif.imagej_metadata or {}
            res = [tags.get(name) for name in ("YResolution", "XResolution")]
            unit = tags.get("ResolutionUnit")
            unit = int(unit.value) if unit is not None else 2  # TIFF's default unit is the inch
            per_px = [r.value[0] / r.value[1] if r is not None and r.value[1] else 0.0 for r in res]
    except Exception:  # noqa: BLE001 - an unreadable header: the reader reports the file itself
        return None
    if not all(p > 0 for p in per_px):
        return None
    if unit == 1:  # no unit: only ImageJ's own metadata says what a pixel is
        mm = _MM_PER_IMAGEJ_UNIT.get(str(imagej.get("unit", "")).strip().lower())
    else:
        mm = _MM_PER_RESUNIT.get(unit)
        if unit == 2 and all(round(p, 3) in _SCREEN_DPI for p in per_px):
            return None
    if mm is None:
        return None
    spacing = tuple(mm / p for p in per_px)
    z = imagej.get("spacing")
    if unit == 1 and isinstance(z, (int, float)) and z > 0:
        return (float(z) * mm, *spacing)
    return spacing
