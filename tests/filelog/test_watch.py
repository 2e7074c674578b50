"""Watching a shared folder: new data written by other processes wakes the watch."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncGenerator, Callable
from pathlib import Path
from uuid import UUID

import pytest

from peerlog import Advanced, CursorStream, FileLog, PeerCursors, Snapshot
from tests.helpers import entries, peer

Open = Callable[[UUID], FileLog]
ROOT = Path(__file__).resolve().parents[2]
WRITE = ("import sys, asyncio; from peerlog import FileLog; from tests.helpers import entries, "
         "peer; log = FileLog(sys.argv[1], peer(int(sys.argv[2]))); "
         "log.append_many(log.next_index, entries(log.next_index, int(sys.argv[3]))); "
         "asyncio.run(log.close())")


async def write_elsewhere(shared: Path, origin: int, count: int) -> None:
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WRITE, str(shared), str(origin), str(count), cwd=ROOT)
    assert await child.wait() == 0


async def close(stream: CursorStream) -> None:
    assert isinstance(stream, AsyncGenerator)
    await stream.aclose()


@pytest.mark.parametrize("force_polling", [False, True], ids=["events", "polling"])
async def test_another_process_appending_wakes_the_watch(shared: Path,
                                                         force_polling: bool) -> None:
    # A one-minute safety rescan: with events, only an event can wake the watch in time.
    reader = FileLog(shared, peer(9), force_polling=force_polling, poll_interval=0.05,
                     rescan_interval=60)
    stream = reader.watch_cursors()
    try:
        assert await asyncio.wait_for(anext(stream), 5) == Snapshot(PeerCursors())
        await write_elsewhere(shared, 1, 5)
        state = PeerCursors()
        while state.of(peer(1)) < 5:
            event = await asyncio.wait_for(anext(stream), 5)
            assert isinstance(event, Advanced)
            state = state.merged(event.cursors)
        await write_elsewhere(shared, 1, 3)
        while state.of(peer(1)) < 8:
            state = state.merged((await asyncio.wait_for(anext(stream), 5)).cursors)
        assert state == {peer(1): 8}
    finally:
        await close(stream)
        await reader.close()


async def test_own_appends_are_announced_at_once(open_log: Open) -> None:
    log = open_log(peer(1))
    stream = log.watch_cursors()
    assert await asyncio.wait_for(anext(stream), 5) == Snapshot(PeerCursors())
    log.append_many(0, entries(0, 4))
    assert await asyncio.wait_for(anext(stream), 5) == Advanced(PeerCursors({peer(1): 4}))
    await close(stream)


async def test_watch_ends_when_the_log_closes(shared: Path) -> None:
    log = FileLog(shared, peer(1))
    stream = log.watch_cursors()
    await asyncio.wait_for(anext(stream), 5)
    await log.close()
    assert [e async for e in stream] == []
