"""`PostgresOplog`: the oplog contract on PostgreSQL, for a relay many devices share.

Schema (version 2), in the connection's current schema::

    peerlog_meta(key text PRIMARY KEY, value bytea)
    peerlog_peers(peer uuid PRIMARY KEY, next_index bigint,     -- the cursors
                  first_index bigint)                           -- where the log starts (2)
    peerlog_entries(peer uuid, idx bigint, ts bigint, body bytea,
                    PRIMARY KEY (peer, idx))                    -- ts NULL: a marker

Concurrency: `apply_many` locks the origin's cursor row (``SELECT … FOR
UPDATE``) at READ COMMITTED, so concurrent deliveries of one origin from many
connections serialise: the second one sees the first's commit and finds its
entries held (new=0), never a spurious error.  Different origins apply in
parallel.  New entries go in with ``COPY``.  Each commit that moves a cursor
sends ``pg_notify`` on a channel named after the schema, so watchers in every
process connected to the same database wake up (``LISTEN``).

Version 2 (peerlog 0.2) added ``first_index``, as `SqliteOplog` did: a
relay compacts an origin's log below what a snapshot covers and every
device holds (`compact`); a version-1 database gains the column on open.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar
from uuid import UUID

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from peerlog.oplog.batch import Row, decode_rows, encode_entries, plan_batch, plan_compacted
from peerlog.sync.batch import (
    DEFAULT_READ_BATCH,
    MAX_BATCH_BYTES,
    check_batch_start,
    read_bound,
)
from peerlog.sync.cursors import CursorStream, PeerCursors
from peerlog.sync.entry import DecodedEntry
from peerlog.sync.errors import (
    BackendError,
    ClosedError,
    CompactedError,
    CursorMismatchError,
    IdentityError,
    SyncError,
)
from peerlog.sync.faces import Applied, AsyncClosing, SnapshotMeta
from peerlog.sync.watch import CursorHub

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
_T = TypeVar("_T")

_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS peerlog_meta(key text PRIMARY KEY, value bytea NOT NULL)",
    "CREATE TABLE IF NOT EXISTS peerlog_peers(peer uuid PRIMARY KEY, next_index bigint NOT NULL)",
    """CREATE TABLE IF NOT EXISTS peerlog_entries(
        peer uuid NOT NULL, idx bigint NOT NULL, ts bigint, body bytea NOT NULL,
        PRIMARY KEY (peer, idx))""",
    "CREATE INDEX IF NOT EXISTS peerlog_erased ON peerlog_entries(peer, idx) WHERE ts IS NULL",
    "ALTER TABLE peerlog_peers ADD COLUMN IF NOT EXISTS first_index bigint NOT NULL DEFAULT 0",
    """CREATE TABLE IF NOT EXISTS peerlog_snapshots(
        name text PRIMARY KEY, producer uuid NOT NULL, created_ms bigint NOT NULL,
        frontier text NOT NULL, size bigint NOT NULL, body bytea NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS peerlog_acks(
        origin uuid PRIMARY KEY, cursors text NOT NULL, written_ms bigint NOT NULL)""",
]


class PostgresOplog(AsyncClosing):
    """A `Replica` on PostgreSQL.  ``dsn`` is a libpq connection string or URL.

    Opens lazily (or with `open` / ``async with``): the constructor does no
    I/O; opening gives up after ``connect_timeout`` seconds.  ``origin`` is
    created and persisted on first open when ``None``.
    Every psycopg failure is a `BackendError` with the cause; use after
    `close` is `ClosedError`.
    """

    def __init__(self, dsn: str, origin: UUID | None = None, *,
                 read_batch: int = DEFAULT_READ_BATCH, pool_size: int = 4,
                 connect_timeout: float = 30.0) -> None:
        self._dsn = dsn
        self._wanted_origin = origin
        self._origin: UUID | None = None
        self._read_batch = read_batch
        self._connect_timeout = connect_timeout
        self._pool = AsyncConnectionPool(dsn, min_size=1, max_size=pool_size, open=False,
                                         kwargs={"autocommit": True})
        self._opened = False
        self._closed = False
        self._open_lock = asyncio.Lock()
        self._channel = ""
        self._listener: asyncio.Task[None] | None = None
        self._hub = CursorHub(self.cursors, on_first=self._start_listening,
                              on_last=self._stop_listening)

    # -- opening --------------------------------------------------------------

    async def open(self) -> PostgresOplog:
        """Connect, create the schema if missing, settle the origin. Idempotent."""
        if self._closed:
            raise ClosedError("the PostgreSQL oplog is closed")
        if self._opened:
            return self
        async with self._open_lock:
            if self._opened:
                return self
            try:
                await self._pool.open(wait=True, timeout=self._connect_timeout)
                async with self._pool.connection() as conn, conn.transaction():
                    # One opener at a time creates the schema and the origin.
                    await conn.execute("SELECT pg_advisory_xact_lock(7271001)")
                    for statement in _SCHEMA:
                        await conn.execute(statement)
                    await self._settle_meta(conn)
                    row = await (await conn.execute("SELECT current_schema()")).fetchone()
                    assert row is not None
                    self._channel = f"peerlog_cursors_{row[0]}"
            except psycopg.Error as exc:
                await self._pool.close()
                raise BackendError(f"cannot open PostgreSQL oplog: {exc}") from exc
            except BaseException:
                await self._pool.close()
                raise
            self._opened = True
        return self

    async def _settle_meta(self, conn: psycopg.AsyncConnection[Any]) -> None:
        rows = await (await conn.execute("SELECT key, value FROM peerlog_meta")).fetchall()
        meta = {k: bytes(v) for k, v in rows}
        version = int(meta.get("schema_version", str(SCHEMA_VERSION).encode()))
        if version > SCHEMA_VERSION:
            raise BackendError(f"the database has oplog schema version {version}; this "
                               f"peerlog reads at most {SCHEMA_VERSION}: upgrade peerlog")
        if version < SCHEMA_VERSION and "schema_version" in meta:
            await conn.execute("UPDATE peerlog_meta SET value = %s WHERE key = 'schema_version'",
                               (str(SCHEMA_VERSION).encode(),))
        stored = meta.get("origin")
        if stored is None:
            chosen = self._wanted_origin or uuid.uuid4()
            await conn.execute(
                "INSERT INTO peerlog_meta(key, value) VALUES ('origin', %s),"
                " ('schema_version', %s)", (chosen.bytes, str(SCHEMA_VERSION).encode()))
        else:
            chosen = UUID(bytes=stored)
            if self._wanted_origin is not None and self._wanted_origin != chosen:
                raise IdentityError(f"the database belongs to origin {chosen}, "
                                    f"not {self._wanted_origin}")
        self._origin = chosen

    @property
    def origin(self) -> UUID:
        """This store's peer id (known once opened)."""
        if self._origin is None:
            raise ClosedError("the PostgreSQL oplog is not open yet: await open() first")
        return self._origin

    # -- plumbing -------------------------------------------------------------

    async def _with_conn(self, fn: Callable[[psycopg.AsyncConnection[Any]], Awaitable[_T]]
                         ) -> _T:
        if self._closed:
            raise ClosedError("the PostgreSQL oplog is closed")
        await self.open()
        try:
            async with self._pool.connection() as conn:
                return await fn(conn)
        except psycopg.Error as exc:
            raise BackendError(f"PostgreSQL oplog: {exc}") from exc

    # -- the write side -------------------------------------------------------

    async def apply(self, peer: UUID, index: int, entry: DecodedEntry) -> Applied:
        """Store ``entry`` at ``(peer, index)``; see docs/contract.md for the rules."""
        return Applied(new=await self.apply_many(peer, index, (entry,)) == 1)

    async def apply_many(self, peer: UUID, start_index: int,
                         entries: Sequence[DecodedEntry]) -> int:
        """Store a batch of ``peer``'s entries from ``start_index`` in one transaction."""
        check_batch_start(peer, start_index)
        rows = encode_entries(entries)
        if not rows:
            return 0

        async def work(conn: psycopg.AsyncConnection[Any]) -> int:
            async with conn.transaction():
                return await self._apply_in(conn, peer, start_index, rows)

        return await self._with_conn(work)

    async def _apply_in(self, conn: psycopg.AsyncConnection[Any], peer: UUID, start: int,
                        rows: list[Row]) -> int:
        await conn.execute("INSERT INTO peerlog_peers(peer, next_index) VALUES (%s, 0)"
                           " ON CONFLICT (peer) DO NOTHING", (peer,))
        cur = await conn.execute(
            "SELECT next_index, first_index FROM peerlog_peers WHERE peer = %s FOR UPDATE",
            (peer,))
        row = await cur.fetchone()
        assert row is not None
        next_index, first = int(row[0]), int(row[1])
        below = 0
        if start < first:  # compacted slots: only erasures can still matter
            below = await self._apply_compacted(conn, peer, start, rows[:first - start])
            rows, start = rows[first - start:], first
        held: list[tuple[int, int | None, bytes]] = []
        if start < next_index:
            cur = await conn.execute(
                "SELECT idx, ts, body FROM peerlog_entries WHERE peer = %s AND idx >= %s"
                " AND idx < %s ORDER BY idx",
                (peer, start, min(next_index, start + len(rows))))
            held = [(i, ts, bytes(b)) for i, ts, b in await cur.fetchall()]
        plan = plan_batch(peer, start, rows, next_index, lambda _lo, _hi: held)
        if plan.erase:
            async with conn.cursor() as c:
                await c.executemany(
                    "UPDATE peerlog_entries SET ts = NULL, body = %s WHERE peer = %s"
                    " AND idx = %s", [(digest, peer, index) for index, digest in plan.erase])
        if plan.tail:
            async with conn.cursor() as c, c.copy(
                    "COPY peerlog_entries (peer, idx, ts, body) FROM STDIN") as copy:
                for i, (ts, body) in enumerate(plan.tail, plan.tail_start):
                    await copy.write_row((peer, i, ts, body))
            end = plan.tail_start + len(plan.tail)
            await conn.execute("UPDATE peerlog_peers SET next_index = %s WHERE peer = %s",
                               (end, peer))
            await conn.execute("SELECT pg_notify(%s, %s)", (self._channel, f"{peer} {end}"))
        return plan.new + below

    async def _apply_compacted(self, conn: psycopg.AsyncConnection[Any], peer: UUID,
                               start: int, rows: list[Row]) -> int:
        cur = await conn.execute("SELECT idx, ts, body FROM peerlog_entries WHERE peer = %s"
                                 " AND idx >= %s AND idx < %s", (peer, start, start + len(rows)))
        held = {int(i): (ts, bytes(b)) for i, ts, b in await cur.fetchall()}
        plan = plan_compacted(peer, start, rows, held)
        async with conn.cursor() as c:
            if plan.insert:
                await c.executemany("INSERT INTO peerlog_entries(peer, idx, ts, body)"
                                    " VALUES (%s, %s, NULL, %s)",
                                    [(peer, index, digest) for index, digest in plan.insert])
            if plan.erase:
                await c.executemany("UPDATE peerlog_entries SET ts = NULL, body = %s"
                                    " WHERE peer = %s AND idx = %s",
                                    [(digest, peer, index) for index, digest in plan.erase])
        return plan.new

    async def compact(self, upto: Mapping[UUID, int]) -> int:
        """Drop every entry below ``upto`` (per origin, never past its cursor; erasure
        markers stay); each origin's log then starts there.  Returns how many were
        dropped.  PostgreSQL frees the space at its next VACUUM."""
        async def work(conn: psycopg.AsyncConnection[Any]) -> int:
            dropped = 0
            async with conn.transaction():
                for peer, index in upto.items():
                    cur = await conn.execute(
                        "UPDATE peerlog_peers SET first_index = least(%s, next_index)"
                        " WHERE peer = %s AND first_index < least(%s, next_index)"
                        " RETURNING first_index", (index, peer, index))
                    row = await cur.fetchone()
                    if row is None:
                        continue
                    cur = await conn.execute(
                        "DELETE FROM peerlog_entries WHERE peer = %s AND idx < %s"
                        " AND ts IS NOT NULL", (peer, int(row[0])))
                    dropped += cur.rowcount
            return dropped

        return await self._with_conn(work)

    # -- what a relay keeps beside the log ---------------------------------------

    async def keep_snapshot(self, meta: SnapshotMeta, data: bytes) -> None:
        """Store snapshot bytes under their name (a relay's copy; idempotent)."""
        async def work(conn: psycopg.AsyncConnection[Any]) -> None:
            await conn.execute(
                "INSERT INTO peerlog_snapshots(name, producer, created_ms, frontier, size, body)"
                " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (name) DO NOTHING",
                (meta.name, meta.producer, meta.created_ms,
                 json.dumps(meta.frontier.to_json()), len(data), data))
        await self._with_conn(work)

    async def kept_snapshots(self) -> list[SnapshotMeta]:
        """Every snapshot kept here."""
        async def work(conn: psycopg.AsyncConnection[Any]) -> list[SnapshotMeta]:
            cur = await conn.execute("SELECT name, producer, created_ms, frontier, size"
                                     " FROM peerlog_snapshots ORDER BY name")
            return [SnapshotMeta(n, int(z), p, int(c), PeerCursors.from_json(json.loads(f)))
                    for n, p, c, f, z in await cur.fetchall()]
        return await self._with_conn(work)

    async def kept_snapshot(self, name: str) -> bytes | None:
        """The bytes of one kept snapshot (None: not kept)."""
        async def work(conn: psycopg.AsyncConnection[Any]) -> bytes | None:
            cur = await conn.execute("SELECT body FROM peerlog_snapshots WHERE name = %s",
                                     (name,))
            row = await cur.fetchone()
            return None if row is None else bytes(row[0])
        return await self._with_conn(work)

    async def drop_snapshot(self, name: str) -> bool:
        """Remove a kept snapshot (PostgreSQL frees the space at its next VACUUM)."""
        async def work(conn: psycopg.AsyncConnection[Any]) -> bool:
            cur = await conn.execute("DELETE FROM peerlog_snapshots WHERE name = %s", (name,))
            return bool(cur.rowcount)
        return await self._with_conn(work)

    async def keep_cursors(self, origin: UUID, cursors: PeerCursors, written_ms: int) -> None:
        """Record what device ``origin`` says it holds, and when."""
        async def work(conn: psycopg.AsyncConnection[Any]) -> None:
            await conn.execute(
                "INSERT INTO peerlog_acks(origin, cursors, written_ms) VALUES (%s, %s, %s)"
                " ON CONFLICT (origin) DO UPDATE SET cursors = excluded.cursors,"
                " written_ms = excluded.written_ms",
                (origin, json.dumps(cursors.to_json()), written_ms))
        await self._with_conn(work)

    async def kept_cursors(self) -> dict[UUID, tuple[PeerCursors, int]]:
        """What each device last said it holds, and when (ms since the epoch)."""
        async def work(conn: psycopg.AsyncConnection[Any]
                       ) -> dict[UUID, tuple[PeerCursors, int]]:
            cur = await conn.execute("SELECT origin, cursors, written_ms FROM peerlog_acks")
            return {o: (PeerCursors.from_json(json.loads(c)), int(w))
                    for o, c, w in await cur.fetchall()}
        return await self._with_conn(work)

    async def start_at(self, peer: UUID, index: int) -> None:
        """Let ``peer``'s log here start at ``index`` (see `SqliteOplog.start_at`)."""
        async def work(conn: psycopg.AsyncConnection[Any]) -> None:
            async with conn.transaction():
                await conn.execute("INSERT INTO peerlog_peers(peer, next_index) VALUES (%s, 0)"
                                   " ON CONFLICT (peer) DO NOTHING", (peer,))
                cur = await conn.execute("SELECT next_index, first_index FROM peerlog_peers"
                                         " WHERE peer = %s FOR UPDATE", (peer,))
                row = await cur.fetchone()
                assert row is not None
                held, first = int(row[0]), int(row[1])
                if (held, first) == (index, index):
                    return
                if held:
                    raise CursorMismatchError(0, held, peer=peer)
                await conn.execute("UPDATE peerlog_peers SET next_index = %s, first_index = %s"
                                   " WHERE peer = %s", (index, index, peer))
                await conn.execute("SELECT pg_notify(%s, %s)", (self._channel, f"{peer} {index}"))
        await self._with_conn(work)

    async def first_indexes(self) -> PeerCursors:
        """Every origin whose log here starts above 0 (compacted), and where."""
        async def work(conn: psycopg.AsyncConnection[Any]) -> PeerCursors:
            cur = await conn.execute(
                "SELECT peer, first_index FROM peerlog_peers WHERE first_index > 0")
            return PeerCursors({p: int(n) for p, n in await cur.fetchall()})

        return await self._with_conn(work)

    # -- the read side --------------------------------------------------------

    async def read_since(self, peer: UUID, from_index: int,
                         limit: int | None = None) -> list[tuple[int, DecodedEntry]]:
        """Up to ``min(limit, read_batch)`` entries of ``peer`` from ``from_index``."""
        bound = read_bound(from_index, limit, self._read_batch)
        if bound == 0:
            return []

        async def work(conn: psycopg.AsyncConnection[Any]) -> list[tuple[int, DecodedEntry]]:
            cur = await conn.execute("SELECT first_index FROM peerlog_peers WHERE peer = %s",
                                     (peer,))
            first = await cur.fetchone()
            if first is not None and from_index < int(first[0]):
                raise CompactedError(peer, from_index, int(first[0]))
            # The byte bound is applied by the server (a running sum of body
            # sizes), so a page of large entries never crosses the wire whole.
            cur = await conn.execute(
                "SELECT idx, ts, body FROM ("
                " SELECT idx, ts, body, sum(octet_length(body)) OVER (ORDER BY idx)"
                "  - octet_length(body) AS before"
                " FROM peerlog_entries WHERE peer = %s AND idx >= %s ORDER BY idx LIMIT %s) page"
                " WHERE before + octet_length(body) <= %s OR idx = %s ORDER BY idx",
                (peer, from_index, bound, MAX_BATCH_BYTES, from_index), binary=True)
            return decode_rows(await cur.fetchall())

        return await self._with_conn(work)

    async def erased(self) -> dict[UUID, list[tuple[int, bytes]]]:
        """Every origin's expunged slots ``(index, digest)``, from a partial index."""
        async def work(conn: psycopg.AsyncConnection[Any]
                       ) -> dict[UUID, list[tuple[int, bytes]]]:
            cur = await conn.execute("SELECT peer, idx, body FROM peerlog_entries"
                                     " WHERE ts IS NULL ORDER BY peer, idx")
            out: dict[UUID, list[tuple[int, bytes]]] = {}
            for peer, index, digest in await cur.fetchall():
                out.setdefault(peer, []).append((int(index), bytes(digest)))
            return out

        return await self._with_conn(work)

    async def cursors(self) -> PeerCursors:
        """Every origin's next index (one row per origin)."""
        async def work(conn: psycopg.AsyncConnection[Any]) -> PeerCursors:
            cur = await conn.execute(
                "SELECT peer, next_index FROM peerlog_peers WHERE next_index > 0")
            return PeerCursors({p: int(n) for p, n in await cur.fetchall()})

        return await self._with_conn(work)

    def watch_cursors(self) -> CursorStream:
        """A `Snapshot`, then `Advanced` deltas from every process (``LISTEN/NOTIFY``)."""
        if self._closed:
            raise ClosedError("the PostgreSQL oplog is closed")
        return self._hub.watch()

    # -- notifications --------------------------------------------------------

    def _start_listening(self) -> None:
        self._listener = asyncio.get_running_loop().create_task(self._listen())

    def _stop_listening(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            self._listener = None

    async def _listen(self) -> None:
        """One dedicated connection LISTENs; reconnects after a failure."""
        while not self._closed:
            try:
                await self.open()
                async with await psycopg.AsyncConnection.connect(self._dsn,
                                                                 autocommit=True) as conn:
                    await conn.execute(sql.SQL("LISTEN {}").format(
                        sql.Identifier(self._channel)))
                    # Anything committed while (re)connecting: a fresh snapshot.
                    self._hub.publish(await self.cursors())
                    async for note in _notifies(conn):
                        peer_text, _, index_text = note.partition(" ")
                        try:
                            self._hub.publish({UUID(peer_text): int(index_text)})
                        except ValueError:
                            log.warning("ignoring malformed cursor notification %r", note)
            except asyncio.CancelledError:
                raise
            except (psycopg.Error, SyncError, OSError) as exc:
                log.warning("cursor notifications interrupted (%s); reconnecting", exc)
                await asyncio.sleep(0.5)

    # -- lifecycle ------------------------------------------------------------

    async def close(self) -> None:
        """End every watch and close the pool. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._hub.close()
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
        await self._pool.close()

    async def __aenter__(self) -> PostgresOplog:
        return await self.open()


    def __repr__(self) -> str:
        return f"<PostgresOplog origin={self._origin} {'closed' if self._closed else 'open'}>"


async def _notifies(conn: psycopg.AsyncConnection[Any]) -> AsyncIterator[str]:
    async for note in conn.notifies():
        yield note.payload
