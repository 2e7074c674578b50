"""`Puller` and `pull`: any LogSource into any LogProcessor, gaps only."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from peerlog import Entry, Expunged, FileLog, Puller, SqliteOplog, pull
from tests.helpers import entries, peer, wait_until

A, B, C = peer(1), peer(2), peer(3)


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[SqliteOplog, SqliteOplog]]:
    async with SqliteOplog(tmp_path / "a.db") as a, SqliteOplog(tmp_path / "b.db") as b:
        yield a, b


async def test_pull_copies_every_origin_and_returns_the_count(
        pair: tuple[SqliteOplog, SqliteOplog]) -> None:
    source, target = pair
    await source.apply_many(A, 0, entries(0, 12_000))
    await source.apply_many(B, 0, entries(0, 3))
    assert await pull(source, target, batch=5_000) == 12_003
    assert await target.cursors() == {A: 12_000, B: 3}
    assert await target.read_since(A, 11_999) == [(11_999, entries(11_999, 1)[0])]


async def test_pull_copies_only_the_gaps(pair: tuple[SqliteOplog, SqliteOplog]) -> None:
    source, target = pair
    await source.apply_many(A, 0, entries(0, 10))
    await target.apply_many(A, 0, entries(0, 7))
    progress: list[int] = []
    puller = Puller(source, target, progress=lambda _p, n: progress.append(n))
    assert await puller.run_once() == 3
    assert progress == [4], "the last held entry is re-offered as a fork check"
    assert await puller.run_once() == 0


async def test_a_diverged_origin_is_skipped_and_the_others_still_sync(
        pair: tuple[SqliteOplog, SqliteOplog]) -> None:
    source, target = pair
    await source.apply_many(A, 0, entries(0, 5))
    await source.apply_many(B, 0, entries(0, 5))
    await target.apply_many(A, 0, [Entry(1, b"the other device's entry 0")])
    puller = Puller(source, target)
    assert await puller.run_once() == 5
    assert set(puller.diverged) == {A}
    assert puller.diverged[A].index == 0
    assert await target.cursors() == {A: 1, B: 5}


async def test_run_follows_the_source_live_and_stops_cleanly_on_cancel(
        pair: tuple[SqliteOplog, SqliteOplog]) -> None:
    source, target = pair
    await source.apply_many(A, 0, entries(0, 3))
    task = asyncio.create_task(Puller(source, target).run())
    try:
        for start in (3, 6, 9):
            await source.apply_many(A, start, entries(start, 3))
        async def caught_up() -> bool:
            return (await target.cursors()).of(A) == 12

        await wait_until(caught_up)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert await target.read_since(A, 0) == list(enumerate(entries(0, 12)))


async def test_pull_from_a_file_log_into_an_oplog(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    writer = FileLog(shared, C)
    writer.append_many(0, entries(0, 20))
    async with SqliteOplog(tmp_path / "t.db") as target:
        assert await pull(FileLog(shared, A), target, batch=6) == 20
        assert await target.read_since(C, 0) == list(enumerate(entries(0, 20)))
    await writer.close()


async def test_pull_carries_erasures_of_entries_the_target_already_holds(
        pair: tuple[SqliteOplog, SqliteOplog]) -> None:
    source, target = pair
    await source.apply_many(A, 0, entries(0, 4))
    await pull(source, target)
    assert await source.expunge(A, 2) is True  # moves no cursor
    assert await pull(source, target) == 1
    assert (await target.read_since(A, 2, 1))[0][1] == Expunged(entries(2, 1)[0].digest)
    assert await pull(source, target) == 0, "an erasure is carried once"
