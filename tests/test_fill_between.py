"""core.volume_edit.fill_between: key slices untouched, shapes between them interpolated."""

from __future__ import annotations

import numpy as np
import pytest

from napari_vlsm.core.volume_edit.fill_between import (
    METHODS,
    annotated_slices,
    fill_between,
    fill_label_map,
    interpolate_pair,
)


def disk(shape, cy, cx, r):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2


def dice(a, b):
    return 2 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


@pytest.mark.parametrize("method", METHODS)
def test_keys_never_change_and_outside_is_left_alone(method):
    rng = np.random.default_rng(0)
    vol = rng.random((12, 40, 40)) > 0.7  # noisy keys: any change would show
    out = fill_between(vol, [2, 6, 9], method=method)
    for z in (0, 1, 2, 6, 9, 10, 11):
        assert np.array_equal(out[z], vol[z])
    assert not np.array_equal(out[4], vol[4])  # the slices between were written


@pytest.mark.parametrize("method", METHODS)
def test_growing_disk_is_interpolated(method):
    vol = np.zeros((11, 64, 64), bool)
    vol[0], vol[10] = disk((64, 64), 32, 32, 6), disk((64, 64), 32, 32, 16)
    out = fill_between(vol, [0, 10], method=method)
    truth = disk((64, 64), 32, 32, 11)
    assert dice(out[5], truth) > 0.95
    areas = out.sum(axis=(1, 2))
    assert np.all(np.diff(areas) >= 0)  # grows monotonically


def test_alignment_moves_a_drifting_structure():
    """Two disjoint disks: plain SDF gives two shrinking blobs, aligned gives one moving disk."""
    a, b = disk((64, 96), 32, 20, 8), disk((64, 96), 32, 76, 8)
    mid_truth = disk((64, 96), 32, 48, 8)
    plain = interpolate_pair(a, b, [0.5], method="sdf")[0]
    aligned = interpolate_pair(a, b, [0.5], method="aligned")[0]
    parts = interpolate_pair(a, b, [0.5], method="components")[0]
    assert dice(aligned, mid_truth) > 0.95 and dice(parts, mid_truth) > 0.95
    assert dice(plain, mid_truth) < 0.1


def test_split_keeps_both_branches():
    """One part above, two below (a vessel branching): the slice between holds both branches."""
    a = disk((64, 96), 32, 48, 14)
    b = disk((64, 96), 32, 30, 8) | disk((64, 96), 32, 66, 8)
    mid = interpolate_pair(a, b, [0.75], method="components")[0]
    assert mid[32, 32] and mid[32, 64]  # both branches present near the lower key


def test_structure_that_ends_vanishes_between_keys():
    a = disk((64, 64), 32, 32, 12)
    out = interpolate_pair(a, np.zeros_like(a), [0.2, 0.5, 0.8])
    assert out[0].sum() > 0 and out[2].sum() == 0
    assert out[0].sum() < a.sum()


def test_axis_and_spacing():
    vol = np.zeros((40, 11, 40), bool)
    vol[:, 0], vol[:, 10] = disk((40, 40), 20, 20, 5), disk((40, 40), 20, 20, 15)
    out = fill_between(vol, [0, 10], axis=1, spacing=(1.0, 5.0, 1.0))
    assert dice(out[:, 5], disk((40, 40), 20, 20, 10)) > 0.9
    assert np.array_equal(out[:, 0], vol[:, 0])


def test_label_map_fills_each_label_and_keeps_keys():
    labels = np.zeros((9, 50, 50), np.uint8)
    labels[0][disk((50, 50), 15, 15, 6)] = 1
    labels[8][disk((50, 50), 15, 15, 6)] = 1
    labels[0][disk((50, 50), 35, 35, 5)] = 2
    labels[8][disk((50, 50), 35, 35, 9)] = 2
    labels[4, 0, 0] = 0  # nothing between yet
    assert annotated_slices(labels) == [0, 8]
    out = fill_label_map(labels)
    assert np.array_equal(out[[0, 8]], labels[[0, 8]])
    assert dice(out[4] == 1, disk((50, 50), 15, 15, 6)) > 0.9
    assert dice(out[4] == 2, disk((50, 50), 35, 35, 7)) > 0.85


def test_bad_input():
    with pytest.raises(ValueError):
        fill_between(np.zeros((4, 4)), [0, 1])
    with pytest.raises(ValueError):
        fill_between(np.zeros((4, 4, 4)), [0, 9])
    with pytest.raises(ValueError):
        interpolate_pair(np.ones((4, 4)), np.ones((4, 4)), [0.5], method="nope")


def test_real_label_map_every_fifth_slice(shared_data):
    """TotalSegmentator's example map with every 5th axial slice kept: the filled slices come
    back close to the full map (measured 0.74 mean Dice per structure; the liver far higher)."""
    import nibabel as nib

    seg = np.asarray(nib.load(shared_data / "geometry/totalseg/example_seg.nii.gz").dataobj).astype(np.int32)
    labels = np.transpose(seg, (2, 1, 0))  # (z, y, x)
    keys = list(range(0, labels.shape[0], 5))
    sparse = np.zeros_like(labels)
    sparse[keys] = labels[keys]
    out = fill_label_map(sparse, keys, spacing=(3.0, 3.0, 3.0))
    between = [z for z in range(keys[0], keys[-1]) if z not in keys]
    assert np.array_equal(out[keys], labels[keys])
    liver = 5
    assert dice(out[between] == liver, labels[between] == liver) > 0.9
    plain = fill_label_map(sparse, keys, spacing=(3.0, 3.0, 3.0), method="sdf")
    scores = {}
    for name, result in (("components", out), ("sdf", plain)):
        values = [dice(result[between] == v, labels[between] == v) for v in np.unique(labels[between]) if v]
        scores[name] = np.mean(values)
    assert scores["components"] > scores["sdf"]
