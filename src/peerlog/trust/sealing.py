"""Sealed entries: what an encrypted group's entry looks like outside its devices.

Layout of a sealed payload (docs/file-format.md §11), big-endian::

    0   1   kind: 0xE1 sealed, 0xE2 sealed and signed (a *carrier*)
    1   8   group tag: the first 8 bytes of the group id
    9   4   key epoch
    13  12  synthetic nonce: keyed BLAKE2b of the associated data and the plaintext
    25  n   AES-256-GCM ciphertext of (u64 timestamp, payload), 16-byte tag
    carrier only:
    -72 8   range start: the first index this signature covers
    -64 64  Ed25519 signature of the origin device

The entry's transport timestamp is always 0: the real one is inside the seal.
The associated data binds group id, origin, index and epoch, so a sealed entry
opens nowhere else.  The synthetic nonce (a PRF of everything sealed, as in
SIV constructions) makes sealing deterministic (the same entry in the same
slot gives the same bytes, so re-delivery stays idempotent and divergence
stays detectable) and misuse resistant: two different entries in one slot (a
fork) get different nonces, so nothing leaks but that they differ.  It costs
a 12-byte nonce per entry and opens in half the time of AES-GCM-SIV (1.8 µs
against 3.3 µs per small entry, measured), which re-derives keys per nonce.

Signatures are per range, not per entry (an Ed25519 verification costs about
140 µs here, ten times a whole apply): the last entry of every batch an origin
writes signs the digests of the range ``[start, end)`` it closes.  A reader
applies an entry only once a carrier covering it verifies.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from peerlog.sync.entry import DIGEST_SIZE, DecodedEntry, Entry

SEALED, CARRIER = 0xE1, 0xE2
_HEAD = struct.Struct(">B8sI")
_TS = struct.Struct(">Q")
_START = struct.Struct(">Q")
_RANGE = struct.Struct(">16s16sQQ")
NONCE_SIZE = 12
HEAD_SIZE = _HEAD.size + NONCE_SIZE
SIGNATURE_SIZE = 64
TRAILER_SIZE = _START.size + SIGNATURE_SIZE
TAG_SIZE = 16
OVERHEAD = HEAD_SIZE + _TS.size + TAG_SIZE
"""Bytes a sealed entry adds to its payload (a carrier adds `TRAILER_SIZE` more)."""
_AAD = b"peerlog/seal/v1"
_SIG = b"peerlog/range/v1"


def group_tag(group: UUID) -> bytes:
    return group.bytes[:8]


def is_sealed(payload: bytes) -> bool:
    """Whether ``payload`` has the shape of a sealed entry (not that it verifies)."""
    return len(payload) >= OVERHEAD and payload[0] in (SEALED, CARRIER) and (
        payload[0] == SEALED or len(payload) >= OVERHEAD + TRAILER_SIZE)


@dataclass(frozen=True, slots=True)
class Header:
    """The visible part of a sealed entry."""

    carrier: bool
    tag: bytes
    epoch: int
    range_start: int


def header(payload: bytes) -> Header:
    """The visible fields; the caller checked `is_sealed`."""
    kind, tag, epoch = _HEAD.unpack_from(payload)
    start = _START.unpack_from(payload, len(payload) - TRAILER_SIZE)[0] \
        if kind == CARRIER else -1
    return Header(kind == CARRIER, tag, epoch, start)


_AT_ZERO = hashlib.blake2b(bytes(8), digest_size=DIGEST_SIZE)


def _digest(payload: bytes) -> bytes:
    """``content_digest(0, payload)``: a transport slot's digest (its timestamp is 0)."""
    h = _AT_ZERO.copy()
    h.update(payload)
    return h.digest()


def slot_digest(entry: DecodedEntry) -> bytes:
    """A slot's digest as a range signature covers it: the transport digest, which an
    erased slot keeps as its marker's digest."""
    if type(entry) is Entry:
        return _digest(entry.payload)
    return entry.digest


def _range_message(group: UUID, origin: UUID, start: int, end: int,
                   digests: Sequence[bytes]) -> bytes:
    h = hashlib.blake2b(b"".join(digests), digest_size=DIGEST_SIZE)
    return _SIG + _RANGE.pack(group.bytes, origin.bytes, start, end) + h.digest()


