"""The shared-folder logs: one append-only log per device, in a folder a sync tool copies."""

from peerlog.filelog.chain import Ignored, OriginChain, Problem
from peerlog.filelog.doctor import FolderDiagnosis, MissingDevice, OriginReport, SnapshotReport
from peerlog.filelog.log import FileLog, SharedFolder, Withheld
from peerlog.filelog.problems import ProblemKind
from peerlog.filelog.snapshots import SnapshotShelf

__all__ = ["FileLog", "FolderDiagnosis", "Ignored", "MissingDevice", "OriginChain",
           "OriginReport", "Problem", "ProblemKind", "SharedFolder", "SnapshotReport",
           "SnapshotShelf", "Withheld"]
