"""Compacted logs, the same on every SQL oplog: reads below the start are refused, entries
offered there are taken as held, erasures still travel."""

from __future__ import annotations

from typing import Any

import pytest

from peerlog import CompactedError, CursorMismatchError, DivergenceError
from tests.contract.harnesses import ReplicaHarness
from tests.helpers import entries, entry, erased, peer

A = peer(1)


async def _compacted(harness: ReplicaHarness, upto: int = 5) -> Any:
    replica: Any = await harness.open()
    await replica.apply_many(A, 0, entries(0, 8))
    await replica.compact({A: upto})
    return replica


async def test_a_read_below_the_compacted_start_is_refused(sql_harness: ReplicaHarness) -> None:
    replica = await _compacted(sql_harness)
    with pytest.raises(CompactedError) as caught:
        await replica.read_since(A, 4)
    assert (caught.value.peer, caught.value.first_available) == (A, 5)
    assert [i for i, _ in await replica.read_since(A, 5)] == [5, 6, 7]
    assert (await replica.cursors()).of(A) == 8


async def test_compaction_never_passes_the_cursor(sql_harness: ReplicaHarness) -> None:
    replica = await _compacted(sql_harness, upto=100)
    assert await replica.read_since(A, 8) == []
    with pytest.raises(CompactedError):
        await replica.read_since(A, 7)
    assert (await replica.apply(A, 8, entry(8))).new


async def test_entries_offered_below_the_start_are_taken_as_held(
        sql_harness: ReplicaHarness) -> None:
    replica = await _compacted(sql_harness)
    assert await replica.apply_many(A, 0, entries(0, 9)) == 1  # only index 8 is new
    assert (await replica.cursors()).of(A) == 9


async def test_an_erasure_below_the_start_is_recorded_and_travels(
        sql_harness: ReplicaHarness) -> None:
    replica = await _compacted(sql_harness)
    assert (await replica.apply(A, 2, erased(2))).new
    assert not (await replica.apply(A, 2, erased(2))).new
    assert (await replica.erased())[A] == [(2, erased(2).digest)]
    with pytest.raises(DivergenceError):
        await replica.apply(A, 2, erased(3))


async def test_compaction_keeps_erasure_markers(sql_harness: ReplicaHarness) -> None:
    replica: Any = await sql_harness.open()
    await replica.apply_many(A, 0, entries(0, 4))
    await replica.apply(A, 1, erased(1))
    await replica.compact({A: 4})
    assert (await replica.erased())[A] == [(1, erased(1).digest)]


async def test_a_compacted_log_stays_compacted_after_reopening(
        sql_harness: ReplicaHarness) -> None:
    await _compacted(sql_harness)
    await sql_harness.close_all()
    replica = await sql_harness.open()
    with pytest.raises(CompactedError):
        await replica.read_since(A, 0)


async def test_an_empty_log_can_start_above_zero(sql_harness: ReplicaHarness) -> None:
    replica: Any = await sql_harness.open()
    await replica.start_at(A, 5)
    await replica.start_at(A, 5)  # again: nothing changes
    assert (await replica.cursors()).of(A) == 5
    with pytest.raises(CompactedError):
        await replica.read_since(A, 4)
    assert await replica.apply_many(A, 5, entries(5, 2)) == 2
    assert [i for i, _ in await replica.read_since(A, 5)] == [5, 6]


async def test_a_log_with_entries_cannot_start_elsewhere(sql_harness: ReplicaHarness) -> None:
    replica: Any = await sql_harness.open()
    await replica.apply_many(A, 0, entries(0, 2))
    with pytest.raises(CursorMismatchError):
        await replica.start_at(A, 5)
