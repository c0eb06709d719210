"""The dock's Series section in a real (hidden) napari window with the tiny model: a worklist of
small images, Next replacing the layers, Mark done writing the mask, resume after the dock is
recreated, Skip, a missing file, a scan opening with its geometry, an empty mask asking first."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")

from napari.layers import Image, Labels  # noqa: E402
from qtpy.QtWidgets import QMessageBox  # noqa: E402

from napari_vlsm._napari import layers as L  # noqa: E402
from napari_vlsm._napari import series_texts as T  # noqa: E402
from napari_vlsm._napari import texts  # noqa: E402
from napari_vlsm.core.project import ProjectLayout  # noqa: E402

from dock_helpers import WAIT_MS  # noqa: E402
from series_helpers import next_item, open_series, settle, write_images  # noqa: E402

pytestmark = pytest.mark.gui


def item_layers(viewer):
    images = [layer for layer in viewer.layers if isinstance(layer, Image)]
    masks = [layer for layer in viewer.layers if isinstance(layer, Labels)]
    return images, masks


def test_next_replaces_the_layers_and_proposes(qtbot, make_dock, tmp_path):
    viewer, dock = make_dock()
    paths = write_images(tmp_path / "series")
    open_series(qtbot, dock, [tmp_path / "series"])
    series = dock.series
    assert series.item.name == "frame0.png" and series.table.rowCount() == 3
    seen = [series.item.id]
    for _ in range(2):
        next_item(qtbot, dock)
        seen.append(series.item.id)
        images, masks = item_layers(viewer)
        assert len(images) == 1 and len(masks) == 1  # one image and its mask: no pile-up
        assert images[0] is series.image and L.image_of(viewer, masks[0]) is images[0]
        assert L.source_id(images[0], (0, 1)) == str(series.item.path)  # corrections name the file
        assert L.output_meta(masks[0])["target"] == "polyp"  # proposed at once with the prompt in use
    assert [series.worklist.get(i).name for i in seen] == [p.name for p in paths]
    assert series.counts.text() == "0 / 3 done · 3 in progress"
    # leaving an item saved its mask: coming back shows it, not a new proposal
    first = series.worklist.get(seen[0])
    saved = ProjectLayout(tmp_path / "project").masks / series.worklist.output_path(first, ".").name
    qtbot.waitUntil(saved.is_file, timeout=WAIT_MS)
    series.open_id(first.id)
    settle(qtbot, dock)
    images, masks = item_layers(viewer)
    assert len(images) == 1 and len(masks) == 1
    assert series.status.text().endswith("its saved mask.")


def test_an_item_opened_by_hand_is_held_for_this_window(qtbot, make_dock, tmp_path):
    """A double-clicked item is leased to the dock like Next's: another window's Next (here a
    second connection to the project's worklist) never hands it out meanwhile."""
    from napari_vlsm.core.worklist import Worklist

    viewer, dock = make_dock()
    write_images(tmp_path / "series")
    open_series(qtbot, dock, [tmp_path / "series"])
    series = dock.series
    ids = [i.id for i in series.worklist.items()]
    series.open_id(ids[2])  # a double-click on the last row
    qtbot.waitUntil(lambda: series.item.id == ids[2], timeout=WAIT_MS)
    settle(qtbot, dock)
    other = Worklist(tmp_path / "project")
    try:
        for done in ids[:2]:
            other.set_status(done, "done")
        assert other.holder(ids[2]) == series._holder  # noqa: SLF001
        assert other.lease("another-window", 60, order="in-order") is None  # the only open item is held
    finally:
        other.close()


def test_mark_done_writes_the_mask_and_the_legend(qtbot, make_dock, tmp_path):
    import imageio.v3 as iio

    viewer, dock = make_dock()
    write_images(tmp_path / "series", n=2)
    open_series(qtbot, dock, [tmp_path / "series"])
    series = dock.series
    labels = series.mask_layer()
    labels.data[...] = 0
    labels.data[5:20, 6:30] = 1  # the user's corrected mask
    series.btn_done.click()
    qtbot.waitUntil(lambda: series.worklist.get(series.item.id).status == "done", timeout=WAIT_MS)
    out = ProjectLayout(tmp_path / "project").masks / series.worklist.output_path(series.item, ".").name
    np.testing.assert_array_equal(iio.imread(out), labels.data)
    legend = out.with_suffix(".json").read_text()
    assert '"polyp"' in legend
    assert series.counts.text().startswith("1 / 2 done")
    # the export hands out this very file (and its legend), not a copy rebuilt from corrections
    from napari_vlsm.cli import main

    assert main(["worklist", "export", "--project", str(tmp_path / "project"), "--out", str(tmp_path / "out")]) == 0
    exported = tmp_path / "out" / out.name
    assert exported.read_bytes() == out.read_bytes()
    assert exported.with_suffix(".json").read_bytes() == out.with_suffix(".json").read_bytes()


def test_an_empty_mask_asks_before_done(qtbot, make_dock, tmp_path, monkeypatch):
    viewer, dock = make_dock()
    write_images(tmp_path / "series", n=1)
    open_series(qtbot, dock, [tmp_path / "series"])
    series = dock.series
    series.mask_layer().data[...] = 0
    asked = []

    def answer(reply):
        def question(parent, title, text, *args, **kwargs):
            asked.append(text)
            return reply
        return question

    monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.StandardButton.No))
    series.btn_done.click()
    assert len(asked) == 1 and "empty" in asked[0]
    assert series.worklist.get(series.item.id).status == "in-progress"  # not done, nothing written
    monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.StandardButton.Yes))
    series.btn_done.click()
    qtbot.waitUntil(lambda: series.worklist.get(series.item.id).status == "done", timeout=WAIT_MS)


