"""Capped, jittered exponential backoff: how every retry loop in peerlog waits.

Offline is normal for a local-first device, so nothing that waits on a
folder or a relay gives up; it retries after ``first``, then twice as long
each time up to ``cap``, each delay drawn uniformly from its upper half
(so many devices that lost the same relay do not come back in lockstep).
"""

from __future__ import annotations

import random

from peerlog.sync import defaults


class Backoff:
    """The delays of one retry loop; `reset` after a success."""

    def __init__(self, first: float = defaults.BACKOFF_FIRST,
                 cap: float = defaults.BACKOFF_CAP, *,
                 rng: random.Random | None = None) -> None:
        if not 0 < first <= cap:
            raise ValueError(f"backoff needs 0 < first <= cap, got {first} and {cap}")
        self.first = first
        self.cap = cap
        self._rng = rng or random.Random()
        self._attempt = 0

    def next(self) -> float:
        """The delay before the next attempt, in seconds."""
        ceiling = min(self.cap, self.first * 2 ** min(self._attempt, 32))
        self._attempt += 1
        return self._rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self._attempt = 0

    @property
    def failures(self) -> int:
        """Delays handed out since the last `reset`."""
        return self._attempt
