"""Medical volumes in a real napari viewer: the npe2 reader puts the geometry into the layer, the
dock segments the canonical volume, the writer / export put the mask back on the scan's grid."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

pytest.importorskip("napari")

from napari_vlsm._napari.medical_export import attach_geometry, export_labels
from napari_vlsm._napari.reader import METADATA_KEY, get_reader

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("one_thread")]
RAS_FROM_LPS = np.diag([-1.0, -1.0, 1.0])
WAIT_MS = 60_000


def file_index_of(layer, index_zyx, affine):
    """The file's voxel at the world position napari shows ``index_zyx`` at (via the layer's transform)."""
    lps = np.asarray(layer.data_to_world(index_zyx))[::-1]  # napari world: LPS listed (z, y, x)
    ijk = np.linalg.inv(affine) @ np.append(RAS_FROM_LPS @ lps, 1.0)
    assert np.allclose(ijk[:3], np.round(ijk[:3]), atol=1e-3)
    return tuple(int(v) for v in np.round(ijk[:3]))


def check_layer_on_file(layer, data_ijk, affine, n=20):
    rng = np.random.default_rng(0)
    for _ in range(n):
        c = tuple(int(rng.integers(0, s)) for s in layer.data.shape)
        assert np.asarray(layer.data)[c] == data_ijk[file_index_of(layer, c, affine)]


@pytest.fixture
def base(shared_data):
    return shared_data / "geometry" / "totalseg"


def ct_in_dock(make_napari_viewer, base, tiny_model_dir, tmp_path, preset):
    """The real CT opened through the reader, the dock on it with the tiny model and ``preset``."""
    from napari_vlsm._napari.dock import VLSMDock

    viewer = make_napari_viewer()
    (image,) = viewer.open(base / "example_ct_sm.nii.gz", plugin="napari-vlsm")
    dock = VLSMDock(viewer)
    viewer.window.add_dock_widget(dock, name="Text segmentation")
    dock.set_model_source(str(tiny_model_dir))
    dock.session.set_project(tmp_path / "project")
    dock.segment.window_choice.set_preset(preset)
    return viewer, image, dock


def test_open_ct_nifti_through_the_reader(make_napari_viewer, base):
    viewer = make_napari_viewer()
    (layer,) = viewer.open(base / "example_ct_sm.nii.gz", plugin="napari-vlsm")
    source = nib.load(base / "example_ct_sm.nii.gz")
    assert layer.data.shape == (30, 101, 122)
    np.testing.assert_allclose(layer.scale, (3.0, 3.0, 3.0))
    np.testing.assert_allclose(layer.translate, (94.3018, -311.319, -185.0437), atol=1e-3)
    meta = layer.metadata[METADATA_KEY]
    assert meta["geometry"]["original_header"] and meta["geometry"]["original_affine_ras"]
    check_layer_on_file(layer, np.asarray(source.dataobj), source.affine)


def test_open_dicom_series_folder_and_one_file(make_napari_viewer, base, tmp_path):
    import SimpleITK as sitk

    folder = base / "example_ct_dicom"
    viewer = make_napari_viewer()
    (layer,) = viewer.open(folder, plugin="napari-vlsm")
    one_file = min(folder.iterdir())
    assert get_reader(str(one_file)) is not None and get_reader(str(tmp_path)) is None
    (again,) = viewer.open(one_file, plugin="napari-vlsm")
    assert again.data.shape == layer.data.shape == (20, 512, 512)
    np.testing.assert_allclose(layer.scale, (2.0, 0.9765625, 0.9765625))
    assert layer.metadata[METADATA_KEY]["modality"] == "CT"
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    sitk.WriteImage(reader.Execute(), str(tmp_path / "series.nii.gz"))
    reference = nib.load(tmp_path / "series.nii.gz")
    check_layer_on_file(layer, np.asarray(reference.dataobj), reference.affine)


def test_dock_segments_the_ct_and_the_writer_puts_the_mask_on_the_scan(qtbot, make_napari_viewer, tiny_model_dir,
                                                                       base, tmp_path):
    from napari_vlsm._napari import layers as L

    viewer, image, dock = ct_in_dock(make_napari_viewer, base, tiny_model_dir, tmp_path, "soft-tissue")
    viewer.dims.set_point(0, image.data_to_world((12, 0, 0))[0])  # look at slice 12
    dock.segment.prompt.setCurrentText("liver")
    dock.segment.btn_slice.click()
    qtbot.waitUntil(lambda: not dock.session.job, timeout=WAIT_MS)
    labels = L.find_output(viewer, image, "liver")
    assert labels is not None and dock.session.window_for(image) == (-160.0, 240.0)
    labels.data[:] = 0
    labels.data[12, 40, 90] = 1  # one marked voxel: where does it land in the saved file?
    (path,) = labels.save(str(tmp_path / "liver.nii.gz"), plugin="napari-vlsm")
    saved, source = nib.load(path), nib.load(base / "example_ct_sm.nii.gz")
    assert saved.shape == source.shape
    np.testing.assert_allclose(saved.affine, source.affine, atol=1e-4)
    (ijk,) = np.argwhere(np.asarray(saved.dataobj))
    assert tuple(ijk) == file_index_of(image, (12, 40, 90), source.affine)
    world = saved.affine @ np.append(ijk, 1.0)
    np.testing.assert_allclose(RAS_FROM_LPS @ np.asarray(image.data_to_world((12, 40, 90)))[::-1], world[:3],
                               atol=1e-3)


def test_export_labels_on_the_dicom_grid(make_napari_viewer, base, tmp_path):
    viewer = make_napari_viewer()
    (image,) = viewer.open(base / "example_ct_dicom", plugin="napari-vlsm")
    mask = np.zeros(image.data.shape, np.uint8)
    mask[3, 100, 400] = 1
    labels = viewer.add_labels(mask, scale=image.scale, translate=image.translate)
    assert attach_geometry(labels, image)
    out = export_labels(labels, tmp_path / "m.nii.gz")
    saved = nib.load(out)
    (ijk,) = np.argwhere(np.asarray(saved.dataobj))
    world = saved.affine @ np.append(ijk, 1.0)
    np.testing.assert_allclose(RAS_FROM_LPS @ np.asarray(image.data_to_world((3, 100, 400)))[::-1], world[:3],
                               atol=1e-3)


def test_writer_without_a_scan_says_why(make_napari_viewer, tmp_path):
    from napari_vlsm.core.medical import GridMismatchError

    viewer = make_napari_viewer()
    labels = viewer.add_labels(np.zeros((4, 5, 6), np.uint8))
    with pytest.raises(GridMismatchError, match="reader"):
        export_labels(labels, tmp_path / "x.nii.gz")


def test_window_choice_refuses_hounsfield_on_mr(make_napari_viewer, tmp_path):
    from napari_vlsm._napari.session import DockSession
    from napari_vlsm._napari.window_choice import WindowChoice
    from napari_vlsm.core.errors import ImageError

    viewer = make_napari_viewer()
    image = viewer.add_image(np.random.default_rng(0).integers(0, 900, (4, 16, 16)).astype(np.int16),
                             metadata={METADATA_KEY: {"modality": "MR"}})
    session = DockSession(viewer)
    choice = WindowChoice(session)
    choice.set_preset("p1-99")
    lo, hi = session.window_for(image)
    assert 0 <= lo < hi <= 900
    choice.set_preset("lung")
    with pytest.raises(ImageError, match="Hounsfield"):
        session.window_for(image)
    choice.set_preset("-5,77")
    assert session.window_for(image) == (-5.0, 77.0)


def test_launcher_image_accepts_a_dicom_folder(make_napari_viewer, base):
    from napari_vlsm._napari.launch import add_image, parse_args

    viewer = make_napari_viewer()
    add_image(viewer, parse_args(["--image", str(base / "example_ct_dicom")]))
    (layer,) = viewer.layers
    assert layer.data.shape == (20, 512, 512) and METADATA_KEY in layer.metadata


def test_a_saved_mask_reopens_as_labels_and_saves_on_the_same_grid(make_napari_viewer, tmp_path):
    from napari.layers import Labels

    from napari_vlsm.core.medical import read_volume, write_mask

    affine = np.array([[0, 0, -2.0, 30.0], [0.9, 0, 0, -10.0], [0, -1.2, 0, 5.0], [0, 0, 0, 1]])
    scan = np.random.default_rng(0).integers(0, 500, (9, 7, 5)).astype(np.int16)
    nib.save(nib.Nifti1Image(scan, affine), tmp_path / "scan.nii.gz")
    volume = read_volume(tmp_path / "scan.nii.gz")
    mask = np.zeros(volume.shape, np.uint8)
    mask[1, 2, 3] = 1
    write_mask(tmp_path / "mask.nii.gz", mask, volume.geometry)
    viewer = make_napari_viewer()
    (layer,) = viewer.open(tmp_path / "mask.nii.gz", plugin="napari-vlsm")
    assert isinstance(layer, Labels) and np.asarray(layer.data)[1, 2, 3] == 1
    np.testing.assert_allclose(layer.scale, volume.spacing)
    layer.data[2, 3, 4] = 1
    (path,) = layer.save(str(tmp_path / "again.nii.gz"), plugin="napari-vlsm")
    again = nib.load(path)
    np.testing.assert_allclose(again.affine, affine, atol=1e-4)
    assert np.count_nonzero(np.asarray(again.dataobj)) == 2


def test_a_correction_of_the_ct_stores_the_window_prediction_used(qtbot, make_napari_viewer, tiny_model_dir, base,
                                                                   tmp_path):
    """The dock's chosen preset is the window of the prediction AND of the stored correction."""
    from napari_vlsm._napari import layers as L

    viewer, image, dock = ct_in_dock(make_napari_viewer, base, tiny_model_dir, tmp_path, "lung")
    dock.segment.prompt.setCurrentText("lung")
    dock.segment.btn_slice.click()
    qtbot.waitUntil(lambda: not dock.session.job, timeout=WAIT_MS)
    assert L.find_output(viewer, image, "lung") is not None
    dock.corrections.btn_add.click()
    qtbot.waitUntil(lambda: not dock.corrections.saving, timeout=WAIT_MS)
    (sample,) = dock.session.project.store.samples()
    assert tuple(sample.window) == (-1350.0, 150.0) == dock.session.window_for(image)
    # and its image is the slice prediction saw, in HU (not normalised): with the stored window
    # the trainer makes the same model input
    z = int(viewer.dims.current_step[0])
    np.testing.assert_array_equal(np.asarray(sample.image), np.asarray(image.data[z]))
