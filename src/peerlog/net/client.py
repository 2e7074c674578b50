"""`RemoteReplica`: a `Replica` that lives on a relay server.

`pull`, `Puller` and the drivers work against it exactly as against a local
oplog: HTTP for cursors, pages and batch applies; a WebSocket for the watch.
The relay's answers come back as the contract's errors: 409 as
`CursorMismatchError` / `DivergenceError`, 400 and 413 as `CodecError`, 401
and 403 as `AccessDeniedError`.  A relay that cannot be reached or answers
503 is a `BackendError`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import AsyncIterator, Sequence
from typing import Any
from uuid import UUID

import certifi
import httpx
import websockets

from peerlog.net.wire import (
    API,
    RECORD_TYPE,
    SNAPSHOT_TYPE,
    WS_UNAUTHORIZED,
    WireError,
    decode_batch,
    encode_batch,
    event_from_json,
    kind_of,
)
from peerlog.sync.backoff import Backoff
from peerlog.sync.batch import DEFAULT_READ_BATCH, check_batch_start, read_bound
from peerlog.sync.cursors import CursorStream, PeerCursors
from peerlog.sync.defaults import MAX_RETRY_AFTER
from peerlog.sync.entry import DIGEST_SIZE, DecodedEntry, check_entry
from peerlog.sync.errors import (
    AccessDeniedError,
    BackendError,
    ClosedError,
    CodecError,
    CompactedError,
    CursorMismatchError,
    DivergenceError,
    QuotaExceededError,
    SyncError,
)
from peerlog.sync.faces import Applied, AsyncClosing, SnapshotMeta
from peerlog.sync.watch import CursorHub

log = logging.getLogger(__name__)


_tls: dict[str | None, ssl.SSLContext] = {}



def tls_context(ca: str | None = None) -> ssl.SSLContext:
    """A verifying TLS context: the system store (and ``$SSL_CERT_FILE``), certifi's
    bundle, and ``ca`` when given.  One per CA file: loading a bundle costs ~25 ms."""
    context = _tls.get(ca)
    if context is None:
        context = ssl.create_default_context()  # the system store, SSL_CERT_FILE too
        context.load_verify_locations(certifi.where())
        if ca is not None:
            try:
                context.load_verify_locations(ca)
            except (OSError, ssl.SSLError) as exc:
                raise BackendError(f"cannot load the CA certificate {ca}: {exc}") from exc
        _tls[ca] = context
    return context


class RemoteReplica(AsyncClosing):
    """The `Replica` a relay at ``url`` serves, reached with ``token``.

    ``ca`` is a PEM file of extra certificates to trust (a relay with its own
    certificate authority); the system store is always trusted.  A 429 answer
    is retried after the relay's ``Retry-After`` (up to `MAX_RETRY_AFTER`).
    """

    def __init__(self, url: str, token: str, *, timeout: float = 30.0,
                 ca: str | None = None) -> None:
        self._url = url.rstrip("/")
        self._token = token
        self._ssl = tls_context(ca)
        self._client = httpx.AsyncClient(
            base_url=self._url + API, timeout=timeout, verify=self._ssl,
            headers={"Authorization": f"Bearer {token}"})
        self._closed = False
        self._follower: asyncio.Task[None] | None = None
        self._hub = CursorHub(self.cursors, on_first=self._start_following,
                              on_last=self._stop_following)

    @property
    def url(self) -> str:
        return self._url

    async def _request(self, method: str, path: str, *, passing: tuple[int, ...] = (),
                       **kwargs: Any) -> httpx.Response:
        """The relay's answer; an error status raises its contract error unless listed in
        ``passing`` (the caller handles those)."""
        if self._closed:
            raise ClosedError(f"the remote replica {self._url} is closed")
        waited = 0.0
        while True:
            try:
                response = await self._client.request(method, path, **kwargs)
            except httpx.HTTPError as exc:
                raise BackendError(f"relay {self._url} unreachable: {exc!r}") from exc
            if response.status_code == 429:
                delay = _retry_after(response)
                if waited + delay <= MAX_RETRY_AFTER:
                    log.info("relay %s asks to slow down; retrying in %.1fs", self._url, delay)
                    waited += delay
                    await asyncio.sleep(delay)
                    continue
            if response.status_code >= 400 and response.status_code not in passing:
                raise _error(response, path)
            return response

    def _json(self, response: httpx.Response, key: str) -> Any:
        """``response.json()[key]``; `BackendError` for anything else."""
        try:
            return response.json()[key]
        except (ValueError, KeyError, TypeError) as exc:
            raise BackendError(f"relay {self._url} sent a malformed answer (no {key!r}): "
                               f"{response.text[:80]!r}") from exc

    # -- the write side -------------------------------------------------------

    async def apply(self, peer: UUID, index: int, entry: DecodedEntry) -> Applied:
        return Applied(new=await self.apply_many(peer, index, (entry,)) == 1)

    async def apply_many(self, peer: UUID, start_index: int,
                         entries: Sequence[DecodedEntry]) -> int:
        """One POST of one record: the relay applies it in one transaction."""
        check_batch_start(peer, start_index)
        for entry in entries:
            check_entry(entry)
        if not entries:
            return 0
        response = await self._request(
            "POST", f"/origins/{peer}/entries", params={"start": start_index},
            content=encode_batch(start_index, entries),
            headers={"Content-Type": RECORD_TYPE})
        new = self._json(response, "new")
        if type(new) is not int:
            raise BackendError(f"relay {self._url} answered without a count: {response.text}")
        return new

    async def continue_origin(self, old: UUID, new: UUID) -> None:
        """Let this device's token write ``new`` too: the device continued as a new origin
        (see `peerlog.drivers.fork`).  `AccessDeniedError` when the relay refuses."""
        response = await self._request("POST", f"/origins/{old}/continue",
                                       params={"as": str(new)}, passing=(404,))
        if response.status_code == 404:  # a relay older than 0.2: no such route
            raise AccessDeniedError(
                f"the relay {self._url} cannot let this device's token write its new id "
                f"{new} (it predates 0.2): upgrade the relay, or issue a token for {new}")

    # -- the read side --------------------------------------------------------

    async def read_since(self, peer: UUID, from_index: int,
                         limit: int | None = None) -> list[tuple[int, DecodedEntry]]:
        bound = read_bound(from_index, limit, DEFAULT_READ_BATCH)
        if bound == 0:
            return []
        params = {"from": from_index, "limit": bound}
        response = await self._request("GET", f"/origins/{peer}/entries", params=params,
                                       passing=(410,))
        if response.status_code == 410:
            try:
                first_available = _index(response.json()["first_available"])
            except (ValueError, KeyError, TypeError) as exc:
                raise BackendError(f"relay {self._url} answered 410 without where {peer}'s "
                                   "log starts") from exc
            raise CompactedError(peer, from_index, first_available)
        first_header = response.headers.get("X-Peerlog-First", str(from_index))
        if not first_header.isascii() or not first_header.isdigit() or len(first_header) > 19:
            raise BackendError(f"relay {self._url} sent a malformed X-Peerlog-First "
                               f"header: {first_header[:40]!r}")
        first = int(first_header)
        if response.content and first != from_index:
            raise BackendError(f"relay {self._url} answered a read from index {from_index} "
                               f"with entries from {first}")
        try:
            return decode_batch(response.content, first)
        except CodecError as exc:
            raise BackendError(f"relay {self._url} sent a damaged page of {peer}: {exc}") \
                from exc

    async def erased(self) -> dict[UUID, list[tuple[int, bytes]]]:
        """The relay's erased slots of every origin."""
        response = await self._request("GET", "/erased")
        try:
            return {UUID(p): [(_index(i), _digest(d)) for i, d in slots]
                    for p, slots in self._json(response, "erased").items()}
        except (TypeError, ValueError, AttributeError) as exc:
            raise BackendError(f"relay {self._url} sent a malformed erasure list") from exc

    async def cursors(self) -> PeerCursors:
        response = await self._request("GET", "/cursors")
        try:
            return PeerCursors.from_json(self._json(response, "cursors"))
        except CodecError as exc:
            raise BackendError(f"relay {self._url} sent malformed cursors: {exc}") from exc

    async def first_indexes(self) -> PeerCursors:
        """Every origin whose log on the relay was compacted, and where it now starts
        (empty from a relay older than 0.2)."""
        response = await self._request("GET", "/cursors")
        try:
            return PeerCursors.from_json(response.json().get("first", {}))
        except (CodecError, ValueError, AttributeError) as exc:
            raise BackendError(f"relay {self._url} sent malformed first indexes") from exc

    # -- snapshots and acknowledgements ------------------------------------------

    async def snapshots(self) -> list[SnapshotMeta]:
        """The snapshots the relay keeps (none from a relay older than 0.2)."""
        response = await self._request("GET", "/snapshots", passing=(404,))
        if response.status_code == 404:
            return []
        try:
            return [SnapshotMeta.from_json(m) for m in self._json(response, "snapshots")]
        except (CodecError, TypeError) as exc:
            raise BackendError(f"relay {self._url} sent a malformed snapshot list") from exc

    async def read_snapshot(self, name: str) -> bytes:
        """A kept snapshot's bytes (the caller verifies them: `decode_snapshot`)."""
        return (await self._request("GET", f"/snapshots/{name}")).content

    async def publish_snapshot(self, data: bytes) -> str:
        """Give the relay a snapshot; returns its name."""
        name = data[-32:].hex() + ".psnap"
        await self._request("PUT", f"/snapshots/{name}", content=data,
                            headers={"Content-Type": SNAPSHOT_TYPE})
        return name

    async def start_at(self, peer: UUID, index: int) -> None:
        """Begin ``peer``'s log on the relay at ``index`` (its own log was compacted; the
        entries below are in a snapshot); `CursorMismatchError` when the relay already
        holds entries of it."""
        response = await self._request("POST", f"/origins/{peer}/start",
                                       params={"at": index}, passing=(409,))
        if response.status_code == 409:
            raise CursorMismatchError(0, index, peer=peer)

    async def acknowledge(self, origin: UUID, cursors: PeerCursors) -> None:
        """Tell the relay what this device (``origin``) holds; compaction waits for it.
        A relay older than 0.2 has no such route: nothing to tell."""
        await self._request("PUT", f"/origins/{origin}/cursors", passing=(404,),
                            json={"cursors": cursors.to_json()})

    def watch_cursors(self) -> CursorStream:
        """A `Snapshot`, then `Advanced` deltas streamed by the relay over a WebSocket."""
        if self._closed:
            raise ClosedError(f"the remote replica {self._url} is closed")
        return self._hub.watch()

    def _start_following(self) -> None:
        self._follower = asyncio.get_running_loop().create_task(self._follow())

    def _stop_following(self) -> None:
        if self._follower is not None:
            self._follower.cancel()
            self._follower = None

    async def _follow(self) -> None:
        """Relay the server's events into the hub; reconnect with backoff."""
        ws_url = "ws" + self._url[len("http"):] + API + "/watch"
        secure = self._ssl if ws_url.startswith("wss:") else None
        backoff = Backoff(first=0.2, cap=5.0)
        while not self._closed:
            try:
                async with websockets.connect(
                        ws_url, additional_headers={"Authorization": f"Bearer {self._token}"},
                        open_timeout=10, ssl=secure) as socket:
                    backoff.reset()
                    async for message in _messages(socket):
                        event = event_from_json(json.loads(message))
                        # A snapshot after a reconnect is folded in like a delta.
                        self._hub.publish(event.cursors)
                    if socket.close_code == WS_UNAUTHORIZED:
                        raise AccessDeniedError(
                            f"relay {self._url} refused this token for watching "
                            f"({socket.close_reason or 'unauthorized'})")
            except asyncio.CancelledError:
                raise
            except AccessDeniedError as exc:
                log.error("%s", exc)
                self._hub.fail(exc)  # retrying cannot fix a refused token
                return
            except websockets.ConnectionClosed as exc:
                if exc.rcvd is not None and exc.rcvd.code == WS_UNAUTHORIZED:
                    denied = AccessDeniedError(f"relay {self._url} refused this token for "
                                               f"watching ({exc.rcvd.reason})")
                    log.error("%s", denied)
                    self._hub.fail(denied)
                    return
                log.info("watch of %s interrupted (%s); reconnecting", self._url, exc)
            except (OSError, websockets.WebSocketException, CodecError, ValueError) as exc:
                log.info("watch of %s interrupted (%s); reconnecting", self._url, exc)
            await asyncio.sleep(backoff.next())

    # -- lifecycle ------------------------------------------------------------

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._hub.close()
        follower, self._follower = self._follower, None
        if follower is not None:
            follower.cancel()
            await asyncio.gather(follower, return_exceptions=True)
        await self._client.aclose()



    def __repr__(self) -> str:
        return f"<RemoteReplica {self._url}>"


