"""A shared folder is hostile: half-synced, littered, rotted, forked.

Every case: a clear diagnosis, no crash, and never a wrong entry returned.
"""

from __future__ import annotations

import asyncio
import os
import resource
import shutil
import struct
from collections.abc import Callable
from pathlib import Path
from uuid import UUID

import pytest

from peerlog import BackendError, FileLog
from peerlog.filelog import format as fmt
from tests.helpers import entries, peer

Open = Callable[[UUID], FileLog]
A, B, READER = peer(1), peer(2), peer(9)


def write_log(open_log: Open, origin: UUID, batches: list[tuple[int, int]]) -> Path:
    """Write ``origin``'s log as its device would, then release it; the folder path."""
    log = open_log(origin)
    for start, count in batches:
        log.append_many(start, entries(start, count))
    log._writer.close()
    return log.root / str(origin)


def only_segment(folder: Path) -> Path:
    [name] = [n for n in os.listdir(folder) if n.endswith(".plog")]
    return folder / name


def kinds(log: FileLog) -> list[str]:
    return [p.kind for p in log.doctor().all_problems()]


def test_a_segment_still_being_copied_serves_its_prefix_then_the_rest(
        open_log: Open, tmp_path: Path) -> None:
    source = write_log(open_log, A, [(0, 3), (3, 4)])
    complete = only_segment(source).read_bytes()
    arriving = tmp_path / "other-device"
    (arriving / str(A)).mkdir(parents=True)
    target = arriving / str(A) / only_segment(source).name
    cut = len(complete) - 20  # the second record is still on its way
    target.write_bytes(complete[:cut])
    reader = FileLog(arriving, READER)
    assert reader.read_entries(A, 0) == list(enumerate(entries(0, 3)))
    assert reader.extents() == {A: 3}
    assert kinds(reader) == ["incomplete"]
    with open(target, "ab") as f:
        f.write(complete[cut:])
    assert reader.read_entries(A, 0) == list(enumerate(entries(0, 7)))
    assert reader.doctor().healthy


def test_a_segment_with_only_part_of_its_header_is_incomplete(
        open_log: Open, shared: Path) -> None:
    folder = shared / str(A)
    folder.mkdir()
    (folder / fmt.segment_name(0)).write_bytes(fmt.encode_header(A, 0)[:11])
    reader = open_log(READER)
    assert reader.read_entries(A, 0) == []
    assert kinds(reader) == ["incomplete"]


SYNC_TOOL_NAMES = {
    f".syncthing.{fmt.segment_name(0)}.tmp": "Syncthing temporary",
    f"{fmt.segment_name(0)[:-5]}.sync-conflict-20261124-101500-ABCDEFG.plog":
        "Syncthing conflict",
    f"{fmt.segment_name(0)[:-5]} (Alice's conflicted copy 2026-11-24).plog": "Dropbox",
    f"~${fmt.segment_name(0)}": "lock file",
    f".{fmt.segment_name(0)}.icloud": "iCloud placeholder",
    ".DS_Store": "operating-system",
    f"{fmt.segment_name(0)[:-5]} (1).plog": "Google Drive",
}


def test_sync_tool_files_are_ignored_and_named_by_doctor(open_log: Open) -> None:
    folder = write_log(open_log, A, [(0, 4)])
    for name in SYNC_TOOL_NAMES:
        (folder / name).write_bytes(b"\0junk that must never be read as a segment")
    reader = open_log(READER)
    assert reader.read_entries(A, 0) == list(enumerate(entries(0, 4)))
    report = reader.doctor()
    assert report.healthy
    reasons = {Path(i.path).name: i.reason for i in report.ignored}
    for name, tool in SYNC_TOOL_NAMES.items():
        assert tool in reasons[name], (name, reasons[name])


def test_an_identical_conflict_copy_is_harmless(open_log: Open) -> None:
    folder = write_log(open_log, A, [(0, 4)])
    segment = only_segment(folder)
    shutil.copy(segment, folder / (segment.stem + " (Bob's conflicted copy 2026-11-24).plog"))
    reader = open_log(READER)
    assert reader.extents() == {A: 4}
    assert reader.doctor().healthy


def test_bit_rot_withholds_the_bad_record_and_everything_after(
        open_log: Open, monkeypatch: pytest.MonkeyPatch) -> None:
    from peerlog.filelog import writer as writer_module
    monkeypatch.setattr(writer_module, "SEGMENT_MAX_ENTRIES", 6)
    folder = write_log(open_log, A, [(0, 3), (3, 3), (6, 3), (9, 3)])
    first = folder / fmt.segment_name(0)
    data = bytearray(first.read_bytes())
    data[-10] ^= 0x40  # inside the second record of the first segment
    first.write_bytes(bytes(data))
    reader = open_log(READER)
    assert reader.read_entries(A, 0) == list(enumerate(entries(0, 3)))
    assert reader.read_entries(A, 6) == [], "later segments are withheld too"
    [problem] = reader.doctor().all_problems()
    assert problem.kind == "corrupt"
    assert "checksum" in problem.detail
    assert problem.withheld_from == 3


