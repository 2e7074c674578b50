"""The commands that form and change an encrypted group: ``init --encrypted``, ``init
--join``, ``init --passphrase``, ``invite``, ``devices remove`` and ``encrypt``."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

from peerlog.cli.errors import CliError
from peerlog.cli.render import console, emit_json
from peerlog.home import home_dir, load_sync, open_device, save_sync, shared_folder
from peerlog.state import StateStore
from peerlog.sync.errors import TrustError
from peerlog.trust import (
    GROUP_FILE,
    Keyring,
    Trust,
    encrypt_group,
    invite_device,
    join_code,
    passphrase_for_folder,
    remove_device,
)


def read_secret(option: str | None, env: str, prompt: str) -> str:
    """A code or passphrase: the option (``-`` reads a line of stdin), else ``$env``,
    else asked for without echo on a terminal."""
    if option == "-":
        value = sys.stdin.readline().strip()
    else:
        value = option or os.environ.get(env, "")
        if not value:
            value = getpass.getpass(prompt) if sys.stdin.isatty() else \
                sys.stdin.readline().rstrip("\n")
    if not value:
        raise CliError(f"no {prompt.rstrip(': ').lower()} given: pass it, or '-' to read it "
                       f"from stdin, or set ${env}", code=2)
    return value


async def init_group(args: argparse.Namespace, home: Path, existed: bool) -> dict[str, object]:
    """The group part of ``init``; returns what to report."""
    if args.join is not None:
        return await _join(args, home, existed)
    if args.passphrase:
        return await _passphrase(args, home, existed)
    if existed and Keyring.load(home) is not None:
        ring = Keyring.load(home)
        assert ring is not None
        return {"group": str(ring.group)}
    async with open_device(home, create=True) as store:
        if args.encrypted:
            if existed and (await store.oplog.cursors()).of(store.origin):
                raise CliError("this device already has changes in an unencrypted group: "
                               "use `peerlog encrypt` to move the group to encryption", code=2)
            ring = Keyring.create(store.origin)
            ring.save(home)
            return {"group": str(ring.group), "encrypted": True}
    return {}


async def _join(args: argparse.Namespace, home: Path, existed: bool) -> dict[str, object]:
    code = read_secret(args.join, "PEERLOG_INVITE", "Invite code: ")
    ring, hello = join_code(code)
    if existed:
        async with open_device(home) as store:
            if store.origin != ring.origin:
                raise CliError(f"this invite is for a new device, and {home} already holds "
                               f"device {store.origin}: join in a new home (--home), or ask "
                               f"for an invite for this device (`peerlog invite --device "
                               f"{store.origin}`)", code=2)
            await _start(home, store, ring, hello)
    else:
        async with open_device(home, create=True, origin=ring.origin) as store:
            await _start(home, store, ring, hello)
    return {"group": str(ring.group), "joined": True}


async def _start(home: Path, store: StateStore, ring: Keyring, hello: bytes) -> None:
    if Keyring.load(home) is not None:
        raise CliError(f"the device in {home} is already in a group", code=2)
    ring.save(home)
    await store.oplog.append(hello)


async def _passphrase(args: argparse.Namespace, home: Path, existed: bool
                      ) -> dict[str, object]:
    if not args.folder:
        raise CliError("a passphrase group lives in a shared folder: pass --folder DIR",
                       code=2)
    if existed:
        raise CliError(f"{home} already holds a device: use a new home to join a passphrase "
                       "group", code=2)
    folder = shared_folder(args.folder)
    passphrase = read_secret(None, "PEERLOG_PASSPHRASE", "Passphrase: ")
    async with open_device(home, create=True) as store:
        try:
            ring, hello, created = passphrase_for_folder(home, store.origin, folder, passphrase)
        except TrustError:
            store_path = home / "device.sqlite"
            await store.close()
            store_path.unlink(missing_ok=True)  # nothing was joined: leave no half device
            raise
        await _start(home, store, ring, hello)
    save_sync(home, folder=str(folder))
    return {"group": str(ring.group), "passphrase": True, "created_group": created}


async def cmd_invite(args: argparse.Namespace) -> int:
    """Print a one-time code that admits one device to this device's group."""
    home = home_dir(args.home)
    trust = _trust(home)
    async with open_device(home) as store:
        device = UUID(args.device) if args.device else None
        invitation = await invite_device(trust, store, int(args.expires_hours * 3_600_000),
                                         device=device)
    expires = datetime.fromtimestamp(invitation.expires_ms / 1000, UTC).astimezone()
    if args.json:
        emit_json({"code": invitation.code, "device": str(invitation.origin),
                   "expires": expires.isoformat(timespec="seconds")})
        return 0
    console.print(invitation.code, highlight=False, soft_wrap=True)
    sys.stderr.write(
        f"one device may join with this code until {expires:%Y-%m-%d %H:%M}: run `peerlog "
        "init --join CODE` there. It holds the group's keys: move it like a password.\n"
        f"The new device will be {invitation.origin} (a relay needs a token for it). Sync "
        "this device so the others learn of the invite.\n")
    return 0


async def cmd_remove(args: argparse.Namespace, store: StateStore, home: Path) -> int:
    """``devices remove ID``."""
    trust = _trust(home)
    try:
        origin = UUID(args.name or "")
    except ValueError:
        raise CliError("devices remove needs the device id (see `peerlog devices`)",
                       code=2) from None
    epoch = await remove_device(trust, store, origin)
    console.print(f"device {origin} is removed from group {trust.group}; new changes are "
                  f"sealed with key epoch {epoch}, which it does not have. Sync so every "
                  "member learns of it.", highlight=False)
    return 0


async def cmd_encrypt(args: argparse.Namespace) -> int:
    """Move this device's unencrypted group to encryption, from what the folder holds on."""
    home = home_dir(args.home)
    folder = shared_folder(args.folder or load_sync(home).get("folder") or "")
    async with open_device(home) as store:
        ring, start = await encrypt_group(home, store, folder)
    if args.json:
        emit_json({"group": str(ring.group), "encrypted_from": {
            str(o): i for o, i in start.items()}})
        return 0
    console.print(f"{folder} now belongs to encrypted group {ring.group}. Everything "
                  f"written before ({sum(start.values())} entries of {len(start)} devices) "
                  "stays readable, unencrypted, to anyone who can read the folder. Each "
                  "other device joins with `peerlog invite --device ID` here and `peerlog "
                  "init --join CODE` there.", highlight=False)
    return 0


def _trust(home: Path) -> Trust:
    trust = Trust.load(home)
    if trust is None:
        raise CliError(f"the device in {home} is in no encrypted group ({GROUP_FILE} is "
                       "missing): create one with `peerlog init --encrypted`, or join one "
                       "with `peerlog init --join CODE`", code=2)
    return trust
