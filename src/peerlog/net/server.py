"""The relay server: a versioned HTTP API and a WebSocket over any `Replica`.

    GET  /v1/health                                   -> {"ok": true}
    GET  /v1/cursors                                  -> {"cursors": {uuid: next}}
    GET  /v1/origins/{peer}/entries?from=I&limit=N    -> one record (or empty body)
    POST /v1/origins/{peer}/entries?start=I           <- one record; -> {"new": n}
    GET  /v1/erased                                   -> {"erased": {uuid: [[index, hex]]}}
    WS   /v1/watch                                    -> JSON cursors events

Every request carries ``Authorization: Bearer <token>``.  Bad input gets a
4xx with ``{"error": kind, "message": …}`` and stores nothing: 400 malformed
entries or parameters, 401 no or unknown token, 403 a device writing another
origin, 409 wrong index or divergent entries, 413 an oversized body.  A
failing database is 503.  Never a 500.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from peerlog.net.tokens import Grant, TokenStore
from peerlog.net.wire import API, RECORD_TYPE, decode_batch, encode_batch, event_to_json
from peerlog.sync.errors import (
    BackendError,
    ClosedError,
    CodecError,
    CursorMismatchError,
    DivergenceError,
    SyncError,
)
from peerlog.sync.faces import HasErasures, Replica
from peerlog.sync.watch import watching

log = logging.getLogger(__name__)

MAX_BODY = 16 << 20
MAX_PAGE = 10_000


class HttpError(Exception):
    def __init__(self, status: int, kind: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.kind, self.extra = status, kind, extra


def _error_response(exc: HttpError) -> JSONResponse:
    return JSONResponse({"error": exc.kind, "message": str(exc), **exc.extra},
                        status_code=exc.status)


def _translate(exc: Exception) -> HttpError:
    """A replica's failure as the HTTP answer it means."""
    if isinstance(exc, HttpError):
        return exc
    if isinstance(exc, CursorMismatchError):
        return HttpError(409, "cursor_mismatch", str(exc), expected=exc.expected,
                         actual=exc.actual)
    if isinstance(exc, DivergenceError):
        return HttpError(409, "divergence", str(exc), index=exc.index)
    if isinstance(exc, CodecError):
        return HttpError(400, "malformed", str(exc))
    if isinstance(exc, BackendError | ClosedError):
        log.error("replica unavailable: %s", exc)
        return HttpError(503, "unavailable", "the relay's database is unavailable")
    if isinstance(exc, SyncError):
        return HttpError(400, "rejected", str(exc))
    log.exception("unexpected failure", exc_info=exc)
    return HttpError(503, "unavailable", "the relay failed to handle the request")


def _bearer(headers: Any) -> str | None:
    value = headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def create_app(replica: Replica, tokens: TokenStore, *, max_body: int = MAX_BODY) -> Starlette:
    """A Starlette app serving ``replica`` to holders of ``tokens``."""

    def authorize(request: Request) -> Grant:
        grant = tokens.check(_bearer(request.headers))
        if grant is None:
            raise HttpError(401, "unauthorized", "a valid bearer token is required")
        return grant

    def peer_of(request: Request) -> UUID:
        try:
            return UUID(request.path_params["peer"])
        except ValueError:
            raise HttpError(400, "malformed", "the origin must be a UUID") from None

    def int_param(request: Request, name: str, default: int | None = None) -> int:
        raw = request.query_params.get(name)
        if raw is None:
            if default is None:
                raise HttpError(400, "malformed", f"query parameter {name!r} is required")
            return default
        try:
            value = int(raw)
        except ValueError:
            raise HttpError(400, "malformed", f"{name} must be an integer, got {raw!r}") \
                from None
        if value < 0:
            raise HttpError(400, "malformed", f"{name} must not be negative")
        return value

    def endpoint(fn: Callable[[Request], Awaitable[Response]]
                 ) -> Callable[[Request], Awaitable[Response]]:
        async def wrapped(request: Request) -> Response:
            try:
                return await fn(request)
            except Exception as exc:  # every failure becomes a deliberate answer
                return _error_response(_translate(exc))
        return wrapped

    @endpoint
    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True})

    @endpoint
    async def cursors(request: Request) -> Response:
        authorize(request)
        return JSONResponse({"cursors": (await replica.cursors()).to_json()})

    @endpoint
    async def read_entries(request: Request) -> Response:
        authorize(request)
        peer = peer_of(request)
        start = int_param(request, "from")
        limit = min(int_param(request, "limit", MAX_PAGE), MAX_PAGE)
        got = await replica.read_since(peer, start, limit)
        first = got[0][0] if got else start
        if got and [i for i, _ in got] != list(range(first, first + len(got))):
            raise BackendError("the replica returned a page with holes")
        return Response(encode_batch(first, [e for _, e in got]), media_type=RECORD_TYPE,
                        headers={"X-Peerlog-First": str(first)})

    @endpoint
    async def erased(request: Request) -> Response:
        authorize(request)
        if not isinstance(replica, HasErasures):
            raise HttpError(404, "unsupported", "this relay's store cannot list erasures")
        slots = await replica.erased()
        return JSONResponse({"erased": {str(p): [[i, d.hex()] for i, d in s]
                                        for p, s in slots.items()}})

    @endpoint
    async def apply_entries(request: Request) -> Response:
        grant = authorize(request)
        peer = peer_of(request)
        if not grant.may_write(peer):
            raise HttpError(403, "forbidden", f"this token may write origin {grant.origin} "
                                              f"only, not {peer}")
        start = int_param(request, "start")
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_body:
            raise HttpError(413, "too_large", f"the body is limited to {max_body} bytes")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_body:
                raise HttpError(413, "too_large", f"the body is limited to {max_body} bytes")
        batch = decode_batch(bytes(body), start)
        new = await replica.apply_many(peer, start, [e for _, e in batch])
        return JSONResponse({"new": new})

    async def watch(websocket: WebSocket) -> None:
        if tokens.check(_bearer(websocket.headers)) is None:
            await websocket.close(code=4401, reason="a valid bearer token is required")
            return
        await websocket.accept()
        try:
            async with watching(replica) as events:
                receiver = asyncio.ensure_future(websocket.receive())
                stream = aiter(events)
                while True:
                    nxt = asyncio.ensure_future(anext(stream))
                    done, _ = await asyncio.wait({nxt, receiver},
                                                 return_when=asyncio.FIRST_COMPLETED)
                    if receiver in done:  # the client went away (or spoke: not allowed)
                        nxt.cancel()
                        with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                            await nxt
                        return
                    try:
                        event = nxt.result()
                    except StopAsyncIteration:
                        break
                    await websocket.send_text(json.dumps(event_to_json(event)))
                receiver.cancel()
            await websocket.close(code=1001, reason="the relay is shutting down")
        except (WebSocketDisconnect, RuntimeError):
            return
        except SyncError as exc:
            with contextlib.suppress(RuntimeError):
                await websocket.close(code=1011, reason=str(exc)[:120])

    routes = [
        Route(f"{API}/health", health),
        Route(f"{API}/cursors", cursors),
        Route(f"{API}/origins/{{peer}}/entries", read_entries, methods=["GET"]),
        Route(f"{API}/origins/{{peer}}/entries", apply_entries, methods=["POST"]),
        Route(f"{API}/erased", erased),
        WebSocketRoute(f"{API}/watch", watch),
    ]
    return Starlette(routes=routes)
