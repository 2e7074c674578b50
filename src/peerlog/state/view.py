"""`LwwView`: the field-level last-writer-wins view, kept inside each write transaction.

The state of a key (docs/contract.md, "State") is two kinds of register:

- the *base*: the highest-ranked put or delete of the key (``peerlog_state``);
- one register per field: the highest-ranked update of that field, kept only
  while it ranks above the base (``peerlog_fields``).

A rank is ``(ts, deleted, value bytes)`` compared lexicographically (SQLite
row values), so every device decides the same way whatever order entries
arrive in: the higher HLC timestamp wins; on equal timestamps a delete (or a
field removal) beats a write; between two writes the greater value bytes
win; and an update of a field beats a put with an equal rank.  The value a
reader sees is the base with the surviving fields merged on top
(`merged_value`), stored in ``peerlog_state.merged`` (NULL: no fields, the
value is the base's).  A key that only updates ever touched has a base of
rank ``(-1, 1, b"")``, below every real operation.

Erasure: when an entry that holds a register is expunged, the key is
recomputed from every remaining entry of the log, so the view stays a pure
function of the held entries.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator, Sequence
from uuid import UUID

from peerlog.state.ops import (
    Collapsed,
    Names,
    Op,
    OpKind,
    Rank,
    collapse,
    decode_ops,
    key_prefix,
    merged_value,
    names_of,
    parse_json,
    rank_of,
)
from peerlog.state.snapshot import BASE_OK, FIELD_OK, check_body
from peerlog.sync.errors import SnapshotError

log = logging.getLogger(__name__)

_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS peerlog_state(
        tbl TEXT NOT NULL, key TEXT NOT NULL,
        ts INTEGER NOT NULL, del INTEGER NOT NULL, value BLOB NOT NULL,
        peer BLOB NOT NULL, idx INTEGER NOT NULL, merged BLOB,
        PRIMARY KEY (tbl, key)) WITHOUT ROWID""",
    # 0.1 indexed the winners by (peer, idx) for erasures; every upsert paid for it, and
    # an erasure recomputes from a scan of the log anyway (see `LwwView.erased`).
    "DROP INDEX IF EXISTS peerlog_state_winner",
    """CREATE TABLE IF NOT EXISTS peerlog_fields(
        tbl TEXT NOT NULL, key TEXT NOT NULL, field TEXT NOT NULL,
        ts INTEGER NOT NULL, del INTEGER NOT NULL, value BLOB NOT NULL,
        peer BLOB NOT NULL, idx INTEGER NOT NULL,
        PRIMARY KEY (tbl, key, field)) WITHOUT ROWID""",
    """CREATE TEMP TABLE IF NOT EXISTS peerlog_touched(tbl TEXT, key TEXT,
        PRIMARY KEY (tbl, key)) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS peerlog_state_skipped(
        peer BLOB NOT NULL, idx INTEGER NOT NULL, reason TEXT NOT NULL,
        PRIMARY KEY (peer, idx)) WITHOUT ROWID""",
]

LIVE = "(del = 0 OR merged IS NOT NULL)"
"""SQL: a ``peerlog_state`` row whose key has a value."""
VALUE = "coalesce(merged, value)"
"""SQL: the value of a live ``peerlog_state`` row."""

NO_BASE: Rank = (-1, 1, b"")
"""The base of a key no put or delete has touched."""

_UPSERT = """
INSERT INTO peerlog_state(tbl, key, ts, del, value, peer, idx) VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT(tbl, key) DO UPDATE SET
    ts = excluded.ts, del = excluded.del, value = excluded.value,
    peer = excluded.peer, idx = excluded.idx, merged = NULL
WHERE (excluded.ts, excluded.del, excluded.value)
    > (peerlog_state.ts, peerlog_state.del, peerlog_state.value)
"""

_UPSERT_FIELD = """
INSERT INTO peerlog_fields(tbl, key, field, ts, del, value, peer, idx)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT(tbl, key, field) DO UPDATE SET
    ts = excluded.ts, del = excluded.del, value = excluded.value,
    peer = excluded.peer, idx = excluded.idx
WHERE (excluded.ts, excluded.del, excluded.value)
    > (peerlog_fields.ts, peerlog_fields.del, peerlog_fields.value)
"""


def json_problem(value: bytes) -> str:
    """Why ``value`` is not a JSON document peerlog can hold ("" when it is one)."""
    try:
        parse_json(value)
    except UnicodeDecodeError:
        return "value is not UTF-8"
    except RecursionError:
        return "value is nested too deeply"
    except ValueError as exc:
        return f"value is not JSON: {str(exc)[:80]}"
    return ""


