"""An array body (zstd ``.npy``), decoded as it streams in: its header is checked before the array is
allocated, and the array is never larger than its header declares (client/wire.py ArrayDecoder).
The body's byte cap, read timeout and upload slots are the guard's (guard.py), before this runs."""

from __future__ import annotations

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from ..client.wire import ArrayDecoder


async def read_array(request: Request):
    cfg = request.app.state.config
    decoder = ArrayDecoder(cfg.max_array_bytes, 4, cfg.max_side)
    async for chunk in request.stream():
        if chunk:
            await run_in_threadpool(decoder.feed, chunk)
    return await run_in_threadpool(decoder.finish)
