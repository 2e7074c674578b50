"""The writer of one origin's folder.

Invariants: only this device writes ``root/<origin>/``; an append is durable
(file synced; directory synced when a segment is created) before it returns;
a crash at any moment leaves a log whose valid prefix holds every
acknowledged entry, and at most a torn record at the tail, which the next
write truncates.

Several processes of one device may write its origin (an app and a running
``peerlog sync --watch``): each write takes an exclusive ``flock`` on the
origin folder for its own duration only, and first catches up with what
the others wrote.  Another *device* writing the same origin (a cloned
identity) takes no such lock; it is recognised because the entries it left
at the indexes being written differ from ours, and is refused with
`DivergenceError`, never forked.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from uuid import UUID

from peerlog.filelog.chain import ChainReader, OriginChain, SegmentScan
from peerlog.filelog.durable import (
    open_segment,
    replace_atomically,
    sync_dir,
    sync_fd,
    write_all,
)
from peerlog.filelog.format import (
    FLAG_LOG_STARTS_HERE,
    HEADER_SIZE,
    SEGMENT_MAX_BYTES,
    SEGMENT_MAX_ENTRIES,
    decode_record,
    encode_header,
    encode_record,
    scan_records,
    segment_name,
    split_records,
)
from peerlog.filelog.names import SET_ASIDE_SUFFIX, segment_first_index
from peerlog.filelog.problems import ProblemKind
from peerlog.sync.entry import DecodedEntry, Entry, Expunged, check_entry
from peerlog.sync.errors import (
    BackendError,
    CorruptLogError,
    CursorMismatchError,
    IndexOutOfRangeError,
)
from peerlog.sync.rules import refuse_rewrite

log = logging.getLogger(__name__)


class OwnLogWriter:
    """Appends to and expunges from one origin's own folder.  Thread-safe: a thread lock
    orders this process's writers (``flock`` does not: it belongs to the open file, which
    the threads share), and the folder's ``flock`` orders the processes."""

    def __init__(self, root: Path, origin: UUID, reader: ChainReader) -> None:
        self._folder = root / str(origin)
        self._origin = origin
        self._reader = reader
        self._lock_fd: int | None = None  # the origin folder, for flock
        self._fd: int | None = None  # the tail segment, opened for appending
        self._tail: Path | None = None
        self._tail_first = 0
        self._tail_size = 0
        self._next = 0
        self._loaded = False  # _next and the tail reflect the folder as last locked
        self._threads = threading.Lock()

    @property
    def next_index(self) -> int:
        with self._write_lock():
            return self._next

    # -- locking, catching up and recovery -------------------------------------

    def _open_folder(self) -> int:
        if self._lock_fd is not None:
            return self._lock_fd
        if self._folder.is_symlink():
            raise BackendError(f"refusing to write {self._folder}: it is a symbolic link, and "
                               "nothing inside the shared folder is ever followed out of it")
        try:
            self._folder.mkdir(exist_ok=True, mode=0o700)
            self._lock_fd = os.open(self._folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError as exc:
            raise BackendError(f"cannot open {self._folder} for writing: {exc}") from exc
        return self._lock_fd

    @contextmanager
    def _write_lock(self) -> Iterator[None]:
        """Hold the origin's lock (waiting for another local writer) and catch up first."""
        with self._threads:
            fd = self._open_folder()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError as exc:
                raise BackendError(f"cannot lock {self._folder}: {exc}") from exc
            try:
                if not self._loaded or self._changed_behind():
                    self._recover(self._reader.chain(self._origin))
                    self._loaded = True
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def _changed_behind(self) -> bool:
        """Whether someone else wrote this folder since our last write."""
        try:
            if self._tail is None or os.stat(self._tail).st_size != self._tail_size:
                return True
            names = os.listdir(self._folder)
        except OSError:
            return True
        return any(first > self._tail_first
                   for first in map(segment_first_index, names) if first is not None)

    def _recover(self, chain: OriginChain) -> None:
        """Continue after whatever the last process left; refuse what is not ours to fix."""
        for name in os.listdir(self._folder):
            if name.startswith(".") and name.endswith(".plog.tmp"):
                # A segment header or an expunge rewrite that a crash interrupted
                # before its rename: the old file is intact, the copy is junk.
                os.unlink(self._folder / name)
        for problem in chain.problems:
            if problem.kind == ProblemKind.FORGED:
                continue  # a copy nobody signed: ignored by readers, no harm to writing
            last_segment = not chain.segments or Path(problem.path) == chain.segments[-1].path
            if problem.kind == ProblemKind.INCOMPLETE and last_segment:
                continue  # a torn tail from a crash: truncated below
            if problem.kind == ProblemKind.INCOMPLETE and Path(problem.path).name.endswith(".plog"):
                # A segment created but its header never completed: no entries in it.
                log.warning("removing %s: a segment whose header a crash cut short",
                            problem.path)
                os.unlink(problem.path)
                sync_dir(self._folder)
                continue
            raise CorruptLogError(
                f"refusing to write origin {self._origin}: its own log is damaged "
                f"({problem}); run `peerlog doctor` and move the damaged file away")
        self._next = chain.extent
        if not chain.segments:
            self._close_files()
            return
        tail = chain.segments[-1]
        assert tail.scan is not None
        valid_end = tail.scan.valid_end
        if tail.key[1] != valid_end:
            log.warning("truncating %s from %d to %d bytes: the torn tail of a crashed write",
                        tail.path, tail.key[1], valid_end)
            os.truncate(tail.path, valid_end)
        self._open_tail(tail.path, tail.first_index, valid_end)

    def _open_tail(self, path: Path, first: int, size: int) -> None:
        if self._fd is not None:
            os.close(self._fd)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW)
        sync_fd(self._fd)
        self._tail, self._tail_first, self._tail_size = path, first, size

    # -- appending ------------------------------------------------------------

    def append_many(self, start: int, entries: Sequence[DecodedEntry]) -> None:
        for entry in entries:
            check_entry(entry)
        cuts = split_records(entries)  # refuses an entry too large before anything is written
        with self._write_lock():
            if start < self._next:
                self._refuse_rewrite(start, entries)
            if start != self._next:
                raise CursorMismatchError(self._next, start, peer=self._origin)
            if entries:
                self._write(start, entries, cuts)

    def _refuse_rewrite(self, start: int, entries: Sequence[DecodedEntry]) -> None:
        """Indexes already written: by another process of this device or by another
        device (`peerlog.sync.rules.refuse_rewrite` says which)."""
        chain = self._reader.chain(self._origin)
        held = self._reader.read(chain, start, min(len(entries), self._next - start))
        refuse_rewrite(self._origin, start, self._next, held, entries, str(self._folder))

    def _write(self, start: int, entries: Sequence[DecodedEntry],
               cuts: list[tuple[int, int]]) -> None:
        try:
            created = False
            index = start
            for lo, hi in cuts:
                if (self._fd is None or self._tail_size >= SEGMENT_MAX_BYTES
                        or index - self._tail_first >= SEGMENT_MAX_ENTRIES):
                    self._new_segment(index)
                    created = True
                record = encode_record(index, entries[lo:hi])
                assert self._fd is not None
                write_all(self._fd, record)
                self._tail_size += len(record)
                index += hi - lo
            assert self._fd is not None
            sync_fd(self._fd)
            if created:
                sync_dir(self._folder)
        except OSError as exc:
            # What reached the disk is a valid prefix plus perhaps a torn record;
            # the next write catches up from the disk and truncates it.
            self._close_files()
            self._loaded = False
            raise BackendError(f"cannot append to {self._folder}: {exc}") from exc
        self._next = index

    def _new_segment(self, first: int) -> None:
        path = self._folder / segment_name(first)
        # Header through a temporary file and a rename: a segment never exists
        # with half a header.
        replace_atomically(path, encode_header(self._origin, first))
        self._open_tail(path, first, HEADER_SIZE)

    # -- expunging ------------------------------------------------------------

    def expunge(self, index: int) -> None:
        with self._write_lock():
            self._expunge(index)

    def _expunge(self, index: int) -> None:
        if not 0 <= index < self._next:
            raise IndexOutOfRangeError(
                f"cannot expunge index {index} of origin {self._origin}: the log holds "
                f"indexes 0..{self._next - 1}" if self._next else
                f"cannot expunge index {index} of origin {self._origin}: the log is empty")
        chain = self._reader.chain(self._origin)
        if index < chain.first:
            return  # compacted away: the folder no longer holds it at all
        seg = next(s for s in reversed(chain.segments) if s.first_index <= index)
        with os.fdopen(open_segment(seg.path), "rb") as f:
            data = f.read()
        scan = scan_records(data, HEADER_SIZE, seg.first_index)
        ref = next(r for r in scan.records if r.first_index <= index < r.first_index + r.count)
        slots = [e for _, e in decode_record(data, ref.offset, ref.first_index, ref.count,
                                             0, ref.count)]
        held = slots[index - ref.first_index]
        if type(held) is Expunged:
            return
        assert type(held) is Entry
        slots[index - ref.first_index] = Expunged(held.digest)
        rewritten = (data[:ref.offset] + encode_record(ref.first_index, slots)
                     + data[ref.end:scan.valid_end])
        try:
            replace_atomically(seg.path, rewritten)
            if seg.path == self._tail:
                self._open_tail(seg.path, seg.first_index, len(rewritten))
        except OSError as exc:
            raise BackendError(f"cannot expunge index {index} in {seg.path}: {exc}") from exc

    # -- setting aside --------------------------------------------------------

    def set_aside_from(self, index: int) -> list[Path]:
        """Move this origin's entries from ``index`` on out of its log, into files named
        ``<segment>.set-aside`` (ignored by readers, kept as evidence); returns them.

        For entries someone else wrote into this device's folder in its name (an
        encrypted group's device finds they do not carry its signature): the
        log then ends at ``index`` and this device writes on from there.
        ``index`` must fall on a record boundary; `CorruptLogError` if not.
        """
        with self._write_lock():
            chain = self._reader.chain(self._origin)
            moved: list[Path] = []
            for seg in reversed(chain.segments):
                if seg.next_index <= index:
                    break
                aside = seg.path.with_name(seg.path.name + SET_ASIDE_SUFFIX)
                if seg.first_index >= index and not (seg.first_index == index == chain.first
                                                     and seg.starts_log):
                    os.replace(seg.path, aside)
                    moved.append(aside)
                    continue
                assert seg.scan is not None
                cut = next((r.offset for r in seg.scan.records if r.first_index == index),
                           None)
                if cut is None:
                    raise CorruptLogError(f"cannot set aside entries of {self._origin} from "
                                          f"{index}: no record starts there in {seg.path}")
                with os.fdopen(open_segment(seg.path), "rb") as f:
                    data = f.read()
                replace_atomically(aside, data[:HEADER_SIZE] + data[cut:])
                os.truncate(seg.path, cut)
                moved.append(aside)
            sync_dir(self._folder)
            self._close_files()
            self._loaded = False
            return moved

    # -- compacting -----------------------------------------------------------

    def compact_below(self, upto: int) -> list[Path]:
        """Remove the segments holding only entries below ``upto``; returns them.

        The first segment kept is flagged as where the log starts (rewritten
        through a temporary file), before anything is removed, so a reader sees
        either the whole old chain or the compacted one; when every entry is
        below ``upto``, the log continues in a new, empty flagged segment.  The
        caller guarantees that a snapshot in the folder covers ``upto`` and
        every device that still syncs holds it.
        """
        with self._write_lock():
            chain = self._reader.chain(self._origin)
            upto = min(upto, self._next)
            # An empty segment at the end is where the log goes on: never doomed.
            doomed = [seg for seg in chain.segments
                      if seg.next_index <= upto and seg.first_index < self._next]
            leftovers = [self._folder / name for name in os.listdir(self._folder)
                         if (first := segment_first_index(name)) is not None
                         and first < chain.first]
            if not doomed:
                return self._remove(leftovers)
            try:
                kept = chain.segments[len(doomed):]
                if kept:
                    self._flag_start(kept[0])
                else:
                    path = self._folder / segment_name(self._next)
                    replace_atomically(path, encode_header(self._origin, self._next,
                                                           FLAG_LOG_STARTS_HERE))
                    self._open_tail(path, self._next, HEADER_SIZE)
            except OSError as exc:
                raise BackendError(f"cannot compact {self._folder}: {exc}") from exc
            return self._remove(leftovers + [seg.path for seg in doomed])

    def start_at(self, index: int) -> None:
        """Begin an empty log at ``index`` (a flagged, empty segment): a device whose own
        log was compacted, publishing in a new folder.  `CursorMismatchError` when the
        log already holds entries."""
        with self._write_lock():
            if self._next == index and (index == 0 or self._reader.chain(self._origin).first
                                        == index):
                return
            if self._next:
                raise CursorMismatchError(0, self._next, peer=self._origin)
            path = self._folder / segment_name(index)
            try:
                replace_atomically(path, encode_header(self._origin, index,
                                                       FLAG_LOG_STARTS_HERE))
            except OSError as exc:
                raise BackendError(f"cannot start the log in {self._folder}: {exc}") from exc
            self._open_tail(path, index, HEADER_SIZE)
            self._next = index

    def _flag_start(self, seg: SegmentScan) -> None:
        if seg.starts_log or seg.first_index == 0:
            return
        with os.fdopen(open_segment(seg.path), "rb") as f:
            data = f.read()
        replace_atomically(seg.path, encode_header(self._origin, seg.first_index,
                                                   FLAG_LOG_STARTS_HERE) + data[HEADER_SIZE:])
        if seg.path == self._tail:
            self._open_tail(seg.path, seg.first_index, len(data))

    def _remove(self, paths: list[Path]) -> list[Path]:
        removed = []
        for path in sorted(paths):  # oldest first: what stays is always a valid chain
            try:
                os.unlink(path)
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise BackendError(f"cannot remove {path} while compacting: {exc}") from exc
            removed.append(path)
        if removed:
            sync_dir(self._folder)
        return removed

    # -- closing --------------------------------------------------------------

    def _close_files(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._tail = None

    def close(self) -> None:
        # Under the thread lock: a write still running in a worker thread (its task
        # cancelled) must not see its descriptors closed, and their numbers reused.
        with self._threads:
            self._close_files()
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None
            self._loaded = False
