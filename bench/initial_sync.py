"""A new device taking in a long history from a shared folder, beside a bare replay.

    python -m bench.initial_sync [--changes 1000000] [--keys 500000]

One origin makes C changes (puts of ~60-byte JSON values over K keys) and
publishes them to a folder; not timed.  Timed: a fresh device's first
`FolderSync.run_once()` (reading every segment, the log, the state), end to
end.  The raw limit, from the same run: the same rows replayed into a bare
``sqlite3`` database with the same schema (the entries, and one
last-writer-wins upsert per row into a state table), in batches of 100,000
with a 256 MiB cache, WAL and ``synchronous=FULL``: the pragmas and batch a
hand-written loader would pick for speed.

Then, from a snapshot: the origin publishes a state snapshot into the
folder (not timed) and a second fresh device's first round (choosing the
snapshot, verifying and loading it) is timed end to end.  Its raw limit:
reading the same snapshot file and bulk-loading the same state rows into a
bare ``sqlite3`` table in one transaction.

Last, compaction: one origin makes C updates to 1,000 keys, publishes and
runs `FolderSync.compact()`; the folder's size is compared with the size of
the live state (table, key and value bytes of every live key).

The last line is one JSON object: ``replay_s``, ``replay_per_s``,
``raw_per_s``, ``replay_vs_raw``, ``snapshot_bootstrap_s``,
``snapshot_raw_s``, ``compacted_size_ratio``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import tempfile
import time
import zlib
from pathlib import Path

from bench.bare import bare_replay
from peerlog import Entry, FileLog, FileLogPublisher, FolderSync, StateStore
from peerlog.state.ops import encode_put
from peerlog.state.snapshot import HEADER

RAW_BATCH = 100_000


async def history(path: Path, folder: Path, changes: int, keys: int) -> list[Entry]:
    async with StateStore(path) as store:
        for lo in range(0, changes, 10_000):
            await store.oplog.append_many([
                encode_put("items", f"key-{i % keys:07d}", {"n": i, "note": "x" * 36})
                for i in range(lo, min(lo + 10_000, changes))])
        async with FileLog(folder, store.origin) as log:
            await FileLogPublisher(store.oplog, log).run_once()
        entries: list[Entry] = []
        while got := await store.oplog.read_since(store.origin, len(entries)):
            entries += [e for _, e in got if type(e) is Entry]
    return entries


async def replay(path: Path, folder: Path) -> tuple[float, str]:
    async with StateStore(path) as store, FileLog(folder, store.origin) as log:
        started = time.perf_counter()
        await FolderSync(store.oplog, log).run_once()
        return time.perf_counter() - started, await store.state_hash()


async def publish_snapshot(path: Path, folder: Path) -> Path:
    async with StateStore(path) as store, FileLog(folder, store.origin) as log:
        name = log.snapshots.publish(await store.snapshot())
        return log.snapshots.folder / name


async def bootstrap(path: Path, folder: Path) -> tuple[float, str]:
    async with StateStore(path) as store, FileLog(folder, store.origin) as log:
        started = time.perf_counter()
        report = await FolderSync(store.oplog, log, state=store).run_once()
        seconds = time.perf_counter() - started
        if report.bootstrapped is None or report.ingested:
            raise SystemExit(f"expected a bootstrap from the snapshot alone, got {report}")
        return seconds, await store.state_hash()


def raw_snapshot_load(path: Path, snapshot: Path) -> float:
    """Seconds to read the snapshot file, inflate its body and bulk-load its state rows
    with bare sqlite3 (attached in memory as peerlog does; no verification, no merge,
    no cursors)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE state(tbl TEXT, key TEXT, ts INTEGER, del INTEGER, value BLOB,"
                 " peer BLOB, idx INTEGER, PRIMARY KEY (tbl, key)) WITHOUT ROWID")
    started = time.perf_counter()
    data = snapshot.read_bytes()
    origins = HEADER.unpack_from(data)[6]
    conn.execute("ATTACH DATABASE ':memory:' AS snap")
    conn.deserialize(zlib.decompress(data[HEADER.size + 24 * origins:-32]), name="snap")
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO state SELECT * FROM snap.bases")
    conn.execute("COMMIT")
    seconds = time.perf_counter() - started
    conn.close()
    return seconds


async def compacted_ratio(tmp: Path, changes: int, keys: int = 1_000) -> tuple[float, int, int]:
    """``(folder bytes / live state bytes, folder bytes, state bytes)`` after compaction."""
    folder = tmp / "compact-shared"
    folder.mkdir()
    async with StateStore(tmp / "compact.db") as store, FileLog(folder, store.origin) as log:
        for lo in range(0, changes, 10_000):
            await store.oplog.append_many([
                encode_put("items", f"key-{i % keys:07d}", {"n": i, "note": "x" * 36})
                for i in range(lo, min(lo + 10_000, changes))])
        await FolderSync(store.oplog, log, state=store).compact()
        live = 0
        for table in await store.tables():
            live += sum(len(table.encode()) + len(k.encode()) + len(json.dumps(v).encode())
                        for k, v in await store.items(table))
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    return size / live, size, live


def raw(path: Path, entries: list[Entry]) -> float:
    return bare_replay(path, entries, batch=RAW_BATCH, cache_kib=262_144)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=1_000_000)
    parser.add_argument("--keys", type=int, default=None, help="default: changes / 2")
    args = parser.parse_args()
    keys = args.keys or max(args.changes // 2, 1)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        folder = tmp / "shared"
        folder.mkdir()
        entries = await history(tmp / "origin.db", folder, args.changes, keys)
        seconds, replayed = await replay(tmp / "new.db", folder)
        raw_rate = raw(tmp / "raw.db", entries)
        ours = len(entries) / seconds
        print(f"{len(entries):,} changes over {keys:,} keys: a new device took them in from "
              f"the folder in {seconds:.1f} s ({ours:,.0f}/s); bare sqlite3 replay "
              f"{raw_rate:,.0f}/s; ratio {ours / raw_rate:.2f}", flush=True)
        del entries
        snapshot = await publish_snapshot(tmp / "origin.db", folder)
        boot_s, booted = await bootstrap(tmp / "booted.db", folder)
        assert booted == replayed, "a snapshot bootstrap must equal a full replay"
        raw_boot_s = raw_snapshot_load(tmp / "raw-snapshot.db", snapshot)
        print(f"from a {snapshot.stat().st_size / 1e6:.1f} MB snapshot: {boot_s:.2f} s end "
              f"to end; bare read + bulk load of the same rows {raw_boot_s:.2f} s; ratio "
              f"{raw_boot_s / boot_s:.2f}", flush=True)
        ratio, size, live = await compacted_ratio(tmp, args.changes)
        print(f"{args.changes:,} updates to 1,000 keys, compacted: the folder holds "
              f"{size:,} bytes for {live:,} bytes of live state: {ratio:.2f}x", flush=True)
    print(json.dumps({"changes": args.changes, "keys": keys, "replay_s": round(seconds, 2),
                      "replay_per_s": round(ours), "raw_per_s": round(raw_rate),
                      "replay_vs_raw": round(ours / raw_rate, 3),
                      "snapshot_bootstrap_s": round(boot_s, 2),
                      "snapshot_raw_s": round(raw_boot_s, 2),
                      "compacted_size_ratio": round(ratio, 2)}))


if __name__ == "__main__":
    asyncio.run(main())
