"""Snapshots and compaction through a shared folder: new devices start from a snapshot,
logs stop growing, devices back after the retention window and retired devices' data
still arrive, and deleted values are gone everywhere."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from peerlog import CompactedError, FileLog, FolderSync, StateStore
from peerlog.filelog.names import CURSORS_FILE, SNAPSHOTS_FOLDER
from peerlog.sync.hlc import wall_ms
from tests.drivers.places import BucketPlace, FolderPlace
from tests.helpers import files_holding, folder_size

DAY_MS = 86_400_000
Place = FolderPlace | BucketPlace


class Device:
    """A device home (its database) syncing with one shared folder."""

    def __init__(self, home: Path, shared: Path | Place) -> None:
        self.home, self.shared = home, shared

    @asynccontextmanager
    async def open(self, *, every: int = 10**9, bootstrap_min: int = 10
                   ) -> AsyncIterator[tuple[StateStore, FolderSync]]:
        store = StateStore(self.home / "device.sqlite")
        log = FileLog(self.shared, store.origin) if isinstance(self.shared, Path) \
            else self.shared.log(store.origin)
        sync = FolderSync(store.oplog, log, state=store)
        assert sync.snapshots is not None
        sync.snapshots.every, sync.snapshots.bootstrap_min = every, bootstrap_min
        try:
            yield store, sync
        finally:
            await log.close()
            await store.close()

    async def round(self) -> None:
        async with self.open() as (_, sync):
            report = await sync.run_once()
            assert report.ok, report.to_json()


def five_devices(tmp_path: Path, where: Path | Place) -> list[Device]:
    for name in "abcde":
        (tmp_path / name).mkdir()
    return [Device(tmp_path / name, where) for name in "abcde"]


@pytest.fixture
def devices(tmp_path: Path, shared: Path) -> list[Device]:
    return five_devices(tmp_path, shared)


@pytest.fixture
def devices_anywhere(tmp_path: Path, place: Place) -> list[Device]:
    """As ``devices``, meeting in a folder and then (a second run) in a bucket."""
    return five_devices(tmp_path, place)


async def started_from_snapshot(sync: FolderSync, store: StateStore, expected: str) -> None:
    """A round of ``sync`` loads a snapshot, syncs cleanly and ends in ``expected``."""
    report = await sync.run_once()
    assert report.bootstrapped is not None
    assert report.ok, report.to_json()
    assert await store.state_hash() == expected


async def put_thirty_and_compact(store: StateStore, sync: FolderSync) -> None:
    """Thirty changes, then a compaction (a snapshot, and the covered log removed)."""
    for n in range(30):
        await store.put("t", str(n), n)
    await sync.compact()


def _segments(shared: Path, store: StateStore) -> list[str]:
    return sorted(n for n in os.listdir(shared / str(store.origin)) if n.endswith(".plog"))


async def test_a_new_device_starts_from_a_snapshot_and_replays_only_the_tail(
        devices_anywhere: list[Device]) -> None:
    a, b, _, _, new = devices_anywhere
    async with a.open() as (store, sync):
        for n in range(40):
            await store.put("t", str(n % 10), n)
        await sync.compact()
        await store.put("t", "after", "snapshot")
        await sync.run_once()
        expected = await store.state_hash()
    async with new.open() as (store, sync):
        report = await sync.run_once()
        assert report.bootstrapped is not None
        assert report.ingested == 1  # only the entry above the snapshot's frontier
        assert await store.state_hash() == expected
        with pytest.raises(CompactedError):
            await store.oplog.read_since(next(iter(report.bootstrapped.moved)), 0)
    await b.round()


async def test_a_device_that_lacks_little_replays_instead(
        devices_anywhere: list[Device]) -> None:
    a, new = devices_anywhere[0], devices_anywhere[4]
    async with a.open() as (store, sync):
        await store.put("t", "k", 1)
        await sync.run_once()
        sync.file_log.snapshots.publish(await store.snapshot())  # no compaction
    async with new.open(bootstrap_min=10) as (store, sync):
        report = await sync.run_once()
        assert report.bootstrapped is None
        assert report.ingested == 1


async def test_compaction_leaves_the_folder_about_as_large_as_the_state(
        devices: list[Device], shared: Path) -> None:
    a = devices[0]
    async with a.open() as (store, sync):
        for n in range(3_000):
            await store.put("t", str(n % 20), {"n": n, "pad": "x" * 40})
        await sync.run_once()
        before = folder_size(shared)
        done = await sync.compact()
        assert done.segments_removed >= 1
        assert done.entries_dropped == 3_000 - 20
        after = folder_size(shared)
        assert after < before / 20
        await store.put("t", "more", 1)  # the log goes on after its compacted start
        assert (await sync.run_once()).ok
    async with devices[1].open() as (other, sync):
        await sync.run_once()
        assert await other.get("t", "more") == 1
        assert len(await other.items("t")) == 21


async def test_segments_stay_while_a_syncing_device_still_lacks_them(
        devices: list[Device], shared: Path) -> None:
    a, b = devices[0], devices[1]
    await b.round()  # b says what it holds: nothing of a yet
    async with b.open() as (store, _):
        b_origin = store.origin
    async with a.open() as (store, sync):
        for n in range(50):
            await store.put("t", str(n), n)
        await sync.run_once()
        done = await sync.compact()
        assert done.segments_removed == 0
        assert done.waiting_for == [b_origin]
        assert _segments(shared, store)[0] == "00000000000000000000.plog"
    await b.round()
    async with a.open() as (store, sync):
        assert (await sync.compact()).segments_removed == 1


async def test_a_device_offline_past_the_retention_window_starts_from_the_snapshot(
        devices: list[Device], shared: Path) -> None:
    a, c = devices[0], devices[2]
    async with a.open() as (store, sync):
        await store.put("t", "early", 1)
        await sync.run_once()
    await c.round()
    async with c.open() as (store, _):
        c_origin = store.origin
    # c goes quiet; its last word in the folder is 200 days old.
    said = shared / str(c_origin) / CURSORS_FILE
    doc = json.loads(said.read_text())
    doc["written_ms"] = wall_ms() - 200 * DAY_MS
    said.write_text(json.dumps(doc))
    async with a.open() as (store, sync):
        for n in range(30):
            await store.put("t", str(n), n)
        await sync.run_once()
        assert (await sync.compact()).waiting_for == []
        expected = await store.state_hash()
        assert _segments(shared, store)[0] != "00000000000000000000.plog"
    async with c.open() as (store, sync):
        await started_from_snapshot(sync, store, expected)


async def test_without_a_snapshot_a_compacted_gap_is_reported_not_skipped(
        devices: list[Device], shared: Path) -> None:
    a, c = devices[0], devices[2]
    async with a.open() as (store, sync):
        await put_thirty_and_compact(store, sync)
    for snap in (shared / SNAPSHOTS_FOLDER).iterdir():
        snap.unlink()
    async with c.open() as (store, sync):
        report = await sync.run_once()
        assert not report.ok
        assert list(report.compacted.values()) == [30]
        assert await store.items("t") == []


async def test_a_damaged_snapshot_is_ignored_and_the_device_replays(
        devices: list[Device], shared: Path) -> None:
    a, new = devices[0], devices[4]
    async with a.open() as (store, sync):
        for n in range(30):
            await store.put("t", str(n), n)
        await sync.run_once()
        sync.file_log.snapshots.publish(await store.snapshot())  # every segment stays
        expected = await store.state_hash()
    [snap] = (shared / SNAPSHOTS_FOLDER).iterdir()
    snap.write_bytes(snap.read_bytes()[:-100])
    async with new.open() as (store, sync):
        report = await sync.run_once()
        assert report.bootstrapped is None
        assert report.ingested == 30
        assert await store.state_hash() == expected


async def test_a_retired_devices_data_still_reaches_a_new_device(
        devices: list[Device], shared: Path) -> None:
    a, retired, new = devices[0], devices[1], devices[4]
    async with retired.open() as (store, sync):
        await store.put("notes", "old", "from the retired laptop")
        await sync.run_once()
        gone = store.origin
    await a.round()
    async with a.open() as (_, sync):
        await sync.compact()
    for path in sorted((shared / str(gone)).iterdir()):
        path.unlink()
    (shared / str(gone)).rmdir()
    async with new.open(bootstrap_min=1) as (store, sync):
        report = await sync.run_once()
        assert report.bootstrapped is not None
        assert await store.get("notes", "old") == "from the retired laptop"


async def test_after_delete_and_compact_everywhere_the_value_is_in_no_file(
        devices: list[Device], shared: Path, tmp_path: Path) -> None:
    secret = b"hunter2-correct-horse-battery"
    a, b = devices[0], devices[1]
    async with a.open() as (store, sync):
        await store.put("accounts", "me", {"password": secret.decode()})
        for n in range(100):
            await store.put("filler", str(n), "x" * 100)
        await sync.run_once()
    await b.round()
    async with a.open() as (store, sync):
        await store.delete("accounts", "me")
        await sync.run_once()
    await b.round()
    for device in (a, b, a):  # each compacts once every other one holds the delete
        async with device.open() as (_, sync):
            await sync.compact()
    assert files_holding(shared, secret) == []
    assert files_holding(tmp_path, secret) == []


async def test_a_running_device_that_meets_a_compacted_gap_loads_a_snapshot_in_that_round(
        devices: list[Device], shared: Path) -> None:
    a, c = devices[0], devices[2]
    async with c.open() as (store, sync):
        assert (await sync.run_once()).ok  # its first round: nothing to start from yet
        async with a.open() as (a_store, a_sync):
            await a_store.put("t", "early", 1)
            await a_sync.run_once()
        await sync.run_once()
        said = shared / str(store.origin) / CURSORS_FILE
        doc = json.loads(said.read_text())
        doc["written_ms"] = wall_ms() - 200 * DAY_MS  # as if c had gone quiet long ago
        said.write_text(json.dumps(doc))
        async with a.open() as (a_store, a_sync):
            await put_thirty_and_compact(a_store, a_sync)
            expected = await a_store.state_hash()
        await started_from_snapshot(sync, store, expected)


async def test_a_compacted_device_seeds_a_new_folder_with_its_log_and_a_snapshot(
        devices: list[Device], place: Place) -> None:
    a, new = devices[0], devices[4]
    async with a.open() as (store, sync):
        await put_thirty_and_compact(store, sync)  # its database keeps no entry below 30
        await store.put("t", "later", "yes")
        expected = await store.state_hash()
        log = place.log(store.origin)  # a new folder, or a bucket
        report = await FolderSync(store.oplog, log, state=store).run_once()
        assert report.ok, report.to_json()
        assert report.published == 1
        assert log.first_indexes().of(store.origin) == 30
        await log.close()
    new_home = new.home
    async with StateStore(new_home / "device.sqlite") as other:
        log = place.log(other.origin)
        await started_from_snapshot(FolderSync(other.oplog, log, state=other), other, expected)
        await log.close()
