"""The write side of the contract: every rule of `LogProcessor.apply` and `apply_many`."""

from __future__ import annotations

import asyncio
from uuid import UUID

import pytest

from peerlog import (
    Applied,
    CodecError,
    CursorMismatchError,
    DecodedEntry,
    DivergenceError,
    Entry,
    Expunged,
    LogProcessor,
    Replica,
)
from tests.contract.harnesses import ReplicaHarness
from tests.helpers import entries, entry, erased, peer

A, B = peer(1), peer(2)


async def held(replica: Replica, who: UUID = A) -> list[tuple[int, DecodedEntry]]:
    return await replica.read_since(who, 0, 1_000)


async def test_replica_satisfies_the_protocols(replica_harness: ReplicaHarness) -> None:
    replica = await replica_harness.open()
    assert isinstance(replica, Replica)
    assert isinstance(replica, LogProcessor)


async def test_apply_stores_entry_and_advances_cursor(replica_harness: ReplicaHarness) -> None:
    replica = await replica_harness.open()
    assert await replica.apply(A, 0, entry(0)) == Applied(new=True)
    assert (await replica.cursors()).of(A) == 1
    assert await held(replica) == [(0, entry(0))]


async def test_redelivery_of_held_entry_is_a_noop(replica_harness: ReplicaHarness) -> None:
    replica = await replica_harness.open()
    await replica.apply(A, 0, entry(0))
    assert await replica.apply(A, 0, entry(0)) == Applied(new=False)
    assert (await replica.cursors()).of(A) == 1
    assert await held(replica) == [(0, entry(0))]


async def test_index_past_cursor_raises_and_stores_nothing(
        replica_harness: ReplicaHarness) -> None:
    replica = await replica_harness.open()
    await replica.apply(A, 0, entry(0))
    with pytest.raises(CursorMismatchError) as info:
        await replica.apply(A, 2, entry(2))
    assert (info.value.expected, info.value.actual) == (1, 2)
    assert "expected index 1" in str(info.value)
    assert "got 2" in str(info.value)
    assert (await replica.cursors()).of(A) == 1
    assert await held(replica) == [(0, entry(0))]


async def test_gap_on_unknown_peer_raises_and_creates_no_cursor(
        replica_harness: ReplicaHarness) -> None:
    replica = await replica_harness.open()
    with pytest.raises(CursorMismatchError):
        await replica.apply(B, 3, entry(3))
    assert B not in await replica.cursors()
    await replica.apply(B, 0, entry(0))
    assert (await replica.cursors()).of(B) == 1


async def test_different_content_in_held_slot_is_divergence(
        replica_harness: ReplicaHarness) -> None:
    replica = await replica_harness.open()
    await replica.apply(A, 0, entry(0))
    with pytest.raises(DivergenceError) as info:
        await replica.apply(A, 0, Entry(entry(0).ts, b"other"))
    assert (info.value.peer, info.value.index) == (A, 0)
    assert await held(replica) == [(0, entry(0))]


async def test_same_payload_other_timestamp_is_divergence(
        replica_harness: ReplicaHarness) -> None:
    replica = await replica_harness.open()
    await replica.apply(A, 0, entry(0))
    with pytest.raises(DivergenceError):
        await replica.apply(A, 0, Entry(entry(0).ts + 1, entry(0).payload))


async def test_matching_expunged_marker_erases_entry(replica_harness: ReplicaHarness) -> None:
    replica = await replica_harness.open()
    await replica.apply_many(A, 0, entries(0, 3))
    assert await replica.apply(A, 1, erased(1)) == Applied(new=True)
    assert await held(replica) == [(0, entry(0)), (1, erased(1)), (2, entry(2))]
    assert (await replica.cursors()).of(A) == 3


async def test_marker_with_other_digest_is_divergence(replica_harness: ReplicaHarness) -> None:
    replica = await replica_harness.open()
    await replica.apply(A, 0, entry(0))
    with pytest.raises(DivergenceError):
        await replica.apply(A, 0, erased(99))
    assert await held(replica) == [(0, entry(0))]


async def test_erased_slot_never_comes_back(replica_harness: ReplicaHarness) -> None:
    replica = await replica_harness.open()
    await replica.apply(A, 0, entry(0))
    await replica.apply(A, 0, erased(0))
    assert await replica.apply(A, 0, entry(0)) == Applied(new=False)
    assert await replica.apply(A, 0, erased(0)) == Applied(new=False)
    assert await held(replica) == [(0, erased(0))]


async def test_other_entry_for_erased_slot_is_divergence(
        replica_harness: ReplicaHarness) -> None:
    replica = await replica_harness.open()
    await replica.apply(A, 0, erased(0))
    with pytest.raises(DivergenceError):
        await replica.apply(A, 0, entry(5))


