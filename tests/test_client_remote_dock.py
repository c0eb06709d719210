"""The dock's server stand-ins (``_napari/server_client.py``, ``client/project.py``) against a real
server process: segmenting, corrections kept locally while the server is down and sent once it is
back, finetune events."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from napari_vlsm._napari.server_client import RemoteEngine
from napari_vlsm.client import VLSMClient
from napari_vlsm.client.project import RemoteProject
from napari_vlsm.core.errors import VLSMError
from napari_vlsm.core.project import FinetuneRequest
from napari_vlsm.server.process import ServerProcess


def _slice(i):
    rng = np.random.default_rng(i)
    image = (rng.random((36, 40)) * 255).astype(np.uint8)
    mask = np.zeros((36, 40), bool)
    mask[6 + i: 26, 8: 30] = True
    return image, mask


@pytest.fixture()
def server(tiny_model_dir, tmp_path):
    proc = ServerProcess(tiny_model_dir, tmp_path / "srv").start()
    yield proc
    proc.stop()


def test_engine_predicts_like_the_local_one(server, loaded):
    from napari_vlsm.core.engine import Segmenter

    engine = RemoteEngine(VLSMClient(server.url, server.token), project="dock")
    vol = np.random.default_rng(1).normal(0, 1, (3, 30, 32)).astype(np.float32)
    here = Segmenter(loaded=loaded)
    eps = np.finfo(np.float32).eps
    for (i, remote), (j, local) in zip(engine.predict_stack(vol, ["liver", "spleen"], batch_size=2),
                                       here.predict_stack(vol, ["liver", "spleen"], batch_size=2)):
        assert i == j
        for r, l in zip(remote, local):
            np.testing.assert_allclose(r.probability, l.probability, atol=64 * eps, rtol=0)
    assert engine.provenance()["model_fingerprint"] == loaded.fingerprint


def test_corrections_wait_locally_while_the_server_is_down(server, tmp_path):
    store = RemoteProject(VLSMClient(server.url, server.token, timeout=20), "dock", tmp_path / "outbox")
    first = store.add_correction(*_slice(0), ["liver"], source="ct", slice_index=0)
    assert store.pending() == 0 and first.split in ("train", "val")
    server.stop()
    with pytest.raises(VLSMError, match="cannot be reached; 1 correction"):
        store.add_correction(*_slice(1), ["liver"], source="ct", slice_index=1)
    with pytest.raises(VLSMError, match="2 correction"):
        store.add_correction(*_slice(2), ["liver"], source="ct", slice_index=2)
    assert store.pending() == 2  # kept on this computer, durable (a CorrectionStore)
    server.start(same_port=True)
    sent = store.flush()
    assert len(sent) == 2 and store.pending() == 0
    listed = store.corrections()
    assert [s.slice_index for s in listed] == [(0,), (1,), (2,)] and store.counts()["pending"] == 0
    store.remove_correction(listed[1].id)
    assert [s.slice_index for s in store.corrections()] == [(0,), (2,)]


def test_remote_train_job_yields_progress_and_cancels(server, tmp_path):
    from napari_vlsm.core.training.config import ProgressEvent

    client = VLSMClient(server.url, server.token)
    store = RemoteProject(client, "dock", tmp_path / "outbox")
    for i in range(5):
        store.add_correction(*_slice(i), ["liver"], source="ct", slice_index=i)
    gen = store.train(FinetuneRequest(max_steps=3, batch_size=2), threading.Event())
    events = []
    while True:
        try:
            events.append(next(gen))
        except StopIteration as stop:
            result = stop.value
            break
    assert all(isinstance(e, ProgressEvent) for e in events) and events[-1].kind == "done"
    assert result.adapter in [a["name"] for a in client.adapters("dock")] and "dice" in result.after
    engine = RemoteEngine(client, project="dock")
    engine.load_adapter(result.adapter)
    assert engine.predict(_slice(0)[0], ["liver"])[0].shape == (36, 40)
    cancel = threading.Event()
    gen = store.train(FinetuneRequest(max_steps=100000, batch_size=2), cancel)
    for event in gen:
        if event.kind == "step":
            cancel.set()
    assert client.info()["jobs_running"] == []
