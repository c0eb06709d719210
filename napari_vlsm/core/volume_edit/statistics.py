"""Per-structure statistics of a label map: size (mL, mm² or pixels), voxel count, intensity, slices.

As TotalSegmentator's ``--statistics`` and Slicer's *Segment statistics*: the volume comes from
the voxel spacing (mm³ / 1000 = mL), the mean and standard deviation of the image inside each
structure are in the image's own unit (Hounsfield units for CT), and the slice range is along
axis 0 (axial slices for a volume in canonical orientation). A 2D map gives the area in mm² when
its pixel spacing is known, in pixels otherwise. Rows are plain dicts (JSON and CSV alike).
"""

from __future__ import annotations

import csv
import io

import numpy as np

COLUMNS = ("value", "name", "voxels", "volume_ml", "area_mm2", "area_pixels", "mean", "std",
           "first_slice", "last_slice")


def _spacing(spacing, ndim: int):
    if spacing is None:
        return None
    spacing = tuple(float(s) for s in spacing)
    if len(spacing) != ndim or not all(np.isfinite(s) and s > 0 for s in spacing):
        return None  # unknown or broken spacing: sizes in voxels/pixels only
    return spacing


def structure_statistics(labels, spacing=None, image=None, names=None) -> list[dict]:
    """One row per non-zero value of ``labels`` (2D or 3D), in ascending order.

    ``spacing``: voxel size in mm per axis (None: unknown; then no mL / mm²). ``image``: the
    intensities on the same grid (None: no mean/std). ``names``: {value: name}.
    """
    labels = np.asarray(labels)
    if labels.ndim not in (2, 3):
        raise ValueError(f"statistics need a 2D or 3D label map; got shape {labels.shape}")
    if image is not None and tuple(np.shape(image)) != labels.shape:
        raise ValueError(f"the image {tuple(np.shape(image))} and label map {labels.shape} differ in shape")
    spacing = _spacing(spacing, labels.ndim)
    flat = labels.ravel().astype(np.int64)
    if flat.size and flat.min() < 0:
        raise ValueError("a label map holds values 0 and up; got negative values")
    counts = np.bincount(flat)  # one pass each: label maps of 512 x 512 x 300 stay fast
    values = [int(v) for v in np.flatnonzero(counts) if v != 0]
    if image is not None and values:
        img = np.asarray(image, np.float64).ravel()
        sums = np.bincount(flat, weights=img, minlength=counts.size)
        means = sums / np.maximum(counts, 1)
        squares = np.bincount(flat, weights=(img - means[flat]) ** 2, minlength=counts.size)
        stds = np.sqrt(squares / np.maximum(counts, 1))
    from scipy import ndimage

    boxes = ndimage.find_objects(labels.astype(np.int64, copy=False)) if labels.ndim == 3 else []
    rows = []
    for value in values:
        count = int(counts[value])
        row = dict.fromkeys(COLUMNS)
        row.update(value=value, name=(names or {}).get(value, str(value)), voxels=count)
        if labels.ndim == 3:
            if spacing is not None:
                row["volume_ml"] = round(count * float(np.prod(spacing)) / 1000.0, 6)
            first = boxes[value - 1][0]  # the structure's bounding box along axis 0
            row["first_slice"], row["last_slice"] = int(first.start), int(first.stop - 1)
        else:
            row["area_pixels"] = count
            if spacing is not None:
                row["area_mm2"] = round(count * spacing[0] * spacing[1], 4)
        if image is not None:
            row["mean"], row["std"] = round(float(means[value]), 4), round(float(stds[value]), 4)
        rows.append(row)
    return rows


def used_columns(rows) -> list[str]:
    """The columns that hold a value in some row (a 2D map has no mL, a map without image no mean)."""
    return [c for c in COLUMNS if any(r.get(c) is not None for r in rows)]


def to_csv(rows) -> str:
    columns = used_columns(rows) or ["value", "name", "voxels"]
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def summary_line(row) -> str:
    """'liver: 1534.2 mL, mean 56.1 ± 20.3' -- one structure in a few words (the dock's table tooltip)."""
    mean = f", mean {mean_text(row)}" if row.get("mean") is not None else ""
    return f"{row['name']}: {size_text(row, ml_digits=1)}{mean}"


def size_text(row, ml_digits: int = 2) -> str:
    """'12.34 mL', '5.0 mm²' or '812 voxels' / '812 pixels': a row's size in the best unit it has."""
    if row.get("volume_ml") is not None:
        return f"{row['volume_ml']:.{ml_digits}f} mL"
    if row.get("area_mm2") is not None:
        return f"{row['area_mm2']:.1f} mm²"
    return f"{row['voxels']} {'voxels' if row.get('first_slice') is not None else 'pixels'}"


def mean_text(row) -> str:
    """'56.1 ± 20.3' (the image inside the structure), '' when unknown."""
    return f"{row['mean']:.1f} ± {row['std']:.1f}" if row.get("mean") is not None else ""
