"""`BucketLog`: every device's log in an object-storage bucket; it writes its own.

The bucket twin of `peerlog.filelog.FileLog`, with the same faces (a
`CompactingFileLog`), so the folder drivers, snapshots and encrypted groups work
through it unchanged.  The layout is in `peerlog.bucket.layout` and
docs/file-format.md §12.  What differs from a folder:

- **Immutable batches.**  Each `append_many` writes one object, named by its origin
  and first index, with put-if-absent.  An object is all or nothing, so a writer
  killed mid-upload leaves no half batch; a second device writing the same origin
  (a cloned home) is refused by the bucket itself, which is reported as
  `DivergenceError` and never overwrites.
- **Cheap to follow.**  Each origin is listed from a start-after cursor (the last
  log key seen), so a poll costs one LIST per origin plus one for the bucket's top
  level, whatever the log's length.  Batches are read once and cached.
- **Erasure** rewrites the batch object in place (the only overwrite) and then
  writes an erasure notice, a key that sorts after everything already written,
  so devices past that batch learn of it from their next listing.

Multi-reader, single-writer per origin, like a folder: any number of devices and
processes read; one device writes an origin, and two processes of that device
writing at once are ordered by put-if-absent (the second gets
`CursorMismatchError` naming the new end, as in a folder).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from uuid import UUID

from peerlog.bucket.layout import (
    Batch,
    ErasureNotice,
    Start,
    batch_key,
    cursors_key,
    notice_key,
    parse_log_key,
    set_aside_key,
    start_key,
    why_ignored,
)
from peerlog.bucket.snapshots import BucketShelf
from peerlog.bucket.store import AlreadyExists, BucketStore, ObjectInfo
from peerlog.filelog.acks import DeviceCursors, decode_cursors, encode_cursors
from peerlog.filelog.chain import Ignored, Problem
from peerlog.filelog.doctor import (
    FolderDiagnosis,
    OriginReport,
    SnapshotReport,
    missing_devices,
)
from peerlog.filelog.format import (
    HEADER_SIZE,
    HeaderError,
    Scan,
    decode_header,
    decode_record,
    encode_header,
    encode_record,
    scan_records,
    split_records,
)
from peerlog.filelog.log import Withheld
from peerlog.filelog.names import CURSORS_FILE, SNAPSHOTS_FOLDER, peer_of_folder
from peerlog.filelog.problems import ProblemKind
from peerlog.sync import defaults
from peerlog.sync.batch import DEFAULT_READ_BATCH, byte_prefix, read_bound
from peerlog.sync.cursors import CursorStream, PeerCursors
from peerlog.sync.entry import DecodedEntry, Entry, Expunged, check_entry
from peerlog.sync.errors import (
    BackendError,
    ClosedError,
    CompactedError,
    CorruptLogError,
    CursorMismatchError,
    IndexOutOfRangeError,
)
from peerlog.sync.faces import AsyncClosing
from peerlog.sync.hlc import ts_millis, wall_ms
from peerlog.sync.rules import refuse_rewrite
from peerlog.sync.watch import FollowedStore, wait_event

log = logging.getLogger(__name__)

CACHE_BYTES = 256 << 20
"""Batch bytes kept in memory for reading (least recently used out first)."""
TOP_LEVEL = (SNAPSHOTS_FOLDER, "peerlog-group.json")


@dataclass(slots=True)
class _Listing:
    """One origin's keys as listed so far, from the start-after cursor ``after``."""

    after: str | None = None
    batches: dict[int, ObjectInfo] = field(default_factory=dict)
    starts: set[int] = field(default_factory=set)
    notices: dict[int, ErasureNotice] = field(default_factory=dict)
    notice_count: int = 0
    cursors: ObjectInfo | None = None
    ignored: dict[str, str] = field(default_factory=dict)
    listed_at: float = -1.0
    version: int = 0


@dataclass(slots=True)
class _Object:
    """A batch object as last read: its validated records, or why it is unusable."""

    key: str
    first: int
    scan: Scan | None = None
    problem: tuple[ProblemKind, str] | None = None


@dataclass(slots=True)
class _Chain:
    """The valid run of one origin's batches and what stops it."""

    origin: UUID
    first: int = 0
    extent: int = 0
    objects: list[_Object] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    version: int = -1


