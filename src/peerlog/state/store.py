"""`StateStore`: the tables an application reads, synced through the log."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import hashlib
import json
import os
import sqlite3
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from peerlog.oplog.sqlite import SqliteOplog
from peerlog.state.ops import (
    REMOVE,
    Op,
    OpKind,
    decode_ops,
    encode_batch,
    encode_delete,
    encode_put,
    encode_update,
    merged_value,
    parse_json,
)
from peerlog.state.snapshot import (
    StateSnapshot,
    decode_snapshot,
    encode_snapshot,
    new_body,
)
from peerlog.state.view import (
    LIVE,
    VALUE,
    LwwView,
    copy_registers,
    merge_snapshot,
    ops_on_key,
    pinned,
)
from peerlog.sync.cursors import PeerCursors, Snapshot
from peerlog.sync.defaults import MAX_SKEW_MS
from peerlog.sync.entry import Entry
from peerlog.sync.faces import AsyncClosing, Deferral
from peerlog.sync.hlc import COUNTER_BITS, ts_millis, wall_ms
from peerlog.sync.watch import watching


@dataclass(frozen=True, slots=True)
class Change:
    """A key touched by a newly applied operation, with its value after it (None: absent).

    ``origin`` is the device whose operation touched it (the last one, when
    several in one batch did)."""

    table: str
    key: str
    value: Any | None
    deleted: bool
    origin: UUID | None = None


class Outcome(enum.StrEnum):
    """What became of an operation in `StateStore.history`."""

    WINS = "wins"
    """The current value comes from it (all of it, or the fields in ``winning_fields``)."""
    OVERWRITTEN = "overwritten"
    """A later operation of the same device replaced it."""
    LOST = "lost"
    """Another device's operation won over it: a concurrent edit, or a later one made
    there (the timestamps tell which)."""


@dataclass(frozen=True, slots=True)
class HistoryItem:
    """One operation on a key, as `StateStore.history` lists it."""

    ts: int
    origin: UUID
    index: int
    kind: OpKind
    value: Any = None
    """The value a put wrote (None for updates and deletes)."""
    fields: Mapping[str, Any] = field(default_factory=dict)
    """The fields an update set (`REMOVE` for a removed one)."""
    outcome: Outcome = Outcome.WINS
    winning_fields: tuple[str, ...] = ()
    """For an update that wins in part: the fields whose value is its."""

    @property
    def time(self) -> datetime:
        """When it was made, by its device's clock (UTC)."""
        return datetime.fromtimestamp(ts_millis(self.ts) / 1000, UTC)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"time": self.time.isoformat(timespec="milliseconds"),
                               "ts": self.ts, "origin": str(self.origin), "index": self.index,
                               "kind": str(self.kind), "outcome": str(self.outcome)}
        if self.kind is OpKind.PUT:
            out["value"] = self.value
        elif self.kind is OpKind.UPDATE:
            out["set"] = {k: v for k, v in self.fields.items() if v is not REMOVE}
            out["removed"] = [k for k, v in self.fields.items() if v is REMOVE]
            if self.outcome is Outcome.WINS:
                out["winning_fields"] = list(self.winning_fields)
        return out


@dataclass(frozen=True, slots=True)
class OriginSummary:
    """One origin as this device holds it: ``last_ts`` is the HLC timestamp of its
    newest entry among the last hundred (None when they are all erased)."""

    origin: UUID
    entries: int
    last_ts: int | None


class Transaction:
    """Changes gathered by `StateStore.transaction`: one log entry, applied all or
    nothing on every device.

    Several changes to one key fold into one operation, in the order made
    (a put then an update is the put with the fields applied), so a
    transaction means what its lines say however ties are ranked.
    """

    def __init__(self) -> None:
        self._ops: dict[tuple[str, str], tuple[OpKind, Any]] = {}
        self.index = -1
        """The log index of the entry, once committed."""

    def put(self, table: str, key: str, value: Any) -> None:
        encode_put(table, key, value)  # checks now, not at commit
        self._ops[(table, key)] = (OpKind.PUT, value)

    def delete(self, table: str, key: str) -> None:
        encode_delete(table, key)
        self._ops[(table, key)] = (OpKind.DELETE, None)

    def update(self, table: str, key: str, fields: Mapping[str, Any]) -> None:
        encode_update(table, key, fields)
        held = self._ops.get((table, key))
        if held is None:
            self._ops[(table, key)] = (OpKind.UPDATE, dict(fields))
        elif held[0] is OpKind.UPDATE:
            self._ops[(table, key)] = (OpKind.UPDATE, {**held[1], **fields})
        else:
            self._ops[(table, key)] = _fold(held, fields)

    def payloads(self) -> list[bytes]:
        out = []
        for (table, key), (kind, value) in self._ops.items():
            if kind is OpKind.PUT:
                out.append(encode_put(table, key, value))
            elif kind is OpKind.DELETE:
                out.append(encode_delete(table, key))
            else:
                out.append(encode_update(table, key, value))
        return out

    def __len__(self) -> int:
        return len(self._ops)


