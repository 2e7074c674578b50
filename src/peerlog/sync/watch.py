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


class FollowedStore:
    """What a store whose watch is fed by a background task shares (a shared folder's
    file events, a bucket's polls): the task runs only while someone watches, writes
    made in worker threads are announced on the watchers' event loop, and `close` ends
    both.  Subclasses implement ``cursors`` and ``_follow(stop)``, and set ``_closed``
    and ``_check_open`` as stores do."""

    _follow_name = "peerlog-watch"

    def __init__(self) -> None:
        self._closed = False
        self._follower: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._known = PeerCursors()
        self._hub = CursorHub(self.cursors, on_first=self._start_following,
                              on_last=self._stop_following)

    async def cursors(self) -> PeerCursors:
        raise NotImplementedError

    async def _follow(self, stop: asyncio.Event) -> None:
        """Publish movements to ``self._hub`` until ``stop`` is set."""
        raise NotImplementedError

    def _check_open(self) -> None:
        raise NotImplementedError

    def watch_cursors(self) -> CursorStream:
        """A `Snapshot` first, then `Advanced` deltas; ends when closed."""
        self._check_open()
        return self._hub.watch()

    def _start_following(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._follower = self._loop.create_task(self._follow(self._stop),
                                                name=self._follow_name)

    def _stop_following(self) -> None:
        if self._stop is not None:
            self._stop.set()
        if self._follower is not None:
            self._follower.cancel()
            self._follower = None

    def _moved_since_known(self, current: PeerCursors) -> dict[UUID, int]:
        """The origins ``current`` shows ahead of what was last seen, remembering it."""
        moved = {p: i for p, i in current.items() if i > self._known.get(p, 0)}
        self._known = self._known.merged(current)
        return moved

    def _announce(self, moved: dict[UUID, int]) -> None:
        """Tell watchers, on their event loop: writes usually run in a worker thread
        (``asyncio.to_thread``), and the hub's events belong to the loop."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return  # nobody has watched yet: the first watch takes a snapshot
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wrote_here(moved)
        else:
            loop.call_soon_threadsafe(self._wrote_here, moved)

    def _wrote_here(self, moved: dict[UUID, int]) -> None:
        """On the watchers' loop: this process wrote ``moved``."""
        self._hub.publish(moved)

    async def close(self) -> None:
        """End every watch. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._hub.close()
        self._stop_following()
