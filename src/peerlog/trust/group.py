"""Forming an encrypted group: create it, invite a device, join, or share a passphrase.

* ``create``: a new group id and key, this device its first member.
* ``invite``: a one-time code for one new device.  It holds the group's keys
  and members and a fresh *invite key*; the member announces the invite key
  in a signed *admit* record, and the new device signs its *hello* with it.
  The code also fixes the new device's id, so a code used twice makes the
  second device refuse to start (that id already writes), and it expires
  (24 h by default) on the joining device's clock.
* ``passphrase``: for people who cannot carry a code between devices.  The
  group key and a shared invite key are derived from the passphrase with
  scrypt (N = 2^17, r = 8, p = 1: 128 MiB, the current OWASP recommendation);
  the shared folder keeps only the salt, the cost and a check value
  (``peerlog-group.json``), so a wrong passphrase is refused by name.

Codes are ``peerlog-invite-1:`` and URL-safe base64 of deflated JSON: they
carry secrets and are to be moved like a password (a chat with yourself, a
QR code), never stored in the shared folder.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import zlib
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from peerlog.sync.errors import InviteError, TrustError
from peerlog.trust import records
from peerlog.trust.keyring import (
    Invite,
    Keyring,
    Member,
    b64,
    public_exchange,
    public_sign,
    unb64,
)

CODE_PREFIX = "peerlog-invite-1:"
INVITE_TTL_MS = 24 * 3600 * 1000
SCRYPT_N, SCRYPT_R, SCRYPT_P = 1 << 17, 8, 1
GROUP_DOC = "peerlog-group.json"
"""At the top of an encrypted group's shared folder: the group id, and for a passphrase
group the key derivation's salt, cost and check value (no key)."""


def create(origin: UUID) -> Keyring:
    """A new group whose first member is this device."""
    return Keyring.create(origin)


def hello(ring: Keyring, invite_key: Ed25519PrivateKey) -> bytes:
    """The record that opens a joining device's log: its keys, signed by the invite."""
    sign, exchange = public_sign(ring.signer), public_exchange(ring.exchanger)
    signature = invite_key.sign(records.hello_message(ring.group, ring.origin, sign, exchange))
    return records.Hello(sign, exchange, public_sign(invite_key), signature).encode()


@dataclass(frozen=True, slots=True)
class Invitation:
    code: str
    origin: UUID
    """The id the invited device will have."""
    expires_ms: int
    admit: bytes
    """The admit record the inviting device appends to its own log."""


def invite(ring: Keyring, now_ms: int, ttl_ms: int = INVITE_TTL_MS, *,
           origin: UUID | None = None) -> Invitation:
    """A one-time code admitting one new device (or the existing device ``origin``, when
    a group moves to encryption); records the invite in ``ring``."""
    if ring.members.get(ring.origin, Member(b"", b"")).removed_from is not None:
        raise TrustError("this device was removed from the group: it cannot invite")
    key = Ed25519PrivateKey.generate()
    pub = public_sign(key)
    if origin is not None and origin in ring.members:
        raise TrustError(f"device {origin} is a member already")
    origin = origin or uuid4()
    expires = now_ms + ttl_ms
    ring.invites[pub] = Invite(origin, pub, expires)
    doc = ring.to_json()
    shared = {k: doc[k] for k in ("group", "epochs", "members", "invites", "passphrase_key",
                                  "encrypted_from")}
    shared.update({"invite": b64(key.private_bytes_raw()), "origin": str(origin),
                   "expires_ms": expires, "by": str(ring.origin)})
    code = CODE_PREFIX + b64(zlib.compress(json.dumps(shared).encode(), 9))
    return Invitation(code, origin, expires, records.Admit(origin, pub, expires).encode())