def _fold(held: tuple[OpKind, Any], fields: Mapping[str, Any]) -> tuple[OpKind, Any]:
    """A put or delete followed by an update, as one operation (the merge rule itself)."""
    kind, value = held
    base = json.dumps(value).encode() if kind is OpKind.PUT else b""
    got = merged_value(kind is OpKind.DELETE, base, [
        (name, v is REMOVE, b"" if v is REMOVE else json.dumps(v).encode())
        for name, v in sorted(fields.items())])
    if got is None:
        return held
    return OpKind.PUT, parse_json(got)


class StateStore(AsyncClosing):
    """A field-level last-writer-wins store of JSON values in named tables, over a
    `SqliteOplog` (the merge rules: docs/contract.md, "State").

    Every `put`/`update`/`delete` (or `transaction`) is one entry in this
    device's log; entries from any origin update the view in the same
    transaction that stores them, so the view is always exactly the log's.
    ``oplog`` is the `Replica` to hand to drivers.  Entries stamped more than
    ``max_skew_ms`` ahead of this device's clock wait (`DeferredError`).
    """

    def __init__(self, path: str | os.PathLike[str], origin: UUID | None = None, *,
                 max_skew_ms: int = MAX_SKEW_MS, **oplog_options: Any) -> None:
        self.oplog = SqliteOplog(path, origin, hooks=[LwwView()], max_skew_ms=max_skew_ms,
                                 **oplog_options)
        self._max_skew_ms = max_skew_ms

    @property
    def origin(self) -> UUID:
        return self.oplog.origin

    # -- writes -----------------------------------------------------------------

    async def put(self, table: str, key: str, value: Any) -> int:
        """Set ``table[key]`` to a JSON ``value``, replacing it whole; returns the log index."""
        index, _ = await self.oplog.append(encode_put(table, key, value))
        return index

    async def update(self, table: str, key: str, fields: Mapping[str, Any]) -> int:
        """Set only the given top-level fields of ``table[key]`` (`REMOVE` removes one);
        a concurrent update of other fields on another device is kept."""
        index, _ = await self.oplog.append(encode_update(table, key, fields))
        return index

    async def delete(self, table: str, key: str) -> int:
        """Remove ``table[key]`` (a tombstone that wins over writes at the same instant)."""
        index, _ = await self.oplog.append(encode_delete(table, key))
        return index

    async def put_many(self, table: str, items: Mapping[str, Any] | Iterable[tuple[str, Any]]
                       ) -> int:
        """Put several keys as one entry (all or nothing); returns its log index."""
        pairs = items.items() if isinstance(items, Mapping) else items
        async with self.transaction() as tx:
            for key, value in pairs:
                tx.put(table, key, value)
        return tx.index

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """``async with store.transaction() as tx: tx.put(...); tx.update(...)``:
        the changes become one log entry when the block ends without an error
        (nothing is written if it raises).  ``tx.index`` is then its log index."""
        tx = Transaction()
        yield tx
        await self.commit(tx)

    async def commit(self, tx: Transaction) -> int:
        """Write a `Transaction` built beforehand as one entry; returns its log index
        (-1, and nothing written, when it holds no change)."""
        payloads = tx.payloads()
        if payloads:
            payload = payloads[0] if len(payloads) == 1 else encode_batch(payloads)
            tx.index, _ = await self.oplog.append(payload)
        return tx.index

    # -- reads ------------------------------------------------------------------

    async def get(self, table: str, key: str) -> Any:
        """The value of ``table[key]``; `KeyError` when absent or deleted."""
        row = await self.oplog.run_query(
            lambda c: c.execute(f"SELECT {VALUE} FROM peerlog_state"
                                f" WHERE tbl = ? AND key = ? AND {LIVE}", (table, key)).fetchone())
        if row is None:
            raise KeyError(f"{table}/{key}")
        return json.loads(row[0])

    async def items(self, table: str) -> list[tuple[str, Any]]:
        """Every live key of ``table`` with its value, ordered by key."""
        rows = await self.oplog.run_query(
            lambda c: c.execute(f"SELECT key, {VALUE} FROM peerlog_state"
                                f" WHERE tbl = ? AND {LIVE} ORDER BY key", (table,)).fetchall())
        return [(k, json.loads(v)) for k, v in rows]

    async def tables(self) -> list[str]:
        """Tables with at least one live key."""
        rows = await self.oplog.run_query(
            lambda c: c.execute(f"SELECT DISTINCT tbl FROM peerlog_state WHERE {LIVE}"
                                " ORDER BY tbl").fetchall())
        return [r[0] for r in rows]

    async def history(self, table: str, key: str) -> list[HistoryItem]:
        """Every operation on ``table/key`` this device holds, oldest first, each with
        its `Outcome`: a concurrent edit that lost is there, marked `Outcome.LOST`."""
        encode_delete(table, key)  # the same argument checks as a write
        return await self.oplog.run_query(lambda c: _history(c, table, key))

    async def origins(self) -> list[OriginSummary]:
        """Every origin this device holds: entries held and its newest entry's time."""
        def query(conn: sqlite3.Connection) -> list[OriginSummary]:
            rows = conn.execute(
                "SELECT p.peer, p.next_index, (SELECT max(e.ts) FROM peerlog_entries e"
                " WHERE e.peer = p.id AND e.idx >= p.next_index - 100) FROM peerlog_peers p"
                " WHERE p.next_index > 0 ORDER BY p.peer").fetchall()
            return [OriginSummary(UUID(bytes=bytes(peer)), int(held),
                                  None if ts is None else int(ts)) for peer, held, ts in rows]
        return await self.oplog.run_query(query)

    async def deferred(self) -> dict[UUID, Deferral]:
        """Origins whose entries wait until this device's clock catches up with them."""
        return await self.oplog.deferred()

    async def skipped_count(self) -> int:
        """Operations held in the log but left out of the state (their value is not JSON)."""
        row = await self.oplog.run_query(
            lambda c: c.execute("SELECT count(*) FROM peerlog_state_skipped").fetchone())
        return int(row[0])

    async def state_hash(self) -> str:
        """SHA-256 of every live ``(table, key, value bytes)``: equal iff the states are."""
        def digest(conn: sqlite3.Connection) -> str:
            h = hashlib.sha256()
            for tbl, key, value in conn.execute(
                    f"SELECT tbl, key, {VALUE} FROM peerlog_state WHERE {LIVE}"
                    " ORDER BY tbl, key"):
                h.update(tbl.encode() + b"\0" + key.encode() + b"\0" + bytes(value) + b"\n")
            return h.hexdigest()
        return await self.oplog.run_query(digest)

    async def changes(self) -> AsyncGenerator[list[Change], None]:
        """The keys each newly applied batch touched, local or remote: one list per
        batch (one per local write), each key once with its value after it.

        Derived from the log: each cursor advance is read back with
        `read_since`, so coalesced watch events lose nothing.
        """
        known = PeerCursors()
        async with watching(self.oplog) as events:
            async for event in events:
                if isinstance(event, Snapshot):
                    known = event.cursors
                    continue
                touched: dict[tuple[str, str], UUID] = {}
                for peer, (lo, hi) in known.gaps(event.cursors).items():
                    index = lo
                    while index < hi:
                        got = await self.oplog.read_since(peer, index, hi - index)
                        if not got:
                            break
                        for _, entry in got:
                            if type(entry) is Entry:
                                for op in decode_ops(entry.payload):
                                    touched[(op.table, op.key)] = peer
                        index = got[-1][0] + 1
                known = known.merged(event.cursors)
                if touched:
                    batch = [await self._change(table, key, origin)
                             for (table, key), origin in touched.items()]
                    yield batch

    async def _change(self, table: str, key: str, origin: UUID) -> Change:
        try:
            return Change(table, key, await self.get(table, key), False, origin)
        except KeyError:
            return Change(table, key, None, True, origin)

    # -- snapshots and compaction -----------------------------------------------

    async def snapshot(self) -> bytes:
        """The state as snapshot bytes (`peerlog.state.snapshot`): every register and the
        frontier of entries it covers, read in one transaction and copied in SQL."""
        def copy(conn: sqlite3.Connection) -> tuple[PeerCursors, int]:
            copy_registers(conn)
            frontier = PeerCursors({UUID(bytes=bytes(p)): int(n) for p, n in conn.execute(
                "SELECT peer, next_index FROM peerlog_peers WHERE next_index > 0")})
            hlc = int(conn.execute("SELECT value FROM peerlog_meta WHERE key = 'hlc'"
                                   ).fetchone()[0])
            return frontier, hlc
        (frontier, hlc), body = await self.oplog.run_attached(copy, new_body())
        return await asyncio.to_thread(encode_snapshot, self.origin, wall_ms(), hlc,
                                       frontier, body)

    async def load_snapshot(self, data: bytes | StateSnapshot) -> PeerCursors:
        """Take in a snapshot (verified first: `SnapshotError`, and nothing loaded).

        Every origin it is ahead on then starts at its frontier here, and the
        entries above come through sync as usual; the result equals replaying
        every entry it covers.  Returns the cursors that moved (empty when this
        device already held everything the snapshot covers).
        """
        snap = data if isinstance(data, StateSnapshot) else \
            await asyncio.to_thread(decode_snapshot, data)
        held = await self.oplog.cursors()
        if all(held.of(p) >= i for p, i in snap.frontier.items()):
            return PeerCursors()
        self.oplog.hlc.catch_up(
            min(snap.hlc, (self.oplog.hlc.wall() + self._max_skew_ms) << COUNTER_BITS))
        return await self.oplog.adopt_frontier(snap.frontier, merge_snapshot,
                                               attach=snap.body)

    async def compact(self, upto: Mapping[UUID, int], *, vacuum: bool = True) -> int:
        """Drop the log entries below ``upto`` that hold no register of the state (a
        snapshot covering ``upto`` must be published, with this device's own entries
        below it), then rebuild the file so their bytes are gone; returns how many."""
        dropped = await self.oplog.compact(upto, pinned)
        if vacuum:
            await self.oplog.vacuum()
        return dropped

    async def close(self) -> None:
        await self.oplog.close()


