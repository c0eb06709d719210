"""The dock as a client of ``napari-vlsm serve``: the engine and the project answered by a server.

Nothing here imports Qt or torch, so it is tested headless against a real server process. The
dock's "Model & adapter" server option (URL + token) swaps, in its DockSession:
- ``session.segmenter`` -> :class:`RemoteEngine` (``predict``, ``predict_stack``, ``provenance``,
  ``info``, ``load_adapter(name)``, ``clear_adapter()``): segmenting, several structures, stacks;
- ``session.project`` -> a :class:`~napari_vlsm.client.project.RemoteProject` with an outbox on
  this computer (corrections, finetune, adapters: the same calls as a local ``Project``).
"""

from __future__ import annotations

from napari_vlsm.client import VLSMClient
from napari_vlsm.client.project import RemoteProject
from napari_vlsm.client.remote_segmenter import RemoteSegmenter


class RemoteEngine(RemoteSegmenter):
    """The engine calls the dock makes, answered by the server; adapters are named server files."""

    loaded = None  # no local model: the dock must not start a local finetune with it
    _server_info: dict | None = None

    def info(self) -> dict:
        """The server's model, asked once (at connect, in a worker): its device and precision do not
        change while connected, so the dock never waits for the network on the GUI thread for them."""
        if self._server_info is None:
            self._server_info = self.client.info()
        return {**self._server_info, "server": self.client.url, "project": self.project, "adapter": self.adapter}

    _version = 0
    adapter_version = property(lambda self: self._version)  # as the engine's: a proposal made before is stale

    def load_adapter(self, name: str) -> None:
        self.adapter, self._provenance = str(name), None
        self._version += 1

    def clear_adapter(self) -> None:
        self.adapter, self._provenance = None, None
        self._version += 1

    def set_adapters(self, adapters, metadata=None, path=None) -> None:
        """A finetune's new adapter (``path``: its name on the server) is the one in use."""
        self.load_adapter(path)

    @property
    def adapters(self):
        return None  # the weights stay on the server

    @property
    def adapter_path(self):
        return self.adapter

    def server_adapters(self) -> list[dict]:
        return self.client.adapters(self.project) if self.project else []


def open_engine(url: str, token: str, project: str) -> RemoteEngine:
    """Worker side: a RemoteEngine on ``url``; ServerError/ConnectionLost (one line) on a bad URL or token."""
    engine = RemoteEngine(VLSMClient(url, token), project=project)
    engine.info()  # fails now, with one line, on a wrong URL or token
    return engine


def attach_engine(session, engine: RemoteEngine, outbox_root) -> RemoteEngine:
    """GUI thread: segmenting, corrections and finetunes of ``session`` go to the engine's server."""
    session.use_server(engine, RemoteProject(engine.client, engine.project, outbox=outbox_root))
    return engine


def detach_engine(session) -> None:
    """GUI thread: back to the local model and project (the outbox stays on disk)."""
    engine = session.remote
    session.use_local()
    if engine is not None:
        engine.client.close()


def connect_session(session, url: str, token: str, project: str, outbox_root) -> RemoteEngine:
    """Point a DockSession at a server (:func:`open_engine` + :func:`attach_engine`, on one thread)."""
    return attach_engine(session, open_engine(url, token, project), outbox_root)
