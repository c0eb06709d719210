"""Finetuning from the dock: a napari worker that keeps the viewer responsive, a live curve,
Cancel that keeps the previous adapter, the adapter saved + used + continued from."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

pytest.importorskip("napari")

from qtpy.QtCore import QTimer  # noqa: E402

from napari_vlsm._napari import layers as L  # noqa: E402
from napari_vlsm.core.adapters.checkpoint import read_metadata  # noqa: E402

from dock_helpers import corrected_image, idle  # noqa: E402

pytestmark = pytest.mark.gui
WAIT_MS = 120_000


class LoopTicks:
    """Counts 20 ms timer ticks on the GUI thread: a blocked event loop does not tick."""

    def __init__(self):
        self.ticks = 0
        self.timer = QTimer(interval=20)
        self.timer.timeout.connect(self._tick)

    def _tick(self):
        self.ticks += 1

    def __enter__(self):
        self.timer.start()
        return self

    def __exit__(self, *exc):
        self.timer.stop()


def test_finetune_runs_in_a_worker_and_switches_to_the_new_adapter(qtbot, make_dock, force_dice):
    viewer, dock = make_dock()
    force_dice(0.2, 0.6)
    _, labels = corrected_image(qtbot, viewer, dock)
    corrected = labels.data[:2].copy()
    before = dock.session.proposals.get(labels, L.Plane((1, 2), (2,))).probability.copy()
    dock.advanced.steps.setValue(10_000)
    dock.advanced.budget.setValue(2)  # about two seconds of training, whatever the machine's speed
    with LoopTicks() as loop:
        dock.finetune.btn_train.click()
        assert dock.session.finetuning  # the click returned while training runs
        started = time.perf_counter()
        qtbot.waitUntil(lambda: idle(dock), timeout=WAIT_MS)
        seconds = time.perf_counter() - started
    # A loop blocked by training would tick about once; a turning one about seconds / 0.02 times.
    assert seconds > 1.0 and loop.ticks > 10, (seconds, loop.ticks)
    plot = dock.finetune.plot
    assert plot.loss and plot.dice, "live curve got no points"  # (a loaded machine may do 1 step)
    assert "Dice on held-out corrections: 0.200 \u2192 0.600" in dock.finetune.result.text()
    adapters = dock.session.adapters_dir
    (path,) = adapters.glob("adapter-*.safetensors")
    assert json.loads((adapters / "latest.json").read_text())["path"] == path.name
    meta = read_metadata(path)
    assert meta["adapter_config"]["variant"] == "shallow-vlc"
    assert dock.session.segmenter.adapter_path == str(path)
    assert dock.session.adapter == "latest" and dock.model.adapter.currentData() == "latest"
    # the current (uncorrected) slice was segmented again with the adapter: the probability
    # changed; the corrected slices kept their corrections
    qtbot.waitUntil(lambda: idle(dock), timeout=WAIT_MS)
    after = dock.session.proposals.get(labels, L.Plane((1, 2), (2,))).probability
    assert not np.array_equal(before, after)
    assert L.output_meta(labels)["slices"]["2"]["adapter_sha256"] == meta_sha(path)
    np.testing.assert_array_equal(labels.data[:2], corrected)


def test_an_adapter_that_is_not_better_is_saved_but_not_used(qtbot, make_dock, force_dice):
    viewer, dock = make_dock()
    _, labels = corrected_image(qtbot, viewer, dock)
    force_dice(0.6, 0.5)
    before = labels.data.copy()
    dock.advanced.steps.setValue(2)
    dock.finetune.btn_train.click()
    qtbot.waitUntil(lambda: idle(dock), timeout=WAIT_MS)
    assert dock.session.segmenter.adapters is None and dock.session.adapter == "none"
    assert "did not beat" in dock.finetune.result.text()
    assert len(list(dock.session.adapters_dir.glob("adapter-*.safetensors"))) == 1
    assert not (dock.session.adapters_dir / "latest.json").exists()
    np.testing.assert_array_equal(labels.data, before)


def test_finishing_on_a_corrected_slice_keeps_the_correction(qtbot, make_dock, notes, force_dice):
    viewer, dock = make_dock()
    force_dice(0.2, 0.6)
    _, labels = corrected_image(qtbot, viewer, dock)
    viewer.dims.set_current_step(0, 0)
    corrected = labels.data.copy()
    dock.advanced.steps.setValue(2)
    dock.finetune.btn_train.click()
    qtbot.waitUntil(lambda: idle(dock), timeout=WAIT_MS)
    assert dock.session.segmenter.adapters is not None
    np.testing.assert_array_equal(labels.data, corrected)
    assert any("Your edits on this slice are kept" in n for n in notes), notes


def meta_sha(path):
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_second_finetune_continues_from_the_adapter(qtbot, make_dock, monkeypatch, force_dice):
    import napari_vlsm.core.training as training

    viewer, dock = make_dock()
    corrected_image(qtbot, viewer, dock)
    dock.advanced.steps.setValue(2)
    seen = []
    force_dice(0.2, 0.6)
    real = training.finetune

    def spy(loaded, train, val, config, init_adapters=None, **kwargs):
        seen.append((len(train), len(val), init_adapters))
        return real(loaded, train, val, config, init_adapters=init_adapters, **kwargs)

    monkeypatch.setattr(training, "finetune", spy)
    for _ in range(2):
        dock.finetune.btn_train.click()
        qtbot.waitUntil(lambda: idle(dock), timeout=WAIT_MS)
    assert [s[:2] for s in seen] == [(1, 1), (1, 1)]
    assert seen[0][2] is None and seen[1][2] is not None
    assert len(list(dock.session.adapters_dir.glob("adapter-*.safetensors"))) >= 1


def test_cancel_stops_soon_and_keeps_the_previous_adapter(qtbot, make_dock):
    viewer, dock = make_dock()
    corrected_image(qtbot, viewer, dock)
    dock.advanced.steps.setValue(100_000)  # would run for minutes
    dock.finetune.btn_train.click()
    qtbot.waitUntil(lambda: len(dock.finetune.plot.loss) >= 2, timeout=WAIT_MS)
    dock.finetune.btn_cancel.click()
    qtbot.waitUntil(lambda: idle(dock), timeout=WAIT_MS)
    assert len(dock.finetune.plot.loss) < 100_000
    assert "Cancelled" in dock.finetune.result.text()
    assert dock.session.segmenter.adapters is None  # the plain model is still in use
    assert not list(dock.session.adapters_dir.glob("*.safetensors"))


def test_finetune_without_corrections_explains(qtbot, make_dock, notes):
    viewer, dock = make_dock()
    dock.finetune.btn_train.click()
    assert any("no corrections stored yet" in n.splitlines()[0] for n in notes), notes
    assert idle(dock)


def test_closing_napari_during_training_leaves_only_whole_files(qtbot, make_dock):
    viewer, dock = make_dock()
    corrected_image(qtbot, viewer, dock)
    store = dock.session.project.store
    adapters = dock.session.adapters_dir
    dock.advanced.steps.setValue(100_000)
    dock.finetune.btn_train.click()
    qtbot.waitUntil(lambda: len(dock.finetune.plot.loss) >= 1, timeout=WAIT_MS)
    worker = dock.finetune.worker
    with qtbot.waitSignal(worker.finished, timeout=WAIT_MS):
        viewer.close()  # napari cancels running tasks (after asking the user, when they click X)
    assert len(store.samples()) == 2  # the corrections are intact
    for path in adapters.glob("*.safetensors"):  # the best adapter so far, if one was evaluated
        assert read_metadata(path)["adapter_config"]["variant"] == "shallow-vlc"
    assert not list(adapters.glob(".*tmp"))


def test_napari_stopping_the_job_keeps_the_result_path(qtbot, make_dock):
    """napari's own cancel (window close) calls worker.quit(): it must end the run cleanly through
    our cancel flag, so the 'returned' handler still runs and the best adapter so far is kept."""
    viewer, dock = make_dock()
    corrected_image(qtbot, viewer, dock)
    dock.advanced.steps.setValue(0)
    dock.advanced.budget.setValue(30)
    dock.finetune.btn_train.click()
    qtbot.waitUntil(lambda: len(dock.finetune.plot.dice) >= 2, timeout=WAIT_MS)
    dock.finetune.worker.quit()
    qtbot.waitUntil(lambda: idle(dock), timeout=WAIT_MS)
    assert "the dock or napari was closed" in dock.finetune.status.text()
    assert len(list(dock.session.adapters_dir.glob("adapter-*.safetensors"))) == 1