def _history(conn: sqlite3.Connection, table: str, key: str) -> list[HistoryItem]:
    base = conn.execute("SELECT peer, idx FROM peerlog_state WHERE tbl = ? AND key = ?",
                        (table, key)).fetchone()
    base_at = (bytes(base[0]), int(base[1])) if base else None
    field_at: dict[tuple[bytes, int], list[str]] = {}
    for name, raw, index in conn.execute(
            "SELECT field, peer, idx FROM peerlog_fields WHERE tbl = ? AND key = ?"
            " ORDER BY field", (table, key)):
        field_at.setdefault((bytes(raw), int(index)), []).append(str(name))
    ops = list(ops_on_key(conn, table, key))
    out = []
    for n, (raw, index, ts, op) in enumerate(ops):
        winning = tuple(field_at.get((raw, index), ()))
        if (raw, index) == base_at or winning:
            outcome = Outcome.WINS
        elif _replaced_by_own(op, [later for r, _, t, later in ops[n + 1:] if r == raw and t > ts]):
            outcome = Outcome.OVERWRITTEN
        else:
            outcome = Outcome.LOST
        out.append(HistoryItem(
            ts, UUID(bytes=raw), index, op.kind,
            value=_shown(op.value) if op.value is not None else None,
            fields={name: REMOVE if v is None else _shown(v) for name, v in op.fields},
            outcome=outcome, winning_fields=winning))
    return out


def _shown(value: bytes) -> Any:
    """A held value for display: its JSON, or its text when it is not JSON (skipped)."""
    try:
        return parse_json(value)
    except (ValueError, RecursionError):
        return value.decode(errors="replace")


def _replaced_by_own(op: Op, later: list[Op]) -> bool:
    """Whether later operations of the same device cover everything ``op`` wrote."""
    if any(o.kind is not OpKind.UPDATE for o in later):
        return True
    if op.kind is not OpKind.UPDATE:
        return False
    covered = {name for o in later for name, _ in o.fields}
    return all(name in covered for name, _ in op.fields)
