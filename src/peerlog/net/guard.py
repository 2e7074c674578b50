"""Connection-level limits for the relay: slow clients cannot hold it.

uvicorn closes idle keep-alive connections but sets no deadline on a request
that is still arriving, so a client that never finishes its headers, or
sends a body at one byte a second, holds a descriptor forever; a few hundred
of them exhaust the process.  `GuardedH11Protocol` adds what is missing:

* a *header deadline* from the first byte of a request (and from the
  connection's start) to its complete headers;
* a *body deadline* from the headers to the end of the body;
* a *connection cap*: when it is reached, a connection still waiting for
  its headers is closed to make room, so a real request (a
  health check) still gets in; with no such connection, the new one is
  refused.

Each expiry is logged at INFO: a slow client is not the relay's error.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import State

from peerlog.sync import defaults

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """Deadlines in seconds, and how many connections one relay process keeps open."""

    header_timeout: float = defaults.RELAY_HEADER_TIMEOUT
    body_timeout: float = defaults.RELAY_BODY_TIMEOUT
    max_connections: int = defaults.RELAY_MAX_CONNECTIONS


def guarded_protocol(limits: ConnectionLimits) -> type[H11Protocol]:
    """An uvicorn ``http`` protocol class enforcing ``limits``."""

    class Guarded(GuardedH11Protocol):
        LIMITS = limits

    return Guarded


class GuardedH11Protocol(H11Protocol):
    """`H11Protocol` with header and body deadlines and a connection cap."""

    LIMITS = ConnectionLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._phase = ""  # "headers" or "body" while a deadline runs

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.LIMITS.max_connections and not self._make_room():
            log.info("refusing a connection: %d open, the limit is %d",
                     len(self.connections) - 1, self.LIMITS.max_connections)
            transport.close()
            return
        self._arm("headers")

    def _make_room(self) -> bool:
        """Close another connection that is still waiting for its headers."""
        for other in list(self.connections):
            if other is not self and isinstance(other, GuardedH11Protocol) \
                    and other._phase == "headers":
                log.info("closing a connection that has not sent its headers, to make room")
                other._expire()
                return True
        return False

    def _arm(self, phase: str) -> None:
        if self._phase == phase:
            return
        self._disarm()
        self._phase = phase
        delay = self.LIMITS.header_timeout if phase == "headers" else self.LIMITS.body_timeout
        self._deadline = self.loop.call_later(delay, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._phase = ""

    def _expire(self) -> None:
        phase = self._phase
        self._disarm()
        self.connections.discard(self)
        if not self.transport.is_closing():
            log.info("closing a connection from %s: its request %s did not arrive in time",
                     self.client, phase)
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        state = self.conn.their_state
        if state is h11.IDLE and self.conn.trailing_data[0]:
            self._arm("headers")  # part of a next request's headers
        elif state is h11.SEND_BODY:
            self._arm("body")
        elif state is not h11.IDLE:
            self._disarm()  # the request is complete: the app has it

    def on_response_complete(self) -> None:
        self._disarm()
        super().on_response_complete()

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        self._disarm()  # the WebSocket protocol takes the connection over
        super().handle_websocket_upgrade(event)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


class ClosingSafeWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol, minus a shutdown race.

    On shutdown uvicorn sends close code 1012 on every open WebSocket; when
    the client's own close frame arrived first (the connection is already
    *closing*), uvicorn 0.54 still tries to send it, `websockets` raises
    `InvalidState`, and the whole server shutdown stops half done.  Such a
    connection only needs its transport closed.
    """

    def shutdown(self) -> None:
        if not self.close_sent and self.conn.state is not State.OPEN:
            self.stop_keepalive()
            self.transport.close()
            return
        super().shutdown()
