"""The one error family every face of a replica raises.

Backends never leak their own exception types: a failure of ``sqlite3``,
``psycopg``, the file system or the network is wrapped in `BackendError` with
the original exception kept as ``__cause__``.  Every message says what was
expected and what was found.  The tree, by what the caller does about it::

    SyncError
    ├── CursorMismatchError     re-read the cursor and continue from it
    ├── DivergenceError         two devices wrote one slot: report, never pick a side
    ├── CodecError              the input (or bytes read) is not valid: fix it
    │   ├── InvalidArgumentError    a bad argument (also a ValueError)
    │   │   └── EntryTooLargeError      (sync.batch) a change over MAX_ENTRY_BYTES
    │   ├── CorruptLogError         this device's own folder log is damaged
    │   └── SnapshotError           a state snapshot that cannot be loaded: ignore it
    ├── IndexOutOfRangeError    named a slot that is not held
    ├── CompactedError          read below a compacted point: load a snapshot
    ├── AccessDeniedError       the relay refused the token: fix it, do not retry
    ├── QuotaExceededError      the relay is full for this device
    ├── BackendError            storage unreachable or failing: retry later
    │   └── DiskFullError           no space left
    ├── ClosedError             used after close
    ├── ClockSkewError          a timestamp too far ahead
    │   └── DeferredError           an entry waits until the local clock reaches it
    ├── IdentityError           a database opened as another origin
    ├── TrustError              a key, group or invite problem: the message says what to do
    │   ├── WrongGroupError         the folder or relay belongs to another group
    │   └── InviteError             an invite code that is malformed, used or expired
    ├── HomeError               (peerlog.home) a device home that cannot be used
    └── MissingExtraError       (peerlog.extras) an optional extra is not installed
"""

from __future__ import annotations

from uuid import UUID


class SyncError(Exception):
    """Base of every error raised by peerlog's replicas, logs and drivers."""


class CursorMismatchError(SyncError):
    """An entry was offered at an index other than the log's next one.

    Cursors are always a contiguous prefix, so a write past the cursor (a gap)
    or, for a file log, a write at anything but the next index is refused and
    nothing is stored.
    """

    def __init__(self, expected: int, actual: int, *, peer: UUID | None = None) -> None:
        self.expected = expected
        self.actual = actual
        self.peer = peer
        who = f" for peer {peer}" if peer is not None else ""
        super().__init__(
            f"cursor mismatch{who}: expected index {expected} (the next free slot), got {actual}"
        )


class DivergenceError(SyncError):
    """A slot already held was offered with different content.

    Two devices wrote different entries under one ``(peer, index)``: a cloned
    device identity or a restored backup.  Nothing is changed; a reader never
    picks a side silently.
    """

    def __init__(self, peer: UUID, index: int, detail: str = "") -> None:
        self.peer = peer
        self.index = index
        extra = f": {detail}" if detail else ""
        super().__init__(
            f"divergence at peer {peer} index {index}: the slot already holds different "
            f"content{extra}"
        )


class CodecError(SyncError):
    """Bytes (or values) that do not decode into a valid entry."""


class InvalidArgumentError(CodecError, ValueError):
    """A call's argument is wrong (a negative index, a peer that is not a UUID, a value
    too large to record): the caller's mistake, so also a `ValueError`."""


class CorruptLogError(CodecError):
    """This device's own log is damaged where it would write: nothing is written until a
    person moves the damaged file away (`peerlog doctor` says which)."""


class IndexOutOfRangeError(SyncError):
    """An index outside the log's held extent (e.g. expunging a slot never written)."""


class CompactedError(SyncError):
    """A read below where an origin's log now starts: the entries before
    ``first_available`` were compacted away (they are in a state snapshot).

    Drivers answer it by loading a snapshot that covers them (`FolderSync`
    does so by itself); nothing was read.
    """

    def __init__(self, peer: UUID, from_index: int, first_available: int) -> None:
        self.peer = peer
        self.from_index = from_index
        self.first_available = first_available
        super().__init__(
            f"origin {peer}: entries below index {first_available} were compacted away "
            f"(asked from {from_index}); load a state snapshot that covers them")


class SnapshotError(CodecError):
    """Bytes that are not a valid state snapshot (damaged, truncated, foreign or from a
    newer peerlog); nothing of it was loaded."""


class BackendError(SyncError):
    """The storage underneath failed; the original exception is ``__cause__``."""


class ClosedError(SyncError):
    """The replica, log or watch was used after it was closed."""


class ClockSkewError(SyncError):
    """A remote timestamp lies further ahead of the local wall clock than allowed."""


class DeferredError(ClockSkewError):
    """A batch holds an entry stamped more than ``max_skew`` ahead of this device's clock.

    Nothing of the batch was stored.  The entries before ``index`` may be
    applied; the origin's entry at ``index`` (and everything after it) waits
    until the local clock is within ``max_skew`` of ``ts``, so one device with a
    fast clock (or a forged timestamp) can neither win every conflict nor pin a
    key forever.  `Puller` does exactly that and reports the origin as deferred.
    """

    def __init__(self, peer: UUID, index: int, ts: int, ahead_ms: int) -> None:
        self.peer = peer
        self.index = index
        self.ts = ts
        self.ahead_ms = ahead_ms
        super().__init__(
            f"origin {peer} index {index} is stamped {duration_text(ahead_ms)} ahead of this "
            f"device's clock: it and the entries after it wait until the clock catches up")


def duration_text(ms: int) -> str:
    """``ms`` for a person: 90 s, 3.2 h, 12 d."""
    seconds = ms / 1000
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:.1f} {unit}" if seconds < 1_000 * size else \
                f"{seconds / size:.3g} {unit}"
    return f"{seconds:.0f} s"


class IdentityError(SyncError):
    """A store opened with an origin other than the one it was created for."""


class AccessDeniedError(SyncError):
    """A relay refused the credentials: no token, an unknown one, or a foreign origin."""


class QuotaExceededError(SyncError):
    """A relay refused to store more for this device: its storage quota is used up."""


class DiskFullError(BackendError):
    """The storage has no space left; nothing of the failed write was kept."""


class TrustError(SyncError):
    """An encrypted group's keys cannot do what was asked: a missing or damaged keyring, a
    wrong passphrase, a key epoch this device was not given.  The message says which group
    and what to do; it is never a bare decryption failure."""


class WrongGroupError(TrustError):
    """The shared folder or relay holds another group's data (or plain data where this
    device's group is encrypted, or the reverse)."""


class InviteError(TrustError):
    """An invite code that is malformed, expired, already used, or for another group."""
