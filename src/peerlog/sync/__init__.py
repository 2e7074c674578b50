"""The sync contract: the names and meanings docs/contract.md fixes, shared by every backend."""

from peerlog.sync.cursors import Advanced, CursorsEvent, CursorStream, PeerCursors, Snapshot
from peerlog.sync.entry import DIGEST_SIZE, DecodedEntry, Entry, Expunged
from peerlog.sync.errors import (
    AccessDeniedError,
    BackendError,
    ClockSkewError,
    ClosedError,
    CodecError,
    CursorMismatchError,
    DiskFullError,
    DivergenceError,
    IdentityError,
    IndexOutOfRangeError,
    QuotaExceededError,
    SyncError,
)
from peerlog.sync.faces import (
    Applied,
    FileLogPuller,
    FileLogReplica,
    FileLogSink,
    HasCursors,
    HasErasures,
    LogProcessor,
    LogSource,
    Replica,
)
from peerlog.sync.hlc import Hlc

__all__ = [
    "HasErasures",
    "AccessDeniedError",
    "DIGEST_SIZE",
    "Advanced",
    "Applied",
    "BackendError",
    "ClockSkewError",
    "ClosedError",
    "CodecError",
    "CursorMismatchError",
    "CursorStream",
    "CursorsEvent",
    "DecodedEntry",
    "DiskFullError",
    "DivergenceError",
    "Entry",
    "Expunged",
    "FileLogPuller",
    "FileLogReplica",
    "FileLogSink",
    "HasCursors",
    "Hlc",
    "IdentityError",
    "IndexOutOfRangeError",
    "LogProcessor",
    "LogSource",
    "PeerCursors",
    "QuotaExceededError",
    "Replica",
    "Snapshot",
    "SyncError",
]
