"""The raw limit two benchmarks share: a bare ``sqlite3`` replay of state operations.

The same schema as a device, minus everything peerlog does per entry: an
entries table and a last-writer-wins upsert per row into a state table, one
transaction per batch, ``executemany`` for both.
"""

from __future__ import annotations

import sqlite3
import struct
import time
from pathlib import Path

from peerlog import Entry


def bare_replay(path: Path, entries: list[Entry], *, batch: int,
                cache_kib: int | None = None) -> float:
    """Entries per second for a bare replay of ``entries`` (puts) into ``path``."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    if cache_kib is not None:
        conn.execute(f"PRAGMA cache_size=-{cache_kib}")
    conn.execute("CREATE TABLE entries(peer INTEGER, idx INTEGER, ts INTEGER, body BLOB,"
                 " PRIMARY KEY (peer, idx)) WITHOUT ROWID")
    conn.execute("CREATE TABLE state(tbl TEXT, key TEXT, ts INTEGER, value BLOB,"
                 " PRIMARY KEY (tbl, key)) WITHOUT ROWID")
    rows = [(i, e.ts, e.payload) for i, e in enumerate(entries)]
    upserts = [_upsert(e) for e in entries]
    started = time.perf_counter()
    for lo in range(0, len(rows), batch):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO entries VALUES (1, ?, ?, ?)", rows[lo:lo + batch])
        conn.executemany("INSERT INTO state VALUES (?, ?, ?, ?) ON CONFLICT(tbl, key) DO UPDATE"
                         " SET ts = excluded.ts, value = excluded.value"
                         " WHERE excluded.ts > state.ts", upserts[lo:lo + batch])
        conn.execute("COMMIT")
    rate = len(rows) / (time.perf_counter() - started)
    conn.close()
    return rate


def _upsert(entry: Entry) -> tuple[str, str, int, bytes]:
    """``(table, key, ts, rest)`` of a state payload (docs/file-format.md §7)."""
    _, tlen, klen = struct.unpack_from(">BHH", entry.payload)
    names = entry.payload[5:5 + tlen + klen]
    return (names[:tlen].decode(), names[tlen:].decode(), entry.ts,
            entry.payload[5 + tlen + klen:])
