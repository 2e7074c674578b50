"""Restored and copied devices continue as a new origin, and no edit is lost."""

from __future__ import annotations

import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from peerlog import BucketLog, FileLog, FolderSync, RelaySync, SqliteOplog, StateStore, SyncReport
from tests.s3 import s3

Sync = Callable[[StateStore, Path], Awaitable[SyncReport]]


async def through_folder(store: StateStore, shared: Path) -> SyncReport:
    async with FileLog(shared, store.origin) as log:
        return await FolderSync(store.oplog, log).run_once()


async def through_relay(store: StateStore, shared: Path) -> SyncReport:
    # RelaySync speaks to any Replica: here the relay's own store, without HTTP.
    async with SqliteOplog(shared / "relay.db") as relay:
        return await RelaySync(store.oplog, relay).run_once()


_BUCKETS: dict[Path, str] = {}


async def through_bucket(store: StateStore, shared: Path) -> SyncReport:
    # One bucket per test, standing where the test's shared folder would.
    if shared not in _BUCKETS:
        _BUCKETS[shared] = s3().fresh_bucket()
    async with BucketLog(_BUCKETS[shared], store.origin) as log:
        return await FolderSync(store.oplog, log).run_once()


@pytest.fixture(params=[through_folder, through_relay, through_bucket],
                ids=["folder", "relay", "bucket"])
def sync(request: pytest.FixtureRequest) -> Sync:
    return request.param  # type: ignore[no-any-return]


async def published_then_copied(db: Path, copy: Path, shared: Path, sync: Sync, /,
                                **notes: str) -> None:
    """A device that wrote ``notes`` and synced, then copied (a backup, or a clone)."""
    async with StateStore(db) as store:
        for key, value in notes.items():
            await store.put("notes", key, value)
        await sync(store, shared)
    shutil.copy(db, copy)


async def test_a_device_restored_from_a_backup_and_changed_continues_as_a_new_origin(
        tmp_path: Path, shared: Path, sync: Sync) -> None:
    await published_then_copied(tmp_path / "a.db", tmp_path / "backup.db", shared, sync,
                                n0="before the backup", n1="before the backup",
                                n2="before the backup")
    async with StateStore(tmp_path / "backup.db") as backup:
        old = backup.origin
    async with StateStore(tmp_path / "a.db") as a:
        await a.put("notes", "n3", "after the backup, published")
        await sync(a, shared)
    shutil.copy(tmp_path / "backup.db", tmp_path / "a.db")  # the disk died; restored
    async with StateStore(tmp_path / "a.db") as a:
        await a.put("notes", "n4", "after the restore")
        await a.put("notes", "n0", "edited after the restore")
        report = await sync(a, shared)
        assert report.continued is not None
        assert (report.continued.old, report.continued.carried) == (old, 2)
        assert a.origin == report.continued.new != old
        assert "continues as device" in str(report.continued)
        assert await a.get("notes", "n3") == "after the backup, published"
        report = await sync(a, shared)
        assert report.ok
        assert report.continued is None
        mine = await a.state_hash()
    async with StateStore(tmp_path / "b.db") as b:
        await sync(b, shared)
        assert dict(await b.items("notes")) == {
            "n0": "edited after the restore", "n1": "before the backup",
            "n2": "before the backup", "n3": "after the backup, published",
            "n4": "after the restore"}
        assert await b.state_hash() == mine


async def test_a_copied_home_and_its_original_both_keep_syncing(tmp_path: Path, shared: Path,
                                                                sync: Sync) -> None:
    await published_then_copied(tmp_path / "a.db", tmp_path / "clone.db", shared, sync,
                                **{"shared": "from before the copy"})
    async with StateStore(tmp_path / "a.db") as a, StateStore(tmp_path / "clone.db") as clone:
        await a.put("notes", "a", "the original's edit")
        await clone.put("notes", "clone", "the clone's edit")
        assert (await sync(a, shared)).continued is None
        assert (await sync(clone, shared)).continued is not None
        await sync(a, shared)
        assert a.origin != clone.origin
        assert await a.state_hash() == await clone.state_hash()
        assert dict(await a.items("notes")) == {"shared": "from before the copy",
                                                "a": "the original's edit",
                                                "clone": "the clone's edit"}
        for store in (a, clone):  # and they go on syncing
            assert (await sync(store, shared)).ok


async def test_a_restored_device_with_no_new_edits_just_catches_up(tmp_path: Path, shared: Path,
                                                                   sync: Sync) -> None:
    await published_then_copied(tmp_path / "a.db", tmp_path / "backup.db", shared, sync,
                                **{"1": "one"})
    async with StateStore(tmp_path / "a.db") as a:
        await a.put("notes", "2", "two")
        await sync(a, shared)
    shutil.copy(tmp_path / "backup.db", tmp_path / "a.db")
    async with StateStore(tmp_path / "a.db") as a:
        origin = a.origin
        report = await sync(a, shared)
        assert report.continued is None
        assert a.origin == origin
        await sync(a, shared)
        assert await a.get("notes", "2") == "two"
