"""The segment byte format: round trips and bounds on what is read from disk."""

from __future__ import annotations

import re
import struct
import zlib

import pytest

from peerlog import DecodedEntry, Entry, Expunged
from peerlog.filelog import format as fmt
from tests.helpers import entries, entry, erased, peer


def test_header_round_trip() -> None:
    data = fmt.encode_header(peer(3), 42)
    assert len(data) == fmt.HEADER_SIZE == 40
    assert fmt.decode_header(data) == (peer(3), 42)


@pytest.mark.parametrize(
    ("mangle", "kind"),
    [
        (lambda d: d[:20], "incomplete"),
        (lambda d: b"\0" * 40, "not-a-segment"),
        (lambda d: d[:10] + b"\xff" + d[11:], "not-a-segment"),
        (lambda d: d[:8] + struct.pack(">H", 2) + d[10:], "future-version"),
    ],
    ids=["short", "zeros", "bad-checksum", "future-version"],
)
def test_bad_headers_are_classified(mangle: object, kind: str) -> None:
    data = mangle(fmt.encode_header(peer(3), 0))  # type: ignore[operator]
    with pytest.raises(fmt.HeaderError) as info:
        fmt.decode_header(data)
    assert info.value.kind == kind


def test_future_version_message_says_to_upgrade() -> None:
    data = fmt.encode_header(peer(3), 0)
    data = data[:8] + struct.pack(">H", 7) + data[10:]
    with pytest.raises(fmt.HeaderError, match=r"version 7.*upgrade peerlog"):
        fmt.decode_header(data)


def test_record_round_trip_with_markers() -> None:
    batch: list[DecodedEntry] = [entry(0), erased(1), Entry(5, b""), entry(3)]
    data = fmt.encode_record(10, batch)
    scan = fmt.scan_records(data, 0, 10)
    assert scan.stop is None
    assert scan.next_index == 14
    ref = scan.records[0]
    assert fmt.decode_record(data, ref.offset, 10, 4, 0, 4) == list(enumerate(batch, 10))
    assert fmt.decode_record(data, ref.offset, 10, 4, 1, 3) == [(11, batch[1]), (12, batch[2])]


def test_scan_stops_at_a_cut_record_as_incomplete() -> None:
    data = fmt.encode_record(0, entries(0, 3)) + fmt.encode_record(3, entries(3, 3))
    scan = fmt.scan_records(data[:-5], 0, 0)
    assert (scan.stop, scan.next_index) == ("incomplete", 3)


def test_scan_reports_a_checksum_mismatch_as_corrupt() -> None:
    data = bytearray(fmt.encode_record(0, entries(0, 3)))
    data[30] ^= 0x01
    scan = fmt.scan_records(bytes(data), 0, 0)
    assert scan.stop == "corrupt"
    assert "checksum" in scan.detail
    assert scan.next_index == 0


def forged(body_len: int, first: int, count: int, body: bytes) -> bytes:
    head = fmt.RECORD_HEAD.pack(body_len, first, count)
    return head + body + struct.pack(">I", zlib.crc32(body, zlib.crc32(head)))


@pytest.mark.parametrize(
    ("record", "why"),
    [
        (forged(0xFFFF_FFF0, 0, 1, b""), "impossible"),
        (forged(13, 0, 0, bytes(13)), "entry count 0"),
        (forged(13 * 70_000, 0, 70_000, b""), "entry count 70000"),
        (forged(13, 5, 1, bytes(13)), "starts at index 5"),
        (forged(14, 0, 1, bytes(13) + b"x"), "do not add up"),
        (forged(13, 0, 1, bytes(12) + b"\x07"), "unknown entry kind"),
        (forged(13, 0, 1, b"\xff" * 8 + bytes(5)), "2\\*\\*63"),
        (forged(13 + 3, 0, 1, bytes(8) + struct.pack(">I", 3) + b"\x01abc"), "digest"),
    ],
    ids=["huge-length", "zero-count", "huge-count", "wrong-index", "lengths", "kind", "ts",
         "short-digest"],
)
def test_scan_never_trusts_lengths_or_counts(record: bytes, why: str) -> None:
    scan = fmt.scan_records(record, 0, 0)
    assert scan.stop == "corrupt"
    assert scan.next_index == 0
    assert scan.valid_end == 0
    assert re.search(why, scan.detail), scan.detail


def test_split_records_respects_count_and_size_bounds() -> None:
    small = [Entry(1, b"x")] * (fmt.MAX_RECORD_ENTRIES + 10)
    cuts = fmt.split_records(small)
    assert cuts == [(0, fmt.MAX_RECORD_ENTRIES), (fmt.MAX_RECORD_ENTRIES, len(small))]
    big = [Entry(1, b"y" * (600 << 10))] * 3
    assert fmt.split_records(big) == [(0, 1), (1, 2), (2, 3)], "cut before passing 1 MiB"


def test_a_large_entry_after_small_ones_starts_its_own_record() -> None:
    batch = [Entry(1, b"s" * 1000)] * 10 + [Entry(2, b"L" * (3 << 20))] + [Entry(3, b"t")] * 2
    assert fmt.split_records(batch) == [(0, 10), (10, 11), (11, 13)]


def test_an_entry_no_record_can_hold_is_refused_before_anything_is_written() -> None:
    with pytest.raises(fmt.RecordTooLargeError, match="cannot be written"):
        fmt.split_records([Entry(1, b"ok"), Entry(2, bytes(fmt.MAX_RECORD_BODY))])
    assert fmt.split_records([]) == []


def test_a_marker_record_decodes_as_expunged() -> None:
    data = fmt.encode_record(0, [erased(0)])
    [(index, marker)] = fmt.decode_record(data, 0, 0, 1, 0, 1)
    assert index == 0
    assert marker == Expunged(entry(0).digest)
