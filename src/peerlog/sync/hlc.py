"""A hybrid logical clock: wall-clock milliseconds plus a counter, never going back."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from peerlog.sync.defaults import MAX_SKEW_MS
from peerlog.sync.errors import ClockSkewError

COUNTER_BITS = 16
"""The low bits of a timestamp that count events within one millisecond."""


def wall_ms() -> int:
    """Milliseconds since the epoch from the system clock."""
    return time.time_ns() // 1_000_000


def ts_millis(ts: int) -> int:
    """The wall-clock milliseconds part of an HLC timestamp."""
    return ts >> COUNTER_BITS


class Hlc:
    """Issues strictly increasing 64-bit timestamps: ``millis << 16 | counter``.

    Invariant: every value returned by `now` or `observe` is greater than every
    value returned before and than every remote timestamp observed, even when
    the wall clock steps back.  When the counter would overflow within one
    millisecond, the clock borrows the next millisecond rather than wrap.

    Thread-safe.  ``wall`` is injectable for tests.
    """

    def __init__(self, wall: Callable[[], int] = wall_ms, *, last: int = 0,
                 max_drift_ms: int = MAX_SKEW_MS) -> None:
        self._wall = wall
        self._last = last
        self._max_drift_ms = max_drift_ms
        self._lock = threading.Lock()

    @property
    def last(self) -> int:
        """The greatest timestamp issued or observed so far."""
        return self._last

    def wall(self) -> int:
        """The wall clock this HLC reads, in milliseconds since the epoch."""
        return self._wall()

    def now(self) -> int:
        """A fresh timestamp for a local event."""
        with self._lock:
            candidate = self._wall() << COUNTER_BITS
            self._last = candidate if candidate > self._last else self._last + 1
            return self._last

    def catch_up(self, ts: int) -> None:
        """Never issue a timestamp at or below ``ts`` again (another process of this
        device issued or observed it)."""
        with self._lock:
            if ts > self._last:
                self._last = ts

    def observe(self, remote: int) -> int:
        """Merge a remote timestamp in and return a fresh one greater than both.

        Raises `ClockSkewError` (and changes nothing) when ``remote`` is more
        than ``max_drift_ms`` ahead of the local wall clock: one device with a
        wrong clock must not drag every other device's clock into the future.
        """
        with self._lock:
            wall = self._wall()
            ahead = ts_millis(remote) - wall
            if ahead > self._max_drift_ms:
                raise ClockSkewError(
                    f"remote timestamp is {ahead} ms ahead of the local clock; "
                    f"at most {self._max_drift_ms} ms is accepted"
                )
            candidate = wall << COUNTER_BITS
            self._last = max(candidate, self._last + 1, remote + 1)
            return self._last
