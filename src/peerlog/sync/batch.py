"""The size policy every path shares, and helpers for building large batches quickly.

One policy, stated in docs/file-format.md §5 and the README:

* an entry's payload is at most `MAX_ENTRY_BYTES`: a larger local change is
  refused with `EntryTooLargeError` and nothing is written;
* every batch (a `read_since` answer, an `apply_many` a driver makes, a
  file-log record, a relay page or push body) is cut by count
  (`DEFAULT_READ_BATCH`) *and* by bytes (`MAX_BATCH_BYTES`).  A batch always
  holds at least one entry, so an entry written before the limit existed
  still moves, one per batch.

Because ``MAX_ENTRY_BYTES < MAX_BATCH_BYTES``, any sequence of entries that
each fit the limit travels through every path.
"""

from __future__ import annotations

import gc
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from itertools import accumulate
from uuid import UUID

from peerlog.sync.defaults import DEFAULT_READ_BATCH, MAX_BATCH_BYTES, MAX_ENTRY_BYTES
from peerlog.sync.entry import DIGEST_SIZE, DecodedEntry, Entry
from peerlog.sync.errors import InvalidArgumentError

__all__ = ["DEFAULT_READ_BATCH", "MAX_BATCH_BYTES", "MAX_ENTRY_BYTES", "EntryTooLargeError",
           "byte_chunks", "byte_prefix", "check_batch_start", "check_payload_size",
           "entry_bytes", "gc_paused", "read_bound"]


class EntryTooLargeError(InvalidArgumentError):
    """A local change whose payload is over `MAX_ENTRY_BYTES`; nothing was written."""

    def __init__(self, size: int, limit: int = MAX_ENTRY_BYTES) -> None:
        self.size = size
        self.limit = limit
        super().__init__(f"a change is limited to {limit} bytes ({limit >> 20} MiB) once "
                         f"encoded; this one is {size} bytes")


def check_payload_size(payload: bytes) -> None:
    """`EntryTooLargeError` unless ``payload`` fits `MAX_ENTRY_BYTES`."""
    if len(payload) > MAX_ENTRY_BYTES:
        raise EntryTooLargeError(len(payload))


def entry_bytes(entry: DecodedEntry) -> int:
    """The bytes an entry carries in a batch: its payload, or a marker's digest."""
    return len(entry.payload) if type(entry) is Entry else DIGEST_SIZE


def byte_prefix(entries: Iterable[DecodedEntry], max_bytes: int = MAX_BATCH_BYTES) -> int:
    """How many leading ``entries`` fit ``max_bytes`` together: at least 1 when any."""
    totals = list(accumulate(map(entry_bytes, entries)))
    return max(bisect_right(totals, max_bytes), 1) if totals else 0


def byte_chunks(entries: Sequence[DecodedEntry],
                max_bytes: int = MAX_BATCH_BYTES) -> Iterator[tuple[int, int]]:
    """``[lo, hi)`` slices of ``entries``, each within ``max_bytes`` (or one entry)."""
    totals = list(accumulate(map(entry_bytes, entries)))
    lo, before = 0, 0
    while lo < len(totals):
        hi = max(bisect_right(totals, before + max_bytes, lo), lo + 1)
        yield lo, hi
        before, lo = totals[hi - 1], hi


def read_bound(from_index: object, limit: int | None, cap: int) -> int:
    """How many entries a `read_since` may return; `InvalidArgumentError` for a bad
    ``from_index``."""
    if type(from_index) is not int or from_index < 0:
        raise InvalidArgumentError(f"from_index must be a non-negative int, got {from_index!r}")
    return cap if limit is None else max(min(limit, cap), 0)


def check_batch_start(peer: object, start: object) -> None:
    """The arguments of `apply_many` before its entries: a UUID and an index >= 0."""
    if not isinstance(peer, UUID):
        raise InvalidArgumentError(f"peer must be a UUID, got {type(peer).__name__}")
    if type(start) is not int or start < 0:
        raise InvalidArgumentError(f"start index must be a non-negative int, got {start!r}")


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a batch of entries is built.

    Why: building 10,000 ``(index, Entry)`` tuples triggers a young-generation
    collection every 700 allocations, and each one traverses the growing batch;
    measured, that made decoding 4x slower than the allocation itself.  Entries
    hold only ints and bytes and can never form a cycle, so the collector has
    nothing to find in them.  The collector is resumed on exit only if this
    call paused it, so a caller that disabled it on purpose is left alone.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
