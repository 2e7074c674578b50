"""`ApplyHook`: work a SQL oplog runs inside the transaction that stores entries.

This is how a materialised view (the last-writer-wins state of `peerlog.state`)
stays exactly in step with the log: the view is updated in the same
transaction as the entries, so a crash leaves both or neither.
"""

from __future__ import annotations

from typing import Any, Protocol
from uuid import UUID


class ApplyHook(Protocol):
    """Called by the oplog with its DB-API connection, inside a write transaction."""

    def setup(self, conn: Any) -> None:
        """Create the hook's tables if missing (runs once per open)."""
        ...

    def applied(self, conn: Any, peer: UUID, start: int,
                rows: list[tuple[int | None, bytes]]) -> None:
        """New slots ``start, start+1, …`` of ``peer``: ``(ts, payload)``, or ``(None, digest)``."""
        ...

    def erased(self, conn: Any, peer: UUID, indexes: list[int]) -> None:
        """Held entries of ``peer`` at ``indexes`` were replaced by expunged markers."""
        ...
