"""`FolderDiagnosis`: what `FileLog.doctor` finds in a shared folder."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from uuid import UUID

from peerlog.filelog.chain import Ignored, Problem
from peerlog.sync.cursors import PeerCursors
from peerlog.sync.faces import DeviceCursorsFace, SnapshotMeta


@dataclass(frozen=True, slots=True)
class OriginReport:
    """One origin's folder: how many entries are served and what is withheld."""

    origin: UUID
    extent: int
    segments: int
    problems: tuple[Problem, ...]
    ahead_ms: int = 0
    """How far its newest entry is stamped ahead of this machine's clock, when that is
    more than the clock-skew bound (other devices wait for such entries); else 0."""
    first: int = 0
    """Where its log starts in the folder (above 0 once compacted)."""


@dataclass(frozen=True, slots=True)
class SnapshotReport:
    """A valid snapshot in the folder."""

    name: str
    producer: UUID
    covers: int
    size: int


@dataclass(frozen=True, slots=True)
class MissingDevice:
    """A device whose folder is gone from the shared folder (retired, or removed by
    mistake): devices said they held ``held`` of its entries; snapshots cover ``covered``."""

    origin: UUID
    held: int
    covered: int

    @property
    def lost(self) -> bool:
        """Whether some of its entries are in no snapshot: a device that lacks them can
        no longer receive them."""
        return self.covered < self.held


@dataclass(frozen=True, slots=True)
class FolderDiagnosis:
    """The whole folder: every origin, every problem, every ignored file."""

    root: str
    origins: tuple[OriginReport, ...]
    ignored: tuple[Ignored, ...] = field(default=())
    snapshots: tuple[SnapshotReport, ...] = field(default=())
    missing: tuple[MissingDevice, ...] = field(default=())

    @property
    def healthy(self) -> bool:
        """True when nothing is withheld anywhere, no device's clock is too far ahead, and
        no vanished device folder took entries with it (ignored files are fine)."""
        return all(not o.problems and not o.ahead_ms for o in self.origins) \
            and not any(m.lost for m in self.missing)

    def all_problems(self) -> list[Problem]:
        """Every origin's problems, in origin order."""
        return [p for o in self.origins for p in o.problems]


def missing_devices(present: set[UUID], said: Iterable[DeviceCursorsFace],
                    snapshots: Iterable[SnapshotMeta]) -> tuple[MissingDevice, ...]:
    """Devices that other devices (``said``) or ``snapshots`` know of, whose log is not
    ``present`` any more."""
    held = PeerCursors()
    for told in said:
        held = held.merged(told.cursors)
    covered = PeerCursors()
    for snap in snapshots:
        covered = covered.merged(snap.frontier)
    return tuple(MissingDevice(p, held.of(p), covered.of(p))
                 for p in sorted(set(held) | set(covered)) if p not in present)
