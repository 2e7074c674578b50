"""FileLog append and read throughput beside plain file I/O of the same bytes, same run.

    python -m bench.filelog [--entries N] [--batch B] [--rounds R]

- append: N entries of 100-byte payloads, B per ``append_many`` (one fsync
  each).  Raw: the same serialized entries written with plain buffered
  ``open().write`` one entry at a time, flushed and fsynced every B entries.
- read: every entry back through ``read_entries`` (validation, checksums,
  decoding into ``Entry`` objects).  Raw (``read_vs_raw``): the same bytes read
  back with plain ``open().read(n)`` in the sizes they were written, one call
  per entry.  Also reported: one whole-file ``read()`` of the segments, the
  I/O ceiling no per-entry decoder in Python approaches (``read_vs_whole_file``).

Each figure is the best of R rounds.  The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import struct
import tempfile
import time
from pathlib import Path
from uuid import UUID

from peerlog import Entry, FileLog

ORIGIN, READER = UUID(int=1), UUID(int=2)
TS = struct.Struct(">Q")


def serialized(entries: list[Entry]) -> list[bytes]:
    return [TS.pack(e.ts) + e.payload for e in entries]


def raw_append(path: Path, chunks: list[bytes], batch: int) -> float:
    started = time.perf_counter()
    with open(path, "ab") as f:
        for lo in range(0, len(chunks), batch):
            for chunk in chunks[lo:lo + batch]:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
    return time.perf_counter() - started


def raw_read_per_entry(path: Path, sizes: list[int]) -> float:
    started = time.perf_counter()
    with open(path, "rb") as f:
        got = [f.read(n) for n in sizes]
    assert len(got) == len(sizes)
    return time.perf_counter() - started


def raw_read_whole(paths: list[Path]) -> tuple[float, int]:
    started = time.perf_counter()
    total = 0
    for path in paths:
        with open(path, "rb") as f:
            total += len(f.read())
    return time.perf_counter() - started, total


def ours_append(root: Path, entries: list[Entry], batch: int) -> float:
    log = FileLog(root, ORIGIN)
    started = time.perf_counter()
    for lo in range(0, len(entries), batch):
        log.append_many(lo, entries[lo:lo + batch])
    elapsed = time.perf_counter() - started
    asyncio.run(log.close())
    return elapsed


def ours_read(root: Path, total: int) -> float:
    log = FileLog(root, READER)
    started = time.perf_counter()
    index = 0
    while got := log.read_entries(ORIGIN, index):
        index = got[-1][0] + 1
    elapsed = time.perf_counter() - started
    assert index == total, (index, total)
    asyncio.run(log.close())
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    entries = [Entry(1_700_000_000_000 << 16 | i, os.urandom(100)) for i in range(args.entries)]
    chunks = serialized(entries)
    sizes = [len(c) for c in chunks]
    best: dict[str, float] = {}
    log_bytes = 0

    def keep(name: str, seconds: float) -> None:
        best[name] = min(best.get(name, float("inf")), seconds)

    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            root = Path(tmp) / f"shared{r}"
            root.mkdir()
            raw_path = Path(tmp) / f"raw{r}.bin"
            keep("raw_append", raw_append(raw_path, chunks, args.batch))
            keep("append", ours_append(root, entries, args.batch))
            keep("raw_read", raw_read_per_entry(raw_path, sizes))
            keep("read", ours_read(root, len(entries)))
            segments = sorted((root / str(ORIGIN)).glob("*.plog"))
            seconds, log_bytes = raw_read_whole(segments)
            keep("whole_file", seconds)

    n = len(entries)
    payload_mb = sum(sizes) / 1e6
    figures = {
        "entries": n,
        "payload_bytes": 100,
        "batch": args.batch,
        "log_bytes": log_bytes,
        "append_per_s": round(n / best["append"]),
        "append_mb_s": round(payload_mb / best["append"], 1),
        "raw_append_per_s": round(n / best["raw_append"]),
        "raw_append_mb_s": round(payload_mb / best["raw_append"], 1),
        "read_per_s": round(n / best["read"]),
        "read_mb_s": round(payload_mb / best["read"], 1),
        "raw_read_per_s": round(n / best["raw_read"]),
        "raw_read_mb_s": round(payload_mb / best["raw_read"], 1),
        "whole_file_mb_s": round(log_bytes / 1e6 / best["whole_file"], 1),
        "append_vs_raw": round(best["raw_append"] / best["append"], 3),
        "read_vs_raw": round(best["raw_read"] / best["read"], 3),
        "read_vs_whole_file": round(best["whole_file"] / best["read"], 3),
    }
    print(f"entries: {n} x 100 B, append batches of {args.batch} (one fsync each), "
          f"best of {args.rounds}")
    print(f"append  {figures['append_per_s']:>10,}/s {figures['append_mb_s']:>7} MB/s   raw "
          f"{figures['raw_append_per_s']:>10,}/s {figures['raw_append_mb_s']:>7} MB/s   "
          f"ratio {figures['append_vs_raw']}")
    print(f"read    {figures['read_per_s']:>10,}/s {figures['read_mb_s']:>7} MB/s   raw "
          f"{figures['raw_read_per_s']:>10,}/s {figures['raw_read_mb_s']:>7} MB/s   "
          f"ratio {figures['read_vs_raw']}")
    print(f"whole-file read() of the segments: {figures['whole_file_mb_s']} MB/s; "
          f"ratio {figures['read_vs_whole_file']}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
