"""The dock as a client of ``napari-vlsm serve``: stand-ins for the engine, the store and the trainer.

Nothing here imports Qt or torch, so it is tested headless against a real server process. The
dock's "Model & adapter" server option (URL + token) swaps, in its Session:
- ``session.segmenter`` -> :class:`RemoteEngine` (``predict``, ``predict_stack``, ``provenance``,
  ``info``, ``load_adapter(name)``, ``clear_adapter()``): segmenting, several structures, stacks;
- ``session.store`` -> :class:`RemoteStore` (``add``, ``samples``, ``counts``, ``remove``,
  ``targets``): every correction is first saved in a local crash-safe OUTBOX (a CorrectionStore on
  this computer), then sent; it leaves the outbox only once the server acknowledged it (after its
  durable write). When the connection drops, the user gets one clear message and the corrections
  wait in the outbox; ``flush()`` (called by every add, or by a "retry" action) sends them later;
- the finetune worker's ``train_job`` -> :func:`remote_train_job`, the same kind of generator of
  ``ProgressEvent`` (curve, status, cancel), returning a :class:`RemoteTrainResult`.
"""

from __future__ import annotations

import types
from dataclasses import dataclass, field
from pathlib import Path

from napari_vlsm.client import ConnectionLost, ServerError, VLSMClient
from napari_vlsm.client.remote_segmenter import RemoteSegmenter
from napari_vlsm.core.errors import VLSMError

KEEP_IN_OUTBOX = (401, 403, 429, 500, 502, 503, 504)  # the server may accept it later


class RemoteEngine(RemoteSegmenter):
    """The engine calls the dock makes, answered by the server; adapters are named server files."""

    loaded = None  # no local model: the dock must not start a local finetune with it

    def load_adapter(self, name: str) -> None:
        self.adapter, self._provenance = str(name), None

    def clear_adapter(self) -> None:
        self.adapter, self._provenance = None, None

    @property
    def adapters(self):
        return None  # the weights stay on the server

    @property
    def adapter_path(self):
        return self.adapter

    def server_adapters(self) -> list[dict]:
        return self.client.adapters(self.project) if self.project else []


class RemoteStore:
    def __init__(self, client: VLSMClient, project: str, outbox_root: str | Path):
        from napari_vlsm.core.store import CorrectionStore

        self.client, self.project = client, project
        self.outbox = CorrectionStore(outbox_root)  # crash-safe on this computer, until acknowledged
        self.root = f"{client.url} · project {project}"

    # ------------------------------------------------------------------------------- write
    def add(self, image, mask, prompts, proposal=None, source: str = "", slice_index=None, window=None):
        local = self.outbox.add(image, mask, prompts, proposal=proposal, source=source, slice_index=slice_index,
                                window=window)  # validated + durable here first: nothing is lost
        sent = self.flush()
        return sent.get(local.id, local)

    def flush(self) -> dict:
        """Send every waiting correction, oldest first; -> {outbox id: the server's Sample}."""
        from dataclasses import replace

        sent = {}
        for sample in self.outbox.samples():
            try:
                info = self.client.add_correction(
                    self.project, sample.image, sample.mask, list(sample.prompts), proposal=sample.proposal,
                    source=sample.source, window=sample.window,
                    slice_index=None if sample.slice_index is None else list(sample.slice_index))
            except ConnectionLost:
                raise VLSMError(f"the server at {self.client.url} cannot be reached; {self.pending()} correction(s) "
                                "are kept on this computer and will be sent when it is back") from None
            except ServerError as err:
                if err.status in KEEP_IN_OUTBOX:
                    raise VLSMError(f"{err}; {self.pending()} correction(s) are kept on this computer") from None
                self.outbox.remove(sample.id)  # refused for good (e.g. 422): say so, do not retry forever
                raise
            self.outbox.remove(sample.id)
            sent[sample.id] = replace(sample, id=info["id"], split=info["split"], created=info["created"])
        return sent

    def remove(self, sample_id: str) -> None:
        if (self.outbox.samples_dir / sample_id).is_dir():
            self.outbox.remove(sample_id)
        else:
            self.client.remove_correction(self.project, sample_id)

    # -------------------------------------------------------------------------------- read
    def pending(self) -> int:
        return len(self.outbox.samples())

    def samples(self, target: str | None = None, split: str | None = None) -> list:
        """The server's corrections (metadata only, no pixels) and, marked "pending", the waiting ones."""
        rows = [types.SimpleNamespace(**{**s, "slice_index": None if s["slice_index"] is None
                                         else tuple(s["slice_index"])})
                for s in self.client.corrections(self.project, target)["samples"]]
        waiting = [types.SimpleNamespace(id=s.id, target=s.target, prompts=list(s.prompts), split="pending",
                                         source=s.source, slice_index=s.slice_index, created=s.created)
                   for s in self.outbox.samples(target)]
        return [r for r in rows + waiting if split is None or r.split == split]

    def counts(self, target: str | None = None) -> dict:
        counts = dict(self.client.corrections(self.project, target)["counts"])
        return {**counts, "pending": len(self.outbox.samples(target))}

    def targets(self) -> list[str]:
        return sorted({s.target for s in self.samples()})


