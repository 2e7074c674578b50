"""Convergence drivers: what moves entries between replicas and file logs."""

from peerlog.drivers.filelog import FileLogIngester, FileLogPublisher
from peerlog.drivers.puller import Puller, pull

__all__ = ["FileLogIngester", "FileLogPublisher", "Puller", "pull"]
