"""Sync never wedges: sizes, erasures through a relay, and one half failing alone.

Each test is named for the item of the reliability issue it covers; each
failed on 0.1 (a 403 forever, a 413 forever, a page the client called
corrupt, a folder record its own reader rejected, a whole sync aborted).
"""

from __future__ import annotations

import errno
import hashlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from uuid import UUID

import httpx
import pytest

from peerlog import (
    MAX_BATCH_BYTES,
    MAX_ENTRY_BYTES,
    EntryTooLargeError,
    FileLog,
    FolderSync,
    RelaySync,
    RemoteReplica,
    SqliteOplog,
    StateStore,
)
from peerlog.filelog import format as fmt
from peerlog.net import TokenStore
from peerlog.net.serve import ServeOptions, open_replica, running
from peerlog.net.server import MAX_BATCH_BODY
from peerlog.state.ops import encode_put
from peerlog.sync.entry import DecodedEntry, Entry
from tests.helpers import free_port, peer
from tests.pg import cluster


@asynccontextmanager
async def relay(db: str, origins: list[UUID]) -> AsyncIterator[tuple[str, dict[UUID, str]]]:
    """A relay on loopback serving ``db``; the URL and one device token per origin."""
    tokens = TokenStore()
    issued = {origin: tokens.issue(origin, str(origin)) for origin in origins}
    for attempt in range(5):
        port = free_port()
        try:
            server = running(open_replica(db), tokens, ServeOptions(port=port))
            await server.__aenter__()
        except OSError as exc:  # the port was taken between choosing and binding it
            if exc.errno != errno.EADDRINUSE or attempt == 4:
                raise
            continue
        try:
            yield f"http://127.0.0.1:{port}", issued
        finally:
            await server.__aexit__(None, None, None)
        return


def sqlite_db(tmp_path: Path) -> str:
    return f"sqlite:{tmp_path / 'relay.db'}"


def postgres_db(tmp_path: Path) -> str:
    return cluster().fresh_schema()


RELAY_DBS: list[Callable[[Path], str]] = [sqlite_db, postgres_db]


async def sync_through(url: str, token: str, store: StateStore) -> RelaySync:
    async with RemoteReplica(url, token) as remote:
        sync = RelaySync(store.oplog, remote)
        report = await sync.run_once()
        assert report.ok, report
        return sync


async def put_many(store: StateStore, count: int, size: int, table: str = "t") -> None:
    """``count`` JSON string values of ``size`` bytes, in transactions of 200."""
    for lo in range(0, count, 200):
        await store.oplog.append_many([encode_put(table, str(k), f"{k:08d}" + "v" * size)
                                       for k in range(lo, min(lo + 200, count))])


# -- 1. an erasure never breaks relay sync on other devices ------------------------------


async def test_an_erasure_through_a_relay_never_stops_other_devices(tmp_path: Path) -> None:
    async with StateStore(tmp_path / "d.db") as d, StateStore(tmp_path / "e.db") as e, \
            relay(sqlite_db(tmp_path), [d.origin, e.origin]) as (url, tokens):
        for k in range(3):
            await d.put("notes", str(k), f"note {k}")
        await sync_through(url, tokens[d.origin], d)
        await sync_through(url, tokens[e.origin], e)
        await d.oplog.expunge(d.origin, 1)
        await sync_through(url, tokens[d.origin], d)
        for _ in range(3):  # on 0.1 the second one failed with 403, and every later one
            await e.put("notes", "from-e", "still syncing")
            await sync_through(url, tokens[e.origin], e)
        assert (await e.oplog.erased())[d.origin] == [(1, (await d.oplog.erased())[d.origin][0][1])]
        assert [k for k, _ in await e.items("notes")] == ["0", "2", "from-e"]


async def test_a_refused_push_never_stops_the_pull(tmp_path: Path) -> None:
    async with StateStore(tmp_path / "a.db") as a, StateStore(tmp_path / "b.db") as b, \
            relay(sqlite_db(tmp_path), [a.origin, b.origin]) as (url, tokens):
        await a.put("notes", "1", "from a")
        await sync_through(url, tokens[a.origin], a)
        await b.put("notes", "2", "from b")
        async with RemoteReplica(url, tokens[a.origin]) as wrong_token:
            report = await RelaySync(b.oplog, wrong_token).run_once()
        assert report.published == 0
        assert "403" in report.refused[0]
        assert report.ingested == 1, "the pull ran although the push was refused"
        assert await b.get("notes", "1") == "from a"


# -- 2 and 3. any backlog of legal entries is pushed and pulled in bounded batches ---------


@pytest.mark.parametrize("make_db", RELAY_DBS, ids=["sqlite", "postgres"])
async def test_twenty_megabytes_of_15kb_values_travel_through_a_relay(
        tmp_path: Path, make_db: Callable[[Path], str]) -> None:
    async with StateStore(tmp_path / "a.db") as a, StateStore(tmp_path / "b.db") as b, \
            relay(make_db(tmp_path), [a.origin, b.origin]) as (url, tokens):
        await put_many(a, 1_400, 15_000)  # 21 MB: over the old 16 MiB body limit
        await sync_through(url, tokens[a.origin], a)
        sync = await sync_through(url, tokens[b.origin], b)
        assert sync.pull.diverged == {}
        assert await b.state_hash() == await a.state_hash()
        assert len(await b.items("t")) == 1_400