FieldRegister = tuple[str, Rank, bytes, int]
"""``(field, rank, origin bytes, index)``: an update's claim on one field."""


class LwwView:
    """An `ApplyHook` that materialises state operations into ``peerlog_state``."""

    def setup(self, conn: sqlite3.Connection) -> None:
        for statement in _SCHEMA:
            conn.execute(statement)
        columns = {row[1] for row in conn.execute("PRAGMA table_info(peerlog_state)")}
        if "merged" not in columns:  # a database written by peerlog 0.1
            conn.execute("ALTER TABLE peerlog_state ADD COLUMN merged BLOB")

    def applied(self, conn: sqlite3.Connection, peer: UUID, start: int,
                rows: Sequence[tuple[int | None, bytes]]) -> None:
        # The state is a max over ranks, so within one batch only the
        # highest-ranked operation per register can matter.  An entry with a
        # value that is not JSON (a buggy or hostile device) is kept in the log
        # but takes no part in the state: skip it, recorded, and collapse again.
        while True:
            registers = collapse(rows, start)
            bad = _not_json(registers)
            if not bad:
                break
            conn.executemany("INSERT OR IGNORE INTO peerlog_state_skipped(peer, idx, reason)"
                             " VALUES (?, ?, ?)", [(peer.bytes, i, why) for i, why in bad])
            log.warning("state: skipping %d operation(s) of %s that are not valid JSON "
                        "(first at index %d: %s)", len(bad), peer, bad[0][0], bad[0][1])
            rows = list(rows)
            for index, _ in bad:
                rows[index - start] = (None, b"")
        self._store(conn, peer.bytes, registers)

    def _store(self, conn: sqlite3.Connection, raw: bytes, registers: Collapsed) -> None:
        bases = []
        for names, ((ts, deleted, value), index) in registers.whole.items():
            named = names_of(names)
            if named is not None:
                bases.append((*named, ts, deleted, value, raw, index))
        if bases:
            conn.executemany(_UPSERT, bases)
        had_fields = conn.execute("SELECT 1 FROM peerlog_fields LIMIT 1").fetchone() is not None
        if not registers.fields and not had_fields:
            return  # the common case: puts and deletes on keys no update touched
        claims: dict[tuple[str, str], list[FieldRegister]] = {}
        whole = registers.whole
        for (names, field), (rank, index) in registers.fields.items():
            base = whole.get(names)
            if base is not None and rank < base[0]:
                continue  # hidden by a put or delete of this very batch
            named = names_of(names)
            if named is not None:
                claims.setdefault(named, []).append((field.decode(), rank, raw, index))
        if had_fields:  # a new base may hide fields held from before
            for table, key, *_ in bases:
                claims.setdefault((table, key), [])
        settle(conn, claims)

    def erased(self, conn: sqlite3.Connection, peer: UUID, indexes: list[int]) -> None:
        raw = peer.bytes
        keys: set[tuple[str, str]] = set()
        for index in indexes:
            for table in ("peerlog_state", "peerlog_fields"):
                keys.update(conn.execute(f"SELECT tbl, key FROM {table}"
                                         " WHERE peer = ? AND idx = ?", (raw, index)))
        for table_name, key in sorted(keys):
            recompute(conn, table_name, key)


def _not_json(registers: Collapsed) -> list[tuple[int, str]]:
    """Entries whose winning value is not JSON, with why (at most one reason per entry)."""
    bad: dict[int, str] = {}
    for (_, deleted, value), index in registers.whole.values():
        if not deleted and (why := json_problem(value)):
            bad.setdefault(index, why)
    for (_, name), ((_, removed, value), index) in registers.fields.items():
        if not removed and (why := json_problem(value)):
            bad.setdefault(index, why)
        elif not _utf8(name):
            bad.setdefault(index, "a field name is not UTF-8")
    return sorted(bad.items())


def _utf8(raw: bytes) -> bool:
    try:
        raw.decode()
    except UnicodeDecodeError:
        return False
    return True


