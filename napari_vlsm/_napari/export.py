"""The dock's "Export label map…": a mask layer -> a label map file + its JSON legend.

The same files as ``predict --multilabel``: ``<name>.png`` for a 2D image or ``<name>.tif`` for a
stack (the layer's own shape and values, 0 background, i for the i-th structure) and
``<name>.json`` (value -> name, prompt, colour, plus the image, threshold and provenance the layer
recorded). Both are written atomically in a worker; the layer is copied on the GUI thread first,
so painting on while it writes cannot tear the file.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from napari_vlsm.core import labelmap as LM
from napari_vlsm.core.errors import VLSMError

from . import layers as L

KEYS = ("image", "threshold", "model_source", "model_fingerprint", "adapter_path", "adapter_sha256", "time")


def export_paths(path, ndim: int) -> tuple[Path, Path]:
    """The label-map file (suffix by dimension unless a TIFF is asked for) and its legend beside it."""
    path = Path(path).expanduser()
    suffix = path.suffix.lower()
    if suffix not in (".png", ".tif", ".tiff") or (suffix == ".png" and ndim != 2):
        path = path.with_suffix(".png" if ndim == 2 else ".tif")
    return path, path.with_suffix(".json")


def snapshot(labels) -> dict:
    """GUI thread: what the export writes, copied from the layer."""
    meta = L.output_meta(labels) or {}
    structures = L.structures_of(labels)
    return {"data": np.array(labels.data), "structures": structures,
            "info": {k: meta[k] for k in KEYS if k in meta} | {"layer": labels.name}}


def write_export(item: dict, path) -> tuple[Path, Path]:
    """Worker: write the label map and its legend; returns both paths."""
    import tifffile

    from napari_vlsm.core.atomic import atomic_path, write_bytes_atomic

    data, structures = item["data"], item["structures"]
    target, legend_path = export_paths(path, data.ndim)
    doc = LM.legend_document(structures, label_map=target.name, **item["info"])
    try:
        with atomic_path(target) as tmp:
            if target.suffix == ".png":
                import imageio.v3 as iio

                iio.imwrite(tmp, data, extension=".png")
            else:
                tifffile.imwrite(tmp, data, photometric="minisblack", compression="zlib",
                                 metadata={"legend": json.dumps(doc["labels"], ensure_ascii=False)})
        write_bytes_atomic(legend_path, json.dumps(doc, indent=2, ensure_ascii=False).encode())
    except OSError as err:
        raise VLSMError(f"cannot write {target}: {err.strerror or err}; choose another folder") from None
    return target, legend_path


def start_export(session, labels, path):
    """GUI thread: copy the layer, write it in a worker, say where it went; returns the worker."""
    from napari.utils.notifications import show_info

    from . import texts, workers

    def done(paths):
        show_info(texts.info(f"label map saved: {paths[0]} (legend: {paths[1].name})"))

    return workers.start(write_export, snapshot(labels), path, what="exporting the label map", on_return=done,
                         group=session.workers)
