"""Running a relay: open the replica a ``--db`` URL names and serve it with uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import uvicorn

from peerlog.net.server import create_app
from peerlog.net.tokens import TokenStore
from peerlog.oplog.postgres import PostgresOplog
from peerlog.oplog.sqlite import SqliteOplog
from peerlog.sync.errors import CodecError

log = logging.getLogger(__name__)


def open_replica(db: str) -> SqliteOplog | PostgresOplog:
    """``sqlite:PATH`` or a ``postgresql://`` URL (or a libpq ``key=value`` string)."""
    if db.startswith("sqlite:"):
        return SqliteOplog(db[len("sqlite:"):])
    if db.startswith(("postgresql://", "postgres://")) or "dbname=" in db or "host=" in db:
        return PostgresOplog(db)
    raise CodecError(f"--db must be sqlite:PATH or postgresql://…, got {db!r}")


def _config(replica: SqliteOplog | PostgresOplog, tokens: TokenStore, host: str,
            port: int) -> uvicorn.Config:
    return uvicorn.Config(create_app(replica, tokens), host=host, port=port,
                          log_level="warning", lifespan="off", ws="websockets-sansio",
                          timeout_graceful_shutdown=2)


@contextlib.asynccontextmanager
async def running(replica: SqliteOplog | PostgresOplog, tokens: TokenStore, host: str,
                  port: int) -> AsyncIterator[uvicorn.Server]:
    """A relay serving ``replica`` in this event loop until the block exits."""
    if isinstance(replica, PostgresOplog):
        await replica.open()
    server = uvicorn.Server(_config(replica, tokens, host, port))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # raises what stopped it (a port in use, …)
            raise OSError(f"the relay did not start on {host}:{port}")
        await asyncio.sleep(0.01)
    try:
        yield server
    finally:
        server.should_exit = True
        await replica.close()  # ends open watches so shutdown does not wait on them
        await task


async def serve_forever(db: str, tokens: TokenStore, host: str, port: int) -> None:
    """Serve until SIGINT/SIGTERM (uvicorn handles them), then close the replica."""
    replica = open_replica(db)
    try:
        if isinstance(replica, PostgresOplog):
            await replica.open()
        await uvicorn.Server(_config(replica, tokens, host, port)).serve()
    finally:
        await replica.close()
