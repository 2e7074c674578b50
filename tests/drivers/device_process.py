"""One process of a device: writes changes and syncs them with a folder, for a while.

Run as ``python -m tests.drivers.device_process DB FOLDER SECONDS TAG``; exits 0
having printed how many changes it made, or non-zero with the error.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from peerlog import FileLog, FolderSync, StateStore


async def main(db: Path, folder: Path, seconds: float, tag: str) -> int:
    made = 0
    async with StateStore(db) as store, FileLog(folder, store.origin) as log:
        live = asyncio.create_task(FolderSync(store.oplog, log).run())
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await store.put(tag, str(made), made)
            made += 1
            if made % 10 == 0:
                report = await FolderSync(store.oplog, log).run_once()
                if not report.ok:
                    raise SystemExit(f"round not ok: {report}")
            await asyncio.sleep(0.002)
            if live.done():
                live.result()
        live.cancel()
        await asyncio.gather(live, return_exceptions=True)
        await FolderSync(store.oplog, log).run_once()
    print(made)
    return 0


if __name__ == "__main__":
    db, folder, seconds, tag = sys.argv[1:5]
    sys.exit(asyncio.run(main(Path(db), Path(folder), float(seconds), tag)))
