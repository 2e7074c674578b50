"""What a relay removes: superseded snapshots, and log entries every device holds.

A relay never decides what the state is (it may not even be able to read
it); it compacts by the same rule as a shared folder (docs/contract.md,
"Snapshots and compaction"): an origin's entries below index *i* go once a
snapshot it keeps covers *i* and every device heard from within the
retention window holds *i*.  Devices say what they hold with
``PUT /v1/origins/{peer}/cursors``; a device that never said, by the time of
its newest entry.  Runs after each snapshot upload and each such report.
"""

from __future__ import annotations

import logging
from uuid import UUID

from peerlog.sync import defaults
from peerlog.sync.cursors import PeerCursors
from peerlog.sync.entry import Entry
from peerlog.sync.errors import CompactedError
from peerlog.sync.faces import Replica, SnapshotKeeper, SnapshotMeta
from peerlog.sync.hlc import ts_millis, wall_ms

log = logging.getLogger(__name__)


async def prune_snapshots(keeper: SnapshotKeeper) -> list[SnapshotMeta]:
    """Drop every kept snapshot another one supersedes; returns those that remain."""
    kept = await keeper.kept_snapshots()
    remaining = []
    for meta in kept:
        if any(meta.superseded_by(other) for other in kept):
            await keeper.drop_snapshot(meta.name)
        else:
            remaining.append(meta)
    return remaining


async def compact_relay(replica: Replica, keeper: SnapshotKeeper, *,
                        retention_ms: int = defaults.RETENTION_MS) -> int:
    """Prune snapshots and drop the entries the rule allows; returns how many."""
    kept = await prune_snapshots(keeper)
    if not kept:
        return 0
    said = await keeper.kept_cursors()
    held = await replica.cursors()
    first = await keeper.first_indexes()
    cutoff = wall_ms() - retention_ms
    seen: dict[UUID, tuple[int, PeerCursors] | None] = {}
    for device in set(held) | set(said):
        if device in said:
            cursors, written = said[device]
            seen[device] = (written, cursors)
        else:
            last = await _last_ms(replica, device, held.of(device), first.of(device))
            seen[device] = None if last is None else (last, PeerCursors())
    upto: dict[UUID, int] = {}
    for origin in held:
        point = max(meta.frontier.of(origin) for meta in kept)
        for device, heard in seen.items():
            if device != origin and heard is not None and heard[0] >= cutoff:
                point = min(point, heard[1].of(origin))
        if point > first.of(origin):
            upto[origin] = point
    if not upto:
        return 0
    dropped = await keeper.compact(upto)
    log.info("relay compacted %d entries of %d origin(s)", dropped, len(upto))
    return dropped


async def _last_ms(replica: Replica, peer: UUID, end: int, first: int) -> int | None:
    """The clock time of ``peer``'s newest entry held (None: none, or all erased)."""
    if end <= first:
        return None
    try:
        got = await replica.read_since(peer, end - 1, 1)
    except CompactedError:
        return None
    if not got or type(got[0][1]) is not Entry:
        return None
    return ts_millis(got[0][1].ts)
