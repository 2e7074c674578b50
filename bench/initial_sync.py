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

The last line is one JSON object: ``replay_s``, ``replay_per_s``,
``raw_per_s``, ``replay_vs_raw``.  (Snapshot bootstrap and compaction are
not built yet; their figures will join this line when they are.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

from bench.bare import bare_replay
from peerlog import Entry, FileLog, FileLogPublisher, FolderSync, StateStore
from peerlog.state.ops import encode_put

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
        seconds, _ = await replay(tmp / "new.db", folder)
        raw_rate = raw(tmp / "raw.db", entries)
    ours = len(entries) / seconds
    print(f"{len(entries):,} changes over {keys:,} keys: a new device took them in from the "
          f"folder in {seconds:.1f} s ({ours:,.0f}/s); bare sqlite3 replay {raw_rate:,.0f}/s; "
          f"ratio {ours / raw_rate:.2f}", flush=True)
    print(json.dumps({"changes": len(entries), "keys": keys, "replay_s": round(seconds, 2),
                      "replay_per_s": round(ours), "raw_per_s": round(raw_rate),
                      "replay_vs_raw": round(ours / raw_rate, 3)}))


if __name__ == "__main__":
    asyncio.run(main())
