"""Removing a device: a new key epoch for everyone else; the removed device cannot read
what is written afterwards, and what it writes afterwards is refused everywhere."""

from __future__ import annotations

from pathlib import Path

import peerlog
from peerlog import FileLog, FileLogPublisher
from peerlog.home import open_device, through_trust
from peerlog.trust import Keyring, Trust, remove_device
from tests.helpers import files_holding
from tests.trust.groups import group_of
from tests.trust.test_attacks import origin_of


async def sync(home: Path, folder: Path) -> peerlog.SyncReport:
    async with peerlog.open(home, folder=folder, live=False) as device:
        return await device.sync_now()


async def value(home: Path, folder: Path, key: str) -> object:
    async with peerlog.open(home, folder=folder, live=False) as device:
        return await device.get("t", key, None)


async def put(home: Path, folder: Path, key: str, v: str) -> peerlog.SyncReport:
    async with peerlog.open(home, folder=folder, live=False) as device:
        await device.put("t", key, v)
        return await device.sync_now()


async def removed_group(tmp_path: Path) -> tuple[Path, Path, Path, Path]:
    folder = tmp_path / "shared"
    folder.mkdir()
    remover, other, gone = await group_of(tmp_path, 3)
    await put(gone, folder, "before", "written before the removal")
    for home in (remover, other, gone):
        await sync(home, folder)
    trust = Trust.load(remover)
    assert trust is not None
    async with open_device(remover) as store:
        assert await remove_device(trust, store, origin_of(gone)) == 1
    for _ in range(2):  # the second round publishes grants made in the first
        for home in (remover, other):
            await sync(home, folder)
    return folder, remover, other, gone


async def test_every_remaining_member_gets_the_new_epoch(tmp_path: Path) -> None:
    _, remover, other, gone = await removed_group(tmp_path)
    for home in (remover, other):
        ring = Keyring.load(home)
        assert ring is not None
        assert ring.epoch == 1
        assert ring.members[origin_of(gone)].removed_from is not None
    gone_ring = Keyring.load(gone)
    assert gone_ring is not None


async def test_a_removed_device_cannot_read_what_is_written_after(tmp_path: Path) -> None:
    folder, remover, other, gone = await removed_group(tmp_path)
    await put(other, folder, "after", "secret after the removal")
    assert await value(remover, folder, "after") == "secret after the removal"
    report = await sync(gone, folder)
    assert await value(gone, folder, "after") is None
    held = report.withheld[origin_of(other)]
    assert held.kind == "key-missing"
    assert files_holding(folder, b"secret after the removal") == []
    ring = Keyring.load(gone)
    assert ring is not None
    assert 1 not in ring.epochs


async def test_what_a_removed_device_writes_afterwards_is_refused_everywhere(
        tmp_path: Path) -> None:
    folder, remover, other, gone = await removed_group(tmp_path)
    # The removed device publishes before it hears of its removal (or ignores it).
    async with open_device(gone) as store:
        await store.put("t", "late", "written after the removal")
        log = FileLog(folder, store.origin)
        try:
            await FileLogPublisher(store.oplog, through_trust(gone, store, log,
                                                              folder=folder)).run_once()
        finally:
            await log.close()
    for home in (remover, other):
        report = await sync(home, folder)
        assert await value(home, folder, "late") is None
        assert report.withheld[origin_of(gone)].kind == "removed"
    assert await value(other, folder, "before") == "written before the removal"


async def test_a_removed_device_is_told_so_when_it_publishes(tmp_path: Path) -> None:
    folder, _, _, gone = await removed_group(tmp_path)
    await sync(gone, folder)  # learns of its removal
    report = await put(gone, folder, "late", "written after the removal")
    assert any("this device was removed from group" in why for why in report.refused)
