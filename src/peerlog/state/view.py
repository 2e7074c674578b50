"""`LwwView`: the last-writer-wins view, kept by the oplog inside each write transaction.

Order of operations on one ``(table, key)``: the higher HLC timestamp wins;
on equal timestamps a delete beats a write; between two writes the greater
encoded value bytes win.  As a rank: ``(ts, deleted, value_bytes)``, compared
lexicographically by SQLite's row-value comparison, so every device decides
the same way whatever order entries arrive in.

Erasure: when the entry that currently wins a key is expunged, the key is
recomputed from every remaining entry (a scan of the log, acceptable because
erasures are rare), so the view stays a pure function of the held entries.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from uuid import UUID

from peerlog.state.ops import Op, collapse, decode_op, parse_json

_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS peerlog_state(
        tbl TEXT NOT NULL, key TEXT NOT NULL,
        ts INTEGER NOT NULL, del INTEGER NOT NULL, value BLOB NOT NULL,
        peer BLOB NOT NULL, idx INTEGER NOT NULL,
        PRIMARY KEY (tbl, key)) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS peerlog_state_winner ON peerlog_state(peer, idx)",
    """CREATE TABLE IF NOT EXISTS peerlog_state_skipped(
        peer BLOB NOT NULL, idx INTEGER NOT NULL, reason TEXT NOT NULL,
        PRIMARY KEY (peer, idx)) WITHOUT ROWID""",
]


def json_problem(value: bytes) -> str:
    """Why ``value`` is not a JSON document peerlog can hold ("" when it is one)."""
    try:
        parse_json(value.decode())
    except UnicodeDecodeError:
        return "value is not UTF-8"
    except RecursionError:
        return "value is nested too deeply"
    except ValueError as exc:
        return f"value is not JSON: {str(exc)[:80]}"
    return ""

log = logging.getLogger(__name__)

_UPSERT = """
INSERT INTO peerlog_state(tbl, key, ts, del, value, peer, idx) VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT(tbl, key) DO UPDATE SET
    ts = excluded.ts, del = excluded.del, value = excluded.value,
    peer = excluded.peer, idx = excluded.idx
WHERE (excluded.ts, excluded.del, excluded.value)
    > (peerlog_state.ts, peerlog_state.del, peerlog_state.value)
"""


def _row(op: Op, ts: int, peer: bytes, index: int) -> tuple[str, str, int, int, bytes, bytes, int]:
    return (op.table, op.key, ts, 1 if op.value is None else 0, op.value or b"", peer, index)


class LwwView:
    """An `ApplyHook` that materialises state operations into ``peerlog_state``."""

    def setup(self, conn: sqlite3.Connection) -> None:
        for statement in _SCHEMA:
            conn.execute(statement)

    def applied(self, conn: sqlite3.Connection, peer: UUID, start: int,
                rows: Sequence[tuple[int | None, bytes]]) -> None:
        # The state is a max over ranks, so within one batch only the
        # highest-ranked operation per key can matter: one upsert per key.
        # A write whose value is not JSON (a buggy or hostile device) is kept in
        # the log but takes no part in the state: skip it, recorded, and let the
        # next-ranked operation of the batch win instead.
        while True:
            winners = collapse(rows, start)
            bad = [(index, why) for _, _, (_, deleted, value), index in winners
                   if not deleted and (why := json_problem(value))]
            if not bad:
                break
            conn.executemany("INSERT OR IGNORE INTO peerlog_state_skipped(peer, idx, reason)"
                             " VALUES (?, ?, ?)", [(peer.bytes, i, why) for i, why in bad])
            log.warning("state: skipping %d operation(s) of %s that are not valid JSON "
                        "(first at index %d: %s)", len(bad), peer, bad[0][0], bad[0][1])
            rows = list(rows)
            for index, _ in bad:
                rows[index - start] = (None, b"")
        if winners:
            raw = peer.bytes
            conn.executemany(_UPSERT, [(table, key, ts, deleted, value, raw, index)
                                       for table, key, (ts, deleted, value), index in winners])

    def erased(self, conn: sqlite3.Connection, peer: UUID, indexes: list[int]) -> None:
        raw = peer.bytes
        for index in indexes:
            row = conn.execute("SELECT tbl, key FROM peerlog_state WHERE peer = ? AND idx = ?",
                               (raw, index)).fetchone()
            if row is not None:
                self._recompute(conn, row[0], row[1])

    def _recompute(self, conn: sqlite3.Connection, table: str, key: str) -> None:
        conn.execute("DELETE FROM peerlog_state WHERE tbl = ? AND key = ?", (table, key))
        cursor = conn.execute(
            "SELECT p.peer, e.idx, e.ts, e.body FROM peerlog_entries e"
            " JOIN peerlog_peers p ON p.id = e.peer WHERE e.ts IS NOT NULL")
        for raw, index, ts, payload in cursor:
            op = decode_op(payload)
            if op is not None and op.table == table and op.key == key \
                    and (op.value is None or not json_problem(op.value)):
                conn.execute(_UPSERT, _row(op, ts, raw, index))
