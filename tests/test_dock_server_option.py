"""The dock's "Model & adapter" server option (issue 13), in a real napari window (Xvfb) against a real
``napari-vlsm serve`` process on 127.0.0.1: connect through the panel, Segment, a correction lands in
the server's store, Finetune runs on the server (progress, curve, result, its adapter then in use),
and a stopped server gives a clear message while the correction waits in the local outbox."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("napari")

from napari_vlsm._napari import layers as L  # noqa: E402
from napari_vlsm._napari.dock import VLSMDock  # noqa: E402
from napari_vlsm._napari.server_client import RemoteEngine  # noqa: E402
from napari_vlsm.client import VLSMClient  # noqa: E402
from napari_vlsm.client.project import RemoteProject  # noqa: E402
from napari_vlsm.server.process import ServerProcess  # noqa: E402

from dock_helpers import idle  # noqa: E402

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("one_thread")]
WAIT_MS = 120_000  # generous: a slow shared machine, never a speed threshold
PROJECT = "dock-option"


@pytest.fixture()
def server(tiny_model_dir, tmp_path):
    proc = ServerProcess(tiny_model_dir, tmp_path / "srv").start()
    yield proc
    proc.stop()


@pytest.fixture()
def errors(monkeypatch):
    """The error notifications the dock shows (napari's show_error, looked up at each call)."""
    import napari.utils.notifications as notifications

    shown: list[str] = []
    monkeypatch.setattr(notifications, "show_error", lambda message: shown.append(str(message)))
    return shown


def connected_dock(make_napari_viewer, qtbot, server, tmp_path):
    viewer = make_napari_viewer()
    dock = VLSMDock(viewer)
    viewer.window.add_dock_widget(dock, name="Text segmentation")
    dock.set_model_source("/nonexistent/model")  # a local load would fail: all work must go to the server
    dock.session.set_project(tmp_path / "project")
    # only the clicks write: auto-save (on by default) would queue its own copy of a stroke at a
    # moment that depends on the machine's load, and this test counts the queued corrections
    dock.corrections.autosave.setChecked(False)
    box = dock.model.server
    box.url.setText(server.url)
    box.token_file.setText(str(server.token_file))
    box.project.setText(PROJECT)
    box.btn_connect.click()
    qtbot.waitUntil(lambda: dock.session.remote is not None, timeout=WAIT_MS)
    assert isinstance(dock.session.segmenter, RemoteEngine) and isinstance(dock.session.project, RemoteProject)
    assert not dock.model.adapter.isEnabled() and not dock.model.source.isEnabled()  # the server's are used
    assert server.url in dock.model.info.text()
    dock.session.set_project(tmp_path / "other")  # connected: corrections keep going to the server
    assert isinstance(dock.session.project, RemoteProject)
    return viewer, dock


def segment_and_correct(qtbot, viewer, dock, seed):
    pixels = np.random.default_rng(seed).integers(0, 255, (48, 56), dtype=np.uint8)
    image = viewer.add_image(pixels, name=f"scan{seed}")
    dock.segment.image.value = image
    dock.segment.prompt.setCurrentText("polyp")
    dock.segment.btn_slice.click()
    qtbot.waitUntil(lambda: not dock.session.job, timeout=WAIT_MS)
    labels = L.find_output(viewer, image, "polyp")
    assert labels is not None
    labels.data_setitem((np.arange(10, 30), np.arange(12, 32)), 1)
    dock.corrections.btn_add.click()
    qtbot.waitUntil(lambda: not dock.corrections.saving, timeout=WAIT_MS)
    return image, labels


def test_dock_works_through_the_server_option(make_napari_viewer, qtbot, server, tmp_path, errors):
    viewer, dock = connected_dock(make_napari_viewer, qtbot, server, tmp_path)
    client = VLSMClient(server.url, server.token)
    for seed in range(4):  # enough corrections for a train and a val split
        segment_and_correct(qtbot, viewer, dock, seed)
    stored = client.corrections(PROJECT)["samples"]
    assert len(stored) == 4 and {s["target"] for s in stored} == {"polyp"} and not errors
    assert dock.session.project.pending() == 0
    # Finetune through the server: progress events, the curve, the result, its adapter in use
    dock.advanced.steps.setValue(3)
    dock.advanced.batch.setValue(2)
    panel = dock.finetune
    panel.btn_train.click()
    qtbot.waitUntil(lambda: dock.session.finetuning, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: not dock.session.finetuning, timeout=WAIT_MS)
    assert not errors, errors
    assert [step for step, _ in panel.plot.loss] == [1, 2, 3]
    assert "Done after 3 steps" in panel.status.text()
    names = [a["name"] for a in client.adapters(PROJECT)]
    engine = dock.session.remote
    assert "Dice on" in panel.result.text()  # before -> after, as locally
    box = dock.model.server  # the list is fetched in a worker: no network on the GUI thread
    qtbot.waitUntil(lambda: box.adapter.count() == len(names) + 1, timeout=WAIT_MS)
    if "is now in use" in panel.result.text():
        assert engine.adapter in names
        qtbot.waitUntil(lambda: box.adapter.currentData() == engine.adapter, timeout=WAIT_MS)
    else:  # the held-out Dice did not improve: the plain model stays in use, the new adapter is listed
        assert "did not beat" in panel.result.text() and engine.adapter is None
        assert any(name in panel.result.text() for name in names)
    # the server's adapters are listed; choosing one makes the next Segment use it
    box = dock.model.server
    index = box.adapter.findData(names[-1])
    assert index > 0
    box.adapter.setCurrentIndex(index)
    box.adapter.activated.emit(index)
    assert engine.adapter == names[-1] and names[-1] in dock.model.info.text()
    first = viewer.layers["scan0"]
    dock.segment.image.value = first
    dock.segment.btn_slice.click()
    qtbot.waitUntil(lambda: not dock.session.job, timeout=WAIT_MS)
    assert L.output_meta(L.find_output(viewer, first, "polyp"))["adapter"] == names[-1] and not errors
    # Cancel of a server finetune: the run stops, nothing changes
    dock.advanced.steps.setValue(0)
    dock.advanced.budget.setValue(600)
    panel.btn_train.click()
    qtbot.waitUntil(lambda: len(panel.plot.loss) >= 1, timeout=WAIT_MS)
    panel.btn_cancel.click()
    qtbot.waitUntil(lambda: not dock.session.finetuning, timeout=WAIT_MS)
    assert panel.status.text() == "Cancelled." and engine.adapter == names[-1] and not errors
    assert client.info()["jobs_running"] == []
    # the settings keep URL, token file and project, never the token
    dock.save_settings()
    from napari_vlsm._napari import settings

    saved = settings.user_path().read_text()
    assert server.token not in saved and json.loads(saved)["server_url"] == server.url
    # the server stops: one clear message, the correction waits on this computer
    (old,) = [s["id"] for s in client.corrections(PROJECT)["samples"] if s["source"] == "layer:scan0"]
    client.close()
    server.stop()
    segment_errors = len(errors)
    image = viewer.add_image(np.zeros((48, 56), np.uint8), name="late")
    dock.segment.image.value = image
    dock.segment.prompt.setCurrentText("polyp")
    dock.segment.btn_slice.click()
    qtbot.waitUntil(lambda: len(errors) > segment_errors, timeout=WAIT_MS)
    assert "cannot be reached" in errors[-1] or "lost the connection" in errors[-1]
    before = len(errors)
    first = viewer.layers["scan0"]  # a mask made while connected, corrected once more
    dock.segment.image.value = first
    L.find_output(viewer, first, "polyp").data_setitem((np.arange(5, 9), np.arange(5, 9)), 1)
    dock.corrections.btn_add.click()
    qtbot.waitUntil(lambda: not dock.corrections.saving and len(errors) > before, timeout=WAIT_MS)
    assert "kept on this computer" in errors[-1]
    assert dock.session.project.pending() == 1
    qtbot.waitUntil(lambda: "wait on this computer" in dock.model.server.status.text(), timeout=WAIT_MS)
    # back again: "Send waiting corrections" delivers it
    server.start(same_port=True)
    dock.model.server.btn_retry.click()
    qtbot.waitUntil(lambda: dock.session.project.pending() == 0, timeout=WAIT_MS)
    again = VLSMClient(server.url, server.token)
    rows = [s for s in again.corrections(PROJECT)["samples"] if s["source"] == "layer:scan0"]
    again.close()
    assert len(rows) == 1 and rows[0]["id"] != old  # the re-corrected slice replaced its earlier correction


def test_a_wrong_token_is_one_clear_line(make_napari_viewer, qtbot, server, tmp_path, errors):
    viewer = make_napari_viewer()
    dock = VLSMDock(viewer)
    box = dock.model.server
    box.url.setText(server.url)
    box.token.setText("not-the-token")
    box.btn_connect.click()
    qtbot.waitUntil(lambda: bool(errors) and box.btn_connect.isEnabled(), timeout=WAIT_MS)
    assert dock.session.remote is None and "\n" not in errors[-1].strip().splitlines()[0]
    assert "Traceback" not in errors[-1]
    box.token.setText("")
    box.btn_connect.click()
    assert "token" in errors[-1]


def test_several_structures_and_all_slices_through_the_server(make_napari_viewer, qtbot, server, tmp_path, errors):
    from napari_vlsm.core import labelmap as LM

    viewer, dock = connected_dock(make_napari_viewer, qtbot, server, tmp_path)
    stack = np.random.default_rng(7).integers(0, 255, (3, 40, 44), dtype=np.uint8)
    image = viewer.add_image(stack, name="stack")
    dock.segment.image.value = image
    dock.segment.prompt.setCurrentText("liver; spleen")
    dock.segment.btn_all.click()
    qtbot.waitUntil(lambda: not dock.session.job, timeout=WAIT_MS)
    labels = L.find_output(viewer, image, LM.join_structures(["liver", "spleen"]), exact=True)
    assert labels is not None and not errors, errors
    assert [s.name for s in L.structures_of(labels)] == ["liver", "spleen"]
    # the dock's label map is the server's own answer for the whole stack (one window per volume)
    engine = dock.session.remote
    answers = engine.predict_stack(stack, ["liver", "spleen"], batch_size=dock.session.batch_size,
                                   window=dock.session.window_for(image))
    threshold = dock.segment.threshold.value()
    for z, preds in answers:
        kept = np.stack([p.probability for p in preds]).astype(np.float16)  # the dock keeps fp16 proposals
        expected = LM.compose(kept, threshold)
        np.testing.assert_array_equal(np.asarray(labels.data[z]), expected)
    assert np.asarray(labels.data).any()
    # Disconnect: back to this computer's project store; the server's model is no longer used
    from napari_vlsm.core.project import Project

    dock.model.server.btn_disconnect.click()
    assert dock.session.remote is None and dock.session.segmenter is None
    assert isinstance(dock.session.project, Project) and dock.model.adapter.isEnabled()


def test_finetune_of_an_empty_server_project_explains_from_the_worker(make_napari_viewer, qtbot, server, tmp_path,
                                                                       errors):
    """The count of a server project's corrections is a request: it is asked in the worker (never on
    the GUI thread), and an empty project is still one clear message."""
    _, dock = connected_dock(make_napari_viewer, qtbot, server, tmp_path)
    dock.finetune.btn_train.click()
    qtbot.waitUntil(lambda: bool(errors) and idle(dock), timeout=WAIT_MS)
    assert "no corrections stored yet" in errors[-1].lower() and "Traceback" not in errors[-1]
    assert dock.finetune.btn_train.isEnabled()


@pytest.mark.skipif(__import__("os").name != "posix", reason="file modes are POSIX")
def test_a_token_file_others_can_read_gets_a_dock_notification_by_the_clients_rule(notes, tmp_path):
    from napari_vlsm._napari import texts
    from napari_vlsm._napari.server_panel import read_token
    from napari_vlsm.client.http import read_token_file

    path = tmp_path / "token"
    path.write_text("t" * 40 + "\n")
    path.chmod(0o640)  # the group can read it: the client's rule warns (tests/test_client_network.py)
    assert read_token("", str(path)) == "t" * 40
    warned = [note for note in notes if "chmod 600" in note]
    assert len(warned) == 1, notes
    head, details = warned[0].split("\n", 1)
    assert len(head) <= texts.HEAD_MAX and read_token_file(path)[1] in details  # the client's own words
    path.chmod(0o600)
    notes.clear()
    assert read_token("", str(path)) == "t" * 40 and notes == []
    assert read_token("typed", str(path)) == "typed"  # a typed token: the file is not read
