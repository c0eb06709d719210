"""Several structures in the dock (real hidden napari viewer, tiny random model): one label-map
layer per image, named + coloured labels, legend/picker, re-threshold, undo, revert, presets, and
corrections stored one sample per structure per slice."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")

from napari_vlsm._napari import layers as L  # noqa: E402
from napari_vlsm.core import labelmap as LM  # noqa: E402

from dock_helpers import WAIT_MS, add_correction, idle, image_2d  # noqa: E402

pytestmark = pytest.mark.gui
ORGANS = ["liver", "spleen", "left kidney"]


def segment_many(qtbot, dock, text="liver; spleen; left kidney", all_slices=False):
    dock.segment.prompt.setCurrentText(text)
    (dock.segment.btn_all if all_slices else dock.segment.btn_slice).click()
    qtbot.waitUntil(lambda: idle(dock), timeout=WAIT_MS)
    return L.find_output(dock.viewer, dock.segment.image.value, text)


def expected(dock, pixels, prompts, threshold=0.5, window=None):
    """What the rule gives from the engine's own probabilities (float16, as the dock keeps them)."""
    preds = dock.session.segmenter.predict(pixels, prompts, window=window)
    return LM.compose(np.stack([p.probability for p in preds]).astype(np.float16), threshold)


def test_several_structures_make_one_named_coloured_label_layer(qtbot, make_dock):
    viewer, dock = make_dock()
    image = image_2d(viewer)
    labels = segment_many(qtbot, dock)
    outputs = [layer for layer in viewer.layers if L.output_meta(layer)]
    assert outputs == [labels]  # one layer for all three
    assert labels.name == "liver, spleen, left kidney — scan"
    np.testing.assert_array_equal(labels.data, expected(dock, image.data, ORGANS))
    assert set(np.unique(labels.data)) <= {0, 1, 2, 3}
    meta = labels.metadata["napari_vlsm"]
    assert meta["target"] == "liver; spleen; left kidney" and meta["prompt"] == "liver; spleen; left kidney"
    legend = LM.legend(ORGANS)
    assert L.structures_of(labels) == legend
    for s in legend:  # the colour of each value is the legend's
        np.testing.assert_allclose(labels.colormap.map(np.array([s.value]))[0][:3],
                                   [int(s.colour[i:i + 2], 16) / 255 for i in (1, 3, 5)], atol=1e-3)
    assert list(labels.features["name"]) == ["background", *ORGANS]
    assert list(labels.features["index"]) == [0, 1, 2, 3]
    assert dock.segment.legend.isVisibleTo(dock) and dock.segment.legend.entries() == [
        (1, "1  liver"), (2, "2  spleen"), (3, "3  left kidney")]
    assert viewer.layers.selection.active is labels and labels.mode == "paint"
    assert dock.segment.prompt.itemText(0) == "liver; spleen; left kidney"
    # typed differently, the same structures find the same layer
    assert segment_many(qtbot, dock, "Liver ;spleen\nleft  kidney") is labels


def test_rethreshold_recomposes_without_the_model_and_undoes(qtbot, make_dock, monkeypatch):
    viewer, dock = make_dock()
    image = image_2d(viewer)
    labels = segment_many(qtbot, dock, "liver; spleen")
    before = labels.data.copy()
    want = expected(dock, image.data, ["liver", "spleen"], threshold=0.05)
    monkeypatch.setattr(dock.session.segmenter, "predict", lambda *a, **k: pytest.fail("model called"))
    dock.segment.threshold.setValue(0.05)
    qtbot.waitUntil(lambda: not np.array_equal(labels.data, before), timeout=WAIT_MS)
    np.testing.assert_array_equal(labels.data, want)
    labels.undo()
    np.testing.assert_array_equal(labels.data, before)


