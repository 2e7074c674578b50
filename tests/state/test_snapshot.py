"""State snapshots: loading one and then the tail equals replaying everything; damaged
ones are refused whole; compaction keeps the state and drops what it no longer needs."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import sqlite3
import struct
import tempfile
from pathlib import Path
from uuid import UUID

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from peerlog import CompactedError, Entry, Expunged, SnapshotError, StateStore
from peerlog.state.snapshot import (
    HEADER,
    body_of_rows,
    decode_snapshot,
    encode_snapshot,
    snapshot_name,
)
from peerlog.sync.cursors import PeerCursors
from tests.helpers import files_holding, peer
from tests.state.test_convergence_property import histories


async def _replay(store: StateStore, logs: dict[UUID, list[Entry]],
                  cut: dict[UUID, int] | None = None, start: dict[UUID, int] | None = None
                  ) -> None:
    """Apply each origin's entries from ``start`` up to ``cut`` (whole logs by default)."""
    for origin, log in logs.items():
        lo = (start or {}).get(origin, 0)
        hi = len(log) if cut is None else cut[origin]
        if hi > lo:
            await store.oplog.apply_many(origin, lo, log[lo:hi])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(logs=histories(), data=st.data())
def test_a_snapshot_at_any_point_plus_the_tail_equals_a_full_replay(
        logs: dict[UUID, list[Entry]], data: st.DataObject) -> None:
    cut = {o: data.draw(st.integers(0, len(log))) for o, log in logs.items()}
    # The loading device may already hold a prefix of its own, below or above the cut.
    held = {o: data.draw(st.integers(0, len(log))) for o, log in logs.items()}

    async def run() -> tuple[str, str, str]:
        with tempfile.TemporaryDirectory() as tmp:
            async with StateStore(Path(tmp) / "full.db") as full, \
                    StateStore(Path(tmp) / "producer.db") as producer, \
                    StateStore(Path(tmp) / "fresh.db") as fresh, \
                    StateStore(Path(tmp) / "partial.db") as partial:
                await _replay(full, logs)
                await _replay(producer, logs, cut)
                snap = await producer.snapshot()
                for device, had in ((fresh, {o: 0 for o in logs}), (partial, held)):
                    await _replay(device, logs, had)
                    await device.load_snapshot(snap)
                    mine = await device.oplog.cursors()
                    await _replay(device, logs, start={o: mine.of(o) for o in logs})
                return (await full.state_hash(), await fresh.state_hash(),
                        await partial.state_hash())

    full, fresh, partial = asyncio.run(run())
    assert fresh == full
    assert partial == full


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(logs=histories())
def test_compacting_a_device_keeps_its_state(logs: dict[UUID, list[Entry]]) -> None:
    async def run() -> tuple[str, str]:
        with tempfile.TemporaryDirectory() as tmp:
            async with StateStore(Path(tmp) / "d.db") as store:
                await _replay(store, logs)
                before = await store.state_hash()
                await store.compact(await store.oplog.cursors())
                return before, await store.state_hash()

    before, after = asyncio.run(run())
    assert before == after


async def _producer(tmp: Path) -> tuple[StateStore, bytes]:
    store = StateStore(tmp / "producer.db")
    await store.put("todos", "1", {"title": "milk", "done": False})
    await store.update("todos", "1", {"done": True})
    await store.delete("todos", "2")
    return store, await store.snapshot()


async def test_a_snapshot_names_itself_by_its_digest(tmp_path: Path) -> None:
    store, snap = await _producer(tmp_path)
    await store.close()
    assert snapshot_name(snap) == hashlib.sha256(snap[:-32]).hexdigest() + ".psnap"
    decoded = decode_snapshot(snap, expect_name=snapshot_name(snap))
    assert decoded.producer == store.origin
    assert decoded.frontier == PeerCursors({store.origin: 3})


GOOD_ROW = ("t", "k", 5, 0, b'{"a":1}', peer(1).bytes, 0)


def _sealed(body: bytes) -> bytes:
    return encode_snapshot(peer(1), 0, 5, PeerCursors({peer(1): 1}), body)


def _body_with(*statements: str) -> bytes:
    """A body database with the right tables and one good row, then ``statements``."""
    with contextlib.closing(sqlite3.connect(":memory:")) as conn:
        conn.deserialize(body_of_rows([GOOD_ROW], []))
        for statement in statements:
            conn.execute(statement)
        conn.commit()
        body: bytes = conn.serialize()
    return body


