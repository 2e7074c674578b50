"""The read side of the contract: `LogSource.read_since` and `cursors`."""

from __future__ import annotations

from uuid import UUID

from peerlog import DecodedEntry, HasErasures, LogSource
from tests.contract.harnesses import SourceHarness
from tests.helpers import entries, entry, erased, peer

A, B = peer(1), peer(2)


async def drain(source: LogSource, who: UUID, start: int = 0,
                limit: int | None = None) -> list[tuple[int, DecodedEntry]]:
    out: list[tuple[int, DecodedEntry]] = []
    index = start
    while batch := await source.read_since(who, index, limit):
        assert batch[0][0] == index, "each batch starts where asked"
        out.extend(batch)
        index = batch[-1][0] + 1
    return out


async def test_source_satisfies_the_protocol(source_harness: SourceHarness) -> None:
    assert isinstance(await source_harness.open_source(), LogSource)


async def test_unknown_peer_reads_empty(source_harness: SourceHarness) -> None:
    source = await source_harness.open_source()
    assert await source.read_since(peer(77), 0) == []


async def test_reads_ascending_from_the_given_index(source_harness: SourceHarness) -> None:
    await source_harness.seed(A, entries(0, 10))
    source = await source_harness.open_source()
    assert await source.read_since(A, 4) == list(enumerate(entries(4, 6), start=4))


async def test_read_past_the_end_is_empty(source_harness: SourceHarness) -> None:
    await source_harness.seed(A, entries(0, 3))
    source = await source_harness.open_source()
    assert await source.read_since(A, 3) == []
    assert await source.read_since(A, 1_000) == []


async def test_limit_bounds_the_batch(source_harness: SourceHarness) -> None:
    await source_harness.seed(A, entries(0, 10))
    source = await source_harness.open_source()
    assert await source.read_since(A, 2, limit=3) == list(enumerate(entries(2, 3), start=2))
    assert await source.read_since(A, 0, limit=0) == []


async def test_default_batch_is_bounded_and_paging_drains_everything(
        source_harness: SourceHarness) -> None:
    log = entries(0, 25_000)
    await source_harness.seed(A, log)
    source = await source_harness.open_source()
    first = await source.read_since(A, 0)
    assert 0 < len(first) < len(log), "one call must not return an unbounded batch"
    assert await drain(source, A) == list(enumerate(log))


async def test_paging_with_a_small_limit_returns_every_entry_once(
        source_harness: SourceHarness) -> None:
    log = entries(0, 50)
    await source_harness.seed(A, log)
    source = await source_harness.open_source()
    assert await drain(source, A, limit=7) == list(enumerate(log))


async def test_expunged_markers_are_included(source_harness: SourceHarness) -> None:
    log: list[DecodedEntry] = [entry(0), erased(1), entry(2)]
    await source_harness.seed(A, log)
    source = await source_harness.open_source()
    assert await source.read_since(A, 0) == list(enumerate(log))


async def test_cursors_name_every_origin(source_harness: SourceHarness) -> None:
    await source_harness.seed(A, entries(0, 3))
    await source_harness.seed(B, entries(0, 5))
    source = await source_harness.open_source()
    cursors = await source.cursors()
    assert cursors == {A: 3, B: 5}
    assert cursors.of(peer(9)) == 0


async def test_erased_lists_every_marker_of_every_origin(source_harness: SourceHarness) -> None:
    await source_harness.seed(A, [entry(0), erased(1), entry(2), erased(3)])
    await source_harness.seed(B, entries(0, 2))
    source = await source_harness.open_source()
    assert isinstance(source, HasErasures)
    assert await source.erased() == {A: [(1, entry(1).digest), (3, entry(3).digest)]}
