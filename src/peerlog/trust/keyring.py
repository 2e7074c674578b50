"""A device's keyring: its group, the group's key epochs, its own keys, and who is in.

Kept in ``home/group.json`` with owner-only permissions (docs/guide.md §6);
nothing in it ever enters the shared folder or the relay in clear.  The
members and invites it lists are what this device learned from verified
trust records (`peerlog.trust.records`); the file is rewritten atomically
whenever that changes.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCMSIV
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from peerlog.sync.errors import TrustError
from peerlog.trust.records import Grant, Wrapped
from peerlog.trust.sealing import EpochCipher

GROUP_FILE = "group.json"
FORMAT = 1
_RAW = serialization.Encoding.Raw
_PUB = serialization.PublicFormat.Raw
_PRIV = serialization.PrivateFormat.Raw
_NONE = serialization.NoEncryption()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def public_sign(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(_RAW, _PUB)


def public_exchange(key: X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(_RAW, _PUB)


@dataclass(frozen=True, slots=True)
class Member:
    """A device admitted to the group, with its public keys."""

    sign_key: bytes
    exchange_key: bytes
    removed_from: int | None = None
    """The first index of its log that is no longer accepted (it was removed)."""

    def verifier(self) -> Ed25519PublicKey:
        return _verifier(self.sign_key)


@dataclass(frozen=True, slots=True)
class Invite:
    """An admission announced by a member: the origin it is for and until when."""

    origin: UUID
    invite_key: bytes
    expires_ms: int


@dataclass(slots=True)
class Keyring:
    """Everything a device knows about its group's keys and members."""

    group: UUID
    origin: UUID
    epochs: dict[int, bytes]
    sign_seed: bytes
    exchange_seed: bytes
    members: dict[UUID, Member] = field(default_factory=dict)
    invites: dict[bytes, Invite] = field(default_factory=dict)
    passphrase_key: bytes | None = None
    """The public invite key every device of a passphrase group signs its hello with."""
    encrypted_from: dict[UUID, int] = field(default_factory=dict)
    """Origins that wrote plain entries before the group was encrypted: from where
    their entries must be sealed (``peerlog encrypt``)."""
    _ciphers: dict[int, EpochCipher] = field(default_factory=dict, repr=False)

    @classmethod
    def create(cls, origin: UUID, *, group: UUID | None = None,
               epoch_key: bytes | None = None) -> Keyring:
        """A new group with this device as its first member."""
        ring = cls(group or uuid4(), origin, {0: epoch_key or secrets.token_bytes(32)},
                   secrets.token_bytes(32), secrets.token_bytes(32))
        ring.members[origin] = ring.own_member()
        return ring

    # -- keys -------------------------------------------------------------------

    @property
    def signer(self) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(self.sign_seed)

    @property
    def exchanger(self) -> X25519PrivateKey:
        return X25519PrivateKey.from_private_bytes(self.exchange_seed)

    def own_member(self) -> Member:
        return Member(public_sign(self.signer), public_exchange(self.exchanger))

    @property
    def epoch(self) -> int:
        """The newest key epoch: what this device seals with."""
        return max(self.epochs)

    def cipher(self, epoch: int) -> EpochCipher | None:
        """The AEAD of ``epoch``; None when this device does not hold its key."""
        cipher = self._ciphers.get(epoch)
        if cipher is None and epoch in self.epochs:
            cipher = self._ciphers[epoch] = EpochCipher(self.group, epoch, self.epochs[epoch])
        return cipher

    def wrap_for(self, members: Mapping[UUID, Member], epoch: int,
                 key: bytes) -> tuple[Wrapped, ...]:
        """``key`` sealed to each member's exchange key (X25519, HKDF-SHA256, AES-GCM-SIV)."""
        out = []
        for member_id, member in sorted(members.items()):
            ephemeral = X25519PrivateKey.generate()
            shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(member.exchange_key))
            ephemeral_pub = public_exchange(ephemeral)
            wrap = _wrap_key(shared, ephemeral_pub, member.exchange_key)
            sealed = AESGCMSIV(wrap).encrypt(bytes(12), key, _wrap_aad(self.group, member_id,
                                                                        epoch))
            out.append(Wrapped(member_id, ephemeral_pub, sealed))
        return tuple(out)

    def grant_for(self, member_id: UUID, member: Member) -> Grant | None:
        """Every key epoch after the first, sealed to ``member``; None when there is none."""
        later = sorted(e for e in self.epochs if e > 0)
        if not later:
            return None
        keys = []
        for epoch in later:
            [w] = self.wrap_for({member_id: member}, epoch, self.epochs[epoch])
            keys.append((epoch, w.ephemeral, w.sealed_key))
        return Grant(member_id, tuple(keys))

    def unwrap(self, wrapped: Wrapped, epoch: int) -> bytes | None:
        """The epoch key sealed to this device in ``wrapped``; None when it does not open."""
        shared = self.exchanger.exchange(X25519PublicKey.from_public_bytes(wrapped.ephemeral))
        wrap = _wrap_key(shared, wrapped.ephemeral, public_exchange(self.exchanger))
        try:
            return AESGCMSIV(wrap).decrypt(bytes(12), wrapped.sealed_key,
                                           _wrap_aad(self.group, self.origin, epoch))
        except InvalidTag:
            return None

    # -- persistence --------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The keyring as JSON.  Copies of the tables are taken first: a file log's
        reader thread may learn a member while this runs (a conflict copy's check)."""
        members, invites = dict(self.members), dict(self.invites)
        return {
            "format": FORMAT, "group": str(self.group), "origin": str(self.origin),
            "epochs": {str(e): b64(k) for e, k in sorted(self.epochs.items())},
            "sign": b64(self.sign_seed), "exchange": b64(self.exchange_seed),
            "members": {str(o): {"sign": b64(m.sign_key), "exchange": b64(m.exchange_key),
                                 "removed_from": m.removed_from}
                        for o, m in members.items()},
            "invites": {b64(k): {"origin": str(i.origin), "expires_ms": i.expires_ms}
                        for k, i in invites.items()},
            "passphrase_key": None if self.passphrase_key is None else b64(self.passphrase_key),
            "encrypted_from": {str(o): i for o, i in self.encrypted_from.items()},
        }

    @classmethod
    def from_json(cls, doc: Any) -> Keyring:
        """`TrustError` naming what is wrong when ``doc`` is not a keyring."""
        try:
            if doc.get("format") != FORMAT:
                raise TrustError(f"keyring format {doc.get('format')!r} is not {FORMAT}: "
                                 "written by a newer peerlog?")
            ring = cls(UUID(doc["group"]), UUID(doc["origin"]),
                       {int(e): unb64(k) for e, k in doc["epochs"].items()},
                       unb64(doc["sign"]), unb64(doc["exchange"]))
            for o, m in doc["members"].items():
                ring.members[UUID(o)] = Member(unb64(m["sign"]), unb64(m["exchange"]),
                                               m["removed_from"])
            for k, i in doc["invites"].items():
                ring.invites[unb64(k)] = Invite(UUID(i["origin"]), unb64(k), int(i["expires_ms"]))
            if doc.get("passphrase_key"):
                ring.passphrase_key = unb64(doc["passphrase_key"])
            ring.encrypted_from = {UUID(o): int(i)
                                   for o, i in doc.get("encrypted_from", {}).items()}
        except TrustError:
            raise
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            raise TrustError(f"the keyring is damaged ({type(exc).__name__}: {exc})") from None
        if not ring.epochs or any(len(k) != 32 for k in ring.epochs.values()):
            raise TrustError("the keyring is damaged: bad epoch keys")
        return ring

    def save(self, home: Path) -> None:
        """Write ``home/group.json`` atomically, mode 0600."""
        path = home / GROUP_FILE
        # A temporary name of its own per writer: two processes (or a reader thread and
        # the event loop) may save at once, and the last rename wins whole.
        tmp = path.with_name(f".{GROUP_FILE}.{os.getpid()}.{threading.get_ident()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(self.to_json(), f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)

    @classmethod
    def load(cls, home: Path) -> Keyring | None:
        """The keyring in ``home``, None when the device is in no encrypted group."""
        path = home / GROUP_FILE
        try:
            text = path.read_text()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise TrustError(f"cannot read the keyring {path}: {exc}") from None
        try:
            doc = json.loads(text)
        except ValueError:
            raise TrustError(f"the keyring {path} is damaged (not JSON): restore it from a "
                             "backup, or join the group again with a new invite") from None
        return cls.from_json(doc)

    def absorb(self, other: Keyring) -> None:
        """Add what ``other`` (the same device's keyring, saved by another process) knows:
        epochs, members, invites; a removal is kept at the earlier index."""
        for epoch, key in other.epochs.items():
            self.epochs.setdefault(epoch, key)
        for origin, member in other.members.items():
            mine = self.members.get(origin)
            if mine is None:
                self.members[origin] = member
            elif member.removed_from is not None and (
                    mine.removed_from is None or member.removed_from < mine.removed_from):
                self.members[origin] = replace(mine, removed_from=member.removed_from)
        for key, invite in other.invites.items():
            self.invites.setdefault(key, invite)
        for origin, index in other.encrypted_from.items():
            self.encrypted_from.setdefault(origin, index)

    def copy(self) -> Keyring:
        return replace(self, epochs=dict(self.epochs), members=dict(self.members),
                       invites=dict(self.invites), encrypted_from=dict(self.encrypted_from),
                       _ciphers={})


@functools.lru_cache(maxsize=256)
def _verifier(key: bytes) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(key)


def _wrap_key(shared: bytes, ephemeral: bytes, recipient: bytes) -> bytes:
    return HKDF(SHA256(), 32, salt=None,
                info=b"peerlog/wrap/v1" + ephemeral + recipient).derive(shared)


def _wrap_aad(group: UUID, member: UUID, epoch: int) -> bytes:
    return b"peerlog/epoch/v1" + group.bytes + member.bytes + epoch.to_bytes(4, "big")