def test_resume_after_the_dock_is_recreated(qtbot, make_dock, tmp_path, monkeypatch):
    from napari_vlsm._napari import settings
    from napari_vlsm._napari.dock import VLSMDock

    monkeypatch.setattr(settings, "temp_roots", lambda: [])  # tmp_path stands for a lasting project folder

    viewer, dock = make_dock()
    write_images(tmp_path / "series")
    open_series(qtbot, dock, [tmp_path / "series"])
    series = dock.series
    series.btn_skip.click()  # frame0 skipped, frame1 opens
    qtbot.waitUntil(lambda: series.item is not None and series.item.name == "frame1.png", timeout=WAIT_MS)
    settle(qtbot, dock)
    series.mask_layer().data[2:10, 2:10] = 1
    statuses = [i.status for i in series.worklist.items()]
    viewer.window.remove_dock_widget(dock)  # the dock closes: the mask on screen is saved
    for layer in list(viewer.layers):
        viewer.layers.remove(layer)

    again = VLSMDock(viewer)  # the project comes from the dock's saved settings
    viewer.window.add_dock_widget(again, name="Text segmentation")
    qtbot.waitUntil(lambda: again.series.item is not None, timeout=WAIT_MS)
    settle(qtbot, again)
    assert again.series.item.name == "frame1.png"
    assert [i.status for i in again.series.worklist.items()] == statuses == ["skipped", "in-progress", "unseen"]
    mask = again.series.mask_layer()
    assert mask is not None and mask.data[2:10, 2:10].all()  # its saved mask came back


def test_the_order_next_follows_is_kept_per_project(qtbot, make_dock, tmp_path, monkeypatch):
    import json

    from napari_vlsm._napari import settings
    from napari_vlsm._napari.dock import VLSMDock

    monkeypatch.setattr(settings, "temp_roots", lambda: [])  # tmp_path stands for lasting project folders

    viewer, dock = make_dock()
    write_images(tmp_path / "series", n=2)
    open_series(qtbot, dock, [tmp_path / "series"])
    order = dock.series.order
    order.setCurrentIndex(order.findData("random"))
    order.activated.emit(order.currentIndex())  # the user picks Random
    dock.save_settings()
    assert json.loads((tmp_path / "project" / "settings.json").read_text())["series_order"] == "random"
    (tmp_path / "other").mkdir()
    dock.session.set_project(tmp_path / "other")  # a project where no order was picked: the default
    assert dock.series.order_key() == "in-order"
    dock.session.set_project(tmp_path / "project")  # back: its own order
    assert dock.series.order_key() == "random"
    qtbot.waitUntil(lambda: dock.series.item is not None, timeout=WAIT_MS)
    settle(qtbot, dock)
    viewer.window.remove_dock_widget(dock)
    for layer in list(viewer.layers):
        viewer.layers.remove(layer)

    again = VLSMDock(viewer)  # napari restarted: the project (and its order) from the saved settings
    viewer.window.add_dock_widget(again, name="Text segmentation")
    qtbot.waitUntil(lambda: again.series.item is not None, timeout=WAIT_MS)
    settle(qtbot, again)
    assert again.series.order_key() == "random"
    again.series._model_changed()  # noqa: SLF001 - an adapter appearing never overrides a picked order
    assert again.series.order_key() == "random"


def test_a_missing_file_is_listed_and_passed_over(qtbot, make_dock, tmp_path, notes):
    viewer, dock = make_dock()
    paths = write_images(tmp_path / "series")
    open_series(qtbot, dock, [tmp_path / "series"])
    dock.series.prefetch.enabled = False  # Next must read the file itself
    paths[1].unlink()
    next_item(qtbot, dock)
    series = dock.series
    assert series.item.name == "frame2.png"
    assert [i.status for i in series.worklist.items()][1] == "missing"
    heads = [n.splitlines()[0] for n in notes if "missing" in n]
    assert heads and all(len(h) <= texts.HEAD_MAX for h in heads)


