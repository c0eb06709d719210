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
    with pytest.raises(ServerError, match="held by ana") as err:
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
