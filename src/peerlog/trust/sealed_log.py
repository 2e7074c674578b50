"""`SealedLog`: a folder's file log or a relay, as an encrypted group's device sees it.

It wraps the transport (`FileLog` or `RemoteReplica`) and speaks the same
faces with plain entries, so the drivers do not change: what this device
publishes is sealed and signed on the way out (`peerlog.trust.sealing`), and
what it reads is verified and opened on the way in (`Opener`); anything that
does not verify is withheld and listed by `withheld()`, never applied.

Ranges: every batch this device writes is cut into signed ranges of at most
`RANGE_ENTRIES` entries and `RANGE_BYTES` bytes, each written with one call, so
a file log keeps each range in one record and compaction (which removes whole
segments) never splits a range.

Erasure of an own published entry (`expunge`, or a relay's ``apply`` of a
marker) first records a signed *erased* record in this device's own log (via
``record``), then replaces the sealed slot by its marker: readers accept a
marker only when such a record vouches for it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any
from uuid import UUID

from peerlog.sync.defaults import DEFAULT_READ_BATCH
from peerlog.sync.entry import DecodedEntry, Entry, Expunged
from peerlog.sync.errors import (
    CompactedError,
    InvalidArgumentError,
    TrustError,
    WrongGroupError,
)
from peerlog.sync.faces import Applied, WithheldRange
from peerlog.sync.rules import reconcile
from peerlog.trust import records
from peerlog.trust.opener import Distrust, Opener, range_hash
from peerlog.trust.sealing import CARRIER, SEALED, header, is_sealed, seal_range, slot_digest
from peerlog.trust.snapshots import open_snapshot, seal_snapshot

log = logging.getLogger(__name__)

_REMOVE, _GRANT = bytes([records.REMOVE]), bytes([records.GRANT])
_CARRIER_KIND = bytes([CARRIER])
_SEALED_KINDS = (bytes([SEALED]), bytes([CARRIER]))
RANGE_ENTRIES = 4096
RANGE_BYTES = 768 << 10
_READ_CHUNK = 4096

Record = Callable[[bytes], Awaitable[int | None]]
"""Appends a trust record to this device's own log (its oplog); returns its index."""


def _cuts(sizes: Sequence[int]) -> list[tuple[int, int]]:
    cuts, lo, total = [], 0, 0
    for i, size in enumerate(sizes):
        if i > lo and (i - lo >= RANGE_ENTRIES or total + size > RANGE_BYTES):
            cuts.append((lo, i))
            lo, total = i, 0
        total += size + 32
    if lo < len(sizes):
        cuts.append((lo, len(sizes)))
    return cuts


def _is_carrier(slot: DecodedEntry) -> bool:
    return type(slot) is Entry and slot.payload[:1] == _CARRIER_KIND and is_sealed(slot.payload)


