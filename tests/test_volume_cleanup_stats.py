"""core.volume_edit.cleanup and .statistics: real mm³ / mL from the spacing, nothing silently lost."""

from __future__ import annotations

import numpy as np
import pytest

from napari_vlsm.core.volume_edit.cleanup import CleanupError, CleanupOptions, clean_labels, clean_mask
from napari_vlsm.core.volume_edit.statistics import structure_statistics, summary_line, to_csv


def blobs():
    mask = np.zeros((10, 30, 30), bool)
    mask[2:8, 5:20, 5:20] = True  # the organ: 6*15*15 = 1350 voxels
    mask[4, 10, 10] = False  # an enclosed hole
    mask[1, 25, 25] = True  # a 1-voxel island
    mask[8:10, 24:28, 24:28] = True  # a 32-voxel island
    return mask


def test_defaults_change_nothing():
    mask = blobs()
    assert not CleanupOptions().any
    assert np.array_equal(clean_mask(mask, CleanupOptions()), mask)


def test_keep_largest_and_fill_holes():
    mask = blobs()
    largest = clean_mask(mask, CleanupOptions(keep_largest=True))
    assert largest.sum() == 1349 and not largest[1, 25, 25] and not largest[9, 25, 25]
    filled = clean_mask(mask, CleanupOptions(fill_holes=True))
    assert filled[4, 10, 10] and filled.sum() == mask.sum() + 1


def test_min_size_uses_mm3_not_voxels():
    mask = blobs()
    # 2 x 1 x 1 mm voxels: the 32-voxel island is 64 mm³, the 1-voxel one 2 mm³
    kept = clean_mask(mask, CleanupOptions(min_size_mm3=50), spacing=(2.0, 1.0, 1.0))
    assert kept[9, 25, 25] and not kept[1, 25, 25]
    dropped = clean_mask(mask, CleanupOptions(min_size_mm3=50), spacing=(1.0, 1.0, 1.0))
    assert not dropped[9, 25, 25]  # 32 mm³ at 1 mm voxels


def test_cleanup_that_removes_everything_is_refused():
    mask = np.zeros((5, 5, 5), bool)
    mask[2, 2, 2] = True
    with pytest.raises(CleanupError, match="whole structure"):
        clean_mask(mask, CleanupOptions(min_size_mm3=10))
    labels = mask.astype(np.uint8) * 3
    with pytest.raises(CleanupError, match="structure 3"):
        clean_labels(labels, CleanupOptions(min_size_mm3=10))


def test_label_map_cleanup_per_structure_never_paints_over_another():
    labels = np.zeros((6, 20, 20), np.uint8)
    labels[1:5, 2:10, 2:10] = 1
    labels[2, 5, 5] = 2  # a speck of 2 inside 1: a "hole" of 1 that is another structure
    labels[1:5, 12:18, 12:18] = 2
    labels[0, 0, 0] = 1  # an island of 1
    out = clean_labels(labels, CleanupOptions(keep_largest=True, fill_holes=True))
    assert out[0, 0, 0] == 0
    assert out[2, 5, 5] == 0  # structure 2's speck removed (not its largest part) ...
    assert out[1:5, 12:18, 12:18].min() == 2


def test_statistics_volume_mean_and_slices():
    labels = np.zeros((4, 5, 6), np.uint8)
    labels[1:3, 0:2, 0:3] = 1  # 12 voxels
    labels[3, 4, 5] = 7
    image = np.arange(labels.size, dtype=np.int16).reshape(labels.shape) - 100
    rows = structure_statistics(labels, spacing=(3.0, 0.5, 0.5), image=image, names={1: "liver"})
    liver, seven = rows
    assert liver["name"] == "liver" and liver["voxels"] == 12
    assert liver["volume_ml"] == pytest.approx(12 * 0.75 / 1000)
    inside = image[labels == 1]
    assert liver["mean"] == pytest.approx(inside.mean(), abs=1e-3)
    assert liver["std"] == pytest.approx(inside.std(), abs=1e-3)
    assert (liver["first_slice"], liver["last_slice"]) == (1, 2)
    assert seven["name"] == "7" and seven["voxels"] == 1
    assert "liver: 0.0 mL" in summary_line(liver)
    assert to_csv(rows).splitlines()[0].startswith("value,name,voxels,volume_ml")


def test_statistics_without_spacing_and_2d():
    rows = structure_statistics(np.ones((2, 3, 3), np.uint8), spacing=None)
    assert rows[0]["volume_ml"] is None and rows[0]["voxels"] == 18
    flat = np.zeros((4, 4), np.uint8)
    flat[:2, :3] = 1
    (row,) = structure_statistics(flat, spacing=(0.5, 0.25))
    assert row["area_pixels"] == 6 and row["area_mm2"] == pytest.approx(0.75)
    (row,) = structure_statistics(flat)
    assert row["area_mm2"] is None and "6 pixels" in summary_line(row)
