"""What one `apply_many` does, decided without a database.

Both SQL backends fetch the same two facts (the origin's cursor, and the held
slots the batch overlaps), ask `plan_batch` what to do, and store exactly
that.  So the rules of SPEC.md live in one place for every SQL replica.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from uuid import UUID

from peerlog.sync.batch import gc_paused
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
    """Apply SPEC.md's rules to a batch at ``start`` against cursor ``next_index``.

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
