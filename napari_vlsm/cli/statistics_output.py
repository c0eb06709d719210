"""``predict --statistics``: one row per structure, for every kind of input, in one CSV and the summary.

A medical volume's rows carry its volume in mL (from the voxel spacing), a TIFF stack's too when its
tags give all three spacings (an ImageJ stack), a 2D image's the area in mm² when its resolution
tags give the pixel size (``core.image_files.pixel_spacing``), in pixels otherwise; the mean and std
of the image inside each structure when the image has one channel (HU for a CT). The columns are
``core.volume_edit.statistics``'; the file is ``outputs.statistics_path`` (``<stem>__statistics.csv``);
each output's summary record gets its row under ``"statistics"`` and the CSV under
``"statistics_path"``. predict (in process) and the batch tasks both call this.
"""

from __future__ import annotations

from pathlib import Path

from .outputs import statistics_path


def wanted(args) -> bool:
    return bool(getattr(args, "statistics", False))


def image_spacing(path) -> tuple | None:
    """The pixel (or voxel) size in mm of an image file, None when its tags do not say."""
    from ..core.image_files import pixel_spacing

    return pixel_spacing(path)


def intensities(image, shape):
    """The image as intensities on the mask's grid, or None (colour, or another shape)."""
    import numpy as np

    if image is None or tuple(np.shape(image)) != tuple(shape):
        return None
    return np.asarray(image)


def statistics_row(mask, spacing, image, prompt: str) -> dict:
    """One prompt's mask (non-zero = inside) as one row; an empty mask: 0 voxels (0 mL / 0 mm²)."""
    import numpy as np

    from ..core.errors import ImageError
    from ..core.volume_edit.statistics import COLUMNS, structure_statistics

    mask = (np.asarray(mask) != 0).astype(np.uint8)
    if mask.ndim not in (2, 3):
        raise ImageError(f"--statistics needs a 2D image, a (z, y, x) stack or a volume; got a mask of shape "
                         f"{mask.shape} (its masks are written; run without --statistics for the rest)")
    rows = structure_statistics(mask, spacing, image=intensities(image, mask.shape), names={1: prompt})
    if rows:
        return rows[0]
    row = {**dict.fromkeys(COLUMNS), "value": 1, "name": prompt, "voxels": 0}
    known = spacing is not None and len(spacing) == mask.ndim
    if mask.ndim == 3:
        row["volume_ml"] = 0.0 if known else None
    else:
        row.update(area_pixels=0, area_mm2=0.0 if known else None)
    return row


def label_map_rows(labels, spacing, image, prompts) -> list[dict]:
    """A label map's rows (value i + 1 = prompt i), structures absent from it left out."""
    import numpy as np

    from ..core.volume_edit.statistics import structure_statistics

    labels = np.asarray(labels)
    return structure_statistics(labels, spacing, intensities(image, labels.shape),
                                {i + 1: p for i, p in enumerate(prompts)})


def write_statistics(out_dir, stem, rows) -> str:
    """``<stem>__statistics.csv`` beside the masks (atomic); returns its path."""
    from ..core.volume_edit.statistics import to_csv
    from .outputs import write_bytes

    target = statistics_path(Path(out_dir).expanduser(), stem)
    write_bytes(target, to_csv(rows).encode())
    return str(target)


def attach(records, rows, out_dir, stem, label_map: bool = False) -> None:
    """Write the CSV; each mask's record gets its own row (``rows`` in the records' order), a label
    map's one record the list of its rows; every record gets the CSV's path."""
    if not records:
        return
    csv_path = write_statistics(out_dir, stem, rows)
    if label_map:
        records[0]["statistics"] = [_compact(r) for r in rows]
    else:
        for record, row in zip(records, rows, strict=True):
            record["statistics"] = _compact(row)
    for record in records:
        record["statistics_path"] = csv_path


def of_masks(records, path, stem, results, args, image=None) -> list[dict]:
    """--statistics of a 2D image's or a TIFF stack's masks as ``outputs.write_outputs`` wrote them
    (``results``: {prompt: Prediction} or {prompt: (mask, prob)}); ``image``: the input."""
    if not wanted(args):
        return records
    spacing = image_spacing(path)
    rows = [statistics_row(r[0] if isinstance(r, tuple) else r.mask, spacing, image, prompt)
            for prompt, r in results.items()]
    attach(records, rows, args.out, stem)
    return records


def _compact(row) -> dict:
    return {k: v for k, v in row.items() if v is not None and k != "value"}
