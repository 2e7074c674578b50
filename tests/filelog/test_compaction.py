"""Compacting an origin's folder: where the chain starts, reads below it, and every state a
crash between compaction's steps can leave."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import peerlog.filelog.writer as writer_module
from peerlog import CompactedError, FileLog
from peerlog.filelog import format as fmt
from peerlog.filelog.names import CURSORS_FILE
from peerlog.sync.cursors import PeerCursors
from tests.helpers import entries, peer

A = peer(1)


@pytest.fixture
def small_segments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writer_module, "SEGMENT_MAX_ENTRIES", 10)


def _written(shared: Path, count: int) -> FileLog:
    log = FileLog(shared, A)
    for lo in range(0, count, 5):  # segments rotate between appends
        log.append_many(lo, entries(lo, min(5, count - lo)))
    return log


def _names(shared: Path) -> list[str]:
    return sorted(n for n in os.listdir(shared / str(A)) if n.endswith(".plog"))


@pytest.mark.usefixtures("small_segments")
async def test_compacting_removes_covered_segments_and_flags_the_first_kept(
        shared: Path) -> None:
    log = _written(shared, 35)
    assert log.compact_below(25) == 2
    assert _names(shared) == [fmt.segment_name(20), fmt.segment_name(30)]
    reader = FileLog(shared, peer(9))
    assert reader.first_indexes() == PeerCursors({A: 20})
    assert reader.extents() == PeerCursors({A: 35})
    assert [i for i, _ in reader.read_entries(A, 20)] == list(range(20, 35))
    with pytest.raises(CompactedError) as caught:
        reader.read_entries(A, 19)
    assert caught.value.first_available == 20
    await log.close()
    await reader.close()


@pytest.mark.usefixtures("small_segments")
async def test_compacting_everything_leaves_an_empty_flagged_segment_to_append_to(
        shared: Path) -> None:
    log = _written(shared, 25)
    assert log.compact_below(25) == 3
    assert _names(shared) == [fmt.segment_name(25)]
    assert log.next_index == 25
    log.append_many(25, entries(25, 2))
    assert log.compact_below(25) == 0  # the segment holding the new entries stays
    reader = FileLog(shared, peer(9))
    assert [i for i, _ in reader.read_entries(A, 25)] == [25, 26]
    await log.close()
    await reader.close()


@pytest.mark.usefixtures("small_segments")
async def test_a_reopened_writer_continues_a_compacted_log(shared: Path) -> None:
    log = _written(shared, 25)
    log.compact_below(25)
    await log.close()
    again = FileLog(shared, A)
    assert again.next_index == 25
    again.append_many(25, entries(25, 1))
    await again.close()


@pytest.mark.usefixtures("small_segments")
async def test_a_crash_after_flagging_before_removing_leaves_the_whole_chain(
        shared: Path) -> None:
    log = _written(shared, 35)
    log.compact_below(25)
    # As if the crash came before the removals: put the covered segments back.
    folder = shared / str(A)
    for first in (0, 10):
        body = fmt.encode_header(A, first) + fmt.encode_record(first, entries(first, 10))
        (folder / fmt.segment_name(first)).write_bytes(body)
    reader = FileLog(shared, peer(9))
    assert reader.first_indexes() == PeerCursors()  # segment 0 is back: the full chain
    assert [i for i, _ in reader.read_entries(A, 0, 100)] == list(range(35))
    # Segment 0 removed, segment 10 not yet: the chain starts at the flagged segment.
    (folder / fmt.segment_name(0)).unlink()
    assert reader.first_indexes() == PeerCursors({A: 20})
    assert reader.extents() == PeerCursors({A: 35})
    assert reader.withheld() == {}
    assert log.compact_below(25) == 1  # the next compaction removes the leftover
    assert _names(shared) == [fmt.segment_name(20), fmt.segment_name(30)]
    await log.close()
    await reader.close()


@pytest.mark.usefixtures("small_segments")
async def test_without_segment_0_or_a_flag_the_log_is_a_gap_not_a_start(shared: Path) -> None:
    log = _written(shared, 25)
    await log.close()
    (shared / str(A) / fmt.segment_name(0)).unlink()
    reader = FileLog(shared, peer(9))
    assert reader.extents() == PeerCursors()
    assert reader.withheld()[A].kind == "gap"
    await reader.close()


async def test_the_cursors_file_is_not_an_ignored_file(shared: Path) -> None:
    log = _written(shared, 3)
    log.acknowledge(PeerCursors({A: 3}))
    assert (shared / str(A) / CURSORS_FILE).exists()
    assert log.device_cursors()[A].cursors == PeerCursors({A: 3})
    assert log.doctor().ignored == ()
    await log.close()


async def test_a_foreign_or_broken_cursors_file_is_ignored(shared: Path) -> None:
    log = _written(shared, 3)
    (shared / str(A) / CURSORS_FILE).write_text('{"version": 1, "origin": "' + str(peer(2))
                                                + '", "written_ms": 1, "cursors": {}}')
    assert log.device_cursors() == {}
    (shared / str(A) / CURSORS_FILE).write_text("{not json")
    assert log.device_cursors() == {}
    await log.close()
