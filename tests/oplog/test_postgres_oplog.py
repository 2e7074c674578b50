"""What `PostgresOplog` promises beyond the shared contract."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from peerlog import BackendError, IdentityError, PostgresOplog
from tests.helpers import entries, peer
from tests.pg import cluster


async def test_concurrent_delivery_of_the_same_entries_is_idempotent() -> None:
    dsn = cluster().fresh_schema()
    # Ten independent pools: ten server processes race on the same origin.
    oplogs = [await PostgresOplog(dsn).open() for _ in range(10)]
    try:
        batches = [(start, entries(start, 50)) for start in range(0, 500, 50)]

        async def deliver(oplog: PostgresOplog) -> int:
            new = 0
            for start, batch in batches:
                new += await oplog.apply_many(peer(1), start, batch)
            return new

        news = await asyncio.gather(*(deliver(o) for o in oplogs))
        assert sum(news) == 500, "every entry was new exactly once"
        assert await oplogs[0].cursors() == {peer(1): 500}
        assert await oplogs[3].read_since(peer(1), 0, 500) == list(enumerate(entries(0, 500)))
    finally:
        for oplog in oplogs:
            await oplog.close()


async def test_origin_is_persisted_and_checked() -> None:
    dsn = cluster().fresh_schema()
    async with PostgresOplog(dsn, origin=peer(4)) as first:
        assert first.origin == peer(4)
    async with PostgresOplog(dsn) as again:
        assert again.origin == peer(4)
    with pytest.raises(IdentityError):
        await PostgresOplog(dsn, origin=peer(5)).open()


async def test_an_unreachable_server_is_a_backend_error() -> None:
    oplog = PostgresOplog("host=127.0.0.1 port=1 user=nobody dbname=none",
                          connect_timeout=1.0)
    with pytest.raises(BackendError, match="cannot open") as info:
        await oplog.read_since(peer(1), 0)
    assert isinstance(info.value.__cause__, psycopg.Error)
    await oplog.close()
