"""`SqliteOplog`: the embedded SQL oplog, a `Replica` on the standard library's sqlite3.

Schema (version 2)::

    peerlog_meta(key TEXT PRIMARY KEY, value BLOB)           -- origin, hlc, schema version
    peerlog_peers(id INTEGER PRIMARY KEY, peer BLOB UNIQUE,  -- 16-byte UUID
                  next_index INTEGER,                        -- the cursor, O(origins) to read
                  first_index INTEGER)                       -- where the log starts (2)
    peerlog_entries(peer INTEGER, idx INTEGER, ts INTEGER, body BLOB,
                    PRIMARY KEY (peer, idx)) WITHOUT ROWID
    peerlog_deferred(peer BLOB PRIMARY KEY, idx, ts, ahead_ms)  -- entries waiting
                                                             -- for the clock (0.2)

An entry is stored as ``(ts, payload)``; an expunged marker as ``(NULL, digest)``.
Version 2 (peerlog 0.2) added ``first_index``: below it an origin's log was
compacted (`compact`, `adopt_frontier`), and `read_since` there raises
`CompactedError`; a version-1 database gains the column, at 0, on first open.
The clustered ``(peer, idx)`` key makes ``read_since`` one range scan and a
batch insert an append at the end of the b-tree.

Concurrency: one worker thread owns the connection and runs every statement,
so any number of asyncio tasks may share one oplog; writes take
``BEGIN IMMEDIATE`` so two processes on one file serialise instead of failing
a lock upgrade.  Other processes' commits are noticed through
``PRAGMA data_version``, polled only while somebody watches.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import count, repeat
from operator import itemgetter
from typing import Any, TypeVar
from uuid import UUID

from peerlog.oplog.batch import (
    BoundedFetch,
    Row,
    decode_rows,
    encode_entries,
    plan_batch,
    plan_compacted,
)
from peerlog.oplog.hooks import ApplyHook
from peerlog.sync import defaults
from peerlog.sync.batch import (
    DEFAULT_READ_BATCH,
    check_batch_start,
    check_payload_size,
    gc_paused,
    read_bound,
)
from peerlog.sync.cursors import CursorStream, PeerCursors
from peerlog.sync.entry import DecodedEntry, Entry, Expunged
from peerlog.sync.errors import (
    BackendError,
    ClockSkewError,
    ClosedError,
    CodecError,
    CompactedError,
    CursorMismatchError,
    DeferredError,
    DiskFullError,
    IdentityError,
    IndexOutOfRangeError,
    InvalidArgumentError,
    SnapshotError,
    SyncError,
)
from peerlog.sync.faces import Applied, AsyncClosing, Deferral, SnapshotMeta
from peerlog.sync.hlc import COUNTER_BITS, Hlc, ts_millis
from peerlog.sync.watch import CursorHub

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2

_T = TypeVar("_T")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS peerlog_meta(
    key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS peerlog_peers(
    id INTEGER PRIMARY KEY, peer BLOB NOT NULL UNIQUE, next_index INTEGER NOT NULL,
    first_index INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS peerlog_entries(
    peer INTEGER NOT NULL, idx INTEGER NOT NULL, ts INTEGER, body BLOB NOT NULL,
    PRIMARY KEY (peer, idx)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS peerlog_erased ON peerlog_entries(peer, idx) WHERE ts IS NULL;
CREATE TABLE IF NOT EXISTS peerlog_deferred(
    peer BLOB PRIMARY KEY, idx INTEGER NOT NULL, ts INTEGER NOT NULL,
    ahead_ms INTEGER NOT NULL) WITHOUT ROWID;
"""


_KEEPER_SNAPSHOTS = """CREATE TABLE IF NOT EXISTS peerlog_snapshots(
    name TEXT PRIMARY KEY, producer BLOB NOT NULL, created_ms INTEGER NOT NULL,
    frontier TEXT NOT NULL, size INTEGER NOT NULL, body BLOB NOT NULL)"""
_KEEPER_ACKS = """CREATE TABLE IF NOT EXISTS peerlog_acks(
    origin BLOB PRIMARY KEY, cursors TEXT NOT NULL, written_ms INTEGER NOT NULL)"""


