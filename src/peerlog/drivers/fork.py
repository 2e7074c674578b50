"""A device whose own origin forked continues as a new origin, losing nothing.

A device restored from a backup and then changed, or a copied home, holds
entries of its origin that disagree with what the folder or relay already
has under the same indexes.  Such a device *continues*: its own entries
from the first disagreement on (never published, or it would not disagree)
move to a fresh origin, re-stamped in order; the published history of the
old origin is then taken in like any other device's.  Both copies keep
syncing and every edit survives.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from uuid import UUID

from peerlog.drivers.puller import DEFAULT_BATCH, Puller
from peerlog.sync.cursors import PeerCursors
from peerlog.sync.entry import DecodedEntry
from peerlog.sync.errors import CompactedError, DivergenceError
from peerlog.sync.faces import LogSource, OwnOplog

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Continued:
    """What `continue_as_new` did: ``old`` forked at ``fork_index``; the device is now
    ``new``, with ``carried`` unpublished changes carried over."""

    old: UUID
    new: UUID
    fork_index: int
    carried: int

    def __str__(self) -> str:
        return (f"this device was restored from a backup or copied; it continues as device "
                f"{self.new}; {self.carried} unpublished change"
                f"{'' if self.carried == 1 else 's'} carried over")


def same_entry(a: DecodedEntry, b: DecodedEntry) -> bool:
    """Two slot contents that agree: equal, or an entry and its own erasure marker."""
    return a == b or (type(a) is not type(b) and a.digest == b.digest)


async def agrees_at(oplog: OwnOplog, published: LogSource, origin: UUID, index: int) -> bool:
    """Whether both hold the same entry of ``origin`` at ``index`` (or one lacks it, or
    compacted it away: then nothing can be compared)."""
    if index < 0:
        return True
    try:
        ours = await oplog.read_since(origin, index, 1)
        theirs = await published.read_since(origin, index, 1)
    except CompactedError:
        return True
    return not ours or not theirs or ours[0][0] != theirs[0][0] \
        or same_entry(ours[0][1], theirs[0][1])


async def take_back_own(oplog: OwnOplog, published: LogSource, held: int, there: int, *,
                        where: str, batch: int = DEFAULT_BATCH) -> bool:
    """Check this device's own log against where it publishes, before publishing.

    ``held`` and ``there`` are the own origin's cursors in the oplog and in
    ``published``.  Raises `DivergenceError` when the last entry both hold
    differs (the device forked: see `continue_as_new`).  When ``published``
    holds more (a device restored from a backup), those entries are taken
    back into the oplog and True is returned: there is nothing to publish.
    """
    origin = oplog.origin
    index = min(held, there) - 1
    if not await agrees_at(oplog, published, origin, index):
        raise DivergenceError(
            origin, index, f"this device's oplog and its log in {where} hold different "
            "entries: restored from a backup and then changed, or a copied device "
            "identity; refusing to publish")
    if there <= held:
        return False
    log.warning("%s holds %d entries of this device the oplog lacks (restored from a "
                "backup?): taking them back", where, there - held)
    await Puller(published, oplog, batch=batch, only=(origin,)).catch_up(
        PeerCursors({origin: there}))
    return True


async def first_difference(oplog: OwnOplog, published: LogSource, origin: UUID,
                           upto: int) -> int:
    """The first index below ``upto`` where the two hold different entries of ``origin``
    (``upto`` when they agree): a binary search, since a fork only ever grows."""
    lo, hi = 0, upto
    while lo < hi:
        mid = (lo + hi) // 2
        if await agrees_at(oplog, published, origin, mid):
            lo = mid + 1
        else:
            hi = mid
    return lo


async def continue_as_new(oplog: OwnOplog, published: LogSource) -> Continued:
    """Move this device's unpublished, forked entries to a new origin (see module doc)."""
    old = oplog.origin
    held = (await oplog.cursors()).of(old)
    there = (await published.cursors()).of(old)
    fork = await first_difference(oplog, published, old, min(held, there))
    new, carried = await oplog.continue_as_new_origin(fork)
    done = Continued(old, new, fork, carried)
    log.warning("%s", done)
    return done
