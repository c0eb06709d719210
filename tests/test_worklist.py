"""The series worklist (core/worklist): adding, statuses, order, missing files, leases, crash safety,
two connections and a folder that cannot be written."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from napari_vlsm.core.errors import WorklistError
from napari_vlsm.core.worklist import STATUSES, Worklist, read_item

from helpers import dicom_series


def _png(path: Path, shape=(20, 30)) -> Path:
    import imageio.v3 as iio

    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, np.zeros(shape, np.uint8))
    return path


@pytest.fixture
def series(tmp_path) -> Path:
    """A folder of what users bring: images in a sub-folder, a TIFF stack, a NIfTI volume, a DICOM
    series folder, a damaged PNG and a text file."""
    import nibabel as nib
    import tifffile

    root = tmp_path / "in"
    _png(root / "a.png")
    _png(root / "sub" / "b.png", (25, 35))
    tifffile.imwrite(root / "stack.tif", np.zeros((4, 16, 16), np.uint16), photometric="minisblack")
    nib.save(nib.Nifti1Image(np.zeros((8, 9, 5), np.int16), np.eye(4)), root / "scan.nii.gz")
    dicom_series(root / "series", [0.0, 2.0, 4.0])
    (root / "broken.png").write_bytes(b"not a png at all")
    (root / "notes.txt").write_text("hello")
    return root


def test_add_classifies_without_dropping_anything(tmp_path, series):
    wl = Worklist(tmp_path / "project")
    report = wl.add([series])
    by_name = {i.name: i for i in wl.items()}
    assert set(by_name) == {"a.png", "b.png", "stack.tif", "scan.nii.gz", "series", "broken.png", "notes.txt"}
    assert [by_name[n].kind for n in ("a.png", "stack.tif", "scan.nii.gz", "series")] == \
        ["image", "stack", "volume", "volume"]
    assert by_name["scan.nii.gz"].shape == (8, 9, 5)
    assert by_name["broken.png"].status == by_name["notes.txt"].status == "unreadable"
    assert "not an image or volume" in by_name["notes.txt"].reason
    assert {p.name for p, _ in report.unreadable} == {"broken.png", "notes.txt"}
    counts = wl.counts()
    assert set(counts) == set(STATUSES) | {"total"}
    assert counts["unseen"] == 5 and counts["unreadable"] == 2 and counts["total"] == 7
    assert [i.id for i in wl.items()] == sorted(i.id for i in wl.items())


def test_same_input_twice_adds_nothing(tmp_path, series):
    wl = Worklist(tmp_path / "project")
    wl.add([series])
    before = wl.items()
    one_dicom_file = sorted((series / "series").iterdir())[1]
    report = wl.add([series / "a.png", one_dicom_file, series])  # a file of the series = the series
    assert report.added == [] and len(report.duplicates) == 2 + len(before)
    assert wl.items() == before


def test_a_dicom_file_first_then_its_folder_is_one_item(tmp_path):
    folder = dicom_series(tmp_path / "s", [0.0, 1.0])
    wl = Worklist(tmp_path / "project")
    assert len(wl.add([sorted(folder.iterdir())[0]]).added) == 1
    assert wl.add([folder]).added == []


def test_statuses_resume_and_next(tmp_path, series):
    wl = Worklist(tmp_path / "project")
    wl.add([series])
    first = wl.next_item("in-order")
    assert first.name == "a.png"
    assert wl.mark_opened(first.id).status == "in-progress"
    wl.set_current(first.id)
    wl.set_status(first.id, "done")
    second = wl.next_item("in-order", after=first.id)
    wl.set_status(second.id, "skipped")
    third = wl.next_item("in-order", after=second.id)
    assert third.id not in (first.id, second.id) and third.status == "unseen"
    with pytest.raises(WorklistError, match="cannot be set"):
        wl.set_status(third.id, "missing")
    unreadable = next(i for i in wl.items() if i.status == "unreadable")
    with pytest.raises(WorklistError, match="unreadable"):
        wl.set_status(unreadable.id, "done")
    wl.close()
    again = Worklist(tmp_path / "project")  # a restart: the same statuses, the same current item
    assert again.current() == first.id
    assert again.get(first.id).status == "done" and again.get(second.id).status == "skipped"
    assert again.get(first.id).last_opened is not None


def test_most_uncertain_and_random_orders(tmp_path):
    wl = Worklist(tmp_path / "project")
    ids = [i.id for i in wl.add([_png(tmp_path / f"{n}.png") for n in range(5)]).added]
    wl.record_score(ids[1], 0.2, "k")
    wl.record_score(ids[3], 0.9, "k")
    wl.record_score(ids[4], 0.5, "k", worst_slices=[3, 1])
    assert wl.next_item("most-uncertain").id == ids[3]
    assert wl.next_item("most-uncertain", after=ids[3]).id == ids[4]
    assert [i.id for i in wl.ranked()] == [ids[3], ids[4], ids[1], ids[0], ids[2]]
    assert wl.get(ids[4]).worst_slices == (3, 1)
    wl.set_status(ids[3], "done")
    assert wl.next_item("most-uncertain").id == ids[4]
    picks = {wl.next_item("random", seed=s).id for s in range(40)}
    assert picks <= set(ids) - {ids[3]} and len(picks) > 1
    with pytest.raises(WorklistError, match="unknown order"):
        wl.next_item("best")


def test_corrections_adapter_and_unknown_item(tmp_path):
    wl = Worklist(tmp_path / "project")
    item = wl.add([_png(tmp_path / "a.png")]).added[0]
    wl.add_corrections(item.id, 2)
    assert wl.set_adapter(item.id, "adapter-x.safetensors").corrections == 2
    assert wl.get(item.id).adapter == "adapter-x.safetensors"
    with pytest.raises(WorklistError, match="no item 99"):
        wl.get(99)


def test_missing_file_and_its_return(tmp_path):
    wl = Worklist(tmp_path / "project")
    path = _png(tmp_path / "a.png")
    item = wl.add([path]).added[0]
    wl.set_status(item.id, "done")
    wl.record_score(item.id, 0.4, "k")
    moved = path.rename(tmp_path / "elsewhere.png")
    changed = wl.refresh_missing()
    assert [i.status for i in changed] == ["missing"] and "gone" in changed[0].reason
    with pytest.raises(WorklistError, match="gone"):
        read_item(wl.get(item.id))
    assert wl.next_item() is None
    moved.rename(path)
    assert wl.refresh_missing()[0].status == "done"  # back with the status it had
    _png(path, (40, 40))  # the file changed: the cached score no longer applies, nor its shape
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    wl.refresh_missing()
    assert wl.get(item.id).score is None
    with pytest.raises(WorklistError, match="changed since it was added"):
        read_item(wl.get(item.id))


def test_read_item_gives_what_the_readers_give(tmp_path, series):
    wl = Worklist(tmp_path / "project")
    wl.add([series])
    by_name = {i.name: i for i in wl.items()}
    assert read_item(by_name["a.png"]).shape == (20, 30)
    assert read_item(by_name["stack.tif"]).shape == (4, 16, 16)
    volume = read_item(by_name["series"])
    assert volume.shape[0] == 3 and volume.geometry is not None


def test_leases_expire_and_two_annotators_never_share(tmp_path):
    wl = Worklist(tmp_path / "project")
    ids = [i.id for i in wl.add([_png(tmp_path / f"{n}.png") for n in range(3)]).added]
    other = Worklist(tmp_path / "project")  # a second connection, as a second server worker
    a = wl.lease("ana", 60, order="in-order")
    b = other.lease("ben", 0.5, order="in-order")
    assert (a.id, b.id) == (ids[0], ids[1]) and a.status == "in-progress"
    assert wl.holder(a.id) == "ana"
    c = wl.lease("carl", 60, order="in-order")
    assert c.id == ids[2]
    assert wl.lease("dora", 60, order="in-order") is None  # everything open is held
    time.sleep(0.6)  # ben's lease runs out: his item goes to the next who asks
    assert wl.lease("dora", 60, order="in-order").id == ids[1]
    assert wl.lease("ana", 60, order="in-order").id == a.id  # nothing else is free: she keeps hers
    wl.release(a.id, "someone-else")  # only the holder releases
    assert wl.holder(a.id) == "ana"
    wl.release(a.id, "ana")
    assert wl.holder(a.id) == ""
    assert wl.lease("ana", 60, order="in-order").id == a.id
    with pytest.raises(WorklistError, match="annotator"):
        wl.lease("", 60)


def test_an_item_held_by_hand_is_never_handed_to_another(tmp_path):
    wl = Worklist(tmp_path / "project")
    ids = [i.id for i in wl.add([_png(tmp_path / f"{n}.png") for n in range(3)]).added]
    other = Worklist(tmp_path / "project")  # a second window on the project
    held = wl.hold(ids[0], "ana", 60)  # opened by double-click, not through lease()
    assert held.id == ids[0] and other.holder(ids[0]) == "ana"
    assert other.lease("ben", 60, order="in-order").id == ids[1]  # ben's Next passes over it
    with pytest.raises(WorklistError, match="being corrected by ben"):
        wl.hold(ids[1], "ana", 60)  # ben's item is refused to ana ...
    assert other.holder(ids[0]) == "ana"  # ... and she keeps hers
    assert wl.hold(ids[1], "ana", 60, replace=("ben",)).id == ids[1]  # a gone holder's lease is taken over
    assert wl.holder(ids[0]) == "" and wl.holder(ids[1]) == "ana"  # one lease per holder
    assert other.lease("ben", 60, order="in-order").id == ids[0]
    with pytest.raises(WorklistError, match="no item 99"):
        wl.hold(99, "ana", 60)


def test_two_connections_see_each_other(tmp_path):
    one, two = Worklist(tmp_path / "p"), Worklist(tmp_path / "p")
    item = one.add([_png(tmp_path / "a.png")]).added[0]
    two.set_status(item.id, "done")
    assert one.get(item.id).status == "done"
    assert two.add([tmp_path / "a.png"]).added == []


def test_a_writer_that_holds_the_lock_gives_a_clear_error(tmp_path, monkeypatch):
    import sqlite3

    from napari_vlsm.core.worklist import database

    monkeypatch.setattr(database, "BUSY_TIMEOUT_MS", 200)
    wl = Worklist(tmp_path / "p")
    blocker = sqlite3.connect(tmp_path / "p" / database.DB_NAME, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process in the middle of a change
    try:
        with pytest.raises(WorklistError, match="busy in another window"):
            wl.add([_png(tmp_path / "a.png")])
        assert wl.items() == []  # reading still works while the other one writes
    finally:
        blocker.execute("ROLLBACK")
    assert len(wl.add([tmp_path / "a.png"]).added) == 1


def test_a_project_folder_that_cannot_be_made(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(WorklistError, match="cannot create the project folder"):
        Worklist(blocker / "project")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_project_folder(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(WorklistError, match="read-only"):
            Worklist(ro)
    finally:
        ro.chmod(0o755)


def test_a_path_that_does_not_exist_adds_nothing(tmp_path):
    wl = Worklist(tmp_path / "p")
    with pytest.raises(WorklistError, match="does not exist"):
        wl.add([_png(tmp_path / "a.png"), tmp_path / "nope"])
    assert wl.items() == []


KILLED_MID_ADD = textwrap.dedent("""
    import sys, time
    from napari_vlsm.core.worklist import Worklist, worklist
    real = worklist.stamp
    calls = []
    def slow_stamp(path):  # called inside the transaction, once per new row
        calls.append(path)
        if len(calls) == 3:
            print("inside", flush=True)
            time.sleep(60)
        return real(path)
    worklist.stamp = slow_stamp
    Worklist(sys.argv[1]).add([sys.argv[2]])
