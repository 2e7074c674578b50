"""`FolderDiagnosis`: what `FileLog.doctor` finds in a shared folder."""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID

from peerlog.filelog.chain import Ignored, Problem


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


@dataclass(frozen=True, slots=True)
class FolderDiagnosis:
    """The whole folder: every origin, every problem, every ignored file."""

    root: str
    origins: tuple[OriginReport, ...]
    ignored: tuple[Ignored, ...] = field(default=())

    @property
    def healthy(self) -> bool:
        """True when nothing is withheld anywhere and no device's clock is too far ahead
        (ignored files are fine)."""
        return all(not o.problems and not o.ahead_ms for o in self.origins)

    def all_problems(self) -> list[Problem]:
        """Every origin's problems, in origin order."""
        return [p for o in self.origins for p in o.problems]
