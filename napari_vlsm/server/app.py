"""The FastAPI application: routes, the guard, limits, error mapping, the idle-session reaper.

``create_app(config, host)`` builds it around an already loaded :class:`ModelHost`, so tests can
serve a tiny model and ``napari-vlsm serve`` the real one. The token and the body limits are
checked by ``guard.Guard``, a raw ASGI middleware, before routing and before any body is read.
User errors become one-line JSON ``{"detail": "..."}`` answers (401, 404, 408, 409, 413, 422, 503);
a bug is a 500 and the server goes on. Messages never show the server's absolute paths.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.requests import ClientDisconnect

from .. import __version__
from ..client.wire import WireError
from ..core.errors import StoreError, VLSMError
from .guard import Guard, UploadSlots
from .host import ModelHost, NotFound
from .jobs import JobConflict, Jobs
from .limits import RETRY_AFTER_S, Busy, Sessions
from .tokens import TokenBook


@dataclass(frozen=True)
class ServerConfig:
    token: str | None  # the --token-file token (named "owner"); None: named tokens only
    tokens_file: Path | None = None  # named tokens (napari-vlsm serve token add NAME)
    read_timeout_s: float = 30.0  # longest wait for the next piece of an upload before 408
    max_uploads_per_token: int = 8  # bodies in flight per token (separate from the model queue)
    max_upload_bytes: int = 512 * 2**20  # what arrives on the wire (compressed)
    max_array_bytes: int = 2 * 2**30  # one decoded array
    max_side: int = 16384  # any axis of an array
    max_sessions: int = 8
    session_idle_s: float = 600.0
    max_waiting: int = 16  # requests queued for the model before 503


def _finite(value):
    """A validation error's values as JSON can carry them: a body with ``Infinity`` or ``NaN`` (Python's
    JSON reads both) is a 422 naming the field, not a 500 while writing the answer."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _invalid(request, err: RequestValidationError) -> JSONResponse:
    return JSONResponse({"detail": _finite(jsonable_encoder(err.errors()))}, status_code=422)


def _json(status: int, message: str, headers=None) -> JSONResponse:
    return JSONResponse({"detail": " ".join(str(message).split())}, status_code=status, headers=headers)


def _add_error_handlers(app: FastAPI, host: ModelHost) -> None:
    def quiet_disconnect(request, err):  # the guard logged it (one INFO line); nobody reads this answer
        return Response(status_code=400)

    app.add_exception_handler(ClientDisconnect, quiet_disconnect)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(WireError, lambda r, e: _json(e.status, str(e)))
    app.add_exception_handler(Busy, lambda r, e: _json(503, str(e), {"Retry-After": str(RETRY_AFTER_S)}))
    app.add_exception_handler(NotFound, lambda r, e: _json(404, str(e)))
    app.add_exception_handler(JobConflict, lambda r, e: _json(409, str(e)))
    app.add_exception_handler(StoreError, lambda r, e: _json(500, host.redact(f"the server's store failed: {e}")))
    app.add_exception_handler(VLSMError, lambda r, e: _json(422, host.redact(str(e))))


def create_app(config: ServerConfig, host: ModelHost) -> FastAPI:
    from .routes_predict import router as predict_router
    from .routes_projects import router as project_router
    from .routes_worklist import router as worklist_router
    from .routes_worklist_items import router as worklist_items_router

    sessions = Sessions(config.max_sessions, config.session_idle_s)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        async def reaper():
            while True:
                await asyncio.sleep(max(0.5, min(30.0, config.session_idle_s / 4)))
                sessions.reap()

        task = asyncio.create_task(reaper())
        try:
            yield
        finally:
            task.cancel()
            for job in app.state.jobs.running():  # stop training at the next step; the thread is a daemon
                job.cancel.set()

    app = FastAPI(title="napari-vlsm server", version=__version__, lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url=None)  # no unauthenticated API browser
    app.state.config, app.state.host = config, host
    app.state.book = TokenBook(config.tokens_file, config.token)
    app.state.slots = UploadSlots(config.max_uploads_per_token)
    app.state.sessions, app.state.jobs = sessions, Jobs(host)
    _add_error_handlers(app, host)
    logging.getLogger("napari_vlsm.server").setLevel(logging.INFO)

    @app.get("/health")
    def health():
        return {"status": "ok", "version": __version__}

    @app.get("/v1/info")
    def info(request: Request):
        engine_info = host.public_info()
        return {**engine_info, "user": request.state.user, "sessions": len(sessions), "max_sessions": config.max_sessions,
                "jobs_running": [j.id for j in app.state.jobs.running()], "waiting": host.model_lock.waiting,
                "limits": {"max_upload_bytes": config.max_upload_bytes, "max_array_bytes": config.max_array_bytes,
                           "max_side": config.max_side, "session_idle_s": config.session_idle_s,
                           "read_timeout_s": config.read_timeout_s,
                           "max_uploads_per_token": config.max_uploads_per_token}}

    app.include_router(predict_router)
    app.include_router(project_router)
    app.include_router(worklist_router)
    app.include_router(worklist_items_router)
    app.add_middleware(Guard, book=app.state.book, max_body=config.max_upload_bytes,
                       read_timeout_s=config.read_timeout_s, slots=app.state.slots, retry_after_s=RETRY_AFTER_S)
    return app
