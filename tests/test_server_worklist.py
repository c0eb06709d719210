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


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    with ServerProcess(tiny_model_dir, tmp_path_factory.mktemp("server")) as proc:
        yield proc


@pytest.fixture(scope="module")
def frames(server, tmp_path_factory):
    """Three frames in the server project "colon", added the way an admin does (on the server)."""
    folder = tmp_path_factory.mktemp("frames")
    rng = np.random.default_rng(0)
    for n in range(3):
        iio.imwrite(folder / f"f{n}.png", rng.integers(0, 256, (36, 44, 3), dtype=np.uint8))
    Worklist(server.project_root / "colon").add([folder])
    return folder


def _annotator(server, name):
    return RemoteWorklist(VLSMClient(server.url, server.token, timeout=120), "colon", holder=name)


def test_two_annotators_never_get_the_same_item(server, frames):
    ana, ben = _annotator(server, "ana"), _annotator(server, "ben")
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

    ana = _annotator(server, "ana-audit")
    status = ana.status()
    assert status["items"] and all(str(frames) not in json.dumps(i) for i in status["items"])
    assert all("/" not in i["path"] for i in status["items"])
    skipped = next(i for i in status["items"] if i["status"] == "skipped")  # left by the test above
    ana.set_status(skipped["id"], "unseen")  # open again: the next one to hand out
    item = ana.next(order="in-order")
    assert item is not None and item["id"] == skipped["id"] and str(frames) not in json.dumps(item)
    ana.set_status(item["id"], "skipped")
    lines = [json.loads(line) for path in server.project_root.rglob("audit*.jsonl")
             for line in path.read_text().splitlines()]
    mine = [e for e in lines if e.get("item") == item["id"] and e["what"].startswith("worklist.")]
    assert {e["what"] for e in mine} >= {"worklist.leased", "worklist.status"}
    assert all(e["who"] == "owner" for e in mine)
