"""Encrypted groups: end-to-end encryption, signed device logs, membership, revocation.

`Trust` is a device's side of it: its keyring (``home/group.json``), the
`Opener` that verifies what other devices wrote, and `wrap`, which puts a
`SealedLog` between the drivers and a shared folder or relay.  A device with
no keyring is in a plain (0.1-style) group and syncs unsealed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from pathlib import Path
from typing import Any
from uuid import UUID

from peerlog.sync.errors import TrustError, WrongGroupError
from peerlog.trust import group as groups
from peerlog.trust import records
from peerlog.trust.keyring import GROUP_FILE, Keyring, Member
from peerlog.trust.opener import Distrust, Opener
from peerlog.trust.sealed_log import PlainLog, SealedLog

__all__ = ["GROUP_FILE", "Distrust", "Keyring", "Member", "Opener", "PlainLog", "SealedLog",
           "Trust"]

log = logging.getLogger(__name__)


def _now_ms() -> int:
    return int(time.time() * 1000)


class Trust:
    """A device's keys and what it knows of its group's members."""

    def __init__(self, home: Path, ring: Keyring) -> None:
        self.home = home
        self.ring = ring
        self.opener = Opener(ring, on_learned=self.save)

    @classmethod
    def load(cls, home: Path) -> Trust | None:
        """The device's trust, None when it is in no encrypted group."""
        ring = Keyring.load(home)
        return None if ring is None else cls(home, ring)

    @property
    def group(self) -> UUID:
        return self.ring.group

    def save(self) -> None:
        """Write the keyring, merged with what another process of this device saved."""
        on_disk = Keyring.load(self.home)
        if on_disk is not None and on_disk.group == self.ring.group:
            self.ring.absorb(on_disk)
        self.ring.save(self.home)

    def wrap(self, transport: Any, own: UUID, append: Any, *,
             strict_group: bool = False) -> SealedLog:
        """``transport`` seen through this group's seals; ``append`` adds a payload to the
        device's own log (``oplog.append``).  With ``strict_group`` (a relay: it has no
        group document), entries of another group are a `WrongGroupError`."""
        if own != self.ring.origin:
            raise TrustError(f"the keyring is for device {self.ring.origin}, but this "
                             f"device is {own}: the home's group.json belongs to another "
                             "device")

        async def record(payload: bytes) -> int:
            index, _ = await append(payload)
            return int(index)
        return SealedLog(transport, self.opener, own, record=record,
                         strict_group=strict_group)

    # -- the shared folder's group document ------------------------------------------

    def claim_folder(self, folder: Path) -> None:
        """Check that ``folder`` belongs to this group (`WrongGroupError` naming the group
        it belongs to), and mark it as this group's when it is new."""
        doc = read_group_doc(folder)
        if doc is None:
            peers = _device_folders(folder)
            if peers:
                raise WrongGroupError(
                    f"{folder} holds an unencrypted group ({len(peers)} device(s)); this "
                    f"device is in encrypted group {self.group}: use another folder, or "
                    "move that group to encryption with `peerlog encrypt` on one of its "
                    "devices")
            write_group_doc(folder, {"format": 1, "group": str(self.group)})
            return
        theirs = doc.get("group")
        if theirs != str(self.group):
            raise WrongGroupError(
                f"{folder} belongs to group {theirs}, and this device is in group "
                f"{self.group}: join that group with an invite code from one of its devices "
                "(`peerlog invite` there, `peerlog init --join CODE` on a new home here), "
                "or use another folder")

    # -- membership --------------------------------------------------------------------

    def invite(self, ttl_ms: int = groups.INVITE_TTL_MS, *,
               device: UUID | None = None) -> groups.Invitation:
        invitation = groups.invite(self.ring, _now_ms(), ttl_ms, origin=device)
        self.save()
        return invitation

    def remove(self, origin: UUID, from_index: int) -> bytes:
        """Remove ``origin``: a new key epoch wrapped for every remaining member; returns
        the remove record to append to this device's own log."""
        ring = self.ring
        if origin == ring.origin:
            raise TrustError("a device cannot remove itself; remove it from another device")
        member = ring.members.get(origin)
        if member is None:
            if not any(invite.origin == origin for invite in ring.invites.values()):
                raise TrustError(f"device {origin} is not a member of group {ring.group}")
            member = Member(bytes(32), bytes(32))  # invited, not heard from yet
        if member.removed_from is not None:
            raise TrustError(f"device {origin} was already removed")
        epoch = ring.epoch + 1
        key = os.urandom(32)
        stay = {o: m for o, m in ring.members.items()
                if m.removed_from is None and o != origin}
        record = records.Remove(origin, from_index, epoch, ring.wrap_for(stay, epoch, key))
        ring.members[origin] = Member(member.sign_key, member.exchange_key, from_index)
        ring.epochs[epoch] = key
        self.save()
        return record.encode()


def _device_folders(folder: Path) -> list[str]:
    """The device folders a shared folder holds (a plain group's, before any document)."""
    from peerlog.filelog.names import peer_of_folder

    return [name for name in os.listdir(folder) if peer_of_folder(name) is not None]


