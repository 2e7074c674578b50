"""Forming encrypted groups for tests, the way `peerlog init` / `invite` / `init --join` do."""

from __future__ import annotations

from pathlib import Path

from peerlog.home import open_device
from peerlog.trust import Trust, invite_device, join_code, start_group


async def found(home: Path) -> None:
    """A new device in ``home``, first member of a new encrypted group."""
    async with open_device(home, create=True) as store:
        await start_group(home, store)


async def invite(inviter: Path, ttl_ms: int = 3_600_000) -> str:
    trust = Trust.load(inviter)
    assert trust is not None
    async with open_device(inviter) as store:
        return (await invite_device(trust, store, ttl_ms)).code


async def join(home: Path, code: str) -> None:
    """A new device in ``home`` joined with ``code``."""
    ring, hello = join_code(code)
    async with open_device(home, create=True, origin=ring.origin) as store:
        ring.save(home)
        await store.oplog.append(hello)


async def group_of(root: Path, count: int) -> list[Path]:
    """``count`` device homes under ``root`` in one group, each admitted by the first."""
    homes = [root / f"dev{i}" for i in range(count)]
    await found(homes[0])
    for home in homes[1:]:
        await join(home, await invite(homes[0]))
    return homes


async def newcomer(root: Path, inviter: Path, folder: Path, name: str = "newcomer") -> Path:
    """A new device invited by ``inviter``, once the inviter published the invite."""
    import peerlog

    home = root / name
    await join(home, await invite(inviter))
    async with peerlog.open(inviter, folder=folder, live=False) as device:
        await device.sync_now()
    return home
