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


@dataclass(frozen=True, slots=True)
class FolderDiagnosis:
    """The whole folder: every origin, every problem, every ignored file."""

    root: str
    origins: tuple[OriginReport, ...]
    ignored: tuple[Ignored, ...] = field(default=())

    @property
    def healthy(self) -> bool:
        """True when nothing is withheld anywhere (ignored files are fine)."""
        return all(not o.problems for o in self.origins)

    def all_problems(self) -> list[Problem]:
        """Every origin's problems, in origin order."""
        return [p for o in self.origins for p in o.problems]
