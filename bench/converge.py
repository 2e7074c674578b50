"""Time for N devices to converge through a local shared folder, beside the raw rate.

    python -m bench.converge [--changes C] [--devices 2,4,8]

Each device is a `StateStore` that made C changes offline (last-writer-wins
puts over 1,000 keys).  Timed: every device publishes its log
(`FileLogPublisher`), then every device takes in all the others
(`FileLogIngester`); at the end all state hashes must be equal.  The rate is
the entries delivered to other devices, N x (N-1) x C, per second.

Raw, from the same run: one origin's log read back with
`FileLog.read_entries` and applied with `SqliteOplog.apply_many` into a bare
oplog (no drivers, no state view), in entries per second.

The last line is one JSON object; ``converge_vs_raw`` is for the largest N.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

from peerlog import FileLog, FileLogIngester, FileLogPublisher, SqliteOplog, StateStore
from peerlog.state.ops import encode_put


async def make_device(path: Path, n: int, changes: int) -> StateStore:
    store = StateStore(path)
    for lo in range(0, changes, 5_000):
        await store.oplog.append_many(
            [encode_put("items", f"k{(i * 7 + n) % 1000}", {"device": n, "i": i})
             for i in range(lo, min(lo + 5_000, changes))])
    return store


async def raw_rate(folder: Path, source: StateStore, tmp: Path) -> float:
    reader = FileLog(folder, source.origin.__class__(int=0))
    async with SqliteOplog(tmp / "raw.db") as bare:
        started = time.perf_counter()
        index = 0
        while got := reader.read_entries(source.origin, index):
            await bare.apply_many(source.origin, index, [e for _, e in got])
            index = got[-1][0] + 1
        elapsed = time.perf_counter() - started
    await reader.close()
    return index / elapsed


async def converge(n: int, changes: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        folder = tmp / "shared"
        folder.mkdir()
        devices = [await make_device(tmp / f"d{i}.db", i, changes) for i in range(n)]
        logs = [FileLog(folder, d.origin) for d in devices]
        started = time.perf_counter()
        for device, log in zip(devices, logs, strict=True):
            await FileLogPublisher(device.oplog, log).run_once()
        for device, log in zip(devices, logs, strict=True):
            await FileLogIngester(log, device.oplog).run_once()
        elapsed = time.perf_counter() - started
        hashes = {await d.state_hash() for d in devices}
        assert len(hashes) == 1, f"devices did not converge: {len(hashes)} states"
        for d in devices:
            assert sum((await d.oplog.cursors()).values()) == n * changes
        raw = await raw_rate(folder, devices[0], tmp)
        for log in logs:
            await log.close()
        for d in devices:
            await d.close()
    delivered = n * (n - 1) * changes
    return {"devices": n, "seconds": round(elapsed, 3), "entries_delivered": delivered,
            "converge_per_s": round(delivered / elapsed), "raw_read_apply_per_s": round(raw),
            "ratio": round(delivered / elapsed / raw, 3)}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=50_000)
    parser.add_argument("--devices", default="2,4,8")
    args = parser.parse_args()
    results = []
    for n in (int(x) for x in args.devices.split(",")):
        result = await converge(n, args.changes)
        results.append(result)
        print(f"N={n}: converged in {result['seconds']} s, {result['converge_per_s']:,} "
              f"entries/s delivered; raw read+apply {result['raw_read_apply_per_s']:,}/s; "
              f"ratio {result['ratio']}", flush=True)
    last = results[-1]
    print(json.dumps({"changes_per_device": args.changes, "runs": results,
                      "converge_vs_raw": last["ratio"], "devices": last["devices"]}))


if __name__ == "__main__":
    asyncio.run(main())
