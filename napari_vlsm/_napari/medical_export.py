"""Save a Labels layer drawn on a medical volume as NIfTI on the scan's own voxel grid.

Used by the npe2 writer (File > Save Selected Layers... > .nii.gz) and meant for the dock's Export
button: ``export_labels(labels, path, image=None)``. The grid comes from the labels' own metadata
(:func:`attach_geometry` puts it there), else from ``image``, else from the one Image layer of the
viewer opened by the napari-vlsm reader that the dock made the labels for, or whose shape matches.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from napari_vlsm.core.medical.errors import GridMismatchError

from .reader import METADATA_KEY, volume_metadata


def attach_geometry(labels, image) -> bool:
    """Give ``labels`` the medical description of ``image`` (so it saves on its grid); True if it had one."""
    doc = volume_metadata(image)
    if doc is None:
        return False
    labels.metadata = {**labels.metadata, METADATA_KEY: doc}
    return True


def _candidates(labels):
    try:
        from napari import current_viewer

        viewer = current_viewer()
    except Exception:  # noqa: BLE001 - no viewer (headless writer call): nothing to search
        viewer = None
    if viewer is None:
        return []
    scans = [layer for layer in viewer.layers if layer is not labels and volume_metadata(layer) is not None]
    made_for = ((getattr(labels, "metadata", None) or {}).get("napari_vlsm") or {}).get("image_id")
    exact = [layer for layer in scans if made_for is not None and str(layer.unique_id) == made_for]
    return exact or scans  # the dock's output layers name their image; others match by shape


def geometry_for(labels_shape, labels=None, image=None):
    """The Geometry the labels are saved on; GridMismatchError naming the fix when there is none."""
    from napari_vlsm.core.medical import Geometry

    shape = tuple(int(n) for n in labels_shape)
    docs = [volume_metadata(x) for x in (labels, image) if x is not None]
    docs = [d for d in docs if d is not None]
    if not docs and labels is not None:
        docs = [volume_metadata(layer) for layer in _candidates(labels)
                if tuple(layer.data.shape) == shape]
        if len(docs) > 1:
            raise GridMismatchError("several opened scans have the shape of these labels; select the scan in the "
                                    "dock (or save from the dock's Export) so the mask goes onto the right grid")
    if not docs:
        raise GridMismatchError("these labels belong to no scan opened as NIfTI/DICOM/NRRD/MHA, so their grid is "
                                "unknown; open the scan with napari-vlsm's reader and draw the labels on it")
    geometry = Geometry.from_dict(docs[0]["geometry"])
    if geometry.shape != shape:
        raise GridMismatchError(f"the labels are {shape} but their scan is {geometry.shape}; draw them on the "
                                "scan's own grid")
    return geometry


def export_labels(labels, path, image=None) -> Path:
    """Write a Labels layer (or array with ``image``) as NIfTI on the scan's grid; returns the path."""
    from napari_vlsm.core.medical import write_mask

    data = np.asarray(labels.data if hasattr(labels, "data") else labels)
    layer = labels if hasattr(labels, "data") else None
    geometry = geometry_for(data.shape, labels=layer, image=image)
    name = getattr(layer, "name", "labels")
    return write_mask(path, data, geometry, description=f"napari-vlsm: {name}")
