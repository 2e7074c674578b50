"""The segment byte format, version 1 (specified in docs/file-format.md).

Pure functions over bytes: encoding records, scanning a segment for its
longest valid prefix, decoding entries.  Nothing read from disk is trusted:
every length and count is bounded before it is used.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate, repeat
from uuid import UUID

from peerlog.filelog.problems import ProblemKind
from peerlog.sync.entry import DIGEST_SIZE, TS_LIMIT, DecodedEntry, Entry, Expunged
from peerlog.sync.errors import CodecError

MAGIC = b"\x89PLOG\r\n\x1a"
"""First 8 bytes of every segment (a high byte, CR LF and ^Z catch text-mode mangling)."""

FORMAT_VERSION = 1
SEGMENT_SUFFIX = ".plog"

HEADER = struct.Struct(">8sHH16sQI")  # magic, version, flags, origin, first index, CRC-32
HEADER_SIZE = HEADER.size  # 40
RECORD_HEAD = struct.Struct(">IQI")  # body length, first index, entry count
RECORD_HEAD_SIZE = RECORD_HEAD.size  # 16
CRC_SIZE = 4
PER_ENTRY_FIXED = 8 + 4 + 1  # ts, data length, kind

FLAG_LOG_STARTS_HERE = 1
"""Header flag (docs/file-format.md §4): the origin's log was compacted up to this segment,
which is where its chain starts when no segment 0 exists."""

KIND_ENTRY = 0
KIND_EXPUNGED = 1
_KINDS = bytes((KIND_ENTRY, KIND_EXPUNGED))

MAX_RECORD_ENTRIES = 65_536
"""Bound on a record's entry count; a larger count on disk is corruption."""
MAX_RECORD_BODY = 64 << 20
"""Bound on a record's body (64 MiB); a larger length on disk is corruption."""
TARGET_RECORD_BODY = 1 << 20
"""Writers close a record once its body passes 1 MiB (a lone larger entry still fits)."""
SEGMENT_MAX_BYTES = 8 << 20
"""Writers start a new segment once the current one holds 8 MiB ..."""
SEGMENT_MAX_ENTRIES = 100_000
"""... or 100,000 entries, whichever comes first."""
MAX_SEGMENT_FILE = SEGMENT_MAX_BYTES + MAX_RECORD_BODY + 64
"""The largest file a valid segment can be (its last record began below 8 MiB); a larger
file is diagnosed, never loaded."""

_u32 = struct.Struct(">I")


def segment_name(first_index: int) -> str:
    """The file name of the segment whose first entry has ``first_index``."""
    return f"{first_index:020d}{SEGMENT_SUFFIX}"


def encode_header(origin: UUID, first_index: int, flags: int = 0) -> bytes:
    """The 40-byte segment header."""
    head = HEADER.pack(MAGIC, FORMAT_VERSION, flags, origin.bytes, first_index, 0)[:-CRC_SIZE]
    return head + _u32.pack(zlib.crc32(head))


class RecordTooLargeError(CodecError):
    """An entry that no record of this format can hold; nothing was written."""


class HeaderError(Exception):
    """A segment header that cannot be used; ``kind`` says why."""

    def __init__(self, kind: ProblemKind, detail: str) -> None:
        self.kind = kind
        super().__init__(detail)


def decode_header(data: bytes) -> tuple[UUID, int]:
    """``(origin, first_index)`` of a segment header, or `HeaderError`.

    Kinds: ``incomplete`` (fewer than 40 bytes: still being written or copied),
    ``not-a-segment`` (bad magic or header checksum), ``future-version``.
    """
    if len(data) < HEADER_SIZE:
        raise HeaderError(ProblemKind.INCOMPLETE, f"header has {len(data)} of {HEADER_SIZE} bytes")
    magic, version, _flags, origin, first, crc = HEADER.unpack_from(data)
    if magic != MAGIC:
        # The bytes found are not quoted: the file may be anything (a symlinked secret).
        raise HeaderError(ProblemKind.NOT_A_SEGMENT,
                          "the file does not start with the segment magic")
    if version != FORMAT_VERSION:
        raise HeaderError(
            ProblemKind.FUTURE_VERSION if version > FORMAT_VERSION else ProblemKind.NOT_A_SEGMENT,
            f"segment format version {version}; this peerlog reads version "
            f"{FORMAT_VERSION}: upgrade peerlog",
        )
    if zlib.crc32(data[: HEADER_SIZE - CRC_SIZE]) != crc:
        raise HeaderError(ProblemKind.NOT_A_SEGMENT, "header checksum mismatch")
    return UUID(bytes=origin), first