def test_unreadable_files_are_listed_with_a_short_notification(qtbot, make_dock, tmp_path, notes):
    viewer, dock = make_dock()
    write_images(tmp_path / "series", n=1)
    (tmp_path / "series" / "broken.png").write_bytes(b"not a png")
    open_series(qtbot, dock, [tmp_path / "series"])
    statuses = {i.name: i.status for i in dock.series.worklist.items()}
    assert statuses == {"broken.png": "unreadable", "frame0.png": "in-progress"}
    assert any(n.startswith("Series: 1 item(s) added") and "cannot be read" in n for n in notes)
    assert all(len(n.splitlines()[0]) <= texts.HEAD_MAX for n in notes if n.startswith("Series"))


def test_a_scan_opens_with_its_geometry(qtbot, make_dock, tmp_path):
    import nibabel as nib

    viewer, dock = make_dock()
    folder = tmp_path / "scans"
    folder.mkdir()
    data = np.random.default_rng(0).integers(-500, 500, (24, 20, 6)).astype(np.int16)  # (x, y, z) in the file
    affine = np.diag([-0.8, -0.7, 2.5, 1.0])  # LPS-canonical: z, y, x spacing 2.5, 0.7, 0.8
    nib.save(nib.Nifti1Image(data, affine), folder / "ct.nii.gz")
    open_series(qtbot, dock, [folder], prompt="liver")
    series = dock.series
    image = series.image
    assert image.data.shape == (6, 20, 24)
    np.testing.assert_allclose(image.scale, (2.5, 0.7, 0.8))
    assert int(viewer.dims.current_step[0]) == 3  # the middle slice (no score yet)
    mask = series.mask_layer()
    np.testing.assert_allclose(mask.scale, image.scale)
    assert mask.data[3].any() or not mask.data.any()  # the proposal is on the slice shown
    series.btn_done.click()
    qtbot.waitUntil(lambda: series.worklist.get(series.item.id).status == "done", timeout=WAIT_MS)
    out = ProjectLayout(tmp_path / "project").masks / series.worklist.output_path(series.item, ".").name
    written = nib.load(out)
    assert written.shape == data.shape  # the scan's own grid
    np.testing.assert_allclose(written.affine, nib.load(folder / "ct.nii.gz").affine)


@pytest.mark.parametrize("how", ["read-only", "not-a-folder"])
def test_an_unwritable_project_gets_a_message_not_a_traceback(qtbot, make_dock, tmp_path, notes, how):
    import os

    if how == "read-only" and os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    viewer, dock = make_dock()
    write_images(tmp_path / "series", n=1)
    if how == "read-only":
        project = tmp_path / "locked"
        project.mkdir()
        os.chmod(project, 0o500)
    else:
        (tmp_path / "a-file").write_text("")
        project = tmp_path / "a-file" / "project"  # cannot be made
    try:
        dock.session.set_project(project)
        dock.series.add_paths([tmp_path / "series"])
        qtbot.waitUntil(lambda: any(n.startswith("Series unavailable") for n in notes), timeout=WAIT_MS)
    finally:
        if how == "read-only":
            os.chmod(project, 0o700)
    assert dock.series.item is None and not dock.series.btn_next.isEnabled()
    problem = next(n for n in notes if n.startswith("Series unavailable"))
    assert "Traceback" not in problem and str(project.name) in problem
    assert dock.series.status.text()  # the reason stays in the section


def test_every_series_notification_starts_with_a_short_line(tmp_path):
    from pathlib import Path

    long = "x" * 300
    messages = [T.added(3, 2, [(Path("/a/b.png"), long)] * 5), T.missing(long, Path(long)), T.unreadable(long, long),
                T.finished(), T.saved_mask(long), T.stale_mask(long, long), T.worklist_problem(long),
                T.finetune_started(12), T.note(long, long)]
    for message in messages:  # as the dock shows them: through texts.toast
        head = texts.toast(message).splitlines()[0]
        assert 0 < len(head) <= texts.HEAD_MAX, head


def test_through_the_manifest_nothing_private_is_touched(qtbot, make_napari_viewer, tiny_model_dir, tmp_path, notes):
    """napari hands a plugin's dock a proxy of the viewer that warns on private attributes."""
    viewer = make_napari_viewer()
    _, dock = viewer.window.add_plugin_dock_widget("napari-vlsm", "Text segmentation")
    dock.set_model_source(str(tiny_model_dir))
    dock.session.set_project(tmp_path / "project")
    write_images(tmp_path / "series")
    open_series(qtbot, dock, [tmp_path / "series"])
    next_item(qtbot, dock)
    next_item(qtbot, dock)
    images, masks = item_layers(viewer)
    assert len(images) == 1 and len(masks) == 1
    assert not [n for n in notes if "Private attribute" in n or "private" in n.lower()]
