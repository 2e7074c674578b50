"""peerlog: local-first sync through append-only per-device logs.

Everything this package promises is re-exported here; submodules are
implementation detail.  Names load on first use (PEP 562), so ``import
peerlog`` costs almost nothing and a program pays only for what it touches:
the relay client and PostgreSQL need their extras only when used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0.dev0"

_EXPORTS: dict[str, str] = {
    "AccessDeniedError": "peerlog.sync",
    "Advanced": "peerlog.sync",
    "Applied": "peerlog.sync",
    "ApplyHook": "peerlog.oplog",
    "BackendError": "peerlog.sync",
    "BlockingDevice": "peerlog.device",
    "Change": "peerlog.state",
    "ClockSkewError": "peerlog.sync",
    "CompactedError": "peerlog.sync",
    "SnapshotError": "peerlog.sync",
    "StateSnapshot": "peerlog.state.snapshot",
    "BucketLog": "peerlog.bucket",
    "BucketStore": "peerlog.bucket",
    "Closeable": "peerlog.sync",
    "ClosedError": "peerlog.sync",
    "CodecError": "peerlog.sync",
    "Continued": "peerlog.drivers",
    "CorruptLogError": "peerlog.sync",
    "CursorMismatchError": "peerlog.sync",
    "CursorStream": "peerlog.sync",
    "CursorsEvent": "peerlog.sync",
    "DIGEST_SIZE": "peerlog.sync",
    "DecodedEntry": "peerlog.sync",
    "Deferral": "peerlog.sync",
    "DeferredError": "peerlog.sync",
    "Device": "peerlog.device",
    "DiskFullError": "peerlog.sync",
    "DivergenceError": "peerlog.sync",
    "Entry": "peerlog.sync",
    "EntryTooLargeError": "peerlog.sync.batch",
    "Expunged": "peerlog.sync",
    "FileLog": "peerlog.filelog",
    "FileLogIngester": "peerlog.drivers",
    "FileLogPublisher": "peerlog.drivers",
    "FileLogPuller": "peerlog.sync",
    "FileLogReplica": "peerlog.sync",
    "FileLogSink": "peerlog.sync",
    "FolderDiagnosis": "peerlog.filelog",
    "FolderSync": "peerlog.drivers",
    "HasCursors": "peerlog.sync",
    "HasErasures": "peerlog.sync",
    "HistoryItem": "peerlog.state",
    "Hlc": "peerlog.sync",
    "HomeError": "peerlog.home",
    "IdentityError": "peerlog.sync",
    "Ignored": "peerlog.filelog",
    "IndexOutOfRangeError": "peerlog.sync",
    "InvalidArgumentError": "peerlog.sync",
    "LogProcessor": "peerlog.sync",
    "LogSource": "peerlog.sync",
    "MAX_BATCH_BYTES": "peerlog.sync.batch",
    "MAX_ENTRY_BYTES": "peerlog.sync.batch",
    "MissingExtraError": "peerlog.extras",
    "OpKind": "peerlog.state",
    "OriginReport": "peerlog.filelog",
    "Outcome": "peerlog.state",
    "PeerCursors": "peerlog.sync",
    "PostgresOplog": "peerlog.oplog.postgres",
    "Problem": "peerlog.filelog",
    "ProblemKind": "peerlog.filelog",
    "Puller": "peerlog.drivers",
    "QuotaExceededError": "peerlog.sync",
    "REMOVE": "peerlog.state",
    "RelayLimits": "peerlog.net",
    "RelaySync": "peerlog.drivers",
    "RemoteReplica": "peerlog.net",
    "Replica": "peerlog.sync",
    "SharedFolder": "peerlog.filelog",
    "Snapshot": "peerlog.sync",
    "SqliteOplog": "peerlog.oplog",
    "StateStore": "peerlog.state",
    "SyncError": "peerlog.sync",
    "TrustError": "peerlog.sync",
    "WrongGroupError": "peerlog.sync",
    "InviteError": "peerlog.sync",
    "SealedLog": "peerlog.trust",
    "Distrust": "peerlog.trust",
    "SyncReport": "peerlog.drivers",
    "SyncStatus": "peerlog.device",
    "TokenStore": "peerlog.net",
    "Transaction": "peerlog.state",
    "Withheld": "peerlog.filelog",
    "connect": "peerlog.device",
    "open": "peerlog.device",
    "pull": "peerlog.drivers",
}
"""Every public name and the module that defines it."""


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'peerlog' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


if TYPE_CHECKING:
    from peerlog.bucket import (
        BucketLog as BucketLog,
    )
    from peerlog.bucket import (
        BucketStore as BucketStore,
    )
    from peerlog.device import (
        BlockingDevice as BlockingDevice,
    )
    from peerlog.device import (
        Device as Device,
    )
    from peerlog.device import (
        SyncStatus as SyncStatus,
    )
    from peerlog.device import (
        connect as connect,
    )
    from peerlog.device import (
        open as open,
    )
    from peerlog.drivers import (
        Continued as Continued,
    )
    from peerlog.drivers import (
        FileLogIngester as FileLogIngester,
    )
    from peerlog.drivers import (
        FileLogPublisher as FileLogPublisher,
    )
    from peerlog.drivers import (
        FolderSync as FolderSync,
    )
    from peerlog.drivers import (
        Puller as Puller,
    )
    from peerlog.drivers import (
        RelaySync as RelaySync,
    )
    from peerlog.drivers import (
        SyncReport as SyncReport,
    )
    from peerlog.drivers import (
        pull as pull,
    )
    from peerlog.extras import (
        MissingExtraError as MissingExtraError,
    )
    from peerlog.filelog import (
        FileLog as FileLog,
    )
    from peerlog.filelog import (
        FolderDiagnosis as FolderDiagnosis,
    )
    from peerlog.filelog import (
        Ignored as Ignored,
    )
    from peerlog.filelog import (
        OriginReport as OriginReport,
    )
    from peerlog.filelog import (
        Problem as Problem,
    )
    from peerlog.filelog import (
        ProblemKind as ProblemKind,
    )
    from peerlog.filelog import (
        SharedFolder as SharedFolder,
    )
    from peerlog.filelog import (
        Withheld as Withheld,
    )
    from peerlog.home import (
        HomeError as HomeError,
    )
    from peerlog.net import (
        RelayLimits as RelayLimits,
    )
    from peerlog.net import (
        RemoteReplica as RemoteReplica,
    )
    from peerlog.net import (
        TokenStore as TokenStore,
    )
    from peerlog.oplog import (
        ApplyHook as ApplyHook,
    )
    from peerlog.oplog import (
        SqliteOplog as SqliteOplog,
    )
    from peerlog.oplog.postgres import (
        PostgresOplog as PostgresOplog,
    )
    from peerlog.state import (
        REMOVE as REMOVE,
    )
    from peerlog.state import (
        Change as Change,
    )
    from peerlog.state import (
        HistoryItem as HistoryItem,
    )
    from peerlog.state import (
        OpKind as OpKind,
    )
    from peerlog.state import (
        Outcome as Outcome,
    )
    from peerlog.state import (
        StateStore as StateStore,
    )
    from peerlog.state import (
        Transaction as Transaction,
    )
    from peerlog.state.snapshot import StateSnapshot as StateSnapshot
    from peerlog.sync import (
        DIGEST_SIZE as DIGEST_SIZE,
    )
    from peerlog.sync import (
        AccessDeniedError as AccessDeniedError,
    )
    from peerlog.sync import (
        Advanced as Advanced,
    )
    from peerlog.sync import (
        Applied as Applied,
    )
    from peerlog.sync import (
        BackendError as BackendError,
    )
    from peerlog.sync import (
        ClockSkewError as ClockSkewError,
    )
    from peerlog.sync import (
        Closeable as Closeable,
    )
    from peerlog.sync import (
        ClosedError as ClosedError,
    )
    from peerlog.sync import (
        CodecError as CodecError,
    )
    from peerlog.sync import (
        CompactedError as CompactedError,
    )
    from peerlog.sync import (
        CorruptLogError as CorruptLogError,
    )
    from peerlog.sync import (
        CursorMismatchError as CursorMismatchError,
    )
    from peerlog.sync import (
        CursorsEvent as CursorsEvent,
    )
    from peerlog.sync import (
        CursorStream as CursorStream,
    )
    from peerlog.sync import (
        DecodedEntry as DecodedEntry,
    )
    from peerlog.sync import (
        Deferral as Deferral,
    )
    from peerlog.sync import (
        DeferredError as DeferredError,
    )
    from peerlog.sync import (
        DiskFullError as DiskFullError,
    )
    from peerlog.sync import (
        DivergenceError as DivergenceError,
    )
    from peerlog.sync import (
        Entry as Entry,
    )
    from peerlog.sync import (
        Expunged as Expunged,
    )
    from peerlog.sync import (
        FileLogPuller as FileLogPuller,
    )
    from peerlog.sync import (
        FileLogReplica as FileLogReplica,
    )
    from peerlog.sync import (
        FileLogSink as FileLogSink,
    )
    from peerlog.sync import (
        HasCursors as HasCursors,
    )
    from peerlog.sync import (
        HasErasures as HasErasures,
    )
    from peerlog.sync import (
        Hlc as Hlc,
    )
    from peerlog.sync import (
        IdentityError as IdentityError,
    )
    from peerlog.sync import (
        IndexOutOfRangeError as IndexOutOfRangeError,
    )
    from peerlog.sync import (
        InvalidArgumentError as InvalidArgumentError,
    )
    from peerlog.sync import (
        InviteError as InviteError,
    )
    from peerlog.sync import (
        LogProcessor as LogProcessor,
    )
    from peerlog.sync import (
        LogSource as LogSource,
    )
    from peerlog.sync import (
        PeerCursors as PeerCursors,
    )
    from peerlog.sync import (
        QuotaExceededError as QuotaExceededError,
    )
    from peerlog.sync import (
        Replica as Replica,
    )
    from peerlog.sync import (
        Snapshot as Snapshot,
    )
    from peerlog.sync import (
        SnapshotError as SnapshotError,
    )
    from peerlog.sync import (
        SyncError as SyncError,
    )
    from peerlog.sync import (
        TrustError as TrustError,
    )
    from peerlog.sync import (
        WrongGroupError as WrongGroupError,
    )
    from peerlog.sync.batch import (
        MAX_BATCH_BYTES as MAX_BATCH_BYTES,
    )
    from peerlog.sync.batch import (
        MAX_ENTRY_BYTES as MAX_ENTRY_BYTES,
    )
    from peerlog.sync.batch import (
        EntryTooLargeError as EntryTooLargeError,
    )
    from peerlog.trust import (
        Distrust as Distrust,
    )
    from peerlog.trust import (
        SealedLog as SealedLog,
    )

__all__ = [
    "__version__",
    "AccessDeniedError",
    "Advanced",
    "Applied",
    "ApplyHook",
    "BackendError",
    "BucketLog",
    "BucketStore",
    "BlockingDevice",
    "Change",
    "ClockSkewError",
    "CompactedError",
    "SnapshotError",
    "StateSnapshot",
    "Closeable",
    "ClosedError",
    "CodecError",
    "Continued",
    "CorruptLogError",
    "CursorMismatchError",
    "CursorStream",
    "CursorsEvent",
    "DIGEST_SIZE",
    "DecodedEntry",
    "Deferral",
    "DeferredError",
    "Device",
    "DiskFullError",
    "DivergenceError",
    "Entry",
    "EntryTooLargeError",
    "Expunged",
    "FileLog",
    "FileLogIngester",
    "FileLogPublisher",
    "FileLogPuller",
    "FileLogReplica",
    "FileLogSink",
    "FolderDiagnosis",
    "FolderSync",
    "HasCursors",
    "HasErasures",
    "HistoryItem",
    "Hlc",
    "HomeError",
    "IdentityError",
    "Ignored",
    "IndexOutOfRangeError",
    "InvalidArgumentError",
    "LogProcessor",
    "LogSource",
    "MAX_BATCH_BYTES",
    "MAX_ENTRY_BYTES",
    "MissingExtraError",
    "OpKind",
    "OriginReport",
    "Outcome",
    "PeerCursors",
    "PostgresOplog",
    "Problem",
    "ProblemKind",
    "Puller",
    "QuotaExceededError",
    "REMOVE",
    "RelayLimits",
    "RelaySync",
    "RemoteReplica",
    "Replica",
    "SharedFolder",
    "Snapshot",
    "SqliteOplog",
    "StateStore",
    "SyncError",
    "TrustError",
    "WrongGroupError",
    "InviteError",
    "SealedLog",
    "Distrust",
    "SyncReport",
    "SyncStatus",
    "TokenStore",
    "Transaction",
    "Withheld",
    "connect",
    "open",
    "pull",
]
