"""The client on a hospital network: no proxy for loopback (the token never reaches one), a TLS proxy
signed by the hospital's own CA (``ca_bundle`` / ``SSL_CERT_FILE``), a warning for a token file
others can read. Everything on 127.0.0.1: a stand-in HTTP proxy and a TLS-terminating forwarder
with a CA made here by the ``openssl`` command."""

from __future__ import annotations

import os
import select
import shutil
import socket
import ssl
import subprocess
import threading

import pytest

from napari_vlsm.client import ConnectionLost, ServerError, VLSMClient, read_token
from napari_vlsm.server.process import ServerProcess


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    with ServerProcess(tiny_model_dir, tmp_path_factory.mktemp("net")) as proc:
        yield proc


class StandInProxy:
    """Records every byte sent to it and answers 502: what a proxy would have seen."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.received = b""
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(5)
                try:
                    self.received += conn.recv(65536)
                    conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                except OSError:
                    pass

    def close(self):
        self._stop = True
        self.thread.join(timeout=5)
        self.sock.close()


@pytest.fixture()
def proxy(monkeypatch):
    p = StandInProxy()
    url = f"http://127.0.0.1:{p.port}"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(name, url)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    yield p
    p.close()


def test_the_token_never_reaches_a_proxy_for_a_loopback_server(server, proxy):
    for url in (server.url, f"http://localhost:{server.port}"):
        with VLSMClient(url, server.token, busy_retries=0) as c:
            assert c.info()["user"] == "owner"
    assert proxy.received == b""
    # the stand-in works: a non-loopback URL does go to it (it answers 502 itself; nothing leaves this machine)
    with VLSMClient("http://gpu-box.invalid:8765", "a-token-for-the-proxy-test", busy_retries=0) as c:
        with pytest.raises(ServerError, match="502"):
            c.info()
    assert b"gpu-box.invalid" in proxy.received


# --------------------------------------------------------------------------------------- TLS
def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")
    d = tmp_path_factory.mktemp("ca")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=Clinic test CA",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    _openssl("req", *ec, "-keyout", "proxy.key", "-out", "proxy.csr", "-subj", "/CN=127.0.0.1", cwd=d)
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n"
                               "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
                               "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n")
    _openssl("x509", "-req", "-in", "proxy.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "proxy.pem", "-days", "2", "-extfile", "ext.cnf", cwd=d)
    return d


class TLSForwarder:
    """A TLS reverse proxy in miniature: terminates TLS with the clinic CA's certificate and forwards
    the plain bytes to the server on 127.0.0.1 (what Caddy or nginx do in docs/server.md)."""

    def __init__(self, cert, key, upstream_port):
        self.ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ctx.load_cert_chain(cert, key)
        self.upstream = upstream_port
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._pipe, args=(conn,), daemon=True).start()

    def _pipe(self, conn):
        conn.settimeout(10)
        try:
            tls = self.ctx.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError):  # a client that does not trust us hangs up in the handshake
            conn.close()
            return
        with tls, socket.create_connection(("127.0.0.1", self.upstream), timeout=10) as up:
            for _ in range(100_000):  # bounded
                ready = [tls] if tls.pending() else select.select([tls, up], [], [], 10)[0]
                if not ready:
                    return
                for src in ready:
                    try:
                        data = src.recv(65536)
                    except (ssl.SSLError, OSError):
                        return
                    if not data:
                        return
                    (up if src is tls else tls).sendall(data)

    def close(self):
        self._stop = True
        self.thread.join(timeout=5)
        self.sock.close()


def test_a_tls_proxy_signed_by_the_clinics_own_ca(server, certificates, monkeypatch):
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    fwd = TLSForwarder(certificates / "proxy.pem", certificates / "proxy.key", server.port)
    url = f"https://127.0.0.1:{fwd.port}"
    try:
        with VLSMClient(url, server.token, busy_retries=0) as c, pytest.raises(ConnectionLost, match="--ca-bundle"):
            c.info()  # the system's CAs do not know the clinic's
        with VLSMClient(url, server.token, ca_bundle=certificates / "ca.pem") as c:
            assert c.info()["user"] == "owner"
        monkeypatch.setenv("SSL_CERT_FILE", str(certificates / "ca.pem"))
        with VLSMClient(url, server.token) as c:
            assert c.info()["user"] == "owner"
    finally:
        fwd.close()


def test_the_cli_passes_ca_bundle_to_the_client(server, certificates, monkeypatch):
    from types import SimpleNamespace

    from napari_vlsm.cli.remote import client_for

    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    fwd = TLSForwarder(certificates / "proxy.pem", certificates / "proxy.key", server.port)
    try:
        args = SimpleNamespace(server=f"https://127.0.0.1:{fwd.port}", token_file=str(server.token_file),
                               ca_bundle=str(certificates / "ca.pem"))
        with client_for(args) as c:
            assert c.info()["user"] == "owner"
    finally:
        fwd.close()


# ------------------------------------------------------------------------------------ tokens
@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_a_token_file_others_can_read_gets_a_warning(tmp_path):
    path = tmp_path / "token"
    path.write_text("t" * 40)
    path.chmod(0o644)
    with pytest.warns(UserWarning, match="chmod 600"):
        assert read_token(path) == "t" * 40
    path.chmod(0o600)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_token(path) == "t" * 40
