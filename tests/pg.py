"""A real PostgreSQL server for the tests: a cluster in a temporary folder, on a
free loopback port, started once per test session and removed at exit.

Needs Debian's ``postgresql`` package (`./dev test` installs it).  Tests skip
only when the server truly cannot be started, and say why.
"""

from __future__ import annotations

import atexit
import glob
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.helpers import free_port


def _bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)




class PgCluster:
    def __init__(self) -> None:
        initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
        if initdb is None or pg_ctl is None:
            raise RuntimeError("PostgreSQL server binaries (initdb, pg_ctl) are not installed; "
                               "`apt-get install postgresql` provides them")
        self.pg_ctl = pg_ctl
        self.root = Path(tempfile.mkdtemp(prefix="peerlog-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        # initdb refuses to run as root: run the server as the postgres user.
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            import pwd
            try:
                account = pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError("running as root and there is no 'postgres' user to run "
                                   "the server as") from None
            os.chown(self.root, account.pw_uid, account.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self._run([initdb, "-D", str(self.data), "-U", "postgres", "--auth=trust",
                   "--no-sync", "-E", "UTF8"])
        self._run([pg_ctl, "-D", str(self.data), "-l", str(self.root / "server.log"), "-w",
                   "-t", "60", "-o",
                   f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                   "-c max_connections=300 -c fsync=on", "start"])
        self.dsn = f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"
        atexit.register(self.stop)

    def _run(self, argv: list[str]) -> None:
        done = subprocess.run([*self.as_user, *argv], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed: {done.stderr.strip() or done.stdout.strip()}")

    def stop(self) -> None:
        if self.data.exists():
            subprocess.run([*self.as_user, self.pg_ctl, "-D", str(self.data), "-m",
                            "immediate", "stop"], capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)

    def fresh_schema(self) -> str:
        """A DSN whose tables live in a new, empty schema of their own."""
        import psycopg
        name = f"t{time.monotonic_ns()}"
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {name}")
        return f"{self.dsn} options='-c search_path={name}'"


_cluster: PgCluster | None = None
_failure: str | None = None


def cluster() -> PgCluster:
    """The session's server, started on first use; skips the test if it cannot start."""
    global _cluster, _failure
    if _cluster is None and _failure is None:
        try:
            _cluster = PgCluster()
        except (RuntimeError, OSError) as exc:
            _failure = str(exc)
    if _cluster is None:
        pytest.skip(f"PostgreSQL cannot be started here: {_failure}")
    return _cluster
