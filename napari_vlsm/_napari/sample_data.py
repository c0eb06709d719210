"""Offline sample images for napari's File > Open Sample menu.

Every sample ships inside a wheel that is already installed (scikit-image, pydicom), so opening
one never touches the network. Imports stay inside the functions: napari imports this module on
demand, and it must load neither torch nor anything slow.
"""

from __future__ import annotations

from napari_vlsm.core.errors import VLSMError

# Soft-tissue CT window (level 40 HU, width 400 HU).
CT_WINDOW = (-160.0, 240.0)


def retina() -> list[tuple]:
    """An RGB fundus photograph (1411, 1411, 3) uint8 from scikit-image."""
    from skimage import data

    image = data.retina()
    return [(image, {"name": "Retina fundus photo (scikit-image)", "rgb": True}, "image")]


def ct_slice() -> list[tuple]:
    """A (128, 128) int16 CT slice in Hounsfield units (pydicom's CT_small.dcm)."""
    return [dicom_layer(_testdata_file("CT_small.dcm"), name="CT slice (pydicom)")]


def mr_slice() -> list[tuple]:
    """A (64, 64) int16 MR slice (pydicom's MR_small.dcm), windowed as its header says."""
    return [dicom_layer(_testdata_file("MR_small.dcm"), name="MR slice (pydicom)")]


def dicom_layer(path, name: str | None = None) -> tuple:
    """One single-frame DICOM file -> an int16 image layer tuple with modality units applied.

    CT gets Hounsfield units (RescaleSlope/Intercept) and a soft-tissue window; other
    modalities get the window their header names, or the data range.
    """
    from pathlib import Path

    pydicom = _pydicom(Path(path).name)
    ds = pydicom.dcmread(path)
    slope = float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
    image = _to_int16(ds.pixel_array * slope + intercept)
    is_ct = ds.get("Modality") == "CT"
    window = CT_WINDOW if is_ct else _header_window(ds, image)
    meta = {"name": name or Path(path).stem, "colormap": "gray", "contrast_limits": window,
            "metadata": _metadata(ds, path, units="HU" if is_ct else "")}
    return (image, meta, "image")


def _pydicom(what: str):
    try:
        import pydicom
    except ImportError as err:
        raise VLSMError(
            f"reading {what} needs pydicom, which is not installed; "
            "install it with `pip install pydicom`"
        ) from err
    return pydicom


def _testdata_file(filename: str) -> str:
    pydicom = _pydicom(filename)
    from pydicom.data import get_testdata_file

    path = get_testdata_file(filename, download=False)  # shipped in the wheel: no network
    if path is None:
        raise VLSMError(
            f"pydicom {pydicom.__version__} does not ship {filename}; "
            "reinstall it with `pip install --force-reinstall pydicom`"
        )
    return path


def _to_int16(values):
    import numpy as np

    return np.clip(np.rint(values), -32768, 32767).astype(np.int16)


def _header_window(ds, image) -> tuple[float, float]:
    center, width = ds.get("WindowCenter"), ds.get("WindowWidth")
    if center is not None and width is not None:
        center, width = _first(center), _first(width)  # may be multi-valued
        return (center - width / 2, center + width / 2)
    return (float(image.min()), float(image.max()))


def _first(value) -> float:
    from pydicom.multival import MultiValue

    return float(value[0] if isinstance(value, MultiValue | list | tuple) else value)


def _metadata(ds, path, units: str) -> dict:
    spacing = ds.get("PixelSpacing")
    return {
        "source": str(path),
        "modality": str(ds.get("Modality", "")),
        "pixel_spacing_mm": tuple(float(s) for s in spacing) if spacing else None,
        "units": units,
    }
