"""One worklist item's endpoints: hold it (a row double-clicked, the item a restart resumes on),
give it back, its pixels with the scan's grid, and its saved mask (read back, or saved from the
client's label map onto the item's own grid).

A saved mask is the dock's: ``<project>/masks/<id>_<name>`` + its JSON legend
(``core/worklist/saved_masks.py``), NIfTI on the scan's grid for a volume: the file ``napari-vlsm
worklist export`` copies for a done item. The server reads the item itself for the grid and the
statistics: a client's label map is checked against the item's shape, never trusted for a grid.
"""

from __future__ import annotations

import json

from fastapi import APIRouter, HTTPException, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from ..client.wire import MEDIA_TYPE, encode_array
from ..core.errors import VLSMError, WorklistError
from .item_masks import check_labels, check_structures, legend_header
from .uploads import read_array
from .worklists import (
    Holder,
    ItemId,
    check_holder,
    check_lease,
    get_item,
    holder_of,
    open_worklist,
    public,
    read_public,
    redact,
)

router = APIRouter()
ITEM = "/v1/projects/{project}/items/{item_id}"


class HoldIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    holder: Holder
    lease_s: float = Field(900.0, gt=0, le=24 * 3600)


class ReleaseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    holder: Holder


@router.post(f"{ITEM}/hold")
def hold(request: Request, project: str, item_id: ItemId, body: HoldIn):
    """Lease this item to the holder (its other lease ends); 409 naming who while another has it,
    422 with the reason when its file is missing or unreadable (nothing to correct)."""
    holder = holder_of(request, body.holder)
    with open_worklist(request, project) as worklist:
        item = get_item(worklist, item_id)
        if not item.path.exists() or item.status == "missing":
            worklist.refresh_missing()  # gone since it was listed (missing, with its reason), or back
            item = worklist.get(item_id)
        if item.status in ("missing", "unreadable"):
            raise WorklistError(redact(f"item {item_id} ({item.name}) is {item.status}: {item.reason}; "
                                       "fix the file on the server, or pick another item", item, worklist.root))
        check_holder(worklist, item_id, holder)
        worklist.hold(item_id, holder, body.lease_s)
        item = worklist.mark_opened(item_id)
        request.app.state.host.audit.record(request.state.user, "worklist.held", project, item=item_id,
                                            lease_s=body.lease_s)
        return public(item, worklist.root)


@router.post(f"{ITEM}/release", status_code=204)
def release(request: Request, project: str, item_id: ItemId, body: ReleaseIn):
    """Give the item back: another annotator's Next may hand it out again (the dock keeps its lease
    when it closes, so napari reopened lands on the item; the lease ends by itself)."""
    with open_worklist(request, project) as worklist:
        get_item(worklist, item_id)
        holder = holder_of(request, body.holder)
        if worklist.holder(item_id) == holder:
            worklist.release(item_id, holder)
            request.app.state.host.audit.record(request.state.user, "worklist.released", project, item=item_id)
    return Response(status_code=204)


def _volume(data) -> dict | None:
    """A scan's grid for the client: null for a 2D image or a TIFF stack. Never a server path (no
    "source", no "series_files"). Geometry.to_dict has fixed fields (the NIfTI header is 348 bytes),
    so the X-VLSM-Item header stays near 1-2 KiB for any scan (1.0 KiB for every file of
    ../shared/data/geometry): the original header is kept."""
    if not hasattr(data, "geometry"):
        return None
    return {"geometry": data.geometry.to_dict(), "modality": data.modality, "format": data.kind}


