"""A file-log writer meant to be killed: run by the crash test as its own OS process.

    python -m tests.filelog.crash_writer ROOT ORIGIN_INT SEED

Appends batches of deterministic entries (entry(i) at index i) forever and
prints ``ack END`` after each append returns (it is durable then).  Every
index divisible by 7 is expunged a little later, printing ``erased I``.
"""

from __future__ import annotations

import asyncio
import random
import sys
from pathlib import Path

from peerlog import FileLog
from tests.helpers import entries, peer

ERASE_EVERY = 7


def main(root: Path, origin: int, seed: int) -> None:
    rng = random.Random(seed)
    log = FileLog(root, peer(origin))
    start = log.next_index
    print(f"start {start}", flush=True)
    while True:
        count = rng.randint(1, 300)
        log.append_many(start, entries(start, count))
        start += count
        print(f"ack {start}", flush=True)
        for index in range(max(0, start - 2 * count), start - count):
            if index % ERASE_EVERY == 0:
                log.expunge(index)
                print(f"erased {index}", flush=True)
        if start > 200_000:
            asyncio.run(log.close())
            return


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
