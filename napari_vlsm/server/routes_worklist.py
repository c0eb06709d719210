"""Worklist endpoints: several annotators working through one project's series.

``POST /v1/projects/{p}/next`` hands out the most uncertain open item nobody else holds, under a
lease that expires (as MONAI Label's "next sample"), and records the status of the item the
annotator leaves. Items are files on the server's side, added there with
``napari-vlsm worklist add --project <project-root>/<p> INPUTS...`` (a client never names server
paths). The worklist is the project's ``worklist.sqlite``: the same one the dock and the CLI use.
"""

from __future__ import annotations

import json
from typing import Literal

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from ..client.wire import MEDIA_TYPE, encode_array
from ..core import torch_threads
from ..core.engine import check_threshold, clean_prompts
from .host import NotFound, check_project

router = APIRouter()
Order = Literal["in-order", "random", "most-uncertain"]
Status = Literal["unseen", "in-progress", "done", "skipped"]


class NextIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    holder: str = Field(min_length=1, max_length=128, description="the annotator's name")
    lease_s: float = Field(900.0, gt=0, le=24 * 3600)
    order: Order = "most-uncertain"
    previous_id: int | None = Field(None, description="the item the annotator leaves")
    previous_status: Status | None = Field(None, description="its new status, e.g. done or skipped")


class StatusIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    holder: str = Field(min_length=1, max_length=128)
    status: Status


class RankIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prompts: list[str] = Field(min_length=1, max_length=32)
    threshold: float = 0.5
    adapter: str | None = Field(None, description="an adapter name of this project, or 'latest'")


def _worklist(request: Request, project: str):
    from ..core.worklist import Worklist
    from ..core.worklist.database import DB_NAME

    folder = request.app.state.host.project_dir(check_project(project))
    if not (folder / DB_NAME).is_file():
        raise NotFound(f"project {project} has no worklist; on the server, run "
                       f"napari-vlsm worklist add --project {folder} INPUTS...")
    return Worklist(folder)


def _listing(worklist, items=None) -> dict:
    return {"items": [i.as_json() for i in (items if items is not None else worklist.items())],
            "counts": worklist.counts()}


def _check_holder(worklist, item_id: int, holder: str) -> None:
    other = worklist.holder(item_id)
    if other and other != holder:
        raise HTTPException(409, f"item {item_id} is held by {other}; ask for the next item instead")


@router.get("/v1/projects/{project}/worklist")
def worklist_status(request: Request, project: str):
    with _worklist(request, project) as worklist:
        worklist.refresh_missing()
        return _listing(worklist)


@router.post("/v1/projects/{project}/next")
def next_item(request: Request, project: str, body: NextIn):
    with _worklist(request, project) as worklist:
        if body.previous_id is not None and body.previous_status is not None:
            _check_holder(worklist, body.previous_id, body.holder)
            worklist.set_status(body.previous_id, body.previous_status)
        item = worklist.lease(body.holder, body.lease_s, order=body.order)
        return {"item": None if item is None else item.as_json(),
                "lease_s": body.lease_s if item is not None else None, "counts": worklist.counts()}


@router.post("/v1/projects/{project}/items/{item_id}/status")
def set_status(request: Request, project: str, item_id: int, body: StatusIn):
    with _worklist(request, project) as worklist:
        _check_holder(worklist, item_id, body.holder)
        item = worklist.set_status(item_id, body.status)
        if body.status in ("done", "skipped", "unseen"):
            worklist.release(item_id, body.holder)
        return item.as_json()


@router.get("/v1/projects/{project}/items/{item_id}/image")
def item_image(request: Request, project: str, item_id: int):
    """The item's pixels (a volume in canonical (z, y, x)), as the predict endpoints take them."""
    import numpy as np

    from ..core.worklist import read_item

    with _worklist(request, project) as worklist:
        item = worklist.get(item_id)
    data = read_item(item)
    array = np.asarray(getattr(data, "array", data))
    cfg = request.app.state.config
    if array.nbytes > cfg.max_array_bytes:
        raise HTTPException(413, f"item {item_id} is {array.nbytes} bytes, over this server's limit")
    return Response(encode_array(array), media_type=MEDIA_TYPE,
                    headers={"X-VLSM-Item": json.dumps(item.as_json())})


@router.post("/v1/projects/{project}/worklist/rank")
def rank(request: Request, project: str, body: RankIn):
    """Score the open items (cached per model, adapter and phrasings); most uncertain first."""
    from ..core.worklist.scoring import rank as rank_items

    host = request.app.state.host
    prompts, threshold = clean_prompts(body.prompts), check_threshold(body.threshold)
    with _worklist(request, project) as worklist, host.model_lock.queued():
        engine = torch_threads.call(host.engine, project, body.adapter)

        def scored():
            with host.model_lock.lock:
                return rank_items(worklist, engine, prompts, threshold)

        return _listing(worklist, torch_threads.call(scored))
