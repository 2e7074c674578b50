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
from types import TracebackType
from typing import Any
from uuid import UUID

import certifi
import httpx
import websockets

from peerlog.net.wire import API, RECORD_TYPE, decode_batch, encode_batch, event_from_json
from peerlog.sync.batch import DEFAULT_READ_BATCH, check_batch_start, read_bound
from peerlog.sync.cursors import CursorStream, PeerCursors
from peerlog.sync.entry import DecodedEntry, check_entry
from peerlog.sync.errors import (
    AccessDeniedError,
    BackendError,
    ClosedError,
    CodecError,
    CursorMismatchError,
    DivergenceError,
)
from peerlog.sync.faces import Applied
from peerlog.sync.watch import CursorHub

log = logging.getLogger(__name__)


_tls: ssl.SSLContext | None = None


def _tls_context() -> ssl.SSLContext:
    """One verifying TLS context per process: loading the CA bundle costs ~25 ms."""
    global _tls
    if _tls is None:
        _tls = ssl.create_default_context(cafile=certifi.where())
    return _tls


class RemoteReplica:
    """The `Replica` a relay at ``url`` serves, reached with ``token``."""

    def __init__(self, url: str, token: str, *, timeout: float = 30.0) -> None:
        self._url = url.rstrip("/")
        self._token = token
        self._client = httpx.AsyncClient(
            base_url=self._url + API, timeout=timeout, verify=_tls_context(),
            headers={"Authorization": f"Bearer {token}"})
        self._closed = False
        self._follower: asyncio.Task[None] | None = None
        self._hub = CursorHub(self.cursors, on_first=self._start_following,
                              on_last=self._stop_following)

    @property
    def url(self) -> str:
        return self._url

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        if self._closed:
            raise ClosedError(f"the remote replica {self._url} is closed")
        try:
            response = await self._client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise BackendError(f"relay {self._url} unreachable: {exc!r}") from exc
        if response.status_code >= 400:
            raise _error(response, path)
        return response

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
        new = response.json().get("new")
        if type(new) is not int:
            raise BackendError(f"relay {self._url} answered without a count: {response.text}")
        return new

    # -- the read side --------------------------------------------------------

    async def read_since(self, peer: UUID, from_index: int,
                         limit: int | None = None) -> list[tuple[int, DecodedEntry]]:
        bound = read_bound(from_index, limit, DEFAULT_READ_BATCH)
        if bound == 0:
            return []
        params = {"from": from_index, "limit": bound}
        response = await self._request("GET", f"/origins/{peer}/entries", params=params)
        first = int(response.headers.get("X-Peerlog-First", from_index))
        return decode_batch(response.content, first)

    async def erased(self) -> dict[UUID, list[tuple[int, bytes]]]:
        """The relay's erased slots of every origin."""
        response = await self._request("GET", "/erased")
        try:
            return {UUID(p): [(int(i), bytes.fromhex(d)) for i, d in slots]
                    for p, slots in response.json()["erased"].items()}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BackendError(f"relay {self._url} sent a malformed erasure list") from exc

    async def cursors(self) -> PeerCursors:
        response = await self._request("GET", "/cursors")
        return PeerCursors.from_json(response.json().get("cursors"))

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
        delay = 0.2
        while not self._closed:
            try:
                async with websockets.connect(
                        ws_url, additional_headers={"Authorization": f"Bearer {self._token}"},
                        open_timeout=10) as socket:
                    delay = 0.2
                    async for message in _messages(socket):
                        event = event_from_json(json.loads(message))
                        # A snapshot after a reconnect is folded in like a delta.
                        self._hub.publish(event.cursors)
            except asyncio.CancelledError:
                raise
            except (OSError, websockets.WebSocketException, CodecError, ValueError) as exc:
                log.warning("watch of %s interrupted (%s); reconnecting in %.1fs",
                            self._url, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

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

    async def __aenter__(self) -> RemoteReplica:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<RemoteReplica {self._url}>"


async def _messages(socket: Any) -> AsyncIterator[str]:
    async for message in socket:
        yield message if isinstance(message, str) else message.decode()


def _error(response: httpx.Response, path: str) -> Exception:
    try:
        body = response.json()
        kind, message = str(body.get("error")), str(body.get("message"))
    except (ValueError, AttributeError):
        body, kind, message = {}, "", response.text[:200]
    status = response.status_code
    if status == 409 and kind == "cursor_mismatch":
        peer = UUID(path.split("/")[2])
        return CursorMismatchError(int(body["expected"]), int(body["actual"]), peer=peer)
    if status == 409 and kind == "divergence":
        peer = UUID(path.split("/")[2])  # /origins/{peer}/entries
        return DivergenceError(peer, int(body.get("index", -1)), "reported by the relay")
    if status in (400, 413):
        return CodecError(f"relay refused the request ({status}): {message}")
    if status in (401, 403):
        return AccessDeniedError(f"relay refused the token ({status}): {message}")
    return BackendError(f"relay answered {status}: {message}")

