"""Verifying and opening the sealed log of one origin, range by range.

`Opener` is what a reader of an encrypted group trusts: given the slots a
folder or relay serves, it yields only entries whose range signature
verifies against a member's key, that open with a key epoch this device
holds, that lie before the point where their device was removed, and whose
erasures their own device signed.  It learns membership from the trust
records it opens (`peerlog.trust.records`) and keeps the keyring up to date.

The first slot that fails is a `Distrust`: everything of that origin from
there on is withheld, and the reason is one of:

* ``forged``: a signature that does not verify, a range no signature covers,
  or bytes that do not open with the group's key: not written by that device;
* ``forged-erasure``: an erased slot its device never signed an erasure for;
* ``not-a-member``: a device no member admitted (no invite names it, yet);
* ``removed``: written after its device was removed from the group;
* ``key-missing``: sealed with a key epoch this device was not given;
* ``foreign-group``: sealed by another group;
* ``unsealed``: a plain entry where the group is encrypted.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from uuid import UUID

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from peerlog.sync.entry import DIGEST_SIZE, DecodedEntry, Entry, Expunged
from peerlog.sync.errors import CodecError
from peerlog.trust import records
from peerlog.trust.keyring import Keyring, Member
from peerlog.trust.sealing import (
    EpochCipher,
    group_tag,
    header,
    is_sealed,
    slot_digest,
    verify_range,
)

_RECORD_KINDS = frozenset(bytes([k]) for k in records.KINDS)

log = logging.getLogger(__name__)

ReadRaw = Callable[[UUID, int, int], Awaitable[list[tuple[int, DecodedEntry]]]]
"""``read_since`` of the transport: raw sealed slots."""


@dataclass(frozen=True, slots=True)
class Distrust:
    """Entries of ``origin`` from ``from_index`` on that are withheld, and why."""

    origin: UUID
    from_index: int
    kind: str
    detail: str
    at_least: int = 1

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail} (entries of {self.origin} from {self.from_index} " \
               "withheld)"


def range_hash(digests: Sequence[bytes]) -> bytes:
    """What an erasure record keeps of a range whose signing slot it erases."""
    h = hashlib.blake2b(digest_size=DIGEST_SIZE)
    for d in digests:
        h.update(d)
    return h.digest()


@dataclass(slots=True)
class _Run:
    """Slots read from the transport from ``start`` on, not yet delivered."""

    start: int
    slots: list[DecodedEntry]


class Opener:
    """Verifies and opens runs of sealed slots; one per device, shared by its syncs.

    ``on_learned`` is called after a verified trust record changed the keyring
    (to save it).  Stateless about positions except caches: every answer is
    recomputed from the transport when the caches are cold.
    """

    def __init__(self, ring: Keyring, on_learned: Callable[[], None] | None = None) -> None:
        self.ring = ring
        self._tag = group_tag(ring.group)
        self._on_learned = on_learned
        self.erasures: dict[UUID, dict[int, bytes]] = {}
        """Erasures each origin signed: index -> the erased entry's plaintext digest."""
        self.carrier_erasures: dict[UUID, dict[int, tuple[int, bytes]]] = {}
        self.distrust: dict[UUID, Distrust] = {}
        """Per origin, the first point its log stops verifying (what is withheld)."""
        self.owed: set[UUID] = set()
        """Members heard of for the first time while the group is past its first key
        epoch: this device grants them the later epochs (`records.Grant`)."""
        self.refused_erasures: dict[UUID, Distrust] = {}
        """Per origin, erasures found in the storage that its device did not sign."""

    # -- opening a verified range ---------------------------------------------------

    def _member(self, origin: UUID) -> Member | None:
        return self.ring.members.get(origin)

    def _check_shape(self, origin: UUID, index: int, slot: DecodedEntry) -> Distrust | None:
        if type(slot) is Expunged:
            return None
        assert type(slot) is Entry
        if not is_sealed(slot.payload):
            return Distrust(origin, index, "unsealed",
                            f"device {origin} wrote an unencrypted entry in an encrypted "
                            "group (a device that is not in the group, or an old peerlog)")
        head = header(slot.payload)
        if head.tag != group_tag(self.ring.group):
            return Distrust(origin, index, "foreign-group",
                            f"the entry is sealed by group {head.tag.hex()}…, not this "
                            f"device's group {self.ring.group}")
        if self.ring.cipher(head.epoch) is None:
            return Distrust(origin, index, "key-missing",
                            f"sealed with key epoch {head.epoch}, which this device was not "
                            "given (it was removed from the group, or the record handing "
                            "the key over has not arrived yet)")
        return None

    def check_slot(self, origin: UUID, index: int, slot: DecodedEntry) -> Distrust | None:
        """What is wrong with one slot on its own (before any signature covers it)."""
        bad = self._check_shape(origin, index, slot)
        if bad is None and type(slot) is Entry and self._open(origin, index, slot) is None:
            bad = Distrust(origin, index, "forged", f"entry {index} does not open with the "
                           f"group's key: not written by device {origin}")
        return bad

    def _open(self, origin: UUID, index: int, slot: Entry) -> Entry | None:
        head = header(slot.payload)
        cipher = self.ring.cipher(head.epoch)
        assert cipher is not None
        return cipher.open(origin, index, slot.payload)

    def _signer_for(self, origin: UUID, start: int, slots: Sequence[DecodedEntry]
                    ) -> tuple[Ed25519PublicKey | None, Distrust | None, records.Hello | None]:
        """The key that must sign ``origin``'s range at ``start``: its member key, or for a
        device not known yet, the key its hello (the first slot) introduces, when an invite
        admits it."""
        member = self._member(origin)
        if member is not None:
            return member.verifier(), None, None
        hello = None
        for offset, slot in enumerate(slots):  # a device's first range holds its hello
            if type(slot) is not Entry or self._check_shape(origin, start + offset, slot):
                continue
            opened = self._open(origin, start + offset, slot)
            if opened is None or opened.payload[:1] != bytes([records.HELLO]):
                continue
            try:
                decoded = records.decode(opened.payload)
            except CodecError:
                continue
            if isinstance(decoded, records.Hello):
                hello = decoded
                break
        if hello is None:
            return None, Distrust(origin, start, "not-a-member",
                                  f"device {origin} is not a member of the group (no "
                                  "member admitted it, or the admission has not arrived yet)"
                                  ), None
        if not self._admits(origin, hello):
            return None, Distrust(origin, start, "not-a-member",
                                  f"device {origin} introduced itself with an invite no "
                                  "member issued for it (or the admission has not arrived "
                                  "yet)"), None
        return Ed25519PublicKey.from_public_bytes(hello.sign_key), None, hello

    def _admits(self, origin: UUID, hello: records.Hello) -> bool:
        """Whether ``hello`` admits ``origin``: signed by an invite a member issued for it,
        by the group's passphrase key, or by a member's own key (a member that continues
        as a new origin: a restored or copied device)."""
        invite = self.ring.invites.get(hello.invite_key)
        if invite is not None and invite.origin != origin:
            return False
        continues = any(m.sign_key == hello.invite_key and m.removed_from is None
                        for o, m in list(self.ring.members.items()) if o != origin)
        if invite is None and hello.invite_key != self.ring.passphrase_key and not continues:
            return False
        message = records.hello_message(self.ring.group, origin, hello.sign_key,
                                        hello.exchange_key)
        try:
            Ed25519PublicKey.from_public_bytes(hello.invite_key).verify(
                hello.invite_signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True

    def open_range(self, origin: UUID, start: int, slots: Sequence[DecodedEntry]
                   ) -> tuple[list[DecodedEntry] | None, Distrust | None]:
        """The plain entries of one signed range ``[start, start+len)`` whose last slot is
        its carrier (or an erased carrier vouched for); or why not."""
        first = slots[0]
        bad = self._check_shape(origin, start, first)
        if bad is not None and bad.kind in ("foreign-group", "unsealed"):
            return None, bad  # said before anything about who signed it
        epoch = first.payload[9:13] if type(first) is Entry else b""
        cipher = self.ring.cipher(int.from_bytes(epoch, "big")) if len(epoch) == 4 else None
        end = start + len(slots)
        member = self._member(origin)
        if member is not None and member.removed_from is not None and end > member.removed_from:
            return None, Distrust(origin, max(start, member.removed_from), "removed",
                                  f"device {origin} was removed from the group; what it wrote "
                                  f"from index {member.removed_from} on is refused")
        key, bad, hello = self._signer_for(origin, start, slots)
        if bad is not None:
            return None, bad
        assert key is not None
        last = slots[-1]
        if type(last) is Expunged:
            vouched = self.carrier_erasures.get(origin, {}).get(end - 1)
            if vouched is None or vouched != (start, range_hash([slot_digest(s) for s in slots])):
                return None, Distrust(origin, start, "forged-erasure" if vouched is None
                                      else "forged",
                                      f"slot {end - 1} of device {origin} was erased but "
                                      "the device never signed that erasure")
        elif not verify_range(self.ring.group, origin, key, start, slots):
            for offset, slot in enumerate(slots):  # a plainer reason first, if there is one
                bad = self._check_shape(origin, start + offset, slot)
                if bad is not None:
                    return None, bad
            return None, Distrust(origin, start, "forged",
                                  f"signature does not verify for device {origin}")
        fast = self._open_plainly(origin, start, slots, cipher) if hello is None else None
        if fast is not None:
            return fast, None
        for offset, slot in enumerate(slots):  # some slot may not be fit to open: say why
            bad = self._check_shape(origin, start + offset, slot)
            if bad is not None:
                return None, bad
        out: list[DecodedEntry] = []
        learned = False
        if hello is not None:
            self.ring.members[origin] = Member(hello.sign_key, hello.exchange_key)
            learned = True
            if self.ring.epoch > 0:
                self.owed.add(origin)
        for offset, slot in enumerate(slots):
            index = start + offset
            if type(slot) is Expunged:
                digest = self.erasures.get(origin, {}).get(index)
                if digest is None:
                    return None, Distrust(origin, index, "forged-erasure",
                                          f"slot {index} of device {origin} was erased but "
                                          "the device never signed that erasure")
                out.append(Expunged(digest))
                continue
            assert type(slot) is Entry
            opened = self._open(origin, index, slot)
            if opened is None:
                return None, Distrust(origin, index, "forged",
                                      f"entry {index} does not open with the group's key: "
                                      f"not written by device {origin}")
            if opened.payload[:1] in _RECORD_KINDS:
                try:
                    record = records.decode(opened.payload)
                except CodecError as exc:
                    return None, Distrust(origin, index, "forged", f"entry {index}: {exc}")
                if isinstance(record, records.Tomb):
                    out.append(Expunged(record.digest))
                    continue
                learned |= self._learn(origin, record)
            out.append(opened)
        if learned and self._on_learned is not None:
            self._on_learned()
        return out, None

    def _open_plainly(self, origin: UUID, start: int, slots: Sequence[DecodedEntry],
                      cipher: EpochCipher | None) -> list[DecodedEntry] | None:
        """The common case in one pass: every slot an entry that opens with ``cipher`` (the
        first slot's epoch; the associated data binds group, slot and epoch, so any other
        slot fails to open) and none a trust record.  None sends the range down the
        careful path, which says what is wrong."""
        if cipher is None:
            return None
        return cipher.open_many(origin, start, slots, _RECORD_KINDS)  # type: ignore[return-value]

    def learn_range(self, origin: UUID, start: int, slots: Sequence[DecodedEntry]) -> None:
        """Learn the trust records of a range that ``origin`` signed, skipping the entries
        that do not open here (a key epoch not held yet); nothing is delivered."""
        member = self._member(origin)
        last = slots[-1] if slots else None
        if member is None or type(last) is not Entry or not verify_range(
                self.ring.group, origin, member.verifier(), start, slots):
            return
        learned = False
        for offset, slot in enumerate(slots):
            if type(slot) is not Entry or self._check_shape(origin, start + offset, slot):
                continue
            opened = self._open(origin, start + offset, slot)
            if opened is None or not records.is_record(opened.payload):
                continue
            try:
                learned |= self._learn(origin, records.decode(opened.payload))
            except CodecError:
                continue
        if learned and self._on_learned is not None:
            self._on_learned()

    def _learn(self, origin: UUID, record: records.Record) -> bool:
        """Take in what a verified trust record of ``origin`` says; whether the keyring
        changed."""
        ring = self.ring
        if isinstance(record, records.Admit):
            if record.invite_key in ring.invites:
                return False
            from peerlog.trust.keyring import Invite

            ring.invites[record.invite_key] = Invite(record.origin, record.invite_key,
                                                     record.expires_ms)
            return True
        if isinstance(record, records.Remove):
            changed = False
            gone = ring.members.get(record.origin)
            if gone is not None and (gone.removed_from is None
                                     or gone.removed_from > record.from_index):
                ring.members[record.origin] = Member(gone.sign_key, gone.exchange_key,
                                                     record.from_index)
                changed = True
            elif gone is None:
                ring.members[record.origin] = Member(bytes(32), bytes(32), record.from_index)
                changed = True
            if record.epoch not in ring.epochs:
                for wrapped in record.keys:
                    if wrapped.member == ring.origin:
                        key = ring.unwrap(wrapped, record.epoch)
                        if key is not None:
                            ring.epochs[record.epoch] = key
                            changed = True
            return changed
        if isinstance(record, records.Grant):
            changed = False
            if record.member == ring.origin:
                for epoch, ephemeral, sealed in record.keys:
                    if epoch in ring.epochs:
                        continue
                    key = ring.unwrap(records.Wrapped(ring.origin, ephemeral, sealed), epoch)
                    if key is not None:
                        ring.epochs[epoch] = key
                        changed = True
            return changed
        if isinstance(record, records.Erased):
            mine = self.erasures.setdefault(origin, {})
            carriers = self.carrier_erasures.setdefault(origin, {})
            for index, digest, range_start, hashed in record.slots:
                mine[index] = digest
                if range_start >= 0:
                    carriers[index] = (range_start, hashed)
            return False
        return False