@router.get(f"{ITEM}/image")
def item_image(request: Request, project: str, item_id: ItemId):
    """The item's pixels (a volume in canonical (z, y, x)), as the predict endpoints take them."""
    import numpy as np

    with open_worklist(request, project) as worklist:
        item = get_item(worklist, item_id)
        root = worklist.root
    try:
        data = read_public(item, root)
        array = np.asarray(getattr(data, "array", data))
    except (VLSMError, OSError, ValueError) as err:  # a lazily read stack fails when its pixels are read
        _unopenable(request, project, item, redact(str(err), item, root))
    cfg = request.app.state.config
    if array.nbytes > cfg.max_array_bytes:
        raise HTTPException(413, f"item {item_id} is {array.nbytes} bytes, over this server's limit")
    header = {**public(item, root), "volume": _volume(data)}
    return Response(encode_array(array), media_type=MEDIA_TYPE, headers={"X-VLSM-Item": json.dumps(header)})


def _unopenable(request: Request, project: str, item, why: str):
    """An item whose pixels cannot be read, as the local dock does: its file gone -> ``missing``, a
    reader's failure -> ``unreadable`` with the (redacted) reason, so Next passes over it; then the
    422 naming why. No lease is touched."""
    with open_worklist(request, project) as worklist:
        if not item.path.exists():
            worklist.refresh_missing()
        else:
            worklist.mark_unreadable(item.id, why)
        status = worklist.get(item.id).status
    raise WorklistError(f"item {item.id} ({item.name}) cannot be read and is now {status}: {why}")


@router.get(f"{ITEM}/mask")
def item_mask(request: Request, project: str, item_id: ItemId):
    """The item's saved label map (same layout as its image) + ``X-VLSM-Legend``; 404 when none."""
    from ..core.worklist.saved_masks import mask_files, read_saved_legend

    with open_worklist(request, project) as worklist:
        item = get_item(worklist, item_id)
        files = mask_files(item, worklist.root)
    found = read_saved_legend(*files)
    if found is None:
        raise HTTPException(404, f"no saved mask for item {item_id}")
    labels, structures = found
    return Response(encode_array(labels), media_type=MEDIA_TYPE,
                    headers={"X-VLSM-Legend": legend_header(structures)})


@router.put(f"{ITEM}/mask")
async def save_mask(request: Request, project: str, item_id: ItemId,
                    holder: str = Query(min_length=1, max_length=128)):
    """Save the client's label map (body: zstd .npy; ``X-VLSM-Structures``: its legend) as the item's
    mask, on the item's own grid; -> the file's name and the item."""
    host, mine = request.app.state.host, holder_of(request, holder)
    structures = await run_in_threadpool(check_structures, host, request.headers.get("x-vlsm-structures"))
    content_type = request.headers.get("content-type", "").split(";")[0].strip()
    if content_type != MEDIA_TYPE:
        raise HTTPException(415, f"send the label map as {MEDIA_TYPE} (zstd .npy), not {content_type or 'nothing'}")

    def may_write():
        with open_worklist(request, project) as worklist:
            check_lease(worklist, get_item(worklist, item_id).id, mine)  # a live lease of its own: see check_lease

    await run_in_threadpool(may_write)  # before the upload: a refused save costs no transfer
    labels = await read_array(request)
    return await run_in_threadpool(_save, request, project, item_id, mine, labels, structures)


def _save(request: Request, project: str, item_id: int, holder: str, labels, structures) -> dict:
    from ..core.worklist.reading import label_shape
    from ..core.worklist.saved_masks import write_saved

    with open_worklist(request, project) as worklist:
        item = get_item(worklist, item_id)
        data = read_public(item, worklist.root)
        shape = label_shape(item, data)
        labels = check_labels(labels, shape, structures, item_id)
        check_lease(worklist, item_id, holder)  # again: a lease may have ended or changed hands during the upload
        pixels = getattr(data, "array", data)
        target = write_saved(item, worklist.root, labels, structures, geometry=getattr(data, "geometry", None),
                             image=pixels,  # statistics inside each structure (2D RGB: none; write_saved says)
                             info={"layer": item.name, "image": item.name})
        request.app.state.host.audit.record(request.state.user, "worklist.mask_saved", project, item=item_id,
                                            structures=structures, shape=list(labels.shape))
        return {"mask": target.name, "item": public(worklist.get(item_id), worklist.root)}
