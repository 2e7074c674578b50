"""Reading one origin's folder: its chain of segments and the longest valid prefix.

An origin's *extent* is the number of entries a reader may serve: the chain
of segments starting at index 0, each starting where the previous one ended,
up to the first thing that is not valid.  Everything from there on is
withheld and described by a `Problem`; nothing past the extent is ever
returned, so a torn, corrupt or forked log never yields a wrong entry.

Segment scans are cached by ``(inode, size, mtime)``; a segment that only
grew is scanned from where the last scan stopped.
"""

from __future__ import annotations

import bisect
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from uuid import UUID

from peerlog.filelog.durable import UnsafeFileError, open_segment
from peerlog.filelog.format import (
    FLAG_LOG_STARTS_HERE,
    HEADER_SIZE,
    HeaderError,
    RecordRef,
    Scan,
    decode_header,
    decode_record,
    header_flags,
    scan_records,
)
from peerlog.filelog.names import (
    CURSORS_FILE,
    conflict_copy_of,
    segment_first_index,
    why_ignored,
)
from peerlog.filelog.problems import ProblemKind
from peerlog.sync.batch import byte_prefix, gc_paused
from peerlog.sync.entry import DecodedEntry
from peerlog.sync.errors import CompactedError, DivergenceError
from peerlog.sync.rules import reconcile

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Problem:
    """Something wrong in a shared folder, and what it withholds.

    ``kind`` is one of: ``incomplete`` (a segment still being written or
    copied), ``corrupt``, ``not-a-segment``, ``future-version``,
    ``foreign-origin``, ``misnamed``, ``unreadable``, ``gap``, ``overlap``,
    ``divergence``, ``symlink`` (never followed), ``not-a-regular-file`` (a
    FIFO or device named like a segment), ``oversized`` (larger than any
    segment can be: not loaded).  ``withheld_from`` is the first index not served because
    of it (None when nothing is withheld).
    """

    origin: UUID | None
    path: str
    kind: ProblemKind
    detail: str
    withheld_from: int | None = None

    def __str__(self) -> str:
        held = f" (entries from {self.withheld_from} withheld)" \
            if self.withheld_from is not None else ""
        return f"{self.path}: {self.kind}: {self.detail}{held}"


@dataclass(frozen=True, slots=True)
class Ignored:
    """A file or folder that is not read, and why."""

    path: str
    reason: str


@dataclass(slots=True)
class SegmentScan:
    """One segment file as last scanned."""

    path: Path
    key: tuple[int, int, int]
    first_index: int
    scan: Scan | None = None
    header_error: HeaderError | None = None
    origin: UUID | None = None
    flags: int = 0

    @property
    def starts_log(self) -> bool:
        """Whether the origin's log was compacted up to this segment (§4)."""
        return bool(self.flags & FLAG_LOG_STARTS_HERE)

    @property
    def next_index(self) -> int:
        return self.scan.next_index if self.scan is not None else self.first_index


@dataclass(slots=True)
class OriginChain:
    """The valid chain of one origin's folder."""

    origin: UUID
    extent: int = 0
    first: int = 0
    """Where the log starts: above 0 once the origin compacted it."""
    segments: list[SegmentScan] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    ignored: list[Ignored] = field(default_factory=list)


def _span(records: list[RecordRef], lo: int, hi: int) -> tuple[int, int]:
    """Positions of the first and last records holding entries ``lo..hi-1``; (-1, -1) if none."""
    starts = [r.first_index for r in records]
    first = bisect.bisect_right(starts, lo) - 1
    last = bisect.bisect_right(starts, hi - 1) - 1
    return (first, last) if 0 <= first <= last else (-1, -1)


def _stat_key(st: os.stat_result) -> tuple[int, int, int]:
    return (st.st_ino, st.st_size, st.st_mtime_ns)


