"""SqliteOplog throughput beside bare sqlite3 on the same rows, in the same run.

    python -m bench.oplog [--entries N] [--batch B] [--rounds R]

- apply_many: N entries of 100-byte payloads from 4 origins, B per call, into
  a fresh database; raw: ``executemany`` of the same rows, B per transaction,
  into the same schema with the same pragmas (WAL, synchronous=FULL).
- read_since: every entry back, paged B at a time; raw: the same paged range
  ``SELECT`` with ``fetchall``.

Each figure is the best of R rounds.  The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import tempfile
import time
from pathlib import Path
from uuid import UUID

from peerlog import Entry, SqliteOplog
from peerlog.oplog.sqlite import _SCHEMA

ORIGINS = [UUID(int=n) for n in range(1, 5)]


def make_logs(total: int) -> dict[UUID, list[Entry]]:
    per = total // len(ORIGINS)
    return {o: [Entry(1_700_000_000_000 << 16 | i, os.urandom(100)) for i in range(per)]
            for o in ORIGINS}


def raw_connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            conn.execute(statement)
    return conn


def raw_insert(path: Path, logs: dict[UUID, list[Entry]], batch: int) -> float:
    conn = raw_connect(path)
    rows = {pid: [(pid, i, e.ts, e.payload) for i, e in enumerate(log)]
            for pid, log in enumerate(logs.values(), 1)}
    started = time.perf_counter()
    for pid_rows in rows.values():
        for lo in range(0, len(pid_rows), batch):
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT INTO peerlog_entries VALUES (?, ?, ?, ?)",
                             pid_rows[lo:lo + batch])
            conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


def raw_read(path: Path, batch: int, n_origins: int) -> tuple[float, int]:
    conn = raw_connect(path)
    started = time.perf_counter()
    count = 0
    for pid in range(1, n_origins + 1):
        index = 0
        while rows := conn.execute(
            "SELECT idx, ts, body FROM peerlog_entries WHERE peer = ? AND idx >= ?"
            " ORDER BY idx LIMIT ?", (pid, index, batch)).fetchall():
            count += len(rows)
            index = rows[-1][0] + 1
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed, count


async def ours_apply(path: Path, logs: dict[UUID, list[Entry]], batch: int) -> float:
    async with SqliteOplog(path, read_batch=batch) as oplog:
        started = time.perf_counter()
        for origin, log in logs.items():
            for lo in range(0, len(log), batch):
                await oplog.apply_many(origin, lo, log[lo:lo + batch])
        return time.perf_counter() - started


async def ours_read(path: Path, batch: int) -> tuple[float, int]:
    async with SqliteOplog(path, read_batch=batch) as oplog:
        started = time.perf_counter()
        count = 0
        for origin in ORIGINS:
            index = 0
            while got := await oplog.read_since(origin, index):
                count += len(got)
                index = got[-1][0] + 1
        return time.perf_counter() - started, count


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    logs = make_logs(args.entries)
    total = sum(len(log) for log in logs.values())
    best: dict[str, float] = {}

    def keep(name: str, seconds: float) -> None:
        best[name] = min(best.get(name, float("inf")), seconds)

    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            raw_path, ours_path = Path(tmp) / f"raw{r}.db", Path(tmp) / f"ours{r}.db"
            keep("raw_insert", raw_insert(raw_path, logs, args.batch))
            keep("apply_many", await ours_apply(ours_path, logs, args.batch))
            seconds, count = raw_read(raw_path, args.batch, len(ORIGINS))
            assert count == total, (count, total)
            keep("raw_read", seconds)
            seconds, count = await ours_read(ours_path, args.batch)
            assert count == total, (count, total)
            keep("read_since", seconds)

    rate = {name: total / seconds for name, seconds in best.items()}
    figures = {
        "entries": total,
        "payload_bytes": 100,
        "batch": args.batch,
        "apply_many_per_s": round(rate["apply_many"]),
        "raw_executemany_per_s": round(rate["raw_insert"]),
        "read_since_per_s": round(rate["read_since"]),
        "raw_select_per_s": round(rate["raw_read"]),
        "apply_many_vs_raw": round(rate["apply_many"] / rate["raw_insert"], 3),
        "read_since_vs_raw": round(rate["read_since"] / rate["raw_read"], 3),
    }
    print(f"entries: {total} x 100 B from {len(ORIGINS)} origins, batch {args.batch}, "
          f"best of {args.rounds}")
    print(f"apply_many   {figures['apply_many_per_s']:>10,}/s   raw executemany "
          f"{figures['raw_executemany_per_s']:>10,}/s   ratio {figures['apply_many_vs_raw']}")
    print(f"read_since   {figures['read_since_per_s']:>10,}/s   raw SELECT      "
          f"{figures['raw_select_per_s']:>10,}/s   ratio {figures['read_since_vs_raw']}")
    print(json.dumps(figures))


if __name__ == "__main__":
    asyncio.run(main())
