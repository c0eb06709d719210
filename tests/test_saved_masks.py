"""An item's saved mask (core/worklist/saved_masks.py): written by the dock's label-map writer into
the project's masks/ folder, read back with its legend, set aside when it no longer fits."""

from __future__ import annotations

import json

import imageio.v3 as iio
import nibabel as nib
import numpy as np
import pytest

from napari_vlsm.core import labelmap as LM
from napari_vlsm.core.worklist import Worklist, read_item
from napari_vlsm.core.worklist.saved_masks import mask_files, read_saved, set_aside, write_saved

STRUCTURES = [{"value": 1, "name": "liver", "prompt": "liver"}, {"value": 3, "prompt": "Left Kidney"}]


def _item(project, path):
    with Worklist(project) as wl:
        (item,) = wl.add([path]).added
    return item


def test_a_scan_mask_lands_on_its_grid_and_reads_back(tmp_path):
    affine = np.array([[-0.8, 0, 0, 10], [0, 0.9, 0, -20], [0, 0, 2.5, 5], [0, 0, 0, 1.0]])
    nib.save(nib.Nifti1Image(np.arange(7 * 6 * 4, dtype=np.int16).reshape(7, 6, 4), affine), tmp_path / "ct.nii.gz")
    project = tmp_path / "project"
    item = _item(project, tmp_path / "ct.nii.gz")
    volume = read_item(item)
    labels = np.zeros(volume.shape, np.uint8)
    labels[1:3, 2:4, 1:5] = 1
    labels[0, 0, 0] = 3
    path = write_saved(item, project, labels, STRUCTURES, geometry=volume.geometry, image=volume.array,
                       info={"threshold": 0.4, "extra": "dropped"})
    target, legend = mask_files(item, project)
    assert path == target and target.parent == project / "masks" and target.name.endswith(".nii.gz")
    written = nib.load(target)
    assert written.shape == (7, 6, 4) and np.allclose(written.affine, affine)
    labels_back, prompts = read_saved(target, legend)
    assert np.array_equal(labels_back, labels) and prompts == ["liver", "Left Kidney"]
    doc = json.loads(legend.read_text())
    assert doc["threshold"] == 0.4 and "extra" not in doc and doc["layer"] == item.name
    assert [s.name for s in LM.read_legend(doc)] == ["liver", "left kidney"]
    stats = {row["value"]: row for row in doc["statistics"]}
    assert stats[1]["voxels"] == 16 and "volume_ml" in stats[1]  # the scan's spacing is known


def test_a_2d_mask_set_aside_keeps_both_files(tmp_path):
    iio.imwrite(tmp_path / "f.png", np.zeros((10, 12, 3), np.uint8))
    project = tmp_path / "project"
    item = _item(project, tmp_path / "f.png")
    target, legend = mask_files(item, project)
    assert read_saved(target, legend) is None
    labels = np.zeros((10, 12), np.uint8)
    labels[2:5, 3:9] = 1
    write_saved(item, project, labels, STRUCTURES[:1])
    assert target.suffix == ".png" and np.array_equal(read_saved(target, legend)[0], labels)
    moved = set_aside(target, legend)
    assert not target.exists() and not legend.exists()
    kept = sorted(p.name for p in target.parent.iterdir())
    assert moved.name in kept and len(kept) == 2 and all(".old-" in n for n in kept)
    assert np.array_equal(iio.imread(moved), labels)


def test_a_volume_needs_its_grid_and_a_damaged_legend_names_the_file(tmp_path):
    from napari_vlsm.core.errors import ImageError, VLSMError

    nib.save(nib.Nifti1Image(np.zeros((4, 5, 3), np.int16), np.eye(4)), tmp_path / "mr.nii.gz")
    project = tmp_path / "project"
    item = _item(project, tmp_path / "mr.nii.gz")
    with pytest.raises(VLSMError, match="voxel grid"):
        write_saved(item, project, np.zeros((3, 5, 4), np.uint8), STRUCTURES[:1])
    write_saved(item, project, np.zeros((3, 5, 4), np.uint8), STRUCTURES[:1], geometry=read_item(item).geometry)
    target, legend = mask_files(item, project)
    legend.write_text("{not json")
    with pytest.raises(ImageError, match=target.name):
        read_saved(target, legend)
