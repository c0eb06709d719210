"""Volume pairs in dataset folders: grids checked in canonical orientation, split by volume, training
slices carry their volume's window."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from napari_vlsm.core.datasets import read_folder, split_train_val
from napari_vlsm.core.medical import GridMismatchError
from napari_vlsm.core.volume_datasets import VolumeSample, expand_slices


def _pair(root, name, scan, labels, affine, mask_affine=None):
    (root / "images").mkdir(exist_ok=True)
    (root / "masks").mkdir(exist_ok=True)
    nib.save(nib.Nifti1Image(scan, affine), root / "images" / f"{name}.nii.gz")
    nib.save(nib.Nifti1Image(labels, affine if mask_affine is None else mask_affine), root / "masks" / f"{name}.nii")


def test_volume_pairs_with_reoriented_labels(tmp_path):
    rng = np.random.default_rng(0)
    scan = rng.integers(-1000, 1000, (10, 12, 8)).astype(np.int16)
    labels = np.zeros(scan.shape, np.uint8)
    labels[2:5, 3:9, 2] = 7
    labels[6, 1, 5] = 2
    affine = np.diag([0.8, 0.8, 2.0, 1.0])
    flip_j = affine @ np.array([[1, 0, 0, 0], [0, -1, 0, scan.shape[1] - 1], [0, 0, 1, 0], [0, 0, 0, 1]])
    _pair(tmp_path, "a", scan, labels[:, ::-1].copy(), affine, mask_affine=flip_j)  # same grid, other orientation
    (sample,) = read_folder(tmp_path, prompts=["liver"], window="soft-tissue")
    assert isinstance(sample, VolumeSample) and sample.window == (-160.0, 240.0)
    assert sample.image.shape == sample.mask.shape == (8, 12, 10)
    # the label voxel at file index (6, 1, 5) is foreground exactly where the scan's voxel (6, 1, 5) is
    ref = np.zeros(scan.shape, bool)
    ref[2:5, 3:9, 2] = ref[6, 1, 5] = True
    np.testing.assert_array_equal(sample.volume.geometry.to_original(sample.mask), ref)
    slices = sample.slices()
    filled = {2, 5}
    assert filled <= {s.slice_index for s in slices} and len(slices) == 4  # + as many empty slices
    one = slices[0]
    assert one.image.shape == one.mask.shape == (12, 10) and one.window == sample.window
    assert one.prompts == ("liver",) and one.name.startswith("a#z")


def test_mask_on_another_grid_is_refused(tmp_path):
    scan = np.zeros((6, 6, 4), np.int16)
    _pair(tmp_path, "b", scan, np.zeros((6, 6, 4), np.uint8), np.eye(4), mask_affine=np.diag([2.0, 1, 1, 1]))
    (sample,) = read_folder(tmp_path, prompts=["x"])
    with pytest.raises(GridMismatchError, match="resample"):
        _ = sample.mask


def test_split_keeps_each_volume_on_one_side(tmp_path):
    scan = np.random.default_rng(1).integers(0, 100, (6, 6, 5)).astype(np.int16)
    labels = np.ones(scan.shape, np.uint8)
    for i in range(6):
        _pair(tmp_path, f"case{i}", scan, labels, np.eye(4))
    train, val = split_train_val(read_folder(tmp_path, prompts=["x"]), 0.3)
    assert train and val
    train_slices, val_slices = expand_slices(train), expand_slices(val)
    assert {s.volume.name for s in train_slices}.isdisjoint({s.volume.name for s in val_slices})
    assert len(train_slices) == 5 * len(train)
