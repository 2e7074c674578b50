"""One demo device, run as its own OS process by `peerlog demo`.

    python -m peerlog.cli.demo_device HOME PLACE DEVICES CHANGES SEED [RECORDS]

Makes CHANGES random changes while "offline", then syncs with PLACE (a shared folder,
or a bucket URL such as ``s3://bucket/prefix``) until it
holds every device's changes (DEVICES x CHANGES entries, plus RECORDS trust
records when the home is in an encrypted group).  It reports on stdout, one
JSON object per line, so the parent can show progress.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from pathlib import Path

from peerlog.bucket import BucketLog
from peerlog.drivers import FileLogIngester, FileLogPublisher
from peerlog.filelog import FileLog
from peerlog.home import through_trust
from peerlog.state import StateStore

TABLES = ("todos", "notes")
KEYS = 200
BATCH = 200


def report(**fields: object) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


async def held(store: StateStore) -> int:
    return sum((await store.oplog.cursors()).values())


async def main(home: Path, place: str, devices: int, changes: int, seed: int,
               records: int = 0) -> None:
    rng = random.Random(seed)
    async with StateStore(home / "device.sqlite") as store:
        report(event="ready", peer=str(store.origin))
        started = time.monotonic()
        # Offline: changes pile up in the local oplog only.
        for done in range(0, changes, BATCH):
            payloads: list[tuple[str, str, str, object]] = []
            for n in range(done, min(done + BATCH, changes)):
                table, key = rng.choice(TABLES), f"k{rng.randrange(KEYS)}"
                if rng.random() < 0.15:
                    payloads.append(("delete", table, key, None))
                else:
                    payloads.append(("put", table, key, {"by": seed, "n": n,
                                                         "text": f"change {n} of device {seed}"}))
            for kind, table, key, value in payloads:
                if kind == "put":
                    await store.put(table, key, value)
                else:
                    await store.delete(table, key)
            report(event="offline", made=min(done + BATCH, changes), held=await held(store))
        # Online: publish and take in until everyone's changes are here.
        log: FileLog | BucketLog
        shared: FileLog | BucketLog
        if "://" in place:
            log = BucketLog(place, store.origin, poll_interval=0.05)
            shared = through_trust(home, store, log)  # sealed, if encrypted
        else:
            log = FileLog(Path(place), store.origin, poll_interval=0.05)
            shared = through_trust(home, store, log, folder=Path(place))
        publisher = FileLogPublisher(store.oplog, shared)
        ingester = FileLogIngester(shared, store.oplog)
        total = devices * changes + records
        while True:
            await publisher.run_once()
            await ingester.run_once()
            count = await held(store)
            report(event="sync", held=count)
            if count >= total or ingester.diverged:
                break
            await asyncio.sleep(0.05)
        await log.close()
        keys = [len(await store.items(t)) for t in TABLES]
        report(event="done", held=await held(store), hash=await store.state_hash(),
               seconds=round(time.monotonic() - started, 3), keys=sum(keys))


if __name__ == "__main__":
    Path(sys.argv[1]).mkdir(parents=True, exist_ok=True)
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]),
                     int(sys.argv[5]), int(sys.argv[6]) if len(sys.argv) > 6 else 0))