async def _messages(socket: Any) -> AsyncIterator[str]:
    async for message in socket:
        yield message if isinstance(message, str) else message.decode()


def _retry_after(response: httpx.Response) -> float:
    """The relay's ``Retry-After`` in seconds (1 when absent or not a number)."""
    raw = response.headers.get("Retry-After", "")
    return float(raw) if raw.isascii() and raw.isdigit() and len(raw) < 6 else 1.0


def _index(value: object) -> int:
    if type(value) is not int or value < 0:
        raise ValueError(f"not an index: {value!r:.40}")
    return value


def _digest(value: object) -> bytes:
    if not isinstance(value, str) or len(value) != 2 * DIGEST_SIZE:
        raise ValueError(f"not a digest: {value!r:.80}")
    return bytes.fromhex(value)


_RAISES: dict[WireError, type[SyncError]] = {
    WireError.MALFORMED: CodecError, WireError.DISCONNECTED: CodecError,
    WireError.REJECTED: CodecError, WireError.TOO_LARGE: CodecError,
    WireError.UNAUTHORIZED: AccessDeniedError, WireError.FORBIDDEN: AccessDeniedError,
    WireError.QUOTA_EXCEEDED: QuotaExceededError,
}
"""What a refusal means to the caller (docs/relay.md); anything else is a `BackendError`."""


def _error(response: httpx.Response, path: str) -> Exception:
    """The contract's error for a relay's 4xx/5xx answer; never raises itself."""
    try:
        body = response.json()
        if not isinstance(body, dict):
            raise ValueError("not an object")
        named, message = body.get("error"), str(body.get("message"))
    except ValueError:
        body, named, message = {}, None, response.text[:200]
    status = response.status_code
    kind = kind_of(status, named)
    if status == 409:
        try:
            peer = UUID(path.split("/")[2])  # /origins/{peer}/entries
            if kind is WireError.CURSOR_MISMATCH:
                return CursorMismatchError(_index(body["expected"]), _index(body["actual"]),
                                           peer=peer)
            if kind is WireError.DIVERGENCE:
                return DivergenceError(peer, _index(body.get("index", 0)),
                                       "reported by the relay")
        except (KeyError, IndexError, ValueError):
            pass
        return BackendError(f"relay answered 409 with a malformed body: {message[:120]!r}")
    error = _RAISES.get(kind, BackendError) if kind is not None else BackendError
    return error(f"relay refused the request ({status} {kind or 'unknown'}): {message}")
