"""Writing a file log: indexes, durability, rotation, expunge, one writer per origin."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from uuid import UUID

import pytest

from peerlog import (
    BackendError,
    CodecError,
    CursorMismatchError,
    DivergenceError,
    FileLog,
    FileLogPuller,
    FileLogReplica,
    IndexOutOfRangeError,
    LogSource,
    SharedFolder,
)
from peerlog.filelog import format as fmt
from peerlog.filelog import writer as writer_module
from tests.helpers import entries, entry, erased, peer

Open = Callable[[UUID], FileLog]
A, B = peer(1), peer(2)


def segments(shared: Path, origin: UUID) -> list[str]:
    return sorted(n for n in os.listdir(shared / str(origin)) if n.endswith(".plog"))


def test_file_log_satisfies_the_protocols(open_log: Open) -> None:
    log = open_log(A)
    assert isinstance(log, FileLogReplica)
    assert isinstance(log, FileLogPuller)


def test_appends_are_read_by_another_device(open_log: Open) -> None:
    open_log(A).append_many(0, entries(0, 5))
    reader = open_log(B)
    assert reader.list_peers() == [A]
    assert reader.read_entries(A, 0) == list(enumerate(entries(0, 5)))


def test_append_at_the_wrong_index_raises_and_writes_nothing(open_log: Open,
                                                             shared: Path) -> None:
    log = open_log(A)
    log.append_many(0, entries(0, 2))
    size = (shared / str(A) / segments(shared, A)[0]).stat().st_size
    with pytest.raises(CursorMismatchError) as info:
        log.append(3, entry(3))
    assert (info.value.expected, info.value.actual) == (2, 3)
    with pytest.raises(CursorMismatchError):
        log.append(1, entry(1))
    assert (shared / str(A) / segments(shared, A)[0]).stat().st_size == size


def test_a_log_writes_only_its_own_origin_folder(open_log: Open, shared: Path) -> None:
    open_log(A).append_many(0, entries(0, 2))
    assert os.listdir(shared) == [str(A)]


def test_reopened_writer_continues_at_the_folder_extent(open_log: Open) -> None:
    first = open_log(A)
    first.append_many(0, entries(0, 3))
    first._writer.close()
    again = open_log(A)
    assert again.next_index == 3
    again.append(3, entry(3))
    assert open_log(B).read_entries(A, 0) == list(enumerate(entries(0, 4)))


def test_two_local_writers_of_one_origin_take_turns(open_log: Open) -> None:
    first, second = open_log(A), open_log(A)  # an app and `peerlog sync`, one device
    first.append(0, entry(0))
    second.append(1, entry(1))
    first.append_many(2, entries(2, 2))
    assert second.next_index == 4
    assert open_log(B).read_entries(A, 0) == list(enumerate(entries(0, 4)))


def test_a_local_writer_that_lost_the_race_gets_a_cursor_mismatch(open_log: Open) -> None:
    first, second = open_log(A), open_log(A)
    first.append_many(0, entries(0, 2))
    with pytest.raises(CursorMismatchError) as info:
        second.append_many(1, entries(1, 2))  # entry 1 is already there, the same
    assert info.value.expected == 2
    assert open_log(B).read_entries(A, 0) == list(enumerate(entries(0, 2)))


def test_segments_rotate_by_entry_count(open_log: Open, shared: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writer_module, "SEGMENT_MAX_ENTRIES", 10)
    log = open_log(A)
    for start in range(0, 35, 5):
        log.append_many(start, entries(start, 5))
    assert segments(shared, A) == [fmt.segment_name(i) for i in (0, 10, 20, 30)]
    assert open_log(B).read_entries(A, 0) == list(enumerate(entries(0, 35)))


def test_segments_rotate_by_size(open_log: Open, shared: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writer_module, "SEGMENT_MAX_BYTES", 300)
    log = open_log(A)
    for i in range(6):
        log.append(i, entry(i, size=100))
    assert len(segments(shared, A)) >= 3
    assert open_log(B).read_entries(A, 0) == [(i, entry(i, size=100)) for i in range(6)]


def test_expunge_replaces_the_entry_in_place(open_log: Open) -> None:
    log = open_log(A)
    log.append_many(0, entries(0, 5))
    log.expunge(2)
    expected = [(0, entry(0)), (1, entry(1)), (2, erased(2)), (3, entry(3)), (4, entry(4))]
    assert open_log(B).read_entries(A, 0) == expected
    log.append(5, entry(5))
    assert open_log(peer(3)).read_entries(A, 0) == [*expected, (5, entry(5))]


def test_expunge_twice_is_a_noop(open_log: Open) -> None:
    log = open_log(A)
    log.append_many(0, entries(0, 2))
    log.expunge(0)
    log.expunge(0)
    assert open_log(B).read_entries(A, 0) == [(0, erased(0)), (1, entry(1))]


def test_expunge_in_an_older_segment(open_log: Open, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writer_module, "SEGMENT_MAX_ENTRIES", 4)
    log = open_log(A)
    for i in range(10):
        log.append(i, entry(i))
    log.expunge(1)
    got = open_log(B).read_entries(A, 0)
    assert got[1] == (1, erased(1))
    assert [e for i, e in got if i != 1] == [entry(i) for i in range(10) if i != 1]


def test_expunge_outside_the_log_raises(open_log: Open) -> None:
    log = open_log(A)
    with pytest.raises(IndexOutOfRangeError, match="empty"):
        log.expunge(0)
    log.append_many(0, entries(0, 2))
    with pytest.raises(IndexOutOfRangeError, match=r"0\.\.1"):
        log.expunge(2)


def test_a_torn_tail_is_truncated_on_reopen(open_log: Open, shared: Path) -> None:
    log = open_log(A)
    log.append_many(0, entries(0, 3))
    log._writer.close()
    path = shared / str(A) / segments(shared, A)[0]
    with open(path, "ab") as f:  # half of the next record: a crash mid-write
        f.write(fmt.encode_record(3, entries(3, 2))[:-7])
    again = open_log(A)
    assert again.next_index == 3
    again.append(3, entry(3))
    assert open_log(B).read_entries(A, 0) == list(enumerate(entries(0, 4)))


def test_a_clone_writing_the_same_origin_is_refused(open_log: Open, shared: Path) -> None:
    log = open_log(A)
    log.append_many(0, entries(0, 2))
    path = shared / str(A) / segments(shared, A)[0]
    with open(path, "ab") as f:  # the cloned device, elsewhere, appended its own entry 2
        f.write(fmt.encode_record(2, [entry(99)]))
    size = path.stat().st_size
    with pytest.raises(DivergenceError, match="cloned"):
        log.append(2, entry(2))
    assert path.stat().st_size == size


def test_a_damaged_own_log_is_not_written_to(open_log: Open, shared: Path) -> None:
    log = open_log(A)
    log.append_many(0, entries(0, 3))
    log.append_many(3, entries(3, 3))
    log._writer.close()
    path = shared / str(A) / segments(shared, A)[0]
    data = bytearray(path.read_bytes())
    data[fmt.HEADER_SIZE + 30] ^= 0xFF  # bit rot in the first record
    path.write_bytes(bytes(data))
    with pytest.raises(CodecError, match="damaged"):
        open_log(A).append(6, entry(6))
    assert path.read_bytes() == bytes(data)


def test_missing_shared_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="does not exist"):
        FileLog(tmp_path / "nowhere", A)


async def test_a_shared_folder_reads_and_diagnoses_without_an_origin(open_log: Open,
                                                                     shared: Path) -> None:
    open_log(A).append_many(0, entries(0, 3))
    async with SharedFolder(shared) as folder:
        assert folder.extents() == {A: 3}
        assert await folder.read_since(A, 1) == list(enumerate(entries(1, 2), 1))
        assert folder.doctor().healthy
        assert not hasattr(folder, "append_many")
        assert isinstance(folder, LogSource)
    assert os.listdir(shared) == [str(A)], "reading wrote nothing"
