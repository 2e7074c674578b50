"""A device of an encrypted group restored from a backup continues as a new origin, which
every member admits (its hello is signed with the device's member key): nothing is lost."""

from __future__ import annotations

import shutil
from pathlib import Path

import peerlog
from peerlog.home import open_device
from tests.trust.groups import group_of


async def test_a_restored_encrypted_device_continues_and_the_group_admits_it(
        tmp_path: Path, folder: Path) -> None:
    a, b = await group_of(tmp_path, 2)
    async with peerlog.open(a, folder=folder, live=False) as device:
        await device.put("notes", "n0", "before the backup")
        await device.sync_now()
    backup = tmp_path / "backup"
    shutil.copytree(a, backup)
    async with peerlog.open(a, folder=folder, live=False) as device:
        await device.put("notes", "n1", "after the backup, published")
        await device.sync_now()
        old = device.peer_id
    shutil.rmtree(a)
    shutil.copytree(backup, a)  # the disk died; restored
    async with open_device(a) as store:  # changed before it synced again
        await store.put("notes", "n2", "after the restore")
    async with peerlog.open(a, folder=folder, live=False) as device:
        report = device.status.last_report
        assert report is not None
        assert report.continued is not None
        assert report.continued.old == old
        assert device.peer_id == report.continued.new
        assert (await device.sync_now()).ok
    async with peerlog.open(b, folder=folder, live=False) as device:
        report = await device.sync_now()
        assert report.ok, report
        assert dict(await device.items("notes")) == {
            "n0": "before the backup", "n1": "after the backup, published",
            "n2": "after the restore"}
