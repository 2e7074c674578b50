"""The sync contract: the names and meanings SPEC.md fixes, shared by every backend."""

from peerlog.sync.cursors import Advanced, CursorsEvent, CursorStream, PeerCursors, Snapshot
from peerlog.sync.entry import DIGEST_SIZE, DecodedEntry, Entry, Expunged, PeerId
from peerlog.sync.errors import (
    AccessDeniedError,
    BackendError,
    ClockSkewError,
    ClosedError,
    CodecError,
    CursorMismatchError,
    DivergenceError,
    IdentityError,
    IndexOutOfRangeError,
    SyncError,
    UnknownPeerError,
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
    "PeerId",
    "Replica",
    "Snapshot",
    "SyncError",
    "UnknownPeerError",
]
