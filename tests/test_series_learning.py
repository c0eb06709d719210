"""The Series section beyond one item: the read-ahead that makes Next instant, the Shift+N key,
corrections counted per item and the optional finetune every N corrections, ranking after an
adapter change, two docks on one project, a file whose shape changed."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")


from napari_vlsm._napari import texts  # noqa: E402

from dock_helpers import WAIT_MS, add_correction  # noqa: E402
from series_helpers import next_item, open_series, settle, write_images  # noqa: E402

pytestmark = pytest.mark.gui


def prefetched(dock) -> bool:
    p = dock.series.prefetch
    return bool(p.planned()) and p.planned()[0] in p.ready() and not p.busy()


def test_the_next_item_is_read_and_proposed_ahead(qtbot, make_dock, tmp_path, monkeypatch):
    from napari_vlsm._napari import layers as L

    viewer, dock = make_dock()
    write_images(tmp_path / "series")
    open_series(qtbot, dock, [tmp_path / "series"])
    qtbot.waitUntil(lambda: prefetched(dock), timeout=WAIT_MS)
    series, seg = dock.series, dock.session.segmenter
    planned = series.prefetch.planned()[0]
    import napari_vlsm._napari.series_local_steps as steps_module

    def not_again(*args, **kwargs):
        raise AssertionError("Next read or segmented the item again although it was done ahead")

    with monkeypatch.context() as m:
        m.setattr(steps_module, "read_layer", not_again)
        m.setattr(seg, "predict", not_again)
        next_item(qtbot, dock)
    assert series.item.id == planned
    labels = series.mask_layer()
    entry = dock.session.proposals.get(labels, L.Plane((0, 1)))
    assert entry is not None  # kept like any proposal: the threshold slider and Revert work on it
    np.testing.assert_array_equal(labels.data, entry.values)
    assert L.output_meta(labels)["model_fingerprint"] == seg.loaded.fingerprint
    # another prompt than the one read ahead for: Next segments again, with the new prompt
    qtbot.waitUntil(lambda: prefetched(dock), timeout=WAIT_MS)
    dock.segment.prompt.setCurrentText("lesion")
    stats = seg.cache_stats()["image"]
    next_item(qtbot, dock)
    assert L.output_meta(series.mask_layer())["target"] == "lesion"
    after = seg.cache_stats()["image"]
    assert after["misses"] == stats["misses"] and after["hits"] > stats["hits"]  # the image pass was cached


def test_shift_n_in_the_viewer_is_next(qtbot, make_dock, tmp_path):
    from app_model.types import KeyBinding

    viewer, dock = make_dock()
    write_images(tmp_path / "series", n=2)
    open_series(qtbot, dock, [tmp_path / "series"])
    first = dock.series.item.id
    handler = viewer.keymap[KeyBinding.from_str("Shift+N")]
    handler(viewer)
    qtbot.waitUntil(lambda: dock.series.item.id != first, timeout=WAIT_MS)
    settle(qtbot, dock)


def test_corrections_count_per_item_and_trigger_a_finetune(qtbot, make_dock, tmp_path, force_dice):
    viewer, dock = make_dock()
    force_dice(0.2, 0.6)
    write_images(tmp_path / "series", n=2)
    open_series(qtbot, dock, [tmp_path / "series"], prompt="lesion")
    series = dock.series
    dock.advanced.steps.setValue(2)
    series.learn.setChecked(True)
    series.learn_every.setValue(2)
    labels = series.mask_layer()
    labels.data[...] = 0
    labels.data[4:20, 4:20] = 1
    add_correction(qtbot, dock)  # the first goes to training
    qtbot.waitUntil(lambda: series.worklist.get(series.item.id).corrections == 1, timeout=WAIT_MS)
    assert not dock.session.finetuning  # 1 of 2
    next_item(qtbot, dock)
    labels = series.mask_layer()
    labels.data[...] = 0
    labels.data[10:30, 10:30] = 1
    add_correction(qtbot, dock)
    qtbot.waitUntil(lambda: dock.session.finetuning or series.learning.new == 0, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: not dock.session.finetuning and series.settled(), timeout=WAIT_MS)
    assert series.learning.new == 0
    assert [i.corrections for i in series.worklist.items()] == [1, 1]
    assert dock.session.adapter == "latest"  # the finetune ran, and its adapter is in use
    # a new adapter makes "most uncertain first" the order, and the open items are ranked with it
    assert series.order_key() == "most-uncertain"
    qtbot.waitUntil(lambda: not series.learning.rank_wanted, timeout=WAIT_MS)
    assert all(i.score is not None for i in series.worklist.items() if i.status in ("unseen", "in-progress"))


def test_two_docks_never_get_the_same_item(qtbot, make_dock, tmp_path, notes):
    viewer_a, a = make_dock()
    write_images(tmp_path / "series", n=3)
    open_series(qtbot, a, [tmp_path / "series"])
    viewer_b, b = make_dock()  # the same project: B reopens where A is, which A holds
    qtbot.wait(200)
    assert b.series.item is None and "another window" in b.series.status.text()
    assert any(n.startswith("Item open in another window") for n in notes)
    next_item(qtbot, b)
    assert b.series.item.id != a.series.item.id
    next_item(qtbot, a)
    assert a.series.item.id not in (b.series.item.id, 1)


def test_a_file_that_changed_shape_is_listed_not_opened(qtbot, make_dock, tmp_path, notes):
    import imageio.v3 as iio

    viewer, dock = make_dock()
    paths = write_images(tmp_path / "series")
    open_series(qtbot, dock, [tmp_path / "series"])
    dock.series.prefetch.enabled = False
    dock.series.prefetch.replan()
    iio.imwrite(paths[1], np.zeros((90, 30, 3), np.uint8))
    next_item(qtbot, dock)
    items = dock.series.worklist.items()
    assert items[1].status == "unreadable" and "changed" in items[1].reason
    assert dock.series.item.name == "frame2.png"
    heads = [n.splitlines()[0] for n in notes if "changed" in n]
    assert heads and all(len(h) <= texts.HEAD_MAX for h in heads)


def test_go_to_the_most_uncertain_slice(qtbot, make_dock, tmp_path):
    import tifffile

    viewer, dock = make_dock()
    folder = tmp_path / "stacks"
    folder.mkdir()
    tifffile.imwrite(folder / "stack.tif", np.random.default_rng(0).integers(0, 255, (5, 32, 32), dtype=np.uint8))
    open_series(qtbot, dock, [folder], prompt="cell")
    series = dock.series
    series.worklist.record_score(series.item.id, 0.4, "test", worst_slices=(3, 1))
    assert series.btn_worst.isVisible() or not series.isVisible()
    series.btn_worst.click()
    assert int(viewer.dims.current_step[0]) == 3
    series.btn_worst.click()
    assert int(viewer.dims.current_step[0]) == 1
