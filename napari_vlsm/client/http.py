"""``VLSMClient``: the napari-vlsm server's API in Python, on httpx + numpy (no torch).

Every failure is a :class:`ServerError` (a ``VLSMError``: the CLI prints it on one line) that says
what happened: a refused token, a bad payload, a busy server (with its Retry-After), or a lost
connection (the server stopped, e.g. during a finetune: acknowledged corrections are kept).

Proxies and certificates: a loopback URL (127.0.0.1, ::1, localhost: the SSH tunnel) never goes
through a proxy, whatever ``HTTP_PROXY``/``ALL_PROXY`` say, so the token stays on this machine;
other URLs follow the environment (``HTTPS_PROXY``, ``NO_PROXY``). ``ca_bundle`` (or
``SSL_CERT_FILE``) names the certificate authority that signed a hospital's TLS proxy.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import ssl
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np

from ..core.errors import VLSMError
from .wire import MEDIA_TYPE, decode_array, encode_array

TOKEN_ENV = "NAPARI_VLSM_TOKEN"


class ServerError(VLSMError):
    def __init__(self, message: str, status: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.status, self.retry_after = status, retry_after


class ConnectionLost(ServerError):
    """The server cannot be reached or went away mid-request."""


def read_token_file(token_file: str | os.PathLike) -> tuple[str, str | None]:
    """The token in ``token_file`` and, when other users of this computer can read (or write) the
    file, the warning to show: the one rule that the CLI, the client and the dock all apply (the
    dock shows it as a notification, the others as a Python warning). ServerError when unreadable."""
    path = Path(token_file).expanduser()
    try:
        token = path.read_text(encoding="utf-8").strip()
        exposed = os.name == "posix" and path.stat().st_mode & 0o077  # any group/other bit
    except OSError as err:
        raise ServerError(f"cannot read the token file {token_file}: {err.strerror or err}") from None
    warning = (f"the token file {path} can be read by other users of this computer; run: chmod 600 {path}"
               if exposed else None)
    return token, warning


def read_token(token_file: str | os.PathLike | None = None) -> str:
    """The token from ``token_file``, else from $NAPARI_VLSM_TOKEN; ServerError naming both when neither."""
    if token_file:
        token, warning = read_token_file(token_file)
        if warning:
            warnings.warn(warning, stacklevel=2)
        return token
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise ServerError(f"no server token: pass --token-file FILE (the file the server printed) or set {TOKEN_ENV}")
    return token


def is_loopback(url: str) -> bool:
    host = httpx.URL(url).host
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def tls_verify(ca_bundle: str | os.PathLike | None = None):
    """What httpx verifies server certificates with: ``ca_bundle``, else $SSL_CERT_FILE, else the system's."""
    cafile = ca_bundle or os.environ.get("SSL_CERT_FILE")
    if not cafile:
        return True
    try:
        return ssl.create_default_context(cafile=str(Path(cafile).expanduser()))
    except (OSError, ssl.SSLError) as err:
        raise ServerError(f"cannot read the CA bundle {cafile}: {getattr(err, 'strerror', None) or err}") from None


