"""Project endpoints: corrections (add, list, remove), finetune jobs (start, progress stream, cancel)
and adapters (list, download). The server is the only writer of its projects' stores.

Every value is checked with the core's rules (``core/validation.py``) before the store or the
trainer sees it: a bad one is a 422 naming it, never a 500. Every change and every adapter
download gets a line in the project's audit log (who: the token's name; never pixels)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from ..client.wire import WireError, decode_array
from ..core.errors import VLSMError
from ..core.validation import check_batch_size, check_slice_index, check_window
from .host import NotFound, check_project
from .jobs import FINISHED, Job
from .worklists import open_worklist, public_source, public_sources, source_path

router = APIRouter()


class CorrectionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    image: str = Field(description="base64 of a zstd .npy (H, W) or (H, W, 3) image")
    mask: str = Field(description="base64 of a zstd .npy (H, W) binary mask")
    prompts: list[str] = Field(min_length=1, max_length=32)
    proposal: str | None = None
    source: str = Field("", max_length=1024)
    slice_index: int | list[int] | None = None
    window: tuple[float, float] | None = None


def _request_body_model():
    """The finetune body: exactly FinetuneRequest's fields and defaults (core/project/results.py owns
    them), with unknown fields refused, so the HTTP API can never drift from what a project trains."""
    import dataclasses
    import typing

    from pydantic import create_model

    from ..core.project import FinetuneRequest

    hints = typing.get_type_hints(FinetuneRequest)
    fields = {f.name: (hints[f.name], f.default) for f in dataclasses.fields(FinetuneRequest)}
    return create_model("FinetuneIn", __config__=ConfigDict(extra="forbid"), **fields)


FinetuneIn = _request_body_model()


def _array(request: Request, text: str, what: str):
    cfg = request.app.state.config
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise WireError(f"{what} is not base64 text") from None
    return decode_array(raw, cfg.max_array_bytes, 3, cfg.max_side)


@router.post("/v1/projects/{project}/corrections", status_code=201)
def add_correction(request: Request, project: str, body: CorrectionIn):
    host = request.app.state.host
    prompts = host.check_prompts(body.prompts)
    slice_index = check_slice_index(body.slice_index, error=VLSMError)
    window = check_window(body.window, error=VLSMError)
    owner = host.project(check_project(project))
    image, mask = _array(request, body.image, "image"), _array(request, body.mask, "mask")
    proposal = None if body.proposal is None else _array(request, body.proposal, "proposal")
    # "worklist:<id>[#view]": stored under the item's path (+ #view), so `worklist export` rebuilds the
    # item from it; every answer shows "worklist:<id>[#view]" again, never the path.
    source, shown, item_id = source_path(request, project, body.source)
    with host.store_locks[project]:
        info = owner.add_correction(image, mask, list(prompts), proposal=proposal, source=source,
                                    slice_index=slice_index, window=window)
        shown = info.source if item_id is None else shown
        if item_id is not None:
            with open_worklist(request, project) as worklist:
                worklist.add_corrections(item_id, 1)
        host.audit.record(request.state.user, "correction.added", project, id=info.id, target=info.target,
                          prompts=list(info.prompts), source=shown,
                          slice_index=info.slice_index, shape=list(info.shape), split=info.split)
    # 201 only after the store's commit rename and the audit line: both survive a crash.
    return {**info.to_json(), "source": shown}


@router.get("/v1/projects/{project}/corrections")
def list_corrections(request: Request, project: str, target: str | None = None):
    owner = request.app.state.host.project(check_project(project))
    paths = public_sources(request, project)  # a worklist item's path -> "worklist:<id>"
    # metadata only: listing a project never decodes its images
    samples = [s.to_json() for s in owner.corrections(target)]
    return {"samples": [{**s, "source": public_source(s["source"], paths)} for s in samples],
            "counts": owner.counts(target)}


@router.delete("/v1/projects/{project}/corrections/{sample_id}", status_code=204)
def remove_correction(request: Request, project: str, sample_id: str):
    host = request.app.state.host
    from ..core.store.records import ID_RE

    store = host.store(check_project(project))
    if not ID_RE.match(sample_id) or not (store.samples_dir / sample_id).is_dir():
        raise NotFound(f"project {project} has no correction {sample_id}")
    with host.store_locks[project]:
        store.remove(sample_id)
        host.audit.record(request.state.user, "correction.removed", project, id=sample_id)
    return Response(status_code=204)


@router.post("/v1/projects/{project}/finetune", status_code=202)
def start_finetune(request: Request, project: str, body: FinetuneIn):
    settings = body.model_dump()
    check_batch_size(settings["batch_size"], error=VLSMError)
    job = request.app.state.jobs.start(check_project(project), settings, who=request.state.user)
    return job.status()


def _job(request: Request, job_id: str):
    job = request.app.state.jobs.get(job_id)
    if job is None:
        raise NotFound(f"no job {job_id} on this server")
    return job


@router.get("/v1/jobs/{job_id}")
def job_status(request: Request, job_id: str):
    job = _job(request, job_id)
    return job.status() if isinstance(job, Job) else job


@router.post("/v1/jobs/{job_id}/cancel", status_code=202)
def cancel_job(request: Request, job_id: str):
    job = _job(request, job_id)
    if isinstance(job, Job):
        if job.state not in FINISHED and not job.cancel.is_set():
            request.app.state.host.audit.record(request.state.user, "finetune.cancel_requested", job.project,
                                                job=job.id)
        job.cancel.set()
        return job.status()
    return job  # a record from before a restart: already over


@router.get("/v1/jobs/{job_id}/events", summary="NDJSON: every progress event from the start, then live")
async def job_events(request: Request, job_id: str, cancel_on_disconnect: bool = False):
    job = _job(request, job_id)
    if not isinstance(job, Job):  # a job of a previous server run: its end only
        return StreamingResponse(iter([json.dumps({"type": "end", **job}) + "\n"]), media_type="application/x-ndjson")

    async def lines():
        sent = 0
        try:
            while True:
                while sent < len(job.events):
                    yield json.dumps(job.events[sent]) + "\n"
                    sent += 1
                if job.state in FINISHED and sent >= len(job.events):
                    return
                await asyncio.sleep(0.1)  # cancellable: a client that leaves ends this loop at once
        finally:  # also reached when the client disconnects (the response task is cancelled)
            if cancel_on_disconnect and job.state not in FINISHED:
                request.app.state.host.audit.record(request.state.user, "finetune.cancel_requested", job.project,
                                                    job=job.id, why="the client left the progress stream")
                job.cancel.set()

    return StreamingResponse(lines(), media_type="application/x-ndjson")


@router.get("/v1/projects/{project}/adapters")
def list_adapters(request: Request, project: str):
    owner = request.app.state.host.project(check_project(project))
    return {"adapters": owner.adapters(), "latest": owner.latest_adapter()}


@router.get("/v1/projects/{project}/adapters/{name}")
def download_adapter(request: Request, project: str, name: str):
    host = request.app.state.host
    path = host.adapter_path(check_project(project), name)
    host.audit.record(request.state.user, "adapter.downloaded", project, adapter=name, bytes=path.stat().st_size)
    return FileResponse(path, media_type="application/octet-stream", filename=name)
