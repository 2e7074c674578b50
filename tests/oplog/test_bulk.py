"""`SqliteOplog.bulk`: a long catch-up in few durable commits, each batch still atomic."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from uuid import UUID

import pytest

from peerlog import (
    CursorMismatchError,
    CursorStream,
    DivergenceError,
    Entry,
    Puller,
    SqliteOplog,
    StateStore,
)
from peerlog.state.ops import encode_put
from peerlog.sync.cursors import PeerCursors
from peerlog.sync.entry import DecodedEntry
from peerlog.sync.faces import Applied
from tests.helpers import entries, entry, peer
from tests.processes import ROOT


async def test_batches_in_a_bulk_stay_all_or_nothing(tmp_path: Path) -> None:
    async with SqliteOplog(tmp_path / "a.db") as oplog:
        async with oplog.bulk():
            assert await oplog.apply_many(peer(1), 0, entries(0, 3)) == 3
            with pytest.raises(DivergenceError):
                await oplog.apply_many(peer(1), 1, [entry(1), entry(99), entry(3)])
            with pytest.raises(CursorMismatchError):
                await oplog.apply_many(peer(1), 5, entries(5, 1))
            assert await oplog.apply_many(peer(1), 3, entries(3, 2)) == 2
        assert (await oplog.cursors()).of(peer(1)) == 5
        assert [e for _, e in await oplog.read_since(peer(1), 0)] == entries(0, 5)


async def test_a_bulk_commits_only_every_so_many_entries(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    async with SqliteOplog(path) as oplog, SqliteOplog(path) as other:
        async with oplog.bulk(commit_every=4):
            await oplog.apply_many(peer(1), 0, entries(0, 3))
            assert (await other.cursors()).of(peer(1)) == 0  # not committed yet
            await oplog.apply_many(peer(1), 3, entries(3, 3))
            assert (await other.cursors()).of(peer(1)) == 6  # 6 >= 4: committed
            await oplog.apply_many(peer(1), 6, entries(6, 1))
        assert (await other.cursors()).of(peer(1)) == 7  # and at the end


async def test_a_local_change_in_a_bulk_is_durable_on_return(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    async with SqliteOplog(path) as oplog, SqliteOplog(path) as other:
        async with oplog.bulk():
            await oplog.apply_many(peer(1), 0, entries(0, 3))
            await oplog.append(b"mine")
            seen = await other.cursors()
            assert (seen.of(peer(1)), seen.of(oplog.origin)) == (3, 1)
            await oplog.apply_many(peer(1), 3, entries(3, 3))
        assert (await other.cursors()).of(peer(1)) == 6


async def test_watchers_hear_of_a_bulk_when_it_commits(tmp_path: Path) -> None:
    async with SqliteOplog(tmp_path / "a.db") as oplog:
        stream = oplog.watch_cursors()
        await anext(stream)  # the snapshot
        async with oplog.bulk():
            for n in range(0, 30, 10):
                await oplog.apply_many(peer(1), n, entries(n, 10))
        event = await asyncio.wait_for(anext(stream), 5)
        assert event.cursors.of(peer(1)) == 30
        await stream.aclose()  # type: ignore[attr-defined]


async def test_closing_inside_a_bulk_keeps_what_it_applied(tmp_path: Path) -> None:
    oplog = SqliteOplog(tmp_path / "a.db")
    async with oplog.bulk():
        await oplog.apply_many(peer(1), 0, entries(0, 4))
        await oplog.close()
    async with SqliteOplog(tmp_path / "a.db") as again:
        assert (await again.cursors()).of(peer(1)) == 4


class CountingBulks:
    """A real oplog that counts the bulks a driver opens on it."""

    def __init__(self, oplog: SqliteOplog) -> None:
        self.oplog = oplog
        self.bulks = 0

    def bulk(self, commit_every: int = 100_000) -> AbstractAsyncContextManager[None]:
        self.bulks += 1
        return self.oplog.bulk(commit_every)

    async def apply(self, peer: UUID, index: int, entry: DecodedEntry) -> Applied:
        return await self.oplog.apply(peer, index, entry)

    async def apply_many(self, peer: UUID, start: int, batch: list[DecodedEntry]) -> int:
        return await self.oplog.apply_many(peer, start, batch)

    async def cursors(self) -> PeerCursors:
        return await self.oplog.cursors()

    def watch_cursors(self) -> CursorStream:
        return self.oplog.watch_cursors()


@pytest.mark.parametrize(("count", "bulks"), [(19_999, 0), (20_000, 1)])
async def test_the_puller_takes_in_a_long_gap_in_a_bulk(tmp_path: Path, count: int,
                                                        bulks: int) -> None:
    async with SqliteOplog(tmp_path / "src.db") as source, \
            SqliteOplog(tmp_path / "dst.db") as target:
        for lo in range(0, count, 10_000):
            await source.apply_many(peer(1), lo, entries(lo, min(10_000, count - lo)))
        counting = CountingBulks(target)
        assert await Puller(source, counting).run_once() == count  # type: ignore[arg-type]
        assert counting.bulks == bulks


BULK_WRITER = """
import asyncio, sys
from pathlib import Path
from peerlog import Entry, StateStore
from peerlog.state.ops import encode_put
from tests.helpers import peer

async def main() -> None:
    async with StateStore(Path(sys.argv[1])) as store:
        async with store.oplog.bulk(commit_every=1_000):
            for lo in range(0, 1_000_000, 100):
                await store.oplog.apply_many(peer(1), lo, [
                    Entry(1_000 + i, encode_put("t", f"k{i % 700}", i))
                    for i in range(lo, lo + 100)])
                print(lo + 100, flush=True)

asyncio.run(main())
"""


def test_a_bulk_killed_midway_keeps_whole_commits_and_a_matching_state(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    writer = subprocess.Popen([sys.executable, "-c", BULK_WRITER, str(path)], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    assert writer.stdout is not None
    for line in writer.stdout:
        if int(line) >= 5_050:
            break
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait(10)
    asyncio.run(check_after_crash(path, tmp_path / "replay.db"))


async def check_after_crash(path: Path, replay_path: Path) -> None:
    async with StateStore(path) as store:
        held = (await store.oplog.cursors()).of(peer(1))
        assert held % 1_000 == 0
        assert held >= 5_000
        got = [e for _, e in await store.oplog.read_since(peer(1), 0, held)]
        while len(got) < held:
            got += [e for _, e in await store.oplog.read_since(peer(1), len(got))]
        async with StateStore(replay_path) as replay:
            await replay.oplog.apply_many(peer(1), 0, got[:5_000])
            await replay.oplog.apply_many(peer(1), 5_000, got[5_000:])
            assert await replay.state_hash() == await store.state_hash()
        assert got[0] == Entry(1_000, encode_put("t", "k0", 0))
