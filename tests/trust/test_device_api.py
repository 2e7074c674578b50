"""An app forms an encrypted group with `peerlog.open` / `peerlog.connect` alone."""

from __future__ import annotations

from pathlib import Path

import pytest

import peerlog
from tests.helpers import files_holding


async def test_an_app_founds_invites_and_joins_through_the_library(tmp_path: Path,
                                                                  folder: Path) -> None:
    async with peerlog.open(tmp_path / "a", folder=folder, encrypted=True,
                            live=False) as a:
        await a.put("todos", "1", {"title": "api-marker"})
        code = await a.invite(hours=1)
        await a.sync_now()
    async with peerlog.open(tmp_path / "b", folder=folder, join=code, live=False) as b:
        assert await b.get("todos", "1") == {"title": "api-marker"}
    assert files_holding(folder, b"api-marker") == []


def test_the_blocking_device_invites_and_removes(tmp_path: Path, folder: Path) -> None:
    with peerlog.connect(tmp_path / "a", folder=folder, encrypted=True, live=False) as a:
        code = a.invite()
        a.sync_now()
    with peerlog.connect(tmp_path / "b", folder=folder, join=code, live=False) as b:
        b_id = b.peer_id
    with peerlog.connect(tmp_path / "a", folder=folder, live=False) as a:
        a.sync_now()
        assert a.remove_device(b_id) == 1


async def test_inviting_from_a_plain_device_says_what_to_do(tmp_path: Path) -> None:
    async with peerlog.open(tmp_path / "plain", live=False) as device:
        with pytest.raises(peerlog.TrustError, match="no encrypted group"):
            await device.invite()


async def test_a_bad_code_leaves_no_device_behind(tmp_path: Path) -> None:
    with pytest.raises(peerlog.InviteError):
        async with peerlog.open(tmp_path / "b", join="peerlog-invite-1:AAAA", live=False):
            pass
    assert not (tmp_path / "b" / "device.sqlite").exists()
