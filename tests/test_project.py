"""The project owns the loop: its layout (old dock folders read in place), listing without decoding,
a finetune that honours Cancel from its first event, and the one rule for "latest"."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from napari_vlsm.core.errors import AdapterError
from napari_vlsm.core.project import FinetuneRequest, FinetuneResult, Project, ProjectLike
from napari_vlsm.core.store import CorrectionStore

from helpers import disks


def _add(project, n: int, prompt: str = "disk"):
    for i, s in enumerate(disks(n)):
        project.add_correction(s.image, s.mask, [prompt, "a bright disk"], source="scan", slice_index=i)


def test_a_new_project_keeps_corrections_in_their_own_folder(tmp_path):
    project = Project(tmp_path / "p")
    _add(project, 2)
    assert (tmp_path / "p" / "corrections" / "store.json").is_file()
    assert len(list((tmp_path / "p" / "corrections" / "samples").iterdir())) == 2
    assert isinstance(project, ProjectLike)


def test_a_folder_of_the_old_dock_layout_is_read_where_it_is(tmp_path):
    old = CorrectionStore(tmp_path / "p")  # the dock's layout before: <project>/samples
    s = disks(1)[0]
    sample = old.add(s.image, s.mask, ["disk"])
    project = Project(tmp_path / "p")
    assert [c.id for c in project.corrections()] == [sample.id]
    _add(project, 1)
    assert not (tmp_path / "p" / "corrections").exists()  # nothing moved, nothing split in two
    assert len(CorrectionStore(tmp_path / "p").samples()) == 2


def test_listing_reads_metadata_only(tmp_path, monkeypatch):
    import tifffile

    project = Project(tmp_path / "p")
    _add(project, 3)
    monkeypatch.setattr(tifffile, "imread", lambda *a, **k: pytest.fail("the listing decoded an image"))
    rows = project.corrections("disk")
    assert [r.split for r in rows] == ["train", "val", "train"]
    assert rows[0].shape == (64, 64) and rows[0].slice_index == (0,) and rows[0].prompts == ("disk", "a bright disk")
    assert project.counts("disk") == {"train": 2, "val": 1}


def test_cancel_is_honoured_from_the_first_event(loaded):
    """The trainer itself stops when Cancel came with its first event (front ends patched this twice)."""
    from napari_vlsm.core.training import TrainConfig, finetune

    cancel = threading.Event()
    gen = finetune(loaded, disks(2), disks(1, seed=1), TrainConfig(max_steps=5, batch_size=2), cancel=cancel)
    assert next(gen).kind == "start"
    cancel.set()
    kinds = []
    with pytest.raises(StopIteration) as stop:
        while True:
            kinds.append(next(gen).kind)
    assert kinds == ["done"]  # no "prepare": no feature was computed
    assert stop.value.value.cancelled and stop.value.value.adapters is None


def _train(project, cancel=None, keep=None, steps=2):
    gen = project.train(FinetuneRequest(variant="shallow-v", max_steps=steps, batch_size=2), cancel, keep)
    events = []
    while True:
        try:
            events.append(next(gen))
        except StopIteration as stop:
            return events, stop.value


def test_latest_moves_only_when_held_out_dice_improved(tmp_path, loaded, force_dice):
    project = Project(tmp_path / "p", model=loaded)
    _add(project, 3)
    force_dice(0.5, 0.7)
    events, first = _train(project)
    assert isinstance(first, FinetuneResult) and events[0].kind == "start" and events[-1].kind == "done"
    assert first.improved and first.latest and project.latest_adapter() == first.adapter
    assert json.loads(project.layout.latest_file.read_text()) == {"path": first.adapter}
    force_dice(0.7, 0.6)
    _, second = _train(project)
    assert second.adapter and not second.latest and second.adapter != first.adapter
    assert project.latest_adapter() == first.adapter  # a worse run never becomes "latest"
    listed = project.adapters()
    assert [a["name"] for a in listed] == sorted([first.adapter, second.adapter])
    assert [a["latest"] for a in listed if a["name"] == first.adapter] == [True]
    assert project.adapter_path("latest").name == first.adapter


def test_a_project_without_an_improved_run_has_no_latest(tmp_path, loaded, force_dice):
    project = Project(tmp_path / "p", model=loaded)
    _add(project, 3)
    force_dice(0.7, 0.6)
    _, result = _train(project)
    assert result.adapter and not result.latest
    assert project.latest_adapter() is None
    with pytest.raises(AdapterError, match="no latest adapter"):
        project.adapter_path("latest")


def test_a_cancelled_run_saves_nothing_unless_kept(tmp_path, loaded, force_dice):
    project = Project(tmp_path / "p", model=loaded)
    _add(project, 3)
    force_dice(0.5, 0.7)
    cancel, keep = threading.Event(), threading.Event()
    gen = project.train(FinetuneRequest(variant="shallow-v", max_steps=40, batch_size=2), cancel, keep)
    for event in gen:
        if event.kind == "eval" and event.step > 0:  # something evaluated: a best state exists
            keep.set()
            cancel.set()  # the dock closed mid-run: the best adapter so far is kept
    kept = project.adapters()
    assert len(kept) == 1 and project.latest_adapter() == kept[0]["name"]
    cancel = threading.Event()
    gen = project.train(FinetuneRequest(variant="shallow-v", max_steps=1000, batch_size=2), cancel)
    for event in gen:
        if event.kind == "step":
            cancel.set()  # the user's Cancel: nothing saved
    assert len(project.adapters()) == 1


def test_init_adapter_by_name_latest_or_path(tmp_path, loaded, force_dice):
    project = Project(tmp_path / "p", model=loaded)
    _add(project, 3)
    force_dice(0.5, 0.7)
    _, first = _train(project)
    for ref in ("latest", first.adapter, str(first.adapter_path)):
        assert project.resolve_init(ref) == first.adapter_path
    with pytest.raises(AdapterError):
        project.resolve_init("adapter-nope.safetensors")
    gen = project.train(FinetuneRequest(variant="shallow-vlc", max_steps=1, batch_size=2, init_adapter="latest"))
    *_, = gen  # runs; the continued adapter's variant wins
    assert any(a["variant"] == "shallow-v" and a["parent"] for a in project.adapters())


def test_fetch_adapter_and_a_hostile_latest_json(tmp_path, loaded, force_dice):
    project = Project(tmp_path / "p", model=loaded)
    _add(project, 3)
    force_dice(0.5, 0.7)
    _, result = _train(project)
    out = project.fetch_adapter("latest", tmp_path / "copy.safetensors")
    assert out.read_bytes() == result.adapter_path.read_bytes()
    project.layout.latest_file.write_text(json.dumps({"path": "../../etc/passwd"}))
    assert project.latest_adapter() is None


def test_the_project_owns_its_worklist(tmp_path):
    import imageio.v3 as iio

    iio.imwrite(tmp_path / "a.png", np.zeros((8, 8), np.uint8))
    project = Project(tmp_path / "p")
    with project.worklist as worklist:
        assert worklist.root == project.root.resolve()
        worklist.add([tmp_path / "a.png"])
    with Project(tmp_path / "p").worklist as again:  # the same file: worklist.sqlite in the project folder
        assert [i.name for i in again.items()] == ["a.png"]


def test_result_wire_form_round_trips():
    result = FinetuneResult(adapter="adapter-x.safetensors", before={"dice": 0.5}, after={"dice": 0.7},
                            improved=True, latest=True, steps=3, adapters=object())
    back = FinetuneResult.from_json(json.loads(json.dumps(result.to_json())))
    assert back.adapter == result.adapter and back.latest and back.steps == 3 and back.adapters is None
    assert np.isclose(back.after["dice"], 0.7)


def test_the_docks_corrections_list_decodes_no_image(tmp_path, monkeypatch):
    """Before: every save re-read the list by decoding every stored image of the structure."""
    pytest.importorskip("napari")
    import tifffile

    from napari_vlsm._napari.correction_panel import list_corrections

    project = Project(tmp_path / "p")
    _add(project, 3)
    monkeypatch.setattr(tifffile, "imread", lambda *a, **k: pytest.fail("the list decoded an image"))
    counts, rows = list_corrections(project, "disk")
    assert counts == {"train": 2, "val": 1} and len(rows) == 3
    assert [r[0] for r in rows] == [c.id for c in project.corrections("disk")]
    assert all(" · slice " in text and text.endswith(" · scan") for _, text in rows)