def read_group_doc(folder: Path) -> dict[str, Any] | None:
    """The folder's ``peerlog-group.json``; None when it has none."""
    path = folder / groups.GROUP_DOC
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise TrustError(f"cannot read {path}: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("group"), str):
        raise TrustError(f"{path} is damaged: it names no group")
    return doc


def write_group_doc(folder: Path, doc: dict[str, Any]) -> None:
    path = folder / groups.GROUP_DOC
    tmp = folder / f".{groups.GROUP_DOC}.tmp"
    tmp.write_text(json.dumps(doc, indent=1))
    tmp.replace(path)


# -- what a device does to form and change its group (the CLI and apps share these) ------


async def start_group(home: Path, store: Any) -> Trust:
    """Make this device the first member of a new encrypted group (`TrustError` when it
    is in one already, or has written before: see `peerlog encrypt` for that)."""
    if Keyring.load(home) is not None:
        raise TrustError(f"the device in {home} is already in a group")
    ring = groups.create(store.origin)
    trust = Trust(home, ring)
    ring.save(home)
    return trust


async def invite_device(trust: Trust, store: Any, ttl_ms: int = groups.INVITE_TTL_MS, *,
                        device: UUID | None = None) -> groups.Invitation:
    """A one-time code for a new device (or for the existing ``device`` of a group that
    moved to encryption); the admit record goes into this device's log (publish it with
    a sync so the other members learn of it)."""
    invitation = trust.invite(ttl_ms, device=device)
    await store.oplog.append(invitation.admit)
    return invitation


def join_code(code: str) -> tuple[Keyring, bytes]:
    """The keyring and hello record an invite code gives (`InviteError` when it cannot)."""
    return groups.join(code, _now_ms())


async def remove_device(trust: Trust, store: Any, origin: UUID) -> int:
    """Remove ``origin`` from the group from what this device holds of it on; returns
    the new key epoch.  Its later writes are refused everywhere, and it cannot read what
    is written from now on."""
    held = (await store.oplog.cursors()).of(origin)
    record = trust.remove(origin, held)
    await store.oplog.append(record)
    return trust.ring.epoch


def passphrase_for_folder(home: Path, origin: UUID, folder: Path, passphrase: str, *,
                          n: int = groups.SCRYPT_N) -> tuple[Keyring, bytes, bool]:
    """This device's keyring for the folder's passphrase group, creating the group when the
    folder has none; returns ``(ring, hello, created)``."""
    doc = read_group_doc(folder)
    if doc is None:
        peers = _device_folders(folder)
        if peers:
            raise WrongGroupError(f"{folder} already holds an unencrypted group: use an "
                                  "empty folder for a passphrase group")
        ring, hello, new_doc = groups.passphrase_group(origin, passphrase, n=n)
        write_group_doc(folder, new_doc)
        return ring, hello, True
    if "kdf" not in doc:
        raise WrongGroupError(f"{folder} belongs to group {doc['group']}, which uses invite "
                              "codes, not a passphrase: ask one of its devices for a code "
                              "(`peerlog invite`)")
    ring, hello = groups.join_passphrase(origin, passphrase, doc)
    return ring, hello, False


async def encrypt_group(home: Path, store: Any, folder: Path) -> tuple[Keyring, dict[UUID, int]]:
    """Move the unencrypted group syncing through ``folder`` to encryption: this device
    founds the group, and what the folder holds now stays readable, unencrypted (it was
    exposed already); everything written from here on is sealed.  The other devices
    join with invites for their existing ids (`invite_device` with ``device``)."""
    from peerlog.filelog import SharedFolder

    if Keyring.load(home) is not None:
        raise TrustError(f"the device in {home} is already in an encrypted group")
    if read_group_doc(folder) is not None:
        raise WrongGroupError(f"{folder} already belongs to an encrypted group")
    async with SharedFolder(folder) as shared:
        start = {o: i for o, i in shared.extents().items() if i > 0}
    ring = groups.create(store.origin)
    ring.encrypted_from = dict(start)
    ring.save(home)
    write_group_doc(folder, {"format": 1, "group": str(ring.group)})
    return ring, start


async def verify_folder(trust: Trust, folder: Any) -> dict[UUID, Distrust]:
    """Read and verify every origin of a shared folder (a `SharedFolder`) or bucket through this
    device's keys: what would be withheld from each, and why (for `doctor` and
    `status`).  Conflict copies are judged by signature too (the folder's own
    ``doctor()`` then lists unsigned ones as forged)."""
    sealed = SealedLog(folder, trust.opener, trust.ring.origin)
    await sealed.erased()
    firsts = await asyncio.to_thread(folder.first_indexes)  # a compacted log starts later
    for peer in await asyncio.to_thread(folder.list_peers):
        index = firsts.of(peer)
        while got := await sealed.read_since(peer, index):
            index = got[-1][0] + 1
    return {p: d for p, d in sealed.withheld().items() if isinstance(d, Distrust)}