def test_a_forked_origin_is_reported_as_divergence(open_log: Open, tmp_path: Path) -> None:
    folder = write_log(open_log, A, [(0, 3), (3, 2)])
    segment = only_segment(folder)
    # The clone's version of the same segment: same first 3 entries, then its own.
    clone = fmt.encode_header(A, 0) + fmt.encode_record(0, entries(0, 3)) + \
        fmt.encode_record(3, entries(100, 2))
    (folder / (segment.stem + ".sync-conflict-20261124-101500-CLONE01.plog")).write_bytes(clone)
    reader = open_log(READER)
    assert reader.read_entries(A, 0) == list(enumerate(entries(0, 3)))
    problems = reader.doctor().all_problems()
    assert [p.kind for p in problems] == ["divergence"]
    assert problems[0].withheld_from == 3
    assert "two devices" in problems[0].detail


def test_a_folder_that_is_not_a_uuid_is_ignored(open_log: Open, shared: Path) -> None:
    write_log(open_log, A, [(0, 2)])
    (shared / "Photos").mkdir()
    shouting = str(UUID("abcdef01-2345-6789-abcd-ef0123456789")).upper()
    (shared / shouting).mkdir()
    (shared / "notes.txt").write_text("hello")
    reader = open_log(READER)
    assert reader.list_peers() == [A]
    reasons = {Path(i.path).name: i.reason for i in reader.doctor().ignored}
    assert "not a peer folder" in reasons["Photos"]
    assert "not a peer folder" in reasons[shouting]
    assert "top of the shared folder" in reasons["notes.txt"]


def test_an_empty_segment_file_is_incomplete(open_log: Open, shared: Path) -> None:
    (shared / str(A)).mkdir()
    (shared / str(A) / fmt.segment_name(0)).write_bytes(b"")
    reader = open_log(READER)
    assert reader.read_entries(A, 0) == []
    assert kinds(reader) == ["incomplete"]


def test_a_file_of_zeros_is_not_a_segment(open_log: Open, shared: Path) -> None:
    (shared / str(A)).mkdir()
    (shared / str(A) / fmt.segment_name(0)).write_bytes(bytes(4096))
    reader = open_log(READER)
    assert reader.read_entries(A, 0) == []
    [problem] = reader.doctor().all_problems()
    assert problem.kind == "not-a-segment"
    assert "magic" in problem.detail


def test_a_segment_from_a_future_format_is_refused_clearly(
        open_log: Open, shared: Path) -> None:
    folder = write_log(open_log, A, [(0, 2)])
    segment = only_segment(folder)
    data = segment.read_bytes()
    segment.write_bytes(data[:8] + struct.pack(">H", 2) + data[10:])
    reader = open_log(READER)
    assert reader.read_entries(A, 0) == []
    [problem] = reader.doctor().all_problems()
    assert problem.kind == "future-version"
    assert "upgrade peerlog" in problem.detail


def test_a_segment_copied_into_another_origins_folder_is_foreign(
        open_log: Open, shared: Path) -> None:
    folder = write_log(open_log, A, [(0, 2)])
    (shared / str(B)).mkdir()
    shutil.copy(only_segment(folder), shared / str(B) / only_segment(folder).name)
    reader = open_log(READER)
    assert reader.read_entries(B, 0) == []
    assert kinds(reader) == ["foreign-origin"]