class SealedLog:
    """An encrypted view of ``inner``: plain entries in and out, sealed entries stored.

    Everything not about entries (cursors, watches, snapshots, doctor) is
    ``inner``'s own.
    """

    def __init__(self, inner: Any, opener: Opener, own: UUID, *,
                 record: Record | None = None, strict_group: bool = False) -> None:
        self.inner = inner
        self._strict_group = strict_group
        self.opener = opener
        self.own = own
        self._record = record
        self._ahead: dict[UUID, tuple[int, list[DecodedEntry]]] = {}
        self._last: dict[UUID, tuple[int, DecodedEntry]] = {}
        self._known_end: dict[UUID, int] = {}
        self._leftover: dict[UUID, tuple[int, list[DecodedEntry]]] = {}
        """Per origin, transport slots read past the last range delivered: the next read
        from there starts with them instead of reading them again."""
        self._own_checked = -1
        self._hello_at: int | None = None
        """Where the hello of a continued origin sits in its log: its first range reaches
        it, so readers meet the hello before anything it must vouch for."""
        check_copies = getattr(inner, "check_copies_with", None)
        if check_copies is not None:
            check_copies(self._authentic)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def __repr__(self) -> str:
        return f"SealedLog({self.inner!r})"

    # -- reading ----------------------------------------------------------------

    async def cursors(self) -> Any:
        """The transport's cursors.  First, grant the group's later key epochs to the
        members heard of since they were made (`Opener.owed`): a record in this device's
        own log, published with its next changes."""
        await self._grant_owed()
        return await self.inner.cursors()

    async def _grant_owed(self) -> None:
        ring = self.opener.ring
        while self.opener.owed and self._record is not None:
            member_id = self.opener.owed.pop()
            member = ring.members.get(member_id)
            if member is None or member.removed_from is not None or member_id == self.own:
                continue
            grant = ring.grant_for(member_id, member)
            if grant is not None:
                await self._record(grant.encode())

    async def read_since(self, peer: UUID, from_index: int,
                         limit: int | None = None) -> list[tuple[int, DecodedEntry]]:
        """Verified, opened entries of ``peer`` from ``from_index``; stops before anything
        that does not verify (see `withheld`)."""
        want = DEFAULT_READ_BATCH if limit is None else limit
        if type(from_index) is not int or from_index < 0:
            raise InvalidArgumentError(f"from_index must be a non-negative int, got "
                                       f"{from_index!r}")
        if want <= 0:
            return []
        out: list[tuple[int, DecodedEntry]] = []
        index = from_index
        last = self._last.get(peer)
        if last is not None and last[0] == index:
            out.append(last)
            index += 1
        # Entries written before the group moved to encryption: plain, as they always were.
        plain_end = self.opener.ring.encrypted_from.get(peer, 0)
        while len(out) < want and index < plain_end:
            got = await self.inner.read_since(peer, index, min(want - len(out),
                                                               plain_end - index))
            if not got:
                break
            out.extend(got)
            index = got[-1][0] + 1
        while len(out) < want and index >= plain_end:
            ahead = self._ahead.get(peer)
            if ahead is None or ahead[0] != index:
                ahead = await self._verified(peer, index, want - len(out))
                if ahead is None:
                    break
            start, entries = ahead
            take = entries[:want - len(out)]
            out.extend(zip(range(start, start + len(take)), take, strict=True))
            rest = entries[len(take):]
            index = start + len(take)
            if rest:
                self._ahead[peer] = (index, rest)
            else:
                self._ahead.pop(peer, None)
        if out:
            self._last[peer] = out[-1]
        return out

    async def _raw(self, peer: UUID, start: int, count: int) -> list[DecodedEntry]:
        """Exactly the transport slots ``[start, start+count)``, or fewer when it ends."""
        got: list[DecodedEntry] = []
        while len(got) < count:
            batch = await self.inner.read_since(peer, start + len(got), count - len(got))
            if not batch:
                break
            got.extend(e for _, e in batch)
        return got

    async def _verified(self, peer: UUID, index: int, want: int
                        ) -> tuple[int, list[DecodedEntry]] | None:
        """Opened entries from ``index`` on: whole ranges, until at least ``want`` entries
        or the end; None when nothing there verifies (`withheld` says why)."""
        out: list[DecodedEntry] = []
        pending: list[DecodedEntry] = []  # transport slots from `pstart` in no range yet
        pstart = pos = index
        drained = False
        left = self._leftover.pop(peer, None)
        fresh = left is not None and left[0] == index  # slots read by the last call
        if fresh:
            assert left is not None
            pending = left[1]
            pos = index + len(pending)
        while len(out) < want:
            if not fresh:
                batch = await self.inner.read_since(peer, pos,
                                                    max(want - len(out), _READ_CHUNK))
                if not batch:
                    drained = True
                    break
                pos = batch[-1][0] + 1
                pending.extend(e for _, e in batch)
                known = self.opener.erasures.get(peer, {})
                unknown = {i for i, e in batch if type(e) is Expunged and i not in known}
                if unknown:  # the records vouching for them come later in the log
                    await self._look_ahead(peer, max(unknown) + 1,
                                           self._vouched(peer, unknown))
            fresh = False
            cut = 0
            erased_ends = self.opener.carrier_erasures.get(peer, {})
            ends = [i for i, e in enumerate(pending)
                    if (type(e) is Entry and e.payload[:1] == _CARRIER_KIND)
                    or (type(e) is Expunged and pstart + i in erased_ends)]
            for offset in ends:
                at, slot = pstart + offset, pending[offset]
                if type(slot) is Entry and not is_sealed(slot.payload):
                    continue  # a plain entry that happens to start like a carrier
                rstart = self._range_start(peer, at, slot)
                run_start, run = pstart + cut, pending[cut:offset + 1]
                if rstart < run_start and run_start == index:
                    # Read from the middle of a range: its beginning is needed to verify it.
                    try:
                        before = await self._raw(peer, rstart, run_start - rstart)
                    except CompactedError:
                        before = []
                    if len(before) != run_start - rstart:
                        return self._fail(peer, Distrust(
                            peer, run_start, "unverifiable",
                            f"the range signed at {at} begins at {rstart}, before the "
                            "log's first available entry"), index, out)
                    await self._vouch_erasures(peer, rstart, before)
                    run = before + run
                elif rstart != run_start:
                    return self._fail(peer, Distrust(
                        peer, run_start, "forged",
                        f"entries of device {peer} from {run_start} are covered by no "
                        f"signature of it (a range claims to start at {rstart})"), index, out)
                opened, bad = self.opener.open_range(peer, rstart, run)
                if bad is not None and bad.kind == "key-missing":
                    # A grant of that epoch may come later in this log: learn, then retry.
                    await self._look_ahead(peer, at + 1)
                    opened, bad = self.opener.open_range(peer, rstart, run)
                if bad is not None:
                    return self._fail(peer, bad, index, out)
                assert opened is not None
                out.extend(opened[run_start - rstart:])
                cut = offset + 1
                if len(out) >= want:
                    break
            pending, pstart = pending[cut:], pstart + cut
        bad = self.opener.distrust.get(peer)
        if pending and not drained:
            self._leftover[peer] = (pstart, pending)
        if drained and pending:
            self._pending(peer, pstart, pending)
        elif bad is not None and (drained or index + len(out) > bad.from_index):
            del self.opener.distrust[peer]
        return (index, out) if out else None

    def _range_start(self, peer: UUID, index: int, slot: DecodedEntry) -> int:
        if type(slot) is Entry:
            return header(slot.payload).range_start
        return self.opener.carrier_erasures[peer][index][0]

    async def _vouch_erasures(self, peer: UUID, start: int, run: list[DecodedEntry]) -> None:
        """Look ahead in ``peer``'s log for the erased records vouching for the markers in
        ``run`` (an erasure is signed after the entry it erases)."""
        known = self.opener.erasures.get(peer, {})
        unknown = {start + i for i, s in enumerate(run)
                   if type(s) is Expunged and start + i not in known}
        if unknown:
            await self._look_ahead(peer, start + len(run), self._vouched(peer, unknown))

    def _vouched(self, peer: UUID, unknown: set[int]) -> Callable[[], bool]:
        return lambda: unknown.issubset(self.opener.erasures.get(peer, {}))

    async def _look_ahead(self, peer: UUID, position: int,
                          done: Callable[[], bool] = lambda: False) -> None:
        """Read ``peer``'s ranges from about ``position`` to the end of its log (or until
        ``done()``), learning the trust records in those that verify, even where some
        entries do not open: erased records vouch for earlier erasures, and a grant may
        hand over the key epoch the earlier entries need.  Slots that cannot be checked
        are skipped: only verified ranges teach anything."""
        realigned = False
        while not done():
            ahead = await self._raw(peer, position, _READ_CHUNK)
            carriers = [i for i, slot in enumerate(ahead) if _is_carrier(slot)]
            if not carriers:
                return
            first = header(ahead[carriers[0]].payload).range_start  # type: ignore[union-attr]
            if first < position and not realigned:
                position, realigned = first, True  # inside a range: read it whole
                continue
            lo = max(first - position, 0)
            for offset in carriers:
                rstart = header(ahead[offset].payload).range_start  # type: ignore[union-attr]
                if rstart == position + lo:
                    self.opener.learn_range(peer, rstart, ahead[lo:offset + 1])
                lo = offset + 1
            position += lo
            realigned = True

    def _fail(self, peer: UUID, bad: Distrust, start: int, out: list[DecodedEntry]
              ) -> tuple[int, list[DecodedEntry]] | None:
        """Record ``bad`` (logged once per origin and point) and return what verified
        before it."""
        if bad.kind == "foreign-group" and self._strict_group:
            raise WrongGroupError(f"{self.inner!r} holds entries of another group: {bad.detail}"
                                  "; join that group with an invite code from one of its "
                                  "devices, or sync with another relay")
        if self.opener.distrust.get(peer) != bad:
            log.warning("withholding entries of %s: %s", peer, bad)
        self.opener.distrust[peer] = bad
        return (start, out) if out else None

    def _pending(self, peer: UUID, start: int, slots: list[DecodedEntry]) -> None:
        """Slots after the last signature: a write still arriving (not reported), or a
        forgery appended (reported when a slot is plain, foreign or does not open)."""
        for offset, slot in enumerate(slots):
            bad = self.opener.check_slot(peer, start + offset, slot)
            if bad is not None:
                self._fail(peer, bad, start, [])
                return
        self.opener.distrust[peer] = Distrust(
            peer, start, "unsigned", f"{len(slots)} entries of device {peer} are not signed "
            "(yet): a write still arriving, or entries forged in its name", len(slots))

    def withheld(self) -> Mapping[UUID, WithheldRange]:
        """What the transport withholds, and what did not verify here."""
        inner = getattr(self.inner, "withheld", None)
        out: dict[UUID, WithheldRange] = dict(inner()) if inner is not None else {}
        for peer, bad in self.opener.distrust.items():
            if bad.kind != "unsigned":
                out.setdefault(peer, bad)
        for peer, bad in self.opener.refused_erasures.items():
            out.setdefault(peer, bad)
        return out

    async def erased(self) -> dict[UUID, list[tuple[int, bytes]]]:
        """The transport's erased slots that their devices vouched for, as plain markers."""
        raw = await self.inner.erased()
        out: dict[UUID, list[tuple[int, bytes]]] = {}
        for peer, slots in raw.items():
            if peer == self.own:
                continue
            plain_end = self.opener.ring.encrypted_from.get(peer, 0)
            unknown = {i for i, _ in slots if i >= plain_end} - set(
                self.opener.erasures.get(peer, {}))
            if unknown:
                await self._look_ahead(peer, min(unknown), self._vouched(peer, unknown))
            known = self.opener.erasures.get(peer, {})
            vouched = sorted([(i, known[i]) for i, _ in slots if i in known] + [
                (i, d) for i, d in slots if i < plain_end])
            if vouched:
                out[peer] = vouched
            forged = sorted(unknown - set(known))
            if forged:
                bad = Distrust(peer, forged[0], "forged-erasure",
                               f"slot {forged[0]} of device {peer} was erased in the storage, "
                               "but the device never signed that erasure: not applied",
                               len(forged))
                if self.opener.refused_erasures.get(peer) != bad:
                    log.warning("%s", bad)
                self.opener.refused_erasures[peer] = bad
            else:
                self.opener.refused_erasures.pop(peer, None)
        return out

    def _authentic(self, peer: UUID, start: int, slots: list[DecodedEntry]) -> bool:
        """Whether ``slots`` (from ``start``, a range start) are whole ranges that
        ``peer`` signed: how a file log judges a sync tool's conflict copy."""
        lo = 0
        for offset, slot in enumerate(slots):
            if not _is_carrier(slot):
                continue
            if header(slot.payload).range_start != start + lo:  # type: ignore[union-attr]
                return False
            opened, _ = self.opener.open_range(peer, start + lo, slots[lo:offset + 1])
            if opened is None:
                return False
            lo = offset + 1
        return lo == len(slots) and lo > 0

    def _own_verified_end(self, end: int) -> int:
        """Where this device's own log in a file log stops carrying its signatures
        (``end`` when all of it does): first the last range, then, if that fails, every
        range from the start."""
        read = self.inner.read_entries
        plain_end = self.opener.ring.encrypted_from.get(self.own, 0)
        if end <= plain_end:
            return end
        last = read(self.own, end - 1, 1)
        if last and type(last[0][1]) is Expunged:
            return end  # erased here; readers check the erasure was signed
        if last and _is_carrier(last[0][1]):
            rstart = header(last[0][1].payload).range_start
            run = [e for _, e in read(self.own, rstart, end - rstart)] if rstart >= 0 else []
            if len(run) == end - rstart and self._authentic(self.own, rstart, run):
                return end
        good = max(int(self.inner.first_indexes().of(self.own)), plain_end)
        while good < end:
            chunk = [e for _, e in read(self.own, good, 2 * RANGE_ENTRIES)]
            at = next((i for i, e in enumerate(chunk) if _is_carrier(e)), None)
            if at is None:
                break
            rstart = header(chunk[at].payload).range_start
            # Slots before the range with no carrier of their own: ranges whose signing
            # slot this device erased (only an erased slot may end them).
            if rstart < good or (rstart > good and type(chunk[rstart - good - 1]) is not
                                 Expunged):
                break
            if not self._authentic(self.own, rstart, chunk[rstart - good:at + 1]):
                break
            good += at + 1
        return good

    @property
    def next_index(self) -> int:
        """Where this device's own log in the file log ends.  Entries past its last
        signature were written by someone else in its name: they are set aside
        (`FileLog.set_aside_from`), so this device is never locked out of its own log."""
        end: int = self.inner.next_index
        if end == self._own_checked or end == 0:
            return end
        good = self._own_verified_end(end)
        start = max(int(self.inner.first_indexes().of(self.own)),
                    self.opener.ring.encrypted_from.get(self.own, 0))
        if good == start < end:
            raise TrustError(
                f"device id {self.own} already writes here, with keys that are not this "
                "device's: its invite code was used by another device (each code admits "
                "one); ask a member for a new code and join again in a new home")
        if good < end:
            log.warning("entries %d to %d in this device's folder are not signed by it: "
                        "setting them aside", good, end - 1)
            self.inner.set_aside_from(good)
            end = self.inner.next_index
        self._own_checked = end
        return end

    # -- a device that continues as a new origin --------------------------------------

    async def adopt_origin(self, new: UUID) -> None:
        """This device now writes ``new`` (it continued as a new origin: a restored or
        copied device, `peerlog.drivers.fork`): the keyring follows, and a hello signed
        with the device's member key opens the new log, so the other members admit it."""
        from peerlog.trust import group as groups

        ring = self.opener.ring
        me = ring.members.get(self.own) or ring.own_member()
        signer = ring.signer
        ring.origin = new
        ring.members[new] = me
        if self.opener._on_learned is not None:
            self.opener._on_learned()
        self.own = new
        self._known_end.clear()
        self._own_checked = -1
        if self._record is not None:
            self._hello_at = await self._record(groups.hello(ring, signer))

    # -- snapshots ------------------------------------------------------------------

    @property
    def snapshots(self) -> Any:
        """A folder's snapshot shelf, sealing what is published and opening what is read
        (a relay client's ``snapshots()`` lists them, and is its own)."""
        shelf = self.inner.snapshots
        return shelf if callable(shelf) else _SealedShelf(shelf, self.opener.ring)

    async def publish_snapshot(self, data: bytes) -> str:
        name: str = await self.inner.publish_snapshot(seal_snapshot(data, self.opener.ring))
        return name

    async def read_snapshot(self, name: str) -> bytes:
        return open_snapshot(await self.inner.read_snapshot(name), self.opener.ring)

    # -- writing (this device's own origin only) ----------------------------------

    def _seal(self, start: int, entries: Sequence[DecodedEntry]) -> list[list[DecodedEntry]]:
        """Sealed, signed ranges for ``entries`` of the own origin from ``start``.

        Everything is sealed with the newest key epoch, except a remove record: it hands
        the new epoch over, so it is sealed with the one before (which every member
        holds)."""
        ring = self.opener.ring
        me = ring.members.get(self.own)
        if me is not None and me.removed_from is not None and start + len(entries) > \
                me.removed_from:
            raise TrustError(f"this device was removed from group {ring.group}: its changes "
                             f"from index {me.removed_from} on are refused by every member "
                             "(ask a member for a new invite to join again as a new device)")
        signer = ring.signer
        newest = ring.cipher(ring.epoch)
        assert newest is not None
        plain = [e if type(e) is Entry else Entry(0, records.Tomb(e.digest).encode())
                 for e in entries]
        bodies = newest.seal_many(self.own, start, plain)
        ciphers = [newest] * len(bodies)
        for offset, entry in enumerate(plain):
            kind = entry.payload[:1]
            if kind == _REMOVE:
                epoch = records.decode(entry.payload).epoch - 1  # type: ignore[union-attr]
            elif kind == _GRANT:
                epoch = min(ring.epochs)  # the grantee may hold no later one
            else:
                continue
            cipher = ring.cipher(epoch)
            assert cipher is not None
            ciphers[offset] = cipher
            bodies[offset] = cipher.seal(self.own, start + offset, entry)
        ranges = []
        cuts = _cuts([len(b) for b in bodies])
        hello = self._hello_at
        if start == 0 and hello is not None and hello < len(bodies):
            cuts = [(0, hello + 1)] + [(lo + hello + 1, hi + hello + 1)
                                       for lo, hi in _cuts([len(b) for b in bodies[hello + 1:]])]
        for lo, hi in cuts:
            ranges.append(seal_range(ciphers[hi - 1], signer, self.own, start + lo,
                                     list(bodies[lo:hi])))
        return ranges

    def append_many(self, start_index: int, entries: Sequence[DecodedEntry]) -> None:
        """Seal and append to a file log, one signed range per call."""
        index = start_index
        for sealed in self._seal(start_index, entries):
            self.inner.append_many(index, sealed)
            index += len(sealed)

    def append(self, index: int, entry: Entry) -> None:
        self.append_many(index, [entry])

    async def apply_many(self, peer: UUID, start_index: int,
                         entries: Sequence[DecodedEntry]) -> int:
        """Seal and push to a relay: this device's own origin only."""
        if peer != self.own:
            raise InvalidArgumentError(f"an encrypted device pushes only its own origin "
                                       f"{self.own}, not {peer}")
        end = self._known_end.get(peer)
        if end is None or end < start_index:
            end = (await self.inner.cursors()).of(peer)
        if start_index < end:
            held = await self.read_since(peer, start_index, min(end, start_index + len(entries))
                                         - start_index)
            for (index, ours), theirs in zip(held, entries, strict=False):
                reconcile(peer, index, ours, theirs)  # the slot rule: DivergenceError
            skip = min(end - start_index, len(entries))
            entries, start_index = entries[skip:], start_index + skip
        new = 0
        for sealed in self._seal(start_index, entries) if entries else []:
            new += await self.inner.apply_many(peer, start_index, sealed)
            start_index += len(sealed)
            self._known_end[peer] = start_index
        return new

    async def apply(self, peer: UUID, index: int, entry: DecodedEntry) -> Applied:
        if type(entry) is Expunged and peer == self.own:
            return Applied(await self._erase(index, entry.digest, self._relay_marker))
        return Applied(bool(await self.apply_many(peer, index, [entry])))

    async def _relay_marker(self, index: int, marker: Expunged) -> None:
        await self.inner.apply(self.own, index, marker)

    async def erase(self, index: int, digest: bytes) -> bool:
        """Erase the own published entry at ``index`` from a file log (async)."""
        import asyncio

        async def write(at: int, marker: Expunged) -> None:
            await asyncio.to_thread(self.inner.expunge, at)
        return await self._erase(index, digest, write)

    async def _erase(self, index: int, digest: bytes,
                     write: Callable[[int, Expunged], Awaitable[None]]) -> bool:
        """Vouch for, then erase, the own entry at ``index`` whose plain digest is
        ``digest``: a signed erased record first, then the marker."""
        got = await self._raw(self.own, index, 1)
        if not got or type(got[0]) is Expunged:
            return False
        slot = got[0]
        assert type(slot) is Entry
        range_start, hashed = -1, bytes(32)
        if _is_carrier(slot):
            range_start = header(slot.payload).range_start
            run = await self._raw(self.own, range_start, index + 1 - range_start)
            hashed = range_hash([slot_digest(s) for s in run])
        if self._record is None:
            raise InvalidArgumentError("erasing in an encrypted group needs the device's oplog")
        await self._record(records.Erased(((index, digest, range_start, hashed),)).encode())
        self.opener.erasures.setdefault(self.own, {})[index] = digest
        if range_start >= 0:
            self.opener.carrier_erasures.setdefault(self.own, {})[index] = (range_start, hashed)
        await write(index, Expunged(slot.digest))
        self._ahead.pop(self.own, None)
        self._last.pop(self.own, None)
        self._leftover.pop(self.own, None)
        return True


