"""npe2 writer: a Labels layer on a medical volume -> NIfTI (.nii.gz / .nii) on the scan's grid.

napari passes the layer's data and attributes (its metadata included). Labels the dock or
:func:`~napari_vlsm._napari.medical_export.attach_geometry` linked to their scan carry the grid;
otherwise the matching scan is looked up in the open viewer.
"""

from __future__ import annotations

from pathlib import Path


class _Attributes:
    def __init__(self, data, attributes: dict):
        self.data = data
        self.metadata = dict(attributes.get("metadata") or {})
        self.name = attributes.get("name", "labels")


def write_labels(path: str, data, attributes: dict) -> list[str]:
    from .medical_export import export_labels

    layer = _Attributes(data, attributes)
    target = Path(path)
    if not target.name.lower().endswith((".nii", ".nii.gz")):
        target = target.with_name(target.name + ".nii.gz")
    try:
        return [str(export_labels(layer, target, image=None))]
    except Exception as err:
        from napari_vlsm.core.errors import VLSMError

        if isinstance(err, VLSMError):
            from napari.utils.notifications import show_error

            from napari_vlsm._napari import texts

            show_error(texts.toast(f"Mask not saved\n{err}"))
            return []
        raise