class ChainReader:
    """Scans and reads the origin folders under a shared root; thread-safe."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._cache: dict[Path, SegmentScan] = {}
        self._lock = threading.RLock()
        self._reported: set[tuple[str, str, str]] = set()
        self.authentic: Callable[[UUID, int, list[DecodedEntry]], bool] | None = None
        """For an encrypted group: whether a run of an origin's slots (from the index
        given) carries that device's signatures.  A conflict copy that does not is
        ignored as forged instead of stopping the origin as diverged."""

    def _report(self, problem: Problem) -> None:
        key = (problem.path, problem.kind, problem.detail)
        if key not in self._reported:
            self._reported.add(key)
            # A tail still being written or copied is the normal state of a
            # live folder; everything else needs a person's attention.
            level = logging.INFO if problem.kind == ProblemKind.INCOMPLETE else logging.WARNING
            log.log(level, "shared folder: %s", problem)

    # -- scanning -------------------------------------------------------------

    def scan_segment(self, path: Path, first_index: int) -> SegmentScan:
        """Scan (or reuse the cached scan of) one segment file; raises OSError."""
        with self._lock:
            fd = open_segment(path)
            try:
                return self._scan_open(path, first_index, fd)
            finally:
                os.close(fd)

    def _scan_open(self, path: Path, first_index: int, fd: int) -> SegmentScan:
        key = _stat_key(os.fstat(fd))
        cached = self._cache.get(path)
        if cached is not None and cached.key == key:
            return cached
        if (cached is not None and cached.scan is not None and cached.key[0] == key[0]
                and key[1] > cached.key[1] and cached.scan.stop != ProblemKind.CORRUPT):
            # The file only grew (an append, or a copy still arriving): scan the new part.
            data = os.pread(fd, key[1] - cached.scan.valid_end, cached.scan.valid_end)
            more = scan_records(data, 0, cached.scan.next_index)
            base = cached.scan.valid_end
            records = cached.scan.records + [
                RecordRef(r.first_index, r.count, r.offset + base, r.end + base, r.erased)
                for r in more.records]
            scan = Scan(records, more.next_index, more.valid_end + base, more.stop, more.detail)
            fresh = SegmentScan(path, key, first_index, scan, origin=cached.origin,
                                flags=cached.flags)
        else:
            data = os.pread(fd, key[1], 0)
            fresh = SegmentScan(path, key, first_index)
            try:
                fresh.origin, header_first = decode_header(data)
            except HeaderError as exc:
                fresh.header_error = exc
            else:
                if header_first != first_index:
                    fresh.header_error = HeaderError(
                        ProblemKind.MISNAMED, f"header says first index {header_first}, "
                        f"the name says {first_index}")
                else:
                    fresh.scan = scan_records(data, HEADER_SIZE, first_index)
                    fresh.flags = header_flags(data)
        self._cache[path] = fresh
        return fresh

    def chain(self, origin: UUID) -> OriginChain:
        """The valid chain of ``origin``'s folder (empty when the folder is missing)."""
        folder = self._root / str(origin)
        result = OriginChain(origin)
        if os.path.islink(folder):
            self._add(result, Problem(origin, str(folder), ProblemKind.SYMLINK,
                                      "the device folder is a symbolic link: never followed "
                                      "inside the shared folder", 0))
            return result
        try:
            names = os.listdir(folder)
        except FileNotFoundError:
            return result
        except OSError as exc:
            self._add(result, Problem(origin, str(folder), ProblemKind.UNREADABLE, str(exc), 0))
            return result
        segments: list[tuple[int, str]] = []
        copies: list[tuple[int, str]] = []
        for name in names:
            first = segment_first_index(name)
            if first is not None:
                segments.append((first, name))
                continue
            if name == CURSORS_FILE:
                continue
            copy_of = conflict_copy_of(name)
            if copy_of is not None:
                copies.append((copy_of, name))
            result.ignored.append(Ignored(str(folder / name), why_ignored(name)))
        segments.sort()
        with self._lock:
            self._walk(result, folder, segments)
            for copy_of, name in copies:
                self._check_copy(result, folder, copy_of, name)
        return result

    def _add(self, chain: OriginChain, problem: Problem) -> None:
        chain.problems.append(problem)
        self._report(problem)

    def _start(self, chain: OriginChain, folder: Path, segments: list[tuple[int, str]]
               ) -> list[tuple[int, str]]:
        """The segments the chain walks: all of them from segment 0; without one, from
        the last segment flagged as where the log starts (the segments before it are
        compaction's leftovers, being removed)."""
        if not segments or segments[0][0] == 0:
            return segments
        for position in range(len(segments) - 1, -1, -1):
            first, name = segments[position]
            try:
                seg = self.scan_segment(folder / name, first)
            except OSError:
                continue
            if seg.header_error is None and seg.origin == chain.origin and seg.starts_log:
                chain.first = first
                return segments[position:]
        return segments

    def _walk(self, chain: OriginChain, folder: Path, segments: list[tuple[int, str]]) -> None:
        segments = self._start(chain, folder, segments)
        expected = chain.first
        origin = chain.origin
        for position, (first, name) in enumerate(segments):
            path = folder / name
            if first != expected:
                if first > expected:
                    kind = ProblemKind.GAP
                    detail = (f"segment starts at index {first} but the log so far ends at "
                              f"{expected} (an earlier segment missing or not synced yet)")
                else:
                    kind = ProblemKind.OVERLAP
                    detail = (f"segment starts at index {first}, inside entries already read "
                              f"up to {expected}")
                self._add(chain, Problem(origin, str(path), kind, detail, expected))
                break
            try:
                seg = self.scan_segment(path, first)
            except UnsafeFileError as exc:
                self._add(chain, Problem(origin, str(path), exc.kind, exc.detail, expected))
                break
            except OSError as exc:
                self._add(chain, Problem(origin, str(path), ProblemKind.UNREADABLE,
                                         f"{exc.strerror or exc} (a cloud placeholder not "
                                         "downloaded yet?)", expected))
                break
            last = position == len(segments) - 1
            if seg.header_error is not None:
                kind = seg.header_error.kind
                if kind == ProblemKind.INCOMPLETE and not last:
                    kind = ProblemKind.CORRUPT
                self._add(chain, Problem(origin, str(path), kind, str(seg.header_error),
                                         expected))
                break
            if seg.origin != origin:
                self._add(chain, Problem(origin, str(path), ProblemKind.FOREIGN_ORIGIN,
                                         f"segment belongs to origin {seg.origin}", expected))
                break
            assert seg.scan is not None
            chain.segments.append(seg)
            expected = seg.scan.next_index
            if seg.scan.stop is not None:
                kind = seg.scan.stop
                detail = seg.scan.detail
                if kind == ProblemKind.INCOMPLETE and not last:
                    detail += "; later segments exist, so this tail will not complete"
                    kind = ProblemKind.CORRUPT
                self._add(chain, Problem(origin, str(path), kind, detail, expected))
                break
        chain.extent = expected

    def _check_copy(self, chain: OriginChain, folder: Path, first: int, name: str) -> None:
        """A sync tool's copy of a segment: two devices wrote it if contents differ."""
        path = folder / name
        try:
            copy = self.scan_segment(path, first)
        except OSError:
            return
        if copy.scan is None or copy.origin != chain.origin:
            return
        end = min(copy.scan.next_index, chain.extent)
        first = max(first, chain.first)  # what was compacted away cannot be compared
        if end <= first:
            return
        theirs = self._decode(copy, first, end)
        if self.authentic is not None and not self.authentic(
                chain.origin, copy.first_index, [e for _, e in self._decode(
                    copy, copy.first_index, copy.scan.next_index)]):
            self._add(chain, Problem(chain.origin, str(path), ProblemKind.FORGED,
                                     "a copy of a segment whose entries its device did not "
                                     "sign: ignored"))
            return
        ours = self.read(chain, first, end - first)
        for (index, held), (_, other) in zip(ours, theirs, strict=False):
            try:
                reconcile(chain.origin, index, held, other)
            except DivergenceError as exc:
                chain.extent = min(chain.extent, index)
                self._add(chain, Problem(
                    chain.origin, str(path), ProblemKind.DIVERGENCE,
                    f"{exc}; two devices are writing origin {chain.origin} "
                    "(a cloned device identity or a restored backup)", index))
                return

    # -- reading --------------------------------------------------------------

    def read(self, chain: OriginChain, from_index: int,
             limit: int) -> list[tuple[int, DecodedEntry]]:
        """Up to ``limit`` entries from ``from_index``, never past ``chain.extent``;
        `CompactedError` below where the chain starts."""
        if from_index < chain.first:
            raise CompactedError(chain.origin, from_index, chain.first)
        out: list[tuple[int, DecodedEntry]] = []
        hi = min(chain.extent, from_index + limit)
        if from_index >= hi:
            return out
        with self._lock:
            self._read_into(out, chain, from_index, hi)
        return out

    def _read_into(self, out: list[tuple[int, DecodedEntry]], chain: OriginChain,
                   from_index: int, hi: int) -> None:
        firsts = [s.first_index for s in chain.segments]
        position = bisect.bisect_right(firsts, from_index) - 1
        index = from_index
        while index < hi and 0 <= position < len(chain.segments):
            seg = chain.segments[position]
            got = self._decode(seg, index, min(hi, seg.next_index))
            if not got:
                break
            out.extend(got)
            fit = byte_prefix(map(itemgetter(1), out))
            if fit < len(out):  # the byte bound of a batch (sync.batch.MAX_BATCH_BYTES)
                del out[fit:]
                break
            index = got[-1][0] + 1
            position += 1

    def _decode(self, seg: SegmentScan, lo: int, hi: int) -> list[tuple[int, DecodedEntry]]:
        """Entries ``lo..hi-1`` of a scanned segment, read through one file handle."""
        assert seg.scan is not None
        records = seg.scan.records
        first_rec, last_rec = _span(records, lo, hi)
        if first_rec < 0:
            return []
        with os.fdopen(open_segment(seg.path), "rb") as f:
            unchanged = _stat_key(os.fstat(f.fileno())) == seg.key
            if not unchanged:
                # Rewritten (an expunge) or grown since the scan: rescan this
                # very handle so offsets and bytes agree.
                seg = self._scan_open(seg.path, seg.first_index, f.fileno())
                if seg.scan is None:
                    return []
                hi = min(hi, seg.scan.next_index)
                records = seg.scan.records
                first_rec, last_rec = _span(records, lo, hi)
                if first_rec < 0:
                    return []
            base = records[first_rec].offset
            data = os.pread(f.fileno(), records[last_rec].end - base, base)
        # The same inode, size and mtime as when every checksum was verified:
        # the bytes are the ones scanned, and are not checked twice.
        refs = [RecordRef(r.first_index, r.count, r.offset - base, r.end - base)
                for r in records[first_rec:last_rec + 1]]
        if len(data) != refs[-1].end:
            self._cache.pop(seg.path, None)  # shrank under us: rescan next time
            return []
        out: list[tuple[int, DecodedEntry]] = []
        with gc_paused():
            for ref in refs:
                rlo = max(lo - ref.first_index, 0)
                rhi = min(hi - ref.first_index, ref.count)
                if rlo < rhi:
                    out.extend(decode_record(data, ref.offset, ref.first_index, ref.count,
                                             rlo, rhi))
        return out
