"""Data written by peerlog 0.1 (tests/fixtures/v0_1) opens and converges with this version."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from peerlog import FileLog, FolderSync, StateStore

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "v0_1"


@pytest.fixture
def old(tmp_path: Path) -> Path:
    shutil.copytree(FIXTURES, tmp_path / "v0_1")
    return tmp_path / "v0_1"


async def test_a_01_device_database_opens_with_its_values(old: Path) -> None:
    async with StateStore(old / "laptop" / "device.sqlite") as laptop:
        assert dict(await laptop.items("todos")) == {
            "1": {"done": False, "title": "call mum"}, "3": {"title": "water plants"},
            "4": [1, 2]}


async def test_01_devices_converge_through_their_01_folder(old: Path) -> None:
    async with StateStore(old / "laptop" / "device.sqlite") as laptop, \
            StateStore(old / "phone" / "device.sqlite") as phone:
        for store in (phone, laptop):
            async with FileLog(old / "shared", store.origin) as log:
                assert (await FolderSync(store.oplog, log).run_once()).ok
        assert await phone.get("todos", "4") == [1, 2]
        assert await phone.state_hash() == await laptop.state_hash()


async def test_a_01_record_takes_field_updates_from_both_versions_of_devices(old: Path) -> None:
    async with StateStore(old / "laptop" / "device.sqlite") as laptop, \
            StateStore(old / "phone" / "device.sqlite") as phone:
        await phone.update("todos", "1", {"done": True})
        await laptop.update("todos", "1", {"title": "call mum about Sunday"})
        for store in (phone, laptop, phone):
            async with FileLog(old / "shared", store.origin) as log:
                await FolderSync(store.oplog, log).run_once()
        for store in (phone, laptop):
            assert await store.get("todos", "1") == {"done": True,
                                                     "title": "call mum about Sunday"}
    async with StateStore(old / "laptop" / "device.sqlite") as reopened:
        assert (await reopened.get("todos", "1"))["done"] is True


async def test_the_state_hash_of_01_data_is_unchanged(old: Path) -> None:
    # Keys that no update touched hash exactly as 0.1 hashed them.
    async with StateStore(old / "phone" / "device.sqlite") as phone:
        assert dict(await phone.items("todos")) == {
            "1": {"done": False, "title": "call mum"}, "3": {"title": "water plants"}}
        assert await phone.state_hash() == (
            "09528f3df4d947c72d6196d9f2b4d568d844bcee3d52cd690cf7060850829c20")  # by 0.1
