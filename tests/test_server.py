"""``napari-vlsm serve`` as a real child process on 127.0.0.1, talked to through the torch-free client.

One server for the module (tiny random model, fp32, tight limits so they can be hit cheaply).
Loops are bounded by counts and deadlines; there are no timing thresholds.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest

from napari_vlsm.client import ServerError, VLSMClient, encode_array
from napari_vlsm.server.process import ServerProcess

IDLE_S = 3


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    with ServerProcess(tiny_model_dir, tmp_path_factory.mktemp("server"), "--max-upload-mb", "2", "--max-array-mb", "32",
                       "--max-sessions", "2", "--session-idle", str(IDLE_S), "--max-side", "4096") as proc:
        yield proc


@pytest.fixture()
def client(server):
    with VLSMClient(server.url, server.token, timeout=120) as c:
        yield c


@pytest.fixture(scope="module")
def local(loaded):
    from napari_vlsm.core.engine import Segmenter

    return Segmenter(loaded=loaded)


def _image(seed=0, shape=(40, 52)):
    return (np.random.default_rng(seed).random(shape) * 255).astype(np.uint8)


def _post(server, path, token=None, content=b"", content_type="application/x-npy+zstd"):
    headers = {"Content-Type": content_type}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.post(server.url + path, headers=headers, timeout=60, content=content)


# ------------------------------------------------------------------------------------- auth
def test_health_needs_no_token_and_everything_else_does(server):
    assert httpx.get(server.url + "/health", timeout=10).json()["status"] == "ok"
    for headers in ({}, {"Authorization": "Bearer wrong-token-of-some-length"}, {"Authorization": server.token},
                    {"Authorization": f"Basic {server.token}"}):
        for method, path in (("GET", "/v1/info"), ("POST", "/v1/predict?prompt=x"),
                             ("GET", "/v1/projects/p/corrections"), ("GET", "/v1/projects/p/adapters"),
                             ("POST", "/v1/projects/p/finetune"), ("GET", "/v1/jobs/x")):
            r = httpx.request(method, server.url + path, headers=headers, timeout=10)
            assert r.status_code == 401, (headers, path, r.text)
            assert r.headers["WWW-Authenticate"] == "Bearer"
    assert httpx.get(server.url + "/v1/info", headers={"Authorization": f"Bearer {server.token}"},
                     timeout=10).status_code == 200
    with pytest.raises(ServerError, match="refused the token"):
        VLSMClient(server.url, "not-the-token").info()


def test_the_api_browser_is_not_served(server):
    for path in ("/docs", "/openapi.json", "/redoc"):
        assert httpx.get(server.url + path, timeout=10).status_code == 404


# ----------------------------------------------------------------------------------- predict
def test_predict_matches_the_in_process_engine(client, local):
    eps = np.finfo(np.float32).eps
    img = _image(1)
    remote = client.predict(img, ["liver", "kidney"], output="probability")
    here = np.stack([p.probability for p in local.predict(img, ["liver", "kidney"])])
    assert remote.shape == (2, *img.shape) and remote.dtype == np.float32
    np.testing.assert_allclose(remote, here, atol=64 * eps, rtol=0)
    masks = client.predict(img, ["liver", "kidney"], threshold=float(np.median(here)))
    clear = np.abs(here - np.median(here)) > 64 * eps  # pixels not on the threshold itself
    assert masks.dtype == bool and np.array_equal(masks[clear], (here > np.median(here))[clear])


def test_predict_a_volume_in_slice_batches_with_one_window(client, local):
    eps = np.finfo(np.float32).eps
    vol = np.random.default_rng(2).normal(100, 40, (5, 36, 44)).astype(np.float32)
    remote = client.predict(vol, ["liver"], output="probability", batch_size=2)
    here = np.stack([preds[0].probability for _, preds in local.predict_stack(vol, ["liver"], batch_size=2)])
    assert remote.shape == (1, 5, 36, 44)
    np.testing.assert_allclose(remote[0], here, atol=64 * eps, rtol=0)


def test_sessions_predict_slices_and_are_capped_and_reaped(client, local, server):
    eps = np.finfo(np.float32).eps
    vol = np.random.default_rng(3).normal(0, 1, (4, 32, 32)).astype(np.float32)
    first = client.open_session(vol)
    one = client.session_predict(first["id"], ["liver"], index=2, output="probability")
    here = dict(local.predict_stack(vol, ["liver"]))[2][0].probability
    np.testing.assert_allclose(one[0], here, atol=64 * eps, rtol=0)
    second = client.open_session(_image(4))
    client.busy_retries = 0
    with pytest.raises(ServerError) as err:  # the limit is 2
        client.open_session(_image(5))
    assert err.value.status == 503 and err.value.retry_after > 0
    client.close_session(second["id"])
    third = client.open_session(_image(6))
    time.sleep(IDLE_S + 2)  # untouched for longer than the idle limit: the reaper closes both
    with pytest.raises(ServerError) as err:
        client.session_predict(first["id"], ["x"], index=0)
    assert err.value.status == 404 and "reaped" in str(err.value)
    with pytest.raises(ServerError, match="404"):
        client.close_session(third["id"])


# ------------------------------------------------------------------------------ bad payloads
def _npy_zstd(raw: bytes) -> bytes:
    import zstandard

    return zstandard.ZstdCompressor().compress(raw)


def _npy_with_shape(text: str) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, np.zeros((2, 2), np.uint8))
    return buf.getvalue().replace(b"(2, 2)", text.encode().ljust(6))


BAD_BODIES = {
    "not compressed": (b"hello world", 422, "zstd"),
    "truncated upload": (encode_array(_image(7))[:-40], 422, "cut off"),
    "wrong dtype": (encode_array(np.zeros((4, 4), np.complex64)), 422, "dtype"),
    "one dimension": (encode_array(np.zeros(16, np.uint8)), 422, "dimensions"),
    "negative shape": (_npy_zstd(_npy_with_shape("(-2,2)")), 422, "negative"),
    "huge shape": (_npy_zstd(_npy_with_shape("(99999,99999)")), 413, "limit"),
    "data shorter than shape": (_npy_zstd(_npy_with_shape("(9, 9)")), 422, "needs"),
    "zstd bomb": (encode_array(np.zeros((4096, 4096), np.float32)), 413, "limit"),
}


@pytest.mark.parametrize("name", list(BAD_BODIES))
def test_bad_uploads_get_a_clear_4xx_and_the_server_keeps_serving(server, client, name):
    body, status, words = BAD_BODIES[name]
    r = _post(server, "/v1/predict?prompt=liver", server.token, content=body)
    assert r.status_code == status, r.text[:300]
    assert words in r.json()["detail"]
    assert client.predict(_image(), ["liver"]).shape == (1, 40, 52)


def test_bad_requests_are_422_with_a_message(server, client):
    cases = [
        ("/v1/predict?prompt=%20", encode_array(_image()), "empty"),
        ("/v1/predict?prompt=x&threshold=7", encode_array(_image()), "threshold"),
        ("/v1/predict", encode_array(_image()), "prompt"),
        ("/v1/projects/p/corrections", b"{not json", "JSON"),
        ("/v1/projects/p/corrections", json.dumps({"image": "@@", "mask": "", "prompts": ["x"]}).encode(), "base64"),
        ("/v1/projects/p/finetune", json.dumps({"max_steps": -3}).encode(), "max_steps"),
        ("/v1/projects/p/finetune", json.dumps({"variant": "nope"}).encode(), "variant"),
        ("/v1/projects/..%2Fetc/corrections", b"{}", ""),
    ]
    for path, body, words in cases:
        r = _post(server, path, server.token, content=body, content_type="application/json")
        assert r.status_code in (404, 422), (path, r.status_code, r.text)
        assert words.lower() in r.text.lower(), (path, r.text)
    mask = np.zeros((10, 12), bool)
    with pytest.raises(ServerError, match="422"):  # a mask of another shape than its image
        client.add_correction("p", _image(), mask, ["liver"])
    assert client.predict(_image(), ["liver"]).shape == (1, 40, 52)


def test_an_oversized_body_is_413_before_it_is_read(server):
    r = _post(server, "/v1/predict?prompt=x", server.token, content=b"\0" * (3 * 2**20))
    assert r.status_code == 413 and "limit" in r.json()["detail"]


def test_a_client_that_cuts_its_upload_short_does_not_hurt_the_server(server, client):
    for _ in range(3):  # declares 1 MB, sends 100 bytes, hangs up
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
            s.sendall(b"POST /v1/predict?prompt=x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                      + server.token.encode() + b"\r\nContent-Length: 1000000\r\n\r\n" + b"\0" * 100)
    assert client.predict(_image(), ["liver"]).shape == (1, 40, 52)
    assert httpx.get(server.url + "/health", timeout=10).status_code == 200


# ------------------------------------------------------------------------------ corrections
def _add_corrections(client, project, n, shape=(40, 52)):
    ids = []
    for i in range(n):
        mask = np.zeros(shape, bool)
        mask[8 + i: 24, 10: 30 + i] = True
        ids.append(client.add_correction(project, _image(10 + i, shape), mask, ["liver", "the liver"],
                                         source="scan-1", slice_index=i)["id"])
    return ids


def test_corrections_add_list_remove(client):
    ids = _add_corrections(client, "crud", 3)
    listed = client.corrections("crud")
    assert [s["id"] for s in listed["samples"]] == ids
    assert listed["samples"][0]["target"] == "liver" and listed["samples"][0]["prompts"] == ["liver", "the liver"]
    assert sum(listed["counts"].values()) == 3
    client.remove_correction("crud", ids[1])
    assert [s["id"] for s in client.corrections("crud")["samples"]] == [ids[0], ids[2]]
    for gone in (ids[1], "..", "samples", "%2e%2e"):
        with pytest.raises(ServerError, match="404"):
            client.remove_correction("crud", gone)
    with pytest.raises(ServerError, match="422"):
        client.corrections("bad name!")


def test_listing_corrections_reads_their_records_only(client, server):
    """Before: the list endpoint decoded every image (a sample whose image no longer decodes vanished
    from the list, and listing a large project read every pixel)."""
    ids = _add_corrections(client, "listing", 2)
    (server.project_root / "listing" / "corrections" / "samples" / ids[0] / "image.tif").write_bytes(b"garbage")
    listed = client.corrections("listing")["samples"]
    assert [s["id"] for s in listed] == ids and listed[0]["shape"] == [40, 52]


# --------------------------------------------------------------------------------- finetune
def test_finetune_streams_progress_and_gives_a_downloadable_adapter(client, loaded, tmp_path):
    from napari_vlsm.core.adapters.checkpoint import load_adapter

    _add_corrections(client, "ft", 6)
    job = client.finetune("ft", max_steps=4, batch_size=2, variant="shallow-v")
    events = list(client.events(job["id"]))
    kinds = [e.get("kind") for e in events if e["type"] == "progress"]
    assert kinds[0] == "start" and "step" in kinds and kinds[-1] == "done"
    end = events[-1]
    assert end["type"] == "end" and end["state"] == "done"
    result = end["result"]
    assert {"dice", "iou", "n"} <= set(result["before"]) and {"dice", "iou", "n"} <= set(result["after"])
    listed = client.adapters("ft")
    assert [a["name"] for a in listed] == [result["adapter"]]
    assert listed[0]["after"] == result["after"] and listed[0]["variant"] == "shallow-v"
    path = client.download_adapter("ft", result["adapter"], tmp_path / "a.safetensors")
    adapters, meta = load_adapter(path, loaded)
    assert adapters.variant == "shallow-v" and meta["server_job"] == job["id"]
    # "latest" is the last run that beat its starting point on held-out Dice (the dock's rule too)
    assert result["latest"] == result["improved"]
    assert [a["latest"] for a in listed] == [result["improved"]]
    if result["improved"]:
        assert client.predict(_image(), ["liver"], project="ft", adapter="latest").shape == (1, 40, 52)
    else:
        with pytest.raises(ServerError, match="404"):
            client.predict(_image(), ["liver"], project="ft", adapter="latest")
    assert client.job(job["id"])["state"] == "done"


def test_latest_is_what_latest_json_names_not_the_newest_file(client, server):
    """Before: the server's 'latest' was the newest adapter file, improved or not."""
    import shutil

    _add_corrections(client, "lat", 4)
    names = []
    for _ in range(2):
        job = client.finetune("lat", max_steps=1, batch_size=2, variant="shallow-v")
        names.append(client.wait(job["id"], timeout=300)["result"]["adapter"])
    adapters = server.project_root / "lat" / "adapters"
    # the project's latest is the OLDER file, as after a second run that did not improve
    shutil.copy(adapters / names[0], adapters / "adapter-older.safetensors")
    (adapters / "latest.json").write_text(json.dumps({"path": "adapter-older.safetensors"}))
    listed = {a["name"]: a["latest"] for a in client.adapters("lat")}
    assert listed["adapter-older.safetensors"] and not listed[names[1]]
    (adapters / "adapter-older.safetensors").write_bytes(b"not an adapter")  # a damaged latest: seen as such
    with pytest.raises(ServerError, match="422"):
        client.predict(_image(), ["liver"], project="lat", adapter="latest")
    assert client.predict(_image(), ["liver"], project="lat", adapter=names[1]).shape == (1, 40, 52)
    (adapters / "latest.json").unlink()
    with pytest.raises(ServerError, match="404"):  # no run improved: no latest, whatever files exist
        client.predict(_image(), ["liver"], project="lat", adapter="latest")


