"""`SharedFolder` reads every device's log in a shared folder; `FileLog` also writes one.

``root/<origin-uuid>/`` holds each origin's segments (format: docs/file-format.md).
A `FileLog` reads every origin and writes only its own, so it is a
`FileLogPuller`, a `FileLogReplica` (a `LogSource` and a `FileLogSink`) and
`HasCursors`.  Multi-reader, single-writer: any number of devices and
processes may read; one process per machine writes an origin (enforced with
an advisory lock), and one device per origin (a second one is detected).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

from peerlog.filelog.acks import DeviceCursors, read_cursors, write_cursors
from peerlog.filelog.chain import ChainReader, Ignored, OriginChain
from peerlog.filelog.doctor import (
    FolderDiagnosis,
    OriginReport,
    SnapshotReport,
    missing_devices,
)
from peerlog.filelog.durable import real_folder
from peerlog.filelog.names import (
    SNAPSHOTS_FOLDER,
    peer_of_folder,
    segment_first_index,
    why_ignored,
)
from peerlog.filelog.problems import ProblemKind
from peerlog.filelog.snapshots import SnapshotShelf
from peerlog.filelog.writer import OwnLogWriter
from peerlog.sync import defaults
from peerlog.sync.batch import DEFAULT_READ_BATCH, read_bound
from peerlog.sync.cursors import CursorStream, PeerCursors
from peerlog.sync.entry import DecodedEntry, Entry
from peerlog.sync.errors import BackendError, ClosedError
from peerlog.sync.faces import AsyncClosing
from peerlog.sync.hlc import ts_millis, wall_ms
from peerlog.sync.watch import FollowedStore, wait_event

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Withheld:
    """Entries of ``origin`` in the folder that no reader serves, from ``from_index`` on.

    ``at_least`` is a lower bound (what the segment names beyond the damage
    announce, and at least 1); `FileLog.doctor` says what is wrong.
    """

    origin: UUID
    from_index: int
    at_least: int
    kind: ProblemKind
    path: str


def _names(folder: Path) -> list[str]:
    try:
        return os.listdir(folder)
    except OSError:
        return []


class SharedFolder(FollowedStore, AsyncClosing):
    """Every origin's log in a shared folder ``root``, read-only: it needs no origin.

    What `peerlog doctor` and `status` use, and the base of `FileLog`.  Reads
    never return an entry past an origin's valid extent; problems are logged
    once and listed by `doctor`.  ``force_polling`` makes `watch_cursors`
    poll every ``poll_interval`` seconds instead of using file-system events
    (automatic when events fail); with events, a safety rescan runs every
    ``rescan_interval`` seconds for file systems that drop events (some
    cloud placeholders do).
    """

    def __init__(self, root: str | os.PathLike[str], *,
                 read_batch: int = DEFAULT_READ_BATCH, force_polling: bool = False,
                 poll_interval: float = defaults.FOLDER_POLL_INTERVAL,
                 rescan_interval: float = defaults.FOLDER_RESCAN_INTERVAL) -> None:
        self._root = Path(root)
        if not self._root.is_dir():
            raise BackendError(f"shared folder {self._root} does not exist or is not a folder")
        self._read_batch = read_batch
        self._force_polling = force_polling
        self._poll_interval = poll_interval
        self._rescan_interval = rescan_interval
        self._reader = ChainReader(self._root)
        self.snapshots = SnapshotShelf(self._root)
        """The folder's state snapshots."""
        self._follow_name = f"peerlog-filelog-watch:{self._root}"
        FollowedStore.__init__(self)

    @property
    def root(self) -> Path:
        """The shared folder."""
        return self._root

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"the file log of {self._root} is closed")

    # -- FileLogPuller --------------------------------------------------------

    def list_peers(self) -> list[UUID]:
        """Origins present: folders named by a canonical UUID."""
        self._check_open()
        try:
            names = os.listdir(self._root)
        except OSError as exc:
            raise BackendError(f"cannot list shared folder {self._root}: {exc}") from exc
        peers = [p for p in map(peer_of_folder, names) if p is not None]
        # A symlinked device folder is listed (so `doctor` and `withheld` report it)
        # but its chain is empty: it is never followed.
        return sorted(p for p in peers if real_folder(self._root / str(p))
                      or os.path.islink(self._root / str(p)))

    def read_entries(self, peer: UUID, from_index: int,
                     limit: int | None = None) -> list[tuple[int, DecodedEntry]]:
        """A bounded batch of ``peer``'s valid entries from ``from_index``, ascending."""
        self._check_open()
        bound = read_bound(from_index, limit, self._read_batch)
        if bound == 0:
            return []
        chain = self._reader.chain(peer)
        try:
            return self._reader.read(chain, from_index, bound)
        except OSError as exc:
            raise BackendError(f"cannot read origin {peer} in {self._root}: {exc}") from exc

    def erased_slots(self, peer: UUID) -> list[tuple[int, bytes]]:
        """``(index, digest)`` of every expunged slot within ``peer``'s valid extent."""
        self._check_open()
        chain = self._reader.chain(peer)
        out: list[tuple[int, bytes]] = []
        for seg in chain.segments:
            assert seg.scan is not None
            for ref in seg.scan.records:
                for index in ref.erased:
                    if index < chain.extent:
                        [(_, marker)] = self._reader.read(chain, index, 1)
                        out.append((index, marker.digest))
        return out

    async def erased(self) -> dict[UUID, list[tuple[int, bytes]]]:
        """`erased_slots` of every origin in the folder, in a worker thread."""
        def work() -> dict[UUID, list[tuple[int, bytes]]]:
            found = {peer: self.erased_slots(peer) for peer in self.list_peers()}
            return {peer: slots for peer, slots in found.items() if slots}
        return await asyncio.to_thread(work)

    def first_indexes(self) -> PeerCursors:
        """Every origin whose log in the folder was compacted: where it now starts."""
        return self._per_origin(lambda chain: chain.first)

    def device_cursors(self) -> dict[UUID, DeviceCursors]:
        """What each device in the folder last said it holds (``cursors.json``)."""
        self._check_open()
        found = {peer: read_cursors(self._root / str(peer), peer) for peer in self.list_peers()}
        return {peer: got for peer, got in found.items() if got is not None}

    def extents(self) -> PeerCursors:
        """Every origin's valid extent (the synchronous form of `cursors`)."""
        return self._per_origin(lambda chain: chain.extent)

    def _per_origin(self, pick: Callable[[OriginChain], int]) -> PeerCursors:
        """``pick(chain)`` of every origin's chain, where it is not 0."""
        self._check_open()
        out = PeerCursors()
        for peer in self.list_peers():
            value = pick(self._reader.chain(peer))
            if value:
                out[peer] = value
        return out

    def withheld(self) -> dict[UUID, Withheld]:
        """Every origin whose log in the folder has entries readers cannot serve.

        A tail still being written or copied (``incomplete``) is the normal
        state of a live folder and is not listed; damage, gaps, forks and
        unreadable segments are.
        """
        self._check_open()
        out: dict[UUID, Withheld] = {}
        for peer in self.list_peers():
            chain = self._reader.chain(peer)
            for problem in chain.problems:
                if problem.withheld_from is None or problem.kind == ProblemKind.INCOMPLETE:
                    continue
                named = [first for first in map(segment_first_index, _names(self._root / str(peer)))
                         if first is not None]
                beyond = max(named, default=problem.withheld_from) - problem.withheld_from
                out[peer] = Withheld(peer, problem.withheld_from, max(beyond, 1),
                                     problem.kind, problem.path)
                break
        return out

    # -- LogSource / HasCursors -----------------------------------------------

    async def read_since(self, peer: UUID, from_index: int,
                         limit: int | None = None) -> list[tuple[int, DecodedEntry]]:
        """`read_entries` in a worker thread."""
        return await asyncio.to_thread(self.read_entries, peer, from_index, limit)

    async def cursors(self) -> PeerCursors:
        """`extents` in a worker thread."""
        return await asyncio.to_thread(self.extents)

    def watch_cursors(self) -> CursorStream:
        """A `Snapshot`, then `Advanced` whenever an origin's extent grows.

        Follows file-system events through ``watchfiles`` (so a sync tool copying
        a segment in wakes it), falling back to polling where events fail.
        """
        return FollowedStore.watch_cursors(self)

    async def _follow(self, stop: asyncio.Event) -> None:
        self._known = await self.cursors()
        while not stop.is_set():
            if self._force_polling:
                await self._refresh()
                await wait_event(stop, self._poll_interval)
                continue
            try:
                import watchfiles  # Rust-backed: loaded only when someone watches

                async for _changes in watchfiles.awatch(
                        self._root, stop_event=stop, debounce=50, step=20,
                        rust_timeout=int(self._rescan_interval * 1000), yield_on_timeout=True,
                        ignore_permission_denied=True):
                    await self._refresh()
            except (OSError, RuntimeError) as exc:
                log.warning("file-system events unavailable for %s (%s); polling every %.1fs",
                            self._root, exc, self._poll_interval)
                self._force_polling = True

    async def _refresh(self) -> None:
        try:
            current = await self.cursors()
        except (BackendError, ClosedError) as exc:
            log.warning("cannot rescan %s: %s", self._root, exc)
            return
        self._hub.publish(self._moved_since_known(current))

    # -- diagnosis ------------------------------------------------------------

    def check_copies_with(self, authentic: Callable[[UUID, int, list[DecodedEntry]], bool]
                          ) -> None:
        """Judge sync tools' conflict copies by signature (`ChainReader.authentic`)."""
        self._reader.authentic = authentic

    def doctor(self) -> FolderDiagnosis:
        """Everything wrong in the shared folder and everything ignored there."""
        self._check_open()
        ignored: list[Ignored] = []
        origins: list[OriginReport] = []
        for name in sorted(os.listdir(self._root)):
            path = self._root / name
            if name == SNAPSHOTS_FOLDER and real_folder(path):
                ignored.extend(Ignored(str(path / bad.name), f"not a usable snapshot: "
                                       f"{bad.reason}") for bad in self.snapshots.bad())
                continue
            peer = peer_of_folder(name)
            if peer is None or not (real_folder(path) or path.is_symlink()):
                reason = why_ignored(name)
                if reason == "not a segment name":
                    reason = "not a peer folder (the name is not an origin UUID)" \
                        if path.is_dir() else "a file at the top of the shared folder"
                ignored.append(Ignored(str(path), reason))
                continue
            chain = self._reader.chain(peer)
            ignored.extend(chain.ignored)
            origins.append(OriginReport(peer, chain.extent, len(chain.segments),
                                        tuple(chain.problems), self._ahead(chain),
                                        chain.first))
        snapshots = self.snapshots.valid()
        return FolderDiagnosis(
            str(self._root), tuple(origins), tuple(ignored),
            tuple(SnapshotReport(s.name, s.producer, s.covers, s.size) for s in snapshots),
            missing_devices({o.origin for o in origins}, self.device_cursors().values(),
                            snapshots))

    def _ahead(self, chain: OriginChain) -> int:
        last = self._last_ms(chain)
        ahead = 0 if last is None else last - wall_ms()
        return ahead if ahead > defaults.MAX_SKEW_MS else 0

    def last_written_ms(self, peer: UUID) -> int | None:
        """The clock time of ``peer``'s newest entry in the folder (None: none held)."""
        return self._last_ms(self._reader.chain(peer))

    def _last_ms(self, chain: OriginChain) -> int | None:
        last = self._reader.read(chain, chain.extent - 1, 1) if chain.extent > chain.first \
            else []
        if not last or type(last[0][1]) is not Entry:
            return None
        return ts_millis(last[0][1].ts)

    # -- lifecycle ------------------------------------------------------------

    def __repr__(self) -> str:
        return f"<SharedFolder {str(self._root)!r}>"


