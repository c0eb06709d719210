"""The worklist server's rules that keep annotators' work safe (a real ``napari-vlsm serve`` child
process on 127.0.0.1): a correction made on a resliced view is kept (never dropped by the client's
outbox), no answer shows the server's folders (an item's reason included), a write needs a live
lease of one's own, and an item whose pixels cannot be read is marked on the server."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from napari_vlsm.client import ServerError, VLSMClient
from napari_vlsm.server.process import ServerProcess

from worklist_helpers import annotator, server_project, write_frames

STRUCTURES = [{"value": 1, "name": "polyp", "prompt": "polyp"}]


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    with ServerProcess(tiny_model_dir, tmp_path_factory.mktemp("server")) as proc:
        yield proc





def _refused(call, status, match):
    with pytest.raises(ServerError, match=match) as err:
        call()
    assert err.value.status == status, str(err.value)
    return str(err.value)


def test_the_correction_source_rule_lives_in_the_core():
    from napari_vlsm.client import worklist as client_worklist
    from napari_vlsm.core.worklist import items
    from napari_vlsm.server import worklists

    assert client_worklist.item_source is items.item_source is worklists.item_source
    assert client_worklist.SOURCE_PREFIX == items.SOURCE_PREFIX == "worklist:"
    assert items.item_source(7) == "worklist:7"


def test_a_resliced_correction_is_kept_shown_back_and_not_exported(server, tmp_path):
    """The dock names a correction on a resliced view ``worklist:<id>#axes=0,2``: accepted (a 422
    would make the client's outbox drop it), shown back in that form everywhere, and not painted into
    z-slices by ``worklist export`` (its slice index is along another axis)."""
    import nibabel as nib

    from napari_vlsm.cli import main

    data = np.random.default_rng(4).integers(0, 200, (10, 8, 8)).astype(np.int16)  # (x, y, z): y == z
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "ct.nii.gz")
    root = server_project(server, "resliced", [tmp_path / "ct.nii.gz"])
    ana = annotator(server, "resliced", "ana")
    ana.hold(1)
    volume, _ = ana.image(1)
    z, y, x = volume.shape
    assert z == y  # a (z, x) plane of the resliced view has the shape of a (y, x) plane
    plain = np.zeros((y, x), bool)
    plain[2:5, 3:7] = True
    resliced = np.zeros((z, x), bool)
    resliced[1:7, 1:9] = True  # more pixels than ``plain``: painting it would show in the count
    client = ana.client
    answers = [client.add_correction("resliced", volume[2].astype(np.float32), plain, ["liver"],
                                     source="worklist:1", slice_index=[2])]
    answers.append(client.add_correction("resliced", volume[:, 5, :].astype(np.float32), resliced, ["liver"],
                                         source="worklist:1#axes=0,2", slice_index=[5]))
    assert answers[-1]["source"] == "worklist:1#axes=0,2"
    answers.append(client.corrections("resliced"))
    assert sorted(s["source"] for s in answers[-1]["samples"]) == ["worklist:1", "worklist:1#axes=0,2"]
    assert next(i for i in ana.status()["items"] if i["id"] == 1)["corrections"] == 2
    audit = (root / "audit.jsonl").read_text()
    assert '"source":"worklist:1#axes=0,2"' in audit
    assert str(tmp_path) not in json.dumps(answers) + audit
    ana.set_status(1, "done")

    assert main(["worklist", "export", "--project", str(root), "--out", str(tmp_path / "out")]) == 0
    (exported,) = (tmp_path / "out").glob("0001_*.nii.gz")
    labels = np.asarray(nib.load(exported).dataobj)
    assert labels.shape == data.shape and int((labels > 0).sum()) == int(plain.sum())


def test_no_answer_shows_the_server_folders_of_a_missing_item(server, tmp_path):
    """An item's reason (``<path> is gone``) and every error built from an item leave the server
    without its folders; hold refuses a missing item."""
    folder = write_frames(tmp_path / "inputs-private", 3)
    root = server_project(server, "gone", [folder])
    ana = annotator(server, "gone", "ana")
    texts = [json.dumps(ana.next(order="in-order"))]  # item 1, held by ana
    (folder / "f1.png").unlink()  # item 2 goes away on the server
    listing = ana.status()
    texts.append(json.dumps(listing))
    gone = next(i for i in listing["items"] if i["id"] == 2)
    assert gone["status"] == "missing" and gone["reason"].startswith("f1.png is gone")
    texts.append(_refused(lambda: ana.hold(2), 422, "missing"))
    texts.append(_refused(lambda: ana.image(2), 422, "f1.png"))
    texts.append(json.dumps(ana.plan(order="in-order")))
    third = ana.next(order="in-order", previous_id=1, previous_status="done")
    assert third["id"] == 3
    texts.append(json.dumps(third))
    response = ana.client._request("GET", "/v1/projects/gone/items/3/image")
    texts.append(response.headers["X-VLSM-Item"])
    (folder / "f2.png").unlink()  # the item ana holds goes away too
    texts.append(json.dumps(ana.status()))
    texts.append(_refused(lambda: ana.set_status(3, "done"), 422, "missing"))
    texts.append(_refused(lambda: ana.next(previous_id=3, previous_status="done"), 422, "missing"))
    text = "\n".join(texts)
    for private in {str(folder), str(folder.resolve()), str(server.project_root), str(root)}:
        assert private not in text
    assert "f2.png is gone" in text
    write_frames(folder, 2)  # f1.png comes back (f0.png is written again, the same): hold takes item 2 at once
    assert ana.hold(2)["status"] == "in-progress"


def _wait_until_lease_ends(annotator, item_id):
    for _ in range(300):  # a bounded wait for the short lease to end (no timing asserted)
        if item_id not in annotator.status()["held"]:
            return
        time.sleep(0.05)
    raise AssertionError(f"the lease on item {item_id} never ended")


def test_a_write_needs_a_live_lease_of_ones_own(server, tmp_path):
    """A window whose lease ended cannot overwrite a colleague's mask, nor turn their done into
    skipped; hold takes the item back."""
    server_project(server, "leases", [write_frames(tmp_path / "frames", 2, seed=5)])
    ana, ben = annotator(server, "leases", "ana"), annotator(server, "leases", "ben")
    assert ana.next(order="in-order", lease_s=0.2)["id"] == 1
    _wait_until_lease_ends(ana, 1)
    ben.hold(1)
    bens = np.zeros((20, 26), np.uint8)
    bens[3:9, 4:12] = 1
    ben.save_mask(1, bens, STRUCTURES)
    assert ben.set_status(1, "done")["status"] == "done"
    ben.save_mask(1, bens, STRUCTURES)  # done keeps the lease: the dock saves the mask again at Next
    assert ben.next(order="in-order", previous_id=1, previous_status="done")["id"] == 2  # ben moves on
    no_longer = r"you no longer hold item 1 \(its lease ended\); hold it again or press Next"
    _refused(lambda: ana.save_mask(1, np.ones((20, 26), np.uint8), STRUCTURES), 409, no_longer)
    _refused(lambda: ana.set_status(1, "skipped"), 409, no_longer)
    _refused(lambda: ana.next(order="in-order", previous_id=1, previous_status="skipped"), 409, no_longer)
    assert ana.status()["held"] == []  # a refused Next leases nothing
    item = next(i for i in ana.status()["items"] if i["id"] == 1)
    assert item["status"] == "done"
    labels, _ = ana.mask(1)
    assert np.array_equal(labels, bens)
    ben.hold(1)
    _refused(lambda: ana.set_status(1, "skipped"), 409, "held by owner/ben")
    ben.release(1)
    assert ana.hold(1)["id"] == 1  # hold: the way to take an item back
    assert ana.set_status(1, "in-progress")["status"] == "in-progress"
    ana.release(1)


def test_an_unreadable_item_is_marked_on_the_server(server, tmp_path):
    """Pixels that cannot be read: 422 naming why, the item becomes unreadable with that reason
    (Next and hold pass over it), and no lease changes."""
    folder = write_frames(tmp_path / "inputs-garbage", 2, seed=6)
    server_project(server, "garbage", [folder])
    (folder / "f0.png").write_bytes(b"this is not a png at all" * 10)
    ana = annotator(server, "garbage", "ana")
    ana.hold(2)
    texts = [_refused(lambda: ana.image(1), 422, "cannot be read")]
    listing = ana.status()
    texts.append(json.dumps(listing))
    item = next(i for i in listing["items"] if i["id"] == 1)
    assert item["status"] == "unreadable" and item["reason"]
    assert listing["held"] == [2]  # the lease ana had is untouched
    texts.append(_refused(lambda: ana.hold(1), 422, "unreadable"))
    assert ana.next(order="in-order")["id"] == 2  # Next passes over the unreadable item
    assert str(folder) not in "\n".join(texts) and str(folder.resolve()) not in "\n".join(texts)


def test_a_body_with_infinity_or_nan_is_a_422_naming_the_field(server, tmp_path):
    """Python's JSON reads Infinity and NaN: the 422 that refuses them must itself be valid JSON
    (the fuzz test once got a 500 while FastAPI wrote its answer)."""
    server_project(server, "infinite", [write_frames(tmp_path / "frames", 1)])
    client = VLSMClient(server.url, server.token, timeout=60)
    for value in ("Infinity", "-Infinity", "NaN"):
        body = f'{{"holder": "ana", "order": "random", "lease_s": {value}}}'
        response = client._http.post("/v1/projects/infinite/next", content=body,
                                     headers={"Content-Type": "application/json"})
        assert response.status_code == 422, (value, response.status_code, response.text[:300])
        assert "lease_s" in json.dumps(response.json()["detail"])