def settle(conn: sqlite3.Connection,
           claims: dict[tuple[str, str], list[FieldRegister]]) -> None:
    """Take field ``claims`` into their keys, drop the fields each key's base now hides,
    and store the merged values.  A few statements for any number of keys."""
    if not claims:
        return
    keys = list(claims)
    conn.executemany(_UPSERT_FIELD, [(t, k, field, *rank, raw, index)
                                     for (t, k), held in claims.items()
                                     for field, rank, raw, index in held])
    conn.executemany(
        "DELETE FROM peerlog_fields WHERE tbl = ? AND key = ? AND (ts, del, value) <"
        " (SELECT s.ts, s.del, s.value FROM peerlog_state s WHERE s.tbl = ? AND s.key = ?)",
        [(t, k, t, k) for t, k in keys])
    conn.executemany("INSERT OR IGNORE INTO temp.peerlog_touched(tbl, key) VALUES (?, ?)", keys)
    merged: list[tuple[bytes | None, str, str]] = []
    held: list[tuple[str, bool, bytes]] = []
    current: tuple[str, str, int, bytes] | None = None
    no_base: list[tuple[str, str]] = []
    for table, key, deleted, value, field, removed, raw in conn.execute(
            "SELECT t.tbl, t.key, s.del, s.value, f.field, f.del, f.value"
            " FROM temp.peerlog_touched t"
            " LEFT JOIN peerlog_state s ON s.tbl = t.tbl AND s.key = t.key"
            " LEFT JOIN peerlog_fields f ON f.tbl = t.tbl AND f.key = t.key"
            " ORDER BY t.tbl, t.key, f.field"):
        if current is None or (table, key) != current[:2]:
            if current is not None:
                merged.append((_merged(current, held), current[0], current[1]))
            if deleted is None:  # only updates ever touched this key
                no_base.append((table, key))
                deleted, value = NO_BASE[1], NO_BASE[2]
            current, held = (table, key, deleted, bytes(value)), []
        if field is not None:
            held.append((field, bool(removed), bytes(raw)))
    if current is not None:
        merged.append((_merged(current, held), current[0], current[1]))
    conn.execute("DELETE FROM temp.peerlog_touched")
    conn.executemany("INSERT INTO peerlog_state(tbl, key, ts, del, value, peer, idx)"
                     " VALUES (?, ?, ?, ?, ?, x'', -1)", [(t, k, *NO_BASE) for t, k in no_base])
    conn.executemany("UPDATE peerlog_state SET merged = ? WHERE tbl = ? AND key = ?", merged)


def _merged(base: tuple[str, str, int, bytes], fields: list[tuple[str, bool, bytes]]
            ) -> bytes | None:
    try:
        return merged_value(bool(base[2]), base[3], fields)
    except (ValueError, RecursionError):  # a base kept from before values were checked
        return merged_value(True, b"", fields)


def ops_on_key(conn: sqlite3.Connection, table: str, key: str
               ) -> Iterator[tuple[bytes, int, int, Op]]:
    """Every operation on ``table/key`` in the log: ``(origin bytes, index, ts, op)``,
    oldest timestamp first (erased entries and non-state payloads are not operations)."""
    prefix = key_prefix(table, key)
    for raw, index, ts, body in conn.execute(
            "SELECT p.peer, e.idx, e.ts, e.body FROM peerlog_entries e"
            " JOIN peerlog_peers p ON p.id = e.peer WHERE e.ts IS NOT NULL"
            " AND (substr(e.body, 2, ?) = ? OR substr(e.body, 1, 1) = x'04')"
            " ORDER BY e.ts, p.peer, e.idx", (len(prefix), prefix)):
        for op in decode_ops(bytes(body)):
            if op.table == table and op.key == key:
                yield bytes(raw), int(index), int(ts), op


_NOT_HELD = """NOT EXISTS (SELECT 1 FROM peerlog_entries e JOIN peerlog_peers p
    ON p.id = e.peer WHERE p.peer = r.peer AND e.idx = r.idx)"""


def recompute(conn: sqlite3.Connection, table: str, key: str) -> None:
    """Rebuild one key's registers from every operation the log still holds on it.

    A register written by an entry this device no longer holds (compacted, or
    taken in from a snapshot) cannot be rebuilt from the log: it stays as it
    is, unless that very slot is now an erasure marker.
    """
    skipped = set(conn.execute("SELECT peer, idx FROM peerlog_state_skipped"))
    base: tuple[Rank, bytes, int] | None = None
    fields: dict[str, tuple[Rank, bytes, int]] = {}
    for ts, deleted, value, raw, index in conn.execute(
            "SELECT ts, del, value, peer, idx FROM peerlog_state r WHERE tbl = ? AND key = ?"
            f" AND idx >= 0 AND {_NOT_HELD}", (table, key)):
        base = ((int(ts), int(deleted), bytes(value)), bytes(raw), int(index))
    for name, ts, deleted, value, raw, index in conn.execute(
            "SELECT field, ts, del, value, peer, idx FROM peerlog_fields r"
            f" WHERE tbl = ? AND key = ? AND {_NOT_HELD}", (table, key)):
        fields[str(name)] = ((int(ts), int(deleted), bytes(value)), bytes(raw), int(index))
    conn.execute("DELETE FROM peerlog_state WHERE tbl = ? AND key = ?", (table, key))
    conn.execute("DELETE FROM peerlog_fields WHERE tbl = ? AND key = ?", (table, key))
    for raw, index, ts, op in ops_on_key(conn, table, key):
        if (raw, index) in skipped:
            continue
        if op.kind is OpKind.UPDATE:
            for name, value in op.fields:
                rank = rank_of(ts, value)
                if name not in fields or rank > fields[name][0]:
                    fields[name] = (rank, raw, index)
            continue
        rank = rank_of(ts, op.value)
        if base is None or rank > base[0]:
            base = (rank, raw, index)
    if base is not None:
        (ts, deleted, value), raw, index = base
        conn.execute(_UPSERT, (table, key, ts, deleted, value, raw, index))
    if fields:
        settle(conn, {(table, key): [(name, rank, raw, index)
                                     for name, (rank, raw, index) in fields.items()]})


