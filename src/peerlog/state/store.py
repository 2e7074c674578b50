"""`StateStore`: the tables an application reads, synced through the log."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from peerlog.oplog.sqlite import SqliteOplog
from peerlog.state.ops import decode_op, encode_delete, encode_put
from peerlog.state.view import LwwView
from peerlog.sync.cursors import PeerCursors, Snapshot
from peerlog.sync.entry import Entry
from peerlog.sync.faces import AsyncClosing
from peerlog.sync.watch import watching


@dataclass(frozen=True, slots=True)
class Change:
    """A key touched by a newly applied operation, with its value after it (None: absent)."""

    table: str
    key: str
    value: Any | None
    deleted: bool


@dataclass(frozen=True, slots=True)
class OriginSummary:
    """One origin as this device holds it: ``last_ts`` is the HLC timestamp of its
    newest entry among the last hundred (None when they are all erased)."""

    origin: UUID
    entries: int
    last_ts: int | None


class StateStore(AsyncClosing):
    """A last-writer-wins store of JSON values in named tables, over a `SqliteOplog`.

    Every `put`/`delete` is one entry in this device's log; entries from any
    origin update the view in the same transaction that stores them, so the
    view is always exactly the log's.  ``oplog`` is the `Replica` to hand to
    drivers (`FileLogPublisher`, `FileLogIngester`, `Puller`).
    """

    def __init__(self, path: str | os.PathLike[str], origin: UUID | None = None,
                 **oplog_options: Any) -> None:
        self.oplog = SqliteOplog(path, origin, hooks=[LwwView()], **oplog_options)

    @property
    def origin(self) -> UUID:
        return self.oplog.origin

    async def put(self, table: str, key: str, value: Any) -> int:
        """Set ``table[key]`` to a JSON ``value``; returns the log index of the change."""
        index, _ = await self.oplog.append(encode_put(table, key, value))
        return index

    async def delete(self, table: str, key: str) -> int:
        """Remove ``table[key]`` (a tombstone that wins over writes at the same instant)."""
        index, _ = await self.oplog.append(encode_delete(table, key))
        return index

    async def get(self, table: str, key: str) -> Any:
        """The value of ``table[key]``; `KeyError` when absent or deleted."""
        row = await self.oplog.run_query(
            lambda c: c.execute("SELECT value FROM peerlog_state WHERE tbl = ? AND key = ?"
                                " AND del = 0", (table, key)).fetchone())
        if row is None:
            raise KeyError(f"{table}/{key}")
        return json.loads(row[0])

    async def items(self, table: str) -> list[tuple[str, Any]]:
        """Every live key of ``table`` with its value, ordered by key."""
        rows = await self.oplog.run_query(
            lambda c: c.execute("SELECT key, value FROM peerlog_state WHERE tbl = ? AND del = 0"
                                " ORDER BY key", (table,)).fetchall())
        return [(k, json.loads(v)) for k, v in rows]

    async def origins(self) -> list[OriginSummary]:
        """Every origin this device holds: entries held and its newest entry's time."""
        def query(conn: sqlite3.Connection) -> list[OriginSummary]:
            rows = conn.execute(
                "SELECT p.peer, p.next_index, (SELECT max(e.ts) FROM peerlog_entries e"
                " WHERE e.peer = p.id AND e.idx >= p.next_index - 100) FROM peerlog_peers p"
                " ORDER BY p.peer").fetchall()
            return [OriginSummary(UUID(bytes=bytes(peer)), int(held),
                                  None if ts is None else int(ts)) for peer, held, ts in rows]
        return await self.oplog.run_query(query)

    async def skipped_count(self) -> int:
        """Operations held in the log but left out of the state (their value is not JSON)."""
        row = await self.oplog.run_query(
            lambda c: c.execute("SELECT count(*) FROM peerlog_state_skipped").fetchone())
        return int(row[0])

    async def tables(self) -> list[str]:
        """Tables with at least one live key."""
        rows = await self.oplog.run_query(
            lambda c: c.execute("SELECT DISTINCT tbl FROM peerlog_state WHERE del = 0"
                                " ORDER BY tbl").fetchall())
        return [r[0] for r in rows]

    async def state_hash(self) -> str:
        """SHA-256 of every live ``(table, key, value bytes)``: equal iff the states are."""
        def digest(conn: sqlite3.Connection) -> str:
            h = hashlib.sha256()
            for tbl, key, value in conn.execute(
                    "SELECT tbl, key, value FROM peerlog_state WHERE del = 0 ORDER BY tbl, key"):
                h.update(tbl.encode() + b"\0" + key.encode() + b"\0" + bytes(value) + b"\n")
            return h.hexdigest()
        return await self.oplog.run_query(digest)

    async def changes(self) -> AsyncGenerator[Change, None]:
        """Keys touched by every operation applied from now on, local or remote.

        Derived from the log: each cursor advance is read back with
        `read_since` and its operations' keys are reported with their current
        value, so coalesced watch events lose nothing.
        """
        known = PeerCursors()
        async with watching(self.oplog) as events:
            async for event in events:
                if isinstance(event, Snapshot):
                    known = event.cursors
                    continue
                touched: dict[tuple[str, str], None] = {}
                for peer, (lo, hi) in known.gaps(event.cursors).items():
                    index = lo
                    while index < hi:
                        got = await self.oplog.read_since(peer, index, hi - index)
                        if not got:
                            break
                        for _, entry in got:
                            op = decode_op(entry.payload) if type(entry) is Entry else None
                            if op is not None:
                                touched[(op.table, op.key)] = None
                        index = got[-1][0] + 1
                known = known.merged(event.cursors)
                for table, key in touched:
                    try:
                        yield Change(table, key, await self.get(table, key), False)
                    except KeyError:
                        yield Change(table, key, None, True)

    async def close(self) -> None:
        await self.oplog.close()


