"""`Snapshots`: state snapshots and compaction between a device and where it syncs.

Three duties, each run by `FolderSync` and `RelaySync` in their rounds:

- **bootstrap**: a device that lacks many entries a snapshot there covers (a
  new device), or lacks entries that are no longer there (back after the
  retention window, or a retired device's folder removed), loads the best
  valid snapshot and then syncs only what lies above its frontier;
- **acknowledge**: after each round the device says what it holds, which is
  what compaction waits for;
- **publish and compact** (automatically every `SNAPSHOT_EVERY` entries, or
  on request): publish a snapshot of this device's state and remove what it
  makes redundant.  In a shared folder the device removes the snapshots it
  supersedes and its *own* segments that every device still syncing holds
  (only a device touches its own folder); a relay does the same on its side
  when it receives the snapshot.  With ``database``, the device also drops
  the covered entries from its own database.

Where snapshots live is a `SnapshotPlace`: `FolderPlace` (a shared folder's
``snapshots/``) or `RelayPlace` (a relay's ``/v1/snapshots``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol
from uuid import UUID

from peerlog.drivers.puller import Progress
from peerlog.sync import defaults
from peerlog.sync.cursors import PeerCursors
from peerlog.sync.errors import BackendError, SnapshotError
from peerlog.sync.faces import CompactingFileLog, OwnOplog, SnapshotMeta, SnapshotState
from peerlog.sync.hlc import wall_ms

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Bootstrapped:
    """A snapshot this device loaded: which, how much it covers, and the cursors it moved."""

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


class SnapshotPlace(Protocol):
    """Where a device finds and leaves snapshots, and says what it holds."""

    async def offered(self) -> Sequence[SnapshotMeta]:
        """Every snapshot offered there, the one covering most first."""
        ...

    async def fetch(self, name: str) -> bytes: ...

    async def refuse(self, name: str, reason: str) -> None:
        """A snapshot that failed to load: not offered again while it stays the same."""
        ...

    async def reachable(self) -> tuple[set[UUID], PeerCursors]:
        """The origins there, and where each compacted log starts."""
        ...

    async def published(self) -> PeerCursors:
        """Every origin's extent there."""
        ...

    async def publish(self, data: bytes) -> str: ...

    async def acknowledge(self, cursors: PeerCursors) -> None: ...

    async def compact_own(self, retention_ms: int) -> tuple[int, int, list[UUID]]:
        """Remove what the latest snapshot makes redundant; ``(segments removed,
        snapshots removed, devices waited for)``."""
        ...

    async def start_own(self, index: int) -> None:
        """Begin this device's (empty) log there at ``index``."""
        ...


