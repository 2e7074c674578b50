"""Fan-out of cursor movements to any number of watchers, with coalescing.

Every backend owns one `CursorHub`.  A backend calls `CursorHub.publish` with
the origins that moved after each commit; each watcher keeps a pending delta
merged by pointwise max, so a slow consumer sees fewer, larger `Advanced`
events and never an unbounded queue.  Events carry state, not entries, so
coalescing loses nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING
from uuid import UUID

from peerlog.sync.cursors import Advanced, CursorsEvent, CursorStream, PeerCursors, Snapshot
from peerlog.sync.errors import ClosedError

if TYPE_CHECKING:
    from peerlog.sync.faces import HasCursors

log = logging.getLogger(__name__)


class _Watcher:
    __slots__ = ("pending", "wake")

    def __init__(self) -> None:
        self.pending = PeerCursors()
        self.wake = asyncio.Event()


class CursorHub:
    """Subscriptions to one store's cursor movements.

    ``snapshot`` reads the store's current cursors (for the first event);
    ``on_first``/``on_last`` let a backend start and stop a background task
    (e.g. a cross-process poller) only while someone watches.
    """

    def __init__(
        self,
        snapshot: Callable[[], Awaitable[PeerCursors]],
        *,
        on_first: Callable[[], None] | None = None,
        on_last: Callable[[], None] | None = None,
    ) -> None:
        self._snapshot = snapshot
        self._on_first = on_first
        self._on_last = on_last
        self._watchers: set[_Watcher] = set()
        self._closed = False
        self._error: Exception | None = None

    def publish(self, moved: Mapping[UUID, int]) -> None:
        """Tell every watcher that these origins' next indexes are now at least this."""
        if not moved:
            return
        for watcher in self._watchers:
            pending = watcher.pending
            for peer, index in moved.items():
                if index > pending.get(peer, 0):
                    pending[peer] = index
            watcher.wake.set()

    def close(self) -> None:
        """End every watch; later `watch` calls raise `ClosedError`."""
        self._closed = True
        for watcher in self._watchers:
            watcher.wake.set()

    def fail(self, error: Exception) -> None:
        """End every watch by raising ``error`` in its consumer (a failure retrying cannot
        fix, such as a refused token); later `watch` calls raise it too."""
        self._error = error
        self.close()

    async def watch(self) -> AsyncIterator[CursorsEvent]:
        """One `Snapshot`, then coalesced `Advanced` deltas until the hub closes."""
        if self._error is not None:
            raise self._error
        if self._closed:
            raise ClosedError("cannot watch cursors: the store is closed")
        watcher = _Watcher()
        # Subscribe before the snapshot: a move between the two is then seen
        # twice (harmless under max) instead of never.
        self._watchers.add(watcher)
        if len(self._watchers) == 1 and self._on_first is not None:
            self._on_first()
        try:
            first = await self._snapshot()
            # Our own copy: the consumer owns the cursors it is handed.
            told = PeerCursors(first)
            yield Snapshot(first)
            while True:
                await watcher.wake.wait()
                watcher.wake.clear()
                if self._error is not None:
                    raise self._error
                if self._closed:
                    return
                delta, watcher.pending = watcher.pending, PeerCursors()
                # Drop origins the consumer already has at that position.
                delta = PeerCursors({p: i for p, i in delta.items() if i > told.get(p, -1)})
                if delta:
                    told.update(delta)
                    yield Advanced(delta)
        finally:
            self._watchers.discard(watcher)
            if not self._watchers and self._on_last is not None and not self._closed:
                self._on_last()


async def wait_event(event: asyncio.Event, seconds: float) -> bool:
    """Wait until ``event`` is set or ``seconds`` pass; True if it was set.

    Why not ``asyncio.wait_for``: before Python 3.12 it can swallow a
    cancellation that arrives as the inner wait completes, and a live loop
    built on it then never stops (seen as a hung test).  ``asyncio.timeout``
    does not.
    """
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True


@asynccontextmanager
async def watching(store: HasCursors) -> AsyncIterator[CursorStream]:
    """``store.watch_cursors()``, closed on exit (cancellation included)."""
    stream = store.watch_cursors()
    try:
        yield stream
    finally:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()
