"""``napari-vlsm worklist``: add, status --json, rank --json, export; user errors are one line, exit 2."""

from __future__ import annotations

import json

import imageio.v3 as iio
import numpy as np
import pytest

from napari_vlsm.cli import main
from napari_vlsm.core.worklist import Worklist

pytestmark = pytest.mark.usefixtures("one_thread")


def run_main(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def inputs(tmp_path):
    import nibabel as nib

    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for n in range(3):
        iio.imwrite(folder / f"frame{n}.png", rng.integers(0, 256, (40, 50, 3), dtype=np.uint8))
    affine = np.diag([0.8, 0.9, 3.0, 1.0])
    affine[:3, 3] = (-20, 15, 40)
    nib.save(nib.Nifti1Image(rng.integers(-100, 300, (24, 20, 6)).astype(np.int16), affine), folder / "ct.nii.gz")
    (folder / "readme.txt").write_text("not an image")
    return folder


def test_add_then_status_json(capsys, tmp_path, inputs):
    project = tmp_path / "project"
    code, out, err = run_main(capsys, "worklist", "add", "--project", project, inputs)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "Added 5 items · 0 already listed" and len(lines[0]) <= 40
    assert any(line.startswith("unreadable:") and "readme.txt" in line for line in lines)
    code, out, _ = run_main(capsys, "worklist", "add", "--project", project, inputs / "frame1.png")
    assert out.splitlines()[0] == "Added 0 items · 1 already listed"
    code, out, err = run_main(capsys, "worklist", "status", "--project", project, "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert set(doc) == {"items", "counts"}
    assert {"id", "path", "kind", "status", "score", "corrections"} <= set(doc["items"][0])
    kinds = {item["path"].rsplit("/", 1)[-1]: item["kind"] for item in doc["items"]}
    assert kinds["ct.nii.gz"] == "volume" and kinds["frame0.png"] == "image"
    assert doc["counts"]["unseen"] == 4 and doc["counts"]["unreadable"] == 1 and doc["counts"]["total"] == 5
    code, out, _ = run_main(capsys, "worklist", "status", "--project", project)
    assert out.splitlines()[0] == "0 / 5 done · 0 in progress"


def test_rank_json_sorted_and_stored(capsys, tmp_path, inputs, tiny_model_dir):
    project = tmp_path / "project"
    run_main(capsys, "worklist", "add", "--project", project, inputs)
    code, out, err = run_main(capsys, "worklist", "rank", "--project", project, "--model", tiny_model_dir,
                              "--device", "cpu", "--precision", "fp32", "--prompt", "polyp", "--json")
    assert code == 0, err
    items = json.loads(out)["items"]
    scores = [i["score"] for i in items if i["score"] is not None]
    assert len(scores) == 4 and scores == sorted(scores, reverse=True)
    assert items[-1]["status"] == "unreadable" and items[-1]["score"] is None
    volume = next(i for i in items if i["path"].endswith("ct.nii.gz"))
    assert sorted(volume["worst_slices"]) == list(range(6))
    stored = {i.id: i.score for i in Worklist(project).items()}
    assert all(stored[i["id"]] == i["score"] for i in items)


def test_rank_latest_without_an_adapter_is_a_user_error(capsys, tmp_path, inputs, tiny_model_dir):
    project = tmp_path / "project"
    run_main(capsys, "worklist", "add", "--project", project, inputs / "frame0.png")
    code, out, err = run_main(capsys, "worklist", "rank", "--project", project, "--model", tiny_model_dir,
                              "--adapter", "latest", "--prompt", "polyp")
    assert code == 2 and err.count("\n") == 1 and "no latest adapter" in err


def test_user_errors_are_one_line(capsys, tmp_path):
    code, _, err = run_main(capsys, "worklist", "status", "--project", tmp_path / "none")
    assert code == 2 and err.count("\n") == 1 and "has no worklist yet" in err
    code, _, err = run_main(capsys, "worklist", "add", "--project", tmp_path / "p", tmp_path / "missing.png")
    assert code == 2 and err.count("\n") == 1 and "does not exist" in err


def test_export_done_items_on_their_grid(capsys, tmp_path, inputs):
    import nibabel as nib

    from napari_vlsm.core.store import CorrectionStore

    project = tmp_path / "project"
    run_main(capsys, "worklist", "add", "--project", project, inputs)
    code, _, err = run_main(capsys, "worklist", "export", "--project", project, "--out", tmp_path / "out")
    assert code == 2 and "no item" in err
    wl = Worklist(project)
    items = {i.name: i for i in wl.items()}
    store = CorrectionStore(project / "corrections")
    frame = iio.imread(inputs / "frame0.png")
    mask = np.zeros(frame.shape[:2], bool)
    mask[5:15, 10:30] = True
    store.add(frame, mask, ["polyp"], source=str(items["frame0.png"].path))
    ct = nib.load(inputs / "ct.nii.gz")
    from napari_vlsm.core.worklist import read_item

    volume = read_item(items["ct.nii.gz"])
    z_mask = np.zeros(volume.shape[1:], bool)
    z_mask[3:8, 4:9] = True
    store.add(np.asarray(volume.array[2]), z_mask, ["liver"], source=str(items["ct.nii.gz"].path), slice_index=2)
    wl.set_status(items["frame0.png"].id, "done")
    wl.set_status(items["ct.nii.gz"].id, "done")
    code, out, err = run_main(capsys, "worklist", "export", "--project", project, "--out", tmp_path / "out")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "Exported 2 done items" and lines[-1] == str(tmp_path / "out" / "labels.json")
    png = iio.imread(wl.output_path(items["frame0.png"], tmp_path / "out"))
    assert np.array_equal(png == 1, mask)
    written = nib.load(wl.output_path(items["ct.nii.gz"], tmp_path / "out"))
    assert written.shape == ct.shape and np.allclose(written.affine, ct.affine)
    labels = np.asarray(written.dataobj)
    assert set(np.unique(labels)) == {0, 2} and int((labels == 2).sum()) == int(z_mask.sum())
    legend = json.loads((tmp_path / "out" / "labels.json").read_text())
    assert legend == {"0": "background", "1": "polyp", "2": "liver"}


def test_export_copies_the_masks_the_dock_saved(capsys, tmp_path, inputs):
    """A done item with a mask in <project>/masks (what the dock's Mark done wrote) is exported as
    that file, byte-equal, with its legend; an item done elsewhere is rebuilt from its corrections."""
    from napari_vlsm.core.project import ProjectLayout
    from napari_vlsm.core.store import CorrectionStore
    from napari_vlsm.core.worklist.export import item_files

    project = tmp_path / "project"
    run_main(capsys, "worklist", "add", "--project", project, inputs)
    wl = Worklist(project)
    items = {i.name: i for i in wl.items()}
    dock_item, other = items["frame0.png"], items["frame1.png"]
    saved, legend = item_files(dock_item, ProjectLayout(project).masks)
    saved.parent.mkdir(parents=True)
    painted = np.zeros((40, 50), np.uint8)
    painted[2:9, 3:30] = 1  # no correction was stored for it: only the saved file has this mask
    iio.imwrite(saved, painted, extension=".png")
    legend.write_text('{"structures": [{"value": 1, "prompt": "polyp"}]}\n')
    frame = iio.imread(other.path)
    mask = np.zeros(frame.shape[:2], bool)
    mask[5:15, 10:30] = True
    CorrectionStore(project / "corrections").add(frame, mask, ["polyp"], source=str(other.path))
    wl.set_status(dock_item.id, "done")
    wl.set_status(other.id, "done")
    code, out, err = run_main(capsys, "worklist", "export", "--project", project, "--out", tmp_path / "out")
    assert code == 0, err
    copied, copied_legend = item_files(dock_item, tmp_path / "out")
    assert copied.read_bytes() == saved.read_bytes() and copied_legend.read_bytes() == legend.read_bytes()
    assert {str(copied), str(copied_legend)} <= set(out.splitlines())
    rebuilt = iio.imread(wl.output_path(other, tmp_path / "out"))
    assert np.array_equal(rebuilt == 1, mask)
