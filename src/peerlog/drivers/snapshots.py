"""`FolderSnapshots`: state snapshots and compaction between a device and a shared folder.

Three duties, each run by `FolderSync` in its rounds:

- **bootstrap**: a device that lacks many entries a snapshot in the folder
  covers (a new device), or lacks entries the folder no longer holds (back
  after the retention window, or a retired device's folder removed), loads
  the best valid snapshot and then syncs only what lies above its frontier;
- **acknowledge**: after each round the device writes what it holds into
  its own folder, which is what compaction waits for;
- **publish and compact** (automatically every `SNAPSHOT_EVERY` entries, or
  on request): publish a snapshot of this device's state, remove the
  snapshots it supersedes, and remove this device's own segments that the
  snapshot covers and every device still syncing holds.  Only the device
  itself ever removes segments of its own folder.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from uuid import UUID

from peerlog.drivers.puller import Progress
from peerlog.sync import defaults
from peerlog.sync.cursors import PeerCursors
from peerlog.sync.errors import SnapshotError
from peerlog.sync.faces import CompactingFileLog, OwnOplog, SnapshotInfo, SnapshotState
from peerlog.sync.hlc import wall_ms

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Bootstrapped:
    """A snapshot this device loaded: which, from which device, and the cursors it moved."""

    name: str
    producer_covers: int
    moved: PeerCursors


@dataclass(slots=True)
class Compaction:
    """What one compaction did."""

    snapshot: str | None = None
    """The snapshot published for it."""
    segments_removed: int = 0
    snapshots_removed: int = 0
    entries_dropped: int = 0
    """Log entries dropped from this device's own database."""
    waiting_for: list[UUID] = field(default_factory=list)
    """Devices still syncing that do not hold all of this device's log yet."""


def _superseded(info: SnapshotInfo, by: SnapshotInfo) -> bool:
    """Whether ``by`` covers everything ``info`` does, and is newer when they cover the
    same (a later snapshot of the same entries may lack a value erased since)."""
    if info.name == by.name or any(by.frontier.of(p) < i for p, i in info.frontier.items()):
        return False
    return by.frontier != info.frontier or (by.created_ms, by.name) > (info.created_ms,
                                                                      info.name)


class FolderSnapshots:
    """Snapshots, acknowledgements and compaction for one device and one shared folder."""

    def __init__(self, oplog: OwnOplog, state: SnapshotState, file_log: CompactingFileLog, *,
                 progress: Progress | None = None,
                 every: int = defaults.SNAPSHOT_EVERY,
                 bootstrap_min: int = defaults.BOOTSTRAP_MIN,
                 retention_ms: int = defaults.RETENTION_MS) -> None:
        self.oplog = oplog
        self.state = state
        self.file_log = file_log
        self.every = every
        self.bootstrap_min = bootstrap_min
        self.retention_ms = retention_ms
        self.progress = progress

    # -- bootstrap ----------------------------------------------------------------

    async def bootstrap(self) -> Bootstrapped | None:
        """Load the best valid snapshot if this device needs one (see the module)."""
        have = await self.oplog.cursors()
        own = self.oplog.origin
        shelf = self.file_log.snapshots
        offered, gone, present = await asyncio.to_thread(
            lambda: (shelf.valid(), self.file_log.first_indexes(),
                     set(self.file_log.list_peers())))
        for info in offered:
            lacking = {p: i - have.of(p) for p, i in info.frontier.items() if i > have.of(p)}
            if not lacking:
                return None  # the best snapshot holds nothing new: none will
            own_gone = gone.of(own) > have.of(own)
            if own in lacking and not own_gone:
                # This device's own entries it lacks are still in the folder: a
                # restored device takes them back from there (drivers.fork).
                continue
            # Entries the folder cannot give any more: compacted away, or the device's
            # folder is gone (a retired device).
            unreachable = any(p not in present or gone.of(p) > have.of(p) for p in lacking)
            if not unreachable and sum(lacking.values()) < self.bootstrap_min:
                return None
            try:
                data = await asyncio.to_thread(shelf.read, info.name)
                moved = await self.state.load_snapshot(data)
            except SnapshotError as exc:
                log.warning("not loading snapshot %s: %s", info.name, exc)
                await asyncio.to_thread(shelf.mark_bad, info.name, str(exc))
                continue
            log.info("loaded snapshot %s covering %d entries", info.name, info.covers)
            if self.progress is not None:
                self.progress(info.producer, sum(lacking.values()))
            return Bootstrapped(info.name, info.covers, moved)
        return None

    # -- after a round --------------------------------------------------------------

    async def after_round(self) -> Compaction | None:
        """Acknowledge what this device holds; publish and compact when it is due."""
        have = await self.oplog.cursors()
        await asyncio.to_thread(self.file_log.acknowledge, have)
        offered = await asyncio.to_thread(self.file_log.snapshots.valid)
        newest = max((s.covers for s in offered), default=0)
        if sum(have.values()) - newest < self.every:
            return None
        return await self.compact(database=False)

    async def compact(self, *, database: bool = True) -> Compaction:
        """Publish a snapshot of this device's state, remove the snapshots it
        supersedes and this device's own segments every syncing device holds, and (with
        ``database``) drop the entries the snapshot covers from the device database."""
        done = Compaction()
        data = await self.state.snapshot()
        done.snapshot = await asyncio.to_thread(self.file_log.snapshots.publish, data)
        done.snapshots_removed = await asyncio.to_thread(self._prune)
        upto, done.waiting_for = await asyncio.to_thread(self._own_compact_point)
        done.segments_removed = await asyncio.to_thread(self.file_log.compact_below, upto)
        if database:
            published = await asyncio.to_thread(self.file_log.extents)
            best = (await asyncio.to_thread(self.file_log.snapshots.valid))[0]
            own = self.oplog.origin
            limit = PeerCursors(best.frontier)
            # The last published entry stays readable: the next publish compares it
            # with the folder's to notice a restored or copied device (drivers.fork).
            limit[own] = min(limit.of(own), published.of(own) - 1)
            done.entries_dropped = await self.state.compact(limit)
        log.info("compacted: snapshot %s, %d segment(s) and %d snapshot(s) removed, %d "
                 "entries dropped", done.snapshot, done.segments_removed,
                 done.snapshots_removed, done.entries_dropped)
        return done

    def _prune(self) -> int:
        """Remove every snapshot another valid one supersedes (covers all it covers)."""
        offered = list(self.file_log.snapshots.valid())
        removed = 0
        for info in offered:
            if any(_superseded(info, other) for other in offered):
                removed += self.file_log.snapshots.remove(info.name)
        return removed

    def _own_compact_point(self) -> tuple[int, list[UUID]]:
        """Below which index this device's own segments may go: what the best snapshot
        covers of them, and what every device that synced within the retention window
        holds of them (a device that never said, by its newest entry's time)."""
        own = self.oplog.origin
        offered = self.file_log.snapshots.valid()
        if not offered:
            return 0, []
        point = max(s.frontier.of(own) for s in offered)
        said = self.file_log.device_cursors()
        cutoff = wall_ms() - self.retention_ms
        waiting = []
        for peer in self.file_log.list_peers():
            if peer == own:
                continue
            told = said.get(peer)
            if told is not None:
                seen, holds = told.written_ms, told.cursors.of(own)
            else:
                last = self.file_log.last_written_ms(peer)
                if last is None:
                    continue  # an empty folder: nothing to wait for
                seen, holds = last, 0
            if seen >= cutoff and holds < point:
                waiting.append(peer)
                point = holds
        return point, waiting
