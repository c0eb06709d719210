"""The server's files: private whatever the umask, one server per project root, named tokens that can
be revoked, a mistyped token file refused, and an audit log whose lines survive a SIGKILL.
Real server processes on 127.0.0.1 (tiny model); CLI calls in-process where no model is needed."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import threading

import numpy as np
import pytest

from napari_vlsm.client import ServerError, VLSMClient
from napari_vlsm.server.process import ServerProcess

pytestmark = pytest.mark.skipif(os.name != "posix", reason="file modes and fcntl locks are POSIX")


@pytest.fixture(autouse=True)
def keep_umask():
    """The CLI sets umask 077 in its process (as the server does); these tests run it in-process."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def _correction(i, shape=(40, 48)):
    rng = np.random.default_rng(i)
    mask = np.zeros(shape, bool)
    mask[5 + i % 7: 30, 8: 28 + i % 9] = True
    return (rng.random(shape) * 255).astype(np.uint8), mask


def _modes(root):
    out = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            out[os.path.relpath(path, root)] = stat.S_IMODE(os.lstat(path).st_mode)
    return out


def test_project_files_are_private_under_umask_022_and_audited(tiny_model_dir, tmp_path):
    from napari_vlsm.server.audit import read

    os.umask(0o022)  # the usual desktop umask: the desktop's own files would be 0644
    with ServerProcess(tiny_model_dir, tmp_path / "srv") as server, VLSMClient(server.url, server.token) as c:
        ids = [c.add_correction("clinic", *_correction(i), ["liver"], source="ct", slice_index=i)["id"]
               for i in range(4)]
        c.remove_correction("clinic", ids[-1])
        job = c.finetune("clinic", max_steps=2, batch_size=2)
        end = c.wait(job["id"], timeout=120)
        assert end["state"] == "done", end
        c.download_adapter("clinic", end["result"]["adapter"], tmp_path / "a.safetensors")
        root = server.project_root
        assert stat.S_IMODE(root.stat().st_mode) == 0o700
        modes = _modes(root)
    assert any(p.endswith(".safetensors") for p in modes) and any("jobs" in p for p in modes)
    loose = {p: oct(m) for p, m in modes.items()
             if m != (0o700 if os.path.isdir(root / p) else 0o600)}
    assert not loose, loose
    lines = read(root / "clinic" / "audit.jsonl")
    whats = [line["what"] for line in lines]
    assert whats.count("correction.added") == 4 and whats.count("correction.removed") == 1
    assert {"finetune.started", "finetune.done", "adapter.downloaded"} <= set(whats)
    assert all(line["who"] == "owner" and line["time"] for line in lines)
    text = (root / "clinic" / "audit.jsonl").read_text()
    # ids, names, shapes: never pixels (one 40 x 48 image alone would be 2.5 kB of base64)
    assert max(len(line) for line in text.splitlines()) < 1000
    assert not any({"image", "mask", "proposal"} & set(line) for line in lines)


