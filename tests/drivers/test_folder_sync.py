"""Publisher and ingester: devices converge through a shared folder, and (the tests that
take ``place``) through a bucket too."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from peerlog import (
    DivergenceError,
    Entry,
    Expunged,
    FileLog,
    FileLogIngester,
    FileLogPublisher,
    SqliteOplog,
    StateStore,
)
from peerlog.sync.faces import SharedFileLog
from tests.drivers.places import BucketPlace, FolderPlace
from tests.helpers import peer, wait_until
from tests.processes import ROOT

Place = FolderPlace | BucketPlace


def backup(source: Path, target: Path) -> None:
    """A consistent copy of a live database, as a backup tool makes."""
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    src.close()
    dst.close()


async def sync(store: StateStore, log: SharedFileLog) -> None:
    await FileLogPublisher(store.oplog, log).run_once()
    await FileLogIngester(log, store.oplog).run_once()


async def test_publisher_writes_the_own_origin_only(tmp_path: Path, shared: Path) -> None:
    async with SqliteOplog(tmp_path / "a.db", origin=peer(1)) as oplog:
        await oplog.append_many([b"x", b"y"])
        await oplog.apply(peer(7), 0, (await oplog.read_since(peer(1), 0))[0][1])
        log = FileLog(shared, peer(1))
        assert await FileLogPublisher(oplog, log).run_once() == 2
        assert await FileLogPublisher(oplog, log).run_once() == 0
        assert os.listdir(shared) == [str(peer(1))]
        assert FileLog(shared, peer(9)).read_entries(peer(1), 0) == \
            await oplog.read_since(peer(1), 0)
        await log.close()


async def test_publisher_resumes_from_the_file_log_extent(tmp_path: Path, place: Place) -> None:
    async with SqliteOplog(tmp_path / "a.db", origin=peer(1)) as oplog:
        await oplog.append_many([b"%d" % i for i in range(10)])
        log = place.log(peer(1))
        log.append_many(0, [e for _, e in await oplog.read_since(peer(1), 0, 4)])
        assert await FileLogPublisher(oplog, log).run_once() == 6
        await log.close()


async def test_a_device_restored_from_backup_takes_its_entries_back(
        tmp_path: Path, place: Place) -> None:
    async with SqliteOplog(tmp_path / "a.db", origin=peer(1)) as oplog:
        await oplog.append_many([b"one", b"two"])
        backup(tmp_path / "a.db", tmp_path / "backup.db")
        await oplog.append_many([b"three"])
        log = place.log(peer(1))
        await FileLogPublisher(oplog, log).run_once()
        await log.close()
    for suffix in ("", "-wal", "-shm"):
        (tmp_path / f"a.db{suffix}").unlink(missing_ok=True)
    backup(tmp_path / "backup.db", tmp_path / "a.db")  # the restore
    async with SqliteOplog(tmp_path / "a.db") as restored:
        log = place.log(peer(1))
        assert await FileLogPublisher(restored, log).run_once() == 0
        assert (await restored.cursors()).of(peer(1)) == 3
        index, _ = await restored.append(b"four")
        assert index == 3
        assert await FileLogPublisher(restored, log).run_once() == 1
        await log.close()


async def test_a_restored_device_that_wrote_again_refuses_to_fork(
        tmp_path: Path, place: Place) -> None:
    async with SqliteOplog(tmp_path / "a.db", origin=peer(1)) as oplog:
        await oplog.append_many([b"one", b"two", b"three"])
        log = place.log(peer(1))
        await FileLogPublisher(oplog, log).run_once()
        await log.close()
    async with SqliteOplog(tmp_path / "b.db", origin=peer(1)) as clone:
        await clone.append_many([b"one'", b"two'"])  # the same indexes, other entries
        log = place.log(peer(1))
        before = place.stored_bytes()
        with pytest.raises(DivergenceError, match="refusing to publish"):
            await FileLogPublisher(clone, log).run_once()
        assert place.stored_bytes() == before
        await log.close()


async def test_two_devices_converge_through_the_folder(tmp_path: Path, place: Place) -> None:
    async with StateStore(tmp_path / "a.db") as a, StateStore(tmp_path / "b.db") as b:
        log_a, log_b = place.log(a.origin), place.log(b.origin)
        await a.put("todo", "1", {"title": "milk"})
        await b.put("todo", "2", {"title": "eggs"})
        await b.delete("todo", "1")
        for _ in range(2):
            await sync(a, log_a)
            await sync(b, log_b)
        assert await a.items("todo") == await b.items("todo")
        assert await a.state_hash() == await b.state_hash()
        await log_a.close()
        await log_b.close()


async def test_ingester_skips_its_own_origin(tmp_path: Path, shared: Path) -> None:
    async with SqliteOplog(tmp_path / "a.db", origin=peer(1)) as oplog:
        # The folder holds entries of this device's own origin that its oplog lacks
        # (taking those back is the publisher's job, after its fork check): the
        # ingester must leave them alone.
        log = FileLog(shared, peer(1))
        log.append_many(0, [Entry(1, b"x"), Entry(2, b"y")])
        ingester = FileLogIngester(log, oplog)
        assert await ingester.run_once() == 0
        assert await oplog.cursors() == {}
        await log.close()


async def test_live_drivers_converge_and_cancel_cleanly(tmp_path: Path, place: Place) -> None:
    async with StateStore(tmp_path / "a.db") as a, StateStore(tmp_path / "b.db") as b:
        logs = [place.log(s.origin, poll_interval=0.05) for s in (a, b)]
        tasks = [asyncio.create_task(driver.run()) for s, log in zip((a, b), logs, strict=True)
                 for driver in (FileLogPublisher(s.oplog, log), FileLogIngester(log, s.oplog))]
        try:
            for n in range(20):
                await (a if n % 2 else b).put("t", f"k{n}", n)
            async def converged() -> bool:
                ca, cb = await a.oplog.cursors(), await b.oplog.cursors()
                return ca == cb and sum(ca.values()) == 20

            await wait_until(converged)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for log in logs:
                await log.close()
        assert await a.state_hash() == await b.state_hash()
        assert len(await a.items("t")) == 20


async def test_an_erasure_reaches_every_device_through_the_folder(
        tmp_path: Path, place: Place) -> None:
    async with StateStore(tmp_path / "a.db") as a, StateStore(tmp_path / "b.db") as b:
        log_a, log_b = place.log(a.origin), place.log(b.origin)
        index = await a.put("people", "alice", {"email": "alice@example.org"})
        for store, log in ((a, log_a), (b, log_b)):
            await sync(store, log)
        assert await b.get("people", "alice") == {"email": "alice@example.org"}
        await a.oplog.expunge(a.origin, index)  # "delete my data"
        for store, log in ((a, log_a), (b, log_b)):
            await sync(store, log)
        assert b"alice@example.org" not in place.stored_bytes(), "erased from the place"
        [(_, slot)] = await b.oplog.read_since(a.origin, index, 1)
        assert type(slot) is Expunged
        with pytest.raises(KeyError):
            await b.get("people", "alice")
        assert await a.state_hash() == await b.state_hash()
        await log_a.close()
        await log_b.close()


def test_two_processes_of_one_device_write_and_sync_together(tmp_path: Path) -> None:
    """An app and `peerlog sync --watch` on one device: no error, everything published."""
    shared = tmp_path / "shared"
    shared.mkdir()
    db = tmp_path / "device.sqlite"

    async def create() -> None:
        async with StateStore(db):
            pass

    asyncio.run(create())
    workers = [subprocess.Popen([sys.executable, "-m", "tests.drivers.device_process", str(db),
                                 str(shared), "3", tag], cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for tag in ("app", "sync")]
    outputs = [w.communicate(timeout=60) for w in workers]
    for worker, (out, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err
        assert int(out) > 50

    async def check() -> None:
        async with StateStore(db) as store, FileLog(shared, store.origin) as log:
            held = (await store.oplog.cursors()).of(store.origin)
            assert held == sum(int(out) for out, _ in outputs)
            assert log.extents() == {store.origin: held}
            index = 0
            while index < held:
                ours = await store.oplog.read_since(store.origin, index)
                assert log.read_entries(store.origin, index, len(ours)) == ours
                index += len(ours)
            assert log.doctor().healthy

    asyncio.run(check())


def test_the_publisher_runs_under_asyncio_debug_mode(tmp_path: Path) -> None:
    """Appends run in worker threads; watchers are woken on their loop, never from the thread."""
    shared = tmp_path / "shared"
    shared.mkdir()

    async def scenario() -> None:
        async with StateStore(tmp_path / "a.db") as a, FileLog(shared, a.origin) as log:
            stream = log.watch_cursors()
            await anext(stream)
            waiting = asyncio.ensure_future(anext(stream))  # parked on the hub's event
            await asyncio.sleep(0.05)
            await a.put("t", "k", 1)
            assert await FileLogPublisher(a.oplog, log).run_once() == 1
            event = await asyncio.wait_for(waiting, 5)
            assert event.cursors == {a.origin: 1}
            await stream.aclose()  # type: ignore[attr-defined]

    asyncio.run(scenario(), debug=True)
