"""Sealed state snapshots: an encrypted group's snapshots, as the folder or relay holds them.

A sealed snapshot keeps the container of docs/file-format.md §9 (so the
storage can still list snapshots, see what each covers and compact), sets
flag bit 0 (`FLAG_SEALED`), and replaces the compressed body by::

    epoch u32, nonce 12, AES-256-GCM-SIV ciphertext of the compressed body (the
    associated data is the group id and the whole header with its frontier),
    Ed25519 signature (64) of the producer over all of that

The trailing SHA-256 (the snapshot's name) covers the sealed bytes.  A reader
opens a snapshot only when its producer is a member (not removed), the
signature verifies and the body opens; otherwise it is a `SnapshotError`
and nothing is loaded.  Visible to the storage: the producer, the time and
the frontier (origin ids and index counts), as for entries.
"""

from __future__ import annotations

import hashlib
import os
import struct

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCMSIV

from peerlog.state.snapshot import DIGEST_SIZE, FLAG_SEALED, HEADER, digest_matches, read_header
from peerlog.sync.errors import SnapshotError
from peerlog.trust.keyring import Keyring

_EPOCH = struct.Struct(">I")
_NONCE = 12
_SIGNATURE = 64
_CONTEXT = b"peerlog/snapshot/v1"


def _split(data: bytes) -> tuple[bytearray, bytes]:
    """The header with its frontier, and what follows up to the digest."""
    origins = HEADER.unpack_from(data)[6]
    end = HEADER.size + 24 * origins
    return bytearray(data[:end]), data[end:-DIGEST_SIZE]


def _flags(head: bytes | bytearray) -> int:
    return int(HEADER.unpack_from(head)[2])


def _with_flags(head: bytearray, flags: int) -> bytes:
    struct.pack_into(">H", head, 10, flags)
    return bytes(head)


def seal_snapshot(data: bytes, ring: Keyring) -> bytes:
    """``data`` (a plain snapshot from `StateStore.snapshot`) sealed for ``ring``'s group
    and signed by this device."""
    head, compressed = _split(data)
    sealed_head = _with_flags(head, _flags(head) | FLAG_SEALED)
    epoch = ring.epoch
    nonce = os.urandom(_NONCE)
    cipher = AESGCMSIV(ring.epochs[epoch]).encrypt(nonce, compressed,
                                                  ring.group.bytes + sealed_head)
    body = _EPOCH.pack(epoch) + nonce + cipher
    signature = ring.signer.sign(_CONTEXT + ring.group.bytes + sealed_head + body)
    out = sealed_head + body + signature
    return out + hashlib.sha256(out).digest()


def open_snapshot(data: bytes, ring: Keyring) -> bytes:
    """The plain snapshot inside sealed ``data`` (to hand to `StateStore.load_snapshot`);
    `SnapshotError` naming why it cannot be trusted or opened."""
    if not digest_matches(data):
        raise SnapshotError("snapshot digest does not match its contents: damaged or "
                            "truncated (a copy still arriving?)")
    producer, _, _ = read_header(data)
    head, body = _split(data)
    if not _flags(head) & FLAG_SEALED:
        raise SnapshotError("an unencrypted snapshot where the group is encrypted: ignored "
                            "(anyone who can write the folder could have made it)")
    member = ring.members.get(producer)
    if member is None or member.removed_from is not None:
        raise SnapshotError(f"a snapshot made by device {producer}, which is not a member of "
                            "the group: ignored")
    if len(body) < _EPOCH.size + _NONCE + 16 + _SIGNATURE:
        raise SnapshotError("sealed snapshot body is truncated")
    sealed, signature = body[:-_SIGNATURE], body[-_SIGNATURE:]
    try:
        member.verifier().verify(signature, _CONTEXT + ring.group.bytes + bytes(head) + sealed)
    except InvalidSignature:
        raise SnapshotError(f"snapshot signature does not verify for device {producer}: "
                            "forged, ignored") from None
    (epoch,) = _EPOCH.unpack_from(sealed)
    key = ring.epochs.get(epoch)
    if key is None:
        raise SnapshotError(f"snapshot sealed with key epoch {epoch}, which this device was "
                            "not given")
    nonce = sealed[_EPOCH.size:_EPOCH.size + _NONCE]
    try:
        compressed = AESGCMSIV(key).decrypt(nonce, sealed[_EPOCH.size + _NONCE:],
                                            ring.group.bytes + bytes(head))
    except InvalidTag:
        raise SnapshotError("snapshot does not open with the group's key") from None
    plain = _with_flags(head, _flags(head) & ~FLAG_SEALED) + compressed
    return plain + hashlib.sha256(plain).digest()