async def test_marker_in_a_fresh_slot_is_stored(replica_harness: ReplicaHarness) -> None:
    replica = await replica_harness.open()
    assert await replica.apply(A, 0, erased(0)) == Applied(new=True)
    assert await held(replica) == [(0, erased(0))]
    assert (await replica.cursors()).of(A) == 1


async def test_apply_many_returns_how_many_were_new(replica_harness: ReplicaHarness) -> None:
    replica = await replica_harness.open()
    assert await replica.apply_many(A, 0, entries(0, 5)) == 5
    assert await replica.apply_many(A, 3, entries(3, 4)) == 2
    assert await replica.apply_many(A, 0, entries(0, 7)) == 0
    assert (await replica.cursors()).of(A) == 7
    assert await held(replica) == list(enumerate(entries(0, 7)))


async def test_apply_many_counts_erasures_as_new(replica_harness: ReplicaHarness) -> None:
    replica = await replica_harness.open()
    await replica.apply_many(A, 0, entries(0, 3))
    assert await replica.apply_many(A, 0, [entry(0), erased(1), entry(2), entry(3)]) == 2


async def test_apply_many_is_all_or_nothing_on_divergence(
        replica_harness: ReplicaHarness) -> None:
    replica = await replica_harness.open()
    await replica.apply_many(A, 0, entries(0, 3))
    batch: list[DecodedEntry] = [erased(0), Entry(1, b"conflict"), entry(2), entry(3), entry(4)]
    with pytest.raises(DivergenceError) as info:
        await replica.apply_many(A, 0, batch)
    assert info.value.index == 1
    assert await held(replica) == list(enumerate(entries(0, 3)))
    assert (await replica.cursors()).of(A) == 3


async def test_apply_many_past_cursor_stores_nothing(replica_harness: ReplicaHarness) -> None:
    replica = await replica_harness.open()
    await replica.apply_many(A, 0, entries(0, 2))
    with pytest.raises(CursorMismatchError) as info:
        await replica.apply_many(A, 3, entries(3, 5))
    assert (info.value.expected, info.value.actual) == (2, 3)
    assert (await replica.cursors()).of(A) == 2


@pytest.mark.parametrize(
    "bad",
    [
        Entry(-1, b"x"),
        Entry(1 << 63, b"x"),
        Entry(1, "text"),  # type: ignore[arg-type]
        Expunged(b"short"),
        (1, b"plain tuple"),
        None,
    ],
    ids=["negative-ts", "ts-2**63", "str-payload", "short-digest", "plain-tuple", "none"],
)
async def test_malformed_entry_raises_codec_error_and_stores_nothing(
        replica_harness: ReplicaHarness, bad: object) -> None:
    replica = await replica_harness.open()
    with pytest.raises(CodecError):
        await replica.apply_many(A, 0, [entry(0), bad])  # type: ignore[list-item]
    assert await replica.cursors() == {}


async def test_negative_index_raises_codec_error(replica_harness: ReplicaHarness) -> None:
    replica = await replica_harness.open()
    with pytest.raises(CodecError):
        await replica.apply(A, -1, entry(0))


async def test_empty_batch_is_zero(replica_harness: ReplicaHarness) -> None:
    replica = await replica_harness.open()
    assert await replica.apply_many(A, 0, []) == 0
    assert await replica.cursors() == {}


async def test_origins_are_independent(replica_harness: ReplicaHarness) -> None:
    replica = await replica_harness.open()
    await replica.apply_many(A, 0, entries(0, 2))
    await replica.apply_many(B, 0, entries(10, 5))
    assert await replica.cursors() == {A: 2, B: 5}
    assert await held(replica, B) == list(enumerate(entries(10, 5)))


async def test_concurrent_tasks_apply_safely(replica_harness: ReplicaHarness) -> None:
    replica = await replica_harness.open()
    peers = [peer(n) for n in range(1, 9)]

    async def deliver(who: UUID) -> None:
        for start in range(0, 200, 20):
            # Every chunk twice, concurrently: idempotency under contention.
            await asyncio.gather(replica.apply_many(who, start, entries(start, 20)),
                                 replica.apply_many(who, start, entries(start, 20)))

    await asyncio.gather(*(deliver(p) for p in peers))
    assert await replica.cursors() == {p: 200 for p in peers}
    for p in peers:
        assert await held(replica, p) == list(enumerate(entries(0, 200)))


async def test_state_persists_across_reopen(replica_harness: ReplicaHarness) -> None:
    replica = await replica_harness.open()
    await replica.apply_many(A, 0, entries(0, 4))
    await replica.apply(A, 2, erased(2))
    await replica.apply_many(B, 0, entries(0, 1))
    reopened = await replica_harness.open()
    assert await reopened.cursors() == {A: 4, B: 1}
    assert await held(reopened) == [(0, entry(0)), (1, entry(1)), (2, erased(2)), (3, entry(3))]
    await reopened.apply(A, 4, entry(4))
    assert (await reopened.cursors()).of(A) == 5
