"""The dock's "Export label map…": a mask layer -> a label map file + its JSON legend.

The same files as ``predict --multilabel``: ``<name>.png`` for a 2D image or ``<name>.tif`` for a
stack (the layer's own shape and values, 0 background, i for the i-th structure) and
``<name>.json`` (value -> name, prompt, colour, plus the image, threshold and provenance the layer
recorded). A mask of a scan opened as NIfTI/DICOM/NRRD/MHA (its grid in the layer's metadata, see
``medical_export``) is written as ``<name>.nii.gz`` on the scan's own voxel grid instead, the same
file as File > Save Layers with napari-vlsm's writer. All are written atomically in a worker; the
layer is copied on the GUI thread first (:func:`snapshot`), so painting on while it writes cannot tear
the file; the writing itself is ``core.label_export.write_export``.
"""

from __future__ import annotations

import numpy as np

# The writer is the core's (core/label_export.py: the Series section and the server write the same
# files); export_paths and write_export stay importable from here.
from napari_vlsm.core.label_export import KEYS, export_paths, write_export  # noqa: F401 - re-exported

from . import layers as L


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
