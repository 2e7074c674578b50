"""What a name in the shared folder is: a peer folder, a segment, or something to ignore.

Sync tools leave files of their own beside ours (temporary downloads,
conflict copies, cloud placeholders, OS litter).  None of them is ever read
as a segment; each is named with the reason, for `FileLog.doctor`.
"""

from __future__ import annotations

import re
from uuid import UUID

from peerlog.filelog.format import SEGMENT_SUFFIX

_SEGMENT = re.compile(r"^(\d{20})" + re.escape(SEGMENT_SUFFIX) + r"$")
_SEGMENT_INSIDE = re.compile(r"(\d{20})" + re.escape(SEGMENT_SUFFIX))

SET_ASIDE_SUFFIX = ".set-aside"
"""Appended to a segment whose entries this device found forged in its name (§11)."""

_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(re.escape(SET_ASIDE_SUFFIX) + "$"),
     "set aside: entries written in this device's name that it did not sign"),
    (re.compile(r"^\.syncthing\..*\.tmp$"), "Syncthing temporary file (download in progress)"),
    (re.compile(r"\.sync-conflict-\d{8}-\d{6}"), "Syncthing conflict copy"),
    (re.compile(r"\(.*conflicted copy.*\)", re.IGNORECASE), "Dropbox conflicted copy"),
    (re.compile(r"^\..*\.icloud$"), "iCloud placeholder (not downloaded yet)"),
    (re.compile(r"^~\$"), "Office/Windows lock file"),
    (re.compile(r"^\.~lock\..*#$"), "LibreOffice lock file"),
    (re.compile(r"^(\.DS_Store|Thumbs\.db|desktop\.ini|Icon\r)$", re.IGNORECASE),
     "operating-system metadata"),
    (re.compile(r"^\.(stfolder|stversions|stignore|dropbox.*|sync)$"), "sync tool metadata"),
    (re.compile(r"\.tmp$|\.partial$|\.crdownload$|\.download$"), "temporary file"),
    (re.compile(r" \(\d+\)(\.[^.]*)?$"), "duplicate name (as Google Drive makes)"),
]


CURSORS_FILE = "cursors.json"
"""In an origin's folder: what that device holds of every origin (docs/file-format.md §10)."""
SNAPSHOTS_FOLDER = "snapshots"
"""At the top of the shared folder: state snapshots (docs/file-format.md §9)."""


def segment_first_index(name: str) -> int | None:
    """The first index a segment file name announces, or None if it is not one."""
    match = _SEGMENT.match(name)
    return int(match.group(1)) if match else None


def conflict_copy_of(name: str) -> int | None:
    """For a sync tool's copy of a segment (``… .sync-conflict-…``, ``… (conflicted copy …)``):
    the first index of the segment it copies; otherwise None."""
    if segment_first_index(name) is not None:
        return None
    reason = why_ignored(name)
    if reason not in ("Syncthing conflict copy", "Dropbox conflicted copy",
                      "duplicate name (as Google Drive makes)"):
        return None
    match = _SEGMENT_INSIDE.search(name) or re.search(r"(\d{20})", name)
    return int(match.group(1)) if match else None


def why_ignored(name: str) -> str:
    """Why a file that is not a segment is ignored: the sync tool or kind it belongs to."""
    for pattern, reason in _RULES:
        if pattern.search(name):
            return reason
    return "not a segment name"


def peer_of_folder(name: str) -> UUID | None:
    """The origin a folder name stands for: only a canonical lower-case UUID counts."""
    try:
        peer = UUID(name)
    except ValueError:
        return None
    return peer if str(peer) == name else None
