"""Where a device lives on disk, and opening it."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import platformdirs

from peerlog.filelog.names import peer_of_folder
from peerlog.state import StateStore

DATABASE = "device.sqlite"


class CliError(Exception):
    """A user-facing error: printed as one line, exit status ``code``."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def home_dir(option: str | None) -> Path:
    """``--home``, else ``$PEERLOG_HOME``, else the platform's user data folder."""
    if option:
        return Path(option).expanduser()
    env = os.environ.get("PEERLOG_HOME")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_data_dir("peerlog", appauthor=False))


def open_device(home: Path, *, create: bool = False) -> StateStore:
    """The device's state store (its oplog lives in the same database).

    Only `init` (``create``) makes a device; an existing database that is
    empty (0 bytes: a failed copy or restore) is refused rather than silently
    becoming a new device with a new identity.  The home and the database are
    private to the user (0700 / 0600).
    """
    path = home / DATABASE
    if not path.exists():
        if not create:
            raise CliError(f"no device in {home}: run `peerlog --home {home} init` first")
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(home, 0o700)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    elif path.stat().st_size == 0:
        raise CliError(
            f"the device database {path} is empty (0 bytes), so this device's identity is "
            "lost: restore device.sqlite from a backup, or move it away and run "
            f"`peerlog --home {home} init` to start a new device (its data syncs back from "
            "the folder or relay)")
    return StateStore(path)


RELAY_FILE = "relay.json"
"""The relay this device syncs with, and its token (owner-only)."""


def load_relay(home: Path) -> dict[str, str] | None:
    """The remembered relay ``{"server": url, "token": token}``, or None."""
    try:
        doc = json.loads((home / RELAY_FILE).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot read {home / RELAY_FILE}: {exc}") from None
    if not isinstance(doc, dict) or not all(isinstance(doc.get(k), str)
                                            for k in ("server", "token")):
        raise CliError(f"{home / RELAY_FILE} is damaged: expected a server and a token")
    return {"server": doc["server"], "token": doc["token"]}


def save_relay(home: Path, server: str, token: str) -> None:
    """Remember the relay and token for later `peerlog sync` runs (file mode 0600)."""
    path = home / RELAY_FILE
    tmp = path.with_name(f".{RELAY_FILE}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"server": server, "token": token}, f)
    tmp.replace(path)


def read_token(option: str | None, server: str, saved: dict[str, str] | None) -> str:
    """The device token: ``--token`` (``-`` reads it from stdin), else ``$PEERLOG_TOKEN``,
    else the one remembered for ``server``.  Never required on the command line."""
    if option == "-":
        token = sys.stdin.readline().strip()
    else:
        token = option or os.environ.get("PEERLOG_TOKEN") or (
            saved["token"] if saved is not None and saved["server"] == server else "")
    if not token:
        raise CliError(f"no token for {server}: pass it once with --token - (read from stdin) "
                       "or set $PEERLOG_TOKEN; it is then remembered in the device home",
                       code=2)
    return token


def shared_folder(folder: str) -> Path:
    """Check that ``folder`` can be a shared peerlog folder; its path."""
    path = Path(folder).expanduser()
    if not path.exists():
        raise CliError(f"shared folder {path} does not exist")
    if not path.is_dir():
        raise CliError(f"{path} is not a folder")
    names = [n for n in os.listdir(path) if not n.startswith(".")]
    peers = [n for n in names if peer_of_folder(n) is not None]
    if names and not peers:
        raise CliError(f"{path} is not a peerlog shared folder: it holds {len(names)} other "
                       "item(s) and no device folders; use an empty folder")
    return path
