"""SIGKILL the server during a finetune, restart it: nothing acknowledged is lost, nothing is half-written,
and the client says what happened. A real child process on 127.0.0.1, bounded in time."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from napari_vlsm.client import ConnectionLost, VLSMClient
from napari_vlsm.server.process import ServerProcess


def _correction(i):
    rng = np.random.default_rng(i)
    image = (rng.random((40, 48)) * 255).astype(np.uint8)
    mask = np.zeros((40, 48), bool)
    mask[5 + i % 7: 30, 8: 28 + i % 9] = True
    return image, mask


def test_sigkill_during_finetune_keeps_every_acknowledged_correction(tiny_model_dir, tmp_path, loaded):
    from napari_vlsm.core.adapters.checkpoint import load_adapter
    from napari_vlsm.server.audit import read as read_audit

    server = ServerProcess(tiny_model_dir, tmp_path / "srv").start()
    try:
        client = VLSMClient(server.url, server.token, timeout=60)
        acked = [client.add_correction("clinic", *_correction(i), ["liver"], source="ct", slice_index=i)["id"]
                 for i in range(6)]
        done = client.finetune("clinic", max_steps=3, batch_size=2)  # one finished adapter before the crash
        assert client.wait(done["id"], timeout=120)["state"] == "done"
        job = client.finetune("clinic", max_steps=100000, batch_size=2)
        errors: list[BaseException] = []
        steps = threading.Event()

        def follow():  # a second client keeps adding corrections while it trains
            try:
                for event in client.events(job["id"]):
                    if event.get("kind") == "step":
                        steps.set()
            except ConnectionLost as err:
                errors.append(err)

        watcher = threading.Thread(target=follow, daemon=True)
        watcher.start()
        assert steps.wait(120), "training never reached a step"
        with VLSMClient(server.url, server.token, timeout=60) as other:
            acked += [other.add_correction("clinic", *_correction(i), ["liver"], source="ct", slice_index=i)["id"]
                      for i in range(6, 9)]
        server.kill()
        adapters_dir = server.project_root / "clinic" / "adapters"
        (adapters_dir / f".adapter-{job['id']}.safetensors.cut.tmp").write_bytes(b"half an adapter")  # a cut save
        watcher.join(30)
        assert not watcher.is_alive()
        assert len(errors) == 1 and "went away during job" in str(errors[0]) and "finetune again" in str(errors[0])

        server.start()  # same project root, same token
        client = VLSMClient(server.url, server.token, timeout=60)
        assert [s["id"] for s in client.corrections("clinic")["samples"]] == acked
        status = client.job(job["id"])
        assert status["state"] == "interrupted" and "finetune again" in status["error"]
        audit = read_audit(server.project_root / "clinic" / "audit.jsonl")
        marked = [line for line in audit if line["what"] == "finetune.interrupted"]
        assert [(m["job"], m["who"], m["project"]) for m in marked] == [(job["id"], "server", "clinic")]
        assert any(line["what"] == "finetune.started" and line["job"] == job["id"] for line in audit)
        end = list(client.events(job["id"]))
        assert end[-1]["type"] == "end" and end[-1]["state"] == "interrupted"
        adapters = client.adapters("clinic")
        assert [a["name"] for a in adapters] == [f"adapter-{done['id']}.safetensors"]
        assert not list(adapters_dir.glob(".*")), "a cut save was left behind"
        for a in adapters:  # every listed adapter is whole
            path = client.download_adapter("clinic", a["name"], tmp_path / a["name"])
            load_adapter(path, loaded)
        again = client.finetune("clinic", max_steps=2, batch_size=2)
        assert client.wait(again["id"], timeout=120)["state"] == "done"
    finally:
        server.stop()


def test_a_client_of_a_stopped_server_gets_one_clear_error(tmp_path):
    from napari_vlsm.server.process import free_port

    with pytest.raises(ConnectionLost, match="is it running"):
        VLSMClient(f"http://127.0.0.1:{free_port()}", "x" * 20, timeout=5).info()
