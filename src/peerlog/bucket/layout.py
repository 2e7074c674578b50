"""What a key in a bucket is: a batch, a log start, an erasure notice, or something ignored.

The layout (docs/file-format.md §12), under the URL's prefix::

    <origin>/<first:020d>.plog                     a batch: one segment, never rewritten
                                                   but to erase (see below)
    <origin>/<first:020d>-start                    the log starts here (compaction)
    <origin>/<at:020d>-erased-<n:06d>-<index:020d> erasure notice: slot ``index`` was
                                                   erased when the log ended at ``at``
    <origin>/cursors.json                          what that device holds (§10)
    snapshots/<sha256>.psnap                       state snapshots (§9)

Every key of an origin's log sorts after the keys written before it, so one listing
from a start-after cursor per origin finds everything new: a batch's first index and
an erasure notice's ``at`` only grow, and ``-`` sorts before ``.``, so a notice or a
start at ``at`` precedes the batch later written there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from uuid import UUID

from peerlog.filelog.format import SEGMENT_SUFFIX
from peerlog.filelog.names import CURSORS_FILE, SET_ASIDE_SUFFIX, SNAPSHOTS_FOLDER

_BATCH = re.compile(r"^(\d{20})" + re.escape(SEGMENT_SUFFIX) + "$")
_START = re.compile(r"^(\d{20})-start$")
_ERASED = re.compile(r"^(\d{20})-erased-(\d{6})-(\d{20})$")

GROUP_KEY = "peerlog-group.json"
"""Reserved at the top of a bucket, as in a folder."""


@dataclass(frozen=True, slots=True)
class Batch:
    first: int


@dataclass(frozen=True, slots=True)
class Start:
    first: int


@dataclass(frozen=True, slots=True)
class ErasureNotice:
    at: int
    n: int
    index: int


LogKey = Batch | Start | ErasureNotice


def batch_key(origin: UUID, first: int) -> str:
    return f"{origin}/{first:020d}{SEGMENT_SUFFIX}"


def start_key(origin: UUID, first: int) -> str:
    return f"{origin}/{first:020d}-start"


def notice_key(origin: UUID, at: int, n: int, index: int) -> str:
    return f"{origin}/{at:020d}-erased-{n:06d}-{index:020d}"


def cursors_key(origin: UUID) -> str:
    return f"{origin}/{CURSORS_FILE}"


def set_aside_key(origin: UUID, name: str) -> str:
    return f"{origin}/{name}{SET_ASIDE_SUFFIX}"


def snapshot_key(name: str) -> str:
    return f"{SNAPSHOTS_FOLDER}/{name}"


def parse_log_key(name: str) -> LogKey | None:
    """What the name of a key inside an origin's prefix stands for (None: not the log's)."""
    if m := _BATCH.match(name):
        return Batch(int(m.group(1)))
    if m := _ERASED.match(name):
        return ErasureNotice(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    if m := _START.match(name):
        return Start(int(m.group(1)))
    return None


def why_ignored(name: str) -> str:
    """Why a key inside an origin's prefix is not read."""
    if name.endswith(SET_ASIDE_SUFFIX):
        return "set aside: entries written in this device's name that it did not sign"
    return "not a bucket log key (another program's object, or a name this version " \
           "does not know)"