def test_a_project_root_others_can_write_to_is_refused(tmp_path, capsys):
    from napari_vlsm.cli import main

    root = tmp_path / "shared"
    root.mkdir()
    root.chmod(0o777)
    token = tmp_path / "token"
    token.write_text("x" * 40)
    token.chmod(0o600)
    code = main(["serve", "--model", "never-loaded", "--project-root", str(root), "--token-file", str(token),
                 "--port", "0"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "can be written by other users" in err and len(err.splitlines()) == 1


def test_a_mistyped_token_file_is_an_error_unless_a_new_token_is_asked_for(tmp_path, capsys):
    from napari_vlsm.cli import main
    from napari_vlsm.core.errors import VLSMError
    from napari_vlsm.server.auth import load_or_create_token

    missing = tmp_path / "tokne"
    code = main(["serve", "--model", "never-loaded", "--project-root", str(tmp_path / "p"),
                 "--token-file", str(missing), "--port", "0"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "does not exist" in err and "--new-token" in err and len(err.splitlines()) == 1
    assert not missing.exists()
    with pytest.raises(VLSMError, match="does not exist"):
        load_or_create_token(missing)
    token, _, created = load_or_create_token(missing, create=True)
    assert created and stat.S_IMODE(missing.stat().st_mode) == 0o600 and len(token) >= 40


def test_a_second_server_on_one_root_is_refused_and_a_stale_lock_is_taken_over(tiny_model_dir, tmp_path, capsys):
    from napari_vlsm.cli import main
    from napari_vlsm.server.root import RootLock

    with ServerProcess(tiny_model_dir, tmp_path / "srv") as first:
        code = main(["serve", "--model", "never-loaded", "--project-root", str(first.project_root),
                     "--token-file", str(first.token_file), "--port", "0"])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1
        assert f"pid {first.proc.pid}" in err and "another napari-vlsm server" in err
        with VLSMClient(first.url, first.token) as c:
            c.info()  # the first one serves on
    # a lock file left by a dead server (its pid is gone): the kernel dropped its lock, a new server takes it
    stale = tmp_path / "stale"
    lock_path = stale / ".napari-vlsm" / "server.lock"
    lock_path.parent.mkdir(parents=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    lock_path.write_text(json.dumps({"pid": dead.pid, "host": "x"}))
    lock = RootLock(stale).acquire()
    try:
        assert json.loads(lock_path.read_text())["pid"] == os.getpid()
    finally:
        lock.release()


def test_named_tokens_added_listed_and_revoked_while_the_server_runs(tiny_model_dir, tmp_path, capsys):
    from napari_vlsm.cli import main
    from napari_vlsm.server.audit import read

    with ServerProcess(tiny_model_dir, tmp_path / "srv") as server:
        root = str(server.project_root)
        bob_file = tmp_path / "bob-token"
        assert main(["serve", "token", "add", "bob", "--project-root", root, "--out", str(bob_file)]) == 0
        assert stat.S_IMODE(bob_file.stat().st_mode) == 0o600
        assert main(["serve", "token", "add", "carol", "--project-root", root]) == 0
        carol = capsys.readouterr().out.strip()
        bob = bob_file.read_text().strip()
        tokens_file = server.project_root / ".napari-vlsm" / "tokens.json"
        assert stat.S_IMODE(tokens_file.stat().st_mode) == 0o600
        assert bob not in tokens_file.read_text() and carol not in tokens_file.read_text()  # digests only
        assert main(["serve", "token", "list", "--project-root", root]) == 0
        listed = capsys.readouterr().out
        assert "bob" in listed and "carol" in listed and bob not in listed
        with VLSMClient(server.url, bob) as c:
            assert c.info()["user"] == "bob"  # read without a restart
            c.add_correction("p", *_correction(0), ["liver"])
        assert main(["serve", "token", "revoke", "bob", "--project-root", root]) == 0
        with VLSMClient(server.url, bob) as c, pytest.raises(ServerError, match="401"):
            c.info()
        with VLSMClient(server.url, carol) as c:
            assert c.info()["user"] == "carol"
    assert read(server.project_root / "p" / "audit.jsonl")[0]["who"] == "bob"
    token_log = [line["what"] for line in read(server.project_root / ".napari-vlsm" / "audit.jsonl")]
    assert token_log == ["token.added", "token.added", "token.revoked"]


def test_the_audit_log_holds_whole_lines_for_every_acknowledged_change_after_a_sigkill(tiny_model_dir, tmp_path):
    from napari_vlsm.server.audit import read

    server = ServerProcess(tiny_model_dir, tmp_path / "srv").start()
    acked: list[str] = []
    stop = threading.Event()

    def add_many():  # keeps adding until the server dies under it
        with VLSMClient(server.url, server.token, busy_retries=0) as c:
            for i in range(200):
                if stop.is_set():
                    return
                try:
                    acked.append(c.add_correction("crash", *_correction(i), ["liver"], source=f"s{i}")["id"])
                except ServerError:
                    return

    workers = [threading.Thread(target=add_many) for _ in range(2)]
    try:
        for w in workers:
            w.start()
        for _ in range(600):  # bounded: wait for a few acknowledged corrections, then kill mid-stream
            if len(acked) >= 6:
                break
            threading.Event().wait(0.05)
        server.kill()
    finally:
        stop.set()
        for w in workers:
            w.join(timeout=60)
        server.stop()
    assert len(acked) >= 6
    raw = (server.project_root / "crash" / "audit.jsonl").read_bytes()
    assert raw.endswith(b"\n")  # whole lines only
    lines = read(server.project_root / "crash" / "audit.jsonl")  # every line parses
    logged = {line["id"] for line in lines if line["what"] == "correction.added"}
    assert set(acked) <= logged
