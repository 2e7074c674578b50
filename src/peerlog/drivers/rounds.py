"""Sync rounds: a device's whole exchange with a shared folder or a relay.

A *round* publishes this device's own origin and takes in every other, and
reports what happened as a `SyncReport`.  The two halves fail separately: a
refused publish (a diverged own origin, a relay that will not take this
device's writes) is recorded in the report and the round still takes in
everyone else's changes.  Only a failure to reach the folder or the relay at
all (`BackendError`, `OSError`) ends a round early.

`FolderSync` and `RelaySync` each have ``run_once()`` (one round) and
``run()``: a round now, then one whenever either side moves, forever.  While
the folder or relay cannot be reached, ``run()`` retries with capped,
jittered exponential backoff, logs once that it is offline and once when it
is back, and never exits for it; a refused token (`AccessDeniedError`) does
end it, since retrying cannot fix that.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import cast
from uuid import UUID

from peerlog.drivers.filelog import FileLogIngester, FileLogPublisher
from peerlog.drivers.fork import Continued, continue_as_new, take_back_own
from peerlog.drivers.puller import DEFAULT_BATCH, Progress, Puller
from peerlog.drivers.snapshots import (
    Bootstrapped,
    Compaction,
    FolderPlace,
    RelayFace,
    RelayPlace,
    Snapshots,
)
from peerlog.sync.backoff import Backoff
from peerlog.sync.cursors import PeerCursors
from peerlog.sync.defaults import SAFETY_ROUND
from peerlog.sync.errors import (
    AccessDeniedError,
    BackendError,
    CompactedError,
    DivergenceError,
    InvalidArgumentError,
    SyncError,
)
from peerlog.sync.faces import (
    CompactingFileLog,
    Deferral,
    HasCursors,
    OwnOplog,
    Replica,
    SnapshotState,
    WithheldRange,
)
from peerlog.sync.watch import wait_event

log = logging.getLogger(__name__)


@dataclass(slots=True)
class SyncReport:
    """What one round did.  ``ok`` is False when anything was refused or withheld."""

    published: int = 0
    ingested: int = 0
    diverged: dict[UUID, str] = field(default_factory=dict)
    """Origins not synced any further, and why."""
    refused: list[str] = field(default_factory=list)
    """Failures of the publish half that did not stop the round."""
    withheld: Mapping[UUID, WithheldRange] = field(default_factory=dict)
    """Origins whose entries the folder holds but will not serve (damaged, forked)."""
    deferred: dict[UUID, Deferral] = field(default_factory=dict)
    """Origins whose next entry is stamped too far ahead of this device's clock: they
    wait (the rest syncs) until the clock catches up."""
    continued: Continued | None = None
    """Set when this device found its own origin forked and continued as a new one."""
    compacted: dict[UUID, int] = field(default_factory=dict)
    """Origins whose entries this device lacks were compacted away and no valid snapshot
    covers them: each maps to where its log now starts."""
    bootstrapped: Bootstrapped | None = None
    """Set when this round began by loading a state snapshot."""
    compaction: Compaction | None = None
    """Set when this round published a snapshot and compacted (automatically)."""

    @property
    def ok(self) -> bool:
        """Nothing refused, diverged, compacted away or withheld, except the writes of a
        device removed from the group: withholding those is what was asked for."""
        withheld = any(w.kind != "removed" for w in self.withheld.values())
        return not (self.diverged or self.refused or withheld or self.compacted)

    def to_json(self) -> dict[str, object]:
        return {
            "published": self.published, "ingested": self.ingested,
            "diverged": {str(p): why for p, why in self.diverged.items()},
            "refused": list(self.refused),
            "withheld": {str(p): {"from_index": w.from_index, "at_least": w.at_least,
                                  "kind": w.kind} for p, w in self.withheld.items()},
            "deferred": {str(p): {"index": d.index, "ahead_ms": d.ahead_ms}
                         for p, d in self.deferred.items()},
            "continued": None if self.continued is None else {
                "old": str(self.continued.old), "new": str(self.continued.new),
                "carried": self.continued.carried},
            "compacted": {str(p): first for p, first in self.compacted.items()},
            "bootstrapped": None if self.bootstrapped is None else {
                "snapshot": self.bootstrapped.name, "covers": self.bootstrapped.producer_covers},
            "snapshot_published": None if self.compaction is None else self.compaction.snapshot,
        }


RoundCallback = Callable[[SyncReport], None]


class _Live:
    """What both kinds of sync share: ``run()`` (rounds on every movement, backoff
    offline) and, with a state, snapshots and ``compact()``."""

    _watched: Sequence[HasCursors]
    _where: str
    _safety: float = SAFETY_ROUND
    """Seconds between rounds when nothing is heard of (a missed event)."""
    snapshots: Snapshots | None
    """With a ``state``: bootstrap, acknowledgements and compaction (`Snapshots`)."""

    async def run_once(self) -> SyncReport:
        raise NotImplementedError

    async def _take_in(self, puller: Puller, report: SyncReport) -> int:
        """Every other device's entries; when some were compacted away meanwhile, load a
        snapshot covering them and take in the rest, in this same round."""
        taken = await puller.run_once()
        if puller.compacted and self.snapshots is not None:
            loaded = await self.snapshots.bootstrap(again=True)
            if loaded is not None:
                report.bootstrapped = loaded
                taken += await puller.run_once()
        return taken

    async def compact(self) -> Compaction:
        """A round, then publish a snapshot and remove what it makes redundant, there and
        in the device database (`Snapshots.compact`); needs a ``state``."""
        if self.snapshots is None:
            raise InvalidArgumentError("compaction needs the device's state: pass "
                                       "state=store when creating the sync")
        await self.run_once()
        return await self.snapshots.compact()

    async def run(self, on_round: RoundCallback | None = None, *,
                  backoff: Backoff | None = None,
                  on_offline: Callable[[Exception], None] | None = None) -> None:
        """Run a round now and whenever a watched side moves, until cancelled.

        ``on_round`` gets each completed round's report, ``on_offline`` each
        failure to reach the other side (the next report means it is back).
        Unreachable storage is retried with ``backoff`` (default: 0.5 s doubling
        to 30 s); the first failure is logged at WARNING ("offline"), the
        recovery at WARNING too ("back"), the retries in between at DEBUG.
        """
        backoff = backoff or Backoff()
        wake = asyncio.Event()
        wake.set()
        watchers = [asyncio.create_task(_forward(store, wake)) for store in self._watched]
        offline = False
        try:
            while True:
                await wait_event(wake, self._safety)
                wake.clear()
                try:
                    report = await self.run_once()
                except (BackendError, OSError) as exc:
                    if on_offline is not None:
                        on_offline(exc)
                    if not offline:
                        log.warning("offline: cannot reach %s (%s); retrying", self._where, exc)
                        offline = True
                    else:
                        log.debug("still offline: %s", exc)
                    await asyncio.sleep(backoff.next())
                    wake.set()
                    continue
                if offline:
                    log.warning("back online: %s reached again", self._where)
                    offline = False
                backoff.reset()
                if on_round is not None:
                    on_round(report)
                for task in watchers:
                    if task.done() and not task.cancelled():
                        task.result()  # a watch that failed for good (a refused token)
        finally:
            for task in watchers:
                task.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)


async def _forward(store: HasCursors, wake: asyncio.Event) -> None:
    """Set ``wake`` on every cursor event of ``store``; re-watch after a passing failure."""
    backoff = Backoff(first=0.5, cap=10.0)
    while True:
        try:
            async for _event in store.watch_cursors():
                backoff.reset()
                wake.set()
            return  # the store closed
        except AccessDeniedError:
            wake.set()
            raise
        except (BackendError, OSError) as exc:
            log.debug("watch of %r interrupted: %s", store, exc)
            await asyncio.sleep(backoff.next())


class FolderSync(_Live):
    """Rounds between a device's oplog and a shared folder's file log."""

    def __init__(self, oplog: OwnOplog, file_log: CompactingFileLog, *,
                 batch: int = DEFAULT_BATCH, progress: Progress | None = None,
                 state: SnapshotState | None = None) -> None:
        self.oplog = oplog
        self.file_log = file_log
        self._batch, self._progress = batch, progress
        self.snapshots = None if state is None else \
            Snapshots(oplog, state, FolderPlace(file_log, oplog), progress=progress)
        self._drivers()
        self._watched = (oplog, file_log)
        self._where = f"{getattr(file_log, 'place', 'the shared folder')} " \
            f"{getattr(file_log, 'root', file_log)}"
        # A bucket log's own watch is a poll: the safety round need not repeat it often.
        self._safety = float(getattr(file_log, "safety_round", SAFETY_ROUND))

    def _drivers(self) -> None:
        self.publisher = FileLogPublisher(self.oplog, self.file_log, batch=self._batch)
        self.ingester = FileLogIngester(self.file_log, self.oplog, batch=self._batch,
                                        progress=self._progress)

    async def run_once(self) -> SyncReport:
        report = SyncReport()
        if self.snapshots is not None:
            report.bootstrapped = await self.snapshots.bootstrap()
        report.published = await _refusable(self._publish(report), report,
                                            "not publishing this device's changes")
        report.ingested = await self._take_in(self.ingester.puller, report)
        report.diverged = {p: str(e) for p, e in self.ingester.diverged.items()}
        report.deferred = _deferrals(self.ingester.puller)
        report.compacted = dict(self.ingester.puller.compacted)
        report.withheld = await asyncio.to_thread(self.file_log.withheld)
        report.compaction = await _after_round(self.snapshots, report)
        return report


    async def _publish(self, report: SyncReport) -> int:
        if self.snapshots is not None:
            await self.snapshots.seed()
        try:
            return await self.publisher.run_once()
        except DivergenceError as exc:
            if exc.peer != self.oplog.origin:
                raise
        # This device's own log forked (a restored backup, a copied home): continue.
        report.continued = await continue_as_new(self.oplog, self.file_log)
        await asyncio.to_thread(self.file_log.continue_as, report.continued.new)
        await _adopt(self.file_log, report.continued.new)
        self._drivers()
        return await self.publisher.run_once()


async def _adopt(transport: object, new: UUID) -> None:
    """Tell an encrypted group's view of the folder or relay (`SealedLog.adopt_origin`)
    that this device now writes ``new``; a plain transport needs nothing."""
    adopt = getattr(transport, "adopt_origin", None)
    if adopt is not None:
        await adopt(new)


async def _after_round(snapshots: Snapshots | None, report: SyncReport) -> Compaction | None:
    """Acknowledge, and publish and compact when due; a refusal there (a snapshot that
    cannot be written) is reported and the round's sync still counts."""
    if snapshots is None:
        return None
    try:
        return await snapshots.after_round()
    except (SyncError, OSError) as exc:
        log.error("not compacting: %s", exc)
        report.refused.append(f"not compacting: {exc}")
        return None


