"""The faces of a replica, as runtime-checkable protocols.

Any object with the right methods qualifies; nothing here needs subclassing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, Self, runtime_checkable
from uuid import UUID

from peerlog.sync.cursors import CursorStream, PeerCursors
from peerlog.sync.entry import DecodedEntry, Entry
from peerlog.sync.errors import CodecError


@runtime_checkable
class Closeable(Protocol):
    """Something holding resources until `aclose` (or ``async with``)."""

    async def aclose(self) -> None:
        """Release everything; idempotent.  Later use raises `ClosedError`."""
        ...


class AsyncClosing:
    """The lifecycle every store shares: ``close``, its alias ``aclose``, and
    ``async with``.  Subclasses implement ``close`` only."""

    async def close(self) -> None:
        raise NotImplementedError

    async def aclose(self) -> None:
        await self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()


@dataclass(frozen=True, slots=True)
class Applied:
    """What `LogProcessor.apply` did: ``new`` is False for an idempotent re-delivery."""

    new: bool


@runtime_checkable
class HasCursors(Protocol):
    """Something whose progress is a `PeerCursors` that can be read and watched."""

    async def cursors(self) -> PeerCursors:
        """A snapshot of every origin's next index."""
        ...

    def watch_cursors(self) -> CursorStream:
        """A `Snapshot` first, then `Advanced` deltas; ends when closed."""
        ...


@runtime_checkable
class LogProcessor(HasCursors, Protocol):
    """The write side: absorbs entries of any origin, never out of order."""

    async def apply(self, peer: UUID, index: int, entry: DecodedEntry) -> Applied:
        """Store ``entry`` at ``(peer, index)``; see docs/contract.md for every rule."""
        ...

    async def apply_many(
        self, peer: UUID, start_index: int, entries: Sequence[DecodedEntry]
    ) -> int:
        """The batch form: one transaction, all-or-nothing; returns how many were new."""
        ...


@runtime_checkable
class LogSource(HasCursors, Protocol):
    """The read side: bounded, ascending batches of one origin's log."""

    async def read_since(
        self, peer: UUID, from_index: int, limit: int | None = None
    ) -> list[tuple[int, DecodedEntry]]:
        """Entries at or after ``from_index``; an empty list means drained."""
        ...


@runtime_checkable
class HasErasures(Protocol):
    """A store that can list the erased slots of a log, so erasures travel.

    An erasure changes a held slot without moving any cursor, so copying
    gaps alone would never carry it to devices that already hold the entry.
    Drivers ask sources with this capability for their erased slots and apply
    the markers below the target's cursor.
    """

    async def erased(self) -> dict[UUID, list[tuple[int, bytes]]]:
        """Every origin's expunged slots: ``(index, digest)``, ascending; one call for all
        origins, so a driver pays one round trip per sync, not one per origin."""
        ...


@runtime_checkable
class BulkApply(Protocol):
    """A processor that can group many `apply_many` calls into few durable commits
    (`SqliteOplog.bulk`); `Puller` uses it for long catch-ups."""

    def bulk(self, commit_every: int = ...) -> AbstractAsyncContextManager[None]:
        """Inside, each `apply_many` stays all or nothing; commits are grouped."""
        ...


@runtime_checkable
class Replica(LogProcessor, LogSource, Protocol):
    """Readable and writable for any origin: one object serves, relays and merges."""


@runtime_checkable
class FileLogPuller(Protocol):
    """Synchronous reader over a shared folder, one directory per origin."""

    def list_peers(self) -> list[UUID]:
        """Origins present in the folder."""
        ...

    def read_entries(
        self, peer: UUID, from_index: int, limit: int | None = None
    ) -> list[tuple[int, DecodedEntry]]:
        """As `LogSource.read_since`, synchronously."""
        ...


@runtime_checkable
class FileLogSink(Protocol):
    """The write side of a file log: its own origin only."""

    @property
    def origin(self) -> UUID:
        """The only origin this sink ever writes."""
        ...

    def append(self, index: int, entry: Entry) -> None:
        """Append at ``index``, which must be the log's next index."""
        ...

    def append_many(self, start_index: int, entries: Sequence[DecodedEntry]) -> None:
        """Append a batch starting at the log's next index.

        Expunged markers are accepted: an entry erased before it was published
        is published as its marker.
        """
        ...

    def expunge(self, index: int) -> None:
        """Replace one of its own entries by an `Expunged` marker, in place."""
        ...


@runtime_checkable
class FileLogReplica(LogSource, FileLogSink, Protocol):
    """A file log: multi-reader, single-writer."""


class OwnOplog(Replica, Protocol):
    """A replica that knows which origin is this device's."""

    @property
    def origin(self) -> UUID: ...

    @property
    def forked_from(self) -> UUID | None:
        """The origin written before the last `continue_as_new_origin`, if any."""
        ...

    async def continue_as_new_origin(self, fork_index: int) -> tuple[UUID, int]:
        """Write as a fresh origin, carrying the own entries from ``fork_index`` on
        (they forked from the published log); returns ``(origin, carried)``."""
        ...

    async def first_indexes(self) -> PeerCursors:
        """Every origin whose log here starts above 0 (compacted), and where."""
        ...