class Snapshots:
    """Snapshots, acknowledgements and compaction for one device and one place."""

    def __init__(self, oplog: OwnOplog, state: SnapshotState, place: SnapshotPlace, *,
                 progress: Progress | None = None,
                 every: int = defaults.SNAPSHOT_EVERY,
                 bootstrap_min: int = defaults.BOOTSTRAP_MIN,
                 retention_ms: int = defaults.RETENTION_MS) -> None:
        self.oplog = oplog
        self.state = state
        self.place = place
        self.every = every
        self.bootstrap_min = bootstrap_min
        self.retention_ms = retention_ms
        self.progress = progress
        self._looked = False  # at the snapshots, for a bootstrap
        self._newest = 0  # entries the newest snapshot known covers

    async def bootstrap(self, *, again: bool = False) -> Bootstrapped | None:
        """Load the best valid snapshot if this device needs one (see the module).

        Looked at on the first round only, and again (``again``) when a round meets
        entries compacted away: otherwise every entry a device lacks is still there to
        replay, and a round costs no look at the snapshots (a request, on a relay)."""
        if self._looked and not again:
            return None
        self._looked = True
        have = await self.oplog.cursors()
        own = self.oplog.origin
        offered = await self.place.offered()
        if not offered:
            return None
        present, gone = await self.place.reachable()
        for info in offered:
            lacking = {p: i - have.of(p) for p, i in info.frontier.items() if i > have.of(p)}
            if not lacking:
                return None  # the best snapshot holds nothing new: none will
            if own in lacking and gone.of(own) <= have.of(own):
                # This device's own entries it lacks are still there: a restored
                # device takes them back from its log (drivers.fork).
                continue
            # Entries that cannot be had any more: compacted away, or the device's
            # log is gone (a retired device's folder).
            unreachable = any(p not in present or gone.of(p) > have.of(p) for p in lacking)
            if not unreachable and sum(lacking.values()) < self.bootstrap_min:
                return None
            try:
                moved = await self.state.load_snapshot(await self.place.fetch(info.name))
            except (SnapshotError, BackendError) as exc:  # unreadable or damaged: skip it
                log.warning("not loading snapshot %s: %s", info.name, exc)
                await self.place.refuse(info.name, str(exc))
                continue
            log.info("loaded snapshot %s covering %d entries", info.name, info.covers)
            if self.progress is not None:
                self.progress(info.producer, sum(lacking.values()))
            return Bootstrapped(info.name, info.covers, moved)
        return None

    async def seed(self) -> bool:
        """Before publishing to a place that holds none of this device's log while its own
        database was compacted: begin the log there where the database's begins, and
        publish a snapshot there for the entries below.  True when it did."""
        own = self.oplog.origin
        first = (await self.oplog.first_indexes()).of(own)
        if not first or (await self.place.published()).of(own):
            return False
        await self.place.start_own(first)
        await self.place.publish(await self.state.snapshot())
        log.info("began this device's log at %d in a new place, with a snapshot", first)
        return True

    async def after_round(self) -> Compaction | None:
        """Acknowledge what this device holds; publish and compact when it is due."""
        have = await self.oplog.cursors()
        await self.place.acknowledge(have)
        if sum(have.values()) - self._newest < self.every:
            return None  # without asking: the newest snapshot known is recent enough
        self._newest = max((s.covers for s in await self.place.offered()), default=0)
        if sum(have.values()) - self._newest < self.every:
            return None
        done = await self.compact(database=False)
        self._newest = sum(have.values())
        return done

    async def compact(self, *, database: bool = True) -> Compaction:
        """Publish a snapshot of this device's state and remove what it makes redundant
        (see the module); with ``database``, from the device database too."""
        done = Compaction()
        data = await self.state.snapshot()
        done.snapshot = await self.place.publish(data)
        await self.place.acknowledge(await self.oplog.cursors())
        done.segments_removed, done.snapshots_removed, done.waiting_for = \
            await self.place.compact_own(self.retention_ms)
        if database:
            offered = await self.place.offered()
            published = await self.place.published()
            own = self.oplog.origin
            limit = PeerCursors(offered[0].frontier if offered else {})
            # Never this device's own entries that are not published yet.  (A restored
            # backup still holds its own old entries, so drivers.fork can compare it.)
            limit[own] = min(limit.of(own), published.of(own))
            done.entries_dropped = await self.state.compact(limit)
        log.info("compacted: snapshot %s, %d segment(s) and %d snapshot(s) removed, %d "
                 "entries dropped", done.snapshot, done.segments_removed,
                 done.snapshots_removed, done.entries_dropped)
        return done