def _damaged() -> list[tuple[str, bytes, str]]:
    """(what, bytes, the words the error must use), from a valid snapshot's bytes."""
    good = _sealed(body_of_rows([GOOD_ROW], []))
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0x40

    def resealed(data: bytes) -> bytes:
        return data + hashlib.sha256(data).digest()

    head = bytearray(good[:HEADER.size])
    struct.pack_into(">H", head, 8, 2)
    short_body = bytearray(good[:HEADER.size])
    struct.pack_into(">Q", short_body, HEADER.size - 8, 10)
    row = "INSERT INTO bases VALUES ('t', {}, 5, {}, {}, x'{}', 1)"
    origin = peer(2).bytes.hex()
    return [
        ("truncated", good[:len(good) - 10], "digest"),
        ("a flipped byte", bytes(flipped), "digest"),
        ("empty", b"", "truncated"),
        ("from a newer peerlog", resealed(bytes(head) + good[HEADER.size:-32]), "upgrade"),
        ("not a snapshot at all", resealed(b"PK\x03\x04" + good[4:-32]), "not a peerlog"),
        ("a body of another length", resealed(bytes(short_body) + good[HEADER.size:-32]),
         "length"),
        ("a body that is not a database", _sealed(b"hello" * 100), "not a database"),
        ("a body with a trigger", _sealed(_body_with(
            "CREATE TRIGGER t AFTER INSERT ON bases BEGIN SELECT 1; END")), "schema"),
        ("a value that is not JSON", _sealed(_body_with(
            row.format("'x'", 0, "CAST('{not json' AS BLOB)", origin))), "not valid"),
        ("a rank that is not one", _sealed(_body_with(
            row.format("'x'", 2, "CAST('1' AS BLOB)", origin))), "not valid"),
        ("a short origin", _sealed(_body_with(
            row.format("'x'", 0, "CAST('1' AS BLOB)", "00"))), "not valid"),
        ("a key that is not UTF-8", _sealed(_body_with(
            row.format("CAST(x'ff' AS TEXT)", 0, "CAST('1' AS BLOB)", origin))), "UTF-8"),
    ]


@pytest.mark.parametrize(("what", "data", "words"), _damaged(), ids=[d[0] for d in _damaged()])
async def test_a_damaged_snapshot_is_refused_and_nothing_is_loaded(
        tmp_path: Path, what: str, data: bytes, words: str) -> None:
    async with StateStore(tmp_path / "d.db") as store:
        with pytest.raises(SnapshotError, match=words):
            await store.load_snapshot(data)
        assert await store.oplog.cursors() == PeerCursors()
        assert await store.tables() == []


async def test_a_snapshot_under_another_name_is_refused(tmp_path: Path) -> None:
    store, snap = await _producer(tmp_path)
    await store.close()
    with pytest.raises(SnapshotError, match="named"):
        decode_snapshot(snap, expect_name="0" * 64 + ".psnap")


async def test_reading_below_a_loaded_snapshot_raises_compacted(tmp_path: Path) -> None:
    producer, snap = await _producer(tmp_path)
    async with StateStore(tmp_path / "new.db") as store:
        assert await store.load_snapshot(snap) == PeerCursors({producer.origin: 3})
        assert await store.get("todos", "1") == {"title": "milk", "done": True}
        with pytest.raises(CompactedError) as caught:
            await store.oplog.read_since(producer.origin, 0)
        assert caught.value.first_available == 3
        assert await store.oplog.read_since(producer.origin, 3) == []
    await producer.close()


async def test_entries_a_snapshot_covers_are_taken_as_held(tmp_path: Path) -> None:
    producer, snap = await _producer(tmp_path)
    entries = [e for _, e in await producer.oplog.read_since(producer.origin, 0)]
    async with StateStore(tmp_path / "new.db") as store:
        await store.load_snapshot(snap)
        assert await store.oplog.apply_many(producer.origin, 0, entries) == 0
        assert await store.get("todos", "1") == {"title": "milk", "done": True}
    await producer.close()


async def test_loading_an_older_snapshot_changes_nothing(tmp_path: Path) -> None:
    producer, snap = await _producer(tmp_path)
    await producer.put("todos", "1", "newer")
    async with StateStore(tmp_path / "new.db") as store:
        await store.load_snapshot(await producer.snapshot())
        assert await store.load_snapshot(snap) == PeerCursors()
        assert await store.get("todos", "1") == "newer"
    await producer.close()


async def test_an_erasure_of_a_slot_a_snapshot_covers_removes_its_value(tmp_path: Path) -> None:
    producer, snap = await _producer(tmp_path)
    [(_, put)] = await producer.oplog.read_since(producer.origin, 0, 1)
    async with StateStore(tmp_path / "new.db") as store:
        await store.load_snapshot(snap)
        assert (await store.oplog.apply(producer.origin, 0, Expunged(put.digest))).new
        assert await store.get("todos", "1") == {"done": True}  # the update's field stays
        assert not (await store.oplog.apply(producer.origin, 0, Expunged(put.digest))).new
        assert (await store.oplog.erased())[producer.origin] == [(0, put.digest)]
    await producer.close()


async def test_compaction_drops_superseded_entries_and_keeps_the_winners(
        tmp_path: Path) -> None:
    async with StateStore(tmp_path / "d.db") as store:
        for n in range(10):
            await store.put("t", "k", n)
        await store.put("t", "other", "x")
        assert await store.compact(await store.oplog.cursors()) == 9
        assert await store.items("t") == [("k", 9), ("other", "x")]
        with pytest.raises(CompactedError):
            await store.oplog.read_since(store.origin, 0)
        assert [i for i, _ in await store.oplog.read_since(store.origin, 11)] == []
        assert await store.put("t", "k", 10) == 11


async def test_after_delete_and_compact_the_value_bytes_are_gone_from_the_database_files(
        tmp_path: Path) -> None:
    secret = b"hunter2-" + b"s3cr3t" * 4
    async with StateStore(tmp_path / "d.db") as store:
        await store.put("accounts", "me", {"password": secret.decode()})
        for n in range(200):  # enough pages that freed ones would linger
            await store.put("filler", str(n), "x" * 200)
        await store.delete("accounts", "me")
        await store.compact(await store.oplog.cursors())
        await store.put("after", "k", 1)  # the device keeps working
    assert files_holding(tmp_path, secret) == []
