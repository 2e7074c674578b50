"""The shared-folder logs: one append-only log per device, in a folder a sync tool copies."""

from peerlog.filelog.chain import Ignored, OriginChain, Problem
from peerlog.filelog.doctor import FolderDiagnosis, OriginReport
from peerlog.filelog.log import FileLog, SharedFolder, Withheld
from peerlog.filelog.problems import ProblemKind

__all__ = ["FileLog", "FolderDiagnosis", "Ignored", "OriginChain", "OriginReport", "Problem",
           "ProblemKind", "SharedFolder", "Withheld"]