def _deferrals(puller: Puller) -> dict[UUID, Deferral]:
    return {p: Deferral(e.index, e.ts, e.ahead_ms) for p, e in puller.deferred.items()}


async def _refusable(half: Awaitable[int], report: SyncReport, what: str) -> int:
    """Run the publishing half of a round: a refusal is reported, not raised (the round
    goes on to take in everyone else's changes); unreachable storage still raises."""
    try:
        return await half
    except (BackendError, OSError):
        raise
    except SyncError as exc:
        log.error("%s: %s", what, exc)
        report.refused.append(str(exc))
        return 0


class RelaySync(_Live):
    """Rounds between a device's oplog and a relay (any `Replica` reached remotely).

    The push half copies this device's own origin only, its erasures
    included; other origins' entries and erasures reach the relay from their
    own devices.  The pull half copies every other origin.
    """

    def __init__(self, oplog: OwnOplog, remote: Replica, *, batch: int = DEFAULT_BATCH,
                 progress: Progress | None = None, state: SnapshotState | None = None) -> None:
        self.oplog = oplog
        self.remote = remote
        self._batch, self._progress = batch, progress
        self.snapshots = None
        if state is not None and hasattr(remote, "snapshots"):
            relay = cast(RelayFace, remote)  # a relay client (RemoteReplica)
            self.snapshots = Snapshots(oplog, state, RelayPlace(relay, oplog),
                                       progress=progress)
        self._drivers()
        self._watched = (oplog, remote)
        self._where = f"the relay {getattr(remote, 'url', remote)}"

    def _drivers(self) -> None:
        origin = self.oplog.origin
        self.push = Puller(self.oplog, self.remote, batch=self._batch, only=(origin,))
        self.pull = Puller(self.remote, self.oplog, batch=self._batch, skip=(origin,),
                           progress=self._progress)

    async def run_once(self) -> SyncReport:
        report = SyncReport()
        if self.snapshots is not None:
            report.bootstrapped = await self.snapshots.bootstrap()
        report.published = await _refusable(self._publish(report), report,
                                            "the relay refused this device's changes")
        report.ingested = await self._take_in(self.pull, report)
        report.diverged = {p: str(e) for p, e in
                           {**self.push.diverged, **self.pull.diverged}.items()}
        report.deferred = _deferrals(self.pull)
        report.compacted = dict(self.pull.compacted)
        report.compaction = await _after_round(self.snapshots, report)
        return report

    async def _publish(self, report: SyncReport) -> int:
        origin = self.oplog.origin
        if self.snapshots is not None:
            await self.snapshots.seed()
        held = (await self.oplog.cursors()).of(origin)
        there = (await self.remote.cursors()).of(origin)
        forked_from = self.oplog.forked_from
        if forked_from is not None and there == 0 and held:
            # A device that continued as a new origin: (again) ask the relay to let its
            # token write it; a claim lost to a crash or an outage is retried here.  A
            # refusal is not final: the token may have been issued for the new id.
            with contextlib.suppress(AccessDeniedError):
                await self._claim(forked_from, origin)
        try:
            if await take_back_own(self.oplog, self.remote, held, there, where=self._where,
                                   batch=self._batch):
                return 0
            pushed = await self._push()
            if origin in self.push.compacted:
                raise CompactedError(origin, there, self.push.compacted[origin])
            if origin not in self.push.diverged:
                return pushed
        except DivergenceError as exc:
            if exc.peer != origin:
                raise
        # This device's own log forked on the relay (a restored backup, a copied home).
        report.continued = await continue_as_new(self.oplog, self.remote)
        await self._claim(report.continued.old, report.continued.new)
        await _adopt(self.remote, report.continued.new)
        self._drivers()
        return await self._push()

    async def _claim(self, old: UUID, new: UUID) -> None:
        """Let this device's token write ``new`` too (a relay reached over HTTP needs it;
        a replica used directly has no tokens)."""
        claim = getattr(self.remote, "continue_origin", None)
        if claim is not None:
            await claim(old, new)

    async def _push(self) -> int:
        origin = self.oplog.origin
        mine = PeerCursors({origin: (await self.oplog.cursors()).of(origin)})
        return await self.push.catch_up(mine)