def test_revert_and_undo_on_a_label_map(qtbot, make_dock):
    viewer, dock = make_dock()
    image_2d(viewer)
    labels = segment_many(qtbot, dock, "liver; spleen")
    proposal = labels.data.copy()
    labels.data_setitem((np.arange(5, 15), np.arange(5, 15)), 2)
    assert not np.array_equal(labels.data, proposal)
    dock.segment.btn_revert.click()
    np.testing.assert_array_equal(labels.data, proposal)
    labels.undo()  # the revert is one step
    labels.undo()  # the edit
    labels.undo()  # the proposal
    assert not labels.data.any()


def test_all_slices_of_a_stack_go_into_one_label_volume(qtbot, make_dock):
    viewer, dock = make_dock()
    rng = np.random.default_rng(1)
    stack = viewer.add_image(rng.integers(-1000, 1000, (3, 48, 48)).astype(np.int16), name="ct")
    labels = segment_many(qtbot, dock, "liver; spleen", all_slices=True)
    assert labels.data.shape == (3, 48, 48) and labels.name == "liver, spleen — ct"
    window = dock.session.windows[str(stack.unique_id)]
    for z in range(3):
        np.testing.assert_array_equal(labels.data[z], expected(dock, stack.data[z], ["liver", "spleen"], window=window))
    labels.undo()
    assert not labels.data.any()


def test_legend_picks_the_structure_to_paint(qtbot, make_dock):
    viewer, dock = make_dock()
    image_2d(viewer)
    labels = segment_many(qtbot, dock)
    viewer.layers.selection.active = viewer.layers["scan"]
    labels.mode = "pan_zoom"
    assert dock.session.prompt == "liver"  # the structure the corrections panel counts
    dock.segment.legend.pick(3)
    assert labels.selected_label == 3 and labels.mode == "paint"
    assert viewer.layers.selection.active is labels
    assert dock.session.prompt == "left kidney"
    labels.selected_label = 2  # napari's own label control -> the legend follows
    assert dock.segment.legend.currentRow() == 1 and dock.session.prompt == "spleen"


def test_a_preset_fills_the_prompt_box(qtbot, make_dock):
    _, dock = make_dock()
    box = dock.segment.presets
    box.setCurrentIndex(box.findText("Chest X-ray"))
    box.activated.emit(box.currentIndex())
    assert dock.segment.prompt.currentText() == "left lung; right lung; heart"
    assert box.currentIndex() == 0


def test_single_structure_hides_the_legend(qtbot, make_dock):
    viewer, dock = make_dock()
    image_2d(viewer)
    dock.segment.prompt.setCurrentText("polyp")
    dock.segment.btn_slice.click()
    qtbot.waitUntil(lambda: idle(dock), timeout=WAIT_MS)
    assert not dock.segment.legend.isVisibleTo(dock)


def test_add_correction_stores_one_sample_per_structure(qtbot, make_dock):
    viewer, dock = make_dock()
    image = image_2d(viewer)
    labels = segment_many(qtbot, dock, "liver; spleen")
    proposal = labels.data.copy()
    labels.data_setitem((np.arange(10, 20), np.arange(10, 20)), 1)  # draw liver
    labels.data_setitem((np.arange(40, 50), np.arange(30, 40)), 2)  # draw spleen
    add_correction(qtbot, dock)
    store = dock.session.project.store
    assert store.targets() == ["liver", "spleen"]
    for value, name in ((1, "liver"), (2, "spleen")):
        (sample,) = store.samples(name)
        np.testing.assert_array_equal(sample.mask, labels.data == value)
        np.testing.assert_array_equal(sample.proposal, proposal == value)
        np.testing.assert_array_equal(sample.image, image.data)
        assert sample.prompts == (name,) and sample.source == "layer:scan"
    add_correction(qtbot, dock)  # the same slice again replaces, per structure
    assert len(store.samples()) == 2
    dock.segment.legend.pick(2)  # the counts follow the structure picked in the legend
    qtbot.waitUntil(lambda: "'spleen': 1 for training" in dock.corrections.counts.text(), timeout=WAIT_MS)


