"""The rule every `LogProcessor` applies when an entry meets a slot it already holds.

Kept in one place so that every backend (SQLite, PostgreSQL, the relay) decides
exactly alike; a backend only supplies what it holds and stores what this says.
"""

from __future__ import annotations

import enum
from uuid import UUID

from peerlog.sync.entry import DecodedEntry, Entry, Expunged
from peerlog.sync.errors import DivergenceError


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
