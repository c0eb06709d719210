"""What a hospital's security review probes, against real ``napari-vlsm serve`` processes on 127.0.0.1:
nothing is read before the token is checked, uploads cost at most their declared array, stalled
uploads neither starve predictions nor hold a slot forever, bad values are 422 (never 500), and a
client that hangs up is one INFO line. Bounded by counts and socket timeouts; no timing thresholds.
"""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest

from napari_vlsm.client import VLSMClient, encode_array
from napari_vlsm.server.process import ServerProcess

READ_TIMEOUT_S = 1
STALL = encode_array(np.zeros((600, 600), np.uint8))[:10]  # a valid start of an upload, and then nothing


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    with ServerProcess(tiny_model_dir, tmp_path_factory.mktemp("secure"), "--max-upload-mb", "2", "--max-array-mb",
                       "32", "--read-timeout", str(READ_TIMEOUT_S)) as proc:
        yield proc


def _image(seed=0, shape=(40, 52)):
    return (np.random.default_rng(seed).random(shape) * 255).astype(np.uint8)


def _raw(port: int, head: bytes, body: bytes = b"", timeout: float = 20) -> tuple[int, str]:
    """Send ``head`` (+ ``body``) on a fresh connection; -> (status, response text). The socket
    timeout bounds the wait: a server that waits for more body fails the test instead of hanging it."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(head + body)
        data = b""
        while b"\r\n\r\n" not in data or not _complete(data):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return int(data.split(b" ", 2)[1]), data.decode("latin-1")


def _complete(data: bytes) -> bool:
    head, _, body = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


def _head(path: str, length: int, token: str | None = None, content_type: str = "application/x-npy+zstd") -> bytes:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Type: {content_type}\r\n"
            f"Content-Length: {length}\r\n\r\n").encode()


def _peak_rss_reset(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as fh:  # "5": reset the peak RSS (VmHWM) to the current one
            fh.write("5")
        return True
    except OSError:
        return False


def _peak_rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


# ------------------------------------------------------------------------- before the token
def test_an_unauthenticated_body_is_refused_before_one_byte_of_it_is_read(server):
    # headers only, declaring a body under the cap: the 401 must come without waiting for it
    status, text = _raw(server.port, _head("/v1/predict?prompt=x", 1_500_000))
    assert status == 401 and "www-authenticate: bearer" in text.lower()
    status, text = _raw(server.port, _head("/v1/projects/p/corrections", 1_500_000, content_type="application/json"))
    assert status == 401
    # any size: over the cap too, and chunked
    status, _ = _raw(server.port, _head("/v1/predict?prompt=x", 10**12))
    assert status == 401
    status, _ = _raw(server.port, b"POST /v1/predict?prompt=x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert status == 401


def test_malformed_json_without_a_token_is_401_not_422(server):
    for token in (None, "wrong-token-of-some-length"):
        status, _ = _raw(server.port, _head("/v1/projects/p/corrections", 9, token, "application/json"), b"{not json")
        assert status == 401


def test_a_chunked_body_is_capped_by_the_bytes_received(server):
    chunk = b" " * 2**20  # JSON whitespace: read to the end by the route, so only the count can stop it
    body = b"".join(b"%x\r\n" % len(chunk) + chunk + b"\r\n" for _ in range(3)) + b"0\r\n\r\n"
    head = (f"POST /v1/projects/p/corrections HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {server.token}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
    try:
        status, text = _raw(server.port, head, body)
    except (BrokenPipeError, ConnectionResetError):  # the server answered and closed mid-send: read nothing
        pytest.skip("the server closed before the answer could be read")
    assert status == 413 and "limit" in text


# --------------------------------------------------------------------------- upload memory
def _bomb(shape=(100, 100), extra=2**30) -> bytes:
    """A valid small .npy header, then a GiB of zeros: ~32 KiB compressed."""
    import zstandard

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "|u1", "fortran_order": False, "shape": shape})
    cctx = zstandard.ZstdCompressor(level=3)
    out = io.BytesIO()
    with cctx.stream_writer(out, closefd=False) as w:
        w.write(buf.getvalue())
        zeros = b"\0" * 2**24
        for _ in range(extra // len(zeros)):
            w.write(zeros)
    return out.getvalue()


def test_a_decompression_bomb_costs_at_most_its_declared_array(server):
    bomb = _bomb()
    assert len(bomb) < 2**20  # well under the 2 MiB upload cap: only the decoder can stop it
    pid = server.proc.pid
    if not _peak_rss_reset(pid):
        pytest.skip("/proc/PID/clear_refs is not writable here")
    before = _peak_rss(pid)
    r = httpx.post(server.url + "/v1/predict?prompt=x", content=bomb, timeout=60,
                   headers={"Authorization": f"Bearer {server.token}", "Content-Type": "application/x-npy+zstd"})
    assert r.status_code == 413 and "more than" in r.json()["detail"], r.text
    grown = _peak_rss(pid) - before
    # the declared array is 10 kB; the decoder's buffers a few MiB. The limit (32 MiB) was never reached.
    assert grown < 16 * 2**20, f"peak RSS grew by {grown / 2**20:.1f} MiB"
    # the same bomb inside a correction's JSON
    from base64 import b64encode

    body = {"image": b64encode(bomb).decode(), "mask": b64encode(bomb).decode(), "prompts": ["x"]}
    r = httpx.post(server.url + "/v1/projects/bombs/corrections", json=body, timeout=60,
                   headers={"Authorization": f"Bearer {server.token}"})
    assert r.status_code == 413, r.text
    assert _peak_rss(pid) - before < 16 * 2**20


# ---------------------------------------------------------------------------- slow clients
def test_a_stalled_upload_is_cut_after_the_read_timeout_and_logged_once(server):
    status, text = _raw(server.port, _head("/v1/predict?prompt=x", 1_000_000, server.token), STALL,
                        timeout=READ_TIMEOUT_S + 30)
    assert status == 408 and "--read-timeout" in text
    # the server logs after answering: wait (bounded) for its line
    deadline = time.monotonic() + 10
    while "upload stalled, cut" not in server.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    log = server.log.read_text()
    assert log.count("upload stalled, cut") == 1
    assert "Traceback" not in log and "ERROR" not in log


def test_a_client_hanging_up_mid_upload_is_one_info_line(server):
    before = server.log.read_text().count("hung up mid-upload")
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(_head("/v1/predict?prompt=x", 1_000_000, server.token) + STALL)
    with VLSMClient(server.url, server.token) as c:  # the server serves on, and has logged by now
        assert c.predict(_image(), ["liver"]).shape == (1, 40, 52)
        c.info()
    log = server.log.read_text()
    assert log.count("hung up mid-upload") == before + 1
    assert "INFO" in log and "Traceback" not in log and "ERROR" not in log


def test_stalled_uploads_do_not_starve_predictions(tiny_model_dir, tmp_path):
    """16 connections each send 10 bytes of a declared 1 MB body (read timeout far away): another
    client's predict is served; the same token's 17th upload is refused (503), not queued."""
    from napari_vlsm.cli import main

    root = tmp_path / "srv" / "projects"
    alice = tmp_path / "alice-token"
    with _private_umask():
        assert main(["serve", "token", "add", "alice", "--project-root", str(root), "--out", str(alice)]) == 0
    with ServerProcess(tiny_model_dir, tmp_path / "srv", "--max-uploads-per-token", "16",
                       "--read-timeout", "120") as srv:
        stalled = []
        try:
            for _ in range(16):
                s = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
                s.sendall(_head("/v1/predict?prompt=x", 1_000_000, srv.token) + STALL)
                stalled.append(s)
            with VLSMClient(srv.url, srv.token, busy_retries=0) as owner:
                owner.info()  # a request without a body needs no upload slot
            status, text = _raw(srv.port, _head("/v1/predict?prompt=x", 100, srv.token), b"\0" * 100)
            assert status == 503 and "uploads of token 'owner'" in text
            with VLSMClient(srv.url, alice.read_text().strip(), busy_retries=0) as other:
                assert other.predict(_image(), ["liver"]).shape == (1, 40, 52)
        finally:
            for s in stalled:
                s.close()


class _private_umask:
    """CLI calls in this process set umask 077 (as the server does): put the test's back afterwards."""

    def __enter__(self):
        import os

        self.old = os.umask(0o022)
        os.umask(self.old)

    def __exit__(self, *exc):
        import os

        os.umask(self.old)


