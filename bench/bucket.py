"""Devices converging through an S3 bucket, beside the same run through a local folder.

    python -m bench.bucket [--devices 4] [--changes 50000] [--idle-scale 100]

The S3 endpoint is ``moto[server]`` started as its own process on loopback (the
server the tests use; a separate process so its work does not share this
interpreter).  Each device is a `StateStore` that made C changes offline over 1,000
keys.  Timed, for each place: every device publishes its log, then every device
takes in all the others (`FolderSync` rounds); at the end every state hash must be
equal.  The rate is the entries delivered to other devices, N x (N-1) x C, per second;
``bucket_vs_folder`` is the bucket's rate over the folder's.

Raw, from the same run: the same batch objects PUT once and each read back by the
N-1 other devices with ``obstore`` directly, no peerlog (``bucket_vs_raw_transfer``).

Requests: every request the devices' bucket logs sent, per 1,000 changes written
(``requests_per_1000_changes``).  Idle: one device following N devices' logs with
`FolderSync.run` and nothing changing, on the real schedule of polls and safety
rounds run ``--idle-scale`` times faster (an hour in 36 s at 100), and the requests
counted (``idle_requests_per_hour``).

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from bench.converge import make_device
from peerlog import BucketLog, BucketStore, FileLog, FolderSync, StateStore
from peerlog.sync import defaults


class MotoProcess:
    """``moto[server]`` on a free loopback port, as its own process."""

    def __init__(self) -> None:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(self.endpoint, timeout=1).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                          AWS_REGION="us-east-1", AWS_ENDPOINT_URL=self.endpoint)
        self._n = 0

    def bucket(self) -> str:
        self._n += 1
        name = f"peerlog-bench-{self._n}"
        urllib.request.urlopen(urllib.request.Request(f"{self.endpoint}/{name}",
                                                      method="PUT")).read()
        return f"s3://{name}/sync"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait()


async def converge(devices: list[StateStore], open_log: Any) -> tuple[float, list[Any]]:
    """Seconds for every device to publish and then take in every other, and the logs."""
    logs = [open_log(d) for d in devices]
    syncs = [FolderSync(d.oplog, log) for d, log in zip(devices, logs, strict=True)]
    started = time.perf_counter()
    for sync in syncs:
        await sync.publisher.run_once()
    for sync in syncs:
        report = await sync.run_once()
        assert report.ok, report.to_json()
    elapsed = time.perf_counter() - started
    hashes = {await d.state_hash() for d in devices}
    assert len(hashes) == 1, f"devices did not converge: {len(hashes)} states"
    for log in logs:
        await log.close()
    return elapsed, logs


def raw_transfer(url: str, n: int) -> float:
    """Seconds to PUT every batch object of the bucket run again (under other names) and
    GET each N-1 times: the transfer alone, through obstore with no peerlog."""
    store = BucketStore(url)
    objects = [o for o in store.list_keys("") if o.key.endswith(".plog")]
    blobs = [store.get(o.key) for o in objects]
    started = time.perf_counter()
    for i, blob in enumerate(blobs):
        store.put_new(f"raw/{i}", blob)
    for _ in range(n - 1):
        for i in range(len(blobs)):
            store.get(f"raw/{i}")
    return time.perf_counter() - started


async def idle_hour(moto: MotoProcess, tmp: Path, n: int, scale: float) -> tuple[int, int]:
    """Requests one following device makes in an idle hour (run ``scale`` times faster),
    with ``n`` devices' logs in the bucket; and how many of them were polls' listings."""
    url = moto.bucket()
    for i in range(n):
        async with StateStore(tmp / f"idle{i}.db") as store, \
                BucketLog(url, store.origin) as log:
            await store.put("t", "k", i)
            await FolderSync(store.oplog, log).run_once()
    async with StateStore(tmp / "idle0.db") as store:
        log = BucketLog(url, store.origin,
                        poll_interval=defaults.BUCKET_POLL_INTERVAL / scale,
                        poll_max=defaults.BUCKET_POLL_MAX / scale)
        log.safety_round = defaults.BUCKET_SAFETY_ROUND / scale
        sync = FolderSync(store.oplog, log, state=store)
        await sync.run_once()  # the start of a session: not idle yet
        before, lists_before = log.store.total(), log.store.requests["list"]
        task = asyncio.create_task(sync.run())
        await asyncio.sleep(3600 / scale)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await log.close()
        return log.store.total() - before, log.store.requests["list"] - lists_before


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=4)
    parser.add_argument("--changes", type=int, default=50_000)
    parser.add_argument("--idle-scale", type=float, default=100.0)
    args = parser.parse_args()
    n, changes = args.devices, args.changes
    moto = MotoProcess()
    try:
        with tempfile.TemporaryDirectory() as tmp_name:
            tmp = Path(tmp_name)
            results: dict[str, Any] = {"devices": n, "changes_per_device": changes}
            for place in ("folder", "bucket"):
                devices = [await make_device(tmp / f"{place}{i}.db", i, changes, 0.0)
                           for i in range(n)]
                if place == "folder":
                    (tmp / "shared").mkdir()
                    elapsed, _ = await converge(
                        devices, lambda d: FileLog(tmp / "shared", d.origin))
                else:
                    url = moto.bucket()
                    elapsed, logs = await converge(
                        devices, lambda d, url=url: BucketLog(url, d.origin))
                    sent: Counter[str] = sum((log.store.requests for log in logs), Counter())
                    results["bucket_requests"] = dict(sent)
                    results["requests_per_1000_changes"] = round(
                        sum(sent.values()) / (n * changes / 1000), 2)
                    raw = raw_transfer(url, n)
                    results["raw_transfer_s"] = round(raw, 3)
                    results["bucket_vs_raw_transfer"] = round(raw / elapsed, 3)
                delivered = n * (n - 1) * changes
                results[f"{place}_s"] = round(elapsed, 3)
                results[f"{place}_per_s"] = round(delivered / elapsed)
                print(f"{place}: {n} devices x {changes} changes converged in {elapsed:.2f} s "
                      f"({delivered / elapsed:,.0f} entries/s delivered)", flush=True)
                for d in devices:
                    await d.close()
            results["bucket_vs_folder"] = round(results["bucket_per_s"]
                                                / results["folder_per_s"], 3)
            idle, listed = await idle_hour(moto, tmp, n, args.idle_scale)
            results["idle_requests_per_hour"] = idle
            results["idle_lists_per_hour"] = listed
            print(f"bucket vs folder: {results['bucket_vs_folder']}; "
                  f"{results['requests_per_1000_changes']} requests per 1,000 changes; "
                  f"idle: {idle} requests per hour following {n} devices", flush=True)
    finally:
        moto.stop()
    print(json.dumps(results))


if __name__ == "__main__":
    asyncio.run(main())