def copy_registers(conn: sqlite3.Connection) -> None:
    """Copy every register into the snapshot body attached as ``peerlog_snap``."""
    conn.execute("INSERT INTO peerlog_snap.bases SELECT tbl, key, ts, del, value, peer, idx"
                 " FROM peerlog_state ORDER BY tbl, key")
    conn.execute("INSERT INTO peerlog_snap.fields SELECT tbl, key, field, ts, del, value, peer,"
                 " idx FROM peerlog_fields ORDER BY tbl, key, field")


def pinned(conn: sqlite3.Connection) -> set[tuple[bytes, int]]:
    """``(origin bytes, index)`` of every entry that holds a register: what compaction
    keeps, so an erasure can still be answered from the log."""
    return {(bytes(p), int(i)) for p, i in conn.execute(
        "SELECT peer, idx FROM peerlog_state WHERE idx >= 0"
        " UNION SELECT peer, idx FROM peerlog_fields")}


def merge_snapshot(conn: sqlite3.Connection) -> None:
    """Merge the registers of the snapshot body attached as ``peerlog_snap`` into the
    state: each register keeps the higher rank, exactly as if the operations behind them
    had been applied here.  The body is checked first (`check_body`), then every row
    (`BASE_OK`, `FIELD_OK`, UTF-8 names); anything wrong is a `SnapshotError` and the
    caller's transaction rolls back."""
    check_body(conn)
    bad = conn.execute(
        f"SELECT (SELECT count(*) FROM peerlog_snap.bases WHERE NOT ({BASE_OK}))"
        f" + (SELECT count(*) FROM peerlog_snap.fields WHERE NOT ({FIELD_OK}))").fetchone()[0]
    if bad:
        raise SnapshotError(f"snapshot holds {bad} register(s) that are not valid (a value "
                            "that is not JSON, a name out of bounds, a bad rank)")
    try:  # names must be UTF-8 text: sqlite3 decodes each one here
        for _ in conn.execute("SELECT tbl, key FROM peerlog_snap.bases"):
            pass
        fields = [(t, k, f, int(ts), int(d), bytes(v), bytes(p), int(i))
                  for t, k, f, ts, d, v, p, i in conn.execute(
                      "SELECT * FROM peerlog_snap.fields")]
    except sqlite3.OperationalError as exc:
        raise SnapshotError(f"snapshot holds a name that is not UTF-8: {exc}") from exc
    columns = "tbl, key, ts, del, value, peer, idx"
    if conn.execute("SELECT 1 FROM peerlog_state LIMIT 1").fetchone() is None:
        # A new device, the common case: nothing to compare against.
        conn.execute(f"INSERT INTO peerlog_state({columns}) SELECT {columns}"
                     " FROM peerlog_snap.bases")
    else:
        conn.execute(_UPSERT.replace("VALUES (?, ?, ?, ?, ?, ?, ?)",
                                     f"SELECT {columns} FROM peerlog_snap.bases WHERE true"))
    claims: dict[tuple[str, str], list[FieldRegister]] = {}
    for table, key, name, ts, removed, value, raw, index in fields:
        claims.setdefault((table, key), []).append((name, (ts, removed, value), raw, index))
    if conn.execute("SELECT 1 FROM peerlog_fields LIMIT 1").fetchone() is not None:
        # Fields held from before may now be hidden by a snapshot's base.
        for table, key in conn.execute("SELECT DISTINCT tbl, key FROM peerlog_fields"):
            claims.setdefault((table, key), [])
    settle(conn, claims)


__all__ = ["LIVE", "VALUE", "LwwView", "Names", "json_problem", "ops_on_key", "merge_snapshot",
           "copy_registers", "pinned", "recompute", "settle"]