class FileLog(SharedFolder):
    """The file log of a shared folder ``root``, writing as ``origin``.

    A `FileLogPuller`, a `FileLogReplica` (a `LogSource` and a `FileLogSink`)
    and `HasCursors`: it reads every origin and writes only its own, whose
    folder is created on the first write.  Several processes of one device
    may write it (each write holds the origin's lock), and another device
    writing the same origin is refused as a divergence.
    """

    def __init__(self, root: str | os.PathLike[str], origin: UUID, *,
                 read_batch: int = DEFAULT_READ_BATCH, force_polling: bool = False,
                 poll_interval: float = defaults.FOLDER_POLL_INTERVAL,
                 rescan_interval: float = defaults.FOLDER_RESCAN_INTERVAL) -> None:
        super().__init__(root, read_batch=read_batch, force_polling=force_polling,
                         poll_interval=poll_interval, rescan_interval=rescan_interval)
        self._origin = origin
        self._writer = OwnLogWriter(self._root, origin, self._reader)
        self._acknowledged: PeerCursors | None = None

    @property
    def origin(self) -> UUID:
        """The only origin this log writes."""
        return self._origin

    # -- FileLogSink ----------------------------------------------------------

    @property
    def next_index(self) -> int:
        """The index the next `append` must use: this origin's extent in the folder."""
        self._check_open()
        return self._writer.next_index

    def append(self, index: int, entry: Entry) -> None:
        """Append one entry at ``index`` (the log's next); durable on return."""
        self.append_many(index, (entry,))

    def append_many(self, start_index: int, entries: Sequence[DecodedEntry]) -> None:
        """Append a batch from ``start_index``; durable on return, all or nothing on reopen.

        Expunged markers may be appended too (an entry erased before it was
        published).  Raises `CursorMismatchError` when ``start_index`` is not
        the next index, `DivergenceError` when another device has written this
        origin's log, `CodecError` for a malformed entry or a damaged own log.
        """
        self._check_open()
        self._writer.append_many(start_index, entries)
        if entries:
            self._announce({self._origin: start_index + len(entries)})

    def expunge(self, index: int) -> None:
        """Erase one of this origin's entries in place (crash-safe rewrite of its segment)."""
        self._check_open()
        self._writer.expunge(index)

    def acknowledge(self, cursors: PeerCursors) -> None:
        """Say in the folder what this device holds (``cursors.json``), if it changed."""
        self._check_open()
        if cursors == self._acknowledged:
            return
        folder = self._root / str(self._origin)
        try:
            folder.mkdir(mode=0o700, exist_ok=True)
            write_cursors(folder, self._origin, cursors, wall_ms())
        except OSError as exc:
            raise BackendError(f"cannot write {folder}'s cursors: {exc}") from exc
        self._acknowledged = PeerCursors(cursors)

    def start_at(self, index: int) -> None:
        """Begin this origin's empty log at ``index`` (see `OwnLogWriter.start_at`)."""
        self._check_open()
        self._writer.start_at(index)
        self._announce({self._origin: index})

    def compact_below(self, upto: int) -> int:
        """Remove this origin's segments that hold only entries below ``upto`` (see
        `OwnLogWriter.compact_below`); returns how many files were removed."""
        self._check_open()
        return len(self._writer.compact_below(upto))

    def set_aside_from(self, index: int) -> int:
        """Move this origin's entries from ``index`` on aside (see
        `OwnLogWriter.set_aside_from`); returns how many files were set aside."""
        self._check_open()
        return len(self._writer.set_aside_from(index))

    def continue_as(self, origin: UUID) -> None:
        """Write as ``origin`` from now on: the device continues as a new origin (its old
        one forked); the old origin's log is then read like any other device's."""
        self._check_open()
        old, self._writer = self._writer, OwnLogWriter(self._root, origin, self._reader)
        self._origin = origin
        self._acknowledged = None
        old.close()

    async def close(self) -> None:
        """Release the writer and end every watch. Idempotent."""
        await super().close()
        self._writer.close()

    def __repr__(self) -> str:
        return f"<FileLog {str(self._root)!r} origin={self._origin}>"
