"""Durability primitives: writes that are on the disk when they return."""

from __future__ import annotations

import fcntl
import os
import stat
from pathlib import Path

from peerlog.filelog.format import MAX_SEGMENT_FILE
from peerlog.filelog.problems import ProblemKind


class UnsafeFileError(OSError):
    """A name in the shared folder that must not be read: ``kind`` says why
    (``symlink``, ``not-a-regular-file``, ``oversized``)."""

    def __init__(self, kind: ProblemKind, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail

    def __str__(self) -> str:
        return self.detail


def open_segment(path: Path, max_size: int = MAX_SEGMENT_FILE) -> int:
    """A read-only descriptor of the regular file at ``path``, never through a symlink.

    ``O_NOFOLLOW`` refuses a symlink, ``O_NONBLOCK`` keeps a FIFO from
    hanging the open, and ``fstat`` refuses anything but a regular file no
    larger than the format allows (so its size bounds what a scan loads).
    Raises `UnsafeFileError` for those, `OSError` for the rest.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if os.path.islink(path):
            raise UnsafeFileError(ProblemKind.SYMLINK, "a symbolic link: never followed inside the "
                                  "shared folder") from exc
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeFileError(ProblemKind.NOT_A_REGULAR_FILE,
                                  "not a regular file (a FIFO, device or folder named like "
                                  "a segment)")
        if st.st_size > max_size:
            raise UnsafeFileError(ProblemKind.OVERSIZED, f"{st.st_size} bytes, more than the "
                                  f"format allows ({max_size}); not loaded")
    except BaseException:
        os.close(fd)
        raise
    return fd


def real_folder(path: Path) -> bool:
    """True when ``path`` is a folder itself, not a symlink to one (nor a file)."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


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
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
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
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        write_all(fd, data)
        sync_fd(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    sync_dir(path.parent)
