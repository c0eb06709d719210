"""The dock's "Export label map…" of a scan's mask: NIfTI on the scan's own voxel grid + the JSON legend,
the same file as napari's File > Save Layers with napari-vlsm's writer (issue 10)."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

pytest.importorskip("napari")

from napari_vlsm._napari.reader import METADATA_KEY

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("one_thread")]
RAS_FROM_LPS = np.diag([-1.0, -1.0, 1.0])
WAIT_MS = 60_000
# axes permuted and two of them flipped: the canonical (z, y, x) array is not the file's (i, j, k)
PERMUTED = np.array([[0, 0, -2.0, 30.0], [0.9, 0, 0, -10.0], [0, -1.2, 0, 5.0], [0, 0, 0, 1]])


def synthetic_scan(tmp_path):
    scan = np.random.default_rng(0).integers(-200, 400, (20, 18, 6)).astype(np.int16)
    path = tmp_path / "scan.nii.gz"
    nib.save(nib.Nifti1Image(scan, PERMUTED), path)
    return path


def segmented(qtbot, make_napari_viewer, tiny_model_dir, tmp_path, scan_path, slice_index):
    from napari_vlsm._napari import layers as L
    from napari_vlsm._napari.dock import VLSMDock

    viewer = make_napari_viewer()
    (image,) = viewer.open(scan_path, plugin="napari-vlsm")
    dock = VLSMDock(viewer)
    viewer.window.add_dock_widget(dock, name="Text segmentation")
    dock.set_model_source(str(tiny_model_dir))
    dock.session.set_project(tmp_path / "project")
    viewer.dims.set_point(0, image.data_to_world((slice_index, 0, 0))[0])
    dock.segment.prompt.setCurrentText("liver")
    dock.segment.btn_slice.click()
    qtbot.waitUntil(lambda: not dock.session.job, timeout=WAIT_MS)
    labels = L.find_output(viewer, image, "liver")
    assert labels is not None
    return viewer, image, dock, labels


def export_and_check(qtbot, dock, image, labels, scan_path, out, voxel):
    labels.data[:] = 0
    labels.data[voxel] = 1  # one marked voxel: where does it land in the exported file?
    worker = dock.segment.export_to(labels, out)
    qtbot.waitUntil(lambda: out.with_name("liver.json").is_file(), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: not worker.is_running, timeout=WAIT_MS)
    saved, source = nib.load(out), nib.load(scan_path)
    assert saved.shape == source.shape
    np.testing.assert_allclose(saved.affine, source.affine, atol=1e-4)
    (ijk,) = np.argwhere(np.asarray(saved.dataobj))
    world = saved.affine @ np.append(ijk, 1.0)
    expected = RAS_FROM_LPS @ np.asarray(image.data_to_world(voxel))[::-1]  # napari world: LPS as (z, y, x)
    np.testing.assert_allclose(world[:3], expected, atol=1e-3)
    doc = json.loads(out.with_name("liver.json").read_text())
    assert doc["label_map"] == out.name and doc["labels"]["1"]["name"] == "liver"
    assert doc["image"] == image.name and doc["model_fingerprint"]


def test_export_of_a_permuted_scan_is_nifti_on_its_grid(qtbot, make_napari_viewer, tiny_model_dir, tmp_path):
    scan_path = synthetic_scan(tmp_path)
    viewer, image, dock, labels = segmented(qtbot, make_napari_viewer, tiny_model_dir, tmp_path, scan_path, 3)
    assert labels.metadata[METADATA_KEY] == image.metadata[METADATA_KEY]  # File > Save finds the grid itself
    export_and_check(qtbot, dock, image, labels, scan_path, tmp_path / "out" / "liver.nii.gz", (3, 2, 1))
    # napari's own File > Save Layers with our writer writes the same grid without the dock's help
    (path,) = labels.save(str(tmp_path / "saved.nii.gz"), plugin="napari-vlsm")
    np.testing.assert_array_equal(np.asarray(nib.load(path).dataobj),
                                  np.asarray(nib.load(tmp_path / "out" / "liver.nii.gz").dataobj))


def test_export_dialog_offers_and_defaults_to_nifti(qtbot, make_napari_viewer, tiny_model_dir, tmp_path,
                                                    monkeypatch):
    from qtpy.QtWidgets import QFileDialog

    scan_path = synthetic_scan(tmp_path)
    viewer, image, dock, labels = segmented(qtbot, make_napari_viewer, tiny_model_dir, tmp_path, scan_path, 1)
    asked = {}

    def dialog(parent, title, name, filters):
        asked.update(name=name, filters=filters)
        return str(tmp_path / "picked"), filters.split(";;")[0]  # no suffix typed: the scan's default

    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(dialog))
    dock.segment.choose_export()
    assert asked["name"].endswith(".nii.gz") and asked["filters"].startswith("NIfTI")
    qtbot.waitUntil(lambda: (tmp_path / "picked.json").is_file(), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: (tmp_path / "picked.nii.gz").is_file(), timeout=WAIT_MS)
    assert nib.load(tmp_path / "picked.nii.gz").shape == nib.load(scan_path).shape


def test_export_of_the_real_ct_is_on_its_grid(qtbot, make_napari_viewer, tiny_model_dir, tmp_path, shared_data):
    scan_path = shared_data / "geometry" / "totalseg" / "example_ct_sm.nii.gz"
    if not scan_path.is_file():
        pytest.skip(f"{scan_path} is absent")
    viewer, image, dock, labels = segmented(qtbot, make_napari_viewer, tiny_model_dir, tmp_path, scan_path, 12)
    export_and_check(qtbot, dock, image, labels, scan_path, tmp_path / "liver.nii.gz", (12, 40, 90))


def test_nifti_asked_for_a_plain_image_says_why(tmp_path):
    from napari_vlsm._napari.export import export_paths
    from napari_vlsm.core.errors import VLSMError

    assert export_paths(tmp_path / "m.nii.gz", 3, medical=True) == (tmp_path / "m.nii.gz", tmp_path / "m.json")
    assert export_paths(tmp_path / "m", 3, medical=True)[0] == tmp_path / "m.nii.gz"
    assert export_paths(tmp_path / "m.tif", 3, medical=True)[0] == tmp_path / "m.tif"
    assert export_paths(tmp_path / "m.png", 3)[0] == tmp_path / "m.tif"
    with pytest.raises(VLSMError, match="as .tif or .png"):
        export_paths(tmp_path / "m.nii.gz", 2)