class SqliteOplog(AsyncClosing):
    """The embedded oplog: a `Replica` for every origin, plus local `append`.

    ``path`` is a file (created if missing) or ``":memory:"``.  ``origin`` is
    this device's peer id: created and persisted on first open when ``None``;
    opening an existing database with another origin raises `IdentityError`.

    With ``max_skew_ms`` set (a device's state does), `apply_many` refuses
    with `DeferredError` a batch holding an entry stamped further ahead of
    ``hlc``'s wall clock than that, and remembers the deferral (`deferred`).

    Failure modes: every sqlite3 failure (a locked, corrupt or foreign file) is
    a `BackendError` with the cause; use after `close` is `ClosedError`.
    Keep the file outside any synced folder: only file logs belong there.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        origin: UUID | None = None,
        *,
        read_batch: int = DEFAULT_READ_BATCH,
        poll_interval: float = defaults.SQLITE_POLL_INTERVAL,
        hooks: Sequence[ApplyHook] = (),
        hlc: Hlc | None = None,
        max_skew_ms: int | None = None,
    ) -> None:
        self._path = os.fspath(path)
        self._max_skew_ms = max_skew_ms
        self._bulk: _Bulk | None = None
        self._forked_from: UUID | None = None
        self._read_batch = read_batch
        self._poll_interval = poll_interval
        self._hooks = tuple(hooks)
        self._closed = False
        self._pids: dict[UUID, int] = {}
        self._poller: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="peerlog-sqlite")
        try:
            _create_private(self._path)
            self._conn = sqlite3.connect(
                self._path, isolation_level=None, check_same_thread=False, timeout=30.0
            )
        except (sqlite3.Error, OSError) as exc:
            self._executor.shutdown(wait=False)
            raise BackendError(f"cannot open SQLite oplog at {self._path!r}: {exc}") from exc
        try:
            self._origin, hlc_last = self._open_schema(origin)
        except BaseException:
            self._conn.close()
            self._executor.shutdown(wait=False)
            raise
        self._hlc = hlc if hlc is not None else Hlc(last=hlc_last)
        self._data_version = self._conn.execute("PRAGMA data_version").fetchone()[0]
        self._known = self._read_cursors()
        self._hub = CursorHub(self.cursors, on_first=self._start_poller,
                              on_last=self._stop_poller)

    # -- opening --------------------------------------------------------------

    def _open_schema(self, origin: UUID | None) -> tuple[UUID, int]:
        conn = self._conn
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA temp_store=MEMORY")  # the state view's scratch table
            conn.execute("PRAGMA trusted_schema=OFF")  # an attached snapshot runs nothing
            conn.execute(f"PRAGMA cache_size={-defaults.SQLITE_CACHE_KIB}")
            conn.execute("BEGIN IMMEDIATE")
            try:
                # Statement by statement: executescript() would COMMIT the
                # transaction that makes opening atomic.
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                meta = dict(conn.execute("SELECT key, value FROM peerlog_meta").fetchall())
                version = int(meta.get("schema_version", SCHEMA_VERSION))
                if version > SCHEMA_VERSION:
                    raise BackendError(
                        f"{self._path!r} has oplog schema version {version}; this peerlog "
                        f"reads at most version {SCHEMA_VERSION}: upgrade peerlog"
                    )
                columns = {r[1] for r in conn.execute("PRAGMA table_info(peerlog_peers)")}
                if "first_index" not in columns:  # written by peerlog 0.1
                    conn.execute("ALTER TABLE peerlog_peers ADD COLUMN first_index INTEGER"
                                 " NOT NULL DEFAULT 0")
                if version < SCHEMA_VERSION and "origin" in meta:
                    conn.execute("UPDATE peerlog_meta SET value = ? WHERE key = "
                                 "'schema_version'", (SCHEMA_VERSION,))
                stored = meta.get("origin")
                if stored is None:
                    chosen = origin if origin is not None else uuid.uuid4()
                    conn.executemany(
                        "INSERT INTO peerlog_meta(key, value) VALUES (?, ?)",
                        [("origin", chosen.bytes), ("schema_version", SCHEMA_VERSION),
                         ("hlc", 0)],
                    )
                else:
                    chosen = UUID(bytes=bytes(stored))
                    if origin is not None and origin != chosen:
                        raise IdentityError(
                            f"{self._path!r} belongs to origin {chosen}, not {origin}"
                        )
                for hook in self._hooks:
                    hook.setup(conn)
                forked = meta.get("forked_from")
                self._forked_from = UUID(bytes=bytes(forked)) if forked is not None else None
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)
                raise
            return chosen, int(meta.get("hlc", 0))
        except sqlite3.Error as exc:
            raise BackendError(f"cannot open SQLite oplog at {self._path!r}: {exc}") from exc

    # -- properties -----------------------------------------------------------

    @property
    def origin(self) -> UUID:
        """This device's peer id."""
        return self._origin

    @property
    def forked_from(self) -> UUID | None:
        """The origin this device wrote before it last continued as a new one (None if it
        never did): see `continue_as_new_origin`."""
        return self._forked_from

    @property
    def path(self) -> str:
        """The database file (or ``":memory:"``)."""
        return self._path

    @property
    def hlc(self) -> Hlc:
        """The clock that stamps local changes."""
        return self._hlc

    @property
    def closed(self) -> bool:
        """Whether `close` was called."""
        return self._closed

    # -- plumbing -------------------------------------------------------------

    async def _run(self, fn: Callable[..., _T], *args: Any) -> _T:
        if self._closed:
            raise ClosedError(f"the SQLite oplog {self._path!r} is closed")
        loop = asyncio.get_running_loop()
        try:
            future = loop.run_in_executor(self._executor, self._guarded, fn, loop, *args)
        except RuntimeError as exc:
            raise ClosedError(f"the SQLite oplog {self._path!r} is closed") from exc
        return await future

    def _guarded(self, fn: Callable[..., _T], loop: asyncio.AbstractEventLoop, *args: Any) -> _T:
        try:
            return fn(loop, *args)
        except sqlite3.Error as exc:
            if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
                raise DiskFullError(f"disk is full: cannot write the SQLite oplog "
                                    f"{self._path!r}; free some space and retry") from exc
            raise BackendError(f"SQLite oplog {self._path!r}: {exc}") from exc

    def _announce(self, loop: asyncio.AbstractEventLoop, moved: dict[UUID, int]) -> None:
        # Runs on the worker thread right after COMMIT, so watchers hear of a
        # commit even when the awaiting task was cancelled meanwhile.
        for peer, index in moved.items():
            if index > self._known.get(peer, 0):
                self._known[peer] = index
        if not loop.is_closed():
            loop.call_soon_threadsafe(self._hub.publish, moved)

    def _pid(self, peer: UUID, *, create: bool) -> int | None:
        pid = self._pids.get(peer)
        if pid is not None:
            return pid
        row = self._conn.execute(
            "SELECT id FROM peerlog_peers WHERE peer = ?", (peer.bytes,)
        ).fetchone()
        if row is None:
            if not create:
                return None
            pid = int(self._conn.execute(
                "INSERT INTO peerlog_peers(peer, next_index) VALUES (?, 0) RETURNING id",
                (peer.bytes,),
            ).fetchone()[0])
        else:
            pid = int(row[0])
        assert pid is not None
        self._pids[peer] = pid
        return pid

    def _next_index(self, pid: int) -> int:
        return self._extent(pid)[0]

    def _extent(self, pid: int) -> tuple[int, int]:
        """``(next_index, first_index)`` of an origin."""
        row = self._conn.execute(
            "SELECT next_index, first_index FROM peerlog_peers WHERE id = ?", (pid,)
        ).fetchone()
        return int(row[0]), int(row[1])

    def _read_cursors(self) -> PeerCursors:
        rows = self._conn.execute(
            "SELECT peer, next_index FROM peerlog_peers WHERE next_index > 0"
        ).fetchall()
        return PeerCursors({UUID(bytes=bytes(p)): int(n) for p, n in rows})

    def _save_clock(self) -> None:
        self._conn.execute("UPDATE peerlog_meta SET value = max(value, ?) WHERE key = 'hlc'",
                           (self._hlc.last,))

    # -- the write side -------------------------------------------------------

    async def apply(self, peer: UUID, index: int, entry: DecodedEntry) -> Applied:
        """Store ``entry`` at ``(peer, index)``; see docs/contract.md for the rules."""
        return Applied(new=await self.apply_many(peer, index, (entry,)) == 1)

    async def apply_many(
        self, peer: UUID, start_index: int, entries: Sequence[DecodedEntry]
    ) -> int:
        """Store a batch of ``peer``'s entries from ``start_index``, all or nothing.

        Returns how many were new (stored, or erased by a matching marker).
        Raises `CursorMismatchError` when ``start_index`` is past the cursor,
        `DivergenceError` when a held slot is offered other content, and
        `CodecError` for a malformed entry; in every case nothing is stored.
        """
        check_batch_start(peer, start_index)
        rows = encode_entries(entries)
        if not rows:
            return 0
        return await self._run(self._apply_sync, peer, start_index, rows)

    def _apply_sync(
        self,
        loop: asyncio.AbstractEventLoop,
        peer: UUID,
        start: int,
        rows: list[Row],
    ) -> int:
        conn = self._conn
        bulk = self._bulk
        if bulk is not None:
            if not bulk.open:
                conn.execute("BEGIN IMMEDIATE")
                bulk.open = True
            conn.execute("SAVEPOINT peerlog_apply")
        else:
            conn.execute("BEGIN IMMEDIATE")
        try:
            pid = self._pid(peer, create=True)
            assert pid is not None
            next_index, first = self._extent(pid)
            erased_below = 0
            if start < first:  # slots a snapshot covers: only erasures can still matter
                erased_below = self._apply_compacted(peer, pid, start, rows[:first - start])
                rows, start = rows[first - start:], first
            plan = plan_batch(peer, start, rows, next_index, lambda lo, hi: conn.execute(
                "SELECT idx, ts, body FROM peerlog_entries WHERE peer = ? AND idx >= ?"
                " AND idx < ? ORDER BY idx", (pid, lo, hi)).fetchall())
            if plan.erase:
                conn.executemany(
                    "UPDATE peerlog_entries SET ts = NULL, body = ? WHERE peer = ? AND idx = ?",
                    [(digest, pid, index) for index, digest in plan.erase])
                for hook in self._hooks:
                    hook.erased(conn, peer, [index for index, _ in plan.erase])
            if plan.tail and self._max_skew_ms is not None:
                self._defer_future(peer, plan.tail_start, plan.tail)
            if plan.tail:
                stamps, bodies = zip(*plan.tail, strict=True)
                conn.executemany(
                    "INSERT INTO peerlog_entries(peer, idx, ts, body) VALUES (?, ?, ?, ?)",
                    zip(repeat(pid), count(plan.tail_start), stamps, bodies))
                conn.execute("DELETE FROM peerlog_deferred WHERE peer = ? AND idx < ?",
                             (peer.bytes, plan.tail_start + len(plan.tail)))
                conn.execute("UPDATE peerlog_peers SET next_index = ? WHERE id = ?",
                             (plan.tail_start + len(plan.tail), pid))
                for hook in self._hooks:
                    hook.applied(conn, peer, plan.tail_start, plan.tail)
                self._observe(plan.tail, peer)
            conn.execute("COMMIT" if bulk is None else "RELEASE peerlog_apply")
        except DeferredError as exc:
            self._undo_apply(peer)
            conn.execute("INSERT OR REPLACE INTO peerlog_deferred(peer, idx, ts, ahead_ms)"
                         " VALUES (?, ?, ?, ?)", (peer.bytes, exc.index, exc.ts, exc.ahead_ms))
            raise
        except BaseException:
            self._undo_apply(peer)
            raise
        if plan.tail:
            moved = {peer: plan.tail_start + len(plan.tail)}
            if bulk is None:
                self._announce(loop, moved)
            else:
                bulk.moved.update(moved)
                bulk.pending += len(plan.tail)
                if bulk.pending >= bulk.commit_every:
                    self._bulk_commit(loop)
        return plan.new + erased_below

    def _apply_compacted(self, peer: UUID, pid: int, start: int, rows: list[Row]) -> int:
        """Offered slots below the origin's first index (`plan_compacted`); returns how
        many were new."""
        conn = self._conn
        held = {int(i): (ts, bytes(body)) for i, ts, body in conn.execute(
            "SELECT idx, ts, body FROM peerlog_entries WHERE peer = ? AND idx >= ? AND idx < ?",
            (pid, start, start + len(rows)))}
        plan = plan_compacted(peer, start, rows, held)
        conn.executemany("INSERT INTO peerlog_entries(peer, idx, ts, body)"
                         " VALUES (?, ?, NULL, ?)",
                         [(pid, index, digest) for index, digest in plan.insert])
        conn.executemany("UPDATE peerlog_entries SET ts = NULL, body = ?"
                         " WHERE peer = ? AND idx = ?",
                         [(digest, pid, index) for index, digest in plan.erase])
        if plan.new:
            for hook in self._hooks:
                hook.erased(conn, peer, sorted(i for i, _ in plan.insert + plan.erase))
        return plan.new

    def _undo_apply(self, peer: UUID) -> None:
        """Undo one failed `apply_many`: its transaction, or its savepoint in a bulk."""
        conn, bulk = self._conn, self._bulk
        # The peer row may have been created by this very transaction.
        self._pids.pop(peer, None)
        if bulk is None or not conn.in_transaction:
            _rollback(conn)
            if bulk is not None and bulk.open:  # SQLite rolled the whole bulk back itself
                bulk.open, bulk.pending, bulk.moved = False, 0, {}
                self._pids.clear()
            return
        conn.execute("ROLLBACK TO peerlog_apply")
        conn.execute("RELEASE peerlog_apply")

    # -- bulk catch-ups --------------------------------------------------------

    @contextlib.asynccontextmanager
    async def bulk(self, commit_every: int = defaults.BULK_COMMIT_ENTRIES
                   ) -> AsyncIterator[None]:
        """Group the `apply_many` calls made inside into few durable commits.

        For a large catch-up (a new device taking in a long history): each
        `apply_many` stays all or nothing (a savepoint), but the database
        commits, and watchers hear of it, only every ``commit_every`` new
        entries and at the end, instead of once per batch.  A crash loses at
        most the entries since the last commit; the cursors then say where to
        resume.  A local `append` meanwhile commits what came before it first,
        so it is durable when it returns, as always.  Nested uses share one.
        """
        if self._bulk is not None:
            yield
            return
        await self._run(self._bulk_start, commit_every)
        try:
            yield
        finally:
            if not self._closed:
                await self._run(self._bulk_end)

    def _bulk_start(self, _loop: asyncio.AbstractEventLoop, commit_every: int) -> None:
        self._bulk = _Bulk(max(commit_every, 1))

    def _bulk_end(self, loop: asyncio.AbstractEventLoop | None) -> None:
        try:
            self._bulk_commit(loop)
        finally:
            self._bulk = None

    def _bulk_commit(self, loop: asyncio.AbstractEventLoop | None) -> None:
        """Commit a bulk's open transaction (the next apply begins a new one)."""
        bulk = self._bulk
        if bulk is None or not bulk.open:
            return
        self._conn.execute("COMMIT")
        moved, bulk.open, bulk.pending, bulk.moved = bulk.moved, False, 0, {}
        if moved and loop is not None:
            self._announce(loop, moved)

    def _defer_future(self, peer: UUID, start: int, rows: list[Row]) -> None:
        """Raise `DeferredError` at the first entry stamped beyond ``max_skew_ms``."""
        assert self._max_skew_ms is not None
        wall = self._hlc.wall()
        limit = (wall + self._max_skew_ms + 1) << COUNTER_BITS
        if _newest(rows) < limit:
            return
        for index, (ts, _) in enumerate(rows, start):
            if ts is not None and ts >= limit:
                raise DeferredError(peer, index, ts, ts_millis(ts) - wall)

    async def deferred(self) -> dict[UUID, Deferral]:
        """Origins whose next entry waits for this device's clock (see `DeferredError`)."""
        def work(_loop: asyncio.AbstractEventLoop) -> dict[UUID, Deferral]:
            wall = self._hlc.wall()
            return {UUID(bytes=bytes(p)): Deferral(int(i), int(ts), ts_millis(int(ts)) - wall)
                    for p, i, ts in self._conn.execute(
                        "SELECT d.peer, d.idx, d.ts FROM peerlog_deferred d"
                        " LEFT JOIN peerlog_peers p ON p.peer = d.peer"
                        " WHERE d.idx >= coalesce(p.next_index, 0)")}
        return await self._run(work)

    def _observe(self, rows: list[Row], peer: UUID) -> None:
        """Advance the clock past remote timestamps (within the drift bound) and save it."""
        newest = _newest(rows)
        if not newest:
            return
        try:
            self._hlc.observe(newest)
        except ClockSkewError as exc:
            log.warning("not advancing the clock for peer %s: %s", peer, exc)
        self._save_clock()

    async def append(self, payload: bytes) -> tuple[int, Entry]:
        """Record a local change: the origin's next index and a fresh HLC timestamp."""
        return (await self.append_many([payload]))[0]

    async def append_many(self, payloads: Sequence[bytes]) -> list[tuple[int, Entry]]:
        """Record several local changes in one transaction, in order."""
        for payload in payloads:
            if type(payload) is not bytes:
                raise CodecError(f"payload must be bytes, got {type(payload).__name__}")
            check_payload_size(payload)
        if not payloads:
            return []
        return await self._run(self._append_sync, list(payloads))

    def _append_sync(
        self, loop: asyncio.AbstractEventLoop, payloads: list[bytes]
    ) -> list[tuple[int, Entry]]:
        conn = self._conn
        self._bulk_commit(loop)  # a local change is durable on return, bulk or not
        conn.execute("BEGIN IMMEDIATE")
        try:
            out, end = self._record_local(payloads)
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise
        self._announce(loop, {self._origin: end})
        return out

    async def continue_as_new_origin(self, fork_index: int) -> tuple[UUID, int]:
        """Become a new origin, carrying this origin's entries from ``fork_index`` on.

        For a device whose own origin has forked in the folder or on a relay
        (restored from a backup and then changed, or a copied home): the
        entries it holds from ``fork_index`` on were never published and
        disagree with the published ones.  In one transaction they are removed
        from the old origin (whose published history then arrives like any
        other device's), and appended again, in order and freshly stamped, as
        the first entries of a new origin, which this oplog writes from now on.
        Erased entries are not carried.  Returns ``(new origin, entries carried)``.
        """
        if fork_index < 0:
            raise InvalidArgumentError(f"fork index must be >= 0, got {fork_index}")
        return await self._run(self._fork_sync, fork_index)

    def _fork_sync(self, loop: asyncio.AbstractEventLoop, fork: int) -> tuple[UUID, int]:
        conn = self._conn
        old = self._origin
        new = uuid.uuid4()
        self._bulk_commit(loop)
        conn.execute("BEGIN IMMEDIATE")
        try:
            pid = self._pid(old, create=True)
            assert pid is not None
            rows = conn.execute("SELECT idx, ts, body FROM peerlog_entries WHERE peer = ?"
                                " AND idx >= ? ORDER BY idx", (pid, fork)).fetchall()
            conn.execute("DELETE FROM peerlog_entries WHERE peer = ? AND idx >= ?", (pid, fork))
            conn.execute("UPDATE peerlog_peers SET next_index = min(next_index, ?) WHERE id = ?",
                         (fork, pid))
            for hook in self._hooks:
                hook.erased(conn, old, [int(i) for i, _, _ in rows])
            conn.executemany("INSERT OR REPLACE INTO peerlog_meta(key, value) VALUES (?, ?)",
                             [("origin", new.bytes), ("forked_from", old.bytes)])
            self._origin = new
            carried, _ = self._record_local([bytes(body) for _, ts, body in rows
                                             if ts is not None])
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            self._origin = old
            self._pids.pop(new, None)
            raise
        self._forked_from = old
        self._known[old] = min(self._known.get(old, 0), fork)
        self._announce(loop, {new: len(carried)})
        log.warning("origin %s forked at index %d: continuing as origin %s with %d entries "
                    "carried over", old, fork, new, len(carried))
        return new, len(carried)

    def _record_local(self, payloads: Sequence[bytes]) -> tuple[list[tuple[int, Entry]], int]:
        """Stamp ``payloads`` and store them as this origin's next entries, inside the
        caller's transaction; returns them and the origin's new cursor."""
        conn = self._conn
        pid = self._pid(self._origin, create=True)
        assert pid is not None
        # Another process of this device may have stamped or applied later
        # entries: never stamp below what it saved (causal order).
        self._hlc.catch_up(int(conn.execute(
            "SELECT value FROM peerlog_meta WHERE key = 'hlc'").fetchone()[0]))
        start = self._next_index(pid)
        out = [(start + n, Entry(self._hlc.now(), p)) for n, p in enumerate(payloads)]
        conn.executemany("INSERT INTO peerlog_entries(peer, idx, ts, body) VALUES (?, ?, ?, ?)",
                         [(pid, i, e.ts, e.payload) for i, e in out])
        end = start + len(out)
        conn.execute("UPDATE peerlog_peers SET next_index = ? WHERE id = ?", (end, pid))
        for hook in self._hooks:
            hook.applied(conn, self._origin, start, [(e.ts, e.payload) for _, e in out])
        self._save_clock()
        return out, end

    # -- the read side --------------------------------------------------------

    async def read_since(
        self, peer: UUID, from_index: int, limit: int | None = None
    ) -> list[tuple[int, DecodedEntry]]:
        """Up to ``min(limit, read_batch)`` entries of ``peer`` from ``from_index``, ascending."""
        bound = read_bound(from_index, limit, self._read_batch)
        if bound == 0:
            return []
        return await self._run(self._read_sync, peer, from_index, bound)

    def _read_sync(
        self, loop: asyncio.AbstractEventLoop, peer: UUID, from_index: int, bound: int
    ) -> list[tuple[int, DecodedEntry]]:
        pid = self._pid(peer, create=False)
        if pid is None:
            return []
        _, first = self._extent(pid)
        if from_index < first:
            raise CompactedError(peer, from_index, first)
        with gc_paused():
            cursor = self._conn.execute(
                "SELECT idx, ts, body FROM peerlog_entries WHERE peer = ? AND idx >= ?"
                " ORDER BY idx LIMIT ?",
                (pid, from_index, bound),
            )
            fetch = BoundedFetch(bound)
            while (size := fetch.next_size()) and fetch.take(cursor.fetchmany(size)):
                pass
            cursor.close()
            return decode_rows(fetch.rows)

    async def first_indexes(self) -> PeerCursors:
        """Every origin whose log here starts above 0 (compacted, or taken from a snapshot),
        mapped to its first held index."""
        return await self._run(lambda _loop: PeerCursors(
            {UUID(bytes=bytes(p)): int(i) for p, i in self._conn.execute(
                "SELECT peer, first_index FROM peerlog_peers WHERE first_index > 0")}))

    async def start_at(self, peer: UUID, index: int) -> None:
        """Let ``peer``'s log here start at ``index`` (its entries below are in a
        snapshot): only while this replica holds nothing of it; `CursorMismatchError`
        otherwise.  What a device whose own log was compacted does in a new place."""
        if index < 0:
            raise InvalidArgumentError(f"a log cannot start at {index}")

        def work(loop: asyncio.AbstractEventLoop) -> None:
            with self._write():
                pid = self._pid(peer, create=True)
                assert pid is not None
                held, first = self._extent(pid)
                if (held, first) == (index, index):
                    return
                if held:
                    raise CursorMismatchError(0, held, peer=peer)
                self._conn.execute("UPDATE peerlog_peers SET next_index = ?, first_index = ?"
                                   " WHERE id = ?", (index, index, pid))
            self._announce(loop, {peer: index})
        await self._run(work)

    async def run_attached(self, fn: Callable[[sqlite3.Connection], _T], body: bytes
                           ) -> tuple[_T, bytes]:
        """Run ``fn(connection)`` in one transaction with the database ``body`` (bytes, as
        `sqlite3.Connection.serialize` makes) attached in memory as ``peerlog_snap``;
        returns what ``fn`` returned and the attached database's bytes afterwards.  To
        copy the view out in SQL (state snapshots); ``fn`` may write only
        ``peerlog_snap``.  Nothing touches the disk."""
        def work(loop: asyncio.AbstractEventLoop) -> tuple[_T, bytes]:
            self._bulk_commit(loop)
            with self._attached(body):
                self._conn.execute("BEGIN")
                try:
                    out = fn(self._conn)
                    self._conn.execute("COMMIT")
                except BaseException:
                    _rollback(self._conn)
                    raise
                return out, self._conn.serialize(name="peerlog_snap")
        return await self._run(work)

    @contextlib.contextmanager
    def _attached(self, body: bytes | None) -> Iterator[None]:
        """``body`` attached in memory as ``peerlog_snap`` (nothing when None)."""
        if body is None:
            yield
            return
        self._conn.execute("ATTACH DATABASE ':memory:' AS peerlog_snap")
        try:
            try:
                self._conn.deserialize(body, name="peerlog_snap")
                self._conn.execute("SELECT count(*) FROM peerlog_snap.sqlite_schema")
            except sqlite3.Error as exc:
                raise SnapshotError(f"snapshot body is not a database this peerlog reads: "
                                    f"{exc}") from exc
            yield
        finally:
            self._conn.execute("DETACH DATABASE peerlog_snap")

    async def adopt_frontier(self, frontier: Mapping[UUID, int],
                             fill: Callable[[sqlite3.Connection], None], *,
                             attach: bytes | None = None) -> PeerCursors:
        """Take in a state snapshot covering every entry below ``frontier``.

        In one transaction: for each origin the snapshot is ahead on, the
        entries held below it are dropped (the snapshot covers them; erasure
        markers stay, so erasures keep travelling) and the origin's log
        starts, and its cursor stands, at the frontier; then ``fill(conn)``
        merges the snapshot's registers into the view (with ``attach``, that
        database, as bytes, is attached in memory as ``peerlog_snap`` meanwhile).  Returns the
        cursors that moved.  An origin the snapshot is not ahead on is left alone.
        """
        return await self._run(self._adopt_sync, dict(frontier), fill, attach)

    def _adopt_sync(self, loop: asyncio.AbstractEventLoop, frontier: dict[UUID, int],
                    fill: Callable[[sqlite3.Connection], None],
                    attach: bytes | None) -> PeerCursors:
        self._bulk_commit(loop)
        with self._attached(attach):
            return self._adopt_in(loop, frontier, fill)

    def _adopt_in(self, loop: asyncio.AbstractEventLoop, frontier: dict[UUID, int],
                  fill: Callable[[sqlite3.Connection], None]) -> PeerCursors:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        moved = PeerCursors()
        try:
            for peer, index in frontier.items():
                pid = self._pid(peer, create=True)
                assert pid is not None
                if index <= self._next_index(pid):
                    continue
                conn.execute("DELETE FROM peerlog_entries WHERE peer = ? AND idx < ?"
                             " AND ts IS NOT NULL", (pid, index))
                conn.execute("UPDATE peerlog_peers SET next_index = ?, first_index = ?"
                             " WHERE id = ?", (index, index, pid))
                conn.execute("DELETE FROM peerlog_deferred WHERE peer = ? AND idx < ?",
                             (peer.bytes, index))
                moved[peer] = index
            fill(conn)
            self._save_clock()
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            self._pids.clear()
            raise
        if moved:
            self._announce(loop, dict(moved))
        return moved

    async def compact(self, upto: Mapping[UUID, int],
                      keep: Callable[[sqlite3.Connection], set[tuple[bytes, int]]]
                      | None = None) -> int:
        """Drop the entries below ``upto`` (per origin, never past its cursor) that
        ``keep(conn)`` does not name as ``(origin bytes, index)``; erasure markers stay.
        Each origin's log then starts at its ``upto``.  Returns how many were dropped.

        The caller guarantees a state snapshot covers ``upto`` (the state view keeps
        the registers the dropped entries wrote); this device's own entries must be
        published below it, since they can no longer be read from here.  The freed
        pages are zeroed (``secure_delete``); `vacuum` gives them back to the file system.
        """
        return await self._run(self._compact_sync, dict(upto), keep)

    def _compact_sync(self, _loop: asyncio.AbstractEventLoop, upto: dict[UUID, int],
                      keep: Callable[[sqlite3.Connection], set[tuple[bytes, int]]] | None
                      ) -> int:
        conn = self._conn
        self._bulk_commit(_loop)
        conn.execute("PRAGMA secure_delete=ON")
        conn.execute("BEGIN IMMEDIATE")
        try:
            kept: dict[bytes, list[int]] = {}
            for raw, i in (keep(conn) if keep is not None else ()):
                kept.setdefault(raw, []).append(i)
            conn.execute("CREATE TEMP TABLE IF NOT EXISTS peerlog_kept(peer INTEGER, idx INTEGER,"
                         " PRIMARY KEY (peer, idx)) WITHOUT ROWID")
            conn.execute("DELETE FROM temp.peerlog_kept")
            dropped = 0
            for peer, index in upto.items():
                pid = self._pid(peer, create=False)
                if pid is None:
                    continue
                next_index, first = self._extent(pid)
                index = min(index, next_index)
                if index <= first:
                    continue
                conn.executemany("INSERT OR IGNORE INTO temp.peerlog_kept VALUES (?, ?)",
                                 [(pid, i) for i in kept.get(peer.bytes, ())])
                dropped += conn.execute(
                    "DELETE FROM peerlog_entries WHERE peer = ? AND idx < ? AND ts IS NOT NULL"
                    " AND idx NOT IN (SELECT idx FROM temp.peerlog_kept WHERE peer = ?)",
                    (pid, index, pid)).rowcount
                conn.execute("UPDATE peerlog_peers SET first_index = ? WHERE id = ?",
                             (index, pid))
            conn.execute("DELETE FROM temp.peerlog_kept")
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise
        # The zeroed pages reach the database file, and the old ones leave the WAL.
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return dropped

    async def vacuum(self) -> None:
        """Rebuild the database file and truncate its write-ahead log, so the bytes of
        dropped entries are gone from the disk (after `compact`, or an erasure)."""
        def work(loop: asyncio.AbstractEventLoop) -> None:
            self._bulk_commit(loop)
            self._conn.execute("PRAGMA secure_delete=ON")
            self._conn.execute("VACUUM")
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        await self._run(work)

    # -- what a relay keeps beside the log ---------------------------------------

    def _keeper_tables(self) -> None:
        self._conn.execute(_KEEPER_SNAPSHOTS)
        self._conn.execute(_KEEPER_ACKS)

    async def keep_snapshot(self, meta: SnapshotMeta, data: bytes) -> None:
        """Store snapshot bytes under their name (a relay's copy; idempotent)."""
        def work(_loop: asyncio.AbstractEventLoop) -> None:
            self._keeper_tables()
            with self._write():
                self._conn.execute(
                    "INSERT OR IGNORE INTO peerlog_snapshots(name, producer, created_ms, frontier,"
                    " size, body) VALUES (?, ?, ?, ?, ?, ?)",
                    (meta.name, meta.producer.bytes, meta.created_ms,
                     json.dumps(meta.frontier.to_json()), len(data), data))
        await self._run(work)

    async def kept_snapshots(self) -> list[SnapshotMeta]:
        """Every snapshot kept here."""
        def work(_loop: asyncio.AbstractEventLoop) -> list[SnapshotMeta]:
            self._keeper_tables()
            return [SnapshotMeta(n, int(z), UUID(bytes=bytes(p)), int(c),
                                 PeerCursors.from_json(json.loads(f)))
                    for n, p, c, f, z in self._conn.execute(
                        "SELECT name, producer, created_ms, frontier, size"
                        " FROM peerlog_snapshots ORDER BY name")]
        return await self._run(work)

    async def kept_snapshot(self, name: str) -> bytes | None:
        """The bytes of one kept snapshot (None: not kept)."""
        def work(_loop: asyncio.AbstractEventLoop) -> bytes | None:
            self._keeper_tables()
            row = self._conn.execute("SELECT body FROM peerlog_snapshots WHERE name = ?",
                                     (name,)).fetchone()
            return None if row is None else bytes(row[0])
        return await self._run(work)

    async def drop_snapshot(self, name: str) -> bool:
        """Remove a kept snapshot, its bytes zeroed (``secure_delete``)."""
        def work(_loop: asyncio.AbstractEventLoop) -> bool:
            self._keeper_tables()
            self._conn.execute("PRAGMA secure_delete=ON")
            with self._write():
                gone = self._conn.execute("DELETE FROM peerlog_snapshots WHERE name = ?",
                                          (name,)).rowcount
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            return bool(gone)
        return await self._run(work)

    async def keep_cursors(self, origin: UUID, cursors: PeerCursors, written_ms: int) -> None:
        """Record what device ``origin`` says it holds, and when."""
        def work(_loop: asyncio.AbstractEventLoop) -> None:
            self._keeper_tables()
            with self._write():
                self._conn.execute("INSERT OR REPLACE INTO peerlog_acks(origin, cursors,"
                                   " written_ms) VALUES (?, ?, ?)",
                                   (origin.bytes, json.dumps(cursors.to_json()), written_ms))
        await self._run(work)

    async def kept_cursors(self) -> dict[UUID, tuple[PeerCursors, int]]:
        """What each device last said it holds, and when (ms since the epoch)."""
        def work(_loop: asyncio.AbstractEventLoop) -> dict[UUID, tuple[PeerCursors, int]]:
            self._keeper_tables()
            return {UUID(bytes=bytes(o)): (PeerCursors.from_json(json.loads(c)), int(w))
                    for o, c, w in self._conn.execute(
                        "SELECT origin, cursors, written_ms FROM peerlog_acks")}
        return await self._run(work)

    @contextlib.contextmanager
    def _write(self) -> Iterator[None]:
        """One write transaction on the worker thread (a bulk's is committed first)."""
        self._bulk_commit(None)
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            self._conn.execute("COMMIT")
        except BaseException:
            _rollback(self._conn)
            raise

    async def erased(self) -> dict[UUID, list[tuple[int, bytes]]]:
        """Every origin's expunged slots ``(index, digest)``, from a partial index."""
        def work(_loop: asyncio.AbstractEventLoop) -> dict[UUID, list[tuple[int, bytes]]]:
            out: dict[UUID, list[tuple[int, bytes]]] = {}
            for peer, index, digest in self._conn.execute(
                    "SELECT p.peer, e.idx, e.body FROM peerlog_entries e"
                    " JOIN peerlog_peers p ON p.id = e.peer WHERE e.ts IS NULL"
                    " ORDER BY e.peer, e.idx"):
                out.setdefault(UUID(bytes=bytes(peer)), []).append((int(index), bytes(digest)))
            return out
        return await self._run(work)

    async def expunge(self, peer: UUID, index: int) -> bool:
        """Erase the entry held at ``(peer, index)``; True if it was not erased yet.

        The erasure is an `Expunged` marker applied like any other; drivers
        carry it to the folder (for this device's own entries) and to every
        other replica.  `IndexOutOfRangeError` for a slot not held.
        """
        held = await self.read_since(peer, index, 1)
        if not held or held[0][0] != index:
            raise IndexOutOfRangeError(f"cannot expunge {peer}/{index}: the slot is not held")
        entry = held[0][1]
        return (await self.apply(peer, index, Expunged(entry.digest))).new

    async def run_query(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``fn(connection)`` in the oplog's worker thread and return its result.

        For materialised views kept by an `ApplyHook` (e.g. `peerlog.state`):
        ``fn`` must only read, and must not keep the connection.
        """
        return await self._run(lambda _loop: fn(self._conn))

    async def cursors(self) -> PeerCursors:
        """Every origin's next index, read from the peers table (O(origins))."""
        return await self._run(lambda _loop: self._read_cursors())

    def watch_cursors(self) -> CursorStream:
        """A `Snapshot`, then `Advanced` deltas from this and every other process."""
        if self._closed:
            raise ClosedError(f"the SQLite oplog {self._path!r} is closed")
        return self._hub.watch()

    # -- cross-process changes ------------------------------------------------

    def _start_poller(self) -> None:
        if self._poller is None or self._poller.done():
            self._poller = asyncio.get_running_loop().create_task(
                self._poll(), name=f"peerlog-sqlite-poll:{self._path}"
            )

    def _stop_poller(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            self._poller = None

    async def _poll(self) -> None:
        """Notice commits by other processes: cheap ``data_version`` checks."""
        while not self._closed:
            await asyncio.sleep(self._poll_interval)
            try:
                await self._run(self._poll_sync)
            except ClosedError:
                return
            except SyncError as exc:  # a locked or vanished file: keep watching
                log.warning("cursor poll of %s failed: %s", self._path, exc)

    def _poll_sync(self, loop: asyncio.AbstractEventLoop) -> None:
        version = self._conn.execute("PRAGMA data_version").fetchone()[0]
        if version == self._data_version:
            return
        self._data_version = version
        current = self._read_cursors()
        moved = {p: i for p, i in current.items() if i > self._known.get(p, 0)}
        if moved:
            self._announce(loop, moved)

    # -- lifecycle ------------------------------------------------------------

    async def close(self) -> None:
        """End every watch, finish queued work and close the database. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._hub.close()
        self._stop_poller()
        loop = asyncio.get_running_loop()
        if self._bulk is not None:  # what a bulk applied is kept
            await loop.run_in_executor(self._executor, self._bulk_end, None)
        await loop.run_in_executor(self._executor, self._conn.close)
        self._executor.shutdown(wait=True)



    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<SqliteOplog {self._path!r} origin={self._origin} {state}>"


@dataclass(slots=True)
class _Bulk:
    """An open `SqliteOplog.bulk`: its transaction, and what it has not committed yet."""

    commit_every: int
    open: bool = False
    pending: int = 0
    moved: dict[UUID, int] = field(default_factory=dict)


def _create_private(path: str) -> None:
    """Create a missing database file readable by its owner only (SQLite gives its WAL and
    shared-memory files the same mode), so what it holds is not left world-readable."""
    if path == ":memory:" or path.startswith("file:") or os.path.exists(path):
        return
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _newest(rows: list[Row]) -> int:
    """The highest timestamp among ``rows`` (0 when they are all markers)."""
    return max(filter(None, map(itemgetter(0), rows)), default=0)


def _rollback(conn: sqlite3.Connection) -> None:
    """Roll back the open transaction, if SQLite has not already done so.

    After some failures (a full disk, an I/O error) SQLite rolls back by
    itself; a second ROLLBACK would then raise and hide the real error.
    """
    if conn.in_transaction:
        conn.execute("ROLLBACK")
