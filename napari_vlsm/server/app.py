"""The FastAPI application: routes, auth, limits, error mapping, the idle-session reaper.

``create_app(config, host)`` builds it around an already loaded :class:`ModelHost`, so tests can
serve a tiny model and ``napari-vlsm serve`` the real one. User errors become one-line JSON
``{"detail": "..."}`` answers (401, 404, 409, 413, 422, 503); a bug is a 500 and the server goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from .. import __version__
from ..client.wire import WireError
from ..core.errors import StoreError, VLSMError
from .auth import require_token
from .host import ModelHost, NotFound
from .jobs import JobConflict, Jobs
from .limits import RETRY_AFTER_S, BodyLimit, BodyTooLarge, Busy, Sessions


@dataclass(frozen=True)
class ServerConfig:
    token: str
    max_upload_bytes: int = 512 * 2**20  # what arrives on the wire (compressed)
    max_array_bytes: int = 2 * 2**30  # one decoded array
    max_side: int = 16384  # any axis of an array
    max_sessions: int = 8
    session_idle_s: float = 600.0
    max_waiting: int = 16  # requests queued for the model before 503


def _json(status: int, message: str, headers=None) -> JSONResponse:
    return JSONResponse({"detail": " ".join(str(message).split())}, status_code=status, headers=headers)


def _add_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(WireError, lambda r, e: _json(e.status, str(e)))
    app.add_exception_handler(BodyTooLarge, lambda r, e: _json(413, str(e)))
    app.add_exception_handler(Busy, lambda r, e: _json(503, str(e), {"Retry-After": str(RETRY_AFTER_S)}))
    app.add_exception_handler(NotFound, lambda r, e: _json(404, str(e)))
    app.add_exception_handler(JobConflict, lambda r, e: _json(409, str(e)))
    app.add_exception_handler(StoreError, lambda r, e: _json(500, f"the server's store failed: {e}"))
    app.add_exception_handler(VLSMError, lambda r, e: _json(422, str(e)))


def create_app(config: ServerConfig, host: ModelHost) -> FastAPI:
    from .routes_predict import router as predict_router
    from .routes_projects import router as project_router
    from .routes_worklist import router as worklist_router

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
    app.state.config, app.state.token, app.state.host = config, config.token, host
    app.state.sessions, app.state.jobs = sessions, Jobs(host)
    _add_error_handlers(app)

    @app.get("/health")
    def health():
        return {"status": "ok", "version": __version__}

    @app.get("/v1/info", dependencies=[Depends(require_token)])
    def info(request: Request):
        engine_info = host.base.info()
        return {**engine_info, "sessions": len(sessions), "max_sessions": config.max_sessions,
                "jobs_running": [j.id for j in app.state.jobs.running()], "waiting": host.model_lock.waiting,
                "limits": {"max_upload_bytes": config.max_upload_bytes, "max_array_bytes": config.max_array_bytes,
                           "max_side": config.max_side, "session_idle_s": config.session_idle_s}}

    app.include_router(predict_router, dependencies=[Depends(require_token)])
    app.include_router(project_router, dependencies=[Depends(require_token)])
    app.include_router(worklist_router, dependencies=[Depends(require_token)])
    app.add_middleware(BodyLimit, max_bytes=config.max_upload_bytes)
    return app
