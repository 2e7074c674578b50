"""Devices converge through real file-sync tools copying their shared folders."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from peerlog import FileLog, FileLogIngester, FileLogPublisher, FolderSync, StateStore
from tests.e2e.tools import Syncthing, require, syncthing_pair
from tests.helpers import wait_until

pytestmark = pytest.mark.slow


@contextlib.asynccontextmanager
async def live_device(db: Path, folder: Path) -> AsyncIterator[StateStore]:
    """A device whose drivers follow its own copy of the shared folder."""
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    async with StateStore(db) as store:
        log = FileLog(folder, store.origin, poll_interval=0.1)
        tasks = [asyncio.create_task(FileLogPublisher(store.oplog, log).run()),
                 asyncio.create_task(FileLogIngester(log, store.oplog).run())]
        try:
            yield store
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await log.close()


async def write_concurrently(devices: list[StateStore], changes: int) -> None:
    async def writer(n: int, store: StateStore) -> None:
        rng = random.Random(n)
        for i in range(changes):
            key = f"k{rng.randrange(30)}"
            if rng.random() < 0.2:
                await store.delete("items", key)
            else:
                await store.put("items", key, {"device": n, "i": i})
            if i % 10 == 0:
                await asyncio.sleep(rng.uniform(0, 0.05))

    await asyncio.gather(*(writer(n, d) for n, d in enumerate(devices)))


async def converged(devices: list[StateStore], total: int) -> bool:
    cursors = [await d.oplog.cursors() for d in devices]
    if any(sum(c.values()) != total for c in cursors):
        return False
    return len({await d.state_hash() for d in devices}) == 1


@contextlib.asynccontextmanager
async def converged_through_syncthing(tmp_path: Path) -> AsyncIterator[
        tuple[Syncthing, Syncthing, StateStore, StateStore]]:
    """Two live devices, each on its own Syncthing copy, that wrote concurrently and
    converged."""
    with syncthing_pair(tmp_path) as (a, b):
        async with live_device(tmp_path / "a.db", a.folder) as da, \
                live_device(tmp_path / "b.db", b.folder) as db:
            await write_concurrently([da, db], 150)

            async def done() -> bool:
                return await converged([da, db], 300)

            await wait_until(done, within=120, step=0.25)
            yield a, b, da, db


async def test_two_devices_converge_through_syncthing(tmp_path: Path) -> None:
    async with converged_through_syncthing(tmp_path) as (_, _, da, db):
        assert await da.items("items") == await db.items("items")


async def copy_forever(pairs: list[tuple[Path, Path]], rng: random.Random,
                       rsync: str) -> None:
    """rsync --inplace at random moments: a reader can see a segment half-copied."""
    while True:
        for source, target in pairs:
            if source.exists():
                target.mkdir(parents=True, exist_ok=True)
                proc = await asyncio.create_subprocess_exec(
                    rsync, "-a", "--inplace", f"{source}/", f"{target}/")
                await proc.wait()
        await asyncio.sleep(rng.uniform(0, 0.1))


async def test_two_devices_converge_through_rsync_copies_mid_write(tmp_path: Path) -> None:
    rsync = require("rsync")
    folder_a, folder_b = tmp_path / "folder-a", tmp_path / "folder-b"
    async with live_device(tmp_path / "a.db", folder_a) as da, \
            live_device(tmp_path / "b.db", folder_b) as db:
        # Each origin's folder travels one way only, as a sync tool moves it.
        pairs = [(folder_a / str(da.origin), folder_b / str(da.origin)),
                 (folder_b / str(db.origin), folder_a / str(db.origin))]
        copier = asyncio.create_task(copy_forever(pairs, random.Random(7), rsync))
        try:
            await write_concurrently([da, db], 200)

            async def done() -> bool:
                return await converged([da, db], 400)

            await wait_until(done, within=60, step=0.1)
        finally:
            copier.cancel()
            await asyncio.gather(copier, return_exceptions=True)


def unison(a: Path, b: Path, home: Path) -> None:
    subprocess.run([require("unison"), str(a), str(b), "-batch", "-auto", "-silent",
                    "-times", "-confirmbigdel=false", "-ignore", "Name .*.tmp"],
                   check=False, capture_output=True, env={**os.environ, "HOME": str(home)},
                   timeout=60)


async def test_two_devices_converge_through_unison(tmp_path: Path) -> None:
    require("unison")
    folder_a, folder_b = tmp_path / "folder-a", tmp_path / "folder-b"
    async with live_device(tmp_path / "a.db", folder_a) as da, \
            live_device(tmp_path / "b.db", folder_b) as db:
        writers = asyncio.create_task(write_concurrently([da, db], 100))
        while not writers.done():  # syncs at random moments while devices write
            await asyncio.to_thread(unison, folder_a, folder_b, tmp_path)
            await asyncio.sleep(random.uniform(0, 0.2))
        await writers

        async def done() -> bool:
            await asyncio.to_thread(unison, folder_a, folder_b, tmp_path)
            return await converged([da, db], 200)

        await wait_until(done, within=60, step=0.5)


async def test_compaction_travels_through_syncthing(tmp_path: Path) -> None:
    """A compacts its log in its copy; Syncthing carries the removals and the snapshot to
    B's copy, where B keeps syncing and a new device C starts from the snapshot."""
    async with converged_through_syncthing(tmp_path) as (a, b, da, db):
        b_log = FileLog(b.folder, db.origin)
        await FolderSync(db.oplog, b_log, state=db).run_once()  # b says what it holds

        async def a_knows_what_b_holds() -> bool:
            said = FileLog(a.folder, da.origin).device_cursors().get(db.origin)
            return said is not None and said.cursors.of(da.origin) >= 150

        await wait_until(a_knows_what_b_holds, within=60, step=0.25)
        a_log = FileLog(a.folder, da.origin)
        done_a = await FolderSync(da.oplog, a_log, state=da).compact()
        assert done_a.segments_removed >= 1
        expected = await da.state_hash()

        async def compacted_in_b_copy() -> bool:
            reader = FileLog(b.folder, db.origin)
            return (reader.first_indexes().of(da.origin) > 0
                    and bool(reader.snapshots.valid()) and not reader.withheld())

        await wait_until(compacted_in_b_copy, within=60, step=0.25)
        await da.put("items", "after", "compaction")
        await wait_until(lambda: _holds(db, "after"), within=60, step=0.25)
        async with StateStore(tmp_path / "c.db") as dc:
            c_log = FileLog(b.folder, dc.origin)
            report = await FolderSync(dc.oplog, c_log, state=dc).run_once()
            assert report.bootstrapped is not None
            assert report.ok, report.to_json()
            assert await dc.get("items", "after") == "compaction"
            await c_log.close()
        assert await db.state_hash() == await da.state_hash() != expected
        await a_log.close()
        await b_log.close()


async def _holds(store: StateStore, key: str) -> bool:
    try:
        await store.get("items", key)
    except KeyError:
        return False
    return True
