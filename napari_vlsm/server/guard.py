"""The server's door: a raw ASGI middleware that runs before routing and before any body is read.

In this order, for every request but ``GET /health``:
1. the bearer token is looked up (:class:`~.tokens.TokenBook`); unknown -> 401 at once, whatever the
   body's size: not one byte of it is read (uvicorn buffers at most its 64 KiB flow-control window,
   then closes the connection);
2. a declared ``Content-Length`` over ``--max-upload-mb`` -> 413, again before reading;
3. a request with a body takes one of its token's upload slots (``--max-uploads-per-token``) ->
   503 + Retry-After when all are taken. The slots are separate from the model queue, so stalled
   uploads never make another client's predict wait or fail;
4. while the body streams in, bytes are counted (a chunked body over the cap -> 413) and each read
   waits at most ``--read-timeout`` seconds (a stalled upload -> 408, and its slot is freed).
When the guard answers mid-body, the route sees a disconnect and its own answer is dropped.
A client that hangs up mid-upload is one INFO line.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading

log = logging.getLogger("napari_vlsm.server")
PUBLIC = frozenset(["/health"])
UNAUTHORIZED = ("missing or wrong token; send 'Authorization: Bearer <token>' with a token of this server "
                "(napari-vlsm serve token add NAME, or its token file)")


def bearer(headers) -> str:
    for key, value in headers:
        if key == b"authorization":
            scheme, _, credentials = value.decode("latin-1").partition(" ")
            return credentials.strip() if scheme.lower() == "bearer" else ""
    return ""


async def answer(send, status: int, detail: str, headers=()) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"connection", b"close"),
                            (b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})


def too_large(limit: int) -> str:
    return (f"the request body is over the server's limit of {limit / 2**20:.0f} MiB; send a smaller image, "
            "fewer slices at a time, or start the server with a larger --max-upload-mb")


class UploadSlots:
    """In-flight uploads per token name (a body being received), at most ``per_token`` each."""

    def __init__(self, per_token: int):
        self.per_token = per_token
        self._count: dict[str, int] = {}
        self._lock = threading.Lock()

    def take(self, who: str) -> bool:
        with self._lock:
            if self._count.get(who, 0) >= self.per_token:
                return False
            self._count[who] = self._count.get(who, 0) + 1
            return True

    def give(self, who: str) -> None:
        with self._lock:
            self._count[who] -= 1
            if not self._count[who]:
                del self._count[who]

    def in_flight(self) -> int:
        with self._lock:
            return sum(self._count.values())


class Guard:
    def __init__(self, app, *, book, max_body: int, read_timeout_s: float, slots: UploadSlots,
                 retry_after_s: int = 2):
        self.app, self.book, self.max_body = app, book, max_body
        self.read_timeout_s, self.slots, self.retry_after_s = read_timeout_s, slots, retry_after_s

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] in PUBLIC:
            return await self.app(scope, receive, send)
        headers = scope.get("headers") or ()
        who = self.book.who(bearer(headers))
        if who is None:
            return await answer(send, 401, UNAUTHORIZED, [(b"www-authenticate", b"Bearer")])
        scope.setdefault("state", {})["user"] = who
        declared = chunked = None
        for key, value in headers:
            if key == b"content-length":
                declared = int(value) if value.isdigit() else None  # h11 refuses a malformed one
            elif key == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
        if declared is not None and declared > self.max_body:
            return await answer(send, 413, too_large(self.max_body))
        if not (declared or chunked):
            return await self.app(scope, receive, send)
        if not self.slots.take(who):
            return await answer(send, 503, f"{self.slots.per_token} uploads of token {who!r} are already in "
                                "flight; retry in a moment", [(b"retry-after", str(self.retry_after_s).encode())])
        return await self._with_slot(scope, receive, send, who)

    async def _with_slot(self, scope, receive, send, who):
        state = {"received": 0, "complete": False, "answered": False, "started": False, "slot": True}

        def free_slot():
            if state["slot"]:
                state["slot"] = False
                self.slots.give(who)

        async def guard_answer(status, detail, why):
            free_slot()
            if not state["started"]:
                state["answered"] = True
                await answer(send, status, detail)
            log.info("%s %s from %r: %s after %d bytes", scope["method"], scope["path"], who, why, state["received"])
            return {"type": "http.disconnect"}

        async def guarded_receive():
            if state["answered"]:
                return {"type": "http.disconnect"}
            if state["complete"]:  # the body is in: what is left is waiting for a disconnect
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.read_timeout_s)
            except TimeoutError:
                return await guard_answer(408, f"no upload data for {self.read_timeout_s:g} s; the upload was "
                                          "cut (--read-timeout)", "upload stalled, cut")
            if message["type"] == "http.disconnect":
                free_slot()
                log.info("%s %s from %r: the client hung up mid-upload after %d bytes", scope["method"],
                         scope["path"], who, state["received"])
                state["complete"] = True
                return message
            state["received"] += len(message.get("body", b""))
            if state["received"] > self.max_body:
                return await guard_answer(413, too_large(self.max_body), "body over the limit")
            if not message.get("more_body", False):
                state["complete"] = True
                free_slot()
            return message

        async def guarded_send(message):
            if state["answered"]:
                return  # the guard answered already; the route's own answer is dropped
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        try:
            await self.app(scope, guarded_receive, guarded_send)
        finally:
            free_slot()
