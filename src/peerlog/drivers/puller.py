"""`Puller`: copy every gap from any `LogSource` into any `LogProcessor`.

The generic driver: it knows only the contract.  It diffs cursors, reads
each missing range in bounded batches and applies each batch as one
`apply_many`, so a cancellation or a crash between batches leaves whole
batches applied and the next run continues from the target's cursors.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection
from uuid import UUID

from peerlog.sync.batch import byte_chunks
from peerlog.sync.cursors import PeerCursors
from peerlog.sync.defaults import BULK_THRESHOLD, DEFAULT_APPLY_BATCH
from peerlog.sync.entry import DecodedEntry, Expunged
from peerlog.sync.errors import CodecError, CompactedError, DeferredError, DivergenceError
from peerlog.sync.faces import BulkApply, HasErasures, LogProcessor, LogSource
from peerlog.sync.watch import watching

log = logging.getLogger(__name__)

DEFAULT_BATCH = DEFAULT_APPLY_BATCH
"""Entries per `read_since` / `apply_many` round trip."""

Progress = Callable[[UUID, int], None]
"""Called with ``(peer, entries)`` after each batch is applied."""


class Puller:
    """Copies ``source``'s entries that ``target`` lacks, for every origin.

    A `DivergenceError` for one origin (two devices wrote different entries
    under one index) stops that origin only: it is logged, kept in
    `diverged`, and that origin is skipped from then on, so the others keep
    syncing and nothing picks a side.  Origins in ``skip`` are never copied;
    when ``only`` is given, no origin outside it is copied (entries and
    erasures alike: a device pushes its own origin and nothing else).
    Every `apply_many` carries at most `MAX_BATCH_BYTES` of payload (or one
    entry), whatever the source returned.

    A target that defers entries stamped too far in the future
    (`DeferredError`) gets everything before them; that origin then waits,
    kept in `deferred` for the round, and is offered again on the next one.
    """

    def __init__(self, source: LogSource, target: LogProcessor, *,
                 batch: int = DEFAULT_BATCH, skip: Collection[UUID] = (),
                 only: Collection[UUID] | None = None,
                 progress: Progress | None = None) -> None:
        self.source = source
        self.target = target
        self.batch = batch
        self.skip = frozenset(skip)
        self.only = None if only is None else frozenset(only)
        self.progress = progress
        self.diverged: dict[UUID, DivergenceError] = {}
        self.deferred: dict[UUID, DeferredError] = {}
        """Origins that wait for the target's clock, as of the last `catch_up`."""
        self.compacted: dict[UUID, int] = {}
        """Origins whose missing entries the source compacted away, as of the last
        `catch_up`: where their logs now start (load a snapshot covering them)."""
        self._erased: set[tuple[UUID, int]] = set()  # erasures already carried over

    async def run_once(self) -> int:
        """Copy every gap once; returns how many entries were new to the target."""
        return await self.catch_up(await self.source.cursors())

    async def catch_up(self, ahead: PeerCursors) -> int:
        """Copy what ``target`` lacks up to ``ahead`` (the source's known cursors), and
        every erasure the source holds of entries the target already has."""
        have = await self.target.cursors()
        self.deferred = {}
        self.compacted = {}
        gaps = {p: gap for p, gap in have.gaps(ahead).items() if self._copies(p)}
        if sum(hi - lo for lo, hi in gaps.values()) >= BULK_THRESHOLD \
                and isinstance(self.target, BulkApply):
            async with self.target.bulk():  # a long catch-up: few durable commits
                copied = await self._copy_gaps(gaps)
        else:
            copied = await self._copy_gaps(gaps)
        return copied + await self._erase(ahead)

    async def _copy_gaps(self, gaps: dict[UUID, tuple[int, int]]) -> int:
        copied = 0
        for peer, (lo, hi) in gaps.items():
            try:
                copied += await self._copy(peer, lo, hi)
            except DivergenceError as exc:
                self._diverge(peer, exc)
        return copied

    def _copies(self, peer: UUID) -> bool:
        return (peer not in self.skip and peer not in self.diverged
                and (self.only is None or peer in self.only))

    def _diverge(self, peer: UUID, exc: DivergenceError) -> None:
        self.diverged[peer] = exc
        log.error("not syncing origin %s any further: %s", peer, exc)

    async def _erase(self, ahead: PeerCursors) -> int:
        """Apply the source's erasures below the target's cursor (they move no cursor)."""
        if not isinstance(self.source, HasErasures):
            return 0
        have = await self.target.cursors()
        erased = 0
        for peer, slots in (await self.source.erased()).items():
            if not self._copies(peer):
                continue
            for index, digest in slots:
                if index >= have.of(peer) or (peer, index) in self._erased:
                    continue
                try:
                    applied = await self.target.apply(peer, index, Expunged(digest))
                except DivergenceError as exc:
                    self._diverge(peer, exc)
                    break
                self._erased.add((peer, index))
                erased += applied.new
        return erased

    async def _copy(self, peer: UUID, lo: int, hi: int) -> int:
        # Start one entry early: re-offering the last held entry is a no-op when
        # both sides agree, and a DivergenceError where two devices forked the
        # origin (they diverge right after their common prefix).
        # The next batch is read while the current one is applied: reading (a file log's
        # decoding, an encrypted group's opening) and applying (the target's SQLite
        # thread) then overlap on two cores.
        index = lo - 1 if lo > 0 else 0
        copied = 0
        ahead: asyncio.Future[list[tuple[int, DecodedEntry]]] | None = None
        try:
            while index < hi:
                try:
                    if ahead is not None:
                        got, ahead = await ahead, None
                    else:
                        got = await self.source.read_since(peer, index,
                                                           min(self.batch, hi - index))
                except CompactedError as exc:
                    if index == lo - 1 and exc.first_available <= lo:
                        index = lo  # only the re-offered entry is gone: nothing to compare
                        continue
                    self.compacted[peer] = exc.first_available
                    log.warning("%s", exc)
                    return copied
                if not got:
                    break  # the source holds less than it announced: the next event says more
                if got[0][0] != index:
                    raise CodecError(f"source returned index {got[0][0]} of {peer} for a "
                                     f"read from {index}")
                entries = [e for _, e in got]
                following = got[-1][0] + 1
                if following < hi:
                    ahead = asyncio.ensure_future(self.source.read_since(
                        peer, following, min(self.batch, hi - following)))
                for a, b in byte_chunks(entries):
                    try:
                        copied += await self.target.apply_many(peer, index + a, entries[a:b])
                    except DeferredError as exc:
                        return copied + await self._defer(peer, index + a, entries[a:b], exc)
                index = following
                if self.progress is not None:
                    self.progress(peer, len(got))
        finally:
            if ahead is not None:  # an early return or a failure: the read is not needed
                ahead.cancel()
        return copied

    async def _defer(self, peer: UUID, start: int, batch: list[DecodedEntry],
                     exc: DeferredError) -> int:
        """Apply what comes before a deferred entry; the origin waits from there."""
        self.deferred[peer] = exc
        log.warning("%s", exc)
        head = batch[:max(exc.index - start, 0)]
        return await self.target.apply_many(peer, start, head) if head else 0

    async def run(self) -> None:
        """Follow the source's cursor watch and copy every gap as it appears.

        Runs until cancelled or until the source's watch ends (it closed).
        """
        seen = PeerCursors()
        async with watching(self.source) as events:
            async for event in events:
                seen = seen.merged(event.cursors)
                await self.catch_up(seen)


async def pull(source: LogSource, target: LogProcessor, *, batch: int = DEFAULT_BATCH) -> int:
    """``Puller(source, target).run_once()``: copy every gap once."""
    return await Puller(source, target, batch=batch).run_once()
