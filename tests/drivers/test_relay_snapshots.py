"""Snapshots and compaction through a relay (SQLite and PostgreSQL): devices hand the relay
snapshots and say what they hold; the relay compacts; new and long-gone devices start
from a snapshot; deleted values leave the relay's database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from peerlog import CodecError, CompactedError, RelaySync, RemoteReplica, StateStore
from peerlog.net import TokenStore
from peerlog.net.serve import ServeOptions, open_replica, running
from peerlog.sync.hlc import wall_ms
from tests.drivers.test_never_wedges import RELAY_DBS, sqlite_db
from tests.helpers import files_holding, free_port

DAY_MS = 86_400_000


class Relay:
    """A relay on loopback, its replica, and a token per device."""

    def __init__(self, url: str, replica: Any, tokens: TokenStore) -> None:
        self.url, self.replica, self.tokens = url, replica, tokens

    @asynccontextmanager
    async def device(self, home: Path, *, bootstrap_min: int = 10
                     ) -> AsyncIterator[tuple[StateStore, RelaySync]]:
        store = StateStore(home / "device.sqlite")
        token = self.tokens.issue(store.origin, str(home))
        try:
            async with RemoteReplica(self.url, token) as remote:
                sync = RelaySync(store.oplog, remote, state=store)
                assert sync.snapshots is not None
                sync.snapshots.bootstrap_min = bootstrap_min
                yield store, sync
        finally:
            await store.close()


@asynccontextmanager
async def serving(db: str) -> AsyncIterator[Relay]:
    tokens = TokenStore()
    port = free_port()
    replica = open_replica(db)
    async with running(replica, tokens, ServeOptions(port=port)):
        yield Relay(f"http://127.0.0.1:{port}", replica, tokens)


@pytest.fixture(params=RELAY_DBS, ids=["sqlite", "postgres"])
def relay_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    make: Callable[[Path], str] = request.param
    return make(tmp_path)


def homes(tmp_path: Path, *names: str) -> list[Path]:
    out = []
    for name in names:
        (tmp_path / name).mkdir()
        out.append(tmp_path / name)
    return out


async def test_a_new_device_starts_from_the_relays_snapshot(relay_db: str,
                                                            tmp_path: Path) -> None:
    laptop, tablet = homes(tmp_path, "laptop", "tablet")
    async with serving(relay_db) as relay:
        async with relay.device(laptop) as (store, sync):
            for n in range(40):
                await store.put("t", str(n % 10), n)
            done = await sync.compact()
            assert done.snapshot is not None
            await store.put("t", "after", "snapshot")
            await sync.run_once()
            expected, origin = await store.state_hash(), store.origin
        # Only the laptop syncs here, so the relay dropped all it had to keep.
        assert (await relay.replica.first_indexes()).of(origin) == 40
        async with relay.device(tablet) as (store, sync):
            report = await sync.run_once()
            assert report.bootstrapped is not None
            assert report.ingested == 1
            assert report.ok
            assert await store.state_hash() == expected
            with pytest.raises(CompactedError):
                await sync.remote.read_since(origin, 0)


async def test_the_relay_keeps_what_a_syncing_device_lacks(relay_db: str,
                                                           tmp_path: Path) -> None:
    laptop, phone = homes(tmp_path, "laptop", "phone")
    async with serving(relay_db) as relay:
        async with relay.device(phone) as (_, sync):
            await sync.run_once()  # the phone says it holds nothing of the laptop yet
        async with relay.device(laptop) as (store, sync):
            for n in range(20):
                await store.put("t", str(n), n)
            await sync.compact()
            origin = store.origin
        assert (await relay.replica.first_indexes()).of(origin) == 0
        async with relay.device(phone, bootstrap_min=10**9) as (store, sync):
            report = await sync.run_once()  # takes the entries in, and says so
            assert report.bootstrapped is None
            assert report.ingested == 20
        assert (await relay.replica.first_indexes()).of(origin) == 20


async def test_a_device_silent_past_the_retention_window_starts_from_the_snapshot(
        relay_db: str, tmp_path: Path) -> None:
    laptop, phone = homes(tmp_path, "laptop", "phone")
    async with serving(relay_db) as relay:
        async with relay.device(phone) as (store, sync):
            await sync.run_once()
            phone_origin = store.origin
        # The phone's last word was 200 days ago.
        await relay.replica.keep_cursors(phone_origin, await relay.replica.cursors(),
                                         wall_ms() - 200 * DAY_MS)
        async with relay.device(laptop) as (store, sync):
            for n in range(20):
                await store.put("t", str(n), n)
            await sync.compact()
            expected, origin = await store.state_hash(), store.origin
        assert (await relay.replica.first_indexes()).of(origin) == 20
        async with relay.device(phone) as (store, sync):
            report = await sync.run_once()
            assert report.bootstrapped is not None
            assert report.ok
            assert await store.state_hash() == expected


async def test_the_relay_refuses_a_damaged_snapshot(
        relay_db: str, tmp_path: Path) -> None:
    [laptop] = homes(tmp_path, "laptop")
    async with serving(relay_db) as relay, relay.device(laptop) as (store, _), \
            RemoteReplica(relay.url, relay.tokens.issue(store.origin, "x")) as remote:
        data = await store.snapshot()
        with pytest.raises(CodecError, match="digest"):
            await remote.publish_snapshot(data[:-1] + bytes([data[-1] ^ 1]))
        assert await remote.snapshots() == []


async def test_after_delete_and_compact_the_value_is_gone_from_the_relay_database(
        tmp_path: Path) -> None:
    secret = b"hunter2-relay-correct-horse"
    laptop, phone = homes(tmp_path, "laptop", "phone")
    async with serving(sqlite_db(tmp_path)) as relay:
        async with relay.device(laptop) as (store, sync):
            await store.put("accounts", "me", {"password": secret.decode()})
            for n in range(50):
                await store.put("filler", str(n), "x" * 200)
            await sync.run_once()
        async with relay.device(phone) as (store, sync):
            await sync.run_once()
            await store.delete("accounts", "me")
            await sync.run_once()
        for home in (laptop, phone, laptop):
            async with relay.device(home) as (_, sync):
                await sync.compact()
        assert files_holding(tmp_path, secret) == []



async def test_a_compacted_device_seeds_a_new_relay(relay_db: str, tmp_path: Path) -> None:
    laptop, tablet = homes(tmp_path, "laptop", "tablet")
    first_relay = sqlite_db(tmp_path / "laptop")
    async with serving(first_relay) as relay, relay.device(laptop) as (store, sync):
        for n in range(30):
            await store.put("t", str(n), n)
        await sync.compact()
    async with serving(relay_db) as relay:
        async with relay.device(laptop) as (store, sync):
            await store.put("t", "later", "yes")
            report = await sync.run_once()
            assert report.ok, report.to_json()
            assert report.published == 1
            expected, origin = await store.state_hash(), store.origin
        # It began at 30; the relay then compacted what the seeding snapshot covers.
        assert (await relay.replica.first_indexes()).of(origin) >= 30
        async with relay.device(tablet) as (store, sync):
            report = await sync.run_once()
            assert report.bootstrapped is not None
            assert report.ok, report.to_json()
            assert await store.state_hash() == expected
