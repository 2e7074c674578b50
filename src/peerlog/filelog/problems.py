"""`ProblemKind`: what can be wrong with a log in a shared folder (docs/file-format.md §4).

A `StrEnum`, so a kind compares equal to its documented name and prints as
it in JSON (``peerlog doctor --json``), while code matches on members.
"""

from __future__ import annotations

from enum import StrEnum


class ProblemKind(StrEnum):
    INCOMPLETE = "incomplete"
    """A segment still being written or copied; normal at the tail of a live folder."""
    CORRUPT = "corrupt"
    NOT_A_SEGMENT = "not-a-segment"
    FUTURE_VERSION = "future-version"
    FOREIGN_ORIGIN = "foreign-origin"
    MISNAMED = "misnamed"
    UNREADABLE = "unreadable"
    GAP = "gap"
    OVERLAP = "overlap"
    DIVERGENCE = "divergence"
    SYMLINK = "symlink"
    NOT_A_REGULAR_FILE = "not-a-regular-file"
    OVERSIZED = "oversized"
    FORGED = "forged"
    """In an encrypted group: entries in a device's name that it did not sign."""
