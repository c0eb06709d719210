"""The dock on a real (hidden) napari viewer with the tiny random model: prompt -> Segment ->
Labels layer -> correct -> Add correction / auto-save -> undo / revert; errors as notifications."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")

from napari_vlsm._napari import layers as L  # noqa: E402
from napari_vlsm._napari import texts  # noqa: E402
from napari_vlsm._napari.dock import VLSMDock  # noqa: E402

from dock_helpers import WAIT_MS, add_correction, idle, image_2d, segment  # noqa: E402

pytestmark = pytest.mark.gui


def test_dock_opens_through_the_manifest(make_napari_viewer):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-vlsm", "Text segmentation")
    assert isinstance(widget, VLSMDock)
    image = image_2d(viewer)  # napari hands the dock a proxy of this viewer: it must see its layers
    assert widget.segment.image.value is image or widget.segment.image.value == image


def test_segment_slice_makes_an_aligned_labels_layer(qtbot, make_dock):
    viewer, dock = make_dock()
    image = image_2d(viewer, scale=(0.5, 2.0), translate=(10.0, -5.0))
    assert dock.segment.image.value is image
    labels = segment(qtbot, dock, "Polyp")
    assert labels is not None and labels.name == "Polyp — scan"  # which structure, which image
    assert labels.data.shape == (64, 80)
    np.testing.assert_allclose(labels.scale, image.scale)
    np.testing.assert_allclose(labels.translate, image.translate)
    meta = labels.metadata["napari_vlsm"]
    assert meta["target"] == "polyp" and meta["prompt"] == "Polyp"
    assert meta["model_fingerprint"] == dock.session.segmenter.loaded.fingerprint
    assert meta["threshold"] == pytest.approx(0.5)
    assert "2d" in meta["slices"]
    entry = dock.session.proposals.get(labels, L.Plane((0, 1)))
    np.testing.assert_array_equal(labels.data != 0, entry.mask)
    assert dock.segment.prompt.itemText(0) == "Polyp"  # history
    assert viewer.layers.selection.active is labels and labels.mode == "paint"  # ready to correct
    assert labels.selected_label == L.LABEL


def test_the_layer_is_found_by_metadata_not_by_name(qtbot, make_dock):
    viewer, dock = make_dock()
    image_2d(viewer)
    labels = segment(qtbot, dock)
    labels.name = "my renamed mask"
    again = segment(qtbot, dock, "  POLYP ")
    assert again is labels
    assert sum(1 for layer in viewer.layers if L.output_meta(layer)) == 1


def test_undo_removes_the_proposal_in_one_step(qtbot, make_dock):
    viewer, dock = make_dock()
    image_2d(viewer)
    labels = segment(qtbot, dock)
    assert (labels.data != 0).any()
    labels.undo()
    assert not (labels.data != 0).any()
    labels.redo()
    assert (labels.data != 0).any()


def test_threshold_rethresholds_without_the_model(qtbot, make_dock, monkeypatch):
    viewer, dock = make_dock()
    image_2d(viewer)
    labels = segment(qtbot, dock)
    before = labels.data.copy()

    def no_model(*args, **kwargs):
        raise AssertionError("the threshold slider must not run the model")

    monkeypatch.setattr(dock.session.segmenter, "predict", no_model)
    dock.segment.threshold.setValue(0.05)
    qtbot.waitUntil(lambda: not np.array_equal(labels.data, before), timeout=WAIT_MS)
    entry = dock.session.proposals.get(labels, L.Plane((0, 1)))
    np.testing.assert_array_equal(labels.data != 0, entry.probability >= np.float16(0.05))
    assert (labels.data != 0).sum() > (before != 0).sum()
    labels.undo()  # the re-threshold is one undo step
    np.testing.assert_array_equal(labels.data, before)


def test_threshold_keeps_a_corrected_slice(qtbot, make_dock):
    viewer, dock = make_dock()
    image_2d(viewer)
    labels = segment(qtbot, dock)
    rows, cols = np.arange(10), np.arange(10)
    labels.data_setitem((rows, cols), 1 - labels.data[rows, cols])  # a real edit: flip 10 pixels
    edited = labels.data.copy()
    dock.segment.threshold.setValue(0.9)
    dock.segment.rethreshold()
    np.testing.assert_array_equal(labels.data, edited)


def test_revert_to_proposal_after_edits(qtbot, make_dock):
    viewer, dock = make_dock()
    image_2d(viewer)
    labels = segment(qtbot, dock)
    proposal = labels.data.copy()
    labels.selected_label = 1
    labels.brush_size = 9
    labels.paint((30, 30), 0)  # erase a blob, then draw another, as a user would
    labels.paint((5, 70), 1)
    assert not np.array_equal(labels.data, proposal)
    dock.segment.btn_revert.click()
    np.testing.assert_array_equal(labels.data, proposal)


def test_add_correction_stores_slice_mask_and_proposal(qtbot, make_dock):
    viewer, dock = make_dock()
    image = image_2d(viewer)
    labels = segment(qtbot, dock)
    proposal = labels.data != 0
    labels.data_setitem((np.arange(10, 20), np.arange(10, 20)), 1)
    add_correction(qtbot, dock)
    (sample,) = dock.session.project.store.samples("polyp")
    np.testing.assert_array_equal(sample.image, image.data)
    np.testing.assert_array_equal(sample.mask, labels.data != 0)
    np.testing.assert_array_equal(sample.proposal, proposal)
    assert sample.prompts == ("polyp",) and sample.source == "layer:scan" and sample.slice_index is None
    qtbot.waitUntil(lambda: dock.corrections.list.count() == 1, timeout=WAIT_MS)
    assert "1 for training" in dock.corrections.counts.text()
    dock.corrections.list.item(0).setSelected(True)
    dock.corrections.btn_remove.click()  # in a worker: a server project's delete is a request
    qtbot.waitUntil(lambda: dock.session.project.store.samples() == [], timeout=WAIT_MS)
    qtbot.waitUntil(lambda: dock.corrections.list.count() == 0, timeout=WAIT_MS)


def test_segment_all_slices_fills_one_stacked_layer(qtbot, make_dock):
    viewer, dock = make_dock()
    rng = np.random.default_rng(1)
    stack = viewer.add_image(rng.integers(-1000, 1000, (4, 64, 64)).astype(np.int16), name="ct",
                             scale=(3.0, 0.7, 0.7), translate=(1.0, 2.0, 3.0))
    labels = segment(qtbot, dock, "liver", all_slices=True)
    assert labels.data.shape == (4, 64, 64)
    np.testing.assert_allclose(labels.scale, stack.scale)
    np.testing.assert_allclose(labels.translate, stack.translate)
    planes = dock.session.proposals.planes(labels)
    assert sorted(p.index for p in planes) == [(0,), (1,), (2,), (3,)]
    for plane, entry in planes.items():
        np.testing.assert_array_equal(labels.data[plane.index[0]] != 0, entry.mask)
    assert dock.session.windows[str(stack.unique_id)] is not None  # one window for the volume
    labels.undo()  # all slices were one step
    assert not labels.data.any()


def test_segment_slice_of_a_stack_uses_the_viewed_slice(qtbot, make_dock):
    viewer, dock = make_dock()
    rng = np.random.default_rng(2)
    viewer.add_image(rng.integers(0, 255, (5, 48, 40), dtype=np.uint8), name="stack")
    viewer.dims.set_current_step(0, 3)
    labels = segment(qtbot, dock, "cell")
    assert labels.data.shape == (5, 48, 40)
    assert [p.index for p in dock.session.proposals.planes(labels)] == [(3,)]
    assert not labels.data[[0, 1, 2, 4]].any()


def test_auto_save_stores_exactly_the_edited_slices(qtbot, make_dock):
    viewer, dock = make_dock()
    rng = np.random.default_rng(3)
    viewer.add_image(rng.integers(0, 255, (4, 32, 32), dtype=np.uint8), name="stack")
    labels = segment(qtbot, dock, "lesion", all_slices=True)
    assert dock.session.project.store.samples() == []  # the model's own writes are not corrections
    dock.corrections.autosave.setChecked(True)
    labels.data_setitem((np.array([2, 2]), np.array([5, 6]), np.array([5, 5])), 1)
    labels.brush_size = 3
    labels.n_edit_dimensions = 2
    labels.paint((1, 10, 10), 1)
    qtbot.waitUntil(lambda: len(dock.session.project.store.samples()) == 2, timeout=WAIT_MS)
    samples = dock.session.project.store.samples("lesion")
    assert sorted(s.slice_index for s in samples) == [(1,), (2,)]
    for s in samples:
        np.testing.assert_array_equal(s.mask, labels.data[s.slice_index[0]] != 0)
        assert s.proposal is not None and s.window == (0.0, 255.0)


def test_selecting_a_mask_brings_back_its_image_and_prompt(qtbot, make_dock):
    viewer, dock = make_dock()
    first = image_2d(viewer)
    labels = segment(qtbot, dock, "optic disc")
    second = viewer.add_image(np.zeros((10, 10), np.uint8), name="other")
    assert dock.segment.image.value is second
    dock.segment.prompt.setCurrentText("vessel")
    viewer.layers.selection.active = labels
    assert dock.segment.image.value is first
    assert dock.segment.prompt.currentText() == "optic disc"


@pytest.mark.parametrize("case", ["empty prompt", "no image"])
def test_input_errors_notify_without_raising(qtbot, make_dock, notes, case):
    viewer, dock = make_dock()
    if case == "empty prompt":
        image_2d(viewer)
        dock.segment.prompt.setCurrentText("   ")
        expected = texts.EMPTY_PROMPT
    else:
        dock.segment.prompt.setCurrentText("polyp")
        expected = texts.NO_IMAGE
    dock.segment.btn_slice.click()
    assert any(expected in n for n in notes), notes
    assert dock.session.segmenter is None and idle(dock)


def test_a_broken_model_folder_notifies_and_the_dock_recovers(qtbot, make_dock, notes, tmp_path, tiny_model_dir):
    viewer, dock = make_dock()
    image_2d(viewer)
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text("{ not json")
    dock.set_model_source(str(broken))
    assert dock.model.source.text() == str(broken)
    dock.segment.prompt.setCurrentText("polyp")
    dock.segment.btn_slice.click()
    qtbot.waitUntil(lambda: any("broken-model" in n for n in notes), timeout=WAIT_MS)
    assert any("incomplete" in n for n in notes), notes
    qtbot.waitUntil(lambda: idle(dock), timeout=WAIT_MS)
    assert dock.segment.btn_slice.isEnabled()
    dock.set_model_source(str(tiny_model_dir))  # fixing the source makes it work
    assert segment(qtbot, dock) is not None


def test_add_correction_without_a_mask_explains(qtbot, make_dock, notes):
    viewer, dock = make_dock()
    image_2d(viewer)
    dock.segment.prompt.setCurrentText("polyp")
    dock.corrections.btn_add.click()
    assert any("no 'polyp' mask" in n for n in notes), notes


def test_touched_planes_reads_both_kinds_of_history_atoms():
    from types import SimpleNamespace

    masked = SimpleNamespace(slice_key=(slice(2, 4), slice(0, 3), slice(5, 8)),
                             mask=np.zeros((2, 3, 3), bool), old_values=None, new_value=1)
    masked.mask[1, 0, 0] = True  # only the second slice (index 3) changed
    fancy = ((np.array([0, 0, 5]), np.array([1, 2, 3]), np.array([4, 4, 4])), None, 1)
    assert L.touched_planes([masked, fancy], (1, 2), (6, 10, 10)) == {(3,), (0,), (5,)}
    assert L.touched_planes([fancy], (0, 1), (6, 10)) == {()}
