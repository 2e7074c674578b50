"""The two drivers between a device's oplog and the shared folder.

`FileLogPublisher` projects the device's own origin from its oplog into its
file log; `FileLogIngester` applies every other origin found in the folder
to the oplog.  Both speak only the contract (`Replica`, `FileLogReplica`).
"""

from __future__ import annotations

import asyncio
import logging
from uuid import UUID

from peerlog.drivers.fork import take_back_own
from peerlog.drivers.puller import DEFAULT_BATCH, Progress, Puller
from peerlog.sync.batch import byte_chunks
from peerlog.sync.errors import CursorMismatchError, DivergenceError
from peerlog.sync.faces import HasErasures, OwnOplog, Replica, SharedFileLog
from peerlog.sync.watch import watching

log = logging.getLogger(__name__)


class FileLogPublisher:
    """Projects ``oplog``'s own origin into ``file_log``.

    Resumes from the file log's own extent.  When the folder holds more of
    this origin than the oplog (a device restored from a backup), the missing
    entries are first taken back into the oplog.  When they disagree with the
    oplog at the boundary, the device has forked, and `DivergenceError` is
    raised: nothing is written.
    """

    def __init__(self, oplog: OwnOplog, file_log: SharedFileLog, *,
                 batch: int = DEFAULT_BATCH, progress: Progress | None = None) -> None:
        if oplog.origin != file_log.origin:
            raise ValueError(f"the oplog is origin {oplog.origin} but the file log writes "
                             f"{file_log.origin}")
        self.oplog = oplog
        self.file_log = file_log
        self.batch = batch
        self.progress = progress

    async def run_once(self) -> int:
        """Publish every own entry the folder lacks; returns how many were written.

        Another process of this device publishing at the same moment (an app
        and ``peerlog sync --watch``) makes an append land on indexes it has
        already written with the same entries: the file log says so with a
        `CursorMismatchError` naming its new end, and publishing goes on from
        there.
        """
        origin = self.oplog.origin
        published = await asyncio.to_thread(lambda: self.file_log.next_index)
        held = (await self.oplog.cursors()).of(origin)
        if await take_back_own(self.oplog, self.file_log, held, published,
                               where="the shared folder", batch=self.batch):
            return 0
        written = await self._erase(published)
        if written:  # an erasure may have added a record to the own log
            held = (await self.oplog.cursors()).of(origin)
        index = published
        while index < held:
            got = await self.oplog.read_since(origin, index, min(self.batch, held - index))
            if not got:
                break
            entries = [e for _, e in got]
            for a, b in byte_chunks(entries):
                try:
                    await asyncio.to_thread(self.file_log.append_many, index + a,
                                            entries[a:b])
                except CursorMismatchError as exc:
                    if exc.expected <= index + a:
                        raise
                    log.info("another process of this device published up to %d first",
                             exc.expected)
                    index = exc.expected
                    break
                written += b - a
                if self.progress is not None:
                    self.progress(origin, b - a)
            else:
                index = got[-1][0] + 1
        return written

    async def _erase(self, published: int) -> int:
        """Erase in the folder what this device erased after publishing it."""
        if not isinstance(self.oplog, HasErasures):
            return 0
        origin = self.oplog.origin
        wanted = [(i, d) for i, d in (await self.oplog.erased()).get(origin, []) if i < published]
        if not wanted:
            return 0
        done = {i for i, _ in await asyncio.to_thread(self.file_log.erased_slots, origin)}
        todo = [(i, d) for i, d in wanted if i not in done]
        # An encrypted group's log vouches for an erasure with the erased entry's digest
        # (`SealedLog.erase`); a plain one just rewrites the slot.
        erase = getattr(self.file_log, "erase", None)
        for index, digest in todo:
            if erase is not None:
                await erase(index, digest)
            else:
                await asyncio.to_thread(self.file_log.expunge, index)
        return len(todo)

    async def run(self) -> None:
        """Publish whenever the oplog's own origin advances, until cancelled."""
        origin = self.oplog.origin
        async with watching(self.oplog) as events:
            async for event in events:
                if origin in event.cursors:
                    await self.run_once()


class FileLogIngester:
    """Applies every foreign origin found in ``file_log``'s folder to ``oplog``."""

    def __init__(self, file_log: SharedFileLog, oplog: Replica, *,
                 batch: int = DEFAULT_BATCH, progress: Progress | None = None) -> None:
        self.file_log = file_log
        self.oplog = oplog
        self.puller = Puller(file_log, oplog, batch=batch, skip=(file_log.origin,),
                             progress=progress)

    @property
    def diverged(self) -> dict[UUID, DivergenceError]:
        """Origins no longer ingested because they diverged."""
        return self.puller.diverged

    async def run_once(self) -> int:
        """Ingest every foreign entry the oplog lacks; returns how many were new."""
        return await self.puller.run_once()

    async def run(self) -> None:
        """Ingest whenever the folder changes, until cancelled."""
        await self.puller.run()
