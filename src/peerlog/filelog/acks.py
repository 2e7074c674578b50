"""What each device holds, as it last told the shared folder (``<origin>/cursors.json``).

Compaction may remove an origin's segments only once every device that still
syncs holds them; each device says what it holds in a small JSON file in its
own folder (docs/file-format.md §10), rewritten atomically after a round that
moved its cursors.  A device whose file is older than the retention window
no longer holds compaction back: when it comes back, it starts from a snapshot.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

from peerlog.filelog.durable import UnsafeFileError, open_segment, replace_atomically
from peerlog.filelog.names import CURSORS_FILE
from peerlog.sync.cursors import PeerCursors
from peerlog.sync.errors import CodecError

log = logging.getLogger(__name__)

CURSORS_VERSION = 1
MAX_CURSORS_FILE = 1 << 20


@dataclass(frozen=True, slots=True)
class DeviceCursors:
    """A device's cursors as it last wrote them, and when (its clock, ms since epoch)."""

    origin: UUID
    cursors: PeerCursors
    written_ms: int


def encode_cursors(origin: UUID, cursors: PeerCursors, now_ms: int) -> bytes:
    """The bytes of a cursors file (docs/file-format.md §10)."""
    doc = {"version": CURSORS_VERSION, "origin": str(origin), "written_ms": now_ms,
           "cursors": cursors.to_json()}
    return json.dumps(doc, sort_keys=True).encode()


def decode_cursors(raw: bytes, origin: UUID, where: str) -> DeviceCursors | None:
    """A cursors file's contents; None (logged) when it is not one this peerlog reads."""
    try:
        doc = json.loads(raw)
        if doc["version"] != CURSORS_VERSION or UUID(doc["origin"]) != origin:
            raise ValueError("another version or another device's file")
        return DeviceCursors(origin, PeerCursors.from_json(doc["cursors"]),
                             int(doc["written_ms"]))
    except (ValueError, KeyError, TypeError, CodecError) as exc:
        log.warning("ignoring %s: not a cursors file this peerlog reads (%s)", where, exc)
        return None


def write_cursors(folder: Path, origin: UUID, cursors: PeerCursors, now_ms: int) -> None:
    """Replace ``folder/cursors.json`` (``folder`` is the device's own origin folder)."""
    replace_atomically(folder / CURSORS_FILE, encode_cursors(origin, cursors, now_ms))


def read_cursors(folder: Path, origin: UUID) -> DeviceCursors | None:
    """The cursors file in an origin's folder; None when missing or unusable (logged)."""
    path = folder / CURSORS_FILE
    try:
        fd = open_segment(path, MAX_CURSORS_FILE)
    except FileNotFoundError:
        return None
    except (UnsafeFileError, OSError) as exc:
        log.warning("ignoring %s: %s", path, exc)
        return None
    with os.fdopen(fd, "rb") as f:
        return decode_cursors(f.read(), origin, str(path))