class _SealedShelf:
    """A `SnapshotShelf` whose ``publish`` seals and ``read`` opens."""

    def __init__(self, inner: Any, ring: Any) -> None:
        self._inner, self._ring = inner, ring

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def publish(self, data: bytes) -> str:
        name: str = self._inner.publish(seal_snapshot(data, self._ring))
        return name

    def read(self, name: str) -> bytes:
        return open_snapshot(self._inner.read(name), self._ring)


class PlainLog:
    """A relay as a device in no encrypted group sees it: as it is, except that meeting a
    sealed entry is a `WrongGroupError` naming the group, never a silent skip (a shared
    folder says so up front, with its ``peerlog-group.json``)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def __repr__(self) -> str:
        return repr(self.inner)

    async def read_since(self, peer: UUID, from_index: int,
                         limit: int | None = None) -> list[tuple[int, DecodedEntry]]:
        got: list[tuple[int, DecodedEntry]] = await self.inner.read_since(peer, from_index,
                                                                          limit)
        for _, entry in got:
            if type(entry) is Entry and entry.payload[:1] in _SEALED_KINDS \
                    and is_sealed(entry.payload):
                raise WrongGroupError(
                    f"{self.inner!r} holds entries of encrypted group "
                    f"{header(entry.payload).tag.hex()}… (device {peer} wrote them), and this "
                    "device has no key for it: join that group with an invite code from one "
                    "of its devices (`peerlog invite` there, `peerlog init --join CODE` on a "
                    "new home here)")
        return got
