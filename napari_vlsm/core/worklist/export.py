"""The masks of done items, written where a user (or the next tool) expects them.

One file per item, named ``<id>_<input name>`` so two inputs called ``image.png`` in different
folders never overwrite each other and the files sort in worklist order:

- a volume (NIfTI, NRRD, MHA, DICOM series): a NIfTI label map on the scan's own voxel grid
  (``core.medical.write_mask``: same shape and affine, so other viewers overlay it exactly);
- a TIFF stack: a TIFF label stack of the same shape; a 2D image: a PNG label map;
- ``labels.json`` beside them: label value -> structure name (0 = background).

Every file is written atomically. A done item whose mask the dock saved (``<project>/masks``,
``ProjectLayout.masks``, named by :func:`item_files`) is copied from there byte for byte with its
own legend: that is the mask the user looked at when they said done. An item done elsewhere (the
server, another tool) has no such file: its label map is rebuilt from the project's stored
corrections of the item (``source`` = the item's path), so an export never needs the window that
made them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import WorklistError
from ..medical import formats
from .items import Item

LEGEND = "labels.json"


def output_path(item: Item, out_dir) -> Path:
    stem = formats.stem(item.path)
    suffix = {"volume": ".nii.gz", "stack": ".tif"}.get(item.kind, ".png")
    return Path(out_dir) / f"{item.id:04d}_{stem}{suffix}"


def item_files(item: Item, out_dir) -> tuple[Path, Path]:
    """An item's mask file in ``out_dir`` and its own legend beside it (``<id>_<name>.json``): the
    one rule for the dock's saved masks and the export."""
    mask = output_path(item, out_dir)
    base = mask.name[: -len(".nii.gz")] if mask.name.endswith(".nii.gz") else mask.stem
    return mask, mask.with_name(base + ".json")


def copy_saved(item: Item, masks_dir, out_dir) -> list[Path]:
    """Copy the mask the dock saved for ``item`` (and its legend) into ``out_dir``, byte-equal;
    [] when there is none (the caller rebuilds it from the corrections)."""
    from ..atomic import write_bytes_atomic

    sources = item_files(item, masks_dir)
    if not sources[0].is_file():
        return []
    copied = []
    for source, target in zip(sources, item_files(item, out_dir), strict=True):
        if source.is_file() and not (target.exists() and target.samefile(source)):
            write_bytes_atomic(target, source.read_bytes())
        if source.is_file():
            copied.append(target)
    return copied


def legend_of(targets) -> dict[int, str]:
    """Label values 1..n for the structures, in the order given (0 is the background)."""
    return {n: t for n, t in enumerate(dict.fromkeys(targets), start=1)}


def write_legend(out_dir, legend: dict[int, str]) -> Path:
    from ..atomic import write_bytes_atomic

    path = Path(out_dir) / LEGEND
    data = {"0": "background", **{str(k): v for k, v in sorted(legend.items())}}
    write_bytes_atomic(path, (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode())
    return path


def samples_of(item: Item, samples) -> list:
    """The stored corrections made on this item (matched by source path)."""
    mine = []
    for s in samples:
        if not s.source:
            continue
        try:
            same = Path(s.source).expanduser().resolve() == item.path
        except OSError:
            same = False
        if same:
            mine.append(s)
    return sorted(mine, key=lambda s: s.created)


def label_map(item: Item, samples, legend: dict[int, str], shape) -> np.ndarray:
    """Paint each correction into a label map of ``shape`` (later corrections win where they overlap)."""
    value_of = {t: v for v, t in legend.items()}
    labels = np.zeros(shape, np.uint8 if len(legend) < 256 else np.uint16)
    for s in samples:
        plane = labels
        if len(shape) == 3:
            if not s.slice_index:
                continue
            z = s.slice_index[0]
            if z >= shape[0]:
                raise WorklistError(f"a correction of {item.name} is on slice {z}, but the scan has {shape[0]}; "
                                    "the file changed since it was corrected")
            plane = labels[z]
        if s.mask.shape != plane.shape:
            raise WorklistError(f"a correction of {item.name} is {s.mask.shape}, the image {plane.shape}; "
                                "the file changed since it was corrected")
        plane[s.mask.astype(bool)] = value_of[s.target]
    return labels


def write_item_masks(item: Item, labels: np.ndarray, out_dir, geometry=None) -> Path:
    """Write one item's label map (canonical ``(z, y, x)`` for volumes, with their ``geometry``)."""
    from ..atomic import atomic_path

    path = output_path(item, out_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    if item.kind == "volume":
        if geometry is None:
            raise WorklistError(f"{item.name}: a volume's masks need its geometry (read it with read_item)")
        from ..medical import write_mask

        return write_mask(path, labels, geometry, description="napari-vlsm labels")
    with atomic_path(path) as tmp:
        if item.kind == "stack":
            import tifffile

            tifffile.imwrite(tmp, labels, photometric="minisblack", compression="zlib")
        else:
            import imageio.v3 as iio

            iio.imwrite(tmp, labels, extension=".png")
    return path


def export_done(worklist, store, out_dir, masks_dir=None) -> list[Path]:
    """Every done item's masks into ``out_dir``: the dock's saved mask from ``masks_dir`` when there
    is one, else rebuilt from ``store`` (a CorrectionStore); then labels.json (the rebuilt ones')."""
    from .reading import label_shape, read_item

    out_dir = Path(out_dir).expanduser()
    done = [i for i in worklist.items() if i.status == "done"]
    samples = store.samples() if done else []
    legend = legend_of(s.target for s in sorted(samples, key=lambda s: s.created))
    written = []
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for item in done:
            copied = copy_saved(item, masks_dir, out_dir) if masks_dir is not None else []
            if copied:
                written.extend(copied)
                continue
            data = read_item(item)
            geometry = getattr(data, "geometry", None)
            labels = label_map(item, samples_of(item, samples), legend, label_shape(item, data))
            written.append(write_item_masks(item, labels, out_dir, geometry))
        if done:
            written.append(write_legend(out_dir, legend))
    except OSError as err:
        raise WorklistError(f"cannot write into {out_dir}: {err.strerror or err}; choose another --out folder") from None
    return written
