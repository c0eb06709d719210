"""The worklist through ``napari-vlsm serve`` (a real child process on 127.0.0.1): two annotators,
leases, status updates, an item's pixels, ranking on the server."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest

from napari_vlsm.client import ServerError, VLSMClient
from napari_vlsm.client.worklist import RemoteWorklist
from napari_vlsm.core.worklist import Worklist
from napari_vlsm.server.process import ServerProcess

from worklist_helpers import annotator, server_project, write_frames


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    with ServerProcess(tiny_model_dir, tmp_path_factory.mktemp("server")) as proc:
        yield proc


@pytest.fixture(scope="module")
def frames(server, tmp_path_factory):
    """Three frames in the server project "colon", added the way an admin does (on the server)."""
    folder = write_frames(tmp_path_factory.mktemp("frames"), 3, (36, 44, 3), seed=0, prefix="f")
    Worklist(server.project_root / "colon").add([folder])
    return folder


def test_two_annotators_never_get_the_same_item(server, frames):
    ana, ben = annotator(server, "colon", "ana"), annotator(server, "colon", "ben")
    ranked = ana.rank(["polyp"])
    scores = [i["score"] for i in ranked["items"]]
    assert None not in scores and scores == sorted(scores, reverse=True)
    first = ana.next(order="most-uncertain")
    assert first["id"] == ranked["items"][0]["id"] and first["status"] == "in-progress"
    second = ben.next(order="most-uncertain")
    assert second["id"] != first["id"]
    image, item = ana.image(first["id"])
    assert image.shape == (36, 44, 3) and item["id"] == first["id"]
    with pytest.raises(ServerError, match="held by owner/ana") as err:
        ben.set_status(first["id"], "done")
    assert err.value.status == 409
    third = ana.next(previous_id=first["id"], previous_status="done")  # status update + the next item
    assert third["id"] not in (first["id"], second["id"])
    status = ana.status()
    assert status["counts"]["done"] == 1 and status["counts"]["in-progress"] == 2
    assert ben.set_status(second["id"], "skipped")["status"] == "skipped"
    assert ben.next() is None  # every open item is held (third, by ana) or done


def test_a_project_without_worklist_and_bad_bodies(server):
    client = VLSMClient(server.url, server.token, timeout=60)
    with pytest.raises(ServerError, match="has no worklist") as err:
        RemoteWorklist(client, "empty", "ana").status()
    assert err.value.status == 404
    with pytest.raises(ServerError) as err:
        RemoteWorklist(client, "colon", "").next()
    assert err.value.status == 422


def test_server_paths_stay_private_and_every_status_change_is_audited(server, frames):
    """Items are the server's files: a client sees their names, never the server's folders; leases
    and status changes are in the audit log under the token's name (issue 21)."""
    import json

    ana = annotator(server, "colon", "ana-audit")
    status = ana.status()
    assert status["items"] and all(str(frames) not in json.dumps(i) for i in status["items"])
    assert all("/" not in i["path"] for i in status["items"])
    skipped = next(i for i in status["items"] if i["status"] == "skipped")  # left by the test above
    ana.hold(skipped["id"])  # a status is written under a live lease of one's own
    ana.set_status(skipped["id"], "unseen")  # open again (its lease ends): the next one to hand out
    item = ana.next(order="in-order")
    assert item is not None and item["id"] == skipped["id"] and str(frames) not in json.dumps(item)
    ana.set_status(item["id"], "skipped")
    lines = [json.loads(line) for path in server.project_root.rglob("audit*.jsonl")
             for line in path.read_text().splitlines()]
    mine = [e for e in lines if e.get("item") == item["id"] and e["what"].startswith("worklist.")]
    assert {e["what"] for e in mine} >= {"worklist.leased", "worklist.status"}
    assert all(e["who"] == "owner" for e in mine)


