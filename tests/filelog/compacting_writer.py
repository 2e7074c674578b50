"""A file-log writer that compacts its own log, meant to be killed: run by the crash test
as its own OS process.

    python -m tests.filelog.compacting_writer ROOT ORIGIN_INT SEED

Appends batches of deterministic entries (entry(i) at index i) and prints ``ack END``
after each append returns; every few batches compacts below a random point of what it
wrote and prints ``compacted POINT`` once that returns.  Segments hold 40 entries, so
compaction removes and flags segments all the time.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import peerlog.filelog.writer as writer_module
from peerlog import FileLog
from tests.helpers import entries, peer

vars(writer_module)["SEGMENT_MAX_ENTRIES"] = 40


def main(root: Path, origin: int, seed: int) -> None:
    rng = random.Random(seed)
    log = FileLog(root, peer(origin))
    start = log.next_index
    print(f"start {start}", flush=True)
    while start < 1_000_000:
        count = rng.randint(1, 60)
        log.append_many(start, entries(start, count))
        start += count
        print(f"ack {start}", flush=True)
        if rng.random() < 0.3:
            point = rng.randint(0, start)
            log.compact_below(point)
            print(f"compacted {point}", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
