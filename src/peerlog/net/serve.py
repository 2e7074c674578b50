"""Running a relay: open the replica a ``--db`` URL names and serve it with uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import resource
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import uvicorn

from peerlog.net.guard import ClosingSafeWebSocketProtocol, ConnectionLimits, guarded_protocol
from peerlog.net.server import RelayLimits, create_app
from peerlog.net.tokens import TokenStore
from peerlog.oplog.sqlite import SqliteOplog
from peerlog.sync import defaults
from peerlog.sync.errors import CodecError

if TYPE_CHECKING:
    from peerlog.oplog.postgres import PostgresOplog

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ServeOptions:
    """Everything about a relay process besides its database and tokens."""

    host: str = "127.0.0.1"
    port: int = defaults.RELAY_PORT
    limits: RelayLimits = field(default_factory=RelayLimits)
    connections: ConnectionLimits | None = None
    """None: the default deadlines, and a cap that fits the descriptor limit."""
    tls_cert: str | None = None
    tls_key: str | None = None

    @property
    def scheme(self) -> str:
        return "https" if self.tls_cert else "http"


def _sqlite(db: str) -> SqliteOplog:
    return SqliteOplog(db.partition(":")[2])


def _postgres(db: str) -> PostgresOplog:
    from peerlog.extras import require

    oplog: PostgresOplog = require("peerlog.oplog.postgres", "postgres").PostgresOplog(db)
    return oplog


OPENERS: dict[str, Callable[[str], SqliteOplog | PostgresOplog]] = {
    "sqlite": _sqlite,
    "postgresql": _postgres,
    "postgres": _postgres,
}
"""``--db`` URL schemes and the replica each opens."""


def open_replica(db: str) -> SqliteOplog | PostgresOplog:
    """``sqlite:PATH`` or a ``postgresql://`` URL (or a libpq ``key=value`` string)."""
    scheme, colon, _ = db.partition(":")
    opener = OPENERS.get(scheme.lower()) if colon else None
    if opener is None and "=" in db:  # libpq's key=value form names no scheme
        opener = _postgres
    if opener is None:
        raise CodecError(f"--db must be sqlite:PATH or postgresql://USER@HOST/DB (schemes: "
                         f"{', '.join(OPENERS)}), got {db!r}")
    return opener(db)


async def _connect(replica: SqliteOplog | PostgresOplog) -> None:
    """Open a server database's pool before serving (SQLite needs nothing)."""
    connect = getattr(replica, "open", None)
    if connect is not None:
        await connect()


def default_connection_limits() -> ConnectionLimits:
    """Deadlines as documented, and a connection cap that leaves 64 descriptors spare."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    cap = ConnectionLimits().max_connections
    if soft != resource.RLIM_INFINITY:
        cap = max(min(cap, soft - 64), 8)
    return ConnectionLimits(max_connections=cap)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def warnings_for(tokens: TokenStore, options: ServeOptions) -> list[str]:
    """What an operator must hear before the relay starts."""
    out = []
    if not len(tokens):
        where = tokens.path if tokens.path is not None else "memory"
        out.append(f"the token file {where} is missing or empty: no device can sync until "
                   "you issue tokens with `peerlog token` (they are picked up without a "
                   "restart)")
    if options.tls_cert is None and not is_loopback(options.host):
        out.append(f"serving plain HTTP on {options.host}: tokens and entries cross the "
                   "network unencrypted; use --tls-cert/--tls-key or a TLS proxy")
    return out


def _config(replica: SqliteOplog | PostgresOplog, tokens: TokenStore,
            options: ServeOptions) -> uvicorn.Config:
    connections = options.connections or default_connection_limits()
    return uvicorn.Config(
        create_app(replica, tokens, limits=options.limits), host=options.host,
        port=options.port, log_level="warning", lifespan="off", ws=ClosingSafeWebSocketProtocol,
        http=guarded_protocol(connections), timeout_keep_alive=int(defaults.RELAY_KEEP_ALIVE),
        timeout_graceful_shutdown=2, ssl_certfile=options.tls_cert,
        ssl_keyfile=options.tls_key)


def _listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (IPv4 or IPv6, as the host resolves)."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


@contextlib.asynccontextmanager
async def running(replica: SqliteOplog | PostgresOplog, tokens: TokenStore,
                  options: ServeOptions) -> AsyncIterator[uvicorn.Server]:
    """A relay serving ``replica`` in this event loop until the block exits.

    The listening socket is bound here, before uvicorn starts, so a port in use is
    an `OSError` (``EADDRINUSE``) the caller can act on, not uvicorn's exit."""
    await _connect(replica)
    server = uvicorn.Server(_config(replica, tokens, options))
    try:
        sock = _listen(options.host, options.port)
    except OSError:
        await replica.close()
        raise
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()  # raises what stopped it (a port in use, …)
            raise OSError(f"the relay did not start on {options.host}:{options.port}")
        await asyncio.sleep(0.01)
    try:
        yield server
    finally:
        server.should_exit = True
        await replica.close()  # ends open watches so shutdown does not wait on them
        await task


async def serve_forever(db: str, tokens: TokenStore, options: ServeOptions) -> None:
    """Serve until SIGINT/SIGTERM (uvicorn handles them), then close the replica."""
    replica = open_replica(db)
    try:
        await _connect(replica)
        await uvicorn.Server(_config(replica, tokens, options)).serve()
    finally:
        await replica.close()