@dataclass
class RemoteTrainResult:
    """What the dock's finetune panel reads from a TrainResult; the adapter is a server file name."""

    adapter_name: str | None
    before: dict
    after: dict
    heldout: bool = True
    improved: bool = False
    cancelled: bool = False
    stopped: str = ""
    message: str = ""
    adapters: object = None  # no local weights: RemoteEngine.load_adapter(adapter_name) uses them
    adapter_path: object = None
    history: list = field(default_factory=list)
    steps: int = 0


def remote_train_job(client: VLSMClient, project: str, settings: dict, cancel):
    """Worker side, like finetune_panel.train_job: yields ProgressEvents, returns a RemoteTrainResult
    (None when cancelled before training began). ``cancel`` is a threading.Event."""
    from napari_vlsm.core.training.config import ProgressEvent

    fields = set(ProgressEvent.__dataclass_fields__)
    job = client.finetune(project, **settings)
    cancelled_sent, end, steps = False, None, 0
    for event in client.events(job["id"]):
        if cancel.is_set() and not cancelled_sent:
            client.cancel(job["id"])
            cancelled_sent = True
        if event["type"] == "end":
            end = event
            break
        progress = ProgressEvent(**{k: v for k, v in event.items() if k in fields})
        steps = max(steps, progress.step or 0) if progress.kind == "step" else steps
        yield progress
    if end is None:
        raise ConnectionLost(f"the progress stream of job {job['id']} ended early; ask the server for its state")
    if end["state"] == "failed":
        raise VLSMError(f"the server's finetune failed: {end['error']}")
    result = end.get("result")
    if result is None:
        return None
    return RemoteTrainResult(adapter_name=result["adapter"], before=result["before"] or {},
                             after=result["after"] or {}, heldout=result["heldout"], improved=result["improved"],
                             cancelled=result["cancelled"], stopped=result["stopped"], message=result["message"],
                             steps=int(result.get("steps") or steps))


def open_engine(url: str, token: str, project: str) -> RemoteEngine:
    """Worker side: a RemoteEngine on ``url``; ServerError/ConnectionLost (one line) on a bad URL or token."""
    engine = RemoteEngine(VLSMClient(url, token), project=project)
    engine.info()  # fails now, with one line, on a wrong URL or token
    return engine


def attach_engine(session, engine: RemoteEngine, outbox_root) -> RemoteEngine:
    """GUI thread: segmenting and corrections of ``session`` go to the engine's server from now on.

    The engine and store replace the local ones (the Session's keys are set so that it does not
    load a local model; ``session.remote`` marks the connection, see Session.with_model/set_project).
    """
    session.adapter = "none"  # server adapters are chosen by name on the engine, not as local files
    session.segmenter, session._loaded_key, session._adapter_key = engine, session.model_key(), None
    session._store = RemoteStore(engine.client, engine.project, outbox_root)
    session.remote = engine
    session.model_changed.emit()
    session.store_changed.emit()
    return engine


def detach_engine(session) -> None:
    """GUI thread: back to the local model and project store (the outbox stays on disk)."""
    engine = getattr(session, "remote", None)
    session.remote = None
    session.segmenter, session._loaded_key, session._adapter_key, session._store = None, None, None, None
    if engine is not None:
        engine.client.close()
    session.model_changed.emit()
    session.store_changed.emit()


def connect_session(session, url: str, token: str, project: str, outbox_root) -> RemoteEngine:
    """Point a dock Session at a server (:func:`open_engine` + :func:`attach_engine`, on one thread)."""
    return attach_engine(session, open_engine(url, token, project), outbox_root)