# ------------------------------------------------------------------ the dock's server mode (issue 19)
def _scan_round_trip(server, project, item_id):
    """The item's pixels and grid from the server, a mask saved onto that grid and read back."""
    import json

    import nibabel as nib

    from napari_vlsm.core.medical import Geometry
    from napari_vlsm.core.worklist import read_item

    ana, ben = annotator(server, project, "ana"), annotator(server, project, "ben")
    assert ana.hold(item_id)["status"] == "in-progress"
    with Worklist(server.project_root / project) as wl:
        local = read_item(wl.get(item_id))
    response = ana.client._request("GET", f"/v1/projects/{project}/items/{item_id}/image")
    assert len(response.headers["X-VLSM-Item"]) < 4096  # 16 KiB is what a client reads in headers
    image, item = ana.image(item_id)
    volume = item["volume"]
    assert set(volume) == {"geometry", "modality", "format"} and volume["format"] == local.kind
    geometry = Geometry.from_dict(volume["geometry"])
    assert geometry.same_grid(local.geometry) and geometry.shape == local.shape == image.shape
    assert np.array_equal(geometry.original_affine, local.geometry.original_affine)
    assert ana.mask(item_id) is None
    labels = np.zeros(image.shape, np.uint8)
    labels[1:-1, 2:6, 3:9] = 1
    labels[0, :2, :2] = 2
    structures = [{"value": 1, "name": "liver", "prompt": "liver"}, {"value": 2, "name": "spleen", "prompt": "spleen"}]
    saved = ana.save_mask(item_id, labels, structures)
    assert "/" not in saved["mask"] and saved["item"]["id"] == item_id
    written = nib.load(server.project_root / project / "masks" / saved["mask"])
    original = nib.load(local.path)
    assert written.shape == original.shape[:3] and np.allclose(written.affine, original.affine)
    audit = [json.loads(line) for line in (server.project_root / project / "audit.jsonl").read_text().splitlines()]
    (saved_line,) = [e for e in audit if e["what"] == "worklist.mask_saved"]
    assert saved_line["item"] == item_id and saved_line["structures"] == structures and saved_line["who"] == "owner"
    back, legend = ana.mask(item_id)
    assert np.array_equal(back, labels)
    assert [{k: s[k] for k in ("value", "name", "prompt")} for s in legend["structures"]] == structures
    with pytest.raises(ServerError, match=r"\(3, 4, 5\).*" + json.dumps(list(image.shape))[1:-1]) as err:
        ana.save_mask(item_id, np.zeros((3, 4, 5), np.uint8), structures)
    assert err.value.status == 422
    with pytest.raises(ServerError, match="held by owner/ana") as err:
        ben.save_mask(item_id, labels, structures)
    assert err.value.status == 409
    with pytest.raises(ServerError, match="value 3") as err:
        ana.save_mask(item_id, labels * 3, structures)  # a value the legend does not name
    assert err.value.status == 422
    ana.release(item_id)


def test_a_synthetic_scan_mask_lands_on_its_grid(server, tmp_path):
    import nibabel as nib

    affine = np.array([[0.0, -0.9, 0, 30], [0.8, 0, 0, -12], [0, 0, 2.5, 7], [0, 0, 0, 1]])  # axes swapped
    data = np.random.default_rng(1).integers(-100, 300, (14, 11, 6)).astype(np.int16)
    nib.save(nib.Nifti1Image(data, affine), tmp_path / "ct.nii.gz")
    server_project(server, "scans", [tmp_path / "ct.nii.gz"])
    _scan_round_trip(server, "scans", 1)


def test_shared_scans_fit_the_header_and_a_ct_mask_lands_on_its_grid(server, shared_data):
    folder = shared_data / "geometry" / "totalseg"
    server_project(server, "shared-scans", [folder])
    ana = annotator(server, "shared-scans", "ana")
    items = {i["name"]: i for i in ana.status()["items"]}
    for item in items.values():  # every readable scan of the folder, DICOM series included
        if item["status"] != "unreadable":
            response = ana.client._request("GET", f"/v1/projects/shared-scans/items/{item['id']}/image")
            assert len(response.headers["X-VLSM-Item"]) < 4096, item["name"]
            assert str(folder) not in response.headers["X-VLSM-Item"]
    _scan_round_trip(server, "shared-scans", next(i["id"] for n, i in items.items() if n.startswith("example_ct_sm")))


@pytest.fixture(scope="module")
def series(server, tmp_path_factory):
    """Ten small frames in the server project "series"."""
    folder = write_frames(tmp_path_factory.mktemp("series"), 10, (24, 28, 3), seed=2, prefix="s")
    server_project(server, "series", [folder])
    return folder


def _next_ids(annotator, order, count, seed=None, previous=None):
    """What ``count`` Next presses hand out, each leaving the item before done."""
    ids = []
    for _ in range(count):
        item = annotator.next(order=order, previous_id=previous, previous_status="done" if previous else None,
                              seed=seed)
        ids.append(item["id"])
        previous = item["id"]
    return ids


