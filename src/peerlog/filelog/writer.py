"""The single writer of one origin's folder.

Invariants: only this device writes ``root/<origin>/``; an append is durable
(file synced; directory synced when a segment is created) before it returns;
a crash at any moment leaves a log whose valid prefix holds every
acknowledged entry, and at most a torn record at the tail, which the next
open truncates.  Before each write the writer checks that nobody else
extended its log: a cloned device identity is refused, never forked.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from uuid import UUID

from peerlog.filelog.chain import ChainReader, OriginChain
from peerlog.filelog.durable import (
    open_segment,
    replace_atomically,
    sync_dir,
    sync_fd,
    write_all,
)
from peerlog.filelog.format import (
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
from peerlog.sync.entry import DecodedEntry, Entry, Expunged, check_entry
from peerlog.sync.errors import (
    BackendError,
    CodecError,
    CursorMismatchError,
    DivergenceError,
    IndexOutOfRangeError,
)

log = logging.getLogger(__name__)


class OwnLogWriter:
    """Appends to and expunges from one origin's own folder.  Not thread-safe: callers lock."""

    def __init__(self, root: Path, origin: UUID, reader: ChainReader) -> None:
        self._folder = root / str(origin)
        self._origin = origin
        self._reader = reader
        self._lock_fd: int | None = None
        self._fd: int | None = None  # the tail segment, opened for appending
        self._tail: Path | None = None
        self._tail_first = 0
        self._tail_size = 0
        self._next = 0
        self._opened = False

    @property
    def next_index(self) -> int:
        self._ensure_open()
        return self._next

    # -- opening and recovery -------------------------------------------------

    def _ensure_open(self) -> None:
        if self._opened:
            return
        if self._folder.is_symlink():
            raise BackendError(f"refusing to write {self._folder}: it is a symbolic link, and "
                               "nothing inside the shared folder is ever followed out of it")
        try:
            self._folder.mkdir(exist_ok=True, mode=0o700)
            self._lock_folder()
        except OSError as exc:
            raise BackendError(f"cannot open {self._folder} for writing: {exc}") from exc
        self._recover(self._reader.chain(self._origin))
        self._opened = True

    def _lock_folder(self) -> None:
        fd = os.open(self._folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise BackendError(
                    f"another process on this machine is writing {self._folder}; "
                    "one origin has one writer") from exc
            raise
        self._lock_fd = fd

    def _recover(self, chain: OriginChain) -> None:
        """Continue after whatever the last process left; refuse what is not ours to fix."""
        for name in os.listdir(self._folder):
            if name.startswith(".") and name.endswith(".plog.tmp"):
                # A segment header or an expunge rewrite that a crash interrupted
                # before its rename: the old file is intact, the copy is junk.
                os.unlink(self._folder / name)
        for problem in chain.problems:
            last_segment = not chain.segments or Path(problem.path) == chain.segments[-1].path
            if problem.kind == "incomplete" and last_segment:
                continue  # a torn tail from a crash: truncated below
            if problem.kind == "incomplete" and Path(problem.path).name.endswith(".plog"):
                # A segment created but its header never completed: no entries in it.
                log.warning("removing %s: a segment whose header a crash cut short",
                            problem.path)
                os.unlink(problem.path)
                sync_dir(self._folder)
                continue
            raise CodecError(
                f"refusing to write origin {self._origin}: its own log is damaged "
                f"({problem}); run `peerlog doctor` and move the damaged file away")
        self._next = chain.extent
        if not chain.segments:
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

    def _check_untouched(self) -> None:
        """Nobody else may have extended this log since we last wrote it."""
        if self._tail is None:
            others = [n for n in os.listdir(self._folder) if n.endswith(".plog")
                      and not n.startswith(".")]
            if others:
                raise DivergenceError(self._origin, self._next,
                                      f"segments appeared in {self._folder} that this "
                                      "writer did not write (a cloned device identity?)")
            return
        try:
            size = os.stat(self._tail).st_size
        except FileNotFoundError:
            size = -1
        if size != self._tail_size:
            raise DivergenceError(
                self._origin, self._next,
                f"{self._tail} changed from {self._tail_size} to {size} bytes behind this "
                "writer: another device is writing the same origin (a cloned identity?)")

    # -- appending ------------------------------------------------------------

    def append_many(self, start: int, entries: Sequence[DecodedEntry]) -> None:
        for entry in entries:
            check_entry(entry)
        self._ensure_open()
        if start != self._next:
            raise CursorMismatchError(self._next, start, peer=self._origin)
        if not entries:
            return
        cuts = split_records(entries)  # refuses an entry too large before anything is written
        self._check_untouched()
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
            # reopening finds the prefix.  Make the next call do that.
            self._close_files()
            self._opened = False
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
        self._ensure_open()
        if not 0 <= index < self._next:
            raise IndexOutOfRangeError(
                f"cannot expunge index {index} of origin {self._origin}: the log holds "
                f"indexes 0..{self._next - 1}" if self._next else
                f"cannot expunge index {index} of origin {self._origin}: the log is empty")
        self._check_untouched()
        chain = self._reader.chain(self._origin)
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

    # -- closing --------------------------------------------------------------

    def _close_files(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._tail = None

    def close(self) -> None:
        self._close_files()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        self._opened = False
