"""A load of simulated devices syncing through one relay server process.

Used by `bench/server.py` (figures) and by `tests/net/test_load.py`
(correctness under load and under a SIGKILL of the server).  Traffic goes to
127.0.0.1 only; every loop is bounded in count and in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx

from peerlog import (
    BackendError,
    Entry,
    PeerCursors,
    Puller,
    RemoteReplica,
    SqliteOplog,
    TokenStore,
)
from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[1]




def device_entry(device: int, index: int) -> Entry:
    """The entry device ``device`` writes at ``index``: content checked at the end."""
    return Entry(1_700_000_000_000 << 16 | index,
                 f"device {device} change {index} ".encode().ljust(100, b"."))


class TimedRemote(RemoteReplica):
    """A RemoteReplica that records the latency of every request."""

    def __init__(self, url: str, token: str, latencies: list[float]) -> None:
        super().__init__(url, token)
        self.latencies = latencies

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        started = time.perf_counter()
        try:
            return await super()._request(method, path, **kwargs)
        finally:
            self.latencies.append(time.perf_counter() - started)


@dataclass
class RelayProcess:
    """``peerlog serve`` in its own OS process."""

    db: str
    tokens: Path
    port: int = field(default_factory=free_port)
    process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "peerlog.cli", "serve", "--db", self.db, "--port",
            str(self.port), "--tokens", str(self.tokens), cwd=ROOT,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        async with httpx.AsyncClient() as client:
            for _ in range(300):
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{self.url}/v1/health")).status_code == 200:
                        return
                await asyncio.sleep(0.05)
        raise RuntimeError(f"the relay did not come up on {self.url}")

    async def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            await self.process.wait()


@dataclass
class LoadResult:
    devices: int
    entries_per_device: int
    seconds: float
    pushed: int
    pulled: int
    requests: int
    p50_ms: float
    p99_ms: float
    kills: int

    @property
    def entries_per_s(self) -> float:
        """Entries through the relay per second: in (pushes) and out (pulls)."""
        return (self.pushed + self.pulled) / self.seconds


async def _retrying(work: Any, deadline: float) -> Any:
    """Run ``work()`` until the relay answers (it may be restarting)."""
    delay = 0.05
    while True:
        try:
            return await work()
        except BackendError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)


async def _device(n: int, origin: UUID, url: str, token: str, tmp: Path, per_device: int,
                  batch: int, total: int, latencies: list[float], counts: list[int],
                  deadline: float) -> SqliteOplog:
    # In memory: the devices are simulated; the relay and its database are measured.
    local = SqliteOplog(":memory:", origin=origin)
    async with TimedRemote(url, token, latencies) as remote:
        push = Puller(local, remote)
        pull = Puller(remote, local, skip=(origin,), batch=5_000)
        written = 0
        while True:
            if written < per_device:
                chunk = [device_entry(n, i) for i in range(written, written + batch)]
                await local.apply_many(origin, written, chunk)
                written += batch
                ahead = PeerCursors({origin: written})
                # Await first, then add: `+=` across an await would lose other
                # devices' updates.
                pushed = await _retrying(partial(push.catch_up, ahead), deadline)
                counts[0] += pushed
            pulled = await _retrying(pull.run_once, deadline)
            counts[1] += pulled
            if written >= per_device and sum((await local.cursors()).values()) >= total:
                return local
            if time.monotonic() > deadline:
                raise TimeoutError(f"device {n} did not converge in time")
            if written >= per_device:
                await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def relay_for(db: str, devices: int) -> AsyncIterator[tuple[RelayProcess,
                                                                  dict[UUID, str]]]:
    with tempfile.TemporaryDirectory() as tmp:
        tokens = TokenStore.load(Path(tmp) / "tokens.json")
        grants = {UUID(int=n + 1): "" for n in range(devices)}
        for origin in grants:
            grants[origin] = tokens.issue(origin, f"device {origin.int}")
        relay = RelayProcess(db, Path(tmp) / "tokens.json")
        await relay.start()
        try:
            yield relay, grants
        finally:
            await relay.stop()


async def run_load(db: str, *, devices: int = 50, per_device: int = 200, batch: int = 50,
                   kill_after: float | None = None, time_limit: float = 240.0) -> LoadResult:
    """Run the load; with ``kill_after``, SIGKILL and restart the relay after that long."""
    total = devices * per_device
    latencies: list[float] = []
    counts = [0, 0]
    kills = 0
    async with relay_for(db, devices) as (relay, grants):
        with tempfile.TemporaryDirectory() as tmp_name:
            tmp = Path(tmp_name)
            started = time.monotonic()
            deadline = started + time_limit
            tasks = [asyncio.create_task(_device(n, origin, relay.url, token, tmp,
                                                 per_device, batch, total, latencies,
                                                 counts, deadline))
                     for n, (origin, token) in enumerate(grants.items(), 1)]
            if kill_after is not None:
                await asyncio.sleep(kill_after)
                await relay.kill()
                kills += 1
                await asyncio.sleep(0.3)
                await relay.start()
            locals_ = await asyncio.gather(*tasks)
            seconds = time.monotonic() - started
            try:
                await verify(locals_, grants, per_device, relay.url)
            finally:
                for local in locals_:
                    await local.close()
    ordered = sorted(latencies)
    return LoadResult(devices, per_device, seconds, counts[0], counts[1], len(ordered),
                      round(ordered[len(ordered) // 2] * 1000, 2),
                      round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 2),
                      kills)


async def verify(devices: list[SqliteOplog], grants: dict[UUID, str], per_device: int,
                 url: str) -> None:
    """Every device and the relay hold every origin's entries exactly once, unaltered."""
    expected = {origin: per_device for origin in grants}
    for n, local in enumerate(devices, 1):
        assert await local.cursors() == expected, f"device {n}: cursors differ"
        for d, origin in enumerate(grants, 1):
            got: list[tuple[int, Any]] = []
            while batch := await local.read_since(origin, len(got)):
                got.extend(batch)
            assert got == [(i, device_entry(d, i)) for i in range(per_device)], \
                f"device {n} holds a wrong or missing entry of origin {d}"
    async with RemoteReplica(url, next(iter(grants.values()))) as remote:
        assert await remote.cursors() == expected, "the relay's cursors differ"


def result_json(result: LoadResult) -> str:
    return json.dumps(result.__dict__ | {"entries_per_s": round(result.entries_per_s)})

