"""A device's home: the folder holding its database and what it remembers.

``home/device.sqlite`` is the device (its peer id, oplog and state);
``home/sync.json`` remembers where it syncs (a shared folder, or a relay and
its token).  The command line and `peerlog.open`
share these, so an app and ``peerlog sync`` can work on one device.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TypeVar, cast
from uuid import UUID

import platformdirs

from peerlog.state import StateStore
from peerlog.sync.defaults import DATABASE_FILE, SYNC_FILE
from peerlog.sync.errors import SyncError, WrongGroupError

DATABASE = DATABASE_FILE


class HomeError(SyncError):
    """A device home that cannot be used as asked: no device yet, an empty (0-byte)
    database, a damaged remembered file, a folder that is not a shared folder, or
    no token for a relay.  The message says what to do."""


def home_dir(option: str | None) -> Path:
    """``--home``, else ``$PEERLOG_HOME``, else the platform's user data folder."""
    if option:
        return Path(option).expanduser()
    env = os.environ.get("PEERLOG_HOME")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_data_dir("peerlog", appauthor=False))


def open_device(home: Path, *, create: bool = False, origin: UUID | None = None) -> StateStore:
    """The device's state store (its oplog lives in the same database).

    Only `init` (``create``) makes a device; an existing database that is
    empty (0 bytes: a failed copy or restore) is refused rather than silently
    becoming a new device with a new identity.  The home and the database are
    private to the user (0700 / 0600).
    """
    path = home / DATABASE
    if not path.exists():
        if not create:
            raise HomeError(f"no device in {home}: run `peerlog --home {home} init` first")
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(home, 0o700)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    elif path.stat().st_size == 0:
        raise HomeError(
            f"the device database {path} is empty (0 bytes), so this device's identity is "
            "lost: restore device.sqlite from a backup, or move it away and run "
            f"`peerlog --home {home} init` to start a new device (its data syncs back from "
            "the folder or relay)")
    return StateStore(path, origin)



def load_sync(home: Path) -> dict[str, str]:
    """What `save_sync` remembered in ``home/sync.json`` (empty when nothing was):
    ``{"folder": path}``, ``{"server": url, "token": token}`` or ``{"bucket": url}`` (with
    ``"endpoint"``), mode 0600."""
    path = home / SYNC_FILE
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise HomeError(f"cannot read {path}: {exc}; remove it and pass --folder or "
                        "--server again") from None
    if not isinstance(doc, dict) or not all(isinstance(v, str) for v in doc.values()):
        raise HomeError(f"{path} is damaged; remove it and pass --folder or --server again")
    return {str(k): v for k, v in doc.items()}


def save_sync(home: Path, **where: str) -> None:
    """Remember where this device syncs, for later runs (file mode 0600)."""
    path = home / SYNC_FILE
    tmp = path.with_name(f".{SYNC_FILE}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(where, f)
    tmp.replace(path)


def save_bucket(home: Path, url: str, endpoint: str | None) -> None:
    """Remember that this device syncs with the bucket ``url`` (and its S3-compatible
    ``endpoint``, when one was given)."""
    save_sync(home, bucket=url, **({"endpoint": endpoint} if endpoint else {}))


def read_token(option: str | None, server: str, saved: dict[str, str]) -> str:
    """The device token: ``--token`` (``-`` reads it from stdin), else ``$PEERLOG_TOKEN``,
    else the one remembered for ``server``.  Never required on the command line."""
    if option == "-":
        token = sys.stdin.readline().strip()
    else:
        token = option or os.environ.get("PEERLOG_TOKEN") or (
            saved.get("token", "") if saved.get("server") == server else "")
    if not token:
        raise HomeError(f"no token for {server}: pass it once with --token - (read from stdin) "
                        "or set $PEERLOG_TOKEN; it is then remembered in the device home")
    return token


def shared_folder(folder: str) -> Path:
    """Check that ``folder`` can be a shared peerlog folder; its path."""
    path = Path(folder).expanduser().absolute()
    if not path.exists():
        raise HomeError(f"shared folder {path} does not exist")
    if not path.is_dir():
        raise HomeError(f"{path} is not a folder")
    names = [n for n in os.listdir(path) if not n.startswith(".")
             and n not in ("peerlog-group.json", "snapshots")]
    from peerlog.filelog.names import peer_of_folder  # only commands that sync need it

    peers = [n for n in names if peer_of_folder(n) is not None]
    if names and not peers:
        raise HomeError(f"{path} is not a peerlog shared folder: it holds {len(names)} other "
                       "item(s) and no device folders; use an empty folder")
    return path


_T = TypeVar("_T")


def through_trust(home: Path, store: StateStore, transport: _T, *,
                  folder: Path | None = None) -> _T:
    """``transport`` (a folder's `FileLog` or a relay client) as this device must use it:
    through its group's seals (`peerlog.trust.SealedLog`) when the device is in an
    encrypted group, as it is otherwise.  `WrongGroupError` when ``folder`` belongs to
    another group, or to an encrypted one this device has no key for."""
    from peerlog.trust import PlainLog, Trust, read_group_doc

    trust = Trust.load(home)
    if trust is None:
        if folder is None:  # a relay has no group document: its entries say
            return cast(_T, PlainLog(transport))
        doc = read_group_doc(folder)
        if doc is not None:
            raise WrongGroupError(
                f"{folder} belongs to encrypted group {doc['group']}, and this device has no "
                "key for it: join it with an invite code from one of its devices (`peerlog "
                "invite` there, `peerlog init --join CODE` on a new home here)")
        return transport
    if folder is not None:
        trust.claim_folder(folder)
    return cast(_T, trust.wrap(transport, store.origin, store.oplog.append,
                               strict_group=folder is None))
