"""The SQL oplogs: replicas that hold every origin's log in a database.

`PostgresOplog` is imported on first use: it needs the ``postgres`` extra
(psycopg), and most devices never touch it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from peerlog.oplog.hooks import ApplyHook
from peerlog.oplog.sqlite import SqliteOplog

if TYPE_CHECKING:
    from peerlog.oplog.postgres import PostgresOplog

__all__ = ["ApplyHook", "PostgresOplog", "SqliteOplog"]


def __getattr__(name: str) -> Any:
    if name == "PostgresOplog":
        from peerlog.extras import require

        return require("peerlog.oplog.postgres", "postgres").PostgresOplog
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
