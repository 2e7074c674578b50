"""How the contract suite reaches each implementation.

A harness opens (and reopens) one store, seeds a peer's log into it, and names
the Python expression that opens the same store in another process.  Adding a
backend to the suite is adding a harness here and to the lists at the bottom.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol
from uuid import UUID, uuid4

from peerlog import (
    BucketLog,
    DecodedEntry,
    Entry,
    Expunged,
    FileLog,
    LogSource,
    PostgresOplog,
    Replica,
    SqliteOplog,
)
from peerlog.net import Grant, RemoteReplica, TokenStore
from peerlog.net.serve import ServeOptions, running
from tests.helpers import ORIGINALS, free_port
from tests.pg import cluster
from tests.s3 import s3


class SourceHarness(Protocol):
    """A store that can be seeded and read through `LogSource`."""

    name: str

    async def open_source(self) -> LogSource:
        """Open (or reopen) the store for reading."""
        ...

    async def seed(self, peer: UUID, entries: Sequence[DecodedEntry]) -> None:
        """Make ``entries`` the whole log of ``peer`` (index 0 onwards)."""
        ...

    async def close_all(self) -> None:
        """Close everything this harness opened."""
        ...


class ReplicaHarness(SourceHarness, Protocol):
    """A store that is a full `Replica`."""

    async def open(self) -> Replica:
        """Open (or reopen) the same store."""
        ...

    def opener_expr(self) -> str:
        """A Python expression, with ``peerlog`` imported, that opens the same store."""
        ...


class _ReplicaHarnessBase:
    """What every replica harness does the same way: seed through `apply_many`."""

    _opened: list[Any]

    async def open(self) -> Replica:
        raise NotImplementedError

    async def open_source(self) -> LogSource:
        return await self.open()

    async def seed(self, peer: UUID, entries: Sequence[DecodedEntry]) -> None:
        replica = await self.open()
        await replica.apply_many(peer, 0, entries)

    async def close_all(self) -> None:
        for replica in self._opened:
            await replica.close()


class SqliteHarness(_ReplicaHarnessBase):
    name = "sqlite"

    def __init__(self, tmp: Path) -> None:
        self.path = tmp / "oplog.sqlite"
        self._opened: list[SqliteOplog] = []

    async def open(self) -> Replica:
        oplog = SqliteOplog(self.path, poll_interval=0.05)
        self._opened.append(oplog)
        return oplog


    def opener_expr(self) -> str:
        return f"peerlog.SqliteOplog({str(self.path)!r})"

class FileLogHarness:
    """The file log: a `LogSource` whose logs each belong to one writing device."""

    name = "filelog"

    def __init__(self, tmp: Path) -> None:
        self.root = tmp / "shared"
        self.root.mkdir()
        self._opened: list[FileLog] = []

    def _open(self, origin: UUID) -> FileLog:
        log = FileLog(self.root, origin, poll_interval=0.05)
        self._opened.append(log)
        return log

    async def open_source(self) -> LogSource:
        return self._open(uuid4())

    async def seed(self, peer: UUID, entries: Sequence[DecodedEntry]) -> None:
        # Only the originating device writes its log: appends, then erasures.
        writer = self._open(peer)
        writer.append_many(0, [e if type(e) is Entry else ORIGINALS[e.digest]
                               for e in entries])
        for index, e in enumerate(entries):
            if type(e) is Expunged:
                writer.expunge(index)
        await writer.close()

    async def close_all(self) -> None:
        for log in self._opened:
            await log.close()


class BucketHarness(FileLogHarness):
    """The bucket log, on the session's loopback S3 server: one fresh bucket per test."""

    name = "bucket"

    def __init__(self, tmp: Path) -> None:
        self.url = s3().fresh_bucket()
        self._opened: list[Any] = []

    def _open(self, origin: UUID) -> Any:
        log = BucketLog(self.url, origin, poll_interval=0.05)
        self._opened.append(log)
        return log


class PostgresHarness(_ReplicaHarnessBase):
    """A fresh schema on the session's real PostgreSQL server."""

    name = "postgres"

    def __init__(self, tmp: Path) -> None:
        self.dsn = cluster().fresh_schema()
        self._opened: list[PostgresOplog] = []

    async def open(self) -> Replica:
        oplog = PostgresOplog(self.dsn)
        self._opened.append(oplog)
        return await oplog.open()


    def opener_expr(self) -> str:
        return f"peerlog.PostgresOplog({self.dsn!r})"

class RemoteHarness(_ReplicaHarnessBase):
    """A relay server (in this process) over a SQLite oplog, reached as a `RemoteReplica`."""

    name = "remote"
    token = "contract-suite-relay-token"

    def __init__(self, tmp: Path) -> None:
        self.path = tmp / "relay.sqlite"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: contextlib.AbstractAsyncContextManager[object] | None = None
        self._opened: list[RemoteReplica] = []

    async def open(self) -> Replica:
        for attempt in range(5):
            if self._server is not None:
                break
            tokens = TokenStore()
            tokens._grants[hashlib.sha256(self.token.encode()).hexdigest()] = Grant(None, "")
            server = running(SqliteOplog(self.path, poll_interval=0.05), tokens,
                             ServeOptions(port=self.port))
            try:
                await server.__aenter__()
            except OSError as exc:
                # The free port was taken between choosing and binding it (an outgoing
                # connection's ephemeral port): choose again.
                if exc.errno != errno.EADDRINUSE or attempt == 4:
                    raise
                self.port = free_port()
                self.url = f"http://127.0.0.1:{self.port}"
                continue
            self._server = server
        remote = RemoteReplica(self.url, self.token)
        self._opened.append(remote)
        return remote


    def opener_expr(self) -> str:
        return f"peerlog.RemoteReplica({self.url!r}, {self.token!r})"

    async def close_all(self) -> None:
        await super().close_all()
        if self._server is not None:
            await self._server.__aexit__(None, None, None)




ReplicaKind = type[SqliteHarness] | type[PostgresHarness] | type[RemoteHarness]
REPLICA_KINDS: dict[str, ReplicaKind] = {
    "sqlite": SqliteHarness,
    "postgres": PostgresHarness,
    "remote": RemoteHarness,
}
SOURCE_KINDS: dict[str, ReplicaKind | type[FileLogHarness]] = {
    **REPLICA_KINDS, "filelog": FileLogHarness, "bucket": BucketHarness,
}