def test_auto_save_stores_each_structure_of_each_edited_slice(qtbot, make_dock):
    viewer, dock = make_dock()
    rng = np.random.default_rng(3)
    viewer.add_image(rng.integers(0, 255, (3, 32, 32), dtype=np.uint8), name="stack")
    labels = segment_many(qtbot, dock, "liver; spleen", all_slices=True)
    dock.corrections.autosave.setChecked(True)
    labels.data_setitem((np.array([2, 2]), np.array([5, 6]), np.array([5, 5])), 2)
    qtbot.waitUntil(lambda: len(dock.session.project.store.samples()) == 2, timeout=WAIT_MS)
    for value, name in ((1, "liver"), (2, "spleen")):
        (sample,) = dock.session.project.store.samples(name)
        assert sample.slice_index == (2,)
        np.testing.assert_array_equal(sample.mask, labels.data[2] == value)


def test_export_writes_the_label_map_and_its_legend(qtbot, make_dock, tmp_path):
    import json

    import tifffile

    viewer, dock = make_dock()
    rng = np.random.default_rng(4)
    viewer.add_image(rng.integers(0, 255, (2, 24, 24), dtype=np.uint8), name="stack")
    labels = segment_many(qtbot, dock, "liver; spleen", all_slices=True)
    worker = dock.segment.export_to(labels, tmp_path / "export" / "organs.png")  # a stack cannot be a PNG
    qtbot.waitUntil(lambda: (tmp_path / "export" / "organs.json").is_file(), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: not worker.is_running, timeout=WAIT_MS)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "export" / "organs.tif"), labels.data)
    doc = json.loads((tmp_path / "export" / "organs.json").read_text())
    assert LM.read_legend(doc) == LM.legend(["liver", "spleen"])
    assert doc["image"] == "stack" and doc["label_map"] == "organs.tif" and doc["model_fingerprint"]


def test_probability_layer_shows_the_highest_probability(qtbot, make_dock):
    viewer, dock = make_dock()
    image = image_2d(viewer)
    dock.segment.show_prob.setChecked(True)
    labels = segment_many(qtbot, dock, "liver; spleen")
    from napari_vlsm._napari.outputs import find_probability

    layer = find_probability(viewer, labels)
    preds = dock.session.segmenter.predict(image.data, ["liver", "spleen"])
    np.testing.assert_allclose(layer.data, np.maximum(preds[0].probability, preds[1].probability), atol=1e-6)
    assert viewer.layers.selection.active is labels


def test_one_finetune_in_the_dock_learns_every_structure(qtbot, make_dock):
    """Corrections of two structures on two slices -> one Finetune -> one adapter trained on both
    prompts (the learning itself: tests/test_multilabel_learning.py)."""
    from napari_vlsm.core.adapters.checkpoint import read_metadata

    viewer, dock = make_dock()
    rng = np.random.default_rng(5)
    viewer.add_image(rng.integers(0, 255, (3, 40, 40), dtype=np.uint8), name="scan")
    labels = segment_many(qtbot, dock, "liver; spleen", all_slices=True)
    truth = np.zeros_like(labels.data)
    truth[:, 5:20, 5:20], truth[:, 25:35, 22:36] = 1, 2
    changed = labels.data != truth
    labels.data_setitem(np.nonzero(changed), truth[changed])
    for z in range(2):
        viewer.dims.set_current_step(0, z)
        add_correction(qtbot, dock)
    store = dock.session.project.store
    assert store.targets() == ["liver", "spleen"] and len(store.samples()) == 4
    dock.advanced.steps.setValue(3)
    dock.finetune.btn_train.click()
    qtbot.waitUntil(lambda: idle(dock), timeout=WAIT_MS * 2)
    (path,) = dock.session.adapters_dir.glob("adapter-*.safetensors")
    assert {"liver", "spleen"} <= set(read_metadata(path)["prompts"])