class BucketLog(FollowedStore, AsyncClosing):
    """Every origin's log in the bucket at ``url``, writing as ``origin``.

    ``endpoint`` names an S3-compatible server (else ``$AWS_ENDPOINT_URL``, else AWS);
    credentials come from the environment as each cloud's tools expect.  Live
    watching lists every ``poll_interval`` seconds after a change, backing off to
    ``poll_max`` while the bucket stays idle; a local write brings the interval
    back down.  Reads and listings younger than ``fresh`` seconds are reused.
    """

    def __init__(self, url: str | BucketStore, origin: UUID, *, endpoint: str | None = None,
                 read_batch: int = DEFAULT_READ_BATCH,
                 poll_interval: float = defaults.BUCKET_POLL_INTERVAL,
                 poll_max: float = defaults.BUCKET_POLL_MAX,
                 fresh: float = defaults.BUCKET_FRESH) -> None:
        self.store = url if isinstance(url, BucketStore) else BucketStore(url, endpoint=endpoint)
        self._origin = origin
        self._read_batch = read_batch
        self._poll_interval = poll_interval
        self._poll_max = poll_max
        self._fresh = fresh
        self.snapshots = BucketShelf(self.store)
        """The bucket's state snapshots."""
        self._lock = threading.RLock()
        self._peers: set[UUID] = set()
        self._top_listed_at = -1.0
        self._top_ignored: dict[str, str] = {}
        self._listings: dict[UUID, _Listing] = {}
        self._objects: dict[str, _Object] = {}
        self._bytes: OrderedDict[str, bytes] = OrderedDict()
        self._cached_bytes = 0
        self._chains: dict[UUID, _Chain] = {}
        self._next: int | None = None
        self._acknowledged: PeerCursors | None = None
        self._poke: asyncio.Event | None = None
        self._reported: set[tuple[str, str]] = set()
        self._said: dict[UUID, tuple[tuple[str, int], DeviceCursors | None]] = {}
        self._follow_name = f"peerlog-bucket-watch:{self.store.url}"
        FollowedStore.__init__(self)

    place = "the bucket"
    """What the drivers call it in messages."""
    safety_round = defaults.BUCKET_SAFETY_ROUND
    """Seconds between the drivers' safety rounds (a folder's are 30 s): this log's watch
    is itself a poll, so a safety round only repeats it."""

    @property
    def root(self) -> str:
        """The bucket URL (where a folder log has its path)."""
        return self.store.url

    @property
    def origin(self) -> UUID:
        """The only origin this log writes."""
        return self._origin

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"the bucket log of {self.store.url} is closed")

    # -- listing ----------------------------------------------------------------

    def _list_top(self, max_age: float) -> None:
        if self._top_listed_at >= 0 and time.monotonic() - self._top_listed_at <= max_age:
            return
        prefixes, objects = self.store.list_top()
        ignored: dict[str, str] = {}
        for name in prefixes:
            peer = peer_of_folder(name)
            if peer is not None:
                self._peers.add(peer)
            elif name != SNAPSHOTS_FOLDER:
                ignored[name + "/"] = "not a device prefix (the name is not an origin UUID)"
        for obj in objects:
            if obj.key not in TOP_LEVEL:
                ignored[obj.key] = "an object at the top of the bucket"
        self._top_ignored = ignored
        self._top_listed_at = time.monotonic()

    def _list_origin(self, peer: UUID, max_age: float, *, whole: bool = False) -> bool:
        """List ``peer``'s new keys if the last listing is older than ``max_age``; True
        when something changed.  ``whole`` lists from the start (after a surprise:
        an object gone that was listed, a compaction missed)."""
        listing = self._listings.setdefault(peer, _Listing())
        if not whole and listing.listed_at >= 0 \
                and time.monotonic() - listing.listed_at <= max_age:
            return False
        if whole:
            listing = self._listings[peer] = _Listing(version=listing.version + 1)
        prefix = f"{peer}/"
        changed = False
        for obj in self.store.list_keys(prefix, None if listing.after is None
                                   else prefix + listing.after):
            name = obj.key[len(prefix):]
            key = parse_log_key(name)
            if key is None:
                if name == CURSORS_FILE:
                    listing.cursors = obj
                else:
                    listing.ignored[obj.key] = why_ignored(name)
                continue
            changed = True
            listing.after = name
            if isinstance(key, Batch):
                listing.batches[key.first] = obj
            elif isinstance(key, Start):
                listing.starts.add(key.first)
            else:
                listing.notices[key.index] = key
                listing.notice_count = max(listing.notice_count, key.n + 1)
                self._forget_containing(peer, key.index)
        listing.listed_at = time.monotonic()
        if changed:
            self._peers.add(peer)
            listing.version += 1
        return changed

    def _refresh(self, max_age: float) -> None:
        self._list_top(max_age)
        for peer in sorted(self._peers):
            self._list_origin(peer, max_age)

    # -- batch objects ----------------------------------------------------------

    def _forget_containing(self, peer: UUID, index: int) -> None:
        """Drop the cached batch holding ``index`` (an erasure rewrote it)."""
        prefix = f"{peer}/"
        for key, obj in list(self._objects.items()):
            if key.startswith(prefix) and obj.first <= index \
                    and (obj.scan is None or index < obj.scan.next_index):
                del self._objects[key]
                self._drop_bytes(key)
        self._chains.pop(peer, None)

    def _drop_bytes(self, key: str) -> None:
        data = self._bytes.pop(key, None)
        if data is not None:
            self._cached_bytes -= len(data)

    def _keep_bytes(self, key: str, data: bytes) -> None:
        self._drop_bytes(key)
        self._bytes[key] = data
        self._cached_bytes += len(data)
        while self._cached_bytes > CACHE_BYTES and len(self._bytes) > 1:
            _, old = self._bytes.popitem(last=False)
            self._cached_bytes -= len(old)

    def _examine(self, peer: UUID, key: str, first: int, data: bytes) -> _Object:
        obj = _Object(key, first)
        try:
            origin, header_first = decode_header(data)
        except HeaderError as exc:
            kind = exc.kind
            if kind == ProblemKind.INCOMPLETE:
                kind = ProblemKind.CORRUPT  # an object never grows: it stays this short
            obj.problem = (kind, str(exc))
            return obj
        if origin != peer:
            obj.problem = (ProblemKind.FOREIGN_ORIGIN, f"batch belongs to origin {origin}")
        elif header_first != first:
            obj.problem = (ProblemKind.MISNAMED, f"header says first index {header_first}, "
                           f"the name says {first}")
        else:
            obj.scan = scan_records(data, HEADER_SIZE, first)
            if obj.scan.next_index == first and obj.scan.stop is None:
                obj.problem = (ProblemKind.CORRUPT, "a batch with no entries")
        return obj

    def _load(self, peer: UUID, first: int) -> tuple[_Object, bytes] | None:
        """The batch at ``first`` and its bytes, read if not cached; None when it is gone
        (the origin's listing is then redone from the start)."""
        key = batch_key(peer, first)
        data = self._bytes.get(key)
        obj = self._objects.get(key)
        if data is not None and obj is not None:
            self._bytes.move_to_end(key)
            return obj, data
        try:
            data = self.store.get(key)
        except FileNotFoundError:
            log.info("bucket: %s is gone (compacted?); listing %s again", key, peer)
            self._list_origin(peer, 0, whole=True)
            return None
        obj = self._examine(peer, key, first, data)
        self._objects[key] = obj
        self._keep_bytes(key, data)
        return obj, data

    def _scanned(self, peer: UUID, first: int) -> _Object | None:
        obj = self._objects.get(batch_key(peer, first))
        if obj is not None:
            return obj
        got = self._load(peer, first)
        return None if got is None else got[0]

    def _chain(self, peer: UUID) -> _Chain:
        """The valid run of ``peer``'s batches from where its log starts."""
        for _attempt in range(3):
            listing = self._listings.get(peer) or _Listing()
            cached = self._chains.get(peer)
            if cached is not None and cached.version == listing.version:
                return cached
            chain = _Chain(peer, version=listing.version)
            if self._walk(peer, listing, chain):
                self._chains[peer] = chain
                return chain
        return chain

    def _walk(self, peer: UUID, listing: _Listing, chain: _Chain) -> bool:
        """Fill ``chain``; False when an object vanished meanwhile (walk again)."""
        chain.first = max(listing.starts, default=0)
        expected = chain.first
        firsts = sorted(f for f in listing.batches if f >= chain.first)
        for first in firsts:
            key = batch_key(peer, first)
            if first != expected:
                kind, detail = (ProblemKind.GAP, f"batch starts at index {first} but the log "
                                f"so far ends at {expected} (a batch missing)") \
                    if first > expected else (ProblemKind.OVERLAP, f"batch starts at index "
                                              f"{first}, inside entries read up to {expected}")
                self._add(chain, Problem(peer, key, kind, detail, expected))
                break
            obj = self._scanned(peer, first)
            if obj is None:
                return False
            if obj.problem is not None:
                self._add(chain, Problem(peer, key, obj.problem[0], obj.problem[1], expected))
                break
            assert obj.scan is not None
            chain.objects.append(obj)
            expected = obj.scan.next_index
            if obj.scan.stop is not None:
                kind = ProblemKind.INCOMPLETE if obj.scan.stop == ProblemKind.INCOMPLETE \
                    else ProblemKind.CORRUPT
                self._add(chain, Problem(peer, key, kind, obj.scan.detail + (
                    " (an object cut short: uploaded by another tool, or damaged)"
                    if kind == ProblemKind.INCOMPLETE else ""), expected))
                break
        chain.extent = expected
        return True

    def _add(self, chain: _Chain, problem: Problem) -> None:
        chain.problems.append(problem)
        if (problem.path, problem.detail) not in self._reported:
            self._reported.add((problem.path, problem.detail))
            log.warning("bucket: %s", problem)

    def _fresh_chain(self, peer: UUID, max_age: float) -> _Chain:
        self._list_origin(peer, max_age)
        return self._chain(peer)

    # -- reading (FileLogPuller, LogSource) --------------------------------------

    def list_peers(self) -> list[UUID]:
        """Origins with a prefix in the bucket."""
        self._check_open()
        with self._lock:
            self._list_top(self._fresh)
            return sorted(self._peers)

    def read_entries(self, peer: UUID, from_index: int,
                     limit: int | None = None) -> list[tuple[int, DecodedEntry]]:
        """A bounded batch of ``peer``'s valid entries from ``from_index``, ascending;
        `CompactedError` below where its log now starts."""
        self._check_open()
        bound = read_bound(from_index, limit, self._read_batch)
        if bound == 0:
            return []
        with self._lock:
            chain = self._fresh_chain(peer, float("inf"))
            if from_index >= chain.extent:
                chain = self._fresh_chain(peer, self._fresh)
            if from_index < chain.first:
                raise CompactedError(peer, from_index, chain.first)
            return self._read(chain, from_index, min(chain.extent, from_index + bound))

    def _read(self, chain: _Chain, lo: int, hi: int) -> list[tuple[int, DecodedEntry]]:
        out: list[tuple[int, DecodedEntry]] = []
        firsts = [o.first for o in chain.objects]
        position = bisect.bisect_right(firsts, lo) - 1
        index = lo
        while index < hi and 0 <= position < len(chain.objects):
            got = self._load(chain.origin, chain.objects[position].first)
            if got is None:
                break  # compacted meanwhile: the next read starts over
            obj, data = got
            if obj.scan is None:
                break
            for ref in obj.scan.records:
                rlo = max(index - ref.first_index, 0)
                rhi = min(hi - ref.first_index, ref.count)
                if rlo < rhi:
                    out.extend(decode_record(data, ref.offset, ref.first_index, ref.count,
                                             rlo, rhi))
            fit = byte_prefix(map(itemgetter(1), out))
            if fit < len(out):  # the byte bound of a batch (sync.batch.MAX_BATCH_BYTES)
                del out[fit:]
                break
            if not out or out[-1][0] + 1 <= index:
                break
            index = out[-1][0] + 1
            position += 1
        return out

    async def read_since(self, peer: UUID, from_index: int,
                         limit: int | None = None) -> list[tuple[int, DecodedEntry]]:
        """`read_entries` in a worker thread."""
        return await asyncio.to_thread(self.read_entries, peer, from_index, limit)

    def extents(self) -> PeerCursors:
        """Every origin's valid extent, from listings younger than ``fresh``."""
        return self._per_origin(self._fresh, lambda chain: chain.extent)

    def first_indexes(self) -> PeerCursors:
        """Every origin whose log in the bucket was compacted: where it now starts."""
        return self._per_origin(self._fresh, lambda chain: chain.first)

    def _per_origin(self, max_age: float, pick: Callable[[_Chain], int]) -> PeerCursors:
        self._check_open()
        out = PeerCursors()
        with self._lock:
            self._refresh(max_age)
            for peer in sorted(self._peers):
                value = pick(self._chain(peer))
                if value:
                    out[peer] = value
        return out

    async def cursors(self) -> PeerCursors:
        """Every origin's extent, listing what is new (one LIST per origin, plus one)."""
        return await asyncio.to_thread(self._per_origin, 0.0, lambda chain: chain.extent)

    def erased_slots(self, peer: UUID) -> list[tuple[int, bytes]]:
        """``(index, digest)`` of every expunged slot within ``peer``'s valid extent."""
        self._check_open()
        with self._lock:
            chain = self._fresh_chain(peer, float("inf"))
            out: list[tuple[int, bytes]] = []
            for obj in chain.objects:
                assert obj.scan is not None
                for ref in obj.scan.records:
                    for index in ref.erased:
                        got = self._read(chain, index, index + 1) \
                            if index < chain.extent else []
                        if got and type(got[0][1]) is Expunged:
                            out.append((index, got[0][1].digest))
            return out

    async def erased(self) -> dict[UUID, list[tuple[int, bytes]]]:
        """`erased_slots` of every origin, in a worker thread."""
        def work() -> dict[UUID, list[tuple[int, bytes]]]:
            found = {peer: self.erased_slots(peer) for peer in self.list_peers()}
            return {peer: slots for peer, slots in found.items() if slots}
        return await asyncio.to_thread(work)

    def withheld(self) -> dict[UUID, Withheld]:
        """Every origin whose log in the bucket has entries readers cannot serve."""
        self._check_open()
        out: dict[UUID, Withheld] = {}
        with self._lock:
            self._list_top(self._fresh)
            for peer in sorted(self._peers):
                chain = self._fresh_chain(peer, self._fresh)
                for problem in chain.problems:
                    if problem.withheld_from is None:
                        continue
                    listing = self._listings[peer]
                    beyond = max(listing.batches, default=problem.withheld_from) \
                        - problem.withheld_from
                    out[peer] = Withheld(peer, problem.withheld_from, max(beyond, 1),
                                         problem.kind, problem.path)
                    break
        return out

    def device_cursors(self) -> dict[UUID, DeviceCursors]:
        """What each device in the bucket last said it holds (``cursors.json``)."""
        self._check_open()
        out: dict[UUID, DeviceCursors] = {}
        with self._lock:
            self._refresh(self._fresh)
            for peer, listing in sorted(self._listings.items()):
                if listing.cursors is None:
                    continue
                info = listing.cursors
                cached = self._said.get(peer)
                if cached is None or cached[0] != (info.etag, info.size) or not info.etag:
                    try:
                        raw = self.store.get(info.key)
                    except FileNotFoundError:
                        continue
                    cached = ((info.etag, info.size), decode_cursors(raw, peer, info.key))
                    self._said[peer] = cached
                if cached[1] is not None:
                    out[peer] = cached[1]
        return out

    def last_written_ms(self, peer: UUID) -> int | None:
        """When ``peer``'s newest entry in the bucket was stamped (None: it holds none)."""
        with self._lock:
            chain = self._fresh_chain(peer, self._fresh)
            if chain.extent <= chain.first:
                return None
            last = self._read(chain, chain.extent - 1, chain.extent)
        if not last or type(last[0][1]) is not Entry:
            return None
        return ts_millis(last[0][1].ts)

    # -- writing (FileLogSink) ----------------------------------------------------

    def _own_end(self, max_age: float) -> int:
        """This origin's extent; `CorruptLogError` when its own log is damaged."""
        chain = self._fresh_chain(self._origin, max_age)
        for problem in chain.problems:
            raise CorruptLogError(
                f"refusing to write origin {self._origin}: its own log is damaged "
                f"({problem}); run `peerlog doctor --bucket` and remove the damaged object")
        self._next = chain.extent
        return chain.extent

    @property
    def next_index(self) -> int:
        """The index the next `append_many` must use: this origin's extent in the bucket."""
        self._check_open()
        with self._lock:
            return self._own_end(self._fresh)

    def append(self, index: int, entry: Entry) -> None:
        """Append one entry at ``index`` (the log's next)."""
        self.append_many(index, (entry,))

    def append_many(self, start_index: int, entries: Sequence[DecodedEntry]) -> None:
        """Write a batch from ``start_index`` as one object, put-if-absent.

        `CursorMismatchError` when ``start_index`` is not the next index (or another
        process of this device wrote it first, with the same entries), `DivergenceError`
        when another device wrote this origin's log there, `CodecError` for a malformed
        entry, `CorruptLogError` when this origin's log is damaged.
        """
        self._check_open()
        for entry in entries:
            check_entry(entry)
        cuts = split_records(entries)
        with self._lock:
            end = self._next if self._next is not None else self._own_end(float("inf"))
            if start_index < end:
                end = self._own_end(0)
                if start_index < end:
                    self._refuse_rewrite(start_index, entries, end)
            if start_index != end:
                raise CursorMismatchError(end, start_index, peer=self._origin)
            if not entries:
                return
            data = b"".join([encode_header(self._origin, start_index)] + [
                encode_record(start_index + lo, entries[lo:hi]) for lo, hi in cuts])
            key = batch_key(self._origin, start_index)
            try:
                self.store.put_new(key, data)
            except AlreadyExists:
                end = self._own_end(0)
                self._refuse_rewrite(start_index, entries, end)
            self._took(key, start_index, data)
            self._next = start_index + len(entries)
        self._announce({self._origin: start_index + len(entries)})

    def _took(self, key: str, first: int, data: bytes) -> None:
        """Remember a batch this log wrote, so it is not read back."""
        listing = self._listings.setdefault(self._origin, _Listing())
        listing.batches[first] = ObjectInfo(key, len(data), "")
        # ``after`` stays: the next listing sees this key again, and whatever another
        # process of this device wrote before it (an erasure notice).
        listing.version += 1
        self._peers.add(self._origin)
        self._objects[key] = self._examine(self._origin, key, first, data)
        self._keep_bytes(key, data)

    def _refuse_rewrite(self, start: int, entries: Sequence[DecodedEntry], end: int) -> None:
        """Indexes already written: by another process of this device or by another
        device (`peerlog.sync.rules.refuse_rewrite` says which)."""
        held = self._read(self._chain(self._origin), start, min(start + len(entries), end))
        refuse_rewrite(self._origin, start, end, held, entries, self.store.url)

    def expunge(self, index: int) -> None:
        """Erase one of this origin's entries: its batch object is rewritten with the
        marker, then an erasure notice tells readers already past it."""
        self._check_open()
        with self._lock:
            end = self._own_end(0)
            chain = self._chain(self._origin)
            if not chain.first <= index < end:
                raise IndexOutOfRangeError(
                    f"cannot expunge index {index} of {self._origin}: the bucket holds "
                    f"{chain.first}..{end - 1}")
            firsts = [o.first for o in chain.objects]
            first = firsts[bisect.bisect_right(firsts, index) - 1]
            key = batch_key(self._origin, first)
            try:
                # Read afresh, never from the cache: another process of this device may
                # have erased another slot of this batch, which a rewrite must keep.
                data = self.store.get(key)
            except FileNotFoundError:
                raise IndexOutOfRangeError(
                    f"the batch holding index {index} of {self._origin} was compacted "
                    "meanwhile") from None
            obj = self._examine(self._origin, key, first, data)
            if obj.scan is None or obj.problem is not None or obj.scan.stop is not None \
                    or obj.scan.next_index <= index:
                raise CorruptLogError(f"cannot erase index {index}: {key} changed or is "
                                      "damaged; run `peerlog doctor --bucket`")
            entries = [e for r in obj.scan.records for _, e in
                       decode_record(data, r.offset, r.first_index, r.count, 0, r.count)]
            held = entries[index - obj.first]
            if type(held) is Entry:
                entries[index - obj.first] = Expunged(held.digest)
                data = b"".join([data[:HEADER_SIZE]] + [
                    encode_record(r.first_index, entries[r.first_index - obj.first:
                                                         r.first_index - obj.first + r.count])
                    for r in obj.scan.records])
                self.store.put(key, data)
                obj = self._examine(self._origin, key, obj.first, data)
            self._objects[key] = obj
            self._keep_bytes(key, data)
            self._chains.pop(self._origin, None)
            self._notify_erasure(index, end)

    def _notify_erasure(self, index: int, end: int) -> None:
        """Write the erasure notice at this origin's current end ``end``.  Another process
        of this device may append meanwhile, putting a batch at ``end`` that readers
        could list before the notice (which sorts before it) and so never see it: the
        end is checked again afterwards, and the notice repeated at the new end."""
        listing = self._listings[self._origin]
        if index in listing.notices:
            return  # erased and announced before (expunging is idempotent)
        for _attempt in range(5):
            key = notice_key(self._origin, end, listing.notice_count, index)
            try:
                self.store.put_new(key, b"")
            except AlreadyExists:  # another process of this device wrote a notice there
                self._list_origin(self._origin, 0)
                continue
            listing.notice_count += 1
            now = self._own_end(0)
            if now == end:
                return
            end = now
        log.warning("erasure notice for index %d of %s: the log kept growing while it was "
                    "written; readers past it learn of the erasure when they next read it",
                    index, self._origin)

    def acknowledge(self, cursors: PeerCursors) -> None:
        """Say in the bucket what this device holds (``cursors.json``), if it changed."""
        self._check_open()
        if cursors == self._acknowledged:
            return
        self.store.put(cursors_key(self._origin),
                       encode_cursors(self._origin, cursors, wall_ms()))
        self._acknowledged = PeerCursors(cursors)

    def start_at(self, index: int) -> None:
        """Begin this origin's empty log at ``index`` (its entries below are in a
        snapshot); `CursorMismatchError` when the log already holds entries."""
        self._check_open()
        with self._lock:
            end = self._own_end(0)
            chain = self._chain(self._origin)
            if end == index and (index == 0 or chain.first == index):
                return
            if end != chain.first or chain.objects:
                raise CursorMismatchError(0, end, peer=self._origin)
            self._put_start(index)
            self._list_origin(self._origin, 0, whole=True)
            self._next = self._chain(self._origin).extent
        self._announce({self._origin: index})

    def _put_start(self, index: int) -> None:
        with contextlib.suppress(AlreadyExists):
            self.store.put_new(start_key(self._origin, index), b"")

    def compact_below(self, upto: int) -> int:
        """Remove this origin's batches holding only entries below ``upto``: first a
        start key where the log now begins, then the batches; returns how many objects
        were removed.  The caller guarantees that a snapshot covers ``upto`` and every
        device that still syncs holds it."""
        self._check_open()
        with self._lock:
            end = self._own_end(0)
            chain = self._chain(self._origin)
            upto = min(upto, end)
            listing = self._listings[self._origin]
            doomed = [o for o in chain.objects
                      if o.scan is not None and o.scan.next_index <= upto]
            leftovers = [batch_key(self._origin, f) for f in listing.batches if f < chain.first]
            if doomed:
                kept = chain.objects[len(doomed):]
                self._put_start(kept[0].first if kept else end)
            doomed_keys = [o.key for o in doomed] + leftovers
            for key in doomed_keys:
                self.store.delete(key)
                self._objects.pop(key, None)
                self._drop_bytes(key)
            self._list_origin(self._origin, 0, whole=True)
            self._sweep(self._listings[self._origin], self._chain(self._origin).first)
            return len(doomed_keys)

    def _sweep(self, listing: _Listing, first: int) -> None:
        """Remove the start keys before ``first`` and the erasure notices written before
        it: they describe batches that are gone.  A notice written at or after ``first``
        stays, so a later notice never takes the name of a removed one."""
        for start in [f for f in listing.starts if f < first]:
            self.store.delete(start_key(self._origin, start))
            listing.starts.discard(start)
        for index, notice in list(listing.notices.items()):
            if notice.at < first:
                self.store.delete(notice_key(self._origin, notice.at, notice.n, index))
                del listing.notices[index]

    def set_aside_from(self, index: int) -> int:
        """Move this origin's entries from ``index`` on out of its log, into objects
        named ``<batch>.set-aside`` (ignored by readers, kept as evidence); returns how
        many were set aside.  ``index`` must fall on a record boundary."""
        self._check_open()
        with self._lock:
            self._list_origin(self._origin, 0)
            chain = self._chain(self._origin)
            moved = 0
            for obj in reversed(chain.objects):
                assert obj.scan is not None
                if obj.scan.next_index <= index:
                    break
                got = self._load(self._origin, obj.first)
                if got is None:
                    continue
                _, data = got
                name = obj.key.split("/", 1)[1]
                if obj.first >= index:
                    self.store.put(set_aside_key(self._origin, name), data)
                    self.store.delete(obj.key)
                else:
                    cut = next((r.offset for r in obj.scan.records if r.first_index == index),
                               None)
                    if cut is None:
                        raise CorruptLogError(f"cannot set aside entries of {self._origin} "
                                              f"from {index}: no record starts there in "
                                              f"{obj.key}")
                    self.store.put(set_aside_key(self._origin, name),
                                   data[:HEADER_SIZE] + data[cut:])
                    self.store.put(obj.key, data[:cut])
                self._objects.pop(obj.key, None)
                self._drop_bytes(obj.key)
                moved += 1
            self._list_origin(self._origin, 0, whole=True)
            self._next = None
            return moved

    def continue_as(self, origin: UUID) -> None:
        """Write as ``origin`` from now on: the device continues as a new origin (its old
        one forked); the old origin's log is then read like any other device's."""
        self._check_open()
        with self._lock:
            self._origin = origin
            self._next = None
            self._acknowledged = None

    # -- watching -----------------------------------------------------------------

    def watch_cursors(self) -> CursorStream:
        """A `Snapshot`, then `Advanced` whenever an origin's extent grows: polls every
        ``poll_interval`` seconds, doubling to ``poll_max`` while nothing changes, and
        back to ``poll_interval`` after a write of this process."""
        return FollowedStore.watch_cursors(self)

    async def _follow(self, stop: asyncio.Event) -> None:
        poke = self._poke = asyncio.Event()
        self._known = await self.cursors()
        interval = self._poll_interval
        while not stop.is_set():
            await wait_event(poke, interval)
            if poke.is_set():  # a local write: others may answer soon
                poke.clear()
                interval = self._poll_interval
            try:
                current = await self.cursors()
            except (BackendError, OSError) as exc:  # offline: keep polling, slowly
                log.warning("cannot list %s: %s", self.root, exc)
                interval = min(interval * 2, self._poll_max)
                continue
            moved = self._moved_since_known(current)
            if moved:
                self._hub.publish(moved)
                interval = self._poll_interval
            else:
                interval = min(interval * 2, self._poll_max)

    def _wrote_here(self, moved: dict[UUID, int]) -> None:
        self._hub.publish(moved)
        if self._poke is not None:
            self._poke.set()

    # -- diagnosis ----------------------------------------------------------------

    def doctor(self) -> FolderDiagnosis:
        """Everything wrong in the bucket and everything ignored there (lists it whole)."""
        self._check_open()
        with self._lock:
            self._list_top(0)
            for peer in sorted(self._peers):
                self._list_origin(peer, 0, whole=True)
            ignored = [Ignored(self._url_of(k), why) for k, why in self._top_ignored.items()]
            origins: list[OriginReport] = []
            for peer in sorted(self._peers):
                chain = self._chain(peer)
                listing = self._listings[peer]
                ignored.extend(Ignored(self._url_of(k), why)
                               for k, why in listing.ignored.items())
                ignored.extend(Ignored(self._url_of(batch_key(peer, f)),
                                       "left over below where the log starts (compaction)")
                               for f in listing.batches if f < chain.first)
                problems = tuple(Problem(p.origin, self._url_of(p.path), p.kind, p.detail,
                                         p.withheld_from) for p in chain.problems)
                last = self.last_written_ms(peer)
                ahead = 0 if last is None else last - wall_ms()
                origins.append(OriginReport(
                    peer, chain.extent, len(chain.objects), problems,
                    ahead if ahead > defaults.MAX_SKEW_MS else 0, chain.first))
            snapshots, bad_snapshots = self.snapshots.verdicts()  # one listing
            ignored.extend(Ignored(self._url_of(f"{SNAPSHOTS_FOLDER}/{bad.name}"),
                                   f"not a usable snapshot: {bad.reason}")
                           for bad in bad_snapshots)
            return FolderDiagnosis(
                self.root, tuple(origins), tuple(ignored),
                tuple(SnapshotReport(s.name, s.producer, s.covers, s.size) for s in snapshots),
                missing_devices({o.origin for o in origins}, self.device_cursors().values(),
                                snapshots))

    def _url_of(self, key: str) -> str:
        return f"{self.root.rstrip('/')}/{key}"

    # -- lifecycle ------------------------------------------------------------------

    def __repr__(self) -> str:
        return f"<BucketLog {self.root!r} origin={self._origin}>"
