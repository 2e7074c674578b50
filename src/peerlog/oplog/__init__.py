"""The SQL oplogs: replicas that hold every origin's log in a database."""

from peerlog.oplog.hooks import ApplyHook
from peerlog.oplog.postgres import PostgresOplog
from peerlog.oplog.sqlite import SqliteOplog

__all__ = ["ApplyHook", "PostgresOplog", "SqliteOplog"]