def header_flags(data: bytes) -> int:
    """The flags of a header `decode_header` accepted."""
    return int(HEADER.unpack_from(data)[2])


def encode_record(first_index: int, entries: Sequence[DecodedEntry]) -> bytes:
    """One record holding ``entries`` at ``first_index, first_index+1, …``."""
    n = len(entries)
    stamps = [e.ts if type(e) is Entry else 0 for e in entries]
    data = [e.payload if type(e) is Entry else e.digest for e in entries]
    kinds = bytes(KIND_ENTRY if type(e) is Entry else KIND_EXPUNGED for e in entries)
    body = b"".join((struct.pack(f">{n}Q", *stamps),
                     struct.pack(f">{n}I", *map(len, data)), kinds, *data))
    head = RECORD_HEAD.pack(len(body), first_index, n)
    return head + body + _u32.pack(zlib.crc32(body, zlib.crc32(head)))


def split_records(entries: Sequence[DecodedEntry]) -> list[tuple[int, int]]:
    """Cut a batch into ``[lo, hi)`` slices that each make one record within the bounds.

    A record is closed *before* the entry that would take its body past
    `TARGET_RECORD_BODY`, so only a lone entry makes a larger record; an entry
    too large for any record (over `MAX_RECORD_BODY`) raises `RecordTooLargeError`
    before anything is written.
    """
    cuts: list[tuple[int, int]] = []
    lo, size = 0, 0
    for i, entry in enumerate(entries):
        cost = PER_ENTRY_FIXED + len(entry.payload if type(entry) is Entry else entry.digest)
        if cost > MAX_RECORD_BODY:
            raise RecordTooLargeError(
                f"an entry of {cost - PER_ENTRY_FIXED} bytes cannot be written: a record "
                f"body is limited to {MAX_RECORD_BODY} bytes")
        if i > lo and (i - lo >= MAX_RECORD_ENTRIES or size + cost > TARGET_RECORD_BODY):
            cuts.append((lo, i))
            lo, size = i, 0
        size += cost
    if lo < len(entries):
        cuts.append((lo, len(entries)))
    return cuts


@dataclass(frozen=True, slots=True)
class RecordRef:
    """Where one valid record sits in a segment."""

    first_index: int
    count: int
    offset: int
    end: int
    erased: tuple[int, ...] = ()
    """Indexes of the record's expunged slots."""


@dataclass(slots=True)
class Scan:
    """The longest valid prefix of a run of records.

    ``stop`` is None when the bytes ended exactly after a record,
    ``"incomplete"`` when they end inside one (still being written or copied),
    ``"corrupt"`` when a complete record fails a check (``detail`` says which).
    """

    records: list[RecordRef]
    next_index: int
    valid_end: int
    stop: ProblemKind | None = None
    detail: str = ""