class VLSMClient:
    def __init__(self, url: str, token: str, timeout: float = 300.0, transport=None, busy_retries: int = 3,
                 ca_bundle: str | os.PathLike | None = None):
        self.url = url.rstrip("/")
        self.busy_retries = busy_retries  # a 503 (server busy) is retried after its Retry-After, this often
        # trust_env=False: no proxy from the environment for a loopback URL (the token must not leave
        # this machine); elsewhere HTTP(S)_PROXY and NO_PROXY apply as in any other program.
        self._http = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"},
                                  timeout=httpx.Timeout(timeout, connect=10.0), transport=transport,
                                  trust_env=not is_loopback(self.url), verify=tls_verify(ca_bundle))

    def close(self) -> None:
        self._http.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---------------------------------------------------------------------------- plumbing
    def _request(self, method: str, path: str, **kwargs) -> httpx.Response:
        for attempt in range(self.busy_retries + 1):
            try:
                response = self._http.request(method, path, **kwargs)
            except RuntimeError:
                if not self._http.is_closed:
                    raise
                # disconnected by the user while this request waited in a worker
                raise ConnectionLost(f"the connection to the napari-vlsm server at {self.url} was closed") from None
            except httpx.TransportError as err:
                if "CERTIFICATE_VERIFY_FAILED" in str(err):
                    raise ConnectionLost(f"the certificate of {self.url} is not trusted ({err}); pass --ca-bundle "
                                         "FILE (the certificate authority that signed it) or set SSL_CERT_FILE") from None
                raise ConnectionLost(f"lost the connection to the napari-vlsm server at {self.url} "
                                     f"({type(err).__name__}: {err}); is it running? Corrections it acknowledged "
                                     "are kept on its disk") from None
            if response.status_code != 503 or attempt == self.busy_retries:
                break
            time.sleep(min(30.0, float(response.headers.get("Retry-After", "1") or 1)))
        _raise_for(response)
        return response

    def health(self) -> dict:
        return self._request("GET", "/health").json()

    def info(self) -> dict:
        return self._request("GET", "/v1/info").json()

    # ----------------------------------------------------------------------------- predict
    def predict(self, array, prompts, threshold: float = 0.5, output: str = "mask", project: str | None = None,
                adapter: str | None = None, rgb: bool | None = None, window=None, batch_size: int = 8) -> np.ndarray:
        """-> (P, H, W) or (P, Z, H, W): bool masks or float32 probabilities, one per prompt."""
        params = _params(prompts, threshold, output, project, adapter, batch_size)
        if rgb is not None:
            params.append(("rgb", str(bool(rgb)).lower()))
        if window is not None:
            params += [("window_lo", float(window[0])), ("window_hi", float(window[1]))]
        response = self._request("POST", "/v1/predict", params=params, content=encode_array(array),
                                 headers={"Content-Type": MEDIA_TYPE})
        return decode_array(response.content)

    def provenance_of(self, response_headers) -> dict:
        return json.loads(response_headers.get("X-VLSM-Provenance", "{}"))

    def open_session(self, array, rgb: bool | None = None) -> dict:
        params = [] if rgb is None else [("rgb", str(bool(rgb)).lower())]
        return self._request("POST", "/v1/sessions", params=params, content=encode_array(array),
                             headers={"Content-Type": MEDIA_TYPE}).json()

    def session_predict(self, session_id: str, prompts, index: int | None = None, threshold: float = 0.5,
                        output: str = "mask", project: str | None = None, adapter: str | None = None) -> np.ndarray:
        params = _params(prompts, threshold, output, project, adapter, 8)
        if index is not None:
            params.append(("index", int(index)))
        return decode_array(self._request("POST", f"/v1/sessions/{session_id}/predict", params=params).content)

    def close_session(self, session_id: str) -> None:
        self._request("DELETE", f"/v1/sessions/{session_id}")

    # ------------------------------------------------------------------------- corrections
    def add_correction(self, project: str, image, mask, prompts, proposal=None, source: str = "",
                       slice_index=None, window=None) -> dict:
        """Returns once the server has stored the correction durably (its id, target and split)."""
        body = {"image": _b64(image), "mask": _b64(np.asarray(mask).astype(bool)),
                "prompts": [prompts] if isinstance(prompts, str) else list(prompts), "source": source,
                "slice_index": slice_index, "window": None if window is None else [float(w) for w in window],
                "proposal": None if proposal is None else _b64(np.asarray(proposal).astype(bool))}
        return self._request("POST", f"/v1/projects/{project}/corrections", json=body).json()

    def corrections(self, project: str, target: str | None = None) -> dict:
        params = {} if target is None else {"target": target}
        return self._request("GET", f"/v1/projects/{project}/corrections", params=params).json()

    def remove_correction(self, project: str, sample_id: str) -> None:
        self._request("DELETE", f"/v1/projects/{project}/corrections/{sample_id}")

    # ---------------------------------------------------------------------------- finetune
    def finetune(self, project: str, **settings) -> dict:
        """Start a finetune job on the project's corrections; -> its status (``id``, ``state``)."""
        return self._request("POST", f"/v1/projects/{project}/finetune", json=settings).json()

    def job(self, job_id: str) -> dict:
        return self._request("GET", f"/v1/jobs/{job_id}").json()

    def cancel(self, job_id: str) -> dict:
        return self._request("POST", f"/v1/jobs/{job_id}/cancel").json()

    def events(self, job_id: str, cancel_on_disconnect: bool = False) -> Iterator[dict]:
        """Progress events (dicts) from the job's start; the last has ``type == "end"``."""
        params = {"cancel_on_disconnect": str(cancel_on_disconnect).lower()}
        try:
            with self._http.stream("GET", f"/v1/jobs/{job_id}/events", params=params,
                                   timeout=httpx.Timeout(None, connect=10.0)) as response:
                if response.status_code >= 400:
                    response.read()
                    _raise_for(response)
                for line in response.iter_lines():
                    if line.strip():
                        event = json.loads(line)
                        yield event
                        if event.get("type") == "end":
                            return
        except (httpx.TransportError, httpx.StreamError) as err:
            raise ConnectionLost(
                f"the server at {self.url} went away during job {job_id} ({type(err).__name__}); training stopped "
                "with it and no adapter was saved by this job. Corrections it acknowledged are kept: restart the "
                "server and finetune again") from None
        raise ConnectionLost(f"the progress stream of job {job_id} ended before the job did; "
                             f"ask the server for GET /v1/jobs/{job_id}")

    def wait(self, job_id: str, timeout: float = 3600.0, poll: float = 0.5) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.job(job_id)
            if status["state"] not in ("running",):
                return status
            time.sleep(poll)
        raise ServerError(f"job {job_id} is still running after {timeout:.0f} s")

    # ---------------------------------------------------------------------------- adapters
    def adapters(self, project: str) -> list[dict]:
        return self._request("GET", f"/v1/projects/{project}/adapters").json()["adapters"]

    def download_adapter(self, project: str, name: str, path: str | os.PathLike) -> Path:
        """Save the adapter to ``path`` atomically (a dropped download leaves no partial file)."""
        from ..core.atomic import write_bytes_atomic

        data = self._request("GET", f"/v1/projects/{project}/adapters/{name}").content
        path = Path(path)
        write_bytes_atomic(path, data)
        return path


def _b64(array) -> str:
    return base64.b64encode(encode_array(np.asarray(array))).decode("ascii")


def _params(prompts, threshold, output, project, adapter, batch_size) -> list[tuple]:
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    params = [("prompt", p) for p in prompts] + [("threshold", float(threshold)), ("output", output),
                                                  ("batch_size", int(batch_size))]
    if project:
        params.append(("project", project))
    if adapter:
        params.append(("adapter", adapter))
    return params


def _raise_for(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        detail = response.json().get("detail")
    except ValueError:
        detail = response.text[:300]
    if isinstance(detail, list):  # FastAPI's request validation: name the fields
        detail = "; ".join(f"{'.'.join(str(x) for x in d.get('loc', []))}: {d.get('msg')}" for d in detail)
    retry = response.headers.get("Retry-After")
    what = {401: "the server refused the token", 503: "the server is busy"}.get(response.status_code, "the server")
    message = f"{what} ({response.status_code}): {detail}"
    if retry:
        message += f" (retry after {retry} s)"
    raise ServerError(message, status=response.status_code, retry_after=float(retry) if retry else None)
