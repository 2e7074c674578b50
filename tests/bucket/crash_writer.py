"""A bucket-log writer meant to be killed: run by the crash test as its own OS process.

    python -m tests.bucket.crash_writer BUCKET_URL ORIGIN_INT SEED

Appends large batches of deterministic entries (entry(i) at index i) and prints
``uploading START END`` before each upload and ``ack END`` after it returns.  Now and then an
earlier index divisible by 7 is expunged, printing ``erased I``.
"""

from __future__ import annotations

import asyncio
import random
import sys

from peerlog import BucketLog
from tests.helpers import entries, peer

ERASE_EVERY = 7


def main(url: str, origin: int, seed: int) -> None:
    rng = random.Random(seed)
    log = BucketLog(url, peer(origin))
    start = log.next_index
    print(f"start {start}", flush=True)
    while start < 2_000_000:
        count = rng.randint(1, 20_000)
        print(f"uploading {start} {start + count}", flush=True)
        log.append_many(start, entries(start, count))
        start += count
        print(f"ack {start}", flush=True)
        if start - count > ERASE_EVERY and rng.random() < 0.3:
            index = rng.randrange(0, start - count, ERASE_EVERY)
            log.expunge(index)
            print(f"erased {index}", flush=True)
    asyncio.run(log.close())


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
