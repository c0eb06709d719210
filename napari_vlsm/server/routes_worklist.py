"""Worklist endpoints: several annotators working through one project's series.

``POST /v1/projects/{p}/next`` hands out the most uncertain open item nobody else holds, under a
lease that expires (as MONAI Label's "next sample"), and records the status of the item the
annotator leaves; ``POST .../next/plan`` says which items the following Next calls would hand out
(the dock reads them ahead) without leasing any. Items are files on the server's side, added there
with ``napari-vlsm worklist add --project <project-root>/<p> INPUTS...`` (a client never names
server paths). The worklist is the project's ``worklist.sqlite``: the same one the dock and the CLI
use. One item's routes (hold, release, pixels, saved mask) are in ``routes_worklist_items.py``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from ..core import torch_threads
from ..core.engine import check_threshold
from .worklists import Holder, ItemId, check_lease, get_item, holder_of, open_worklist, public, redacting

router = APIRouter()
Order = Literal["in-order", "random", "most-uncertain"]
Status = Literal["unseen", "in-progress", "done", "skipped"]
Seed = Annotated[int | None, Field(ge=-(2**63), lt=2**63, description="the random order's seed (as the plan's)")]


class NextIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    holder: Holder
    lease_s: float = Field(900.0, gt=0, le=24 * 3600)
    order: Order = "most-uncertain"
    previous_id: int | None = Field(None, ge=1, lt=2**63, description="the item the annotator leaves")
    previous_status: Status | None = Field(None, description="its new status, e.g. done or skipped")
    seed: Seed = None


class PlanIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    holder: Holder
    order: Order = "most-uncertain"
    count: int = Field(2, ge=1, le=8)
    seed: Seed = None


class StatusIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    holder: Holder
    status: Status


class RankIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prompts: list[str] = Field(min_length=1, max_length=32)
    threshold: float = 0.5
    adapter: str | None = Field(None, description="an adapter name of this project, or 'latest'")


def _listing(worklist, items=None) -> dict:
    return {"items": [public(i, worklist.root) for i in (items if items is not None else worklist.items())],
            "counts": worklist.counts()}


@router.get("/v1/projects/{project}/worklist")
def worklist_status(request: Request, project: str, holder: str | None = Query(None, min_length=1, max_length=128)):
    """The items and counts; with ``holder``, also ``held``: the items that holder's live leases
    cover (the dock resumes on the first after a restart)."""
    with open_worklist(request, project) as worklist:
        worklist.refresh_missing()
        listing = _listing(worklist)
        if holder is not None:
            mine = holder_of(request, holder)
            listing["held"] = [i for i, h in worklist.leases().items() if h == mine]
        return listing


@router.post("/v1/projects/{project}/next")
def next_item(request: Request, project: str, body: NextIn):
    audit, holder = request.app.state.host.audit, holder_of(request, body.holder)
    with open_worklist(request, project) as worklist:
        if body.previous_id is not None and body.previous_status is not None:
            left = get_item(worklist, body.previous_id)
            check_lease(worklist, left.id, holder)  # an ended lease: a colleague may have done it meanwhile
            with redacting(left, worklist.root):
                worklist.set_status(left.id, body.previous_status)
            audit.record(request.state.user, "worklist.status", project, item=body.previous_id,
                         status=body.previous_status)
        item = worklist.lease(holder, body.lease_s, order=body.order, seed=body.seed)
        if item is not None:
            audit.record(request.state.user, "worklist.leased", project, item=item.id, lease_s=body.lease_s)
        return {"item": None if item is None else public(item, worklist.root),
                "lease_s": body.lease_s if item is not None else None, "counts": worklist.counts()}


@router.post("/v1/projects/{project}/next/plan")
def plan(request: Request, project: str, body: PlanIn):
    """What this holder's following Next calls would hand out, in order, leasing nothing (items held
    by anyone are passed over); exact when each item is left done or skipped."""
    with open_worklist(request, project) as worklist:
        items = worklist.plan(holder_of(request, body.holder), body.order, body.count, body.seed)
        return {"items": [public(i, worklist.root) for i in items]}


@router.post("/v1/projects/{project}/items/{item_id}/status")
def set_status(request: Request, project: str, item_id: ItemId, body: StatusIn):
    holder = holder_of(request, body.holder)
    with open_worklist(request, project) as worklist:
        item = get_item(worklist, item_id)
        check_lease(worklist, item_id, holder)
        with redacting(item, worklist.root):
            item = worklist.set_status(item_id, body.status)
        # unseen: open again, for anyone's Next. done/skipped keep the lease: the window still shows
        # the item and saves its mask when it leaves it (a write needs a live lease); its Next or
        # hold moves the lease on, release or the lease's end frees it.
        if body.status == "unseen":
            worklist.release(item_id, holder)
        request.app.state.host.audit.record(request.state.user, "worklist.status", project, item=item_id,
                                            status=body.status)
        return public(item, worklist.root)


@router.post("/v1/projects/{project}/worklist/rank")
def rank(request: Request, project: str, body: RankIn):
    """Score the open items (cached per model, adapter and phrasings); most uncertain first."""
    from ..core.worklist.scoring import rank as rank_items

    host = request.app.state.host
    prompts, threshold = host.check_prompts(body.prompts), check_threshold(body.threshold)
    with open_worklist(request, project) as worklist, host.model_lock.queued():
        engine = torch_threads.call(host.engine, project, body.adapter)

        def scored():
            with host.model_lock.lock:
                return rank_items(worklist, engine, prompts, threshold)

        return _listing(worklist, torch_threads.call(scored))