# ------------------------------------------------------------------------------ validation
def _correction_body(**overrides) -> dict:
    from base64 import b64encode

    mask = np.zeros((40, 52), bool)
    mask[5:20, 5:30] = True
    body = {"image": b64encode(encode_array(_image())).decode(), "mask": b64encode(encode_array(mask)).decode(),
            "prompts": ["liver"], "source": "ct-1", "slice_index": 3, "window": [0, 255]}
    return {**body, **overrides}


BAD_CORRECTIONS = {
    "negative slice index": ({"slice_index": -5}, "slice index"),
    "negative slice in a list": ({"slice_index": [1, -2]}, "slice index"),
    "window low over high": ({"window": [5, 1]}, "low < high"),
    "window NaN": ({"window": "NaN"}, "finite"),
    "long prompt": ({"prompts": ["a" * 10_000]}, "tokens"),
    "prompt over the token limit": ({"prompts": ["b" * 100]}, "tokens"),
    "long source": ({"source": "s" * 5000}, "source"),
}


@pytest.mark.parametrize("name", list(BAD_CORRECTIONS))
def test_bad_correction_values_are_422_and_nothing_is_stored(server, name):
    overrides, words = BAD_CORRECTIONS[name]
    body = json.dumps(_correction_body(**overrides))
    if overrides.get("window") == "NaN":  # Python's json reads a bare NaN: the server must not store it
        body = body.replace('"NaN"', "[NaN, 1]")
    r = httpx.post(server.url + "/v1/projects/bad-values/corrections", content=body, timeout=60,
                   headers={"Authorization": f"Bearer {server.token}", "Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert words in r.text
    listed = httpx.get(server.url + "/v1/projects/bad-values/corrections", timeout=30,
                       headers={"Authorization": f"Bearer {server.token}"}).json()
    assert listed["samples"] == []


def test_bad_predict_and_finetune_values_are_422(server):
    auth = {"Authorization": f"Bearer {server.token}", "Content-Type": "application/x-npy+zstd"}
    image = encode_array(_image())
    for query, words in ((f"prompt={'a' * 10_000}", "tokens"), (f"prompt={'c' * 90}", "tokens"),
                         ("prompt=x&window_lo=nan&window_hi=1", "finite"), ("prompt=x&window_lo=5&window_hi=1", "low"),
                         ("prompt=x&window_lo=1", "window"), ("prompt=x&batch_size=100000", "batch_size")):
        r = httpx.post(f"{server.url}/v1/predict?{query}", content=image, headers=auth, timeout=60)
        assert r.status_code == 422 and words in r.text, (query, r.status_code, r.text[:300])
    r = httpx.post(server.url + "/v1/projects/p/finetune", json={"batch_size": 100000}, timeout=30,
                   headers={"Authorization": f"Bearer {server.token}"})
    assert r.status_code == 422 and "batch_size" in r.text


def test_info_and_errors_show_no_absolute_server_paths(server):
    with VLSMClient(server.url, server.token) as c:
        text = json.dumps(c.info())
        r = httpx.post(server.url + "/v1/predict?prompt=liver", content=encode_array(_image()), timeout=60,
                       headers={"Authorization": f"Bearer {server.token}", "Content-Type": "application/x-npy+zstd"})
        text += r.headers["X-VLSM-Provenance"]
        assert "folder" not in c.info()
    for path in (server.workdir, server.workdir.resolve(), server.model):
        assert str(path) not in text


def test_redact_replaces_the_root_and_the_model_folder():
    from pathlib import Path
    from types import SimpleNamespace

    from napari_vlsm.server.host import ModelHost

    fake = SimpleNamespace(project_root=Path("/srv/vlsm/projects"), loaded=SimpleNamespace(folder=Path("/models/m")))
    text = ModelHost.redact(fake, "cannot write /srv/vlsm/projects/p/adapters/a.tmp with /models/m/config.json")
    assert text == "cannot write <project-root>/p/adapters/a.tmp with <model>/config.json"


def test_the_stand_alone_client_imports_without_the_server(server):
    code = ("import sys; import napari_vlsm.client as c; "
            "assert 'fastapi' not in sys.modules and 'torch' not in sys.modules")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
