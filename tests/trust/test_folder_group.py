"""An encrypted group syncing through a shared folder: what the folder sees and what
the devices get."""

from __future__ import annotations

from pathlib import Path

import peerlog
from tests.helpers import files_holding
from tests.trust.groups import group_of


async def sync_all(homes: list[Path], folder: Path, rounds: int = 2) -> None:
    for _ in range(rounds):
        for home in homes:
            async with peerlog.open(home, folder=folder, live=False) as device:
                report = await device.sync_now()
                assert report.ok, report


async def test_members_converge_through_a_folder(tmp_path: Path, folder: Path) -> None:
    homes = await group_of(tmp_path, 3)
    for i, home in enumerate(homes):
        async with peerlog.open(home, folder=folder, live=False) as device:
            await device.put("todos", f"k{i}", {"title": f"milk {i}"})
    await sync_all(homes, folder)
    for home in homes:
        async with peerlog.open(home, folder=folder, live=False) as device:
            assert sorted(await device.items("todos")) == [
                (f"k{i}", {"title": f"milk {i}"}) for i in range(3)]


async def test_no_table_key_or_value_is_visible_in_the_folder(tmp_path: Path, folder: Path) -> None:
    homes = await group_of(tmp_path, 2)
    async with peerlog.open(homes[0], folder=folder, live=False) as device:
        await device.put("secret-table", "secret-key", {"v": "secret-marker-value"})
        await device.update("secret-table", "secret-key", {"f": "other-marker"})
    await sync_all(homes, folder)
    for needle in (b"secret-table", b"secret-key", b"secret-marker-value", b"other-marker"):
        assert files_holding(folder, needle) == []