""")


def test_killed_mid_transaction_loses_nothing_stored(tmp_path):
    wl = Worklist(tmp_path / "project")
    kept = wl.add([_png(tmp_path / "first.png")]).added[0]
    wl.set_status(kept.id, "done")
    folder = tmp_path / "more"
    for n in range(6):
        _png(folder / f"{n}.png")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-c", KILLED_MID_ADD, str(tmp_path / "project"), str(folder)],
                            stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout.readline().strip() == "inside"
        assert wl.items()[0].status == "done"  # readers are not blocked by the open transaction
    finally:
        proc.kill()
        proc.wait(timeout=30)
    after = Worklist(tmp_path / "project")
    assert [(i.name, i.status) for i in after.items()] == [("first.png", "done")]  # all of the add or none
    assert len(after.add([folder]).added) == 6  # and the worklist works on


def test_export_of_a_stack_and_a_dicom_series(tmp_path):
    import nibabel as nib
    import tifffile

    from napari_vlsm.core.store import CorrectionStore
    from napari_vlsm.core.worklist.export import export_done

    stack = np.random.default_rng(0).integers(0, 4000, (3, 16, 20)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "stack.tif", stack, photometric="minisblack")
    series = dicom_series(tmp_path / "series", [0.0, 2.0, 4.0])
    wl = Worklist(tmp_path / "p")
    items = {i.name: i for i in wl.add([tmp_path / "stack.tif", series]).added}
    store = CorrectionStore(tmp_path / "p" / "corrections")
    mask = np.zeros((16, 20), bool)
    mask[2:6, 3:9] = True
    store.add(stack[1], mask, ["cyst"], source=str(items["stack.tif"].path), slice_index=1)
    volume = read_item(items["series"])
    z_mask = np.zeros(volume.shape[1:], bool)
    z_mask[10:20, 30:40] = True
    store.add(np.asarray(volume.array[2]), z_mask, ["liver"], source=str(items["series"].path), slice_index=2)
    for item in items.values():
        wl.set_status(item.id, "done")
    written = export_done(wl, store, tmp_path / "out")
    labels = tifffile.imread(wl.output_path(items["stack.tif"], tmp_path / "out"))
    assert labels.shape == stack.shape and np.array_equal(labels[1] == 1, mask) and not labels[[0, 2]].any()
    nifti = nib.load(wl.output_path(items["series"], tmp_path / "out"))
    assert int((np.asarray(nifti.dataobj) == 2).sum()) == int(z_mask.sum())
    assert nifti.shape == tuple(reversed(volume.shape))  # (x, y, z) on the series' own grid
    assert written[-1].name == "labels.json"
