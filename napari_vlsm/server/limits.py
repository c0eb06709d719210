"""What keeps one server usable by many laptops: an upload cap, a session cap with idle reaping,
and a cap on requests queued for the model.

``BodyLimit`` is a plain ASGI middleware: a declared ``Content-Length`` over the cap is refused
(413) before one byte is read, and a chunked body is counted while it streams in.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

RETRY_AFTER_S = 2


class BodyTooLarge(Exception):
    def __init__(self, limit: int):
        super().__init__(f"the request body is over the server's limit of {limit / 2**20:.0f} MiB; "
                         "send a smaller image, fewer slices at a time, or start the server with a larger "
                         "--max-upload-mb")


class Busy(Exception):
    """Too many sessions or queued requests: answered 503 with Retry-After."""


class BodyLimit:
    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            body = json.dumps({"detail": str(BodyTooLarge(self.max_bytes))}).encode()
            await send({"type": "http.response.start", "status": 413,
                        "headers": [(b"content-type", b"application/json"), (b"connection", b"close"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return None
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        return await self.app(scope, counted, send)


@dataclass
class UploadSession:
    """An image or volume uploaded once and segmented many times (slice by slice, prompt by prompt)."""

    id: str
    array: object
    window: tuple | None
    rgb: bool
    last_used: float = field(default_factory=time.monotonic)


class Sessions:
    def __init__(self, max_sessions: int, idle_s: float):
        self.max_sessions, self.idle_s = max_sessions, idle_s
        self._items: dict[str, UploadSession] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def create(self, array, window, rgb) -> UploadSession:
        self.reap()
        with self._lock:
            if len(self._items) >= self.max_sessions:
                raise Busy(f"the server holds {self.max_sessions} sessions, its limit; close one "
                           f"(DELETE /v1/sessions/ID) or retry in a moment (idle ones close after {self.idle_s:.0f} s)")
            session = UploadSession(secrets.token_hex(8), array, window, rgb)
            self._items[session.id] = session
            return session

    def get(self, session_id: str) -> UploadSession | None:
        with self._lock:
            session = self._items.get(session_id)
            if session is not None:
                session.last_used = time.monotonic()
            return session

    def remove(self, session_id: str) -> bool:
        with self._lock:
            return self._items.pop(session_id, None) is not None

    def reap(self) -> int:
        """Close sessions idle longer than ``idle_s``; returns how many were closed."""
        now = time.monotonic()
        with self._lock:
            stale = [k for k, s in self._items.items() if now - s.last_used > self.idle_s]
            for key in stale:
                del self._items[key]
        return len(stale)


class ModelLock:
    """One lock serialises every model call on the device (predict batches, finetune steps);
    requests beyond ``max_waiting`` in the queue get 503 instead of piling up."""

    def __init__(self, max_waiting: int):
        self.lock = threading.Lock()
        self.max_waiting = max_waiting
        self._waiting = 0
        self._count = threading.Lock()

    @contextmanager
    def queued(self):
        """Admission for one request (held for the request's duration, outside the model lock)."""
        with self._count:
            if self._waiting >= self.max_waiting:
                raise Busy(f"{self._waiting} requests are already waiting for the model; retry in a moment")
            self._waiting += 1
        try:
            yield
        finally:
            with self._count:
                self._waiting -= 1

    @property
    def waiting(self) -> int:
        return self._waiting
