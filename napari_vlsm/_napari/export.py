"""The dock's "Export label map…": a mask layer -> a label map file + its JSON legend.

The same files as ``predict --multilabel``: ``<name>.png`` for a 2D image or ``<name>.tif`` for a
stack (the layer's own shape and values, 0 background, i for the i-th structure) and
``<name>.json`` (value -> name, prompt, colour, plus the image, threshold and provenance the layer
recorded). A mask of a scan opened as NIfTI/DICOM/NRRD/MHA (its grid in the layer's metadata, see
``medical_export``) is written as ``<name>.nii.gz`` on the scan's own voxel grid instead, the same
file as File > Save Layers with napari-vlsm's writer. All are written atomically in a worker; the
layer is copied on the GUI thread first, so painting on while it writes cannot tear the file.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from napari_vlsm.core import labelmap as LM
from napari_vlsm.core.errors import VLSMError

from . import layers as L

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


def is_medical(labels, image=None) -> bool:
    """True when the layer (or its image) carries a scan's grid: the export offers NIfTI."""
    from .reader import volume_metadata

    return any(volume_metadata(x) is not None for x in (labels, image) if x is not None)


def snapshot(labels, image=None) -> dict:
    """GUI thread: what the export writes, copied from the layer (with the scan's grid, if any)."""
    from .medical_export import geometry_for

    meta = L.output_meta(labels) or {}
    structures = L.structures_of(labels)
    data = np.array(labels.data)
    geometry = geometry_for(data.shape, labels=labels, image=image) if is_medical(labels, image) else None
    from .volume_actions import spacing_of

    pixels = None  # the image's values inside each structure go into the legend's statistics
    if image is not None and not getattr(image, "rgb", False) and tuple(image.data.shape) == data.shape:
        pixels = np.asarray(image.data)
    spacing = geometry.spacing if geometry is not None else spacing_of(labels)
    return {"data": data, "structures": structures, "geometry": geometry, "image": pixels, "spacing": spacing,
            "info": {k: meta[k] for k in KEYS if k in meta} | {"layer": labels.name}}


def _write_raster(target: Path, data, doc) -> None:
    import tifffile

    from napari_vlsm.core.atomic import atomic_path

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
    from napari_vlsm.core.volume_edit.statistics import structure_statistics

    if item["data"].ndim not in (2, 3):
        return []
    names = {s.value: s.name for s in item["structures"]}
    rows = structure_statistics(item["data"], item.get("spacing"), image=item.get("image"), names=names)
    return [{k: v for k, v in row.items() if v is not None} for row in rows]


def write_export(item: dict, path) -> tuple[Path, Path]:
    """Worker: write the label map and its legend; returns both paths."""
    from napari_vlsm.core.atomic import write_bytes_atomic

    data, structures, geometry = item["data"], item["structures"], item.get("geometry")
    target, legend_path = export_paths(path, data.ndim, medical=geometry is not None)
    doc = LM.legend_document(structures, label_map=target.name, **item["info"])
    doc["statistics"] = _statistics(item)
    if target.name.lower().endswith(NIFTI):
        from napari_vlsm.core.medical import write_mask

        write_mask(target, data, geometry, description=f"napari-vlsm: {item['info']['layer']}")  # atomic, own error
    try:
        if not target.name.lower().endswith(NIFTI):
            _write_raster(target, data, doc)
        write_bytes_atomic(legend_path, json.dumps(doc, indent=2, ensure_ascii=False).encode())
    except OSError as err:
        raise VLSMError(f"cannot write {target}: {err.strerror or err}; choose another folder") from None
    return target, legend_path


def start_export(session, labels, path, image=None):
    """GUI thread: copy the layer, write it in a worker, say where it went; returns the worker."""
    from napari.utils.notifications import show_info

    from . import texts, workers

    if image is None:  # the statistics need the image's values (HU for CT)
        image = L.image_of(session.viewer, labels)

    def done(paths):
        show_info(texts.info(f"Label map saved\n{paths[0]} (legend: {paths[1].name})"))

    return workers.start(write_export, snapshot(labels, image), path, what="exporting the label map",
                         on_return=done, group=session.workers)
