"""The last-writer-wins state: what an application reads."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from peerlog import Change, CodecError, Entry, Expunged, StateStore
from peerlog.state.ops import encode_delete, encode_put
from tests.helpers import peer


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[StateStore]:
    async with StateStore(tmp_path / "device.db") as s:
        yield s


async def test_put_get_and_items(store: StateStore) -> None:
    await store.put("todo", "b", {"title": "eggs", "done": False})
    await store.put("todo", "a", [1, 2, "three"])
    await store.put("other", "x", None)
    assert await store.get("todo", "b") == {"title": "eggs", "done": False}
    assert await store.items("todo") == [("a", [1, 2, "three"]),
                                         ("b", {"title": "eggs", "done": False})]
    assert await store.get("other", "x") is None
    assert await store.tables() == ["other", "todo"]


async def test_delete_removes_the_key(store: StateStore) -> None:
    await store.put("todo", "a", 1)
    await store.delete("todo", "a")
    with pytest.raises(KeyError):
        await store.get("todo", "a")
    assert await store.items("todo") == []


async def test_every_change_is_one_log_entry(store: StateStore) -> None:
    assert await store.put("t", "k", 1) == 0
    assert await store.delete("t", "k") == 1
    assert (await store.oplog.cursors()).of(store.origin) == 2


async def test_a_later_write_wins_whatever_the_arrival_order(store: StateStore) -> None:
    await store.oplog.apply(peer(2), 0, Entry(200 << 16, encode_put("t", "k", "new")))
    await store.oplog.apply(peer(3), 0, Entry(100 << 16, encode_put("t", "k", "old")))
    assert await store.get("t", "k") == "new"


async def test_on_equal_timestamps_a_delete_beats_a_write(store: StateStore) -> None:
    await store.oplog.apply(peer(2), 0, Entry(100, encode_delete("t", "k")))
    await store.oplog.apply(peer(3), 0, Entry(100, encode_put("t", "k", "zzz")))
    with pytest.raises(KeyError):
        await store.get("t", "k")


async def test_on_equal_timestamps_the_greater_value_bytes_win(store: StateStore) -> None:
    await store.oplog.apply(peer(2), 0, Entry(100, encode_put("t", "k", "b")))
    await store.oplog.apply(peer(3), 0, Entry(100, encode_put("t", "k", "a")))
    assert await store.get("t", "k") == "b"


async def test_payloads_that_are_not_state_operations_are_ignored(store: StateStore) -> None:
    await store.oplog.apply_many(peer(2), 0, [Entry(1, b""), Entry(2, b"\x01\xff\xff"),
                                              Entry(3, b"not an op at all")])
    assert await store.tables() == []


async def test_values_that_are_not_json_are_refused(store: StateStore) -> None:
    with pytest.raises(CodecError, match="not JSON"):
        await store.put("t", "k", {1, 2})
    with pytest.raises(CodecError):
        await store.put("", "k", 1)
    assert (await store.oplog.cursors()).of(store.origin) == 0


async def test_erasing_the_winning_entry_falls_back_to_the_next(store: StateStore) -> None:
    older = Entry(100 << 16, encode_put("t", "k", "older"))
    newer = Entry(200 << 16, encode_put("t", "k", "newer"))
    await store.oplog.apply(peer(2), 0, older)
    await store.oplog.apply(peer(3), 0, newer)
    await store.oplog.apply(peer(3), 0, Expunged(newer.digest))
    assert await store.get("t", "k") == "older"
    await store.oplog.apply(peer(2), 0, Expunged(older.digest))
    with pytest.raises(KeyError):
        await store.get("t", "k")


async def test_state_survives_reopen(tmp_path: Path) -> None:
    async with StateStore(tmp_path / "d.db") as store:
        await store.put("t", "k", {"v": 1})
        digest = await store.state_hash()
    async with StateStore(tmp_path / "d.db") as store:
        assert await store.get("t", "k") == {"v": 1}
        assert await store.state_hash() == digest


async def test_changes_reports_local_and_remote_keys_with_their_origin(
        store: StateStore) -> None:
    stream = store.changes()
    first = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0.05)  # let the watch take its snapshot
    await store.put("t", "a", 1)
    assert await asyncio.wait_for(first, 5) == [Change("t", "a", 1, False, store.origin)]
    later = store.oplog.hlc.last + 1
    await store.oplog.apply(peer(2), 0, Entry(later, encode_delete("t", "a")))
    assert await asyncio.wait_for(anext(stream), 5) == [Change("t", "a", None, True, peer(2))]
    await stream.aclose()


async def test_changes_yields_one_list_per_applied_batch(store: StateStore) -> None:
    stream = store.changes()
    first = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0.05)
    ts = store.oplog.hlc.last
    await store.oplog.apply_many(peer(2), 0, [Entry(ts + i, encode_put("t", f"k{i}", i))
                                              for i in range(500)])
    batch = await asyncio.wait_for(first, 5)
    assert [c.key for c in batch] == [f"k{i}" for i in range(500)]
    assert {c.origin for c in batch} == {peer(2)}
    await stream.aclose()