def scan_records(data: bytes, offset: int, first_index: int) -> Scan:
    """Validate records in ``data`` from ``offset``, expecting ``first_index`` first."""
    records: list[RecordRef] = []
    expected = first_index
    end_of_data = len(data)
    unpack_head = RECORD_HEAD.unpack_from
    while offset < end_of_data:
        if end_of_data - offset < RECORD_HEAD_SIZE:
            return Scan(records, expected, offset, ProblemKind.INCOMPLETE,
                        f"record header cut at byte {end_of_data}")
        body_len, first, count = unpack_head(data, offset)
        problem = _check_head(body_len, first, count, expected)
        if problem:
            return Scan(records, expected, offset, ProblemKind.CORRUPT,
                        f"at byte {offset}: {problem}")
        body = offset + RECORD_HEAD_SIZE
        end = body + body_len + CRC_SIZE
        if end > end_of_data:
            return Scan(records, expected, offset, ProblemKind.INCOMPLETE,
                        f"record at byte {offset} needs {end - offset} bytes, "
                        f"{end_of_data - offset} present")
        crc = _u32.unpack_from(data, end - CRC_SIZE)[0]
        if zlib.crc32(memoryview(data)[offset:end - CRC_SIZE]) != crc:
            return Scan(records, expected, offset, ProblemKind.CORRUPT,
                        f"at byte {offset}: checksum mismatch in record of entries "
                        f"{first}..{first + count - 1}")
        problem = _check_body(data, body, body_len, count)
        if problem:
            return Scan(records, expected, offset, ProblemKind.CORRUPT,
                        f"at byte {offset}: {problem}")
        kinds = data[body + 12 * count:body + 13 * count]
        erased = tuple(first + k for k, kind in enumerate(kinds) if kind == KIND_EXPUNGED) \
            if KIND_EXPUNGED in kinds else ()
        records.append(RecordRef(first, count, offset, end, erased))
        expected = first + count
        offset = end
    return Scan(records, expected, offset)


def _check_head(body_len: int, first: int, count: int, expected: int) -> str:
    if not 1 <= count <= MAX_RECORD_ENTRIES:
        return f"entry count {count} outside 1..{MAX_RECORD_ENTRIES}"
    if not PER_ENTRY_FIXED * count <= body_len <= MAX_RECORD_BODY:
        return f"body length {body_len} impossible for {count} entries"
    if first != expected:
        return f"record starts at index {first}, expected {expected}"
    return ""


def _check_body(data: bytes, body: int, body_len: int, count: int) -> str:
    stamps = struct.unpack_from(f">{count}Q", data, body)
    lengths = struct.unpack_from(f">{count}I", data, body + 8 * count)
    kinds_at = body + 12 * count
    kinds = data[kinds_at:kinds_at + count]
    if sum(lengths) != body_len - PER_ENTRY_FIXED * count:
        return "entry lengths do not add up to the record body"
    if kinds.translate(None, _KINDS):
        return "unknown entry kind"
    if max(stamps) >= TS_LIMIT:
        return "timestamp of 2**63 or more"
    if KIND_EXPUNGED in kinds and any(
            k == KIND_EXPUNGED and n != DIGEST_SIZE for k, n in zip(kinds, lengths, strict=True)):
        return f"expunged marker whose digest is not {DIGEST_SIZE} bytes"
    return ""


_new_tuple = tuple.__new__


def decode_record(data: bytes, ref_offset: int, first_index: int, count: int,
                  lo: int, hi: int) -> list[tuple[int, DecodedEntry]]:
    """Entries ``lo..hi-1`` (relative) of a record `scan_records` already validated.

    Built with C-level ``struct``/``map``/``zip`` only: no Python code runs per
    entry unless the record holds expunged markers.
    """
    body = ref_offset + RECORD_HEAD_SIZE
    stamps = struct.unpack_from(f">{hi - lo}Q", data, body + 8 * lo)
    lengths = struct.unpack_from(f">{count}I", data, body + 8 * count)
    kinds = data[body + 12 * count + lo:body + 12 * count + hi]
    start = body + PER_ENTRY_FIXED * count + sum(lengths[:lo])
    offsets = list(accumulate(lengths[lo:hi], initial=start))
    pieces = map(data.__getitem__, map(slice, offsets, offsets[1:]))
    indexes = range(first_index + lo, first_index + hi)
    pairs = zip(stamps, pieces, strict=False)  # equal lengths by construction
    if KIND_EXPUNGED not in kinds:
        return list(zip(indexes, map(_new_tuple, repeat(Entry), pairs), strict=False))
    return [(i, Entry(ts, piece) if kind == KIND_ENTRY else Expunged(piece))
            for i, kind, (ts, piece) in zip(indexes, kinds, pairs, strict=False)]
