"""The dock under bad input, hostile files and faults: a notification, never an exception that
escapes, never a dead dock (buttons come back), never a correction lost.

Uses the dock fixtures of tests/conftest.py (helpers: tests/dock_helpers.py) on napari's ``make_napari_viewer`` with the tiny
random model. Notifications are read from napari's notification manager (``notes``).
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import threading

import numpy as np
import pytest

pytest.importorskip("napari")

import safetensors.torch  # noqa: E402
import torch  # noqa: E402

from napari_vlsm._napari import layers as L  # noqa: E402
from napari_vlsm.core.adapters import AdapterConfig, build_adapters  # noqa: E402
from napari_vlsm.core.adapters.checkpoint import build_metadata, read_metadata, save_adapter  # noqa: E402
from napari_vlsm.core.forward import VLSMModel  # noqa: E402
from napari_vlsm.core.loading import load_model  # noqa: E402
from napari_vlsm.core.store import files as store_files  # noqa: E402
from napari_vlsm.core.store import normalize_target  # noqa: E402

from dock_helpers import add_correction, idle, segment  # noqa: E402

pytestmark = pytest.mark.gui
WAIT_MS = 120_000  # generous: a slow shared machine, never a speed threshold


def settle(qtbot, dock):
    qtbot.waitUntil(lambda: idle(dock) and not getattr(dock.corrections, "saving", False), timeout=WAIT_MS)


def usable(dock) -> bool:
    """Every action button enabled again, nothing running."""
    return (idle(dock) and dock.segment.btn_slice.isEnabled() and dock.segment.btn_all.isEnabled()
            and dock.finetune.btn_train.isEnabled() and dock.model.btn_load.isEnabled())


def errors(notes) -> list[str]:
    return [n for n in notes if "napari-vlsm" in n and ("failed" in n or "error" in n.lower() or ":" in n)]


def layer_for(dock, prompt):
    return L.find_output(dock.viewer, dock.segment.image.value, normalize_target(prompt))


def wait_for_jobs(qtbot, dock):
    """Wait until every worker thread has ended (however it ended), then let their queued signals
    arrive. A job that dies without ``finished`` leaves the dock busy: ``usable`` then fails at once
    instead of a test waiting minutes for a state that never comes."""
    from qtpy.QtCore import QThreadPool

    assert QThreadPool.globalInstance().waitForDone(WAIT_MS)
    qtbot.wait(300)




# ----------------------------------------------------------------------------- prompts and images


def test_prompts_in_any_script_work(qtbot, make_dock, notes):
    viewer, dock = make_dock()
    viewer.add_image(np.random.default_rng(0).integers(0, 255, (40, 50), dtype=np.uint8), name="scan")
    for prompt in ("Leber", "肝臓", "🫀 heart"):
        labels = segment(qtbot, dock, prompt)
        assert labels is not None and labels.data.shape == (40, 50), prompt
        assert labels.metadata[L.TAG]["prompt"] == prompt
    assert not [n for n in notes if "napari-vlsm" in n], notes
    assert usable(dock)


def test_a_long_prompt_still_segments(qtbot, make_dock):
    viewer, dock = make_dock()
    viewer.add_image(np.zeros((40, 50), np.uint8), name="scan")
    labels = segment(qtbot, dock, "left kidney " * 30)
    assert labels is not None and labels.data.shape == (40, 50) and usable(dock)


def test_a_long_prompt_is_truncated_with_a_warning(qtbot, make_dock, notes):
    viewer, dock = make_dock()
    viewer.add_image(np.zeros((40, 50), np.uint8), name="scan")
    assert segment(qtbot, dock, "right kidney " * 30) is not None
    qtbot.wait(300)
    assert any("truncated" in n for n in notes), notes


def _odd(name):
    rng = np.random.default_rng(1)
    return {
        "1x1": (np.array([[9]], np.uint8), (1, 1)),
        "all-nan": (np.full((20, 24), np.nan, np.float32), (20, 24)),
        "constant": (np.full((20, 24), 1000, np.uint16), (20, 24)),
        "negative-float": (-rng.random((20, 24)) * 1e4, (20, 24)),
        "rgba": (rng.integers(0, 255, (20, 24, 4), dtype=np.uint8), (20, 24)),
        "4d": (rng.integers(0, 4000, (2, 3, 20, 24), dtype=np.uint16), (2, 3, 20, 24)),
        "bool": (rng.random((20, 24)) > 0.5, (20, 24)),
    }[name]


@pytest.mark.parametrize("name", ["1x1", "all-nan", "constant", "negative-float", "rgba", "4d", "bool"])
def test_odd_images_segment_without_errors(qtbot, make_dock, notes, name):
    viewer, dock = make_dock()
    data, shape = _odd(name)
    viewer.add_image(data, name="odd", rgb=name == "rgba")
    labels = segment(qtbot, dock, "liver")
    assert labels is not None and labels.data.shape == shape
    assert not [n for n in notes if "napari-vlsm" in n], notes
    assert usable(dock)


# ----------------------------------------------------------------------------- hostile adapters


class _Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ['VLSM_MARKER']}",))


def _choose_adapter_file(dock, monkeypatch, path):
    from qtpy.QtWidgets import QFileDialog

    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(lambda *a, **k: (str(path), "")))
    combo = dock.model.adapter
    combo.activated.emit(combo.count() - 1)  # "Choose a file…"


@pytest.mark.parametrize("kind", ["pickle", "truncated", "other-base"])
def test_a_hostile_or_broken_adapter_chosen_in_the_dock(qtbot, make_dock, notes, tmp_path, monkeypatch,
                                                        tiny_model_dir, kind):
    marker = tmp_path / "pwned"
    monkeypatch.setenv("VLSM_MARKER", str(marker))
    path = tmp_path / f"{kind}.safetensors"
    if kind == "pickle":
        path.write_bytes(pickle.dumps(_Exploit()))
    else:
        from napari_vlsm.core.random_model import clipseg_config

        loaded = load_model(tiny_model_dir, device="cpu")
        config = loaded.config if kind == "truncated" else clipseg_config("full", vocab_size=49408)
        adapters = build_adapters(AdapterConfig.from_variant("shallow-v", config))
        save_adapter(path, adapters, build_metadata(adapters, loaded))
        if kind == "truncated":
            path.write_bytes(path.read_bytes()[:500])
    viewer, dock = make_dock()
    viewer.add_image(np.zeros((32, 32), np.uint8), name="scan")
    _choose_adapter_file(dock, monkeypatch, path)
    assert dock.model.adapter.currentData() == str(path)
    segment(qtbot, dock, "liver")
    qtbot.waitUntil(lambda: any(path.name in n for n in notes), timeout=WAIT_MS)
    message = next(n for n in notes if path.name in n)
    assert "bug" not in message  # a user error with its own message, not "failed unexpectedly"
    assert not marker.exists()
    assert layer_for(dock, "liver") is None and usable(dock)
    dock.model.adapter.activated.emit(dock.model.adapter.findData("none"))  # back to the plain model
    assert segment(qtbot, dock, "liver") is not None


# ----------------------------------------------------------------------------- out of memory


def _oom(*_args, **_kwargs):
    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


def test_out_of_memory_while_segmenting_is_notified_and_the_dock_recovers(qtbot, make_dock, notes, monkeypatch):
    viewer, dock = make_dock()
    viewer.add_image(np.zeros((32, 32), np.uint8), name="scan")
    monkeypatch.setattr(VLSMModel, "encode_image", _oom)
    assert segment(qtbot, dock, "liver") is None
    qtbot.waitUntil(lambda: any("out of cpu memory" in n for n in notes), timeout=WAIT_MS)
    assert usable(dock)
    monkeypatch.undo()
    assert segment(qtbot, dock, "liver") is not None


def test_out_of_memory_in_segment_all_slices_retries_with_smaller_batches(qtbot, make_dock, notes, monkeypatch):
    viewer, dock = make_dock()
    viewer.add_image(np.random.default_rng(2).integers(0, 255, (5, 24, 24), dtype=np.uint8), name="stack")
    real = VLSMModel.encode_image
    sizes = []

    def small_device(self, pixel_values):
        sizes.append(pixel_values.shape[0])
        if pixel_values.shape[0] > 1:
            _oom()
        return real(self, pixel_values)

    monkeypatch.setattr(VLSMModel, "encode_image", small_device)
    dock.advanced.batch.setValue(4)
    labels = segment(qtbot, dock, "liver", all_slices=True)
    assert labels is not None and len(dock.session.proposals.planes(labels)) == 5
    assert sizes[0] == 4 and sizes.count(1) == 5
    assert not [n for n in notes if "napari-vlsm" in n], notes


def _two_corrections(qtbot, viewer, dock):
    """A 3-slice stack; slices 0 and 1 corrected and stored (train + val); the viewer on slice 2."""
    viewer.add_image(np.random.default_rng(3).integers(0, 255, (3, 40, 40), dtype=np.uint8), name="scan")
    labels = segment(qtbot, dock, "lesion", all_slices=True)
    truth = np.zeros_like(labels.data)
    truth[:2, 10:30, 10:30] = 1
    truth[2] = labels.data[2]
    changed = np.nonzero(labels.data != truth)
    labels.data_setitem(changed, truth[changed])
    for z in range(2):
        viewer.dims.set_current_step(0, z)
        add_correction(qtbot, dock)
    viewer.dims.set_current_step(0, 2)
    assert dock.session.project.store.counts() == {"train": 1, "val": 1}
    return labels


def _device_failure(*_args, **_kwargs):
    raise RuntimeError("CUDA error: an illegal memory access was encountered")


def test_out_of_memory_in_a_finetune_is_notified_and_leaves_the_dock_usable(qtbot, make_dock, notes, monkeypatch):
    viewer, dock = make_dock()
    _two_corrections(qtbot, viewer, dock)
    monkeypatch.setattr(VLSMModel, "decode", _oom)  # the accelerator is full for the whole finetune
    dock.advanced.steps.setValue(3)
    dock.finetune.btn_train.click()
    wait_for_jobs(qtbot, dock)
    assert usable(dock) and not dock.finetune.btn_cancel.isEnabled()
    assert any("memory" in n for n in notes), notes
    assert dock.session.segmenter.adapters is None and not list(dock.session.adapters_dir.glob("*.safetensors"))
    monkeypatch.undo()
    assert segment(qtbot, dock, "lesion") is not None  # the viewer and the model still work


@pytest.mark.parametrize("job", ["finetune", "segment all slices"])
def test_a_device_failure_in_a_background_job_is_notified_and_the_dock_recovers(qtbot, make_dock, notes,
                                                                               monkeypatch, job):
    viewer, dock = make_dock()
    if job == "finetune":
        _two_corrections(qtbot, viewer, dock)
        monkeypatch.setattr(VLSMModel, "decode", _device_failure)
        dock.advanced.steps.setValue(3)
        dock.finetune.btn_train.click()
    else:
        viewer.add_image(np.random.default_rng(5).integers(0, 255, (3, 24, 24), dtype=np.uint8), name="stack")
        segment(qtbot, dock, "x")  # the model is loaded (slice 0 cached); now the device fails
        monkeypatch.setattr(VLSMModel, "encode_image", _device_failure)
        dock.segment.btn_all.click()
    wait_for_jobs(qtbot, dock)
    assert usable(dock), (dock.session.job, dock.session.finetuning)
    assert any("illegal memory access" in n for n in notes), notes


# ----------------------------------------------------------------------------- full disk


def test_add_correction_on_a_full_disk_is_notified_and_nothing_is_damaged(qtbot, make_dock, notes, monkeypatch):
    viewer, dock = make_dock()
    viewer.add_image(np.random.default_rng(4).integers(0, 255, (32, 32), dtype=np.uint8), name="scan")
    labels = segment(qtbot, dock, "polyp")
    add_correction(qtbot, dock)
    (first,) = dock.session.project.store.samples()

    def full(path, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(store_files, "write_durable", full)
    labels.data_setitem((np.arange(5), np.arange(5)), 1)
    add_correction(qtbot, dock)
    qtbot.waitUntil(lambda: any("disk is full" in n for n in notes), timeout=WAIT_MS)
    monkeypatch.undo()
    (still,) = dock.session.project.store.samples()
    assert still.id == first.id and np.array_equal(still.mask, first.mask)
    assert dock.corrections.btn_add.isEnabled() and usable(dock)
    add_correction(qtbot, dock)  # space again: the correction on the layer is saved now
    (latest,) = dock.session.project.store.samples()  # same slice: it replaced the first
    np.testing.assert_array_equal(latest.mask, labels.data != 0)


def test_saving_the_adapter_on_a_full_disk_keeps_the_previous_adapter(qtbot, make_dock, notes, monkeypatch,
                                                                     tiny_model_dir):
    viewer, dock = make_dock()
    _two_corrections(qtbot, viewer, dock)
    session = dock.session
    loaded = load_model(tiny_model_dir, device="cpu")
    previous = build_adapters(AdapterConfig.from_variant(session.variant, loaded.config))
    path = save_adapter(session.adapters_dir / "adapter-previous.safetensors", previous,
                        build_metadata(previous, loaded, {"round": 1}))
    session.set_latest(path)
    dock.model.adapter.activated.emit(dock.model.adapter.findData("latest"))
    segment(qtbot, dock, "lesion")  # loads the previous adapter
    assert session.segmenter.adapter_path == str(path)
    before = path.read_bytes()

    def enospc(*_a, **_k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(safetensors.torch, "save_file", enospc)
    dock.advanced.steps.setValue(2)
    dock.finetune.btn_train.click()
    qtbot.waitUntil(lambda: any("could not save the adapter" in n for n in notes), timeout=WAIT_MS)
    settle(qtbot, dock)
    message = next(n for n in notes if "could not save the adapter" in n)
    assert "No space left on device" in message and "bug" not in message
    assert session.segmenter.adapter_path == str(path) and path.read_bytes() == before
    assert json.loads((session.adapters_dir / "latest.json").read_text())["path"] == path.name
    assert [p.name for p in session.adapters_dir.glob("*.safetensors")] == [path.name]
    assert usable(dock)


# ----------------------------------------------------------------------------- edits during a finetune


def test_edits_during_a_finetune_are_kept_for_the_next_round(qtbot, make_dock, monkeypatch):
    """The finetune trains on the store as it was when it started; corrections added meanwhile (a
    new slice, and a re-correction of a slice it trains on) are stored and wait for the next round,
    and the edits stay on the layer."""
    viewer, dock = make_dock()
    labels = _two_corrections(qtbot, viewer, dock)
    gate, in_training = threading.Event(), threading.Event()
    real = VLSMModel.decode

    def decode(self, activations, cond):
        if torch.is_grad_enabled() and not gate.is_set():  # the first training step waits for the test
            in_training.set()
            gate.wait(60)
        return real(self, activations, cond)

    monkeypatch.setattr(VLSMModel, "decode", decode)
    dock.advanced.steps.setValue(2)
    dock.finetune.btn_train.click()
    try:
        qtbot.waitUntil(in_training.is_set, timeout=WAIT_MS)
        assert dock.session.finetuning
        new_mask = np.zeros((40, 40), np.uint8)
        new_mask[5:15, 5:25] = 1
        diff = labels.data[2] != new_mask
        rows, cols = np.nonzero(diff)
        labels.data_setitem((np.full(rows.size, 2), rows, cols), new_mask[diff])
        dock.corrections.btn_add.click()  # slice 2: a new sample
        qtbot.waitUntil(lambda: not getattr(dock.corrections, "saving", False), timeout=WAIT_MS)
        viewer.dims.set_current_step(0, 0)
        labels.data_setitem((np.full(5, 0), np.arange(30, 35), np.arange(30, 35)), 1)
        dock.corrections.btn_add.click()  # slice 0 again: replaces the sample the finetune trains on
        qtbot.waitUntil(lambda: not getattr(dock.corrections, "saving", False), timeout=WAIT_MS)
        assert dock.session.finetuning  # all of this happened during the finetune
    finally:
        gate.set()
    settle(qtbot, dock)
    (adapter,) = dock.session.adapters_dir.glob("adapter-*.safetensors")
    assert read_metadata(adapter)["data"] == {"n_train": 1, "n_val": 1}  # the snapshot at the start
    store = dock.session.project.store
    assert store.counts() == {"train": 2, "val": 1}  # ... and the next round has three
    by_slice = {s.slice_index: s for s in store.samples()}
    np.testing.assert_array_equal(by_slice[(2,)].mask, new_mask.astype(bool))
    assert by_slice[(0,)].mask[30:35, 30:35].diagonal().all()
    np.testing.assert_array_equal(labels.data[2] != 0, new_mask.astype(bool))  # the edits stay on the layer


# ----------------------------------------------------------------------------- closing


def _stack_with_masks(qtbot, viewer, dock, n=4):
    viewer.add_image(np.random.default_rng(6).integers(0, 255, (n, 32, 32), dtype=np.uint8), name="scan")
    labels = segment(qtbot, dock, "lesion", all_slices=True)
    return labels




def _queue_three_while_the_writer_is_busy(qtbot, viewer, dock, labels, monkeypatch):
    """Slice 0 is being written (held at a gate); slices 1-3 queue up behind it as one batch."""
    from napari_vlsm.core.store import CorrectionStore

    gate, writing = threading.Event(), threading.Event()
    real = CorrectionStore.add

    def add(self, *args, **kwargs):
        if kwargs.get("slice_index") in ((0,), (2,)):  # hold the first write of each batch
            writing.set()
            gate.wait(60)
            gate.clear()
        return real(self, *args, **kwargs)

    monkeypatch.setattr(CorrectionStore, "add", add)
    dock.corrections.autosave.setChecked(False)  # only the clicks write (auto-save is on by default)
    for z in range(4):
        labels.data_setitem((np.full(3, z), np.arange(3), np.arange(3)), 1)
        viewer.dims.set_current_step(0, z)
        dock.corrections.btn_add.click()  # acknowledged: the write is queued
        if z == 0:
            qtbot.waitUntil(writing.is_set, timeout=WAIT_MS)
    return gate, writing


def test_closing_the_dock_with_corrections_queued_loses_none(qtbot, make_dock, monkeypatch):
    """Add correction returns at once and the disk write happens in a worker: closing the dock (or
    napari) while corrections are being written must still store every acknowledged click."""
    viewer, dock = make_dock()
    labels = _stack_with_masks(qtbot, viewer, dock)
    gate, writing = _queue_three_while_the_writer_is_busy(qtbot, viewer, dock, labels, monkeypatch)
    writing.clear()
    gate.set()  # slice 0 is written; the batch of slices 1-3 starts and is held at slice 2
    qtbot.waitUntil(writing.is_set, timeout=WAIT_MS)
    dock.close_session()  # the user closes napari now
    gate.set()
    qtbot.waitUntil(lambda: not getattr(dock.corrections, "saving", False), timeout=WAIT_MS)
    wait_for_jobs(qtbot, dock)
    stored = dock.session.project.store.samples()
    assert sorted(s.slice_index for s in stored) == [(0,), (1,), (2,), (3,)]


def test_closing_the_dock_right_after_a_stroke_still_auto_saves_it(qtbot, make_dock):
    viewer, dock = make_dock()
    labels = _stack_with_masks(qtbot, viewer, dock, n=2)
    dock.corrections.autosave.setChecked(True)
    viewer.dims.set_current_step(0, 1)
    labels.data_setitem((np.full(4, 1), np.arange(4), np.arange(4)), 1)  # a stroke, then close at once
    dock.close_session()
    wait_for_jobs(qtbot, dock)
    qtbot.waitUntil(lambda: not getattr(dock.corrections, "saving", False), timeout=WAIT_MS)
    wait_for_jobs(qtbot, dock)
    stored = dock.session.project.store.samples()
    assert [s.slice_index for s in stored] == [(1,)] and stored[0].mask[:4, :4].diagonal().all()
