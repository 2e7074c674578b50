"""What one `apply_many` does, decided without a database.

Both SQL backends fetch the same two facts (the origin's cursor, and the held
slots the batch overlaps), ask `plan_batch` what to do, and store exactly
that.  So the rules of docs/contract.md live in one place for every SQL replica.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from operator import itemgetter
from typing import Any
from uuid import UUID

from peerlog.sync.batch import MAX_BATCH_BYTES, gc_paused
from peerlog.sync.entry import DecodedEntry, Entry, Expunged, check_entry
from peerlog.sync.errors import CursorMismatchError
from peerlog.sync.rules import SlotAction, reconcile

Row = tuple[int | None, bytes]
"""An entry as two columns: ``(ts, payload)``, or ``(None, digest)`` for a marker."""

_new_tuple = tuple.__new__


def encode_entries(entries: Sequence[DecodedEntry]) -> list[Row]:
    """Validate entries (`CodecError` on the first bad one) into column pairs."""
    out: list[Row] = []
    append = out.append
    for entry in entries:
        check_entry(entry)
        if type(entry) is Entry:
            append((entry.ts, entry.payload))
        else:
            append((None, entry.digest))
    return out


_body = itemgetter(2)


@dataclass(slots=True)
class BoundedFetch:
    """Collects ``(idx, ts, body)`` rows from a cursor until ``bound`` rows or ``max_bytes``.

    The caller loops ``while (n := f.next_size()): if not f.take(cursor.fetchmany(n)): break``.
    The first fetch is small, later ones are sized from the largest body
    seen, so a run of large entries never loads much more than ``max_bytes``
    while small entries take two fetches.  At least one row is always kept.
    """

    bound: int
    max_bytes: int = MAX_BATCH_BYTES
    rows: list[Any] = field(default_factory=list)
    _total: int = 0
    _size: int = 16
    _done: bool = False

    def next_size(self) -> int:
        return 0 if self._done else min(self._size, self.bound - len(self.rows))

    def take(self, got: Sequence[Any]) -> bool:
        """Add fetched rows; False when the batch is complete."""
        if not got:
            self._done = True
            return False
        sizes = list(map(len, map(_body, got)))
        before = list(accumulate(sizes, initial=self._total))
        if before[-1] > self.max_bytes:
            keep = bisect_right(before, self.max_bytes) - 1
            self.rows.extend(got[:max(keep, 0 if self.rows else 1)])
            self._done = True
            return False
        self.rows.extend(got)
        self._total = before[-1]
        biggest = max(sizes)
        self._size = max((self.max_bytes - self._total) // max(biggest, 1), 1)
        self._done = len(self.rows) >= self.bound
        return not self._done


def decode_rows(rows: Sequence[tuple[int, int | None, bytes]]) -> list[tuple[int, DecodedEntry]]:
    """``(idx, ts, body)`` rows into ``(index, entry)`` pairs; ``ts NULL`` is a marker."""
    new = _new_tuple
    with gc_paused():
        return [
            (i, new(Entry, (ts, body)))
            if ts is not None
            else (i, new(Expunged, (body,)))
            for i, ts, body in rows
        ]


@dataclass(frozen=True, slots=True)
class BatchPlan:
    """What to store: slots to erase, and the new tail from ``tail_start``."""

    erase: list[tuple[int, bytes]]  # (index, digest)
    tail_start: int
    tail: list[Row]

    @property
    def new(self) -> int:
        """How many slots the batch changes: `Applied.new` counts these."""
        return len(self.erase) + len(self.tail)


def plan_batch(peer: UUID, start: int, rows: list[Row], next_index: int,
               held: Callable[[int, int], Sequence[tuple[int, int | None, bytes]]]
               ) -> BatchPlan:
    """Apply docs/contract.md's rules to a batch at ``start`` against cursor ``next_index``.

    ``held(lo, hi)`` returns the stored ``(idx, ts, body)`` rows of slots
    ``lo..hi-1``.  Raises `CursorMismatchError` for a gap and
    `DivergenceError` for different content in a held slot; then nothing is
    to be stored.
    """
    if start > next_index:
        raise CursorMismatchError(next_index, start, peer=peer)
    held_end = min(next_index, start + len(rows))
    erase: list[tuple[int, bytes]] = []
    if start < held_end:
        stored = decode_rows(held(start, held_end))
        for (index, held_entry), (ts, body) in zip(stored, rows, strict=False):
            offer: DecodedEntry = Entry(ts, body) if ts is not None else Expunged(body)
            if reconcile(peer, index, held_entry, offer) is SlotAction.ERASE:
                erase.append((index, body))
    return BatchPlan(erase, held_end, rows[held_end - start:])


@dataclass(frozen=True, slots=True)
class CompactedPlan:
    """What offered slots below an origin's first index do: markers to insert where no
    slot is held any more, and held slots to erase."""

    insert: list[tuple[int, bytes]]  # (index, digest)
    erase: list[tuple[int, bytes]]

    @property
    def new(self) -> int:
        return len(self.insert) + len(self.erase)


def plan_compacted(peer: UUID, start: int, rows: Sequence[Row],
                   held: dict[int, tuple[int | None, bytes]]) -> CompactedPlan:
    """Offered slots ``start, start+1, …`` below the origin's first index (compacted, or
    covered by a loaded snapshot), given the slots still ``held`` there.  An entry is
    taken as held: it cannot be compared any more.  A marker erases a held slot as
    usual (`DivergenceError` for a different one), and is recorded where nothing is
    held, so the state forgets what a snapshot said of that slot."""
    insert: list[tuple[int, bytes]] = []
    erase: list[tuple[int, bytes]] = []
    for index, (ts, body) in enumerate(rows, start):
        if ts is not None:
            continue
        got = held.get(index)
        if got is None:
            insert.append((index, body))
            continue
        mine: DecodedEntry = Entry(got[0], got[1]) if got[0] is not None else Expunged(got[1])
        if reconcile(peer, index, mine, Expunged(body)) is SlotAction.ERASE:
            erase.append((index, body))
    return CompactedPlan(insert, erase)
