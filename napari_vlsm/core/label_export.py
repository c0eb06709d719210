"""A label map + its JSON legend on disk: the one writer of the dock's "Export label map…", the
Series section's saved masks and the server's ``PUT .../items/{id}/mask``.

The same files as ``predict --multilabel``: ``<name>.png`` for a 2D image or ``<name>.tif`` for a
stack (the map's own shape and values, 0 background, i for the i-th structure) and ``<name>.json``
(value -> name, prompt, colour, per-structure statistics, plus the image, threshold and provenance
the caller recorded). A mask of a scan (a :class:`~napari_vlsm.core.medical.Geometry` given) is
written as ``<name>.nii.gz`` on the scan's own voxel grid instead. Every file is written atomically.

``write_export`` takes one dict, so a GUI can copy what it writes on its own thread and write in a
worker: ``{"data": labels, "structures": [labelmap.Structure], "geometry": Geometry | None,
"image": pixels for the statistics | None, "spacing": (z, y, x) mm | None, "info": {KEYS..., "layer"}}``.
"""

from __future__ import annotations

import json
from pathlib import Path

from . import labelmap as LM
from .errors import VLSMError

KEYS = ("image", "threshold", "model_source", "model_fingerprint", "adapter_path", "adapter_sha256", "time")
NIFTI = (".nii.gz", ".nii")
RASTER = (".png", ".tif", ".tiff")


def _stem(path: Path) -> Path:
    name = path.name.lower()
    for suffix in NIFTI + RASTER:
        if name.endswith(suffix):
            return path.with_name(path.name[: -len(suffix)])
    return path


def export_paths(path, ndim: int, medical: bool = False) -> tuple[Path, Path]:
    """The label-map file and its legend beside it. A scan's mask defaults to NIfTI (a TIFF/PNG asked
    for is still written); otherwise the suffix follows the dimension unless a TIFF is asked for."""
    path = Path(path).expanduser()
    name = path.name.lower()
    if name.endswith(NIFTI) and not medical:
        raise VLSMError(f"{path.name}: only the mask of a scan opened as NIfTI/DICOM/NRRD/MHA has a voxel grid "
                        "to save as NIfTI; export it as .tif or .png")
    if name.endswith(NIFTI):
        target = path
    elif medical and not name.endswith((".tif", ".tiff")):
        target = _stem(path).with_name(_stem(path).name + ".nii.gz")
    elif name.endswith(RASTER) and not (name.endswith(".png") and ndim != 2):
        target = path
    else:
        target = _stem(path).with_name(_stem(path).name + (".png" if ndim == 2 else ".tif"))
    return target, _stem(target).with_name(_stem(target).name + ".json")


def _write_raster(target: Path, data, doc) -> None:
    import tifffile

    from .atomic import atomic_path

    with atomic_path(target) as tmp:
        if target.suffix == ".png":
            import imageio.v3 as iio

            iio.imwrite(tmp, data, extension=".png")
        else:
            tifffile.imwrite(tmp, data, photometric="minisblack", compression="zlib",
                             metadata={"legend": json.dumps(doc["labels"], ensure_ascii=False)})


def _statistics(item: dict) -> list[dict]:
    """Per structure: voxels, volume (mL) or area (mm²) when the spacing is known, mean/std inside,
    slice range (core.volume_edit.statistics); the columns that do not apply are left out."""
    from .volume_edit.statistics import structure_statistics

    if item["data"].ndim not in (2, 3):
        return []
    names = {s.value: s.name for s in item["structures"]}
    rows = structure_statistics(item["data"], item.get("spacing"), image=item.get("image"), names=names)
    return [{k: v for k, v in row.items() if v is not None} for row in rows]


def write_export(item: dict, path) -> tuple[Path, Path]:
    """Write the label map and its legend; returns both paths."""
    from .atomic import write_bytes_atomic

    data, structures, geometry = item["data"], item["structures"], item.get("geometry")
    target, legend_path = export_paths(path, data.ndim, medical=geometry is not None)
    doc = LM.legend_document(structures, label_map=target.name, **item["info"])
    doc["statistics"] = _statistics(item)
    if target.name.lower().endswith(NIFTI):
        from .medical import write_mask

        write_mask(target, data, geometry, description=f"napari-vlsm: {item['info']['layer']}")  # atomic, own error
    try:
        if not target.name.lower().endswith(NIFTI):
            _write_raster(target, data, doc)
        write_bytes_atomic(legend_path, json.dumps(doc, indent=2, ensure_ascii=False).encode())
    except OSError as err:
        raise VLSMError(f"cannot write {target}: {err.strerror or err}; choose another folder") from None
    return target, legend_path
