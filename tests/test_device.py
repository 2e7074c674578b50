"""`peerlog.open` / `peerlog.connect`: the one object an application needs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import peerlog
from tests.helpers import wait_until
from tests.processes import ROOT


async def test_two_devices_converge_in_the_background(tmp_path: Path, shared: Path) -> None:
    async with peerlog.open(tmp_path / "a", folder=shared) as a, \
            peerlog.open(tmp_path / "b", folder=shared) as b:
        await a.put("todos", "1", {"title": "milk"})
        await b.put("todos", "2", {"title": "eggs"})

        async def both_have_both() -> bool:
            return len(await a.items("todos")) == len(await b.items("todos")) == 2

        await wait_until(both_have_both, within=15)
        assert await a.store.state_hash() == await b.store.state_hash()
        assert a.status.online
        assert a.status.rounds >= 1
        assert a.status.where == str(shared)


async def test_a_short_lived_program_publishes_on_close(tmp_path: Path, shared: Path) -> None:
    async with peerlog.open(tmp_path / "a", folder=shared, live=False) as a:
        await a.put("notes", "n", "written just before exit")
    async with peerlog.open(tmp_path / "b", folder=shared, live=False) as b:
        assert await b.get("notes", "n") == "written just before exit"  # the opening round
        assert b.status.last_report is not None
        assert b.status.last_report.ingested == 1
        report = await b.sync_now()
        assert (report.ingested, b.status.last_report) == (0, report)


async def test_the_folder_is_remembered_by_the_home(tmp_path: Path, shared: Path) -> None:
    async with peerlog.open(tmp_path / "a", folder=shared, live=False) as a:
        await a.put("t", "k", 1)
    async with peerlog.open(tmp_path / "a", live=False) as again:
        assert again.status.where == str(shared)
        assert (await again.sync_now()).ok


async def test_a_device_without_a_place_to_sync_still_holds_state(tmp_path: Path) -> None:
    async with peerlog.open(tmp_path / "a") as a:
        await a.put("t", "k", [1, 2])
        assert await a.get("t", "k") == [1, 2]
        assert await a.get("t", "missing", None) is None
        assert a.status.where is None
        with pytest.raises(peerlog.SyncError, match="no folder, server or bucket"):
            await a.sync_now()


async def test_opening_without_create_needs_an_existing_device(tmp_path: Path) -> None:
    with pytest.raises(peerlog.HomeError, match="no device"):
        await peerlog.open(tmp_path / "nobody", create=False).start()


def test_the_blocking_facade_works_without_asyncio(tmp_path: Path, shared: Path) -> None:
    with peerlog.connect(tmp_path / "a", folder=shared) as a, \
            peerlog.connect(tmp_path / "b", folder=shared) as b:
        stream = b.changes()
        a.put("todos", "1", {"title": "milk"})
        [change] = next(stream)
        assert (change.table, change.key, change.value) == ("todos", "1", {"title": "milk"})
        assert b.items("todos") == [("1", {"title": "milk"})]
        stream.close()


def todo(home: Path, *argv: str) -> str:
    done = subprocess.run([sys.executable, "examples/todo.py", "--home", str(home), *argv],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_todo_example_syncs_two_devices(tmp_path: Path, shared: Path) -> None:
    laptop, phone = tmp_path / "laptop", tmp_path / "phone"
    todo(laptop, "--folder", str(shared), "add", "call mum")
    assert todo(phone, "--folder", str(shared), "list") == "1. [ ] call mum\n"
    todo(phone, "done", "1")  # the folder is remembered
    assert todo(laptop, "list") == "1. [x] call mum\n"


async def test_update_transaction_and_history_through_the_device(tmp_path: Path,
                                                                 shared: Path) -> None:
    async with peerlog.open(tmp_path / "a", folder=shared, live=False) as a, \
            peerlog.open(tmp_path / "b", folder=shared, live=False) as b:
        await a.put("todos", "1", {"title": "call mum", "done": False})
        await a.sync_now()
        await b.sync_now()
        await a.update("todos", "1", {"title": "call mum about Sunday"})
        await b.update("todos", "1", {"done": True})
        async with b.transaction() as tx:
            tx.put("todos", "2", {"title": "milk"})
            tx.update("todos", "2", {"done": False})
        for device in (a, b, a):
            await device.sync_now()
        for device in (a, b):
            assert await device.get("todos", "1") == {"title": "call mum about Sunday",
                                                      "done": True}
            assert await device.get("todos", "2") == {"title": "milk", "done": False}
        kinds = [(h.kind, h.outcome) for h in await a.history("todos", "1")]
        assert kinds == [("put", "wins"), ("update", "wins"), ("update", "wins")]


def test_the_blocking_device_has_the_same_writes(tmp_path: Path) -> None:
    with peerlog.connect(tmp_path / "a") as device:
        device.put("t", "k", {"a": 1, "b": 2})
        device.update("t", "k", {"b": peerlog.REMOVE, "c": 3})
        with device.transaction() as tx:
            tx.put("t", "x", 1)
            tx.delete("t", "k")
        assert tx.index == 2
        assert device.put_many("t", {"y": 2, "z": 3}) == 3
        assert device.items("t") == [("x", 1), ("y", 2), ("z", 3)]
        assert [h.kind for h in device.history("t", "k")] == ["put", "update", "delete"]


async def test_the_device_status_says_when_it_continued_as_a_new_id(tmp_path: Path,
                                                                   shared: Path) -> None:
    import shutil

    async with peerlog.open(tmp_path / "a", folder=shared, live=False) as a:
        await a.put("t", "k", "published")
    shutil.copytree(tmp_path / "a", tmp_path / "copy")
    async with peerlog.open(tmp_path / "copy", live=False) as copy:
        old = copy.peer_id
        await copy.put("t", "c", "the copy's")
        async with peerlog.open(tmp_path / "a", live=False) as a:  # publishes on close
            await a.put("t", "a", "the original's")
        report = await copy.sync_now()
        assert report.continued is not None
        assert copy.status.continued == report.continued
        assert copy.status.peer_id == copy.peer_id == report.continued.new != old
        assert await copy.get("t", "a") == "the original's"


def test_a_device_compacts_and_a_new_one_starts_from_its_snapshot(tmp_path: Path,
                                                                  shared: Path) -> None:
    with peerlog.connect(tmp_path / "a", folder=shared, live=False) as device:
        for n in range(5):
            device.put("notes", "n", n)
        done = device.compact()
        assert done.snapshot is not None
        assert done.segments_removed == 1
    with peerlog.connect(tmp_path / "b", folder=shared, live=False) as device:
        assert device.status.last_report is not None
        assert device.status.last_report.bootstrapped is not None
        assert device.get("notes", "n") == 4


def test_compacting_a_device_that_does_not_sync_is_refused(tmp_path: Path) -> None:
    with peerlog.connect(tmp_path / "alone", live=False) as device, \
            pytest.raises(peerlog.SyncError, match="no folder, server or bucket"):
        device.compact()
