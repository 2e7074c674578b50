"""The relay server: a versioned HTTP API and a WebSocket over any `Replica`.

    GET  /v1/health                                   -> {"ok": true}
    GET  /v1/cursors                                  -> {"cursors": {uuid: next}}
    GET  /v1/origins/{peer}/entries?from=I&limit=N    -> one record (or empty body)
    POST /v1/origins/{peer}/entries?start=I           <- one record; -> {"new": n}
    POST /v1/origins/{peer}/continue?as=NEW           -> {"continued": NEW}
    POST /v1/origins/{peer}/start?at=I                -> {"first": I}
    GET  /v1/erased                                   -> {"erased": {uuid: [[index, hex]]}}
    PUT  /v1/origins/{peer}/cursors                   <- {"cursors": {uuid: next}}
    GET  /v1/snapshots                                -> {"snapshots": [description]}
    GET  /v1/snapshots/{name}                         -> the snapshot's bytes
    PUT  /v1/snapshots/{name}                         <- the snapshot's bytes
    WS   /v1/watch                                    -> JSON cursors events

Every request carries ``Authorization: Bearer <token>``.  Bad input gets a
4xx with ``{"error": kind, "message": …}`` and stores nothing: 400 malformed
entries or parameters, 401 no or unknown token, 403 a device writing another
origin, 409 wrong index or divergent entries, 413 an oversized body, 429
too many requests with this token (with ``Retry-After``), 507 over the
device's storage quota, 410 a read below where a compacted log starts (with
``first_available``), 404 an unknown snapshot.  A failing database is 503.  Never a 500.  A watch
with a missing or refused token is closed with code 4401.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from operator import itemgetter
from typing import Any
from uuid import UUID

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from peerlog.filelog.format import CRC_SIZE, PER_ENTRY_FIXED, RECORD_HEAD_SIZE
from peerlog.net.compaction import compact_relay
from peerlog.net.tokens import Grant, TokenStore
from peerlog.net.wire import (
    API,
    RECORD_TYPE,
    SNAPSHOT_TYPE,
    STATUS,
    WS_UNAUTHORIZED,
    WireError,
    decode_batch,
    encode_batch,
    event_to_json,
)
from peerlog.state.snapshot import digest_matches, read_header, snapshot_name
from peerlog.sync import defaults
from peerlog.sync.batch import DEFAULT_READ_BATCH, MAX_BATCH_BYTES, byte_prefix, entry_bytes
from peerlog.sync.cursors import PeerCursors
from peerlog.sync.entry import DecodedEntry
from peerlog.sync.errors import (
    BackendError,
    ClosedError,
    CodecError,
    CompactedError,
    CursorMismatchError,
    DivergenceError,
    SyncError,
)
from peerlog.sync.faces import HasErasures, Replica, SnapshotKeeper, SnapshotMeta
from peerlog.sync.hlc import wall_ms
from peerlog.sync.watch import watching

log = logging.getLogger(__name__)

MAX_BATCH_BODY = RECORD_HEAD_SIZE + CRC_SIZE + MAX_BATCH_BYTES \
    + PER_ENTRY_FIXED * DEFAULT_READ_BATCH
"""The largest record a legal batch makes (sync.batch's size policy)."""
MAX_BODY = 16 << 20
"""The relay's body limit: above `MAX_BATCH_BODY`, so every legal batch fits."""
MAX_PAGE = DEFAULT_READ_BATCH
MAX_PARAM = (1 << 63) - 1
"""Indexes and limits are stored as signed 64-bit integers."""
assert MAX_BODY > MAX_BATCH_BODY
MAX_SNAPSHOT_BODY = 1 << 30
"""The largest snapshot a relay takes (1 GiB): held in memory while it is checked."""


@dataclass(frozen=True, slots=True)
class RelayLimits:
    """What one relay allows each client (documented in the README's limits table).

    ``rate``/``burst``: requests per second per token, as a token bucket;
    past it, 429 with ``Retry-After``.  ``quota_bytes``: payload bytes stored
    per device origin (None: no quota); past it, 507 and nothing is stored.
    """

    max_body: int = MAX_BODY
    max_snapshot: int = MAX_SNAPSHOT_BODY
    retention_ms: int = defaults.RETENTION_MS
    """Devices silent for longer no longer hold compaction back."""
    rate: float = defaults.RELAY_RATE
    burst: int = int(2 * defaults.RELAY_RATE)
    quota_bytes: int | None = None


class HttpError(Exception):
    """A refusal: its kind (and so its status, from `wire.STATUS`), message and fields."""

    def __init__(self, kind: WireError, message: str, *,
                 headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.kind, self.extra = STATUS[kind], kind, extra
        self.headers = headers


def _error_response(exc: HttpError) -> JSONResponse:
    return JSONResponse({"error": exc.kind, "message": str(exc), **exc.extra},
                        status_code=exc.status, headers=exc.headers)


class _RateLimiter:
    """A token bucket per bearer token."""

    def __init__(self, rate: float, burst: int) -> None:
        self._rate, self._burst = rate, float(burst)
        self._buckets: dict[str, tuple[float, float]] = {}  # token -> (level, at)

    def wait_needed(self, key: str) -> float:
        """0 when a request may go now (and count it); else seconds until it may."""
        now = time.monotonic()
        level, at = self._buckets.get(key, (self._burst, now))
        level = min(self._burst, level + (now - at) * self._rate)
        if level >= 1.0:
            self._buckets[key] = (level - 1.0, now)
            return 0.0
        self._buckets[key] = (level, now)
        return (1.0 - level) / self._rate


def _translate(exc: Exception) -> HttpError:
    """A replica's failure as the HTTP answer it means."""
    if isinstance(exc, HttpError):
        return exc
    if isinstance(exc, ClientDisconnect):
        log.info("a client disconnected before its request body was complete")
        return HttpError(WireError.DISCONNECTED, "the request body was cut short")
    if isinstance(exc, CompactedError):
        return HttpError(WireError.COMPACTED, str(exc), first_available=exc.first_available)
    if isinstance(exc, CursorMismatchError):
        return HttpError(WireError.CURSOR_MISMATCH, str(exc), expected=exc.expected,
                         actual=exc.actual)
    if isinstance(exc, DivergenceError):
        return HttpError(WireError.DIVERGENCE, str(exc), index=exc.index)
    if isinstance(exc, CodecError):
        return HttpError(WireError.MALFORMED, str(exc))
    if isinstance(exc, BackendError | ClosedError):
        log.error("replica unavailable: %s", exc)
        return HttpError(WireError.UNAVAILABLE, "the relay's database is unavailable")
    if isinstance(exc, SyncError):
        return HttpError(WireError.REJECTED, str(exc))
    log.exception("unexpected failure", exc_info=exc)
    return HttpError(WireError.UNAVAILABLE, "the relay failed to handle the request")


def _bearer(headers: Any) -> str | None:
    value = headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def create_app(replica: Replica, tokens: TokenStore, *,
               limits: RelayLimits | None = None) -> Starlette:
    """A Starlette app serving ``replica`` to holders of ``tokens``, within ``limits``."""
    limits = limits or RelayLimits()
    max_body = limits.max_body
    keeper = replica if isinstance(replica, SnapshotKeeper) else None
    rate = _RateLimiter(limits.rate, limits.burst)
    usage: dict[UUID, int] = {}  # payload bytes stored per origin, when a quota is set

    def authorize(request: Request) -> Grant:
        token = _bearer(request.headers)
        grant = tokens.check(token)
        if grant is None or token is None:
            raise HttpError(WireError.UNAUTHORIZED, "a valid bearer token is required")
        wait = rate.wait_needed(token)
        if wait > 0:
            raise HttpError(WireError.RATE_LIMITED,
                            f"more than {limits.rate:g} requests per second with this token",
                            headers={"Retry-After": str(max(1, math.ceil(wait)))})
        return grant

    async def stored_bytes(peer: UUID) -> int:
        if peer not in usage:
            total, index = 0, 0
            while got := await replica.read_since(peer, index):
                total += sum(map(entry_bytes, (e for _, e in got)))
                index = got[-1][0] + 1
            usage[peer] = total
        return usage[peer]

    async def check_quota(peer: UUID, start: int, entries: list[DecodedEntry]) -> int:
        """The bytes this batch adds; 507 when they would take ``peer`` over the quota."""
        held = (await replica.cursors()).of(peer)
        adding = sum(map(entry_bytes, entries[max(held - start, 0):]))
        quota = limits.quota_bytes
        if quota is not None and adding and await stored_bytes(peer) + adding > quota:
            raise HttpError(WireError.QUOTA_EXCEEDED,
                            f"origin {peer} would hold {usage[peer] + adding} bytes on this "
                            f"relay; its quota is {quota} bytes")
        return adding

    def peer_of(request: Request) -> UUID:
        try:
            return UUID(request.path_params["peer"])
        except ValueError:
            raise HttpError(WireError.MALFORMED, "the origin must be a UUID") from None

    def int_param(request: Request, name: str, default: int | None = None) -> int:
        raw = request.query_params.get(name)
        if raw is None:
            if default is None:
                raise HttpError(WireError.MALFORMED, f"query parameter {name!r} is required")
            return default
        if not raw.isascii() or not raw.isdigit() or len(raw) > 19:
            raise HttpError(WireError.MALFORMED, f"{name} must be an integer in 0..{MAX_PARAM}, "
                                              f"got {raw!r:.40}")
        try:
            value = int(raw)
        except ValueError:
            raise HttpError(WireError.MALFORMED, f"{name} must be an integer, got {raw!r}") \
                from None
        if not 0 <= value <= MAX_PARAM:
            raise HttpError(WireError.MALFORMED, f"{name} must be in 0..{MAX_PARAM}, got {raw:.40}")
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
        answer = {"cursors": (await replica.cursors()).to_json()}
        if keeper is not None:
            answer["first"] = (await keeper.first_indexes()).to_json()
        return JSONResponse(answer)

    def keeping() -> SnapshotKeeper:
        if keeper is None:
            raise HttpError(WireError.UNSUPPORTED, "this relay's store keeps no snapshots")
        return keeper

    async def body_of(request: Request, limit: int) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise HttpError(WireError.TOO_LARGE, f"the body is limited to {limit} bytes")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise HttpError(WireError.TOO_LARGE, f"the body is limited to {limit} bytes")
        return bytes(body)

    async def compact() -> None:
        try:
            await compact_relay(replica, keeping(), retention_ms=limits.retention_ms)
        except SyncError as exc:  # the report or upload itself is stored: answer it
            log.error("relay compaction failed: %s", exc)

    @endpoint
    async def acknowledge(request: Request) -> Response:
        """A device says what it holds: compaction waits for it."""
        grant = authorize(request)
        peer = peer_of(request)
        if not grant.may_write(peer):
            raise HttpError(WireError.FORBIDDEN, f"this token may not speak for origin {peer}")
        try:
            held = PeerCursors.from_json(json.loads(await body_of(request, 1 << 20))["cursors"])
        except (ValueError, KeyError, TypeError) as exc:
            raise HttpError(WireError.MALFORMED, f"expected {{\"cursors\": …}}: {exc}") \
                from None
        await keeping().keep_cursors(peer, held, wall_ms())
        await compact()
        return JSONResponse({"ok": True})

    @endpoint
    async def list_snapshots(request: Request) -> Response:
        authorize(request)
        kept = await keeping().kept_snapshots()
        return JSONResponse({"snapshots": [m.to_json() for m in kept]})

    @endpoint
    async def get_snapshot(request: Request) -> Response:
        authorize(request)
        data = await keeping().kept_snapshot(request.path_params["name"])
        if data is None:
            raise HttpError(WireError.NOT_FOUND, "no such snapshot here")
        return Response(data, media_type=SNAPSHOT_TYPE)

    @endpoint
    async def put_snapshot(request: Request) -> Response:
        """Keep a snapshot a device made: its bytes must match its name and header."""
        authorize(request)
        name = request.path_params["name"]
        data = await body_of(request, limits.max_snapshot)
        if not digest_matches(data) or snapshot_name(data) != name:
            raise HttpError(WireError.MALFORMED, "the snapshot's digest does not match its "
                                                 "bytes and name: damaged or cut short")
        producer, created_ms, frontier = read_header(data)
        await keeping().keep_snapshot(SnapshotMeta(name, len(data), producer, created_ms,
                                                   frontier), data)
        await compact()
        return JSONResponse({"kept": name})

    @endpoint
    async def read_entries(request: Request) -> Response:
        authorize(request)
        peer = peer_of(request)
        start = int_param(request, "from")
        limit = min(int_param(request, "limit", MAX_PAGE), MAX_PAGE)
        got = await replica.read_since(peer, start, limit)
        del got[byte_prefix(map(itemgetter(1), got)):]  # whatever the replica's own bound
        first = got[0][0] if got else start
        if got and [i for i, _ in got] != list(range(first, first + len(got))):
            raise BackendError("the replica returned a page with holes")
        return Response(encode_batch(first, [e for _, e in got]), media_type=RECORD_TYPE,
                        headers={"X-Peerlog-First": str(first)})

    @endpoint
    async def erased(request: Request) -> Response:
        authorize(request)
        if not isinstance(replica, HasErasures):
            raise HttpError(WireError.UNSUPPORTED, "this relay's store cannot list erasures")
        slots = await replica.erased()
        return JSONResponse({"erased": {str(p): [[i, d.hex()] for i, d in s]
                                        for p, s in slots.items()}})

    @endpoint
    async def apply_entries(request: Request) -> Response:
        grant = authorize(request)
        peer = peer_of(request)
        if not grant.may_write(peer):
            raise HttpError(WireError.FORBIDDEN, f"this token may write origin {grant.origin} "
                                              f"only, not {peer}")
        start = int_param(request, "start")
        entries = [e for _, e in decode_batch(await body_of(request, max_body), start)]
        if limits.quota_bytes is None:
            return JSONResponse({"new": await replica.apply_many(peer, start, entries)})
        adding = await check_quota(peer, start, entries)
        new = await replica.apply_many(peer, start, entries)
        if new:
            usage[peer] = usage.get(peer, 0) + adding
        return JSONResponse({"new": new})

    @endpoint
    async def start_origin(request: Request) -> Response:
        """A device whose own log was compacted begins it here at ``at`` (its entries below
        are in a snapshot): only while the relay holds nothing of that origin."""
        grant = authorize(request)
        peer = peer_of(request)
        if not grant.may_write(peer):
            raise HttpError(WireError.FORBIDDEN, f"this token may not write origin {peer}")
        start = getattr(replica, "start_at", None)
        if start is None:
            raise HttpError(WireError.UNSUPPORTED, "this relay's store cannot start a log "
                                                   "above 0")
        at = int_param(request, "at")
        await start(peer, at)
        return JSONResponse({"first": at})

    @endpoint
    async def continue_origin(request: Request) -> Response:
        """A device that forked (restored, copied) claims its new origin for its token."""
        grant = authorize(request)
        old = peer_of(request)
        try:
            new = UUID(request.query_params.get("as", ""))
        except ValueError:
            raise HttpError(WireError.MALFORMED, "'as' must be the new origin's UUID") from None
        if not grant.may_write(old):
            raise HttpError(WireError.FORBIDDEN, f"this token may not write origin {old}")
        if grant.origin is None or grant.may_write(new):
            return JSONResponse({"continued": str(new)})
        if (await replica.cursors()).of(new):
            raise HttpError(WireError.FORBIDDEN, f"origin {new} already has entries here")
        try:
            tokens.continue_as(_bearer(request.headers) or "", new)
        except ValueError as exc:
            raise HttpError(WireError.FORBIDDEN, str(exc)) from None
        log.warning("device %s continues as origin %s", old, new)
        return JSONResponse({"continued": str(new)})

    async def watch(websocket: WebSocket) -> None:
        await websocket.accept()
        if tokens.check(_bearer(websocket.headers)) is None:
            # Accept first so the client sees the close code (a refusal before the
            # handshake is an HTTP 403 that clients treat as a passing failure).
            await websocket.close(code=WS_UNAUTHORIZED,
                                  reason="a valid bearer token is required")
            return
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
        Route(f"{API}/origins/{{peer}}/continue", continue_origin, methods=["POST"]),
        Route(f"{API}/origins/{{peer}}/start", start_origin, methods=["POST"]),
        Route(f"{API}/erased", erased),
        Route(f"{API}/origins/{{peer}}/cursors", acknowledge, methods=["PUT"]),
        Route(f"{API}/snapshots", list_snapshots, methods=["GET"]),
        Route(f"{API}/snapshots/{{name}}", get_snapshot, methods=["GET"]),
        Route(f"{API}/snapshots/{{name}}", put_snapshot, methods=["PUT"]),
        WebSocketRoute(f"{API}/watch", watch),
    ]
    return Starlette(routes=routes)
