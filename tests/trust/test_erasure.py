"""A device's own erasure travels through an encrypted group's folder and relay, vouched
for by its signed erased record."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import peerlog
from tests.drivers.test_never_wedges import RELAY_DBS, relay
from tests.trust.groups import group_of, invite, join
from tests.trust.test_attacks import origin_of


async def erase_last_put(device: peerlog.Device) -> None:
    origin = device.peer_id
    index = (await device.store.oplog.cursors()).of(origin) - 1
    assert await device.store.oplog.expunge(origin, index)


async def test_an_erasure_reaches_members_and_newcomers_through_a_folder(
        tmp_path: Path, folder: Path) -> None:
    writer, holder = await group_of(tmp_path, 2)
    async with peerlog.open(writer, folder=folder, live=False) as device:
        await device.put("notes", "n", {"text": "erase me"})
        await device.sync_now()
    async with peerlog.open(holder, folder=folder, live=False) as device:
        assert await device.get("notes", "n") == {"text": "erase me"}
    async with peerlog.open(writer, folder=folder, live=False) as device:
        await erase_last_put(device)
        assert (await device.sync_now()).ok
    async with peerlog.open(holder, folder=folder, live=False) as device:
        report = await device.sync_now()
        assert report.ok, report
        assert await device.get("notes", "n", None) is None
        code = (await peerlog_invite(holder))
    newcomer = tmp_path / "newcomer"
    await join(newcomer, code)
    async with peerlog.open(holder, folder=folder, live=False) as device:
        await device.sync_now()
    async with peerlog.open(newcomer, folder=folder, live=False) as device:
        report = await device.sync_now()
        assert report.ok, report
        assert await device.get("notes", "n", None) is None
    from tests.helpers import files_holding

    assert files_holding(folder, b"erase me") == []


async def peerlog_invite(home: Path) -> str:
    return await invite(home)


@pytest.mark.parametrize("make_db", RELAY_DBS, ids=["sqlite", "postgres"])
async def test_an_erasure_reaches_members_through_a_relay(
        tmp_path: Path, make_db: Callable[[Path], str]) -> None:
    writer, holder = await group_of(tmp_path, 2)
    origins = [origin_of(writer), origin_of(holder)]
    async with relay(make_db(tmp_path), origins) as (url, tokens):
        async with peerlog.open(writer, server=url, token=tokens[origins[0]],
                                live=False) as device:
            await device.put("notes", "n", {"text": "erase me"})
            await device.sync_now()
        async with peerlog.open(holder, server=url, token=tokens[origins[1]],
                                live=False) as device:
            assert await device.get("notes", "n") == {"text": "erase me"}
        async with peerlog.open(writer, server=url, token=tokens[origins[0]],
                                live=False) as device:
            await erase_last_put(device)
            report = await device.sync_now()
            assert report.ok, report
        async with peerlog.open(holder, server=url, token=tokens[origins[1]],
                                live=False) as device:
            report = await device.sync_now()
            assert report.ok, report
            assert await device.get("notes", "n", None) is None
