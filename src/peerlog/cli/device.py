"""Where a device lives on disk, and opening it."""

from __future__ import annotations

import os
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
    """The device's state store (its oplog lives in the same database)."""
    path = home / DATABASE
    if not path.exists():
        if not create:
            raise CliError(f"no device in {home}: run `peerlog --home {home} init` first")
        home.mkdir(parents=True, exist_ok=True)
    return StateStore(path)


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
