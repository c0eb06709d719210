"""``RemoteProject``: a project of a ``napari-vlsm serve``, with the same calls as a local ``Project``.

It implements :class:`~napari_vlsm.core.project.ProjectLike` over the server's HTTP API, so the
dock and the CLI add corrections, list them, finetune and pick adapters the same way whether the
project is a folder here or on a server. No torch is imported.

With an ``outbox`` folder (the dock gives one), every correction is first saved in a crash-safe
CorrectionStore on this computer, then sent; it leaves the outbox only once the server acknowledged
it (after its durable write). When the connection drops, the user gets one clear message and the
corrections wait; ``flush()`` (called by every add, or by a "retry" action) sends them later.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..core.errors import VLSMError
from ..core.project.results import FinetuneRequest, FinetuneResult
from ..core.store.records import SampleInfo
from .http import ConnectionLost, ServerError, VLSMClient

KEEP_IN_OUTBOX = (401, 403, 429, 500, 502, 503, 504)  # the server may accept it later


class RemoteProject:
    runs_here = False  # train() runs on the server: no torch job on this computer

    def __init__(self, client: VLSMClient, project: str, outbox: str | Path | None = None):
        self.client, self.project = client, project
        self.name = f"{client.url} · project {project}"
        self.outbox = None
        if outbox is not None:
            from ..core.store import CorrectionStore

            self.outbox = CorrectionStore(outbox)  # crash-safe on this computer, until acknowledged

    def __repr__(self) -> str:
        return f"RemoteProject({self.name!r})"

    # --------------------------------------------------------------------------- corrections
    def add_correction(self, image, mask, prompts, proposal=None, source: str = "", slice_index=None,
                       window=None) -> SampleInfo:
        if self.outbox is None:
            return self._send(image, mask, prompts, proposal, source, slice_index, window)
        local = self.outbox.add(image, mask, prompts, proposal=proposal, source=source, slice_index=slice_index,
                                window=window)  # validated + durable here first: nothing is lost
        sent = self.flush()
        if local.id in sent:
            return sent[local.id]
        return replace(SampleInfo.of(local), split="pending")

    def _send(self, image, mask, prompts, proposal, source, slice_index, window) -> SampleInfo:
        index = None if slice_index is None else [int(i) for i in (
            slice_index if isinstance(slice_index, (tuple, list)) else [slice_index])]
        return SampleInfo.from_json(self.client.add_correction(
            self.project, image, mask, list(prompts) if not isinstance(prompts, str) else [prompts],
            proposal=proposal, source=source, slice_index=index, window=window))

    def flush(self) -> dict:
        """Send every waiting correction, oldest first; -> {outbox id: the server's SampleInfo}."""
        sent = {}
        for sample in self.outbox.samples() if self.outbox is not None else []:
            try:
                info = self._send(sample.image, sample.mask, sample.prompts, sample.proposal, sample.source,
                                  sample.slice_index, sample.window)
            except ConnectionLost:
                raise VLSMError(f"the server at {self.client.url} cannot be reached; {self.pending()} correction(s) "
                                "are kept on this computer and will be sent when it is back") from None
            except ServerError as err:
                if err.status in KEEP_IN_OUTBOX:
                    raise VLSMError(f"{err}; {self.pending()} correction(s) are kept on this computer") from None
                self.outbox.remove(sample.id)  # refused for good (e.g. 422): say so, do not retry forever
                raise
            self.outbox.remove(sample.id)
            sent[sample.id] = info
        return sent

    def pending(self, target: str | None = None) -> int:
        """Corrections waiting on this computer to be sent."""
        return len(self.outbox.infos(target)) if self.outbox is not None else 0

    def corrections(self, target: str | None = None, split: str | None = None) -> list[SampleInfo]:
        """The server's records and, with split "pending", the ones waiting here (no pixels either way)."""
        rows = [SampleInfo.from_json(s) for s in self.client.corrections(self.project, target)["samples"]]
        waiting = [replace(s, split="pending") for s in (self.outbox.infos(target) if self.outbox else [])]
        return [r for r in rows + waiting if split is None or r.split == split]

    def counts(self, target: str | None = None) -> dict[str, int]:
        counts = dict(self.client.corrections(self.project, target)["counts"])
        return {**counts, "pending": self.pending(target)}

    def remove_correction(self, sample_id: str) -> None:
        if self.outbox is not None and (self.outbox.samples_dir / sample_id).is_dir():
            self.outbox.remove(sample_id)
        else:
            self.client.remove_correction(self.project, sample_id)

    def targets(self) -> list[str]:
        return sorted({s.target for s in self.corrections()})

    # ------------------------------------------------------------------------------ adapters
    def adapters(self) -> list[dict]:
        return self.client.adapters(self.project)

    def latest_adapter(self) -> str | None:
        return next((a["name"] for a in self.adapters() if a.get("latest")), None)

    def fetch_adapter(self, name: str, path: str | Path) -> Path:
        return self.client.download_adapter(self.project, name, path)

    # ------------------------------------------------------------------------------ training
    def train(self, request: FinetuneRequest, cancel=None, keep=None):
        """The server's finetune job, its events as ProgressEvents. Cancel (or a closed dock,
        ``keep``: the server does not keep a stopped run) asks the server to stop."""
        from ..core.training.config import ProgressEvent

        fields = set(ProgressEvent.__dataclass_fields__)
        job = self.client.finetune(self.project, **request.to_json())
        cancel_sent, end = False, None
        for event in self.client.events(job["id"]):
            if cancel is not None and cancel.is_set() and not cancel_sent:
                self.client.cancel(job["id"])
                cancel_sent = True
            if event["type"] == "end":
                end = event
                break
            yield ProgressEvent(**{k: v for k, v in event.items() if k in fields})
        if end is None:
            raise ConnectionLost(f"the progress stream of job {job['id']} ended early; ask the server for its state")
        if end["state"] == "failed":
            raise VLSMError(f"the server's finetune failed: {end['error']}")
        if end.get("result") is None:  # cancelled before it began (a server without a result then)
            return FinetuneResult(adapter=None, before={}, after={}, cancelled=True, stopped="cancelled")
        return FinetuneResult.from_json(end["result"])
