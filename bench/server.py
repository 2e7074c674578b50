"""The relay under load, beside the local PostgresOplog.apply_many rate, same run.

    python -m bench.server [--devices 50] [--per-device 200] [--batch 50] [--db DSN]

Starts a throwaway PostgreSQL cluster (as the tests do) unless ``--db`` is
given, then `peerlog serve` on it in its own process.  50 simulated devices
(asyncio tasks in this process, in-memory local oplogs, one device token
each) push their own entries in batches and pull every other device's, until
every device holds everything; the result is verified entry by entry.

- ``relay_entries_per_s``: entries through the relay per second, in (pushes)
  and out (pulls);
- ``p50_ms`` / ``p99_ms``: latency of every HTTP request the devices made;
- ``local_apply_many_per_s``: `PostgresOplog.apply_many` of the same batch
  size, straight into the same server, no HTTP;
- ``relay_vs_local``: the first over the last.

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from uuid import uuid4

from bench.relay_load import device_entry, run_load
from peerlog import PostgresOplog


async def local_rate(dsn: str, batch: int, total: int) -> float:
    async with PostgresOplog(dsn) as oplog:
        origin = uuid4()
        started = time.perf_counter()
        for lo in range(0, total, batch):
            await oplog.apply_many(origin, lo, [device_entry(0, i) for i in
                                                range(lo, lo + batch)])
        return total / (time.perf_counter() - started)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--per-device", type=int, default=200)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--db", help="a PostgreSQL DSN; default: a temporary cluster")
    args = parser.parse_args()
    if args.db:
        dsn = args.db
    else:
        from tests.pg import PgCluster
        dsn = PgCluster().fresh_schema()
    result = await run_load(dsn, devices=args.devices, per_device=args.per_device,
                            batch=args.batch)
    # After the load (and its verification): a new origin must not join it.
    local = await local_rate(dsn, args.batch, args.devices * args.per_device)
    figures = {
        "devices": result.devices, "entries_per_device": result.entries_per_device,
        "batch": args.batch, "seconds": round(result.seconds, 2),
        "pushed": result.pushed, "pulled": result.pulled, "requests": result.requests,
        "relay_entries_per_s": round(result.entries_per_s),
        "p50_ms": result.p50_ms, "p99_ms": result.p99_ms,
        "local_apply_many_per_s": round(local),
        "relay_vs_local": round(result.entries_per_s / local, 3),
    }
    print(f"{result.devices} devices x {result.entries_per_device} entries, batches of "
          f"{args.batch}: converged in {figures['seconds']} s, {result.requests:,} requests")
    print(f"relay   {figures['relay_entries_per_s']:>8,} entries/s (in + out)   "
          f"p50 {result.p50_ms} ms   p99 {result.p99_ms} ms")
    print(f"local   {figures['local_apply_many_per_s']:>8,} entries/s PostgresOplog.apply_many"
          f"   ratio {figures['relay_vs_local']}")
    print(json.dumps(figures))


if __name__ == "__main__":
    asyncio.run(main())
