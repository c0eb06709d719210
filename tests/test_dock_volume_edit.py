"""The dock's Volume section in a real window: corrected slices kept, Fill between slices, 3D
clean-up, statistics and the display window (issue 20)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

pytest.importorskip("napari")

from dock_helpers import WAIT_MS, idle, segment  # noqa: E402

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("one_thread")]


def disk(shape, cy, cx, r):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2


def correct(labels, z, mask):
    """A user's edit of slice z (data_setitem is what napari's paint tools end in)."""
    new = np.where(mask, 1, 0).astype(labels.data.dtype)
    idx = np.nonzero(labels.data[z] != new)
    labels.data_setitem((np.full(idx[0].shape, z), *idx), new[idx])


def test_fill_between_then_segment_all_keeps_corrections(qtbot, make_dock, notes, force_dice):
    from napari_vlsm._napari import slice_status
    from napari_vlsm.core.volume_edit.fill_between import fill_between

    viewer, dock = make_dock()
    rng = np.random.default_rng(0)
    viewer.add_image(rng.integers(0, 255, (30, 48, 48), dtype=np.uint8), name="scan")
    labels = segment(qtbot, dock, "liver", all_slices=True)
    assert len(dock.session.proposals.planes(labels)) == 30
    viewer.layers.selection.active = labels
    # Fewer than two corrected slices: a clear message, nothing changed
    correct(labels, 10, disk((48, 48), 20, 20, 6))
    before = labels.data.copy()
    dock.volume.btn_fill.click()
    assert any("Correct 2 slices first" in n for n in notes)
    assert np.array_equal(labels.data, before)

    correct(labels, 20, disk((48, 48), 28, 26, 12))
    dock.volume.refresh()
    assert dock.volume.corrected.text().endswith(": 10, 20")
    corrected = labels.data[[10, 20]].copy()
    before_fill = labels.data.copy()
    dock.volume.btn_fill.click()
    expected = fill_between(before_fill == 1, [10, 20])
    assert np.array_equal(labels.data[[10, 20]], corrected)
    assert np.array_equal(labels.data[11:20] == 1, expected[11:20])
    assert disk((48, 48), 24, 23, 9)[labels.data[15] == 1].mean() > 0.8  # in between, in between
    assert np.array_equal(labels.data[:10], before[:10]) and np.array_equal(labels.data[21:], before[21:])
    filled = slice_status.filled_planes(labels, dock.session.proposals, (1, 2))
    assert [p.index[0] for p in filled] == list(range(11, 20))
    # one undo step takes the whole fill back, redo puts it again
    after_fill = labels.data.copy()
    labels.undo()
    assert np.array_equal(labels.data, before_fill)
    labels.redo()
    assert np.array_equal(labels.data, after_fill)

    # Store the two corrections, finetune (a real run, a few steps), Segment all again: corrected and
    # filled slices stay, the rest is re-segmented with the new adapter
    book = dock.session.proposals
    from napari_vlsm._napari import layers as L

    probs = {z: book.get(labels, L.Plane((1, 2), (z,))).probability.copy() for z in range(30)}
    for z in (10, 20):
        viewer.dims.set_current_step(0, z)
        dock.corrections.btn_add.click()
        qtbot.waitUntil(lambda: not dock.corrections.saving and idle(dock), timeout=WAIT_MS)
    assert dock.session.project.store.counts() == {"train": 1, "val": 1}
    force_dice(0.2, 0.6)  # the new adapter is adopted
    dock.advanced.steps.setValue(3)
    dock.finetune.btn_train.click()
    qtbot.waitUntil(lambda: idle(dock), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: idle(dock), timeout=WAIT_MS)
    adapter = dock.session.segmenter.adapter_path
    assert adapter is not None
    assert np.array_equal(labels.data, after_fill)  # the finetune changed no slice the user sees as kept
    dock.segment.btn_all.click()
    qtbot.waitUntil(lambda: idle(dock), timeout=WAIT_MS)
    assert np.array_equal(labels.data[10:21], after_fill[10:21])
    for z in list(range(10)) + list(range(21, 30)):
        entry = book.get(labels, L.Plane((1, 2), (z,)))
        assert not np.array_equal(entry.probability, probs[z])  # the adapter's proposal
        assert np.array_equal(labels.data[z], entry.values)
    for z in range(10, 21):
        assert L.output_meta(labels)["slices"][str(z)].get("adapter_sha256") is None  # not re-segmented
    assert any("corrected slice(s) kept" in n for n in notes)
    # editing a filled slice makes it a correction; revert to proposal still works per slice
    correct(labels, 15, disk((48, 48), 5, 5, 3))
    assert [p.index[0] for p in slice_status.corrected_planes(labels, book, (1, 2))] == [10, 15, 20]
    viewer.dims.set_current_step(0, 15)
    dock.segment.btn_revert.click()
    assert np.array_equal(labels.data[15], after_fill[15])
    # the explicit choice replaces corrections too
    dock.segment.resegment_corrected.setChecked(True)
    dock.segment.btn_all.click()
    qtbot.waitUntil(lambda: idle(dock), timeout=WAIT_MS)
    assert L.output_meta(labels)["slices"]["10"]["adapter_sha256"] is not None
    assert np.array_equal(labels.data[10], book.get(labels, L.Plane((1, 2), (10,))).values)


def test_corrections_on_another_axis_are_refused(qtbot, make_dock, notes):
    viewer, dock = make_dock()
    rng = np.random.default_rng(1)
    viewer.add_image(rng.integers(0, 255, (12, 40, 40), dtype=np.uint8), name="scan")
    viewer.dims.order = (1, 0, 2)  # a coronal view: slices along axis 1
    labels = segment(qtbot, dock, "liver", all_slices=True)
    for y in (5, 30):
        new = labels.data.copy()
        new[:, y] = 0
        new[2:9, y, 10:30] = 1
        idx = np.nonzero(labels.data != new)
        labels.data_setitem(idx, new[idx])
    viewer.layers.selection.active = labels
    viewer.dims.order = (0, 1, 2)  # back to axial
    before = labels.data.copy()
    dock.volume.btn_fill.click()
    assert any("Corrections are on another axis" in n for n in notes)
    assert np.array_equal(labels.data, before)
    viewer.dims.order = (1, 0, 2)
    dock.volume.btn_fill.click()
    assert np.all(labels.data[2:9, 17, 10:30] == 1)  # filled between the coronal slices 5 and 30


def test_ct_display_window_cleanup_and_statistics(qtbot, make_dock, notes, tmp_path):
    """A CT NIfTI opens in the soft-tissue window; clean-up is one undo step; statistics in mL."""
    import json

    data = np.full((30, 28, 8), -1000, np.int16)  # air around a soft-tissue block, HU
    data[4:24, 4:24, 1:7] = 50
    affine = np.diag([0.8, 0.8, 2.5, 1.0])
    nib.save(nib.Nifti1Image(data, affine), tmp_path / "ct.nii.gz")
    viewer, dock = make_dock()
    (image,) = viewer.open(tmp_path / "ct.nii.gz", plugin="napari-vlsm")
    assert tuple(image.contrast_limits) == (-160.0, 240.0)  # W400 L40, not the model's auto window
    assert dock.session.window_preset == "auto"  # the model's window is its own choice
    dock.segment.image.value = image
    dock.segment.refresh_context()
    assert dock.volume.display.currentData() == "soft-tissue"
    dock.volume.display.setCurrentIndex(dock.volume.display.findData("lung"))
    dock.volume.apply_display()
    assert tuple(image.contrast_limits) == (-1350.0, 150.0)

    labels = segment(qtbot, dock, "liver", all_slices=True)
    viewer.layers.selection.active = labels
    with labels.block_history():
        labels.data[:] = 0
        labels.data[2:6, 5:15, 5:15] = 1  # the organ: 400 voxels
        labels.data[7, 20, 20] = 1  # a speck
    labels.refresh()
    dock.volume.min_size.setValue(10)  # 10 mm³: the speck is 0.8 * 0.8 * 2.5 = 1.6 mm³
    dock.volume.btn_clean.click()
    assert labels.data[7, 20, 20] == 0 and labels.data.sum() == 400
    labels.undo()
    assert labels.data[7, 20, 20] == 1
    dock.volume.min_size.setValue(1e6)
    before = labels.data.copy()
    dock.volume.btn_clean.click()
    assert any("Clean-up would remove it all" in n for n in notes)
    assert np.array_equal(labels.data, before)

    rows = dock.volume.show_statistics()
    (row,) = rows
    assert row["voxels"] == 401 and row["volume_ml"] == pytest.approx(401 * 1.6 / 1000)
    assert dock.volume.table.item(0, 1).text() == f"{401 * 1.6 / 1000:.2f} mL"
    out = tmp_path / "liver.nii.gz"
    worker = dock.segment.export_to(labels, out)
    qtbot.waitUntil(lambda: out.with_name("liver.json").is_file(), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: not worker.is_running, timeout=WAIT_MS)
    written = nib.load(out)
    voxel_ml = abs(np.linalg.det(written.affine[:3, :3])) / 1000.0
    (stat,) = json.loads(out.with_name("liver.json").read_text())["statistics"]
    assert stat["volume_ml"] == pytest.approx(np.count_nonzero(np.asarray(written.dataobj)) * voxel_ml)
    assert stat["mean"] == pytest.approx(float(data[np.asarray(written.dataobj) != 0].mean()))