def test_the_plan_is_what_next_hands_out(server, series):
    ana, ben = annotator(server, "series", "ana"), annotator(server, "series", "ben")
    held_by_ben = ben.next(order="in-order")["id"]
    assert held_by_ben == 1
    planned = [i["id"] for i in ana.plan(order="in-order", count=3)]
    assert planned == [2, 3, 4]  # ben's item is passed over
    assert ana.plan(order="in-order", count=3) == ana.plan(order="in-order", count=3)  # nothing leased
    assert _next_ids(ana, "in-order", 3) == planned
    assert ana.status()["held"] == [4]
    planned = [i["id"] for i in ana.plan(order="random", count=2, seed=7)]
    assert len(set(planned)) == 2 and not {1, 2, 3, 4} & set(planned)
    assert _next_ids(ana, "random", 2, seed=7, previous=4) == planned
    ana.rank(["polyp"])
    ranked = [i["id"] for i in ana.rank(["polyp"])["items"] if i["status"] in ("unseen", "in-progress")
              and i["id"] not in (held_by_ben, planned[-1])]
    planned_next = [i["id"] for i in ana.plan(order="most-uncertain", count=2)]
    assert planned_next == ranked[:2]
    assert _next_ids(ana, "most-uncertain", 2, previous=planned[-1]) == planned_next
    with pytest.raises(ServerError) as err:
        ana.plan(count=9)
    assert err.value.status == 422


def test_hold_release_and_corrections_of_an_item(server, tmp_path):
    """Double-click (hold), close (release), held after Next, a correction on an item
    ("worklist:<id>") counted on it and exported from it; no answer shows the server's folders."""
    import json

    from napari_vlsm.cli import main
    from napari_vlsm.client.worklist import item_source

    rng = np.random.default_rng(3)
    folder = tmp_path / "frames"
    folder.mkdir()
    for n in range(2):
        iio.imwrite(folder / f"h{n}.png", rng.integers(0, 256, (20, 26, 3), dtype=np.uint8))
    root = server_project(server, "held", [folder])
    ana, ben = annotator(server, "held", "ana"), annotator(server, "held", "ben")
    answers = [ana.hold(1)]
    assert answers[-1]["status"] == "in-progress"
    answers.append(ana.status())
    assert answers[-1]["held"] == [1] and "held" not in ana.client._request("GET", "/v1/projects/held/worklist").json()
    with pytest.raises(ServerError, match="held by owner/ana") as err:
        ben.hold(1)
    assert err.value.status == 409
    ana.release(1)
    answers.append(ben.hold(1))
    ben.release(1)
    answers.append(ana.next(order="in-order"))
    assert ana.status()["held"] == [answers[-1]["id"]] == [1]
    image, item = ana.image(1)
    assert item["volume"] is None and image.shape == (20, 26, 3)
    answers.append(item)

    client = ana.client
    mask = np.zeros((20, 26), bool)
    mask[5:12, 4:15] = True
    answers.append(client.add_correction("held", image, mask, ["polyp"], source=item_source(1)))
    assert answers[-1]["source"] == "worklist:1"
    answers.append(ana.status())
    assert next(i for i in answers[-1]["items"] if i["id"] == 1)["corrections"] == 1
    answers.append(client.corrections("held"))
    assert [s["source"] for s in answers[-1]["samples"]] == ["worklist:1"]
    for bad, project in (("worklist:9", "held"), ("worklist:x1", "held"), ("worklist:1", "no-worklist")):
        with pytest.raises(ServerError, match="worklist") as err:
            client.add_correction(project, image, mask, ["polyp"], source=bad)
        assert err.value.status == 422
    answers.append(ana.set_status(1, "done"))
    audit = (root / "audit.jsonl").read_text()
    assert '"source":"worklist:1"' in audit
    assert '"what":"worklist.held"' in audit and '"what":"worklist.released"' in audit

    assert main(["worklist", "export", "--project", str(root), "--out", str(tmp_path / "out")]) == 0
    exported = sorted((tmp_path / "out").glob("0001_*.png"))
    assert len(exported) == 1 and np.array_equal(iio.imread(exported[0]) > 0, mask)
    text = json.dumps(answers) + audit
    assert str(server.project_root) not in text and str(folder) not in text