def test_cancel_a_running_finetune_and_predict_meanwhile(client):
    _add_corrections(client, "cancel", 4)
    job = client.finetune("cancel", max_steps=100000, batch_size=2)
    with pytest.raises(ServerError, match="409"):  # one finetune at a time
        client.finetune("cancel", max_steps=3)
    for event in client.events(job["id"]):
        if event.get("kind") == "step":
            # the model lock is taken per step: another client's predict is answered meanwhile
            assert client.predict(_image(), ["liver"]).shape == (1, 40, 52)
            client.cancel(job["id"])
            break
    status = client.wait(job["id"], timeout=120)
    assert status["state"] == "cancelled"
    assert client.info()["jobs_running"] == []


@pytest.mark.parametrize("cancel_on_disconnect", [True, False])
def test_a_client_that_leaves_mid_stream_does_not_leak_its_job(client, cancel_on_disconnect):
    project = f"leave-{cancel_on_disconnect}".lower()
    _add_corrections(client, project, 4)
    steps = 100000 if cancel_on_disconnect else 6
    job = client.finetune(project, max_steps=steps, batch_size=2)
    stream = client.events(job["id"], cancel_on_disconnect=cancel_on_disconnect)
    for event in stream:
        if event.get("kind") == "step":
            break
    stream.close()  # the HTTP stream is closed mid-job, as when a laptop lid closes
    status = client.wait(job["id"], timeout=180)
    assert status["state"] == ("cancelled" if cancel_on_disconnect else "done")
    assert client.info()["jobs_running"] == []


# ------------------------------------------------------------------------------ torch-free
def test_the_client_works_where_torch_cannot_be_imported(server):
    code = (
        "import sys; sys.modules['torch'] = None\n"  # `import torch` now raises ImportError
        "import numpy as np\n"
        "from napari_vlsm.client import VLSMClient\n"
        f"c = VLSMClient({server.url!r}, {server.token!r})\n"
        "m = c.predict(np.zeros((20, 24), np.uint8), ['liver'])\n"
        "assert m.shape == (1, 20, 24), m.shape\n"
        "assert 'torch' not in [k for k, v in sys.modules.items() if v is not None]\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
