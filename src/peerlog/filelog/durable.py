"""Durability primitives: writes that are on the disk when they return."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


def sync_fd(fd: int) -> None:
    """Flush a file to stable storage.

    On macOS ``fsync`` stops at the drive's cache; only ``F_FULLFSYNC`` reaches
    the platter, so it is used wherever the platform has it.
    """
    full = getattr(fcntl, "F_FULLFSYNC", None)
    if full is not None:
        try:
            fcntl.fcntl(fd, full)
            return
        except OSError:  # not supported by this file system: fall back
            pass
    os.fsync(fd)


def sync_dir(path: Path) -> None:
    """Make a directory's entries (a new or renamed file) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    """``os.write`` until every byte is written (a write may be partial)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def replace_atomically(path: Path, data: bytes) -> None:
    """Put ``data`` at ``path`` so a crash leaves either the old file or the new one.

    The new content goes to a temporary file beside it (a name no reader takes
    for a segment), is synced, renamed over ``path``, and the directory synced.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        write_all(fd, data)
        sync_fd(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    sync_dir(path.parent)
