"""Predict endpoints: stateless ``POST /v1/predict`` and sessions (an image or volume uploaded once,
then segmented slice by slice and prompt by prompt, as the dock does)."""

from __future__ import annotations

import json
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from ..client.wire import MEDIA_TYPE, encode_array
from ..core import torch_threads
from ..core.errors import VLSMError
from ..core.validation import MAX_BATCH_SIZE, check_batch_size, check_threshold, check_window
from .host import NotFound
from .predicting import predict_array, window_for
from .uploads import read_array

router = APIRouter()
Output = Literal["mask", "probability"]
Prompts = Annotated[list[str], Query(description="repeat for several structures (one image pass)")]
Batch = Annotated[int, Query(ge=1, le=MAX_BATCH_SIZE)]


def _window(lo: float | None, hi: float | None):
    return None if lo is None and hi is None else check_window((lo, hi), error=VLSMError)


async def _predict(request, array, prompt, threshold, output, project, adapter, rgb, window, batch_size, index=None):
    host = request.app.state.host
    prompts = await run_in_threadpool(host.check_prompts, prompt)
    threshold = check_threshold(threshold, error=VLSMError)
    batch_size = check_batch_size(batch_size, error=VLSMError)
    # Model work on a thread that ends with it (core/torch_threads.py): starlette's pool threads
    # live on, and each would keep its own OpenMP team, which makes every later request slower.
    engine = await run_in_threadpool(torch_threads.call, host.engine, project, adapter)
    result = await run_in_threadpool(torch_threads.call, predict_array, host.model_lock.lock, engine, array, prompts,
                                     threshold, output, rgb, window, batch_size, index)
    data = await run_in_threadpool(encode_array, result)
    provenance = {**host.public_provenance(engine), "threshold": threshold, "prompts": list(prompts)}
    return Response(data, media_type=MEDIA_TYPE, headers={"X-VLSM-Provenance": json.dumps(provenance)})


@router.post("/v1/predict", summary="segment one 2D image or volume (body: zstd .npy)")
async def predict(request: Request, prompt: Prompts, threshold: float = 0.5, output: Output = "mask",
                  project: str | None = None, adapter: str | None = None, rgb: bool | None = None,
                  batch_size: Batch = 8, window_lo: float | None = None,
                  window_hi: float | None = None):
    window = _window(window_lo, window_hi)
    array = await read_array(request)  # before the model queue: a slow upload holds no place in it
    with request.app.state.host.model_lock.queued():
        return await _predict(request, array, prompt, threshold, output, project, adapter, rgb, window, batch_size)


@router.post("/v1/sessions", status_code=201, summary="upload an image or volume to segment many times")
async def open_session(request: Request, rgb: bool | None = None):
    array = await read_array(request)
    window = await run_in_threadpool(window_for, array, rgb)
    session = request.app.state.sessions.create(array, window, rgb)
    return {"id": session.id, "shape": list(array.shape), "window": window,
            "idle_timeout_s": request.app.state.sessions.idle_s}


@router.post("/v1/sessions/{session_id}/predict", summary="segment a session's image, or one slice of it")
async def session_predict(request: Request, session_id: str, prompt: Prompts,
                          threshold: float = 0.5, output: Output = "mask", project: str | None = None,
                          adapter: str | None = None, index: int | None = None,
                          batch_size: Batch = 8):
    session = request.app.state.sessions.get(session_id)
    if session is None:
        raise NotFound(f"no session {session_id}: it was closed or reaped after being idle; open a new one")
    with request.app.state.host.model_lock.queued():
        return await _predict(request, session.array, prompt, threshold, output, project, adapter, session.rgb,
                              session.window, batch_size, index)


@router.delete("/v1/sessions/{session_id}", status_code=204)
async def close_session(request: Request, session_id: str):
    if not request.app.state.sessions.remove(session_id):
        raise NotFound(f"no session {session_id}")
    return Response(status_code=204)