def join(code: str, now_ms: int) -> tuple[Keyring, bytes]:
    """This device's keyring from an invite code, and the hello record that opens its log.

    `InviteError` for a malformed or expired code.
    """
    code = code.strip()
    if not code.startswith(CODE_PREFIX):
        raise InviteError("this is not a peerlog invite code (it starts with "
                          f"{CODE_PREFIX!r}); ask a device of the group for one with "
                          "`peerlog invite`")
    try:
        doc: Any = json.loads(zlib.decompress(unb64(code[len(CODE_PREFIX):])))
        origin = UUID(doc["origin"])
        expires = int(doc["expires_ms"])
        invite_key = Ed25519PrivateKey.from_private_bytes(unb64(doc["invite"]))
        base = Keyring.from_json({**doc, "format": 1, "origin": str(origin),
                                  "sign": b64(bytes(32)), "exchange": b64(bytes(32))})
    except (ValueError, KeyError, TypeError, zlib.error, TrustError) as exc:
        raise InviteError(f"the invite code is damaged ({exc}); copy it again, whole") from None
    if now_ms > expires:
        raise InviteError(f"the invite code expired {(now_ms - expires) // 60000} min ago: "
                          "ask for a new one with `peerlog invite`")
    ring = Keyring(base.group, origin, base.epochs, secrets.token_bytes(32),
                   secrets.token_bytes(32), base.members, base.invites, base.passphrase_key,
                   base.encrypted_from)
    ring.members[origin] = ring.own_member()
    return ring, hello(ring, invite_key)


# -- passphrase groups -------------------------------------------------------------


def _derive(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=96, n=n, r=r, p=p).derive(passphrase.encode())


def _check_value(derived: bytes) -> bytes:
    return hmac.new(derived[64:], b"peerlog/passphrase-check/v1", hashlib.sha256).digest()[:16]


def passphrase_group(origin: UUID, passphrase: str, *, n: int = SCRYPT_N
                     ) -> tuple[Keyring, bytes, dict[str, Any]]:
    """A new passphrase group: this device's keyring, its hello record, and the group
    document for the shared folder."""
    if len(passphrase) < 8:
        raise TrustError("a group passphrase needs at least 8 characters (a few random "
                         "words are best)")
    group, salt = uuid4(), secrets.token_bytes(16)
    derived = _derive(passphrase, salt, n, SCRYPT_R, SCRYPT_P)
    doc = {"format": 1, "group": str(group), "kdf": {
        "name": "scrypt", "salt": b64(salt), "n": n, "r": SCRYPT_R, "p": SCRYPT_P,
        "check": b64(_check_value(derived))}}
    ring, record = _from_derived(origin, group, derived)
    return ring, record, doc


def join_passphrase(origin: UUID, passphrase: str, doc: Any) -> tuple[Keyring, bytes]:
    """Join the passphrase group described by a folder's group document."""
    try:
        group = UUID(doc["group"])
        kdf = doc["kdf"]
        salt, n, r, p = unb64(kdf["salt"]), int(kdf["n"]), int(kdf["r"]), int(kdf["p"])
        check = unb64(kdf["check"])
    except (KeyError, ValueError, TypeError) as exc:
        raise TrustError(f"the folder's {GROUP_DOC} is damaged ({exc})") from None
    if kdf.get("name") != "scrypt" or not (1 << 10 <= n <= 1 << 22) or r > 32 or p > 16:
        raise TrustError(f"the folder's {GROUP_DOC} asks for an unknown or unsafe key "
                         "derivation")
    derived = _derive(passphrase, salt, n, r, p)
    if not hmac.compare_digest(_check_value(derived), check):
        raise TrustError(f"wrong passphrase for group {group}: nothing was changed; try "
                         "again (passphrases are case-sensitive)")
    return _from_derived(origin, group, derived)


def _from_derived(origin: UUID, group: UUID, derived: bytes) -> tuple[Keyring, bytes]:
    invite_key = Ed25519PrivateKey.from_private_bytes(derived[32:64])
    ring = Keyring.create(origin, group=group, epoch_key=derived[:32])
    ring.passphrase_key = public_sign(invite_key)
    return ring, hello(ring, invite_key)
