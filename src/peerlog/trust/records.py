"""Trust records: the entries of a device's own log that manage its group.

They travel like any entry (sealed, signed by the writing device) and are
ignored by the state, whose operations are bytes 1 to 4.  Layouts, big-endian
(docs/file-format.md §11.3)::

    0x41 hello    sign key (32), exchange key (32), invite key (32), invite signature (64)
    0x42 admit    invited origin (16), invite key (32), expires ms (u64)
    0x43 remove   removed origin (16), from index (u64), new epoch (u32), wrapped-key count
                  (u16), per member: origin (16), ephemeral key (32), sealed key (48)
    0x44 erased   count (u32), per slot: index (u64), the erased entry's digest (32),
                  and when the slot signed a range: its start (i64, else -1) and the
                  hash of the range's slot digests (32, else zeros)
    0x45 tomb     the digest (32) of an entry erased before it was ever published
    0x46 grant    member (16), count (u16), per key epoch: epoch (u32), ephemeral key
                  (32), sealed key (48)

A *hello* opens a device's log: the device's own public keys, signed by the
one-time invite key (or the group's passphrase key) that admits it.  An
*admit* is how a member announces an invite; a *remove* revokes a device and
hands the next key epoch to everyone else; *erased* vouches for this
device's own erasures, so nobody else can erase its entries; a *grant* hands
the key epochs after the first to a member that joined (or was not yet
heard of) when they were made.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from uuid import UUID

from peerlog.sync.entry import DIGEST_SIZE
from peerlog.sync.errors import CodecError

HELLO, ADMIT, REMOVE, ERASED, TOMB, GRANT = 0x41, 0x42, 0x43, 0x44, 0x45, 0x46
KINDS = frozenset((HELLO, ADMIT, REMOVE, ERASED, TOMB, GRANT))
_HELLO = struct.Struct(">B32s32s32s64s")
_ADMIT = struct.Struct(">B16s32sQ")
_REMOVE = struct.Struct(">B16sQIH")
_WRAPPED = struct.Struct(">16s32s48s")
_ERASED = struct.Struct(">BI")
_GRANT = struct.Struct(">B16sH")
_GRANTED = struct.Struct(">I32s48s")
_SLOT = struct.Struct(">Q32sq32s")
HELLO_CONTEXT = b"peerlog/hello/v1"


@dataclass(frozen=True, slots=True)
class Hello:
    sign_key: bytes
    exchange_key: bytes
    invite_key: bytes
    invite_signature: bytes

    def encode(self) -> bytes:
        return _HELLO.pack(HELLO, self.sign_key, self.exchange_key, self.invite_key,
                           self.invite_signature)


def hello_message(group: UUID, origin: UUID, sign_key: bytes, exchange_key: bytes) -> bytes:
    """What an invite key signs to admit a device: its keys, for this group and origin."""
    return HELLO_CONTEXT + group.bytes + origin.bytes + sign_key + exchange_key


@dataclass(frozen=True, slots=True)
class Admit:
    origin: UUID
    invite_key: bytes
    expires_ms: int

    def encode(self) -> bytes:
        return _ADMIT.pack(ADMIT, self.origin.bytes, self.invite_key, self.expires_ms)


@dataclass(frozen=True, slots=True)
class Wrapped:
    member: UUID
    ephemeral: bytes
    sealed_key: bytes


@dataclass(frozen=True, slots=True)
class Remove:
    origin: UUID
    from_index: int
    epoch: int
    keys: tuple[Wrapped, ...]

    def encode(self) -> bytes:
        head = _REMOVE.pack(REMOVE, self.origin.bytes, self.from_index, self.epoch,
                            len(self.keys))
        return head + b"".join(_WRAPPED.pack(w.member.bytes, w.ephemeral, w.sealed_key)
                               for w in self.keys)


@dataclass(frozen=True, slots=True)
class Erased:
    slots: tuple[tuple[int, bytes, int, bytes], ...]
    """``(index, digest, range start or -1, range hash or zeros)`` per erased slot."""

    def encode(self) -> bytes:
        return _ERASED.pack(ERASED, len(self.slots)) + b"".join(
            _SLOT.pack(*slot) for slot in self.slots)


@dataclass(frozen=True, slots=True)
class Tomb:
    digest: bytes

    def encode(self) -> bytes:
        return bytes([TOMB]) + self.digest


@dataclass(frozen=True, slots=True)
class Grant:
    member: UUID
    keys: tuple[tuple[int, bytes, bytes], ...]
    """``(epoch, ephemeral key, sealed key)`` per epoch."""

    def encode(self) -> bytes:
        return _GRANT.pack(GRANT, self.member.bytes, len(self.keys)) + b"".join(
            _GRANTED.pack(*k) for k in self.keys)


Record = Hello | Admit | Remove | Erased | Tomb | Grant


def is_record(payload: bytes) -> bool:
    return bool(payload) and payload[0] in KINDS


def decode(payload: bytes) -> Record:
    """The record in ``payload``; `CodecError` when it is malformed."""
    try:
        kind = payload[0]
        if kind == HELLO and len(payload) == _HELLO.size:
            return Hello(*_HELLO.unpack(payload)[1:])
        if kind == ADMIT and len(payload) == _ADMIT.size:
            _, origin, key, expires = _ADMIT.unpack(payload)
            return Admit(UUID(bytes=origin), key, expires)
        if kind == REMOVE:
            _, origin, start, epoch, count = _REMOVE.unpack_from(payload)
            if len(payload) != _REMOVE.size + count * _WRAPPED.size:
                raise CodecError("a remove record of the wrong length")
            keys = tuple(Wrapped(UUID(bytes=m), e, k) for m, e, k in
                         _WRAPPED.iter_unpack(payload[_REMOVE.size:]))
            return Remove(UUID(bytes=origin), start, epoch, keys)
        if kind == ERASED:
            _, count = _ERASED.unpack_from(payload)
            if len(payload) != _ERASED.size + count * _SLOT.size:
                raise CodecError("an erased record of the wrong length")
            return Erased(tuple(_SLOT.iter_unpack(payload[_ERASED.size:])))
        if kind == GRANT:
            _, member, count = _GRANT.unpack_from(payload)
            if len(payload) != _GRANT.size + count * _GRANTED.size:
                raise CodecError("a grant record of the wrong length")
            return Grant(UUID(bytes=member), tuple(_GRANTED.iter_unpack(
                payload[_GRANT.size:])))
        if kind == TOMB and len(payload) == 1 + DIGEST_SIZE:
            return Tomb(payload[1:])
    except (IndexError, struct.error) as exc:
        raise CodecError(f"a malformed trust record: {exc}") from None
    raise CodecError(f"a malformed trust record (kind {payload[:1].hex()}, "
                     f"{len(payload)} bytes)")
