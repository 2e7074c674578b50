"""Convergence drivers: what moves entries between replicas and file logs."""

from peerlog.drivers.filelog import FileLogIngester, FileLogPublisher
from peerlog.drivers.fork import Continued
from peerlog.drivers.puller import Puller, pull
from peerlog.drivers.rounds import FolderSync, RelaySync, SyncReport

__all__ = ["Continued", "FileLogIngester", "FileLogPublisher", "FolderSync", "Puller", "RelaySync",
           "SyncReport", "pull"]