def test_a_missing_earlier_segment_is_a_gap(open_log: Open, shared: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from peerlog.filelog import writer as writer_module
    monkeypatch.setattr(writer_module, "SEGMENT_MAX_ENTRIES", 3)
    folder = write_log(open_log, A, [(0, 3), (3, 3), (6, 3)])
    (folder / fmt.segment_name(3)).unlink()  # not synced yet
    reader = open_log(READER)
    assert reader.extents() == {A: 3}
    [problem] = reader.doctor().all_problems()
    assert problem.kind == "gap"
    assert problem.withheld_from == 3


def test_a_dangling_symlink_named_as_a_segment_is_withheld(open_log: Open, shared: Path) -> None:
    folder = shared / str(A)
    folder.mkdir()
    os.symlink(folder / "evicted-elsewhere", folder / fmt.segment_name(0))
    reader = open_log(READER)
    assert reader.read_entries(A, 0) == []
    assert kinds(reader) == ["symlink"]


def test_a_symlinked_segment_is_never_followed(open_log: Open, shared: Path,
                                               tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    other = FileLog(elsewhere, A)
    other.append_many(0, entries(0, 3))
    real = only_segment(elsewhere / str(A))
    (shared / str(A)).mkdir()
    os.symlink(real, shared / str(A) / real.name)
    reader = open_log(READER)
    assert reader.read_entries(A, 0) == []
    assert kinds(reader) == ["symlink"]
    assert A in reader.withheld()


def test_a_symlinked_device_folder_is_never_followed(open_log: Open, shared: Path,
                                                     tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    FileLog(elsewhere, A).append_many(0, entries(0, 3))
    os.symlink(elsewhere / str(A), shared / str(A))
    reader = open_log(READER)
    assert reader.extents() == {}
    assert reader.read_entries(A, 0) == []
    assert kinds(reader) == ["symlink"]


def test_the_writer_refuses_a_symlinked_own_folder_and_touches_nothing_outside(
        open_log: Open, shared: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / ".00000000000000000000.plog.tmp").write_bytes(b"someone else's file")
    (outside / "notes.txt").write_bytes(b"keep me")
    os.symlink(outside, shared / str(A))
    writer = open_log(A)
    with pytest.raises(BackendError, match="symbolic link"):
        writer.append_many(0, entries(0, 1))
    assert sorted(os.listdir(outside)) == [".00000000000000000000.plog.tmp", "notes.txt"]
    assert (outside / ".00000000000000000000.plog.tmp").read_bytes() == b"someone else's file"


async def test_a_fifo_named_as_a_segment_does_not_hang_readers(open_log: Open,
                                                              shared: Path) -> None:
    folder = shared / str(A)
    folder.mkdir()
    os.mkfifo(folder / fmt.segment_name(0))
    reader = open_log(READER)
    got = await asyncio.wait_for(asyncio.to_thread(reader.read_entries, A, 0), 5)
    assert got == []
    diagnosis = await asyncio.wait_for(asyncio.to_thread(reader.doctor), 5)
    assert [p.kind for p in diagnosis.all_problems()] == ["not-a-regular-file"]


def test_a_huge_sparse_segment_is_diagnosed_not_loaded(open_log: Open) -> None:
    folder = write_log(open_log, A, [(0, 2)])
    segment = only_segment(folder)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    os.truncate(segment, 1 << 30)  # 1 GiB, sparse: costs no disk
    reader = open_log(READER)
    assert reader.read_entries(A, 0) == []
    assert kinds(reader) == ["oversized"]
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 100 << 10, f"reading grew the process by {grown_kib} KiB"
    try:
        os.truncate(segment, 1 << 40)  # 1 TiB, where the file system allows it
    except OSError:
        return
    assert kinds(open_log(peer(10))) == ["oversized"]


def test_doctor_never_shows_the_contents_of_a_file_it_cannot_parse(
        open_log: Open, shared: Path, tmp_path: Path) -> None:
    secret = tmp_path / "shadow"
    secret.write_bytes(b"admin:$6$SECRETHASH$abcdefghijklmnopqrstuvwxyz:19000:0:99999:7:::\n")
    folder = shared / str(A)
    folder.mkdir()
    (folder / fmt.segment_name(0)).write_bytes(secret.read_bytes())
    os.symlink(secret, shared / str(B))
    reader = open_log(READER)
    text = " ".join(str(p) for p in reader.doctor().all_problems())
    assert "SECRET" not in text
    assert "admin" not in text
    assert "99999" not in text
    assert sorted(kinds(reader)) == ["not-a-segment", "symlink"]


def test_a_misnamed_segment_is_not_trusted(open_log: Open) -> None:
    folder = write_log(open_log, A, [(0, 2)])
    segment = only_segment(folder)
    segment.rename(folder / fmt.segment_name(0).replace("0.plog", "5.plog"))
    reader = open_log(READER)
    assert reader.read_entries(A, 0) == []
    assert kinds(reader) == ["gap"]


def test_a_file_named_snapshots_keeps_no_device_from_syncing(shared: Path, tmp_path: Path) -> None:
    (shared / "snapshots").write_text("not a folder")
    log = FileLog(shared, A)
    log.append_many(0, entries(0, 2))
    assert log.snapshots.valid() == []
    with pytest.raises(BackendError, match="not a folder"):
        log.snapshots.publish(b"x" * 64)
    assert FileLog(shared, B).read_entries(A, 0) == list(enumerate(entries(0, 2)))


def test_a_symlink_named_like_a_snapshot_is_never_followed(shared: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"hunter2")
    (shared / "snapshots").mkdir()
    (shared / "snapshots" / ("0" * 64 + ".psnap")).symlink_to(secret)
    log = FileLog(shared, A)
    [bad] = log.snapshots.bad()
    assert "symbolic link" in bad.reason
    assert "hunter2" not in str(log.doctor())
