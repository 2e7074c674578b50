"""peerlog: local-first sync through append-only per-device logs.

Everything this package promises is re-exported here; submodules are
implementation detail.
"""

from peerlog.drivers import FileLogIngester, FileLogPublisher, Puller, pull
from peerlog.filelog import FileLog, FolderDiagnosis, Ignored, OriginReport, Problem
from peerlog.oplog import ApplyHook, SqliteOplog
from peerlog.state import Change, StateStore
from peerlog.sync import (
    DIGEST_SIZE,
    Advanced,
    Applied,
    BackendError,
    ClockSkewError,
    ClosedError,
    CodecError,
    CursorMismatchError,
    CursorsEvent,
    CursorStream,
    DecodedEntry,
    DivergenceError,
    Entry,
    Expunged,
    FileLogPuller,
    FileLogReplica,
    FileLogSink,
    HasCursors,
    Hlc,
    IdentityError,
    IndexOutOfRangeError,
    LogProcessor,
    LogSource,
    PeerCursors,
    PeerId,
    Replica,
    Snapshot,
    SyncError,
    UnknownPeerError,
)

__version__ = "0.1.0"

__all__ = [
    "StateStore",
    "Change",
    "pull",
    "Puller",
    "FileLogPublisher",
    "FileLogIngester",
    "DIGEST_SIZE",
    "Advanced",
    "Applied",
    "ApplyHook",
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
    "FileLog",
    "FileLogPuller",
    "FileLogReplica",
    "FileLogSink",
    "HasCursors",
    "FolderDiagnosis",
    "Hlc",
    "IdentityError",
    "Ignored",
    "IndexOutOfRangeError",
    "LogProcessor",
    "LogSource",
    "OriginReport",
    "PeerCursors",
    "Problem",
    "PeerId",
    "Replica",
    "SqliteOplog",
    "Snapshot",
    "SyncError",
    "UnknownPeerError",
    "__version__",
]
