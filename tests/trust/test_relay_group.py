"""An encrypted group syncing through a relay: the relay stores and serves sealed entries
only, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import peerlog
from peerlog.trust import Keyring
from tests.drivers.test_never_wedges import RELAY_DBS, relay
from tests.trust.groups import group_of

MARKERS = (b"relay-secret-table", b"relay-secret-key", b"relay-secret-value")


def origin_of(home: Path) -> object:
    ring = Keyring.load(home)
    assert ring is not None
    return ring.origin


def relay_bytes(db: str) -> bytes:
    """Every byte the relay stored: the SQLite files, or every row of every table."""
    if db.startswith("sqlite:"):
        path = Path(db.removeprefix("sqlite:"))
        return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
    import psycopg

    out = []
    with psycopg.connect(db) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")]
        for table in tables:
            for (row,) in conn.execute(f"SELECT t::text FROM {table} t"):
                out.append(row.encode())
    text = b"\n".join(out)
    # bytea columns print as hex: search both spellings
    return text + text.replace(b"\\\\x", b"")


@pytest.mark.parametrize("make_db", RELAY_DBS, ids=["sqlite", "postgres"])
async def test_members_converge_through_a_relay_that_sees_no_plaintext(
        tmp_path: Path, make_db: Callable[[Path], str]) -> None:
    db = make_db(tmp_path)
    homes = await group_of(tmp_path, 2)
    origins = [origin_of(h) for h in homes]
    async with relay(db, origins) as (url, tokens):  # type: ignore[arg-type]
        async with peerlog.open(homes[0], server=url, token=tokens[origins[0]],  # type: ignore[index]
                                live=False) as a:
            await a.put(MARKERS[0].decode(), MARKERS[1].decode(), {"v": MARKERS[2].decode()})
            assert (await a.sync_now()).ok
        async with peerlog.open(homes[1], server=url, token=tokens[origins[1]],  # type: ignore[index]
                                live=False) as b:
            report = await b.sync_now()
            assert report.ok, report
            assert await b.get(MARKERS[0].decode(), MARKERS[1].decode()) == {
                "v": MARKERS[2].decode()}
        stored = relay_bytes(db)
        assert stored
        for needle in MARKERS:
            assert needle not in stored
            assert needle.hex().encode() not in stored


async def test_a_device_without_the_key_or_of_another_group_is_told_so_by_a_relay(
        tmp_path: Path) -> None:
    db = f"sqlite:{tmp_path / 'relay.db'}"
    [member] = await group_of(tmp_path / "group", 1)
    [stranger] = await group_of(tmp_path / "other", 1)
    plain = tmp_path / "plain"
    async with peerlog.open(plain, live=False):
        pass
    async with peerlog.open(plain, live=False) as device:
        plain_origin = device.peer_id
    origins = [origin_of(member), origin_of(stranger), plain_origin]
    async with relay(db, origins) as (url, tokens):  # type: ignore[arg-type]
        async with peerlog.open(member, server=url, token=tokens[origins[0]],  # type: ignore[index]
                                live=False) as device:
            await device.put("t", "k", "v")
            assert (await device.sync_now()).ok
        ring = Keyring.load(member)
        assert ring is not None
        for home, token in ((plain, tokens[origins[2]]), (stranger, tokens[origins[1]])):  # type: ignore[index]
            async with peerlog.open(home, server=url, token=token, live=False) as device:
                with pytest.raises(peerlog.WrongGroupError) as caught:
                    await device.sync_now()
                assert ring.group.bytes[:8].hex() in str(caught.value)
                assert "invite" in str(caught.value)