class EpochCipher:
    """The AEAD of one key epoch of a group: AES-256-GCM under a key derived from the
    epoch key, with a synthetic nonce from a second derived key."""

    __slots__ = ("_aead", "_epoch", "_head", "_nonce_key", "_tag", "epoch", "group")

    def __init__(self, group: UUID, epoch: int, key: bytes) -> None:
        self.group, self.epoch = group, epoch
        self._aead = AESGCM(hashlib.blake2b(key, digest_size=32,
                                            person=b"peerlog-seal").digest())
        self._nonce_key = hashlib.blake2b(key, digest_size=32, person=b"peerlog-nonce").digest()
        self._tag = group_tag(group)
        self._head = _HEAD.pack(SEALED, self._tag, epoch)
        self._epoch = epoch.to_bytes(4, "big")

    def _prefix(self, origin: UUID) -> bytes:
        return _AAD + self.group.bytes + origin.bytes

    def seal(self, origin: UUID, index: int, entry: Entry) -> bytes:
        """The sealed body of ``entry`` at ``(origin, index)`` (not yet signed)."""
        return self.seal_many(origin, index, [entry])[0]

    def seal_many(self, origin: UUID, start: int, entries: Sequence[Entry]) -> list[bytes]:
        """The sealed bodies of ``entries`` from ``(origin, start)`` on."""
        encrypt, head, prefix, epoch = self._aead.encrypt, self._head, self._prefix(origin), \
            self._epoch
        blake2b, nonce_key = hashlib.blake2b, self._nonce_key
        out = []
        for index, (ts, payload) in enumerate(entries, start):
            aad = prefix + index.to_bytes(8, "big") + epoch
            plain = ts.to_bytes(8, "big") + payload
            nonce = blake2b(aad + plain, key=nonce_key, digest_size=NONCE_SIZE).digest()
            out.append(head + nonce + encrypt(nonce, plain, aad))
        return out

    def open(self, origin: UUID, index: int, payload: bytes) -> Entry | None:
        """The entry sealed in ``payload`` at that slot; None when it does not open
        (another key, slot or group, or altered bytes)."""
        opened = self.open_many(origin, index, [Entry(0, payload)])
        return opened[0] if opened else None

    def open_many(self, origin: UUID, start: int, slots: Sequence[DecodedEntry],
                  skip: frozenset[bytes] = frozenset()) -> list[Entry] | None:
        """The entries sealed in consecutive slots of one origin from ``start``; None when
        any slot is not an entry, does not open, or opens to a payload whose first byte
        is in ``skip`` (the caller then looks slot by slot).  The hot loop of every
        read, kept to the fewest Python operations per entry."""
        decrypt, prefix, epoch = self._aead.decrypt, self._prefix(origin), self._epoch
        nonce_at, body_at, carrier, entry = _HEAD.size, HEAD_SIZE, CARRIER, Entry
        out: list[Entry] = []
        append = out.append
        try:
            for index, slot in enumerate(slots, start):
                if type(slot) is not entry:
                    return None
                payload = slot[1]
                plain = decrypt(payload[nonce_at:body_at],
                                payload[body_at:-TRAILER_SIZE] if payload[0] == carrier
                                else payload[body_at:],
                                prefix + index.to_bytes(8, "big") + epoch)
                if plain[8:9] in skip:
                    return None
                append(entry(int.from_bytes(plain[:8], "big"), plain[8:]))
        except InvalidTag:
            return None
        return out


def seal_range(cipher: EpochCipher, signer: Ed25519PrivateKey, origin: UUID, start: int,
               bodies: Sequence[bytes]) -> list[DecodedEntry]:
    """Transport entries for a run of sealed bodies starting at ``start``; the last one
    (which must be a body) becomes the carrier signing ``[start, end)``."""
    end = start + len(bodies)
    digests = [_digest(b) for b in bodies[:-1]]
    last = bytes([CARRIER]) + bodies[-1][1:]
    digests.append(_digest(last))
    signature = signer.sign(_range_message(cipher.group, origin, start, end, digests))
    out: list[DecodedEntry] = [Entry(0, b) for b in bodies[:-1]]
    out.append(Entry(0, last + _START.pack(start) + signature))
    return out


def verify_range(group: UUID, origin: UUID, key: Ed25519PublicKey, start: int,
                 slots: Sequence[DecodedEntry]) -> bool:
    """Whether the carrier at the end of ``slots`` (indexes ``start…``) signs them all."""
    last = slots[-1]
    if type(last) is not Entry or last.payload[:1] != bytes([CARRIER]):
        return False
    digests: list[bytes] = []
    append, zero = digests.append, _AT_ZERO
    for s in slots[:-1]:  # `_digest`, inline: this runs for every entry read
        if type(s) is Entry:
            h = zero.copy()
            h.update(s[1])
            append(h.digest())
        else:
            append(s.digest)
    append(_digest(last.payload[:-TRAILER_SIZE]))
    message = _range_message(group, origin, start, start + len(slots), digests)
    try:
        key.verify(last.payload[-SIGNATURE_SIZE:], message)
    except InvalidSignature:
        return False
    return True