class WithheldRange(Protocol):
    """Entries of an origin a file log holds but cannot serve, from ``from_index`` on."""

    @property
    def from_index(self) -> int: ...

    @property
    def at_least(self) -> int: ...

    @property
    def kind(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Deferral:
    """An origin whose entry at ``index`` waits for this device's clock: it is stamped
    ``ts``, ``ahead_ms`` ahead of the clock when last looked at (see `DeferredError`)."""

    index: int
    ts: int
    ahead_ms: int


class SharedFileLog(FileLogReplica, HasErasures, Protocol):
    """A file log that says where its own origin's log ends, what it erased, and what
    it withholds."""

    def continue_as(self, origin: UUID) -> None:
        """Write as ``origin`` from now on (see `OwnOplog.continue_as_new_origin`)."""
        ...

    @property
    def next_index(self) -> int: ...

    def erased_slots(self, peer: UUID) -> list[tuple[int, bytes]]: ...

    def withheld(self) -> Mapping[UUID, WithheldRange]: ...


@runtime_checkable
class SnapshotState(Protocol):
    """A state that can be written out as a snapshot, take one in, and drop log entries a
    snapshot covers (`peerlog.state.StateStore`)."""

    async def snapshot(self) -> bytes:
        """The state and the frontier it covers, as verified-on-read bytes."""
        ...

    async def load_snapshot(self, data: bytes) -> PeerCursors:
        """Verify and merge a snapshot in (`SnapshotError`: nothing loaded); returns the
        cursors that moved."""
        ...

    async def compact(self, upto: Mapping[UUID, int], *, vacuum: bool = ...) -> int:
        """Drop the log entries below ``upto`` the state no longer needs."""
        ...


@dataclass(frozen=True, slots=True)
class SnapshotMeta:
    """A snapshot a folder or relay offers: its name (the digest), size, maker, time and
    the frontier it covers (docs/file-format.md §9)."""

    name: str
    size: int
    producer: UUID
    created_ms: int
    frontier: PeerCursors

    @property
    def covers(self) -> int:
        """How many entries it covers in all."""
        return sum(self.frontier.values())

    def superseded_by(self, other: SnapshotMeta) -> bool:
        """Whether ``other`` covers everything this one does, and is newer when both cover
        the same (a later snapshot of the same entries may lack a value erased since)."""
        if other.name == self.name or any(other.frontier.of(p) < i
                                          for p, i in self.frontier.items()):
            return False
        return other.frontier != self.frontier or \
            (other.created_ms, other.name) > (self.created_ms, self.name)

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "size": self.size, "producer": str(self.producer),
                "created_ms": self.created_ms, "frontier": self.frontier.to_json()}

    @classmethod
    def from_json(cls, obj: Mapping[str, object]) -> SnapshotMeta:
        """Parse `to_json` output; `CodecError` on anything else."""
        try:
            size, created = obj["size"], obj["created_ms"]
            if type(size) is not int or type(created) is not int:
                raise TypeError("size and created_ms must be integers")
            return cls(str(obj["name"]), size, UUID(str(obj["producer"])), created,
                       PeerCursors.from_json(obj["frontier"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise CodecError(f"not a snapshot description: {exc}") from None



class SnapshotShelfFace(Protocol):
    """Where snapshots are kept: content-addressed, any device may add or remove one."""

    def valid(self) -> Sequence[SnapshotMeta]:
        """Every snapshot whose bytes match its name, the one covering most first."""
        ...

    def read(self, name: str) -> bytes: ...

    def mark_bad(self, name: str, reason: str) -> None:
        """A snapshot that failed to load: not offered again while its bytes stay the same."""
        ...

    def publish(self, data: bytes) -> str: ...

    def remove(self, name: str) -> bool: ...


class DeviceCursorsFace(Protocol):
    """What a device last said it holds, and when (ms since the epoch)."""

    @property
    def cursors(self) -> PeerCursors: ...

    @property
    def written_ms(self) -> int: ...


class CompactingFileLog(SharedFileLog, FileLogPuller, Protocol):
    """A shared folder's file log with snapshots, acknowledgements and compaction."""

    @property
    def snapshots(self) -> SnapshotShelfFace: ...

    def extents(self) -> PeerCursors: ...

    def first_indexes(self) -> PeerCursors: ...

    def device_cursors(self) -> Mapping[UUID, DeviceCursorsFace]: ...

    def last_written_ms(self, peer: UUID) -> int | None:
        """When ``peer``'s newest entry in the folder was stamped (None: it holds none)."""
        ...

    def acknowledge(self, cursors: PeerCursors) -> None: ...

    def compact_below(self, upto: int) -> int: ...

    def start_at(self, index: int) -> None:
        """Begin this origin's empty log at ``index`` (its entries below are in a
        snapshot)."""
        ...


@runtime_checkable
class SnapshotKeeper(Protocol):
    """A relay's store beside the log: snapshots, what each device holds, and compaction
    (`SqliteOplog` and `PostgresOplog` both are one)."""

    async def keep_snapshot(self, meta: SnapshotMeta, data: bytes) -> None: ...

    async def kept_snapshots(self) -> list[SnapshotMeta]: ...

    async def kept_snapshot(self, name: str) -> bytes | None: ...

    async def drop_snapshot(self, name: str) -> bool: ...

    async def keep_cursors(self, origin: UUID, cursors: PeerCursors, written_ms: int
                           ) -> None: ...

    async def kept_cursors(self) -> dict[UUID, tuple[PeerCursors, int]]: ...

    async def first_indexes(self) -> PeerCursors: ...

    async def compact(self, upto: Mapping[UUID, int]) -> int: ...
