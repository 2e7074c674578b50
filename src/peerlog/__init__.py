"""peerlog: local-first sync through append-only per-device logs.

Everything this package promises is re-exported here; submodules are
implementation detail.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from peerlog.device import BlockingDevice, Device, SyncStatus, connect, open
from peerlog.drivers import (
    Continued,
    FileLogIngester,
    FileLogPublisher,
    FolderSync,
    Puller,
    RelaySync,
    SyncReport,
    pull,
)
from peerlog.extras import MissingExtraError
from peerlog.filelog import (
    FileLog,
    FolderDiagnosis,
    Ignored,
    OriginReport,
    Problem,
    ProblemKind,
    SharedFolder,
    Withheld,
)
from peerlog.home import HomeError
from peerlog.oplog import ApplyHook, SqliteOplog
from peerlog.state import (
    REMOVE,
    Change,
    HistoryItem,
    OpKind,
    Outcome,
    StateStore,
    Transaction,
)
from peerlog.sync import (
    DIGEST_SIZE,
    AccessDeniedError,
    Advanced,
    Applied,
    BackendError,
    ClockSkewError,
    Closeable,
    ClosedError,
    CodecError,
    CorruptLogError,
    CursorMismatchError,
    CursorsEvent,
    CursorStream,
    DecodedEntry,
    Deferral,
    DeferredError,
    DiskFullError,
    DivergenceError,
    Entry,
    Expunged,
    FileLogPuller,
    FileLogReplica,
    FileLogSink,
    HasCursors,
    HasErasures,
    Hlc,
    IdentityError,
    IndexOutOfRangeError,
    InvalidArgumentError,
    LogProcessor,
    LogSource,
    PeerCursors,
    QuotaExceededError,
    Replica,
    Snapshot,
    SyncError,
)
from peerlog.sync.batch import MAX_BATCH_BYTES, MAX_ENTRY_BYTES, EntryTooLargeError

__version__ = "0.2.0.dev0"

_LAZY = {"RemoteReplica": "peerlog.net", "TokenStore": "peerlog.net",
         "RelayLimits": "peerlog.net", "PostgresOplog": "peerlog.oplog"}
"""Names whose dependencies are optional extras: imported on first use."""


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'peerlog' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)

if TYPE_CHECKING:
    from peerlog.net import RelayLimits, RemoteReplica, TokenStore
    from peerlog.oplog.postgres import PostgresOplog

__all__ = [
    "MissingExtraError",
    "ProblemKind",
    "SharedFolder",
    "BlockingDevice",
    "Device",
    "HomeError",
    "SyncStatus",
    "connect",
    "open",
    "DiskFullError",
    "EntryTooLargeError",
    "FolderSync",
    "MAX_BATCH_BYTES",
    "MAX_ENTRY_BYTES",
    "QuotaExceededError",
    "RelayLimits",
    "RelaySync",
    "SyncReport",
    "Withheld",
    "HasErasures",
    "RemoteReplica",
    "TokenStore",
    "AccessDeniedError",
    "PostgresOplog",
    "StateStore",
    "Change",
    "REMOVE",
    "HistoryItem",
    "OpKind",
    "Outcome",
    "Transaction",
    "Deferral",
    "DeferredError",
    "Continued",
    "pull",
    "Puller",
    "FileLogPublisher",
    "FileLogIngester",
    "DIGEST_SIZE",
    "Advanced",
    "Applied",
    "Closeable",
    "ApplyHook",
    "BackendError",
    "ClockSkewError",
    "ClosedError",
    "CodecError",
    "CorruptLogError",
    "InvalidArgumentError",
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
    "Replica",
    "SqliteOplog",
    "Snapshot",
    "SyncError",
    "__version__",
]
