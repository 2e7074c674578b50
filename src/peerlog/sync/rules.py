"""The rule every `LogProcessor` applies when an entry meets a slot it already holds.

Kept in one place so that every backend (SQLite, PostgreSQL, the relay) decides
exactly alike; a backend only supplies what it holds and stores what this says.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from typing import NoReturn
from uuid import UUID

from peerlog.sync.entry import DecodedEntry, Entry, Expunged
from peerlog.sync.errors import CursorMismatchError, DivergenceError


class SlotAction(enum.Enum):
    """What to do with a held slot."""

    KEEP = "keep"
    """The offer is what the slot already holds (or an erased entry's original): no-op."""

    ERASE = "erase"
    """The offer is an `Expunged` marker matching the held entry: replace it."""


def reconcile(peer: UUID, index: int, held: DecodedEntry, offered: DecodedEntry) -> SlotAction:
    """Decide what an offer for a held slot means; raise `DivergenceError` if it conflicts.

    - the same entry again, or the same marker again: `KEEP` (idempotent);
    - a marker whose digest is the held entry's digest: `ERASE` (erasure propagates);
    - the original entry of an erased slot: `KEEP` (an erased slot never comes back);
    - anything else is different content in a held slot: `DivergenceError`.
    """
    if type(held) is Entry:
        if type(offered) is Entry:
            if offered == held:
                return SlotAction.KEEP
            raise DivergenceError(
                peer, index, f"held ts={held.ts}, offered ts={offered.ts} "
                f"({len(held.payload)} vs {len(offered.payload)} payload bytes)"
            )
        if offered.digest == held.digest:
            return SlotAction.ERASE
        raise DivergenceError(
            peer, index, "an expunged marker whose digest is not the held entry's"
        )
    assert type(held) is Expunged
    if offered.digest == held.digest:
        return SlotAction.KEEP
    raise DivergenceError(peer, index, "the slot was erased and the offer's digest differs")


def refuse_rewrite(origin: UUID, start: int, end: int,
                   held: Iterable[tuple[int, DecodedEntry]], offered: Sequence[DecodedEntry],
                   where: str) -> NoReturn:
    """A single-writer log asked to write ``offered`` from ``start``, below its ``end``,
    where it already ``held`` entries: another process of the same device wrote them first
    (the same entries: `CursorMismatchError` naming ``end``, so the writer goes on from
    there) or another device did (different ones: `DivergenceError`)."""
    for (index, theirs), ours in zip(held, offered, strict=False):
        try:
            reconcile(origin, index, theirs, ours)
        except DivergenceError:
            raise DivergenceError(
                origin, index, f"{where} already holds a different entry there: another "
                "device is writing the same origin (a cloned identity or a restored "
                "backup)") from None
    raise CursorMismatchError(end, start, peer=origin)