class FolderPlace:
    """A shared folder's ``snapshots/`` and this device's own folder in it."""

    def __init__(self, file_log: CompactingFileLog, own: OwnOplog) -> None:
        self.file_log = file_log
        self._own = own

    async def offered(self) -> Sequence[SnapshotMeta]:
        return await asyncio.to_thread(self.file_log.snapshots.valid)

    async def fetch(self, name: str) -> bytes:
        return await asyncio.to_thread(self.file_log.snapshots.read, name)

    async def refuse(self, name: str, reason: str) -> None:
        await asyncio.to_thread(self.file_log.snapshots.mark_bad, name, reason)

    async def reachable(self) -> tuple[set[UUID], PeerCursors]:
        return await asyncio.to_thread(
            lambda: (set(self.file_log.list_peers()), self.file_log.first_indexes()))

    async def published(self) -> PeerCursors:
        return await asyncio.to_thread(self.file_log.extents)

    async def publish(self, data: bytes) -> str:
        return await asyncio.to_thread(self.file_log.snapshots.publish, data)

    async def acknowledge(self, cursors: PeerCursors) -> None:
        await asyncio.to_thread(self.file_log.acknowledge, cursors)

    async def compact_own(self, retention_ms: int) -> tuple[int, int, list[UUID]]:
        return await asyncio.to_thread(self._compact_own, retention_ms)

    async def start_own(self, index: int) -> None:
        await asyncio.to_thread(self.file_log.start_at, index)

    def _compact_own(self, retention_ms: int) -> tuple[int, int, list[UUID]]:
        shelf = self.file_log.snapshots
        offered = list(shelf.valid())
        superseded = [s for s in offered if any(s.superseded_by(o) for o in offered)]
        pruned = sum(shelf.remove(s.name) for s in superseded)
        kept = [s for s in offered if s not in superseded]
        upto, waiting = self._own_compact_point(kept, retention_ms)
        return self.file_log.compact_below(upto), pruned, waiting

    def _own_compact_point(self, offered: Sequence[SnapshotMeta], retention_ms: int
                           ) -> tuple[int, list[UUID]]:
        """Below which index this device's own segments may go: what the best of the
        ``offered`` snapshots covers of them, and what every device heard from within the
        retention window holds of them (a device that never said, by its newest entry's
        time)."""
        own = self._own.origin
        if not offered:
            return 0, []
        point = max(s.frontier.of(own) for s in offered)
        said = self.file_log.device_cursors()
        cutoff = wall_ms() - retention_ms
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


class RelayFace(Protocol):
    """What a relay client offers for snapshots (`peerlog.net.RemoteReplica`)."""

    async def cursors(self) -> PeerCursors: ...

    async def first_indexes(self) -> PeerCursors: ...

    async def snapshots(self) -> list[SnapshotMeta]: ...

    async def read_snapshot(self, name: str) -> bytes: ...

    async def publish_snapshot(self, data: bytes) -> str: ...

    async def acknowledge(self, origin: UUID, cursors: PeerCursors) -> None: ...

    async def start_at(self, peer: UUID, index: int) -> None: ...


class RelayPlace:
    """A relay's snapshots; the relay compacts by itself when it receives one."""

    def __init__(self, relay: RelayFace, own: OwnOplog) -> None:
        self.relay = relay
        self._own = own
        self._refused: set[str] = set()
        self._acknowledged: PeerCursors | None = None

    async def offered(self) -> Sequence[SnapshotMeta]:
        found = [s for s in await self.relay.snapshots() if s.name not in self._refused]
        return sorted(found, key=lambda s: (-s.covers, s.name))

    async def fetch(self, name: str) -> bytes:
        return await self.relay.read_snapshot(name)

    async def refuse(self, name: str, reason: str) -> None:
        self._refused.add(name)

    async def reachable(self) -> tuple[set[UUID], PeerCursors]:
        return set(await self.relay.cursors()), await self.relay.first_indexes()

    async def published(self) -> PeerCursors:
        return await self.relay.cursors()

    async def publish(self, data: bytes) -> str:
        return await self.relay.publish_snapshot(data)

    async def acknowledge(self, cursors: PeerCursors) -> None:
        if cursors != self._acknowledged:  # the relay compacts on each report: say news only
            await self.relay.acknowledge(self._own.origin, cursors)
            self._acknowledged = PeerCursors(cursors)

    async def compact_own(self, retention_ms: int) -> tuple[int, int, list[UUID]]:
        return 0, 0, []  # the relay did, when it took the snapshot and the report

    async def start_own(self, index: int) -> None:
        await self.relay.start_at(self._own.origin, index)