async def test_a_relay_page_never_exceeds_the_batch_byte_bound(tmp_path: Path) -> None:
    async with StateStore(tmp_path / "a.db") as a, \
            relay(sqlite_db(tmp_path), [a.origin]) as (url, tokens):
        await put_many(a, 1_000, 14_000)  # 14 MB in one origin
        await sync_through(url, tokens[a.origin], a)
        async with httpx.AsyncClient(base_url=url) as client:
            page = await client.get(f"/v1/origins/{a.origin}/entries", params={"from": 0},
                                    headers={"Authorization": f"Bearer {tokens[a.origin]}"})
        assert page.status_code == 200
        assert MAX_BATCH_BYTES // 2 < len(page.content) <= MAX_BATCH_BODY


def near_max(n: int) -> bytes:
    return bytes([n]) * (MAX_ENTRY_BYTES - 100)


async def test_five_entries_just_under_the_maximum_travel_through_a_folder(
        tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    async with SqliteOplog(tmp_path / "a.db") as a, SqliteOplog(tmp_path / "b.db") as b:
        await a.append_many([near_max(n) for n in range(5)])
        async with FileLog(shared, a.origin) as log_a, FileLog(shared, b.origin) as log_b:
            assert (await FolderSync(a, log_a).run_once()).published == 5
            report = await FolderSync(b, log_b).run_once()
        assert report.ok
        assert report.ingested == 5
        assert await b.read_since(a.origin, 0, 2) == await a.read_since(a.origin, 0, 2)
        assert [e for _, e in await b.read_since(a.origin, 3)] == \
            [e for _, e in await a.read_since(a.origin, 3, 2)]


@pytest.mark.parametrize("make_db", RELAY_DBS, ids=["sqlite", "postgres"])
async def test_five_entries_just_under_the_maximum_travel_through_a_relay(
        tmp_path: Path, make_db: Callable[[Path], str]) -> None:
    async with StateStore(tmp_path / "a.db") as a, StateStore(tmp_path / "b.db") as b, \
            relay(make_db(tmp_path), [a.origin, b.origin]) as (url, tokens):
        await a.oplog.append_many([near_max(n) for n in range(5)])
        await sync_through(url, tokens[a.origin], a)
        await sync_through(url, tokens[b.origin], b)
        got = [payload(e) for _, e in await b.oplog.read_since(a.origin, 0)]
        got += [payload(e) for _, e in await b.oplog.read_since(a.origin, len(got))]
        got += [payload(e) for _, e in await b.oplog.read_since(a.origin, len(got))]
        assert [hashlib.sha256(p).digest() for p in got] == \
            [hashlib.sha256(near_max(n)).digest() for n in range(5)]


def payload(entry: DecodedEntry) -> bytes:
    assert isinstance(entry, Entry)
    return entry.payload


# -- 4. nothing over the maximum is ever written ---------------------------------------


async def test_a_value_over_the_maximum_is_refused_at_put_and_nothing_is_written(
        tmp_path: Path) -> None:
    async with StateStore(tmp_path / "a.db") as a:
        with pytest.raises(EntryTooLargeError, match="limited to 4194304 bytes"):
            await a.put("t", "big", "x" * MAX_ENTRY_BYTES)
        assert await a.oplog.cursors() == {}
        with pytest.raises(KeyError):
            await a.get("t", "big")


def test_the_file_log_refuses_an_entry_no_record_can_hold(tmp_path: Path) -> None:
    log = FileLog(tmp_path, peer(1))
    log.append_many(0, [Entry(1, b"small")])
    with pytest.raises(fmt.RecordTooLargeError):
        log.append_many(1, [Entry(2, b"ok"), Entry(3, bytes(fmt.MAX_RECORD_BODY))])
    assert log.next_index == 1
    assert log.doctor().healthy


async def test_an_entry_over_the_limit_written_by_an_older_version_still_travels_alone(
        tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    legacy = Entry(1 << 40, b"L" * (MAX_BATCH_BYTES + 1))  # 0.1 had no limit
    async with SqliteOplog(tmp_path / "a.db") as a, SqliteOplog(tmp_path / "b.db") as b:
        await a.apply_many(a.origin, 0, [legacy, Entry(2 << 40, b"after")])
        async with FileLog(shared, a.origin) as log_a, FileLog(shared, b.origin) as log_b:
            assert (await FolderSync(a, log_a).run_once()).published == 2
            assert log_a.doctor().healthy
            assert (await FolderSync(b, log_b).run_once()).ingested == 2
        assert [e for _, e in await b.read_since(a.origin, 1)] == [Entry(2 << 40, b"after")]


# -- 5. a failed publish does not stop taking in everyone else ---------------------------


async def test_a_publish_failure_does_not_stop_taking_in_other_devices(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    async with StateStore(tmp_path / "a.db") as a, StateStore(tmp_path / "b.db") as b:
        await a.put("notes", "first", "published")
        async with FileLog(shared, a.origin) as log_a:
            await FolderSync(a.oplog, log_a).run_once()
        # Bit rot in a's own segment: a must not write after it.
        segment = next((shared / str(a.origin)).glob("*.plog"))
        data = bytearray(segment.read_bytes())
        data[-5] ^= 0xFF
        segment.write_bytes(bytes(data))
        await a.put("notes", "mine", "a's own")
        await b.put("notes", "theirs", "from b")
        async with FileLog(shared, b.origin) as log_b:
            await FolderSync(b.oplog, log_b).run_once()
        async with FileLog(shared, a.origin) as log_a:
            report = await FolderSync(a.oplog, log_a).run_once()
        assert not report.ok
        assert "damaged" in report.refused[0]
        assert report.ingested == 1
        assert await a.get("notes", "theirs") == "from b"


def test_the_relay_body_limit_exceeds_the_largest_legal_batch() -> None:
    from peerlog.net.server import MAX_BODY

    assert MAX_BODY > MAX_BATCH_BODY > MAX_BATCH_BYTES > MAX_ENTRY_BYTES
