"""Watching cursors: a Snapshot first, Advanced deltas after, ending on close."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncGenerator
from pathlib import Path

from peerlog import Advanced, ClosedError, CursorsEvent, CursorStream, PeerCursors, Snapshot
from tests.contract.harnesses import ReplicaHarness
from tests.helpers import entries, peer

A, B = peer(1), peer(2)
ROOT = Path(__file__).resolve().parents[2]


async def next_event(stream: CursorStream, within: float = 5.0) -> CursorsEvent:
    return await asyncio.wait_for(anext(stream), within)


async def close(stream: CursorStream) -> None:
    assert isinstance(stream, AsyncGenerator)
    await stream.aclose()


async def test_first_event_is_a_snapshot_of_all_cursors(
        replica_harness: ReplicaHarness) -> None:
    replica = await replica_harness.open()
    await replica.apply_many(A, 0, entries(0, 3))
    stream = replica.watch_cursors()
    assert await next_event(stream) == Snapshot(PeerCursors({A: 3}))
    await close(stream)


async def test_advanced_carries_only_the_origins_that_moved(
        replica_harness: ReplicaHarness) -> None:
    replica = await replica_harness.open()
    await replica.apply_many(A, 0, entries(0, 3))
    stream = replica.watch_cursors()
    await next_event(stream)
    await replica.apply_many(B, 0, entries(0, 2))
    assert await next_event(stream) == Advanced(PeerCursors({B: 2}))
    await close(stream)


async def test_redelivery_raises_no_event(replica_harness: ReplicaHarness) -> None:
    replica = await replica_harness.open()
    await replica.apply_many(A, 0, entries(0, 3))
    stream = replica.watch_cursors()
    await next_event(stream)
    await replica.apply_many(A, 0, entries(0, 3))
    await replica.apply_many(B, 0, entries(0, 1))
    assert await next_event(stream) == Advanced(PeerCursors({B: 1}))
    await close(stream)


async def test_folding_coalesced_events_reaches_the_current_cursors(
        replica_harness: ReplicaHarness) -> None:
    replica = await replica_harness.open()
    stream = replica.watch_cursors()
    state = PeerCursors()
    state = state.merged((await next_event(stream)).cursors)
    for start in range(0, 50, 5):  # many commits before the consumer reads again
        await replica.apply_many(A, start, entries(start, 5))
        await replica.apply_many(B, start, entries(start, 5))
    while state != await replica.cursors():
        state = state.merged((await next_event(stream)).cursors)
    assert state == {A: 50, B: 50}
    await close(stream)


async def test_watch_ends_when_the_replica_closes(replica_harness: ReplicaHarness) -> None:
    replica = await replica_harness.open()
    stream = replica.watch_cursors()
    await next_event(stream)
    await replica.close()  # type: ignore[attr-defined]
    rest = [event async for event in stream]
    assert all(isinstance(event, Advanced) for event in rest)


async def test_closed_replica_raises_closed_error(replica_harness: ReplicaHarness) -> None:
    replica = await replica_harness.open()
    await replica.close()  # type: ignore[attr-defined]
    for call in (replica.cursors(), replica.read_since(A, 0),
                 replica.apply_many(A, 0, entries(0, 1)), replica.apply(A, 0, entries(0, 1)[0])):
        try:
            await call
        except ClosedError:
            continue
        raise AssertionError("a closed replica must raise ClosedError")


async def test_another_process_writing_is_seen_within_a_second(
        replica_harness: ReplicaHarness) -> None:
    replica = await replica_harness.open()
    stream = replica.watch_cursors()
    assert await next_event(stream) == Snapshot(PeerCursors())
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.contract.remote_writer",
        replica_harness.opener_expr(), "7", "0", "10",
        cwd=ROOT, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert child.stdout is not None
        assert child.stdin is not None
        line = await asyncio.wait_for(child.stdout.readline(), 60)
        assert line.strip() == b"committed"
        # From the other process's commit, this process must see it within 1 s.
        event = await next_event(stream, within=1.0)
        assert event == Advanced(PeerCursors({peer(7): 10}))
        assert await replica.read_since(peer(7), 0) == list(enumerate(entries(0, 10)))
    finally:
        if child.stdin is not None:
            child.stdin.close()
        await child.wait()
        await close(stream)
    assert child.returncode == 0


async def test_events_are_not_mutated_after_they_are_yielded(
        replica_harness: ReplicaHarness) -> None:
    replica = await replica_harness.open()
    stream = replica.watch_cursors()
    snapshot = await next_event(stream)
    await replica.apply_many(A, 0, entries(0, 2))
    advanced = await next_event(stream)
    await replica.apply_many(A, 2, entries(2, 2))
    await next_event(stream)
    assert snapshot.cursors == {}
    assert advanced.cursors == {A: 2}
    await close(stream)
