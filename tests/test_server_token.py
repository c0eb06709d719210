"""The server's token file: generated once with mode 0600, reused, refused when others can read it."""

from __future__ import annotations

import os
import stat

import pytest

from napari_vlsm.core.errors import VLSMError
from napari_vlsm.server.auth import load_or_create_token


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_generated_once_0600_then_reused(tmp_path):
    path = tmp_path / "cfg" / "server-token"
    token, where, created = load_or_create_token(path, create=True)
    assert created and where == path and len(token) >= 40
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again, _, created_again = load_or_create_token(path)
    assert again == token and not created_again


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_refuses_a_readable_or_weak_token_file(tmp_path):
    path = tmp_path / "token"
    path.write_text("x" * 40)
    path.chmod(0o644)
    with pytest.raises(VLSMError, match="chmod 600"):
        load_or_create_token(path)
    path.write_text("short")
    path.chmod(0o600)
    with pytest.raises(VLSMError, match="shorter than"):
        load_or_create_token(path)


def test_serve_help_is_instant_and_torch_free():
    import subprocess
    import sys

    code = ("import sys; from napari_vlsm.cli import build_parser\n"
            "build_parser()\n"
            "assert 'torch' not in sys.modules and 'fastapi' not in sys.modules and 'distributed' not in sys.modules\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr


def test_serve_on_a_port_in_use_is_one_line(capsys):
    import socket

    from napari_vlsm.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(["serve", "--model", "does-not-matter", "--port", str(port)])
    err = capsys.readouterr().err
    assert code == 2 and "cannot listen on 127.0.0.1" in err and len(err.strip().splitlines()) == 1
