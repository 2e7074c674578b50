"""What `SqliteOplog` promises beyond the shared contract."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from peerlog import (
    BackendError,
    Entry,
    Expunged,
    Hlc,
    IdentityError,
    IndexOutOfRangeError,
    SqliteOplog,
)
from peerlog.sync.hlc import COUNTER_BITS
from tests.helpers import entries, peer


async def test_origin_is_created_and_persisted(tmp_path: Path) -> None:
    async with SqliteOplog(tmp_path / "db") as first:
        origin = first.origin
    async with SqliteOplog(tmp_path / "db") as again:
        assert again.origin == origin


async def test_given_origin_is_used_for_a_new_database(tmp_path: Path) -> None:
    async with SqliteOplog(tmp_path / "db", origin=peer(5)) as oplog:
        assert oplog.origin == peer(5)


async def test_opening_with_another_origin_raises_identity_error(tmp_path: Path) -> None:
    async with SqliteOplog(tmp_path / "db", origin=peer(1)):
        pass
    with pytest.raises(IdentityError, match=str(peer(1))):
        SqliteOplog(tmp_path / "db", origin=peer(2))


async def test_append_assigns_consecutive_indexes_and_rising_timestamps(
        tmp_path: Path) -> None:
    async with SqliteOplog(tmp_path / "db") as oplog:
        got = [await oplog.append(b"a"), *await oplog.append_many([b"b", b"c"])]
        assert [i for i, _ in got] == [0, 1, 2]
        stamps = [e.ts for _, e in got]
        assert stamps == sorted(set(stamps))
        assert await oplog.read_since(oplog.origin, 0) == got
        assert (await oplog.cursors()).of(oplog.origin) == 3


async def test_append_after_foreign_entries_of_own_origin_continues(tmp_path: Path) -> None:
    async with SqliteOplog(tmp_path / "db", origin=peer(1)) as oplog:
        await oplog.apply_many(peer(1), 0, entries(0, 3))
        index, _ = await oplog.append(b"next")
        assert index == 3


async def test_clock_survives_reopen_when_wall_clock_steps_back(tmp_path: Path) -> None:
    async with SqliteOplog(tmp_path / "db", hlc=Hlc(lambda: 2_000_000)) as oplog:
        _, first = await oplog.append(b"x")
    behind = Hlc(lambda: 1_000_000)
    async with SqliteOplog(tmp_path / "db") as oplog:
        # The stored clock wins over a wall clock that went back.
        oplog.hlc._wall = behind._wall
        _, second = await oplog.append(b"y")
    assert second.ts > first.ts


async def test_applied_remote_timestamps_advance_the_clock(tmp_path: Path) -> None:
    wall = 5_000_000
    async with SqliteOplog(tmp_path / "db", hlc=Hlc(lambda: wall)) as oplog:
        remote = (wall + 30_000) << COUNTER_BITS  # 30 s ahead: within the bound
        await oplog.apply(peer(9), 0, Entry(remote, b"r"))
        _, local = await oplog.append(b"l")
        assert local.ts > remote


async def test_far_future_remote_entry_is_stored_but_does_not_drag_the_clock(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    wall = 5_000_000
    async with SqliteOplog(tmp_path / "db", hlc=Hlc(lambda: wall)) as oplog:
        remote = (wall + 3_600_000) << COUNTER_BITS  # an hour ahead
        with caplog.at_level(logging.WARNING):
            await oplog.apply(peer(9), 0, Entry(remote, b"r"))
        assert "ahead of the local clock" in caplog.text
        assert (await oplog.cursors()).of(peer(9)) == 1
        _, local = await oplog.append(b"l")
        assert local.ts < remote


async def test_memory_database_works(tmp_path: Path) -> None:
    async with SqliteOplog(":memory:") as oplog:
        await oplog.apply_many(peer(1), 0, entries(0, 3))
        assert await oplog.cursors() == {peer(1): 3}


async def test_a_file_that_is_not_a_database_raises_backend_error(tmp_path: Path) -> None:
    path = tmp_path / "db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(BackendError, match="cannot open") as info:
        SqliteOplog(path)
    assert isinstance(info.value.__cause__, sqlite3.DatabaseError)
    assert path.read_bytes() == b"this is not a database" * 100, "nothing is overwritten"


async def test_a_newer_schema_version_is_refused(tmp_path: Path) -> None:
    async with SqliteOplog(tmp_path / "db"):
        pass
    conn = sqlite3.connect(tmp_path / "db")
    with conn:
        conn.execute("UPDATE peerlog_meta SET value = 99 WHERE key = 'schema_version'")
    conn.close()
    with pytest.raises(BackendError, match="schema version 99"):
        SqliteOplog(tmp_path / "db")


async def test_a_missing_directory_raises_backend_error(tmp_path: Path) -> None:
    with pytest.raises(BackendError):
        SqliteOplog(tmp_path / "no" / "such" / "dir" / "db")


class FailingHook:
    """An apply hook that fails after the entries were inserted."""

    def setup(self, conn: Any) -> None:
        pass

    def applied(self, conn: Any, peer: UUID, start: int,
                rows: Sequence[tuple[int | None, bytes]]) -> None:
        raise sqlite3.OperationalError("disk I/O error (simulated by the hook)")

    def erased(self, conn: Any, peer: UUID, indexes: list[int]) -> None:
        pass


async def test_a_failure_mid_transaction_rolls_back_everything(tmp_path: Path) -> None:
    async with SqliteOplog(tmp_path / "db", hooks=[FailingHook()]) as oplog:
        with pytest.raises(BackendError, match="simulated") as info:
            await oplog.apply_many(peer(1), 0, entries(0, 5))
        assert isinstance(info.value.__cause__, sqlite3.OperationalError)
        assert await oplog.cursors() == {}
        assert await oplog.read_since(peer(1), 0) == []


async def test_concurrent_appends_from_many_tasks_are_contiguous(tmp_path: Path) -> None:
    async with SqliteOplog(tmp_path / "db") as oplog:
        results = await asyncio.gather(*(oplog.append(b"%d" % n) for n in range(200)))
        assert sorted(i for i, _ in results) == list(range(200))
        assert (await oplog.cursors()).of(oplog.origin) == 200


async def test_two_oplogs_on_one_file_share_progress(tmp_path: Path) -> None:
    async with SqliteOplog(tmp_path / "db") as one, SqliteOplog(tmp_path / "db") as two:
        await one.apply_many(peer(1), 0, entries(0, 3))
        await two.apply_many(peer(1), 0, entries(0, 5))
        assert await one.cursors() == await two.cursors() == {peer(1): 5}


async def test_close_is_idempotent(tmp_path: Path) -> None:
    oplog = SqliteOplog(tmp_path / "db")
    await oplog.close()
    await oplog.close()
    assert oplog.closed


async def test_expunge_erases_a_held_entry_once(tmp_path: Path) -> None:
    async with SqliteOplog(tmp_path / "db") as oplog:
        index, entry = await oplog.append(b"secret")
        assert await oplog.expunge(oplog.origin, index) is True
        assert await oplog.expunge(oplog.origin, index) is False
        assert await oplog.read_since(oplog.origin, index) == [(index, Expunged(entry.digest))]
        assert await oplog.erased() == {oplog.origin: [(index, entry.digest)]}
        with pytest.raises(IndexOutOfRangeError):
            await oplog.expunge(oplog.origin, 5)


async def test_a_new_database_and_its_wal_are_readable_by_their_owner_only(
        tmp_path: Path) -> None:
    async with SqliteOplog(tmp_path / "relay.db") as oplog:
        await oplog.append(b"private")
        modes = {name: os.stat(tmp_path / name).st_mode & 0o777
                 for name in os.listdir(tmp_path)}
    assert modes["relay.db"] == 0o600
    assert modes["relay.db-wal"] == 0o600
